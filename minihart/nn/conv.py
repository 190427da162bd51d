"""Convolution, max-pooling and local response normalisation: the layers of V1 and of the
ventral stream (paper section 3, "Appearance Attention"; for KITTI, V1 is the first three
AlexNet layers, section 5.2). The paper has no equation for them.

Layout NCHW: images ``x: (N, C, H, W)``, filters ``w: (F, C // groups, kh, kw)``.
A window of ``kh x kw`` slides with ``stride`` over ``x`` zero-padded by ``pad`` on each
side, so ``Ho = (H + 2 pad - kh) / stride + 1`` (likewise ``Wo``). That quotient must be an
integer: where frameworks silently drop the last rows/columns (floor mode), we raise a
``ValueError`` naming ``stride`` and the shapes, so a mismatch of layer sizes never goes
unnoticed. (A 3x3 stride-2 pool therefore needs an odd ``H + 2 pad``, as in AlexNet's
55 -> 27 -> 13.)

im2col gathers every window into columns with one strided-slice copy per kernel offset
(``kh * kw`` copies, never a loop over the batch or the pixels) and col2im adds them back the
same way; slices of one offset never overlap, so the scatter is exact without ``add.at``, and
the code runs unchanged on CuPy.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from minihart.backend import fusable, get_array_module


def _is_int(v, low):
    return isinstance(v, (int, np.integer)) and v >= low


def _output_hw(fn, x, kh, kw, stride, pad, kname, shapes):
    """``(Ho, Wo)`` of a ``kh x kw`` window (argument ``kname``) over ``x`` padded by ``pad``."""
    if not _is_int(stride, 1):
        raise ValueError(f"{fn}: stride must be a positive integer, got {stride!r}")
    if not _is_int(pad, 0):
        raise ValueError(f"{fn}: pad must be a non-negative integer, got {pad!r}")
    hp, wp = x.shape[2] + 2 * pad, x.shape[3] + 2 * pad
    if kh > hp or kw > wp:
        raise ValueError(f"{fn}: {kname} window {kh}x{kw} is larger than the padded input "
                         f"{hp}x{wp} ({shapes}, pad={pad})")
    if (hp - kh) % stride or (wp - kw) % stride:
        raise ValueError(f"{fn}: stride={stride} does not divide H + 2 pad - kh = {hp - kh} and "
                         f"W + 2 pad - kw = {wp - kw}, so the output size is not an integer "
                         f"({shapes}, pad={pad}); change pad, stride or the input size")
    return (hp - kh) // stride + 1, (wp - kw) // stride + 1


@fusable
def im2col(x, kh, kw, stride=1, pad=0, batch_inner=False):
    """Every ``kh x kw`` window of ``x`` as a column.

    Args: x ``(N, C, H, W)``; kh, kw the window size; stride, pad integers; batch_inner: the
      layout of the result (below).
    Returns: cols ``(N, C, kh, kw, Ho, Wo)`` with
      ``cols[n, c, i, j, r, s] = xpad[n, c, r * stride + i, s * stride + j]``;
      ``cols.reshape(N, C * kh * kw, Ho * Wo)`` is the matrix a convolution multiplies per
      sample. With ``batch_inner`` the same entries laid out ``(C, kh, kw, Ho, Wo, N)``: then
      ``cols.reshape(C * kh * kw, Ho * Wo * N)`` is one matrix for the whole batch. It copies
      from ``x`` transposed to ``(C, H, W, N)``, so that each row it moves holds ``Wo * N``
      consecutive numbers instead of ``Wo`` (twice as fast on a CPU for 14-pixel rows).
    """
    ho, wo = _output_hw("im2col", x, kh, kw, stride, pad, "kernel", f"x{x.shape}")
    xp = get_array_module(x)
    n, c, h, w = x.shape
    hp, wp = h + 2 * pad, w + 2 * pad
    # the copies read (C, Hp, Wp, N) batch inner, else (N C, Hp, Wp): the same loop for both
    src = xp.zeros((c, hp, wp, n) if batch_inner else (n * c, hp, wp), dtype=x.dtype)
    src[:, pad:pad + h, pad:pad + w] = x.transpose(1, 2, 3, 0) if batch_inner else x.reshape(n * c, h, w)
    cols = xp.empty((src.shape[0], kh, kw, ho, wo) + src.shape[3:], dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, i, j] = src[:, i:i + stride * ho:stride, j:j + stride * wo:stride]
    return cols if batch_inner else cols.reshape(n, c, kh, kw, ho, wo)


@fusable
def col2im(cols, x_shape, stride=1, pad=0, batch_inner=False):
    """Adjoint of :func:`im2col`: add every column entry back onto the pixel it came from.

    Args: cols ``(N, C, kh, kw, Ho, Wo)``, or ``(C, kh, kw, Ho, Wo, N)`` with ``batch_inner``;
      x_shape ``(N, C, H, W)``; stride, pad as in im2col.
    Returns: ``(N, C, H, W)``, the sum over all windows (the padding is cropped off).
    """
    xp = get_array_module(cols)
    n, c, h, w = x_shape
    kh, kw, ho, wo = cols.shape[1:5] if batch_inner else cols.shape[2:]
    cols = cols if batch_inner else cols.reshape(n * c, kh, kw, ho, wo)  # as im2col's copies read
    out = xp.zeros((cols.shape[0], h + 2 * pad, w + 2 * pad) + cols.shape[5:], dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            out[:, i:i + stride * ho:stride, j:j + stride * wo:stride] += cols[:, i, j]
    out = out[:, pad:pad + h, pad:pad + w]  # crop the padding, back to (N, C, H, W)
    return xp.ascontiguousarray(out.transpose(3, 0, 1, 2)) if batch_inner else out.reshape(n, c, h, w)


# --------------------------------------------------------------------------- convolution
class ConvCache(NamedTuple):
    x: object  # the input (N, C, H, W); backward recomputes the columns from it
    w: object  # the filters (F, C // groups, kh, kw)
    stride: int
    pad: int
    groups: int


def conv2d_forward(x, w, b, stride=1, pad=0, groups=1):
    """2-D cross-correlation (as in every deep-learning library) with optional channel groups.

    ``out[n, f] = b[f] + sum_{c in group(f), i, j} w[f, c, i, j] xpad[n, c, r s + i, q s + j]``.
    With ``groups = g`` the channels split into g consecutive blocks: filters
    ``f in [k F/g, (k+1) F/g)`` see only channels ``[k C/g, (k+1) C/g)`` (AlexNet's conv2,
    conv4 and conv5 use g = 2). One matmul per group for the whole batch,
    ``(F/g, K) @ (K, L N)`` with ``K = C/g kh kw``, ``L = Ho Wo`` (columns laid out batch
    inner, so the backward's ``dw`` is one product too, not N products and a sum), in the
    dtype of the inputs.

    Args: x ``(N, C, H, W)``; w ``(F, C // groups, kh, kw)``; b ``(F,)``; stride, pad, groups
      positive integers (pad >= 0) with ``groups`` dividing ``C`` and ``F``.
    Returns: out ``(N, F, Ho, Wo)`` and a :class:`ConvCache` (keeps x, not the columns: over
      a sequence the columns would cost kh*kw times the memory of x per step).
    """
    shapes = f"x{x.shape}, w{w.shape}, b{b.shape}"
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"conv2d_forward: x must be (N, C, H, W) and w (F, C/groups, kh, kw), got {shapes}")
    n, c = x.shape[:2]
    f, cg, kh, kw = w.shape
    if not _is_int(groups, 1) or c % groups or f % groups:
        raise ValueError(f"conv2d_forward: groups={groups!r} must be a positive integer dividing "
                         f"the {c} channels of x and the {f} filters of w ({shapes})")
    if cg * groups != c:
        raise ValueError(f"conv2d_forward: x has {c} channels but w expects {cg * groups} "
                         f"(= {cg} per group x groups={groups}) ({shapes})")
    if b.shape != (f,):
        raise ValueError(f"conv2d_forward: b must be ({f},), one bias per filter ({shapes})")
    ho, wo = _output_hw("conv2d_forward", x, kh, kw, stride, pad, "w", shapes)
    cols = im2col(x, kh, kw, stride, pad, batch_inner=True).reshape(groups, cg * kh * kw, ho * wo * n)
    prod = (w.reshape(groups, f // groups, cg * kh * kw) @ cols).reshape(f, ho, wo, n)
    xp = get_array_module(x)
    out = xp.empty((n, f, ho, wo), dtype=prod.dtype)
    xp.add(prod.transpose(3, 0, 1, 2), b.reshape(f, 1, 1), out=out)  # back to (N, F, Ho, Wo)
    return out, ConvCache(x, w, stride, pad, groups)


def conv2d_backward(dout, cache: ConvCache):
    """Gradients of :func:`conv2d_forward` (recomputes the columns of the cached x).

    Args: dout ``(N, F, Ho, Wo)``.
    Returns: ``(dx (N, C, H, W), dw (F, C // groups, kh, kw), db (F,))``.
    """
    x, w, stride, pad, g = cache
    n, f, ho, wo = dout.shape
    _, cg, kh, kw = w.shape
    cols = im2col(x, kh, kw, stride, pad, batch_inner=True).reshape(g, cg * kh * kw, ho * wo * n)
    d = dout.transpose(1, 2, 3, 0).reshape(g, f // g, ho * wo * n)
    dw = (d @ cols.swapaxes(1, 2)).reshape(w.shape)
    dcols = w.reshape(g, f // g, cg * kh * kw).swapaxes(1, 2) @ d  # (g, K, L N)
    dx = col2im(dcols.reshape(g * cg, kh, kw, ho, wo, n), x.shape, stride, pad, batch_inner=True)
    return dx, dw, dout.sum(axis=(0, 2, 3))


# --------------------------------------------------------------------------- max-pooling
class PoolCache(NamedTuple):
    x_shape: tuple
    arg: object  # (N, C, Ho, Wo): kernel offset i * size + j of each window's maximum
    size: int
    stride: int
    pad: int


def maxpool2d_forward(x, size, stride, pad=0):
    """Max over ``size x size`` windows (AlexNet: size 3, stride 2, overlapping windows).

    Padding counts as ``-inf``, so it is never the maximum; ``pad <= size // 2`` keeps a real
    pixel in every window. Ties go to the first maximum in row-major window order (as PyTorch).

    Args: x ``(N, C, H, W)``; size, stride positive integers; pad >= 0.
    Returns: out ``(N, C, Ho, Wo)`` and a :class:`PoolCache` (the argmax of each window).
    """
    if x.ndim != 4:
        raise ValueError(f"maxpool2d_forward: x must be (N, C, H, W), got x{x.shape}")
    if not _is_int(size, 1) or not 0 <= pad <= size // 2:
        raise ValueError(f"maxpool2d_forward: size must be a positive integer and 0 <= pad <= "
                         f"size // 2, got size={size!r}, pad={pad!r} (x{x.shape})")
    ho, wo = _output_hw("maxpool2d_forward", x, size, size, stride, pad, "size", f"x{x.shape}")
    xp = get_array_module(x)
    xpad = xp.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=-np.inf) if pad else x
    out, arg = None, xp.zeros(x.shape[:2] + (ho, wo), dtype=np.min_scalar_type(size * size - 1))
    for k in range(size * size):
        i, j = divmod(k, size)
        s = xpad[:, :, i:i + stride * ho:stride, j:j + stride * wo:stride]
        arg = arg if out is None else xp.where(s > out, k, arg)  # strict: a later equal value does not win
        out = s.copy() if out is None else xp.maximum(out, s)
    return out, PoolCache(x.shape, arg, size, stride, pad)


def maxpool2d_backward(dout, cache: PoolCache):
    """Routes each ``dout`` entry to the argmax of its window (summed where windows overlap).

    Args: dout ``(N, C, Ho, Wo)``. Returns: dx ``(N, C, H, W)``.
    """
    (n, c, h, w), arg, size, stride, pad = cache
    _, _, ho, wo = dout.shape
    dx = get_array_module(dout).zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=dout.dtype)
    for k in range(size * size):
        i, j = divmod(k, size)
        dx[:, :, i:i + stride * ho:stride, j:j + stride * wo:stride] += dout * (arg == k)
    return dx[:, :, pad:pad + h, pad:pad + w]


# --------------------------------------------------------------------------- LRN
class LRNCache(NamedTuple):
    x: object  # the input
    s: object  # the normaliser k + alpha/size * window sum of x^2, shape of x
    s_pow: object  # s ** -beta
    size: int
    alpha: float
    beta: float


def _channel_window_sum(a, lo, hi):
    """``out[:, c] = sum_{d=-lo..hi} a[:, c + d]`` over axis 1, channels outside count as 0."""
    out = get_array_module(a).zeros_like(a)
    c = a.shape[1]
    for d in range(-lo, hi + 1):
        if abs(d) < c:
            out[:, max(0, -d):c - max(0, d)] += a[:, max(0, d):c - max(0, -d)]
    return out


def lrn_forward(x, size=5, alpha=1e-4, beta=0.75, k=2.0):
    """Local response normalisation across channels (Krizhevsky et al. 2012, section 3.3)::

        s[n, c] = k + alpha / size * sum_{c' = c - size//2}^{c + (size-1)//2} x[n, c']^2
        y = x * s ** -beta                       (channels outside [0, C) count as zero)

    ``alpha`` is divided by ``size`` as in Caffe and ``torch.nn.functional.local_response_norm``
    (identical values); the AlexNet paper writes ``alpha`` without ``1/size``, TensorFlow's
    ``local_response_normalization(depth_radius=r, alpha=a, bias=k)`` equals ours with
    ``size = 2r + 1, alpha = a * size``. Defaults: the paper's n = 5, beta = 0.75, k = 2 with
    Caffe's alpha = 1e-4 (the HART reference runs TF with radius 2, alpha 2e-5, bias 1, i.e.
    ours with ``k=1.0``).

    Args: x ``(N, C, ...)`` (channels on axis 1); size a positive integer; k > 0.
    Returns: y (shape of x) and an :class:`LRNCache` (backward reads the cached s).
    """
    if x.ndim < 2 or not _is_int(size, 1) or not k > 0:
        raise ValueError(f"lrn_forward: x must be (N, C, ...), size a positive integer and k > 0, "
                         f"got x{x.shape}, size={size!r}, k={k!r}")
    y, s, s_pow = lrn(x, size, alpha, beta, k)
    return y, LRNCache(x, s, s_pow, size, alpha, beta)


@fusable
def lrn(x, size, alpha, beta, k):
    """The work of :func:`lrn_forward`: ``y`` and what backward reads, ``s`` and ``s^-beta``."""
    s = _channel_window_sum(x * x, size // 2, (size - 1) // 2)
    s *= alpha / size  # in place: k + alpha/size * sum, without two more temporaries
    s += k
    xp = get_array_module(x)
    # s ** -beta without float32 pow (slow): AlexNet's beta = 3/4 is three square roots,
    # 3x faster again than exp(-beta log s)
    s_pow = 1 / (xp.sqrt(s) * xp.sqrt(xp.sqrt(s))) if beta == 0.75 else xp.exp(-beta * xp.log(s))
    return x * s_pow, s, s_pow


@fusable
def lrn_backward(dout, cache: LRNCache):
    """``dx[c] = dout[c] s[c]^-beta - 2 alpha beta / size * x[c] * sum_{c': c in window(c')}
    dout[c'] x[c'] s[c']^(-beta-1)``.

    Args: dout (shape of x). Returns: dx (shape of x).
    """
    x, s, s_pow, size, alpha, beta = cache
    # the transposed window: channel c feeds the outputs c' in [c - (size-1)//2, c + size//2]
    g = dout * s_pow  # dL/dy * dy/dx through the numerator; reused below
    back = _channel_window_sum(g * x / s, (size - 1) // 2, size // 2)
    back *= x  # in place from here: fewer passes over the activations
    back *= 2 * alpha * beta / size
    g -= back
    return g
