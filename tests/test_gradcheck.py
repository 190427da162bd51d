"""Tests of minihart/gradcheck.py: the checker must pass right backwards and fail wrong ones,
on both of its paths (every element for small inputs, random directions for large ones)."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minihart.gradcheck import cases, check, rel_error

ROOT = Path(__file__).resolve().parents[1]
SMALL, LARGE = (3, 5), (30, 41)  # 15 <= max_elements=200 < 1230: the two paths of check()


@pytest.fixture
def rng():
    """Not seed 0: check() draws its upstream gradient from default_rng(0), and x == dout would
    make x.T @ dout symmetric, hiding a transposed gradient."""
    return np.random.default_rng(2017)


# A matmul y = x @ W and x * sin(x), with right and deliberately wrong backwards.
def matmul_forward(x, W):
    return x @ W, (x, W)


def matmul_backward(dy, cache):
    x, W = cache
    return dy @ W.T, x.T @ dy


def matmul_backward_transposed(dy, cache):  # dW transposed: same shape when W is square
    x, W = cache
    return dy @ W.T, (x.T @ dy).T


def matmul_backward_ones(dy, cache):  # assumes an upstream gradient of ones
    x, W = cache
    return np.ones_like(dy) @ W.T, x.T @ np.ones_like(dy)


def xsin_forward(x):
    return x * np.sin(x), x


def xsin_backward(dy, x):
    return dy * (np.sin(x) + x * np.cos(x))


def xsin_backward_missing_term(dy, x):
    return dy * np.sin(x)


def xsin_backward_off_by_1_01(dy, x):
    return 1.01 * xsin_backward(dy, x)


def xsin_backward_one_element_wrong(dy, x):
    g = xsin_backward(dy, x)
    g.flat[7] *= 2
    return g


@pytest.mark.parametrize("shape", [SMALL, LARGE])
def test_passes_right_backwards(rng, shape):
    x = rng.standard_normal(shape)
    assert check(xsin_forward, xsin_backward, dict(x=x))["x"] < 1e-7
    W = rng.standard_normal((shape[1], shape[1]))
    errs = check(matmul_forward, matmul_backward, dict(x=x, W=W))
    assert set(errs) == {"x", "W"} and max(errs.values()) < 1e-7


@pytest.mark.parametrize("shape", [SMALL, LARGE])
@pytest.mark.parametrize("wrong", [xsin_backward_missing_term, xsin_backward_off_by_1_01,
                                   xsin_backward_one_element_wrong])
def test_fails_wrong_elementwise_backwards(rng, shape, wrong):
    errs = check(xsin_forward, wrong, dict(x=rng.standard_normal(shape)))
    assert errs["x"] > 1e-4, errs


@pytest.mark.parametrize("shape", [SMALL, LARGE])
@pytest.mark.parametrize("wrong", [matmul_backward_transposed, matmul_backward_ones])
def test_fails_wrong_matmul_backwards(rng, shape, wrong):
    x, W = rng.standard_normal(shape), rng.standard_normal((shape[1], shape[1]))
    errs = check(matmul_forward, wrong, dict(x=x, W=W))
    assert errs["W"] > 1e-3, errs


def test_off_by_1_01_error_is_about_half_a_percent(rng):
    errs = check(xsin_forward, xsin_backward_off_by_1_01, dict(x=rng.standard_normal(SMALL)))
    assert errs["x"] == pytest.approx(0.01 / 2.01, rel=1e-4)


def test_multiple_outputs_and_dict_gradients(rng):
    def fwd(x, y):
        return (x * y, np.sin(x)), (x, y)

    def bwd(douts, cache, wrong=False):
        (da, db), (x, y) = douts, cache
        return {"x": da * y + (0 if wrong else db * np.cos(x)), "y": da * x}

    inputs = dict(x=rng.standard_normal(SMALL), y=rng.standard_normal(SMALL))
    assert max(check(fwd, bwd, inputs).values()) < 1e-8
    assert check(fwd, lambda d, c: bwd(d, c, wrong=True), inputs)["x"] > 1e-3


def test_float_inputs_are_checked_in_float64(rng):
    seen = []

    def fwd(x, n):
        seen.append(x.dtype)
        return x * n, None

    errs = check(fwd, lambda d, c: 3 * d, dict(x=rng.standard_normal(SMALL).astype(np.float32), n=3))
    assert set(errs) == {"x"} and errs["x"] < 1e-8  # the int n is not a differentiable input
    assert set(seen) == {np.dtype(np.float64)}


def test_same_seed_same_errors(rng):
    inputs = dict(x=rng.standard_normal(LARGE))
    assert (check(xsin_forward, xsin_backward_missing_term, inputs, seed=3)
            == check(xsin_forward, xsin_backward_missing_term, inputs, seed=3))


def test_wrt_selects_inputs_and_rejects_unknown_names(rng):
    x, W = rng.standard_normal(SMALL), rng.standard_normal((5, 5))
    assert set(check(matmul_forward, lambda d, c: matmul_backward(d, c)[1], dict(x=x, W=W), wrt=["W"])) == {"W"}
    with pytest.raises(ValueError, match="wrt name 'w'"):
        check(matmul_forward, matmul_backward, dict(x=x, W=W), wrt=["w"])
    with pytest.raises(ValueError, match="wrt name 'n'"):
        check(lambda x, n: (x * n, None), lambda d, c: d, dict(x=x, n=2), wrt=["n"])


def test_wrong_gradient_shape_is_an_error(rng):
    with pytest.raises(ValueError, match="gradient for 'x' has shape"):
        check(xsin_forward, lambda d, c: d[:, :2], dict(x=rng.standard_normal(SMALL)))


def test_rel_error_semantics():
    assert rel_error(np.array([1.0, -2.0]), np.array([1.0, -2.0])) == 0.0
    # max|a - b| / (max|a| + max|b|)
    assert rel_error(np.array([1.0, 2.0]), np.array([1.0, 2.02])) == pytest.approx(0.02 / 4.02)
    assert rel_error(np.array([0.0, 4.0]), np.array([1.0, 4.0])) == pytest.approx(1 / 8)
    assert rel_error(3.0, -3.0) == pytest.approx(1.0)  # opposite signs: the maximum, 1
    assert rel_error(np.zeros(3), np.full(3, 1e-12)) == pytest.approx(1e-4)  # floor of 1e-8
    assert rel_error(np.zeros(0), np.zeros(0)) == 0.0
    assert rel_error(np.float32(1.0), np.float32(1.0) + np.float32(1e-7)) < 1e-7  # cast to float64
    with pytest.raises(ValueError, match=r"shapes differ, \(2,\) vs \(3,\)"):
        rel_error(np.zeros(2), np.zeros(3))


def test_registered_cases_have_the_documented_form():
    assert {"affine", "conv2d", "conv2d_grouped", "maxpool2d", "lrn"} <= set(cases.CASES)
    row = cases.run_case("conv2d_grouped")
    assert row["passed"] and row["error"] < row["tol"] and "w(6, 2, 3, 3)" in row["shapes"]


def test_every_op_of_minihart_has_a_case():
    """Every ``<op>_forward`` with a ``<op>_backward`` in the op modules is checked by some case."""
    ops = {name[:-len("_forward")] for m in cases.OP_MODULES for name in vars(m)
           if name.endswith("_forward") and hasattr(m, name[:-len("_forward")] + "_backward")}
    assert ops == {op for op, _ in cases.CASES.values()}, ops ^ {op for op, _ in cases.CASES.values()}


def _run_gradcheck_cli(*args):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "minihart.gradcheck", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_command_runs_every_case_and_prints_a_table():
    res = _run_gradcheck_cli()
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split()[:3] == ["op", "rel.", "error"]
    assert lines[-1].endswith("passed, 0 failed")
    rows = {ln.split()[0]: ln.split() for ln in lines[1:-1]}
    assert {"conv2d", "conv2d_grouped", "maxpool2d", "lrn", "affine", "relu"} <= set(rows)
    assert all(r[3] == "pass" and float(r[1]) < float(r[2]) for r in rows.values())


def test_command_selects_ops_and_rejects_unknown_ones():
    res = _run_gradcheck_cli("lrn", "maxpool2d")
    assert res.returncode == 0 and [ln.split()[0] for ln in res.stdout.splitlines()[1:-1]] == ["lrn", "maxpool2d"]
    res = _run_gradcheck_cli("no_such_op")
    assert res.returncode == 2 and "unknown op" in res.stderr
    res = _run_gradcheck_cli("--seed", "-1", "lrn")  # was a NumPy traceback from default_rng
    assert res.returncode == 2 and "argument --seed: must be at least 0" in res.stderr


# ----------------------------------------------------------------------------- --impl: the kit
STUDENT = '''
import numpy as np
from minihart.nn.conv import conv2d_backward as _conv2d_backward, conv2d_forward as _conv2d_forward


def affine_forward(x, W, b):
    return x @ W + b, (x, W)


def affine_backward(dout, cache):
    x, W = cache
    x2, d2 = x.reshape(-1, x.shape[-1]), dout.reshape(-1, dout.shape[-1])
    return dout @ W.T, {dW}, d2.sum(axis=0)


def relu_forward(x):
    return {relu}, x


def relu_backward(dout, x):
    return dout * (x > 0)


def conv2d_forward(x, w, b, stride=1, pad=0, groups=1):
    return _conv2d_forward(x, w, b, stride, pad, groups)


def conv2d_backward(dout, cache):
    dx, dw, db = _conv2d_backward(dout, cache)
    return dx, dw, db * {db_scale}
'''


def _student(tmp_path, dW="x2.T @ d2", relu="np.maximum(x, 0)", db_scale="1.0"):
    path = tmp_path / "student.py"
    path.write_text(STUDENT.format(dW=dW, relu=relu, db_scale=db_scale))
    return str(path)


def _grade(capsys, *args):
    from minihart.gradcheck.__main__ import main
    rc = main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_impl_passes_right_ops_and_finds_them_by_name(tmp_path, capsys):
    rc, out, _ = _grade(capsys, "--impl", _student(tmp_path))
    assert rc == 0, out
    cases_run = {line.split()[0] for line in out.splitlines()[1:-1]}
    assert cases_run == {"affine", "relu", "conv2d", "conv2d_grouped"}  # every case of each op it defines
    assert out.splitlines()[-1] == "14 good, 0 suspicious, 0 wrong"


def test_impl_catches_a_broken_backward_and_names_the_argument_and_index(tmp_path, capsys):
    rc, out, _ = _grade(capsys, "--impl", _student(tmp_path, dW="x2.T @ d2 + (np.arange(x2.shape[1]) == 3)[:, None] "
                                                             "* (np.arange(d2.shape[1]) == 1)"), "affine")
    assert rc == 1
    row = next(line.split() for line in out.splitlines() if line.startswith("affine") and line.split()[1] == "W")
    assert row[-1] == "wrong" and "(3," in row and "1)" in row  # the one wrong element: W[3, 1]
    assert "affine: the gradient of 'W' is wrong" in out and "largest at index (3, 1)" in out
    assert all(line.split()[-1] == "good" for line in out.splitlines()[1:5] if line.split()[1] != "W")


def test_impl_calls_a_tiny_error_suspicious(tmp_path, capsys):
    rc, out, _ = _grade(capsys, "--impl", _student(tmp_path, db_scale="(1 + 1e-6)"), "conv2d")
    assert rc == 1
    rows = {tuple(line.split()[:2]): line.split()[-1] for line in out.splitlines()[1:-1] if line.startswith("conv2d")}
    assert rows[("conv2d", "b")] == rows[("conv2d_grouped", "b")] == "suspicious"
    assert rows[("conv2d", "w")] == rows[("conv2d", "x")] == "good"


def test_impl_catches_a_wrong_forward_whose_backward_matches_it(tmp_path, capsys):
    """relu as leaky identity: the backward is not its derivative, and the forward is not minihart's."""
    rc, out, _ = _grade(capsys, "--impl", _student(tmp_path, relu="np.maximum(x, 0) + 0.01 * x"), "relu")
    assert rc == 1
    verdicts = {line.split()[1]: line.split()[-1] for line in out.splitlines()[1:-1] if line.startswith("relu ")}
    assert verdicts == {"forward": "wrong", "x": "wrong"}
    assert "relu: the forward's output is wrong" in out


def test_impl_errors_name_what_is_missing(tmp_path, capsys):
    path = _student(tmp_path)
    rc, _, err = _grade(capsys, "--impl", path, "lstm_step")
    assert rc == 2 and "does not define lstm_step_forward and lstm_step_backward" in err
    rc, _, err = _grade(capsys, "--impl", path, "no_such_op")
    assert rc == 2 and "unknown op 'no_such_op'" in err
    rc, _, err = _grade(capsys, "--impl", str(tmp_path / "missing.py"))
    assert rc == 2 and "is not a file" in err
    (tmp_path / "empty.py").write_text("x = 1\n")
    rc, _, err = _grade(capsys, "--impl", str(tmp_path / "empty.py"))
    assert rc == 2 and "defines no <op>_forward and <op>_backward" in err
    (tmp_path / "broken.py").write_text("import nothing_like_this\n")
    rc, _, err = _grade(capsys, "--impl", str(tmp_path / "broken.py"))
    assert rc == 2 and "does not run: ModuleNotFoundError" in err


def test_impl_reports_an_op_that_raises(tmp_path, capsys):
    path = tmp_path / "raises.py"
    path.write_text("def affine_forward(x, W, b):\n    raise NotImplementedError('later')\n\n\n"
                    "def affine_backward(dout, cache):\n    pass\n")
    rc, out, _ = _grade(capsys, "--impl", str(path))
    assert rc == 1 and "affine: your affine_forward/affine_backward raised NotImplementedError: later" in out


def test_impl_names_a_gradient_of_the_wrong_shape(tmp_path, capsys):
    rc, out, _ = _grade(capsys, "--impl", _student(tmp_path, dW="(x2.T @ d2).T"), "affine")
    assert rc == 1 and "affine: gradient for 'W' has shape (4, 5), input has (5, 4)" in out


def test_impl_command_line(tmp_path):
    res = _run_gradcheck_cli("--impl", _student(tmp_path, dW="2 * x2.T @ d2"), "affine", "relu")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "affine: the gradient of 'W' is wrong" in res.stdout and "relu: " not in res.stdout
    assert res.stdout.splitlines()[-1] == "5 good, 0 suspicious, 1 wrong"
