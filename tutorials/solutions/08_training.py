"""Solutions to the exercises of notebook 08 (training, curriculum, evaluation).

Each ``# %% Exercise k`` section answers exercise k: paste it into the exercise's cell (or
``%load`` this file there) and run the check cell below it. The sections run in the notebook,
after its own cells (they use its run folder and model); CI runs every notebook with them in
place (tests/test_course.py).
"""

# %% Exercise 1
# one model, test sets of three difficulties; then a model trained on "medium" for the same budget
import tempfile

from minihart.checkpoint import load
from minihart.data import make_dataset
from minihart.evaluate import evaluate


def iou_on_level(params, cfg, level, n):
    test = make_dataset("synthetic", split="test", flavour="kth" if cfg.channels == 1 else "kitti",
                        frame_hw=cfg.image_hw, channels=cfg.channels, difficulty=level)
    return evaluate(params, cfg, test, 30, batch_size=16, max_sequences=n)["mean_iou"]


n_eval = 8 if MINIHART_FAST else 128
print("trained on", DATASET, {level: round(iou_on_level(params, cfg, level, n_eval), 3)
                              for level in ("easy", "medium", "hard")})
if DATASET == "synthetic":
    medium_dir = train(**{**options, "difficulty": "medium", "out": tempfile.mkdtemp()})
    medium_params, medium_cfg, _ = load(f"{medium_dir}/best.npz")
    print("trained on medium", {level: round(iou_on_level(medium_params, medium_cfg, level, n_eval), 3)
                                for level in ("easy", "medium")})
print("harder test sets lower the IoU of the same model: distractors pull the box away, occluders hide the target. "
      "Whether training on medium helps on easy depends on the budget (a FAST run is noise)")


# %% Exercise 2
# lambda_i against 1 / L_i over training, from metrics.csv
import csv
import os


def lambda_and_target(run_dir, term):
    with open(os.path.join(run_dir, "metrics.csv")) as f:
        rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    return [r["step"] for r in rows], [r[f"lambda_{term}"] for r in rows], [1 / r[term] for r in rows]


fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), layout="constrained")
for ax, term in zip(axes, ("tracking", "attention", "appearance")):
    steps, lams, targets = lambda_and_target(run_dir, term)
    ax.plot(steps, lams, label=r"learned $\lambda$")
    ax.plot(steps, targets, "--", label=r"$1 / \mathcal{L}$ (its optimum)")
    ax.set(title=term, xlabel="step", yscale="log")
    ax.legend(fontsize=8)
print("each lambda moves towards 1 / L, slowly: RMSProp normalises the gradient of v, so v moves by about the "
      "learning rate per step, and L itself keeps changing")


# %% Exercise 3
# the success curve and its AUC from per-frame IoUs
import numpy as np

from minihart.evaluate import THRESHOLDS, summarize, track_batches


def success_curve(iou, scored):
    values = iou[scored > 0]
    success = np.array([(values > th).mean() for th in THRESHOLDS])
    return success, success.mean()


ious, scored = [], []
for r in track_batches(params, cfg, test_set.batches(16, seq_len)):
    ious.append(r["iou"])
    scored.append(r["presence"])  # 0 on the first frame (its box is given) and where the target is absent
    if sum(len(i) for i in ious) >= 16:
        break
iou, scored = np.concatenate(ious), np.concatenate(scored)
success, auc = success_curve(iou, scored)
ref = summarize(iou, scored)
print(f"my AUC {auc:.4f}, summarize's {ref['auc']:.4f}, average IoU {ref['mean_iou']:.4f}: the area under "
      "S(theta) = P(IoU > theta) over [0, 1] is E[IoU]; the AUC of 21 samples is a Riemann sum of it")
