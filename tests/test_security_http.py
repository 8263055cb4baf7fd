"""Issue 15 #2, #3, #5: hostile servers and environments at the HTTP layer.

Each test is a reproduction against a raw loopback server: headers dripped
one byte at a time, a nested-gzip bomb, a proxy in the environment, a CA
file that cannot be loaded; plus a real TLS server, so the https path is
exercised too.
"""

from __future__ import annotations

import gzip
import json
import socket
import ssl
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from redis_server import make_tls_files
from returns.result import Failure, Success
from stacktoken.core._errors import RemoteError
from stacktoken.core._requests import RetryPolicy
from stacktoken.shell._http import Http, HttpPolicy

ONE_POLICY = HttpPolicy(timeout=0.5, retry=RetryPolicy(attempts=1))
PATH = "/api/auth/.well-known/openid-configuration"
DOCUMENT = json.dumps({"token_endpoint": "http://127.0.0.1:1/token"}).encode()


def _http(policy: HttpPolicy = ONE_POLICY) -> Http:
    return Http(policy=policy, clock=lambda: datetime.now(UTC), log=lambda _: None)


@contextmanager
def raw_server(
    answer: Callable[[socket.socket, bytes, threading.Event], None],
    *,
    wrap: ssl.SSLContext | None = None,
) -> Iterator[tuple[int, list[bytes]]]:
    """A loopback server answering each connection with `answer(connection, request, stop)`;
    yields its port and the requests it read. Bounded: every accept and read times out."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()
    received: list[bytes] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            try:
                if wrap is not None:
                    connection = wrap.wrap_socket(connection, server_side=True)
                connection.settimeout(5)
                with connection:
                    request = connection.recv(65536)
                    received.append(request)
                    answer(connection, request, stop)
            except (OSError, ssl.SSLError):
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], received
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


DRIPPED_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 0\r\n\r\n"


def test_http_headers_dripping_past_the_deadline_are_a_timeout() -> None:
    """The whole request, headers included, is bounded by one deadline:
    the client hangs up long before the server, dripping a byte every 0.05 s (each
    well within the 0.5 s read timeout), gets its whole head out (about 3.7 s)."""
    sent = [0]

    def drip(connection: socket.socket, _: bytes, stop: threading.Event) -> None:
        for byte in DRIPPED_HEAD:
            if stop.wait(0.05):
                return
            try:
                connection.sendall(bytes([byte]))
            except OSError:
                return  # the client hung up
            sent[0] += 1

    with raw_server(drip) as (port, _):
        http = _http()
        try:
            answer = http.get(f"http://127.0.0.1:{port}{PATH}")
        finally:
            http.close()
    assert isinstance(answer, Failure)
    assert "timed out" in answer.failure().message
    assert sent[0] < len(DRIPPED_HEAD), "the client waited for the whole dripped head"


BOMB_INFLATED = 256 << 20  # 256 MiB of zeros, gzipped twice: about 1 KB on the wire


def _bomb() -> bytes:
    inner = gzip.compress(bytes(BOMB_INFLATED), compresslevel=9)
    return gzip.compress(inner, compresslevel=9)


def _answer_with(
    headers: bytes, body: bytes
) -> Callable[[socket.socket, bytes, threading.Event], None]:
    def answer(connection: socket.socket, _: bytes, __: threading.Event) -> None:
        connection.sendall(
            b"HTTP/1.1 200 OK\r\n"
            + headers
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )

    return answer


def test_http_gzip_bomb_is_refused_within_the_size_cap_of_memory() -> None:
    """A nested-gzip answer is inflated at most to the body cap, not to its 256 MiB (#3)."""
    body = _bomb()
    assert len(body) < 4096
    headers = b"Content-Type: application/json\r\nContent-Encoding: gzip, gzip\r\n"
    with raw_server(_answer_with(headers, body)) as (port, received):
        http = _http()
        tracemalloc.start()
        try:
            answer = http.get(f"http://127.0.0.1:{port}{PATH}")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
            http.close()
    assert isinstance(answer, Failure)
    assert "size limit" in answer.failure().message
    assert peak < 32 << 20, f"peak {peak >> 20} MiB while reading a {len(body)}-byte answer"
    assert b"accept-encoding: identity" in received[0].lower()


def test_http_gzip_within_the_cap_is_decoded() -> None:
    headers = b"Content-Type: application/json\r\nContent-Encoding: gzip\r\n"
    with raw_server(_answer_with(headers, gzip.compress(DOCUMENT))) as (port, _):
        http = _http()
        try:
            answer = http.get(f"http://127.0.0.1:{port}{PATH}")
        finally:
            http.close()
    assert isinstance(answer, Success)
    assert answer.unwrap().body == DOCUMENT


def test_http_an_encoding_not_asked_for_is_refused() -> None:
    headers = b"Content-Type: application/json\r\nContent-Encoding: br\r\n"
    with raw_server(_answer_with(headers, b"\x0b\x00\x80")) as (port, _):
        http = _http()
        try:
            answer = http.get(f"http://127.0.0.1:{port}{PATH}")
        finally:
            http.close()
    assert isinstance(answer, Failure)
    assert "content encoding" in answer.failure().message


def _refuse(connection: socket.socket, _: bytes, __: threading.Event) -> None:
    connection.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
def test_http_loopback_is_never_sent_through_a_proxy(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    """A proxy in the environment gets no loopback request (tokens in clear text) (#5)."""
    headers = b"Content-Type: application/json\r\n"
    with (
        raw_server(_refuse) as (proxy_port, proxied),
        raw_server(_answer_with(headers, DOCUMENT)) as (port, _),
    ):
        monkeypatch.setenv(variable, f"http://127.0.0.1:{proxy_port}")
        http = _http()
        try:
            answer = http.get(f"http://127.0.0.1:{port}{PATH}")
        finally:
            http.close()
    assert isinstance(answer, Success), answer
    assert proxied == []


def test_http_other_hosts_still_go_through_the_environments_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with raw_server(_refuse) as (proxy_port, proxied):
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy_port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        http = _http()
        try:
            answer = http.get("https://stack.example.invalid/api/auth/.well-known/x")
        finally:
            http.close()
    assert isinstance(answer, Failure)
    assert proxied and proxied[0].startswith(b"CONNECT stack.example.invalid:443")


def test_http_unloadable_ca_file_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad SSL_CERT_FILE is named in one clear line, not an unexpected exception (#5)."""
    monkeypatch.setenv("SSL_CERT_FILE", "/nonexistent/ca.pem")
    http = _http()
    try:
        answer = http.get("https://127.0.0.1:1/api/auth/.well-known/openid-configuration")
    finally:
        http.close()
    assert isinstance(answer, Failure)
    error = answer.failure()
    assert isinstance(error, RemoteError)
    assert "SSL_CERT_FILE='/nonexistent/ca.pem'" in error.message
    assert "No such file" in error.message


def test_http_https_to_a_server_our_cas_trust_works_and_others_do_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = make_tls_files(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(files.cert), str(files.key))
    headers = b"Content-Type: application/json\r\n"
    with raw_server(_answer_with(headers, DOCUMENT), wrap=context) as (port, _):
        url = f"https://127.0.0.1:{port}{PATH}"
        monkeypatch.delenv("SSL_CERT_DIR", raising=False)
        monkeypatch.setenv("SSL_CERT_FILE", str(files.ca_cert))
        trusting = _http()
        try:
            trusted = trusting.get(url)
        finally:
            trusting.close()
        monkeypatch.delenv("SSL_CERT_FILE")
        distrusting = _http()  # certifi's CAs only: the test CA is not among them
        try:
            refused = distrusting.get(url)
        finally:
            distrusting.close()
    assert isinstance(trusted, Success), trusted
    assert trusted.unwrap().body == DOCUMENT
    assert isinstance(refused, Failure)
