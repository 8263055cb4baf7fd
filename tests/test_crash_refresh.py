"""A rotated refresh token is never lost: it is on disk before the exchange, and
a rotation by fctl (which takes no lock) under a run in flight is picked up.
"""

from __future__ import annotations

import json
import signal
import subprocess

import httpx
import pytest
from oauth_servers import Fault, LoopbackOAuthServer, decode_jwt_unverified
from reliability_helpers import (
    BLACK_HOLE_SECONDS,
    accesses,
    assert_files_intact,
    assert_ok,
    assert_one_line_error,
    finish,
    prime_discovery,
    stack_folder_names,
    start_cli,
    write_accesses,
)

from conftest import World


def wait_for_request(
    server: LoopbackOAuthServer, endpoint: str, run: subprocess.Popen[str]
) -> None:
    if not server.wait_for_count(endpoint, 1, timeout=15):
        run.kill()
        _, stderr = run.communicate(timeout=5)
        pytest.fail(f"the run never reached {endpoint}: {stderr}")


@pytest.mark.parametrize("killed_during", ["stack discovery", "exchange"])
def test_crash_killed_after_refresh_keeps_the_rotated_token(
    world: World, killed_during: str
) -> None:
    """SIGKILL after the refresh answer: the next run needs no login, nor a refresh."""
    used = write_accesses(world, exp_in=-120)
    stack = world.stack
    endpoint = stack.DISCOVERY if killed_during == "stack discovery" else stack.TOKEN
    if killed_during == "exchange":
        prime_discovery(world, "stack")
    stack.inject(endpoint, Fault.delay(BLACK_HOLE_SECONDS))
    run = start_cli(world, "token")
    try:
        wait_for_request(stack, endpoint, run)
        run.send_signal(signal.SIGKILL)
        assert run.wait(timeout=10) == -signal.SIGKILL
    finally:
        finish(run)

    saved = accesses(world)
    assert saved["refreshToken"] != used
    assert not world.membership.is_refresh_token_valid(used), "the IdP did not rotate"
    assert world.membership.is_refresh_token_valid(saved["refreshToken"])
    assert_files_intact(world)
    assert world.membership.count(world.membership.TOKEN) == 1

    assert_ok(world.run("token"))  # the killed run's lock is no obstacle either
    assert world.membership.count(world.membership.TOKEN) == 1, "refreshed again"
    assert accesses(world)["refreshToken"] == saved["refreshToken"]


def fctl_refresh(world: World, refresh_token: str) -> None:
    """What `fctl` does when it refreshes: call the IdP, rewrite accesses.json in place."""
    answer = httpx.post(
        world.membership.token_endpoint,
        data={"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": "fctl"},
        timeout=10,
    )
    answer.raise_for_status()
    tokens = answer.json()
    document = {
        "token": tokens["access_token"],
        "claims": decode_jwt_unverified(tokens["access_token"]),
        "refreshToken": tokens["refresh_token"],
    }
    world.profile.accesses_path.write_text(json.dumps(document))


def test_crash_fctl_rotating_the_refresh_token_mid_flight_is_picked_up(world: World) -> None:
    """fctl spends the refresh token between our read and our refresh: no login asked."""
    used = write_accesses(world, exp_in=-120)
    # Our run reads accesses.json, then discovers the IdP: hold it there.
    world.membership.inject(world.membership.DISCOVERY, Fault.delay(1.0))
    run = start_cli(world, "--debug", "token")
    try:
        wait_for_request(world.membership, world.membership.DISCOVERY, run)
        fctl_refresh(world, used)
        fctl_wrote = accesses(world)
    finally:
        result = finish(run)

    token = assert_ok(result)
    assert "refreshed by another program" in result.stderr
    assert world.membership.count(world.membership.TOKEN) == 2  # fctl's, then our rejected one
    assert accesses(world) == fctl_wrote
    assert world.exchanges() == 1
    assert_files_intact(world)
    answer = httpx.get(
        world.stack.resource_url, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert answer.status_code == 200


def test_crash_rejected_refresh_with_nothing_rotated_asks_for_login(world: World) -> None:
    """The rescue is not fooled: a revoked refresh token, an unchanged file -> exit 3."""
    used = write_accesses(world, exp_in=-120)
    world.membership.revoke_refresh_token(used)
    before = world.profile.accesses_path.read_bytes()
    assert_one_line_error(world.run("token"), 3)
    assert world.profile.accesses_path.read_bytes() == before
    assert stack_folder_names(world) <= {"accesses.json", "api_token_cache.json.lock"}
