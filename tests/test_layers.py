"""The packages are layers: a module imports only from its own package or the ones below it."""

from __future__ import annotations

import ast
from pathlib import Path

import agentctl

LAYERS = ["cli", "output", "calls", "stack", "execution", "routing", "processes"]  # top to bottom; base below all
PACKAGE = Path(agentctl.__file__).parent
BASE = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__", "__main__"}


def _layer(module: str) -> int:
    """A module's depth: its package's index, or below every package for the base modules."""
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else len(LAYERS)


def _imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "agentctl":
            found += [
                f"{node.module}.{alias.name}" if node.module == "agentctl" else node.module for alias in node.names
            ]
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.split(".")[0] == "agentctl"]
    return found


def test_imports_only_point_down() -> None:
    upward = []
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if module in ("agentctl.__init__", "agentctl.__main__"):
            continue  # the package's front: the decorator it exports, the command line it runs
        upward += [f"{module} -> {target}" for target in _imports(path) if _layer(target) < _layer(module)]
    assert upward == []


def test_every_package_is_a_known_layer() -> None:
    packages = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    assert packages == set(LAYERS) and {"config", "errors", "events", "llm", "runtime"} <= BASE
