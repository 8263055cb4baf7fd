"""OAuth/OIDC messages and transport decisions (docs/design.md §5, §3.4)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from returns.result import Failure, Success
from stacktoken.core._errors import OAuthError, RemoteError
from stacktoken.core._requests import (
    DiscoveryTarget,
    RetryPolicy,
    discovery_max_age,
    exchange_request,
    interpret_discovery,
    interpret_token_response,
    membership_discovery,
    refresh_request,
    retry_delay,
    stack_discovery,
)
from stacktoken.core._types import DiscoveryDocument, TokenRequest, TokenResponse
from stacktoken.core._urls import check_endpoint_url, endpoint_url_refusal, safe_url

TOKEN_ENDPOINT = "https://orga-stk1.formance.cloud/api/auth/oauth/token"
SENT_AT = datetime(2026, 2, 20, 15, 40, 16, tzinfo=UTC)


def test_exchange_request_is_the_rfc7523_jwt_bearer_form() -> None:
    assert exchange_request(TOKEN_ENDPOINT, "eyJ.assertion") == TokenRequest(
        url=TOKEN_ENDPOINT,
        form=(
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", "eyJ.assertion"),
            ("scope", "openid email"),
        ),
        secrets=("eyJ.assertion",),
    )
    assert exchange_request(TOKEN_ENDPOINT, "eyJ.assertion").replayable
    assert (
        exchange_request(TOKEN_ENDPOINT, "a").grant_type
        == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    )


def test_refresh_request_is_fctls_public_client_refresh() -> None:
    assert refresh_request("https://app.formance.cloud/api/oauth/token", "opaque") == TokenRequest(
        url="https://app.formance.cloud/api/oauth/token",
        form=(("grant_type", "refresh_token"), ("refresh_token", "opaque"), ("client_id", "fctl")),
        replayable=False,  # the IdP rotates the refresh token on receipt
        secrets=("opaque",),
    )


DISCOVERIES = [
    (
        stack_discovery("https://orga-stk1.formance.cloud"),
        "https://orga-stk1.formance.cloud/api/auth/.well-known/openid-configuration",
        "https://orga-stk1.formance.cloud/api/auth",
    ),
    (
        stack_discovery("https://orga-stk1.formance.cloud/"),
        "https://orga-stk1.formance.cloud/api/auth/.well-known/openid-configuration",
        "https://orga-stk1.formance.cloud/api/auth",
    ),
    (
        membership_discovery("https://app.formance.cloud/api"),
        "https://app.formance.cloud/api/.well-known/openid-configuration",
        "https://app.formance.cloud/api",
    ),
]


@pytest.mark.parametrize(("target", "url", "issuer"), DISCOVERIES)
def test_discovery_targets_are_the_well_known_urls(
    target: DiscoveryTarget, url: str, issuer: str
) -> None:
    assert target.url == url
    assert target.issuer == issuer


URLS = [
    ("https://orga-stk1.formance.cloud/api", True),
    ("HTTPS://example.com", True),
    ("http://localhost:8080/api", True),
    ("http://LOCALHOST/", True),
    ("http://127.0.0.1:9000", True),
    ("http://127.9.9.9/", True),
    ("http://[::1]:8080/", True),
    ("http://example.com/", False),
    ("http://10.0.0.1/", False),
    ("http://0.0.0.0/", False),
    ("http://localhost.example.com/", False),
    ("http://127.0.0.1.nip.io/", False),
    ("http://localhost@example.com/", False),
    ("ftp://example.com/", False),
    ("example.com/token", False),
    ("https:///no-host", False),
    ("https://[::1", False),
    ("https://example.com:99999/", False),
    ("", False),
]


@pytest.mark.parametrize(("url", "accepted"), URLS)
def test_check_endpoint_url_https_or_loopback_http(url: str, accepted: bool) -> None:
    result = check_endpoint_url(url)
    assert isinstance(result, Success) is accepted
    if accepted:
        assert result == Success(url)
    else:
        assert isinstance(result.failure(), RemoteError)
    assert (endpoint_url_refusal(url) is None) is accepted


SAFE = [
    ("https://user:secret@host.example/p/q?code=secret#frag", "https://host.example/p/q"),
    ("http://127.0.0.1:8080/token", "http://127.0.0.1:8080/token"),
    ("https://[::1", "<invalid URL>"),
    ("https://h/\nnext-line", "https://h/next-line"),  # urlsplit drops newlines
    ("https://h/a\x1bb", "https://h/a b"),  # other control characters become spaces
]


@pytest.mark.parametrize(("url", "shown"), SAFE)
def test_safe_url_is_fit_for_a_message(url: str, shown: str) -> None:
    assert safe_url(url) == shown


TARGET = stack_discovery("https://orga-stk1.formance.cloud")
GOOD_DISCOVERY = {
    "issuer": "https://orga-stk1.formance.cloud/api/auth",
    "token_endpoint": TOKEN_ENDPOINT,
}


def test_interpret_discovery_accepts_a_matching_issuer() -> None:
    body = json.dumps(GOOD_DISCOVERY).encode()
    assert interpret_discovery(200, body, target=TARGET) == Success(
        DiscoveryDocument(token_endpoint=TOKEN_ENDPOINT, issuer=GOOD_DISCOVERY["issuer"])
    )
    trailing = json.dumps({**GOOD_DISCOVERY, "issuer": GOOD_DISCOVERY["issuer"] + "/"}).encode()
    assert isinstance(interpret_discovery(200, trailing, target=TARGET), Success)
    no_issuer = json.dumps({"token_endpoint": TOKEN_ENDPOINT}).encode()
    assert isinstance(interpret_discovery(200, no_issuer, target=TARGET), Success)


DISCOVERY_FAILURES = [
    (
        "issuer mismatch (RFC 8414 §3.3)",
        200,
        {**GOOD_DISCOVERY, "issuer": "https://evil.example/api/auth"},
        "issuer",
        False,
    ),
    (
        "plain http token endpoint",
        200,
        {**GOOD_DISCOVERY, "token_endpoint": "http://evil.example/t"},
        "https",
        False,
    ),
    ("no token endpoint", 200, {"issuer": GOOD_DISCOVERY["issuer"]}, "invalid", False),
    ("not found", 404, GOOD_DISCOVERY, "404", False),
    ("unavailable", 503, GOOD_DISCOVERY, "503", True),
]


@pytest.mark.parametrize(("case", "status", "document", "reason", "transient"), DISCOVERY_FAILURES)
def test_interpret_discovery_refuses(
    case: str, status: int, document: object, reason: str, transient: bool
) -> None:
    result = interpret_discovery(status, json.dumps(document).encode(), target=TARGET)
    assert isinstance(result, Failure), case
    error = result.failure()
    assert isinstance(error, RemoteError)
    assert reason in error.message
    assert error.transient is transient


REQUEST = exchange_request(TOKEN_ENDPOINT, "eyJhbGciOiJSUzI1NiJ9.e30.c2ln")


def test_interpret_token_response_counts_expires_in_from_sent_at() -> None:
    body = b'{"access_token": "tok", "token_type": "Bearer", "expires_in": 3600}'
    assert interpret_token_response(200, body, request=REQUEST, sent_at=SENT_AT) == Success(
        TokenResponse(access_token="tok", token_type="Bearer", expiry=SENT_AT + timedelta(hours=1))
    )


@pytest.mark.parametrize(
    ("expires_in", "lifetime"),
    [(b"3600", 3600), (b'"3600"', 3600), (b"3599.5", 3599), (b"0", 0)],
)
def test_interpret_token_response_accepts_expires_in_as_servers_send_it(
    expires_in: bytes, lifetime: int
) -> None:
    body = b'{"access_token": "tok", "token_type": "Bearer", "expires_in": ' + expires_in + b"}"
    answer = interpret_token_response(200, body, request=REQUEST, sent_at=SENT_AT)
    assert answer.unwrap().expiry == SENT_AT + timedelta(seconds=lifetime)


@pytest.mark.parametrize("expires_in", [b"-1", b'"abc"', b"true", b"1e400", b"[]"])
def test_interpret_token_response_refuses_a_bad_expires_in(expires_in: bytes) -> None:
    body = b'{"access_token": "tok", "token_type": "Bearer", "expires_in": ' + expires_in + b"}"
    answer = interpret_token_response(200, body, request=REQUEST, sent_at=SENT_AT)
    assert isinstance(answer.failure(), RemoteError)


def test_interpret_token_response_opaque_without_expires_in_has_no_expiry() -> None:
    body = b'{"access_token": "opaque", "token_type": "Bearer"}'
    assert (
        interpret_token_response(200, body, request=REQUEST, sent_at=SENT_AT).unwrap().expiry
        is None
    )


TOKEN_FAILURES = [
    (
        "invalid_grant",
        400,
        b'{"error": "invalid_grant", "error_description": "expired\\nassertion"}',
        OAuthError(error="invalid_grant", description="expired assertion", status_code=400),
    ),
    (
        "gone",
        404,
        b"not found",
        RemoteError(message=f"token endpoint {TOKEN_ENDPOINT} answered 404", endpoint_gone=True),
    ),
    (
        "unavailable",
        503,
        b"",
        RemoteError(message=f"token endpoint {TOKEN_ENDPOINT} answered 503", transient=True),
    ),
    (
        "rate limited",
        429,
        b"",
        RemoteError(message=f"token endpoint {TOKEN_ENDPOINT} answered 429", transient=True),
    ),
    (
        "400 without an OAuth body",
        400,
        b"<html>",
        RemoteError(message=f"token endpoint {TOKEN_ENDPOINT} answered 400"),
    ),
]


@pytest.mark.parametrize(("case", "status", "body", "error"), TOKEN_FAILURES)
def test_interpret_token_response_errors(
    case: str, status: int, body: bytes, error: object
) -> None:
    assert interpret_token_response(status, body, request=REQUEST, sent_at=SENT_AT) == Failure(
        error
    ), case


def test_interpret_token_response_keeps_a_rotated_refresh_token_from_an_unusable_answer() -> None:
    body = b'{"refresh_token": "rotated", "token_type": "Bearer"}'
    result = interpret_token_response(200, body, request=REQUEST, sent_at=SENT_AT)
    assert isinstance(result, Failure)
    error = result.failure()
    assert isinstance(error, RemoteError)
    assert error.rotated_refresh_token == "rotated"
    assert "rotated" not in repr(error)


CACHE_CONTROL = [
    (None, timedelta(hours=1)),
    ("max-age=600", timedelta(seconds=600)),
    ("public, max-age=60", timedelta(seconds=60)),
    ("MAX-AGE=5", timedelta(seconds=5)),
    ('max-age="30"', timedelta(seconds=30)),
    ("max-age = 45 , must-revalidate", timedelta(seconds=45)),
    ("max-age=0", timedelta(0)),
    ("no-store", timedelta(0)),
    ("no-cache", timedelta(0)),
    ("private, no-store, max-age=600", timedelta(0)),
    ('no-cache="Set-Cookie", max-age=600', timedelta(0)),
    ("private", timedelta(hours=1)),
    ("s-maxage=10", timedelta(hours=1)),
    ("", timedelta(hours=1)),
    # RFC 9111 §4.2.1: an invalid max-age means stale, so nothing is kept
    ("max-age=abc", timedelta(0)),
    ("max-age=-1", timedelta(0)),
    ("max-age=99999999999", timedelta(0)),
]


@pytest.mark.parametrize(("header", "age"), CACHE_CONTROL)
def test_discovery_max_age_from_cache_control(header: str | None, age: timedelta) -> None:
    assert discovery_max_age(header) == age


POLICY = RetryPolicy()
# A replayable request (an exchange, client credentials) that reached the server.
DELAYS = [
    ("first 503, no jitter", 0, 503, None, 0.0, 0.1),
    ("first 503, most jitter", 0, 503, None, 0.999, 0.1999),
    ("second attempt doubles", 1, 502, None, 0.0, 0.2),
    ("connection failed", 0, None, None, 0.5, 0.15),
    ("Retry-After honoured", 0, 429, "3", 0.5, 3.0),
    ("Retry-After capped", 0, 503, "100", 0.5, 10.0),
    ("Retry-After date ignored", 0, 503, "Wed, 21 Oct 2026 07:28:00 GMT", 0.0, 0.1),
    ("last attempt: no retry", 2, 503, None, 0.0, None),
    ("400 is not transient", 0, 400, None, 0.0, None),
    ("404 is not transient", 0, 404, None, 0.0, None),
    ("500 is not retried", 0, 500, None, 0.0, None),
]


@pytest.mark.parametrize(("case", "attempt", "status", "retry_after", "jitter", "delay"), DELAYS)
def test_retry_delay_for_transient_failures(
    case: str,
    attempt: int,
    status: int | None,
    retry_after: str | None,
    jitter: float,
    delay: float | None,
) -> None:
    found = retry_delay(
        POLICY,
        attempt=attempt,
        status_code=status,
        sent=True,
        replayable=True,
        retry_after=retry_after,
        jitter=jitter,
    )
    if delay is None:
        assert found is None, case
    else:
        assert found == pytest.approx(delay), case


# A request that is not replayable (a rotating refresh token): retried only
# when the server cannot have acted on it.
UNREPLAYABLE = [
    ("never sent: no connection", None, False, 0.15),
    ("sent, then the connection failed", None, True, None),
    ("502: the upstream may have acted", 502, True, None),
    ("504: the upstream may have acted", 504, True, None),
    ("503: not acted on", 503, True, 0.15),
    ("429: not acted on", 429, True, 0.15),
    ("400 is not transient", 400, True, None),
]


@pytest.mark.parametrize(("case", "status", "sent", "delay"), UNREPLAYABLE)
def test_retry_delay_never_resends_what_the_server_may_have_acted_on(
    case: str, status: int | None, sent: bool, delay: float | None
) -> None:
    found = retry_delay(
        POLICY,
        attempt=0,
        status_code=status,
        sent=sent,
        replayable=False,
        retry_after=None,
        jitter=0.5,
    )
    if delay is None:
        assert found is None, case
    else:
        assert found == pytest.approx(delay), case
