"""Solutions to the exercises of notebook 05 (LSTM, zoneout, backpropagation through time).

Each ``# %% Exercise k`` section answers exercise k: paste it into the exercise's cell (or
``%load`` this file there) and run the check cell below it. The sections run in the notebook,
after its own cells; CI runs every notebook with them in place (tests/test_course.py).
"""

# %% Exercise 1
# all masks 1: every unit keeps its old value, so the step is the identity on (h, c) and nothing
# flows into x or the weights
import numpy as np

from minihart.nn.lstm import init_lstm_params


def full_zoneout_holds(step_forward, step_backward):
    rng = np.random.default_rng(0)
    B, D, H = 3, 4, 5
    p = {k: v.astype(np.float64) for k, v in init_lstm_params(rng, D, H).items()}
    x, h, c = rng.standard_normal((B, D)), rng.standard_normal((B, H)), rng.standard_normal((B, H))
    ones = np.ones((B, H))
    (h1, c1), cache = step_forward(x, h, c, p["Wx"], p["Wh"], p["b"], ones, ones)
    dh, dc = rng.standard_normal((B, H)), rng.standard_normal((B, H))
    dx, dh_prev, dc_prev, dWx, dWh, db = step_backward((dh, dc), cache)
    kept = np.array_equal(h1, h) and np.array_equal(c1, c)
    passed_on = np.array_equal(dh_prev, dh) and np.array_equal(dc_prev, dc)
    nothing_else = not (np.any(dx) or np.any(dWx) or np.any(dWh) or np.any(db))
    return bool(kept and passed_on and nothing_else)


print("minihart's step with masks of ones:", full_zoneout_holds(lstm_step_forward, lstm_step_backward))


# %% Exercise 2
# a vanilla RNN step h = tanh(x Wx + h_prev Wh + b); tanh' = 1 - h^2 from the cached output
from typing import NamedTuple

import numpy as np


class RNNCache(NamedTuple):
    x: object
    h_prev: object
    Wx: object
    Wh: object
    h: object  # the output


def rnn_step_forward(x, h_prev, Wx, Wh, b):
    h = np.tanh(x @ Wx + h_prev @ Wh + b)
    return h, RNNCache(x, h_prev, Wx, Wh, h)


def rnn_step_backward(dh, cache):
    da = dh * (1 - cache.h ** 2)
    return da @ cache.Wx.T, da @ cache.Wh.T, cache.x.T @ da, cache.h_prev.T @ da, da.sum(axis=0)


# the "how far back" experiment for the RNN: the gradient of <r, h_T> reaching each step's input
rng = np.random.default_rng(1)
T, D, H = 40, 8, 32
Wx, Wh = rng.standard_normal((D, H)) / np.sqrt(D), rng.standard_normal((H, H)) / np.sqrt(H)
xs, h, caches = rng.standard_normal((16, T, D)), np.zeros((16, H)), []
for t in range(T):
    h, cache = rnn_step_forward(xs[:, t], h, Wx, Wh, np.zeros(H))
    caches.append(cache)
dh, norms = rng.standard_normal((16, H)), []
for cache in reversed(caches):
    dx, dh, *_ = rnn_step_backward(dh, cache)
    norms.append(np.linalg.norm(dx))
plt.figure(figsize=(6, 3))
plt.semilogy(range(T), norms[::-1])
plt.xlabel("step t")
plt.ylabel(r"$|dL/dx_t|$, vanilla RNN")


# %% Exercise 3
# truncated BPTT: the loss of step t flows back through steps t, t-1, ..., t-k+1 only
import numpy as np

from minihart.gradcheck import rel_error


def truncated_dWx(dhs, cache, k):
    total = 0
    for t in range(dhs.shape[1]):
        dh, dc = dhs[:, t], np.zeros_like(dhs[:, t])
        for s in range(t, max(t - k, -1), -1):
            _, dh, dc, dWx, _, _ = lstm_step_backward((dh, dc), cache[s])
            total = total + dWx
    return total


rng = np.random.default_rng(2)
p = {key: v.astype(np.float64) for key, v in init_lstm_params(rng, 3, 16).items()}
(hs, _), seq_cache = lstm_forward(rng.standard_normal((8, 24, 3)), np.zeros((8, 16)), np.zeros((8, 16)), p)
dhs = rng.standard_normal(hs.shape)  # a loss on every step
full = lstm_backward(dhs, seq_cache)[3]
for k in (1, 2, 5, 10, 20):
    print(f"truncated after {k:2d} steps: rel. error of dWx {rel_error(truncated_dWx(dhs, seq_cache, k), full):.2e}")
