"""The course kit: every exercise of every notebook ends in a check cell (minihart/course/checks.py).

* Each notebook runs top to bottom with its solutions (tutorials/solutions/, one section per
  exercise) in place of the exercise cells, and every check cell prints that it passed.
* Each check fails, with a message, on the stubs the notebooks are committed with and on a
  deliberately wrong answer.
"""
import os
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from minihart.course import checks
from minihart.course.checks import NotYet

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("[0-9][0-9]_*.ipynb"))
N_EXERCISES = 27
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


def test_there_are_27_exercises_and_every_check_is_used_once():
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
