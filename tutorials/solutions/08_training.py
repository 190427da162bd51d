"""Solutions to the exercises of notebook 08 (training, curriculum, evaluation).

Run ``python tutorials/solutions/08_training.py`` from the repository root (it trains two short
runs first), or ``%load solutions/08_training.py`` in a notebook cell and call
``main(run_dir)`` with the run folder of the notebook.
"""
import csv
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

import numpy as np

from minihart.evaluate import THRESHOLDS, evaluate, summarize, track_batches
from minihart.checkpoint import load
from minihart.train import build_parser, open_dataset, train
from minihart.viz import new_figure

FAST = os.environ.get("MINIHART_FAST") == "1"
BUDGET = (["--steps", "6", "--eval-every", "6", "--batch-size", "4", "--eval-sequences", "4"] if FAST
          else ["--minutes", "3", "--eval-every", "50", "--eval-sequences", "32"])
N_EVAL = 4 if FAST else 128  # held-out sequences per evaluation
SEQ_LEN = 30


def train_run(difficulty="easy"):
    """A short synthetic run at ``difficulty`` in a fresh temporary folder; returns the folder."""
    out = tempfile.mkdtemp(prefix=f"minihart-08-{difficulty}-")
    return train(build_parser().parse_args(["--dataset", "synthetic", "--difficulty", difficulty,
                                            "--out", out, "--quiet", *BUDGET]))


# Exercise 1: one model, test sets of several difficulties; and a model trained on "medium".
def iou_by_difficulty(run_dir, levels=("easy", "medium", "hard")):
    params, cfg, _ = load(os.path.join(run_dir, "best.npz"))
    return {level: evaluate(params, cfg, open_dataset("synthetic", "test", cfg, difficulty=level),
                            SEQ_LEN, 16, N_EVAL)["mean_iou"] for level in levels}


# Exercise 2: lambda_i against 1 / L_i over training, from metrics.csv.
def read_metrics(run_dir):
    with open(os.path.join(run_dir, "metrics.csv")) as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def plot_lambdas(history, path):
    fig = new_figure(figsize=(12, 3.4), layout="constrained")
    steps = [r["step"] for r in history]
    for ax, term in zip(fig.subplots(1, 3), ("tracking", "attention", "appearance")):
        ax.plot(steps, [r[f"lambda_{term}"] for r in history], label=r"learned $\lambda$")
        ax.plot(steps, [1 / r[term] for r in history], "--", label=r"$1 / \mathcal{L}$ (its optimum)")
        ax.set(title=term, xlabel="step", yscale="log")
        ax.legend(fontsize=8)
    fig.savefig(path, dpi=80)
    return path


# Exercise 3: the success curve and its AUC from per-frame IoUs.
def per_frame_iou(run_dir, n=N_EVAL):
    params, cfg, _ = load(os.path.join(run_dir, "best.npz"))
    test = open_dataset("synthetic", "test", cfg)
    ious, scored = [], []
    for r in track_batches(params, cfg, test.batches(16, SEQ_LEN)):
        ious.append(r["iou"])
        scored.append(r["presence"])  # 0 on the first frame (its box is given) and on absent targets
        if sum(len(i) for i in ious) >= n:
            break
    return np.concatenate(ious)[:n], np.concatenate(scored)[:n]


def success_curve(iou, scored, thresholds=THRESHOLDS):
    values = iou[scored > 0]
    success = np.array([(values > th).mean() for th in thresholds])
    return success, success.mean()


def main(run_dir=None):
    run_dir = run_dir or train_run("easy")
    print(f"run: {run_dir}")

    print("exercise 1: average IoU over 30 steps of the model trained on 'easy', by test difficulty:")
    easy = iou_by_difficulty(run_dir)
    print("   ", {k: round(v, 3) for k, v in easy.items()})
    medium_run = train_run("medium")
    medium = iou_by_difficulty(medium_run, ("easy", "medium"))
    print("    the model trained on 'medium' (same budget):", {k: round(v, 3) for k, v in medium.items()})
    print("    Harder test sets lower the IoU of the same model: distractors pull the box away, occluders")
    print("    hide the target. Whether training on 'medium' also helps on 'easy' depends on the budget:")
    print("    compare the two rows after a few minutes of training each (a FAST run is noise).")

    history = read_metrics(run_dir)
    path = plot_lambdas(history, os.path.join(run_dir, "lambdas.png"))
    last = history[-1]
    print(f"exercise 2: {path}; last row: " + ", ".join(
        f"lambda_{t} {last['lambda_' + t]:.2f} vs 1/L {1 / last[t]:.2f}" for t in ("tracking", "attention", "appearance")))
    print("    Each lambda moves towards 1/L, slowly: RMSProp normalises the gradient of v, so v moves by")
    print("    about the learning rate per step (1e-4 here, 3.33e-5 on KTH), and L itself keeps changing.")

    iou, scored = per_frame_iou(run_dir)
    success, auc = success_curve(iou, scored)
    ref = summarize(iou, scored)
    print(f"exercise 3: my AUC {auc:.4f}, summarize's {ref['auc']:.4f}, max curve difference "
          f"{np.abs(success - np.array(ref['success'])).max():.1e}; average IoU {ref['mean_iou']:.4f}")
    print("    The area under S(theta) = P(IoU > theta) over [0, 1] is exactly E[IoU] (integrate the")
    print("    indicator 1[theta < IoU] over theta). The AUC of 21 samples is a Riemann sum of that area,")
    print("    so it differs from the mean IoU only by the discretisation (at most about 1/20).")


if __name__ == "__main__":
    main()
