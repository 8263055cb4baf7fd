"""A stack token goes only to its own stack's origin (scheme, host, port), sync and async."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from stacktoken import InvalidUsageError, StackTokenAuth, TokenSource, formance_sdk, stack_client
from stacktoken.core._origin import origin, token_refusal

from conftest import World

STACK = "https://orga-stk1.formance.cloud"

SAME_ORIGIN = [
    (f"{STACK}/api/ledger/v2", STACK),
    (f"{STACK}:443/api/ledger/v2", STACK),
    ("https://ORGA-STK1.formance.cloud/x", STACK),
    ("http://127.0.0.1:8080/api", "http://127.0.0.1:8080"),
    ("http://[::1]:8080/api", "http://[::1]:8080/"),
    ("http://localhost/api", "http://localhost"),
]

OTHER_ORIGIN = [
    ("https://evil.example/api", STACK),  # another host
    (f"{STACK}:8443/api", STACK),  # another port
    ("http://orga-stk1.formance.cloud/api", STACK),  # a downgrade to plain http
    ("https://orga-stk1.formance.cloud.evil.example/api", STACK),  # a suffix
    ("https://orga-stk1.formance.cloud@evil.example/api", STACK),  # userinfo trick
    ("http://127.0.0.1:8081/api", "http://127.0.0.1:8080"),
    ("http://localhost:8080/api", "http://127.0.0.1:8080"),  # another name, another origin
    ("http://example.com/api", "http://example.com"),  # plain http off loopback
    ("ftp://orga-stk1.formance.cloud/api", STACK),
    ("https://[::1/api", STACK),  # malformed
]


@pytest.mark.parametrize(("url", "stack_uri"), SAME_ORIGIN)
def test_token_refusal_none_for_the_stack_origin(url: str, stack_uri: str) -> None:
    assert token_refusal(url, stack_uri=stack_uri) is None


@pytest.mark.parametrize(("url", "stack_uri"), OTHER_ORIGIN)
def test_token_refusal_for_any_other_origin(url: str, stack_uri: str) -> None:
    refusal = token_refusal(url, stack_uri=stack_uri)
    assert refusal is not None and refusal.startswith("refusing to send the stack token")


def test_origin_makes_default_ports_explicit() -> None:
    assert origin("https://h/x") == origin("https://h:443/y") == ("https", "h", 443)
    assert origin("http://h") == ("http", "h", 80)
    assert origin("mailto:x@h") is None


@pytest.fixture
def source(world: World) -> Iterator[TokenSource]:
    with TokenSource.from_fctl(
        config_dir=world.config_dir, cache_dir=world.cache_dir, environ={}
    ) as opened:
        yield opened


def _bearers(headers: list[dict[str, str]]) -> list[str]:
    return [h["authorization"] for h in headers if "authorization" in h]


def test_stack_client_absolute_url_to_another_origin_is_refused(
    world: World, source: TokenSource
) -> None:
    """An absolute URL overrides the base URL: the request is refused, the token not even got."""
    elsewhere = f"{world.membership.base_url}/api/ledger/_/info"
    with stack_client(source, timeout=10) as client, pytest.raises(InvalidUsageError) as caught:
        client.get(elsewhere)
    assert "refusing to send the stack token" in str(caught.value)
    assert _bearers(world.membership.request_headers) == []
    assert world.requests() == 0


def test_stack_client_same_origin_still_authenticated(world: World, source: TokenSource) -> None:
    with stack_client(source, timeout=10) as client:
        assert client.get(f"{world.stack.stack_uri}/api/ledger/_info").status_code == 200
    assert world.exchanges() == 1


def test_async_client_to_another_origin_is_refused(world: World, source: TokenSource) -> None:
    elsewhere = f"{world.membership.base_url}/api/ledger/_/info"

    async def scenario() -> None:
        async with httpx.AsyncClient(auth=StackTokenAuth(source), timeout=10) as client:
            await client.get(elsewhere)

    with pytest.raises(InvalidUsageError):
        asyncio.run(asyncio.wait_for(scenario(), 30))
    assert _bearers(world.membership.request_headers) == []
    assert world.requests() == 0


def test_plain_http_off_loopback_is_refused_before_any_connection(
    world: World, source: TokenSource
) -> None:
    with (
        httpx.Client(auth=StackTokenAuth(source), timeout=10) as client,
        pytest.raises(InvalidUsageError),
    ):
        client.get("http://stack.invalid/api/ledger/_info")
    assert world.requests() == 0


def test_formance_sdk_operation_server_url_to_another_origin_is_refused(
    world: World, source: TokenSource
) -> None:
    """An SDK operation's `server_url=` to another host gets no token."""
    with formance_sdk(source) as sdk, pytest.raises(InvalidUsageError):
        sdk.ledger.v2.get_info(server_url=world.membership.base_url)
    assert _bearers(world.membership.request_headers) == []
    assert world.requests() == 0
