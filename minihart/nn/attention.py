"""Spatial attention: Gaussian filterbanks and the glimpse ``g = A_y x A_x^T``, paper eq. (2).

Conventions (the same as :mod:`minihart.boxes`):

* Image coordinates are continuous: pixel ``(i, j)`` covers ``[i, i+1) x [j, j+1)``, its
  centre is at ``(i + 0.5, j + 0.5)``. A box ``[y, x, h, w]`` covers ``[y, y+h) x [x, x+w)``,
  so ``[0, 0, H, W]`` is the whole image.
* The attention parameters ``a`` ``(B, 4)`` are the attention *window* as a box in normalised
  image coordinates, ``a = [y/H, x/W, h/H, w/W]`` (:func:`box_to_attention`).
* A glimpse of ``gh x gw`` pixels splits the window into ``gh x gw`` equal cells; glimpse
  pixel ``(r, s)`` is a Gaussian average centred on the centre of its cell. Per axis:
  stride ``gamma = h / gh`` and first centre ``mu = y + gamma / 2``, so row ``r`` of ``A_y`` is
  centred at ``y + (r + 0.5) h / gh``. The window of the whole image then samples exactly where
  an ordinary resize does (PIL, OpenCV, ``align_corners=False``), so the glimpse of
  ``[0, 0, H, W]`` is a resized image. (The reference code uses ``gamma = h / (gh - 1)`` and
  ``mu = y``: its outer Gaussians sit on the window's edges, not inside it.)
* Each filterbank row is a Gaussian ``exp(-(p - mu_r)^2 / (2 sigma^2))`` over the pixel
  centres ``p``, normalised to sum 1 (``+ 1e-8`` in the denominator). A window partly outside
  the image thus repeats the border pixels; rows entirely outside come out (nearly) zero.
* ``sigma`` is not predicted: it is a function of the stride only (paper, section 3), see
  :func:`stride_to_sigma`.
"""
from __future__ import annotations

from typing import NamedTuple

from minihart.backend import fusable, get_array_module
from minihart.boxes import validate_boxes

# sigma(gamma) = c0 + c1 gamma + ... + c4 gamma^4, refitted by data_scripts/fit_stride_sigma.py
# (Gaussian resampling vs antialiased bicubic, strides 0.25..8). Fit error: max 0.10 px (6.1 %),
# rms 0.036 px; the resampling MSE grows from 0.64 % to 0.65 % of the signal power.
SIGMA_COEFFS = (0.444465, -0.265817, 0.298741, -0.052698, 0.00309545)
STRIDE_FIT_MAX = 8.0  # largest stride of the fit; beyond it sigma grows in proportion to the stride
SIGMA_MIN = 0.1  # pixels; a narrower Gaussian is a point sample whose gradient vanishes
EPS = 1e-8  # in the row normaliser: rows far outside the image give 0, not 0/0


def _scale(image_hw, like, fn):
    """``[H, W, H, W]`` in the dtype of ``like``."""
    if len(image_hw) != 2 or any(int(n) != n or n <= 0 for n in image_hw):
        raise ValueError(f"{fn}: image_hw must be two positive ints (H, W), got {image_hw}")
    H, W = (int(n) for n in image_hw)
    return get_array_module(like).asarray([H, W, H, W], dtype=like.dtype)


def box_to_attention(box, image_hw, validate=True):
    """Pixel box(es) ``(..., 4)`` ``[y, x, h, w]`` -> attention ``[y/H, x/W, h/H, w/W]`` ``(..., 4)``.
    validate=False skips the box check (one read of the device) for boxes checked before."""
    if validate:
        validate_boxes(box, "box")
    return box / _scale(image_hw, box, "box_to_attention")


def attention_to_box(a, image_hw):
    """Attention ``(..., 4)`` -> the attention window as a pixel box ``(..., 4)``."""
    validate_boxes(a, "a")
    return a * _scale(image_hw, a, "attention_to_box")


def stride_to_sigma(gamma, coeffs=SIGMA_COEFFS, sigma_min=SIGMA_MIN, fit_max=STRIDE_FIT_MAX):
    """Width of the Gaussians from the stride, and its derivative.

    ``sigma = max(poly(gamma), sigma_min)`` with ``poly`` the polynomial ``coeffs`` (lowest
    order first) for ``gamma <= fit_max``; beyond the fitted range a 4th-order
    polynomial extrapolates wildly, so there ``sigma = sigma(fit_max) gamma / fit_max``
    (the fit shows sigma ~ 0.39 gamma when zooming out). The paper's "variance depends solely
    on the stride" is kept one axis at a time: the reference fitted one 2-D surface over both
    strides; we use one 1-D polynomial for either axis, as the filterbank is separable and the
    ideal width on one axis does not depend on the other axis' stride.

    Args: gamma ``(B,)`` strides in pixels. Returns ``(sigma (B,), dsigma_dgamma (B,))``.
    """
    xp = get_array_module(gamma)
    g = xp.minimum(gamma, fit_max)
    p, dp = xp.full_like(g, coeffs[-1]), xp.zeros_like(g)
    for c in coeffs[-2::-1]:  # Horner's rule for the polynomial and its derivative
        dp = dp * g + p
        p = p * g + c
    p_clamped = xp.maximum(p, sigma_min)
    sigma = p_clamped * xp.maximum(gamma / fit_max, 1.0)
    dsigma = xp.where(gamma > fit_max, p_clamped / fit_max, xp.where(p > sigma_min, dp, 0.0))
    return sigma, dsigma


class FilterbankCache(NamedTuple):
    A: object  # (B, n_out, n_in) the normalised filterbank
    z: object  # (B, n_out, n_in) (pixel centre - Gaussian centre) / sigma
    sigma: object  # (B,)
    dsigma: object  # (B,) d sigma / d gamma


def filterbank_forward(mu, gamma, n_out, n_in, coeffs=SIGMA_COEFFS):
    """One axis' filterbank ``A`` (one of ``A_x``, ``A_y`` of eq. 2).

    Args:
      mu: ``(B,)`` centre of the first Gaussian, in pixels (pixel ``i`` has centre ``i + 0.5``).
      gamma: ``(B,)`` stride between consecutive centres, in pixels.
      n_out, n_in: glimpse and image size along this axis.
      coeffs: the stride -> sigma polynomial, see :func:`stride_to_sigma`.
    Returns: ``A (B, n_out, n_in)``, row ``r`` a Gaussian centred at ``mu + r gamma`` with
      ``sigma = stride_to_sigma(gamma)``, normalised to sum 1; and a :class:`FilterbankCache`.
    """
    if mu.ndim != 1 or gamma.shape != mu.shape:
        raise ValueError(f"filterbank_forward: mu and gamma must both be (B,), got mu{mu.shape}, gamma{gamma.shape}")
    A, z, sigma, dsigma = filterbank(mu, gamma, n_out, n_in, coeffs, SIGMA_MIN, STRIDE_FIT_MAX, EPS)
    return A, FilterbankCache(A, z, sigma, dsigma)


@fusable
def filterbank(mu, gamma, n_out, n_in, coeffs, sigma_min, fit_max, eps):
    """The work of :func:`filterbank_forward`: ``(A, z, sigma, dsigma)``, the constants passed in."""
    xp = get_array_module(mu, gamma)
    sigma, dsigma = stride_to_sigma(gamma, coeffs, sigma_min, fit_max)
    dtype = sigma.dtype
    centres = mu[:, None] + gamma[:, None] * xp.arange(n_out, dtype=dtype)  # (B, n_out)
    pixels = xp.arange(n_in, dtype=dtype) + 0.5
    z = (pixels - centres[:, :, None]) / sigma[:, None, None]
    E = xp.exp(-0.5 * z * z)
    return E / (E.sum(axis=2, keepdims=True) + eps), z, sigma, dsigma


@fusable
def filterbank_backward(dA, cache: FilterbankCache):
    """Gradients of :func:`filterbank_forward` from the cache (nothing is recomputed).

    Args: dA ``(B, n_out, n_in)``. Returns ``(dmu (B,), dgamma (B,))``; dgamma includes the path
      through ``sigma(gamma)``.
    """
    A, z, sigma, dsigma = cache
    xp = get_array_module(dA)
    # A = E / (S + eps): dE * E = A * (dA - sum_i dA A), which avoids keeping E and S
    q = A * (dA - (dA * A).sum(axis=2, keepdims=True))
    qz, qzz = (q * z).sum(axis=2), (q * z * z).sum(axis=2)
    dcentre = qz / sigma[:, None]  # (B, n_out); dE/dcentre = E z / sigma
    dsig = qzz.sum(axis=1) / sigma  # dE/dsigma = E z^2 / sigma
    r = xp.arange(A.shape[1], dtype=dcentre.dtype)
    return dcentre.sum(axis=1), dcentre @ r + dsig * dsigma


class GlimpseCache(NamedTuple):
    x: object  # (B, C, H, W) the image
    Ay: object  # (B, h, H)
    Ax: object  # (B, w, W)
    u: object  # (B, C, H, w) = x A_x^T, the half-way product
    fy: FilterbankCache
    fx: FilterbankCache
    scale: tuple  # (H, W, h, w)


def glimpse_forward(x, a, glimpse_hw):
    """The attention glimpse ``g = A_y x A_x^T`` of every channel, eq. (2).

    Two batched matrix products: first ``u = x A_x^T``, one ``(C H, W) @ (W, w)`` product per
    sample (``x.reshape(B, C * H, W)`` is free in NCHW), then ``g = A_y u``. Contracting the
    width first costs ``2 C H w (W + h)`` FLOPs against ``2 C h W (H + w)`` the other way
    round; for the landscape frames of every dataset here (KITTI 187 x 621) that is the
    cheaper order, and the backward pass too is cheapest in it.

    Args:
      x: ``(B, C, H, W)`` images (or feature maps).
      a: ``(B, 4)`` attention ``[y/H, x/W, h/H, w/W]`` (the window, see the module docstring).
      glimpse_hw: ``(h, w)`` glimpse size, ints >= 2.
    Returns: ``g (B, C, h, w)`` (dtype of ``x`` and ``a`` promoted together) and a
      :class:`GlimpseCache`.
    """
    if x.ndim != 4:
        raise ValueError(f"glimpse_forward: x must be (B, C, H, W), got x{x.shape}")
    if a.shape != (x.shape[0], 4):
        raise ValueError(f"glimpse_forward: a must be (B, 4) with B = {x.shape[0]} as in x{x.shape}, got a{a.shape}")
    if len(glimpse_hw) != 2 or any(int(n) != n or n < 2 for n in glimpse_hw):
        raise ValueError(f"glimpse_forward: glimpse_hw must be two ints >= 2, got {glimpse_hw}")
    B, C, H, W = x.shape
    h, w = int(glimpse_hw[0]), int(glimpse_hw[1])
    gamma_y, gamma_x = a[:, 2] * (H / h), a[:, 3] * (W / w)
    Ay, fy = filterbank_forward(a[:, 0] * H + 0.5 * gamma_y, gamma_y, h, H)
    Ax, fx = filterbank_forward(a[:, 1] * W + 0.5 * gamma_x, gamma_x, w, W)
    u = (x.reshape(B, C * H, W) @ Ax.swapaxes(1, 2)).reshape(B, C, H, w)  # x A_x^T
    g = Ay[:, None] @ u  # (B, 1, h, H) @ (B, C, H, w): all channels in one batched product
    return g, GlimpseCache(x, Ay, Ax, u, fy, fx, (H, W, h, w))


def glimpse_backward(dg, cache: GlimpseCache, need_dx=True):
    """Gradients of :func:`glimpse_forward` (reads the cached filterbanks and ``x A_x^T``).

    ``dA_y = sum_c dg u^T``, ``du = A_y^T dg``, ``dA_x = sum_c du^T x`` (one
    ``(w, C H) @ (C H, W)`` product per sample) and ``dx = du A_x``.

    Args: dg ``(B, C, h, w)``; need_dx: False skips the image gradient (the tracker never
    needs it, and on a full frame it costs as much as the rest).
    Returns ``(dx (B, C, H, W) or None, da (B, 4))``.
    """
    x, Ay, Ax, u, fy, fx, (H, W, h, w) = cache
    xp = get_array_module(dg)
    B, C = x.shape[:2]
    dAy = (dg @ u.swapaxes(-1, -2)).sum(axis=1)  # (B, h, H), summed over channels
    du = Ay[:, None].swapaxes(-1, -2) @ dg  # (B, C, H, w)
    dAx = du.reshape(B, C * H, w).swapaxes(1, 2) @ x.reshape(B, C * H, W)  # (B, w, W)
    dx = du @ Ax[:, None] if need_dx else None
    dmu_y, dgamma_y = filterbank_backward(dAy, fy)
    dmu_x, dgamma_x = filterbank_backward(dAx, fx)
    # mu = a0 H + gamma / 2, gamma = a2 H / h (and likewise for x)
    da = xp.stack([dmu_y * H, dmu_x * W, (dgamma_y + 0.5 * dmu_y) * (H / h),
                   (dgamma_x + 0.5 * dmu_x) * (W / w)], axis=1)
    return dx, da
