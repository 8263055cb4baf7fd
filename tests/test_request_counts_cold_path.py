"""Round trips of the cold path (docs/design.md §1 step 3), counted at the loopback servers.

Each run is the CLI in its own process, as a user runs it. The counts are the
protocol's minimum: the exchange alone once the stack's discovery document is
cached, plus discovery the first time, plus the membership discovery and the
refresh only when the stack access token has expired.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from oauth_servers import MembershipServer, StackAuthServer, decode_jwt_unverified

from conftest import CLI_TIMEOUT_SECONDS, World

STACK_DISCOVERY = StackAuthServer.DISCOVERY
EXCHANGE = StackAuthServer.TOKEN
MEMBERSHIP_DISCOVERY = MembershipServer.DISCOVERY
REFRESH = MembershipServer.TOKEN
CONCURRENT_PROCESSES = 8


def _counts(world: World) -> dict[str, int]:
    """Requests so far, per endpoint, of both servers (endpoints never hit left out)."""
    counts = {**world.membership.counts(), **world.stack.counts()}
    return {endpoint: count for endpoint, count in counts.items() if count}


def _token(world: World) -> str:
    run = world.run("token")
    assert run.returncode == 0, run.stderr
    return run.stdout


def _requests_of_one_run(world: World) -> dict[str, int]:
    world.membership.reset_counts()
    world.stack.reset_counts()
    _token(world)
    return _counts(world)


def _expire_stack_access(world: World) -> None:
    """Replace `accesses.json` by an expired stack access token with a live refresh token."""
    token, refresh = world.membership.mint_stack_access(
        -120, organization_id=world.profile.organization
    )
    document = {"token": token, "claims": decode_jwt_unverified(token), "refreshToken": refresh}
    path = world.profile.accesses_path
    path.unlink()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(document, handle)


def _drop_token_cache(world: World) -> None:
    world.profile.api_token_cache_path.unlink()


def test_request_counts_first_run_discovers_then_exchanges(world: World) -> None:
    """No token, no discovery document on disk: two requests."""
    assert _requests_of_one_run(world) == {STACK_DISCOVERY: 1, EXCHANGE: 1}


def test_request_counts_cold_cache_with_cached_discovery_is_one_exchange(world: World) -> None:
    _token(world)
    _drop_token_cache(world)
    assert _requests_of_one_run(world) == {EXCHANGE: 1}


def test_request_counts_warm_run_makes_none(world: World) -> None:
    _token(world)
    assert _requests_of_one_run(world) == {}


def test_request_counts_refresh_adds_membership_discovery_and_refresh(world: World) -> None:
    _token(world)
    _drop_token_cache(world)
    _expire_stack_access(world)
    assert _requests_of_one_run(world) == {MEMBERSHIP_DISCOVERY: 1, REFRESH: 1, EXCHANGE: 1}


def test_request_counts_refresh_on_first_run_needs_both_discoveries(world: World) -> None:
    _expire_stack_access(world)
    assert _requests_of_one_run(world) == {
        MEMBERSHIP_DISCOVERY: 1,
        REFRESH: 1,
        STACK_DISCOVERY: 1,
        EXCHANGE: 1,
    }


def test_request_counts_second_refresh_reuses_membership_discovery(world: World) -> None:
    _expire_stack_access(world)
    _token(world)
    _drop_token_cache(world)
    _expire_stack_access(world)
    assert _requests_of_one_run(world) == {REFRESH: 1, EXCHANGE: 1}


def test_request_counts_concurrent_cold_processes_share_one_exchange(world: World) -> None:
    """Eight processes start together on an empty cache: one discovery, one exchange."""
    command = [sys.executable, "-m", "stacktoken", "--cache-dir", str(world.cache_dir), "token"]
    processes = [
        subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=world.env(),
        )
        for _ in range(CONCURRENT_PROCESSES)
    ]
    outputs = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=CLI_TIMEOUT_SECONDS)
        assert process.returncode == 0, stderr
        outputs.append(stdout)
    assert len(set(outputs)) == 1
    assert _counts(world) == {STACK_DISCOVERY: 1, EXCHANGE: 1}


def test_request_counts_ttl_zero_exchanges_every_run(world: World) -> None:
    """The counterpart of the warm run: with the disk cache off, each run pays the exchange."""
    _token(world)
    world.stack.reset_counts()
    for _ in range(2):
        run = world.run("token", "--stack-token-cache-ttl", "0")
        assert run.returncode == 0, run.stderr
    assert _counts(world) == {EXCHANGE: 2}
