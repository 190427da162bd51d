"""Solutions to the exercises of notebook 05 (LSTM, zoneout, backpropagation through time).

Run ``python tutorials/solutions/05_lstm_zoneout.py`` from the repository root, or
``%load solutions/05_lstm_zoneout.py`` in a notebook cell.
"""
import sys
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

import numpy as np

from minihart.course.lstm import lstm_backward, lstm_forward
from minihart.gradcheck import check, rel_error
from minihart.nn.lstm import init_lstm_params, lstm_step_backward, lstm_step_forward


# Exercise 1: all masks 1 = every unit keeps its old value.
def exercise_1():
    rng = np.random.default_rng(0)
    B, D, H = 3, 4, 5
    p = init_lstm_params(rng, D, H)
    x, h, c = rng.standard_normal((B, D)), rng.standard_normal((B, H)), rng.standard_normal((B, H))
    ones = np.ones((B, H))
    (h1, c1), cache = lstm_step_forward(x, h, c, p["Wx"], p["Wh"], p["b"], ones, ones)
    dh, dc = rng.standard_normal((B, H)), rng.standard_normal((B, H))
    dx, dh_prev, dc_prev, dWx, dWh, db = lstm_step_backward((dh, dc), cache)
    print("exercise 1: state kept", np.array_equal(h1, h) and np.array_equal(c1, c),
          "| gradients passed unchanged", np.allclose(dh_prev, dh) and np.allclose(dc_prev, dc),
          "| weight gradients zero", not (dWx.any() or dWh.any() or db.any() or dx.any()))


# Exercise 2: a vanilla RNN step h = tanh(x Wx + h_prev Wh + b).
class RNNCache(NamedTuple):
    x: object
    h_prev: object
    Wx: object
    Wh: object
    h: object  # the output, for tanh' = 1 - h^2


def rnn_step_forward(x, h_prev, Wx, Wh, b):
    h = np.tanh(x @ Wx + h_prev @ Wh + b)
    return h, RNNCache(x, h_prev, Wx, Wh, h)


def rnn_step_backward(dh, cache):
    da = dh * (1 - cache.h ** 2)
    return da @ cache.Wx.T, da @ cache.Wh.T, cache.x.T @ da, cache.h_prev.T @ da, da.sum(axis=0)


def rnn_gradient_per_step(T=40, D=8, H=32):
    # the "how far back" experiment for the vanilla RNN: loss <r, h_T>
    rng = np.random.default_rng(1)
    Wx, Wh, b = rng.standard_normal((D, H)) / np.sqrt(D), rng.standard_normal((H, H)) / np.sqrt(H), np.zeros(H)
    xs, h, caches = rng.standard_normal((16, T, D)), np.zeros((16, H)), []
    for t in range(T):
        h, cache = rnn_step_forward(xs[:, t], h, Wx, Wh, b)
        caches.append(cache)
    dh, norms = rng.standard_normal((16, H)), []
    for cache in reversed(caches):
        dx, dh, *_ = rnn_step_backward(dh, cache)
        norms.append(np.linalg.norm(dx))
    return np.array(norms[::-1])


# Exercise 3: truncated BPTT lets the loss of step t flow back through at most k steps.
def truncated_dWx(dhs, cache, k):
    total = 0
    for t in range(dhs.shape[1]):
        dh, dc = dhs[:, t], np.zeros_like(dhs[:, t])
        for s in range(t, max(t - k, -1), -1):
            _, dh, dc, gWx, _, _ = lstm_step_backward((dh, dc), cache.steps[s])
            total = total + gWx
    return total


def exercise_3(T=24, D=3, H=16):
    rng = np.random.default_rng(2)
    p = {k: v.astype(np.float64) for k, v in init_lstm_params(rng, D, H).items()}
    xs, h0 = rng.standard_normal((8, T, D)), np.zeros((8, H))
    (hs, _), cache = lstm_forward(xs, h0, h0, p)
    dhs = rng.standard_normal(hs.shape)  # a loss on every step
    full = lstm_backward(dhs, cache)[3]
    for k in (1, 2, 5, 10, 20):
        print(f"exercise 3: truncated after {k:2d} steps: rel. error of dWx {rel_error(truncated_dWx(dhs, cache, k), full):.2e}")
    print("   (k = T is exact; how fast the error falls depends on how long the forget gates remember)")


def main():
    exercise_1()
    rng = np.random.default_rng(3)
    print("exercise 2, RNN step:", check(rnn_step_forward, rnn_step_backward,
                                        dict(x=rng.standard_normal((3, 4)), h_prev=rng.standard_normal((3, 5)),
                                             Wx=rng.standard_normal((4, 5)), Wh=rng.standard_normal((5, 5)),
                                             b=rng.standard_normal(5))))
    norms = rnn_gradient_per_step()
    print(f"   vanilla RNN: |dL/dv_t| at t = 39, 30, 20, 0: {norms[39]:.1e}, {norms[30]:.1e}, {norms[20]:.1e}, "
          f"{norms[0]:.1e}")
    exercise_3()


if __name__ == "__main__":
    main()
