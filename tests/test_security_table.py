"""The security table of docs/reliability.md names tests that exist."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from reliability_matrix import ATTACKS, REDIS_FAULTS, Attack, RedisFault

ROOT = Path(__file__).resolve().parent.parent


def _named(reference: str) -> list[tuple[Path, str | None]]:
    found: list[tuple[Path, str | None]] = []
    for part in reference.split(","):
        path, _, function = part.strip().partition("::")
        found.append((ROOT / path, function or None))
    return found


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.test for a in ATTACKS])
def test_security_table_names_tests_that_exist(attack: Attack) -> None:
    for path, function in _named(attack.test):
        assert path.is_file(), path
        if function is not None:
            tree = ast.parse(path.read_text())
            names = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
            assert function in names, f"{path.name} has no {function}"


@pytest.mark.parametrize("row", REDIS_FAULTS, ids=[r.fault for r in REDIS_FAULTS])
def test_redis_fault_table_names_tests_that_exist(row: RedisFault) -> None:
    for path, function in _named(row.test):
        assert path.is_file(), path
        assert function is not None, "a Redis fault row names its test function"
        tree = ast.parse(path.read_text())
        names = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
        assert function in names, f"{path.name} has no {function}"
