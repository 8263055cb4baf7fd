"""The Redis test fixtures of tests/redis_server.py, driven with redis-py."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
import redis_server as redis_server_module
from redis_server import (
    BlackHole,
    GarbageServer,
    RedisServer,
    RedisServerMissing,
    black_hole,
    garbage_server,
    keys_of,
    parse_monitor_line,
    redis_server,
    redis_server_binary,
    redis_server_factory,
    redis_supports_tls,
    redis_tls_server,
    start_or_fail,
)

__all__ = [
    "black_hole",
    "garbage_server",
    "redis_server",
    "redis_server_factory",
    "redis_tls_server",
]

Factory = Callable[..., RedisServer]


def _connect_refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


# --------------------------------------------------------------------------- lifecycle


def test_redis_server_starts_on_loopback_without_persistence(redis_server: RedisServer) -> None:
    r = redis_server.client()
    assert r.ping() is True
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert r.config_get("save") == {"save": ""}
    assert r.config_get("appendonly") == {"appendonly": "no"}
    assert r.config_get("bind")["bind"] == "127.0.0.1"
    assert r.config_get("maxmemory") == {"maxmemory": "0"}
    assert Path(str(r.config_get("dir")["dir"])) == redis_server.directory.resolve()
    assert r.set("k", "v")
    assert redis_server.command("GET", "k") == b"v"


def test_redis_server_password_is_required(redis_server_factory: Factory) -> None:
    server = redis_server_factory(password="p@ss:w/rd")
    assert server.url == f"redis://:p%40ss%3Aw%2Frd@127.0.0.1:{server.port}/0"
    assert server.client().ping() is True
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(server.url_for(password="wrong"), socket_timeout=2).ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(f"redis://127.0.0.1:{server.port}/0", socket_timeout=2).ping()


def test_redis_server_stop_refuses_then_restart_same_port_empty(
    redis_server: RedisServer,
) -> None:
    port = redis_server.port
    redis_server.client().set("k", "v")
    redis_server.stop()
    assert not redis_server.is_running
    assert _connect_refused(port)
    redis_server.restart()
    assert redis_server.port == port
    assert redis_server.client().get("k") is None  # nothing persisted


def test_redis_server_kill_is_sigkill_and_restartable(redis_server: RedisServer) -> None:
    r = redis_server.client()
    r.set("k", "v")
    pid = redis_server.pid
    redis_server.kill()
    assert not redis_server.is_running
    with pytest.raises(redis.ConnectionError):
        r.ping()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    redis_server.restart()
    assert redis_server.client().ping() is True


def test_redis_server_pause_stalls_until_resume(redis_server: RedisServer) -> None:
    r = redis_server.client(socket_timeout=0.3)
    with redis_server.paused():
        assert redis_server.is_paused
        started = time.monotonic()
        with pytest.raises(redis.TimeoutError):
            # The kernel still accepts the connection: only the read times out.
            redis.Redis.from_url(redis_server.url, socket_timeout=0.3).ping()
        assert time.monotonic() - started < 5
    assert not redis_server.is_paused
    assert r.ping() is True


def test_redis_server_stop_while_paused_is_bounded(redis_server: RedisServer) -> None:
    redis_server.pause()
    started = time.monotonic()
    redis_server.stop()
    assert time.monotonic() - started < 10
    assert not redis_server.is_running


def test_redis_server_maxmemory_noeviction_refuses_writes(redis_server_factory: Factory) -> None:
    server = redis_server_factory(maxmemory="1")
    r = server.client()
    assert r.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        r.set("k", "v")
    assert r.get("k") is None  # reads still work
    server.set_maxmemory("0")
    assert r.set("k", "v")
    server.set_maxmemory("1")
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        r.set("k2", "v")


def test_redis_server_startup_failure_is_reported_in_bounded_time(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "bad", extra_args=["--no-such-directive", "x"])
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="Bad directive"):
        server.start()
    assert time.monotonic() - started < 10
    assert not server.is_running


def test_redis_server_missing_binary_fails_with_install_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(redis_server_module, "bundled_redis_server", lambda: None)
    with pytest.raises(RedisServerMissing, match=r"pip install -e '\.\[test\]'"):
        redis_server_binary()
    with pytest.raises(pytest.fail.Exception, match=r"pip install -e '\.\[test\]'"):
        start_or_fail(RedisServer(tmp_path / "r"))


def test_redis_server_module_imports_without_the_binary(tmp_path: Path) -> None:
    here = Path(__file__).parent
    result = subprocess.run(
        [sys.executable, "-c", "import redis_server; print(redis_server.LOOPBACK_HOST)"],
        cwd=here,
        env={"PATH": str(tmp_path), "PYTHONPATH": str(here)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "127.0.0.1"


def test_redis_server_factory_gives_independent_servers(redis_server_factory: Factory) -> None:
    one, two = redis_server_factory(), redis_server_factory()
    assert one.port != two.port
    one.client().set("k", "one")
    assert two.client().get("k") is None


# --------------------------------------------------------------------------- MONITOR


def test_redis_monitor_captures_commands_and_key_names(redis_server_factory: Factory) -> None:
    server = redis_server_factory(password="pw")
    r = server.client()
    with server.monitor() as mon:
        r.set("stacktoken:v1:abc", '{"accessToken": "tok"}', px=60_000)
        r.set("stacktoken:v1:abc:lock", "owner", nx=True, px=5_000)
        r.eval(
            "if redis.call('get', KEYS[1]) == ARGV[1] then"
            " return redis.call('del', KEYS[1]) end return 0",
            1,
            "stacktoken:v1:abc:lock",
            "owner",
        )
        r.get("stacktoken:v1:abc")
        mon.sync()
        # The connection handshake differs by redis-py version (8.x: HELLO 3).
        handshake = {"HELLO", "AUTH", "CLIENT", "SELECT"}
        commands = [(e.client == "lua", e.command) for e in mon.entries]
        commands = [c for c in commands if c[1] not in handshake]
        assert commands == [
            (False, "SET"),
            (False, "SET"),
            (False, "EVAL"),
            (True, "GET"),  # commands a script runs show as client "lua"
            (True, "DEL"),
            (False, "GET"),
        ]
        assert set(mon.key_names()) == {"stacktoken:v1:abc", "stacktoken:v1:abc:lock"}
        # The value is visible in MONITOR; the password is not (Redis redacts AUTH).
        assert any('{"accessToken": "tok"}' in e.argv for e in mon.entries)
        handshakes = [e for e in mon.entries if e.command in handshake]
        assert handshakes
        assert not any("pw" in e.argv for e in handshakes)
        # The sync marker and its connection are filtered out of entries.
        assert not any(e.command == "ECHO" for e in mon.entries)
        assert any("ECHO" in line for line in mon.lines)


def test_redis_monitor_wait_for_is_bounded(redis_server: RedisServer) -> None:
    with redis_server.monitor() as mon:
        redis_server.client().set("visible", "1")
        assert mon.wait_for("visible", timeout=5)
        started = time.monotonic()
        assert not mon.wait_for("never-sent", timeout=0.1)
        assert time.monotonic() - started < 2


@pytest.mark.parametrize(
    ("argv", "keys"),
    [
        (("SET", "k", "v", "PX", "10"), ("k",)),
        (("get", "k"), ("k",)),
        (("DEL", "a", "b"), ("a", "b")),
        (("MSET", "a", "1", "b", "2"), ("a", "b")),
        (("EVALSHA", "abc123", "2", "k1", "k2", "arg"), ("k1", "k2")),
        (("EVAL", "return 1", "0", "arg"), ()),
        (("SCAN", "0", "MATCH", "stacktoken:*", "COUNT", "10"), ("stacktoken:*",)),
        (("PING",), ()),
        (("HELLO", "3", "AUTH", "(redacted)", "(redacted)"), ()),
        (("SOMENEWCMD", "x", "y"), ("x", "y")),  # unknown: every argument
        ((), ()),
    ],
)
def test_redis_keys_of_table(argv: tuple[str, ...], keys: tuple[str, ...]) -> None:
    assert keys_of(argv) == keys


def test_redis_parse_monitor_line_unescapes() -> None:
    entry = parse_monitor_line(
        r'1700000000.123456 [3 127.0.0.1:5555] "SET" "k\"q" "a\\b\n\x00\xc3\xa9"'
    )
    assert entry is not None
    assert (entry.timestamp, entry.db, entry.client) == (1700000000.123456, 3, "127.0.0.1:5555")
    assert entry.argv == ("SET", 'k"q', "a\\b\n\x00é")
    assert entry.keys == ('k"q',)
    assert parse_monitor_line("OK") is None


# --------------------------------------------------------------------------- TLS


def test_redis_tls_is_available_in_every_build(redis_tls_server: RedisServer) -> None:
    # Natively in a TLS build (Debian's), else through the fixture's TLS front
    # (the PyPI wheel's binary has no TLS).
    assert redis_tls_server.tls_native == redis_supports_tls()
    assert redis_tls_server.client().ping() is True


def test_redis_tls_server_rediss_url_needs_the_ca(redis_tls_server: RedisServer) -> None:
    assert redis_tls_server.url.startswith(f"rediss://127.0.0.1:{redis_tls_server.port}/0?")
    assert redis_tls_server.tls_files is not None
    r = redis_tls_server.client()
    assert r.ping() is True
    assert r.set("k", "v")
    # Without trusting the test CA the handshake fails...
    with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        redis.Redis.from_url(redis_tls_server.url_for(with_ca=False), socket_timeout=2).ping()
    # ... and plain redis:// to the TLS port gets no answer it can use.
    with pytest.raises(redis.ConnectionError):
        redis.Redis(host="127.0.0.1", port=redis_tls_server.port, socket_timeout=1).ping()
    ca = str(redis_tls_server.tls_files.ca_cert)
    explicit = redis.Redis.from_url(
        redis_tls_server.url_for(with_ca=False), ssl_ca_certs=ca, socket_timeout=2
    )
    assert explicit.get("k") == b"v"


def test_redis_tls_server_restart_keeps_its_certificate(redis_tls_server: RedisServer) -> None:
    before = redis_tls_server.tls_files
    redis_tls_server.restart()
    assert redis_tls_server.tls_files == before
    assert redis_tls_server.client().ping() is True


# --------------------------------------------------------------------------- misbehaving servers


def test_redis_garbage_server_is_a_protocol_error(garbage_server: GarbageServer) -> None:
    r = redis.Redis.from_url(garbage_server.url, socket_timeout=1, socket_connect_timeout=1)
    with pytest.raises(redis.exceptions.InvalidResponse):
        r.ping()
    assert garbage_server.connections >= 1


def test_redis_garbage_server_greeting_and_custom_payload() -> None:
    with (
        GarbageServer(b"+OK\r\n$-9\r\n", greet=True) as server,
        socket.create_connection(("127.0.0.1", server.port), timeout=2) as s,
    ):
        assert s.recv(100).startswith(b"+OK")


def test_redis_black_hole_accepts_and_never_answers(black_hole: BlackHole) -> None:
    r = redis.Redis.from_url(black_hole.url, socket_timeout=0.3, socket_connect_timeout=0.3)
    started = time.monotonic()
    with pytest.raises(redis.TimeoutError):
        r.ping()
    assert time.monotonic() - started < 5
    assert black_hole.connections == 1
    assert black_hole.received > 0


def test_redis_black_hole_stop_is_bounded_with_open_connections() -> None:
    hole = BlackHole().start()
    conns = [socket.create_connection(("127.0.0.1", hole.port), timeout=2) for _ in range(3)]
    try:
        started = time.monotonic()
        hole.stop()
        assert time.monotonic() - started < 5
        assert _connect_refused(hole.port)
    finally:
        for c in conns:
            c.close()
