"""Solutions to the exercises of notebook 06 (the losses, eqs. 9-12).

Each ``# %% Exercise k`` section answers exercise k: paste it into the exercise's cell (or
``%load`` this file there) and run the check cell below it. The sections run in the notebook,
after its own cells; CI runs every notebook with them in place (tests/test_course.py).
"""

# %% Exercise 1
# an L1 box loss: the mean over boxes of sum_k |pred_k - target_k|; d|d|/dd = sign(d)
from typing import NamedTuple

import numpy as np


class L1Cache(NamedTuple):
    sign: object
    n_boxes: int


def l1_forward(pred, target):
    d = pred - target
    n_boxes = d.size // 4
    return np.abs(d).sum() / n_boxes, L1Cache(np.sign(d), n_boxes)


def l1_backward(dloss, cache):
    return dloss * cache.sign / cache.n_boxes


print("L1 is not scale invariant: a 5 px error is huge for a 10 px box and nothing for a 300 px one; the IoU "
      "measures the overlap relative to the boxes' size")


# %% Exercise 2
# the regulariser as printed, R = -sum log(1 / lambda) = +sum log(lambda), lambda = v^2 + 1e-8:
# d total / d v = 2 v (L + 1 / lambda) > 0 for v > 0, so every weight falls towards 0
from typing import NamedTuple

import numpy as np


class PrintedCache(NamedTuple):
    terms: object
    v: object
    lam: object


def printed_forward(terms, v):
    lam = v * v + 1e-8
    return (lam * terms).sum() + np.log(lam).sum(), PrintedCache(terms, v, lam)


def printed_backward(dtotal, cache):
    return dtotal * cache.lam, dtotal * 2 * cache.v * (cache.terms + 1 / cache.lam)


terms, v, lams = np.array([0.25, 1.0, 3.0]), np.ones(3), []
for step in range(150 if MINIHART_FAST else 400):
    total, cache = printed_forward(terms, v)
    lams.append(cache.lam.copy())
    v -= 0.02 * printed_backward(1.0, cache)[1]
print("as printed, lambda after", len(lams), "steps:", lams[-1].round(4), f"total {float(total):.1f}: the weights fall "
      "towards 0 and the total towards -inf, so the losses stop mattering; with -sum log(lambda) they settle at 1 / L")


# %% Exercise 3
# constant predictions s = q on a map whose object covers 10 % of the cells
import numpy as np

from minihart.nn.losses import appearance_loss_forward

target = np.zeros((1, 1, 10, 10))
target.flat[:10] = 1
qs = np.linspace(0.01, 0.99, 99)
plain = -(0.1 * np.log(qs) + 0.9 * np.log(1 - qs))
balanced = [float(appearance_loss_forward(np.full(target.shape, np.log(q / (1 - q))), target, np.ones((1, 1)))[0])
            for q in qs]
q_plain, q_balanced = float(qs[np.argmin(plain)]), float(qs[np.argmin(balanced)])
print(f"plain cross-entropy smallest at q = {q_plain:.2f} (the object's share), balanced at q = {q_balanced:.2f}: a lazy "
      "network predicting the base rate does well on the plain loss; balancing makes the object count as much")
