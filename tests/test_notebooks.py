"""The tutorials: every notebook is committed without outputs, cites the paper's equations and has
exercises; the index lists every notebook. (Running them, with their solutions and checks, is
tests/test_course.py.)"""
import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")  # as tests/test_course.py

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


def test_notebooks_and_solutions_import_minihart_as_installed():
    """``pip install -e .`` makes minihart importable: no notebook or solution patches sys.path.
    (They run top to bottom with their solutions in tests/test_course.py.)"""
    for path in NOTEBOOKS + SOLUTIONS:
        text = path.read_text()
        assert "sys.path" not in text, f"{path.name} patches sys.path"


def test_index_lists_every_notebook_and_links_the_readme():
    index = (TUTORIALS / "README.md").read_text()
    missing = [p.name for p in NOTEBOOKS if f"({p.name})" not in index]
    assert not missing, f"tutorials/README.md does not link {missing}"
    assert "](../README.md)" in index
    assert "tutorials/README.md" in (ROOT / "README.md").read_text(), "README.md must link the tutorials index"
