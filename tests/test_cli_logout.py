"""`stacktoken logout` and `stacktoken.logout()` (docs/design.md §14) against the
loopback servers: revocation at the membership IdP (RFC 7009) and at the stack,
local state gone even with the IdP down, idempotence, fctl-readable files."""

from __future__ import annotations

import json
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import stacktoken
from ledger_stub import LedgerStub
from oauth_servers import (
    ClientAuthMethod,
    ConfidentialClient,
    MembershipServer,
    StackAuthServer,
    write_fctl_profile,
)
from redis_server import RedisServer, redis_server

from conftest import World

__all__ = ["redis_server"]  # the fixture

WARNING = "stacktoken: warning: "


def stack_files(world: World) -> list[str]:
    return sorted(path.name for path in world.profile.stack_dir.iterdir())


def assert_fctl_readable(path: Path) -> dict[str, object]:
    """profile.json as fctl's Go decoder needs it: a JSON object, the same types."""
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    document = json.loads(path.read_text("utf-8"))
    assert isinstance(document, dict)
    assert document["rootTokens"] is None
    assert isinstance(document["membershipURI"], str)
    assert isinstance(document["defaultOrganization"], str)
    assert isinstance(document["defaultStack"], str)
    return document


def assert_clean(result: subprocess.CompletedProcess[str], world: World, *secrets: str) -> None:
    for value in (
        world.profile.root_refresh_token,
        world.profile.stack_refresh_token,
        world.profile.stack_access_token,
        *secrets,
    ):
        assert value not in result.stdout and value not in result.stderr


def test_logout_revokes_clears_the_profile_and_token_then_exits_3(world: World) -> None:
    assert world.run("token").returncode == 0
    profile = world.profile
    # The refresh done by `token` may have rotated the stack's refresh token: read it now.
    stack_refresh = json.loads(profile.accesses_path.read_text())["refreshToken"]
    before = json.loads(profile.profile_path.read_text())
    result = world.run("logout")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "2 token(s) revoked" in result.stdout
    assert world.membership.count(world.membership.REVOCATION) == 2
    assert not world.membership.is_refresh_token_valid(profile.root_refresh_token)
    assert not world.membership.is_refresh_token_valid(stack_refresh)
    for request in world.membership.requests:
        if f"{request.method} {request.path}" == world.membership.REVOCATION:
            assert request.form["token_type_hint"] == "refresh_token"
            assert request.form["client_id"] == "fctl"
    after = assert_fctl_readable(profile.profile_path)
    assert {k: v for k, v in before.items() if k != "rootTokens"} == {
        k: v for k, v in after.items() if k != "rootTokens"
    }
    assert "accesses.json" not in stack_files(world)
    assert "api_token_cache.json" not in stack_files(world)
    assert_clean(result, world, stack_refresh)
    world.membership.reset_counts()
    world.stack.reset_counts()
    token = world.run("token")
    assert token.returncode == 3
    assert "stacktoken login" in token.stderr
    assert world.requests() == 0


def test_logout_with_the_idp_down_removes_local_state_and_exits_0(world: World) -> None:
    world.membership.stop()
    result = world.run("logout")
    assert result.returncode == 0, result.stderr
    warnings = result.stderr.splitlines()
    assert len(warnings) == 2, result.stderr  # one line per token not revoked
    assert all(line.startswith(WARNING) and "was not revoked" in line for line in warnings)
    assert_fctl_readable(world.profile.profile_path)
    assert "accesses.json" not in stack_files(world)
    assert_clean(result, world)


def test_logout_twice_is_harmless(world: World) -> None:
    assert world.run("logout").returncode == 0
    world.membership.reset_counts()
    again = world.run("logout")
    assert again.returncode == 0, again.stderr
    assert again.stderr == ""
    assert "0 token(s) revoked" in again.stdout
    assert world.membership.total_requests == 0
    assert_fctl_readable(world.profile.profile_path)


def test_logout_without_a_revocation_endpoint_still_logs_out(world: World) -> None:
    world.membership.advertise_revocation = False
    result = world.run("logout")
    assert result.returncode == 0, result.stderr
    assert "offers no revocation endpoint" in result.stderr
    assert world.membership.count(world.membership.REVOCATION) == 0
    assert world.membership.is_refresh_token_valid(world.profile.root_refresh_token)
    assert_fctl_readable(world.profile.profile_path)


def test_logout_of_a_missing_profile_exits_0(world: World, tmp_path: Path) -> None:
    result = world.run("--profile", "nobody", "logout")
    assert result.returncode == 0, result.stderr
    assert world.requests() == 0
    assert not (world.config_dir / "profiles" / "nobody").exists()


def test_logout_library_call_reports_the_tokens_not_revoked(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.membership.stop()
    report = stacktoken.logout(config_dir=world.config_dir, environ=world.env())
    assert isinstance(report, stacktoken.LogoutReport)
    assert report.credential == "fctl" and report.revoked == 0
    assert len(report.not_revoked) == 2
    assert world.profile.root_refresh_token not in repr(report)
    assert_fctl_readable(world.profile.profile_path)


# -- machine credentials ------------------------------------------------------------


@pytest.fixture
def jwt_world(tmp_path: Path) -> Iterator[World]:
    with (
        MembershipServer() as membership,
        StackAuthServer(membership, access_token_format="jwt") as stack,
    ):
        yield World.at(
            tmp_path, membership, stack, write_fctl_profile(tmp_path / "fctl", membership, stack)
        )


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_logout_machine_credential_revokes_its_token_everywhere(
    jwt_world: World, method: ClientAuthMethod
) -> None:
    world = jwt_world
    world.stack.token_endpoint_auth_methods = [method]
    client: ConfidentialClient = world.stack.add_client(
        f"svc-{method[-4:]}", "l0g0ut-s3cret", auth_methods=(method,)
    )
    flags = ("--stack-uri", world.stack.stack_uri, "--client-id", client.client_id)
    env = {"STACKTOKEN_CLIENT_SECRET": client.client_secret}
    got = world.run("token", *flags, env=env)
    assert got.returncode == 0, got.stderr
    token = got.stdout.strip()
    ledger = LedgerStub(world.stack)
    bearer = {"Authorization": f"Bearer {token}"}
    assert httpx.get(ledger.info_url, headers=bearer).status_code == 200
    result = world.run("logout", *flags, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "1 token(s) revoked" in result.stdout
    assert not world.stack.is_valid_access_token(token)
    assert httpx.get(ledger.info_url, headers=bearer).status_code == 401
    revocations = [
        r for r in world.stack.requests if f"{r.method} {r.path}" == world.stack.REVOCATION
    ]
    assert len(revocations) == 1
    form = revocations[0].form
    assert form.get("token_type_hint") == "access_token"
    if method == "client_secret_basic":
        assert "client_secret" not in form
    else:
        assert form.get("client_id") == client.client_id
    assert not list((world.cache_dir / "clients").glob("*/api_token_cache.json"))
    assert_clean(result, world, token, client.client_secret)
    again = world.run("logout", *flags, env=env)
    assert again.returncode == 0 and "0 token(s) revoked" in again.stdout


def _entries(reader: Any) -> list[str]:
    """The token entries (not the lock keys) in Redis."""
    names = [k.decode() if isinstance(k, bytes) else str(k) for k in reader.keys("stacktoken:v1:*")]
    return [name for name in names if not name.endswith(":lock")]


def test_logout_machine_credential_deletes_the_shared_store_entry(
    world: World, redis_server: RedisServer
) -> None:
    import redis

    client = world.stack.add_client("svc-fleet", "fl33t-s3cret")
    flags = ("--stack-uri", world.stack.stack_uri, "--client-id", client.client_id)
    env = {"STACKTOKEN_CLIENT_SECRET": client.client_secret}
    stored = ("--store", redis_server.url)
    assert world.run("token", *flags, *stored, env=env).returncode == 0
    reader = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        assert _entries(reader)
        result = world.run("logout", *flags, *stored, env=env)
        assert result.returncode == 0, result.stderr
        assert "1 token(s) revoked" in result.stdout
        assert _entries(reader) == []
    finally:
        reader.close()
    assert world.stack.issued_tokens == []
