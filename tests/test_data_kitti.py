"""KITTI: a tiny tracking set in the real layout (PNG frames, label_02 files) prepared and
loaded by the code users run; filters, re-appearing objects, per-axis box scaling, splits,
malformed input (duplicated track lines included), and the get_kitti.py script (404 too)."""
import io
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from minihart.data import DatasetNotPrepared, kitti, make_dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data_scripts"))
import get_kitti  # noqa: E402
from test_data_kth import FakeServer, MissingServer  # noqa: E402


def _label(frame, track, cls, trunc, occ, x1, y1, x2, y2):
    return (f"{frame} {track} {cls} {trunc} {occ} -1.5 {x1} {y1} {x2} {y2} "
            "1.5 1.6 3.9 1.0 1.7 20.0 -1.6")


def _level(seq, i):
    return 10 + 20 * i + 5 * seq


def write_sequence(base, seq, n, hw, lines):
    import imageio.v3 as iio
    folder = base / "training" / "image_02" / f"{seq:04d}"
    folder.mkdir(parents=True)
    for i in range(n):
        img = np.full((*hw, 3), _level(seq, i), np.uint8)
        img[..., 1] //= 2  # colour: green at half the level
        img[:hw[0] // 2, :hw[1] // 4] = 255  # a white block top-left
        iio.imwrite(folder / f"{i:06d}.png", img)
    labels = base / "training" / "label_02"
    labels.mkdir(parents=True, exist_ok=True)
    (labels / f"{seq:04d}.txt").write_text("\n".join(lines) + "\n")


SEQ0 = ([_label(i, 0, "Car", 0, 0, 10 + i, 5, 30 + i, 25) for i in range(10)]
        + [_label(i, 1, "Pedestrian", 0, 2 if i in (4, 5) else 1, 60, 8, 70, 30) for i in range(10)]
        + [_label(i, 2, "Cyclist", 1, 0, 80, 10, 90, 30) for i in (1, 2, 3, 6, 7, 8)]
        + [_label(i, -1, "DontCare", -1, -1, 0, 0, 5, 5) for i in range(10)]
        + [_label(i, 3, "Van", 2, 0, 40, 10, 60, 30) for i in range(10)])
SEQ1 = [_label(i, 0, "Car", 0, 0, 10, 5, 30, 25) for i in range(8)]


@pytest.fixture
def kitti_raw(tmp_path):
    base = tmp_path / "raw"
    write_sequence(base, 0, 10, (40, 124), SEQ0)
    write_sequence(base, 1, 8, (38, 120), SEQ1)
    return base


def test_dontcare_regions_share_an_id_and_are_no_duplicates(tmp_path):
    path = tmp_path / "0000.txt"
    path.write_text("\n".join([_label(0, -1, "DontCare", -1, -1, 0, 0, 5, 5),
                               _label(0, -1, "DontCare", -1, -1, 9, 9, 15, 15),
                               _label(0, 0, "Car", 0, 0, 10, 5, 30, 25),
                               _label(1, 0, "Car", 0, 0, 11, 5, 31, 25)]) + "\n")
    assert [lab.track for lab in kitti.parse_labels(path)] == [-1, -1, 0, 0]


def test_tracks_filter_dontcare_occlusion_truncation_and_split_on_reappear(kitti_raw):
    labels = kitti.parse_labels(kitti_raw / "training" / "label_02" / "0000.txt")
    assert len(labels) == 46 and labels[0].cls == "Car" and labels[0].xyxy == (10, 5, 30, 25)
    tracks = kitti.tracks_from_labels(labels)
    spans = sorted((first, len(xyxy)) for first, xyxy in tracks)
    # car 0-9; pedestrian 0-3 and 6-9 (occluded at 4, 5); cyclist 1-3 and 6-8; no DontCare/Van
    assert spans == [(0, 4), (0, 10), (1, 3), (6, 3), (6, 4)]
    loose = kitti.tracks_from_labels(labels, max_truncation=2, max_occlusion=3)
    assert sorted((f, len(x)) for f, x in loose) == [(0, 10), (0, 10), (0, 10), (1, 3), (6, 3)]


def test_prepare_and_load_scale_boxes_per_axis(kitti_raw, tmp_path):
    root = tmp_path / "kitti"
    summary = kitti.prepare(kitti_raw, root, frame_hw=(20, 62), progress=False)
    assert summary == {"sequences": 2, "frames": 18}
    ds = make_dataset("kitti", root, "train", overlap=0.0)
    assert ds.image_hw == (20, 62) and ds.channels == 3 and ds.augment
    whole = [ds.window(i, None) for i in range(ds.num_windows(None))]
    lengths = sorted(len(b) for _, b, _ in whole)
    assert lengths == [2, 2, 3, 4, 6, 8]  # cut at frame 8 (seq 0) and 6 (seq 1)
    car0 = max(whole, key=lambda w: len(w[1]))
    np.testing.assert_allclose(car0[1][0], [5 * 0.5, 10 * 0.5, 20 * 0.5, 20 * 0.5])
    np.testing.assert_allclose(car0[1][3], [2.5, 6.5, 10, 10])
    car1 = [w for w in whole if len(w[1]) == 6][0]
    sy, sx = 20 / 38, 62 / 120
    np.testing.assert_allclose(car1[1][0], [5 * sy, 10 * sx, 20 * sy, 20 * sx], rtol=1e-6)
    frames = car0[0]
    assert frames.shape == (8, 3, 20, 62) and frames.dtype == np.float32
    levels = np.array([_level(0, i) for i in range(8)])
    np.testing.assert_allclose(frames[:, 0, 15, 40] * 255, levels, atol=1)
    np.testing.assert_allclose(frames[:, 1, 15, 40] * 255, levels // 2, atol=1)
    assert (frames[:, :, 2, 3] > 0.99).all()  # the white block stays top-left
    test = make_dataset("kitti", root, "test")
    assert [w[2] for w in test.windows(None)] == [2, 2, 2]  # lengths
    grey = make_dataset("kitti", root, "test", channels=1)
    assert grey.batch(np.random.default_rng(0), 2, 3)[0].shape == (2, 3, 1, 20, 62)


def test_split_by_sequence_and_windows(kitti_raw, tmp_path):
    root = tmp_path / "kitti"
    kitti.prepare(kitti_raw, root, frame_hw=(20, 62), progress=False)
    train = kitti.load(root, "train", split_by="sequence", train_fraction=0.5)
    test = kitti.load(root, "test", split_by="sequence", train_fraction=0.5)
    assert train.num_windows(None) == 5 and test.num_windows(None) == 1
    assert test.window(0, None)[0].shape[0] == 8
    f, b, p = test.batch(np.random.default_rng(0), 3, 5)
    assert f.shape == (3, 5, 3, 20, 62) and b.shape == (3, 5, 4) and p.shape == (3, 5)
    assert test.windows(5) == [(0, 0, 5), (0, 3, 5)]  # overlap 0.5: int(2.5) frames shared
    with pytest.raises(ValueError, match="split_by"):
        kitti.load(root, "train", split_by="object")


@pytest.mark.parametrize("breakage, message", [
    ("columns", r"0000\.txt line 3: expected 17 columns .* got 16"),
    ("number", r"0000\.txt line 3: non-numeric value 'left'"),
    ("inverted", r"0000\.txt line 47: bbox right < left or bottom < top"),
    ("duplicate", r"0000\.txt line 47: track 1 has a second line for frame 5 \(the first is line 16\)"),
    ("label_frame", r"0000\.txt line 47: frame 12 has no image .*000012\.png"),
    ("gap", r"0000: missing frame image 000004\.png"),
    ("empty", r"0001: empty sequence folder"),
])
def test_malformed_input_names_file_and_line(kitti_raw, tmp_path, breakage, message):
    labels = kitti_raw / "training" / "label_02" / "0000.txt"
    lines = labels.read_text().splitlines()
    if breakage == "columns":
        lines[2] = lines[2].rsplit(" ", 1)[0]
    elif breakage == "number":
        lines[2] = lines[2].replace(" 12 ", " left ", 1)  # x1 of the car in frame 2
    elif breakage == "inverted":  # x2 < x1: a negative width, parsed silently before
        lines.append(_label(1, 7, "Car", 0, 0, 30, 1, 20, 9))
    elif breakage == "duplicate":  # split the pedestrian's track at frame 5 silently before
        lines.append(_label(5, 1, "Pedestrian", 0, 0, 61, 8, 71, 30))
    elif breakage == "label_frame":
        lines.append(_label(12, 0, "Car", 0, 0, 1, 1, 9, 9))
    elif breakage == "gap":
        (kitti_raw / "training" / "image_02" / "0000" / "000004.png").unlink()
    else:
        for png in (kitti_raw / "training" / "image_02" / "0001").glob("*.png"):
            png.unlink()
    labels.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=message):
        kitti.prepare(kitti_raw, tmp_path / "out", frame_hw=(20, 62), progress=False)
    assert not (tmp_path / "out" / "meta.json").exists()


def test_get_kitti_404_says_register_and_download_by_hand(tmp_path, capsys):
    root = tmp_path / "data" / "kitti"
    assert get_kitti.main(["--root", str(root)], opener=MissingServer({})) == 1
    err = capsys.readouterr().err
    assert "HTTP error 404" in err and "register at https://www.cvlibs.net/" in err
    assert "data_tracking_image_2.zip" in err and f"{root / 'raw'}/\nand rerun" in err
    assert "Traceback" not in err


def test_not_prepared_and_get_kitti_script(kitti_raw, tmp_path, capsys):
    root = tmp_path / "data" / "kitti"
    with pytest.raises(DatasetNotPrepared, match="get_kitti.py --root"):
        kitti.load(root)
    assert get_kitti.main(["--root", str(root)], opener=FakeServer({}, down=True)) == 2
    err = capsys.readouterr().err
    assert "data_tracking_label_2.zip" in err and "--dataset synthetic" in err
    files = {}
    for name, sub in zip(get_kitti.ZIPS, ("label_02", "image_02")):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for path in (kitti_raw / "training" / sub).rglob("*.*"):
                z.write(path, path.relative_to(kitti_raw).as_posix())
            z.writestr("testing/image_02/0000/000000.png", b"unused")
        files[get_kitti.URL.format(name)] = buf.getvalue()
    argv = ["--root", str(root), "--size", "20", "62"]
    assert get_kitti.main(argv, opener=FakeServer(files)) == 0
    assert not (root / "raw").exists()
    assert kitti.load(root, "train").num_windows(None) == 6
