"""The review of what no adversarial review had looked at: renewal and connections
across `fork`, `from_credentials` with a hostile membership URI, and the API
clients (`stack_client`, the SDK's sync and async clients). Servers on 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from stacktoken import TokenSource, formance_sdk, stack_client

from conftest import World

HANG_SECONDS = 30.0


@contextmanager
def recording_proxy() -> Iterator[tuple[int, list[bytes]]]:
    """A loopback 'proxy' that records what it is sent and answers 502."""
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
            with connection:
                connection.settimeout(5)
                try:
                    received.append(connection.recv(65536))
                    connection.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                except OSError:
                    continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], received
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


@pytest.fixture
def source(world: World) -> Iterator[TokenSource]:
    with TokenSource.from_fctl(
        config_dir=world.config_dir, cache_dir=world.cache_dir, environ={}
    ) as opened:
        yield opened


@pytest.fixture
def proxied(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bytes]]:
    """A proxy in the environment for every scheme, and no `NO_PROXY`."""
    with recording_proxy() as (port, received):
        for variable in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
            monkeypatch.setenv(variable, f"http://127.0.0.1:{port}")
            monkeypatch.delenv(variable.lower(), raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        yield received


def test_stack_client_on_loopback_is_never_sent_through_a_proxy(
    world: World, source: TokenSource, proxied: list[bytes]
) -> None:
    """httpx proxies loopback unless NO_PROXY names it: the token would go to the
    proxy in clear text. The stack's client goes direct, as token requests do."""
    with stack_client(source, timeout=10) as client:
        assert client.get("/api/ledger/_info").status_code == 200
    assert proxied == []


def test_formance_sdk_clients_on_loopback_are_never_sent_through_a_proxy(
    world: World, source: TokenSource, proxied: list[bytes]
) -> None:
    """The SDK's sync and async clients too (the loopback stack is no ledger: its
    answer does not validate, which is no concern here)."""
    before = world.stack.total_requests
    with formance_sdk(source) as sdk, contextlib.suppress(Exception):
        sdk.ledger.v2.get_info()

    async def scenario() -> None:
        async with formance_sdk(source) as sdk:
            with contextlib.suppress(Exception):
                await sdk.ledger.v2.get_info_async()

    asyncio.run(asyncio.wait_for(scenario(), HANG_SECONDS))
    assert proxied == []
    assert world.stack.total_requests > before


def test_stack_client_on_https_still_goes_through_the_proxy(
    world: World, proxied: list[bytes]
) -> None:
    """Only loopback stacks lose the proxy: an https stack's requests go through it
    (a CONNECT tunnel; the token travels inside TLS)."""
    source = TokenSource.from_credentials(
        stack_uri="https://stack.example.invalid",
        access_token="not-a-jwt",
        cache_dir=world.cache_dir,
    )
    with stack_client(source, timeout=10) as client, pytest.raises(httpx.ProxyError):
        client.get("/api/ledger/_info", auth=None)
    assert proxied and proxied[0].startswith(b"CONNECT stack.example.invalid:443")
