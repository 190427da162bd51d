"""Tests of minihart/nn/conv.py: im2col/col2im, conv2d (grouped), max-pool, LRN."""
import numpy as np
import pytest

from minihart.backend import asnumpy
from minihart.gradcheck import check
from minihart.nn.conv import (col2im, conv2d_backward, conv2d_forward, im2col, lrn_backward,
                              lrn_forward, maxpool2d_backward, maxpool2d_forward)

# (x shape, w shape, stride, pad, groups): batch > 1, non-square, odd sizes, groups = 2
CONV_CASES = [
    ((2, 3, 7, 6), (4, 3, 3, 2), 1, 0, 1),
    ((3, 4, 9, 7), (6, 2, 3, 5), 2, 1, 2),
    ((2, 2, 5, 5), (3, 2, 5, 5), 1, 2, 1),
    ((2, 2, 11, 9), (4, 1, 11, 5), 4, 2, 2),
    ((3, 5, 4, 3), (3, 5, 1, 1), 1, 0, 1),
]
# (x shape, size, stride, pad): AlexNet's overlapping 3x3 / 2 pool among them
POOL_CASES = [
    ((2, 3, 7, 5), 3, 2, 0),
    ((3, 2, 9, 7), 3, 2, 1),
    ((2, 1, 6, 8), 2, 2, 0),
    ((2, 2, 5, 4), 3, 1, 1),
]
# (x shape, size, alpha, beta, k): even sizes, size > C, and a large alpha so the
# cross-channel term of the gradient is not negligible
LRN_CASES = [
    ((2, 7, 3, 2), 5, 2.0, 0.75, 1.0),
    ((3, 4, 2, 5), 3, 1.0, 0.5, 2.0),
    ((2, 3, 3, 3), 5, 3.0, 0.75, 2.0),
    ((2, 6, 2, 3), 4, 1.5, 0.75, 1.0),
    ((4, 9), 5, 1e-4, 0.75, 2.0),
]


def naive_conv(x, w, b, stride, pad, groups):
    """Nested loops over samples, filters and output pixels."""
    n, c, h, wd = x.shape
    f, cg, kh, kw = w.shape
    xpad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho, wo = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    out = np.zeros((n, f, ho, wo))
    for i in range(n):
        for k in range(f):
            c0 = (k // (f // groups)) * cg
            for r in range(ho):
                for q in range(wo):
                    win = xpad[i, c0:c0 + cg, r * stride:r * stride + kh, q * stride:q * stride + kw]
                    out[i, k, r, q] = b[k] + np.sum(win * w[k])
    return out


def naive_pool(x, size, stride, pad):
    n, c, h, w = x.shape
    xpad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=-np.inf)
    ho, wo = (h + 2 * pad - size) // stride + 1, (w + 2 * pad - size) // stride + 1
    out = np.empty((n, c, ho, wo))
    for r in range(ho):
        for q in range(wo):
            win = xpad[:, :, r * stride:r * stride + size, q * stride:q * stride + size]
            out[:, :, r, q] = win.max(axis=(2, 3))
    return out


def distinct(rng, shape):
    """Values 0.05 apart in random order (no ties, no kink within a finite-difference step)."""
    return 0.05 * rng.permutation(int(np.prod(shape))).reshape(shape) - 1.0


def conv_inputs(rng, xp, xs, ws):
    return (xp.asarray(rng.standard_normal(xs)), xp.asarray(rng.standard_normal(ws)),
            xp.asarray(rng.standard_normal(ws[0])))


# --------------------------------------------------------------------------- im2col / col2im
@pytest.mark.parametrize("xs, k, stride, pad", [((2, 3, 7, 6), (3, 2), 1, 1), ((3, 2, 9, 9), (3, 3), 2, 0),
                                                ((1, 2, 8, 8), (4, 4), 4, 0)])
@pytest.mark.parametrize("batch_inner", [False, True])
def test_col2im_is_the_adjoint_of_im2col(xp, rng, xs, k, stride, pad, batch_inner):
    x = xp.asarray(rng.standard_normal(xs))
    cols = im2col(x, *k, stride, pad, batch_inner)
    c = xp.asarray(rng.standard_normal(cols.shape))
    lhs = float(xp.sum(cols * c))
    rhs = float(xp.sum(x * col2im(c, x.shape, stride, pad, batch_inner)))
    assert abs(lhs - rhs) < 1e-10 * (abs(lhs) + 1)


def test_batch_inner_is_the_same_columns_with_the_batch_moved_last(xp, rng):
    x = xp.asarray(rng.standard_normal((3, 2, 9, 7)))
    xp.testing.assert_array_equal(im2col(x, 3, 3, 2, 1, batch_inner=True),
                                  im2col(x, 3, 3, 2, 1).transpose(1, 2, 3, 4, 5, 0))


def test_im2col_entries(rng):
    x = rng.standard_normal((2, 3, 7, 6))
    cols = im2col(x, 3, 2, 2, 1)
    xpad = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    assert cols.shape == (2, 3, 3, 2, 4, 4)
    for i, j, r, q in [(0, 0, 0, 0), (2, 1, 1, 2), (1, 0, 3, 1), (2, 1, 3, 3)]:
        np.testing.assert_array_equal(cols[:, :, i, j, r, q], xpad[:, :, 2 * r + i, 2 * q + j])


# --------------------------------------------------------------------------- conv2d
@pytest.mark.parametrize("xs, ws, stride, pad, groups", CONV_CASES)
def test_conv2d_matches_naive_loops(xp, rng, xs, ws, stride, pad, groups):
    x, w, b = conv_inputs(rng, xp, xs, ws)
    out, _ = conv2d_forward(x, w, b, stride, pad, groups)
    ref = naive_conv(*(asnumpy(a) for a in (x, w, b)), stride, pad, groups)
    assert out.shape == ref.shape
    np.testing.assert_allclose(asnumpy(out), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("xs, ws, stride, pad, groups", CONV_CASES)
def test_conv2d_gradients(xp, rng, xs, ws, stride, pad, groups):
    x, w, b = conv_inputs(rng, xp, xs, ws)
    errs = check(conv2d_forward, conv2d_backward, dict(x=x, w=w, b=b, stride=stride, pad=pad, groups=groups))
    assert set(errs) == {"x", "w", "b"}
    assert max(errs.values()) < 1e-7, errs


def test_conv2d_gradients_every_element(xp, rng):
    """Small enough that every element of x and w is perturbed (no random directions)."""
    x, w, b = conv_inputs(rng, xp, (2, 4, 5, 3), (4, 2, 2, 3))
    errs = check(conv2d_forward, conv2d_backward, dict(x=x, w=w, b=b, stride=1, pad=1, groups=2),
                 max_elements=10_000)
    assert max(errs.values()) < 1e-7, errs


def test_conv2d_groups_do_not_mix_channels(rng):
    """With groups = 2, the first half of the filters ignores the second half of the channels."""
    x = rng.standard_normal((2, 4, 5, 5))
    w, b = rng.standard_normal((6, 2, 3, 3)), np.zeros(6)
    out, _ = conv2d_forward(x, w, b, groups=2)
    x2 = x.copy()
    x2[:, 2:] += 1.0
    out2, _ = conv2d_forward(x2, w, b, groups=2)
    np.testing.assert_array_equal(out[:, :3], out2[:, :3])
    assert np.abs(out[:, 3:] - out2[:, 3:]).min() > 0


def test_float32_stays_float32(xp, rng):
    f32 = np.float32
    x = xp.asarray(rng.standard_normal((2, 4, 7, 7)).astype(f32))
    w = xp.asarray(rng.standard_normal((6, 2, 3, 3)).astype(f32))
    b = xp.asarray(rng.standard_normal(6).astype(f32))
    out, cache = conv2d_forward(x, w, b, 2, 1, 2)
    grads = conv2d_backward(out, cache)
    out_p, cache_p = maxpool2d_forward(x, 3, 2, 1)
    out_l, cache_l = lrn_forward(x)
    arrays = [out, *grads, out_p, maxpool2d_backward(out_p, cache_p), out_l, lrn_backward(out_l, cache_l)]
    assert [a.dtype for a in arrays] == [f32] * len(arrays)


# --------------------------------------------------------------------------- max-pool
@pytest.mark.parametrize("xs, size, stride, pad", POOL_CASES)
def test_maxpool_values_and_gradients(xp, rng, xs, size, stride, pad):
    x = xp.asarray(distinct(rng, xs))
    out, _ = maxpool2d_forward(x, size, stride, pad)
    np.testing.assert_array_equal(asnumpy(out), naive_pool(asnumpy(x), size, stride, pad))
    errs = check(maxpool2d_forward, maxpool2d_backward, dict(x=x, size=size, stride=stride, pad=pad),
                 max_elements=10_000)
    assert errs["x"] < 1e-7, errs


def test_maxpool_padding_is_never_the_max(xp):
    x = xp.full((1, 1, 3, 3), -5.0)
    out, cache = maxpool2d_forward(x, 3, 2, 1)
    assert (asnumpy(out) == -5.0).all()
    dx = maxpool2d_backward(xp.ones_like(out), cache)
    assert float(dx.sum()) == 4.0


def test_maxpool_ties_go_to_the_first_max(xp):
    out, cache = maxpool2d_forward(xp.zeros((1, 2, 3, 3)), 3, 1)
    dx = asnumpy(maxpool2d_backward(xp.asarray([[[[2.0]], [[3.0]]]]), cache))
    expected = np.zeros((1, 2, 3, 3))
    expected[0, :, 0, 0] = [2.0, 3.0]
    np.testing.assert_array_equal(dx, expected)


def test_maxpool_overlapping_windows_sum_their_gradients(xp, rng):
    x = rng.standard_normal((1, 1, 5, 5))
    x[0, 0, 2, 2] = 10.0  # the maximum of all nine 3x3 windows (stride 1)
    dout = rng.standard_normal((1, 1, 3, 3))
    _, cache = maxpool2d_forward(xp.asarray(x), 3, 1)
    dx = asnumpy(maxpool2d_backward(xp.asarray(dout), cache))
    assert dx[0, 0, 2, 2] == pytest.approx(dout.sum())
    assert np.count_nonzero(dx) == 1


# --------------------------------------------------------------------------- LRN
def naive_lrn(x, size, alpha, beta, k):
    c = x.shape[1]
    y = np.empty_like(x)
    for i in range(c):
        lo, hi = max(0, i - size // 2), min(c, i + (size - 1) // 2 + 1)
        y[:, i] = x[:, i] / (k + alpha / size * (x[:, lo:hi] ** 2).sum(axis=1)) ** beta
    return y


@pytest.mark.parametrize("xs, size, alpha, beta, k", LRN_CASES)
def test_lrn_values_and_gradients(xp, rng, xs, size, alpha, beta, k):
    x = xp.asarray(rng.standard_normal(xs))
    y, _ = lrn_forward(x, size, alpha, beta, k)
    np.testing.assert_allclose(asnumpy(y), naive_lrn(asnumpy(x), size, alpha, beta, k), rtol=1e-12)
    errs = check(lrn_forward, lrn_backward, dict(x=x, size=size, alpha=alpha, beta=beta, k=k))
    assert errs["x"] < 1e-7, errs


def test_lrn_cross_channel_term_is_tested(rng):
    """A backward without the cross-channel term must fail the check at these settings."""
    x = rng.standard_normal((2, 5, 2, 2))
    errs = check(lrn_forward, lambda d, c: d * c.s_pow, dict(x=x, size=5, alpha=2.0, beta=0.75, k=1.0))
    assert errs["x"] > 1e-3


# --------------------------------------------------------------------------- torch
def _torch_grads(torch, fn, arrays, dout):
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*ts)
    grads = torch.autograd.grad(out, ts, torch.tensor(dout))
    return out.detach().numpy(), [g.numpy() for g in grads]


@pytest.mark.parametrize("xs, ws, stride, pad, groups", CONV_CASES)
def test_conv2d_against_torch(rng, xs, ws, stride, pad, groups):
    torch = pytest.importorskip("torch")
    x, w, b = conv_inputs(rng, np, xs, ws)
    out, cache = conv2d_forward(x, w, b, stride, pad, groups)
    dout = rng.standard_normal(out.shape)
    ref, ref_grads = _torch_grads(torch, lambda x, w, b: torch.nn.functional.conv2d(
        x, w, b, stride=stride, padding=pad, groups=groups), (x, w, b), dout)
    np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-12)
    for g, r in zip(conv2d_backward(dout, cache), ref_grads):
        np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("xs, size, stride, pad", POOL_CASES)
def test_maxpool_against_torch(rng, xs, size, stride, pad):
    torch = pytest.importorskip("torch")
    x = distinct(rng, xs)
    out, cache = maxpool2d_forward(x, size, stride, pad)
    dout = rng.standard_normal(out.shape)
    ref, (ref_dx,) = _torch_grads(torch, lambda x: torch.nn.functional.max_pool2d(x, size, stride, pad),
                                  (x,), dout)
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_allclose(maxpool2d_backward(dout, cache), ref_dx, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("xs, size, alpha, beta, k", LRN_CASES)
def test_lrn_against_torch(rng, xs, size, alpha, beta, k):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal(xs)
    y, cache = lrn_forward(x, size, alpha, beta, k)
    dout = rng.standard_normal(y.shape)
    # a trailing axis of 1: torch wants at least 3 dimensions
    ref, (ref_dx,) = _torch_grads(torch, lambda x: torch.nn.functional.local_response_norm(
        x[..., None], size, alpha=alpha, beta=beta, k=k)[..., 0], (x,), dout)
    np.testing.assert_allclose(y, ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(lrn_backward(dout, cache), ref_dx, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- validation
Z = np.zeros


@pytest.mark.parametrize("x, w, b, kwargs, match", [
    (Z((3, 5, 5)), Z((2, 3, 3, 3)), Z(2), {}, r"x must be \(N, C, H, W\).*x\(3, 5, 5\)"),
    (Z((1, 3, 5, 5)), Z((2, 3, 3)), Z(2), {}, r"w\(2, 3, 3\)"),
    (Z((2, 3, 8, 8)), Z((5, 4, 3, 3)), Z(5), {}, r"x has 3 channels but w expects 4.*x\(2, 3, 8, 8\), w\(5, 4, 3, 3\)"),
    (Z((1, 3, 5, 5)), Z((4, 1, 3, 3)), Z(4), dict(groups=2), r"groups=2 .*dividing.*x\(1, 3, 5, 5\)"),
    (Z((1, 4, 5, 5)), Z((3, 2, 3, 3)), Z(3), dict(groups=2), r"groups=2 .*3 filters"),
    (Z((1, 4, 5, 5)), Z((4, 2, 3, 3)), Z(4), dict(groups=1), r"x has 4 channels but w expects 2"),
    (Z((1, 1, 3, 3)), Z((1, 1, 5, 5)), Z(1), {}, r"w window 5x5 is larger than the padded input 3x3"),
    (Z((1, 1, 6, 6)), Z((1, 1, 3, 3)), Z(1), dict(stride=2),
     r"stride=2 .*not an integer.*x\(1, 1, 6, 6\), w\(1, 1, 3, 3\)"),
    (Z((1, 1, 6, 6)), Z((1, 1, 3, 3)), Z(1), dict(stride=0), r"stride must be a positive integer"),
    (Z((1, 1, 6, 6)), Z((1, 1, 3, 3)), Z(1), dict(stride=1.0), r"stride must be a positive integer, got 1.0"),
    (Z((1, 1, 6, 6)), Z((1, 1, 3, 3)), Z(1), dict(pad=-1), r"pad must be a non-negative integer"),
    (Z((1, 1, 6, 6)), Z((2, 1, 3, 3)), Z(3), {}, r"b must be \(2,\).*b\(3,\)"),
])
def test_conv2d_rejects_bad_arguments(x, w, b, kwargs, match):
    with pytest.raises(ValueError, match=r"conv2d_forward: .*" + match):
        conv2d_forward(x, w, b, **kwargs)


@pytest.mark.parametrize("shape, size, stride, pad, match", [
    ((3, 7, 7), 3, 2, 0, r"x must be \(N, C, H, W\), got x\(3, 7, 7\)"),
    ((1, 1, 6, 6), 3, 2, 0, r"stride=2 does not divide .*x\(1, 1, 6, 6\)"),
    ((1, 1, 7, 7), 3, 2, 2, r"pad <= size // 2.*pad=2"),
    ((1, 1, 2, 2), 3, 1, 0, r"size window 3x3 is larger than the padded input 2x2 \(x\(1, 1, 2, 2\)"),
])
def test_maxpool_rejects_bad_arguments(shape, size, stride, pad, match):
    with pytest.raises(ValueError, match=r"maxpool2d_forward: .*" + match):
        maxpool2d_forward(np.zeros(shape), size, stride, pad)


@pytest.mark.parametrize("shape, kwargs, match", [
    ((5,), {}, r"x\(5,\)"), ((1, 3, 2, 2), dict(size=0), r"size=0"), ((1, 3, 2, 2), dict(k=0.0), r"k=0.0"),
])
def test_lrn_rejects_bad_arguments(shape, kwargs, match):
    with pytest.raises(ValueError, match=r"lrn_forward: .*" + match):
        lrn_forward(np.zeros(shape), **kwargs)
