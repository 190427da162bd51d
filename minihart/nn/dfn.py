"""Dynamic filter network (De Brabandere et al. 2016): the dorsal stream of HART, eq. (3).

An MLP maps the appearance vector ``alpha_t`` to convolution kernels and biases that differ
*per sample*, ``Psi_t = MLP(alpha_t)`` (eq. 3), and :func:`dynamic_conv_forward` applies
each sample's own kernels to that sample's feature maps.

Parameter names of one dynamic filter layer (a ``prefix`` chosen by the caller, e.g.
``"dfn1_"``, is put in front of each, so several layers live in one flat dict):

=========  ======================  ==================================================
``hid_W``  ``(D, D)``              hidden layer, ELU (the reference's n_param_layers=2)
``hid_b``  ``(D,)``
``ker_W``  ``(D, Cout*Cin*k*k)``   linear read-out of the kernels, laid out (Cout, Cin, k, k)
``ker_b``  ``(Cout*Cin*k*k,)``
``bias_W`` ``(D, Cout)``           linear read-out of the per-sample biases
``bias_b`` ``(Cout,)``
=========  ======================  ==================================================
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from minihart.nn.activations import elu_backward, elu_forward
from minihart.nn.conv import col2im, im2col
from minihart.nn.linear import affine_backward, affine_forward, init_affine

DFN_KEYS = ("hid_W", "hid_b", "ker_W", "ker_b", "bias_W", "bias_b")


class DynConvCache(NamedTuple):
    cols: object    # (B, Cin*k*k, Ho*Wo) im2col of x, for dw
    w: object       # (B, Cout, Cin, k, k) the per-sample kernels, for dx
    x_shape: tuple  # (B, Cin, H, W)
    pad: int


def dynamic_conv_forward(x, w, b, pad):
    """Per-sample convolution (stride 1, zero padding): sample n is convolved with ``w[n]``.

    ``out[n, o] = sum_{c,i,j} w[n, o, c, i, j] * xpad[n, c, y+i, x+j] + b[n, o]``
    (cross-correlation, as every deep-learning "conv"), computed as one batched matmul
    ``w.reshape(B, Cout, Cin*k*k) @ im2col(x)`` (im2col and col2im of :mod:`minihart.nn.conv`):
    no Python loop over the batch.

    Args:
      x: ``(B, Cin, H, W)`` feature maps.
      w: ``(B, Cout, Cin, k, k)`` kernels of each sample, k odd (from :func:`dfn_filters_forward`).
      b: ``(B, Cout)`` biases of each sample.
      pad: zero padding on each side (``(k - 1) // 2`` keeps the size: 0 for k=1, 1 for k=3).
    Returns:
      out ``(B, Cout, Ho, Wo)`` with ``Ho = H + 2 pad - k + 1`` (same for W), and a
      :class:`DynConvCache` (backward reads the cached columns, it recomputes nothing).
    """
    if x.ndim != 4 or w.ndim != 5 or b.ndim != 2:
        raise ValueError(f"dynamic_conv_forward: need x (B, Cin, H, W), w (B, Cout, Cin, k, k), "
                         f"b (B, Cout), got x{x.shape}, w{w.shape}, b{b.shape}")
    B, C, H, W = x.shape
    k = w.shape[3]
    if w.shape[0] != B or b.shape[0] != B:
        raise ValueError(f"dynamic_conv_forward: batch sizes differ, x{x.shape}, w{w.shape}, b{b.shape}")
    if w.shape[2] != C:
        raise ValueError(f"dynamic_conv_forward: x has {C} channels but w expects {w.shape[2]} "
                         f"(x{x.shape}, w{w.shape})")
    if w.shape[4] != k or k % 2 == 0:
        raise ValueError(f"dynamic_conv_forward: kernels must be square with odd size, got w{w.shape}")
    if b.shape[1] != w.shape[1]:
        raise ValueError(f"dynamic_conv_forward: b{b.shape} must be (B, Cout) for w{w.shape}")
    if int(pad) != pad or pad < 0 or min(H, W) + 2 * pad < k:
        raise ValueError(f"dynamic_conv_forward: pad must be an integer >= 0 with H, W + 2 pad >= k, "
                         f"got pad={pad} for x{x.shape}, k={k}")
    pad = int(pad)
    Ho, Wo = H + 2 * pad - k + 1, W + 2 * pad - k + 1
    # a 1x1 kernel reads x as it is: no copy (the 1x1 layer sees V1's many channels)
    if k == 1 and pad == 0:
        cols = x.reshape(B, C, H * W)
    else:
        cols = im2col(x, k, k, 1, pad).reshape(B, C * k * k, Ho * Wo)
    out = w.reshape(B, w.shape[1], -1) @ cols + b[:, :, None]
    return out.reshape(B, w.shape[1], Ho, Wo), DynConvCache(cols, w, x.shape, pad)


def dynamic_conv_backward(dout, cache: DynConvCache):
    """Gradients of :func:`dynamic_conv_forward`.

    Args: dout ``(B, Cout, Ho, Wo)``.
    Returns: ``(dx (B, Cin, H, W), dw (B, Cout, Cin, k, k), db (B, Cout))``.
    """
    cols, w, x_shape, pad = cache
    B, Cout = w.shape[:2]
    d = dout.reshape(B, Cout, -1)
    dw = (d @ cols.transpose(0, 2, 1)).reshape(w.shape)
    dcols = w.reshape(B, Cout, -1).transpose(0, 2, 1) @ d
    k, (H, W) = w.shape[3], x_shape[2:]
    dcols = dcols.reshape(B, x_shape[1], k, k, H + 2 * pad - k + 1, W + 2 * pad - k + 1)
    return col2im(dcols, x_shape, 1, pad), dw, d.sum(axis=2)


class DfnFiltersCache(NamedTuple):
    hid: object      # AffineCache of the hidden layer
    act: object      # ActCache of its ELU
    ker: object      # AffineCache of the kernel read-out
    bias: object     # AffineCache of the bias read-out
    prefix: str


def _check_params(params, prefix, D, cin, cout, k, where):
    want = {"hid_W": (D, D), "hid_b": (D,), "ker_W": (D, cout * cin * k * k),
            "ker_b": (cout * cin * k * k,), "bias_W": (D, cout), "bias_b": (cout,)}
    for key, shape in want.items():
        p = params.get(prefix + key)
        if p is None or tuple(p.shape) != shape:
            raise ValueError(f"{where}: params[{prefix + key!r}] must have shape {shape} for D={D}, "
                             f"cin={cin}, cout={cout}, k={k}, got {None if p is None else p.shape}")


def dfn_filters_forward(alpha, params, cin, cout, k, prefix=""):
    """The filter-generating MLP of eq. (3): per-sample kernels and biases from ``alpha``.

    ``h = elu(alpha hid_W + hid_b)``; ``w = h ker_W + ker_b`` reshaped to
    ``(B, Cout, Cin, k, k)``; ``b = h bias_W + bias_b``.

    Args:
      alpha: ``(B, D)`` appearance vector.
      params: dict holding ``prefix + key`` for the keys of the module docstring.
      cin, cout, k: input channels, output channels and the (odd) kernel size.
      prefix: name prefix of this layer's parameters.
    Returns:
      ``(w (B, Cout, Cin, k, k), b (B, Cout))`` and a :class:`DfnFiltersCache` (backward reads
      the cached layer inputs and ELU output).
    """
    if alpha.ndim != 2:
        raise ValueError(f"dfn_filters_forward: alpha must be (B, D), got {alpha.shape}")
    if k % 2 == 0:
        raise ValueError(f"dfn_filters_forward: kernel size k must be odd, got {k}")
    _check_params(params, prefix, alpha.shape[1], cin, cout, k, "dfn_filters_forward")
    p = {key: params[prefix + key] for key in DFN_KEYS}
    pre, hid = affine_forward(alpha, p["hid_W"], p["hid_b"])
    h, act = elu_forward(pre)
    w, ker = affine_forward(h, p["ker_W"], p["ker_b"])
    b, bias = affine_forward(h, p["bias_W"], p["bias_b"])
    return (w.reshape(-1, cout, cin, k, k), b), DfnFiltersCache(hid, act, ker, bias, prefix)


def dfn_filters_backward(dout, cache: DfnFiltersCache):
    """Gradients of :func:`dfn_filters_forward`.

    Args: dout ``(dw (B, Cout, Cin, k, k), db (B, Cout))``.
    Returns: ``(dalpha (B, D), grads)``, grads a dict ``{prefix + key: gradient}`` of every
      parameter (same shapes as the parameters).
    """
    dw, db = dout
    hid, act, ker, bias, prefix = cache
    dh1, dker_W, dker_b = affine_backward(dw.reshape(dw.shape[0], -1), ker)
    dh2, dbias_W, dbias_b = affine_backward(db, bias)
    dpre = elu_backward(dh1 + dh2, act)
    dalpha, dhid_W, dhid_b = affine_backward(dpre, hid)
    grads = dict(zip(DFN_KEYS, (dhid_W, dhid_b, dker_W, dker_b, dbias_W, dbias_b)))
    return dalpha, {prefix + key: g for key, g in grads.items()}


def _unit_scaling(rng, shape, factor):
    """TF's uniform_unit_scaling: U(-s, s), ``s = factor sqrt(3 / fan_in)``, fan_in = product
    of all but the last dimension (1 for a bias vector)."""
    fan_in = max(1, int(np.prod(shape[:-1])))
    s = factor * np.sqrt(3.0 / fan_in)
    return rng.uniform(-s, s, shape).astype(np.float32)


def init_dfn_params(rng, prefix, D, cin, cout, k, weight_factor=0.1, bias_factor=np.sqrt(2.0)):
    """Parameters of one dynamic filter layer as NumPy float32 arrays, keyed ``prefix + key``.

    As the reference's DynamicFilterModel: the hidden layer Glorot-uniform with zero bias; the
    kernel read-out (weights and bias) uniform unit scaling with ``weight_factor`` 0.1, so the
    initial dynamic kernels are small; the bias read-out with ``bias_factor`` sqrt(2).
    """
    n_ker = cout * cin * k * k
    hid_W, hid_b = init_affine(rng, D, D)
    arrays = (hid_W, hid_b,
              _unit_scaling(rng, (D, n_ker), weight_factor), _unit_scaling(rng, (n_ker,), weight_factor),
              _unit_scaling(rng, (D, cout), bias_factor), _unit_scaling(rng, (cout,), bias_factor))
    return {prefix + key: a for key, a in zip(DFN_KEYS, arrays)}
