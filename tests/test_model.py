"""The whole tracker: end-to-end gradient check through time, overfitting, presets, the tracker."""
from pathlib import Path

import numpy as np
import pytest

from minihart.backend import get_array_module
from minihart.boxes import iou
from minihart.gradcheck import check
from minihart.model import Config, Tracker, backward, count_params, forward, init_params, preset, sample_noise
from minihart.model.params import v1_shapes
from minihart.nn import attention
from minihart.mask_lost import forward_without_lost
from minihart.train import window_kicks

TINY = Config("tiny", 2, (8, 10), (
    ("conv", 4, 3, 1, (1, 1, 0, 2), 1), ("elu",), ("lrn",), ("pool", 2, 2),
    ("conv", 4, 3, 1, 1, 2), ("relu",)),
    ventral_maps=2, dfn=((1, 3), (3, 2)), n_units=6, mask_features=3, image_hw=(12, 14))


def _data(rng, B=2, T=3, C=2, H=12, W=14):
    yy, xx = np.mgrid[0:H, 0:W]
    frames = np.empty((B, T, C, H, W))
    boxes = np.empty((B, T, 4))
    for b in range(B):
        for t in range(T):
            cy, cx = 4 + t * 0.7 + b, 5 + t * 0.5 + b
            blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 6.0)
            frames[b, t] = 0.3 * rng.random((C, H, W)) + blob
            boxes[b, t] = [cy - 2.1, cx - 2.3, 4.2 + 0.1 * t, 4.6]
    presence = np.ones((B, T))
    presence[1, 2] = 0
    return frames, boxes, presence


@pytest.mark.parametrize("variant", ["paper", "context", "centre", "object", "detached", "state"])
def test_end_to_end_gradient_check_float64(xp, rng, variant, monkeypatch):
    """Every parameter block, T = 3, batch 2, dropout and zoneout masks fixed: rel. error < 1e-6.
    Runs on NumPy and, on a GPU machine, on CuPy (the same model code). ``context``: the
    attention loss against the object's context window (``context_attention``); ``centre``: that
    and DIoU's centre term and the squared log-size error in both box losses (``centre_loss``,
    ``scale_loss``), with kicked windows; ``object``: the
    context loss, and the box read out from the object's part of the window (``box_from_object``);
    ``detached``: that and no gradient from the glimpse to its window (``glimpse_grad=False``),
    checked against a forward that takes every glimpse at the window of the unperturbed run, while
    the windows' other uses (losses, read-outs, the next window) see the perturbed ones; ``state``: the
    ``object`` model started from a tracker's state after other frames (``train --run-in``), a
    constant of the check, every frame scored."""
    cfg = TINY.__class__(**{**TINY.to_dict(), "context_attention": variant != "paper",
                            "centre_loss": variant == "centre",
                            "box_from_object": variant in ("object", "detached", "state"),
                            "glimpse_grad": variant != "detached", "scale_loss": 0.8 * (variant == "centre")})
    params = {k: v.astype(np.float64) for k, v in init_params(cfg, rng).items()}
    for k in params:  # move read-outs away from their tiny init so every path carries gradient
        if k.endswith(".b") or k in ("att2.W", "box2.W"):
            params[k] = params[k] + 0.1 * rng.standard_normal(params[k].shape)
    params = {k: xp.asarray(v) for k, v in params.items()}
    frames, boxes, presence = (xp.asarray(a) for a in _data(rng))
    noise = sample_noise(TINY.__class__(**{**TINY.to_dict(), "zoneout": 0.3}), rng, 2, 3, xp)
    if variant == "centre":  # and the windows kicked (train --kick): constants added to a_{t+1}
        for t, kick in enumerate(window_kicks(rng, boxes, presence, (12, 14), 0.4, 1.0)):
            noise[t]["kick"] = kick

    state = None
    if variant == "state":  # where tracking two other frames left the model; no gradient flows into it
        other, other_boxes, _ = (xp.asarray(a) for a in _data(rng))
        tracker = Tracker(params, cfg).init(other[:, 0], other_boxes[:, 0])
        tracker.step(other[:, 1])
        state = tracker.state
    if variant == "detached":  # record the unperturbed run's windows, then glimpse only there
        real, windows, calls = attention.glimpse_forward, [], [0]
        monkeypatch.setattr(attention, "glimpse_forward", lambda x, a, hw: windows.append(a) or real(x, a, hw))
        forward(params, cfg, frames, boxes, presence, noise)

        def glimpse_at_recorded_window(x, a, hw):
            calls[0] += 1
            return real(x, windows[(calls[0] - 1) % len(windows)], hw)  # each forward glimpses len(windows) times
        monkeypatch.setattr(attention, "glimpse_forward", glimpse_at_recorded_window)

    def fwd(**p):
        out, cache = forward(p, cfg, frames, boxes, presence, noise, state=state)
        return out["loss"], cache

    def bwd(dout, cache):
        return {k: float(dout) * v for k, v in backward(cache).items()}

    # the DFN's gradients are ~1e-3 of a loss of ~3: h = 1e-6 would leave float64 round-off (~1e-9)
    # at 1e-6 of them (with the kicks, 1.5e-6 at h = 1e-6, 1.8e-7 at 1e-5), so they take h = 1e-5
    small = [k for k, v in params.items() if v.size <= 60 and not k.startswith("dfn")]
    dfn_small = [k for k, v in params.items() if v.size <= 60 and k.startswith("dfn")]
    large = [k for k, v in params.items() if v.size > 60]
    errs = check(fwd, bwd, params, wrt=small, max_elements=60)  # every element
    errs.update(check(fwd, bwd, params, wrt=dfn_small, max_elements=60, h=1e-5))
    errs.update(check(fwd, bwd, params, wrt=large, max_elements=60, n_directions=3, h=1e-5))  # random directions
    worst = max(errs, key=errs.get)
    assert errs[worst] < 1e-6, (worst, errs[worst])
    assert len(errs) == len(params)


def test_backward_returns_every_parameter_in_float32(rng):
    params = init_params(TINY, rng)
    frames, boxes, presence = (a.astype(np.float32) for a in _data(rng))
    out, cache = forward(params, TINY, frames, boxes, presence, sample_noise(TINY, rng, 2, 3))
    grads = backward(cache)
    assert set(grads) == set(params)
    assert all(g.dtype == np.float32 and g.shape == params[k].shape for k, g in grads.items())
    assert out["loss"].dtype == np.float32 and np.isfinite(float(out["loss"]))
    assert out["pred"].shape == (2, 3, 4) and out["maps"].shape[:2] == (2, 3)
    # no float64 creeps into the float32 path: every float array kept for backward is float32
    kept = [a for a in _arrays(cache) if a.dtype.kind == "f"]
    assert len(kept) > 50 and {a.dtype for a in kept} == {np.dtype(np.float32)}


def _arrays(tree):
    """Every ndarray inside nested tuples, lists and dicts."""
    if isinstance(tree, np.ndarray):
        yield tree
    elif isinstance(tree, (tuple, list)):
        for v in tree:
            yield from _arrays(v)
    elif isinstance(tree, dict):
        for v in tree.values():
            yield from _arrays(v)


@pytest.mark.slow
def test_loss_decreases_when_overfitting_one_batch(rng):
    from minihart.optim import Adam
    cfg = preset("synthetic", n_units=24, dfn=((1, 3), (3, 3)))
    params = init_params(cfg, rng)
    frames, boxes, presence = (a.astype(np.float32) for a in _data(rng, B=3, T=4, C=1, H=30, W=40))
    opt = Adam(lr=3e-3)
    first = None
    for _ in range(150):
        out, cache = forward(params, cfg, frames, boxes, presence)
        opt.step(params, backward(cache))
        first = first if first is not None else float(out["terms"]["tracking"])
    assert float(out["terms"]["tracking"]) < 0.5 * first


@pytest.mark.parametrize("name, total", [("kitti", 1_670_192), ("kth", 268_208), ("synthetic", 120_496),
                                         ("real", 298_808)])
def test_parameter_counts_are_those_the_readme_states(name, total):
    counts = count_params(init_params(preset(name), np.random.default_rng(0)))
    print(f"{name} parameters per block:", counts)
    assert counts["total"] == total
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert f"| `{name}` |" in readme and f"| {total:,} " in readme, f"README.md does not state {total:,} for {name}"


def test_kitti_preset_runs_on_a_full_frame(rng):
    cfg = preset("kitti")
    params = init_params(cfg, rng)
    assert v1_shapes(cfg)[1] == (384, 14, 14)
    frames = rng.random((1, 2, 3, 375, 1242)).astype(np.float32)
    boxes = np.tile(np.array([150, 600, 60, 120], np.float32), (1, 2, 1))
    out, _ = forward(params, cfg, frames, boxes, np.ones((1, 2), np.float32))
    assert out["pred"].shape == (1, 2, 4) and np.isfinite(out["pred"]).all()


def test_a_window_started_from_the_run_in_state_continues_the_whole_sequence(rng):
    """train --run-in: tracking the first frame (run_in) and then the window from the state it left gives
    the whole sequence's boxes and windows (eval mode), and the window's first frame is scored."""
    from minihart.train import run_in
    params = init_params(TINY, rng)
    frames, boxes, presence = (a.astype(np.float32) for a in _data(rng, T=4))
    whole, _ = forward(params, TINY, frames, boxes, presence)
    state = run_in(params, TINY, frames[:, :1], boxes[:, 0])
    part, cache = forward(params, TINY, frames[:, 1:], boxes[:, 1:], presence[:, 1:], state=state)
    np.testing.assert_allclose(part["pred"], whole["pred"][:, 1:], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(part["att"], whole["att"][:, 1:], rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(part["presence"], presence[:, 1:])
    assert not whole["presence"][:, 0].any()
    assert cache.sequence.init is None and set(backward(cache)) == set(params)
    out, _ = forward_without_lost(params, TINY, frames[:, 1:], boxes[:, 1:], presence[:, 1:], None, state=state)
    np.testing.assert_array_equal(out["presence"], presence[:, 1:])


def test_tracker_matches_sequence_forward_in_eval_mode(rng):
    params = init_params(TINY, rng)
    frames, boxes, presence = (a.astype(np.float32) for a in _data(rng))
    out, _ = forward(params, TINY, frames, boxes, presence)
    tr = Tracker(params, TINY).init(frames[:, 0], boxes[:, 0])
    for t in range(1, 3):
        np.testing.assert_allclose(tr.step(frames[:, t]), out["pred"][:, t], rtol=1e-5, atol=1e-4)
    single = Tracker(params, TINY).init(frames[0, 0], boxes[0, 0])
    np.testing.assert_allclose(single.step(frames[0, 1]), out["pred"][0, 1], rtol=1e-5, atol=1e-4)


def test_bad_inputs_raise_value_error(rng):
    params = init_params(TINY, rng)
    frames, boxes, presence = _data(rng)
    with pytest.raises(ValueError, match="frames must be"):
        forward(params, TINY, frames[:, :, :1], boxes, presence)
    with pytest.raises(ValueError, match="boxes must be"):
        forward(params, TINY, frames, boxes[:, :2], presence)
    bad = boxes.copy()
    bad[0, 0, 2] = 0
    with pytest.raises(ValueError, match="boxes"):
        forward(params, TINY, frames, bad, presence)
    with pytest.raises(ValueError, match="unknown preset"):
        preset("nope")
    with pytest.raises(RuntimeError, match="init"):
        Tracker(params, TINY).step(frames[0, 0])
    video = (frames * 255).astype(np.uint8)  # raw video used to run silently at 255 times the scale
    with pytest.raises(ValueError, match="frames must be floating point in .0, 1., got uint8"):
        forward(params, TINY, video, boxes, presence)
    with pytest.raises(ValueError, match="frame must be floating point in .0, 1., got uint8.*to_float_frames"):
        Tracker(params, TINY).init(video[0, 0], boxes[0, 0])
    with pytest.raises(ValueError, match=r"box must be \[y, x, h, w\] .* got shape \(3,\)"):
        Tracker(params, TINY).init(frames[0, 0], boxes[0, 0, :3])
    with pytest.raises(ValueError, match=r"B = 2 frames, got shape \(4,\)"):
        Tracker(params, TINY).init(frames[:, 0], boxes[0, 0])
    Tracker(params, TINY).init(frames[:1, 0], boxes[0, 0])  # one frame of a batch and its box: fine


@pytest.mark.parametrize("field, value, message", [
    ("n_units", 0, "n_units and mask_features must be positive"),  # was a ZeroDivisionError in init
    ("dropout", 1.5, "dropout must be in .0, 1."), ("zoneout", -0.1, "dropout must be in .0, 1."),
    ("dfn", ((4, 2),), "odd kernel"), ("l2", -1.0, "l2 >= 0"), ("scale_loss", -0.5, "scale_loss >= 0"),
    ("glimpse_hw", (1, 5), "two ints >= 2")])
def test_preset_values_no_layer_could_use_are_named(field, value, message):
    with pytest.raises(ValueError, match=f"preset 'kth': .*{message}"):
        preset("kth", **{field: value})


def test_a_v1_that_does_not_fit_its_glimpse_is_named():
    with pytest.raises(ValueError, match="does not fit its 27x27 input"):
        init_params(preset("kth", glimpse_hw=(27, 27)), np.random.default_rng(0))


def test_noise_is_drawn_on_the_device_reproducibly(xp):
    """Masks come out on ``xp``'s device (CuPy draws them there from a seed taken from ``rng``),
    equal for equal seeds, keeping units at the rates of the config."""
    cfg = TINY.__class__(**{**TINY.to_dict(), "zoneout": 0.3, "dropout": 0.25})
    a, b = (sample_noise(cfg, np.random.default_rng(5), 64, 3, xp) for _ in range(2))
    for d, e in zip(a, b):
        for k in ("drop", "zh", "zc"):
            assert get_array_module(d[k]) is xp and d[k].dtype == np.float32
            assert bool((d[k] == e[k]).all())
        assert abs(float(d["drop"].mean()) - 0.75) < 0.05 and abs(float(d["zh"].mean()) - 0.3) < 0.06


def test_training_and_tracking_steps_never_wait_for_the_device(rng, emulator):
    """What makes a GPU step fast, checked on the CPU: forward (check_boxes=False), backward,
    clipping, the RMSProp update and a tracking step queue their work and never read an array
    back (no ``float``/``bool``/``asnumpy`` of a device array: each would wait for the GPU).
    They run on the CuPy emulator, fused kernels included, with host reads switched off."""
    import cupy_emulator
    from minihart.optim import RMSProp, clip_by_global_norm

    params = cupy_emulator.to_device(init_params(TINY, rng))
    frames, boxes, presence = cupy_emulator.to_device([a.astype(np.float32) for a in _data(rng)])
    noise = sample_noise(TINY, rng, 2, 3, get_array_module(frames))
    tracker = Tracker(params, TINY).init(frames[:, 0], boxes[:, 0])  # checks the box: reads once
    with cupy_emulator.no_host_reads():
        with pytest.raises(cupy_emulator.HostRead):  # the trap works: the box check reads
            forward(params, TINY, frames, boxes, presence, noise)
        out, cache = forward(params, TINY, frames, boxes, presence, noise, check_boxes=False)
        grads, norm = clip_by_global_norm(backward(cache), 0.3)
        RMSProp().step(params, grads)
        box = tracker.step(frames[:, 1])
    assert all(get_array_module(v) is not np for v in [out["loss"], norm, box, *grads.values()])


def test_a_kick_moves_the_next_window_by_itself_and_stays_within_the_object_s_size(rng):
    """train --kick: each kick (B, 4) is added to a_{t+1} as it is; it moves the window's centre by at
    most ``size`` times the object's height and width and resizes it by as much, at about ``prob`` of
    the steps, never where the object is absent."""
    frames, boxes, presence = _data(rng, B=2, T=3)
    params = init_params(TINY, rng)
    kicks = window_kicks(rng, boxes, presence, (12, 14), 0.5, 1.0)
    noise = sample_noise(TINY, rng, 2, 3)
    plain, _ = forward(params, TINY, frames, boxes, presence, noise)
    noise[0]["kick"] = kicks[0]
    kicked, _ = forward(params, TINY, frames, boxes, presence, noise)
    assert np.allclose(kicked["att"][:, 1] - plain["att"][:, 1], kicks[0] * [12, 14, 12, 14])
    assert np.array_equal(kicked["att"][:, 0], plain["att"][:, 0])
    many = np.stack(window_kicks(rng, np.tile(boxes, (200, 1, 1)), np.tile(presence, (200, 1)), (12, 14), 0.5, 0.3))
    size = np.tile(boxes, (200, 1, 1)).transpose(1, 0, 2)[..., 2:] / [12, 14]  # (T, B, 2)
    centre_shift = many[..., :2] + many[..., 2:] / 2
    assert np.all(np.abs(centre_shift) <= 0.5 * size + 1e-12) and np.all(np.abs(many[..., 2:]) <= 0.5 * size + 1e-12)
    assert np.all(many[2, 1::2] == 0)  # presence[1, 2] == 0: the tiled odd rows are absent there
    present = np.tile(presence, (200, 1)).T > 0
    assert 0.25 < np.mean(np.any(many != 0, axis=-1)[present]) < 0.35
    assert not np.any(np.stack(window_kicks(rng, boxes, presence, (12, 14), 0.5, 0.0)))


def test_map_lost_keeps_the_lost_frames_in_the_location_maps_term_only(rng):
    """train --mask-lost --map-lost: a lost frame leaves the box terms (as forward with its presence 0)
    but stays in the location map's term (as forward with it 1, target "nothing here"); float64
    gradients of that loss match centred differences."""
    cfg = Config(**{**TINY.to_dict(), "context_attention": True, "box_from_object": True})
    frames, boxes, presence = _data(rng)
    params = {k: v.astype(np.float64) + (0.1 * rng.standard_normal(v.shape) if k.endswith(".b") else 0)
              for k, v in init_params(cfg, rng).items()}
    noise = sample_noise(cfg, rng, 2, 3)
    far = boxes.copy()
    far[0, 2] = [100.0, 120.0, 3.0, 3.0]  # truth of sequence 0, frame 2: away from window and box
    dropped = presence.copy()
    dropped[0, 2] = 0
    out_k, _ = forward_without_lost(params, cfg, frames, far, presence, noise, map_lost=True)
    out_d, _ = forward(params, cfg, frames, far, dropped, noise)
    out_f, _ = forward(params, cfg, frames, far, presence, noise)
    assert out_k["terms"]["tracking"] == out_d["terms"]["tracking"]
    assert out_k["terms"]["attention"] == out_d["terms"]["attention"]
    assert out_k["terms"]["appearance"] == out_f["terms"]["appearance"] != out_d["terms"]["appearance"]
    out_m, _ = forward_without_lost(params, cfg, frames, far, presence, noise)  # --map-lost off: as before
    assert out_m["terms"]["appearance"] == out_d["terms"]["appearance"]

    def fwd(**p):
        out, cache = forward_without_lost(p, cfg, frames, far, presence, noise, map_lost=True)
        return out["loss"], cache

    def bwd(dout, cache):
        return {k: float(dout) * v for k, v in backward(cache).items()}

    blocks = ["locmap.W", "locmap.b", "ventral.b", "v1.conv1.b", "box2.b", "att2.b", "loss_v"]
    errs = check(fwd, bwd, params, wrt=blocks, max_elements=60)
    assert max(errs.values()) < 1e-6, errs


def test_mask_lost_leaves_exactly_the_lost_frames_out_of_the_loss(rng):
    """train --mask-lost: where neither the window nor the box has lost the object, the loss and every
    gradient are forward's; a frame whose truth is moved far from both, or off the box alone, is scored
    as IoU 0 but left out of the loss, exactly as forward with that frame's presence 0 (whose gradients
    the float64 model check covers)."""
    cfg = Config(**{**TINY.to_dict(), "context_attention": True, "box_from_object": True})
    frames, boxes, presence = _data(rng)
    params = init_params(cfg, rng)
    noise = sample_noise(cfg, rng, 2, 3)
    out, cache = forward(params, cfg, frames, boxes, presence, noise)
    out_m, cache_m = forward_without_lost(params, cfg, frames, boxes, presence, noise)
    assert np.all(out["iou"][:, 1:][presence[:, 1:] > 0] > 0)  # nothing lost here
    assert out_m["loss"] == out["loss"]
    assert all(np.array_equal(v, backward(cache_m)[k]) for k, v in backward(cache).items())
    far = boxes.copy()
    far[0, 2] = [100.0, 120.0, 3.0, 3.0]  # truth of sequence 0, frame 2: away from window and box
    out_m, cache_m = forward_without_lost(params, cfg, frames, far, presence, noise)
    dropped = presence.copy()
    dropped[0, 2] = 0
    out_d, cache_d = forward(params, cfg, frames, far, dropped, noise)
    assert out_m["loss"] == out_d["loss"] and out_m["presence"][0, 2] == 1 and out_m["iou"][0, 2] == 0
    assert all(np.array_equal(v, backward(cache_m)[k]) for k, v in backward(cache_d).items())
    out_f, _ = forward(params, cfg, frames, far, presence, noise)
    assert out_f["loss"] > out_m["loss"] + 1  # the lost frame's -log(eps) terms are gone
    # lost by the box alone: a small truth inside the window (its context overlaps it), off the box
    y, x, h, w = out["att"][0, 2]
    pred = out["pred"][0, 2]
    inside = [[y + i * h / 8, x + j * w / 8, 0.3, 0.3] for i in range(8) for j in range(8)]
    near = boxes.copy()
    near[0, 2] = next(b for b in inside if iou(np.array(b), pred) == 0)
    out_m, cache_m = forward_without_lost(params, cfg, frames, near, presence, noise)
    out_d, cache_d = forward(params, cfg, frames, near, dropped, noise)
    assert out_m["loss"] == out_d["loss"]
