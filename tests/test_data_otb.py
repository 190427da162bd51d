"""OTB-format sequences: img/*.jpg + groundtruth_rect.txt (comma, tab or space separated)."""
import numpy as np
import pytest

from minihart.data import make_dataset, otb


def write_otb(folder, n=5, hw=(48, 64), lines=None, ext="jpg"):
    import imageio.v3 as iio
    (folder / "img").mkdir(parents=True)
    for i in range(n):
        img = np.full((*hw, 3), 30 + 40 * i, np.uint8)
        img[:hw[0] // 2, :hw[1] // 2] = (250, 20, 20)  # red block top-left
        options = {"quality": 95} if ext == "jpg" else {}
        iio.imwrite(folder / "img" / f"{i + 1:04d}.{ext}", img, **options)
    if lines is None:
        lines = ["10,12,20,16", "11\t13\t20\t16", "12 14 21 17", "NaN,NaN,NaN,NaN",
                 "14, 16, 22, 18"][:n]  # comma, tab, space; an absent target
    (folder / "groundtruth_rect.txt").write_text("\n".join(lines) + "\n")
    return folder


def test_load_sequence_separators_absent_target_and_resize(tmp_path):
    seq = otb.load_sequence(write_otb(tmp_path / "Walker"))
    assert seq.name == "Walker" and seq.frames.shape == (5, 48, 64, 3)
    assert seq.frames.dtype == np.uint8
    np.testing.assert_array_equal(seq.boxes[0], [12, 10, 16, 20])  # x y w h -> y x h w
    np.testing.assert_array_equal(seq.boxes[2], [14, 12, 17, 21])
    np.testing.assert_array_equal(seq.presence, [1, 1, 1, 0, 1])
    np.testing.assert_array_equal(seq.boxes[3], seq.boxes[2])  # absent: previous box repeated
    assert abs(int(seq.frames[2, 40, 60, 0]) - 110) <= 3 and seq.frames[0, 5, 5, 0] > 230
    small = otb.load_sequence(tmp_path / "Walker", frame_hw=(24, 16), channels=1)
    assert small.frames.shape == (5, 24, 16, 1)
    np.testing.assert_allclose(small.scale, [0.5, 0.25, 0.5, 0.25])
    np.testing.assert_allclose(small.boxes[0], [6, 2.5, 8, 5])


def test_dataset_one_or_many_sequences(tmp_path):
    write_otb(tmp_path / "all" / "A")
    write_otb(tmp_path / "all" / "B", n=3, ext="png")
    one = make_dataset("otb", tmp_path / "all" / "A", frame_hw=(24, 32))
    assert one.num_windows(None) == 1 and one.image_hw == (24, 32)
    frames, boxes, presence = one.batches(1, None).__next__()
    assert frames.shape == (1, 5, 3, 24, 32) and frames.dtype == np.float32
    np.testing.assert_array_equal(presence, [[1, 1, 1, 0, 1]])
    np.testing.assert_allclose(boxes[0, 0], [6, 5, 8, 10])
    both = make_dataset("otb", tmp_path / "all", frame_hw=(24, 32), channels=1)
    assert both.num_windows(None) == 2 and both.channels == 1
    assert [len(b) for _, b, _ in (both.window(i, None) for i in range(2))] == [5, 3]


def test_track_without_groundtruth_and_first_frame(tmp_path):
    folder = write_otb(tmp_path / "S", n=5, lines=["1 2 3 4"] * 3)
    with pytest.raises(ValueError, match="3 boxes in groundtruth_rect.txt but 5 images"):
        otb.load_sequence(folder)
    seq = otb.load_sequence(folder, first_frame=3)
    assert len(seq.frames) == 3 and abs(int(seq.frames[0, 40, 60, 0]) - 110) <= 3
    (folder / "groundtruth_rect.txt").unlink()
    seq = otb.load_sequence(folder)
    assert seq.boxes is None and seq.presence is None and len(seq.frames) == 5
    with pytest.raises(ValueError, match="no groundtruth_rect.txt"):
        otb.load(folder)


@pytest.mark.parametrize("lines, message", [
    (["1,2,3,4", "1,2,x,4"], r"groundtruth_rect\.txt line 2: non-numeric value 'x'"),
    (["1,2,3,4", "1,2,3"], r"groundtruth_rect\.txt line 2: expected 4 numbers"),
    (["NaN,NaN,NaN,NaN", "1,2,3,4"], r"groundtruth_rect\.txt line 1: the first box must show"),
])
def test_malformed_groundtruth(tmp_path, lines, message):
    folder = write_otb(tmp_path / "S", n=2, lines=lines)
    with pytest.raises(ValueError, match=message):
        otb.load_sequence(folder)


def test_empty_and_missing_folders(tmp_path):
    (tmp_path / "E" / "img").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"E/img: empty sequence folder"):
        otb.load_sequence(tmp_path / "E")
    (tmp_path / "nothing").mkdir()
    with pytest.raises(ValueError, match="not an OTB-format sequence"):
        otb.load(tmp_path / "nothing")
    with pytest.raises(ValueError, match="missing: no such folder"):  # was a FileNotFoundError
        otb.load(tmp_path / "missing")
