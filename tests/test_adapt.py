"""First-frame adaptation (minihart/adapt.py): the windows a virtual camera makes from one frame,
and the training steps on them before tracking."""
import numpy as np
import pytest

from minihart import adapt, scoring
from minihart.data.batching import to_float_frames
from minihart.model import forward, init_params, preset, sample_noise


def _target_frame(hw=(48, 64), box=(14, 22, 16, 12)):
    """A grey frame: 1 inside the box's pixels, 0 outside."""
    frame = np.zeros((1, *hw), np.float32)
    y, x, h, w = box
    frame[:, y:y + h, x:x + w] = 1.0
    return frame, np.array(box, np.float32)


def test_the_box_of_every_window_frame_is_where_the_target_is():
    """Every pixel whose centre lies inside the returned box shows the target and every pixel whose
    centre lies outside it shows the background, in every frame of every window; presence is 1
    exactly where the box's centre is in view; the target moves and changes size within a window."""
    frame, box = _target_frame()
    frames, boxes, presence = adapt.still_windows(frame, box, np.random.default_rng(1), batch=6, length=12)
    assert frames.shape == (6, 12, 1, 48, 64) and boxes.shape == (6, 12, 4) and presence.shape == (6, 12)
    rows, cols = np.arange(48)[:, None] + 0.5, np.arange(64)[None, :] + 0.5
    checked = 0
    for b in range(6):
        for t in range(12):
            y, x, h, w = boxes[b, t].astype(np.float64)
            inside = (rows > y + 1e-3) & (rows < y + h - 1e-3) & (cols > x + 1e-3) & (cols < x + w - 1e-3)
            outside = (rows < y - 1e-3) | (rows > y + h + 1e-3) | (cols < x - 1e-3) | (cols > x + w + 1e-3)
            img = frames[b, t, 0]
            assert (img[inside] == 1).all() and (img[outside] == 0).all(), (b, t)
            checked += inside.sum()
            in_view = 0 <= y + h / 2 < 48 and 0 <= x + w / 2 < 64
            assert presence[b, t] == in_view
    assert checked > 1000
    assert presence.mean() > 0.5
    moved = np.abs(np.diff(boxes[..., :2], axis=1)).max()
    zoomed = np.abs(np.diff(np.log(boxes[..., 2]), axis=1)).max()
    assert moved > 1.0 and zoomed > 0.01
    # the same generator state gives the same windows; another one gives others
    again = adapt.still_windows(frame, box, np.random.default_rng(1), batch=6, length=12)
    np.testing.assert_array_equal(again[1], boxes)
    other = adapt.still_windows(frame, box, np.random.default_rng(2), batch=6, length=12)
    assert not np.allclose(other[1], boxes)


def test_each_window_starts_from_an_imprecise_box_and_is_otherwise_unchanged():
    """With ``jitter`` the first box of every window is scaled by at most ``jitter`` per side and its
    centre moved by at most ``(jitter - 1) / 4`` of its size, inside the frame; the frames, the later
    boxes (the targets) and presence are the windows without it, drawn from the same generator."""
    frame, box = _target_frame()
    plain = adapt.still_windows(frame, box, np.random.default_rng(3), batch=40, length=5)
    jittered = adapt.still_windows(frame, box, np.random.default_rng(3), batch=40, length=5, jitter=1.6)
    np.testing.assert_array_equal(jittered[0], plain[0])
    np.testing.assert_array_equal(jittered[1][:, 1:], plain[1][:, 1:])
    np.testing.assert_array_equal(jittered[2], plain[2])
    first, truth = jittered[1][:, 0].astype(np.float64), plain[1][:, 0].astype(np.float64)
    ratio = first[:, 2:] / truth[:, 2:]
    assert (ratio > 1 / 1.6 - 1e-5).all() and (ratio < 1.6 + 1e-5).all()
    assert np.abs(np.log(ratio)).max() > 0.3  # it does move them
    assert (first[:, :2] >= -1e-4).all() and (first[:, :2] + first[:, 2:] <= np.array([48, 64]) + 1e-4).all()
    inside = ((first[:, :2] > 1e-3) & (first[:, :2] + first[:, 2:] < np.array([48, 64]) - 1e-3)).all(1)  # not clamped
    shift = np.abs(first[:, :2] + first[:, 2:] / 2 - truth[:, :2] - truth[:, 2:] / 2) / truth[:, 2:]
    assert inside.sum() > 10 and (shift[inside] <= 0.6 / 4 + 1e-5).all() and shift[inside].max() > 0.05


@pytest.fixture(scope="module")
def small():
    cfg = preset("synthetic", channels=1, image_hw=(30, 40))
    return init_params(cfg, np.random.default_rng(0)), cfg


def _loss_on_fresh_windows(params, cfg, frame, box):
    rng = np.random.default_rng(123)  # windows and masks the adaptation never drew
    frames, boxes, presence = adapt.still_windows(frame, box, rng, batch=8, length=6)
    out, _ = forward(params, cfg, frames, boxes, presence, sample_noise(cfg, rng, 8, 6))
    return float(out["terms"]["tracking"]), float(out["iou"].sum() / out["presence"].sum())


def test_adaptation_learns_the_first_frame_and_leaves_the_model_as_it_was(small):
    """Training on one frame's windows lowers the box loss and raises the IoU on other windows of
    that frame; the given parameters are not modified; the same seed gives the same parameters;
    0 steps returns the model unchanged."""
    params, cfg = small
    rng = np.random.default_rng(5)
    frame = rng.random((1, 30, 40)).astype(np.float32) * 0.3
    frame[:, 8:20, 12:22] += 0.6  # a bright, textured target
    box = np.array([8, 12, 12, 10], np.float32)
    before = {k: v.copy() for k, v in params.items()}
    tuned = adapt.adapt(params, cfg, frame, box, steps=40, lr=3e-3, seed=0)
    for k in params:
        np.testing.assert_array_equal(params[k], before[k])
    loss0, iou0 = _loss_on_fresh_windows(params, cfg, frame, box)
    loss1, iou1 = _loss_on_fresh_windows(tuned, cfg, frame, box)
    assert loss1 < 0.8 * loss0 and iou1 > iou0 + 0.05, (loss0, loss1, iou0, iou1)
    again = adapt.adapt(params, cfg, frame, box, steps=40, lr=3e-3, seed=0)
    assert all(np.array_equal(again[k], tuned[k]) for k in params)
    other = adapt.adapt(params, cfg, frame, box, steps=40, lr=3e-3, seed=1)
    assert not all(np.array_equal(other[k], tuned[k]) for k in params)
    assert adapt.adapt(params, cfg, frame, box, steps=0) is params


@pytest.mark.parametrize("kwargs, message", [
    (dict(steps=-1), r"steps must be a whole number >= 0, got -1"),
    (dict(steps=2.5), r"steps must be a whole number >= 0, got 2.5"),
    (dict(steps=True), r"steps must be a whole number >= 0, got True"),
    (dict(lr=0.0), r"lr must be > 0, got 0.0"),
    (dict(lr=float("nan")), r"lr must be > 0, got nan"),
    (dict(jitter=0.5), r"jitter must be >= 1, got 0.5"),
])
def test_bad_arguments_are_named(small, kwargs, message):
    params, cfg = small
    frame, box = _target_frame((30, 40), (5, 5, 10, 10))
    with pytest.raises(ValueError, match=message):
        adapt.adapt(params, cfg, frame, box, **kwargs)


def test_a_frame_of_the_wrong_size_is_named(small):
    params, cfg = small
    frame, box = _target_frame((48, 64))
    with pytest.raises(ValueError, match=r"frame must be \(C=1, H, W=\(30, 40\)\) for preset 'synthetic', "
                                         r"got \(1, 48, 64\)"):
        adapt.adapt(params, cfg, frame, box, steps=1)


def test_tracking_with_adaptation_tracks_with_the_adapted_model(small):
    """track_sequences with adapt_steps tracks each sequence with the model adapted to its own first
    frame (one copy, ``draws=1``): the boxes of track_with_extras, and of tracking with adapt()'s
    parameters and no adaptation."""
    params, cfg = small
    rng = np.random.default_rng(0)
    videos = [rng.integers(0, 256, (n, 30, 40), dtype=np.uint8) for n in (6, 4)]
    box0 = np.array([[5, 6, 10, 12], [8, 4, 9, 9]], np.float32)
    adapted, times = scoring.track_sequences(params, cfg, videos, box0, batch_size=2, size_prior=0.0, adapt_steps=3,
                                             draws=1)
    plain, _ = scoring.track_sequences(params, cfg, videos, box0, batch_size=2, size_prior=0.0, adapt_steps=0)
    assert [len(p) for p in adapted] == [6, 4] and [len(t) for t in times] == [6, 4]
    for k, video in enumerate(videos):
        frames = to_float_frames(video, 1)
        tuned = adapt.adapt(params, cfg, frames[0], box0[k], steps=3)
        by_hand, _ = scoring.track_sequences(tuned, cfg, [video], box0[k:k + 1], size_prior=0.0, adapt_steps=0)
        np.testing.assert_allclose(adapted[k], by_hand[0], atol=1e-4)
        boxes, _, _ = scoring.track_with_extras(params, cfg, frames, box0[k], size_prior=0.0, adapt_steps=3, draws=1)
        np.testing.assert_allclose(boxes, adapted[k], atol=1e-4)
        assert not np.allclose(adapted[k][1:], plain[k][1:], atol=1e-4)


def test_the_median_box_is_taken_of_centres_and_log_sides():
    boxes = np.array([[0, 0, 2, 2], [1, 1, 8, 8], [10, 10, 4, 4]], np.float64)  # centres 1, 5 and 12
    np.testing.assert_allclose(adapt.median_box(boxes), [3, 3, 4, 4])
    # two boxes: centres 0.5 and 50 give 25.25; the sides their geometric mean (10, not 50.5)
    np.testing.assert_allclose(adapt.median_box([[0, 0, 1, 1], [0, 0, 100, 100]]), [20.25, 20.25, 10, 10])
    # each frame of (D, N, 4) alone
    many = np.random.default_rng(0).uniform(1, 9, (5, 7, 4))
    np.testing.assert_allclose(adapt.median_box(many)[3], adapt.median_box(many[:, 3]))


def test_copies_adapted_from_their_own_seeds_report_their_median_box(small):
    """track_sequences with ``draws=3`` reports, frame by frame, the median box of three trackers each
    adapted with its own seed (0, 1, 2) and tracking on its own; the copies differ; with
    ``adapt_steps=0`` there is one copy, the model as it is, whatever ``draws``."""
    params, cfg = small
    rng = np.random.default_rng(1)
    video = rng.integers(0, 256, (7, 30, 40), dtype=np.uint8)
    box0 = np.array([[6, 8, 10, 12]], np.float32)
    frames = to_float_frames(video, 1)
    got, times = scoring.track_sequences(params, cfg, [video], box0, size_prior=0.0, adapt_steps=3, draws=3)
    copies = [scoring.track_sequences(adapt.adapt(params, cfg, frames[0], box0[0], steps=3, seed=d), cfg, [video],
                                      box0, size_prior=0.0, adapt_steps=0)[0][0] for d in range(3)]
    np.testing.assert_allclose(got[0], adapt.median_box(np.stack(copies)), atol=1e-4)
    assert len(times[0]) == 7
    for a, b in ((0, 1), (0, 2), (1, 2)):
        assert np.abs(copies[a][1:] - copies[b][1:]).max() > 1e-3
    assert all(np.abs(got[0] - c).max() > 1e-4 for c in copies)  # not any one copy's boxes
    plain, _ = scoring.track_sequences(params, cfg, [video], box0, size_prior=0.0, adapt_steps=0)
    none, _ = scoring.track_sequences(params, cfg, [video], box0, size_prior=0.0, adapt_steps=0, draws=3)
    np.testing.assert_allclose(none[0], plain[0], atol=1e-5)
    assert len(adapt.AdaptedTracker(params, cfg, steps=0, draws=3).init(frames[0], box0[0]).copies) == 1


@pytest.mark.parametrize("draws", [0, 1.5, True])
def test_bad_draws_are_named(small, draws):
    params, cfg = small
    with pytest.raises(ValueError, match=rf"adapt: draws must be a whole number >= 1, got {draws!r}"):
        adapt.AdaptedTracker(params, cfg, draws=draws)


def test_stepping_before_init_is_named(small):
    params, cfg = small
    with pytest.raises(RuntimeError, match=r"AdaptedTracker.step called before AdaptedTracker.init"):
        adapt.AdaptedTracker(params, cfg).step(np.zeros((1, 30, 40), np.float32))
