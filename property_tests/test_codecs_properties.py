"""Codecs (docs/design.md §3): round trips of what we write, and totality on whatever we read."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import event, given, note
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy
from returns.result import Failure, Success
from stacktoken.core._cache_codec import (
    GO_ZERO_TIME,
    decode_cache_entry,
    encode_cache_entry,
    format_rfc3339,
    parse_rfc3339,
)
from stacktoken.core._codecs import (
    decode_accesses,
    decode_discovery,
    decode_discovery_cache,
    decode_error_response,
    decode_token_response,
    encode_accesses,
    encode_discovery_cache,
    jwt_expiry,
)
from stacktoken.core._errors import AuthRequired, OAuthError, RemoteError
from stacktoken.core._profile import Profile, decode_current_profile, decode_profile
from stacktoken.core._record import replace
from stacktoken.core._requests import (
    exchange_request,
    interpret_discovery,
    interpret_token_response,
    stack_discovery,
)
from stacktoken.core._types import CachedToken, DiscoveryDocument, StackAccess, TokenResponse
from stacktoken.core._urls import check_endpoint_url, safe_url
from stacktoken.core._wire import ParseError
from strategies import (
    GoTime,
    access_tokens,
    any_representable_datetimes,
    arbitrary_bytes,
    aware_datetimes,
    cached_tokens,
    discovery_documents,
    documents_with_keys,
    go_times,
    json_bytes,
    json_objects,
    json_values,
    odd_jwts,
    odd_numeric_dates,
    stack_accesses,
    token_texts,
)

ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=60)
SENT_AT = aware_datetimes()
STATUS_CODES = st.one_of(
    st.sampled_from([200, 400, 401, 404, 429, 500, 502, 503]), st.integers(100, 599)
)
TARGET = stack_discovery("https://orga-stk1.example")
REQUEST = exchange_request("https://orga-stk1.example/api/auth/oauth/token", "SECRET-assertion")
GO_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{0,5}[1-9])?Z")


# --- round trips --------------------------------------------------------------


@given(
    cached_tokens(
        expiry=st.one_of(st.none(), any_representable_datetimes()),
        saved_at=st.one_of(st.none(), any_representable_datetimes()),
    ),
    token_texts(),
)
def test_cache_entry_round_trips(entry: CachedToken, access_token: str) -> None:
    """decode(encode(entry)) is the entry: any VSCHAR token, any instant, no expiry as
    Go's zero, any stamp (stack URI, client id, scopes) or none."""
    entry = replace(entry, access_token=access_token)
    encoded = encode_cache_entry(entry)
    note(f"encoded: {encoded!r}")
    assert decode_cache_entry(encoded) == entry


@given(cached_tokens())
def test_cache_entry_is_written_as_fctl_reads_it(entry: CachedToken) -> None:
    """fctl's three keys plus `savedAt`; UTC RFC 3339 that Go parses; no expiry is Go's zero."""
    document = json.loads(encode_cache_entry(entry))
    stamps = {
        name
        for name, value in (
            ("savedAt", entry.saved_at),
            ("stackURI", entry.stack_uri),
            ("clientId", entry.client_id),
            ("scopes", entry.scopes),
        )
        if value is not None
    }
    assert set(document) == {"accessToken", "tokenType", "expiry"} | stamps
    for key in ("expiry", "savedAt"):
        if key in document:
            assert GO_RFC3339.fullmatch(document[key]), document[key]
    if entry.expiry is None:
        assert document["expiry"] == "0001-01-01T00:00:00Z"


@given(any_representable_datetimes())
def test_rfc3339_format_then_parse_is_identity(moment: datetime) -> None:
    """Every representable instant formats to UTC RFC 3339 and parses back to the same instant."""
    text = format_rfc3339(moment)
    note(f"text: {text}")
    assert GO_RFC3339.fullmatch(text)
    assert parse_rfc3339(text) == moment


@given(go_times())
def test_rfc3339_reads_what_go_writes(time: GoTime) -> None:
    """0-9 fractional digits, `Z` or any offset: the instant, truncated to microseconds."""
    parsed = parse_rfc3339(time.text)
    note(f"parsed: {parsed!r}")
    if time.moment is None:
        event("not representable in UTC")
        assert isinstance(parsed, str)
    else:
        assert parsed == time.moment
        assert isinstance(parsed, datetime)
        reparsed = parse_rfc3339(format_rfc3339(parsed))
        assert reparsed == parsed


_RFC3339_EXAMPLES = [
    ("2026-02-20T16:45:16.123456789+01:00", datetime(2026, 2, 20, 15, 45, 16, 123456, tzinfo=UTC)),
    ("2026-02-20T15:40:16Z", datetime(2026, 2, 20, 15, 40, 16, tzinfo=UTC)),
    ("0001-01-01T00:00:00Z", GO_ZERO_TIME),
    ("2026-02-20T15:40:16.1-00:30", datetime(2026, 2, 20, 16, 10, 16, 100000, tzinfo=UTC)),
]


@pytest.mark.parametrize(("text", "moment"), _RFC3339_EXAMPLES)
def test_rfc3339_reads_what_go_writes_examples(text: str, moment: datetime) -> None:
    """Recorded examples of the property above."""
    assert parse_rfc3339(text) == moment


@given(stack_accesses())
def test_accesses_round_trip(access: StackAccess) -> None:
    """decode(encode(access)) is the access: token, refresh token, claims, expiry, unknown keys."""
    encoded = encode_accesses(access)
    note(f"encoded: {encoded!r}")
    assert decode_accesses(encoded) == Success(access)


@given(
    token_texts(max_size=20),
    st.one_of(st.none(), token_texts(max_size=20)),
    st.one_of(st.none(), json_objects(max_leaves=6)),
    json_objects(max_leaves=6),
)
def test_accesses_rewrite_preserves_unknown_keys(
    token: str, refresh: str | None, claims: dict[str, Any] | None, unknown: dict[str, Any]
) -> None:
    """Every key stacktoken does not use survives a decode/encode, with its exact value."""
    document: dict[str, Any] = {key: value for key, value in unknown.items()}
    document.update(token=token)
    if claims is not None:
        document["claims"] = claims
    if refresh is not None:
        document["refreshToken"] = refresh
    access = decode_accesses(json.dumps(document).encode()).unwrap()
    rewritten = json.loads(encode_accesses(access))
    for key, value in document.items():
        if key != "claims" or claims is not None:
            assert rewritten[key] == value, key


@given(discovery_documents(), any_representable_datetimes())
def test_discovery_cache_round_trips(document: DiscoveryDocument, expires_at: datetime) -> None:
    """The discovery cache reads back the document and its end of life."""
    encoded = encode_discovery_cache(document, expires_at=expires_at)
    assert decode_discovery_cache(encoded) == Success((document, expires_at))


@given(
    access_tokens(),
    st.one_of(st.none(), st.integers(min_value=0, max_value=10**12)),
    SENT_AT,
)
def test_token_response_expiry_counts_from_the_time_before_the_request(
    token: str, expires_in: int | None, sent_at: datetime
) -> None:
    """`expires_in` counts from `sent_at` (capped at a year); else the JWT's `exp`; else none."""
    body: dict[str, Any] = {"access_token": token, "token_type": "Bearer"}
    if expires_in is not None:
        body["expires_in"] = expires_in
    response = decode_token_response(json.dumps(body).encode(), sent_at=sent_at).unwrap()
    if expires_in is not None:
        assert response.expiry == sent_at + timedelta(seconds=min(expires_in, 366 * 86400))
        assert response.expiry - sent_at <= timedelta(seconds=expires_in)  # never later
    else:
        assert response.expiry == jwt_expiry(token)


# --- totality -----------------------------------------------------------------


def _inputs(*keys: str) -> SearchStrategy[bytes]:
    """Any bytes, any JSON, or objects with the expected keys holding values of any type."""
    return st.one_of(arbitrary_bytes(), json_bytes(documents_with_keys(keys)))


@st.composite
def profile_shaped(draw: st.DrawFn) -> bytes:
    """profile.json-shaped documents with any JSON value at any level."""

    def maybe(value: object) -> object:
        return draw(st.one_of(st.just(value), json_values(max_leaves=3)))

    stacks = [maybe({"id": maybe("stk1"), "uri": maybe("https://s.example")})]
    orgs = [maybe({"id": maybe("orgA"), "stacks": maybe(stacks)})]
    document = {
        "membershipURI": maybe("https://app.example/api"),
        "rootTokens": maybe({"idToken": maybe({"claims": maybe({"org": maybe(orgs)})})}),
        "defaultOrganization": maybe("orgA"),
        "defaultStack": maybe("stk1"),
    }
    return json.dumps(maybe(document)).encode()


def _is_result(
    result: object, value_type: type | tuple[type, ...], error_type: type | tuple[type, ...]
) -> bool:
    match result:
        case Success(value):
            return isinstance(value, value_type)
        case Failure(error):
            return isinstance(error, error_type)
    return False


def _is_value_or_error(
    result: object, value_type: type | tuple[type, ...], error_type: type | tuple[type, ...]
) -> bool:
    """The plain-value convention: the value itself, or the error value itself."""
    return isinstance(result, (value_type, error_type))


_DECODERS: list[
    tuple[str, Callable[[bytes], object], SearchStrategy[bytes], Callable[[object], bool]]
] = [
    (
        "decode_cache_entry",
        decode_cache_entry,
        _inputs("accessToken", "tokenType", "expiry", "savedAt"),
        lambda r: _is_value_or_error(r, CachedToken, str),
    ),
    (
        "decode_accesses",
        decode_accesses,
        st.one_of(
            _inputs("token", "claims", "refreshToken"),
            json_bytes(st.fixed_dictionaries({"token": odd_jwts()})),
            json_bytes(
                st.fixed_dictionaries(
                    {
                        "token": st.just("t"),
                        "claims": st.fixed_dictionaries({"exp": odd_numeric_dates()}),
                    }
                )
            ),
        ),
        lambda r: _is_result(r, StackAccess, ParseError),
    ),
    (
        "decode_discovery",
        decode_discovery,
        _inputs("token_endpoint", "issuer"),
        lambda r: _is_result(r, DiscoveryDocument, ParseError),
    ),
    (
        "decode_discovery_cache",
        decode_discovery_cache,
        _inputs("token_endpoint", "issuer", "expiresAt"),
        lambda r: _is_result(r, tuple, ParseError),
    ),
    (
        "decode_token_response",
        lambda data: decode_token_response(data, sent_at=datetime(2026, 1, 1, tzinfo=UTC)),
        st.one_of(
            _inputs("access_token", "token_type", "expires_in", "refresh_token"),
            json_bytes(
                st.fixed_dictionaries(
                    {"access_token": odd_jwts(), "token_type": st.just("Bearer")},
                    optional={"expires_in": odd_numeric_dates()},
                )
            ),
        ),
        lambda r: _is_result(r, TokenResponse, ParseError),
    ),
    (
        "decode_error_response",
        lambda data: decode_error_response(400, data),
        _inputs("error", "error_description"),
        lambda r: _is_result(r, OAuthError, ParseError),
    ),
    (
        "decode_profile",
        lambda data: decode_profile("default", data),
        st.one_of(arbitrary_bytes(), profile_shaped()),
        lambda r: _is_value_or_error(r, Profile, AuthRequired),
    ),
    (
        "decode_current_profile",
        decode_current_profile,
        _inputs("currentProfile"),
        lambda r: isinstance(r, str) and bool(r),
    ),
]


@pytest.mark.parametrize(
    ("decode", "inputs", "well_typed"),
    [pytest.param(decode, inputs, check, id=name) for name, decode, inputs, check in _DECODERS],
)
@given(data=st.data())
def test_every_decoder_is_total_on_any_input(
    decode: Callable[[bytes], object],
    inputs: SearchStrategy[bytes],
    well_typed: Callable[[object], bool],
    data: st.DataObject,
) -> None:
    """Any bytes, any JSON value, wrong types anywhere: a well-typed value, never an exception."""
    raw = data.draw(inputs, label="input")
    assert well_typed(decode(raw))


@given(
    STATUS_CODES,
    st.one_of(_inputs("token_endpoint", "issuer"), st.just(b'{"token_endpoint": "https://x"}')),
)
def test_interpret_discovery_is_total(status: int, body: bytes) -> None:
    """Any answer to a discovery GET gives a document with a usable endpoint, or a RemoteError."""
    result = interpret_discovery(status, body, target=TARGET)
    assert _is_result(result, DiscoveryDocument, RemoteError)
    if isinstance(result, Success):
        assert check_endpoint_url(result.unwrap().token_endpoint) == Success(
            result.unwrap().token_endpoint
        )


@given(
    STATUS_CODES,
    st.one_of(
        _inputs("access_token", "token_type", "expires_in", "refresh_token"),
        _inputs("error", "error_description"),
    ),
    SENT_AT,
)
def test_interpret_token_response_is_total(status: int, body: bytes, sent_at: datetime) -> None:
    """Any answer of a token endpoint gives a token, an OAuthError or a RemoteError."""
    result = interpret_token_response(status, body, request=REQUEST, sent_at=sent_at)
    event(type(result.failure()).__name__ if isinstance(result, Failure) else "token")
    assert _is_result(result, TokenResponse, (OAuthError, RemoteError))
    if isinstance(result, Failure) and isinstance(result.failure(), OAuthError):
        assert status in (400, 401)


@given(ANY_TEXT)
def test_text_decoders_are_total_on_any_text(text: str) -> None:
    """parse_rfc3339, check_endpoint_url and safe_url accept any text without raising."""
    assert _is_value_or_error(parse_rfc3339(text), datetime, str)
    assert _is_result(check_endpoint_url(text), str, RemoteError)
    shown = safe_url(text)
    assert isinstance(shown, str) and shown.isprintable()
