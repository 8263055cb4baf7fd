"""The HTTP effect against a raw loopback socket server: limits httpx alone does not give."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from returns.result import Failure
from stacktoken.core._errors import RemoteError
from stacktoken.core._requests import RetryPolicy
from stacktoken.shell._http import Http, HttpPolicy

BODY_BYTES = 100
DRIP_INTERVAL_SECONDS = 0.1  # the whole body would take 10 s


@pytest.fixture
def dripping_server() -> Iterator[str]:
    """Answers 200 at once, then sends its body one byte every 0.1 s (bounded)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)
    stop = threading.Event()

    def serve() -> None:
        try:
            connection, _ = listener.accept()
        except OSError:
            return
        with connection:
            connection.recv(65536)
            connection.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {BODY_BYTES}\r\n\r\n".encode()
            )
            for _ in range(BODY_BYTES):
                if stop.wait(DRIP_INTERVAL_SECONDS):
                    return
                try:
                    connection.sendall(b" ")
                except OSError:
                    return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/api/auth/.well-known/openid-configuration"
    stop.set()
    listener.close()
    thread.join(timeout=5)


def test_http_body_dripping_past_the_timeout_is_a_timeout(dripping_server: str) -> None:
    """Each read arrives well within the 0.5 s timeout, the whole body never does."""
    policy = HttpPolicy(timeout=0.5, retry=RetryPolicy(attempts=1))
    http = Http(policy=policy, clock=lambda: datetime.now(UTC), log=lambda _: None)
    started = time.monotonic()
    try:
        answer = http.get(dripping_server)
    finally:
        http.close()
    assert isinstance(answer, Failure), f"answered after {time.monotonic() - started:.1f} s"
    error = answer.failure()
    assert isinstance(error, RemoteError) and error.transient
    assert "timed out" in error.message
