"""The finite-difference cases of every op in minihart: what ``python -m minihart.gradcheck``
runs, and what ``--impl student.py`` grades a student's ops on.

A case is a function ``make(xp, fwd, bwd) -> dict(forward=, backward=, inputs=, wrt=None,
tol=1e-7)`` registered under a name with :func:`case`. ``fwd`` and ``bwd`` are the functions
under test, ``<op>_forward`` and ``<op>_backward``: minihart's own (found by name in
:data:`OP_MODULES`) or a student's. Most cases call them as they are, ``fwd(**inputs)``; a few
adapt a signature (a parameter dict, a list of arrays). Inputs are float64, drawn from a seeded
generator, and kept away from kinks (ReLU at 0, ties of a max-pool, IoU min/max) by more than
the finite-difference step.

This module imports the ops; the ops never import it (no import circle).
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from minihart import boxes
from minihart.gradcheck import _is_float_array, check
from minihart.course import lstm as course_lstm
from minihart.nn import activations, attention, conv, dfn, linear, losses, lstm

OP_MODULES = (boxes, linear, activations, conv, attention, dfn, lstm, losses, course_lstm)
CASES: dict[str, tuple[str, Callable]] = {}  # name: (op, make)


def case(name: str, op: str | None = None):
    """Decorator: register ``make(xp, fwd, bwd)`` as the case ``name`` of the op ``op``
    (default: ``name``), whose functions are ``<op>_forward`` and ``<op>_backward``."""
    def deco(make):
        CASES[name] = (op or name, make)
        return make
    return deco


def minihart_op(op: str):
    """``(forward, backward)`` of minihart's op ``op`` (``conv2d`` -> ``conv2d_forward``, ...)."""
    for m in OP_MODULES:
        if hasattr(m, f"{op}_forward"):
            return getattr(m, f"{op}_forward"), getattr(m, f"{op}_backward")
    raise KeyError(f"minihart has no op {op!r}")


def make_case(name: str, xp=np, fwd=None, bwd=None) -> dict:
    """The case ``name`` on ``xp`` with ``fwd``, ``bwd`` under test (default: minihart's)."""
    op, make = CASES[name]
    if fwd is None:
        fwd, bwd = minihart_op(op)
    return make(xp, fwd, bwd)


def run_case(name: str, xp=np, seed: int = 0) -> dict:
    """Run one case on minihart's op; returns a row ``{op, shapes, error, tol, passed, seconds}``."""
    c = make_case(name, xp)
    t0 = time.perf_counter()
    errs = check(c["forward"], c["backward"], c["inputs"], wrt=c.get("wrt"), seed=seed)
    tol = c.get("tol", 1e-7)
    shapes = ", ".join(f"{k}{tuple(v.shape)}" for k, v in c["inputs"].items() if _is_float_array(v))
    worst = max(errs.values()) if errs else 0.0
    return {"op": name, "shapes": shapes, "error": worst, "tol": tol, "passed": worst < tol,
            "seconds": time.perf_counter() - t0}


def overlapping_pairs(g, shape):
    """Random box pairs ``a, b`` of shape ``(*shape, 4)`` in [1, 16) that overlap partially,
    with every start/end at least 0.2 px from its counterpart (gradient-check inputs)."""
    a = np.concatenate([g.uniform(1, 10, shape + (2,)), g.uniform(2, 4, shape + (2,))], axis=-1)
    s = np.where(g.random(shape + (2,)) < 0.5, -1.0, 1.0)
    # b moves by 30-70 % of a's size and grows (moving forward) or shrinks (backward) by <= 20 %
    b = a.copy()
    b[..., :2] += s * g.uniform(0.3, 0.7, shape + (2,)) * a[..., 2:]
    b[..., 2:] *= 1 + s * g.uniform(0, 0.2, shape + (2,))
    return a, b


def _arrays(xp, **arrays):
    return {k: xp.asarray(v) if isinstance(v, np.ndarray) else v for k, v in arrays.items()}


# --------------------------------------------------------------------------- boxes
@case("intersection")
def _intersection(xp, fwd, bwd):
    a, b = overlapping_pairs(np.random.default_rng(4), (3, 2))
    return dict(forward=fwd, backward=bwd, inputs=_arrays(xp, a=a, b=b))


@case("iou")
def _iou(xp, fwd, bwd):
    a, b = overlapping_pairs(np.random.default_rng(5), (3, 2))
    return dict(forward=fwd, backward=bwd, inputs=_arrays(xp, a=a, b=b))


# --------------------------------------------------------------------------- linear, activations
@case("affine")
def _affine(xp, fwd, bwd):
    g = np.random.default_rng(1)
    return dict(forward=fwd, backward=bwd, inputs=_arrays(
        xp, x=g.standard_normal((3, 2, 5)), W=g.standard_normal((5, 4)), b=g.standard_normal(4)))


@case("dropout")
def _dropout(xp, fwd, bwd):
    g = np.random.default_rng(2)
    x = g.standard_normal((4, 7))
    return dict(forward=fwd, backward=bwd, wrt=["x"],
                inputs=_arrays(xp, x=x, mask=linear.dropout_mask(g, (4, 7), 0.25).astype(np.float64), p=0.25))


def _activation(xp, fwd, bwd):
    x = np.random.default_rng(3).standard_normal((3, 4, 5))
    x += 0.1 * np.sign(x)  # |x| >= 0.1: finite differences never straddle ReLU's kink
    return dict(forward=fwd, backward=bwd, inputs=_arrays(xp, x=x))


for _name in ("relu", "elu", "sigmoid", "tanh"):
    case(_name)(_activation)


# --------------------------------------------------------------------------- conv
@case("conv2d")
def _conv2d(xp, fwd, bwd):
    g = np.random.default_rng(4)
    return dict(forward=fwd, backward=bwd, inputs=_arrays(
        xp, x=g.standard_normal((2, 3, 5, 4)), w=g.standard_normal((4, 3, 3, 2)), b=g.standard_normal(4),
        stride=1, pad=1))


@case("conv2d_grouped", op="conv2d")
def _conv2d_grouped(xp, fwd, bwd):
    g = np.random.default_rng(5)
    return dict(forward=fwd, backward=bwd, inputs=_arrays(
        xp, x=g.standard_normal((2, 4, 5, 7)), w=g.standard_normal((6, 2, 3, 3)), b=g.standard_normal(6),
        stride=2, pad=1, groups=2))


@case("maxpool2d")
def _maxpool2d(xp, fwd, bwd):
    g = np.random.default_rng(6)
    # values 0.05 apart in random order: no ties, no kinks within a finite-difference step
    x = 0.05 * g.permutation(2 * 2 * 7 * 5).reshape(2, 2, 7, 5) - 1.0
    return dict(forward=fwd, backward=bwd, inputs=_arrays(xp, x=x, size=3, stride=2, pad=1))


@case("lrn")
def _lrn(xp, fwd, bwd):
    g = np.random.default_rng(7)
    # a large alpha so that the cross-channel term of the gradient matters
    return dict(forward=fwd, backward=bwd, inputs=_arrays(
        xp, x=g.standard_normal((2, 7, 3, 2)), size=5, alpha=2.0, beta=0.75, k=1.0))


# --------------------------------------------------------------------------- attention, dfn
@case("filterbank")
def _filterbank(xp, fwd, bwd):
    # strides below, inside and beyond the fitted range (STRIDE_FIT_MAX = 8), none at 8 itself
    return dict(forward=fwd, backward=bwd, inputs=_arrays(
        xp, mu=np.array([1.3, 4.2, -2.1]), gamma=np.array([0.6, 2.7, 9.5]), n_out=5, n_in=30))


@case("glimpse")
def _glimpse(xp, fwd, bwd):
    g = np.random.default_rng(3)
    a = np.array([[0.2, 0.1, 0.5, 0.7], [-0.1, 0.3, 1.1, 0.4]])  # zoom out / zoom in, partly outside
    return dict(forward=fwd, backward=bwd, inputs=_arrays(
        xp, x=g.standard_normal((2, 3, 9, 11)), a=a, glimpse_hw=(4, 5)))


@case("dynamic_conv")
def _dynamic_conv(xp, fwd, bwd):
    g = np.random.default_rng(4)
    return dict(forward=fwd, backward=bwd, inputs=_arrays(
        xp, x=g.standard_normal((2, 3, 5, 4)), w=g.standard_normal((2, 2, 3, 3, 3)), b=g.standard_normal((2, 2)),
        pad=1))


@case("dfn_filters")
def _dfn_filters(xp, fwd, bwd):
    g = np.random.default_rng(5)
    params = {key: v.astype(np.float64) for key, v in dfn.init_dfn_params(g, "", 4, 2, 3, 3).items()}

    def backward(dout, cache):  # (dalpha, {name: grad}) as one dict
        dalpha, grads = bwd(dout, cache)
        return {"alpha": dalpha, **grads}

    return dict(forward=lambda alpha, **p: fwd(alpha, p, 2, 3, 3), backward=backward,
                inputs=_arrays(xp, alpha=g.standard_normal((3, 4)), **params))


# --------------------------------------------------------------------------- lstm
def _lstm_inputs(g, xp, x_shape, B, H, masks_shape):
    """float64 inputs; parameters perturbed from their init so no gate sits at a round value."""
    p = {k: v.astype(np.float64) + 0.3 * g.standard_normal(v.shape)
         for k, v in lstm.init_lstm_params(g, x_shape[-1], H).items()}
    return _arrays(xp, x=g.standard_normal(x_shape), h0=g.standard_normal((B, H)), c0=g.standard_normal((B, H)),
                   **p, zh=lstm.zoneout_masks(g, masks_shape, 0.3).astype(np.float64),
                   zc=lstm.zoneout_masks(g, masks_shape, 0.3).astype(np.float64))


@case("lstm_step")
def _lstm_step(xp, fwd, bwd):
    inputs = _lstm_inputs(np.random.default_rng(6), xp, (3, 4), 3, 3, (3, 3))
    inputs = {{"h0": "h_prev", "c0": "c_prev"}.get(k, k): v for k, v in inputs.items()}  # the step's names
    return dict(forward=fwd, backward=bwd, inputs=inputs, wrt=["x", "h_prev", "c_prev", "Wx", "Wh", "b"])


@case("lstm_sequence", op="lstm")
def _lstm_sequence(xp, fwd, bwd):
    def forward(x, h0, c0, Wx, Wh, b, zh, zc):
        return fwd(x, h0, c0, dict(Wx=Wx, Wh=Wh, b=b), zh, zc)

    return dict(forward=forward, backward=bwd, inputs=_lstm_inputs(np.random.default_rng(7), xp, (2, 4, 3), 2, 3,
                                                                   (2, 4, 3)),
                wrt=["x", "h0", "c0", "Wx", "Wh", "b"])


# --------------------------------------------------------------------------- losses
def _presence(g, shape):
    p = (g.random(shape) < 0.7).astype(np.float64)
    p.flat[0], p.flat[-1] = 1.0, 0.0  # at least one present and one absent step
    return p


@case("tracking_loss")
def _tracking_loss(xp, fwd, bwd):
    g = np.random.default_rng(6)
    pred, target = overlapping_pairs(g, (2, 3))
    return dict(forward=fwd, backward=bwd, wrt=["pred"],
                inputs=_arrays(xp, pred=pred, target=target, presence=_presence(g, (2, 3))))


@case("attention_loss")
def _attention_loss(xp, fwd, bwd):
    g = np.random.default_rng(7)
    att, target = overlapping_pairs(g, (2, 3))
    shift = np.array([-1.5, -0.7]) - att[0, 0, :2]  # one pair moved past the top-left corner
    att[0, 0, :2] += shift
    target[0, 0, :2] += shift
    return dict(forward=fwd, backward=bwd, wrt=["att"], inputs=_arrays(
        xp, att=att, target=target, presence=_presence(g, (2, 3)), image_hw=(15, 17)))


@case("appearance_loss")
def _appearance_loss(xp, fwd, bwd):
    g = np.random.default_rng(8)
    box, att_box = overlapping_pairs(g, (2, 3))
    target = losses.appearance_target(xp.asarray(box), xp.asarray(att_box), (4, 5))
    return dict(forward=fwd, backward=bwd, wrt=["logits"], inputs=dict(
        logits=xp.asarray(2 * g.standard_normal((2, 3, 4, 5))), target=target,
        presence=xp.asarray(_presence(g, (2, 3)))))


@case("l2")
def _l2(xp, fwd, bwd):
    g = np.random.default_rng(9)
    return dict(forward=lambda W, b: fwd([W, b]), backward=bwd,
                inputs=_arrays(xp, W=g.standard_normal((3, 4)), b=g.standard_normal(5)))


@case("adaptive_loss")
def _adaptive_loss(xp, fwd, bwd):
    g = np.random.default_rng(10)
    return dict(forward=fwd, backward=bwd, inputs=_arrays(xp, terms=g.uniform(0.1, 3, 3), v=g.uniform(0.5, 1.5, 3)))
