"""KTH: a tiny dataset in the real formats (AVI videos written with imageio-ffmpeg and a
KTHBoundingBoxInfo.txt), prepared and loaded by the code users run; malformed input; the
download helper (resume, restart, verification, no network) and the get_kth.py script."""
import io
import sys
import urllib.error
import zipfile
from pathlib import Path

import numpy as np
import pytest

from minihart.data import DatasetNotPrepared, kth, make_dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data_scripts"))
import download  # noqa: E402
import get_kth  # noqa: E402

HEADER = ("# KTH person bounding boxes\n# format: person scenario action sequence start end "
          "then ymin xmin ymax xmax per frame\nBounding boxes for the KTH dataset\n\n")


def _levels(n):
    return 20 + 15 * np.arange(n)


def write_avi(path, n=12):
    """Grey 160x120 video: frame i is uniform at level 20 + 15 i with a white top-left block."""
    import imageio_ffmpeg
    writer = imageio_ffmpeg.write_frames(str(path), (160, 120), pix_fmt_in="gray", codec="mpeg4",
                                         macro_block_size=8, output_params=["-q:v", "1"])
    writer.send(None)
    for level in _levels(n):
        frame = np.full((120, 160), level, np.uint8)
        frame[:16, :16] = 255
        writer.send(frame)
    writer.close()


def _boxes_line(person, scenario, code, seq, start, end, shift=0):
    nums = []
    for i in range(end - start + 1):
        nums += [10 + i + shift, 20 + 2 * i, 70 + i + shift, 45 + 2 * i]  # ymin xmin ymax xmax
    return " ".join(str(v) for v in [person, scenario, code, seq, start, end, *nums])


@pytest.fixture
def kth_raw(tmp_path):
    videos = tmp_path / "raw" / "videos"
    videos.mkdir(parents=True)
    write_avi(videos / "person01_walking_d1_uncomp.avi")
    write_avi(videos / "person02_running_d2_uncomp.avi", n=8)
    lines = [_boxes_line(1, 1, 6, 1, 2, 6), _boxes_line(1, 1, 6, 2, 8, 11, shift=5),
             _boxes_line(2, 2, 5, 1, 1, 4), _boxes_line(1, 1, 1, 1, 1, 3),  # boxing: not used
             _boxes_line(3, 1, 4, 1, 1, 5)]  # jogging, person 3: no video
    boxes = tmp_path / "raw" / "KTHBoundingBoxInfo.txt"
    boxes.write_text(HEADER + "\n".join(lines) + "\n")
    return videos, boxes


def test_prepare_and_load_real_formats(kth_raw, tmp_path):
    videos, boxes = kth_raw
    summary = kth.prepare(videos, boxes, tmp_path / "kth", progress=False)
    assert summary == {"frames": 13, "tracks": 3,
                       "missing_videos": ["person03_jogging_d1_uncomp.avi"]}
    train = make_dataset("kth", tmp_path / "kth", "train", test_subjects=(2,))
    test = make_dataset("kth", tmp_path / "kth", "test", test_subjects=(2,))
    assert train.image_hw == (120, 160) and train.channels == 1
    assert train.augment and not test.augment
    assert train.num_windows(None) == 2 and test.num_windows(None) == 1
    frames, boxes_, presence = train.window(0, None)  # frames 2..6 (1-based) of person 1
    assert frames.shape == (5, 1, 120, 160) and frames.dtype == np.float32
    np.testing.assert_allclose(frames[:, 0, 60:, 60:].mean((1, 2)) * 255, _levels(12)[1:6], atol=2)
    assert (frames[:, 0, :12, :12] > 0.95).all()  # not flipped or transposed
    # 1-based inclusive ymin xmin ymax xmax (10 20 70 45) -> 0-based half-open [y, x, h, w]
    np.testing.assert_array_equal(boxes_[0], [9, 19, 61, 26])
    np.testing.assert_array_equal(boxes_[4], [13, 27, 61, 26])
    np.testing.assert_array_equal(presence, np.ones(5))
    f, b, p = train.batches(2, 4).__next__()
    assert f.shape == (2, 4, 1, 120, 160) and b.shape == (2, 4, 4) and p.shape == (2, 4)
    test_frames, test_boxes, _ = test.window(0, None)
    np.testing.assert_allclose(test_frames[:, 0, 60:, 60:].mean((1, 2)) * 255, _levels(8)[:4],
                               atol=2)
    default_test = kth.load(tmp_path / "kth", "test")  # person 2 is a KTH test subject
    assert default_test.num_windows(None) == 1
    with np.load(tmp_path / "kth" / "tracks.npz") as z:  # as an older minihart prepared it
        np.savez(tmp_path / "kth" / "tracks.npz", info=z["info"], boxes=z["boxes"] + [1, 1, -1, -1])
    old = r"tracks\.npz was prepared by an older minihart .* data_scripts/get_kth\.py --root"
    with pytest.raises(ValueError, match=old):
        kth.load(tmp_path / "kth")


def test_boxes_are_1_based_and_inclusive(tmp_path):
    """Known numbers: a box whose corners are the 1-based pixels (1, 1) and (120, 160), both
    included, is the whole frame; one 1-pixel box at (5, 7)."""
    path = tmp_path / "KTHBoundingBoxInfo.txt"
    path.write_text(HEADER + "4 2 6 1 3 5 1 1 120 160 5 7 5 7 21 31 60 50\n"
                    "4 2 5 1 1 1 1 1 120 160\n")  # a running line, not asked for below
    entries = kth.parse_boxes_file(path, actions=("walking",))
    assert [(e.person, e.scenario, e.action, e.sequence, e.start, e.end, e.line)
            for e in entries] == [(4, 2, "walking", 1, 3, 5, 5)]
    np.testing.assert_array_equal(entries[0].boxes, [[0, 0, 120, 160],   # the whole 120x160 frame
                                                     [4, 6, 1, 1],        # one pixel, row 4 col 6
                                                     [20, 30, 40, 20]])
    assert entries[0].boxes.dtype == np.float32


@pytest.mark.parametrize("content, message", [
    ("", r"no data line"),
    (HEADER, r"no data line"),  # header only
    ("<!DOCTYPE html>\n<html><body>404 Not Found</body></html>\n", r"line 1: HTML, not"),
    ("# boxes\n\n<html>\n", r"line 3: HTML, not"),
])
def test_a_file_that_is_not_a_boxes_file_is_an_error(tmp_path, content, message):
    path = tmp_path / "KTHBoundingBoxInfo.txt"
    path.write_text(content)
    with pytest.raises(ValueError, match=f"KTHBoundingBoxInfo.txt:? {message}"):
        kth.parse_boxes_file(path)
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    with pytest.raises(ValueError, match="KTHBoundingBoxInfo.txt: not a text file"):
        kth.parse_boxes_file(path)


@pytest.mark.parametrize("line, message", [
    ("1 1 6 1 2 3 10 20 70 45 11 abc 71 47", r"line 5: non-numeric value 'abc'"),
    ("1 1 6 1 2 3 10 20 70 45 11 nan 71 47", r"line 5: non-finite value 'nan'"),  # parsed silently before
    ("1 1 6 1 2 4 10 20 70 45 11 22 71 47", r"line 5: frames 2\.\.4 need 12 box numbers"),
    ("1 1 six 1 2 3", r"line 5: expected 6 integers"),
    ("1 1 9 1 2 2 10 20 70 45", r"line 5: action code must be 1-6"),
])
def test_malformed_boxes_file_names_file_and_line(tmp_path, line, message):
    path = tmp_path / "KTHBoundingBoxInfo.txt"
    path.write_text(HEADER + line + "\n")
    with pytest.raises(ValueError, match=f"KTHBoundingBoxInfo.txt {message}"):
        kth.parse_boxes_file(path)


def test_corrupt_and_short_videos(kth_raw, tmp_path):
    videos, boxes = kth_raw
    (videos / "person02_running_d2_uncomp.avi").write_bytes(b"RIFF" + bytes(range(256)) * 20)
    with pytest.raises(ValueError, match=r"person02_running_d2_uncomp\.avi: cannot decode"):
        kth.prepare(videos, boxes, tmp_path / "out", progress=False)
    write_avi(videos / "person02_running_d2_uncomp.avi", n=3)  # boxes need frames 1..4
    message = r"KTHBoundingBoxInfo.txt line 7: frames 1\.\.4 but .* 3 frames"
    with pytest.raises(ValueError, match=message):
        kth.prepare(videos, boxes, tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / "tracks.npz").exists()  # no half-prepared cache


def write_cache(root, tracks):
    """A prepared cache with one 3-frame track per ``(person, scenario)`` in ``tracks``; the
    track's boxes hold ``y = 10 * person + scenario`` to tell them apart."""
    root.mkdir(parents=True)
    np.save(root / "frames.npy", np.zeros((3 * len(tracks), 120, 160), np.uint8))
    info = [(p, d, 6, 1, 1, 3 * k, 3) for k, (p, d) in enumerate(tracks)]
    boxes = np.repeat([[10 * p + d, 5, 20, 10] for p, d in tracks], 3, axis=0).astype(np.float32)
    np.savez(root / "tracks.npz", info=np.array(info, np.int64), boxes=boxes, version=kth.CACHE_VERSION)


def _picked(ds):
    """``(person, scenario)`` of every track of a loaded split."""
    return sorted(divmod(int(boxes[0, 0]), 10) for *_, boxes, _ in ds.tracks)


def test_splits_by_subjects_leave_one_out_and_scenario(tmp_path):
    root = tmp_path / "kth"
    every = [(p, d) for p in (1, 2, 4, 7) for d in (1, 2, 3, 4)]
    write_cache(root, every)
    default = {s: make_dataset("kth", root, s) for s in ("train", "test")}  # KTH's test persons
    assert _picked(default["test"]) == [(p, d) for p in (2, 7) for d in (1, 2, 3, 4)]
    assert _picked(default["train"]) == [(p, d) for p in (1, 4) for d in (1, 2, 3, 4)]
    loso = {s: make_dataset("kth", root, s, test_subjects=(4,)) for s in ("train", "test")}
    assert _picked(loso["test"]) == [(4, d) for d in (1, 2, 3, 4)]
    assert _picked(loso["train"]) == [(p, d) for p in (1, 2, 7) for d in (1, 2, 3, 4)]
    scenario = {s: make_dataset("kth", root, s, split_by="scenario") for s in ("train", "test")}
    assert _picked(scenario["test"]) == [(p, 4) for p in (1, 2, 4, 7)]
    assert _picked(scenario["train"]) == [(p, d) for p in (1, 2, 4, 7) for d in (1, 2, 3)]
    assert scenario["train"].augment and not scenario["test"].augment
    with pytest.raises(ValueError, match="split_by one of"):
        kth.load(root, split_by="scenarios")
    with pytest.raises(ValueError, match="test_subjects only go with split_by='subjects'"):
        kth.load(root, split_by="scenario", test_subjects=(4,))
    with pytest.raises(ValueError, match=r"the test split \(test subjects \(9,\)\) of .* no track"):
        kth.load(root, "test", test_subjects=(9,))
    write_cache(root.with_name("d1"), [(1, 1), (2, 1)])
    with pytest.raises(ValueError, match=r"test scenario d4\) of .* no track"):
        kth.load(root.with_name("d1"), "test", split_by="scenario")


def test_not_prepared_message(tmp_path):
    with pytest.raises(DatasetNotPrepared) as info:
        make_dataset("kth", tmp_path / "nothing")
    msg = str(info.value)
    assert str(tmp_path / "nothing") in msg and "python data_scripts/get_kth.py --root" in msg
    assert "--dataset synthetic" in msg


# ---- downloads --------------------------------------------------------------------------

class FakeResponse(io.BytesIO):
    def __init__(self, body, status, headers, drop_after=None):
        super().__init__(body)
        self.status, self.headers, self.drop_after = status, headers, drop_after

    def read(self, n=-1):
        if self.drop_after is not None and self.tell() >= self.drop_after:
            raise ConnectionResetError("connection reset by peer")
        return super().read(n if self.drop_after is None else min(n, self.drop_after - self.tell()))


class FakeServer:
    """An opener serving ``files`` {url: bytes}, optionally ignoring Range, dropping the
    connection, announcing a wrong length, or unreachable."""

    def __init__(self, files, honour_range=True, drop_after=None, extra_length=0, down=False):
        self.files, self.honour_range, self.drop_after = files, honour_range, drop_after
        self.extra_length, self.down, self.ranges = extra_length, down, []

    def __call__(self, request, timeout=None):
        if self.down:
            raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))
        data = self.files[request.full_url]
        asked = request.get_header("Range")
        self.ranges.append(asked)
        if asked and self.honour_range:
            start = int(asked.split("=")[1].rstrip("-"))
            headers = {"Content-Length": str(len(data) - start),
                       "Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
            return FakeResponse(data[start:], 206, headers)
        return FakeResponse(data, 200, {"Content-Length": str(len(data) + self.extra_length)},
                            self.drop_after)


DATA = bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8))
URL = "https://example.org/walking.zip"


def test_fetch_resumes_after_a_dropped_connection(tmp_path):
    dest = tmp_path / "walking.zip"
    with pytest.raises(download.Unreachable, match="rerun to resume"):
        download.fetch(URL, dest, FakeServer({URL: DATA}, drop_after=1200), chunk=500,
                       progress=False)
    assert not dest.exists() and (tmp_path / "walking.zip.part").stat().st_size == 1200
    server = FakeServer({URL: DATA})
    download.fetch(URL, dest, server, chunk=700, progress=False)
    assert server.ranges == ["bytes=1200-"] and dest.read_bytes() == DATA
    assert not (tmp_path / "walking.zip.part").exists()
    download.fetch(URL, dest, FakeServer({}, down=True), progress=False)  # present: no network


def test_fetch_restarts_when_range_is_ignored_and_checks_size(tmp_path):
    dest = tmp_path / "walking.zip"
    (tmp_path / "walking.zip.part").write_bytes(DATA[:300])
    download.fetch(URL, dest, FakeServer({URL: DATA}, honour_range=False), progress=False)
    assert dest.read_bytes() == DATA  # not 300 bytes + the whole file
    dest.unlink()
    with pytest.raises(download.DownloadError, match="received 5000 of 5010 bytes; rerun"):
        download.fetch(URL, dest, FakeServer({URL: DATA}, extra_length=10), progress=False)
    assert not dest.exists()


def test_fetch_file_url_and_unreachable_message(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(DATA)
    assert download.fetch(src.as_uri(), tmp_path / "copy.bin", progress=False).read_bytes() == DATA
    with pytest.raises(download.Unreachable) as info:
        download.fetch(URL, tmp_path / "x.zip", FakeServer({}, down=True), progress=False)
    msg = download.unreachable_message(info.value, tmp_path)
    assert "name resolution" in msg and URL in msg and str(tmp_path) in msg
    assert "python -m minihart.train --dataset synthetic" in msg


def test_verify_zip_detects_corruption(tmp_path):
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("a.avi", DATA)
    download.verify_zip(path)
    raw = bytearray(path.read_bytes())
    raw[100] ^= 0xFF  # inside the stored member
    path.write_bytes(bytes(raw))
    with pytest.raises(download.DownloadError, match="corrupt.*deleted, rerun"):
        download.verify_zip(path)
    assert not path.exists()
    path.write_bytes(b"<html>not found</html>")
    with pytest.raises(download.DownloadError, match="not a readable zip"):
        download.verify_zip(path)


class MissingServer(FakeServer):
    """Serves ``files`` and answers HTTP 404 for every other address."""

    def __call__(self, request, timeout=None):
        if request.full_url not in self.files:
            raise urllib.error.HTTPError(request.full_url, 404, "Not Found", {}, None)
        return super().__call__(request, timeout)


def test_fetch_404_is_not_available(tmp_path):
    with pytest.raises(download.NotAvailable, match="HTTP error 404 Not Found") as info:
        download.fetch(URL, tmp_path / "walking.zip", MissingServer({}), progress=False)
    assert info.value.url == URL and info.value.code == 404
    assert not (tmp_path / "walking.zip").exists() and not (tmp_path / "walking.zip.part").exists()


def _video_zips(videos):
    files = {}
    for action in kth.USED_ACTIONS:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for avi in videos.glob(f"*_{action}_*.avi"):
                z.write(avi, f"{action}/{avi.name}")
        files[get_kth.VIDEOS_URL.format(action)] = buf.getvalue()
    return files


def test_get_kth_404_says_what_to_do(kth_raw, tmp_path, capsys):
    root = tmp_path / "data" / "kth"
    videos, boxes = kth_raw
    assert get_kth.main(["--root", str(root)], opener=MissingServer({})) == 1
    err = capsys.readouterr().err
    assert "HTTP error 404" in err and "--boxes-file PATH" in err and "saebrahimi/RATM" in err
    assert str(root / "raw") in err and "Traceback" not in err
    files = {get_kth.BOXES_URL: boxes.read_bytes()}  # the boxes come, the videos are gone
    assert get_kth.main(["--root", str(root)], opener=MissingServer(files)) == 1
    err = capsys.readouterr().err
    assert "walking.zip by hand from https://www.csc.kth.se/cvap/actions/" in err
    assert str(root / "raw") in err and "--boxes-file" not in err
    assert get_kth.main(["--root", str(root), "--boxes-file", str(tmp_path / "nope.txt")]) == 1
    assert f"--boxes-file {tmp_path / 'nope.txt'}: no such file" in capsys.readouterr().err


def test_get_kth_never_reuses_a_downloaded_page_that_is_not_a_boxes_file(kth_raw, tmp_path, capsys):
    root = tmp_path / "data" / "kth"
    videos, boxes = kth_raw
    page = b"<html><head><title>Moved</title></head><body>gone</body></html>\n"
    server = FakeServer({get_kth.BOXES_URL: page, **_video_zips(videos)})
    assert get_kth.main(["--root", str(root), "--keep-raw"], opener=server) == 1
    err = capsys.readouterr().err
    assert "HTML, not KTHBoundingBoxInfo.txt" in err and "--boxes-file PATH" in err
    assert "Traceback" not in err
    raw = root / "raw"
    assert not (raw / "KTHBoundingBoxInfo.txt").exists()  # never taken for the boxes file again
    assert (raw / "KTHBoundingBoxInfo.txt.invalid").read_bytes() == page  # kept to look at
    assert not (raw / "walking.zip").exists()  # stopped before the large downloads
    server.files[get_kth.BOXES_URL] = boxes.read_bytes()  # the server is fixed: the next run works
    assert get_kth.main(["--root", str(root)], opener=server) == 0
    assert make_dataset("kth", root, "train").num_windows(None) == 2
    # a bad file given with --boxes-file is the user's: reported, left where it is
    bad = tmp_path / "bad.txt"
    bad.write_text("")
    assert get_kth.main(["--root", str(tmp_path / "k2"), "--boxes-file", str(bad)]) == 1
    assert "bad.txt: no data line" in capsys.readouterr().err and bad.exists()


def test_get_kth_script_offline_and_end_to_end(kth_raw, tmp_path, capsys):
    root = tmp_path / "data" / "kth"
    assert get_kth.main(["--root", str(root)], opener=FakeServer({}, down=True)) == 2
    err = capsys.readouterr().err
    assert str(root / "raw") in err and "--dataset synthetic" in err and "Traceback" not in err
    videos, boxes = kth_raw
    files = {get_kth.BOXES_URL: boxes.read_bytes(), **_video_zips(videos)}
    assert get_kth.main(["--root", str(root)], opener=FakeServer(files)) == 0
    assert not (root / "raw").exists()
    assert make_dataset("kth", root, "train").num_windows(None) == 2
