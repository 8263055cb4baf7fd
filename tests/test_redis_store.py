"""The Redis store (docs/design.md §11) in one process: its layout, its lock, its faults.

A real `redis-server` on 127.0.0.1 (tests/redis_server.py) and the loopback
stack's client-credentials grant; hosts are cache dirs. Every fault --
down, stalled (SIGSTOP), full (maxmemory + noeviction), a garbage server, a
black hole, a garbage value -- must leave the call succeeding locally.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from oauth_servers import (
    CLIENT_CREDENTIALS_GRANT_TYPE,
    StackAuthServer,
    membership_server,
    stack_server,
)
from redis_server import (
    BlackHole,
    GarbageServer,
    RedisMonitor,
    RedisServer,
    black_hole,
    garbage_server,
    redis_server,
    redis_server_factory,
    redis_tls_server,
)
from returns.result import Success
from stacktoken import InvalidUsageError, RedisStore, TokenSource
from stacktoken.core._cache import CacheRead, Store
from stacktoken.core._paths import client_key
from stacktoken.core._types import EXPIRY_GRACE, CachedToken, Settings

__all__ = [
    "black_hole",
    "garbage_server",
    "membership_server",
    "redis_server",
    "redis_server_factory",
    "redis_tls_server",
    "stack_server",
]

SECRET = "store-secret-0123456789abcdef"
CLIENT = "svc-store"
Factory = Callable[..., RedisServer]


class Log:
    """The debug lines a source and its store write."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)

    def matching(self, text: str) -> list[str]:
        return [line for line in self.lines if text in line]


@pytest.fixture
def stack(stack_server: StackAuthServer) -> StackAuthServer:
    stack_server.add_client(CLIENT, SECRET)
    return stack_server


def requests(stack: StackAuthServer) -> int:
    return stack.count_grant(CLIENT_CREDENTIALS_GRANT_TYPE)


def key_of(stack: StackAuthServer) -> str:
    return "stacktoken:v1:" + client_key(stack.stack_uri, CLIENT, ())


def source(
    stack: StackAuthServer, host: Path, store: RedisStore | None, log: Log | None = None
) -> TokenSource:
    return TokenSource.from_client_credentials(
        stack_uri=stack.stack_uri,
        client_id=CLIENT,
        client_secret=SECRET,
        cache_dir=host,
        store=store,
        log=log,
    )


def token_on(
    stack: StackAuthServer, host: Path, store: RedisStore | None, log: Log | None = None
) -> str:
    """A new process's call: a new source, on `host`."""
    with source(stack, host, store, log) as new:
        return new.token()


def entry_of(server: RedisServer, key: str) -> dict[str, str]:
    raw = server.client().get(key)
    assert isinstance(raw, bytes)
    document = json.loads(raw)
    assert isinstance(document, dict)
    return document


# -- layout ------------------------------------------------------------------


def test_redis_store_keeps_the_cache_json_at_the_client_key_until_expiry_minus_grace(
    tmp_path: Path, stack: StackAuthServer, redis_server: RedisServer
) -> None:
    token = token_on(stack, tmp_path / "a", RedisStore(redis_server.url))
    key = key_of(stack)
    assert redis_server.client().keys("*") == [key.encode()]
    document = entry_of(redis_server, key)
    assert document["accessToken"] == token
    assert document["stackURI"] == stack.stack_uri
    assert document["clientId"] == CLIENT
    assert "savedAt" in document
    expiry = datetime.fromisoformat(document["expiry"])
    left = redis_server.client().pttl(key)
    lifetime = expiry - EXPIRY_GRACE - datetime.now(UTC)
    assert 0 < left <= lifetime.total_seconds() * 1000 + 1000
    assert left > (lifetime - timedelta(minutes=1)).total_seconds() * 1000


def test_redis_store_keeps_an_entry_until_expiry_less_the_grace_of_the_settings(
    stack: StackAuthServer, redis_server: RedisServer
) -> None:
    """The key's TTL follows the source's `Settings`, not a constant grace."""
    grace = timedelta(minutes=5)
    entry = RedisStore(redis_server.url).record(
        client_key(stack.stack_uri, CLIENT, ()),
        stack_uri=stack.stack_uri,
        client_id=CLIENT,
        settings=Settings(expiry_grace=grace),
    )
    cached = _cached("tok-grace-0123456789")
    assert entry.write(cached) == Success(None)
    assert cached.expiry is not None
    left = redis_server.client().pttl(key_of(stack))
    lifetime = cached.expiry - grace - datetime.now(UTC)
    assert 0 < left <= lifetime.total_seconds() * 1000 + 1000
    assert left > (lifetime - timedelta(minutes=1)).total_seconds() * 1000


def test_redis_store_second_host_uses_the_shared_token_and_keeps_it_on_its_disk(
    tmp_path: Path, stack: StackAuthServer, redis_server: RedisServer
) -> None:
    first = token_on(stack, tmp_path / "a", RedisStore(redis_server.url))
    log = Log()
    second = token_on(stack, tmp_path / "b", RedisStore(redis_server.url), log)
    assert second == first
    assert requests(stack) == 1
    assert log.matching("redis cache hit")
    # Copied up with the writer's savedAt: the next call on host b needs no Redis.
    redis_server.stop()
    assert token_on(stack, tmp_path / "b", RedisStore(redis_server.url)) == first
    assert requests(stack) == 1


@pytest.mark.parametrize(
    "garbage",
    [b"not json", b'{"accessToken": 5}', b"\xff\xfe", b'{"accessToken": "t", "expiry": "x"}'],
)
def test_redis_store_garbage_value_is_a_miss_and_is_overwritten(
    tmp_path: Path, stack: StackAuthServer, redis_server: RedisServer, garbage: bytes
) -> None:
    key = key_of(stack)
    redis_server.client().set(key, garbage)
    log = Log()
    token = token_on(stack, tmp_path / "a", RedisStore(redis_server.url), log)
    assert requests(stack) == 1
    assert log.matching("redis cache miss: redis value unreadable")
    assert entry_of(redis_server, key)["accessToken"] == token


def _planted(stack: StackAuthServer, token: str, **stamp: object) -> dict[str, object]:
    """A usable entry for `token`, stamped with `stamp` only (JSON names)."""
    now = datetime.now(UTC)
    return {
        "accessToken": token,
        "tokenType": "Bearer",
        "expiry": (now + timedelta(hours=1)).isoformat(),
        "savedAt": now.isoformat(),
        **stamp,
    }


def test_redis_store_unstamped_value_is_a_miss(
    tmp_path: Path, stack: StackAuthServer, redis_server: RedisServer
) -> None:
    """Only stacktoken writes to its Redis keys, and always stamped: a value at our
    key without `stackURI`, `clientId` and `scopes` was put there by someone else."""
    key = key_of(stack)
    planted = "tok-planted-0123456789"
    stamped = {"stackURI": stack.stack_uri, "clientId": CLIENT, "scopes": []}
    for missing in ("stackURI", "clientId", "scopes"):
        partial = {name: value for name, value in stamped.items() if name != missing}
        redis_server.client().set(key, json.dumps(_planted(stack, planted, **partial)))
        log = Log()
        token = token_on(stack, tmp_path / missing, RedisStore(redis_server.url), log)
        assert token != planted
        assert log.matching("redis cache miss: entry is not stamped")
        assert entry_of(redis_server, key)["accessToken"] == token
    assert requests(stack) == 3
    # Stamped in full, the same entry is a hit.
    redis_server.client().set(key, json.dumps(_planted(stack, planted, **stamped)))
    assert token_on(stack, tmp_path / "stamped", RedisStore(redis_server.url)) == planted
    assert requests(stack) == 3


def test_redis_store_value_over_1_mib_is_a_miss_without_being_read_whole(
    tmp_path: Path, stack: StackAuthServer, redis_server: RedisServer
) -> None:
    """A huge value at our key (8 MiB, a usable entry padded with JSON whitespace)
    costs a process a bounded read, not the value: a miss, said at debug."""
    key = key_of(stack)
    planted = "tok-huge-0123456789"
    document = _planted(stack, planted, stackURI=stack.stack_uri, clientId=CLIENT, scopes=[])
    huge = json.dumps(document)[:-1] + " " * (8 << 20) + "}"
    redis_server.client().set(key, huge)
    before = redis_server.client().info("stats")["total_net_output_bytes"]
    log = Log()
    token = token_on(stack, tmp_path / "a", RedisStore(redis_server.url), log)
    sent = redis_server.client().info("stats")["total_net_output_bytes"] - before
    assert token != planted
    assert requests(stack) == 1
    assert log.matching("redis cache miss: redis value larger than 1 MiB")
    # Each of the process's reads got 1 MiB at most: all of them less than the value.
    assert sent < len(huge), f"Redis sent {sent} bytes"
    assert entry_of(redis_server, key)["accessToken"] == token


def test_redis_store_value_of_another_type_is_a_miss_and_is_overwritten(
    tmp_path: Path, stack: StackAuthServer, redis_server: RedisServer
) -> None:
    key = key_of(stack)
    redis_server.client().rpush(key, "a list")
    token = token_on(stack, tmp_path / "a", RedisStore(redis_server.url))
    assert requests(stack) == 1
    assert entry_of(redis_server, key)["accessToken"] == token


def test_redis_store_entry_of_another_stack_is_a_miss(
    tmp_path: Path, stack: StackAuthServer, redis_server: RedisServer
) -> None:
    token_on(stack, tmp_path / "a", RedisStore(redis_server.url))
    key = key_of(stack)
    document = entry_of(redis_server, key)
    document["stackURI"] = "https://elsewhere.example"
    redis_server.client().set(key, json.dumps(document))
    log = Log()
    token_on(stack, tmp_path / "b", RedisStore(redis_server.url), log)
    assert requests(stack) == 2
    assert log.matching("redis cache miss: entry was issued for another stack URI")


def test_redis_store_invalidate_drops_the_shared_entry_only_if_it_holds_the_token(
    tmp_path: Path, stack: StackAuthServer, redis_server: RedisServer
) -> None:
    key = key_of(stack)
    with source(stack, tmp_path / "a", RedisStore(redis_server.url)) as first:
        token = first.token()
        first.invalidate("some-other-token-0123456789")
        assert redis_server.client().exists(key) == 1
        first.invalidate(token)
    assert redis_server.client().exists(key) == 0
    assert token_on(stack, tmp_path / "b", RedisStore(redis_server.url)) != token
    assert requests(stack) == 2


# -- the lock ------------------------------------------------------------------


def _entry_store(server: RedisServer, stack: StackAuthServer) -> Store:
    store = RedisStore(server.url)
    return store.record(
        client_key(stack.stack_uri, CLIENT, ()), stack_uri=stack.stack_uri, client_id=CLIENT
    )


def _cached(token: str) -> CachedToken:
    now = datetime.now(UTC)
    return CachedToken(
        access_token=token,
        token_type="Bearer",
        expiry=now + timedelta(hours=1),
        saved_at=now,
        stack_uri=None,
        client_id=None,
    )


def test_redis_store_waiter_runs_as_soon_as_the_holder_writes_the_value(
    stack: StackAuthServer, redis_server: RedisServer
) -> None:
    """The waiter's body runs while the holder still holds the lock: it does not
    wait for the release, nor for its own wait to run out."""
    holder = _entry_store(redis_server, stack)
    waiter = _entry_store(redis_server, stack)
    lock_key = key_of(stack) + ":lock"
    holding, written, waited = threading.Event(), threading.Event(), threading.Event()
    lock_at_wait: list[int] = []

    def hold() -> Success[CachedToken]:
        holding.set()
        assert written.wait(10)
        assert waited.wait(10)
        return Success(_cached("tok-holder-0123456789"))

    def wait() -> Success[CachedToken]:
        lock_at_wait.append(redis_server.client().exists(lock_key))
        waited.set()
        return Success(_cached("tok-waiter-0123456789"))

    holding_thread = threading.Thread(target=lambda: holder.locked(hold))
    waiting_thread = threading.Thread(target=lambda: waiter.locked(wait))
    with redis_server.monitor() as monitor:
        holding_thread.start()
        try:
            assert holding.wait(10)
            waiting_thread.start()
            # The waiter saw the value as it was (a first poll) before it changes.
            assert _polls(monitor, lock_key, at_least=2)
            holder.write(_cached("tok-holder-0123456789"))
            written.set()
            waiting_thread.join(10)
            assert not waiting_thread.is_alive()
            assert lock_at_wait == [1]
        finally:
            written.set()
            waited.set()
            holding_thread.join(10)
            waiting_thread.join(10)
    assert redis_server.client().exists(lock_key) == 0  # released by its owner


def test_redis_store_lost_message_costs_a_bounded_wait_never_a_request(
    stack: StackAuthServer, redis_server: RedisServer
) -> None:
    """A holder that writes and releases without a word (a message lost, an older
    stacktoken): the waiter, told nothing, tries the lock again within its lease,
    gets it, and its body's re-read finds the token."""
    entry = RedisStore(redis_server.url, lease=1.0).record(
        client_key(stack.stack_uri, CLIENT, ()), stack_uri=stack.stack_uri, client_id=CLIENT
    )
    lock_key = key_of(stack) + ":lock"
    redis_server.client().set(lock_key, "a-silent-holder", px=60_000)
    found: list[CacheRead | str] = []

    def body() -> Success[CachedToken]:
        found.append(entry.read())
        return Success(_cached("tok-never-asked-0123"))

    waiting = threading.Thread(target=lambda: entry.locked(body))
    with redis_server.monitor() as monitor:
        waiting.start()
        try:
            assert _polls(monitor, lock_key, at_least=1)  # subscribed, and told nothing
            writer = _entry_store(redis_server, stack)
            assert writer.write(_cached("tok-written-silently-01")) == Success(None)
            redis_server.client().delete(lock_key)
        finally:
            waiting.join(30)
    assert not waiting.is_alive()
    assert len(found) == 1
    assert not isinstance(found[0], str)
    assert found[0][0].access_token == "tok-written-silently-01"
    assert redis_server.client().exists(lock_key) == 0  # its own lock, released


def _polls(monitor: RedisMonitor, lock_key: str, *, at_least: int) -> bool:
    """Whether `at_least` lock attempts (`SET <lock> ... NX`) showed up, within 10 s."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        attempts = [e for e in monitor.entries if e.command == "SET" and e.keys == (lock_key,)]
        if len(attempts) >= at_least:
            return True
        monitor.wait_for(lambda line: False, timeout=0.05)
    return False


def test_redis_store_release_never_deletes_another_owners_lock(
    stack: StackAuthServer, redis_server: RedisServer
) -> None:
    entry = _entry_store(redis_server, stack)
    lock_key = key_of(stack) + ":lock"

    def body() -> Success[CachedToken]:
        # The lease ran out and another process took the lock meanwhile.
        redis_server.client().set(lock_key, "another-owner", px=10_000)
        return Success(_cached("tok-0123456789abcdef"))

    entry.locked(body)
    assert redis_server.client().get(lock_key) == b"another-owner"


def test_redis_store_lock_not_had_in_time_runs_the_body_unlocked(
    stack: StackAuthServer, redis_server: RedisServer
) -> None:
    log = Log()
    store = RedisStore(redis_server.url, lock_wait=0.05, log=log)
    entry = store.record(
        client_key(stack.stack_uri, CLIENT, ()), stack_uri=stack.stack_uri, client_id=CLIENT
    )
    redis_server.client().set(key_of(stack) + ":lock", "a-live-holder", px=60_000)
    ran: list[bool] = []

    def body() -> Success[CachedToken]:
        ran.append(True)
        return Success(_cached("tok-0123456789abc"))

    result = entry.locked(body)
    assert ran == [True]
    assert isinstance(result, Success)
    assert log.matching("redis lock not had in 0.05s: running unlocked")


# -- faults: the call goes on locally ------------------------------------------


@pytest.fixture
def stalled(redis_server: RedisServer) -> Iterator[str]:
    with redis_server.paused():
        yield redis_server.url


@pytest.fixture
def full(redis_server_factory: Factory) -> str:
    server = redis_server_factory()
    server.set_maxmemory("1")
    return server.url


@pytest.fixture
def down(redis_server: RedisServer) -> str:
    redis_server.stop()
    return redis_server.url


@pytest.fixture
def garbage(garbage_server: GarbageServer) -> str:
    return garbage_server.url


@pytest.fixture
def hole(black_hole: BlackHole) -> str:
    return black_hole.url


@pytest.fixture
def wrong_password(redis_server_factory: Factory) -> str:
    server = redis_server_factory(password="the-right-password-123")
    return server.url_for(password="a-wrong-password-456")


FAULTS = {
    "down": ("down", "ConnectionError"),
    "stalled": ("stalled", "TimeoutError"),
    "garbage server": ("garbage", "InvalidResponse"),
    "black hole": ("hole", "TimeoutError"),
    "wrong password": ("wrong_password", "AuthenticationError"),
}


@pytest.mark.parametrize(("fixture", "error"), FAULTS.values(), ids=list(FAULTS))
def test_redis_store_unreachable_call_succeeds_with_one_failed_redis_call(
    tmp_path: Path,
    stack: StackAuthServer,
    request: pytest.FixtureRequest,
    fixture: str,
    error: str,
) -> None:
    url = request.getfixturevalue(fixture)
    log = Log()
    token = token_on(stack, tmp_path / "a", RedisStore(url, log=log), log)
    assert stack.is_valid_access_token(token)
    assert requests(stack) == 1
    failures = log.matching("redis read failed")
    # The breaker: one call reached the broken Redis, the others were skipped.
    assert len(failures) == 1, log.lines
    assert error in failures[0]
    assert log.matching("redis cache write failed: redis left alone")
    assert log.matching("redis left alone after a connection error: running unlocked")
    # The host's disk kept the token: the next call needs neither.
    assert token_on(stack, tmp_path / "a", RedisStore(url)) == token
    assert requests(stack) == 1


def test_redis_store_full_call_succeeds_and_write_failure_is_logged(
    tmp_path: Path, stack: StackAuthServer, full: str
) -> None:
    log = Log()
    token = token_on(stack, tmp_path / "a", RedisStore(full, log=log), log)
    assert stack.is_valid_access_token(token)
    assert requests(stack) == 1
    # OOM refuses the lock's SET NX too: the body ran unlocked; a server that
    # answers is not a dead one, so the breaker stayed closed.
    assert log.matching("redis lock failed: OutOfMemoryError")
    assert not log.matching("left alone")
    writes = log.matching("redis cache write failed: redis write failed: OutOfMemoryError")
    assert writes, log.lines
    assert token not in "\n".join(log.lines)


def test_redis_store_breaker_closes_after_its_cooldown(
    tmp_path: Path, stack: StackAuthServer, redis_server: RedisServer
) -> None:
    log = Log()
    store = RedisStore(redis_server.url, cooldown=0.0, log=log)
    with redis_server.paused():
        token_on(stack, tmp_path / "a", store, log)
    # No cooldown: the next call uses Redis again (and finds nothing, then writes).
    token = token_on(stack, tmp_path / "b", store, log)
    assert entry_of(redis_server, key_of(stack))["accessToken"] == token


# -- URLs: TLS, passwords, bad ones ----------------------------------------------


def test_redis_store_tls_and_password_in_the_url(
    tmp_path: Path, stack: StackAuthServer, redis_server_factory: Factory
) -> None:
    password = "tls-pass-0123456789"
    server = redis_server_factory(tls=True, password=password)
    url = server.url
    assert url.startswith("rediss://")
    log = Log()
    first = token_on(stack, tmp_path / "a", RedisStore(url, log=log), log)
    second = token_on(stack, tmp_path / "b", RedisStore(url, log=log), log)
    assert first == second
    assert requests(stack) == 1
    assert not log.matching("failed")
    assert password not in "\n".join(log.lines)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pa55word-xyz@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("redis://user:pa55word-xyz@host:1/2", "redis://user:***@host:1/2"),
        (
            "rediss://:p%40ss-word-xyz@h/0?ssl_ca_certs=/ca.pem",
            "rediss://:***@h/0?ssl_ca_certs=/ca.pem",
        ),
        ("redis://h:1/0?password=pa55word-xyz", "redis://h:1/0?password=%2A%2A%2A"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ],
)
def test_redis_store_repr_hides_the_password(url: str, shown: str) -> None:
    store = RedisStore(url)
    assert repr(store) == f"RedisStore({shown})"
    assert "pa55word" not in repr(store) and "p%40ss" not in repr(store)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "rediss://h:1/0?ssl_password=pa55word-xyz&ssl_ca_certs=/ca.pem",
            "rediss://h:1/0?ssl_password=%2A%2A%2A&ssl_ca_certs=/ca.pem",
        ),
        ("redis://h:1/0?Password=pa55word-xyz&db=2", "redis://h:1/0?Password=%2A%2A%2A&db=2"),
        ("redis://h:1/0?client_name=svc&tls_secret=pa55word-xyz", None),
    ],
)
def test_redis_store_repr_masks_every_password_and_every_unknown_parameter(
    url: str, shown: str | None
) -> None:
    """The --debug "shared store" line prints this repr: a parameter whose name
    holds `password`, or one the store does not know, is masked."""
    store = RedisStore(url)
    assert "pa55word" not in repr(store)
    if shown is not None:
        assert repr(store) == f"RedisStore({shown})"
    else:
        assert "client_name=svc" in repr(store)
        assert "tls_secret=%2A%2A%2A" in repr(store)


@pytest.mark.parametrize(
    "url", ["http://:pa55word-xyz@127.0.0.1/0", "pa55word-xyz", "redis://:pa55word-xyz@h:port/0"]
)
def test_redis_store_bad_url_is_a_usage_error_without_the_url(url: str) -> None:
    with pytest.raises(InvalidUsageError) as raised:
        RedisStore(url)
    assert "pa55word" not in str(raised.value)


def test_redis_store_import_stacktoken_never_imports_redis() -> None:
    code = (
        "import sys, stacktoken\n"
        "stacktoken.TokenSource, stacktoken.StackTokenError\n"
        "print('redis' in sys.modules)"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert run.stdout.strip() == "False"


def test_redis_store_reconnects_at_once_after_a_redis_restart(
    stack: StackAuthServer, redis_server: RedisServer
) -> None:
    """A long-lived process's pooled connection dies with the server: the next
    call reconnects (redis-py's pool checks a connection as it hands it out)
    instead of missing and opening the breaker."""
    log = Log()
    entry = RedisStore(redis_server.url, log=log).record(
        client_key(stack.stack_uri, CLIENT, ()), stack_uri=stack.stack_uri, client_id=CLIENT
    )
    assert entry.read() == "no entry in redis"
    redis_server.restart()
    assert entry.read() == "no entry in redis"
    assert entry.write(_cached("tok-after-restart-0123")) == Success(None)
    assert not log.lines


def test_redis_store_tls_checks_the_host_name_whatever_redis_py_defaults_to() -> None:
    """redis-py before 6.0 (our declared floor is older) checks no host name on TLS:
    a certificate for any name would be taken. The store asks for the check itself."""
    from stacktoken.shell._redis import _client

    made = _client("rediss://127.0.0.1:1/0", 0.2)
    assert isinstance(made, tuple)
    assert made[0].connection_pool.connection_kwargs["ssl_check_hostname"] is True
