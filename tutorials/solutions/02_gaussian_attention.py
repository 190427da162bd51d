"""Solutions to the exercises of notebook 02 (Gaussian spatial attention, eq. 2).

Run ``python tutorials/solutions/02_gaussian_attention.py`` from the repository root, or
``%load solutions/02_gaussian_attention.py`` in a notebook cell.
"""
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

import numpy as np

from minihart.data.synthetic import knobs, sequence
from minihart.gradcheck import rel_error
from minihart.nn.attention import (attention_to_box, box_to_attention, filterbank_backward, filterbank_forward,
                                   glimpse_backward, glimpse_forward)
from minihart.optim import Adam

FAST = os.environ.get("MINIHART_FAST") == "1"


# Exercise 1: the glimpse of the whole image vs a block average.
def whole_image_vs_block_average(frame):
    H, W = 112, 160
    x = frame[:, :H, :W][None].astype(np.float64)
    g, _ = glimpse_forward(x, np.array([[0.0, 0.0, 1.0, 1.0]]), (H // 4, W // 4))
    block = x[0, 0].reshape(H // 4, 4, W // 4, 4).mean(axis=(1, 3))
    return np.abs(g[0, 0] - block).max(), np.abs(block).max()


# Exercise 2: rows r of one filterbank are centred at mu + r gamma, so d centre_r / d mu = 1 and
# d mu = sum_r d centre_r. With A = E / sum_i E and E = exp(-z^2 / 2), z = (p - centre) / sigma:
#   dE * E = A (dA - sum_i dA A) =: q   (the softmax-like normalisation)
#   dE / d centre = E z / sigma          =>  d centre_r = sum_i q_ri z_ri / sigma.
def my_dmu(dA, A, z, sigma):
    q = A * (dA - (dA * A).sum(axis=2, keepdims=True))
    return ((q * z).sum(axis=2) / sigma[:, None]).sum(axis=1)


# Exercise 3: gradient descent on the window from far away, and the loss along a horizontal slide.
def descend(frame, box, offset, steps):
    x = frame[None].astype(np.float64)
    y, x0, h, w = box
    target = np.array([y - 0.25 * h, x0 - 0.25 * w, 1.5 * h, 1.5 * w])
    g_star, _ = glimpse_forward(x, box_to_attention(target[None], (120, 160)), (28, 28))
    start = target.copy()
    start[:2] += offset * start[2:]
    start[2:] *= 1.3
    params, opt = {"a": box_to_attention(start[None], (120, 160))}, Adam(lr=0.01)
    for _ in range(steps):
        g, cache = glimpse_forward(x, params["a"], (28, 28))
        _, da = glimpse_backward(g - g_star, cache, need_dx=False)
        opt.step(params, {"a": da})
    final = attention_to_box(params["a"], (120, 160))[0]
    return target, final, 0.5 * float(np.sum((g - g_star) ** 2))


def slide(frame, box):
    x = frame[None].astype(np.float64)
    y, x0, h, w = box
    target = np.array([y - 0.25 * h, x0 - 0.25 * w, 1.5 * h, 1.5 * w])
    g_star, _ = glimpse_forward(x, box_to_attention(target[None], (120, 160)), (28, 28))
    xs = np.linspace(-target[3] / 2, 160 - target[3] / 2, 61)
    wins = np.tile(target, (len(xs), 1))
    wins[:, 1] = xs
    g, _ = glimpse_forward(np.repeat(x, len(xs), axis=0), box_to_attention(wins, (120, 160)), (28, 28))
    return xs, 0.5 * ((g - g_star) ** 2).sum(axis=(1, 2, 3)), target[1]


def main():
    frames, boxes = sequence(3, 1, (120, 160), 1, knobs("medium"))
    diff, scale = whole_image_vs_block_average(frames[0])
    print(f"exercise 1: max |glimpse - 4x4 block average| = {diff:.3f} (image max {scale:.2f}). Not zero: "
          "a Gaussian of sigma(4) ~ 1.5 px is not a box filter; it weighs the block's centre more and "
          "leaks into the neighbouring blocks.")
    rng = np.random.default_rng(1)
    mu, gamma = np.array([2.3, -1.0]), np.array([1.4, 3.1])
    A, cache = filterbank_forward(mu, gamma, 6, 25)
    dA = rng.standard_normal(A.shape)
    print("exercise 2: rel. error of my_dmu", rel_error(my_dmu(dA, A, cache.z, cache.sigma),
                                                       filterbank_backward(dA, cache)[0]))
    for offset in (0.35, 0.8):
        target, final, loss = descend(frames[0], boxes[0], offset, 60 if FAST else 200)
        print(f"exercise 3: start shifted by {offset}: final window {final.round(1)}, target {target.round(1)}, "
              f"loss {loss:.2f}")
    xs, losses, x_true = slide(frames[0], boxes[0])
    minima = [round(float(xs[i]), 1) for i in range(1, len(xs) - 1) if losses[i] < losses[i - 1] and losses[i] < losses[i + 1]]
    print(f"   loss along a horizontal slide: local minima at x = {minima} (the target window is at {x_true:.1f}).")
    print("   Far from the object the glimpse sees only background: the loss is flat or has local minima, so")
    print("   the gradient does not point to the object. HART's attention loss (eq. 11) keeps the window on")
    print("   the object during training, so it rarely has to be found from far away.")


if __name__ == "__main__":
    main()
