"""Element-wise non-linearities: ReLU, ELU, sigmoid, tanh.

Every op keeps the shape of its input (any shape). Backward passes read the cached
*output* where the derivative is a function of it (sigmoid, tanh, ELU for x < 0) and the
cached input otherwise (ReLU's kink at 0).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from minihart.backend import get_array_module
from minihart.gradcheck import register
from minihart.nn import kernels


class ActCache(NamedTuple):
    x: object  # the input (ReLU, ELU)
    y: object  # the output (sigmoid, tanh, ELU)


def relu_forward(x):
    """``max(x, 0)``. Returns y (shape of x) and an :class:`ActCache`."""
    xp = get_array_module(x)
    y = xp.maximum(x, 0)
    return y, ActCache(x, y)


def relu_backward(dout, cache: ActCache):
    """``dx = dout * [x > 0]`` (the subgradient 0 at x = 0)."""
    if kernels.enabled(get_array_module(dout)):  # on a GPU: one fused kernel (minihart.nn.kernels)
        return kernels.kernel("relu_backward")(dout, cache.x)
    return dout * (cache.x > 0)


def elu_forward(x, alpha=1.0):
    """``x`` for x > 0, ``alpha (exp(x) - 1)`` otherwise (Clevert et al. 2016)."""
    xp = get_array_module(x)
    if kernels.enabled(xp):
        y = kernels.elu(x, alpha)
    else:  # exp of the clipped input: no overflow warning for large positive x
        y = xp.where(x > 0, x, alpha * (xp.exp(xp.minimum(x, 0)) - 1))
    return y, ActCache(x, y)


def elu_backward(dout, cache: ActCache, alpha=1.0):
    """``dx = dout`` for x > 0, ``dout alpha exp(x)`` otherwise (pass the forward's alpha)."""
    xp = get_array_module(dout)
    if kernels.enabled(xp):
        return kernels.elu_backward(dout, cache.x, alpha)
    # alpha exp(x) directly: y + alpha loses precision for very negative x
    return dout * xp.where(cache.x > 0, 1, alpha * xp.exp(xp.minimum(cache.x, 0)))


def sigmoid(x):
    """Numerically stable logistic function ``1 / (1 + exp(-x))`` (no overflow warnings)."""
    xp = get_array_module(x)
    if kernels.enabled(xp):
        return kernels.kernel("sigmoid")(x)
    z = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + z), z / (1 + z))


def sigmoid_forward(x):
    """``sigmoid(x)``; backward reads the cached output."""
    y = sigmoid(x)
    return y, ActCache(None, y)


def sigmoid_backward(dout, cache: ActCache):
    """``dx = dout * y (1 - y)``."""
    if kernels.enabled(get_array_module(dout)):
        return kernels.kernel("sigmoid_backward")(dout, cache.y)
    return dout * cache.y * (1 - cache.y)


def tanh_forward(x):
    """``tanh(x)``; backward reads the cached output."""
    y = get_array_module(x).tanh(x)
    return y, ActCache(None, y)


def tanh_backward(dout, cache: ActCache):
    """``dx = dout * (1 - y^2)``."""
    if kernels.enabled(get_array_module(dout)):
        return kernels.kernel("tanh_backward")(dout, cache.y)
    return dout * (1 - cache.y * cache.y)


ACTIVATIONS = {
    "relu": (relu_forward, relu_backward),
    "elu": (elu_forward, elu_backward),
    "sigmoid": (sigmoid_forward, sigmoid_backward),
    "tanh": (tanh_forward, tanh_backward),
    "identity": (lambda x: (x, None), lambda dout, cache: dout),
}


def _away_from_zero(g, shape):
    """Inputs with |x| >= 0.1 so finite differences never straddle a kink."""
    x = g.standard_normal(shape)
    return x + 0.1 * np.sign(x)


for _name in ("relu", "elu", "sigmoid", "tanh"):
    def _case(xp, _name=_name):
        fwd, bwd = ACTIVATIONS[_name]
        g = np.random.default_rng(3)
        return dict(forward=fwd, backward=bwd, inputs=dict(x=xp.asarray(_away_from_zero(g, (3, 4, 5)))))
    register(_name)(_case)
