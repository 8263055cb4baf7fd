"""A reused keep-alive connection in a process with more than 1024 files open."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from stacktoken.core._time import UTC, datetime
from stacktoken.shell._http import Http, HttpPolicy

resource = pytest.importorskip("resource")
DESCRIPTORS = 1100  # past select()'s FD_SETSIZE (1024)


class _Ok(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the second request reuses the connection

    def do_GET(self) -> None:
        body = b'{"ok": 1}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def many_descriptors() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < DESCRIPTORS + 100:
        pytest.skip(f"this machine allows {hard} open files")
    resource.setrlimit(resource.RLIMIT_NOFILE, (DESCRIPTORS + 100, hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(DESCRIPTORS)]
    try:
        yield
    finally:
        for descriptor in held:
            os.close(descriptor)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_transport_reuses_a_connection_past_1024_descriptors(many_descriptors: None) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    http = Http(policy=HttpPolicy(timeout=10), clock=lambda: datetime.now(UTC), log=lambda _: None)
    try:
        url = f"http://127.0.0.1:{server.server_port}/x"
        for _ in range(3):  # the 2nd and 3rd ask whether the idle connection is reusable
            answer = http.get(url).unwrap()
            assert answer.status_code == 200
    finally:
        http.close()
        server.shutdown()
        server.server_close()
        thread.join(10)
