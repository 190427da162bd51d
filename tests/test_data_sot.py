"""Real tracking sequences (minihart/data/sot.py): OTB, GOT-10k and LaSOT folders, absent
targets, splits, resizing, the frame cache, augmentation and bad input."""
import csv
import json
import os

import numpy as np
import pytest

from minihart.data import make_dataset, sot


def _image(hw, i, box=None):
    """A frame of grey level 20 + 10 i with a bright square where ``box`` ([y, x, h, w]) is."""
    img = np.full((*hw, 3), 20 + 10 * i, np.uint8)
    if box is not None:
        y, x, h, w = (int(round(v)) for v in box)
        img[y:y + h, x:x + w] = (250, 240, 10)
    return img


def _write_images(folder, n, hw=(40, 60), boxes=None, ext="png", first=1, digits=4):
    import imageio.v3 as iio
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        iio.imwrite(folder / f"{i + first:0{digits}d}.{ext}", _image(hw, i, None if boxes is None else boxes[i]))


def otb_seq(folder, lines, hw=(40, 60), n=None):
    _write_images(folder / "img", len(lines) if n is None else n, hw)
    (folder / "groundtruth_rect.txt").write_text("\n".join(lines) + "\n")
    return folder


def got10k_seq(folder, lines, absent, hw=(40, 60)):
    _write_images(folder, len(lines), hw, digits=8, ext="jpg")
    (folder / "groundtruth.txt").write_text("\n".join(lines) + "\n")
    (folder / "absence.label").write_text("\n".join(str(a) for a in absent) + "\n")
    return folder


def lasot_seq(folder, lines, occlusion, out_of_view, hw=(40, 60)):
    _write_images(folder / "img", len(lines), hw, digits=8, ext="jpg")
    (folder / "groundtruth.txt").write_text("\n".join(lines) + "\n")
    (folder / "full_occlusion.txt").write_text(",".join(str(a) for a in occlusion))
    (folder / "out_of_view.txt").write_text(",".join(str(a) for a in out_of_view))
    return folder


LINES = ["10,12,20,16", "11\t13\t20\t16", "12 14 21 17", "NaN,NaN,NaN,NaN", "14, 16, 22, 18"]


def test_otb_separators_and_an_absent_target(tmp_path):
    info = sot.read_sequence(otb_seq(tmp_path / "Walker", LINES))
    assert info.format == "otb" and info.name == "Walker" and len(info.images) == 5
    assert info.image_hw == (40, 60)
    np.testing.assert_array_equal(info.boxes[0], [12, 10, 16, 20])  # x y w h -> y x h w
    np.testing.assert_array_equal(info.presence, [1, 1, 1, 0, 1])
    np.testing.assert_array_equal(info.boxes[3], info.boxes[2])  # absent: the previous box


def test_got10k_absence_label_masks_frames(tmp_path):
    lines = ["5,6,10,12", "6,7,10,12", "0,0,0,0", "8,9,10,12"]
    info = sot.read_sequence(got10k_seq(tmp_path / "GOT-10k_Val_000001", lines, [0, 1, 1, 0]))
    assert info.format == "got10k" and len(info.images) == 4
    np.testing.assert_array_equal(info.presence, [1, 0, 0, 1])
    np.testing.assert_array_equal(info.boxes[2], info.boxes[1])
    np.testing.assert_array_equal(info.boxes[3], [9, 8, 12, 10])


def test_lasot_occlusion_and_out_of_view_mask_frames(tmp_path):
    lines = ["5,6,10,12"] * 5
    info = sot.read_sequence(lasot_seq(tmp_path / "cat-3", lines, [0, 0, 1, 0, 0], [0, 0, 0, 0, 1]))
    assert info.format == "lasot"
    np.testing.assert_array_equal(info.presence, [1, 1, 0, 1, 0])


def test_leading_absent_frames_take_the_first_visible_box(tmp_path):
    info = sot.read_sequence(otb_seq(tmp_path / "S", ["NaN,NaN,NaN,NaN", "0,0,0,0", "3,4,5,6", "4,4,5,6"]))
    np.testing.assert_array_equal(info.presence, [0, 0, 1, 1])
    np.testing.assert_array_equal(info.boxes[0], [4, 3, 6, 5])


def test_find_sequences_splits_lists_and_class_folders(tmp_path):
    root = tmp_path / "set"
    otb_seq(root / "train" / "B", LINES)
    lasot_seq(root / "train" / "cat" / "cat-1", ["5,6,10,12"] * 3, [0] * 3, [0] * 3)
    got10k_seq(root / "train" / "A", ["5,6,10,12"] * 3, [0] * 3)
    otb_seq(root / "val" / "C", LINES)
    names = [p.name for p in sot.find_sequences(sot.split_folder(root, "train"))]
    assert names == ["A", "B", "cat-1"]
    assert sot.split_folder(root, "test") == root / "val"  # val and test stand in for each other
    (root / "train" / "list.txt").write_text("cat/cat-1\nA\n")  # GOT-10k style list: its order
    assert [p.name for p in sot.find_sequences(root / "train")] == ["cat-1", "A"]
    (root / "train" / "list.txt").write_text("A\nZ\n")
    with pytest.raises(ValueError, match="list.txt: 1 listed sequences are missing"):
        sot.find_sequences(root / "train")
    assert sot.find_sequences(root / "val" / "C") == [root / "val" / "C"]  # one sequence
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty: no tracking sequences found"):
        sot.find_sequences(tmp_path / "empty")
    with pytest.raises(ValueError, match="no such folder"):
        sot.find_sequences(tmp_path / "nowhere")


@pytest.mark.parametrize("case, message", [
    ("short line", r"groundtruth_rect.txt line 2: expected 4 numbers"),
    ("word", r"groundtruth_rect.txt line 3: non-numeric value 'abc'"),
    ("fewer images", r"5 boxes but 4 images"),
    ("more images", r"5 boxes but 6 images"),
    ("no target", r"no box shows the target"),
    ("one frame", r"at least 2 frames"),
])
def test_malformed_sequences_are_named_with_file_and_line(tmp_path, case, message):
    lines = list(LINES)
    n = None
    if case == "short line":
        lines[1] = "1,2,3"
    elif case == "word":
        lines[2] = "1,2,abc,4"
    elif case == "fewer images":
        n = 4
    elif case == "more images":
        n = 6
    elif case == "no target":
        lines = ["NaN,NaN,NaN,NaN"] * 3
    elif case == "one frame":
        lines = lines[:1]
    folder = otb_seq(tmp_path / "S", lines, n=n)
    with pytest.raises(ValueError, match=message):
        sot.read_sequence(folder)


def test_bad_flags_and_images_are_named(tmp_path):
    folder = got10k_seq(tmp_path / "G", ["5,6,10,12"] * 3, [0, 2, 0])
    with pytest.raises(ValueError, match=r"absence.label line 2: expected 0 or 1, got '2'"):
        sot.read_sequence(folder)
    (folder / "absence.label").write_text("0\n0\n")
    with pytest.raises(ValueError, match=r"absence.label: 2 flags for 3 boxes"):
        sot.read_sequence(folder)
    seq = otb_seq(tmp_path / "S", LINES)
    (seq / "img" / "0003.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"cannot read image .*0003.png"):
        sot.load(seq, frame_hw=(20, 30), cache=False)
    seq2 = otb_seq(tmp_path / "T", LINES)
    _write_images(seq2 / "img", 1, hw=(44, 60), first=4)  # image 4 changes size
    for hw in (None, (20, 30)):  # resizing would hide it: still named
        with pytest.raises(ValueError, match=r"0004.png: size \(44, 60\) differs"):
            sot.load(seq2, frame_hw=hw, cache=False)


def test_load_resizes_scales_boxes_and_reuses_its_cache(tmp_path, monkeypatch):
    root = tmp_path / "set"
    otb_seq(root / "train" / "A", LINES)
    otb_seq(root / "train" / "B", ["2,3,10,8"] * 3, hw=(30, 80))  # another size: resized to one
    monkeypatch.setenv("MINIHART_CACHE", str(tmp_path / "cache"))
    ds = make_dataset("sot", root, "train", frame_hw=(20, 30), channels=1)
    assert ds.image_hw == (20, 30) and [s.name for s in ds.sequences] == ["A", "B"]
    np.testing.assert_allclose(ds.scales[1], [20 / 30, 30 / 80] * 2)
    np.testing.assert_allclose(ds.tracks[0][2][0], [12 * 0.5, 10 * 0.5, 16 * 0.5, 20 * 0.5])
    cached = sorted(os.listdir(tmp_path / "cache"))
    assert len(cached) == 2 and all(c.endswith(".npy") for c in cached)
    # a second load reads the cache (memory-mapped), not the images
    monkeypatch.setattr(sot, "read_image", lambda *a, **k: pytest.fail("read an image despite the cache"))
    again = make_dataset("sot", root, "train", frame_hw=(20, 30), channels=1)
    assert isinstance(again.videos[0], np.memmap)
    np.testing.assert_array_equal(again.videos[0], ds.videos[0])
    frames, boxes, presence = again.batches(2, None).__next__()
    assert frames.shape == (2, 5, 1, 20, 30) and frames.dtype == np.float32
    np.testing.assert_array_equal(presence, [[1, 1, 1, 0, 1], [1, 1, 1, 0, 0]])  # B padded


def test_a_sequence_shorter_than_T_gives_a_padded_window(tmp_path):
    ds = sot.load(otb_seq(tmp_path / "S", LINES), frame_hw=(20, 30), cache=False)
    frames, boxes, presence = ds.batch(np.random.default_rng(0), 2, 12)
    assert frames.shape[:2] == (2, 12) and presence[:, 5:].sum() == 0


def test_augmentation_moves_boxes_with_the_pixels(tmp_path):
    """Zoom, shift, stride, reversal and mirroring: in every augmented window the bright square
    is where its box says (mean inside the box bright, the border outside dark)."""
    n, hw = 24, (48, 64)
    rng = np.random.default_rng(1)
    boxes = [[10 + i * 0.5, 12 + i, 10, 12] for i in range(n)]
    folder = tmp_path / "S" / "img"
    _write_images(folder, n, hw, boxes=boxes)
    (tmp_path / "S" / "groundtruth_rect.txt").write_text(
        "\n".join(f"{b[1]},{b[0]},{b[3]},{b[2]}" for b in boxes) + "\n")
    ds = sot.load(tmp_path / "S", frame_hw=hw, cache=False, augment=True, max_stride=3, max_zoom=2.0)
    seen_zoom = False
    for _ in range(12):
        frames, bxs, pres = ds.batch(rng, 1, 6)
        for t in range(frames.shape[1]):
            y, x, h, w = bxs[0, t]
            seen_zoom |= h > 11
            img = frames[0, t, 0]
            inner = img[int(np.ceil(y + 1)):int(y + h - 1), int(np.ceil(x + 1)):int(x + w - 1)]
            assert inner.size and inner.mean() > 0.8, (t, bxs[0, t])
    assert seen_zoom


def test_stretch_changes_the_aspect_ratio_with_the_pixels():
    """--stretch: one axis, either one, zoomed by up to S more than the other; the bright block
    is resampled to exactly where its box says, a box that nearly fills the frame stays in it, and
    S = 1 is the plain zoom, the same in both axes."""
    H, W = 60, 80
    box = np.array([[20.0, 30.0, 12.0, 16.0]], np.float32)
    img = np.zeros((H, W), np.uint8)
    img[20:32, 30:46] = 255
    ratios = []
    for seed in range(200):
        rows, cols, b = sot.zoom_shift(box, np.ones(1), np.random.default_rng(seed), (H, W), 1.0, 2.0)
        out = img[np.ix_(rows, cols)]
        ys, xs = np.flatnonzero(out.any(1)), np.flatnonzero(out.any(0))
        y, x, h, w = b[0]
        assert abs(ys[0] - y) <= 1 and abs(ys[-1] + 1 - (y + h)) <= 1, (seed, b)
        assert abs(xs[0] - x) <= 1 and abs(xs[-1] + 1 - (x + w)) <= 1, (seed, b)
        ratios.append((h / 12, w / 16))
    ry, rx = np.array(ratios).T
    assert np.all((ry == 1) | (rx == 1)) and ry.max() <= 2 + 1e-5 and rx.max() <= 2 + 1e-5
    r = np.maximum(ry, rx)  # log-uniform in [1, 2], each axis about half the time
    assert 70 < (ry > 1).sum() < 130 and 70 < (rx > 1).sum() < 130
    assert 70 < (r < 2 ** 0.5).sum() < 130 and (r < 1.1).sum() > 10 and (r > 1.9).sum() > 10
    tall = np.array([[2.0, 30.0, 55.0, 16.0]], np.float32)  # fits 60 / 55 = 1.09 times at most in y
    for seed in range(50):
        _, _, b = sot.zoom_shift(tall, np.ones(1), np.random.default_rng(seed), (H, W), 1.0, 2.0)
        assert b[0, 0] >= -1e-4 and b[0, 0] + b[0, 2] <= H + 1e-4 and b[0, 2] <= 60 + 1e-4
    for seed in range(20):  # S = 1: the zoom alone, the same in both axes
        _, _, b = sot.zoom_shift(box, np.ones(1), np.random.default_rng(seed), (H, W), 1.5, 1.0)
        assert b[0, 2] / 12 == pytest.approx(b[0, 3] / 16) and b[0, 2] > 12
    with pytest.raises(ValueError, match="stretch must be >= 1"):
        sot.SOTSet("sot", [], [], 1, [], [], stretch=0.5)


def test_zoom_drift_grows_or_shrinks_the_target_along_the_window(monkeypatch):
    """--zoom-drift D: a standing bright block is resampled to exactly where each frame's box says; its
    size changes log-linearly from the first frame to the last, by 1 to D times per 50 frames (per the
    window's 8 steps here, DRIFT_FRAMES patched), growing in about half
    the windows and shrinking in the others; the boxes stay in the frame, and D with --stretch is refused."""
    H, W, L = 60, 80, 9
    boxes = np.tile(np.array([[20.0, 30.0, 12.0, 16.0]], np.float32), (L, 1))
    img = np.zeros((H, W), np.uint8)
    img[20:32, 30:46] = 255
    ratios = []
    monkeypatch.setattr(sot, "DRIFT_FRAMES", L - 1)
    for seed in range(100):
        rows, cols, b = sot.drifting_zoom(boxes, np.ones(L), np.random.default_rng(seed), (H, W), 1.5, 2.0)
        assert rows.shape == (L, H) and cols.shape == (L, W) and b.shape == (L, 4)
        for t in range(L):
            out = img[np.ix_(rows[t], cols[t])]
            ys, xs = np.flatnonzero(out.any(1)), np.flatnonzero(out.any(0))
            y, x, h, w = b[t]
            assert abs(ys[0] - y) <= 1 and abs(ys[-1] + 1 - (y + h)) <= 1, (seed, t, b[t])
            assert abs(xs[0] - x) <= 1 and abs(xs[-1] + 1 - (x + w)) <= 1, (seed, t, b[t])
            assert y >= -1e-4 and x >= -1e-4 and y + h <= H + 1e-4 and x + w <= W + 1e-4
        z = b[:, 2] / 12
        assert np.all(z >= 1 - 1e-5) and np.allclose(b[:, 3] / 16, z, rtol=1e-5)
        assert np.allclose(np.diff(np.log(z)), np.log(z[-1] / z[0]) / (L - 1), atol=1e-5)  # log-linear in time
        ratios.append(z[-1] / z[0])
    r = np.array(ratios)
    assert np.all((r >= 0.5 - 1e-5) & (r <= 2 + 1e-5)) and 30 < (r > 1).sum() < 70
    assert (np.abs(np.log(r)) > np.log(1.5)).sum() > 10
    monkeypatch.undo()  # 50 frames: a window of 9 frames changes by up to 2 ** (8 / 50)
    b = sot.drifting_zoom(boxes, np.ones(L), np.random.default_rng(0), (H, W), 1.5, 2.0)[2]
    assert 1 <= max(b[-1, 2] / b[0, 2], b[0, 2] / b[-1, 2]) <= 2 ** (8 / 50) + 1e-5
    frames = np.zeros((1, 2 * L, H, W, 3), np.uint8)
    tracks = [(0, 0, np.tile(boxes[:1], (2 * L, 1)), np.ones(2 * L, np.float32))]
    frames[0, :, 20:32, 30:46] = 255
    ds = sot.SOTSet("sot", [frames[0]], tracks, 3, [], [], augment=True, max_stride=1, zoom_drift=2.0)
    for seed in range(5):  # through the window's gather, a crop per frame
        f, b, p = ds.augmented_window(0, L, np.random.default_rng(seed))
        assert f.shape == (L, H, W, 3) and b.shape == (L, 4) and p.shape == (L,)
        for t in (0, L - 1):
            ys, xs = np.flatnonzero(f[t, ..., 0].any(1)), np.flatnonzero(f[t, ..., 0].any(0))
            assert abs(ys[-1] + 1 - ys[0] - b[t, 2]) <= 1 and abs(xs[-1] + 1 - xs[0] - b[t, 3]) <= 1
    for bad in (dict(zoom_drift=0.5), dict(zoom_drift=1.5, stretch=1.5)):
        with pytest.raises(ValueError, match="zoom_drift must be >= 1 and is not combined with stretch"):
            sot.SOTSet("sot", [], [], 1, [], [], **bad)


def test_photo_changes_the_light_and_keeps_the_window():
    """--photo: the same window as without it (boxes, presence, and the frames' pixels in the same
    order within each frame, every channel alike), each frame's values mapped by one increasing
    curve; the contrast varies either way, the brightness drifts linearly along the window by at
    most S/4 of the range, and S outside [0, 1] is refused."""
    n, hw = 10, (24, 32)
    frames = np.broadcast_to((np.arange(hw[1], dtype=np.uint8) * 8)[None, None, :, None], (n, *hw, 3)).copy()
    frames[:, :, :, 1] = frames[:, :, :, 0] // 2  # the channels differ
    boxes = np.array([[8, 10 + i, 6, 6] for i in range(n)], np.float32)
    tracks = [(0, 0, boxes, np.ones(n, np.float32))]

    def window(photo, seed):
        ds = sot.SOTSet("sot", [frames], tracks, 3, [], [], augment=True, photo=photo)
        return ds.augmented_window(0, n, np.random.default_rng(seed))

    def mid(f):  # away from clipping at either end
        return f[:, :, 8:24, 0].astype(float)

    spreads, drifts = [], []
    for seed in range(100):
        plain, b0, p0 = window(0.0, seed)
        lit, b1, p1 = window(0.4, seed)
        assert np.array_equal(b0, b1) and np.array_equal(p0, p1) and lit.dtype == np.uint8
        for t in range(len(plain)):
            x, y = plain[t].ravel().astype(int), lit[t].ravel().astype(int)
            order = np.argsort(x, kind="stable")
            assert np.all(np.diff(y[order]) >= 0), (seed, t)  # one increasing curve
            for v in np.unique(x):  # the same value gives the same value, in every channel
                assert np.ptp(y[x == v]) == 0, (seed, t, v)
        spreads.append(mid(lit[:1]).std() / mid(plain[:1]).std())
        drifts.append(np.diff([mid(lit[t:t + 1]).mean() - mid(plain[t:t + 1]).mean() for t in range(len(lit))]))
    spreads = np.array(spreads)
    assert spreads.min() < 0.8 and spreads.max() > 1.25 and 0.3 < spreads.min() and spreads.max() < 3
    steps = np.array([d.mean() for d in drifts]) * (len(plain) - 1) / 255  # the drift over the window
    assert np.all(np.abs(steps) <= 0.1 + 0.02) and (steps > 0.05).any() and (steps < -0.05).any()
    assert max(np.ptp(d) for d in drifts) < 3  # linear along the window, up to rounding and the curve
    flat = np.full((n, *hw, 3), 128, np.uint8)  # no contrast to change: the gamma and the brightness alone
    ds = sot.SOTSet("sot", [flat], tracks, 3, [], [], augment=True, photo=0.4)
    first = np.array([ds.augmented_window(0, n, np.random.default_rng(seed))[0][0, 0, 0, 0] for seed in range(200)])
    lo, hi = (128 / 255) ** np.exp([0.4, -0.4]) * 255 + np.array([-0.1, 0.1]) * 255  # b0 within S/4 of the range
    assert lo - 1 <= first.min() < lo + 15 and hi - 15 < first.max() <= hi + 1, (first.min(), first.max(), lo, hi)
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="photo must be in"):
            sot.SOTSet("sot", [], [], 1, [], [], photo=bad)


def test_feathered_mask():
    """1 on the box and within 0.05 of its size outside it, linear down to 0 at 0.3 of its size,
    0 where the target is absent."""
    m = sot.feathered_mask(np.array([[10, 20, 10, 20], [10, 20, 10, 20]], np.float32), np.array([1, 0]), (40, 60))
    assert m.shape == (2, 40, 60) and m.dtype == np.float32 and not m[1].any()
    assert m[0, 10:20, 20:40].min() == 1 and m[0, 9, 30] == pytest.approx(1.0)  # 0.05 of h = 0.5 px out
    assert m[0, 8, 30] == pytest.approx((0.3 - 0.15) / 0.25)  # row 8's centre is 1.5 px = 0.15 h above
    assert m[0, 20, 30] == pytest.approx((0.3 - 0.05) / 0.25) and m[0, 21, 30] == pytest.approx(0.6)
    assert not m[0, :7].any() and not m[0, 23:].any() and not m[0, :, :14].any() and not m[0, :, 46:].any()


def _two_scenes(mix, n=12, hw=(48, 64)):
    """Track 0: a white square moving over black, absent in frame 6; track 1: grey 100 everywhere."""
    a = np.zeros((n, *hw, 3), np.uint8)
    boxes = np.array([[10 + i, 12 + 2 * i, 12, 10] for i in range(n)], np.float32)
    for i, (y, x, h, w) in enumerate(boxes.astype(int)):
        a[i, y:y + h, x:x + w] = 255
    presence = np.ones(n, np.float32)
    presence[6] = 0
    a[6] = 0
    b = np.full((n, *hw, 3), 100, np.uint8)
    tracks = [(0, 0, boxes, presence), (1, 0, boxes[::-1].copy(), np.ones(n, np.float32))]
    return sot.SOTSet("sot", [a, b], tracks, 3, [], [], augment=True, box_jitter=1.6, mix=mix)


def test_scene_mixing_lays_the_target_over_another_sequence():
    """With --mix 1 every window of track 0 shows its white target where its boxes say (the first
    box is jittered; the cut-out follows the true one) over track 1's grey scene, which fills every
    pixel far from the box and the whole frame where the target is absent; --mix 0 never mixes,
    and 0.5 mixes about half the windows."""
    rng = np.random.default_rng(0)
    ds = _two_scenes(1.0)
    mine = [i for i, (k, _, _) in enumerate(ds.windows(8)) if k == 0]
    for _ in range(20):
        frames, boxes, presence = ds.augmented_window(int(rng.choice(mine)), 8, rng)
        assert frames.dtype == np.uint8 and frames.shape[1:] == (48, 64, 3)
        for t in range(len(frames)):
            if not presence[t]:
                assert (frames[t] == 100).all()
                continue
            # white kept whole by the true boxes (never the jittered first one): no white-grey blend
            assert not ((frames[t] > 100) & (frames[t] < 255)).any(), t
            if t == 0:
                continue
            y, x, h, w = boxes[t]
            inside = frames[t, int(np.ceil(y + 1)):int(y + h - 1), int(np.ceil(x + 1)):int(x + w - 1)]
            assert inside.size and inside.min() == 255, (t, boxes[t])
            far = np.ones((48, 64), bool)
            near_y = slice(max(0, int(y - 0.3 * h) - 1), int(y + 1.3 * h) + 2)
            far[near_y, max(0, int(x - 0.3 * w) - 1):int(x + 1.3 * w) + 2] = 0
            assert (frames[t][far] == 100).all(), t
    for mix, lo, hi in ((0.0, 0, 0), (0.5, 25, 75)):
        ds = _two_scenes(mix)
        mixed = sum(bool((ds.augmented_window(int(rng.choice(mine)), 8, rng)[0] == 100).any()) for _ in range(100))
        assert lo <= mixed <= hi, (mix, mixed)
    with pytest.raises(ValueError, match="mix, distract, patches, occlude and stills are probabilities"):
        _two_scenes(1.5)


def _look_alike_scenes(distract, n=12, hw=(96, 128)):
    """Track 0: a white 8x8 square drifting over black; track 1: a 200-grey 16x16 square on grey 100."""
    a = np.zeros((n, *hw, 3), np.uint8)
    boxes = np.array([[44, 56 + i, 8, 8] for i in range(n)], np.float32)
    for i, (y, x, h, w) in enumerate(boxes.astype(int)):
        a[i, y:y + h, x:x + w] = 255
    b = np.full((n, *hw, 3), 100, np.uint8)
    other = np.array([[30, 40 + i, 16, 16] for i in range(n)], np.float32)
    for i, (y, x, h, w) in enumerate(other.astype(int)):
        b[i, y:y + h, x:x + w] = 200
    tracks = [(0, 0, boxes, np.ones(n, np.float32)), (1, 0, other, np.ones(n, np.float32))]
    return sot.SOTSet("sot", [a, b], tracks, 3, [], [], augment=True, distract=distract), a, boxes


def test_a_look_alike_is_laid_in_beside_the_target():
    """distracted() lays another target in, scaled to about the target's size, 1 to 2.5 target
    sizes away, and keeps the target in front: its box is never touched; --distract sets how often."""
    rng = np.random.default_rng(0)
    ds, frames, boxes = _look_alike_scenes(1.0)
    presence = np.ones(len(boxes), np.float32)
    seen, near = set(), 0
    for _ in range(60):
        out = ds.distracted(frames.copy(), boxes, presence, rng)
        assert out.dtype == np.uint8 and out.shape == frames.shape
        for t, (y, x, h, w) in enumerate(boxes.astype(int)):
            assert (out[t, y:y + h, x:x + w] == 255).all(), t  # the target in front, whole
        changed = (out[0] != frames[0]).any(-1)
        if not changed.any():
            continue
        grey = (out[0] == 200).all(-1)  # the look-alike's own pixels, laid in whole
        if grey.any():  # track 1's target: 16x16 scaled to the target's 8x8 area, give or take exp(0.3)
            seen.add(1)
            ys, xs = np.nonzero(grey)
            assert 64 * np.exp(-0.6) * 0.5 <= grey.sum() <= 64 * np.exp(0.6) * 1.6, grey.sum()
            dy, dx = (ys.mean() + 0.5 - 48) / 8, (xs.mean() + 0.5 - 60) / 8
            if 20 <= ys.mean() <= 76 and 20 <= xs.mean() <= 108:  # not cut by the frame's edge
                assert 0.9 <= np.hypot(dy, dx) <= 2.6, (dy, dx)
        else:
            seen.add(0)  # its own target at another time: white, blended over black
        ys, xs = np.nonzero(changed)
        near += bool(((np.abs(ys + 0.5 - 48) < 4 + 2.4) & (np.abs(xs + 0.5 - 60) < 4 + 2.4)).any())
    assert seen == {0, 1} and near, (seen, near)  # both sources drawn; some came close to the target
    windows = [i for i, (k, _, _) in enumerate(ds.windows(8)) if k == 0]
    for p, lo, hi in ((0.0, 0, 0), (0.5, 25, 75)):
        ds = _look_alike_scenes(p)[0]
        hits = 0
        for _ in range(100):
            f = ds.augmented_window(int(rng.choice(windows)), 8, rng)[0]
            hits += bool(((f != 0) & (f != 255)).any())
        assert lo <= hits <= hi, (p, hits)
    with pytest.raises(ValueError, match="mix, distract, patches, occlude and stills are probabilities"):
        _look_alike_scenes(-0.1)


def _patch_scenes(patches, n=12, hw=(96, 128)):
    """Track 0: a white 8x8 square drifting over black; track 1: a ramp, column x of grey 10 + x."""
    a = np.zeros((n, *hw, 3), np.uint8)
    boxes = np.array([[44, 56 + i, 8, 8] for i in range(n)], np.float32)
    for i, (y, x, h, w) in enumerate(boxes.astype(int)):
        a[i, y:y + h, x:x + w] = 255
    b = np.broadcast_to((10 + np.arange(hw[1], dtype=np.uint8))[None, None, :, None], (n, *hw, 3)).copy()
    other = np.array([[30, 40, 16, 16]] * n, np.float32)
    tracks = [(0, 0, boxes, np.ones(n, np.float32)), (1, 0, other, np.ones(n, np.float32))]
    return sot.SOTSet("sot", [a, b], tracks, 3, [], [], augment=True, patches=patches), a, boxes


def test_a_random_patch_replaces_the_target():
    """patched() covers the target's box in every frame where it is present with a piece of a
    training scene, stretched onto the box (its size varies), and leaves the frame beyond the
    feathered margin and the frames without the target alone; --patches sets how often."""
    rng = np.random.default_rng(0)
    ds, frames, boxes = _patch_scenes(1.0)
    presence = np.ones(len(boxes), np.float32)
    presence[5] = 0
    seen, spans, directions = set(), [], set()
    for _ in range(60):
        out = ds.patched(frames.copy(), boxes, presence, rng)
        assert out.dtype == np.uint8 and out.shape == frames.shape
        assert (out[5] == frames[5]).all()  # the target absent: the frame as it was
        for t, (y, x, h, w) in enumerate(boxes.astype(int)):
            far = np.ones(frames.shape[1:3], bool)
            far[y - 3:y + h + 3, x - 3:x + w + 3] = False  # 0.3 of the 8x8 box, and a pixel
            assert (out[t][far] == frames[t][far]).all(), t
        inner = out[0, 44:52, 56:64, 0].astype(int)
        if ((inner >= 10) & (inner < 10 + 128)).all():  # the ramp: columns of one grey each
            seen.add(1)
            assert (inner == inner[:1]).all()
            steps = np.diff(inner[0])
            assert (steps >= 0).all() or (steps <= 0).all(), inner[0]
            directions.add(int(np.sign(inner[0, -1] - inner[0, 0])))
            spans.append(abs(inner[0, -1] - inner[0, 0]) * 8 / 7)  # source columns over the box's 8
        else:
            seen.add(0)  # a piece of track 0's black and white
        assert not (out[0, 44:52, 56:64] == 255).all()  # the white target is covered
    assert seen == {0, 1} and directions >= {-1, 1}, (seen, directions)
    # the piece is the target's size times exp(U(-0.5, 0.5) + U(-0.3, 0.3)) per side: 3.6 to 17.8 columns
    assert min(spans) >= 8 * np.exp(-0.8) - 1.5 and max(spans) <= 8 * np.exp(0.8) + 1.5, spans
    assert max(spans) - min(spans) > 5, spans
    windows = [i for i, (k, _, _) in enumerate(ds.windows(8)) if k == 0]
    for p, lo, hi in ((0.0, 0, 0), (0.5, 25, 75)):
        ds = _patch_scenes(p)[0]
        hits = 0
        for _ in range(100):
            f, b, _ = ds.augmented_window(int(rng.choice(windows)), 8, rng)
            y, x, h, w = b[1]
            inside = f[1, int(np.ceil(y + 1)):int(y + h - 1), int(np.ceil(x + 1)):int(x + w - 1)]
            hits += not (inside == 255).all()
        assert lo <= hits <= hi, (p, hits)
    with pytest.raises(ValueError, match="mix, distract, patches, occlude and stills are probabilities"):
        _patch_scenes(1.5)


def _occluder_scenes(occlude, n=20, hw=(96, 128)):
    """Track 0: a white 8x8 square drifting right over black; track 1: grey 100 everywhere, so an
    occluder cut from it is told apart from the target (255) and its background (0)."""
    a = np.zeros((n, *hw, 3), np.uint8)
    boxes = np.array([[44, 40 + 2 * i, 8, 8] for i in range(n)], np.float32)
    for i, (y, x, h, w) in enumerate(boxes.astype(int)):
        a[i, y:y + h, x:x + w] = 255
    tracks = [(0, 0, boxes, np.ones(n, np.float32)), (1, 0, boxes.copy(), np.ones(n, np.float32))]
    return sot.SOTSet("sot", [a, np.full_like(a, 100)], tracks, 3, [], [], augment=True, occlude=occlude), a, boxes


def test_an_occluder_crosses_the_target_once():
    """occluded() draws one rectangle of a training scene over frames 1.. (never the first, whose
    box starts the tracker), crossing the target once; presence is 0 exactly where it hides at least
    70% of the target's box, and --occlude sets how often a window gets one."""
    rng = np.random.default_rng(0)
    ds, frames, boxes = _occluder_scenes(1.0)
    presence = np.ones(len(boxes), np.float32)
    grey, hidden_frames = 0, 0
    for _ in range(80):
        out, p = ds.occluded(frames.copy(), boxes, presence, rng)
        assert out.dtype == np.uint8 and out.shape == frames.shape and (presence == 1).all()  # presence copied
        assert (out[0] == frames[0]).all() and p[0] == 1
        covered = (out == 100).all(-1)
        if not covered.any():  # a piece of track 0 itself (black and white): its geometry is not told apart
            continue
        grey += 1
        sizes, hidden = set(), []
        for t in range(1, len(out)):
            y, x, h, w = boxes[t].astype(int)
            hidden.append(covered[t, y:y + h, x:x + w].mean())
            assert p[t] == (0 if hidden[-1] >= 0.7 else 1), (t, hidden[-1], p[t])
            ys, xs = np.nonzero(covered[t])
            if ys.size:  # one rectangle, whole where it lies inside the frame
                assert covered[t, ys.min():ys.max() + 1, xs.min():xs.max() + 1].all()
                if 0 < ys.min() and ys.max() < 95 and 0 < xs.min() and xs.max() < 127:
                    sizes.add((ys.max() - ys.min() + 1, xs.max() - xs.min() + 1))
        assert len(sizes) <= 1, sizes  # one occluder, of one size
        over = np.flatnonzero(np.array(hidden) > 0)
        assert 1 <= over.size <= 13 and over[-1] - over[0] + 1 == over.size, hidden  # one crossing, 3..12 frames
        hidden_frames += int((p == 0).sum())
        assert all(max(hw) >= 10 for hw in sizes), sizes  # across the crossing 1.2 to 2 times the target's 8
    assert 20 <= grey <= 60 and hidden_frames > 0, (grey, hidden_frames)
    windows = [i for i, (k, _, _) in enumerate(ds.windows(12)) if k == 0]
    for q, lo, hi in ((0.0, 0, 0), (1.0, 30, 70)):
        ds = _occluder_scenes(q)[0]
        hits = sum(bool((ds.augmented_window(int(rng.choice(windows)), 12, rng)[0] == 100).any()) for _ in range(100))
        assert lo <= hits <= hi, (q, hits)
    with pytest.raises(ValueError, match="mix, distract, patches, occlude and stills are probabilities"):
        _occluder_scenes(1.5)


def _still_scenes(stills, n=20, hw=(96, 128), box_jitter=1.0):
    """One track: frame i is grey 10 + i with a white 8x8 square drifting right, so every pixel of a
    window tells which stored frame it came from, and the square where the target is."""
    a = np.zeros((n, *hw, 3), np.uint8)
    boxes = np.array([[44, 40 + 2 * i, 8, 8] for i in range(n)], np.float32)
    for i, (y, x, h, w) in enumerate(boxes.astype(int)):
        a[i] = 10 + i
        a[i, y:y + h, x:x + w] = 255
    tracks = [(0, 0, boxes, np.ones(n, np.float32))]
    return sot.SOTSet("sot", [a], tracks, 3, [], [], augment=True, box_jitter=box_jitter, stills=stills)


def test_a_still_window_pans_over_one_frame_of_its_window():
    """--stills: the window's frames all come from one stored frame of the window's own span, the
    camera moves (the target's box moves across the window), and every box with presence 1 has the
    target (the white square) at its centre; the first box alone is jittered. --stills 0 makes no
    still window, --stills 1 only still ones, and a probability outside [0, 1] is refused."""
    rng = np.random.default_rng(0)
    ds = _still_scenes(1.0)
    moved = 0
    for _ in range(40):
        i = int(rng.integers(len(ds.windows(12))))
        _, s, L = ds.windows(12)[i]
        frames, b, p = ds.augmented_window(i, 12, rng)
        background = frames[(frames != 255).any(-1)][:, 0]
        assert len(np.unique(background)) == 1, np.unique(background)  # one stored frame
        assert s <= int(background[0]) - 10 < s + L  # of the window's span
        assert len(frames) == len(b) == len(p) == L and p[0] == 1
        for t in np.flatnonzero(p):
            cy, cx = (b[t, :2] + b[t, 2:] / 2).astype(int)
            assert (frames[t, cy, cx] == 255).all(), (t, b[t])
        moved += np.abs(b[-1, :2] - b[0, :2]).max() > 1
    assert moved >= 30, moved  # the camera pans
    plain, jittered = _still_scenes(1.0), _still_scenes(1.0, box_jitter=1.6)
    for seed in range(10):  # the same draws but for the jitter's: later boxes equal, the first one not
        a = plain.still_window(0, 12, np.random.default_rng(seed))[1]
        b = jittered.still_window(0, 12, np.random.default_rng(seed))[1]
        assert np.array_equal(a[1:], b[1:]) and not np.allclose(a[0], b[0])
    for q, lo, hi in ((0.0, 0, 0), (0.5, 30, 70), (1.0, 100, 100)):
        ds = _still_scenes(q)
        still = 0
        for _ in range(100):
            frames = ds.augmented_window(int(rng.integers(len(ds.windows(12)))), 12, rng)[0]
            still += len(np.unique(frames[(frames != 255).any(-1)][:, 0])) == 1
        assert lo <= still <= hi, (q, still)
    with pytest.raises(ValueError, match="mix, distract, patches, occlude and stills are probabilities"):
        _still_scenes(1.5)


def test_training_reads_the_sot_dataset(tmp_path):
    from minihart import train
    root = tmp_path / "set"
    for split, names in (("train", ["A", "B"]), ("val", ["C"])):
        for name in names:
            otb_seq(root / split / name, LINES * 2, hw=(45, 60))
    out = tmp_path / "run"
    assert train.main(["--dataset", "sot", "--data-root", str(root), "--preset", "synthetic", "--steps", "4",
                       "--eval-every", "2", "--batch-size", "2", "--box-jitter", "1.5", "--mix", "0.5",
                       "--distract", "0.5", "--patches", "0.5", "--stretch", "1.4", "--photo", "0.3",
                       "--occlude", "0.5", "--zoom-drift", "1", "--stills", "0.5", "--no-final-eval", "--quiet",
                       "--out", str(out), "--max-len", "5"]) == 0
    assert (out / "best.npz").is_file() and (out / "metrics.csv").read_text().count("\n") == 3
    rows = list(csv.DictReader(open(out / "metrics.csv")))  # both selections: own boxes and the size prior
    assert all(0 <= float(r["test_iou_prior"]) <= 1 for r in rows) and (out / "best-prior.npz").is_file()
    run = json.loads((out / "config.json").read_text())["run"]  # sot's defaults, the recipe
    assert run["mask_lost"] and run["map_lost"] and run["lr_decay"] == "cosine" and run["box_jitter"] == 1.5
    assert run["mix"] == 0.5 and run["distract"] == 0.5 and run["patches"] == 0.5 and run["stretch"] == 1.4
    assert run["photo"] == 0.3 and run["occlude"] == 0.5 and run["zoom_drift"] == 1.0 and run["stills"] == 0.5


@pytest.mark.parametrize("flags, occlude, drift, stills", [([], 0.3, 2.0, 0.3), (["--occlude", "0"], 0.0, 2.0, 0.3),
                                                           (["--zoom-drift", "1"], 0.3, 1.0, 0.3),
                                                           (["--stills", "0"], 0.3, 2.0, 0.0)])
def test_the_recipe_occludes_drifts_the_zoom_and_makes_stills_unless_told_otherwise(tmp_path, monkeypatch, flags,
                                                                                   occlude, drift, stills):
    """Since the thirty-seventh round the sot recipe lays an occluder into 30% of the windows
    (``--occlude 0.3``), since the thirty-eighth its zoom drifts up to 2 times per 50 frames
    (``--zoom-drift 2``), since the forty-third it makes 30% of the windows from still frames
    (``--stills 0.3``); ``--occlude 0``, ``--zoom-drift 1`` and ``--stills 0`` train as before them.
    The run keeps the values and its training set is built with them."""
    from minihart import runs, train
    root = tmp_path / "set"
    for split, names in (("train", ["A"]), ("val", ["C"])):
        for name in names:
            otb_seq(root / split / name, LINES * 2, hw=(45, 60))
    built = []
    real = runs.open_dataset

    def recording(*a, **k):
        built.append((k.get("occlude"), k.get("zoom_drift"), k.get("stills")))
        return real(*a, **k)
    monkeypatch.setattr(train, "open_dataset", recording)
    out = tmp_path / "run"
    assert train.main(["--dataset", "sot", "--data-root", str(root), "--preset", "synthetic", "--steps", "2",
                       "--eval-every", "2", "--batch-size", "2", "--no-final-eval", "--quiet", "--out", str(out),
                       "--max-len", "5"] + flags) == 0
    run = json.loads((out / "config.json").read_text())["run"]
    assert (run["occlude"], run["zoom_drift"], run["stills"]) == (occlude, drift, stills)
    assert built[0] == (occlude, drift, stills)  # the training set (the held-out one has no augmentation)


@pytest.mark.parametrize("drift", [["--zoom-drift", "1.5"], []])
def test_zoom_drift_with_stretch_is_refused_before_a_run_is_made(tmp_path, capsys, drift):
    """Given or the recipe's default, the drifting zoom and --stretch are refused together, and the
    error says how to turn the drift off."""
    from minihart import train
    out = tmp_path / "run"
    assert train.main(["--dataset", "sot", "--data-root", str(tmp_path / "none"), "--stretch", "1.5", "--steps", "1",
                       "--quiet", "--out", str(out)] + drift) == 2
    err = capsys.readouterr().err
    assert "--zoom-drift and --stretch: one at a time" in err and "--zoom-drift 1 turns it off" in err
    assert f"(--zoom-drift {drift[1] if drift else 2}; the sot recipe's default is 2)" in err and not out.exists()


@pytest.mark.parametrize("flags", [["--mix", "0.5"], ["--distract", "0.2"], ["--patches", "0.3"], ["--stretch", "1.5"],
                                   ["--photo", "0.2"], ["--zoom-drift", "1.5"], ["--occlude", "0.3"],
                                   ["--stills", "0.3"], ["--max-zoom", "2", "--box-jitter", "1.2"]])
def test_sot_augmentation_flags_are_refused_for_other_datasets(tmp_path, capsys, flags):
    """They would change nothing there: an error names them, no run is made."""
    from minihart import train
    out = tmp_path / "run"
    assert train.main(["--dataset", "synthetic", "--steps", "2", "--no-final-eval", "--quiet",
                       "--out", str(out), *flags]) == 2
    err = capsys.readouterr().err
    assert "only for --dataset sot, not synthetic" in err and all(f in err for f in flags[::2])
    assert not out.exists()
