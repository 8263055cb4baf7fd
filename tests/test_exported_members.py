"""`stacktoken.__all__` is exactly the public API, each name exists (as httpx's test does).

core/ and shell/ have no export tables: their surface is their modules, and
only the public face re-exports.
"""

from __future__ import annotations

import ast
from pathlib import Path

import stacktoken

PUBLIC_API = {
    "AcquireError",
    "AuthenticationRequiredError",
    "CachedToken",
    "CheckResult",
    "CredentialStatus",
    "FailureKnobs",
    "HttpPolicy",
    "InvalidUsageError",
    "LocalStorageError",
    "LogoutReport",
    "RedisStore",
    "RemoteServerError",
    "RenewalPolicy",
    "Settings",
    "StackKey",
    "StackTokenAuth",
    "StackTokenError",
    "TokenSource",
    "formance_sdk",
    "login",
    "logout",
    "parse_duration",
    "stack_client",
    "status",
}

ROOT = Path(__file__).resolve().parent.parent


def test_exported_members_are_the_public_api() -> None:
    assert set(stacktoken.__all__) == PUBLIC_API
    assert len(stacktoken.__all__) == len(set(stacktoken.__all__))


def test_exported_members_all_exist() -> None:
    for name in stacktoken.__all__:
        assert getattr(stacktoken, name) is not None, name
    assert set(stacktoken.__all__) <= set(dir(stacktoken))


def test_exported_members_internal_packages_export_nothing() -> None:
    """core/ and shell/ `__init__` hold a docstring only: no names, no tables."""
    for package in ("core", "shell"):
        tree = ast.parse((ROOT / package / "__init__.py").read_text())
        assert [type(node).__name__ for node in tree.body] == ["Expr"], package
