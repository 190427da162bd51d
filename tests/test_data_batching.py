"""Padding, windows, augmentation, reproducible shuffling, the curriculum, make_dataset."""
import numpy as np
import pytest

from minihart.data import Curriculum, DatasetNotPrepared, TrackSet, make_dataset, pad_batch
from minihart.data.batching import augment, epoch_order, to_float_frames


def _video(n, hw=(32, 10)):
    """uint8 frames whose pixel value is the frame index (to check which frames come back)."""
    return np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None], (n, *hw)).copy()


def _track(first, n, video=0):
    boxes = np.stack([np.arange(n) + 1.0, np.full(n, 2.0), np.full(n, 3.0), np.full(n, 4.0)], 1)
    return (video, first, boxes.astype(np.float32), np.ones(n, np.float32))


def test_pad_batch_masks_and_repeats_last():
    rng = np.random.default_rng(0)
    a, b = ((rng.random((n, 1, 4, 5), dtype=np.float32), rng.random((n, 4), dtype=np.float32) + 1,
             np.ones(n)) for n in (3, 5))
    frames, boxes, presence = pad_batch([a, b], 6)
    assert frames.shape == (2, 6, 1, 4, 5) and boxes.shape == (2, 6, 4) and presence.shape == (2, 6)
    assert frames.dtype == boxes.dtype == presence.dtype == np.float32
    np.testing.assert_array_equal(presence, [[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 0]])
    np.testing.assert_array_equal(frames[0, 3:], np.repeat(a[0][2:], 3, 0))
    np.testing.assert_array_equal(boxes[1, 5], b[1][4])
    assert pad_batch([a, b])[0].shape[1] == 5  # default: the longest window
    with pytest.raises(ValueError, match="more than seq_len"):
        pad_batch([b], 4)


def test_windows_overlap_and_content():
    ts = TrackSet("t", [_video(30)], [_track(4, 12), _track(20, 1)], channels=1, overlap=0.5)
    # T=5, overlap int(2.5)=2 -> step 3; the 1-frame track gives no window
    assert ts.windows(5) == [(0, 0, 5), (0, 3, 5), (0, 6, 5), (0, 9, 3)]
    assert ts.windows(None) == [(0, 0, 12)]
    frames, boxes, presence = ts.window(1, 5)
    assert frames.shape == (5, 1, 32, 10) and frames.dtype == np.float32
    np.testing.assert_allclose(frames[:, 0, 0, 0] * 255, np.arange(7, 12), atol=1e-4)
    np.testing.assert_array_equal(boxes[:, 0], np.arange(4, 9))
    assert ts.image_hw == (32, 10) and ts.num_windows(5) == 4
    f, b, p = ts.gather([3], 5)
    np.testing.assert_array_equal(p[0], [1, 1, 1, 0, 0])
    with pytest.raises(ValueError, match="overlap"):
        TrackSet("t", [_video(3)], [], channels=1, overlap=1.0)


def test_windows_start_on_labelled_frames():
    video, first, boxes, presence = _track(0, 8)
    presence[[0, 3]] = 0
    ts = TrackSet("t", [_video(8)], [(video, first, boxes, presence)], channels=1, overlap=0.0)
    assert [s for _, s, _ in ts.windows(3)] == [6]  # starts 0 and 3 unlabelled; 6 ok


def test_augment_mirror_and_reverse():
    rng = np.random.default_rng(0)
    frames = rng.random((4, 1, 5, 9), dtype=np.float32)
    boxes = np.array([[1, 2, 3, 4]] * 4, np.float32) + np.arange(4)[:, None]
    seen = set()
    for _ in range(40):
        f, b, p = augment(frames, boxes, np.ones(4), rng)
        rev = not np.array_equal(b[:, 0], boxes[:, 0])
        mir = not np.array_equal(b[:, 1], (boxes[::-1] if rev else boxes)[:, 1])
        src_f, src_b = (frames[::-1], boxes[::-1]) if rev else (frames, boxes)
        if mir:
            np.testing.assert_array_equal(f, src_f[..., ::-1])
            np.testing.assert_array_equal(b[:, 1], 9 - src_b[:, 1] - src_b[:, 3])
        else:
            np.testing.assert_array_equal(f, src_f)
        seen.add((rev, mir))
    assert len(seen) == 4


def test_gather_moves_stored_frames_and_converts_them_on_the_device():
    """A batch travels as uint8 (a quarter of float32) and becomes float32 on the device, equal
    to converting every window first, augmented the same way (mirroring the stored width axis)."""
    rng = np.random.default_rng(1)
    video = rng.integers(0, 256, (20, 32, 10, 3), dtype=np.uint8)
    ts = TrackSet("t", [video], [_track(0, 9), _track(10, 8)], channels=1, augment=True)

    class Device:  # numpy, noting the dtype of everything moved onto it
        moved = []

        def __getattr__(self, name):
            return getattr(np, name)

        def asarray(self, a, dtype=None):
            self.moved.append(np.asarray(a).dtype)
            return np.asarray(a, dtype)
    for seed in range(6):  # each seed draws its own reversal / mirroring
        frames, boxes, presence = ts.gather([0, 2, 3], 5, np.random.default_rng(seed), xp=Device())
        assert Device.moved[-3:] == [np.uint8, np.float32, np.float32] and frames.dtype == np.float32
        r = np.random.default_rng(seed)
        items = [augment(*ts.window(i, 5), r) for i in (0, 2, 3)]  # float frames, width axis 3
        for got, want in zip((frames, boxes, presence), pad_batch(items, 5)):
            np.testing.assert_allclose(got, want, rtol=1e-6)
    with pytest.raises(ValueError, match="the first boxes of a batch"):
        TrackSet("t", [video], [(0, 0, np.float32([[40, 2, 3, 4]] * 3), np.ones(3))], channels=1).gather([0], 3)


@pytest.mark.parametrize("channels", [1, 3])
def test_gather_on_a_device_equals_gather_on_the_host(xp, channels):
    """The same batch, augmentation included, made on ``xp``'s device (GPU, or the emulator)."""
    from minihart.backend import asnumpy, get_array_module
    video = np.random.default_rng(2).integers(0, 256, (20, 32, 10, 3), dtype=np.uint8)
    ts = TrackSet("t", [video], [_track(0, 9), _track(10, 8)], channels=channels, augment=True)
    host = ts.gather([0, 2, 3], 5, np.random.default_rng(4))
    dev = ts.gather([0, 2, 3], 5, np.random.default_rng(4), xp=xp)
    assert all(get_array_module(a) is xp for a in dev) and dev[0].shape == (3, 5, channels, 32, 10)
    for h, d in zip(host, dev):
        np.testing.assert_allclose(asnumpy(d), h, rtol=1e-6)


def test_batches_are_reproducible_and_cover_every_window():
    ts = TrackSet("t", [_video(60)], [_track(0, 25), _track(30, 20)], channels=1, augment=True)
    n = ts.num_windows(4)
    assert n == 12 + 9 and ts.batches_per_epoch(6, 4) == 4  # T=4: step 2, tails included

    def ids(batches):  # the video frame each window starts on
        return [int(round(f[0, 0, 0, 0] * 255)) for ff, _, _ in batches for f in ff]
    in_order = ids(ts.batches(6, 4))
    assert in_order == list(range(0, 23, 2)) + list(range(30, 47, 2))
    first = ids(ts.batches(6, 4, seed=3, epoch=0))
    again = ids(ts.batches(6, 4, seed=3, epoch=0))
    other = ids(ts.batches(6, 4, seed=3, epoch=1))
    assert first == again and first != other and sorted(first) != first
    np.testing.assert_array_equal(epoch_order(20, 3, 0), epoch_order(20, 3, 0))
    f1 = ts.batch(np.random.default_rng(5), 3, 4)
    f2 = ts.batch(np.random.default_rng(5), 3, 4)
    assert all(np.array_equal(x, y) for x, y in zip(f1, f2))


def test_to_float_frames_channels():
    rgb = np.zeros((2, 3, 4, 3), np.uint8)
    rgb[..., 0] = 255
    grey = to_float_frames(rgb, 1)
    assert grey.shape == (2, 1, 3, 4)
    np.testing.assert_allclose(grey, 0.299, atol=1e-6)
    colour = to_float_frames(np.full((2, 3, 4), 51, np.uint8), 3)
    assert colour.shape == (2, 3, 3, 4)
    np.testing.assert_allclose(colour, 0.2, atol=1e-6)


def test_curriculum_reference_rule_and_paper_rule():
    c = Curriculum(start=5, stop=7, threshold=0.7, threshold_decrease=0.1, min_epochs=2)
    assert c.seq_len == 5 and c.iou_needed == pytest.approx(0.7)
    assert not c.epoch_end(0.9)  # too few epochs at this length
    assert not c.epoch_end(0.6) and c.seq_len == 5  # IoU too low
    assert c.epoch_end(0.75) and c.seq_len == 6 and c.epochs_at_len == 0
    assert c.iou_needed == pytest.approx(0.65)
    c.epoch_end(0.66)
    assert c.epoch_end(0.66) and c.seq_len == 7
    for _ in range(5):
        assert not c.epoch_end(1.0)
    assert c.seq_len == 7  # capped at stop
    restored = Curriculum(**vars(c))
    assert vars(restored) == vars(c)
    paper = Curriculum(threshold=0, min_epochs=13)
    lengths = []
    for _ in range(40):
        paper.epoch_end(0.0)
        lengths.append(paper.seq_len)
    assert lengths[11] == 5 and lengths[12] == 6 and lengths[25] == 7
    with pytest.raises(ValueError, match="start"):
        Curriculum(start=8, stop=5)


def test_make_dataset_errors_and_not_prepared_message(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="unknown dataset"):
        make_dataset("mnist")
    with pytest.raises(ValueError, match="otb"):
        make_dataset("otb")
    monkeypatch.setenv("MINIHART_DATA", str(tmp_path / "store"))
    for name in ("kth", "kitti"):
        with pytest.raises(DatasetNotPrepared) as info:
            make_dataset(name)
        msg = str(info.value)
        assert str(tmp_path / "store" / name) in msg
        assert f"python data_scripts/get_{name}.py --root {tmp_path / 'store' / name}" in msg
        assert "--dataset synthetic" in msg


def test_bad_sizes_are_named_not_silently_changed():
    """seq_len=0 used to mean whole tracks (a falsy 0), size=0 and channels=0 the defaults;
    batch_size=0 failed inside np.stack or range()."""
    from minihart.data.synthetic import sequence
    ds, rng = make_dataset("synthetic", size=4), np.random.default_rng(0)
    for call, message in [(lambda: ds.batch(rng, 0, 5), "batch_size must be a positive integer, got 0"),
                          (lambda: ds.batch(rng, 2, 0), "seq_len must be a positive integer or None"),
                          (lambda: ds.batch(rng, 2, -3), "seq_len must be"),
                          (lambda: next(ds.batches(0, 5)), "batch_size must be"),
                          (lambda: make_dataset("synthetic", size=0), "size a positive integer, got .* size=0"),
                          (lambda: make_dataset("synthetic", channels=2), "channels must be 1 or 3"),
                          (lambda: sequence(0, 0), "need seq_len >= 1"),
                          (lambda: Curriculum(threshold=2), "threshold is an IoU in .0, 1.")]:
        with pytest.raises(ValueError, match=message):
            call()
    assert ds.batch(rng, 2, None)[0].shape[:2] == (2, 32)  # None: whole synthetic sequences
