"""Shared helpers of the reliability, concurrency, crash and stress tests.

They state the invariants every fault test checks afterwards: an error is one
line with the right exit code and no traceback, `accesses.json` still holds a
refresh token the IdP accepts (nothing lost), the cache file (if any) parses,
and the stack folder holds nothing but our three files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from oauth_servers import decode_jwt_unverified
from stacktoken.core._cache_codec import decode_cache_entry
from stacktoken.core._codecs import decode_accesses, encode_discovery_cache
from stacktoken.core._paths import ACCESSES_FILE, CACHE_FILE, LOCK_SUFFIX, discovery_cache_name
from stacktoken.core._requests import RetryPolicy, membership_discovery, stack_discovery
from stacktoken.core._types import DiscoveryDocument
from stacktoken.shell._http import HttpPolicy
from stacktoken.shell._source import TokenSource

from conftest import CLI_TIMEOUT_SECONDS, World

ERROR_PREFIX = "stacktoken: error: "
LOCK_FILE = CACHE_FILE + LOCK_SUFFIX
STACK_FOLDER_FILES = frozenset({ACCESSES_FILE, CACHE_FILE, LOCK_FILE})
TEMP_SUFFIX = ".tmp"

#: Limits for in-process tests: short timeouts and backoff, same shape as the defaults.
FAST_POLICY = HttpPolicy(
    timeout=0.3, retry=RetryPolicy(attempts=3, base_delay=0.02, max_delay=0.05)
)
#: A server delay longer than any test: the request is never answered while it matters.
BLACK_HOLE_SECONDS = 60.0


def assert_ok(result: subprocess.CompletedProcess[str]) -> str:
    """Exit 0, one token line on stdout, no traceback; returns the token."""
    assert result.returncode == 0, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0], result.stdout
    return lines[0]


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    """Exit `code`, nothing on stdout, exactly one `stacktoken: error: ` line."""
    assert result.returncode == code, (result.returncode, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(ERROR_PREFIX), lines[0]
    if code == 3:
        assert "stacktoken login" in lines[0], lines[0]
    return lines[0]


def write_accesses(world: World, *, exp_in: int) -> str:
    """Write `accesses.json` as fctl does, with a token expiring in `exp_in` s
    (negative: expired) and a refresh token live at the IdP; returns the refresh token."""
    token, refresh = world.membership.mint_stack_access(exp_in, organization_id="orgA")
    document = {"token": token, "claims": decode_jwt_unverified(token), "refreshToken": refresh}
    world.profile.accesses_path.write_text(json.dumps(document))
    os.chmod(world.profile.accesses_path, 0o600)
    return refresh


def accesses(world: World) -> dict[str, Any]:
    document = json.loads(world.profile.accesses_path.read_bytes())
    assert isinstance(document, dict)
    return document


def stack_folder_names(world: World) -> set[str]:
    return {path.name for path in world.profile.stack_dir.iterdir()}


def temp_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if path.name.endswith(TEMP_SUFFIX))


def assert_files_intact(world: World) -> None:
    """Nothing lost or corrupted: accesses.json decodes and its refresh token is
    live at the IdP; a cache file, if any, decodes; no stray files remain."""
    data = world.profile.accesses_path.read_bytes()
    access = decode_accesses(data).unwrap()
    assert access.refresh_token is not None
    assert world.membership.is_refresh_token_valid(access.refresh_token), "refresh token lost"
    cache = world.profile.api_token_cache_path
    if cache.is_file() and not cache.is_symlink():
        entry = decode_cache_entry(cache.read_bytes())
        assert not isinstance(entry, str), f"cache entry unreadable: {entry}"
    assert stack_folder_names(world) <= STACK_FOLDER_FILES, stack_folder_names(world)


def prime_discovery(world: World, which: str) -> None:
    """Put the server's real discovery document in the discovery cache, so the
    next run goes straight to its token endpoint."""
    if which == "membership":
        target = membership_discovery(world.membership.base_url)
        endpoint = world.membership.token_endpoint
    else:
        target = stack_discovery(world.stack.stack_uri)
        endpoint = world.stack.token_endpoint
    document = DiscoveryDocument(token_endpoint=endpoint, issuer=target.issuer)
    folder = world.cache_dir / "discovery"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / discovery_cache_name(target.url)
    path.write_bytes(
        encode_discovery_cache(document, expires_at=datetime.now(UTC) + timedelta(hours=1))
    )
    os.chmod(path, 0o600)


def let_failures_expire(cache_dir: Path) -> list[str]:
    """The time of every failure remembered under `cache_dir` runs out (as
    after its window or backoff, without waiting for it); returns their kinds.

    What "the next run works once the fault is gone" means with a failure
    memory (docs/design.md §15): within a remembered failure's time the next
    run fails at once by design."""
    kinds = []
    for path in sorted(cache_dir.rglob("failure.json")):
        entry = json.loads(path.read_bytes())
        kinds.append(entry["kind"])
        entry["until"] = entry["at"]
        path.write_text(json.dumps(entry))
    return kinds


def library_source(
    world: World, *, policy: HttpPolicy = FAST_POLICY, **options: Any
) -> TokenSource:
    """A `TokenSource` on the world's fctl profile, with fast HTTP limits."""
    return TokenSource.from_fctl(
        config_dir=world.config_dir,
        cache_dir=world.cache_dir,
        http_policy=policy,
        environ={},
        **options,
    )


def start_cli(world: World, *args: str) -> subprocess.Popen[str]:
    """Start the CLI without waiting, for runs that overlap."""
    return subprocess.Popen(
        [sys.executable, "-m", "stacktoken", "--cache-dir", str(world.cache_dir), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=world.env(),
    )


def finish(process: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    """Wait for a started CLI, bounded; a run past the bound is killed."""
    try:
        stdout, stderr = process.communicate(timeout=CLI_TIMEOUT_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
