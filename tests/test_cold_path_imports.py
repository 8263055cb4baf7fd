"""Import discipline of the cold path (DESIGN §12, issue 9).

A cold run (cache entry absent, discovery documents cached, one exchange) and
a refresh run (expired stack access token: refresh, then exchange) run in a
subprocess that writes `sys.modules` as it exits. Beyond the standard library
they may load httpx (and the idna it imports), returns (and its
typing_extensions), cattrs (and its attrs: the wire formats' converter), and
stacktoken: nothing else. Each of the packages named
below was measured on that path once and removed (benchmarks/RESULTS.md):
httpcore, h11 and anyio (a direct request goes over `http.client`, which
`import httpx` loads anyway), certifi (no CA bundle on plain http), pyjwt and
cryptography (claims are read without verifying), filelock, platformdirs,
argparse (a plain `token` command is read without it), and the SDK, redis and
pydantic, which no token run needs.
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

ALLOWED_THIRD_PARTY = {
    "httpx",
    "idna",
    "returns",
    "typing_extensions",
    "cattrs",
    "attr",
    "attrs",
    "stacktoken",
}
REMOVED = (
    "httpcore",
    "h11",
    "anyio",
    "sniffio",
    "certifi",
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


def test_cold_path_exchange_loads_only_httpx_and_returns(discovered: World, tmp_path: Path) -> None:
    exchanges = discovered.exchanges()
    run, modules = _run_with_module_dump(discovered, tmp_path, "token")
    assert run.returncode == 0, run.stderr
    assert discovered.exchanges() == exchanges + 1  # a cold run indeed
    assert "httpx" in modules  # the check can fail: this run went to the network
    assert "cattrs" in modules  # the token answer was read by the wire formats' converter
    assert _imported(modules, REMOVED) == []
    assert _third_party(modules) <= ALLOWED_THIRD_PARTY


def test_cold_path_refresh_loads_only_httpx_and_returns(discovered: World, tmp_path: Path) -> None:
    _expire_stack_access(discovered)
    refreshes = discovered.membership.count(discovered.membership.TOKEN)
    run, modules = _run_with_module_dump(discovered, tmp_path, "token")
    assert run.returncode == 0, run.stderr
    assert discovered.membership.count(discovered.membership.TOKEN) == refreshes + 1
    assert _imported(modules, REMOVED) == []
    assert _third_party(modules) <= ALLOWED_THIRD_PARTY


def test_cold_path_proxied_request_does_load_httpcore(world: World, tmp_path: Path) -> None:
    """The check above can fail: httpcore is what a proxied request still uses."""
    code = (
        "import sys\n"
        "from stacktoken.shell._transport import _make_route\n"
        "_make_route('http', 'stack.example.invalid', 80, 'http://127.0.0.1:1')\n"
        "print(*sorted(sys.modules))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert _imported(set(run.stdout.split()), ("httpcore",)) != []
