"""Import discipline of the cold path (docs/design.md §12).

A cold run (cache entry absent, discovery documents cached, one exchange) and
a refresh run (expired stack access token: refresh, then exchange) run in a
subprocess that writes `sys.modules` as it exits. They run on the card's
stack: httpx over httpcore (h11, and what `import httpcore` brings along),
returns, cattrs; beyond the standard library they may load those packages,
what importing them loads (the budget's yardstick, `import httpx, httpcore,
cattrs`, run here in a subprocess), and stacktoken: nothing else. Each package
named below was measured on that path once and removed (benchmarks/RESULTS.md):
pyjwt and cryptography (claims are read without verifying), filelock,
platformdirs, argparse (a plain `token` command is read without it), and the
SDK, redis and pydantic, which no token run needs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from oauth_servers import decode_jwt_unverified
from test_warm_path_imports import _imported, _run_with_module_dump

from conftest import World

OURS = {"returns", "typing_extensions", "stacktoken"}
REMOVED = (
    "jwt",
    "cryptography",
    "filelock",
    "platformdirs",
    "argparse",
    "redis",
    "formance_sdk_python",
    "pydantic",
    "pydantic_core",
)


def _third_party(modules: set[str]) -> set[str]:
    """Top-level packages outside the standard library (the interpreter's own
    start-up hooks, `_distutils_hack` or an editable install's finder, left out)."""
    return {
        top
        for top in (name.split(".")[0] for name in modules)
        if top not in sys.stdlib_module_names and not top.startswith("_")
    }


@pytest.fixture(scope="module")
def allowed_third_party() -> set[str]:
    """Ours, and the packages the yardstick's imports load (the test venv's trio
    among them: httpcore imports it when installed)."""
    code = "import sys\nimport httpx, httpcore\nimport cattrs\nprint(*sorted(sys.modules))"
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return OURS | _third_party(set(run.stdout.split()))


@pytest.fixture
def discovered(world: World) -> World:
    """A first run has cached the discovery documents; the cache entry is then removed."""
    first = world.run("token")
    assert first.returncode == 0, first.stderr
    world.profile.api_token_cache_path.unlink()
    return world


def _expire_stack_access(world: World) -> None:
    token, refresh = world.membership.mint_stack_access(-120, organization_id="orgA")
    document = {"token": token, "claims": decode_jwt_unverified(token), "refreshToken": refresh}
    path = world.profile.accesses_path
    descriptor = os.open(path, os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(document, handle)


def test_cold_path_exchange_loads_only_the_cards_stack(
    discovered: World, tmp_path: Path, allowed_third_party: set[str]
) -> None:
    exchanges = discovered.exchanges()
    run, modules = _run_with_module_dump(discovered, tmp_path, "token")
    assert run.returncode == 0, run.stderr
    assert discovered.exchanges() == exchanges + 1  # a cold run indeed
    assert "httpx" in modules  # the check can fail: this run went to the network
    assert "httpcore" in modules  # over httpx's own transport
    assert "cattrs" in modules  # the token answer was read by the wire formats' converter
    assert _imported(modules, REMOVED) == []
    assert _third_party(modules) <= allowed_third_party


def test_cold_path_refresh_loads_only_the_cards_stack(
    discovered: World, tmp_path: Path, allowed_third_party: set[str]
) -> None:
    _expire_stack_access(discovered)
    refreshes = discovered.membership.count(discovered.membership.TOKEN)
    run, modules = _run_with_module_dump(discovered, tmp_path, "token")
    assert run.returncode == 0, run.stderr
    assert discovered.membership.count(discovered.membership.TOKEN) == refreshes + 1
    assert _imported(modules, REMOVED) == []
    assert _third_party(modules) <= allowed_third_party


def test_cold_path_allowance_is_not_everything(allowed_third_party: set[str]) -> None:
    """The allowance above can fail: what the yardstick loads is not all that is installed."""
    assert {"httpx", "httpcore", "h11"} <= allowed_third_party
    assert {"jwt", "cryptography", "redis", "platformdirs", "filelock"}.isdisjoint(
        allowed_third_party
    )
