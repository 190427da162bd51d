"""LSTM cell with zoneout: the working memory of HART, eq. (5) ``o_t, h_t = LSTM(v_t, h_{t-1})``.

One step, gates in the order **i, f, o, g** along the last axis of ``a`` (B, 4H)::

    a = x Wx + h_prev Wh + b
    i, f, o = sigmoid(a[:, :H]), sigmoid(a[:, H:2H]), sigmoid(a[:, 2H:3H]);  g = tanh(a[:, 3H:])
    c_new = f * c_prev + i * g;      h_new = o * tanh(c_new)

Zoneout (Krueger et al. 2017) then keeps each unit's *old* value with probability p:
``c = m_c c_prev + (1 - m_c) c_new`` and ``h = m_h h_prev + (1 - m_h) h_new`` with
``m ~ Bernoulli(p)`` masks in training and ``m = p`` (the expectation) in evaluation.
``h_new`` is computed from the un-zoned ``c_new``, as in Krueger et al. and the reference.

Output: our ``o_t`` is the zoned-out state ``h`` (one array for output and state). The
reference's ZoneoutWrapper returns the cell's *un-zoned* ``h_new`` as the output and only the
state is zoned out; the two agree when ``p_h = 0``. The reference also passes
``zoneout_prob=(p, 0.)`` against its state ``(c, h)``: it zones out only the cell, p_c = p, p_h = 0.

HART runs the step inside its own loop over time (:mod:`minihart.model.hart`); a bare LSTM run
over a whole sequence, for notebook 05, is :mod:`minihart.course.lstm`.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from minihart.backend import fusable, get_array_module
from minihart.nn.activations import sigmoid


class LSTMCache(NamedTuple):
    x: object       # (B, D) input, for dWx
    h_prev: object  # (B, H), for dWh
    c_prev: object  # (B, H), for df
    Wx: object      # (D, 4H), for dx
    Wh: object      # (H, 4H), for dh_prev
    i: object       # (B, H) gate activations after their non-linearity
    f: object
    o: object
    g: object
    tc: object      # (B, H) tanh(c_new)
    m_h: object     # (B, H) keep-old mask of h, or the scalar p_h in evaluation
    m_c: object     # the same for c


def _zone_mask(m, p, ref, name):
    """The zoneout mix weight: the mask cast to ref's dtype, or the scalar p in evaluation."""
    if m is None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"lstm_step_forward: the zoneout probability for {name}=None must be "
                             f"in [0, 1], got {p}")
        return float(p)
    if m.shape != ref.shape:
        raise ValueError(f"lstm_step_forward: zoneout mask {name}{m.shape} must match {ref.shape}")
    return m.astype(ref.dtype, copy=False)


def lstm_step_forward(x, h_prev, c_prev, Wx, Wh, b, zh=None, zc=None, p_h=0.0, p_c=0.0):
    """One LSTM step with zoneout, eq. (5); gate order i, f, o, g (module docstring).

    Args:
      x: ``(B, D)`` input. h_prev, c_prev: ``(B, H)`` previous hidden and cell state.
      Wx: ``(D, 4H)``, Wh: ``(H, 4H)``, b: ``(4H,)``.
      zh, zc: ``(B, H)`` float zoneout masks of h and c, 1 = keep the old value (training,
        from :func:`zoneout_masks`); None = evaluation, mixing with the expectation p.
      p_h, p_c: zoneout probabilities used when the masks are None (0 = a plain LSTM).
    Returns:
      ``(h, c)`` each ``(B, H)`` (h is also the output o_t), and an :class:`LSTMCache` (backward
      reads the cached gate activations).
    """
    H = Wh.shape[0]
    if Wx.ndim != 2 or Wh.shape != (H, 4 * H) or b.shape != (4 * H,) or Wx.shape[1] != 4 * H:
        raise ValueError(f"lstm_step_forward: need Wx (D, 4H), Wh (H, 4H), b (4H,), "
                         f"got Wx{Wx.shape}, Wh{Wh.shape}, b{b.shape}")
    if x.ndim != 2 or x.shape[1] != Wx.shape[0]:
        raise ValueError(f"lstm_step_forward: x{x.shape} must be (B, {Wx.shape[0]}) for Wx{Wx.shape}")
    if h_prev.shape != (x.shape[0], H) or c_prev.shape != (x.shape[0], H):
        raise ValueError(f"lstm_step_forward: h_prev{h_prev.shape} and c_prev{c_prev.shape} "
                         f"must be (B, H) = {(x.shape[0], H)}")
    m_h, m_c = _zone_mask(zh, p_h, h_prev, "zh"), _zone_mask(zc, p_c, c_prev, "zc")
    i, f, o, g, tc, h, c = lstm_gates(x @ Wx + h_prev @ Wh + b, h_prev, c_prev, m_h, m_c)
    return (h, c), LSTMCache(x, h_prev, c_prev, Wx, Wh, i, f, o, g, tc, m_h, m_c)


@fusable
def lstm_gates(a, h_prev, c_prev, m_h, m_c):
    """The element-wise part of a step from ``a = x Wx + h_prev Wh + b`` ``(B, 4H)``: the gates
    ``i, f, o, g``, ``tanh(c_new)`` and the zoned-out ``h, c``, each ``(B, H)``."""
    xp = get_array_module(a)
    H = h_prev.shape[1]
    i, f, o = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H]), sigmoid(a[:, 2 * H:3 * H])
    g = xp.tanh(a[:, 3 * H:])
    c_new = f * c_prev + i * g
    tc = xp.tanh(c_new)
    h_new = o * tc
    h = m_h * h_prev + (1 - m_h) * h_new
    c = m_c * c_prev + (1 - m_c) * c_new
    return i, f, o, g, tc, h, c


def lstm_step_backward(dout, cache: LSTMCache):
    """Gradients of :func:`lstm_step_forward`.

    Args: dout ``(dh (B, H), dc (B, H))``, the gradients of the returned h and c.
    Returns: ``(dx (B, D), dh_prev (B, H), dc_prev (B, H), dWx (D, 4H), dWh (H, 4H), db (4H,))``.
    """
    da, dh_kept, dc_prev = lstm_gates_backward(*dout, cache)
    x, h_prev, Wx, Wh = cache.x, cache.h_prev, cache.Wx, cache.Wh
    return da @ Wx.T, dh_kept + da @ Wh.T, dc_prev, x.T @ da, h_prev.T @ da, da.sum(axis=0)


@fusable
def lstm_gates_backward(dh, dc, cache: LSTMCache):
    """The element-wise part of the backward: ``da (B, 4H)``, the part ``m_h dh`` of ``dh_prev``
    that skips the step (zoneout), and ``dc_prev``."""
    xp = get_array_module(dh)
    _, _, c_prev, _, _, i, f, o, g, tc, m_h, m_c = cache
    dh_new = (1 - m_h) * dh
    dc_new = (1 - m_c) * dc + dh_new * o * (1 - tc * tc)
    da = xp.concatenate([dc_new * g * i * (1 - i),           # i
                         dc_new * c_prev * f * (1 - f),      # f
                         dh_new * tc * o * (1 - o),          # o
                         dc_new * i * (1 - g * g)], axis=1)  # g
    return da, m_h * dh, m_c * dc + dc_new * f


def zoneout_masks(rng, shape, p, xp=None):
    """Keep-old zoneout masks ``(rng.random(shape) < p)`` as float32, on the device of ``xp``."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"zoneout_masks: p must be in [0, 1], got {p}")
    m = (rng.random(shape) < p).astype(np.float32)
    return m if xp is None or xp is np else xp.asarray(m)


def _orthogonal(rng, n, m):
    """An ``(n, m)`` matrix with orthonormal rows or columns (whichever are fewer): QR of a
    Gaussian, signs fixed so that it is uniformly distributed (Saxe et al. 2014)."""
    q, r = np.linalg.qr(rng.standard_normal((max(n, m), min(n, m))))
    q = q * np.sign(np.diag(r))
    return q if n >= m else q.T


def init_lstm_params(rng, D, H):
    """``{"Wx" (D, 4H), "Wh" (H, 4H), "b" (4H,)}`` as NumPy float32 arrays.

    Each gate's block of Wx and Wh is orthogonal (the paper: "orthogonal initialisation"; the
    reference draws its candidate block of Wh as 0.95 I instead); the bias is 0 except the
    forget gate's, 1, so the cell remembers by default early in training.
    """
    Wx = np.concatenate([_orthogonal(rng, D, H) for _ in range(4)], axis=1)
    Wh = np.concatenate([_orthogonal(rng, H, H) for _ in range(4)], axis=1)
    b = np.zeros(4 * H)
    b[H:2 * H] = 1.0
    return {"Wx": Wx.astype(np.float32), "Wh": Wh.astype(np.float32), "b": b.astype(np.float32)}
