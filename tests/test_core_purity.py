"""Core is pure: it imports nothing from the shell and nothing that reaches the
world (files, clock, environment, randomness, logging, processes, network)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parent.parent / "core"
CORE_FILES = sorted(CORE.glob("*.py"))

# Modules whose import alone would let core touch the world.
FORBIDDEN_MODULES = frozenset(
    {
        "os",
        "io",
        "sys",
        "time",
        "socket",
        "subprocess",
        "logging",
        "random",
        "secrets",
        "uuid",
        "shutil",
        "tempfile",
        "threading",
        "httpx",
        "urllib.request",
        "platformdirs",
        "filelock",
        "stacktoken.shell",
    }
)
# Calls that read the clock or the file system even without a forbidden import
# (pathlib is allowed for its pure paths only: `PurePosixPath`, never `Path`).
FORBIDDEN_CALLS = frozenset(
    {"open", "now", "utcnow", "today", "time", "getenv", "Path", "read_bytes", "read_text"}
)


def _imported_modules(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level > 1:
            names.add("stacktoken.shell")  # `from ..shell` and the like leave core
    return names


def _called_names(tree: ast.Module) -> set[str]:
    called: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            function = node.func
            if isinstance(function, ast.Name):
                called.add(function.id)
            elif isinstance(function, ast.Attribute):
                called.add(function.attr)
    return called


def test_core_files_are_found() -> None:
    assert len(CORE_FILES) >= 10


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda path: path.name)
def test_core_module_imports_nothing_that_reaches_the_world(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    reaching = {
        name
        for name in _imported_modules(tree)
        if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN_MODULES)
    }
    assert not reaching, f"{path.name} imports {sorted(reaching)}"


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda path: path.name)
def test_core_module_calls_no_clock_or_file(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    assert not (_called_names(tree) & FORBIDDEN_CALLS), path.name
