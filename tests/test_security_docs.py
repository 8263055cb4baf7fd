"""docs/security.md cites tests that exist, and every security test file."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "security.md"
# `tests/test_x.py` or `tests/test_x.py::test_name`, in backticks.
_CITED = re.compile(r"`((?:tests|property_tests)/[\w/]+\.py)(?:::(\w+))?`")


def _cited() -> list[tuple[str, str | None]]:
    return [(path, name or None) for path, name in _CITED.findall(DOC.read_text("utf-8"))]


def _test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"))
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def test_security_doc_cites_tests_that_exist() -> None:
    cited = _cited()
    assert len(cited) >= 60
    missing = [
        f"{path}::{name}" if name else path
        for path, name in cited
        if not (ROOT / path).is_file() or (name and name not in _test_names(ROOT / path))
    ]
    assert missing == []


def test_security_doc_cites_every_security_test_file() -> None:
    files = {path for path, _ in _cited()}
    security = {
        f"tests/{path.name}"
        for path in (ROOT / "tests").glob("test_security_*.py")
        if path.name not in ("test_security_docs.py", "test_security_table.py")
    }
    assert security - files == set()


def test_readme_links_the_security_doc() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    section = readme.split("Security properties", 1)[1].split("\n## ", 1)[0]
    assert "docs/security.md" in section
