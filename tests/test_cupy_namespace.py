"""Every array function minihart calls through ``xp`` must exist in CuPy (and NumPy).

CPU-only CI cannot run the GPU code path, so a name that exists only in NumPy (a typo, or a
function CuPy lacks) would first fail on a user's GPU. This scans the source with ``ast`` for
``xp.<name>`` and ``xp.<sub>.<name>`` (also ``get_array_module(...).<name>``) and looks each
chain up in the module. CuPy imports without a GPU, so this runs in CI.
"""
import ast
from pathlib import Path

import numpy as np
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "minihart"
ROOT_CALLS = {"get_array_module", "array_module"}


def _is_xp_root(node):
    if isinstance(node, ast.Name):
        return node.id == "xp"
    if isinstance(node, ast.Call):
        f = node.func
        return (f.id if isinstance(f, ast.Name) else getattr(f, "attr", None)) in ROOT_CALLS
    return False


def xp_chains(source, filename="<string>"):
    """``{("random", "standard_normal"): ["file:line", ...], ...}``: the longest attribute
    chain read from each ``xp`` root (``xp.linalg.norm`` gives ``("linalg", "norm")``)."""
    chains = {}
    tree = ast.parse(source, filename)
    inner = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or id(node) in inner:
            continue  # only the outermost attribute of a chain
        names, base = [], node
        while isinstance(base, ast.Attribute):
            names.append(base.attr)
            base = base.value
        if _is_xp_root(base):
            chains.setdefault(tuple(reversed(names)), []).append(f"{filename}:{node.lineno}")
    return chains


def package_chains():
    chains = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for chain, where in xp_chains(path.read_text(), str(path.relative_to(PACKAGE.parent))).items():
            chains.setdefault(chain, []).extend(where)
    return chains


def missing_in(module, chains):
    """The chains (each with where it is used) that ``module`` lacks."""
    missing = {}
    for chain, where in chains.items():
        obj = module
        for i, name in enumerate(chain):
            if not hasattr(obj, name):
                missing[".".join(chain[:i + 1])] = where[:3]
                break
            obj = getattr(obj, name)
    return missing


def test_scanner_finds_every_form():
    src = ("def f(x, y):\n"
           "    xp = get_array_module(x)\n"
           "    a = xp.random.standard_normal(3) + xp.linalg.norm(x)\n"
           "    xp.add.at(a, [0], 1)\n"
           "    b = get_array_module(y).zeros(3).reshape(3, 1)\n"
           "    c = backend.array_module('cpu').float32\n"
           "    return xp.where(a > 0, xp.exp(a), 0).sum() + np.foo + x.xp_like\n")
    assert set(xp_chains(src)) == {("random", "standard_normal"), ("linalg", "norm"), ("add", "at"),
                                   ("zeros",), ("float32",), ("where",), ("exp",)}


def test_scanner_reports_missing_names():
    chains = xp_chains("xp.zeros(1); xp.no_such_function(2); xp.linalg.no_such_norm(x)", "m.py")
    assert missing_in(np, chains) == {"no_such_function": ["m.py:1"], "linalg.no_such_norm": ["m.py:1"]}


def test_package_uses_xp():
    chains = package_chains()
    assert len(chains) > 10 and ("zeros",) in chains, sorted(chains)


def test_every_xp_name_exists_in_numpy():
    missing = missing_in(np, package_chains())
    assert not missing, f"not in numpy: {missing}"


def test_every_xp_name_exists_in_cupy():
    cupy = pytest.importorskip("cupy")
    missing = missing_in(cupy, package_chains())
    assert not missing, f"not in cupy {cupy.__version__}: {missing}"
