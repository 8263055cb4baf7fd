"""The review of what no adversarial review had looked at: renewal and connections
across `fork`, `from_credentials` with a hostile membership URI, and the API
clients (`stack_client`, the SDK's sync and async clients). Servers on 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from returns.result import Result, Success
from stacktoken import StackTokenError, TokenSource, formance_sdk, stack_client
from stacktoken.core._errors import AcquireError
from stacktoken.core._requests import RetryPolicy
from stacktoken.core._types import CachedToken
from stacktoken.shell import _source
from stacktoken.shell._http import Http, HttpPolicy
from test_fork_and_flight_safety import _child_call, _in_child

from conftest import World

HANG_SECONDS = 30.0
fork_only = pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")


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


# -- fork ------------------------------------------------------------------------


def _expired_jwt() -> str:
    def part(value: dict[str, object]) -> str:
        raw = base64.urlsafe_b64encode(json.dumps(value).encode()).decode()
        return raw.rstrip("=")

    return f"{part({'alg': 'none'})}.{part({'exp': int(time.time()) - 3600})}.x"


@contextmanager
def threaded_server(
    answer: Callable[[int, socket.socket], None],
) -> Iterator[tuple[int, list[int]]]:
    """A loopback server, one thread a connection, each running `answer(number,
    connection)`; yields its port and the client port of each connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()
    peers: list[int] = []

    def handle(number: int, connection: socket.socket) -> None:
        with connection:
            connection.settimeout(HANG_SECONDS)
            with contextlib.suppress(OSError):
                answer(number, connection)

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, peer = listener.accept()
            except (TimeoutError, OSError):
                continue
            peers.append(peer[1])
            threading.Thread(target=handle, args=(len(peers), connection), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], peers
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def _read_head(connection: socket.socket) -> bytes:
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = connection.recv(65536)
        if not chunk:
            return b""
        head += chunk
    return head


@fork_only
def test_membership_discovery_forked_while_in_flight_starts_anew_in_the_child(
    tmp_path: Path,
) -> None:
    """A child forked while a parent thread discovers the membership IdP (to refresh)
    would join that attempt, whose thread it does not have, and wait for ever."""
    inside, release = threading.Event(), threading.Event()

    def answer(number: int, connection: socket.socket) -> None:
        _read_head(connection)
        if number == 1:  # the parent's: held until the child has answered
            inside.set()
            release.wait(HANG_SECONDS)
        connection.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")

    with threaded_server(answer) as (port, _):
        source = TokenSource.from_credentials(
            stack_uri="http://127.0.0.1:1",
            access_token=_expired_jwt(),
            refresh_token="not-a-real-refresh-token",
            membership_uri=f"http://127.0.0.1:{port}/api",
            cache_dir=tmp_path,
            http_policy=HttpPolicy(timeout=HANG_SECONDS, retry=RetryPolicy(attempts=1)),
        )
        errors: list[str] = []

        def refresh_in_parent() -> None:
            try:
                source.token()
            except Exception as error:  # its answer is no concern of the test's
                errors.append(str(error))

        parent = threading.Thread(target=refresh_in_parent)
        parent.start()
        try:
            assert inside.wait(HANG_SECONDS)
            said = _in_child(_child_call(source.token))
        finally:
            release.set()
            parent.join(HANG_SECONDS)
        source.close()
    assert "answered 404" in said


@fork_only
def test_pooled_connection_is_not_shared_with_a_forked_child() -> None:
    """A child's request on a connection the parent pooled would share one stream
    (and, over TLS, one session) with the parent: the child opens its own."""

    def answer(_: int, connection: socket.socket) -> None:
        while _read_head(connection):
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")

    http = Http(policy=HttpPolicy(timeout=HANG_SECONDS), clock=lambda: datetime.now(UTC), log=print)
    with threaded_server(answer) as (port, peers):
        url = f"http://127.0.0.1:{port}/x"
        assert isinstance(http.get(url), Success)
        said = _in_child(lambda: "ok" if isinstance(http.get(url), Success) else "failed")
        assert isinstance(http.get(url), Success)  # the parent's connection still works
        http.close()
    assert said == "ok"
    assert len(peers) == 2 and peers[0] != peers[1]


@fork_only
def test_background_renewal_source_forked_renews_at_its_refresh_point_in_the_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The child has no renewal thread: its lock-free path must end at the refresh
    point (where a call renews and starts the child's own thread), not at the
    token's end, when it would have to wait for a new one."""

    def issued(**_: object) -> Result[CachedToken, AcquireError]:
        now = datetime.now(UTC)
        return Success(
            CachedToken(
                access_token="t" * 40,
                token_type="Bearer",
                expiry=now + timedelta(hours=1),
                saved_at=now,
            )
        )

    monkeypatch.setattr(_source, "acquire", issued)
    with TokenSource.from_client_credentials(
        stack_uri="https://stack.invalid",
        client_id="svc",
        client_secret="not-a-real-secret-but-long-enough",
        cache_dir=tmp_path,
        renew_in_background=True,
    ) as source:
        source.token()
        assert source._renewer is not None

        def in_child() -> str:
            holding, until = source._holding, source._fast_until
            assert holding is not None and holding.renew_at is not None
            if source._renewer is not None:
                return "the parent's renewer"
            return "ok" if until <= holding.renew_at.timestamp() else "fast path to stale"

        said = _in_child(in_child)
    assert said == "ok"


# -- from_credentials with a hostile membership URI --------------------------------


@pytest.mark.parametrize(
    "membership_uri",
    [
        "http://membership.example/api",  # plain http off loopback
        "https://user:hunter2@membership.example/api",  # credentials in the URL
        "ftp://membership.example/api",
    ],
    ids=["plain_http", "userinfo", "ftp"],
)
def test_from_credentials_refuses_a_membership_uri_no_secret_may_go_to(
    tmp_path: Path, membership_uri: str
) -> None:
    """Refused when made, not at the first refresh (maybe hours later, in a thread)."""
    with pytest.raises(StackTokenError) as caught:
        TokenSource.from_credentials(
            stack_uri="https://stack.example",
            access_token=_expired_jwt(),
            refresh_token="not-a-real-refresh-token",
            membership_uri=membership_uri,
            cache_dir=tmp_path,
        )
    assert "refusing" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def _discovery_server(
    document: Callable[[], bytes], requests: list[bytes]
) -> Callable[[int, socket.socket], None]:
    def answer(_: int, connection: socket.socket) -> None:
        head = _read_head(connection)
        requests.append(head.split(b"\r\n", 1)[0])
        if head.startswith(b"GET /api/.well-known/openid-configuration "):
            body = document()
            connection.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
        else:
            connection.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    return answer


HOSTILE_DISCOVERY: dict[str, Callable[[int], dict[str, object]]] = {
    # an issuer of another host: a mix-up (RFC 8414 section 3.3)
    "foreign_issuer": lambda port: {
        "issuer": "https://evil.example/api",
        "token_endpoint": f"http://127.0.0.1:{port}/token",
    },
    "plain_http_token_endpoint": lambda port: {
        "issuer": f"http://127.0.0.1:{port}/api",
        "token_endpoint": "http://evil.example/token",
    },
    "userinfo_token_endpoint": lambda port: {
        "issuer": f"http://127.0.0.1:{port}/api",
        "token_endpoint": f"http://user:pw@127.0.0.1:{port}/token",
    },
    "huge": lambda port: {
        "issuer": f"http://127.0.0.1:{port}/api",
        "token_endpoint": f"http://127.0.0.1:{port}/token",
        "padding": "x" * (2 << 20),
    },
}


@pytest.mark.parametrize("hostile", HOSTILE_DISCOVERY)
def test_from_credentials_refresh_token_goes_to_no_endpoint_a_hostile_discovery_names(
    tmp_path: Path, hostile: str
) -> None:
    requests: list[bytes] = []
    ports: list[int] = []

    def document() -> bytes:
        return json.dumps(HOSTILE_DISCOVERY[hostile](ports[0])).encode()

    with (
        threaded_server(_discovery_server(document, requests)) as (port, _),
        TokenSource.from_credentials(
            stack_uri=f"http://127.0.0.1:{port}",
            access_token=_expired_jwt(),
            refresh_token="not-a-real-refresh-token",
            membership_uri=f"http://127.0.0.1:{port}/api",
            cache_dir=tmp_path,
            http_policy=HttpPolicy(timeout=HANG_SECONDS, retry=RetryPolicy(attempts=1)),
        ) as source,
        pytest.raises(StackTokenError) as caught,
    ):
        ports.append(port)
        source.token()
    assert requests == [b"GET /api/.well-known/openid-configuration HTTP/1.1"]
    assert "not-a-real-refresh-token" not in str(caught.value)


def test_from_credentials_discovery_redirect_is_not_followed(tmp_path: Path) -> None:
    """A redirect from the membership's discovery is an error; its target is never asked."""
    elsewhere: list[bytes] = []
    here: list[bytes] = []

    def redirect(target: int) -> Callable[[int, socket.socket], None]:
        def answer(_: int, connection: socket.socket) -> None:
            here.append(_read_head(connection).split(b"\r\n", 1)[0])
            connection.sendall(
                b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:%d/api/"
                b".well-known/openid-configuration\r\nContent-Length: 0\r\n\r\n" % target
            )

        return answer

    def record(_: int, connection: socket.socket) -> None:
        elsewhere.append(_read_head(connection))
        connection.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")

    with (
        threaded_server(record) as (other, _),
        threaded_server(redirect(other)) as (port, _),
        TokenSource.from_credentials(
            stack_uri=f"http://127.0.0.1:{port}",
            access_token=_expired_jwt(),
            refresh_token="not-a-real-refresh-token",
            membership_uri=f"http://127.0.0.1:{port}/api",
            cache_dir=tmp_path,
            http_policy=HttpPolicy(timeout=HANG_SECONDS, retry=RetryPolicy(attempts=1)),
        ) as source,
        pytest.raises(StackTokenError, match="302"),
    ):
        source.token()
    assert here == [b"GET /api/.well-known/openid-configuration HTTP/1.1"]
    assert elsewhere == []
