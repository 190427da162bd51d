"""Solutions to the exercises of notebook 01 (arrays on CPU and GPU, the gradient check).

Run ``python tutorials/solutions/01_arrays_and_gradcheck.py`` from the repository root, or
``%load solutions/01_arrays_and_gradcheck.py`` in a notebook cell.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

import numpy as np

from minihart.backend import get_array_module, to_device
from minihart.gradcheck import check
from minihart.nn.activations import elu_forward, sigmoid_forward


# Exercise 1: d elu / dx = 1 for x > 0 and alpha e^x = y + alpha otherwise (alpha = 1).
def my_elu_backward(dout, cache, alpha=1.0):
    xp = get_array_module(dout)
    return dout * xp.where(cache.x > 0, 1.0, cache.y + alpha)


# Exercise 2: softplus(x) = log(1 + e^x) = logaddexp(0, x); its derivative is sigmoid(x).
def softplus_forward(x):
    xp = get_array_module(x)
    return xp.logaddexp(0, x), x


def softplus_backward(dout, x):
    xp = get_array_module(x)
    return dout * xp.exp(-xp.logaddexp(0, -x))  # sigmoid(x) without overflow


# Exercise 3: the worst relative error of float32 centred differences of the sigmoid over
# many inputs (what ``check`` reports is a maximum too), for each step h.
def float32_errors(steps, n=200):
    x = np.random.default_rng(3).uniform(-3, 3, n).astype(np.float32)
    y = 1 / (1 + np.exp(-x.astype(np.float64)))
    exact = y * (1 - y)
    out = []
    for h in steps:
        h = np.float32(h)
        num = (sigmoid_forward(x + h)[0] - sigmoid_forward(x - h)[0]) / (2 * h)
        out.append(np.max(np.abs(num - exact)) / (np.max(np.abs(num)) + np.max(np.abs(exact))))
    return np.array(out)


def main():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4))
    x += 0.1 * np.sign(x)
    print("exercise 1, ELU:", check(elu_forward, my_elu_backward, {"x": x}))
    x = to_device(np.random.default_rng(2).standard_normal((4, 5)) * 5)
    print("exercise 2, softplus:", check(softplus_forward, softplus_backward, {"x": x}))
    print("   no overflow at x = 1000:", float(softplus_forward(np.array(1000.0))[0]))
    steps = np.logspace(-5, -1, 41)
    errs = float32_errors(steps)
    eps = np.finfo(np.float32).eps
    print(f"exercise 3: best float32 step {steps[errs.argmin()]:.1e} (eps^(1/3) = {eps ** (1 / 3):.1e}), "
          f"worst relative error {errs.min():.1e}; eps^(2/3) = {eps ** (2 / 3):.1e}. A float32 check "
          "needs a tolerance of about 1e-4 (and then misses bugs that small), hence float64.")


if __name__ == "__main__":
    main()
