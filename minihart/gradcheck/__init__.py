"""Finite-difference gradient checking: the test every backward pass in minihart must pass.

A backward pass computes ``dL/dx`` for ``L = sum(out * dout)`` with a *random* upstream
gradient ``dout`` (never all ones: ones hide transposed or mis-summed gradients). We compare
it with centred differences ``(L(x + h e) - L(x - h e)) / 2h`` in float64:

* small inputs: every element ``e_j`` is perturbed (per-element check);
* large inputs: a few random unit directions ``u`` are perturbed and compared with
  ``<grad, u>`` (random-direction check, two forward passes per direction).

``rel_error(a, b) = max|a - b| / max(1e-8, max|a| + max|b|)``; smooth ops reach < 1e-7.

Students check their own op with ``check(my_forward, my_backward, {"x": x})``. Beside this file:
the cases of minihart's ops (``cases.py``) and ``python -m minihart.gradcheck [--impl student.py]``.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from minihart.backend import asnumpy, get_array_module


def rel_error(a, b) -> float:
    """Relative error ``max|a-b| / max(1e-8, max|a| + max|b|)`` of two arrays (or scalars)."""
    a, b = asnumpy(a).astype(np.float64), asnumpy(b).astype(np.float64)
    if a.shape != b.shape:
        raise ValueError(f"rel_error: shapes differ, {a.shape} vs {b.shape}")
    if a.size == 0:
        return 0.0
    denom = max(1e-8, float(np.max(np.abs(a))) + float(np.max(np.abs(b))))
    return float(np.max(np.abs(a - b))) / denom


def _is_float_array(v) -> bool:
    return hasattr(v, "dtype") and hasattr(v, "shape") and v.dtype.kind == "f"


def _as_tuple(out):
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def _objective(forward, inputs, douts) -> float:
    """L = sum_i sum(out_i * dout_i) for one forward pass."""
    outs = _as_tuple(forward(**inputs)[0])
    return sum(float(get_array_module(o).sum(o * d)) for o, d in zip(outs, douts) if d is not None)


def _grads_by_name(grads, names):
    if isinstance(grads, dict):
        return grads
    grads = _as_tuple(grads)
    if len(grads) < len(names):
        raise ValueError(f"backward returned {len(grads)} gradients, expected one for each of {names}")
    return dict(zip(names, grads))


def gradients(forward: Callable, backward: Callable, inputs: dict, wrt=None, seed: int = 0,
              h: float = 1e-6, max_elements: int = 200, n_directions: int = 4) -> dict:
    """``{name: (analytic, numeric)}``: ``backward``'s gradient and centred differences of ``forward``.

    Args:
      forward: ``forward(**inputs) -> (out, cache)``; ``out`` an array or a tuple of arrays.
      backward: ``backward(dout, cache) -> grads``: a dict by input name, or a tuple (or one
        array) in the order of ``wrt``.
      inputs: keyword arguments of ``forward``; floating arrays are cast to float64.
      wrt: names to check (default: every floating-array input, in order).
      seed: seeds the random upstream gradient and the random directions.
      h: finite-difference step.
      max_elements: inputs up to this size are compared element by element (both arrays have
        the input's shape), larger ones along ``n_directions`` random unit directions (both
        are vectors of the directional derivatives).
    """
    inputs = {k: (v.astype("float64") if _is_float_array(v) else v) for k, v in inputs.items()}
    names = list(wrt) if wrt is not None else [k for k, v in inputs.items() if _is_float_array(v)]
    for n in names:
        if n not in inputs or not _is_float_array(inputs[n]):
            raise ValueError(f"check: wrt name {n!r} is not a floating-array input of forward")
    # a stream of its own: a test's inputs drawn from default_rng(seed) must not equal dout
    rng = np.random.default_rng([seed, 0x5EED])
    out0, cache = forward(**inputs)
    outs = _as_tuple(out0)
    douts = []
    for o in outs:
        if o is None or not _is_float_array(o):
            douts.append(None)
            continue
        xp = get_array_module(o)
        douts.append(xp.asarray(rng.standard_normal(o.shape)))
    dout_arg = tuple(douts) if isinstance(out0, (tuple, list)) else douts[0]
    analytic = _grads_by_name(backward(dout_arg, cache), names)

    pairs = {}
    for name in names:
        x = inputs[name]
        xp = get_array_module(x)
        g = analytic[name]
        if g is None or tuple(g.shape) != tuple(x.shape):
            raise ValueError(f"check: gradient for {name!r} has shape "
                             f"{None if g is None else g.shape}, input has {x.shape}")

        def objective_at(delta):
            return _objective(forward, {**inputs, name: x + delta}, douts)

        if x.size <= max_elements:
            numeric = np.zeros(x.shape)
            for j in range(x.size):
                e = np.zeros(x.size)
                e[j] = h
                e = xp.asarray(e.reshape(x.shape))
                numeric.flat[j] = (objective_at(e) - objective_at(-e)) / (2 * h)
            pairs[name] = (asnumpy(g), numeric)
        else:
            num, ana = [], []
            for _ in range(n_directions):
                u = rng.standard_normal(x.shape)
                u /= np.linalg.norm(u)
                u = xp.asarray(u)
                num.append((objective_at(h * u) - objective_at(-h * u)) / (2 * h))
                ana.append(float(xp.sum(g * u)))
            pairs[name] = (np.array(ana), np.array(num))
    return pairs


def check(forward: Callable, backward: Callable, inputs: dict, wrt=None, seed: int = 0,
          h: float = 1e-6, max_elements: int = 200, n_directions: int = 4) -> dict:
    """Compare ``backward`` with centred differences of ``forward``; return ``{name: rel_error}``
    (the arguments are those of :func:`gradients`)."""
    return {name: rel_error(a, b) for name, (a, b) in
            gradients(forward, backward, inputs, wrt, seed, h, max_elements, n_directions).items()}
