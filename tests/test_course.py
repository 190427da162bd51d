"""The course kit: every exercise of every notebook ends in a check cell (minihart/course/checks.py).

* Each notebook runs top to bottom with its solutions (tutorials/solutions/, one section per
  exercise) in place of the exercise cells, and every check cell prints that it passed.
* Each check fails, with a message, on the stubs the notebooks are committed with and on a
  deliberately wrong answer.
"""
import os
import re
from pathlib import Path

import numpy as np
import pytest

from minihart.course import checks
from minihart.course.checks import NotYet

# the notebook tools come with `pip install -e .`; a bare GPU image that runs `pytest -m gpu`
# without them skips this module instead of failing to collect it
nbformat = pytest.importorskip("nbformat")
NotebookClient = pytest.importorskip("nbclient").NotebookClient

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("[0-9][0-9]_*.ipynb"))
N_EXERCISES = 29
CHECK_CALL = re.compile(r"^checks\.(ex(\d\d)_(\d+))\((.*)\)$", re.S)


def _cells(nb, tag):
    return [c for c in nb.cells if c.cell_type == "code" and tag in c.metadata.get("tags", [])]


def solution_sections(notebook: Path) -> list:
    """The ``# %% Exercise k`` sections of the notebook's solution file, in order."""
    text = (TUTORIALS / "solutions" / f"{notebook.stem}.py").read_text()
    parts = re.split(r"^# %% Exercise (\d+)\n", text, flags=re.M)
    numbers = [int(n) for n in parts[1::2]]
    assert numbers == list(range(1, len(numbers) + 1)), f"{notebook.stem}: sections {numbers}"
    return parts[2::2]


def _exercises(notebook: Path):
    """``[(exercise cell, check cell, check name)]`` of a notebook, checked for their layout."""
    nb = nbformat.read(str(notebook), as_version=4)
    pairs = []
    for i, c in enumerate(nb.cells):
        if "exercise" in c.metadata.get("tags", []):
            check = nb.cells[i + 1]
            assert "check" in check.metadata.get("tags", []), f"{notebook.name}: no check cell after exercise cell {i}"
            m = CHECK_CALL.match(check.source.strip())
            assert m, f"{notebook.name}: check cell {i + 1} must be one call checks.exNN_k(...), got {check.source!r}"
            assert m.group(2) == notebook.stem[:2] and int(m.group(3)) == len(pairs) + 1, m.group(1)
            pairs.append((c, check, m.group(1)))
    return nb, pairs


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_exercise_has_a_check_cell_and_a_solution_section(path):
    nb, pairs = _exercises(path)
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert len(pairs) == len(re.findall(r"\*\*Exercise \d+ —", markdown)) == len(solution_sections(path)) >= 2
    assert len(_cells(nb, "check")) == len(pairs)


def test_there_are_29_exercises_and_every_check_is_used_once():
    names = [name for path in NOTEBOOKS for _, _, name in _exercises(path)[1]]
    assert len(names) == N_EXERCISES and len(set(names)) == N_EXERCISES
    assert set(names) == {n for n in vars(checks) if re.fullmatch(r"ex\d\d_\d+", n)}


class _OrNone(dict):
    """Names of ``scope``, and None for the notebook's own variables that a check cell passes."""
    def __init__(self, scope):
        super().__init__()
        self.scope = scope

    def __missing__(self, key):
        return self.scope.get(key)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_check_fails_with_a_message_on_the_committed_stubs(path, capsys):
    for exercise, check, name in _exercises(path)[1]:
        scope = {"checks": checks}
        exec(exercise.source, scope)
        with pytest.raises(NotYet, match=rf"Exercise {name[2:4]}\.{name[5:]}: .*(None|not written yet)"):
            eval(check.source, scope, _OrNone(scope))
    assert "passed" not in capsys.readouterr().out


def _notebook_with_solutions(path):
    nb, pairs = _exercises(path)
    for (cell, _, _), section in zip(pairs, solution_sections(path)):
        cell.source = section.strip()
    return nb


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_with_its_solutions_and_every_check_passes(path, monkeypatch):
    """What CI runs for the tutorials: top to bottom under MINIHART_FAST=1 (small sizes, few steps)."""
    monkeypatch.setenv("MINIHART_FAST", "1")  # the kernel inherits it
    monkeypatch.setenv("MPLBACKEND", "agg")
    # an installed minihart (pip install -e .) needs no path; a bare checkout finds it here
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    nb = _notebook_with_solutions(path)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(TUTORIALS)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    errors = [f"{o.ename}: {o.evalue}" for o in outputs if o.output_type == "error"]
    assert not errors, f"{path.name}: {errors}"
    for _, check, name in _exercises(path)[1]:
        cell = next(c for c in nb.cells if c.source == check.source)
        text = "".join(o.get("text", "") for o in cell.outputs)
        assert f"Exercise {name[2:4]}.{name[5:]} passed" in text, f"{path.name}: {name} printed {text!r}"
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{path.name} shows no picture"


# ----------------------------------------------------------------------------- wrong answers
def _wrong_answers(tmp_path):
    """``{check: (args, what its message must say)}``: one deliberately wrong answer per exercise."""
    from minihart.model import init_params, preset
    from minihart.model.config import ALEXNET_V1
    from minihart.nn.conv import col2im, conv2d_forward, im2col

    def avgpool_forward(x, size, stride):
        return im2col(x, size, size, stride, 0).mean(axis=(2, 3)), (x.shape, size, stride)

    def avgpool_backward_unscaled(dout, cache):  # forgets the 1 / size^2
        (n, c, ho, wo), (x_shape, k, stride) = dout.shape, cache
        return col2im(np.ascontiguousarray(np.broadcast_to(dout[:, :, None, None], (n, c, k, k, ho, wo))),
                      x_shape, stride, 0)

    def rnn_forward(x, h_prev, Wx, Wh, b):
        h = np.tanh(x @ Wx + h_prev @ Wh + b)
        return h, (x, h_prev, Wx, Wh, h)

    def rnn_backward_no_tanh(dh, cache):  # drops tanh' = 1 - h^2
        x, h_prev, Wx, Wh, h = cache
        return dh @ Wx.T, dh @ Wh.T, x.T @ dh, h_prev.T @ dh, dh.sum(axis=0)

    def naive_conv_dw_no_stride(x, dout, w_shape, stride, pad):  # ignores the stride
        xpad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
        Ho, Wo = dout.shape[2:]
        return np.array([[[[np.sum(dout[:, f] * xpad[:, c, i:i + Ho, j:j + Wo]) for j in range(w_shape[3])]
                           for i in range(w_shape[2])] for c in range(w_shape[1])] for f in range(w_shape[0])])

    def truncated_one_step_too_many(dhs, cache, k):
        from minihart.nn.lstm import lstm_step_backward
        total = 0
        for t in range(dhs.shape[1]):
            dh, dc = dhs[:, t], np.zeros_like(dhs[:, t])
            for s in range(t, max(t - k - 1, -1), -1):
                _, dh, dc, dWx, _, _ = lstm_step_backward((dh, dc), cache[s])
                total = total + dWx
        return total

    def printed_forward_reference_sign(terms, v):  # minihart's sign, not the paper's
        lam = v * v + 1e-8
        return (lam * terms).sum() - np.log(lam).sum(), (terms, v, lam)

    def slide_without_half_factor(frame, target_window, xs):
        from minihart.course.checks import _window_loss
        windows = np.tile(target_window, (len(xs), 1))
        windows[:, 1] = xs
        return 2 * _window_loss(frame, target_window, windows)

    def hook_all_weights(params, grads):  # also freezes lambda_t
        if grads is None:
            params["loss_v"][:] = 1e-3
        else:
            grads["loss_v"][:] = 0

    def hook_params_only(params, grads):  # forgets the gradient: the optimiser moves c again
        if grads is None:
            params["att_gain"][:] = 0

    def not_broken(cache):
        from minihart.model import backward
        return backward(cache)

    def grouped_halves_swapped(x, w, b, pad):  # each half of the filters on the wrong half of the channels
        C, F = x.shape[1], w.shape[0]
        return np.concatenate([conv2d_forward(x[:, (1 - g) * C // 2:(2 - g) * C // 2], w[g * F // 2:(g + 1) * F // 2],
                                              b[g * F // 2:(g + 1) * F // 2], 1, pad)[0] for g in range(2)], axis=1)

    def corners_as_centres(pred, truth, presence):  # the distance of the top-left corners, not the centres
        from minihart.boxes import iou
        keep = presence > 0
        return iou(pred, truth)[keep].mean(), (np.hypot(*(pred - truth)[keep, :2].T) <= 20).mean()

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.csv").write_text("step,tracking,attention,appearance,lambda_tracking,lambda_attention,"
                                         "lambda_appearance\n10,2.0,0.5,0.7,1.0,1.0,1.0\n20,1.5,0.4,0.6,1.1,1.0,1.1\n")
    cfg = preset("synthetic")
    params = init_params(cfg, np.random.default_rng(0))
    paper_text_v1 = (("conv", 96, 11, 1, 5, 1), ("relu",), ("lrn",), ("pool", 2, 2)) + ALEXNET_V1[3:]
    return {
        "ex01_1": ((lambda dout, cache: dout * (cache.x > 0),), "the gradient of 'x' is wrong.*largest at index"),
        "ex01_2": ((lambda x: (np.log(1 + np.exp(x)), x), lambda dout, x: dout / (1 + np.exp(-x))), "overflows"),
        "ex01_3": ((1e-6, 1e-7), "best_h = 1e-06"),
        "ex02_1": ((lambda frame: 0.0,), "max_resize_difference .* is off"),
        "ex02_2": ((lambda dA, A, z, sigma: ((A * dA * z).sum(axis=2) / sigma[:, None]).sum(axis=1),), "my_dmu"),
        "ex02_3": ((slide_without_half_factor, 11), "slide_losses.* is off"),
        "ex03_1": ((avgpool_forward, avgpool_backward_unscaled), "the gradient of 'x' is wrong"),
        "ex03_2": ((naive_conv_dw_no_stride,), "conv2d_dw_naive with stride 2, pad 1 is off"),
        "ex03_3": ((lambda H, size, stride, pad: (H + 2 * pad - size) // stride + 1, []), "maxpool2d_forward gives"),
        "ex04_1": ((lambda x, w, b, pad: conv2d_forward(x, w, b, 1, pad)[0], lambda dw: dw.mean(axis=0)),
                   "dw_as_static"),
        "ex04_2": (([0.2] * 50, [0.21] * 50), "not above the informed ones"),
        "ex04_3": (({"dfn1": 204_525, "dfn2": 33_330}, "hid_W", 2_155), "largest_readout"),
        "ex05_1": ((lambda step_forward, step_backward: True,), "does not catch"),
        "ex05_2": ((rnn_forward, rnn_backward_no_tanh), "the gradient of 'x' is wrong"),
        "ex05_3": ((truncated_one_step_too_many,), r"truncated_dWx\(dhs, cache, k=1\) is off"),
        "ex06_1": ((lambda pred, target: (np.abs(pred - target).mean(), np.sign(pred - target)),
                    lambda dloss, s: dloss * s / s.size), "the mean over the 10 boxes"),
        "ex06_2": ((printed_forward_reference_sign, lambda d, c: (d * c[2], d * 2 * c[1] * (c[0] - 1 / c[2]))),
                   r"printed_forward\(terms, v\)\[0\] is off"),
        "ex06_3": ((0.5, 0.5), "q_plain = 0.5"),
        "ex07_1": ((hook_all_weights,), "changes"),
        "ex07_2": ((hook_params_only,), "must zero grads"),
        "ex07_3": ((not_broken, "lstm.Wh"), "differs from backward in no block"),
        "ex08_1": ((lambda params, cfg, level, n: 0.5, params, cfg), "iou_on_level.* is off"),
        "ex08_2": ((lambda run_dir, term: ([10.0, 20.0], [1.0, 1.0], [2.0, 1.5]), str(run_dir)), "is off"),
        "ex08_3": ((lambda iou, scored: (np.array([(iou > th).mean() for th in np.linspace(0, 1, 21)]), 0.5),),
                   "the success curve is off"),
        "ex09_1": ((paper_text_v1, (384, 28, 28), {"v1", "feat"}), "grown_blocks"),
        "ex09_2": ((grouped_halves_swapped,), "grouped_as_halves for C = 6"),
        "ex09_3": ((0.08, "glimpse"), "dominant_part"),
        "ex10_1": ((corners_as_centres,), "the precision at 20 px"),
        "ex10_2": ((lambda att, pred: att[:, 2] / pred[:, 2],), "window_to_box is off"),
    }


def test_every_check_fails_on_a_deliberately_wrong_answer_with_a_message(tmp_path, capsys):
    wrong = _wrong_answers(tmp_path)
    assert set(wrong) == {n for n in vars(checks) if re.fullmatch(r"ex\d\d_\d+", n)}
    for name, (args, says) in wrong.items():
        with pytest.raises(NotYet, match=rf"^Exercise {name[2:4]}\.{name[5:]}: .*{says}"):
            getattr(checks, name)(*args)
    assert "passed" not in capsys.readouterr().out


def test_a_check_names_a_student_error_and_keeps_its_traceback():
    def raises(dout, cache):
        return dout[None] @ cache  # a shape error in the student's code
    with pytest.raises(NotYet, match="Exercise 01.1: the backward of my_elu_backward raised ValueError") as info:
        checks.ex01_1(raises)
    assert isinstance(info.value.__cause__, ValueError)
