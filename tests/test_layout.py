"""The shape of the package: the reading path (what a student reads) stays within its budget of
lines and imports nothing that serves it, and no module imports itself through others."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "minihart"
BUDGET = 2600  # lines of the reading path, docstrings and comments included

# what a student reads, in order: the array module, the check, boxes, the ops, the model, the optimisers
READING_PATH = ["__init__.py", "backend.py", "gradcheck/__init__.py", "boxes.py", "nn", "model", "optim.py"]
OFF_THE_PATH = ["nn/kernels.py"]  # the fused CuPy kernels
DISPATCH = ("minihart.backend", "minihart.nn.kernels")  # the one door from the reading path to them



def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def reading_path_files():
    files = []
    for entry in READING_PATH:
        path = PACKAGE / entry
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return [f for f in files if str(f.relative_to(PACKAGE)) not in OFF_THE_PATH]


def imports(path: Path) -> set:
    """The minihart modules that ``path`` imports, at the top or inside functions."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x, from ..nn import y
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # "from minihart.nn import kernels" imports the module minihart.nn.kernels
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        found |= {t for t in targets if t == "minihart" or t.startswith("minihart.")}
    found.discard(name)
    return found


GRAPH = {name: imports(path) for name, path in MODULES.items()}


def circles(graph):
    """Every import circle, as a sorted list of its modules (strongly connected components of
    more than one module, found with Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_the_circle_finder_finds_circles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"f"}, "f": {"e"}, "g": set()}
    assert circles(graph) == [["a", "b", "c"], ["e", "f"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_imports_are_found_inside_functions_and_resolved_to_modules():
    assert "minihart.nn.kernels" in GRAPH["minihart.backend"]  # a function-level import
    assert "minihart.gradcheck" in GRAPH["minihart.gradcheck.cases"]
    assert {"minihart.nn.activations", "minihart.nn.conv"} <= GRAPH["minihart.gradcheck.cases"]


def test_no_import_circles():
    found = circles(GRAPH)
    print("import circles:", found or "none")
    assert found == [], f"import circles: {found}"


def test_reading_path_line_budget():
    counts = {str(f.relative_to(ROOT)): len(f.read_text().splitlines()) for f in reading_path_files()}
    total = sum(counts.values())
    print("\n".join(f"{n:6d}  {f}" for f, n in counts.items()))
    print(f"{total:6d}  reading path (budget {BUDGET})")
    assert total <= BUDGET, f"the reading path has {total} lines, over the budget of {BUDGET}"


@pytest.mark.parametrize("path", reading_path_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_reading_path_imports_only_the_reading_path(path):
    inside = {module_name(f) for f in reading_path_files()}
    name = module_name(path)
    outside = {m for m in GRAPH[name] if m not in inside and (name, m) != DISPATCH}
    assert not outside, f"{name} imports {sorted(outside)}, which are off the reading path"
