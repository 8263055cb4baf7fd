"""The credential chain (docs/design.md §14): core's decision, table-driven, and
`stacktoken token` / `TokenSource.default()` end to end against the loopback servers."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import stacktoken
from oauth_servers import ConfidentialClient, MembershipServer, StackAuthServer, write_fctl_profile
from stacktoken.core._chain import Credential, chained_options, choose_credential, with_profile
from stacktoken.core._errors import AuthRequired, LocalError, UsageError
from stacktoken.shell._warm import warm_output

from conftest import World

ERROR_PREFIX = "stacktoken: error: "
URI, ID, SECRET, SECRET_FILE = (
    "STACKTOKEN_STACK_URI",
    "STACKTOKEN_CLIENT_ID",
    "STACKTOKEN_CLIENT_SECRET",
    "STACKTOKEN_CLIENT_SECRET_FILE",
)
FULL = {URI: "https://s.example", ID: "svc", SECRET: "x"}


# -- core: the decision ------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "explicit_client", "explicit_fctl", "kind", "origin"),
    [
        ({}, False, False, "fctl", "profile"),
        (FULL, False, False, "client", "environment"),
        ({URI: "u", ID: "i", SECRET_FILE: "/f"}, False, False, "client", "environment"),
        ({SECRET: "x"}, False, False, "fctl", "profile"),  # the secret alone is no credential
        (FULL, True, False, "client", "arguments"),
        (FULL, False, True, "fctl", "arguments"),
        ({**FULL, "STACKTOKEN_CREDENTIAL": "fctl"}, False, False, "fctl", "profile"),
        ({URI: "u", "STACKTOKEN_CREDENTIAL": "fctl"}, False, False, "fctl", "profile"),
        ({**FULL, "STACKTOKEN_CREDENTIAL": "client"}, False, False, "client", "environment"),
        ({URI: "", ID: "", SECRET: ""}, False, False, "fctl", "profile"),  # empty is unset
    ],
)
def test_choose_credential_picks(
    environ: dict[str, str], explicit_client: bool, explicit_fctl: bool, kind: str, origin: str
) -> None:
    chosen = choose_credential(
        explicit_client=explicit_client, explicit_fctl=explicit_fctl, environ=environ
    )
    assert isinstance(chosen, Credential), chosen
    assert (chosen.kind, chosen.origin) == (kind, origin)


@pytest.mark.parametrize(
    ("environ", "missing"),
    [
        ({URI: "u", ID: "i"}, "$STACKTOKEN_CLIENT_SECRET"),
        ({URI: "u", SECRET: "x"}, "$STACKTOKEN_CLIENT_ID"),
        ({ID: "i", SECRET: "x"}, "$STACKTOKEN_STACK_URI"),
        ({ID: "i", SECRET_FILE: "/f"}, "$STACKTOKEN_STACK_URI"),
        ({URI: "u"}, "$STACKTOKEN_CLIENT_ID"),
    ],
)
def test_choose_credential_half_a_machine_credential_is_a_usage_error(
    environ: dict[str, str], missing: str
) -> None:
    chosen = choose_credential(explicit_client=False, explicit_fctl=False, environ=environ)
    assert isinstance(chosen, UsageError)
    assert missing in chosen.message
    assert "half a machine credential" in chosen.message


@pytest.mark.parametrize(
    ("environ", "explicit_client", "explicit_fctl", "error"),
    [
        ({"STACKTOKEN_CREDENTIAL": "aws"}, False, False, UsageError),
        ({"STACKTOKEN_CREDENTIAL": "client"}, False, False, AuthRequired),
        ({"STACKTOKEN_CREDENTIAL": "client"}, False, True, UsageError),
        ({"STACKTOKEN_CREDENTIAL": "fctl"}, True, False, UsageError),
    ],
)
def test_choose_credential_pin_refusals(
    environ: dict[str, str], explicit_client: bool, explicit_fctl: bool, error: type
) -> None:
    chosen = choose_credential(
        explicit_client=explicit_client, explicit_fctl=explicit_fctl, environ=environ
    )
    assert isinstance(chosen, error), chosen


def test_with_profile_nothing_found_names_every_source() -> None:
    chosen = choose_credential(explicit_client=False, explicit_fctl=False, environ={})
    assert isinstance(chosen, Credential)
    found = with_profile(chosen, profile="p", problem=AuthRequired(message="no profile 'p'"))
    assert isinstance(found, AuthRequired)
    for fragment in ("no credential found", "arguments:", "environment:", "fctl profile 'p'"):
        assert fragment in found.message
    assert with_profile(chosen, profile="p", problem=None) is chosen
    local = LocalError(message="refusing")
    assert with_profile(chosen, profile="p", problem=local) is local


def test_chained_options_fills_the_environment_credential_in() -> None:
    environ = {**FULL, "STACKTOKEN_SCOPES": "b a", SECRET: ""}
    environ[SECRET_FILE] = "/run/secret"
    assert chained_options({"output": "json"}, environ) == {
        "output": "json",
        "stack_uri": "https://s.example",
        "client_id": "svc",
        "scope": ["a", "b"],  # as token_options reads repeated --scope
        "client_secret_file": "/run/secret",
    }
    assert chained_options({"profile": "p"}, FULL) == {"profile": "p"}
    assert chained_options({}, {URI: "u"}) is None  # the full CLI reports it


# -- end to end ----------------------------------------------------------------------


@pytest.fixture
def client(world: World) -> ConfidentialClient:
    return world.stack.add_client("svc-chain", "s3cr3t-chain", scopes=("ledger:read",))


def machine_env(world: World, client: ConfidentialClient) -> dict[str, str]:
    return {
        URI: world.stack.stack_uri,
        ID: client.client_id,
        SECRET: client.client_secret,
    }


def error_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(ERROR_PREFIX), result.stderr
    return lines[0]


def test_token_uses_the_environment_machine_credential_then_serves_it_warm(
    world: World, client: ConfidentialClient
) -> None:
    env = machine_env(world, client)
    first = world.run("token", env=env)
    assert first.returncode == 0, first.stderr
    assert world.stack.client_credentials_count == 1
    assert world.stack.count(world.stack.TOKEN) == 1  # no exchange for the profile
    world.stack.reset_counts()
    world.membership.reset_counts()
    second = world.run("token", env=env)
    assert second.returncode == 0 and second.stdout == first.stdout
    assert world.requests() == 0
    # The warm path itself answers (as fast as with the flags: the same store read).
    full_env = world.env(env)
    argv = ["--cache-dir", str(world.cache_dir), "token"]
    assert warm_output(argv, full_env, now=datetime.now(UTC)) == first.stdout
    flags = [*argv, "--stack-uri", world.stack.stack_uri, "--client-id", client.client_id]
    assert warm_output(flags, world.env({SECRET: client.client_secret}), now=datetime.now(UTC))
    assert world.requests() == 0


def test_token_environment_scopes_and_secret_file(
    world: World, client: ConfidentialClient, tmp_path: Path
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(client.client_secret + "\n")
    env = {
        URI: world.stack.stack_uri,
        ID: client.client_id,
        SECRET_FILE: str(secret_file),
        "STACKTOKEN_SCOPES": "ledger:read",
    }
    result = world.run("token", env=env)
    assert result.returncode == 0, result.stderr
    assert [r.scope for r in world.stack.client_credentials_requests] == ["ledger:read"]


@pytest.mark.parametrize(
    ("present", "missing"),
    [
        ((URI, ID), "$STACKTOKEN_CLIENT_SECRET"),
        ((URI, SECRET), "$STACKTOKEN_CLIENT_ID"),
        ((ID, SECRET), "$STACKTOKEN_STACK_URI"),
    ],
)
def test_token_half_configured_environment_exits_2_naming_the_missing_variable(
    world: World, client: ConfidentialClient, present: tuple[str, str], missing: str
) -> None:
    env = {name: value for name, value in machine_env(world, client).items() if name in present}
    line = error_line(world.run("token", env=env), 2)
    assert missing in line
    assert client.client_secret not in line
    assert world.requests() == 0  # never a silent fall-through to the profile


def test_token_secret_alone_falls_through_to_the_profile(
    world: World, client: ConfidentialClient
) -> None:
    result = world.run("token", env={SECRET: client.client_secret})
    assert result.returncode == 0, result.stderr
    assert world.stack.client_credentials_count == 0
    assert world.exchanges() == 1


def test_token_pin_fctl_ignores_the_environment_and_pin_client_needs_one(
    world: World, client: ConfidentialClient
) -> None:
    env = {**machine_env(world, client), "STACKTOKEN_CREDENTIAL": "fctl"}
    assert world.run("token", env=env).returncode == 0
    assert world.stack.client_credentials_count == 0
    world.stack.reset_counts()
    world.membership.reset_counts()
    line = error_line(world.run("token", env={"STACKTOKEN_CREDENTIAL": "client"}), 3)
    assert "STACKTOKEN_CREDENTIAL=client" in line
    assert error_line(world.run("token", env={"STACKTOKEN_CREDENTIAL": "x"}), 2)
    assert world.requests() == 0


def test_token_nothing_found_exits_3_naming_each_source_with_zero_requests(
    world: World, tmp_path: Path
) -> None:
    shutil.rmtree(world.config_dir)
    line = error_line(world.run("token"), 3)
    for fragment in ("no credential found", "arguments:", "environment:", "fctl profile"):
        assert fragment in line, line
    assert "stacktoken login" in line
    assert world.requests() == 0


@pytest.fixture
def monkey_env(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    for name, value in world.env().items():
        monkeypatch.setenv(name, value)
    for name in (URI, ID, SECRET, SECRET_FILE, "STACKTOKEN_CREDENTIAL", "STACKTOKEN_SCOPES"):
        monkeypatch.delenv(name, raising=False)
    yield world


def test_default_source_follows_the_chain(
    monkey_env: World, client: ConfidentialClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = monkey_env
    with stacktoken.TokenSource.default(cache_dir=world.cache_dir) as source:
        assert source.stack_uri == world.stack.stack_uri
        assert source.token()
    assert world.exchanges() == 1 and world.stack.client_credentials_count == 0
    for name, value in machine_env(world, client).items():
        monkeypatch.setenv(name, value)
    with stacktoken.TokenSource.default(cache_dir=world.cache_dir) as source:
        assert source.token()
    assert world.stack.client_credentials_count == 1
    monkeypatch.delenv(SECRET)
    with pytest.raises(stacktoken.InvalidUsageError, match="STACKTOKEN_CLIENT_SECRET"):
        stacktoken.TokenSource.default(cache_dir=world.cache_dir)


def test_default_source_with_an_empty_config_dir_makes_no_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with MembershipServer() as membership, StackAuthServer(membership) as stack:
        config = tmp_path / "fctl"
        write_fctl_profile(config, membership, stack)
        shutil.rmtree(config)
        monkeypatch.setenv("FCTL_CONFIG_DIR", str(config))
        for name in (URI, ID, SECRET, SECRET_FILE, "STACKTOKEN_CREDENTIAL"):
            monkeypatch.delenv(name, raising=False)
        with pytest.raises(stacktoken.AuthenticationRequiredError, match="no credential found"):
            stacktoken.TokenSource.default(cache_dir=tmp_path / "cache")
        assert membership.total_requests + stack.total_requests == 0


def test_formance_sdk_without_a_source_uses_the_chain(
    monkey_env: World, client: ConfidentialClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ledger_stub import LedgerStub

    world = monkey_env
    ledger = LedgerStub(world.stack)
    for name, value in machine_env(world, client).items():
        monkeypatch.setenv(name, value)
    with stacktoken.formance_sdk() as sdk:
        assert sdk.sdk_configuration.server_url == world.stack.stack_uri
        info = sdk.ledger.v2.get_info()
    assert info.v2_config_info is not None
    assert ledger.accepted == 1
    assert world.stack.client_credentials_count == 1 and world.exchanges() == 1
