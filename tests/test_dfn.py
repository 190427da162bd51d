"""Tests of minihart/nn/dfn.py: the per-sample convolution and the filter MLP of eq. (3)."""
import numpy as np
import pytest

from minihart.backend import asnumpy
from minihart.gradcheck import check, rel_error
from minihart.nn.dfn import (DFN_KEYS, dfn_filters_backward, dfn_filters_forward, dynamic_conv_backward,
                             dynamic_conv_forward, init_dfn_params)

# (B, Cin, Cout, H, W, k, pad): batch > 1, non-square maps, odd sizes, "same" and "valid"
CONV_SHAPES = [(3, 2, 4, 5, 7, 1, 0), (2, 3, 2, 6, 5, 3, 1), (2, 2, 3, 4, 7, 3, 0), (2, 1, 2, 5, 4, 5, 2)]


def _conv_inputs(g, B, Cin, Cout, H, W, k):
    return (g.standard_normal((B, Cin, H, W)), g.standard_normal((B, Cout, Cin, k, k)),
            g.standard_normal((B, Cout)))


def _naive_dynamic_conv(x, w, b, pad):
    """Sample by sample, an ordinary convolution as a sum of shifted slices (no im2col)."""
    B, Cout, Cin, k, _ = w.shape
    xpad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    Ho, Wo = xpad.shape[2] - k + 1, xpad.shape[3] - k + 1
    out = np.zeros((B, Cout, Ho, Wo))
    for n in range(B):
        for o in range(Cout):
            out[n, o] = b[n, o]
            for c in range(Cin):
                for i in range(k):
                    for j in range(k):
                        out[n, o] += w[n, o, c, i, j] * xpad[n, c, i:i + Ho, j:j + Wo]
    return out


@pytest.mark.parametrize("shape", CONV_SHAPES)
def test_dynamic_conv_matches_per_sample_loop(xp, shape):
    B, Cin, Cout, H, W, k, pad = shape
    x, w, b = _conv_inputs(np.random.default_rng(0), B, Cin, Cout, H, W, k)
    out, _ = dynamic_conv_forward(xp.asarray(x), xp.asarray(w), xp.asarray(b), pad)
    assert out.shape == (B, Cout, H + 2 * pad - k + 1, W + 2 * pad - k + 1)
    assert rel_error(out, _naive_dynamic_conv(x, w, b, pad)) < 1e-12


def test_dynamic_conv_uses_each_samples_own_kernels(xp):
    g = np.random.default_rng(1)
    x, w, b = _conv_inputs(g, 2, 3, 2, 5, 6, 3)
    out, _ = dynamic_conv_forward(xp.asarray(x), xp.asarray(w), xp.asarray(b), 1)
    w2 = w.copy()
    w2[1] = g.standard_normal(w[1].shape)  # change only sample 1's kernels
    out2, _ = dynamic_conv_forward(xp.asarray(x), xp.asarray(w2), xp.asarray(b), 1)
    out, out2 = asnumpy(out), asnumpy(out2)
    assert np.array_equal(out[0], out2[0]) and not np.allclose(out[1], out2[1])


@pytest.mark.parametrize("shape", CONV_SHAPES)
def test_dynamic_conv_gradcheck(xp, shape):
    B, Cin, Cout, H, W, k, pad = shape
    x, w, b = _conv_inputs(np.random.default_rng(2), B, Cin, Cout, H, W, k)
    errs = check(lambda x, w, b: dynamic_conv_forward(x, w, b, pad), dynamic_conv_backward,
                 dict(x=xp.asarray(x), w=xp.asarray(w), b=xp.asarray(b)))
    assert set(errs) == {"x", "w", "b"} and max(errs.values()) < 1e-7, errs


def test_dynamic_conv_keeps_float32(xp):
    arrays = _conv_inputs(np.random.default_rng(3), 2, 3, 2, 4, 5, 3)
    x, w, b = (xp.asarray(a.astype(np.float32)) for a in arrays)
    out, cache = dynamic_conv_forward(x, w, b, 1)
    grads = dynamic_conv_backward(xp.ones_like(out) * 0.5, cache)
    assert out.dtype == np.float32 and all(gr.dtype == np.float32 for gr in grads)


def _dfn_params(g, xp, prefix, D, cin, cout, k):
    # perturb the (tiny) initial kernel read-out so every gradient is of order one
    p = init_dfn_params(g, prefix, D, cin, cout, k)
    return {key: xp.asarray(v.astype(np.float64) + 0.3 * g.standard_normal(v.shape)) for key, v in p.items()}


@pytest.mark.parametrize("D, cin, cout, k", [(5, 3, 2, 1), (4, 2, 3, 3), (9, 4, 5, 3)])
def test_dfn_filters_gradcheck(xp, D, cin, cout, k):
    g = np.random.default_rng(4)
    params = _dfn_params(g, xp, "dfn_", D, cin, cout, k)

    def fwd(alpha, **p):
        return dfn_filters_forward(alpha, p, cin, cout, k, prefix="dfn_")

    def bwd(dout, cache):
        dalpha, grads = dfn_filters_backward(dout, cache)
        return {"alpha": dalpha, **grads}

    errs = check(fwd, bwd, dict(alpha=xp.asarray(g.standard_normal((3, D))), **params))
    assert set(errs) == {"alpha", *("dfn_" + key for key in DFN_KEYS)}
    assert max(errs.values()) < 1e-7, errs


def test_dfn_layer_end_to_end_gradcheck(xp):
    """alpha -> (w, b) -> per-sample conv of x: the dorsal-stream layer as the model chains it."""
    g = np.random.default_rng(5)
    B, D, cin, cout, k = 2, 4, 3, 2, 3
    params = _dfn_params(g, xp, "", D, cin, cout, k)

    def fwd(alpha, x, **p):
        (w, b), c1 = dfn_filters_forward(alpha, p, cin, cout, k)
        out, c2 = dynamic_conv_forward(x, w, b, 1)
        return out, (c1, c2)

    def bwd(dout, cache):
        dx, dw, db = dynamic_conv_backward(dout, cache[1])
        dalpha, grads = dfn_filters_backward((dw, db), cache[0])
        return {"alpha": dalpha, "x": dx, **grads}

    errs = check(fwd, bwd, dict(alpha=xp.asarray(g.standard_normal((B, D))),
                                x=xp.asarray(g.standard_normal((B, cin, 5, 4))), **params))
    assert max(errs.values()) < 1e-7, errs


def test_init_dfn_params():
    D, cin, cout, k = 10, 4, 5, 3
    p = init_dfn_params(np.random.default_rng(6), "a_", D, cin, cout, k)
    shapes = {"hid_W": (D, D), "hid_b": (D,), "ker_W": (D, cout * cin * k * k), "ker_b": (cout * cin * k * k,),
              "bias_W": (D, cout), "bias_b": (cout,)}
    assert {key: v.shape for key, v in p.items()} == {"a_" + key: s for key, s in shapes.items()}
    assert all(v.dtype == np.float32 for v in p.values())
    # uniform unit scaling with factor 0.1: |W| <= 0.1 sqrt(3 / D), and not all tiny
    bound = 0.1 * np.sqrt(3 / D)
    assert np.abs(p["a_ker_W"]).max() <= bound and np.abs(p["a_ker_W"]).max() > 0.8 * bound
    assert np.abs(p["a_ker_b"]).max() <= 0.1 * np.sqrt(3)


def test_dfn_filters_shapes_and_dtype(xp):
    g = np.random.default_rng(7)
    params = {key: xp.asarray(v) for key, v in init_dfn_params(g, "", 6, 3, 2, 3).items()}
    alpha = xp.asarray(g.standard_normal((4, 6)).astype(np.float32))
    (w, b), cache = dfn_filters_forward(alpha, params, 3, 2, 3)
    assert w.shape == (4, 2, 3, 3, 3) and b.shape == (4, 2)
    dalpha, grads = dfn_filters_backward((w * 0.5, b * 0.5), cache)
    assert dalpha.dtype == np.float32 and all(v.dtype == np.float32 for v in grads.values())


def test_dynamic_conv_against_torch():
    torch = pytest.importorskip("torch")
    g = np.random.default_rng(8)
    B, Cin, Cout, H, W, k, pad = 3, 2, 4, 6, 5, 3, 1
    x, w, b = _conv_inputs(g, B, Cin, Cout, H, W, k)
    out, cache = dynamic_conv_forward(x, w, b, pad)
    dout = g.standard_normal(out.shape)
    dx, dw, db = dynamic_conv_backward(dout, cache)

    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    # groups=B: sample n's channels only meet sample n's kernels
    tout = torch.nn.functional.conv2d(tx.reshape(1, B * Cin, H, W), tw.reshape(B * Cout, Cin, k, k),
                                      tb.reshape(B * Cout), padding=pad, groups=B).reshape(out.shape)
    tout.backward(torch.tensor(dout))
    assert rel_error(out, tout.detach().numpy()) < 1e-12
    for ours, theirs in ((dx, tx), (dw, tw), (db, tb)):
        assert rel_error(ours, theirs.grad.numpy()) < 1e-12


def test_dfn_filters_against_torch():
    torch = pytest.importorskip("torch")
    g = np.random.default_rng(9)
    D, cin, cout, k, B = 5, 3, 2, 3, 4
    params = {key: v.astype(np.float64) for key, v in init_dfn_params(g, "", D, cin, cout, k).items()}
    alpha = g.standard_normal((B, D))
    (w, b), cache = dfn_filters_forward(alpha, params, cin, cout, k)
    dw, db = g.standard_normal(w.shape), g.standard_normal(b.shape)
    dalpha, grads = dfn_filters_backward((dw, db), cache)

    t = {key: torch.tensor(v, requires_grad=True) for key, v in {**params, "alpha": alpha}.items()}
    h = torch.nn.functional.elu(t["alpha"] @ t["hid_W"] + t["hid_b"])
    tw = (h @ t["ker_W"] + t["ker_b"]).reshape(B, cout, cin, k, k)
    tb = h @ t["bias_W"] + t["bias_b"]
    ((tw * torch.tensor(dw)).sum() + (tb * torch.tensor(db)).sum()).backward()
    assert rel_error(w, tw.detach().numpy()) < 1e-12 and rel_error(b, tb.detach().numpy()) < 1e-12
    assert rel_error(dalpha, t["alpha"].grad.numpy()) < 1e-12
    for key in DFN_KEYS:
        assert rel_error(grads[key], t[key].grad.numpy()) < 1e-12, key


@pytest.mark.parametrize("x_shape, w_shape, b_shape, pad, match", [
    ((2, 3, 5, 5), (2, 4, 2, 3, 3), (2, 4), 1, "3 channels but w expects 2"),
    ((2, 3, 5, 5), (3, 4, 3, 3, 3), (3, 4), 1, "batch sizes differ"),
    ((2, 3, 5, 5), (2, 4, 3, 3, 3), (3, 4), 1, "batch sizes differ"),
    ((2, 3, 5, 5), (2, 4, 3, 2, 2), (2, 4), 0, "odd size"),
    ((2, 3, 5, 5), (2, 4, 3, 3, 1), (2, 4), 0, "odd size"),
    ((2, 3, 5, 5), (2, 4, 3, 3, 3), (2, 5), 1, "must be \\(B, Cout\\)"),
    ((2, 3, 5), (2, 4, 3, 3, 3), (2, 4), 1, "need x"),
    ((2, 3, 5, 5), (2, 4, 3, 3, 3), (2, 4), -1, "pad"),
    ((2, 3, 1, 5), (2, 4, 3, 3, 3), (2, 4), 0, "pad"),
])
def test_dynamic_conv_rejects_bad_shapes(x_shape, w_shape, b_shape, pad, match):
    with pytest.raises(ValueError, match=match):
        dynamic_conv_forward(np.zeros(x_shape), np.zeros(w_shape), np.zeros(b_shape), pad)


def test_dfn_filters_rejects_bad_shapes():
    params = init_dfn_params(np.random.default_rng(10), "p_", 4, 2, 3, 3)
    alpha = np.zeros((2, 4), np.float32)
    with pytest.raises(ValueError, match="p_ker_W"):
        dfn_filters_forward(alpha, params, 3, 3, 3, prefix="p_")  # wrong cin
    with pytest.raises(ValueError, match="p_hid_W"):
        dfn_filters_forward(np.zeros((2, 5), np.float32), params, 2, 3, 3, prefix="p_")  # wrong D
    with pytest.raises(ValueError, match="hid_W"):
        dfn_filters_forward(alpha, params, 2, 3, 3)  # wrong prefix: keys missing
    with pytest.raises(ValueError, match="odd"):
        dfn_filters_forward(alpha, params, 2, 3, 2, prefix="p_")
    with pytest.raises(ValueError, match="alpha"):
        dfn_filters_forward(np.zeros(4, np.float32), params, 2, 3, 3, prefix="p_")
