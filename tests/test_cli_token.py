"""`stacktoken token` as a subprocess against loopback servers: counts, TTLs, refresh, output."""

from __future__ import annotations

import json
import math
import shutil
import stat
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from oauth_servers import (
    Fault,
    MembershipServer,
    StackAuthServer,
    decode_jwt_unverified,
    write_fctl_profile,
)

from conftest import World

ERROR_PREFIX = "stacktoken: error: "
STACK_FOLDER_FILES = {"accesses.json", "api_token_cache.json", "api_token_cache.json.lock"}


def run(
    world: World, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the CLI; whatever happens, no traceback reaches the user."""
    result = world.run(*args, env=env)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def assert_error(result: subprocess.CompletedProcess[str], code: int, *fragments: str) -> str:
    """Exit `code`, nothing on stdout, exactly one `stacktoken: error: ` line on stderr."""
    assert result.returncode == code, (result.returncode, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.endswith("\n")
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(ERROR_PREFIX), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def issued(world: World) -> list[str]:
    return [token.access_token for token in world.stack.issued_tokens]


def cache_document(world: World) -> dict[str, object]:
    document = json.loads(world.profile.api_token_cache_path.read_text())
    assert isinstance(document, dict)
    return document


def saved_at(world: World) -> datetime:
    text = cache_document(world)["savedAt"]
    assert isinstance(text, str)
    return datetime.fromisoformat(text)


def new_world(tmp_path: Path, membership: MembershipServer, stack: StackAuthServer) -> World:
    return World.at(
        tmp_path, membership, stack, write_fctl_profile(tmp_path / "fctl", membership, stack)
    )


# -- cold and warm -------------------------------------------------------------


def test_token_cold_run_discovers_and_exchanges_once(world: World) -> None:
    result = run(world, "token")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert world.stack.counts() == {world.stack.DISCOVERY: 1, world.stack.TOKEN: 1}
    assert world.membership.total_requests == 0
    assert result.stdout == issued(world)[0] + "\n"
    exchange = world.stack.requests[-1]
    assert exchange.form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert exchange.form["assertion"] == world.profile.stack_access_token
    assert set(exchange.form["scope"].split()) == {"openid", "email"}


def test_token_warm_run_makes_no_request(world: World) -> None:
    cold = run(world, "token")
    assert cold.returncode == 0, cold.stderr
    before = world.requests()
    for _ in range(2):
        warm = run(world, "token")
        assert warm.returncode == 0, warm.stderr
        assert warm.stdout == cold.stdout
    assert world.requests() == before


def test_token_cold_run_leaves_private_files_only(world: World) -> None:
    result = run(world, "token")
    assert result.returncode == 0, result.stderr
    stack_dir = world.profile.stack_dir
    assert set(p.name for p in stack_dir.iterdir()) <= STACK_FOLDER_FILES
    assert {"accesses.json", "api_token_cache.json"} <= set(p.name for p in stack_dir.iterdir())
    for path in stack_dir.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(stack_dir.stat().st_mode) == 0o700
    document = cache_document(world)
    assert document["accessToken"] == result.stdout.strip()
    assert document["tokenType"] == "Bearer"
    assert {"accessToken", "tokenType", "expiry", "savedAt", "stackURI"} == set(document)
    assert list(world.cache_dir.glob("discovery/*.json")), "stack discovery not cached"


def test_token_second_cold_run_reuses_discovery_document(world: World) -> None:
    assert run(world, "token").returncode == 0
    assert run(world, "cache", "clear").returncode == 0
    result = run(world, "token")
    assert result.returncode == 0, result.stderr
    assert world.stack.count(world.stack.DISCOVERY) == 1
    assert world.exchanges() == 2


# -- TTL -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (("--stack-token-cache-ttl", "0"), {}),
        (("--stack-token-cache-ttl=0s",), {}),
        ((), {"STACK_TOKEN_CACHE_TTL": "0"}),
        ((), {"STACK_TOKEN_CACHE_TTL": "0ms"}),
    ],
    ids=["flag", "flag-0s", "env", "env-0ms"],
)
def test_token_ttl_zero_exchanges_every_time_and_writes_nothing(
    world: World, args: tuple[str, ...], env: dict[str, str]
) -> None:
    outputs = []
    for expected in (1, 2, 3):
        result = run(world, "token", *args, env=env)
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout)
        assert world.exchanges() == expected
    assert len(set(outputs)) == 3
    assert sorted(p.name for p in world.profile.stack_dir.iterdir()) == ["accesses.json"]


def test_token_ttl_flag_overrides_env(world: World) -> None:
    assert run(world, "token").returncode == 0
    result = run(world, "token", "--stack-token-cache-ttl=5m", env={"STACK_TOKEN_CACHE_TTL": "0"})
    assert result.returncode == 0, result.stderr
    assert world.exchanges() == 1
    result = run(world, "token", env={"STACK_TOKEN_CACHE_TTL": "0"})
    assert world.exchanges() == 2


def test_token_short_ttl_expires(world: World) -> None:
    cold = run(world, "token", "--stack-token-cache-ttl=1s")
    assert cold.returncode == 0, cold.stderr
    wait = (saved_at(world) + timedelta(seconds=1.05) - datetime.now(UTC)).total_seconds()
    time.sleep(min(max(wait, 0.0), 1.1))
    expired = run(world, "token", "--stack-token-cache-ttl=1s")
    assert expired.returncode == 0, expired.stderr
    assert world.exchanges() == 2
    assert expired.stdout != cold.stdout
    # The new entry is fresh for a longer TTL: warm again.
    warm = run(world, "token", "--stack-token-cache-ttl=1h")
    assert warm.stdout == expired.stdout
    assert world.exchanges() == 2


def test_token_valid_ttl_spellings_serve_warm(world: World) -> None:
    assert run(world, "token").returncode == 0
    for ttl in ("300", "5m", "1h30m", "1.5h", "90s", "2h0m0.5s"):
        warm = run(world, "token", f"--stack-token-cache-ttl={ttl}")
        assert warm.returncode == 0, (ttl, warm.stderr)
        env_warm = run(world, "token", env={"STACK_TOKEN_CACHE_TTL": ttl})
        assert env_warm.returncode == 0, (ttl, env_warm.stderr)
    assert world.exchanges() == 1


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (("--stack-token-cache-ttl=-5m",), {}),
        (("--stack-token-cache-ttl", "abc"), {}),
        (("--stack-token-cache-ttl=5x",), {}),
        (("--stack-token-cache-ttl=",), {}),
        (("--stack-token-cache-ttl=1.5.5s",), {}),
        ((), {"STACK_TOKEN_CACHE_TTL": "-5m"}),
        ((), {"STACK_TOKEN_CACHE_TTL": "abc"}),
    ],
)
def test_token_bad_ttl_is_usage_error(
    world: World, args: tuple[str, ...], env: dict[str, str]
) -> None:
    assert_error(run(world, "token", *args, env=env), 2)
    assert world.requests() == 0
    assert not world.profile.api_token_cache_path.exists()


# -- the stack access token ------------------------------------------------------


def test_token_expired_access_refreshes_then_exchanges(tmp_path: Path) -> None:
    with MembershipServer() as membership, StackAuthServer(membership) as stack:
        profile = write_fctl_profile(tmp_path / "fctl", membership, stack, stack_access_exp_in=-60)
        world = World.at(tmp_path, membership, stack, profile)
        original = json.loads(profile.accesses_path.read_text())
        original["fctlFutureField"] = {"kept": [1, 2, 3]}
        original["claims"]["custom_claim"] = "x"
        profile.accesses_path.write_text(json.dumps(original))

        result = run(world, "token")
        assert result.returncode == 0, result.stderr
        assert membership.counts() == {membership.DISCOVERY: 1, membership.TOKEN: 1}
        assert stack.counts() == {stack.DISCOVERY: 1, stack.TOKEN: 1}
        refresh = membership.requests[-1].form
        assert refresh["grant_type"] == "refresh_token"
        assert refresh["refresh_token"] == profile.stack_refresh_token
        assert refresh["client_id"] == "fctl"

        rewritten = json.loads(profile.accesses_path.read_text())
        assert stat.S_IMODE(profile.accesses_path.stat().st_mode) == 0o600
        assert rewritten["fctlFutureField"] == {"kept": [1, 2, 3]}
        assert rewritten["token"] != profile.stack_access_token
        assert rewritten["refreshToken"] != profile.stack_refresh_token
        assert membership.is_refresh_token_valid(rewritten["refreshToken"])
        assert not membership.is_refresh_token_valid(profile.stack_refresh_token)
        assert rewritten["claims"]["exp"] > time.time() + 60
        # The exchange used the refreshed token, not the expired one.
        assert stack.requests[-1].form["assertion"] == rewritten["token"]

        # The next cold run uses the refreshed token: no membership request at all.
        assert run(world, "cache", "clear").returncode == 0
        assert run(world, "token").returncode == 0
        assert membership.total_requests == 2
        assert stack.count(stack.TOKEN) == 2


@pytest.mark.parametrize(("expires_in", "refreshes"), [(-60, True), (3600, False)])
def test_token_access_expiry_read_from_jwt_without_claims(
    tmp_path: Path, expires_in: int, refreshes: bool
) -> None:
    """Without `claims`, `exp` comes from the JWT payload, read without verifying it."""
    with MembershipServer() as membership, StackAuthServer(membership) as stack:
        profile = write_fctl_profile(
            tmp_path / "fctl", membership, stack, stack_access_exp_in=expires_in
        )
        world = World.at(tmp_path, membership, stack, profile)
        document = json.loads(profile.accesses_path.read_text())
        del document["claims"]
        profile.accesses_path.write_text(json.dumps(document))
        result = run(world, "token")
        assert result.returncode == 0, result.stderr
        assert membership.count(membership.TOKEN) == (1 if refreshes else 0)
        used = stack.requests[-1].form["assertion"]
        assert (used != profile.stack_access_token) is refreshes


def test_token_refresh_rejected_asks_for_login(tmp_path: Path) -> None:
    with MembershipServer() as membership, StackAuthServer(membership) as stack:
        profile = write_fctl_profile(tmp_path / "fctl", membership, stack, stack_access_exp_in=-60)
        world = World.at(tmp_path, membership, stack, profile)
        before = profile.accesses_path.read_bytes()
        membership.revoke_all_refresh_tokens()
        assert_error(run(world, "token"), 3, "stacktoken login")
        assert membership.count(membership.TOKEN) == 1
        assert stack.count(stack.TOKEN) == 0
        assert profile.accesses_path.read_bytes() == before
        assert not profile.api_token_cache_path.exists()


def test_token_valid_access_never_discovers_membership(world: World) -> None:
    for args in (("token",), ("token", "--stack-token-cache-ttl=0")):
        assert run(world, *args).returncode == 0
    assert world.membership.total_requests == 0
    assert world.membership.count(world.membership.DISCOVERY) == 0


def test_token_exchange_rejected_refreshes_once_then_asks_for_login(world: World) -> None:
    world.stack.reject_all_assertions()
    assert_error(run(world, "token"), 3, "stacktoken login")
    assert world.exchanges() == 2
    assert world.membership.count(world.membership.TOKEN) == 1
    assert not world.profile.api_token_cache_path.exists()


def test_token_exchange_rejected_then_refreshed_assertion_accepted(world: World) -> None:
    # Tokens minted so far are refused; one minted after the cut-off (iat is in
    # whole seconds) is accepted.
    cut_off = math.floor(time.time()) + 1
    world.stack.reject_assertions_issued_before(cut_off)
    time.sleep(max(0.0, cut_off - time.time()) + 0.01)
    result = run(world, "token")
    assert result.returncode == 0, result.stderr
    assert world.exchanges() == 2
    assert world.membership.count(world.membership.TOKEN) == 1
    rewritten = json.loads(world.profile.accesses_path.read_text())
    assert rewritten["refreshToken"] != world.profile.stack_refresh_token


# -- output --------------------------------------------------------------------------


def test_token_text_output_is_token_alone(world: World) -> None:
    for _ in ("cold", "warm"):
        result = run(world, "token", "--output", "text")
        assert result.returncode == 0, result.stderr
        assert result.stdout == issued(world)[0] + "\n"
        assert len(result.stdout.splitlines()) == 1


def test_token_json_output_shape(world: World) -> None:
    started = datetime.now(UTC)
    cold = run(world, "token", "--output", "json")
    warm = run(world, "token", "--output=json")
    assert cold.returncode == 0 and warm.returncode == 0, (cold.stderr, warm.stderr)
    assert len(cold.stdout.splitlines()) == 1
    document = json.loads(cold.stdout)
    assert set(document) == {"access_token", "token_type", "expiry", "expires_on", "stack_uri"}
    assert document["stack_uri"] == world.stack.origin
    assert document["expires_on"] == int(
        datetime.fromisoformat(document["expiry"].replace("Z", "+00:00")).timestamp()
    )
    assert json.loads(warm.stdout) == document
    assert document["access_token"] == issued(world)[0]
    assert document["token_type"] == "Bearer"
    expiry_text = document["expiry"]
    assert isinstance(expiry_text, str) and expiry_text.endswith("Z")
    expiry = datetime.fromisoformat(expiry_text)
    assert expiry.utcoffset() == timedelta(0)
    lifetime = expiry - started
    assert timedelta(minutes=59) < lifetime < timedelta(minutes=61)
    assert json.loads(warm.stdout) == document
    assert world.exchanges() == 1


def test_token_bad_output_is_usage_error(world: World) -> None:
    assert_error(run(world, "token", "--output", "yaml"), 2)


# -- not logged in ---------------------------------------------------------------------


def _drop_profile(world: World) -> None:
    world.profile.profile_path.unlink()


def _null_root_tokens(world: World) -> None:
    document = json.loads(world.profile.profile_path.read_text())
    document["rootTokens"] = None
    world.profile.profile_path.write_text(json.dumps(document))


def _no_root_tokens(world: World) -> None:
    document = json.loads(world.profile.profile_path.read_text())
    del document["rootTokens"]
    world.profile.profile_path.write_text(json.dumps(document))


def _no_accesses(world: World) -> None:
    world.profile.accesses_path.unlink()


LOG_OUTS = {
    "no-profile-json": _drop_profile,
    "root-tokens-null": _null_root_tokens,
    "root-tokens-missing": _no_root_tokens,
    "no-accesses-json": _no_accesses,
}


@pytest.mark.parametrize(
    ("log_out", "warm_cache"),
    [
        pytest.param(log_out, warm, id=f"{name}-{'warm' if warm else 'cold'}")
        for name, log_out in LOG_OUTS.items()
        for warm in (False, True)
        # A warm entry is served without reading accesses.json (docs/design.md §1 step 2).
        if not (warm and log_out is _no_accesses)
    ],
)
def test_token_not_logged_in_exits_3(
    world: World, log_out: Callable[[World], None], warm_cache: bool
) -> None:
    if warm_cache:
        assert run(world, "token").returncode == 0
    before = world.requests()
    log_out(world)
    assert_error(run(world, "token"), 3, "stacktoken login")
    assert world.requests() == before


def test_token_unknown_profile_exits_3(world: World) -> None:
    result = world.run(
        "token", global_args=("--cache-dir", str(world.cache_dir), "--profile", "other")
    )
    assert_error(result, 3, "stacktoken login")


def test_token_stack_not_in_profile_exits_3(world: World) -> None:
    assert_error(run(world, "token", "--stack", "stk-unknown"), 3, "stacktoken login")


def test_token_several_organizations_without_default_is_usage_error(tmp_path: Path) -> None:
    with MembershipServer() as membership, StackAuthServer(membership) as stack:
        write_fctl_profile(tmp_path / "fctl", membership, stack, org="orgA")
        profile = write_fctl_profile(tmp_path / "fctl", membership, stack, org="orgB")
        world = World.at(tmp_path, membership, stack, profile)
        document = json.loads(profile.profile_path.read_text())
        del document["defaultOrganization"]
        profile.profile_path.write_text(json.dumps(document))
        assert_error(run(world, "token"), 2, "--organization")
        result = run(world, "token", "--organization", "orgA")
        assert result.returncode == 0, result.stderr


def test_token_jwt_without_expires_in_uses_its_exp(tmp_path: Path) -> None:
    with (
        MembershipServer() as membership,
        StackAuthServer(
            membership, expires_in=None, access_token_format="jwt", jwt_lifetime=1800
        ) as stack,
    ):
        world = new_world(tmp_path, membership, stack)
        cold = run(world, "token", "--output", "json")
        assert cold.returncode == 0, cold.stderr
        document = json.loads(cold.stdout)
        exp = decode_jwt_unverified(document["access_token"])["exp"]
        assert datetime.fromisoformat(document["expiry"]) == datetime.fromtimestamp(exp, UTC)
        warm = run(world, "token", "--output", "json")
        assert json.loads(warm.stdout) == document
        assert world.exchanges() == 1


def test_token_without_known_expiry_is_printed_not_cached(tmp_path: Path) -> None:
    with MembershipServer() as membership, StackAuthServer(membership, expires_in=None) as stack:
        world = new_world(tmp_path, membership, stack)
        for expected in (1, 2):
            result = run(world, "token")
            assert result.returncode == 0, result.stderr
            assert result.stdout.strip() == issued(world)[-1]
            assert world.exchanges() == expected
        assert not world.profile.api_token_cache_path.exists()


# -- failures of the servers --------------------------------------------------------------


def test_token_stack_server_down_exits_1(world: World) -> None:
    world.stack.stop()
    assert_error(run(world, "token"), 1)


@pytest.mark.parametrize(
    ("endpoint", "fault"),
    [
        ("DISCOVERY", Fault.garbage()),
        ("DISCOVERY", Fault.wrong_issuer()),
        ("TOKEN", Fault.html_error(500)),
        ("TOKEN", Fault.missing_fields("access_token")),
        ("TOKEN", Fault.redirect("http://127.0.0.1:1/elsewhere")),
    ],
    ids=[
        "discovery-garbage",
        "issuer-mismatch",
        "token-html-500",
        "token-no-access-token",
        "redirect",
    ],
)
def test_token_protocol_failure_exits_1(world: World, endpoint: str, fault: Fault) -> None:
    name = getattr(world.stack, endpoint)
    assert isinstance(name, str)
    world.stack.inject(name, *([fault] * 5))
    assert_error(run(world, "token"), 1)
    assert not world.profile.api_token_cache_path.exists()


def test_token_transient_503_is_retried(world: World) -> None:
    world.stack.inject(world.stack.TOKEN, Fault.status(503))
    result = run(world, "token")
    assert result.returncode == 0, result.stderr
    assert world.exchanges() == 2


# -- command-line shape ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("token", "--debug"),
        ("token", "--profile", "default"),
        ("token", "--config-dir", "/tmp"),
        ("--organization", "orgA", "token"),
        ("--stack", "stk1", "token"),
        ("cache", "list", "--profile", "default"),
        ("cache", "clear", "--debug"),
        ("token", "extra"),
        ("nope",),
        (),
        ("cache",),
    ],
)
def test_cli_global_options_before_command(world: World, args: tuple[str, ...]) -> None:
    assert_error(run(world, *args), 2)
    assert world.requests() == 0


def test_cli_config_dir_flag_beats_env(world: World, tmp_path: Path) -> None:
    empty = tmp_path / "empty-config"
    empty.mkdir()
    result = world.run(
        "token",
        global_args=("--config-dir", str(world.config_dir)),
        env={"FCTL_CONFIG_DIR": str(empty)},
    )
    assert result.returncode == 0, result.stderr
    result = world.run("token", global_args=("--config-dir", str(empty)))
    assert_error(result, 3, "stacktoken login")


def test_cli_help_exits_0(world: World) -> None:
    for args in (("--help",), ("token", "--help"), ("cache", "--help")):
        result = run(world, *args)
        assert result.returncode == 0, result.stderr
        assert "usage" in result.stdout.lower()


def test_cli_default_config_dir_is_home_config(world: World, tmp_path: Path) -> None:
    shutil.copytree(world.config_dir, tmp_path / "home/.config/formance/fctl")
    result = run(world, "token", env={"FCTL_CONFIG_DIR": ""})
    assert result.returncode == 0, result.stderr
    written = tmp_path / "home/.config/formance/fctl" / _cache_relative(world)
    assert written.exists()
    assert not world.profile.api_token_cache_path.exists()


def test_cli_default_config_dir_ignores_xdg_config_home_as_fctl_does(
    world: World, tmp_path: Path
) -> None:
    """fctl's `cmd/root.go` uses `$HOME/.config/formance/fctl` whatever XDG says:
    honouring XDG_CONFIG_HOME would split the cache the two tools share."""
    shutil.copytree(world.config_dir, tmp_path / "home/.config/formance/fctl")
    shutil.copytree(world.config_dir, tmp_path / "xdg/formance/fctl")
    result = run(
        world, "token", env={"FCTL_CONFIG_DIR": "", "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "home/.config/formance/fctl" / _cache_relative(world)).exists()
    assert not (tmp_path / "xdg/formance/fctl" / _cache_relative(world)).exists()


def _cache_relative(world: World) -> Path:
    return world.profile.api_token_cache_path.relative_to(world.config_dir)


def test_cli_default_discovery_cache_dir(world: World) -> None:
    result = world.run("token", global_args=())
    assert result.returncode == 0, result.stderr
    documents = list((world.home / ".cache" / "stacktoken").rglob("*.json"))
    assert len(documents) == 1
    assert stat.S_IMODE(documents[0].stat().st_mode) == 0o600
    assert not world.cache_dir.exists()
