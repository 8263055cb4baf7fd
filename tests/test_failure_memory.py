"""Failure memory (docs/design.md §15): a rejected credential never storms the server.

Counted, not timed: concurrent CLI processes on one host (and two hosts on one
Redis) against the loopback stack; the bounds are request counts.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from oauth_servers import CLIENT_CREDENTIALS_GRANT_TYPE, Fault, StackAuthServer
from redis_fleet import Credential, cli_args, cli_env, run_cli_fleet
from redis_server import RedisServer, redis_server
from reliability_helpers import stack_folder_names, write_accesses
from stacktoken import AuthenticationRequiredError, FailureKnobs, TokenSource
from stacktoken.shell._failures import client_failure

from conftest import CLI_TIMEOUT_SECONDS, World

__all__ = ["redis_server"]

ERROR_PREFIX = "stacktoken: error: "
PROCESSES = 20


@pytest.fixture
def client(world: World) -> Credential:
    made = world.stack.add_client(f"svc-{secrets.token_hex(4)}", secrets.token_urlsafe(24))
    return Credential(world.stack.stack_uri, made.client_id, made.client_secret)


def wrong(credential: Credential) -> Credential:
    return Credential(credential.stack_uri, credential.client_id, "wrong-" + secrets.token_hex(16))


def requests(stack: StackAuthServer) -> int:
    return stack.count_grant(CLIENT_CREDENTIALS_GRANT_TYPE)


def one_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert "Traceback" not in result.stderr
    assert result.returncode == code, (result.returncode, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"{len(lines)} lines on stderr"
    assert lines[0].startswith(ERROR_PREFIX), lines[0]
    return lines[0]


def run(
    credential: Credential,
    host: Path,
    store: str | None = None,
    *extra: str,
    debug: bool = False,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli_args(credential, host, store, *extra, debug=debug),
        capture_output=True,
        text=True,
        env=cli_env(credential),
        timeout=CLI_TIMEOUT_SECONDS,
        check=False,
    )


def no_file_holds(folder: Path, *texts: str) -> None:
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        for text in texts:
            assert text.encode() not in data, f"a secret is in {path.name}"


def test_wrong_secret_fleet_asks_at_most_twice_then_the_right_one_at_once(
    world: World, client: Credential
) -> None:
    bad = wrong(client)
    host = world.cache_dir
    for _ in range(3):
        for result in run_cli_fleet(bad, [host], PROCESSES, None):
            line = one_line(result, 3)
            assert "rejected" in line
    assert requests(world.stack) <= 2
    remembered = [p for p in host.rglob("failure.json")]
    assert len(remembered) == 1
    assert remembered[0].stat().st_mode & 0o777 == 0o600
    no_file_holds(host, bad.client_secret, client.client_secret)
    before = requests(world.stack)
    good = run(client, host)
    assert good.returncode == 0, good.stderr
    assert requests(world.stack) == before + 1
    assert not list(host.rglob("failure.json")), "a success forgets the failure"


def test_remembered_rejection_says_when_and_debug_says_it_was_used(
    world: World, client: Credential
) -> None:
    bad = wrong(client)
    first = one_line(run(bad, world.cache_dir), 3)
    assert "rejected" in first and "not asking again" not in first
    second = run(bad, world.cache_dir, debug=True)
    assert second.returncode == 3
    assert "failure memory used: a rejected failure" in second.stderr
    last = second.stderr.splitlines()[-1]
    assert last.startswith(ERROR_PREFIX)
    assert "rejected 0 s ago" in last or "s ago" in last
    assert "remembered until" in last and "UTC" in last
    assert bad.client_secret not in second.stderr
    assert requests(world.stack) == 1


def test_another_wrong_secret_is_tried_at_once(world: World, client: Credential) -> None:
    one_line(run(wrong(client), world.cache_dir), 3)
    one_line(run(wrong(client), world.cache_dir), 3)
    assert requests(world.stack) == 2


def test_cache_clear_forgets_a_remembered_rejection(world: World, client: Credential) -> None:
    bad = wrong(client)
    one_line(run(bad, world.cache_dir), 3)
    cleared = world.run("cache", "clear", "--client-id", client.client_id)
    assert cleared.returncode == 0, cleared.stderr
    assert not list(world.cache_dir.rglob("failure.json"))
    one_line(run(bad, world.cache_dir), 3)
    assert requests(world.stack) == 2


def test_a_corrupt_failure_entry_is_a_miss(world: World, client: Credential) -> None:
    bad = wrong(client)
    one_line(run(bad, world.cache_dir), 3)
    (entry,) = world.cache_dir.rglob("failure.json")
    entry.write_bytes(b"{not json")
    one_line(run(bad, world.cache_dir), 3)
    assert requests(world.stack) == 2


def test_endpoint_answering_503_to_everything_is_asked_at_most_six_times(
    world: World, client: Credential
) -> None:
    world.stack.inject(StackAuthServer.TOKEN, *[Fault.status(503)] * 500)
    for result in run_cli_fleet(client, [world.cache_dir], PROCESSES, None):
        one_line(result, 1)
    assert world.stack.count(StackAuthServer.TOKEN) <= 6
    no_file_holds(world.cache_dir, client.client_secret)


def test_two_hosts_on_one_redis_second_host_makes_no_request(
    tmp_path: Path, world: World, client: Credential, redis_server: RedisServer
) -> None:
    bad = wrong(client)
    one_line(run(bad, tmp_path / "a", redis_server.url), 3)
    assert requests(world.stack) == 1
    line = one_line(run(bad, tmp_path / "b", redis_server.url), 3)
    assert "not asking again" in line
    assert requests(world.stack) == 1
    redis = redis_server.client()
    keys = [key for key in redis.keys("*") if isinstance(key, bytes)]
    assert any(key.endswith(b":failure") for key in keys)
    for key in keys:
        assert bad.client_secret.encode() not in key
        value = redis.get(key)
        assert value is None or bad.client_secret.encode() not in value
    no_file_holds(tmp_path, bad.client_secret)
    # The right secret, on the second host: tried at once, and the fleet forgets.
    good = run(client, tmp_path / "b", redis_server.url)
    assert good.returncode == 0, good.stderr
    assert requests(world.stack) == 2
    left = [key for key in redis.keys("*") if isinstance(key, bytes)]
    assert not any(key.endswith(b":failure") for key in left)


def test_profile_refresh_rejected_is_remembered_under_the_cache_dir_until_a_new_login(
    world: World,
) -> None:
    used = write_accesses(world, exp_in=-120)
    world.membership.revoke_refresh_token(used)
    one_line(world.run("token"), 3)
    refreshes = world.membership.count(world.membership.TOKEN)
    assert refreshes == 1
    line = one_line(world.run("token"), 3)
    assert "not asking again" in line
    assert world.membership.count(world.membership.TOKEN) == refreshes
    # Never in the fctl stack folder: its contents are fctl's.
    assert stack_folder_names(world) <= {"accesses.json", "api_token_cache.json.lock"}
    assert len(list(world.cache_dir.rglob("failure.json"))) == 1
    no_file_holds(world.cache_dir, used)
    # A new login (another refresh token in accesses.json) is tried at once.
    write_accesses(world, exp_in=-120)
    good = world.run("token")
    assert good.returncode == 0, good.stderr
    assert not list(world.cache_dir.rglob("failure.json"))


def test_cache_clear_of_a_profile_forgets_its_stacks_failures(world: World) -> None:
    used = write_accesses(world, exp_in=-120)
    world.membership.revoke_refresh_token(used)
    one_line(world.run("token"), 3)
    assert list(world.cache_dir.rglob("failure.json"))
    cleared = world.run("cache", "clear")
    assert cleared.returncode == 0, cleared.stderr
    assert not list(world.cache_dir.rglob("failure.json"))


def status_of(
    world: World, credential: Credential, *extra: str
) -> subprocess.CompletedProcess[str]:
    args = ["--cache-dir", str(world.cache_dir), "status", *extra]
    args += ["--stack-uri", credential.stack_uri, "--client-id", credential.client_id]
    return subprocess.run(
        [sys.executable, "-m", "stacktoken", *args],
        capture_output=True,
        text=True,
        env=cli_env(credential),
        timeout=CLI_TIMEOUT_SECONDS,
        check=False,
    )


def test_status_shows_a_remembered_rejection_without_a_request(
    world: World, client: Credential
) -> None:
    bad = wrong(client)
    before = json.loads(status_of(world, bad, "--output", "json").stdout)
    assert before["remembered_failure"] is None
    one_line(run(bad, world.cache_dir), 3)
    text = status_of(world, bad)
    assert text.returncode == 0, text.stderr
    (line,) = [line for line in text.stdout.splitlines() if "remembered failure" in line]
    assert "the credential was rejected" in line and "invalid_client" in line
    assert "calls with the same secret fail at once until" in line
    document = json.loads(status_of(world, bad, "--output", "json").stdout)
    failure = document["remembered_failure"]
    assert failure["kind"] == "rejected" and failure["count"] == 1
    assert set(failure) == {"kind", "at", "until", "count", "reason"}
    assert bad.client_secret not in text.stdout + json.dumps(document)
    assert requests(world.stack) == 1, "status asked nothing"
    world.run("cache", "clear", "--client-id", client.client_id)
    after = json.loads(status_of(world, bad, "--output", "json").stdout)
    assert after["remembered_failure"] is None


def test_status_of_a_profile_shows_its_remembered_refresh_rejection(world: World) -> None:
    used = write_accesses(world, exp_in=-120)
    world.membership.revoke_refresh_token(used)
    one_line(world.run("token"), 3)
    document = json.loads(world.run("status", "--output", "json").stdout)
    assert document["remembered_failure"]["kind"] == "rejected"
    assert "refresh token was rejected" in document["remembered_failure"]["reason"]
    assert used not in json.dumps(document)


def test_the_failures_knob_sets_the_window_and_the_library_fails_at_once(
    world: World, client: Credential
) -> None:
    def source() -> TokenSource:
        return TokenSource.from_client_credentials(
            stack_uri=client.stack_uri,
            client_id=client.client_id,
            client_secret="wrong-secret-for-the-knob",
            cache_dir=world.cache_dir,
            environ={},
            failures=FailureKnobs(window=7.0),
        )

    for _ in range(3):
        with source() as each, pytest.raises(AuthenticationRequiredError):
            each.token()
    found = client_failure(str(world.cache_dir), client.stack_uri, client.client_id)
    assert found is not None
    assert (found.until - found.at).total_seconds() == 7.0
    assert requests(world.stack) == 1


def test_with_ttl_0_nothing_is_remembered(world: World, client: Credential) -> None:
    """TTL 0 stores nothing: no token, and no failure either (each run asks)."""
    bad = wrong(client)
    for _ in range(2):
        result = run(bad, world.cache_dir, None, "--stack-token-cache-ttl", "0")
        assert "not asking again" not in one_line(result, 3)
    assert requests(world.stack) == 2
    assert not list(world.cache_dir.rglob("failure.json"))
