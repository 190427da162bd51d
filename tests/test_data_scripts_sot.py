"""data_scripts/get_sot.py on small zips built here in the real layouts, served by a fake
opener (OTB: resume, corrupt zip, 404, several targets, boxes that start later or end early,
bad ground truth) or given by hand (GOT-10k: splits, list.txt, incomplete sequences)."""
import io
import re
import sys
import zipfile
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data_scripts"))
import get_sot  # noqa: E402
from test_data_kth import FakeServer, MissingServer  # noqa: E402


def jpeg(level):
    buf = io.BytesIO()
    Image.new("RGB", (8, 6), (level, level, level)).save(buf, "JPEG")
    return buf.getvalue()


def make_zip(files):
    """Zip bytes holding ``files`` {member name: bytes or str}."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


def otb_zip(name, n_images, gts, ext="jpg"):
    """An OTB video zip: ``name/img/0001.jpg ...`` and ground-truth files ``gts`` {file: lines}."""
    files = {f"{name}/img/{i:04d}.{ext}": jpeg(10 * i) for i in range(1, n_images + 1)}
    files.update({f"{name}/{gt}": "".join(f"{line}\n" for line in lines) for gt, lines in gts.items()})
    return make_zip(files)


def boxes(n, sep=","):
    return [sep.join(str(v) for v in (i, 2 * i, 5, 6)) for i in range(1, n + 1)]


OTB_FILES = {
    "Basketball": otb_zip("Basketball", 5, {"groundtruth_rect.txt": boxes(5)}),
    "Jogging": otb_zip("Jogging", 4, {"groundtruth_rect.1.txt": boxes(4, "\t"),
                                      "groundtruth_rect.2.txt": boxes(4, " ")}),
    "David": otb_zip("David", 6, {"groundtruth_rect.txt": boxes(3)}),  # boxes for frames 3..5
    "Diving": otb_zip("Diving", 6, {"groundtruth_rect.txt": boxes(4)}),  # boxes for frames 1..4
    "Human4": otb_zip("Human4", 3, {"groundtruth_rect.1.txt": boxes(2),  # not scored by OTB-100
                                    "groundtruth_rect.2.txt": boxes(3)}),
}


def otb_server(**kw):
    return FakeServer({get_sot.OTB_URL.format(n): data for n, data in OTB_FILES.items()}, **kw)


def read_layout(folder):
    """An OTB folder as (image names, box lines), checked to pair one to one."""
    images = sorted(p.name for p in (folder / "img").iterdir())
    lines = (folder / "groundtruth_rect.txt").read_text().splitlines()
    assert len(images) == len(lines)
    return images, lines


def test_otb_layout_targets_and_start_frames(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(get_sot.FIRST_BOX, "David", 3)  # David's real boxes start at frame 300
    root = tmp_path / "otb"
    argv = ["otb", "--root", str(root), "--split", "train", "--sequences", "basketball",
            "Jogging.1", "David", "Diving", "Human4"]
    assert get_sot.main(argv, opener=otb_server()) == 0
    out = capsys.readouterr().out
    assert sorted(p.name for p in (root / "train").iterdir()) == [
        "Basketball", "David", "Diving", "Human4.2", "Jogging.1", "Jogging.2"]
    assert not (root / "raw").exists() and not (root / "val").exists()
    images, lines = read_layout(root / "train" / "Basketball")
    assert images == [f"{i:04d}.jpg" for i in range(1, 6)] and lines == boxes(5)
    assert read_layout(root / "train" / "Jogging.1") == read_layout(root / "train" / "Jogging.2")
    assert read_layout(root / "train" / "Jogging.2")[1] == boxes(4)  # tabs, spaces -> commas
    assert read_layout(root / "train" / "David") == (["0003.jpg", "0004.jpg", "0005.jpg"], boxes(3))
    assert read_layout(root / "train" / "Diving")[0] == [f"{i:04d}.jpg" for i in range(1, 5)]
    assert "Diving: 4 boxes for 6 images; kept the annotated frames 1..4" in out
    assert "David: 3 boxes for 6 images; kept the annotated frames 3..5" in out
    assert read_layout(root / "train" / "Human4.2")[1] == boxes(3)
    with open(root / "train" / "David" / "img" / "0004.jpg", "rb") as f:
        assert Image.open(f).getpixel((0, 0))[0] == pytest.approx(40, abs=3)  # frame 4 itself
    # present sequences are used as they are: no network needed
    argv = ["otb", "--root", str(root), "--split", "train", "--sequences", "Basketball", "Jogging"]
    assert get_sot.main(argv, opener=FakeServer({}, down=True)) == 0
    assert "Basketball: already in" in capsys.readouterr().out


def test_otb_resume_corrupt_zip_404_and_offline(tmp_path, capsys):
    root = tmp_path / "otb"
    argv = ["otb", "--root", str(root), "--sequences", "Basketball"]
    assert get_sot.main(argv, opener=FakeServer({}, down=True)) == 2
    err = capsys.readouterr().err
    assert str(root / "raw") in err and get_sot.OTB_URL.format("Basketball") in err
    assert "--dataset synthetic" in err and "Traceback" not in err
    data = OTB_FILES["Basketball"]
    assert get_sot.main(argv, opener=otb_server(drop_after=len(data) // 2)) == 2
    assert (root / "raw" / "Basketball.zip.part").stat().st_size == len(data) // 2
    assert "rerun to resume" in capsys.readouterr().err
    server = otb_server()
    assert get_sot.main(argv, opener=server) == 0
    assert server.ranges == [f"bytes={len(data) // 2}-"]  # resumed, not restarted
    assert read_layout(root / "val" / "Basketball")[1] == boxes(5)
    # a corrupt zip is deleted and reported; the rerun downloads it again
    bad = bytearray(OTB_FILES["Jogging"])
    bad[60] ^= 0xFF  # inside the first image
    server = FakeServer({get_sot.OTB_URL.format("Jogging"): bytes(bad)})
    assert get_sot.main(["otb", "--root", str(root), "--sequences", "Jogging"], opener=server) == 1
    err = capsys.readouterr().err
    assert "Jogging.zip is corrupt" in err and "rerun" in err and "Traceback" not in err
    assert not (root / "raw" / "Jogging.zip").exists() and not (root / "val" / "Jogging.1").exists()
    assert get_sot.main(["otb", "--root", str(root), "--sequences", "Jogging"], opener=otb_server()) == 0
    assert (root / "val" / "Jogging.2").is_dir()
    # a 404 says where to get the file by hand; the others are still prepared
    server = MissingServer({get_sot.OTB_URL.format("Diving"): OTB_FILES["Diving"]})
    argv = ["otb", "--root", str(root), "--sequences", "Bird1", "Diving"]
    assert get_sot.main(argv, opener=server) == 1
    err = capsys.readouterr().err
    assert "Bird1: " in err and "HTTP error 404" in err and "by hand" in err
    assert f"{root / 'raw'}/ and rerun" in err and (root / "val" / "Diving").is_dir()


@pytest.mark.parametrize("gt, message", [
    (["1,2,3,4", "1,2,3"], r"Bird1\.zip: Bird1/groundtruth_rect\.txt line 2: expected 4 numbers"),
    (["1,2,3,4", "1,2,x,4"], r"Bird1/groundtruth_rect\.txt line 2: non-numeric value 'x'"),
    (["1,2,3,4"] * 4, r"groundtruth_rect\.txt has 4 boxes but img/ has only 3 images"),
    ([], r"Bird1/groundtruth_rect\.txt has no box"),
])
def test_otb_bad_ground_truth_names_zip_file_and_line(tmp_path, capsys, gt, message):
    server = FakeServer({get_sot.OTB_URL.format("Bird1"): otb_zip("Bird1", 3, {"groundtruth_rect.txt": gt})})
    root = tmp_path / "otb"
    assert get_sot.main(["otb", "--root", str(root), "--sequences", "Bird1"], opener=server) == 1
    err = capsys.readouterr().err
    assert any(re.search(message, line) for line in err.splitlines()), err
    assert not (root / "val" / "Bird1").exists()


def test_otb_nan_lines_kept_and_unknown_names(tmp_path, capsys):
    gt = ["1,2,3,4", "NaN,NaN,NaN,NaN", "2,3,4,5"]
    server = FakeServer({get_sot.OTB_URL.format("Bird1"): otb_zip("Bird1", 3, {"groundtruth_rect.txt": gt})})
    root = tmp_path / "otb"
    assert get_sot.main(["otb", "--root", str(root), "--sequences", "Bird1"], opener=server) == 0
    assert read_layout(root / "val" / "Bird1")[1] == gt  # NaN: the target is absent
    assert get_sot.main(["otb", "--root", str(root), "--sequences", "Basketbal"]) == 1
    assert "'Basketbal' is not an OTB-100 video (did you mean Basketball" in capsys.readouterr().err
    assert len(get_sot.OTB100) == 98 and len(set(get_sot.OTB100)) == 98
    assert sum(len(get_sot.otb_targets(n)) for n in get_sot.OTB100) == 100  # OTB-100's targets


# ---- GOT-10k ------------------------------------------------------------------------------

def got10k_files(prefix, split, seqs, n=3, broken=()):
    """GOT-10k members: ``prefix + GOT-10k_<Split>_00000k/00000001.jpg ...``, groundtruth.txt,
    absence.label, cover.label, meta_info.ini; sequences in ``broken`` miss a box line."""
    files = {}
    for k in seqs:
        folder = f"{prefix}GOT-10k_{split}_{k:06d}/"
        files.update({f"{folder}{i:08d}.jpg": jpeg(20 * i) for i in range(1, n + 1)})
        lines = boxes(n - (k in broken))
        files[folder + "groundtruth.txt"] = "\n".join(lines) + "\n"
        files[folder + "absence.label"] = "\n".join(["0"] * (n - 1) + ["1"]) + "\n"
        files[folder + "cover.label"] = "\n".join(["8"] * n) + "\n"
        files[folder + "meta_info.ini"] = "[METAINFO]\nobject_class: person\n"
    return files


def test_got10k_val_train_list_and_hand_placed_zips(tmp_path, capsys):
    root = tmp_path / "got10k"
    assert get_sot.main(["got10k", "--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert "sign-up" in err and str(root / "raw") in err and "--got10k-zip" in err
    val = tmp_path / "val_data.zip"
    val.write_bytes(make_zip({**got10k_files("val/", "Val", (1, 2, 3), broken=(2,)),
                              "val/list.txt": "GOT-10k_Val_000001\nGOT-10k_Val_000002\nGOT-10k_Val_000003\n"}))
    (root / "raw").mkdir(parents=True)
    (root / "raw" / "GOT-10k_Train_split_01.zip").write_bytes(make_zip(got10k_files("", "Train", (1, 2))))
    assert get_sot.main(["got10k", "--root", str(root), "--got10k-zip", str(val), "--keep-raw"]) == 1
    captured = capsys.readouterr()
    assert "GOT-10k_Val_000002/groundtruth.txt: 2 boxes but 3 images" in captured.err
    seq = root / "val" / "GOT-10k_Val_000001"
    assert sorted(p.name for p in seq.iterdir()) == ["00000001.jpg", "00000002.jpg", "00000003.jpg",
                                                     "absence.label", "cover.label", "groundtruth.txt",
                                                     "meta_info.ini"]
    assert (seq / "absence.label").read_text().split() == ["0", "0", "1"]
    assert (root / "val" / "list.txt").read_text().split() == ["GOT-10k_Val_000001", "GOT-10k_Val_000003"]
    assert not (root / "train").exists()  # only val unless asked
    assert val.exists() and (root / "raw").exists()
    argv = ["got10k", "--root", str(root), "--splits", "train", "val", "--got10k-zip", str(val)]
    val.write_bytes(make_zip(got10k_files("val/", "Val", (1, 2, 3))))  # fixed
    assert get_sot.main(argv) == 0
    assert (root / "val" / "list.txt").read_text().split() == [f"GOT-10k_Val_{k:06d}" for k in (1, 2, 3)]
    assert (root / "train" / "list.txt").read_text().split() == ["GOT-10k_Train_000001", "GOT-10k_Train_000002"]
    assert (root / "train" / "GOT-10k_Train_000002" / "00000003.jpg").read_bytes() == jpeg(60)
    assert not (root / "raw").exists() and val.exists()  # the user's own zip is never deleted


def test_got10k_corrupt_and_foreign_zips_are_named(tmp_path, capsys):
    root = tmp_path / "got10k"
    val = tmp_path / "val_data.zip"
    val.write_bytes(make_zip(got10k_files("val/", "Val", (1,))))
    bad = bytearray(val.read_bytes())
    bad[60] ^= 0xFF
    val.write_bytes(bytes(bad))
    assert get_sot.main(["got10k", "--root", str(root), "--got10k-zip", str(val)]) == 1
    err = capsys.readouterr().err
    assert "val_data.zip is corrupt" in err and "download it again" in err and val.exists()
    other = tmp_path / "full_data.zip"
    other.write_bytes(make_zip({"full_data/val_data.zip": b"...", "README.txt": "hi"}))
    assert get_sot.main(["got10k", "--root", str(root), "--got10k-zip", str(other)]) == 1
    err = capsys.readouterr().err
    assert "full_data.zip: no GOT-10k sequence" in err and "unpack it and pass those" in err
    assert get_sot.main(["got10k", "--root", str(root), "--got10k-zip", str(tmp_path / "no.zip")]) == 1
    assert f"--got10k-zip {tmp_path / 'no.zip'}: no such file" in capsys.readouterr().err
