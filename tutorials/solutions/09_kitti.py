"""Solutions to the exercises of notebook 09 (the KITTI preset, AlexNet, timings).

Run ``python tutorials/solutions/09_kitti.py`` from the repository root, or
``%load solutions/09_kitti.py`` in a notebook cell.
"""
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

import numpy as np

from minihart.model.flops import frame_flops
from minihart.data import make_dataset
from minihart.model import count_params, forward, hart, init_params, preset
from minihart.model.config import ALEXNET_V1
from minihart.model.params import v1_shapes
from minihart.nn.attention import box_to_attention, glimpse_forward
from minihart.nn.conv import conv2d_forward

FAST = os.environ.get("MINIHART_FAST") == "1"
REPEAT = 1 if FAST else 5


def best_time(fn, repeat=REPEAT):
    """Shortest of ``repeat`` runs after a warm-up, in seconds (the least disturbed by other work)."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def kitti_batch(B, T, seed=6):
    data = make_dataset("synthetic", split="test", flavour="kitti")
    return data.batch(np.random.default_rng(seed), B, T)


# Exercise 1: the paper's text taken literally: conv1 at stride 1 ("SAME" padding 5), one max-pool
# (2 x 2: minihart's max-pool needs the stride to divide the size; AlexNet's 3 x 3 would give 27 x 27).
PAPER_V1 = (("conv", 96, 11, 1, 5, 1), ("relu",), ("lrn",), ("pool", 2, 2)) + ALEXNET_V1[3:]


def compare_v1(batch):
    rows = {}
    for name, v1 in (("reference", ALEXNET_V1), ("paper's text", PAPER_V1)):
        cfg = preset("kitti", v1=v1)
        params = init_params(cfg, np.random.default_rng(0))
        seconds = best_time(lambda: forward(params, cfg, *batch))
        rows[name] = (v1_shapes(cfg)[1], count_params(params), seconds)
    return rows


# Exercise 2: a grouped convolution is two convolutions on the two halves of the channels.
def grouped_equals_halves(rng):
    x = rng.standard_normal((2, 96, 9, 9)).astype(np.float32)
    w = rng.standard_normal((256, 48, 5, 5)).astype(np.float32)
    b = rng.standard_normal(256).astype(np.float32)
    grouped, _ = conv2d_forward(x, w, b, 1, 2, groups=2)
    halves = [conv2d_forward(x[:, 48 * g:48 * (g + 1)], w[128 * g:128 * (g + 1)], b[128 * g:128 * (g + 1)], 1, 2)[0]
              for g in range(2)]
    return np.abs(grouped - np.concatenate(halves, axis=1)).max()


# Exercise 3: the parts of one forward step.
def step_parts(cfg, params, frames, boxes):
    x, a = frames[:, 1], box_to_attention(boxes[:, 0], cfg.image_hw)
    g, _ = glimpse_forward(x, a, cfg.glimpse_hw)
    (a1, h, c), _ = hart.init_forward(params, cfg, frames[:, 0], boxes[:, 0])
    return {"glimpse (eq. 2)": best_time(lambda: glimpse_forward(x, a, cfg.glimpse_hw)),
            "V1 (AlexNet conv1-3)": best_time(lambda: hart.v1_forward(params, cfg, g)),
            "whole step_forward": best_time(lambda: hart.step_forward(params, cfg, x, a1, h, c, h))}


def main():
    batch = kitti_batch(1, 2)
    rows = compare_v1(batch)
    print("exercise 1:")
    for name, ((c, h, w), counts, seconds) in rows.items():
        print(f"  {name:13s} V1 map {h} x {w} x {c}, {counts['total']:,d} parameters, forward B=1 T=2 {seconds:.2f} s")
    ref, paper = rows["reference"][1], rows["paper's text"][1]
    print("  blocks that grow:", {k: (ref[k], paper[k]) for k in ref if paper[k] != ref[k]})
    print("  Convolution weights do not depend on the map's size (V1, ventral, DFN and the location map")
    print("  keep their counts); the layers that read the whole flattened map do: feat (eq. 4) reads")
    print("  5 x 28 x 28 instead of 5 x 14 x 14 values, and the mask features read 28 x 28. The forward")
    print("  time grows more: conv1 at stride 1 computes 16 times as many positions, conv2-3 and the")
    print("  dorsal stream 4 times (28^2 / 14^2).")

    ungrouped = list(ALEXNET_V1)
    ungrouped[3] = ("conv", 256, 5, 1, 2, 1)
    p1 = init_params(preset("kitti", v1=tuple(ungrouped)), np.random.default_rng(0))
    p2 = init_params(preset("kitti"), np.random.default_rng(0))
    print(f"exercise 2: conv2 W {p2['v1.conv2.W'].shape} grouped ({p2['v1.conv2.W'].size:,d} weights) vs "
          f"{p1['v1.conv2.W'].shape} ungrouped ({p1['v1.conv2.W'].size:,d}): half, as each filter sees half "
          "the channels.")
    print(f"  max |grouped conv - two halves concatenated| = {grouped_equals_halves(np.random.default_rng(0)):.1e}")

    cfg = preset("kitti")
    params = init_params(cfg, np.random.default_rng(0))
    frames, boxes, _ = kitti_batch(2, 2)
    parts = step_parts(cfg, params, frames, boxes)
    flops = frame_flops(cfg, cfg.image_hw)
    print("exercise 3 (B = 2, best of runs):")
    for name, seconds in parts.items():
        print(f"  {name:22s} {1e3 * seconds:7.1f} ms")
    whole = parts["whole step_forward"]
    print(f"  share of the step's time: glimpse {parts['glimpse (eq. 2)'] / whole:.0%}, "
          f"V1 {parts['V1 (AlexNet conv1-3)'] / whole:.0%}")
    print(f"  FLOPs per frame: glimpse {flops['glimpse'] / 1e6:.0f} M, the rest of the step "
          f"{flops['step'] / 1e6:.0f} M: glimpse {flops['glimpse'] / (flops['glimpse'] + flops['step']):.0%}")
    print("  V1 is most of the step: AlexNet's conv2 (5 x 5 x 48 x 256) and conv3 (3 x 3 x 256 x 384) on a")
    print("  14 x 14 map are most of the arithmetic; the glimpse, two matrix products with the whole")
    print("  187 x 621 frame, is a small part. Time shares follow FLOP shares when every part runs at")
    print("  a similar rate; small matrix products (the LSTM, the MLPs) run below the machine's peak.")


if __name__ == "__main__":
    main()
