"""The loopback stack server's client-credentials grant (RFC 6749 §4.4), driven with httpx."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator

import httpx
import jwt as pyjwt
import pytest
from oauth_servers import (
    CLIENT_CREDENTIALS_GRANT_TYPE,
    DEFAULT_STACK_AUTH_METHODS,
    JWT_BEARER_GRANT_TYPE,
    ClientAuthMethod,
    ConfidentialClient,
    Fault,
    MembershipServer,
    StackAuthServer,
    membership_server,
    stack_oauth_client,
    stack_server,
)

__all__ = ["membership_server", "stack_oauth_client", "stack_server"]

SECRET = "cc-secret-0123456789abcdef"

Sender = Callable[[httpx.Client, StackAuthServer, str, str], httpx.Response]


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0, follow_redirects=False) as c:
        yield c


def _basic(
    client: httpx.Client,
    stack: StackAuthServer,
    client_id: str,
    secret: str,
    scope: str | None = "ledger:read",
) -> httpx.Response:
    data = {"grant_type": CLIENT_CREDENTIALS_GRANT_TYPE}
    if scope is not None:
        data["scope"] = scope
    return client.post(stack.token_endpoint, data=data, auth=(client_id, secret))


def _post(
    client: httpx.Client,
    stack: StackAuthServer,
    client_id: str,
    secret: str,
    scope: str | None = "ledger:read",
) -> httpx.Response:
    data = {
        "grant_type": CLIENT_CREDENTIALS_GRANT_TYPE,
        "client_id": client_id,
        "client_secret": secret,
    }
    if scope is not None:
        data["scope"] = scope
    return client.post(stack.token_endpoint, data=data)


def _resource_status(client: httpx.Client, stack: StackAuthServer, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    return client.get(stack.resource_url, headers=headers).status_code


def test_client_credentials_basic_issues_token_the_resource_accepts(
    stack_server: StackAuthServer, client: httpx.Client
) -> None:
    stack_server.add_client("svc", SECRET)
    r = _basic(client, stack_server, "svc", SECRET)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "ledger:read"
    assert "refresh_token" not in body  # RFC 6749 §4.4.3
    assert r.headers["cache-control"] == "no-store"
    assert _resource_status(client, stack_server, body["access_token"]) == 200

    issued = stack_server.issued_token(body["access_token"])
    assert issued is not None
    assert (issued.grant_type, issued.client_id, issued.scope) == (
        CLIENT_CREDENTIALS_GRANT_TYPE,
        "svc",
        "ledger:read",
    )
    assert stack_server.is_valid_access_token(body["access_token"])
    assert not stack_server.is_valid_access_token("st_not-issued")


def test_client_credentials_post_issues_token(
    stack_server: StackAuthServer, client: httpx.Client
) -> None:
    stack_server.add_client("svc", SECRET)
    r = _post(client, stack_server, "svc", SECRET)
    assert r.status_code == 200, r.text
    assert _resource_status(client, stack_server, r.json()["access_token"]) == 200
    (record,) = stack_server.client_credentials_requests
    assert record.auth_method == "client_secret_post"
    assert record.authenticated_method == "client_secret_post"
    assert record.client_id == "svc"


@pytest.mark.parametrize("method", ["basic", "post"])
def test_client_credentials_wrong_secret_is_401_invalid_client(
    stack_server: StackAuthServer, client: httpx.Client, method: str
) -> None:
    stack_server.add_client("svc", SECRET)
    send = _basic if method == "basic" else _post
    r = send(client, stack_server, "svc", SECRET + "x")
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"
    assert stack_server.issued_tokens == []
    (record,) = stack_server.client_credentials_requests
    assert (record.status, record.error, record.authenticated_method) == (
        401,
        "invalid_client",
        None,
    )


@pytest.mark.parametrize(
    ("allowed", "send_with", "presented"),
    [
        ("client_secret_basic", _post, "client_secret_post"),
        ("client_secret_post", _basic, "client_secret_basic"),
    ],
)
def test_client_credentials_single_method_client_rejects_the_other(
    stack_server: StackAuthServer,
    client: httpx.Client,
    allowed: ClientAuthMethod,
    send_with: Sender,
    presented: str,
) -> None:
    stack_server.add_client("one-way", SECRET, auth_methods=(allowed,))
    rejected = send_with(client, stack_server, "one-way", SECRET)
    assert rejected.status_code == 401
    assert rejected.json()["error"] == "invalid_client"
    accepted = (_basic if allowed == "client_secret_basic" else _post)(
        client, stack_server, "one-way", SECRET
    )
    assert accepted.status_code == 200
    first, second = stack_server.client_credentials_requests
    assert (first.auth_method, first.authenticated_method) == (presented, None)
    assert (second.auth_method, second.authenticated_method) == (allowed, allowed)


def test_client_credentials_unknown_client_is_invalid_client(
    stack_server: StackAuthServer, client: httpx.Client
) -> None:
    basic = _basic(client, stack_server, "nobody", SECRET)
    assert (basic.status_code, basic.json()["error"]) == (401, "invalid_client")
    # authlib answers an unknown client_secret_post client with 400, not 401.
    post = _post(client, stack_server, "nobody", SECRET)
    assert (post.status_code, post.json()["error"]) == (400, "invalid_client")


def test_client_credentials_removed_client_is_rejected_but_its_tokens_stay_valid(
    stack_server: StackAuthServer, client: httpx.Client
) -> None:
    stack_server.add_client("svc", SECRET)
    token = _basic(client, stack_server, "svc", SECRET).json()["access_token"]
    stack_server.remove_client("svc")
    assert _basic(client, stack_server, "svc", SECRET).json()["error"] == "invalid_client"
    assert _resource_status(client, stack_server, token) == 200
    stack_server.revoke_issued_tokens()
    assert _resource_status(client, stack_server, token) == 401


def test_client_credentials_unknown_scope_dropped_by_default(
    stack_server: StackAuthServer, client: httpx.Client
) -> None:
    stack_server.add_client("svc", SECRET, scopes=("ledger:read",))
    r = _basic(client, stack_server, "svc", SECRET, scope="ledger:read payments:write")
    assert r.status_code == 200
    assert r.json()["scope"] == "ledger:read"
    none_known = _basic(client, stack_server, "svc", SECRET, scope="payments:write")
    assert none_known.status_code == 200
    assert "scope" not in none_known.json()


def test_client_credentials_unknown_scope_rejected_when_asked(
    stack_server: StackAuthServer, client: httpx.Client
) -> None:
    stack_server.add_client("strict", SECRET, scopes=("ledger:read",), unknown_scope="reject")
    r = _basic(client, stack_server, "strict", SECRET, scope="ledger:read payments:write")
    assert (r.status_code, r.json()["error"]) == (400, "invalid_scope")
    assert _basic(client, stack_server, "strict", SECRET, scope="ledger:read").status_code == 200


def test_client_credentials_no_scope_gets_the_default_scope(
    stack_server: StackAuthServer, client: httpx.Client
) -> None:
    stack_server.add_client("svc", SECRET, default_scope="ledger:read")
    body = _basic(client, stack_server, "svc", SECRET, scope=None).json()
    assert body["scope"] == "ledger:read"
    stack_server.add_client("bare", SECRET)
    assert "scope" not in _basic(client, stack_server, "bare", SECRET, scope=None).json()


def test_client_credentials_expires_in_server_wide_per_client_and_absent(
    membership_server: MembershipServer, client: httpx.Client
) -> None:
    with StackAuthServer(membership_server, expires_in=120) as stack:
        stack.add_client("svc", SECRET)
        stack.add_client("short", SECRET, expires_in=5)
        assert _basic(client, stack, "svc", SECRET).json()["expires_in"] == 120
        assert _basic(client, stack, "short", SECRET).json()["expires_in"] == 5
        stack.expires_in = None
        body = _basic(client, stack, "svc", SECRET).json()
        assert "expires_in" not in body
        assert _resource_status(client, stack, body["access_token"]) == 200


def test_client_credentials_jwt_tokens_name_the_client(
    membership_server: MembershipServer, client: httpx.Client
) -> None:
    with StackAuthServer(membership_server, access_token_format="jwt") as stack:
        stack.add_client("svc", SECRET, expires_in=300)
        token = _basic(client, stack, "svc", SECRET).json()["access_token"]
        claims = pyjwt.decode(
            token, stack.public_key_pem(), algorithms=["RS256"], audience=stack.stack_uri
        )
        assert claims["sub"] == "svc"
        assert claims["scope"] == "ledger:read"
        assert claims["exp"] - claims["iat"] == 300


@pytest.mark.parametrize(
    ("methods", "expected"),
    [
        (DEFAULT_STACK_AUTH_METHODS, list(DEFAULT_STACK_AUTH_METHODS)),
        (("client_secret_post",), ["client_secret_post"]),
        (None, None),
    ],
)
def test_client_credentials_discovery_advertises_auth_methods(
    membership_server: MembershipServer,
    client: httpx.Client,
    methods: tuple[str, ...] | None,
    expected: list[str] | None,
) -> None:
    with StackAuthServer(membership_server, token_endpoint_auth_methods=methods) as stack:
        doc = client.get(stack.discovery_url).json()
        assert doc.get("token_endpoint_auth_methods_supported") == expected
        assert CLIENT_CREDENTIALS_GRANT_TYPE in doc["grant_types_supported"]
        assert doc["token_endpoint"] == stack.token_endpoint
        # What is advertised is a knob for the client's choice only.
        stack.add_client("svc", SECRET)
        assert _basic(client, stack, "svc", SECRET).status_code == 200


def test_client_credentials_counted_per_grant_type(
    membership_server: MembershipServer, stack_server: StackAuthServer, client: httpx.Client
) -> None:
    stack_server.add_client("svc", SECRET)
    assertion, _ = membership_server.mint_stack_access(3600)
    client.post(
        stack_server.token_endpoint,
        data={"grant_type": JWT_BEARER_GRANT_TYPE, "assertion": assertion, "scope": "openid"},
    )
    _basic(client, stack_server, "svc", SECRET)
    stack_server.inject(stack_server.TOKEN, Fault.status(503))
    assert _basic(client, stack_server, "svc", SECRET).status_code == 503
    assert stack_server.count(stack_server.TOKEN) == 3
    assert stack_server.count_grant(JWT_BEARER_GRANT_TYPE) == 1
    assert stack_server.client_credentials_count == 2
    # The faulted request never reached the grant: one record, one token.
    assert len(stack_server.client_credentials_requests) == 1
    grants = [t.grant_type for t in stack_server.issued_tokens]
    assert grants == [JWT_BEARER_GRANT_TYPE, CLIENT_CREDENTIALS_GRANT_TYPE]
    stack_server.reset_counts()
    assert stack_server.client_credentials_count == 0


def test_client_credentials_concurrent_requests_each_counted(
    stack_server: StackAuthServer,
) -> None:
    stack_server.add_client("svc", SECRET)
    statuses: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        with httpx.Client(timeout=5.0) as c:
            code = _basic(c, stack_server, "svc", SECRET).status_code
        with lock:
            statuses.append(code)

    threads = [threading.Thread(target=worker) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert statuses == [200] * 12
    assert stack_server.client_credentials_count == 12
    assert len({t.access_token for t in stack_server.issued_tokens}) == 12


def test_client_credentials_secret_never_in_records_or_logs(
    stack_server: StackAuthServer, client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, authlib's included
    client_record = stack_server.add_client("svc", SECRET)
    _basic(client, stack_server, "svc", SECRET)
    _post(client, stack_server, "svc", SECRET)
    _basic(client, stack_server, "svc", SECRET + "-wrong")
    _post(client, stack_server, "svc", SECRET + "-wrong")
    client.post(f"{stack_server.token_endpoint}?client_secret={SECRET}", data={})

    # The servers' own loggers (httpx, the client here, logs its URL itself).
    server_logs = [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith(("stacktoken.testing", "authlib"))
    ]
    assert any("/api/auth/oauth/token" in line for line in server_logs)
    printed = "\n".join(
        [
            *server_logs,
            repr(stack_server.requests),
            repr(stack_server.request_headers),
            repr(stack_server.client_credentials_requests),
            repr(client_record),
        ]
    )
    assert SECRET not in printed
    assert stack_server.request_headers[0]["authorization"] == "Basic svc:<redacted>"
    assert stack_server.requests[1].form["client_secret"] == "<redacted>"


def test_client_credentials_fixture_registers_a_working_client(
    stack_server: StackAuthServer, stack_oauth_client: ConfidentialClient, client: httpx.Client
) -> None:
    r = _basic(client, stack_server, stack_oauth_client.client_id, stack_oauth_client.client_secret)
    assert r.status_code == 200
    assert stack_oauth_client.client_secret not in repr(stack_oauth_client)
