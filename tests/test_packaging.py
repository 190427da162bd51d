"""Packaging: pyproject.toml installs what requirements.txt lists (never torch), the README's
install command is what CI runs, and an installed minihart works from any folder."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _pyproject():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _requirements(name):
    lines = (ROOT / name).read_text().splitlines()
    return [ln.split("#")[0].strip() for ln in lines if ln.split("#")[0].strip() and not ln.startswith("-r")]


def test_dependencies_are_requirements_txt_and_never_torch():
    project = _pyproject()["project"]
    assert project["name"] == "minihart" and project["requires-python"] == ">=3.10"
    assert project["dependencies"] == _requirements("requirements.txt")
    assert not any(re.match(r"torch\b", d) for d in project["dependencies"])
    extras = project["optional-dependencies"]
    assert extras["torch"] == ["torch==2.13.0"] and extras["gpu"] == _requirements("requirements-gpu.txt")


def test_the_notebook_tools_come_with_the_install():
    """tests/test_course.py and tests/test_notebooks.py skip without nbformat and nbclient (a bare
    GPU image running ``-m gpu``); where minihart is installed they must be there, or they would
    skip in CI unnoticed. jupyterlab and nbmake, both requirements, bring them."""
    import nbclient  # noqa: F401, PLC0415
    import nbformat  # noqa: F401, PLC0415


def test_ci_installs_the_way_the_readme_says():
    readme, ci = (ROOT / "README.md").read_text(), (ROOT / ".ci" / "run").read_text()
    start = readme[readme.index("## Start here"):readme.index("## The model")]
    commands = [ln.split("#")[0].strip() for ln in start.splitlines() if ln.startswith(("pip ", "python "))]
    assert commands == ["pip install -e .", "python -m minihart.train --dataset synthetic"]
    assert "python -m pip install --quiet -e .\n" in ci and "requirements.txt" not in ci.split("set -euo")[1]


def test_an_installed_minihart_runs_from_any_folder(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    probe = subprocess.run([sys.executable, "-c", "import minihart"], cwd=tmp_path, env=env, capture_output=True)
    if probe.returncode:
        pytest.skip("minihart is not installed in this environment (pip install -e .); CI installs it")
    res = subprocess.run([sys.executable, "-m", "minihart.train", "--help"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "usage: python -m minihart.train" in res.stdout, res.stderr
