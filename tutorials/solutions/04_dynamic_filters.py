"""Solutions to the exercises of notebook 04 (dynamic filter networks, eqs. 3-4).

Run ``python tutorials/solutions/04_dynamic_filters.py`` from the repository root (exercises 1
and 3), or ``%load solutions/04_dynamic_filters.py`` in the notebook and call
``exercise_2(globals())`` there: exercise 2 reuses the notebook's toy world.
"""
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

import numpy as np

from minihart.model import count_params, init_params, preset
from minihart.nn.conv import conv2d_backward, conv2d_forward
from minihart.nn.dfn import dynamic_conv_backward, dynamic_conv_forward
from minihart.optim import Adam

FAST = os.environ.get("MINIHART_FAST") == "1"


# Exercise 1: the same kernels for every sample make the dynamic convolution a static one, and the
# static filter gradient is the sum over the batch of the per-sample ones.
def exercise_1():
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((3, 4, 7, 9)), rng.standard_normal((5, 4, 3, 3)), rng.standard_normal(5)
    wd = np.ascontiguousarray(np.broadcast_to(w, (3,) + w.shape))
    bd = np.ascontiguousarray(np.broadcast_to(b, (3, 5)))
    out_d, cache_d = dynamic_conv_forward(x, wd, bd, pad=1)
    out_s, cache_s = conv2d_forward(x, w, b, 1, 1)
    dout = rng.standard_normal(out_s.shape)
    dx_d, dw_d, db_d = dynamic_conv_backward(dout, cache_d)
    dx_s, dw_s, db_s = conv2d_backward(dout, cache_s)
    print("exercise 1: max |dynamic - static| forward", np.abs(out_d - out_s).max(),
          " dx", np.abs(dx_d - dx_s).max(), " sum_n dw_n - dw", np.abs(dw_d.sum(0) - dw_s).max(),
          " sum_n db_n - db", np.abs(db_d.sum(0) - db_s).max())


# Exercise 2 (inside notebook 04): the same training loop with an alpha that carries no information.
def exercise_2(ns, steps=None):
    rng = np.random.default_rng(3)
    params, opt, history = ns["init"](rng), Adam(lr=3e-3), []
    for _ in range(steps or (120 if FAST else 500)):
        x, boxes = ns["scenes"](rng, 32)
        kind = rng.integers(0, 2, 32)
        noise_alpha = (0.1 * rng.standard_normal((32, ns["D"]))).astype(np.float32)
        loss, cache = ns["loss_forward"](params, ns["v1"](x.astype(np.float32)), noise_alpha,
                                         ns["targets"](boxes.astype(np.float32), kind))
        opt.step(params, ns["loss_backward"](np.float32(1), cache))
        history.append(float(loss))
    print(f"exercise 2: loss without appearance, last 20 steps {np.mean(history[-20:]):.3f}. The map cannot "
          "know which object is meant, so the best it can do is mark both (half right on average): the loss "
          "plateaus far above the informed model's.")
    return history


# Exercise 3: the parameters of the two dynamic filter layers of the KITTI preset.
def exercise_3():
    cfg = preset("kitti")
    params = init_params(cfg, np.random.default_rng(0))
    counts = count_params(params)
    print(f"exercise 3: KITTI total {counts['total']:,}, dfn1 {counts['dfn1']:,}, dfn2 {counts['dfn2']:,}")
    for i, (k, maps) in enumerate(cfg.dfn, 1):
        for key in ("hid_W", "ker_W", "bias_W"):
            print(f"   dfn{i}.{key:6s} {params[f'dfn{i}.{key}'].shape}")
    written = sum(params[f"dfn{i}.ker_b"].size + params[f"dfn{i}.bias_b"].size for i in (1, 2))
    print("   The kernel read-outs ker_W dominate: each output unit of the MLP is one filter weight. Per")
    print(f"   sample and step the MLP writes {written:,} numbers (kernels and biases of both layers; the 1x1")
    print("   layer maps V1's 384 maps to 5, the 3x3 layer 5 maps to 5).")


def main():
    exercise_1()
    print("exercise 2: run exercise_2(globals()) inside notebook 04")
    exercise_3()


if __name__ == "__main__":
    main()
