"""Tests of minihart/nn/activations.py: ReLU, ELU, sigmoid, tanh."""
import warnings

import numpy as np
import pytest

from minihart.backend import asnumpy
from minihart.gradcheck import check
from minihart.nn.activations import (ACTIVATIONS, elu_backward, elu_forward, relu_backward, relu_forward,
                                     sigmoid, sigmoid_backward, sigmoid_forward)

NAMES = ["relu", "elu", "sigmoid", "tanh"]
SHAPES = [(3, 4, 5), (2, 7), (1, 3, 2, 5), (11,)]


def away_from_zero(rng, shape):
    """|x| >= 0.1: finite differences never straddle the kink of ReLU / ELU at 0."""
    x = rng.standard_normal(shape)
    return x + 0.1 * np.sign(x)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", NAMES)
def test_gradients(xp, rng, name, shape):
    fwd, bwd = ACTIVATIONS[name]
    errs = check(fwd, bwd, dict(x=xp.asarray(2 * away_from_zero(rng, shape))))
    assert errs["x"] < 1e-7, errs


@pytest.mark.parametrize("alpha", [0.5, 2.0])
def test_elu_gradient_with_alpha(xp, rng, alpha):
    errs = check(lambda x: elu_forward(x, alpha), lambda d, c: elu_backward(d, c, alpha),
                 dict(x=xp.asarray(away_from_zero(rng, (4, 6)))))
    assert errs["x"] < 1e-7, errs


def test_values(rng):
    x = away_from_zero(rng, (5, 6))
    np.testing.assert_array_equal(relu_forward(x)[0], np.where(x > 0, x, 0))
    np.testing.assert_allclose(elu_forward(x, 0.7)[0], np.where(x > 0, x, 0.7 * np.expm1(x)),
                               rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(sigmoid(x), 1 / (1 + np.exp(-x)), rtol=1e-14)
    np.testing.assert_allclose(ACTIVATIONS["tanh"][0](x)[0], np.tanh(x), rtol=1e-15)
    assert ACTIVATIONS["identity"][0](x)[0] is x


def test_relu_subgradient_at_zero_is_zero(xp):
    x = xp.asarray([-1.0, 0.0, 2.0])
    _, cache = relu_forward(x)
    np.testing.assert_array_equal(asnumpy(relu_backward(xp.asarray([3.0, 5.0, 7.0]), cache)), [0.0, 0.0, 7.0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stable_at_large_inputs(xp, dtype):
    x = xp.asarray(np.array([-1e4, -1000, -100, -30, 0, 30, 100, 1000, 1e4], dtype))
    dy = xp.ones_like(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # overflow / underflow / invalid value: all errors
        s, sc = sigmoid_forward(x)
        e, ec = elu_forward(x)
        ds, de = sigmoid_backward(dy, sc), elu_backward(dy, ec)
        t, _ = ACTIVATIONS["tanh"][0](x)
    for a in (s, e, ds, de, t):
        assert a.dtype == dtype and np.isfinite(asnumpy(a)).all()
    s, e, ds, de = (asnumpy(a) for a in (s, e, ds, de))
    assert s[0] == 0.0 and s[-1] == 1.0 and s[4] == 0.5
    assert np.all(np.diff(s) >= 0)
    assert e[0] == -1.0 and e[-1] == 1e4
    assert ds[0] == 0.0 and ds[-1] == 0.0
    np.testing.assert_allclose(de[:4], np.exp(asnumpy(x)[:4].astype(np.float64)), rtol=0, atol=1e-12)
    assert (de[5:] == 1.0).all()


@pytest.mark.parametrize("name", NAMES)
def test_float32_stays_float32(xp, rng, name):
    fwd, bwd = ACTIVATIONS[name]
    x = xp.asarray(away_from_zero(rng, (3, 4)).astype(np.float32))
    y, cache = fwd(x)
    assert y.dtype == np.float32 and bwd(y, cache).dtype == np.float32


@pytest.mark.parametrize("name", NAMES + ["elu_alpha"])
def test_against_torch(rng, name):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    ref_fn = dict(relu=F.relu, elu=F.elu, sigmoid=torch.sigmoid, tanh=torch.tanh,
                  elu_alpha=lambda x: F.elu(x, alpha=0.6))[name]
    fwd, bwd = ACTIVATIONS.get(name, (lambda x: elu_forward(x, 0.6), lambda d, c: elu_backward(d, c, 0.6)))
    x = 3 * away_from_zero(rng, (4, 5))
    dy = rng.standard_normal(x.shape)
    y, cache = fwd(x)
    xt = torch.tensor(x, requires_grad=True)
    ref = ref_fn(xt)
    (ref_dx,) = torch.autograd.grad(ref, xt, torch.tensor(dy))
    np.testing.assert_allclose(y, ref.detach().numpy(), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(bwd(dy, cache), ref_dx.numpy(), rtol=1e-12, atol=1e-15)
