"""Whole-sequence tracking and the OTB measures (minihart/scoring.py), the toolkit files, the
got10k-style tracker object and ``evaluate --folder``."""
import os

import numpy as np
import pytest

from minihart import evaluate, scoring, track
from minihart.boxes import from_xywh
from minihart.data import sot
from minihart.checkpoint import save
from minihart.model import init_params, preset


def test_score_sequence_known_answer():
    truth = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], float)
    pred = np.array([[0, 0, 10, 10],    # IoU 1, centre error 0
                     [0, 5, 10, 10],    # IoU 50/150 = 1/3, centre error 5
                     [30, 0, 10, 10],   # IoU 0, centre error 30
                     [0, 0, 10, 10]], float)
    r = scoring.score_sequence(pred, truth, [1, 1, 1, 0])  # the last frame: target absent
    assert r["n_frames"] == 3
    assert r["avg_iou"] == pytest.approx((1 + 1 / 3 + 0) / 3)
    # success: IoU > threshold; thresholds 0, 0.05, ..., 1
    expected = [np.mean([1 > th, 1 / 3 > th, 0 > th]) for th in np.linspace(0, 1, 21)]
    np.testing.assert_allclose(r["success"], expected)
    assert r["auc"] == pytest.approx(np.mean(expected))
    assert r["precision20"] == pytest.approx(2 / 3)  # errors 0 and 5 are within 20 px, 30 is not
    assert r["precision"][4] == pytest.approx(1 / 3) and r["precision"][5] == pytest.approx(2 / 3)
    assert np.isnan(r["ious"][3])
    lost = pred.copy()
    lost[1] = [np.nan, 0, np.inf, 1]  # a window that overflowed: IoU 0, never within 20 px
    r2 = scoring.score_sequence(lost, truth, [1, 1, 1, 0])
    assert r2["avg_iou"] == pytest.approx(1 / 3) and r2["precision20"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match=r"must both be \(N, 4\)"):
        scoring.score_sequence(pred[:3], truth, [1, 1, 1, 1])


def test_mean_scores_weigh_every_sequence_the_same():
    a = dict(avg_iou=1.0, auc=1.0, precision20=1.0, success=np.ones(21), precision=np.ones(51), n_frames=100)
    b = dict(avg_iou=0.0, auc=0.0, precision20=0.0, success=np.zeros(21), precision=np.zeros(51), n_frames=10)
    m = scoring.mean_scores({"a": a, "b": b})
    assert m["avg_iou"] == 0.5 and m["n_frames"] == 110 and m["success"][3] == 0.5 and "fps" not in m


def test_size_prior_keeps_centres_and_pulls_sides_to_the_first_box():
    """anchor_size: weight 0 is the model's box, 1 the first box's size, 0.5 the geometric mean of
    the two sides (computed here by hand); the centre never moves; a weight outside [0, 1] is an
    error that names it."""
    box0 = np.array([10.0, 20.0, 40.0, 10.0])  # y x h w
    boxes = np.array([[12.0, 18.0, 10.0, 40.0], [0.0, 0.0, 40.0, 10.0]], np.float32)
    np.testing.assert_array_equal(scoring.anchor_size(boxes, box0, 0.0), boxes)
    one = scoring.anchor_size(boxes, box0, 1.0)
    np.testing.assert_allclose(one[:, 2:], [[40, 10], [40, 10]])
    half = scoring.anchor_size(boxes, box0, 0.5)
    np.testing.assert_allclose(half[0, 2:], [np.sqrt(10 * 40), np.sqrt(40 * 10)], rtol=1e-6)  # 20 x 20
    np.testing.assert_allclose(half[0, :2], [12 + 5 - 10, 18 + 20 - 10], rtol=1e-6)
    np.testing.assert_allclose(half[1], boxes[1], atol=1e-5)  # already the first box's size: unchanged
    for w in (0.0, 0.3, 0.5, 1.0):
        b = scoring.anchor_size(boxes, box0, w)
        np.testing.assert_allclose(b[:, :2] + b[:, 2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2, rtol=1e-6)
    assert half.dtype == np.float32
    with pytest.raises(ValueError, match=r"size prior must be in \[0, 1\], got 1.5"):
        scoring.anchor_size(boxes, box0, 1.5)


@pytest.fixture(scope="module")
def model():
    cfg = preset("synthetic", channels=3, image_hw=(30, 40))
    return init_params(cfg, np.random.default_rng(3)), cfg


def _videos(rng, lengths, hw=(30, 40)):
    return [rng.integers(0, 256, (n, *hw, 3), dtype=np.uint8) for n in lengths]


def test_batched_tracking_equals_tracking_each_sequence_alone(model):
    """Sequences of different lengths tracked together (the batch shrinks as they end) give the
    boxes of tracking each alone, and of the frame-by-frame Tracker."""
    params, cfg = model
    rng = np.random.default_rng(0)
    videos = _videos(rng, [7, 3, 5])
    box0 = np.array([[5, 6, 10, 12], [8, 4, 9, 9], [2, 20, 12, 10]], np.float32)
    together, _ = scoring.track_sequences(params, cfg, videos, box0, batch_size=3, adapt_steps=0)
    alone, times = scoring.track_sequences(params, cfg, videos, box0, batch_size=1, adapt_steps=0)
    assert [len(p) for p in together] == [7, 3, 5] and [len(t) for t in times] == [7, 3, 5]
    for a, b in zip(together, alone):
        np.testing.assert_allclose(a, b, atol=1e-3)
    from minihart.data.batching import to_float_frames
    boxes, extras, _ = scoring.track_with_extras(params, cfg, to_float_frames(videos[0], 3), box0[0], adapt_steps=0)
    np.testing.assert_allclose(boxes, together[0], atol=1e-3)
    assert extras[1]["glimpse"].shape == (3, 24, 24)
    # the size prior: 0 gives the model's own boxes, 1 the first box's size on every frame, and
    # in between the same centres with sides between the two
    own, _ = scoring.track_sequences(params, cfg, videos, box0, batch_size=3, size_prior=0.0, adapt_steps=0)
    fixed, _ = scoring.track_sequences(params, cfg, videos, box0, batch_size=3, size_prior=1.0, adapt_steps=0)
    for o, f, t, b in zip(own, fixed, together, box0):
        np.testing.assert_allclose(f[:, 2:], np.broadcast_to(b[2:], f[:, 2:].shape), rtol=1e-5)
        for x in (f, t):
            np.testing.assert_allclose(x[:, :2] + x[:, 2:] / 2, o[:, :2] + o[:, 2:] / 2, atol=1e-3)
        np.testing.assert_allclose(t[1:, 2:], np.sqrt(o[1:, 2:] * b[2:]), rtol=1e-4)  # the default, 0.5
    assert scoring.SIZE_PRIOR == 0.5 and np.abs(own[0][1:, 2:] - box0[0, 2:]).max() > 0.1  # the prior did something


def test_toolkit_files_read_by_an_independent_reader(tmp_path):
    """What the got10k toolkit's report does with a result: np.loadtxt with ',' (OTB/GOT-10k),
    the first box replaced by the ground truth, times from times/<seq>_time.txt; and what
    pytracking's loader does (tab or comma, <seq>_time.txt beside the boxes)."""
    boxes = np.array([[12, 10, 16, 20], [13.25, 11.5, 16, 20.125], [14, 12, 17, 21]], np.float32)  # y x h w
    times = np.array([0.02, 0.001, 0.0015])
    scoring.write_toolkit_files(str(tmp_path), "Walker", boxes, times)

    lines = (tmp_path / "Walker.txt").read_text().splitlines()
    assert lines[1] == "11.500,13.250,20.125,16.000"  # x,y,w,h
    got10k = np.loadtxt(tmp_path / "Walker.txt", delimiter=",")
    np.testing.assert_allclose(got10k, boxes[:, [1, 0, 3, 2]], atol=1e-3)
    t = np.loadtxt(tmp_path / "times" / "Walker_time.txt")
    fps = np.mean(1.0 / t[t > 0])
    assert fps == pytest.approx(np.mean(1 / times))
    raw = (tmp_path / "Walker.txt").read_text()
    pytracking = np.array([[float(v) for v in ln.replace("\t", ",").split(",")] for ln in raw.splitlines()])
    np.testing.assert_array_equal(pytracking, got10k)
    np.testing.assert_allclose(np.loadtxt(tmp_path / "Walker_time.txt"), times)
    assert not list(tmp_path.glob("**/*.tmp"))


ADAPT = 10  # first-frame adaptation's steps in the tests of the commands here (the default: 50)


def _sot_folder(root, n_seq=2, n=6, hw=(45, 60)):
    from tests.test_data_sot import otb_seq
    for k in range(n_seq):
        lines = [f"{10 + i + k},{8 + i // 2},{14},{12}" for i in range(n)]
        otb_seq(root / f"S{k}", lines, hw=hw)
    return root


def test_one_tracking_scored_with_several_size_priors_equals_scoring_each(model, tmp_path):
    """mean_iou_by_prior (training's two selections) gives score_dataset's average IoU for each prior."""
    params, cfg = model
    ds = sot.load(_sot_folder(tmp_path / "set", n_seq=3, n=8, hw=(30, 40)), "val", cfg.image_hw, 3, cache=False)
    got = scoring.mean_iou_by_prior(params, cfg, ds, priors=(0.0, 0.5, 1.0))
    want = [scoring.score_dataset(params, cfg, ds, size_prior=w, adapt_steps=0)["mean"]["avg_iou"]
            for w in (0.0, 0.5, 1.0)]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert len(set(np.round(got, 6))) == 3  # the priors changed the score


def test_track_command_matches_the_tracker_object_and_toolkit_reader(model, tmp_path, capsys):
    """The command and the object give the same boxes, with each flag and its argument; adapted for
    ADAPT steps, not the default 50, to keep the test short (the defaults are compared on the
    shipped checkpoint, below)."""
    params, cfg = model
    ckpt = str(tmp_path / "m.npz")
    save(ckpt, params, cfg)
    root = _sot_folder(tmp_path / "seqs", n_seq=1)
    out = tmp_path / "out"
    assert track.main(["--checkpoint", ckpt, "--video", str(root / "S0"), "--out", str(out), "--no-video",
                       "--adapt", str(ADAPT)]) == 0
    assert "against the ground truth: average IoU" in capsys.readouterr().out
    written = np.loadtxt(out / "S0.txt", delimiter=",")
    info = sot.read_sequence(root / "S0")
    tracker = track.HARTTracker(ckpt, device="cpu", adapt_steps=ADAPT)
    boxes, times = tracker.track(info.images, written[0])
    assert boxes.shape == (6, 4) and times.shape == (6,) and (times > 0).all()
    np.testing.assert_allclose(boxes, written, atol=0.02)  # the files hold 3 decimals
    with pytest.raises(ValueError, match="box must be x, y, w, h"):
        tracker.init(np.zeros((45, 60, 3), np.uint8), [1, 2, 3])
    with pytest.raises(ValueError, match="images must be uint8"):
        tracker.init(np.zeros((45, 60, 3)), [1, 2, 3, 4])
    # the size prior and first-frame adaptation: the command's flag and the object's argument give
    # the same boxes, which differ from the defaults' (the model's own size; the model as trained; one copy)
    for flag, value, kwargs in (("--size-prior", "0", dict(size_prior=0.0)), ("--adapt", "0", dict(adapt_steps=0)),
                                ("--draws", "1", dict(draws=1))):
        steps = [] if flag == "--adapt" else ["--adapt", str(ADAPT)]
        assert track.main(["--checkpoint", ckpt, "--video", str(root / "S0"), "--out", str(out), "--no-video",
                           flag, value] + steps) == 0
        capsys.readouterr()
        got = np.loadtxt(out / "S0.txt", delimiter=",")
        kwargs = {"adapt_steps": ADAPT, **kwargs}
        boxes, _ = track.HARTTracker(ckpt, device="cpu", **kwargs).track(info.images, written[0])
        np.testing.assert_allclose(boxes, got, atol=0.02)
        assert np.abs(got - written).max() > 0.05, flag
    with pytest.raises(ValueError, match=r"size prior must be in \[0, 1\]"):
        track.HARTTracker(ckpt, device="cpu", size_prior=-0.1)
    with pytest.raises(SystemExit):
        track.main(["--video", str(root / "S0"), "--size-prior", "2"])
    assert "argument --size-prior: must be at most 1.0, got 2" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"adapt_steps must be a whole number >= 0, got -1"):
        track.HARTTracker(ckpt, device="cpu", adapt_steps=-1)
    with pytest.raises(SystemExit):
        track.main(["--video", str(root / "S0"), "--adapt", "-1"])
    assert "argument --adapt: must be at least 0, got -1" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"draws must be a whole number >= 1, got 0"):
        track.HARTTracker(ckpt, device="cpu", draws=0)
    with pytest.raises(SystemExit):
        track.main(["--video", str(root / "S0"), "--draws", "0"])
    assert "argument --draws: must be at least 1, got 0" in capsys.readouterr().err
    with pytest.raises(RuntimeError, match=r"update called before HARTTracker.init"):
        track.HARTTracker(ckpt, device="cpu").update(np.zeros((45, 60, 3), np.uint8))


def test_evaluate_a_folder_whole_sequences(model, tmp_path, capsys):
    params, cfg = model
    ckpt = str(tmp_path / "m.npz")
    save(ckpt, params, cfg)
    root = _sot_folder(tmp_path / "seqs")
    out = tmp_path / "ev"
    assert evaluate.main(["--checkpoint", ckpt, "--folder", str(root), "--out", str(out), "--adapt", str(ADAPT)]) == 0
    printed = capsys.readouterr().out
    assert "2 whole sequences: average IoU" in printed and "S0 | 6 |" in printed
    for name in ("sequences.csv", "results.json", "success_precision.png", "tracking.gif",
                 "results/S0.txt", "results/times/S1_time.txt"):
        assert (out / name).is_file(), name
    rows = (out / "sequences.csv").read_text().splitlines()
    assert rows[0] == "sequence,frames,avg_iou,auc,precision20,fps" and rows[-1].startswith("mean,12,")
    # the static baseline: the first box kept, scored by an independent computation
    assert evaluate.main(["--checkpoint", ckpt, "--folder", str(root), "--out", str(tmp_path / "st"), "--static"]) == 0
    capsys.readouterr()
    import json
    got = json.loads((tmp_path / "st" / "results.json").read_text())["per_sequence"]["S1"]["avg_iou"]
    gt = np.loadtxt(root / "S1" / "groundtruth_rect.txt", delimiter=",")
    x0, y0, w, h = gt[0]
    inter = [max(0, min(x0 + w, x + w2) - max(x0, x)) * max(0, min(y0 + h, y + h2) - max(y0, y)) for x, y, w2, h2 in gt]
    expected = np.mean([i / (w * h + w2 * h2 - i) for i, (_, _, w2, h2) in zip(inter, gt)])
    assert got == pytest.approx(expected, abs=1e-6)
    # --size-prior 1: every box has the first box's size (x, y, w, h files, 3 decimals)
    assert evaluate.main(["--checkpoint", ckpt, "--folder", str(root), "--out", str(tmp_path / "sp"),
                          "--size-prior", "1", "--adapt", str(ADAPT)]) == 0
    capsys.readouterr()
    fixed = np.loadtxt(tmp_path / "sp" / "results" / "S1.txt", delimiter=",")
    np.testing.assert_allclose(fixed[:, 2:], np.broadcast_to(gt[0, 2:], fixed[:, 2:].shape), atol=2e-3)
    assert evaluate.main(["--checkpoint", ckpt, "--folder", str(tmp_path / "none")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert evaluate.main(["--checkpoint", ckpt, "--static", "--dataset", "synthetic"]) == 2
    assert "--static scores whole real sequences" in capsys.readouterr().err


def test_box_conversion_round_trip_of_the_tracker_object(model, tmp_path):
    """HARTTracker scales boxes to the model's frame size and back: the first update of a
    tracker on an image twice the size moves the box by twice the pixels. Without first-frame
    adaptation: the larger image, downscaled (bilinear, with its filter), is a blurred copy of the
    smaller one, and 50 training steps on each would amplify that difference."""
    params, cfg = model
    ckpt = str(tmp_path / "m.npz")
    save(ckpt, params, cfg)
    rng = np.random.default_rng(1)
    small = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    big = np.repeat(np.repeat(small, 2, axis=0), 2, axis=1)
    t1, t2 = track.HARTTracker(ckpt, "cpu", adapt_steps=0), track.HARTTracker(ckpt, "cpu", adapt_steps=0)
    t1.init(small, [8, 5, 12, 10])
    t2.init(big, [16, 10, 24, 20])
    np.testing.assert_allclose(2 * t1.update(small), t2.update(big), atol=0.05)
    assert from_xywh(np.array([1.0, 2, 3, 4])).tolist() == [2, 1, 4, 3]
    os.remove(ckpt)


def test_the_shipped_checkpoint_tracks_the_real_clip_by_default(tmp_path, capsys):
    """``track`` without --checkpoint uses minihart/weights/real.npz; on notebook 10's real clip
    (60 frames of a validation sequence, where the walker crosses the frame) it must beat the
    static first box (0.415 average IoU, precision@20px 0.68) and stay on the target (the shipped
    checkpoint, three copies adapted to the first frame, with the size prior: 0.748 and 1.0; one
    copy, 0.734 and 1.0; not adapted, 0.633 and 1.0), and the got10k-style object must load the same
    checkpoint, trained at the `real` preset's frame size, and adapt it as the command does."""
    import json
    from pathlib import Path
    clip = Path(__file__).resolve().parents[1] / "tutorials" / "data" / "clip"
    assert os.path.getsize(track.DEFAULT_CHECKPOINT) < 2e6
    assert track.main(["--video", str(clip), "--out", str(tmp_path), "--no-video"]) == 0
    capsys.readouterr()
    r = json.loads((tmp_path / "clip.json").read_text())
    info = sot.read_sequence(clip)
    static = scoring.score_sequence(np.repeat(info.boxes[:1], len(info.boxes), axis=0), info.boxes, info.presence)
    assert r["avg_iou"] > static["avg_iou"] + 0.15, (r["avg_iou"], static["avg_iou"])
    assert r["precision20"] >= 0.95 > static["precision20"] + 0.2, (r["precision20"], static["precision20"])
    tracker = track.HARTTracker(device="cpu")
    assert tracker.cfg.name == "real" and tracker.cfg.box_from_object and not tracker.cfg.glimpse_grad
    assert tracker.cfg.image_hw == (120, 160) and tracker.cfg.scale_loss == 0.3 and tracker.size_prior == 0.5
    assert tracker.adapt_steps == 50 and tracker.draws == 3
    boxes, _ = tracker.track(info.images[:5], np.loadtxt(clip / "groundtruth_rect.txt", delimiter=",")[0])
    np.testing.assert_allclose(boxes, np.loadtxt(tmp_path / "clip.txt", delimiter=",")[:5], atol=0.02)
