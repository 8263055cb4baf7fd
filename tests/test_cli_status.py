"""`stacktoken status` and `stacktoken.status()` (docs/design.md §14) against the
loopback servers: no request without --check, the JSON keys, scopes granted
narrower than asked for, never a token or secret in any output."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import stacktoken
from oauth_servers import ConfidentialClient, MembershipServer, StackAuthServer, write_fctl_profile

from conftest import World

FCTL_KEYS = {
    "credential",
    "origin",
    "why",
    "stack_uri",
    "token_expiry",
    "login_needed",
    "problem",
    "remembered_failure",
    "profile",
    "organization",
    "stack",
    "membership_uri",
    "stack_access_expiry",
    "logged_in_at",
    "refresh_token_age_seconds",
    "refresh_token_lifetime_seconds",
    "refresh_token_expiry",
}
CLIENT_KEYS = {
    "credential",
    "origin",
    "why",
    "stack_uri",
    "token_expiry",
    "login_needed",
    "problem",
    "remembered_failure",
    "client_id",
    "scopes_requested",
    "scopes_granted",
    "secret_from",
}


def secrets_of(world: World) -> list[str]:
    """Every token and refresh token the world holds or issued."""
    profile = world.profile
    values = [
        profile.stack_access_token,
        profile.stack_refresh_token,
        profile.root_access_token,
        profile.root_refresh_token,
        profile.id_token,
    ]
    return values + [token.access_token for token in world.stack.issued_tokens]


def assert_no_secret(world: World, result: subprocess.CompletedProcess[str], *more: str) -> None:
    for value in [*secrets_of(world), *more]:
        assert value not in result.stdout
        assert value not in result.stderr


def parse_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_status_profile_makes_no_request_and_says_which_credential(world: World) -> None:
    result = world.run("status")
    assert result.returncode == 0, result.stderr
    assert world.requests() == 0
    assert "credential: fctl profile" in result.stdout
    assert "profile: default" in result.stdout
    assert f"stack URI: {world.stack.stack_uri}" in result.stdout
    assert_no_secret(world, result)


def test_status_profile_json_keys_and_expiries(world: World) -> None:
    assert world.run("token").returncode == 0
    world.stack.reset_counts()
    world.membership.reset_counts()
    result = world.run("status", "--output", "json")
    assert result.returncode == 0, result.stderr
    assert world.requests() == 0
    document = json.loads(result.stdout)
    assert set(document) == FCTL_KEYS
    assert document["credential"] == "fctl"
    assert (document["profile"], document["organization"], document["stack"]) == (
        "default",
        "orgA",
        "stk1",
    )
    assert document["stack_uri"] == world.stack.stack_uri
    assert document["membership_uri"] == world.membership.base_url
    assert parse_time(document["token_expiry"]) is not None
    access_exp = parse_time(document["stack_access_expiry"])
    assert access_exp is not None
    assert int(access_exp.timestamp()) == world.profile.stack_access_claims["exp"]
    assert document["refresh_token_lifetime_seconds"] == 5 * 3600
    assert 0 <= document["refresh_token_age_seconds"] < 600
    assert document["login_needed"] is False
    assert_no_secret(world, result)


def test_status_without_a_cached_token_reports_null_expiry(world: World) -> None:
    document = json.loads(world.run("status", "--output", "json").stdout)
    assert document["token_expiry"] is None


def test_status_check_says_where_the_token_came_from(world: World) -> None:
    cold = world.run("status", "--check", "--output", "json")
    assert cold.returncode == 0, cold.stderr
    check = json.loads(cold.stdout)["check"]
    assert check["origin"] == "network" and check["error"] is None
    assert check["seconds"] >= 0 and parse_time(check["expiry"]) is not None
    assert world.exchanges() == 1
    warm = world.run("status", "--check")
    assert warm.returncode == 0, warm.stderr
    assert "check: token from disk in" in warm.stdout
    assert world.exchanges() == 1
    assert_no_secret(world, cold)
    assert_no_secret(world, warm)


def test_status_check_exits_as_token(world: World) -> None:
    world.stack.reject_all_assertions()
    world.membership.revoke_all_refresh_tokens()
    result = world.run("status", "--check")
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert "check: failed" in result.stdout


def test_status_login_needed_exits_3_and_usage_errors_exit_2(world: World) -> None:
    assert world.run("status", "--output", "xml").returncode == 2
    shutil.rmtree(world.config_dir)
    result = world.run("status")
    assert result.returncode == 3
    assert "no credential found" in result.stderr
    assert world.requests() == 0


@pytest.fixture
def jwt_world(tmp_path: Path) -> Iterator[World]:
    """A stack whose tokens are JWTs carrying the granted `scope` claim."""
    with (
        MembershipServer() as membership,
        StackAuthServer(membership, access_token_format="jwt") as stack,
    ):
        yield World.at(
            tmp_path, membership, stack, write_fctl_profile(tmp_path / "fctl", membership, stack)
        )


@pytest.fixture
def narrow_client(jwt_world: World) -> ConfidentialClient:
    return jwt_world.stack.add_client("svc-narrow", "n4rr0w-s3cret", scopes=("ledger:read",))


def client_env(world: World, client: ConfidentialClient) -> dict[str, str]:
    return {
        "STACKTOKEN_STACK_URI": world.stack.stack_uri,
        "STACKTOKEN_CLIENT_ID": client.client_id,
        "STACKTOKEN_CLIENT_SECRET": client.client_secret,
        "STACKTOKEN_SCOPES": "ledger:write ledger:read",
    }


def test_status_client_scopes_granted_narrower_than_requested(
    jwt_world: World, narrow_client: ConfidentialClient
) -> None:
    world = jwt_world
    env = client_env(world, narrow_client)
    before = world.run("status", "--output", "json", env=env)
    assert before.returncode == 0, before.stderr
    assert world.requests() == 0
    document = json.loads(before.stdout)
    assert set(document) == CLIENT_KEYS
    assert document["scopes_granted"] is None and document["token_expiry"] is None
    assert world.run("token", env=env).returncode == 0
    world.stack.reset_counts()
    after = world.run("status", "--output", "json", env=env)
    assert world.requests() == 0
    document = json.loads(after.stdout)
    assert document["credential"] == "client"
    assert document["origin"] == "environment"
    assert document["client_id"] == narrow_client.client_id
    assert document["stack_uri"] == world.stack.stack_uri
    assert document["scopes_requested"] == ["ledger:read", "ledger:write"]
    assert document["scopes_granted"] == ["ledger:read"]
    assert document["secret_from"] == "$STACKTOKEN_CLIENT_SECRET"
    assert parse_time(document["token_expiry"]) is not None
    text = world.run("status", env=env)
    assert "scopes granted: ledger:read" in text.stdout
    for result in (before, after, text):
        assert_no_secret(world, result, narrow_client.client_secret)


def test_status_library_call_gives_the_same_facts(
    jwt_world: World, narrow_client: ConfidentialClient
) -> None:
    world = jwt_world
    env = world.env(client_env(world, narrow_client))
    assert world.run("token", env=client_env(world, narrow_client)).returncode == 0
    found = stacktoken.status(environ=env, cache_dir=world.cache_dir)
    assert isinstance(found, stacktoken.CredentialStatus)
    assert found.credential == "client"
    assert found.scopes_granted == ("ledger:read",)
    assert found.check is None
    assert narrow_client.client_secret not in repr(found)
    checked = stacktoken.status(environ=env, cache_dir=world.cache_dir, check=True)
    assert checked.check is not None and checked.check.origin == "disk"
