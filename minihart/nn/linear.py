"""Affine layer ``y = x W + b`` and dropout with an explicit mask.

Shapes: ``x: (N, D)``, ``W: (D, M)``, ``b: (M,)``, ``y: (N, M)``. Leading dimensions of
``x`` beyond the last are flattened into ``N`` (so ``(B, T, D)`` works too).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class AffineCache(NamedTuple):
    x: object  # the input, kept for dW
    W: object  # the weights, kept for dx


def affine_forward(x, W, b):
    """``y = x W + b``.

    Args: x ``(..., D)``, W ``(D, M)``, b ``(M,)``.
    Returns: y ``(..., M)`` and an :class:`AffineCache` (backward reads the cached input).
    """
    if W.ndim != 2 or b.ndim != 1 or b.shape[0] != W.shape[1]:
        raise ValueError(f"affine_forward: W must be (D, M) and b (M,), got W{W.shape}, b{b.shape}")
    if x.ndim < 1 or x.shape[-1] != W.shape[0]:
        raise ValueError(f"affine_forward: x{x.shape} has last dimension "
                         f"{x.shape[-1] if x.ndim else None}, W{W.shape} expects {W.shape[0]}")
    return x @ W + b, AffineCache(x, W)


def affine_backward(dout, cache: AffineCache):
    """Gradients of :func:`affine_forward`.

    Args: dout ``(..., M)``.
    Returns: ``(dx (..., D), dW (D, M), db (M,))``.
    """
    x, W = cache
    x2 = x.reshape(-1, x.shape[-1])
    d2 = dout.reshape(-1, dout.shape[-1])
    return dout @ W.T, x2.T @ d2, d2.sum(axis=0)


class DropoutCache(NamedTuple):
    scale: object  # mask / keep probability


def dropout_forward(x, mask, p):
    """Inverted dropout with an explicit mask, so gradient checks are deterministic.

    Args: x any shape; mask same shape, 1 = keep, 0 = drop (``rng.random(x.shape) >= p``);
      p the drop probability in [0, 1). Kept units are scaled by ``1/(1-p)``, so evaluation
      is the identity (pass ``mask=None``).
    Returns: y (same shape as x) and a :class:`DropoutCache`.
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout_forward: p must be in [0, 1), got {p}")
    if mask is None:
        return x, DropoutCache(None)
    if mask.shape != x.shape:
        raise ValueError(f"dropout_forward: mask{mask.shape} must match x{x.shape}")
    scale = mask.astype(x.dtype) / (1.0 - p)
    return x * scale, DropoutCache(scale)


def dropout_backward(dout, cache: DropoutCache):
    """Returns ``dx`` of :func:`dropout_forward` (same shape as dout)."""
    return dout if cache.scale is None else dout * cache.scale


def dropout_mask(rng, shape, p, xp=None):
    """A keep-mask ``(rng.random(shape) >= p)`` as float32, on the device of ``xp``."""
    if not 0.0 <= p < 1.0:  # p >= 1 would drop everything, and dropout_forward then refuses it
        raise ValueError(f"dropout_mask: p must be in [0, 1), got {p}")
    m = (rng.random(shape) >= p).astype(np.float32)
    return m if xp is None or xp is np else xp.asarray(m)


def init_affine(rng, n_in, n_out, scale=None, dtype="float32"):
    """Glorot-uniform weights ``(n_in, n_out)`` and zero bias, as NumPy arrays."""
    s = scale if scale is not None else np.sqrt(6.0 / (n_in + n_out))
    return (rng.uniform(-s, s, (n_in, n_out)).astype(dtype), np.zeros(n_out, dtype))
