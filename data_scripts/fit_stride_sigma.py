"""Fit the stride -> sigma polynomial of the Gaussian attention filterbank (paper section 3).

HART predicts only the centres and the stride ``gamma`` of the Gaussians; their width
``sigma`` is a fixed 4th-order polynomial of the stride, fitted once "before training the
whole system". This script refits it and prints the coefficients that
``minihart/nn/attention.py`` hard-codes as ``SIGMA_COEFFS``.

Method, one axis at a time (the filterbank is separable and sigma depends on one stride):

1. Signals: random 1-D signals with a ``1/f`` power spectrum, the spectrum of a row of a
   natural image (2-D images have ``1/f^2``; integrating over one frequency axis leaves ``1/f``).
2. Target: antialiased bicubic resampling, as PIL's ``Image.resize(..., BICUBIC)`` and
   ``torch.nn.functional.interpolate(..., antialias=True)`` do: the Keys cubic kernel
   (a = -0.5) stretched by ``max(1, gamma)``, rows normalised to sum 1. It interpolates
   sharply when zooming in (gamma < 1) and low-passes against aliasing when zooming out.
3. For each stride on a geometric grid (zoom in and out, default ``[0.25, 8]``), the sigma
   whose Gaussian resampling is closest (mean squared error) to the target, found by a
   golden-section search. Output sample ``r`` sits at ``mu + r * gamma`` with a random
   sub-pixel phase ``mu``; pixel ``i`` has its centre at ``i + 0.5`` (minihart's convention).
   Only outputs far from the signal ends are compared.
4. A least-squares 4th-order polynomial ``sigma(gamma) = c0 + c1 gamma + ... + c4 gamma^4``
   through those sigmas, weighted by ``1 / sigma`` (relative errors: 0.05 px matters at
   sigma = 0.4, not at sigma = 3).

Run ``python data_scripts/fit_stride_sigma.py`` (a few seconds); ``--help`` lists options.
"""
from __future__ import annotations

import argparse

import numpy as np


def keys_cubic(t, a=-0.5):
    """The Keys cubic convolution kernel (support [-2, 2]); a = -0.5 as in PIL."""
    t = np.abs(t)
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return np.where(t < 1, near, np.where(t < 2, far, 0.0))


def resampling_matrix(kernel, centres, n_in):
    """Rows ``kernel(pixel_centre - centre)`` normalised to sum 1.

    Args: kernel a function of the offset in pixels; centres ``(S, n_out)`` output sample
      positions; n_in the signal length. Returns ``(S, n_out, n_in)``.
    """
    offsets = (np.arange(n_in) + 0.5) - centres[..., None]
    k = kernel(offsets)
    return k / k.sum(-1, keepdims=True)


def natural_signals(rng, n, length):
    """``n`` random signals ``(n, length)`` with power spectrum ``1/f``, unit variance."""
    f = np.fft.rfftfreq(length)
    amp = np.zeros_like(f)
    amp[1:] = f[1:] ** -0.5
    spec = amp * (rng.standard_normal((n, f.size)) + 1j * rng.standard_normal((n, f.size)))
    s = np.fft.irfft(spec, length)
    return s / s.std()


def resampling_problem(gamma, rng, n_signals=32, n_out=24):
    """``mse(sigma)``: the mean squared error between Gaussian and bicubic resampling of
    fresh random signals at stride ``gamma``, relative to the target's power."""
    margin = 4 * max(gamma, 1.0) + 4  # every kernel lies inside the signal
    length = int(np.ceil(n_out * gamma + 2 * margin))
    x = natural_signals(rng, n_signals, length)
    centres = margin + rng.random((n_signals, 1)) + gamma * np.arange(n_out)
    stretch = max(gamma, 1.0)
    target = np.einsum("sri,si->sr", resampling_matrix(lambda d: keys_cubic(d / stretch), centres, length), x)
    power = float(np.mean(target ** 2))

    def mse(sigma):
        G = resampling_matrix(lambda d: np.exp(-0.5 * (d / sigma) ** 2), centres, length)
        return float(np.mean((np.einsum("sri,si->sr", G, x) - target) ** 2)) / power
    return mse


def golden_section(f, lo, hi, iters=25):
    """The minimiser of a unimodal ``f`` on ``[lo, hi]``."""
    phi = (np.sqrt(5) - 1) / 2
    for _ in range(iters):
        s1, s2 = hi - phi * (hi - lo), lo + phi * (hi - lo)
        if f(s1) < f(s2):
            hi = s2
        else:
            lo = s1
    return (lo + hi) / 2


def fit(stride_min=0.25, stride_max=8.0, n_strides=25, n_signals=32, seed=0):
    """Fit the polynomial.

    Returns ``(coeffs, table)``: coeffs ``(5,)`` lowest order first; table ``(n_strides, 5)``
    columns stride, best sigma, polynomial sigma, relative MSE at each of the two sigmas.
    """
    rng = np.random.default_rng(seed)
    strides = np.geomspace(stride_min, stride_max, n_strides)
    problems = [resampling_problem(g, rng, n_signals) for g in strides]
    best = np.array([golden_section(mse, 0.05, 0.6 * g + 1.0) for g, mse in zip(strides, problems)])
    coeffs = np.polynomial.polynomial.polyfit(strides, best, 4, w=1 / best)
    poly = np.polynomial.polynomial.polyval(strides, coeffs)
    errs = np.array([(mse(b), mse(p)) for mse, b, p in zip(problems, best, poly)])
    return coeffs, np.column_stack([strides, best, poly, errs])


def main(argv=None):
    p = argparse.ArgumentParser(description="Fit sigma(stride) of the Gaussian attention filterbank "
                                            "to antialiased bicubic resampling; print the coefficients.")
    p.add_argument("--stride-min", type=float, default=0.25, help="smallest stride (zoom in), pixels")
    p.add_argument("--stride-max", type=float, default=8.0, help="largest stride (zoom out), pixels")
    p.add_argument("--strides", type=int, default=25, help="number of strides on a geometric grid")
    p.add_argument("--signals", type=int, default=32, help="random signals per stride")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    args = p.parse_args(argv)
    coeffs, table = fit(args.stride_min, args.stride_max, args.strides, args.signals, args.seed)
    print(f"{'stride':>8} {'best sigma':>10} {'poly sigma':>10} {'MSE best':>9} {'MSE poly':>9}")
    for row in table:
        print("{:8.3f} {:10.4f} {:10.4f} {:9.5f} {:9.5f}".format(*row))
    strides, best, poly, mse_best, mse_poly = table.T
    res = np.abs(poly - best)
    print(f"fit error: max |poly - best| = {res.max():.4f} px ({(res / best).max():.1%}), "
          f"rms {np.sqrt(np.mean(res ** 2)):.4f} px; resampling MSE (relative to the signal power) "
          f"{mse_best.mean():.5f} at the best sigmas, {mse_poly.mean():.5f} with the polynomial")
    print("SIGMA_COEFFS = (" + ", ".join(f"{c:.6g}" for c in coeffs) + ")  # c0 + c1 g + ... + c4 g^4")
    return coeffs


if __name__ == "__main__":
    main()
