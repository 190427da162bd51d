"""``python -m minihart.evaluate --run RUNDIR`` (or ``--checkpoint CKPT``): how well a trained
tracker tracks held-out sequences.

Real footage (``--folder DIR`` of OTB, GOT-10k or LaSOT sequences, or a run trained on ``sot``):
every sequence is tracked **whole**, from its first box to its last frame, and scored as the
single-object tracking benchmarks do (:mod:`minihart.scoring`): per sequence and on average,
average IoU, success AUC (21 thresholds), precision at 20 px and fps. Writes ``sequences.csv``
(the table), ``results.json``, ``success_precision.png``, ``tracking.gif`` (one sequence with
its glimpse and location map) and the boxes in the toolkits' format (``results/<seq>.txt``,
``x,y,w,h`` a line; ``results/times/<seq>_time.txt`` and ``results/<seq>_time.txt``, seconds a
frame), which the got10k toolkit and pytracking's analysis read.

Windows (synthetic, KTH, KITTI): the average IoU over T time steps (the paper's Table 1 metric;
T = 60 for KITTI), the IoU at every time step (Figure 5), and the success plot. Writes
``results.json``, ``evaluation.png`` and ``tracking.gif`` (a few test sequences with ground truth,
prediction, attention window, glimpse and location map, like Figures 1 and 4).
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
from minihart.data.batching import to_float_frames
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
    n = dataset.num_windows(seq_len)
    if n == 0:
        raise ValueError(f"evaluate: the {getattr(dataset, 'name', '')} set has no windows of {seq_len} frames")
    # at most max_sequences windows, spread evenly over the set (the first ones in order would
    # come from one or two long tracks)
    picked = np.unique(np.linspace(0, n - 1, min(n, max_sequences or n)).round().astype(int))
    batches = (dataset.gather(picked[s:s + batch_size], seq_len) for s in range(0, len(picked), batch_size))
    for r in track_batches(params, cfg, batches, xp):
        ious.append(r["iou"])
        pres.append(r["presence"])
        shown = shown or r
    result = summarize(np.concatenate(ious), np.concatenate(pres))
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


def evaluate_sequences(params, cfg, dataset, xp=np, out_dir=None, label="minihart", static=False,
                       gif_sequence=None, gif_frames=150, size_prior=None, adapt_steps=None, draws=None):
    """Track every sequence of a SOT set whole (first box to last frame, each alone, timed) and
    score it as the benchmarks do. Returns :func:`minihart.scoring.score_dataset`'s dict. With
    ``out_dir``: the toolkit files (``results/``), ``sequences.csv``, ``results.json``,
    ``success_precision.png`` and ``tracking.gif`` (``gif_sequence``, default the first, at most
    ``gif_frames`` frames); files of sequences already scored are kept if a later one fails.
    ``size_prior``: the weight of the first box's size in the boxes (default ``scoring.SIZE_PRIOR``);
    ``adapt_steps``, ``draws``: first-frame adaptation (defaults ``adapt.ADAPT_STEPS`` and ``ADAPT_DRAWS``;
    :mod:`minihart.adapt`)."""
    from minihart.adapt import ADAPT_DRAWS, ADAPT_STEPS  # noqa: PLC0415
    from minihart.scoring import SIZE_PRIOR, score_dataset, track_with_extras, write_toolkit_files  # noqa: PLC0415
    from minihart.viz import plot_success_precision  # noqa: PLC0415
    size_prior = SIZE_PRIOR if size_prior is None else size_prior
    adapt_steps = ADAPT_STEPS if adapt_steps is None else adapt_steps
    draws = ADAPT_DRAWS if draws is None else draws
    r = score_dataset(params, cfg, dataset, xp, timed=True, static=static, size_prior=size_prior,
                      adapt_steps=adapt_steps, draws=draws)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        for k, (name, boxes) in enumerate(r["boxes"].items()):
            write_toolkit_files(os.path.join(out_dir, "results"), name, boxes, None if static else r["times"][k])
        with open(os.path.join(out_dir, "sequences.csv"), "w") as f:
            f.write(sequence_table(r, sep=","))
        with open(os.path.join(out_dir, "results.json"), "w") as f:
            json.dump(dict(label=label, mean=_jsonable(r["mean"]),
                           per_sequence={k: _jsonable(v) for k, v in r["per_sequence"].items()}), f, indent=1)
        plot_success_precision({label: r["mean"]}, os.path.join(out_dir, "success_precision.png"))
        if not static:
            names = [s.name for s in dataset.sequences]
            k = names.index(gif_sequence) if gif_sequence in names else 0
            video, first, boxes, presence = dataset.tracks[k]
            start = int(np.flatnonzero(presence)[0])
            raw = dataset.videos[video][first + start:first + start + gif_frames]
            frames = to_float_frames(raw, cfg.channels)
            pred, extras, _ = track_with_extras(params, cfg, frames, boxes[start], xp, size_prior, adapt_steps,
                                                draws)
            gif = [tracking_frame(frames[t], dict(truth=boxes[start + t] if presence[start + t] else None,
                                                  pred=pred[t], att=extras[t]["att"]),
                                  extras[t]["glimpse"], extras[t]["map"], scale=1)
                   for t in range(0, len(frames), 2)]
            write_video(os.path.join(out_dir, "tracking.gif"), gif, fps=12)
    return r


def _jsonable(d):
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in d.items() if k != "ious"}


def sequence_table(r, sep=" | "):
    """The whole-sequence table: one row per sequence and the mean (avg IoU, AUC, precision@20, fps)."""
    cols = ["sequence", "frames", "avg_iou", "auc", "precision20", "fps"]
    rows = [[name, v["n_frames"], v["avg_iou"], v["auc"], v["precision20"], v.get("fps", float("nan"))]
            for name, v in r["per_sequence"].items()]
    m = r["mean"]
    rows.append(["mean", m["n_frames"], m["avg_iou"], m["auc"], m["precision20"], m.get("fps", float("nan"))])
    fmt = [str, str, "{:.3f}".format, "{:.3f}".format, "{:.3f}".format, "{:.0f}".format]
    lines = [sep.join(cols)] + [sep.join(f(v) for f, v in zip(fmt, row)) for row in rows]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m minihart.evaluate", description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="a run folder written by minihart.train (uses its best.npz)")
    src.add_argument("--checkpoint", help="a checkpoint .npz written by minihart.train")
    p.add_argument("--folder", help="real footage: a folder of OTB / GOT-10k / LaSOT sequences (or one), "
                                    "tracked whole (default for a run trained on sot: its val/ split)")
    p.add_argument("--static", action="store_true",
                   help="with --folder: score the baseline that keeps the first box (no model is run)")
    p.add_argument("--dataset", choices=["synthetic", "kth", "kitti", "sot"],
                   help="dataset to evaluate on (default: the run's)")
    p.add_argument("--data-root", help="folder of the prepared dataset (default: the run's, or ./data/NAME)")
    p.add_argument("--seq-len", type=number(int, 2), help="windows: time steps per sequence (30; 60 for kitti)")
    p.add_argument("--sequences", type=number(int, 1), help="windows: evaluate at most this many, spread over the set")
    p.add_argument("--batch-size", type=number(int, 1), default=16, help="sequences per forward pass")
    p.add_argument("--gif-sequence", help="real footage: the sequence drawn in tracking.gif (default: the first)")
    p.add_argument("--size-prior", type=number(float, 0.0, 1.0), default=None,
                   help="real footage: the weight of the first box's size in every box, 0 (the model's own "
                        "size) to 1 (the first box's size); default 0.5 (README, 'the size prior')")
    p.add_argument("--adapt", type=number(int, 0), default=None, metavar="STEPS",
                   help="real footage: first-frame adaptation, the model trained this many steps on windows made "
                        "from each sequence's first frame before tracking it; default 50, 0: none (README, "
                        "'first-frame adaptation')")
    p.add_argument("--draws", type=number(int, 1), default=None,
                   help="real footage: copies of the model adapted from different seeds, each tracking on its "
                        "own, the box their median; default 3 (README, 'first-frame adaptation')")
    p.add_argument("--label", default="minihart", help="the tracker's name in plots and results.json")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "gpu"], help="where to run")
    p.add_argument("--out", help="output folder (default: RUNDIR/eval, or next to the checkpoint)")
    args = p.parse_args(argv)
    keep_freed_memory()
    from minihart.runs import open_dataset, run_info  # noqa: PLC0415
    try:
        xp = array_module(args.device)
        ckpt = args.checkpoint or os.path.join(args.run, "best.npz")
        params, cfg, extra = load(ckpt)
        info = run_info(extra)
        name = args.dataset or ("sot" if args.folder else info.get("dataset", "synthetic"))
        if args.static and name != "sot":
            raise ValueError("--static scores whole real sequences: give --folder DIR (or a run trained on sot)")
        out = args.out or (os.path.join(args.run, "eval") if args.run else os.path.splitext(ckpt)[0] + "_eval")
        params = to_device(params, args.device)
        if name == "sot":
            from minihart.data import sot  # noqa: PLC0415
            root = args.folder or args.data_root or info.get("data_root") or "data/real-sot"
            dataset = sot.load(root, "val", cfg.image_hw, cfg.channels, augment=False)
            r = evaluate_sequences(params, cfg, dataset, xp, out, args.label, args.static, args.gif_sequence,
                                   size_prior=args.size_prior, adapt_steps=args.adapt, draws=args.draws)
            print(sequence_table(r), end="")
            print(f"{len(r['per_sequence'])} whole sequences: average IoU {r['mean']['avg_iou']:.3f}, success AUC "
                  f"{r['mean']['auc']:.3f}, precision@20px {r['mean']['precision20']:.3f}"
                  + (f", {r['mean']['fps']:.0f} fps" if "fps" in r["mean"] else ""))
            print(f"wrote {out}/sequences.csv, results.json, success_precision.png"
                  + ("" if args.static else ", tracking.gif") + ", results/<sequence>.txt")
            return 0
        dataset = open_dataset(name, "test", cfg, args.data_root or info.get("data_root"), info.get("difficulty"))
        seq_len = args.seq_len or EVAL_LEN[name]
        result = evaluate(params, cfg, dataset, seq_len, args.batch_size, args.sequences, xp, out)
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"average IoU over {seq_len} steps: {result['mean_iou']:.3f} ({result['n_sequences']} sequences), "
          f"success AUC {result['auc']:.3f}")
    print(f"wrote {out}/results.json, evaluation.png, tracking.gif")
    return 0


if __name__ == "__main__":
    sys.exit(main())
