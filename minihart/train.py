"""``python -m minihart.train --dataset synthetic|kth|kitti``: train HART and keep everything.

A run folder (``--out``, default ``runs/<dataset>-<time>``) receives ``config.json``,
``metrics.csv`` (one row per evaluation), ``training.png`` (loss terms, learned loss weights,
IoU), ``last.npz`` and ``best.npz`` checkpoints (for real footage also ``best-prior.npz``, chosen
with the tracker's size prior) and, at the end, ``eval/`` (results, IoU-over-time and success
plots, a tracking GIF). Checkpoints hold parameters, optimiser, curriculum and RNG
state, are written atomically, and ``--resume RUNDIR`` continues the same run bit for bit on CPU.

Defaults follow the paper (section 5): RMSProp with momentum 0.9, learning rate 3.33e-5 (KTH)
and 3.33e-6 (KITTI), a curriculum from T = 5. The synthetic set, which must train in about ten
minutes on a 2-core CPU, uses a larger learning rate, 1e-4 (at 3e-4 the held-out IoU collapsed
once the curriculum passed T = 17; at 1e-4 it stayed above 0.85 up to T = 25 in the same steps).
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import math
import os
import sys
import time

import numpy as np

from minihart.backend import array_module, asnumpy, get_array_module, resolve_device, to_device
from minihart.checkpoint import atomic_savez, load, save  # noqa: F401  (atomic_savez: re-exported for tests)
from minihart.cli import keep_freed_memory, number
from minihart.data.batching import Curriculum, DatasetNotPrepared
from minihart.model import Tracker, backward, count_params, forward, init_params, preset, sample_noise
from minihart.mask_lost import forward_without_lost
from minihart.optim import OPTIMIZERS, clip_by_global_norm
from minihart.runs import open_dataset, run_info  # noqa: F401  (run_info re-exported)

DEFAULTS = {  # per dataset: preset, optimiser, learning rate, batch size, curriculum, budget
    "synthetic": dict(preset="synthetic", optimizer="rmsprop", lr=1e-4, batch_size=16, minutes=10.0,
                      epoch_steps=50, threshold=0.6, min_epochs=1, max_len=30, eval_every=100),
    "kth": dict(preset="kth", optimizer="rmsprop", lr=3.33e-5, batch_size=16, minutes=None,
                epoch_steps=None, threshold=0.7, min_epochs=13, max_len=30, eval_every=500),
    "kitti": dict(preset="kitti", optimizer="rmsprop", lr=3.33e-6, batch_size=10, minutes=None,
                  epoch_steps=None, threshold=0.7, min_epochs=13, max_len=30, eval_every=500),
    # real footage (README "Real footage"): the recipe that won on the mini-set's val/ split
    "sot": dict(preset="real", optimizer="adam", lr=3e-4, batch_size=8, minutes=30.0, epoch_steps=50,
                threshold=0.5, min_epochs=1, max_len=60, eval_every=200, box_jitter=1.6, lr_decay="cosine",
                ema=0.999, kick=0.5, mask_lost=True, map_lost=True, occlude=0.3, zoom_drift=2.0,
                stills=0.3),
}
COMMON_DEFAULTS = dict(clip=0.3, seed=0, eval_sequences=64, start_len=5, max_stride=3, max_zoom=1.5, box_jitter=1.0,
                       mix=0.0, distract=0.0, patches=0.0, stretch=1.0, photo=0.0, zoom_drift=1.0, occlude=0.0,
                       stills=0.0, lr_decay="none", ema=0.0, kick=0.0, kick_prob=0.1, run_in=0.0, mask_lost=False,
                       map_lost=False, v1_init="random", freeze_v1=False)
# the settings a run is made with: a resumed run keeps them (data_root may change: data can move)
RUN_FLAGS = ("preset", "channels", "frame_size", "model", "init_from", "optimizer", "lr", "batch_size", "epoch_steps",
             "threshold", "min_epochs", "start_len", "max_len", "eval_every", "clip", "seed", "eval_sequences",
             "max_stride", "max_zoom", "box_jitter", "mix", "distract", "patches", "stretch", "photo", "zoom_drift",
             "occlude", "stills", "lr_decay", "ema", "kick", "kick_prob", "run_in", "mask_lost", "map_lost",
             "v1_init", "freeze_v1")
# sot augmentation
SOT_FLAGS = ("max_stride", "max_zoom", "box_jitter", "mix", "distract", "patches", "stretch", "photo",
             "zoom_drift", "occlude", "stills")
OPTIONS = dict(dataset=None, preset=None, channels=None, frame_size=None, model=None, init_from=None, device="auto",
               steps=None, minutes=None, batch_size=None, lr=None, optimizer=None, clip=None, seed=None,
               out=None, resume=None, data_root=None, difficulty=None, alexnet=None, dcfnet=None, eval_every=None,
               eval_sequences=None, epoch_steps=None, threshold=None, min_epochs=None, start_len=None,
               max_len=None, max_stride=None, max_zoom=None, box_jitter=None, mix=None, distract=None, patches=None,
               stretch=None, photo=None, zoom_drift=None, occlude=None, stills=None,
               lr_decay=None, ema=None, kick=None, kick_prob=None, run_in=None, mask_lost=None, map_lost=None,
               v1_init=None, freeze_v1=None, skip_nonfinite=False,
               quiet=False)
METRICS = ["step", "seq_len", "loss", "tracking", "attention", "appearance", "l2", "lambda_tracking",
           "lambda_attention", "lambda_appearance", "train_iou", "test_iou", "skipped", "seconds", "test_iou_prior"]


class TrainingError(Exception):
    """A problem the user can fix; printed without a traceback."""


def _write_csv(path, history):
    buf = io.StringIO()
    w = csv.DictWriter(buf, METRICS, restval="nan")  # restval: rows of runs made before a column existed
    w.writeheader()
    w.writerows(history)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(buf.getvalue())
    os.replace(tmp, path)


def _save(path, params, cfg, opt, run, state, ema=None):
    sd = opt.state_dict()
    extra = {f"opt/{k}": asnumpy(v) for k, v in sd["slots"].items()}
    extra.update({f"ema/{k}": v for k, v in (ema or {}).items()})
    extra["opt_meta"] = json.dumps({"t": sd["t"], "lr": sd["lr"]})
    extra["run"] = json.dumps(run)
    extra["state"] = json.dumps(state)
    save(path, params, cfg, **extra)


def _load_run(run_dir, device):
    path = os.path.join(run_dir, "last.npz")
    if not os.path.isfile(path):
        raise TrainingError(f"--resume {run_dir!r}: no checkpoint {path!r} (was the run started with --out {run_dir}?)")
    try:
        params, cfg, extra = load(path)
    except ValueError as exc:
        raise TrainingError(str(exc)) from None
    run, state = json.loads(str(extra["run"])), json.loads(str(extra["state"]))
    opt = OPTIMIZERS[run["optimizer"]](lr=run["lr"])
    meta = json.loads(str(extra["opt_meta"]))
    opt.load_state_dict({"t": meta["t"], "lr": meta["lr"],
                         "slots": {k[4:]: to_device(v, device) for k, v in extra.items() if k.startswith("opt/")}})
    ema = {k[4:]: to_device(v, device) for k, v in extra.items() if k.startswith("ema/")} or None
    return to_device(params, device), cfg, opt, run, state, ema


def _model_config(run):
    """The run's model: its preset (with ``channels`` and ``frame_size`` replaced when given), or
    with ``init_from`` the configuration of that checkpoint, whose parameters it starts from."""
    overrides = {k: v for k, v in (("channels", run["channels"]), ("image_hw", run["frame_size"])) if v}
    overrides.update(dict(run.get("model") or {}))
    if run.get("dcfnet"):  # DCFNet's layers in place of the preset's V1 (their weights: _new_run)
        from minihart.checkpoint import DCFNET_V1  # noqa: PLC0415
        overrides["v1"] = DCFNET_V1
    try:
        cfg = preset(run["preset"], **overrides)
    except ValueError as exc:
        raise TrainingError(str(exc)) from None
    if not run["init_from"]:
        return cfg, None
    try:
        params, start_cfg, _ = load(run["init_from"])
    except ValueError as exc:
        raise TrainingError(f"--init-from: {exc}") from None
    # the checkpoint's model in this run's frame size (and --set fields); its channels must match
    if run["channels"] and run["channels"] != start_cfg.channels:
        raise TrainingError(f"--init-from {run['init_from']!r} has {start_cfg.channels} channels, not "
                            f"--channels {run['channels']}")
    try:
        cfg = dataclasses.replace(start_cfg, **{**dict(run.get("model") or {}), "image_hw": cfg.image_hw})
    except (TypeError, ValueError) as exc:
        raise TrainingError(f"--init-from: {exc}") from None
    return cfg, params


def _new_run(opts):
    opts["dataset"] = opts["dataset"] or "synthetic"
    given = [k for k in SOT_FLAGS if opts.get(k) is not None]
    if given and opts["dataset"] != "sot":  # they would do nothing: say so rather than ignore them
        raise TrainingError(f"{', '.join('--' + k.replace('_', '-') for k in given)}: "
                            f"only for --dataset sot, not {opts['dataset']}")
    d = {**COMMON_DEFAULTS, **DEFAULTS[opts["dataset"]]}
    run = {k: opts[k] if opts.get(k) is not None else d.get(k) for k in RUN_FLAGS}
    run.update(dataset=opts["dataset"], data_root=opts["data_root"], difficulty=opts["difficulty"],
               skip_nonfinite=opts["skip_nonfinite"])
    if run["v1_init"] == "kmeans" and (run["init_from"] or opts["alexnet"]):  # it would overwrite their V1
        other = "--init-from" if run["init_from"] else "--alexnet"
        raise TrainingError(f"--v1-init kmeans sets V1 afresh: not with {other}")
    if run["zoom_drift"] > 1 and run["stretch"] > 1:
        raise TrainingError(f"--zoom-drift and --stretch: one at a time (the drifting zoom keeps the aspect ratio); "
                            f"this run's zoom drifts (--zoom-drift {run['zoom_drift']:g}; the sot recipe's default is "
                            f"{DEFAULTS['sot']['zoom_drift']:g}): --zoom-drift 1 turns it off")
    run["dcfnet"] = opts["dcfnet"]
    if run["dcfnet"] and (run["init_from"] or opts["alexnet"] or run["v1_init"] == "kmeans"):
        other = "--init-from" if run["init_from"] else "--alexnet" if opts["alexnet"] else "--v1-init kmeans"
        raise TrainingError(f"--dcfnet sets V1's layers and weights: not with {other}")
    cfg, start = _model_config(run)
    rng = np.random.default_rng(run["seed"])
    params = init_params(cfg, rng)
    if start is not None:
        params.update({k: v.astype(params[k].dtype) for k, v in start.items()})
    if opts["alexnet"]:
        from minihart.checkpoint import load_alexnet  # noqa: PLC0415
        params = load_alexnet(params, opts["alexnet"])
    if run["dcfnet"]:
        from minihart.checkpoint import load_dcfnet  # noqa: PLC0415
        try:
            params = load_dcfnet(params, run["dcfnet"])
        except (OSError, ValueError) as exc:
            raise TrainingError(f"--dcfnet: {exc}") from None
    cur = Curriculum(start=min(run["start_len"], run["max_len"]), stop=run["max_len"], threshold=run["threshold"],
                     min_epochs=run["min_epochs"])
    state = dict(step=0, curriculum=vars(cur), rng=rng.bit_generator.state, history=[], best=-1.0,
                 skipped=0, epoch=dict(n=0, iou=0.0, count=0), acc={}, seconds=0.0, stop=_stop(opts, d))
    opt = OPTIMIZERS[run["optimizer"]](lr=run["lr"])
    return params, cfg, opt, run, state


def _stop(opts, d, before=None):
    """When the run ends: ``{"steps": n or None, "minutes": m or None}``. Given flags win; a
    resumed run otherwise keeps what it was started with (``before``), a new one takes the
    dataset's default (minutes, or 10,000 steps)."""
    if opts["steps"] is not None or opts["minutes"] is not None:
        return dict(steps=opts["steps"], minutes=opts["minutes"])
    if before is not None:
        return before
    return dict(steps=None, minutes=d["minutes"]) if d["minutes"] else dict(steps=10000, minutes=None)


class Progress:
    """A tqdm bar on a terminal; in a log file (not a terminal) one plain line every
    ``interval`` seconds instead of a carriage-return update for every step."""

    def __init__(self, total, initial, desc, disable, interval=30.0, stream=None):
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.disable, self.interval, self.desc = disable, interval, desc
        self.n, self.total, self.postfix, self.last = initial, total, {}, time.perf_counter()
        self.bar = None
        if self.tty and not disable:
            from tqdm import tqdm  # noqa: PLC0415
            self.bar = tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True,
                            file=self.stream)

    def update(self, postfix):
        self.n += 1
        self.postfix = postfix
        if self.bar is not None:
            self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(1)
        elif not self.disable and time.perf_counter() - self.last >= self.interval:
            self.last = time.perf_counter()
            self.write(f"{self.desc}: step {self.n}{'/' + str(self.total) if self.total else ''} "
                       + " ".join(f"{k}={v}" for k, v in postfix.items()))

    def write(self, line):
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        elif not self.disable:
            print(line, file=self.stream, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def window_kicks(rng, boxes, presence, image_hw, size, prob):
    """``--kick``: at a random ``prob`` of the steps the next attention window is moved by up to ``size``
    times the object's height and width and made larger or smaller by as much (about its centre), so
    that the model learns to bring a misplaced window back onto the object, as it must after its own
    errors on a long sequence. ``boxes (B, T, 4)`` pixels, ``presence (B, T)``; returns ``T`` kicks
    ``(B, 4)`` in the attention's units (the frame's height and width), zero where the object is absent."""
    xp = get_array_module(boxes)
    B, T = boxes.shape[:2]
    u = xp.asarray((rng.uniform(-size, size, (B, T, 4)) * (rng.random((B, T, 1)) < prob)).astype(boxes.dtype))
    hw = boxes[..., 2:] * presence[..., None] / xp.asarray(image_hw, boxes.dtype)
    kick = xp.concatenate([(u[..., :2] - u[..., 2:] / 2) * hw, u[..., 2:] * hw], axis=-1)
    return [kick[:, t] for t in range(T)]


def run_in(params, cfg, frames, box0):
    """``--run-in``: the model tracks ``frames (B, w, C, H, W)`` from the boxes ``box0 (B, 4)`` as it does
    on a video (no dropout, no loss, no gradient) and returns its state after them; the training window
    that follows starts from it, so the model learns from the states its own errors lead to on a long
    video (truncated backpropagation through time, the earlier pieces not backpropagated)."""
    tracker = Tracker(params, cfg).init(frames[:, 0], box0)
    for t in range(1, frames.shape[1]):
        tracker.step(frames[:, t])
    return tracker.state


def evaluate_during_training(params, cfg, test_set, run, xp):
    """The held-out scores ``(test_iou, test_iou_prior)``. ``test_iou`` picks ``best.npz``: for real
    footage (``sot``) the average IoU over whole validation sequences (first box to last frame, the
    measure the README reports, of the model's own boxes: no size prior), else the average IoU over
    ``eval_sequences`` windows spread evenly over the held-out set. ``test_iou_prior`` (``sot`` only,
    else None): the same tracking scored with the tracker's size prior (``minihart.scoring``), which
    picks ``best-prior.npz``."""
    if run["dataset"] == "sot":
        from minihart.scoring import mean_iou_by_prior  # noqa: PLC0415
        return tuple(mean_iou_by_prior(params, cfg, test_set, xp))
    from minihart.evaluate import evaluate  # noqa: PLC0415
    eval_len = {"synthetic": 30, "kth": 30, "kitti": 60}[run["dataset"]]
    return evaluate(params, cfg, test_set, eval_len, 16, run["eval_sequences"], xp)["mean_iou"], None


def train(args=None, **options) -> str:
    """Train (or resume) a run; returns the run folder. Options are the command's flags as
    keywords (``train(dataset="sot", data_root="data/real-sot", minutes=5)``; see ``--help``);
    an ``argparse.Namespace`` of them is accepted too."""
    opts = dict(OPTIONS)
    unknown = set(options) - set(OPTIONS) - {"no_final_eval"}
    if unknown:
        raise TypeError(f"train: unknown options {sorted(unknown)}; see python -m minihart.train --help")
    opts.update(vars(args) if args is not None else {}, **options)
    if opts["model"] is not None:  # [(field, value), ...] or a dict, as stored in JSON
        opts["model"] = json.loads(json.dumps(dict(opts["model"])))
    device = resolve_device(opts["device"])
    xp = array_module(device)
    if opts["resume"]:
        params, cfg, opt, run, state, ema = _load_run(opts["resume"], device)
        out = opts["resume"]
        run["skip_nonfinite"] = run["skip_nonfinite"] or opts["skip_nonfinite"]
        run.setdefault("lr_decay", "none")  # runs made before the decay, the average and the kicks had none
        run.setdefault("ema", 0.0)
        run.setdefault("kick", 0.0)
        run.setdefault("mask_lost", False)
        run.setdefault("map_lost", False)
        run.setdefault("occlude", 0.0)  # and before the occluders joined the sot recipe
        run.setdefault("zoom_drift", 1.0)  # or before the zoom drifted
        run.setdefault("stills", 0.0)  # or before still windows
        for k, v in {**COMMON_DEFAULTS, **DEFAULTS[run["dataset"]]}.items():  # runs made before a setting existed
            run.setdefault(k, v)
        for flag in ("dataset", "difficulty") + RUN_FLAGS:  # silently ignoring them would surprise
            given = opts.get(flag)
            if given is not None and given != run.get(flag):
                name = "--" + flag.replace("_", "-")
                raise TrainingError(f"--resume {out!r}: the run was made with {name} {run.get(flag)}, not {given}; "
                                    "a resumed run keeps its settings (start a new run to change them)")
        for flag in ("alexnet", "dcfnet"):
            if opts[flag]:
                raise TrainingError(f"--{flag} initialises a new run; a resumed run continues from its checkpoint")
        run["data_root"] = opts["data_root"] or run["data_root"]
        state["stop"] = _stop(opts, DEFAULTS[run["dataset"]], state.get("stop"))
    else:
        params, cfg, opt, run, state = _new_run(opts)
        params = to_device(params, device)
        ema = {k: v.copy() for k, v in params.items()} if run["ema"] else None
        out = opts["out"] or os.path.join("runs", f"{opts['dataset']}-{time.strftime('%Y%m%d-%H%M%S')}")
        if os.path.exists(os.path.join(out, "last.npz")):
            raise TrainingError(f"{out!r} already holds a run; continue it with --resume {out} or pick another --out")
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "config.json"), "w") as f:
            json.dump(dict(run=run, model=cfg.to_dict()), f, indent=1)
    steps, minutes = state["stop"]["steps"], state["stop"]["minutes"]
    sot = {k: run[k] for k in SOT_FLAGS} if run["dataset"] == "sot" else {}
    train_set = open_dataset(run["dataset"], "train", cfg, run["data_root"], run["difficulty"], **sot)
    test_set = open_dataset(run["dataset"], "test", cfg, run["data_root"], run["difficulty"])
    rng = np.random.default_rng()
    rng.bit_generator.state = state["rng"]
    if run["v1_init"] == "kmeans" and state["step"] == 0:  # its seconds count in the run's budget
        from minihart.kmeans import kmeans_v1  # noqa: PLC0415
        t0 = time.perf_counter()
        params = to_device(kmeans_v1(asnumpy(params), cfg, train_set, rng), device)
        ema = {k: v.copy() for k, v in params.items()} if ema is not None else None
        state["seconds"] += time.perf_counter() - t0
    cur = Curriculum(**state["curriculum"])
    B = run["batch_size"]

    def checkpoint():
        acc = state["acc"]
        n = max(acc.get("n", 0), 1)
        row = {k: acc.get(k, 0.0) / n for k in METRICS[2:11]}
        test_iou, test_iou_prior = evaluate_during_training(ema or params, cfg, test_set, run, xp)
        row.update(step=state["step"], seq_len=cur.seq_len, skipped=state["skipped"], test_iou=test_iou,
                   seconds=round(state["seconds"], 1),
                   test_iou_prior=math.nan if test_iou_prior is None else test_iou_prior)  # nan: not sot
        state["history"].append(row)
        state["acc"] = {}
        state.update(curriculum=vars(cur), rng=rng.bit_generator.state)
        is_best = row["test_iou"] > state["best"]
        state["best"] = max(state["best"], row["test_iou"])
        is_best_prior = test_iou_prior is not None and test_iou_prior > state.get("best_prior", -1.0)
        if is_best_prior:
            state["best_prior"] = test_iou_prior
        _save(os.path.join(out, "last.npz"), params, cfg, opt, run, state, ema)
        if is_best:  # the parameters that were scored: with --ema, the average
            _save(os.path.join(out, "best.npz"), ema or params, cfg, opt, run, state)
        if is_best_prior:  # the same, chosen with the size prior (sot)
            _save(os.path.join(out, "best-prior.npz"), ema or params, cfg, opt, run, state)
        _write_csv(os.path.join(out, "metrics.csv"), state["history"])
        from minihart.viz import plot_history  # noqa: PLC0415
        plot_history(state["history"], os.path.join(out, "training.png"))
        return row

    if not opts["quiet"]:
        counts = count_params(params)
        print(f"preset {cfg.name}: {counts.pop('total'):,} parameters ("
              + ", ".join(f"{k} {v:,}" for k, v in counts.items()) + f"); run folder {out}", flush=True)
    bar = Progress(steps, state["step"], f"train {run['dataset']}", opts["quiet"])
    t_start = time.perf_counter() - state["seconds"]
    eval_every = run["eval_every"]
    epoch_steps = run["epoch_steps"] or max(1, train_set.batches_per_epoch(B, cur.seq_len))
    while (steps is None or state["step"] < steps) and (minutes is None or state["seconds"] < 60 * minutes):
        T = cur.seq_len
        # made on the device (frames as stored, converted there; masks drawn there), the first
        # boxes checked on the host: forward and backward never wait for the GPU
        w = int(rng.integers(0, int(run["run_in"] * T) + 1)) if run["run_in"] else 0
        frames, boxes, presence = train_set.batch(rng, B, w + T, xp)
        start = None
        if w:  # --run-in: the window starts where the model's own tracking of w frames before it left it
            start = run_in(params, cfg, frames[:, :w], boxes[:, 0])
            frames, boxes, presence = frames[:, w:], boxes[:, w:], presence[:, w:]
        noise = sample_noise(cfg, rng, len(frames), T, xp)
        if run["kick"]:
            for step_noise, kick in zip(noise, window_kicks(rng, boxes, presence, frames.shape[-2:], run["kick"],
                                                                run["kick_prob"])):
                step_noise["kick"] = kick
        if run["mask_lost"]:
            out_, cache = forward_without_lost(params, cfg, frames, boxes, presence, noise, run["map_lost"], start)
        else:
            out_, cache = forward(params, cfg, frames, boxes, presence, noise, check_boxes=False, state=start)
        grads = backward(cache)
        if run["freeze_v1"]:  # V1 keeps its start (e.g. --init-from a pretrained V1): no update, no share of the clip
            for k in grads:
                if k.startswith("v1."):
                    grads[k] = xp.zeros_like(grads[k])
        grads, norm = clip_by_global_norm(grads, run["clip"])
        # the step's one device-to-host transfer: everything the loop reads, in one array
        terms = out_["terms"]
        read = asnumpy(xp.stack([out_["loss"], norm, out_["iou"].sum(), out_["presence"].sum()]
                                + [terms[k] for k in terms]).astype(np.float64))
        loss, norm, iou_sum, scored = (float(v) for v in read[:4])
        state["step"] += 1
        state["seconds"] = time.perf_counter() - t_start
        if not (math.isfinite(loss) and math.isfinite(norm)):
            if not run["skip_nonfinite"]:
                bar.close()
                raise TrainingError(
                    f"non-finite {'loss' if not math.isfinite(loss) else 'gradient'} at step {state['step']} "
                    f"(loss {loss}, gradient norm {norm}); the step was not applied. The last good checkpoint "
                    f"is {os.path.join(out, 'last.npz')}: resume with a lower --lr, or pass --skip-nonfinite.")
            state["skipped"] += 1
            postfix = dict(skipped=state["skipped"])
        else:
            opt.lr = run["lr"] * lr_factor(run["lr_decay"], state, steps, minutes)
            opt.step(params, grads)
            if ema is not None:  # Polyak averaging; early on the average forgets its start faster
                d = min(run["ema"], (1 + state["step"]) / (10 + state["step"]))
                for k, v in params.items():
                    ema[k] *= d
                    ema[k] += (1 - d) * v
            iou = iou_sum / max(scored, 1)
            acc = state["acc"]
            values = dict(zip(terms, read[4:].tolist()))
            for k, v in [("loss", loss), ("train_iou", iou)] + list(values.items()):
                acc[k] = acc.get(k, 0.0) + v
            acc["n"] = acc.get("n", 0) + 1
            ep = state["epoch"]
            ep["n"], ep["iou"], ep["count"] = ep["n"] + 1, ep["iou"] + iou, ep["count"] + 1
            if ep["n"] >= epoch_steps:
                if cur.epoch_end(ep["iou"] / ep["count"]):
                    epoch_steps = run["epoch_steps"] or max(1, train_set.batches_per_epoch(B, cur.seq_len))
                state["epoch"] = dict(n=0, iou=0.0, count=0)
            postfix = dict(loss=f"{loss:.3f}", iou=f"{iou:.3f}", T=T, trk=f"{values['tracking']:.2f}")
        bar.update(postfix)
        if state["step"] % eval_every == 0:
            row = checkpoint()
            what = "whole val sequences" if run["dataset"] == "sot" else "held-out windows"
            bar.write(f"step {row['step']}: train IoU {row['train_iou']:.3f}, average IoU over {what} "
                      f"{row['test_iou']:.3f}, T={row['seq_len']}, {row['seconds'] / 60:.1f} min")
    bar.close()
    if not state["history"] or state["history"][-1]["step"] != state["step"]:
        checkpoint()
    return out


def lr_factor(decay, state, steps, minutes):
    """The learning rate's factor: 1 (``none``), or ``cosine`` from 1 down to 0.05 over the run
    (its steps, or its minutes when it is stopped by time)."""
    if decay == "none":
        return 1.0
    done = state["step"] / steps if steps else state["seconds"] / (60 * minutes)
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(done, 1.0)))


def frame_size(text):
    """argparse type for ``--frame-size HxW`` (e.g. ``180x240``)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be HxW, e.g. 180x240, got {text!r}") from None
    if h < 8 or w < 8:
        raise argparse.ArgumentTypeError(f"must be at least 8x8, got {text!r}")
    return (h, w)


def model_setting(text):
    """argparse type for ``--set FIELD=VALUE``: a field of :class:`minihart.model.Config` and a
    value of its type (``true``/``false``; numbers; ``40,40`` for pairs)."""
    import dataclasses  # noqa: PLC0415

    from minihart.model import Config  # noqa: PLC0415
    fields = {f.name: f for f in dataclasses.fields(Config) if f.name not in ("name", "v1", "dfn")}
    key, sep, value = text.partition("=")
    if not sep or key not in fields:
        raise argparse.ArgumentTypeError(f"expected FIELD=VALUE with FIELD one of {sorted(fields)}, got {text!r}")
    kind = type(fields[key].default) if fields[key].default is not dataclasses.MISSING else int
    try:
        if kind is bool:
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            v = value.lower() in ("true", "1")
        elif kind is tuple or key in ("glimpse_hw", "channels"):
            v = tuple(int(x) for x in value.split(",")) if "," in value else int(value)
        else:
            v = kind(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{key}: cannot read {value!r} as {kind.__name__}") from None
    return key, v


def on_off(text):
    if text not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"expected on or off, got {text!r}")
    return text == "on"


def build_parser():
    p = argparse.ArgumentParser(prog="python -m minihart.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", choices=sorted(DEFAULTS),
                   help="training data (default: synthetic, embedded, no download; sot: real tracking "
                        "sequences in train/ and val/ folders, see --data-root)")
    p.add_argument("--preset", help="model preset: synthetic, kth, kitti or real (default: the dataset's)")
    p.add_argument("--channels", type=int, choices=[1, 3], help="1 (grey) or 3 (colour) instead of the preset's")
    p.add_argument("--frame-size", type=frame_size, metavar="HxW",
                   help="frame size the model sees (frames and boxes are resized to it; default: the preset's)")
    p.add_argument("--set", dest="model", type=model_setting, action="append", metavar="FIELD=VALUE",
                   help="change a field of the preset's model configuration (repeatable), e.g. "
                        "--set centre_loss=true --set glimpse_hw=40,40 (see minihart/model/config.py)")
    p.add_argument("--init-from", metavar="CKPT",
                   help="start from the parameters (and model) of this checkpoint, e.g. a synthetic run's best.npz")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "gpu"],
                   help="auto: the GPU when CuPy sees one, else CPU")
    p.add_argument("--steps", type=number(int, 1), help="stop after this many training steps")
    p.add_argument("--minutes", type=number(float, 0, above=True),
                   help="stop after this many minutes (default: synthetic 10, sot 30; a resumed run keeps its own)")
    p.add_argument("--batch-size", type=number(int, 1), help="sequences per step (default: per dataset)")
    p.add_argument("--lr", type=number(float, 0, above=True), help="learning rate (paper: 3.33e-5 KTH, 3.33e-6 KITTI)")
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS), help="default rmsprop (momentum 0.9)")
    p.add_argument("--clip", type=number(float, 0),
                   help="global gradient-norm clip (default and reference: 0.3; 0: no clipping)")
    p.add_argument("--seed", type=number(int, 0), help="seed of initialisation, data order and noise (default 0)")
    p.add_argument("--out", help="run folder (default: runs/DATASET-TIME)")
    p.add_argument("--resume", metavar="RUNDIR", help="continue the run in RUNDIR from its last checkpoint")
    p.add_argument("--data-root", help="data folder (default: ./data/NAME or $MINIHART_DATA/NAME; "
                                       "sot: ./data/real-sot, holding train/ and val/)")
    p.add_argument("--difficulty", help="synthetic difficulty: easy, medium, hard or a number in [0, 1]")
    p.add_argument("--alexnet", help="bvlc_alexnet.npy to initialise V1 of the kitti preset")
    p.add_argument("--dcfnet", metavar="MAT",
                   help="DCFNet's DCFNet-net-7-125-2.mat (github foolwood/DCFNet): V1 becomes its two pretrained "
                        "convolutions and LRN, then a 2x2 pool (see minihart/checkpoint.py)")
    p.add_argument("--eval-every", type=number(int, 1), help="evaluate and checkpoint every N steps")
    p.add_argument("--eval-sequences", type=number(int, 1),
                   help="held-out windows per evaluation, spread over the set (default 64; sot: whole val sequences)")
    p.add_argument("--epoch-steps", type=number(int, 1),
                   help="steps per curriculum epoch (default: per dataset, or one pass over the data)")
    p.add_argument("--threshold", type=number(float, 0, 1), help="train IoU needed to lengthen sequences")
    p.add_argument("--min-epochs", type=number(int, 0), help="epochs at a length before it may grow")
    p.add_argument("--start-len", type=number(int, 2), help="first training sequence length (default 5)")
    p.add_argument("--max-len", type=number(int, 5), help="longest training sequence of the curriculum")
    p.add_argument("--max-stride", type=number(int, 1),
                   help="sot: random temporal stride 1..N (skipped frames make faster motion; default 3)")
    p.add_argument("--max-zoom", type=number(float, 1),
                   help="sot: random zoom 1..Z and shift of the frame around the target (default 1.5; 1: off)")
    p.add_argument("--box-jitter", type=number(float, 1),
                   help="sot: the first box is given scaled by up to J and shifted, so the tracker learns to "
                        "find the object's extent (default 1: exact)")
    p.add_argument("--mix", type=number(float, 0, 1),
                   help="sot: scene mixing, the probability that a training window's target is laid over "
                        "frames of another sequence (default 0)")
    p.add_argument("--distract", type=number(float, 0, 1),
                   help="sot: the probability that a training window gets a look-alike, another sequence's "
                        "target laid in 1 to 2.5 target sizes away (default 0)")
    p.add_argument("--patches", type=number(float, 0, 1),
                   help="sot: the probability that a training window's target is replaced by a random piece of "
                        "a training scene, moving as the target moved (default 0)")
    p.add_argument("--stretch", type=number(float, 1),
                   help="sot: one axis of the zoom, drawn at random, zoomed up to S times more, which changes the "
                        "target's aspect ratio (default 1: off)")
    p.add_argument("--photo", type=number(float, 0, 1),
                   help="sot: light and contrast changes of a training window, a gamma and a contrast up to "
                        "exp(S) either way and a drifting brightness (default 0: off)")
    p.add_argument("--zoom-drift", type=number(float, 1),
                   help="sot: the zoom changes along a training window by up to D times per 50 frames, growing or "
                        "shrinking the target (default 2, the recipe's; 1: off; not with --stretch)")
    p.add_argument("--occlude", type=number(float, 0, 1),
                   help="sot: the probability that an occluder, a piece of a training scene, crosses in front of a "
                        "training window's target once; frames where it hides 70%% of the target count as the "
                        "target not visible (default 0.3, the recipe's; 0: off)")
    p.add_argument("--stills", type=number(float, 0, 1),
                   help="sot: the probability that a training window is made from one frame of its sequence, a "
                        "virtual camera panning and zooming over it as in first-frame adaptation (default 0.3, the "
                        "recipe's; 0: off)")
    p.add_argument("--v1-init", choices=["random", "kmeans"],
                   help="V1's convolutions at the start: He-normal (default), or k-means filters of whitened "
                        "patches of the training glimpses, layer by layer (no labels; a few seconds)")
    p.add_argument("--lr-decay", choices=["none", "cosine"],
                   help="the learning rate over the run: constant (default) or cosine down to 5%% at its end "
                        "(sot's default)")
    p.add_argument("--ema", type=number(float, 0, 0.9999),
                   help="evaluate and keep as best.npz an exponential moving average of the parameters with "
                        "this decay (sot's default 0.999; otherwise 0: the parameters themselves)")
    p.add_argument("--kick", type=number(float, 0, 1),
                   help="at some steps move the next attention window by up to this fraction of the object's size "
                        "(and resize it as much), so the model learns to recover a misplaced window "
                        "(sot's default 0.5; otherwise 0: off)")
    p.add_argument("--kick-prob", type=number(float, 0, 1), help="the fraction of steps kicked (default 0.1)")
    p.add_argument("--run-in", type=number(float, 0),
                   help="before each training window of T frames the model tracks up to K*T earlier frames "
                        "(a random number; no loss, no gradient) and the window starts from the state it "
                        "reached (default 0: from the first box)")
    p.add_argument("--mask-lost", type=on_off, metavar="on|off",
                   help="leave the frames where the window or the box has lost the object out of the loss "
                        "(sot's default on; otherwise off)")
    p.add_argument("--map-lost", type=on_off, metavar="on|off",
                   help="with --mask-lost, keep the lost frames in the location map's term (its target there: "
                        "nothing in the window; sot's default on; otherwise off)")
    p.add_argument("--freeze-v1", type=on_off, metavar="on|off",
                   help="keep V1 as it starts (a pretrained V1: --dcfnet, --alexnet or --init-from); default off")
    p.add_argument("--skip-nonfinite", action="store_true",
                   help="skip (and count) steps with a non-finite loss or gradient instead of stopping")
    p.add_argument("--no-final-eval", action="store_true", help="skip the final evaluation and video")
    p.add_argument("--quiet", action="store_true", help="no progress bar or progress lines")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    keep_freed_memory()
    try:
        out = train(**vars(args))
        if not args.no_final_eval:
            from minihart.evaluate import main as evaluate_main  # noqa: PLC0415
            rc = evaluate_main(["--run", out, "--device", args.device])
            if rc:
                return rc
    except (TrainingError, DatasetNotPrepared, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; the last checkpoint is intact (continue with --resume RUNDIR)", file=sys.stderr)
        return 130
    lines = [f"run folder: {out}", f"  training curves: {out}/training.png", f"  metrics: {out}/metrics.csv"]
    if not args.no_final_eval:
        lines.append(f"  evaluation (results, plots, tracking.gif): {out}/eval/")
    print("\n".join(lines + [f"  checkpoints: {out}/best.npz, {out}/last.npz"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
