"""Solutions to the exercises of notebook 01 (arrays on CPU and GPU, the gradient check).

Each ``# %% Exercise k`` section answers exercise k: paste it into the exercise's cell (or
``%load`` this file there) and run the check cell below it. The sections run in the notebook,
after its own cells; CI runs every notebook with them in place (tests/test_course.py).
"""

# %% Exercise 1
# d elu / dx = 1 for x > 0 and alpha e^x = y + alpha otherwise (alpha = 1): the output saves an exp
from minihart.backend import get_array_module


def my_elu_backward(dout, cache, alpha=1.0):
    xp = get_array_module(dout)
    return dout * xp.where(cache.x > 0, 1.0, cache.y + alpha)


# %% Exercise 2
# softplus(x) = log(1 + e^x) = logaddexp(0, x), which never forms e^x of a large x; its
# derivative is sigmoid(x) = exp(-logaddexp(0, -x))
from minihart.backend import get_array_module


def softplus_forward(x):
    xp = get_array_module(x)
    return xp.logaddexp(0, x), x


def softplus_backward(dout, x):
    xp = get_array_module(x)
    return dout * xp.exp(-xp.logaddexp(0, -x))


# %% Exercise 3
# the worst relative error of float32 centred differences of the sigmoid over many inputs (what
# `check` reports is a maximum too), for each step h
import numpy as np

from minihart.nn.activations import sigmoid_forward

x32 = np.random.default_rng(3).uniform(-3, 3, 200).astype(np.float32)
y64 = 1 / (1 + np.exp(-x32.astype(np.float64)))
exact = y64 * (1 - y64)
steps = np.logspace(-5, -1, 41)
float32_errors = []
for h in steps.astype(np.float32):
    numeric = (sigmoid_forward(x32 + h)[0] - sigmoid_forward(x32 - h)[0]) / (2 * h)
    float32_errors.append(np.max(np.abs(numeric - exact)) / (np.max(np.abs(numeric)) + np.max(np.abs(exact))))
best_h = float(steps[np.argmin(float32_errors)])
eps = np.finfo(np.float32).eps
float32_tol = 1e-4  # a few times the smallest error reached, which is close to eps^(2/3)
print(f"best float32 step {best_h:.1e} (eps^(1/3) = {eps ** (1 / 3):.1e}), smallest error {min(float32_errors):.1e}, "
      f"eps^(2/3) = {eps ** (2 / 3):.1e}: a float32 check needs about 1e-4 and would miss bugs that small")
