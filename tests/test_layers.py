"""The package's layers (ARCHITECTURE.md): imports point one way, without cycles or borrowed privates.

Read from the source with ``ast``, not by importing it, so that an import inside a function counts
as much as one at the top of a module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "teachdiff"

# Lowest first: a module may import its own layer and the layers before it, never one after it.
LAYERS = ["core", "methods", "data", "store", "inference", "training", "evaluation", "export", "book", "cli"]
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


def module_name(path: Path) -> str:
    parts = ("teachdiff",) + path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> int:
    """The rank of a module: the package root and ``__main__`` sit with core and cli."""
    parts = module.split(".")
    if len(parts) == 1:
        return 0
    if parts[1] == "__main__":
        return LAYERS.index("cli")
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else -1


def imports(path: Path) -> list[tuple[str, str | None, int]]:
    """(module, imported name or None, line) for every teachdiff import in a file, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, None, node.lineno) for a in node.names if a.name.split(".")[0] == "teachdiff"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] == "teachdiff":
            found += [(node.module, a.name, node.lineno) for a in node.names]
    return found


def edges() -> dict[str, set[str]]:
    """Module -> the teachdiff modules it imports (``from pkg import sub`` counts as ``pkg.sub``)."""
    graph = {}
    for name, path in MODULES.items():
        targets = set()
        for module, imported, _ in imports(path):
            target = f"{module}.{imported}" if imported and f"{module}.{imported}" in MODULES else module
            if target != name:
                targets.add(target)
        graph[name] = targets
    return graph


def test_every_module_belongs_to_a_layer():
    assert [m for m in MODULES if layer(m) < 0] == []


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{name} imports {target}" for name, targets in graph.items() for target in targets
                  if layer(target) > layer(name))


def import_cycles(graph: dict[str, set[str]]) -> list[str]:
    state: dict[str, int] = {}
    cycles = []

    def visit(node, stack):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt in graph and nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return cycles


def test_imports_point_down_the_layers():
    assert upward_imports(edges()) == []


def test_no_import_cycles():
    assert import_cycles(edges()) == []


def test_the_checks_find_what_they_look_for():
    made_up = {"teachdiff.core.unet": {"teachdiff.training.loop"}, "teachdiff.training.loop": {"teachdiff.core.unet"},
               "teachdiff.cli.main": {"teachdiff.core.unet"}}
    assert upward_imports(made_up) == ["teachdiff.core.unet imports teachdiff.training.loop"]
    assert import_cycles(made_up) == ["teachdiff.core.unet -> teachdiff.training.loop -> teachdiff.core.unet"]
    assert upward_imports({"teachdiff.cli.main": {"teachdiff.core.unet"}}) == []


def test_no_private_name_is_imported_from_another_package():
    def package(module):
        return module.split(".")[1] if "." in module else ""

    borrowed = [f"{name}:{line} imports {imported} from {module}"
                for name, path in MODULES.items() for module, imported, line in imports(path)
                if imported and imported.startswith("_") and not imported.startswith("__")
                and package(module) != package(name)]
    assert borrowed == []


def test_only_the_cli_parses_arguments():
    parsers = [name for name, path in MODULES.items()
               if "argparse" in {a.name for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Import)
                                 for a in n.names} and layer(name) != LAYERS.index("cli")]
    assert parsers == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_and_functions_stay_short(name):
    text = MODULES[name].read_text()
    assert len(text.splitlines()) <= MAX_MODULE_LINES
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)" for node in ast.walk(ast.parse(text))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert long == []
