"""V1's convolutions started from the training frames, without labels (``--v1-init kmeans``).

Single-layer networks learn good first filters from k-means on whitened image patches (Coates,
Lee & Ng, AISTATS 2011): the centroids are the patch shapes the images hold most. Here each of
V1's convolutions in turn is set from k-means on the patches it will see: glimpses at the
training boxes' context windows (the model's first windows, without labels beyond those boxes),
through the layers already set. A convolution with ``F`` filters gets ``F`` centroids in
whitened space, carried back to filters on the raw input (``W = Z c``, ``b = -W . mean``, ``Z``
the ZCA matrix), each scaled so that its responses have the spread of the He-normal
initialisation it replaces. The rest of the model keeps its random start.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from minihart.model import hart
from minihart.model.hart import context_window
from minihart.nn import attention


def sample_glimpses(train_set, cfg, rng, n_windows=200, seq_len=5):
    """Mean-removed glimpses ``(N, C, h, w)`` (V1's input) at the context windows of the true
    boxes of ``n_windows`` random training windows (the frames where the target is present)."""
    frames, boxes, presence = train_set.batch(rng, n_windows, seq_len, np)
    keep = presence.reshape(-1) > 0
    x = frames.reshape((-1,) + frames.shape[2:])[keep]
    b = boxes.reshape(-1, 4)[keep]
    a = attention.box_to_attention(context_window(b, cfg.init_window_scale), x.shape[2:], validate=False)
    g, _ = attention.glimpse_forward(x, a.astype(np.float32), cfg.glimpse_hw)
    return g - g.mean(axis=(2, 3), keepdims=True)


def patches(x, k, stride, pad, n, rng):
    """``n`` random ``k x k`` patches of ``x (N, C, H, W)`` (zero-padded by ``pad``) as rows ``(n, C k k)``."""
    if isinstance(pad, tuple):
        x, pad = np.pad(x, ((0, 0), (0, 0), pad[:2], pad[2:])), 0
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    N, C, Ho, Wo = win.shape[:4]
    i, r, c = rng.integers(0, N, n), rng.integers(0, Ho, n), rng.integers(0, Wo, n)
    return win[i, :, r, c].reshape(n, C * k * k).astype(np.float64)


def kmeans_filters(X, n_filters, rng, iters=20, eps=0.1):
    """Filters ``(F, D)`` and biases ``(F,)`` from k-means on the ZCA-whitened rows of ``X (n, D)``."""
    mean = X.mean(axis=0)
    e, U = np.linalg.eigh(np.cov(X - mean, rowvar=False))
    Z = (U / np.sqrt(np.maximum(e, 0) + eps * e.mean())) @ U.T
    Xw = (X - mean) @ Z
    C = Xw[rng.choice(len(Xw), n_filters, replace=False)]
    for _ in range(iters):
        label = ((Xw ** 2).sum(1)[:, None] - 2 * Xw @ C.T + (C ** 2).sum(1)).argmin(axis=1)
        for j in range(n_filters):
            members = Xw[label == j]
            C[j] = members.mean(axis=0) if len(members) else Xw[rng.integers(len(Xw))]
    W = C @ Z  # c . Z (x - mean) = (Z c) . x - (Z c) . mean, Z symmetric
    # a He-normal filter's response spreads by sqrt(2 E[x^2]) (E over the patches' values)
    W *= (np.sqrt(2 * (X ** 2).mean()) / ((X - mean) @ W.T).std(axis=0).clip(1e-12))[:, None]
    return W, -W @ mean


def kmeans_v1(params, cfg, train_set, rng, n_patches=50000):
    """``params`` with every V1 convolution (grouped ones excepted) set by :func:`kmeans_filters`
    on the patches of its input; the other parameters unchanged (a new dict)."""
    p = dict(params)
    g = sample_glimpses(train_set, cfg, rng)
    n_conv = 0
    for i, spec in enumerate(cfg.v1):
        if spec[0] != "conv":
            continue
        n_conv += 1
        _, f, k, stride, pad, groups = spec
        if groups == 1:  # V1's layers before this one, as set so far, give its input
            x, _ = hart.v1_forward(p, dataclasses.replace(cfg, v1=cfg.v1[:i]), g)
            W, b = kmeans_filters(patches(x, k, stride, pad, n_patches, rng), f, rng)
            p[f"v1.conv{n_conv}.W"] = W.reshape(p[f"v1.conv{n_conv}.W"].shape).astype(np.float32)
            p[f"v1.conv{n_conv}.b"] = b.astype(np.float32)
    return p
