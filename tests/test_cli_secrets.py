"""No token, refresh token or assertion on stderr, even with `--debug`, whatever the outcome."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from oauth_servers import Fault, MembershipServer, StackAuthServer, write_fctl_profile

from conftest import World


def debug_run(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    return world.run(*args, global_args=("--cache-dir", str(world.cache_dir), "--debug"))


def secrets_of(world: World) -> set[str]:
    """Every secret the run could have seen: in the files, sent, or issued."""
    p = world.profile
    found = {
        p.stack_access_token,
        p.stack_refresh_token,
        p.root_access_token,
        p.root_refresh_token,
        p.id_token,
    }
    if p.accesses_path.exists():
        accesses = json.loads(p.accesses_path.read_text())
        found |= {accesses.get("token", ""), accesses.get("refreshToken", "")}
    found |= {t.access_token for t in world.stack.issued_tokens}
    for server in (world.membership, world.stack):
        for request in server.requests:
            found |= {request.form.get("assertion", ""), request.form.get("refresh_token", "")}
    return {secret for secret in found if secret}


def assert_no_secret(text: str, secrets: set[str]) -> None:
    for secret in secrets:
        assert secret not in text
        # The tail is a JWT's signature or an opaque token's randomness.
        assert secret[-16:] not in text


def expired_world(tmp_path: Path, membership: MembershipServer, stack: StackAuthServer) -> World:
    profile = write_fctl_profile(tmp_path / "fctl", membership, stack, stack_access_exp_in=-60)
    return World.at(tmp_path, membership, stack, profile)


def _nothing(world: World) -> None:
    return None


def _revoke_refresh(world: World) -> None:
    world.membership.revoke_all_refresh_tokens()


def _reject_exchange(world: World) -> None:
    world.stack.reject_all_assertions()


def _stop_stack(world: World) -> None:
    world.stack.stop()


def _stop_membership(world: World) -> None:
    world.membership.stop()


def _garbage_token_answer(world: World) -> None:
    world.stack.inject(world.stack.TOKEN, Fault.garbage())


def _error_echoing_assertion(world: World) -> None:
    world.stack.inject(world.stack.TOKEN, Fault.status(400, "invalid_request", "bad assertion"))


@pytest.mark.parametrize(
    ("expired", "prepare", "code"),
    [
        (False, _nothing, 0),
        (True, _nothing, 0),
        (True, _revoke_refresh, 3),
        (True, _stop_membership, 1),
        (False, _reject_exchange, 3),
        (False, _stop_stack, 1),
        (False, _garbage_token_answer, 1),
        (False, _error_echoing_assertion, 1),
    ],
    ids=[
        "cold",
        "refresh",
        "refresh-rejected",
        "membership-down",
        "exchange-rejected",
        "stack-down",
        "garbage-answer",
        "oauth-error",
    ],
)
def test_token_debug_never_logs_secrets(
    tmp_path: Path, expired: bool, prepare: Callable[[World], None], code: int
) -> None:
    with MembershipServer() as membership, StackAuthServer(membership) as stack:
        profile = write_fctl_profile(
            tmp_path / "fctl", membership, stack, stack_access_exp_in=-60 if expired else 3600
        )
        world = World.at(tmp_path, membership, stack, profile)
        prepare(world)
        runs = [debug_run(world, "token")]
        if code == 0:
            runs.append(debug_run(world, "token"))  # warm
            runs.append(debug_run(world, "token", "--stack-token-cache-ttl=0"))
            runs.append(debug_run(world, "token", "--output", "json"))
            runs.append(debug_run(world, "cache", "list"))
        secrets = secrets_of(world)
        assert len(secrets) >= 5
        issued = {t.access_token for t in stack.issued_tokens}
        for result in runs:
            assert result.returncode == code, result.stderr
            assert "Traceback" not in result.stderr
            if "token" in result.args:
                assert "stacktoken: debug: " in result.stderr
            assert_no_secret(result.stderr, secrets)
            assert_no_secret(result.stdout, secrets - issued)
        if code != 0:
            assert runs[0].stderr.splitlines()[-1].startswith("stacktoken: error: ")


def test_token_debug_logs_requests_and_cache_decisions(world: World) -> None:
    cold = debug_run(world, "token")
    warm = debug_run(world, "token")
    assert cold.returncode == 0 and warm.returncode == 0
    assert "cache miss" in cold.stderr
    assert f"POST {world.stack.token_endpoint} -> 200" in cold.stderr
    assert f"GET {world.stack.discovery_url} -> 200" in cold.stderr
    assert "cache hit" in warm.stderr
    assert "POST" not in warm.stderr and "GET" not in warm.stderr


def test_token_without_debug_is_silent(world: World) -> None:
    for _ in ("cold", "warm"):
        result = world.run("token")
        assert result.returncode == 0
        assert result.stderr == ""
