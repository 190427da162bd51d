"""Fused CuPy kernels against their plain twins (the same op with ``kernels.plain()``), and the
dispatch that chooses between them.

The comparisons run on a GPU (marker ``gpu``) and, without one, on ``cupy_emulator`` (the
kernels' CUDA bodies compiled as host C++); on the CPU we also check the switch and that every
kernel's CUDA source compiles with NVRTC (where its library can be loaded)."""
import os

import numpy as np
import pytest

from conftest import emulated_cupy
from minihart.backend import gpu_available
from minihart.gradcheck import rel_error
from minihart.gradcheck.cases import overlapping_pairs
from minihart.nn import activations as A
from minihart.nn import kernels
from minihart.nn.attention import filterbank_backward, filterbank_forward
from minihart.nn.conv import col2im, conv2d_backward, conv2d_forward, im2col, lrn_backward, lrn_forward
from minihart.nn.dfn import dynamic_conv_backward, dynamic_conv_forward
from minihart.nn.losses import (attention_loss_backward, attention_loss_forward, tracking_loss_backward,
                                tracking_loss_forward)
from minihart.nn.lstm import lstm_step_backward, lstm_step_forward, zoneout_masks


@pytest.fixture(params=[pytest.param("cupy", marks=pytest.mark.gpu), "emulated-cupy"])
def cp(request):
    """CuPy on a GPU, or (in CPU CI) ``cupy_emulator``: the kernels' CUDA bodies as host C++."""
    if request.param == "emulated-cupy":
        yield from emulated_cupy()
        return
    if not gpu_available():
        pytest.skip("CuPy with a CUDA GPU is not available")
    import cupy
    yield cupy


def both(fn):
    """``(fused, plain)`` results of ``fn()``, each flattened to a list of arrays."""
    def flat(out):
        if isinstance(out, (tuple, list)):
            return [a for o in out for a in flat(o)]
        return [out] if hasattr(out, "shape") else []
    fused = flat(fn())
    with kernels.plain():
        ref = flat(fn())
    assert len(fused) == len(ref) > 0
    return fused, ref


def assert_twins(fn, tol):
    fused, ref = both(fn)
    for f, r in zip(fused, ref):
        assert f.shape == r.shape and f.dtype == r.dtype
        assert rel_error(f, r) < tol, rel_error(f, r)


def _fusable_functions():
    """``{name: function}`` of every op function marked ``@fusable`` in the package."""
    import importlib
    import pkgutil

    import minihart
    from minihart.backend import fusable
    dispatch = fusable(lambda x: x).__code__  # every function that fusable wraps runs this code
    found = {}
    for info in pkgutil.walk_packages(minihart.__path__, "minihart."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, fn in vars(module).items():
            if getattr(fn, "__code__", None) is dispatch and fn.__module__ == info.name:
                found[name] = fn
    return found


def test_every_fused_kernel_replaces_a_fusable_function_of_the_same_signature():
    import inspect
    fusable = _fusable_functions()
    assert set(fusable) == set(kernels.FUSED), set(fusable) ^ set(kernels.FUSED)

    def params(fn):
        return [(p.name, p.default) for p in inspect.signature(fn).parameters.values()]
    for name, fn in fusable.items():
        assert params(kernels.FUSED[name]) == params(fn.__wrapped__), name


def test_the_dispatch_runs_the_kernel_on_cupy_arrays_only(emulator, monkeypatch):
    import cupy_emulator
    x = np.linspace(-3, 3, 12).reshape(3, 4)
    with cupy_emulator.count_launches() as fused:
        y = A.sigmoid(cupy_emulator.to_device(x))
    with kernels.plain(), cupy_emulator.count_launches() as plain:
        y_plain = A.sigmoid(cupy_emulator.to_device(x))
    assert fused[0] == 1 and plain[0] > 3, (fused[0], plain[0])  # one ElementwiseKernel against ufuncs
    assert type(y).__module__ == "cupy_emulator" and rel_error(y, y_plain) < 1e-15
    monkeypatch.setattr(kernels, "run", lambda *a, **k: pytest.fail("kernels.run reached with NumPy arrays"))
    assert rel_error(A.sigmoid(x), np.asarray(y_plain)) < 1e-15


def test_a_case_the_kernel_does_not_take_falls_back_to_the_plain_error(emulator):
    import cupy_emulator
    x = cupy_emulator.to_device(np.zeros((1, 1, 4, 4)))
    assert kernels.FUSED["im2col"](x, 3, 3, 2, 0) is NotImplemented
    with pytest.raises(ValueError, match="im2col: stride=2 does not divide"):
        im2col(x, 3, 3, 2, 0)


def test_minihart_fused_0_switches_the_kernels_off(emulator):
    """The environment variable, read when the kernels module is imported: in a fresh process
    on the emulator, sigmoid is one launch by default and the plain ufuncs with MINIHART_FUSED=0."""
    import subprocess
    import sys
    from pathlib import Path
    tests = Path(__file__).resolve().parent
    code = ("import numpy as np, cupy_emulator as ce\n"
            "from minihart.nn.activations import sigmoid\n"
            "with ce.installed():\n"
            "    with ce.count_launches() as n:\n"
            "        sigmoid(ce.to_device(np.ones(3)))\n"
            "print(n[0])\n")
    launches = {}
    for value in ("0", "1"):
        env = {**os.environ, "MINIHART_FUSED": value,
               "PYTHONPATH": os.pathsep.join([str(tests), str(tests.parent), os.environ.get("PYTHONPATH", "")])}
        res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        launches[value] = int(res.stdout)
    assert launches["1"] == 1 and launches["0"] > 3, launches


def test_kernel_sources_compile():
    """Every body in a harness that declares its parameters as ElementwiseKernel does."""
    pytest.importorskip("cupy")
    try:
        from cupy_backends.cuda.libs import nvrtc
        nvrtc.getVersion()
    except Exception as exc:  # no NVRTC library on this machine
        pytest.skip(f"NVRTC not loadable: {exc}")
    src = kernels.PREAMBLE + "template <typename T> struct Raw { T* p; " \
        "__device__ T& operator[](ptrdiff_t k) const { return p[k]; } };\n"
    for name, (ins, outs, body) in kernels.SPECS.items():
        args = []
        for spec, out in [(p, False) for p in ins.split(",")] + [(p, True) for p in outs.split(",")]:
            *kind, typ, var = spec.split()
            typ = "int" if typ == "int32" else typ
            args.append(f"Raw<{typ}> {var}" if kind else f"{typ}& {var}" if out else f"const {typ} {var}")
        src += f"template <typename T> __device__ void {name}_({', '.join(args)}, ptrdiff_t i) {{ {body}; }}\n"
        for t in ("float", "double"):
            src += f"template __device__ void {name}_<{t}>({', '.join(args).replace('T', t)}, ptrdiff_t);\n"
    prog = nvrtc.createProgram(src, "kernels.cu", (), ())
    try:
        nvrtc.compileProgram(prog, ("--std=c++14", "--gpu-architecture=compute_70"))
    except Exception:
        pytest.fail(nvrtc.getProgramLog(prog))


@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-6), (np.float64, 1e-13)])
def test_activations(cp, rng, dtype, tol):
    x = cp.asarray(rng.standard_normal((3, 5, 7)) * 3, dtype)
    dout = cp.asarray(rng.standard_normal((3, 5, 7)), dtype)
    for name in ("relu", "elu", "sigmoid", "tanh"):
        fwd, bwd = A.ACTIVATIONS[name]
        assert_twins(lambda: fwd(x)[0], tol)
        assert_twins(lambda: bwd(dout, fwd(x)[1]), tol)
    assert_twins(lambda: A.elu_backward(dout, A.elu_forward(x, 0.7)[1], 0.7), tol)


@pytest.mark.parametrize("masks", [True, False])
def test_lstm_step(cp, rng, masks):
    B, D, H = 4, 5, 6
    g = {k: cp.asarray(rng.standard_normal(s)) for k, s in
         dict(x=(B, D), h=(B, H), c=(B, H), Wx=(D, 4 * H), Wh=(H, 4 * H), b=(4 * H,), dh=(B, H), dc=(B, H)).items()}
    zh, zc = ((cp.asarray(zoneout_masks(rng, (B, H), 0.4), np.float64) for _ in range(2)) if masks
              else (None, None))

    def run():
        (h, c), cache = lstm_step_forward(g["x"], g["h"], g["c"], g["Wx"], g["Wh"], g["b"], zh, zc, 0.3, 0.2)
        return h, c, lstm_step_backward((g["dh"], g["dc"]), cache)
    assert_twins(run, 1e-12)


@pytest.mark.parametrize("k,stride,pad,groups", [(3, 1, 1, 1), (5, 2, 2, 2), (1, 1, 0, 1), (4, 3, 0, 1)])
def test_im2col_col2im_and_conv(cp, rng, k, stride, pad, groups):
    x = cp.asarray(rng.standard_normal((3, 4, 13, 7)))
    w = cp.asarray(rng.standard_normal((6, 4 // groups, k, k)))
    b = cp.asarray(rng.standard_normal(6))
    for batch_inner in (False, True):
        dcols = cp.asarray(rng.standard_normal(im2col(x, k, k, stride, pad, batch_inner).shape))
        assert_twins(lambda: im2col(x, k, k, stride, pad, batch_inner), 1e-15)
        assert_twins(lambda: col2im(dcols, x.shape, stride, pad, batch_inner), 1e-13)
    dout = cp.asarray(rng.standard_normal(conv2d_forward(x, w, b, stride, pad, groups)[0].shape))
    assert_twins(lambda: conv2d_backward(dout, conv2d_forward(x, w, b, stride, pad, groups)[1]), 1e-12)
    wd, bd = cp.asarray(rng.standard_normal((3, 2, 4, 3, 3))), cp.asarray(rng.standard_normal((3, 2)))
    dyn = cp.asarray(rng.standard_normal((3, 2, 13, 7)))
    assert_twins(lambda: dynamic_conv_backward(dyn, dynamic_conv_forward(x, wd, bd, 1)[1]), 1e-12)


def _box_case(rng, cp, dtype):
    a, b = overlapping_pairs(rng, (3, 4))
    a[0, 0, :2] += 40  # disjoint: the clip is active, no gradient
    a[1, 1] = b[1, 1]  # identical: IoU 1, ties everywhere
    a[2, 2, :2] = [-3.0, -2.0]  # partly outside the frame
    presence = np.ones((3, 4))
    presence[2, 3] = 0
    return (cp.asarray(v, dtype) for v in (a, b, presence))


@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-5), (np.float64, 1e-12)])
def test_lrn_and_filterbank(cp, rng, dtype, tol):
    """LRN over odd and even windows (AlexNet's beta and another), and filterbanks with strides
    below, inside and beyond the fitted range, one so small that sigma is clamped."""
    x = cp.asarray(rng.standard_normal((2, 7, 3, 4)) * 2, dtype)
    dout = cp.asarray(rng.standard_normal(x.shape), dtype)
    for size, beta in ((5, 0.75), (4, 0.6)):
        assert_twins(lambda: lrn_forward(x, size, 0.5, beta, 1.0), tol)
        assert_twins(lambda: lrn_backward(dout, lrn_forward(x, size, 0.5, beta, 1.0)[1]), tol)
    mu = cp.asarray([1.3, 4.2, -2.1, 30.0], dtype)
    gamma = cp.asarray([0.6, 2.7, 9.5, 0.01], dtype)
    dA = cp.asarray(rng.standard_normal((4, 5, 37)), dtype)
    assert_twins(lambda: filterbank_forward(mu, gamma, 5, 37), tol)
    assert_twins(lambda: filterbank_backward(dA, filterbank_forward(mu, gamma, 5, 37)[1]), tol)


@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-5), (np.float64, 1e-12)])
def test_iou_losses(cp, rng, dtype, tol):
    a, b, presence = _box_case(rng, cp, dtype)

    def tracking():
        loss, cache = tracking_loss_forward(a, b, presence)
        return loss, tracking_loss_backward(cp.asarray(0.7, dtype), cache)

    def attention():
        loss, cache = attention_loss_forward(a, b, presence, (15, 17))
        return loss, attention_loss_backward(cp.asarray(0.7, dtype), cache)
    assert_twins(tracking, tol)
    assert_twins(attention, tol)


@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-6), (np.float64, 1e-14)])
def test_optimizer_updates(cp, rng, dtype, tol):
    """Three steps of RMSProp and Adam, fused against plain (parameters and every slot)."""
    from minihart.optim import Adam, RMSProp
    start = rng.standard_normal((3, 5))
    grads = [cp.asarray(rng.standard_normal((3, 5)), dtype) for _ in range(3)]

    def run(opt):
        p = {"w": cp.asarray(start, dtype)}
        for g in grads:
            opt.step(p, {"w": g})
        return [p["w"]] + list(opt.state["w"].values())
    assert_twins(lambda: run(RMSProp(lr=0.1)), tol)
    assert_twins(lambda: run(Adam(lr=0.1)), tol)


def test_whole_model_fused_equals_plain(cp, rng):
    from minihart.model import backward, forward, init_params, sample_noise
    from test_bench import TINY, _inputs
    params = {k: cp.asarray(v, np.float64) for k, v in init_params(TINY, rng).items()}
    frames, boxes, presence = (cp.asarray(v) for v in _inputs(rng))
    noise = [{k: cp.asarray(v, np.float64) for k, v in n.items()} for n in sample_noise(TINY, rng, 2, 3)]

    def run():
        out, cache = forward(params, TINY, frames, boxes, presence, noise)
        grads = backward(cache)
        return [out["loss"], out["pred"]] + [grads[k] for k in sorted(grads)]
    assert_twins(run, 1e-11)


def test_a_tracking_step_launches_few_kernels(rng, emulator):
    """On a GPU, each kernel launch costs CuPy a few microseconds of host time, so a tracking
    step of single frames can only reach ~1,000 frames/s with about a hundred launches or fewer.
    Counted on the emulator for the kitti preset (an upper bound that fails if fusion is lost)."""
    import cupy_emulator
    from minihart.bench import make_batch
    from minihart.model import Tracker, init_params, preset
    cfg = preset("kitti")
    frames, boxes, _, _ = make_batch(cfg, 1, 3)
    tracker = Tracker(cupy_emulator.to_device(init_params(cfg, rng)), cfg)
    frames = cupy_emulator.to_device(frames)
    tracker.init(frames[:, 0], cupy_emulator.to_device(boxes[:, 0]))
    with cupy_emulator.count_launches() as launches:
        tracker.step(frames[:, 1])
    with kernels.plain(), cupy_emulator.count_launches() as plain:
        tracker.step(frames[:, 2])
    print("tracking step launches, fused and plain:", launches[0], plain[0])
    assert launches[0] <= 100 and 2 * launches[0] < plain[0], (launches[0], plain[0])  # 89 and 280 now


def test_a_training_step_launches_few_kernels(rng, emulator):
    """The same bound for training: forward through time, backward, clipping and the RMSProp
    update of the kitti preset (B = 1, T = 3), counted on the emulator."""
    import cupy_emulator
    from minihart.bench import make_batch
    from minihart.model import backward, forward, init_params, preset, sample_noise
    from minihart.optim import RMSProp, clip_by_global_norm
    cfg = preset("kitti")
    params = cupy_emulator.to_device(init_params(cfg, rng))
    frames, boxes, presence, _ = cupy_emulator.to_device(list(make_batch(cfg, 1, 3)))
    noise, opt = sample_noise(cfg, rng, 1, 3, emulator), RMSProp()

    def step():
        out, cache = forward(params, cfg, frames, boxes, presence, noise, check_boxes=False)
        opt.step(params, clip_by_global_norm(backward(cache), 1.0)[0])
    step()  # the optimiser's state exists
    with cupy_emulator.count_launches() as launches:
        step()
    with kernels.plain(), cupy_emulator.count_launches() as plain:
        step()
    print("training step launches, fused and plain:", launches[0], plain[0])
    assert launches[0] <= 1500 and 2 * launches[0] < plain[0], (launches[0], plain[0])  # 1,371 and 3,661 now
