"""``python -m minihart.train --dataset synthetic|kth|kitti``: train HART and keep everything.

A run folder (``--out``, default ``runs/<dataset>-<time>``) receives ``config.json``,
``metrics.csv`` (one row per evaluation), ``training.png`` (loss terms, learned loss weights,
IoU), ``last.npz`` and ``best.npz`` checkpoints and, at the end, ``eval/`` (results, IoU-over-time
and success plots, a tracking GIF). Checkpoints hold parameters, optimiser, curriculum and RNG
state, are written atomically, and ``--resume RUNDIR`` continues the same run bit for bit on CPU.

Defaults follow the paper (section 5): RMSProp with momentum 0.9, learning rate 3.33e-5 (KTH)
and 3.33e-6 (KITTI), a curriculum from T = 5. The synthetic set, which must train in about ten
minutes on a 2-core CPU, uses a larger learning rate, 1e-4 (at 3e-4 the held-out IoU collapsed
once the curriculum passed T = 17; at 1e-4 it stayed above 0.85 up to T = 25 in the same steps).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
import time

import numpy as np

from minihart.backend import array_module, asnumpy, resolve_device, to_device
from minihart.checkpoint import atomic_savez, load, save  # noqa: F401  (atomic_savez: re-exported for tests)
from minihart.cli import keep_freed_memory, number
from minihart.data.batching import Curriculum, DatasetNotPrepared
from minihart.model import backward, count_params, forward, init_params, preset, sample_noise
from minihart.optim import OPTIMIZERS, clip_by_global_norm

DEFAULTS = {  # per dataset: preset, optimiser, learning rate, batch size, curriculum, budget
    "synthetic": dict(preset="synthetic", optimizer="rmsprop", lr=1e-4, batch_size=16, minutes=10.0,
                      epoch_steps=50, threshold=0.6, min_epochs=1, max_len=30, eval_every=100),
    "kth": dict(preset="kth", optimizer="rmsprop", lr=3.33e-5, batch_size=16, minutes=None,
                epoch_steps=None, threshold=0.7, min_epochs=13, max_len=30, eval_every=500),
    "kitti": dict(preset="kitti", optimizer="rmsprop", lr=3.33e-6, batch_size=10, minutes=None,
                  epoch_steps=None, threshold=0.7, min_epochs=13, max_len=30, eval_every=500),
}
COMMON_DEFAULTS = dict(clip=0.3, seed=0, eval_sequences=64)
# the flags a run is made with: a resumed run keeps them (data_root may change: data can move)
RUN_FLAGS = ("preset", "optimizer", "lr", "batch_size", "epoch_steps", "threshold", "min_epochs", "max_len",
             "eval_every", "clip", "seed", "eval_sequences")
METRICS = ["step", "seq_len", "loss", "tracking", "attention", "appearance", "l2", "lambda_tracking",
           "lambda_attention", "lambda_appearance", "train_iou", "test_iou", "skipped", "seconds"]


class TrainingError(Exception):
    """A problem the user can fix; printed without a traceback."""


def open_dataset(name, split, cfg, root=None, difficulty=None):
    """The ``split`` (train/test) of dataset ``name`` in the frame size and channels of ``cfg``."""
    from minihart.data import make_dataset  # noqa: PLC0415
    if name == "synthetic":
        return make_dataset(name, split=split, flavour="kth" if cfg.channels == 1 else "kitti",
                            frame_hw=cfg.image_hw, channels=cfg.channels, difficulty=difficulty or "easy")
    return make_dataset(name, root, split, **({"channels": cfg.channels} if name == "kitti" else {}))


def run_info(extra) -> dict:
    """The run description stored in a checkpoint (``{}`` for a bare parameter file)."""
    return json.loads(str(extra["run"])) if "run" in extra else {}


def _write_csv(path, history):
    buf = io.StringIO()
    w = csv.DictWriter(buf, METRICS)
    w.writeheader()
    w.writerows(history)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(buf.getvalue())
    os.replace(tmp, path)


def _save(path, params, cfg, opt, run, state):
    sd = opt.state_dict()
    extra = {f"opt/{k}": asnumpy(v) for k, v in sd["slots"].items()}
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
    return to_device(params, device), cfg, opt, run, state


def _new_run(args):
    args.dataset = args.dataset or "synthetic"
    d = {**COMMON_DEFAULTS, **DEFAULTS[args.dataset]}
    run = {k: getattr(args, k) if getattr(args, k, None) is not None else d.get(k) for k in RUN_FLAGS}
    run.update(dataset=args.dataset, data_root=args.data_root, difficulty=args.difficulty,
               skip_nonfinite=args.skip_nonfinite)
    try:
        cfg = preset(run["preset"])
    except ValueError as exc:
        raise TrainingError(str(exc)) from None
    rng = np.random.default_rng(run["seed"])
    params = init_params(cfg, rng)
    if args.alexnet:
        from minihart.checkpoint import load_alexnet  # noqa: PLC0415
        params = load_alexnet(params, args.alexnet)
    cur = Curriculum(start=5, stop=run["max_len"], threshold=run["threshold"], min_epochs=run["min_epochs"])
    state = dict(step=0, curriculum=vars(cur), rng=rng.bit_generator.state, history=[], best=-1.0,
                 skipped=0, epoch=dict(n=0, iou=0.0, count=0), acc={}, seconds=0.0)
    opt = OPTIMIZERS[run["optimizer"]](lr=run["lr"])
    return params, cfg, opt, run, state


def train(args) -> str:
    """Train (or resume) a run; returns the run folder."""
    device = resolve_device(args.device)
    xp = array_module(device)
    if args.resume:
        params, cfg, opt, run, state = _load_run(args.resume, device)
        out = args.resume
        run["skip_nonfinite"] = run["skip_nonfinite"] or args.skip_nonfinite
        for flag in ("dataset", "difficulty") + RUN_FLAGS:  # silently ignoring them would surprise
            given = getattr(args, flag)
            if given is not None and given != run[flag]:
                name = "--" + flag.replace("_", "-")
                raise TrainingError(f"--resume {out!r}: the run was made with {name} {run[flag]}, not {given}; "
                                    "a resumed run keeps its settings (start a new run to change them)")
        if args.alexnet:
            raise TrainingError("--alexnet initialises a new run; a resumed run continues from its checkpoint")
        run["data_root"] = args.data_root or run["data_root"]
    else:
        params, cfg, opt, run, state = _new_run(args)
        params = to_device(params, device)
        out = args.out or os.path.join("runs", f"{args.dataset}-{time.strftime('%Y%m%d-%H%M%S')}")
        if os.path.exists(os.path.join(out, "last.npz")):
            raise TrainingError(f"{out!r} already holds a run; continue it with --resume {out} or pick another --out")
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "config.json"), "w") as f:
            json.dump(dict(run=run, model=cfg.to_dict()), f, indent=1)
    d = DEFAULTS[run["dataset"]]
    steps = args.steps if args.steps is not None else (None if args.minutes or d["minutes"] else 10000)
    minutes = args.minutes if args.minutes is not None else (None if args.steps is not None else d["minutes"])
    train_set = open_dataset(run["dataset"], "train", cfg, run["data_root"], run["difficulty"])
    test_set = open_dataset(run["dataset"], "test", cfg, run["data_root"], run["difficulty"])
    eval_len = {"synthetic": 30, "kth": 30, "kitti": 60}[run["dataset"]]
    rng = np.random.default_rng()
    rng.bit_generator.state = state["rng"]
    cur = Curriculum(**state["curriculum"])
    B = run["batch_size"]

    def evaluate_now():
        from minihart.evaluate import evaluate  # noqa: PLC0415
        return evaluate(params, cfg, test_set, eval_len, 16, run["eval_sequences"], xp)["mean_iou"]

    def checkpoint():
        acc = state["acc"]
        n = max(acc.get("n", 0), 1)
        row = {k: acc.get(k, 0.0) / n for k in METRICS[2:11]}
        row.update(step=state["step"], seq_len=cur.seq_len, test_iou=evaluate_now(), skipped=state["skipped"],
                   seconds=round(state["seconds"], 1))
        state["history"].append(row)
        state["acc"] = {}
        state.update(curriculum=vars(cur), rng=rng.bit_generator.state)
        is_best = row["test_iou"] > state["best"]
        state["best"] = max(state["best"], row["test_iou"])
        _save(os.path.join(out, "last.npz"), params, cfg, opt, run, state)
        if is_best:
            _save(os.path.join(out, "best.npz"), params, cfg, opt, run, state)
        _write_csv(os.path.join(out, "metrics.csv"), state["history"])
        from minihart.viz import plot_history  # noqa: PLC0415
        plot_history(state["history"], os.path.join(out, "training.png"))
        return row

    if not args.quiet:
        counts = count_params(params)
        print(f"preset {cfg.name}: {counts.pop('total'):,} parameters ("
              + ", ".join(f"{k} {v:,}" for k, v in counts.items()) + f"); run folder {out}")
    from tqdm import tqdm  # noqa: PLC0415
    bar = tqdm(total=steps, initial=state["step"], desc=f"train {run['dataset']}", unit="step",
               disable=args.quiet, dynamic_ncols=True)
    t_start = time.perf_counter() - state["seconds"]
    eval_every = run["eval_every"]
    epoch_steps = run["epoch_steps"] or max(1, train_set.batches_per_epoch(B, cur.seq_len))
    while (steps is None or state["step"] < steps) and (minutes is None or state["seconds"] < 60 * minutes):
        T = cur.seq_len
        # made on the device (frames as stored, converted there; masks drawn there), the first
        # boxes checked on the host: forward and backward never wait for the GPU
        frames, boxes, presence = train_set.batch(rng, B, T, xp)
        noise = sample_noise(cfg, rng, len(frames), T, xp)
        out_, cache = forward(params, cfg, frames, boxes, presence, noise, check_boxes=False)
        grads, norm = clip_by_global_norm(backward(cache), run["clip"])
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
        else:
            opt.step(params, grads)
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
            bar.set_postfix(loss=f"{loss:.3f}", iou=f"{iou:.3f}", T=T, trk=f"{values['tracking']:.2f}")
        bar.update(1)
        if state["step"] % eval_every == 0:
            row = checkpoint()
            bar.write(f"step {row['step']}: train IoU {row['train_iou']:.3f}, held-out IoU over {eval_len} "
                      f"steps {row['test_iou']:.3f}, T={row['seq_len']}")
    bar.close()
    if not state["history"] or state["history"][-1]["step"] != state["step"]:
        checkpoint()
    return out


def build_parser():
    p = argparse.ArgumentParser(prog="python -m minihart.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", choices=sorted(DEFAULTS),
                   help="training data (default: synthetic, embedded, no download)")
    p.add_argument("--preset", help="model preset: synthetic, kth or kitti (default: the dataset's)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "gpu"],
                   help="auto: the GPU when CuPy sees one, else CPU")
    p.add_argument("--steps", type=number(int, 1), help="stop after this many training steps")
    p.add_argument("--minutes", type=number(float, 0, above=True),
                   help="stop after this many minutes (synthetic default: 10)")
    p.add_argument("--batch-size", type=number(int, 1), help="sequences per step (default: per dataset)")
    p.add_argument("--lr", type=number(float, 0, above=True), help="learning rate (paper: 3.33e-5 KTH, 3.33e-6 KITTI)")
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS), help="default rmsprop (momentum 0.9)")
    p.add_argument("--clip", type=number(float, 0),
                   help="global gradient-norm clip (default and reference: 0.3; 0: no clipping)")
    p.add_argument("--seed", type=number(int, 0), help="seed of initialisation, data order and noise (default 0)")
    p.add_argument("--out", help="run folder (default: runs/DATASET-TIME)")
    p.add_argument("--resume", metavar="RUNDIR", help="continue the run in RUNDIR from its last checkpoint")
    p.add_argument("--data-root", help="prepared KTH/KITTI folder (default: ./data/NAME or $MINIHART_DATA)")
    p.add_argument("--difficulty", help="synthetic difficulty: easy, medium, hard or a number in [0, 1]")
    p.add_argument("--alexnet", help="bvlc_alexnet.npy to initialise V1 of the kitti preset")
    p.add_argument("--eval-every", type=number(int, 1), help="evaluate and checkpoint every N steps")
    p.add_argument("--eval-sequences", type=number(int, 1), help="held-out sequences per evaluation (default 64)")
    p.add_argument("--epoch-steps", type=number(int, 1),
                   help="steps per curriculum epoch (default: one pass over the data)")
    p.add_argument("--threshold", type=number(float, 0, 1), help="train IoU needed to lengthen sequences")
    p.add_argument("--min-epochs", type=number(int, 0), help="epochs at a length before it may grow")
    p.add_argument("--max-len", type=number(int, 5), help="longest training sequence (the curriculum starts at 5)")
    p.add_argument("--skip-nonfinite", action="store_true",
                   help="skip (and count) steps with a non-finite loss or gradient instead of stopping")
    p.add_argument("--no-final-eval", action="store_true", help="skip the final evaluation and video")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    keep_freed_memory()
    try:
        out = train(args)
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
    print(f"run folder: {out}\n  training curves: {out}/training.png\n  metrics: {out}/metrics.csv\n"
          f"  evaluation: {out}/eval/evaluation.png\n  tracking video: {out}/eval/tracking.gif\n"
          f"  checkpoints: {out}/best.npz, {out}/last.npz")
    return 0


if __name__ == "__main__":
    sys.exit(main())
