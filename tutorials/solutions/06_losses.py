"""Solutions to the exercises of notebook 06 (the losses, eqs. 9-12).

Run ``python tutorials/solutions/06_losses.py`` from the repository root, or
``%load solutions/06_losses.py`` in a notebook cell.
"""
import sys
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

import numpy as np

from minihart.gradcheck import check
from minihart.nn import losses as L


# Exercise 1: an L1 box loss, mean over boxes of sum_k |pred_k - target_k|.
class L1Cache(NamedTuple):
    sign: object
    n: int


def l1_forward(pred, target):
    d = pred - target
    n = d.size // 4
    return np.abs(d).sum() / n, L1Cache(np.sign(d), n)


def l1_backward(dloss, cache):
    return dloss * cache.sign / cache.n


# Exercise 2: the regulariser as printed, R = -sum log(1 / lambda) = +sum log(lambda). In u = log(lambda)
# the total is sum e^u L + u, whose derivative e^u L + 1 is always positive: u falls forever.
# (Descending on v with lambda = v^2 works too but needs tiny steps: the gradient 2 v (L + 1 / lambda)
# explodes as lambda -> 0.)
def printed_sign(terms, steps=200, lr=0.1):
    u, history = np.zeros(len(terms)), []
    for _ in range(steps):
        lam = np.exp(u)
        history.append((lam.copy(), float((lam * terms).sum() + u.sum())))
        u -= lr * (lam * terms + 1)
    return history


# Exercise 3: constant predictions s = q on a map with 10 % object cells.
def constant_prediction_losses(qs, frac=0.1, n=10):
    target = np.zeros((1, 1, n, n))
    target.flat[: int(frac * n * n)] = 1
    plain, balanced = [], []
    for q in qs:
        plain.append(-(frac * np.log(q) + (1 - frac) * np.log(1 - q)))
        logits = np.full(target.shape, np.log(q / (1 - q)))
        balanced.append(float(L.appearance_loss_forward(logits, target, np.ones((1, 1)))[0]))
    return np.array(plain), np.array(balanced)


def main():
    rng = np.random.default_rng(1)
    target = rng.uniform(10, 50, (5, 4))
    pred = target + rng.choice([-1, 1], (5, 4)) * rng.uniform(0.5, 3, (5, 4))
    print("exercise 1, L1:", check(lambda pred: l1_forward(pred, target), l1_backward, {"pred": pred}))
    print("   L1 is not scale invariant: a 5 px error is huge for a 10 px box and nothing for a 300 px one;")
    print("   the IoU measures overlap relative to the boxes' size.")
    history = printed_sign(np.array([0.25, 1.0, 3.0]))
    print("exercise 2: printed sign, lambda after 10 / 50 / 200 steps:",
          [h[0].round(4).tolist() for h in (history[9], history[49], history[-1])],
          f"total {history[-1][1]:.1f}: every weight falls towards 0 and the total loss towards -inf,")
    print("   so the losses stop mattering. With -sum log(lambda) the weights settle at 1 / L.")
    qs = np.linspace(0.01, 0.99, 99)
    plain, balanced = constant_prediction_losses(qs)
    print(f"exercise 3: constant prediction minimising the plain cross-entropy q = {qs[plain.argmin()]:.2f} (the "
          f"object fraction), the balanced loss q = {qs[balanced.argmin()]:.2f}. A lazy network predicting the base")
    print("   rate everywhere does well on the plain loss; balancing makes the object cells count as much as")
    print("   the background, so only a map that tells them apart lowers the loss.")


if __name__ == "__main__":
    main()
