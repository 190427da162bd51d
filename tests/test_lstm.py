"""Tests of minihart/nn/lstm.py: the LSTM cell with zoneout of eq. (5) and BPTT."""
import numpy as np
import pytest

from minihart.backend import asnumpy
from minihart.course.lstm import lstm_backward, lstm_forward
from minihart.gradcheck import check, rel_error
from minihart.nn.lstm import init_lstm_params, lstm_step_backward, lstm_step_forward, zoneout_masks

STEP_ARGS = ["x", "h", "c", "Wx", "Wh", "b"]


def _params(g, D, H):
    # perturb the initial parameters so the forget bias is not a round 1 and gates vary
    p = init_lstm_params(g, D, H)
    return {k: v.astype(np.float64) + 0.3 * g.standard_normal(v.shape) for k, v in p.items()}


def _step_inputs(g, xp, B, D, H):
    p = _params(g, D, H)
    return {k: xp.asarray(v) for k, v in dict(x=g.standard_normal((B, D)), h=g.standard_normal((B, H)),
                                              c=g.standard_normal((B, H)), **p).items()}


def _sigmoid(a):
    return 1 / (1 + np.exp(-a))


def _plain_lstm(x, h, c, Wx, Wh, b):
    """A textbook LSTM step, gates i, f, o, g."""
    a = x @ Wx + h @ Wh + b
    i, f, o, g = np.split(a, 4, axis=1)
    c_new = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
    return _sigmoid(o) * np.tanh(c_new), c_new


@pytest.mark.parametrize("B, D, H", [(3, 4, 2), (2, 3, 5), (1, 6, 3)])
def test_step_gradcheck_training_masks(xp, B, D, H):
    g = np.random.default_rng(0)
    inputs = _step_inputs(g, xp, B, D, H)
    zh, zc = (xp.asarray(zoneout_masks(g, (B, H), 0.4)) for _ in range(2))
    errs = check(lambda x, h, c, Wx, Wh, b: lstm_step_forward(x, h, c, Wx, Wh, b, zh, zc),
                 lstm_step_backward, inputs)
    assert set(errs) == set(STEP_ARGS) and max(errs.values()) < 1e-7, errs


def test_step_gradcheck_eval_expectation(xp):
    g = np.random.default_rng(1)
    inputs = _step_inputs(g, xp, 3, 4, 5)
    errs = check(lambda x, h, c, Wx, Wh, b: lstm_step_forward(x, h, c, Wx, Wh, b, p_h=0.3, p_c=0.2),
                 lstm_step_backward, inputs)
    assert max(errs.values()) < 1e-7, errs


@pytest.mark.parametrize("B, T, D, H", [(2, 5, 3, 4), (3, 5, 7, 8)])
def test_sequence_gradcheck_with_masks(xp, B, T, D, H):
    """5 steps of BPTT; (7, 8) makes Wx, Wh (> 200 elements) use the random-direction check."""
    g = np.random.default_rng(2)
    p = _params(g, D, H)
    zh, zc = (xp.asarray(zoneout_masks(g, (B, T, H), 0.3)) for _ in range(2))

    def fwd(xs, h0, c0, Wx, Wh, b):
        (hs, (hT, cT)), cache = lstm_forward(xs, h0, c0, dict(Wx=Wx, Wh=Wh, b=b), zh, zc)
        return (hs, hT, cT), cache

    def bwd(dout, cache):  # gradients of the outputs and of the final state
        return lstm_backward((dout[0], (dout[1], dout[2])), cache)

    inputs = {k: xp.asarray(v) for k, v in dict(xs=g.standard_normal((B, T, D)), h0=g.standard_normal((B, H)),
                                                c0=g.standard_normal((B, H)), **p).items()}
    errs = check(fwd, bwd, inputs)
    assert set(errs) == {"xs", "h0", "c0", "Wx", "Wh", "b"} and max(errs.values()) < 1e-7, errs


def test_sequence_gradcheck_eval_outputs_only(xp):
    g = np.random.default_rng(3)
    p = _params(g, 3, 4)
    inputs = {k: xp.asarray(v) for k, v in dict(xs=g.standard_normal((2, 4, 3)), h0=g.standard_normal((2, 4)),
                                                c0=g.standard_normal((2, 4)), **p).items()}
    def fwd(xs, h0, c0, Wx, Wh, b):
        return lstm_forward(xs, h0, c0, dict(Wx=Wx, Wh=Wh, b=b), p_h=0.1, p_c=0.3)

    errs = check(fwd, lstm_backward, inputs)
    assert max(errs.values()) < 1e-7, errs


def test_mask_of_ones_keeps_state_exactly(xp):
    g = np.random.default_rng(4)
    inp = _step_inputs(g, xp, 3, 4, 5)
    ones = xp.ones((3, 5))
    (h, c), _ = lstm_step_forward(*(inp[k] for k in STEP_ARGS), zh=ones, zc=ones)
    assert np.array_equal(asnumpy(h), asnumpy(inp["h"])) and np.array_equal(asnumpy(c), asnumpy(inp["c"]))


def test_plain_lstm_known_answer(xp):
    """p = 0 in evaluation, and masks of zeros in training, are the textbook LSTM."""
    g = np.random.default_rng(5)
    inp = _step_inputs(g, xp, 3, 4, 5)
    h_ref, c_ref = _plain_lstm(*(asnumpy(inp[k]) for k in STEP_ARGS))
    (h, c), _ = lstm_step_forward(*(inp[k] for k in STEP_ARGS))
    assert rel_error(h, h_ref) < 1e-14 and rel_error(c, c_ref) < 1e-14
    zeros = xp.zeros((3, 5))
    (h0, c0), _ = lstm_step_forward(*(inp[k] for k in STEP_ARGS), zh=zeros, zc=zeros)
    assert np.array_equal(asnumpy(h0), asnumpy(h)) and np.array_equal(asnumpy(c0), asnumpy(c))


def test_zoneout_mixes_per_unit_and_by_expectation(xp):
    g = np.random.default_rng(6)
    inp = _step_inputs(g, xp, 2, 3, 4)
    h_new, c_new = _plain_lstm(*(asnumpy(inp[k]) for k in STEP_ARGS))
    h_old, c_old = asnumpy(inp["h"]), asnumpy(inp["c"])
    zh, zc = np.array([[1, 0, 0, 1], [0, 1, 1, 0]], float), np.array([[0, 0, 1, 1], [1, 0, 1, 0]], float)
    (h, c), _ = lstm_step_forward(*(inp[k] for k in STEP_ARGS), zh=xp.asarray(zh), zc=xp.asarray(zc))
    assert rel_error(h, np.where(zh == 1, h_old, h_new)) < 1e-14
    assert rel_error(c, np.where(zc == 1, c_old, c_new)) < 1e-14
    (h, c), _ = lstm_step_forward(*(inp[k] for k in STEP_ARGS), p_h=0.25, p_c=0.6)
    assert rel_error(h, 0.25 * h_old + 0.75 * h_new) < 1e-14 and rel_error(c, 0.6 * c_old + 0.4 * c_new) < 1e-14


def test_sequence_matches_steps_and_keeps_float32(xp):
    g = np.random.default_rng(7)
    B, T, D, H = 2, 3, 4, 5
    p = {k: xp.asarray(v) for k, v in init_lstm_params(g, D, H).items()}
    xs = xp.asarray(g.standard_normal((B, T, D)).astype(np.float32))
    h0, c0 = (xp.asarray(g.standard_normal((B, H)).astype(np.float32)) for _ in range(2))
    zh, zc = (zoneout_masks(g, (B, T, H), 0.5, xp) for _ in range(2))
    (hs, (hT, cT)), cache = lstm_forward(xs, h0, c0, p, zh, zc)
    h, c = h0, c0
    for t in range(T):
        (h, c), _ = lstm_step_forward(xs[:, t], h, c, p["Wx"], p["Wh"], p["b"], zh[:, t], zc[:, t])
        assert np.array_equal(asnumpy(hs[:, t]), asnumpy(h))
    assert np.array_equal(asnumpy(hT), asnumpy(h)) and np.array_equal(asnumpy(cT), asnumpy(c))
    grads = lstm_backward(hs * 0.5, cache)
    assert hs.dtype == np.float32 and all(gr.dtype == np.float32 for gr in grads)
    (hs_eval, _), _ = lstm_forward(xs, h0, c0, p, p_h=0.05, p_c=0.05)
    assert hs_eval.dtype == np.float32


def test_init_orthogonal_and_forget_bias():
    H = 6
    for D in (4, 6, 9):  # fewer, equal and more inputs than units
        p = init_lstm_params(np.random.default_rng(8), D, H)
        assert p["Wx"].shape == (D, 4 * H) and p["Wh"].shape == (H, 4 * H) and p["b"].shape == (4 * H,)
        assert all(v.dtype == np.float32 for v in p.values())
        for k in range(4):
            Q = p["Wh"][:, k * H:(k + 1) * H].astype(np.float64)
            assert np.abs(Q.T @ Q - np.eye(H)).max() < 1e-6
            A = p["Wx"][:, k * H:(k + 1) * H].astype(np.float64)
            small = A.T @ A if D >= H else A @ A.T
            assert np.abs(small - np.eye(min(D, H))).max() < 1e-6
        assert np.array_equal(p["b"], np.r_[np.zeros(H), np.ones(H), np.zeros(2 * H)])
    assert not np.allclose(p["Wh"][:, :H], p["Wh"][:, H:2 * H])  # blocks drawn independently


def test_zoneout_masks():
    m = zoneout_masks(np.random.default_rng(9), (50, 40), 0.2)
    assert m.dtype == np.float32 and set(np.unique(m)) == {0.0, 1.0}
    assert abs(m.mean() - 0.2) < 0.03
    assert not zoneout_masks(np.random.default_rng(9), (3, 4), 0.0).any()
    with pytest.raises(ValueError, match="p must be"):
        zoneout_masks(np.random.default_rng(9), (3, 4), 1.5)


def test_step_against_torch():
    """Values and gradients of one step against torch.nn.LSTMCell, with zoneout mixed in torch."""
    torch = pytest.importorskip("torch")
    g = np.random.default_rng(10)
    B, D, H = 3, 4, 5
    inp = _step_inputs(g, np, B, D, H)
    zh, zc = zoneout_masks(g, (B, H), 0.5).astype(np.float64), zoneout_masks(g, (B, H), 0.5).astype(np.float64)
    (h, c), cache = lstm_step_forward(*(inp[k] for k in STEP_ARGS), zh=zh, zc=zc)
    dh, dc = g.standard_normal((B, H)), g.standard_normal((B, H))
    grads = dict(zip(STEP_ARGS, lstm_step_backward((dh, dc), cache)))

    perm = np.r_[0:2 * H, 3 * H:4 * H, 2 * H:3 * H]  # torch's gate order i, f, g, o
    cell = torch.nn.LSTMCell(D, H).double()
    with torch.no_grad():
        cell.weight_ih.copy_(torch.tensor(inp["Wx"][:, perm].T))
        cell.weight_hh.copy_(torch.tensor(inp["Wh"][:, perm].T))
        cell.bias_ih.copy_(torch.tensor(inp["b"][perm]))
        cell.bias_hh.zero_()
    tx, th, tc = (torch.tensor(inp[k], requires_grad=True) for k in ("x", "h", "c"))
    h_new, c_new = cell(tx, (th, tc))
    tzh, tzc = torch.tensor(zh), torch.tensor(zc)
    t_h, t_c = tzh * th + (1 - tzh) * h_new, tzc * tc + (1 - tzc) * c_new
    ((t_h * torch.tensor(dh)).sum() + (t_c * torch.tensor(dc)).sum()).backward()

    assert rel_error(h, t_h.detach().numpy()) < 1e-12 and rel_error(c, t_c.detach().numpy()) < 1e-12
    for k, t in (("x", tx), ("h", th), ("c", tc)):
        assert rel_error(grads[k], t.grad.numpy()) < 1e-12, k
    inv = np.argsort(perm)
    assert rel_error(grads["Wx"], cell.weight_ih.grad.numpy().T[:, inv]) < 1e-12
    assert rel_error(grads["Wh"], cell.weight_hh.grad.numpy().T[:, inv]) < 1e-12
    assert rel_error(grads["b"], cell.bias_ih.grad.numpy()[inv]) < 1e-12


def test_rejects_bad_shapes():
    g = np.random.default_rng(11)
    inp = _step_inputs(g, np, 2, 3, 4)
    x, h, c, Wx, Wh, b = (inp[k] for k in STEP_ARGS)
    with pytest.raises(ValueError, match="x\\(2, 5\\)"):
        lstm_step_forward(np.zeros((2, 5)), h, c, Wx, Wh, b)
    with pytest.raises(ValueError, match="Wh"):
        lstm_step_forward(x, h, c, Wx, Wh[:, :12], b)
    with pytest.raises(ValueError, match="b\\(15,\\)"):
        lstm_step_forward(x, h, c, Wx, Wh, np.zeros(15))
    with pytest.raises(ValueError, match="c_prev\\(3, 4\\)"):
        lstm_step_forward(x, h, np.zeros((3, 4)), Wx, Wh, b)
    with pytest.raises(ValueError, match="zh\\(2, 3\\)"):
        lstm_step_forward(x, h, c, Wx, Wh, b, zh=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="zc=None must be in \\[0, 1\\], got 1.2"):
        lstm_step_forward(x, h, c, Wx, Wh, b, p_c=1.2)
    params = dict(Wx=Wx, Wh=Wh, b=b)
    with pytest.raises(ValueError, match="xs"):
        lstm_forward(x, h, c, params)
    with pytest.raises(ValueError, match="zc"):
        lstm_forward(np.zeros((2, 5, 3)), h, c, params, zc=np.zeros((2, 4, 4)))
