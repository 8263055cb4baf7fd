"""The ledger stub of tests/ledger_stub.py: faithful to the real formance-sdk-python.

The SDK is driven as a user would (``SDK(server_url=stack URI, client=...)``),
sync and async, with tokens the loopback stack issued.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from formance_sdk_python import SDK
from formance_sdk_python.models import errors as sdk_errors
from formance_sdk_python.models import ledger as sdk_ledger
from formance_sdk_python.models import shared as sdk_shared
from ledger_stub import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, LedgerStub, ledger_stub
from oauth_servers import (
    CLIENT_CREDENTIALS_GRANT_TYPE,
    JWT_BEARER_GRANT_TYPE,
    ConfidentialClient,
    MembershipServer,
    StackAuthServer,
    membership_server,
    stack_oauth_client,
    stack_server,
)

__all__ = ["ledger_stub", "membership_server", "stack_oauth_client", "stack_server"]


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as c:
        yield c


@pytest.fixture
def jwt_bearer_token(
    membership_server: MembershipServer, stack_server: StackAuthServer, client: httpx.Client
) -> str:
    """A stack API token from the RFC 7523 exchange (the fctl path)."""
    assertion, _ = membership_server.mint_stack_access(3600)
    r = client.post(
        stack_server.token_endpoint,
        data={"grant_type": JWT_BEARER_GRANT_TYPE, "assertion": assertion, "scope": "openid email"},
    )
    assert r.status_code == 200, r.text
    token: str = r.json()["access_token"]
    return token


@pytest.fixture
def client_credentials_token(
    stack_server: StackAuthServer, stack_oauth_client: ConfidentialClient, client: httpx.Client
) -> str:
    """A stack API token from the client-credentials grant (the machine path)."""
    r = client.post(
        stack_server.token_endpoint,
        data={"grant_type": CLIENT_CREDENTIALS_GRANT_TYPE, "scope": "ledger:read"},
        auth=(stack_oauth_client.client_id, stack_oauth_client.client_secret),
    )
    assert r.status_code == 200, r.text
    token: str = r.json()["access_token"]
    return token


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _list_all_sync(sdk: SDK, page_size: int) -> list[str]:
    names: list[str] = []
    request: dict[str, object] = {"request_body": {}, "page_size": page_size}
    for _ in range(100):  # bounded: 20 ledgers need a handful of pages
        res = sdk.ledger.v2.list_ledgers(request=request)  # type: ignore[arg-type]
        assert res.status_code == 200
        assert res.v2_ledger_list_response is not None
        cursor = res.v2_ledger_list_response.cursor
        names += [ledger.name for ledger in cursor.data]
        if not cursor.has_more:
            assert cursor.next is None
            return names
        assert cursor.next is not None
        request = {"request_body": {}, "cursor": cursor.next}
    raise AssertionError("pagination did not end")


async def _list_all_async(sdk: SDK, page_size: int) -> list[str]:
    names: list[str] = []
    request: dict[str, object] = {"request_body": {}, "page_size": page_size}
    for _ in range(100):
        res = await sdk.ledger.v2.list_ledgers_async(request=request)  # type: ignore[arg-type]
        assert res.v2_ledger_list_response is not None
        cursor = res.v2_ledger_list_response.cursor
        names += [ledger.name for ledger in cursor.data]
        if not cursor.has_more:
            return names
        assert cursor.next is not None
        request = {"request_body": {}, "cursor": cursor.next}
    raise AssertionError("pagination did not end")


# --------------------------------------------------------------------------- the real SDK


@pytest.mark.parametrize("token_kind", ["jwt_bearer", "client_credentials"])
def test_ledger_sdk_sync_info_and_paginated_list(
    ledger_stub: LedgerStub, token_kind: str, request: pytest.FixtureRequest
) -> None:
    token: str = request.getfixturevalue(f"{token_kind}_token")
    with httpx.Client(headers=_bearer(token), timeout=5.0) as http:
        sdk = SDK(server_url=ledger_stub.server_url, client=http)
        info = sdk.ledger.v2.get_info()
        assert info.status_code == 200
        assert info.v2_config_info is not None
        assert (info.v2_config_info.server, info.v2_config_info.version) == (
            "ledger",
            ledger_stub.version,
        )
        names = _list_all_sync(sdk, page_size=6)
    assert names == [f"ledger-{i:03d}" for i in range(20)]
    assert ledger_stub.count(LedgerStub.INFO) == 1
    assert ledger_stub.count(LedgerStub.LIST) == 4  # 6 + 6 + 6 + 2
    assert ledger_stub.accepted == 5
    assert all(c.token == token for c in ledger_stub.calls)


@pytest.mark.parametrize("token_kind", ["jwt_bearer", "client_credentials"])
def test_ledger_sdk_async_info_and_paginated_list(
    ledger_stub: LedgerStub, token_kind: str, request: pytest.FixtureRequest
) -> None:
    token: str = request.getfixturevalue(f"{token_kind}_token")

    async def main() -> tuple[str, list[str]]:
        async with httpx.AsyncClient(headers=_bearer(token), timeout=5.0) as http:
            sdk = SDK(server_url=ledger_stub.server_url, async_client=http)
            info = await sdk.ledger.v2.get_info_async()
            assert info.v2_config_info is not None
            return info.v2_config_info.server, await _list_all_async(sdk, page_size=7)

    server, names = asyncio.run(main())
    assert server == "ledger"
    assert names == [f"ledger-{i:03d}" for i in range(20)]
    assert ledger_stub.count(LedgerStub.LIST) == 3


def test_ledger_sdk_parses_every_ledger_field(
    ledger_stub: LedgerStub, jwt_bearer_token: str
) -> None:
    with httpx.Client(headers=_bearer(jwt_bearer_token), timeout=5.0) as http:
        sdk = SDK(server_url=ledger_stub.server_url, client=http)
        res = sdk.ledger.v2.list_ledgers(request={"request_body": {}})
    assert res.v2_ledger_list_response is not None
    cursor = res.v2_ledger_list_response.cursor
    assert (cursor.page_size, cursor.has_more, cursor.previous) == (DEFAULT_PAGE_SIZE, True, None)
    first = cursor.data[0]
    assert (first.id, first.name, first.bucket) == (1, "ledger-000", "_default")
    assert first.added_at.isoformat() == "2024-01-01T12:00:00+00:00"
    assert first.metadata == {"index": "0"}
    assert first.features is not None


def test_ledger_sdk_unauthorized_is_an_sdk_error(ledger_stub: LedgerStub) -> None:
    # The ledger answers 401 with an empty JSON body: the SDK cannot parse it
    # and raises ResponseValidationError (an SDKBaseError) -- not a typed 401.
    with httpx.Client(timeout=5.0) as http:
        sdk = SDK(server_url=ledger_stub.server_url, client=http)
        with pytest.raises(sdk_errors.SDKBaseError) as info:
            sdk.ledger.v2.get_info()
        assert info.value.raw_response.status_code == 401
        with pytest.raises(sdk_errors.ResponseValidationError):
            sdk.ledger.v2.list_ledgers(request={"request_body": {}})
    assert ledger_stub.unauthorized == 2


def test_ledger_sdk_bad_cursor_is_a_typed_validation_error(
    ledger_stub: LedgerStub, jwt_bearer_token: str
) -> None:
    with httpx.Client(headers=_bearer(jwt_bearer_token), timeout=5.0) as http:
        sdk = SDK(server_url=ledger_stub.server_url, client=http)
        with pytest.raises(sdk_ledger.ErrorsV2ErrorResponse) as info:
            sdk.ledger.v2.list_ledgers(request={"request_body": {}, "cursor": "not-a-cursor"})
    assert info.value.data.error_code == sdk_ledger.V2ErrorsEnum.VALIDATION


def test_ledger_sdk_own_client_credentials_hook_works_against_the_stack(
    ledger_stub: LedgerStub, stack_server: StackAuthServer, stack_oauth_client: ConfidentialClient
) -> None:
    """The baseline of the SDK benchmark: its own in-memory hook, client_secret_post."""
    security = sdk_shared.Security(
        client_id=stack_oauth_client.client_id, client_secret=stack_oauth_client.client_secret
    )
    with httpx.Client(timeout=5.0) as http:
        sdk = SDK(server_url=ledger_stub.server_url, client=http, security=security)
        assert sdk.ledger.v2.get_info().status_code == 200
        assert sdk.ledger.v2.list_ledgers(request={"request_body": {}}).status_code == 200
    assert stack_server.client_credentials_count == 1  # cached in memory for the second call
    (record,) = stack_server.client_credentials_requests
    assert (record.auth_method, record.status, record.scope) == (
        "client_secret_post",
        200,
        "ledger:read",
    )
    assert ledger_stub.accepted == 2


# --------------------------------------------------------------------------- the stub itself


def test_ledger_reject_next_valid_tokens(
    ledger_stub: LedgerStub, jwt_bearer_token: str, client: httpx.Client
) -> None:
    ledger_stub.reject_next_valid_tokens(2)
    statuses = [
        client.get(ledger_stub.info_url, headers=_bearer(jwt_bearer_token)).status_code
        for _ in range(3)
    ]
    assert statuses == [401, 401, 200]
    assert ledger_stub.pending_rejections == 0
    assert [c.rejected_on_purpose for c in ledger_stub.calls] == [True, True, False]
    assert all(c.token_valid for c in ledger_stub.calls)
    # An invalid token does not consume a scripted rejection.
    ledger_stub.reject_next_valid_tokens(1)
    assert client.get(ledger_stub.info_url, headers=_bearer("st_bogus")).status_code == 401
    assert ledger_stub.pending_rejections == 1


def test_ledger_unauthorized_answer_is_an_empty_json_401(
    ledger_stub: LedgerStub, client: httpx.Client
) -> None:
    for headers in ({}, _bearer("st_unknown"), {"Authorization": "Basic eDp5"}):
        r = client.get(ledger_stub.list_url, headers=headers)
        assert r.status_code == 401
        assert r.content == b""
        assert r.headers["content-type"] == "application/json"
    assert [c.token for c in ledger_stub.calls] == [None, "st_unknown", None]


def test_ledger_revoked_and_expired_tokens_are_refused(
    membership_server: MembershipServer, client: httpx.Client
) -> None:
    with StackAuthServer(membership_server, expires_in=1) as stack:
        stub = LedgerStub(stack)
        stack.add_client("svc", "pw", expires_in=3600)
        stack.add_client("brief", "pw", expires_in=-1)  # expired on issue
        data = {"grant_type": CLIENT_CREDENTIALS_GRANT_TYPE}
        live = client.post(stack.token_endpoint, data=data, auth=("svc", "pw")).json()
        dead = client.post(stack.token_endpoint, data=data, auth=("brief", "pw")).json()
        assert client.get(stub.info_url, headers=_bearer(live["access_token"])).status_code == 200
        assert client.get(stub.info_url, headers=_bearer(dead["access_token"])).status_code == 401
        stack.revoke_issued_tokens()
        assert client.get(stub.info_url, headers=_bearer(live["access_token"])).status_code == 401


def test_ledger_check_scopes_forbids_tokens_without_ledger_scope(
    membership_server: MembershipServer, client: httpx.Client
) -> None:
    with StackAuthServer(membership_server) as stack:
        stub = LedgerStub(stack, check_scopes=True)
        stack.add_client("svc", "pw")
        data = {"grant_type": CLIENT_CREDENTIALS_GRANT_TYPE}
        reader = client.post(
            stack.token_endpoint, data={**data, "scope": "ledger:read"}, auth=("svc", "pw")
        ).json()["access_token"]
        scopeless = client.post(stack.token_endpoint, data=data, auth=("svc", "pw")).json()
        assert client.get(stub.list_url, headers=_bearer(reader)).status_code == 200
        r = client.get(stub.list_url, headers=_bearer(scopeless["access_token"]))
        assert (r.status_code, r.content) == (403, b"")


def test_ledger_info_without_auth_when_asked(
    membership_server: MembershipServer, client: httpx.Client
) -> None:
    with StackAuthServer(membership_server) as stack:
        stub = LedgerStub(stack, info_requires_auth=False)
        assert client.get(stub.info_url).status_code == 200
        assert client.get(stub.list_url).status_code == 401


def test_ledger_pagination_bounds(
    ledger_stub: LedgerStub, jwt_bearer_token: str, client: httpx.Client
) -> None:
    headers = _bearer(jwt_bearer_token)
    big = client.get(ledger_stub.list_url, params={"pageSize": 10_000}, headers=headers).json()
    assert big["cursor"]["pageSize"] == MAX_PAGE_SIZE
    assert len(big["cursor"]["data"]) == 20
    assert big["cursor"]["hasMore"] is False
    assert "next" not in big["cursor"]
    zero = client.get(ledger_stub.list_url, params={"pageSize": 0}, headers=headers)
    assert zero.status_code == 400
    assert zero.json()["errorCode"] == "VALIDATION"
    # The stub's routes live on the stack's origin and survive its restart.
    ledger_stub.stack.restart()
    assert client.get(ledger_stub.info_url, headers=headers).status_code == 200


def test_ledger_counts_and_wait(ledger_stub: LedgerStub, jwt_bearer_token: str) -> None:
    with httpx.Client(headers=_bearer(jwt_bearer_token), timeout=5.0) as http:
        http.get(ledger_stub.info_url)
        http.get(ledger_stub.list_url)
    assert ledger_stub.wait_for_calls(2, timeout=5)
    assert not ledger_stub.wait_for_calls(3, timeout=0.05)
    assert ledger_stub.stack.count(LedgerStub.INFO) == 1
    ledger_stub.reset()
    assert ledger_stub.count() == 0
