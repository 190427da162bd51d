"""Solutions to the exercises of notebook 09 (the KITTI preset, AlexNet, timings).

Each ``# %% Exercise k`` section answers exercise k: paste it into the exercise's cell (or
``%load`` this file there) and run the check cell below it. The sections run in the notebook,
after its own cells; CI runs every notebook with them in place (tests/test_course.py).
"""

# %% Exercise 1
# the paper's text taken literally: conv1 at stride 1 ("SAME" padding 5) and one 2 x 2 max-pool
# (paper_text_v1 of section 1)
import time

import numpy as np

from minihart.model import count_params, forward, init_params, preset
from minihart.model.params import v1_shapes

data = make_dataset("synthetic", split="test", flavour="kitti")
batch = data.batch(np.random.default_rng(6), 1, 2)
rows = {}
for name, v1 in (("reference", ALEXNET_V1), ("paper's text", paper_text_v1)):
    c = preset("kitti", v1=v1)
    p = init_params(c, np.random.default_rng(0))
    t0 = time.perf_counter()
    forward(p, c, *batch)
    rows[name] = (v1_shapes(c)[1], count_params(p), time.perf_counter() - t0)
    print(f"{name:13s} V1 map {rows[name][0]}, {rows[name][1]['total']:,d} parameters, forward B=1 T=2 "
          f"{rows[name][2]:.2f} s")
paper_map_shape = rows["paper's text"][0]
ref_counts, paper_counts = rows["reference"][1], rows["paper's text"][1]
grown_blocks = {k for k in ref_counts if k != "total" and paper_counts[k] > ref_counts[k]}
print("blocks that grow:", {k: (ref_counts[k], paper_counts[k]) for k in grown_blocks})
print("convolution weights do not depend on the map's size; the layers that read the whole flattened map do: feat "
      "(eq. 4) and the mask features. The time grows more: conv1 at stride 1 computes 16 times the positions")


# %% Exercise 2
# a grouped convolution is two convolutions on the two halves of the channels
import numpy as np

from minihart.nn.conv import conv2d_forward


def grouped_as_halves(x, w, b, pad):
    C, F = x.shape[1], w.shape[0]
    halves = [conv2d_forward(x[:, g * C // 2:(g + 1) * C // 2], w[g * F // 2:(g + 1) * F // 2],
                             b[g * F // 2:(g + 1) * F // 2], 1, pad)[0] for g in range(2)]
    return np.concatenate(halves, axis=1)


ungrouped = list(ALEXNET_V1)
ungrouped[3] = ("conv", 256, 5, 1, 2, 1)
w1 = init_params(preset("kitti", v1=tuple(ungrouped)), np.random.default_rng(0))["v1.conv2.W"]
w2 = init_params(preset("kitti"), np.random.default_rng(0))["v1.conv2.W"]
print(f"conv2 W {w2.shape} grouped ({w2.size:,d} weights) against {w1.shape} ungrouped ({w1.size:,d}): half, as "
      "each filter sees half the channels")


# %% Exercise 3
# the parts of one forward step, timed, and their FLOPs
import time

import numpy as np

from minihart.flops import frame_flops
from minihart.nn.attention import glimpse_forward


def best_time(fn, repeat=1 if MINIHART_FAST else 5):
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


kitti_cfg = preset("kitti")
kitti_params = init_params(kitti_cfg, np.random.default_rng(0))
frames2, boxes2, _ = data.batch(np.random.default_rng(6), 2, 2)
x, a = frames2[:, 1], box_to_attention(boxes2[:, 0], kitti_cfg.image_hw)
g, _ = glimpse_forward(x, a, kitti_cfg.glimpse_hw)
(a1, h, c), _ = hart.init_forward(kitti_params, kitti_cfg, frames2[:, 0], boxes2[:, 0])
parts = {"glimpse (eq. 2)": best_time(lambda: glimpse_forward(x, a, kitti_cfg.glimpse_hw)),
         "V1": best_time(lambda: hart.v1_forward(kitti_params, kitti_cfg, g)),
         "whole step": best_time(lambda: hart.step_forward(kitti_params, kitti_cfg, x, a1, h, c, h))}
for name, seconds in parts.items():
    print(f"{name:16s} {1e3 * seconds:7.1f} ms, {seconds / parts['whole step']:.0%} of the step")
f = frame_flops(kitti_cfg, kitti_cfg.image_hw)
glimpse_flop_share = f["glimpse"] / (f["glimpse"] + f["step"])
# decided by the FLOP counts, not the clock: a single timing on a busy machine can rank them either way
flop_parts = {"glimpse": f["glimpse"], "V1": f["v1"], "the rest": f["step"] - f["v1"]}
dominant_part = max(flop_parts, key=flop_parts.get)
print(f"FLOPs: the glimpse {glimpse_flop_share:.0%} of a tracking step. V1 dominates: AlexNet's conv2 and conv3 on a "
      "14 x 14 map are most of the arithmetic; time follows FLOPs where the parts run at a similar rate")
