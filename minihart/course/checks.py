"""The checks of the notebooks' exercises: the last cell of every exercise calls one.

``ex01_1(my_elu_backward)`` checks exercise 1 of notebook 01, and so on. A check prints
``Exercise 01.1 passed`` when the answer is right; otherwise it raises :class:`NotYet` with a
message that says what is wrong (which function, which argument's gradient, where the largest
error sits), so a notebook run top to bottom stops at the first exercise not yet solved.

The checks test what an answer must do, on inputs of their own: gradients against centred
differences (:func:`minihart.gradcheck.gradients`), values against minihart where minihart has
the op, and properties where it has not. ``tests/test_course.py`` runs every check on the
solutions (``tutorials/solutions/``) and on deliberately wrong answers.
"""
from __future__ import annotations

import numpy as np

from minihart.backend import asnumpy
from minihart.gradcheck import gradients
from minihart.gradcheck.kit import compare

TOL = 1e-7  # gradients against finite differences, float64: the "good" verdict of the --impl kit


class NotYet(AssertionError):
    """An exercise's answer is not right yet; the message says what is wrong."""


def _fail(ex, msg):
    raise NotYet(f"Exercise {ex}: {msg}")


def _passed(ex, msg=""):
    print(f"Exercise {ex} passed" + (f": {msg}" if msg else "."))


def _need(ex, **answers):
    """Every answer given: not None, and functions callable (a stub still holding None fails here)."""
    for name, value in answers.items():
        if value is None:
            _fail(ex, f"{name} is still None: write it in the exercise's cell and run that cell")


def _function(ex, **functions):
    _need(ex, **functions)
    for name, fn in functions.items():
        if not callable(fn):
            _fail(ex, f"{name} must be a function, got {type(fn).__name__}")


def _run(ex, name, fn, *args, **kwargs):
    """``fn(*args)``, with a message naming ``name`` if it is not written yet or raises."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        _fail(ex, f"{name} is not written yet (it raises NotImplementedError)")
    except NotYet:
        raise
    except Exception as exc:  # the student's code fails: say where, keep the traceback
        raise NotYet(f"Exercise {ex}: {name} raised {type(exc).__name__}: {exc}") from exc


def _close(ex, what, got, want, tol=1e-10):
    """``got`` equals ``want`` to ``tol`` (relative error, shapes checked), else a message."""
    if got is None:
        _fail(ex, f"{what} is None")
    err, where = compare(np.asarray(asnumpy(got), np.float64), np.asarray(want, np.float64))
    if not err <= tol:
        at = f", largest at index {where}" if isinstance(where, tuple) else f" ({where})" if where else ""
        _fail(ex, f"{what} is off: rel. error {err:.1e} > {tol:g}{at}")


def _gradients(ex, name, forward, backward, inputs, wrt=None, tol=TOL):
    """Every argument's gradient of ``backward`` against centred differences of ``forward``."""
    def fwd(**kw):
        return _run(ex, f"the forward of {name}", forward, **kw)

    def bwd(dout, cache):
        return _run(ex, f"the backward of {name}", backward, dout, cache)
    try:
        pairs = gradients(fwd, bwd, inputs, wrt=wrt)
    except ValueError as exc:  # a gradient of the wrong shape, or too few of them
        _fail(ex, f"{name}: {str(exc).removeprefix('check: ')}")
    for arg, (a, n) in pairs.items():
        err, where = compare(a, n)
        if not err <= tol:
            _fail(ex, f"{name}: the gradient of {arg!r} is wrong: rel. error {err:.1e} against finite "
                      f"differences (good: < {tol:g}), largest at index {where}")


def _rng(seed):
    return np.random.default_rng([2017, seed])  # streams of the checks' own, not the notebooks'


# ============================================================================= 01: arrays, gradcheck
def ex01_1(my_elu_backward):
    """``my_elu_backward(dout, cache)``: the gradient of ELU (alpha = 1), from ``cache.x``, ``cache.y``."""
    from minihart.nn.activations import elu_forward
    ex = "01.1"
    _function(ex, my_elu_backward=my_elu_backward)
    for seed, shape in ((1, (3, 4)), (2, (2, 3, 5))):
        x = 2 * _rng(seed).standard_normal(shape)
        x += 0.1 * np.sign(x)  # away from the kink at 0
        _gradients(ex, "my_elu_backward", elu_forward, my_elu_backward, {"x": x})
    _passed(ex, "the gradient of ELU agrees with finite differences")


def ex01_2(softplus_forward, softplus_backward):
    """``softplus_forward(x) -> (log(1 + e^x), cache)``, without overflow, and its backward."""
    ex = "01.2"
    _function(ex, softplus_forward=softplus_forward, softplus_backward=softplus_backward)
    x = np.linspace(-30, 30, 61) + 0.01
    out = _run(ex, "softplus_forward", softplus_forward, x)
    if not (isinstance(out, tuple) and len(out) == 2):
        _fail(ex, "softplus_forward must return (y, cache)")
    _close(ex, "softplus_forward(x)[0]", out[0], np.logaddexp(0, x), 1e-12)
    with np.errstate(over="raise", invalid="raise"):
        try:
            big = _run(ex, "softplus_forward", softplus_forward, np.array([1000.0, -1000.0]))[0]
        except NotYet as exc:
            if isinstance(exc.__cause__, FloatingPointError):
                _fail(ex, "softplus_forward overflows for x = 1000 (exp(1000) is inf in float64): compute "
                          "log(1 + e^x) without e^x of a large x, e.g. with xp.logaddexp(0, x)")
            raise
    _close(ex, "softplus_forward([1000, -1000])[0]", big, [1000.0, 0.0], 1e-12)
    _gradients(ex, "softplus", softplus_forward, softplus_backward, {"x": 5 * _rng(2).standard_normal((4, 5))})
    _passed(ex, "values, no overflow, gradient")


def ex01_3(best_h, float32_tol):
    """``best_h``: the step of smallest error of a float32 centred difference of the sigmoid;
    ``float32_tol``: the tolerance a float32 gradient check would need."""
    ex = "01.3"
    _need(ex, best_h=best_h, float32_tol=float32_tol)
    if not 1e-3 <= float(best_h) <= 5e-2:
        _fail(ex, f"best_h = {best_h:g}: in float32 (eps = 1.2e-7) the best step of a centred difference is "
                  "near eps^(1/3), about 5e-3: smaller steps lose digits to rounding, larger ones to the "
                  "truncation error h^2. Measure the error over the steps 1e-5 ... 1e-1")
    if not 1e-5 <= float(float32_tol) <= 1e-3:
        _fail(ex, f"float32_tol = {float32_tol:g}: the smallest relative error float32 reaches is about 1e-5 "
                  "(eps^(2/3) = 2.4e-5), so a float32 check needs a tolerance of 1e-5 to 1e-3, far above "
                  "float64's 1e-7")
    _passed(ex, f"best step {best_h:g}, tolerance {float32_tol:g}: hence gradient checks run in float64")


# ============================================================================= 02: attention
def _synthetic_frame(seed):
    from minihart.data.synthetic import knobs, sequence
    frames, boxes = sequence(seed, 1, (120, 160), 1, knobs("medium"))
    return frames[0].astype(np.float64), boxes[0].astype(np.float64)


def ex02_1(max_resize_difference):
    """``max_resize_difference(frame)``: for ``frame (1, 120, 160)`` cropped to 112 x 160, the
    largest difference between its 28 x 40 glimpse with the window ``a = [0, 0, 1, 1]`` and its
    4 x 4 block average."""
    from minihart.nn.attention import glimpse_forward
    ex = "02.1"
    _function(ex, max_resize_difference=max_resize_difference)
    for seed in (3, 11):
        frame, _ = _synthetic_frame(seed)
        x = frame[:, :112, :160][None]
        g, _ = glimpse_forward(x, np.array([[0.0, 0.0, 1.0, 1.0]]), (28, 40))
        want = np.abs(g[0, 0] - x[0, 0].reshape(28, 4, 40, 4).mean(axis=(1, 3))).max()
        got = _run(ex, "max_resize_difference", max_resize_difference, frame.copy())
        _close(ex, f"max_resize_difference of the synthetic frame {seed}", np.asarray(got, np.float64), want, 1e-6)
    _passed(ex, f"about {want:.3f} of an image of range 1: a Gaussian is no box filter")


def ex02_2(my_dmu):
    """``my_dmu(dA, A, z, sigma)``: the gradient of the first centre ``mu`` of a filterbank ``(B,)``."""
    from minihart.nn.attention import filterbank_backward, filterbank_forward
    ex = "02.2"
    _function(ex, my_dmu=my_dmu)
    for seed, (n_out, n_in) in ((1, (6, 25)), (2, (3, 40))):
        g = _rng(seed)
        mu, gamma = g.uniform(-3, 8, 3), g.uniform(0.5, 6, 3)
        A, cache = filterbank_forward(mu, gamma, n_out, n_in)
        dA = g.standard_normal(A.shape)
        got = _run(ex, "my_dmu", my_dmu, dA, A, cache.z, cache.sigma)
        _close(ex, "my_dmu(dA, A, z, sigma)", got, filterbank_backward(dA, cache)[0], 1e-9)
    _passed(ex, "the gradient of mu agrees with filterbank_backward")


def _window_loss(frame, target_window, windows):
    from minihart.nn.attention import box_to_attention, glimpse_forward
    x = frame[None]
    g_star, _ = glimpse_forward(x, box_to_attention(target_window[None], frame.shape[1:]), (28, 28))
    g, _ = glimpse_forward(np.repeat(x, len(windows), axis=0), box_to_attention(windows, frame.shape[1:]), (28, 28))
    return 0.5 * ((g - g_star) ** 2).sum(axis=(1, 2, 3))


def ex02_3(slide_losses, keeps_window_on_object):
    """``slide_losses(frame, target_window, xs)``: the loss ``0.5 ||g(a) - g*||^2`` (28 x 28
    glimpses) of the target window moved to each horizontal position ``xs``; and the equation
    number of HART's loss term that keeps the window on the object."""
    ex = "02.3"
    _function(ex, slide_losses=slide_losses)
    _need(ex, keeps_window_on_object=keeps_window_on_object)
    frame, box = _synthetic_frame(3)
    target = np.array([box[0] - 0.25 * box[2], box[1] - 0.25 * box[3], 1.5 * box[2], 1.5 * box[3]])
    xs = np.linspace(-target[3] / 2, 160 - target[3] / 2, 9)
    windows = np.tile(target, (len(xs), 1))
    windows[:, 1] = xs
    got = _run(ex, "slide_losses", slide_losses, frame.copy(), target.copy(), xs.copy())
    _close(ex, "slide_losses(frame, target_window, xs)", got, _window_loss(frame, target, windows), 1e-8)
    if str(keeps_window_on_object).strip("() ") != "11":
        _fail(ex, f"keeps_window_on_object = {keeps_window_on_object!r}: which equation of notebook 06 asks the "
                  "attention window to cover the object? (its number)")
    _passed(ex, "far from the object the loss is flat: the spatial attention loss (11) keeps the window near")


# ============================================================================= 03: convolution
def ex03_1(avgpool_forward, avgpool_backward):
    """``avgpool_forward(x, size, stride) -> (out, cache)`` with im2col, its backward with col2im."""
    ex = "03.1"
    _function(ex, avgpool_forward=avgpool_forward, avgpool_backward=avgpool_backward)
    x = _rng(1).standard_normal((2, 3, 7, 9))
    out = _run(ex, "avgpool_forward", avgpool_forward, x, 3, 2)
    if not (isinstance(out, tuple) and len(out) == 2):
        _fail(ex, "avgpool_forward must return (out, cache)")
    want = np.array([[[[x[n, c, 2 * r:2 * r + 3, 2 * s:2 * s + 3].mean() for s in range(4)] for r in range(3)]
                      for c in range(3)] for n in range(2)])
    _close(ex, "avgpool_forward(x, 3, 2)[0]", out[0], want, 1e-12)
    _gradients(ex, "avgpool", lambda x: avgpool_forward(x, 3, 2), avgpool_backward, {"x": x})
    _passed(ex, "values and gradient")


def ex03_2(conv2d_dw_naive):
    """``conv2d_dw_naive(x, dout, w_shape, stride, pad)``: the filter gradient by loops."""
    from minihart.nn.conv import conv2d_backward, conv2d_forward
    ex = "03.2"
    _function(ex, conv2d_dw_naive=conv2d_dw_naive)
    for seed, (stride, pad, w_shape) in ((1, (2, 1, (4, 3, 3, 3))), (2, (1, 0, (2, 3, 2, 3)))):
        g = _rng(seed)
        x, w = g.standard_normal((2, 3, 7, 5)), g.standard_normal(w_shape)
        out, cache = conv2d_forward(x, w, np.zeros(w_shape[0]), stride, pad)
        dout = g.standard_normal(out.shape)
        got = _run(ex, "conv2d_dw_naive", conv2d_dw_naive, x, dout, w_shape, stride, pad)
        _close(ex, f"conv2d_dw_naive with stride {stride}, pad {pad}", got, conv2d_backward(dout, cache)[1], 1e-10)
    _passed(ex, "the loops agree with conv2d_backward's dw")


def ex03_3(pool_output_size, pads_for_56):
    """``pool_output_size(H, size, stride, pad)``: the output size of a max-pool, or None where
    ``maxpool2d_forward`` refuses the sizes; ``pads_for_56``: the paddings (``0 <= pad <= 1``) with
    which a 3 x 3, stride-2 max-pool fits a 56 x 56 map."""
    from minihart.nn.conv import maxpool2d_forward
    ex = "03.3"
    _function(ex, pool_output_size=pool_output_size)
    _need(ex, pads_for_56=pads_for_56)
    for H in (13, 27, 55, 56, 9, 10):
        for size, stride in ((3, 2), (2, 2), (3, 1), (5, 3)):
            for pad in range(size // 2 + 1):
                try:
                    want = maxpool2d_forward(np.zeros((1, 1, H, H)), size, stride, pad)[0].shape[2]
                except ValueError:
                    want = None
                got = _run(ex, "pool_output_size", pool_output_size, H, size, stride, pad)
                if got != want:
                    _fail(ex, f"pool_output_size({H}, size={size}, stride={stride}, pad={pad}) = {got}, but "
                              f"maxpool2d_forward gives {want if want is not None else 'an error (it does not fit)'}")
    if sorted(pads_for_56) != []:
        _fail(ex, f"pads_for_56 = {pads_for_56}: 56 + 2 pad - 3 is odd for every pad, so stride 2 never fits")
    _passed(ex, "no padding fits 56; AlexNet's 55 -> 27 -> 13 are all odd")


# ============================================================================= 04: dynamic filters
def ex04_1(conv_as_dynamic, dw_as_static):
    """``conv_as_dynamic(x, w, b, pad)``: ``conv2d_forward(x, w, b, 1, pad)`` computed with
    ``dynamic_conv_forward``; ``dw_as_static(dw_dynamic)``: the static ``dw`` from the dynamic one."""
    from minihart.nn.conv import conv2d_backward, conv2d_forward
    from minihart.nn.dfn import dynamic_conv_backward, dynamic_conv_forward
    ex = "04.1"
    _function(ex, conv_as_dynamic=conv_as_dynamic, dw_as_static=dw_as_static)
    g = _rng(4)
    x, w, b = g.standard_normal((3, 4, 7, 9)), g.standard_normal((5, 4, 3, 3)), g.standard_normal(5)
    out, cache = conv2d_forward(x, w, b, 1, 1)
    _close(ex, "conv_as_dynamic(x, w, b, 1)", _run(ex, "conv_as_dynamic", conv_as_dynamic, x, w, b, 1), out, 1e-12)
    dout = g.standard_normal(out.shape)
    _, dyn_cache = dynamic_conv_forward(x, np.broadcast_to(w, (3,) + w.shape).copy(), np.tile(b, (3, 1)), 1)
    dw_dyn = dynamic_conv_backward(dout, dyn_cache)[1]
    _close(ex, "dw_as_static(dw_dynamic)", _run(ex, "dw_as_static", dw_as_static, dw_dyn.copy()),
           conv2d_backward(dout, cache)[1], 1e-12)
    _passed(ex, "a static convolution is a dynamic one with the same kernels; its dw sums the samples'")


def ex04_2(noise_history, history):
    """``noise_history``: the losses of a dorsal stream trained with an uninformative ``alpha``,
    as many steps as the informed one's ``history``."""
    ex = "04.2"
    _need(ex, noise_history=noise_history)
    noise, informed = np.asarray(noise_history, np.float64), np.asarray(history, np.float64)
    if noise.ndim != 1 or len(noise) != len(informed):
        _fail(ex, f"noise_history has {noise.size} losses, the informed history {len(informed)}: train as many steps")
    if not np.isfinite(noise).all():
        _fail(ex, "noise_history holds non-finite losses")
    last = max(1, len(noise) // 5)
    n_end, i_end = noise[-last:].mean(), informed[-last:].mean()
    if not n_end > 1.5 * i_end:
        _fail(ex, f"the last losses without appearance ({n_end:.3f}) are not above the informed ones ({i_end:.3f}): "
                  "was alpha really replaced by noise, for the training and not only for the plot?")
    _passed(ex, f"loss {n_end:.3f} without appearance against {i_end:.3f} with it: the map cannot choose")


def ex04_3(dfn_counts, largest_readout, numbers_per_step):
    """For the ``kitti`` preset: ``dfn_counts = {"dfn1": ..., "dfn2": ...}``, the read-out with the
    most parameters (a key like ``"hid_W"``), and how many numbers the filter MLPs write per
    sample and time step (the kernels and biases of both layers)."""
    from minihart.model import count_params, init_params, preset
    ex = "04.3"
    _need(ex, dfn_counts=dfn_counts, largest_readout=largest_readout, numbers_per_step=numbers_per_step)
    cfg = preset("kitti")
    p = init_params(cfg, np.random.default_rng(0))
    counts = count_params(p)
    for block in ("dfn1", "dfn2"):
        if dict(dfn_counts).get(block) != counts[block]:
            _fail(ex, f"dfn_counts[{block!r}] = {dict(dfn_counts).get(block)}: count the kitti preset's parameters "
                      "whose names start with that block")
    sizes = {key: sum(p[f"dfn{i}.{key}"].size for i in (1, 2)) for key in ("hid_W", "ker_W", "bias_W")}
    if largest_readout != max(sizes, key=sizes.get):
        _fail(ex, f"largest_readout = {largest_readout!r}: compare the sizes of hid_W, ker_W and bias_W")
    written = sum(p[f"dfn{i}.ker_b"].size + p[f"dfn{i}.bias_b"].size for i in (1, 2))
    if numbers_per_step != written:
        _fail(ex, f"numbers_per_step = {numbers_per_step}: the MLPs write every kernel weight and bias of both "
                  "layers, one read-out unit each")
    _passed(ex, f"dfn1 {counts['dfn1']:,}, dfn2 {counts['dfn2']:,}; {written:,} numbers per sample and step")


# ============================================================================= 05: LSTM, zoneout
def _broken_steps():
    """LSTM steps with one thing wrong each, for a test written by the student to catch."""
    from minihart.nn.lstm import lstm_step_backward, lstm_step_forward

    def forward_ignores_zh(x, h_prev, c_prev, Wx, Wh, b, zh=None, zc=None, p_h=0.0, p_c=0.0):
        return lstm_step_forward(x, h_prev, c_prev, Wx, Wh, b, None, zc, p_h, p_c)

    def backward_drops_dh(dout, cache):
        dx, dh, dc, dWx, dWh, db = lstm_step_backward(dout, cache)
        return dx, 0 * dh, dc, dWx, dWh, db

    def backward_leaks_into_weights(dout, cache):
        dx, dh, dc, dWx, dWh, db = lstm_step_backward(dout, cache)
        return dx, dh, dc, dWx + 1e-3, dWh, db
    return {"a forward that ignores the mask zh": (forward_ignores_zh, lstm_step_backward),
            "a backward that drops dh": (lstm_step_forward, backward_drops_dh),
            "a backward with non-zero dWx": (lstm_step_forward, backward_leaks_into_weights)}


def ex05_1(full_zoneout_holds):
    """``full_zoneout_holds(step_forward, step_backward) -> bool``: True when, with every zoneout
    mask 1, the step returns ``h_prev, c_prev`` exactly and its backward passes ``dh, dc`` on to
    ``dh_prev, dc_prev`` unchanged, with zero gradients for ``x`` and the weights."""
    from minihart.nn.lstm import lstm_step_backward, lstm_step_forward
    ex = "05.1"
    _function(ex, full_zoneout_holds=full_zoneout_holds)
    if _run(ex, "full_zoneout_holds", full_zoneout_holds, lstm_step_forward, lstm_step_backward) is not True:
        _fail(ex, "full_zoneout_holds(lstm_step_forward, lstm_step_backward) is not True, but minihart's step "
                  "keeps its state with masks of ones")
    for what, (fwd, bwd) in _broken_steps().items():
        if _run(ex, "full_zoneout_holds", full_zoneout_holds, fwd, bwd) is not False:
            _fail(ex, f"full_zoneout_holds does not catch {what}: test the forward's h and c, and every gradient")
    _passed(ex, "your test passes minihart's step and catches three broken ones")


def ex05_2(rnn_step_forward, rnn_step_backward):
    """``rnn_step_forward(x, h_prev, Wx, Wh, b) -> (h, cache)`` with ``h = tanh(x Wx + h_prev Wh + b)``,
    and ``rnn_step_backward(dh, cache) -> (dx, dh_prev, dWx, dWh, db)``."""
    ex = "05.2"
    _function(ex, rnn_step_forward=rnn_step_forward, rnn_step_backward=rnn_step_backward)
    g = _rng(3)
    inputs = dict(x=g.standard_normal((3, 4)), h_prev=g.standard_normal((3, 5)), Wx=g.standard_normal((4, 5)),
                  Wh=g.standard_normal((5, 5)), b=g.standard_normal(5))
    out = _run(ex, "rnn_step_forward", rnn_step_forward, **inputs)
    if not (isinstance(out, tuple) and len(out) == 2):
        _fail(ex, "rnn_step_forward must return (h, cache)")
    want = np.tanh(inputs["x"] @ inputs["Wx"] + inputs["h_prev"] @ inputs["Wh"] + inputs["b"])
    _close(ex, "rnn_step_forward(...)[0]", out[0], want, 1e-12)
    _gradients(ex, "the RNN step", rnn_step_forward, rnn_step_backward, inputs)
    _passed(ex, "value and every gradient")


def _truncated_reference(dhs, steps, k):
    from minihart.nn.lstm import lstm_step_backward
    total = 0
    for t in range(dhs.shape[1]):  # the loss of step t reaches steps t, t-1, ..., t-k+1
        dh, dc = dhs[:, t], np.zeros_like(dhs[:, t])
        for s in range(t, max(t - k, -1), -1):
            _, dh, dc, dWx, _, _ = lstm_step_backward((dh, dc), steps[s])
            total = total + dWx
    return total


def ex05_3(truncated_dWx):
    """``truncated_dWx(dhs, cache, k)``: ``dWx`` when the loss of each step flows back through at
    most ``k`` steps (``cache``: the list of step caches of :func:`minihart.course.lstm.lstm_forward`)."""
    from minihart.course.lstm import lstm_backward, lstm_forward
    from minihart.nn.lstm import init_lstm_params
    ex = "05.3"
    _function(ex, truncated_dWx=truncated_dWx)
    g = _rng(5)
    T = 7
    p = {key: v.astype(np.float64) for key, v in init_lstm_params(g, 3, 6).items()}
    (hs, _), cache = lstm_forward(g.standard_normal((2, T, 3)), np.zeros((2, 6)), np.zeros((2, 6)), p)
    dhs = g.standard_normal(hs.shape)
    for k in (1, 3):
        got = _run(ex, "truncated_dWx", truncated_dWx, dhs, cache, k)
        _close(ex, f"truncated_dWx(dhs, cache, k={k})", got, _truncated_reference(dhs, cache, k), 1e-10)
    got = _run(ex, "truncated_dWx", truncated_dWx, dhs, cache, T)
    _close(ex, f"truncated_dWx with k = T = {T} (no truncation)", got, lstm_backward(dhs, cache)[3], 1e-10)
    _passed(ex, "k = 1, 3 and the full BPTT at k = T")


# ============================================================================= 06: losses
def ex06_1(l1_forward, l1_backward):
    """``l1_forward(pred, target) -> (loss, cache)``: the mean over boxes of ``sum_k |pred_k - target_k|``."""
    ex = "06.1"
    _function(ex, l1_forward=l1_forward, l1_backward=l1_backward)
    g = _rng(1)
    target = g.uniform(10, 50, (2, 5, 4))
    pred = target + g.choice([-1, 1], target.shape) * g.uniform(0.5, 3, target.shape)
    out = _run(ex, "l1_forward", l1_forward, pred, target)
    if not (isinstance(out, tuple) and len(out) == 2):
        _fail(ex, "l1_forward must return (loss, cache)")
    _close(ex, "l1_forward(pred, target)[0] (the mean over the 10 boxes of the sum over their 4 numbers)",
           out[0], np.abs(pred - target).sum(axis=-1).mean(), 1e-12)
    _gradients(ex, "l1", lambda pred: l1_forward(pred, target), l1_backward, {"pred": pred})
    _passed(ex, "value and gradient; unlike the IoU it is not scale invariant")


def ex06_2(printed_forward, printed_backward):
    """``printed_forward(terms, v) -> (total, cache)`` with the regulariser as printed in the
    paper, ``total = sum lambda L + sum log lambda`` (``lambda = v^2 + 1e-8``), and its backward
    ``-> (dterms, dv)``."""
    ex = "06.2"
    _function(ex, printed_forward=printed_forward, printed_backward=printed_backward)
    g = _rng(6)
    terms, v = g.uniform(0.2, 3, 3), g.uniform(0.5, 1.5, 3)
    out = _run(ex, "printed_forward", printed_forward, terms, v)
    if not (isinstance(out, tuple) and len(out) == 2):
        _fail(ex, "printed_forward must return (total, cache)")
    lam = v * v + 1e-8
    _close(ex, "printed_forward(terms, v)[0]", out[0], (lam * terms).sum() + np.log(lam).sum(), 1e-12)
    _gradients(ex, "the printed regulariser", printed_forward, printed_backward, {"terms": terms, "v": v})
    _passed(ex, "d total / d v = 2 v (L + 1 / lambda) > 0 everywhere: every weight falls towards 0")


def ex06_3(q_plain, q_balanced):
    """For a map whose object covers 10 % of the cells, the constant predictions ``s = q`` that
    minimise the plain mean cross-entropy and the balanced loss of ``appearance_loss_forward``."""
    ex = "06.3"
    _need(ex, q_plain=q_plain, q_balanced=q_balanced)
    if abs(float(q_plain) - 0.1) > 0.02:
        _fail(ex, f"q_plain = {q_plain:g}: the plain cross-entropy of a constant q is smallest at the fraction of "
                  "object cells")
    if abs(float(q_balanced) - 0.5) > 0.02:
        _fail(ex, f"q_balanced = {q_balanced:g}: with the classes balanced, object and background weigh the same")
    _passed(ex, "a lazy constant map wins the plain loss (q = 0.1); balancing takes that away (q = 0.5)")


# ============================================================================= 07: assembling HART
def _tiny():
    from minihart.model import init_params, preset
    cfg = preset("synthetic", glimpse_hw=(9, 11), v1=(("conv", 4, 3, 1, 1, 1), ("elu",), ("conv", 4, 3, 2, 1, 2),
                                                      ("elu",)),
                 ventral_maps=2, dfn=((1, 3), (3, 2)), n_units=6, mask_features=3, zoneout=0.3, image_hw=(24, 32))
    return cfg, {k: v.astype(np.float64) for k, v in init_params(cfg, _rng(7)).items()}


def _hook(ex, name, hook, params, grads):
    """Run a hook ``hook(params, grads)`` on copies; returns them."""
    params = {k: v.copy() for k, v in params.items()}
    grads = None if grads is None else {k: v.copy() for k, v in grads.items()}
    _run(ex, name, hook, params, grads)
    return params, grads


def _check_hook(ex, name, hook, key, set_to, keep):
    """The hook sets ``params[key][set_to]`` (a fresh model, grads None) and zeroes the same
    entries of ``grads[key]``, and nothing else."""
    _, p = _tiny()
    g = {k: np.full_like(v, 0.5) for k, v in p.items()}
    p1, _ = _hook(ex, name, hook, p, None)
    changed = [k for k in p if not np.array_equal(p1[k][keep] if k == key else p1[k], p[k][keep] if k == key else p[k])]
    if changed:
        _fail(ex, f"{name}(params, None) changes {changed}, which must stay as they are")
    if not np.allclose(p1[key][set_to], {"loss_v": 1e-3, "att_gain": 0.0}[key]):
        _fail(ex, f"{name}(params, None) leaves params[{key!r}] = {p1[key]}")
    _, g1 = _hook(ex, name, hook, p, g)
    if g1 is None or np.any(g1[key][set_to] != 0):
        _fail(ex, f"{name}(params, grads) must zero grads[{key!r}]{'' if key == 'att_gain' else '[1:]'} before "
                  "every optimiser step, or the optimiser moves those weights again")
    changed = [k for k in g if not np.array_equal(g1[k][keep] if k == key else g1[k], g[k][keep] if k == key else g[k])]
    if changed:
        _fail(ex, f"{name}(params, grads) changes the gradients of {changed} too")
    return p1


def ex07_1(no_auxiliary_losses):
    """``no_auxiliary_losses(params, grads)``: with ``grads`` None (a fresh model) set
    ``params["loss_v"][1:] = 1e-3``; otherwise zero ``grads["loss_v"][1:]``."""
    ex = "07.1"
    _function(ex, no_auxiliary_losses=no_auxiliary_losses)
    _check_hook(ex, "no_auxiliary_losses", no_auxiliary_losses, "loss_v", slice(1, None), slice(0, 1))
    _passed(ex, "lambda_s and lambda_a stay near 0")


def ex07_2(frozen_attention):
    """``frozen_attention(params, grads)``: with ``grads`` None set ``params["att_gain"][:] = 0``;
    otherwise zero ``grads["att_gain"]``."""
    from minihart.model import forward
    ex = "07.2"
    _function(ex, frozen_attention=frozen_attention)
    p = _check_hook(ex, "frozen_attention", frozen_attention, "att_gain", slice(None), slice(0, 0))
    cfg, _ = _tiny()
    frames = _rng(8).random((1, 4, 1, 24, 32))
    boxes = np.tile([6.0, 8.0, 8.0, 10.0], (1, 4, 1))
    out, _ = forward(p, cfg, frames, boxes, np.ones((1, 4)))
    if not np.allclose(out["att"], out["att"][:, :1]):
        _fail(ex, "with your frozen_attention the window still moves")
    _passed(ex, "tanh(c) = 0 in eq. (7): the window stays where it started")


def ex07_3(broken_backward, broken_block):
    """``broken_backward(cache) -> grads``: minihart's ``backward`` with the gradient of the block
    ``broken_block`` (e.g. ``"lstm.Wh"``) dropped or scaled; the end-to-end check must catch it."""
    from minihart.gradcheck import check
    from minihart.model import backward, forward, sample_noise
    ex = "07.3"
    _function(ex, broken_backward=broken_backward)
    _need(ex, broken_block=broken_block)
    cfg, p = _tiny()
    if broken_block not in p:
        _fail(ex, f"broken_block = {broken_block!r} is not a parameter of the model; some are {sorted(p)[:6]}")
    g = _rng(9)
    frames = g.random((2, 3, 1, 24, 32))
    boxes = np.tile([6.0, 8.0, 8.0, 10.0], (2, 3, 1)) + g.uniform(-1, 1, (2, 3, 4))
    noise = sample_noise(cfg, g, 2, 3)
    _, cache = forward(p, cfg, frames, boxes, np.ones((2, 3)), noise)
    got, right = _run(ex, "broken_backward", broken_backward, cache), backward(cache)
    if not isinstance(got, dict) or set(got) != set(right):
        _fail(ex, "broken_backward must return a dict with a gradient for every parameter, as backward does")
    differ = [k for k in right if not np.allclose(got[k], right[k], rtol=1e-12, atol=0)]
    if differ != [broken_block]:
        _fail(ex, f"broken_backward differs from backward in {differ or 'no block'}; break {broken_block!r} only")

    def loss_forward(**q):
        out, c = forward(q, cfg, frames, boxes, np.ones((2, 3)), noise)
        return out["loss"], c
    err = check(loss_forward, lambda d, c: {k: d * v for k, v in broken_backward(c).items()}, p,
                wrt=[broken_block], max_elements=60, n_directions=3, h=1e-5)[broken_block]
    if not err > 1e-3:
        _fail(ex, f"the end-to-end check gives {broken_block!r} a rel. error of only {err:.1e}: break it more")
    _passed(ex, f"the check finds a rel. error of {err:.1e} on {broken_block!r} (the right backward: about 1e-9)")


# ============================================================================= 08: training
def ex08_1(iou_on_level, params, cfg):
    """``iou_on_level(params, cfg, level, n)``: the average IoU over 30 steps of ``n`` held-out
    synthetic sequences at difficulty ``level`` (``evaluate`` with ``max_sequences=n``)."""
    from minihart.data import make_dataset
    from minihart.evaluate import evaluate
    ex = "08.1"
    _function(ex, iou_on_level=iou_on_level)
    level, n = "hard", 4
    got = _run(ex, "iou_on_level", iou_on_level, params, cfg, level, n)
    test = make_dataset("synthetic", split="test", flavour="kth" if cfg.channels == 1 else "kitti",
                        frame_hw=cfg.image_hw, channels=cfg.channels, difficulty=level)
    want = evaluate(params, cfg, test, 30, batch_size=16, max_sequences=n)["mean_iou"]
    _close(ex, f"iou_on_level(params, cfg, {level!r}, {n})", np.float64(got), np.float64(want), 1e-9)
    _passed(ex, f"IoU {want:.3f} on {n} {level} sequences")


def ex08_2(lambda_and_target, run_dir):
    """``lambda_and_target(run_dir, term) -> (steps, lambdas, inverse_losses)``: from the run's
    ``metrics.csv``, the learned weight of ``term`` and ``1 / L`` of the same rows."""
    import csv
    import os
    ex = "08.2"
    _function(ex, lambda_and_target=lambda_and_target)
    got = {term: _run(ex, "lambda_and_target", lambda_and_target, run_dir, term)
           for term in ("tracking", "attention", "appearance")}
    with open(os.path.join(run_dir, "metrics.csv")) as f:
        rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    for term, out in got.items():
        if not (isinstance(out, tuple) and len(out) == 3):
            _fail(ex, "lambda_and_target must return (steps, lambdas, inverse_losses)")
        for what, value, want in zip(("steps", "lambdas", "inverse_losses"), out,
                                     ([r["step"] for r in rows], [r[f"lambda_{term}"] for r in rows],
                                      [1 / r[term] for r in rows])):
            _close(ex, f"the {what} of {term!r}", value, want, 1e-9)
    _passed(ex, "each lambda moves towards 1 / L, by about the learning rate per step")


def ex08_3(success_curve):
    """``success_curve(iou, scored) -> (success (21,), auc)``: the fraction of scored frames with
    an IoU above each threshold 0, 0.05, ..., 1, and its mean."""
    from minihart.evaluate import summarize
    ex = "08.3"
    _function(ex, success_curve=success_curve)
    g = _rng(10)
    for shape in ((5, 8), (3, 30)):
        iou, scored = g.random(shape), (g.random(shape) < 0.8).astype(float)
        scored[:, 0] = 0
        out = _run(ex, "success_curve", success_curve, iou, scored)
        if not (isinstance(out, tuple) and len(out) == 2):
            _fail(ex, "success_curve must return (success, auc)")
        ref = summarize(iou, scored)
        _close(ex, "the success curve", out[0], ref["success"], 1e-12)
        _close(ex, "the AUC", np.float64(out[1]), np.float64(ref["auc"]), 1e-12)
    _passed(ex, "the AUC is a Riemann sum of the integral of P(IoU > theta), which is E[IoU]")


# ============================================================================= 09: kitti
def ex09_1(paper_text_v1, paper_map_shape, grown_blocks):
    """For ``preset("kitti", v1=paper_text_v1)``: V1's feature map ``(C, h, w)`` and the set of
    parameter blocks that grow against the ``kitti`` preset."""
    from minihart.model import count_params, init_params, preset
    from minihart.model.params import v1_shapes
    ex = "09.1"
    _need(ex, paper_text_v1=paper_text_v1, paper_map_shape=paper_map_shape, grown_blocks=grown_blocks)
    paper = preset("kitti", v1=tuple(paper_text_v1))
    shape = v1_shapes(paper)[1]
    if tuple(paper_map_shape) != shape:
        _fail(ex, f"paper_map_shape = {tuple(paper_map_shape)}: V1 of the paper's text gives a different map "
                  "(v1_shapes)")
    ref, new = (count_params(init_params(c, np.random.default_rng(0))) for c in (preset("kitti"), paper))
    grown = {k for k in ref if k != "total" and new[k] > ref[k]}
    if set(grown_blocks) != grown:
        _fail(ex, f"grown_blocks = {sorted(grown_blocks)}: convolution weights do not depend on the map's size; "
                  "which layers read the whole flattened map?")
    _passed(ex, f"map {shape}; {sorted(grown)} grow with the map")


def ex09_2(grouped_as_halves):
    """``grouped_as_halves(x, w, b, pad)``: a convolution with two groups, as two ordinary
    convolutions on the halves of the channels, concatenated."""
    from minihart.nn.conv import conv2d_forward
    ex = "09.2"
    _function(ex, grouped_as_halves=grouped_as_halves)
    g = _rng(11)
    for C, F, k, pad in ((6, 4, 3, 1), (8, 10, 5, 2)):
        x, w, b = g.standard_normal((2, C, 9, 9)), g.standard_normal((F, C // 2, k, k)), g.standard_normal(F)
        got = _run(ex, "grouped_as_halves", grouped_as_halves, x, w, b, pad)
        _close(ex, f"grouped_as_halves for C = {C}, F = {F}", got, conv2d_forward(x, w, b, 1, pad, groups=2)[0], 1e-12)
    _passed(ex, "a grouped convolution is two convolutions side by side, with half the weights")


def ex09_3(glimpse_flop_share, dominant_part):
    """``glimpse_flop_share``: the glimpse's share of the FLOPs of one ``kitti`` tracking step
    (``frame_flops``); ``dominant_part``: ``"glimpse"``, ``"V1"`` or ``"the rest"``."""
    from minihart.model import preset
    from minihart.flops import frame_flops
    ex = "09.3"
    _need(ex, glimpse_flop_share=glimpse_flop_share, dominant_part=dominant_part)
    cfg = preset("kitti")
    f = frame_flops(cfg, cfg.image_hw)
    share = f["glimpse"] / (f["glimpse"] + f["step"])
    if abs(float(glimpse_flop_share) - share) > 0.01:
        _fail(ex, f"glimpse_flop_share = {glimpse_flop_share:.3f}: divide frame_flops' glimpse by glimpse + step")
    if str(dominant_part).lower() != "v1":
        _fail(ex, f"dominant_part = {dominant_part!r}: where do most of a step's FLOPs (and its time) go?")
    _passed(ex, f"the glimpse is {share:.0%} of the FLOPs; AlexNet's conv2 and conv3 are most of the rest")


# ============================================================================= 10: real footage
def ex10_1(sequence_scores):
    """``sequence_scores(pred, truth, presence) -> (avg_iou, precision20)``: over the frames where
    the target is present, the mean IoU and the fraction whose centres are at most 20 px apart;
    boxes ``[y, x, h, w]`` ``(N, 4)`` in pixels."""
    from minihart.scoring import score_sequence
    ex = "10.1"
    _function(ex, sequence_scores=sequence_scores)
    g = _rng(12)
    for n in (7, 40):
        truth = np.concatenate([g.uniform(0, 100, (n, 2)), g.uniform(10, 40, (n, 2))], axis=1)
        pred = truth + g.normal(0, 12, (n, 4)) * [1, 1, 0.3, 0.3]
        pred[:, 2:] = np.abs(pred[:, 2:]) + 1
        presence = (g.random(n) < 0.8).astype(float)
        presence[0] = 1
        out = _run(ex, "sequence_scores", sequence_scores, pred, truth, presence)
        if not (isinstance(out, tuple) and len(out) == 2):
            _fail(ex, "sequence_scores must return (avg_iou, precision20)")
        ref = score_sequence(pred, truth, presence)
        _close(ex, f"the average IoU ({n} frames)", np.float64(out[0]), np.float64(ref["avg_iou"]), 1e-9)
        _close(ex, f"the precision at 20 px ({n} frames)", np.float64(out[1]), np.float64(ref["precision20"]), 1e-9)
    _passed(ex, "these are the per-sequence numbers of the OTB toolkits; benchmarks average them over sequences")


def ex10_2(window_to_box):
    """``window_to_box(att, pred) -> (N,)``: per frame, the side of the attention window over the
    side of the predicted box, ``sqrt(area(att) / area(pred))`` (boxes ``[y, x, h, w]``)."""
    ex = "10.2"
    _function(ex, window_to_box=window_to_box)
    g = _rng(13)
    pred = np.concatenate([g.uniform(0, 50, (9, 2)), g.uniform(5, 20, (9, 2))], axis=1)
    ratio = g.uniform(0.8, 5, 9)
    att = pred.copy()
    att[:, 2] *= ratio * 1.3  # taller and narrower than the box, same area ratio
    att[:, 3] *= ratio / 1.3
    got = _run(ex, "window_to_box", window_to_box, att, pred)
    _close(ex, "window_to_box", got, ratio, 1e-9)
    _passed(ex, "a ratio that creeps up frame after frame is the drift that ends long sequences")
