"""The model package's shape, read from its source with ``ast``: functions of at most 60 lines, files
of at most 400, imports of nothing else of ours, and no import cycle between its modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import escnet

PACKAGE = Path(escnet.__file__).parent
MAX_FUNCTION_LINES = 60
MAX_FILE_LINES = 400
OURS = ("escnet_runtime", "escnet_export", "escnet_bench")


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ["escnet", *path.relative_to(PACKAGE).with_suffix("").parts]
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()
TREES = {name: ast.parse(path.read_text(encoding="utf-8")) for name, path in MODULES.items()}


def test_no_function_over_60_lines() -> None:
    long = [
        f"{name}.{node.name}: {node.end_lineno - node.lineno + 1} lines"
        for name, tree in TREES.items()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == []


def test_no_file_over_400_lines() -> None:
    counts = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in MODULES.items()}
    assert {name: n for name, n in counts.items() if n > MAX_FILE_LINES} == {}


def _imports(name: str) -> set[str]:
    """Every module ``name`` imports (at any depth of its code), absolute; relative ones resolved."""
    package = name if MODULES[name].name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(TREES[name]):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join([*base, *([node.module] if node.module else [])])
            found.add(target)
            found |= {f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in MODULES}
    return found


def test_nothing_else_of_ours_is_imported() -> None:
    bad = {name: sorted(i for i in _imports(name) if i.split(".")[0] in OURS) for name in MODULES}
    assert {name: found for name, found in bad.items() if found} == {}


def _cycle() -> list[str]:
    """One import cycle between modules (packages' lazy ``__init__`` left out), or []."""
    graph = {
        name: {i for i in _imports(name) if i in MODULES and i != name and MODULES[i].name != "__init__.py"}
        for name in MODULES
    }
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return []

    for name in MODULES:
        if name not in state and (found := visit(name)):
            return found
    return []


def test_no_import_cycle() -> None:
    assert _cycle() == []


def test_the_config_does_not_import_its_checks() -> None:
    assert "escnet.config_check" in _imports("escnet.modeling.model")  # the scan sees relative imports
    assert not {"escnet.config_check", "escnet.config_limits"} & _imports("escnet.config")


@pytest.mark.parametrize("module", ["escnet.training.engine"])
def test_the_training_loop_is_not_called_an_engine(module: str) -> None:
    assert module not in MODULES and "escnet.training.loop" in MODULES
