"""A bare LSTM over a whole sequence and its backpropagation through time (notebook 05).

HART cannot run its LSTM like this: the input of step t depends on the output of step t - 1
(through the attention), so :mod:`minihart.model.hart` calls the step inside its own loop.
Here the inputs are given, and the loop over :func:`minihart.nn.lstm.lstm_step_forward` and
back over :func:`minihart.nn.lstm.lstm_step_backward` is BPTT in its plainest form.
"""
from __future__ import annotations

from minihart.backend import get_array_module
from minihart.nn.lstm import lstm_step_backward, lstm_step_forward


def lstm_forward(xs, h0, c0, params, zh=None, zc=None, p_h=0.0, p_c=0.0):
    """Run :func:`lstm_step_forward` over a sequence.

    Args:
      xs: ``(B, T, D)`` inputs. h0, c0: ``(B, H)`` initial state.
      params: dict with ``"Wx" (D, 4H)``, ``"Wh" (H, 4H)``, ``"b" (4H,)`` (:func:`init_lstm_params`).
      zh, zc: ``(B, T, H)`` zoneout masks (training) or None (evaluation with p_h, p_c).
    Returns:
      ``(hs (B, T, H), (hT, cT))`` and the cache: the list of the steps' caches.
    """
    if xs.ndim != 3:
        raise ValueError(f"lstm_forward: xs must be (B, T, D), got {xs.shape}")
    B, T = xs.shape[:2]
    for name, m in (("zh", zh), ("zc", zc)):
        if m is not None and (m.ndim != 3 or m.shape[:2] != (B, T)):
            raise ValueError(f"lstm_forward: mask {name}{m.shape} must be (B, T, H) with (B, T) = {(B, T)}")
    xp = get_array_module(xs)
    h, c, hs, steps = h0, c0, [], []
    for t in range(T):
        (h, c), cache = lstm_step_forward(xs[:, t], h, c, params["Wx"], params["Wh"], params["b"],
                                          None if zh is None else zh[:, t], None if zc is None else zc[:, t],
                                          p_h, p_c)
        hs.append(h)
        steps.append(cache)
    return (xp.stack(hs, axis=1), (h, c)), steps


def lstm_backward(dout, cache: list):
    """Backpropagation through time for :func:`lstm_forward`.

    Args: dout ``dhs (B, T, H)``, or ``(dhs, (dhT, dcT))`` adding gradients of the final state
      (either may be None).
    Returns: ``(dxs (B, T, D), dh0 (B, H), dc0 (B, H), dWx, dWh, db)``, the parameter gradients
      summed over time.
    """
    dhs, final = dout if isinstance(dout, tuple) else (dout, None)
    dh, dc = final if final is not None else (None, None)
    xp = get_array_module(dhs)
    dh = xp.zeros_like(dhs[:, 0]) if dh is None else dh
    dc = xp.zeros_like(dhs[:, 0]) if dc is None else dc
    dxs, dWx, dWh, db = [], 0, 0, 0
    for t in reversed(range(len(cache))):
        dx, dh, dc, gWx, gWh, gb = lstm_step_backward((dh + dhs[:, t], dc), cache[t])
        dxs.append(dx)
        dWx, dWh, db = dWx + gWx, dWh + gWh, db + gb
    return xp.stack(dxs[::-1], axis=1), dh, dc, dWx, dWh, db
