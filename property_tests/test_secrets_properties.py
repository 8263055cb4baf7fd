"""No secret leaks (design.md §7): no token, refresh token or assertion in repr, str or message."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, note
from hypothesis import strategies as st
from returns.result import Failure
from stacktoken.core._cache_codec import decode_cache_entry
from stacktoken.core._codecs import decode_accesses, decode_token_response
from stacktoken.core._errors import AuthRequired, LocalError, OAuthError, RemoteError, UsageError
from stacktoken.core._requests import exchange_request, interpret_token_response, refresh_request
from stacktoken.core._types import CachedToken, TokenResponse
from strategies import (
    SECRET_MARKER,
    acquire_errors,
    aware_datetimes,
    json_values,
    secrets,
    stack_accesses,
    unsigned_jwt,
)

SENT_AT = datetime(2026, 2, 20, 12, tzinfo=UTC)
ENDPOINT = "https://orga-stk1.example/api/auth/oauth/token"


def _shown(value: object) -> str:
    return f"{value!r} {value!s}"


@given(
    secrets("api"), st.one_of(st.none(), aware_datetimes()), st.one_of(st.none(), aware_datetimes())
)
def test_cached_token_repr_and_str_hide_the_token(
    token: str, expiry: datetime | None, saved_at: datetime | None
) -> None:
    """repr/str of a CachedToken never show its access token."""
    entry = CachedToken(access_token=token, token_type="Bearer", expiry=expiry, saved_at=saved_at)
    assert SECRET_MARKER not in _shown(entry)


@given(stack_accesses(), secrets("claim"))
def test_stack_access_repr_and_str_hide_tokens_and_claims(access: Any, inside: str) -> None:
    """repr/str of a StackAccess show neither token, refresh token, claims nor extra keys."""
    access = type(access)(
        token=access.token,
        refresh_token=access.refresh_token,
        expiry=access.expiry,
        claims={**access.claims, "sub": inside},
        extra={**access.extra, "note": inside},
    )
    assert SECRET_MARKER not in _shown(access)


@given(
    secrets("issued"),
    st.one_of(st.none(), secrets("rotated")),
    st.one_of(st.none(), aware_datetimes()),
)
def test_token_response_repr_and_str_hide_both_tokens(
    token: str, refresh: str | None, expiry: datetime | None
) -> None:
    """repr/str of a TokenResponse show neither its access nor its refresh token."""
    response = TokenResponse(
        access_token=token, token_type="Bearer", expiry=expiry, refresh_token=refresh
    )
    assert SECRET_MARKER not in _shown(response)


@given(secrets("assertion"), secrets("refresh"))
def test_token_request_repr_and_str_hide_the_form(assertion: str, refresh: str) -> None:
    """repr/str of the exchange and refresh requests show neither assertion nor refresh token."""
    assert SECRET_MARKER not in _shown(exchange_request(ENDPOINT, assertion))
    assert SECRET_MARKER not in _shown(refresh_request(ENDPOINT, refresh))


@given(secrets("stray"), acquire_errors())
def test_error_reprs_hide_a_rotated_refresh_token(stray: str, other: object) -> None:
    """Every error type's repr/str is secret-free, including a RemoteError carrying a rotation."""
    error = RemoteError(message="token endpoint answered badly", rotated_refresh_token=stray)
    assert SECRET_MARKER not in _shown(error)
    assert SECRET_MARKER not in _shown(Failure(error))
    assert SECRET_MARKER not in _shown(other)


@st.composite
def token_bodies_with_secrets(draw: st.DrawFn) -> bytes:
    """Token responses carrying secrets, with some other field of a wrong type or value."""
    body: dict[str, Any] = {
        "access_token": draw(
            st.one_of(
                secrets("issued"), st.builds(lambda s: unsigned_jwt({"sub": s}), secrets("sub"))
            )
        ),
        "token_type": draw(st.one_of(st.just("Bearer"), json_values(max_leaves=2))),
        "refresh_token": draw(st.one_of(secrets("rotated"), json_values(max_leaves=2))),
    }
    if draw(st.booleans()):
        body["expires_in"] = draw(st.one_of(st.integers(-5, 5), json_values(max_leaves=2)))
    return json.dumps(body).encode()


@given(token_bodies_with_secrets(), st.sampled_from([200, 400, 401, 404, 500]))
def test_token_response_failures_never_quote_a_token(body: bytes, status: int) -> None:
    """Whatever is wrong with a token answer, the error names the problem, not the tokens."""
    result = interpret_token_response(
        status, body, request=exchange_request(ENDPOINT, "SECRET-a"), sent_at=SENT_AT
    )
    note(f"result: {result!r}")
    if isinstance(result, Failure):
        error = result.failure()
        assert SECRET_MARKER not in _shown(error)
        assert SECRET_MARKER not in getattr(error, "message", "")
    reason = decode_token_response(body, sent_at=SENT_AT)
    if isinstance(reason, Failure):
        assert SECRET_MARKER not in reason.failure().message
        assert SECRET_MARKER not in repr(reason.failure())


@given(
    secrets("api"),
    st.fixed_dictionaries(
        {},
        optional={
            "tokenType": json_values(max_leaves=2),
            "expiry": json_values(max_leaves=2),
            "savedAt": json_values(max_leaves=2),
        },
    ),
)
def test_cache_entry_failures_never_quote_the_token(token: str, rest: dict[str, Any]) -> None:
    """A cache file we cannot use is a miss whose reason never contains the token."""
    result = decode_cache_entry(json.dumps({"accessToken": token, **rest}).encode())
    if isinstance(result, Failure):
        assert SECRET_MARKER not in result.failure()
    else:
        assert SECRET_MARKER not in _shown(result)


@given(
    secrets("access"),
    st.fixed_dictionaries(
        {},
        optional={
            "claims": json_values(max_leaves=2),
            "refreshToken": st.one_of(secrets("refresh"), json_values(max_leaves=2)),
        },
    ),
)
def test_accesses_failures_never_quote_a_token(token: str, rest: dict[str, Any]) -> None:
    """An accesses.json we cannot use fails with a reason that contains no token."""
    result = decode_accesses(json.dumps({"token": token, **rest}).encode())
    if isinstance(result, Failure):
        assert SECRET_MARKER not in result.failure().message
        assert SECRET_MARKER not in repr(result.failure())
    else:
        assert SECRET_MARKER not in _shown(result)


def test_every_error_type_has_a_secret_free_repr() -> None:
    """The closed error set, built with secret-looking text only in hidden fields."""
    errors = [
        UsageError(message="m"),
        AuthRequired(message="m"),
        RemoteError(message="m", rotated_refresh_token="SECRET-x"),
        OAuthError(error="invalid_grant"),
        LocalError(message="m"),
    ]
    for error in errors:
        assert SECRET_MARKER not in _shown(error)
