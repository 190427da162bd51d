"""The tutorials: every notebook runs top to bottom under MINIHART_FAST=1 (as CI runs it), is
committed without outputs, shows a picture and cites the paper's equations; the index lists every
notebook; every exercise solution runs."""
import re
import runpy
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("[0-9][0-9]_*.ipynb"))
SOLUTIONS = sorted((TUTORIALS / "solutions").glob("[0-9][0-9]_*.py"))


def _read(path):
    return nbformat.read(str(path), as_version=4)


def test_there_are_notebooks_and_solutions():
    assert len(NOTEBOOKS) >= 7, [p.name for p in NOTEBOOKS]
    assert {p.stem for p in SOLUTIONS} <= {p.stem for p in NOTEBOOKS}, "a solution file without its notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path):
    nb = _read(path)
    nbformat.validate(nb)
    dirty = [i for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and (c.outputs or c.execution_count is not None)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs; strip them before committing"
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert re.search(r"\(\d+\)", markdown), f"{path.name} cites no equation of the paper, like (2)"
    assert "Exercise" in markdown, f"{path.name} has no exercises"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, monkeypatch):
    monkeypatch.setenv("MINIHART_FAST", "1")  # the kernel inherits it: small sizes, few steps
    monkeypatch.setenv("MPLBACKEND", "agg")
    nb = _read(path)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(TUTORIALS)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    errors = [f"{o.ename}: {o.evalue}" for o in outputs if o.output_type == "error"]
    assert not errors, f"{path.name}: {errors}"  # also errors that do not stop execution
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{path.name} shows no picture"


def test_index_lists_every_notebook_and_links_the_readme():
    index = (TUTORIALS / "README.md").read_text()
    missing = [p.name for p in NOTEBOOKS if f"({p.name})" not in index]
    assert not missing, f"tutorials/README.md does not link {missing}"
    assert "](../README.md)" in index
    assert "tutorials/README.md" in (ROOT / "README.md").read_text(), "README.md must link the tutorials index"


@pytest.mark.slow  # some solutions train a model for a few seconds
@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_solution_runs(path, monkeypatch, capsys):
    monkeypatch.setenv("MINIHART_FAST", "1")
    runpy.run_path(str(path), run_name="__main__")
    assert "exercise" in capsys.readouterr().out
