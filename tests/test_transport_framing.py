"""HTTP/1.1 framing an attacker controls, against raw-socket servers on loopback.

A truncated body, conflicting `Content-Length` headers, and `Transfer-Encoding`
with `Content-Length` (RFC 9112 §6.3): each is a protocol error (transient),
never an answer, and the connection it came on is closed, never reused. Plus
the loopback forms of the URL policy (`[::1]` and hostile look-alikes), and how
`SSL_CERT_FILE` / `SSL_CERT_DIR` are followed, never weakening verification.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from redis_server import make_tls_files
from returns.result import Failure, Result, Success
from stacktoken.core._errors import RemoteError
from stacktoken.core._requests import RetryPolicy
from stacktoken.shell._http import Http, HttpAnswer, HttpPolicy

ONE_POLICY = HttpPolicy(timeout=5, retry=RetryPolicy(attempts=1))
PATH = "/api/auth/.well-known/openid-configuration"
DOCUMENT = json.dumps({"token_endpoint": "http://127.0.0.1:1/token"}).encode()
WAIT_SECONDS = 5  # a bound on every wait of these tests, not a premise


def _http() -> Http:
    return Http(policy=ONE_POLICY, clock=lambda: datetime.now(UTC), log=lambda _: None)


@dataclass
class _Seen:
    """What a keep-alive server saw: connections accepted, and whether the client
    hung up on the first one after its answer (None: it kept the connection open)."""

    connections: int = 0
    first_closed_by_client: bool | None = None
    requests: list[bytes] = field(default_factory=list)
    first_done: threading.Event = field(default_factory=threading.Event)


@contextmanager
def keep_alive_server(
    first: bytes, *, family: socket.AddressFamily = socket.AF_INET
) -> Iterator[tuple[int, _Seen]]:
    """Answers the first connection's request with the raw bytes `first` and keeps that
    connection open, watching whether the client closes it; any later connection is
    answered with a good document. Every accept and read is bounded."""
    host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    listener = socket.create_server((host, 0), family=family)
    listener.settimeout(0.1)
    stop = threading.Event()
    seen = _Seen()
    good = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(DOCUMENT)}\r\n\r\n".encode()
        + DOCUMENT
    )

    def watch_first(connection: socket.socket) -> None:
        connection.settimeout(WAIT_SECONDS)
        with connection:
            try:
                seen.requests.append(connection.recv(65536))
                connection.sendall(first)
                request = connection.recv(65536)
            except OSError:  # TimeoutError included: the client kept it open, idle
                request = None
            seen.first_closed_by_client = request == b""
            seen.first_done.set()
            while request:  # the client reused the connection: serve it
                seen.requests.append(request)
                try:
                    connection.sendall(good)
                    request = connection.recv(65536)
                except OSError:
                    return

    def serve_others(connection: socket.socket) -> None:
        connection.settimeout(WAIT_SECONDS)
        with connection:
            try:
                while request := connection.recv(65536):
                    seen.requests.append(request)
                    connection.sendall(good)
            except OSError:
                return

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            seen.connections += 1
            handler = watch_first if seen.connections == 1 else serve_others
            threading.Thread(target=handler, args=(connection,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], seen
    finally:
        stop.set()
        thread.join(timeout=WAIT_SECONDS)
        listener.close()


def _head(*headers: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + b"".join(headers) + b"\r\n"


def _refused_and_closed(
    first: bytes,
) -> tuple[RemoteError, _Seen, Result[HttpAnswer, RemoteError]]:
    """Sends a GET answered by `first`, then a second GET on the same client."""
    with keep_alive_server(first) as (port, seen):
        http = _http()
        try:
            answer = http.get(f"http://127.0.0.1:{port}{PATH}")
            assert seen.first_done.wait(WAIT_SECONDS * 2)
            again = http.get(f"http://127.0.0.1:{port}{PATH}")
        finally:
            http.close()
    assert isinstance(answer, Failure), f"taken as an answer: {answer}"
    return answer.failure(), seen, again


def test_transport_truncated_body_is_a_transient_protocol_error() -> None:
    """A response that closes before its Content-Length is read is no answer."""
    body = DOCUMENT[:10]
    truncated = _head(f"Content-Length: {len(DOCUMENT)}\r\n".encode()) + body

    def close_early(connection: socket.socket) -> None:
        connection.recv(65536)
        connection.sendall(truncated)

    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(WAIT_SECONDS)

    def serve() -> None:
        try:
            connection, _ = listener.accept()
        except OSError:
            return
        with connection:
            close_early(connection)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    http = _http()
    try:
        answer = http.get(f"http://127.0.0.1:{listener.getsockname()[1]}{PATH}")
    finally:
        http.close()
        thread.join(timeout=WAIT_SECONDS)
        listener.close()
    assert isinstance(answer, Failure), f"a truncated body was taken as an answer: {answer}"
    error = answer.failure()
    assert isinstance(error, RemoteError)
    assert error.transient
    assert "ProtocolError" in error.message


@pytest.mark.parametrize(
    "headers",
    [
        (b"Content-Length: 5\r\n", b"Content-Length: 50\r\n"),
        (b"Content-Length: 5, 50\r\n",),
        (b"Transfer-Encoding: chunked\r\n", b"Content-Length: 5\r\n"),
        (b"Content-Length: 5\r\n", b"Transfer-Encoding: chunked\r\n"),
    ],
    ids=["two-lengths", "a-list-of-lengths", "chunked-then-length", "length-then-chunked"],
)
def test_transport_ambiguous_framing_is_refused_and_the_connection_closed(
    headers: tuple[bytes, ...],
) -> None:
    """RFC 9112 §6.3: conflicting lengths are unrecoverable, and a length beside
    chunked coding smells of response splitting: refused, the connection closed
    (the next request goes over a new one)."""
    chunked = b"5\r\n" + DOCUMENT[:5] + b"\r\n0\r\n\r\n"
    body = chunked if any(b"chunked" in header for header in headers) else DOCUMENT[:5]
    error, seen, again = _refused_and_closed(_head(*headers) + body)
    assert isinstance(error, RemoteError)
    assert error.transient
    assert "ProtocolError" in error.message
    assert seen.first_closed_by_client is True, "the connection was kept for reuse"
    assert isinstance(again, Success), again
    assert seen.connections == 2


def test_transport_a_good_answer_keeps_its_connection_for_reuse() -> None:
    """The counterpart of the test above: a well-framed answer's connection is reused."""
    good = _head(f"Content-Length: {len(DOCUMENT)}\r\n".encode()) + DOCUMENT
    with keep_alive_server(good) as (port, seen):
        http = _http()
        try:
            first = http.get(f"http://127.0.0.1:{port}{PATH}")
            second = http.get(f"http://127.0.0.1:{port}{PATH}")
        finally:
            http.close()
    assert isinstance(first, Success) and isinstance(second, Success)
    assert seen.connections == 1
    assert len(seen.requests) == 2


def _ipv6_loopback() -> bool:
    try:
        with socket.create_server(("::1", 0), family=socket.AF_INET6):
            return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this machine")
@pytest.mark.parametrize("host", ["[::1]", "[0:0:0:0:0:0:0:1]"])
def test_transport_plain_http_to_ipv6_loopback_works(host: str) -> None:
    good = _head(f"Content-Length: {len(DOCUMENT)}\r\n".encode()) + DOCUMENT
    with keep_alive_server(good, family=socket.AF_INET6) as (port, seen):
        http = _http()
        try:
            answer = http.get(f"http://{host}:{port}{PATH}")
        finally:
            http.close()
    assert isinstance(answer, Success), answer
    assert answer.unwrap().body == DOCUMENT
    assert seen.requests and seen.requests[0].startswith(f"GET {PATH} HTTP/1.1".encode())


@pytest.mark.parametrize(
    "url",
    [
        "http://[::ffff:8.8.8.8]/x",  # IPv4-mapped, not loopback
        "http://[::]/x",  # unspecified: the local host on Linux, but not loopback
        "http://[::2]/x",
        "http://[fe80::1%25lo]/x",
        "http://127.0.0.1.evil.example/x",
        "http://localhost.evil.example/x",
        "http://evil.example#@127.0.0.1/x",
        "http://evil.example?@127.0.0.1/x",
        "http://127.1/x",  # inet_aton's short form: a name to httpx's parser
        "http://2130706433/x",
        "http://0x7f.0.0.1/x",
        "http://[::1]evil.example/x",
        "http://[::1]@evil.example/x",
        "http://evil.example\\@127.0.0.1/x",
        "http://127.0.0.1\\@evil.example/x",
        "http://127.0.0.1%2f@evil.example/x",
        "http://evil.example%23@127.0.0.1/x",
        "http://127.0.0.1:80:80@evil.example/x",
    ],
)
def test_transport_plain_http_to_a_loopback_look_alike_is_refused(url: str) -> None:
    """No connection is attempted: the URL policy refuses before sending, and the
    transport refuses plain http to a host that httpx's own parser calls non-loopback."""
    http = _http()
    try:
        answer = http.get(url)
    finally:
        http.close()
    assert isinstance(answer, Failure), answer
    error = answer.failure()
    assert isinstance(error, RemoteError)
    assert not error.transient
    assert "cannot connect" not in error.message


def test_transport_refuses_plain_http_to_a_host_httpx_parses_as_non_loopback() -> None:
    """Defence in depth below the URL policy (a parser differential between urllib and
    httpx must not carry a token in clear text): the transport refuses on its own."""
    import httpx
    from stacktoken.shell._transport import Transport

    transport = Transport(total=1.0)
    try:
        with pytest.raises(httpx.UnsupportedProtocol, match="loopback"):
            transport.handle_request(httpx.Request("GET", "http://192.0.2.1/x"))
    finally:
        transport.close()


def _tls_server_answering(context: ssl.SSLContext) -> tuple[socket.socket, threading.Event]:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()
    good = _head(f"Content-Length: {len(DOCUMENT)}\r\n".encode()) + DOCUMENT

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            try:
                connection.settimeout(WAIT_SECONDS)
                with context.wrap_socket(connection, server_side=True) as wrapped:
                    wrapped.recv(65536)
                    wrapped.sendall(good)
            except (OSError, ssl.SSLError):
                continue

    threading.Thread(target=serve, daemon=True).start()
    return listener, stop


def _hashed_ca_dir(tmp_path: Path, ca_cert: Path) -> Path:
    """A directory in OpenSSL's `c_rehash` layout holding the test CA."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl command to name the CA by its subject hash")
    subject_hash = subprocess.run(
        [openssl, "x509", "-hash", "-noout", "-in", str(ca_cert)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()
    folder = tmp_path / "certs"
    folder.mkdir()
    shutil.copy(ca_cert, folder / f"{subject_hash}.0")
    return folder


def test_transport_ssl_cert_dir_is_followed_and_never_disables_verification(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """httpx's rules: SSL_CERT_FILE, else SSL_CERT_DIR, else certifi. A directory with
    the test CA trusts the server; an empty one trusts no one (verification stays on)."""
    files = make_tls_files(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(files.cert), str(files.key))
    listener, stop = _tls_server_answering(context)
    url = f"https://127.0.0.1:{listener.getsockname()[1]}{PATH}"
    empty = tmp_path / "empty"
    empty.mkdir()
    outcomes = {}
    try:
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        for name, folder in (
            ("trusting", _hashed_ca_dir(tmp_path, files.ca_cert)),
            ("empty", empty),
        ):
            monkeypatch.setenv("SSL_CERT_DIR", str(folder))
            http = _http()
            try:
                outcomes[name] = http.get(url)
            finally:
                http.close()
    finally:
        stop.set()
        listener.close()
    assert isinstance(outcomes["trusting"], Success), outcomes["trusting"]
    assert isinstance(outcomes["empty"], Failure)


def test_transport_missing_ssl_cert_dir_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CA directory that does not exist would trust no one, silently: named instead."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.setenv("SSL_CERT_DIR", "/nonexistent/certs")
    http = _http()
    try:
        answer = http.get(f"https://127.0.0.1:1{PATH}")
    finally:
        http.close()
    assert isinstance(answer, Failure)
    error = answer.failure()
    assert isinstance(error, RemoteError)
    assert "SSL_CERT_DIR='/nonexistent/certs'" in error.message
    assert not error.transient


@pytest.mark.parametrize(
    "environment",
    [{}, {"SSL_CERT_FILE": "certifi"}, {"SSL_CERT_DIR": "tmp"}, {"SSL_CERT_FILE": ""}],
    ids=["none", "file", "dir", "empty-file"],
)
def test_transport_tls_context_always_verifies(
    environment: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import certifi
    from stacktoken.shell._transport import tls_context

    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        given = {"certifi": certifi.where(), "tmp": str(tmp_path)}.get(value, value)
        monkeypatch.setenv(name, given)
    context = tls_context()
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2 or os.name == "nt"


def test_transport_plain_http_loads_no_ca_certificates(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading the CA bundle costs a cold run tens of ms; loopback http never needs it."""
    import httpx

    def refuse(*_: object, **__: object) -> ssl.SSLContext:
        raise AssertionError("an SSL context was made for plain http")

    monkeypatch.setattr(httpx, "create_ssl_context", refuse)
    monkeypatch.setattr(ssl, "create_default_context", refuse)
    good = _head(f"Content-Length: {len(DOCUMENT)}\r\n".encode()) + DOCUMENT
    with keep_alive_server(good) as (port, _):
        http = _http()
        try:
            answer = http.get(f"http://127.0.0.1:{port}{PATH}")
        finally:
            http.close()
    assert isinstance(answer, Success), answer
