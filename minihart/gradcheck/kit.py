"""Grading a student's ops: ``python -m minihart.gradcheck --impl student.py [OP ...]``.

A student's file defines ``<op>_forward`` and ``<op>_backward`` with the signatures of
minihart's (``conv2d_forward(x, w, b, stride=1, pad=0, groups=1) -> (out, cache)``, ...). Each
case of the op (:mod:`minihart.gradcheck.cases`) is run on the student's functions and on
minihart's, with the same inputs and the same random upstream gradient, and for every argument
the student's gradient is compared

* with centred differences of the student's own forward (is the backward the derivative of
  the forward?), and
* with minihart's gradient (is it the derivative of the right function?); the forward's output
  is compared with minihart's too.

Verdicts as in CS231n: relative error below 1e-7 ``good``, up to 1e-4 ``suspicious`` (right
in float32, or a kink hit), above ``wrong``. A verdict names the argument and the index where
the largest error sits.
"""
from __future__ import annotations

import importlib.util
import os
from typing import NamedTuple

import numpy as np

from minihart.backend import asnumpy
from minihart.gradcheck import _as_tuple, gradients, rel_error
from minihart.gradcheck.cases import CASES, make_case

GOOD, SUSPICIOUS = 1e-7, 1e-4
NAN = float("nan")  # an error not measured: the forward has no finite differences


def verdict(error: float) -> str:
    """``good`` below 1e-7, ``suspicious`` up to 1e-4, ``wrong`` above (and for NaN)."""
    return "good" if error < GOOD else "suspicious" if error <= SUSPICIOUS else "wrong"


def worst_index(a, b):
    """The index of the largest ``|a - b|`` (a tuple), or None for a scalar."""
    a, b = asnumpy(a).astype(np.float64), asnumpy(b).astype(np.float64)
    if a.ndim == 0:
        return None
    diff = np.where(np.isnan(a - b), np.inf, np.abs(a - b))
    return tuple(int(i) for i in np.unravel_index(np.argmax(diff), a.shape))


def compare(a, b):
    """``(rel_error, index of the largest error)`` of two arrays, shapes checked."""
    a, b = asnumpy(a), asnumpy(b)
    if a.shape != b.shape:
        return float("inf"), f"shape {a.shape}, expected {b.shape}"
    err = rel_error(a, b)
    return (float("inf") if err != err else err), worst_index(a, b)


class Row(NamedTuple):
    case: str
    argument: str          # an input name, or "forward" for the output
    fd_error: float        # against finite differences of the student's forward (nan: not compared)
    fd_where: object       # index of the largest error (None: along random directions)
    ref_error: float       # against minihart
    ref_where: object

    @property
    def verdict(self) -> str:
        return verdict(max(e for e in (self.fd_error, self.ref_error) if e == e))


def load_impl(path: str):
    """The student's file as a module (it may import minihart)."""
    if not os.path.isfile(path):
        raise ValueError(f"--impl: {path!r} is not a file")
    spec = importlib.util.spec_from_file_location("student_impl", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ops_of(module) -> list[str]:
    """The ops of the registry for which ``module`` defines ``<op>_forward`` and ``<op>_backward``."""
    ops = dict.fromkeys(op for op, _ in CASES.values())
    return [op for op in ops if callable(getattr(module, f"{op}_forward", None))
            and callable(getattr(module, f"{op}_backward", None))]


def cases_of(op: str) -> list[str]:
    """Names of the cases of an op (``conv2d`` -> ``conv2d``, ``conv2d_grouped``)."""
    return [name for name, (o, _) in CASES.items() if o == op]


def grade_case(name: str, fwd, bwd, xp=np, seed: int = 0) -> list[Row]:
    """Rows for the forward output and every checked argument of case ``name``, with the
    student's ``fwd``/``bwd`` against finite differences and against minihart."""
    mine, ref = make_case(name, xp, fwd, bwd), make_case(name, xp)
    outs, wants = _as_tuple(_forward64(mine)), _as_tuple(_forward64(ref))
    if len(outs) != len(wants):
        rows = [Row(name, "forward", NAN, None, float("inf"), f"{len(outs)} outputs, expected {len(wants)}")]
    else:
        rows = [Row(name, "forward", NAN, None, *max((compare(o, w) for o, w in zip(outs, wants)),
                                                    key=lambda e: e[0]))]
    fd = gradients(mine["forward"], mine["backward"], mine["inputs"], wrt=mine.get("wrt"), seed=seed)
    got, want = _analytic(mine, seed), _analytic(ref, seed)
    for arg, (a, n) in fd.items():
        fd_err, fd_where = compare(a, n)
        per_element = a.shape == asnumpy(got[arg]).shape  # else: along random directions, no index
        rows.append(Row(name, arg, fd_err, fd_where if per_element else None, *compare(got[arg], want[arg])))
    return rows



def _forward64(c):
    """The case's forward output on its inputs cast to float64 (as :func:`gradients` runs it)."""
    return c["forward"](**{k: v.astype("float64") if getattr(v, "dtype", None) is not None and v.dtype.kind == "f"
                           else v for k, v in c["inputs"].items()})[0]


def _analytic(c, seed):
    """``{name: gradient}`` of a case's backward with the upstream gradient that :func:`gradients`
    draws for ``seed`` (a run of it that perturbs nothing)."""
    pairs = gradients(c["forward"], _keep(c["backward"], kept := {}), c["inputs"], wrt=c.get("wrt"), seed=seed,
                      max_elements=-1, n_directions=0)
    grads = kept["grads"]
    return grads if isinstance(grads, dict) else dict(zip(pairs, _as_tuple(grads)))


def _keep(backward, kept):
    def run(dout, cache):
        kept["grads"] = backward(dout, cache)
        return kept["grads"]
    return run


def message(row: Row) -> str:
    """One sentence on what is off in a row that is not good."""
    what = "the forward's output" if row.argument == "forward" else f"the gradient of {row.argument!r}"
    parts = []
    if row.fd_error == row.fd_error and verdict(row.fd_error) != "good":
        at = f", largest at index {row.fd_where}" if row.fd_where is not None else " (along random directions)"
        parts.append(f"rel. error {row.fd_error:.1e} against finite differences of your forward{at}")
    if row.ref_error == row.ref_error and verdict(row.ref_error) != "good":
        at = f", largest at index {row.ref_where}" if row.ref_where is not None else ""
        parts.append(f"rel. error {row.ref_error:.1e} against minihart{at}")
    return f"{row.case}: {what} is {row.verdict}: " + "; ".join(parts)
