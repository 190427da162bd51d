"""Element-wise non-linearities: ReLU, ELU, sigmoid, tanh.

Every op keeps the shape of its input (any shape). Backward passes read the cached
*output* where the derivative is a function of it (sigmoid, tanh) and the cached input
otherwise (ReLU's kink at 0, ELU). Functions marked ``@fusable`` run as one fused kernel on
a GPU (:func:`minihart.backend.fusable`).
"""
from __future__ import annotations

from typing import NamedTuple

from minihart.backend import fusable, get_array_module


class ActCache(NamedTuple):
    x: object  # the input (ReLU, ELU)
    y: object  # the output (sigmoid, tanh, ELU)


def relu_forward(x):
    """``max(x, 0)``. Returns y (shape of x) and an :class:`ActCache`."""
    xp = get_array_module(x)
    y = xp.maximum(x, 0)
    return y, ActCache(x, y)


@fusable
def relu_backward(dout, cache: ActCache):
    """``dx = dout * [x > 0]`` (the subgradient 0 at x = 0)."""
    return dout * (cache.x > 0)


@fusable
def elu(x, alpha=1.0):
    """``x`` for x > 0, ``alpha (exp(x) - 1)`` otherwise (Clevert et al. 2016)."""
    xp = get_array_module(x)
    # exp of the clipped input: no overflow warning for large positive x
    return xp.where(x > 0, x, alpha * (xp.exp(xp.minimum(x, 0)) - 1))


def elu_forward(x, alpha=1.0):
    """:func:`elu` of x; returns y (shape of x) and an :class:`ActCache`."""
    y = elu(x, alpha)
    return y, ActCache(x, y)


@fusable
def elu_backward(dout, cache: ActCache, alpha=1.0):
    """``dx = dout`` for x > 0, ``dout alpha exp(x)`` otherwise (pass the forward's alpha)."""
    xp = get_array_module(dout)
    # alpha exp(x) directly: y + alpha loses precision for very negative x
    return dout * xp.where(cache.x > 0, 1, alpha * xp.exp(xp.minimum(cache.x, 0)))


@fusable
def sigmoid(x):
    """Numerically stable logistic function ``1 / (1 + exp(-x))`` (no overflow warnings)."""
    xp = get_array_module(x)
    z = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + z), z / (1 + z))


def sigmoid_forward(x):
    """``sigmoid(x)``; backward reads the cached output."""
    y = sigmoid(x)
    return y, ActCache(None, y)


@fusable
def sigmoid_backward(dout, cache: ActCache):
    """``dx = dout * y (1 - y)``."""
    return dout * cache.y * (1 - cache.y)


def tanh_forward(x):
    """``tanh(x)``; backward reads the cached output."""
    y = get_array_module(x).tanh(x)
    return y, ActCache(None, y)


@fusable
def tanh_backward(dout, cache: ActCache):
    """``dx = dout * (1 - y^2)``."""
    return dout * (1 - cache.y * cache.y)


ACTIVATIONS = {
    "relu": (relu_forward, relu_backward),
    "elu": (elu_forward, elu_backward),
    "sigmoid": (sigmoid_forward, sigmoid_backward),
    "tanh": (tanh_forward, tanh_backward),
    "identity": (lambda x: (x, None), lambda dout, cache: dout),
}
