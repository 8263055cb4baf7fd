"""`--store URL` and `$STACKTOKEN_REDIS_URL` on the command line (docs/design.md §11).

Machine credentials only: an fctl profile's token belongs to one user and
stays on the local disk (the flag is refused, the variable ignored). The warm
path serves a usable entry of the host's disk without Redis, as the full CLI
would: the disk is the level above the shared store.
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from oauth_servers import CLIENT_CREDENTIALS_GRANT_TYPE, StackAuthServer
from redis_fleet import Credential, cli_args, cli_env
from redis_server import RedisServer, redis_server
from stacktoken.core._commands import store_url_from
from stacktoken.shell._warm import warm_output

from conftest import CLI_TIMEOUT_SECONDS, World

__all__ = ["redis_server"]

DEAD_REDIS = "redis://:dead-pass-0123456789@127.0.0.1:1/0"


@pytest.fixture
def credential(world: World) -> Credential:
    client = world.stack.add_client("svc-cli", "cli-secret-0123456789abcdef")
    return Credential(world.stack.stack_uri, client.client_id, client.client_secret)


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        args, capture_output=True, text=True, env=env, timeout=CLI_TIMEOUT_SECONDS, check=False
    )
    assert "Traceback" not in result.stderr
    return result


def requests(stack: StackAuthServer) -> int:
    return stack.count_grant(CLIENT_CREDENTIALS_GRANT_TYPE)


def test_cli_store_from_env_shares_the_token_between_hosts(
    tmp_path: Path, world: World, credential: Credential, redis_server: RedisServer
) -> None:
    env = cli_env(credential, {"STACKTOKEN_REDIS_URL": redis_server.url})
    first = run(cli_args(credential, tmp_path / "a", None), env)
    second = run(cli_args(credential, tmp_path / "b", None), env)
    assert (first.returncode, second.returncode) == (0, 0), first.stderr + second.stderr
    assert first.stdout == second.stdout
    assert requests(world.stack) == 1


def test_cli_store_flag_beats_env_and_empty_flag_turns_it_off(
    tmp_path: Path, world: World, credential: Credential, redis_server: RedisServer
) -> None:
    env = cli_env(credential, {"STACKTOKEN_REDIS_URL": DEAD_REDIS})
    first = run(cli_args(credential, tmp_path / "a", redis_server.url), env)
    assert first.returncode == 0, first.stderr
    assert redis_server.client().keys("*")
    off = run(cli_args(credential, tmp_path / "b", "", debug=True), env)
    assert off.returncode == 0, off.stderr
    assert "redis" not in off.stderr
    assert requests(world.stack) == 2


def test_cli_store_dead_redis_call_succeeds_without_password_in_logs(
    tmp_path: Path, world: World, credential: Credential
) -> None:
    env = cli_env(credential, {"STACKTOKEN_REDIS_URL": DEAD_REDIS})
    result = run(cli_args(credential, tmp_path / "a", None, debug=True), env)
    assert result.returncode == 0, result.stderr
    assert "redis read failed: ConnectionError" in result.stderr
    assert "RedisStore(redis://:***@127.0.0.1:1/0)" in result.stderr
    assert "dead-pass" not in result.stderr
    assert result.stdout.strip() not in result.stderr
    assert requests(world.stack) == 1


@pytest.mark.parametrize(
    "url", ["http://:dead-pass-0123456789@127.0.0.1:1/0", "dead-pass-0123456789"]
)
def test_cli_store_not_a_redis_url_is_a_usage_error_that_hides_it(
    tmp_path: Path, world: World, credential: Credential, url: str
) -> None:
    result = run(cli_args(credential, tmp_path / "a", url), cli_env(credential))
    assert result.returncode == 2
    assert result.stderr.startswith("stacktoken: error: --store must be a redis:// or rediss://")
    assert "dead-pass" not in result.stderr
    assert requests(world.stack) == 0


def test_cli_store_refused_for_an_fctl_profile(world: World) -> None:
    result = world.run("token", "--store", DEAD_REDIS)
    assert result.returncode == 2
    assert "fctl-profile tokens belong to one user and stay on the local disk" in result.stderr
    assert "dead-pass" not in result.stderr


def test_cli_store_env_ignored_for_an_fctl_profile(world: World) -> None:
    result = world.run("--debug", "token", env={"STACKTOKEN_REDIS_URL": DEAD_REDIS})
    assert result.returncode == 0, result.stderr
    assert "$STACKTOKEN_REDIS_URL ignored: fctl-profile tokens stay on the local disk" in (
        result.stderr
    )
    assert "redis cache" not in result.stderr


def test_cli_store_warm_path_serves_the_host_disk_without_redis(
    tmp_path: Path, world: World, credential: Credential
) -> None:
    """A usable entry on the host's disk answers before Redis is asked, on the
    warm path and in the full CLI alike: a dead Redis costs a warm run nothing."""
    first = run(cli_args(credential, tmp_path / "a", None), cli_env(credential))
    assert first.returncode == 0, first.stderr
    # The password-bearing URL in the environment (a command line may not carry one).
    env = cli_env(credential, {"STACKTOKEN_REDIS_URL": DEAD_REDIS})
    args = cli_args(credential, tmp_path / "a", None)
    warm = warm_output(args[3:], env, now=datetime.now(UTC))
    assert warm == first.stdout
    full = run(args, env)
    assert (full.returncode, full.stdout) == (0, first.stdout)
    assert requests(world.stack) == 1


@pytest.mark.parametrize(
    ("store", "env"),
    [("http://nope", {}), (None, {"STACKTOKEN_REDIS_URL": "http://nope"})],
)
def test_cli_store_warm_path_declines_what_the_full_cli_refuses(
    tmp_path: Path, world: World, credential: Credential, store: str | None, env: dict[str, str]
) -> None:
    base = cli_env(credential)
    assert run(cli_args(credential, tmp_path / "a", None), base).returncode == 0
    args = cli_args(credential, tmp_path / "a", store)
    assert warm_output(args[3:], {**base, **env}, now=datetime.now(UTC)) is None
    assert run(args, {**base, **env}).returncode == 2


@pytest.mark.parametrize(
    "url",
    [
        "redis://:dead-pass-0123456789@127.0.0.1:1/0",
        "rediss://default:dead-pass-0123456789@127.0.0.1:1/0",
        "redis://127.0.0.1:1/0?password=dead-pass-0123456789",
        "rediss://127.0.0.1:1/0?ssl_ca_certs=/ca.pem&ssl_password=dead-pass-0123456789",
    ],
)
def test_cli_store_flag_with_a_password_is_a_usage_error_pointing_to_the_env(
    tmp_path: Path, world: World, credential: Credential, url: str
) -> None:
    """Any local user sees a command line (`ps`): a password goes in $STACKTOKEN_REDIS_URL."""
    env = cli_env(credential)
    args = cli_args(credential, tmp_path / "a", url)
    result = run(args, env)
    assert result.returncode == 2
    assert result.stderr.startswith("stacktoken: error: --store must not carry a password")
    assert "$STACKTOKEN_REDIS_URL" in result.stderr
    assert "dead-pass" not in result.stderr
    assert result.stdout == ""
    assert requests(world.stack) == 0
    assert warm_output(args[3:], env, now=datetime.now(UTC)) is None


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:1/0",
        "redis://default@127.0.0.1:1/0",
        "rediss://127.0.0.1:1/0?ssl_ca_certs=/ca.pem",
        "redis://127.0.0.1:1/0?password=",
    ],
)
def test_cli_store_flag_without_a_password_is_accepted(url: str) -> None:
    assert store_url_from(url, {}) == url


def test_cli_store_env_may_carry_the_password() -> None:
    environ = {"STACKTOKEN_REDIS_URL": DEAD_REDIS}
    assert store_url_from(None, environ) == DEAD_REDIS


_DUMP_MODULES = """
import atexit, runpy, sys

def dump(path=sys.argv.pop(1)):
    with open(path, "w") as handle:
        handle.write("\\n".join(sorted(sys.modules)))

atexit.register(dump)
runpy.run_module("stacktoken", run_name="__main__", alter_sys=True)
"""


def test_cli_store_warm_run_imports_neither_redis_nor_the_network_stack(
    tmp_path: Path, world: World, credential: Credential
) -> None:
    env = cli_env(credential, {"STACKTOKEN_REDIS_URL": DEAD_REDIS})
    first = run(cli_args(credential, tmp_path / "a", None), env)
    assert first.returncode == 0, first.stderr
    dump = tmp_path / "modules.txt"
    args = cli_args(credential, tmp_path / "a", None)  # the store is in the environment
    warm = run([args[0], "-c", _DUMP_MODULES, str(dump), *args[3:]], env)
    assert (warm.returncode, warm.stdout) == (0, first.stdout), warm.stderr
    modules = set(dump.read_text().split())
    assert not {m for m in modules if m.split(".")[0] in ("redis", "httpx")}
    assert "stacktoken.shell._redis" not in modules
    assert requests(world.stack) == 1
