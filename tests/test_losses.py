"""Tests of minihart/nn/losses.py: eqs. (9)-(12), presence masking, clipping, gradients."""
import numpy as np
import pytest

from minihart.backend import asnumpy
from minihart.gradcheck import check
from minihart.gradcheck.cases import overlapping_pairs
from minihart.nn.losses import (adaptive_loss_backward, adaptive_loss_forward, appearance_loss_backward,
                                appearance_loss_forward, appearance_target, attention_loss_backward,
                                attention_loss_forward, l2_backward, l2_forward, tracking_loss_backward,
                                tracking_loss_forward)

HW = (15, 17)


def _presence(g, shape):
    p = (g.random(shape) < 0.6).astype(np.float64)
    p.flat[0], p.flat[-1] = 1.0, 0.0
    return p


def _attention(att, target, presence):
    return attention_loss_forward(att, target, presence, HW)


def _inputs(xp, shape, seed, kind):
    g = np.random.default_rng(seed)
    a, b = overlapping_pairs(g, shape)
    p = _presence(g, shape)
    if kind == "attention":  # move one present pair past the top-left image corner
        shift = np.array([-1.2, -0.6]) - a.reshape(-1, 4)[0, :2]
        a.reshape(-1, 4)[0, :2] += shift
        b.reshape(-1, 4)[0, :2] += shift
    if kind == "appearance":
        target = appearance_target(xp.asarray(b), xp.asarray(a), (3, 5))
        return dict(logits=xp.asarray(2 * g.standard_normal(shape + (3, 5))), target=target,
                    presence=xp.asarray(p))
    name = "pred" if kind == "tracking" else "att"
    return {name: xp.asarray(a), "target": xp.asarray(b), "presence": xp.asarray(p)}


OPS = {"tracking": (tracking_loss_forward, tracking_loss_backward, "pred"),
       "attention": (_attention, attention_loss_backward, "att"),
       "appearance": (appearance_loss_forward, appearance_loss_backward, "logits")}


@pytest.mark.parametrize("shape", [(2, 3), (3, 5), (1, 4)])
@pytest.mark.parametrize("kind", sorted(OPS))
def test_gradcheck_and_absent_steps(xp, kind, shape):
    fwd, bwd, name = OPS[kind]
    inputs = _inputs(xp, shape, seed=shape[1], kind=kind)
    errs = check(fwd, bwd, inputs, wrt=[name], seed=1)
    assert max(errs.values()) < 1e-7, errs
    _, cache = fwd(**inputs)
    grad = asnumpy(bwd(xp.asarray(1.3), cache))
    absent = asnumpy(inputs["presence"]) == 0
    assert np.all(grad[absent] == 0)
    present = grad[~absent]
    assert np.all(present.reshape(len(present), -1).any(axis=1))


@pytest.mark.parametrize("kind", sorted(OPS))
def test_nothing_present(xp, kind):
    fwd, bwd, name = OPS[kind]
    inputs = _inputs(xp, (2, 3), seed=0, kind=kind)
    inputs["presence"] = xp.zeros((2, 3))
    loss, cache = fwd(**inputs)
    assert float(loss) == 0 and not np.any(asnumpy(bwd(xp.asarray(1.0), cache)))


@pytest.mark.parametrize("kind", sorted(OPS))
def test_dtype_and_scalar(xp, kind):
    fwd, bwd, name = OPS[kind]
    inputs = {k: v.astype(np.float32) for k, v in _inputs(xp, (2, 3), seed=0, kind=kind).items()}
    loss, cache = fwd(**inputs)
    assert loss.shape == () and loss.dtype == np.float32
    assert bwd(xp.asarray(1.0, dtype=np.float32), cache).dtype == np.float32


def test_tracking_loss_values(xp):
    target = xp.asarray(np.array([[[0.0, 0, 2, 2], [1, 1, 3, 2], [4, 4, 2, 2]]]))
    presence = xp.asarray(np.array([[1.0, 1, 0]]))
    loss, cache = tracking_loss_forward(target, target, presence)
    assert abs(float(loss)) < 1e-12  # perfect prediction
    pred = xp.asarray(np.array([[[1.0, 1, 2, 2], [1, 1, 3, 2], [9, 9, 1, 1]]]))
    loss, _ = tracking_loss_forward(pred, target, presence)
    assert float(loss) == pytest.approx(-np.log(1 / 7) / 2)  # (-log 1/7 + 0) / 2 present steps
    # disjoint and degenerate predictions: -log(eps), finite, zero gradient
    bad = xp.asarray(np.array([[[5.0, 5, 1, 1], [1, 1, -3, 2], [1, 1, 0, 0]]]))
    loss, cache = tracking_loss_forward(bad, target, xp.ones((1, 3)), eps=1e-4)
    assert float(loss) == pytest.approx(-np.log(1e-4))
    assert not np.any(asnumpy(tracking_loss_backward(xp.asarray(1.0), cache)))


def _boxes_with_a_disjoint_pair(g, xp):
    """Predicted and true boxes ``(3, 4, 4)`` overlapping but for one disjoint pair, one frame absent."""
    a, b = overlapping_pairs(g, (3, 4))
    a[0, 0, :2] += 3 * a[0, 0, 2:] + 1  # one disjoint pair
    p = np.ones((3, 4))
    p[2, 3] = 0
    return dict(pred=xp.asarray(a), target=xp.asarray(b), presence=xp.asarray(p))


def test_centre_term_known_values_and_gradient_when_disjoint(xp):
    """DIoU's centre term: |c_p - c_t|^2 / diag^2 of the enclosing box, added to -log IoU; it
    pulls a disjoint box (where -log IoU has no gradient) towards the target, and its gradient
    passes the float64 finite-difference check, the disjoint pair and an absent step included."""
    target = xp.asarray(np.array([[[0.0, 0, 2, 2], [0, 0, 2, 2]]]))
    pred = xp.asarray(np.array([[[0.0, 0, 2, 2], [4, 6, 2, 2]]]))  # perfect; disjoint, centres 4 and 6 apart
    presence = xp.asarray(np.array([[1.0, 1.0]]))
    loss, cache = tracking_loss_forward(pred, target, presence, centre=True)
    assert float(loss) == pytest.approx((0 + -np.log(1e-4) + (16 + 36) / (6 ** 2 + 8 ** 2)) / 2)
    grad = asnumpy(tracking_loss_backward(xp.asarray(1.0), cache))
    assert np.all(grad[0, 0] == 0) and grad[0, 1, 0] > 0 and grad[0, 1, 1] > 0  # moving up-left lowers it
    inputs = _boxes_with_a_disjoint_pair(np.random.default_rng(3), xp)
    errs = check(lambda **k: tracking_loss_forward(**k, centre=True), tracking_loss_backward, inputs, wrt=["pred"])
    assert errs["pred"] < 1e-7, errs


def test_scale_term_known_values_and_gradient(xp):
    """The squared log-size error: 0 at the true size wherever the centre is, log(2)^2 for a box twice
    as tall, the same for half as tall (symmetric in the log, where -log IoU of an offset box prefers
    the larger one), a gradient when disjoint, and the float64 finite-difference check."""
    target = xp.asarray(np.array([[[0.0, 0, 2, 2], [0, 0, 2, 2], [0, 0, 2, 2]]]))
    pred = xp.asarray(np.array([[[7.0, 9, 2, 2], [0, 0, 4, 2], [0, 0, 1, 2]]]))  # disjoint; twice; half
    presence = xp.asarray(np.array([[1.0, 1.0, 1.0]]))
    base, _ = tracking_loss_forward(pred, target, presence)
    loss, cache = tracking_loss_forward(pred, target, presence, scale=0.5)
    assert float(loss) - float(base) == pytest.approx(0.5 * 2 * np.log(2) ** 2 / 3)
    grad = asnumpy(tracking_loss_backward(xp.asarray(1.0), cache))
    assert np.all(grad[0, 0] == 0) and grad[0, 1, 2] > 0 > grad[0, 2, 2]
    inputs = _boxes_with_a_disjoint_pair(np.random.default_rng(4), xp)
    errs = check(lambda **k: tracking_loss_forward(**k, scale=0.7), tracking_loss_backward, inputs, wrt=["pred"])
    assert errs["pred"] < 1e-7, errs


def test_attention_loss_values(xp):
    H, W = HW
    target = xp.asarray(np.array([[[2.0, 3, 2, 2], [2, 3, 2, 2], [2, 3, 2, 2], [0, 0, 0, 0]]]))
    att = xp.asarray(np.array([[[1.0, 2, 4, 5],        # covers the target, inside the frame
                                [-2, -2, 6, 7],        # covers it, reaches past the corner
                                [0, 0, H, W],          # the whole frame
                                [1, 1, 2, 2]]]))       # zero-size target (absent step)
    loss, _ = attention_loss_forward(att, target, xp.asarray(np.array([[1.0, 0, 0, 0]])), HW)
    assert float(loss) == pytest.approx(-np.log(1 - 20 / (H * W)))  # = reference's area term
    loss, _ = attention_loss_forward(att, target, xp.asarray(np.array([[0.0, 1, 0, 0]])), HW)
    visible = 4 * 5
    assert float(loss) == pytest.approx(-np.log(1 - visible / (42 + H * W - visible)))
    for k, want in [(2, -np.log(1e-4)), (3, -np.log(1e-4) - np.log(1 - 4 / (H * W)))]:
        p = np.zeros((1, 4))
        p[0, k] = 1
        loss, cache = attention_loss_forward(att, target, xp.asarray(p), HW)
        assert np.isfinite(float(loss)) and float(loss) == pytest.approx(want)
    half = xp.asarray(np.array([[[2.0, 2, 2, 2]]]))  # covers half of the target
    loss, _ = attention_loss_forward(half, target[:, :1], xp.ones((1, 1)), HW)
    assert float(loss) == pytest.approx(-np.log(0.5) - np.log(1 - 4 / (H * W)))


def test_appearance_target(xp):
    att = xp.asarray(np.array([[10.0, 20, 8, 12]] * 5))
    boxes = xp.asarray(np.array([[10.0, 20, 8, 12],    # fills the window
                                 [0, 0, 40, 40],       # covers it
                                 [30, 30, 2, 2],       # disjoint
                                 [10, 20, 4, 12],      # top half
                                 [0, 26, 40, 9]]))     # right half
    tau = asnumpy(appearance_target(boxes, att, (4, 6)))
    assert tau.shape == (5, 4, 6) and tau.dtype == np.float64 and set(np.unique(tau)) <= {0.0, 1.0}
    assert tau[0].all() and tau[1].all() and not tau[2].any()
    np.testing.assert_array_equal(tau[3], np.repeat([[1.0], [1], [0], [0]], 6, axis=1))
    np.testing.assert_array_equal(tau[4], np.repeat([[0.0, 0, 0, 1, 1, 1]], 4, axis=0))
    # cell centre rule: the box [10, 20, 3.1, 12] reaches the centre of row 1 (y = 13) only
    row = asnumpy(appearance_target(xp.asarray(np.array([10.0, 20, 3.1, 12])), att[0], (4, 6)))[:, 0]
    np.testing.assert_array_equal(row, [1, 1, 0, 0])
    with pytest.raises(ValueError, match="appearance_target"):
        appearance_target(boxes, att[:2], (4, 6))


def test_appearance_loss_values(xp):
    g = np.random.default_rng(3)
    logits = g.standard_normal((2, 2, 3, 4))
    target = (g.random((2, 2, 3, 4)) < 0.3).astype(np.float64)
    target[0, 1] = 1  # all positive: weight 1
    presence = np.array([[1.0, 1], [0, 1]])
    want, n = 0.0, 0
    for b, t in zip(*np.nonzero(presence)):
        z, y = logits[b, t], target[b, t]
        s = 1 / (1 + np.exp(-z))
        fp = y.mean()
        w = np.where(y > 0, 1 / fp, 1 / (1 - fp) if fp < 1 else 1)
        want += np.mean(-w * (y * np.log(s) + (1 - y) * np.log(1 - s)))
        n += 1
    loss, _ = appearance_loss_forward(xp.asarray(logits), xp.asarray(target), xp.asarray(presence))
    assert float(loss) == pytest.approx(want / n, rel=1e-12)
    # huge logits: no overflow warning (pytest turns RuntimeWarnings into errors), finite
    loss, cache = appearance_loss_forward(xp.asarray(1e3 * logits), xp.asarray(target), xp.asarray(presence))
    assert np.isfinite(float(loss)) and np.all(np.isfinite(asnumpy(appearance_loss_backward(1.0, cache))))


def test_l2(xp):
    g = np.random.default_rng(4)
    arrays = [xp.asarray(g.standard_normal(s)) for s in [(3, 4), (5,), (2, 1, 3)]]
    R, _ = l2_forward(arrays)
    assert float(R) == pytest.approx(0.5 * sum(float((a * a).sum()) for a in arrays))
    errs = check(lambda W, b, k: l2_forward([W, b, k]), l2_backward,
                 dict(W=arrays[0], b=arrays[1], k=arrays[2]), seed=2)
    assert max(errs.values()) < 1e-7, errs


def test_adaptive_loss(xp):
    g = np.random.default_rng(5)
    terms, v = xp.asarray(g.uniform(0.2, 4, 3)), xp.asarray(g.uniform(0.3, 2, 3))
    errs = check(adaptive_loss_forward, adaptive_loss_backward, dict(terms=terms, v=v), seed=4)
    assert max(errs.values()) < 1e-7, errs
    total, cache = adaptive_loss_forward(terms, xp.ones(3))  # initial weights 1: the plain sum
    assert float(total) == pytest.approx(float(terms.sum()) - 3 * np.log(1 + 1e-8))
    # the optimum over lambda is 1 / L: dv vanishes there (and R(lambda) = +sum log L)
    v_opt = xp.sqrt(1 / terms - 1e-8)
    total, cache = adaptive_loss_forward(terms, v_opt)
    dterms, dv = adaptive_loss_backward(xp.asarray(1.0), cache)
    assert np.max(np.abs(asnumpy(dv))) < 1e-12
    np.testing.assert_allclose(asnumpy(cache.lam), asnumpy(1 / terms), rtol=1e-12)
    assert float(total) == pytest.approx(3 + float(xp.log(terms).sum()))
    with pytest.raises(ValueError, match=r"terms\(3,\) and v\(2,\)"):
        adaptive_loss_forward(terms, v[:2])


def test_shape_errors(xp):
    boxes = xp.zeros((2, 3, 4))
    with pytest.raises(ValueError, match=r"presence\(3, 2\) must have shape \(2, 3\)"):
        tracking_loss_forward(boxes, boxes, xp.ones((3, 2)))
    with pytest.raises(ValueError, match=r"att.*\(2, 3, 4\).*target.*\(3, 4\)"):
        attention_loss_forward(boxes, boxes[0], xp.ones((2, 3)), HW)
    with pytest.raises(ValueError, match=r"logits\(2, 3, 4, 5\) and target\(2, 3, 5, 4\)"):
        appearance_loss_forward(xp.zeros((2, 3, 4, 5)), xp.zeros((2, 3, 5, 4)), xp.ones((2, 3)))


def test_losses_against_torch():
    torch = pytest.importorskip("torch")
    g = np.random.default_rng(7)
    a, b = overlapping_pairs(g, (3, 4))
    a[0, 0, :2], b[0, 0, :2] = [-1.0, -0.5], [-0.2, 0.4]  # a window past the top-left corner
    p = _presence(g, (3, 4))
    H, W = HW
    ta = torch.tensor(a, requires_grad=True)
    tb, tp = torch.tensor(b), torch.tensor(p)

    def t_inter(x, y):
        side = torch.clamp(torch.minimum(x[..., :2] + x[..., 2:], y[..., :2] + y[..., 2:])
                           - torch.maximum(x[..., :2], y[..., :2]), min=0)
        return side[..., 0] * side[..., 1]

    def t_iou(x, y):
        i = t_inter(x, y)
        return i / (x[..., 2] * x[..., 3] + y[..., 2] * y[..., 3] - i)

    def nll(x):
        return -torch.log(torch.clamp(x, 1e-4, 1))

    frame = torch.tensor([0.0, 0, H, W], dtype=torch.float64).expand_as(ta)
    losses = {
        "tracking": ((nll(t_iou(ta, tb)) * tp).sum() / tp.sum(),
                     lambda: tracking_loss_forward(a, b, p), tracking_loss_backward),
        "attention": (((nll(t_inter(ta, tb) / (tb[..., 2] * tb[..., 3])) + nll(1 - t_iou(ta, frame))) * tp).sum()
                      / tp.sum(), lambda: attention_loss_forward(a, b, p, HW), attention_loss_backward),
    }
    for name, (t_loss, fwd, bwd) in losses.items():
        ta.grad = None
        t_loss.backward()
        loss, cache = fwd()
        assert float(loss) == pytest.approx(t_loss.item(), rel=1e-12), name
        np.testing.assert_allclose(bwd(1.0, cache), ta.grad.numpy(), rtol=1e-10, atol=1e-14, err_msg=name)

    logits = torch.tensor(2 * g.standard_normal((3, 4, 3, 5)), requires_grad=True)
    target = appearance_target(b, a, (3, 5))
    tt = torch.tensor(target)
    fp = tt.mean(dim=(-2, -1), keepdim=True)
    frac = torch.where(tt > 0, fp, 1 - fp)
    weight = 1 / torch.where(frac > 0, frac, torch.ones_like(frac))
    xe = torch.nn.functional.binary_cross_entropy_with_logits(logits, tt, weight=weight, reduction="none")
    t_loss = (xe.mean(dim=(-2, -1)) * tp).sum() / tp.sum()
    t_loss.backward()
    loss, cache = appearance_loss_forward(logits.detach().numpy(), target, p)
    assert float(loss) == pytest.approx(t_loss.item(), rel=1e-12)
    np.testing.assert_allclose(appearance_loss_backward(1.0, cache), logits.grad.numpy(), rtol=1e-10, atol=1e-14)
