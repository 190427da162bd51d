"""``python -m minihart.evaluate --run RUNDIR`` (or ``--checkpoint CKPT``): how well a trained
tracker tracks held-out sequences.

Reports the average IoU over T time steps (the paper's Table 1 metric; T = 60 for KITTI), the
IoU at every time step (Figure 5), and the success plot of single-object tracking benchmarks
(the fraction of frames whose IoU exceeds each threshold, and its area under the curve).
Writes ``results.json``, ``evaluation.png`` and ``tracking.gif`` (a few test sequences with
ground truth, prediction, attention window, glimpse and location map, like Figures 1 and 4).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from minihart.backend import array_module, asnumpy, to_device
from minihart.checkpoint import load
from minihart.cli import keep_freed_memory, number
from minihart.model import forward
from minihart.viz import plot_evaluation, tracking_frame, write_video

THRESHOLDS = np.linspace(0.0, 1.0, 21)
EVAL_LEN = {"synthetic": 30, "kth": 30, "kitti": 60}


def track_batches(params, cfg, batches, xp=np):
    """Evaluation-mode forward over ``(frames, boxes, presence)`` batches; yields NumPy dicts
    with ``iou``, ``presence``, ``pred``, ``att``, ``boxes``, ``frames``, ``glimpses``, ``maps``."""
    for frames, boxes, presence in batches:
        out, _ = forward(params, cfg, xp.asarray(frames), xp.asarray(boxes), xp.asarray(presence))
        yield dict(iou=asnumpy(out["iou"]), presence=asnumpy(out["presence"]), pred=asnumpy(out["pred"]),
                   att=asnumpy(out["att"]), boxes=boxes, frames=frames,
                   glimpses=asnumpy(out["glimpses"]), maps=asnumpy(out["maps"]))


def summarize(iou, presence) -> dict:
    """Metrics from per-frame IoU ``(N, T)`` and the mask of scored frames ``(N, T)`` (the
    first frame, whose box is given, is not scored)."""
    iou, presence = np.asarray(iou, np.float64), np.asarray(presence, np.float64)
    n_t = presence.sum(axis=0)
    per_step = (iou * presence).sum(axis=0)[1:] / np.maximum(n_t[1:], 1)
    scored = iou[presence > 0]
    success = np.array([(scored > th).mean() if scored.size else 0.0 for th in THRESHOLDS])
    return dict(mean_iou=float(scored.mean()) if scored.size else 0.0, iou_per_step=per_step.tolist(),
                thresholds=THRESHOLDS.tolist(), success=success.tolist(), auc=float(success.mean()),
                n_sequences=int(iou.shape[0]), seq_len=int(iou.shape[1]), n_frames=int(scored.size))


def evaluate(params, cfg, dataset, seq_len, batch_size=16, max_sequences=None, xp=np,
             out_dir=None, n_video=3, label="minihart"):
    """Track ``dataset``'s windows of ``seq_len`` frames; returns :func:`summarize`'s dict.
    With ``out_dir``: also ``results.json``, ``evaluation.png`` and ``tracking.gif`` there."""
    ious, pres, shown = [], [], None
    n = 0
    for r in track_batches(params, cfg, dataset.batches(batch_size, seq_len), xp):
        ious.append(r["iou"])
        pres.append(r["presence"])
        shown = shown or r
        n += len(r["iou"])
        if max_sequences and n >= max_sequences:
            break
    if not ious:
        raise ValueError(f"evaluate: the {getattr(dataset, 'name', '')} set has no windows of {seq_len} frames")
    result = summarize(np.concatenate(ious)[:max_sequences], np.concatenate(pres)[:max_sequences])
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "results.json"), "w") as f:
            json.dump(result, f, indent=1)
        plot_evaluation(result, os.path.join(out_dir, "evaluation.png"), label)
        video = [tracking_frame(shown["frames"][i, t], dict(
                    truth=shown["boxes"][i, t] if shown["presence"][i, t] or t == 0 else None,
                    pred=shown["pred"][i, t] if t else None, att=shown["att"][i, t]),
                    shown["glimpses"][i, t], shown["maps"][i, t])
                 for i in range(min(n_video, len(shown["iou"]))) for t in range(shown["iou"].shape[1])]
        write_video(os.path.join(out_dir, "tracking.gif"), video)
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m minihart.evaluate", description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="a run folder written by minihart.train (uses its best.npz)")
    src.add_argument("--checkpoint", help="a checkpoint .npz written by minihart.train")
    p.add_argument("--dataset", choices=["synthetic", "kth", "kitti"],
                   help="dataset to evaluate on (default: the run's)")
    p.add_argument("--data-root", help="folder of the prepared dataset (default: the run's, or ./data/NAME)")
    p.add_argument("--seq-len", type=number(int, 2), help="time steps per sequence (default: 30; 60 for kitti)")
    p.add_argument("--sequences", type=number(int, 1), help="evaluate at most this many sequences")
    p.add_argument("--batch-size", type=number(int, 1), default=16, help="sequences per forward pass")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "gpu"], help="where to run")
    p.add_argument("--out", help="output folder (default: RUNDIR/eval or next to the checkpoint)")
    args = p.parse_args(argv)
    keep_freed_memory()
    from minihart.train import open_dataset, run_info  # noqa: PLC0415
    try:
        xp = array_module(args.device)
        ckpt = args.checkpoint or os.path.join(args.run, "best.npz")
        params, cfg, extra = load(ckpt)
        info = run_info(extra)
        name = args.dataset or info.get("dataset", "synthetic")
        dataset = open_dataset(name, "test", cfg, args.data_root or info.get("data_root"), info.get("difficulty"))
        seq_len = args.seq_len or EVAL_LEN[name]
        out = args.out or (os.path.join(args.run, "eval") if args.run else os.path.splitext(ckpt)[0] + "_eval")
        result = evaluate(to_device(params, args.device), cfg, dataset, seq_len, args.batch_size,
                          args.sequences, xp, out)
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"average IoU over {seq_len} steps: {result['mean_iou']:.3f} ({result['n_sequences']} sequences), "
          f"success AUC {result['auc']:.3f}")
    print(f"wrote {out}/results.json, evaluation.png, tracking.gif")
    return 0


if __name__ == "__main__":
    sys.exit(main())
