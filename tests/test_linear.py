"""Tests of minihart/nn/linear.py: affine layer, dropout with an explicit mask, init."""
import numpy as np
import pytest

from minihart.backend import asnumpy
from minihart.gradcheck import check
from minihart.nn.linear import (affine_backward, affine_forward, dropout_backward, dropout_forward,
                                dropout_mask, init_affine)

# (x shape, M): batch > 1, 3-D and 4-D inputs (leading dimensions flattened), odd sizes
AFFINE_SHAPES = [((4, 5), 3), ((3, 2, 5), 4), ((2, 3, 1, 7), 6), ((1, 9), 1), ((13, 3), 17)]


@pytest.mark.parametrize("xs, m", AFFINE_SHAPES)
def test_affine_values_and_gradients(xp, rng, xs, m):
    x = xp.asarray(rng.standard_normal(xs))
    W = xp.asarray(rng.standard_normal((xs[-1], m)))
    b = xp.asarray(rng.standard_normal(m))
    y, _ = affine_forward(x, W, b)
    ref = np.einsum("...d,dm->...m", asnumpy(x), asnumpy(W)) + asnumpy(b)
    np.testing.assert_allclose(asnumpy(y), ref, rtol=1e-12, atol=1e-12)
    errs = check(affine_forward, affine_backward, dict(x=x, W=W, b=b))
    assert max(errs.values()) < 1e-7, errs


def test_affine_gradients_large_input(xp, rng):
    """Large enough for the random-direction path of the checker."""
    x = xp.asarray(rng.standard_normal((6, 5, 11)))
    W, b = xp.asarray(rng.standard_normal((11, 23))), xp.asarray(rng.standard_normal(23))
    errs = check(affine_forward, affine_backward, dict(x=x, W=W, b=b))
    assert max(errs.values()) < 1e-7, errs


def test_affine_keeps_float32(xp, rng):
    x = xp.asarray(rng.standard_normal((2, 3, 4)).astype(np.float32))
    W = xp.asarray(rng.standard_normal((4, 5)).astype(np.float32))
    b = xp.asarray(np.zeros(5, np.float32))
    y, cache = affine_forward(x, W, b)
    assert {a.dtype for a in (y, *affine_backward(y, cache))} == {np.dtype(np.float32)}


@pytest.mark.parametrize("xs, ws, bs, match", [
    ((2, 4), (5, 3), (3,), r"x\(2, 4\) has last dimension 4, W\(5, 3\) expects 5"),
    ((2, 5), (5, 3), (4,), r"W\(5, 3\), b\(4,\)"),
    ((2, 5), (5, 3, 1), (3,), r"W must be \(D, M\)"),
])
def test_affine_rejects_bad_shapes(xs, ws, bs, match):
    with pytest.raises(ValueError, match="affine_forward: .*" + match):
        affine_forward(np.zeros(xs), np.zeros(ws), np.zeros(bs))


def test_affine_against_torch(rng):
    torch = pytest.importorskip("torch")
    x, W, b = rng.standard_normal((3, 2, 5)), rng.standard_normal((5, 4)), rng.standard_normal(4)
    y, cache = affine_forward(x, W, b)
    dy = rng.standard_normal(y.shape)
    ts = [torch.tensor(a, requires_grad=True) for a in (x, W, b)]
    ref = torch.nn.functional.linear(ts[0], ts[1].T, ts[2])
    np.testing.assert_allclose(y, ref.detach().numpy(), rtol=1e-12)
    for g, r in zip(affine_backward(dy, cache), torch.autograd.grad(ref, ts, torch.tensor(dy))):
        np.testing.assert_allclose(g, r.numpy(), rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- dropout
@pytest.mark.parametrize("shape, p", [((4, 7), 0.25), ((2, 3, 5), 0.5), ((3, 1, 4, 3), 0.1)])
def test_dropout_gradients(xp, rng, shape, p):
    x = xp.asarray(rng.standard_normal(shape))
    mask = dropout_mask(rng, shape, p, xp)
    errs = check(lambda x, mask: dropout_forward(x, mask, p), dropout_backward, dict(x=x, mask=mask), wrt=["x"])
    assert errs["x"] < 1e-7, errs


def test_dropout_scales_kept_units_and_zeroes_dropped(xp, rng):
    p = 0.25
    x = xp.asarray(rng.standard_normal((5, 8)))
    mask = dropout_mask(rng, x.shape, p, xp)
    m = asnumpy(mask).astype(bool)
    assert 0 < m.sum() < m.size
    y, cache = dropout_forward(x, mask, p)
    np.testing.assert_allclose(asnumpy(y)[m], asnumpy(x)[m] / (1 - p), rtol=1e-15)
    assert (asnumpy(y)[~m] == 0).all()
    dy = xp.asarray(rng.standard_normal(x.shape))
    dx = asnumpy(dropout_backward(dy, cache))
    np.testing.assert_allclose(dx[m], asnumpy(dy)[m] / (1 - p), rtol=1e-15)
    assert (dx[~m] == 0).all()


def test_dropout_keeps_the_mean():
    """Inverted dropout: E[y] = x, so evaluation (no mask) needs no rescaling."""
    rng = np.random.default_rng(0)
    x = np.full(200_000, 3.0)
    y, _ = dropout_forward(x, dropout_mask(rng, x.shape, 0.25), 0.25)
    assert y.mean() == pytest.approx(3.0, rel=0.01)


def test_dropout_eval_is_identity(xp, rng):
    x = xp.asarray(rng.standard_normal((3, 4)))
    y, cache = dropout_forward(x, None, 0.25)
    assert y is x
    dy = xp.asarray(rng.standard_normal((3, 4)))
    assert dropout_backward(dy, cache) is dy


def test_dropout_mask_and_dtype(xp, rng):
    mask = dropout_mask(rng, (1000, 10), 0.3, xp)
    assert mask.shape == (1000, 10) and mask.dtype == np.float32
    assert set(np.unique(asnumpy(mask))) <= {0.0, 1.0}
    assert float(mask.mean()) == pytest.approx(0.7, abs=0.02)
    x = xp.asarray(rng.standard_normal((1000, 10)).astype(np.float32))
    assert dropout_forward(x, mask, 0.3)[0].dtype == np.float32


@pytest.mark.parametrize("p, mask_shape, match", [(1.0, (2, 3), r"p must be in \[0, 1\), got 1.0"),
                                                  (-0.1, (2, 3), r"p must be"),
                                                  (0.5, (3, 2), r"mask\(3, 2\) must match x\(2, 3\)")])
def test_dropout_rejects_bad_arguments(p, mask_shape, match):
    with pytest.raises(ValueError, match="dropout_forward: " + match):
        dropout_forward(np.zeros((2, 3)), np.ones(mask_shape), p)
    if p != 0.5:  # the mask maker refuses the same p (p = 2 gave an all-zero mask)
        with pytest.raises(ValueError, match="dropout_mask: p must be in"):
            dropout_mask(np.random.default_rng(0), (2, 3), p)


def test_init_affine(rng):
    W, b = init_affine(rng, 30, 20)
    assert W.shape == (30, 20) and b.shape == (20,) and W.dtype == b.dtype == np.float32
    bound = np.sqrt(6 / 50)
    assert np.abs(W).max() <= bound and np.abs(W).max() > 0.9 * bound
    assert not b.any()
