"""`StackTokenAuth` and `stack_client` against the stack's protected resource, sync and async."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest
from oauth_servers import Fault
from stacktoken import AuthenticationRequiredError, StackTokenAuth, TokenSource, stack_client

from conftest import World

ASYNC_TIMEOUT_SECONDS = 30


@pytest.fixture
def source(world: World) -> Iterator[TokenSource]:
    with TokenSource.from_fctl(
        config_dir=world.config_dir, cache_dir=world.cache_dir, environ={}
    ) as opened:
        yield opened


def authorization(world: World) -> str:
    return world.stack.request_headers[-1].get("authorization", "")


def issued(world: World) -> list[str]:
    return [t.access_token for t in world.stack.issued_tokens]


def test_auth_injects_bearer(world: World, source: TokenSource) -> None:
    with httpx.Client(auth=StackTokenAuth(source), timeout=10) as client:
        response = client.get(world.stack.resource_url)
        again = client.get(world.stack.resource_url)
    assert response.status_code == 200 and again.status_code == 200
    assert authorization(world) == f"Bearer {issued(world)[0]}"
    assert world.exchanges() == 1


def test_auth_retries_once_with_new_token_after_401(world: World, source: TokenSource) -> None:
    with httpx.Client(auth=StackTokenAuth(source), timeout=10) as client:
        assert client.get(world.stack.resource_url).status_code == 200
        (first,) = issued(world)
        world.stack.revoke_issued_tokens()  # the held token is now stale
        response = client.get(world.stack.resource_url)
    assert response.status_code == 200
    assert world.stack.count(world.stack.RESOURCE) == 3
    assert world.exchanges() == 2
    (second,) = issued(world)
    assert authorization(world) == f"Bearer {second}"
    cached = json.loads(world.profile.api_token_cache_path.read_text())
    assert cached["accessToken"] == second != first


def test_auth_gives_up_after_one_retry(world: World, source: TokenSource) -> None:
    world.stack.inject(world.stack.RESOURCE, *[Fault.status(401, "invalid_token")] * 3)
    with httpx.Client(auth=StackTokenAuth(source), timeout=10) as client:
        response = client.get(world.stack.resource_url)
    assert response.status_code == 401
    assert world.stack.count(world.stack.RESOURCE) == 2
    assert world.stack.pending_faults(world.stack.RESOURCE) == 1
    assert world.exchanges() == 2


def test_auth_does_not_retry_other_errors(world: World, source: TokenSource) -> None:
    world.stack.inject(world.stack.RESOURCE, Fault.status(403, "access_denied"))
    with httpx.Client(auth=StackTokenAuth(source), timeout=10) as client:
        response = client.get(world.stack.resource_url)
    assert response.status_code == 403
    assert world.stack.count(world.stack.RESOURCE) == 1
    assert world.exchanges() == 1


def test_auth_flow_generator_protocol(world: World, source: TokenSource) -> None:
    """Driven by hand as httpx's own tests do: request, 401, retried request, done."""
    auth = StackTokenAuth(source)
    request = httpx.Request("GET", world.stack.resource_url)
    flow = auth.sync_auth_flow(request)
    sent = next(flow)
    first = issued(world)[0]
    assert sent.headers["Authorization"] == f"Bearer {first}"
    retried = flow.send(httpx.Response(401, request=sent))
    second = issued(world)[1]
    assert retried.headers["Authorization"] == f"Bearer {second}"
    with pytest.raises(StopIteration):
        flow.send(httpx.Response(401, request=retried))


def test_auth_concurrent_401s_replace_the_token_once(world: World, source: TokenSource) -> None:
    """Two requests refused with the same stale token cost one new token, not two."""
    auth = StackTokenAuth(source)
    first_flow = auth.sync_auth_flow(httpx.Request("GET", world.stack.resource_url))
    second_flow = auth.sync_auth_flow(httpx.Request("GET", world.stack.resource_url))
    first_sent, second_sent = next(first_flow), next(second_flow)
    assert world.exchanges() == 1
    first_flow.send(httpx.Response(401, request=first_sent))
    assert world.exchanges() == 2
    retried = second_flow.send(httpx.Response(401, request=second_sent))
    assert world.exchanges() == 2  # the second refusal finds the new token already held
    assert retried.headers["Authorization"] == f"Bearer {issued(world)[1]}"


def test_auth_raises_typed_error_when_login_needed(world: World, source: TokenSource) -> None:
    world.membership.revoke_all_refresh_tokens()
    world.stack.reject_all_assertions()
    with (
        httpx.Client(auth=StackTokenAuth(source), timeout=10) as client,
        pytest.raises(AuthenticationRequiredError) as caught,
    ):
        client.get(world.stack.resource_url)
    assert caught.value.exit_code == 3
    assert world.stack.count(world.stack.RESOURCE) == 0


def test_stack_client_base_url_is_stack_uri(world: World, source: TokenSource) -> None:
    with stack_client(source, timeout=10) as client:
        assert str(client.base_url).rstrip("/") == world.stack.stack_uri
        assert isinstance(client.auth, StackTokenAuth)
        response = client.get("/api/ledger/_info")
    assert response.status_code == 200
    assert response.json() == {"server": "ledger", "version": "test"}
    assert authorization(world) == f"Bearer {issued(world)[0]}"


def test_auth_async_client(world: World, source: TokenSource) -> None:
    async def scenario() -> tuple[int, int]:
        async with httpx.AsyncClient(auth=StackTokenAuth(source), timeout=10) as client:
            first = await client.get(world.stack.resource_url)
            world.stack.revoke_issued_tokens()
            second = await client.get(world.stack.resource_url)
            return first.status_code, second.status_code

    async def bounded() -> tuple[int, int]:
        return await asyncio.wait_for(scenario(), ASYNC_TIMEOUT_SECONDS)

    assert asyncio.run(bounded()) == (200, 200)
    assert world.stack.count(world.stack.RESOURCE) == 3
    assert world.exchanges() == 2
    assert authorization(world) == f"Bearer {issued(world)[-1]}"


def test_auth_async_concurrent_requests_share_one_exchange(
    world: World, source: TokenSource
) -> None:
    async def scenario() -> list[int]:
        async with httpx.AsyncClient(auth=StackTokenAuth(source), timeout=10) as client:
            responses = await asyncio.gather(
                *(client.get(world.stack.resource_url) for _ in range(5))
            )
            return [r.status_code for r in responses]

    async def bounded() -> list[int]:
        return await asyncio.wait_for(scenario(), ASYNC_TIMEOUT_SECONDS)

    assert asyncio.run(bounded()) == [200] * 5
    assert world.exchanges() == 1
