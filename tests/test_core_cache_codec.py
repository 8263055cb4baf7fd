"""`api_token_cache.json` and Go's RFC 3339 timestamps (docs/design.md §3.4)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone

import pytest
from stacktoken.core._cache_codec import (
    GO_ZERO_TIME,
    decode_cache_entry,
    encode_cache_entry,
    format_rfc3339,
    parse_rfc3339,
)
from stacktoken.core._types import CachedToken

PLUS_ONE = timezone(timedelta(hours=1))

PARSED = [
    # fctl's own output: nanoseconds and an offset
    ("2026-02-20T16:45:16.123456789+01:00", datetime(2026, 2, 20, 15, 45, 16, 123456, tzinfo=UTC)),
    ("2026-02-20T15:40:16Z", datetime(2026, 2, 20, 15, 40, 16, tzinfo=UTC)),
    ("2026-02-20T15:40:16.5Z", datetime(2026, 2, 20, 15, 40, 16, 500000, tzinfo=UTC)),
    ("2026-02-20T15:40:16.000001Z", datetime(2026, 2, 20, 15, 40, 16, 1, tzinfo=UTC)),
    ("2026-02-20T15:40:16.0000009Z", datetime(2026, 2, 20, 15, 40, 16, tzinfo=UTC)),  # truncated
    ("2026-02-20T10:10:16-05:30", datetime(2026, 2, 20, 15, 40, 16, tzinfo=UTC)),
    ("2026-02-20t15:40:16z", datetime(2026, 2, 20, 15, 40, 16, tzinfo=UTC)),
    ("0001-01-01T00:00:00Z", GO_ZERO_TIME),
    ("9999-12-31T23:59:59.999999999Z", datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
]


@pytest.mark.parametrize(("text", "moment"), PARSED)
def test_parse_rfc3339_reads_what_go_writes(text: str, moment: datetime) -> None:
    assert parse_rfc3339(text) == moment


REFUSED = [
    "",
    "2026-02-20",
    "2026-02-20T16:45:16",  # no zone
    "2026-02-20 16:45:16Z",  # space
    "2026-02-20T16:45:16.Z",
    "2026-02-30T00:00:00Z",  # no such day
    "2026-02-20T24:00:00Z",
    "2026-02-20T16:45:60Z",  # Go refuses leap seconds too
    "2026-02-20T16:45:16+24:00",
    "2026-02-20T16:45:16+0100",
    "2026-02-20T16:45:16+01:75",  # Go refuses offset minutes past 59
    "0001-01-01T00:00:00+00:01",  # before year 1 in UTC
    "9999-12-31T23:59:59-00:01",  # after year 9999 in UTC
    "\u0662\u0660\u0662\u0666-02-20T16:45:16Z",  # Arabic-Indic digits are not digits here
]


@pytest.mark.parametrize("text", REFUSED)
def test_parse_rfc3339_refuses_anything_else(text: str) -> None:
    reason = parse_rfc3339(text)
    assert isinstance(reason, str)
    assert "\n" not in reason


FORMATTED = [
    (datetime(2026, 2, 20, 16, 45, 16, 123456, tzinfo=PLUS_ONE), "2026-02-20T15:45:16.123456Z"),
    (datetime(2026, 2, 20, 15, 40, 16, tzinfo=UTC), "2026-02-20T15:40:16Z"),
    (datetime(2026, 2, 20, 15, 40, 16, 120000, tzinfo=UTC), "2026-02-20T15:40:16.12Z"),
    (GO_ZERO_TIME, "0001-01-01T00:00:00Z"),
]


@pytest.mark.parametrize(("moment", "text"), FORMATTED)
def test_format_rfc3339_writes_utc_that_go_parses(moment: datetime, text: str) -> None:
    assert format_rfc3339(moment) == text


EXPIRY = datetime(2026, 2, 20, 15, 45, 16, 123456, tzinfo=UTC)
SAVED = datetime(2026, 2, 20, 15, 40, 16, tzinfo=UTC)

DECODED = [
    (
        "fctl's entry: no savedAt",
        b'{"accessToken": "tok", "tokenType": "Bearer",'
        b' "expiry": "2026-02-20T16:45:16.123456789+01:00"}',
        CachedToken(access_token="tok", token_type="Bearer", expiry=EXPIRY, saved_at=None),
    ),
    (
        "ours: with savedAt",
        b'{"accessToken": "tok", "tokenType": "Bearer", "expiry": "2026-02-20T15:45:16.123456Z",'
        b' "savedAt": "2026-02-20T15:40:16Z"}',
        CachedToken(access_token="tok", token_type="Bearer", expiry=EXPIRY, saved_at=SAVED),
    ),
    (
        "Go's zero time: no expiry",
        b'{"accessToken": "tok", "tokenType": "Bearer", "expiry": "0001-01-01T00:00:00Z"}',
        CachedToken(access_token="tok", token_type="Bearer", expiry=None),
    ),
    (
        "no tokenType: Bearer",
        b'{"accessToken": "tok", "expiry": "2026-02-20T15:45:16.123456Z"}',
        CachedToken(access_token="tok", token_type="Bearer", expiry=EXPIRY),
    ),
    (
        "our stamps: stack URI, client id, sorted scopes",
        b'{"accessToken": "tok", "expiry": "2026-02-20T15:45:16.123456Z", '
        b'"stackURI": "https://s.example", "clientId": "svc", "scopes": ["a", "b"]}',
        CachedToken(
            access_token="tok",
            token_type="Bearer",
            expiry=EXPIRY,
            stack_uri="https://s.example",
            client_id="svc",
            scopes=("a", "b"),
        ),
    ),
    (
        "unknown keys are ignored",
        b'{"accessToken": "tok", "expiry": "2026-02-20T15:45:16.123456Z", "refresh_token": "x"}',
        CachedToken(access_token="tok", token_type="Bearer", expiry=EXPIRY),
    ),
]


@pytest.mark.parametrize(("case", "data", "entry"), DECODED)
def test_decode_cache_entry_reads_fctl_and_our_entries(
    case: str, data: bytes, entry: CachedToken
) -> None:
    assert decode_cache_entry(data) == entry, case


MISSES = [
    (b"", "not JSON"),
    (b"{", "not JSON"),
    (b'{"accessToken": "tok", "expiry": "2026-02-20T15:45:16Z"', "not JSON"),  # torn write
    (b"\xff\xfe\x00", "not JSON"),
    (b"[]", "not a JSON object"),
    (b"null", "not a JSON object"),
    (b'{"expiry": "2026-02-20T15:45:16Z"}', "accessToken"),
    (b'{"accessToken": "", "expiry": "2026-02-20T15:45:16Z"}', "accessToken"),
    (b'{"accessToken": 5, "expiry": "2026-02-20T15:45:16Z"}', "accessToken"),
    (b'{"accessToken": "tok", "tokenType": null, "expiry": "2026-02-20T15:45:16Z"}', "tokenType"),
    (b'{"accessToken": "tok"}', "expiry"),
    (b'{"accessToken": "tok", "expiry": 1766000000}', "expiry"),
    (b'{"accessToken": "tok", "expiry": "tomorrow"}', "RFC 3339"),
    (b'{"accessToken": "tok", "expiry": "2026-02-20T15:45:16Z", "savedAt": 5}', "savedAt"),
    (b'{"accessToken": "tok", "expiry": "2026-02-20T15:45:16Z", "savedAt": "x"}', "RFC 3339"),
    (b'{"accessToken": "tok", "expiry": "2026-02-20T15:45:16Z", "scopes": "a b"}', "scopes"),
    (b'{"accessToken": "tok", "expiry": "2026-02-20T15:45:16Z", "scopes": [1]}', "scopes"),
]


@pytest.mark.parametrize(("data", "reason"), MISSES)
def test_decode_cache_entry_unusable_file_is_a_miss_with_a_reason(data: bytes, reason: str) -> None:
    result = decode_cache_entry(data)
    assert isinstance(result, str)
    assert reason in result


def test_encode_cache_entry_writes_fctl_keys_and_saved_at() -> None:
    entry = CachedToken(access_token="tok", token_type="Bearer", expiry=EXPIRY, saved_at=SAVED)
    assert json.loads(encode_cache_entry(entry)) == {
        "accessToken": "tok",
        "tokenType": "Bearer",
        "expiry": "2026-02-20T15:45:16.123456Z",
        "savedAt": "2026-02-20T15:40:16Z",
    }


def test_encode_cache_entry_writes_no_expiry_as_go_zero_time() -> None:
    entry = CachedToken(access_token="tok", token_type="Bearer", expiry=None)
    document = json.loads(encode_cache_entry(entry))
    assert document["expiry"] == "0001-01-01T00:00:00Z"
    assert "savedAt" not in document


def test_decode_cache_entry_needs_neither_cattrs_nor_pyjwt() -> None:
    """The warm path's document is decoded with the stdlib (the import budget)."""
    code = (
        "import sys\n"
        "from stacktoken.core._cache_codec import decode_cache_entry\n"
        'entry = decode_cache_entry(b\'{"accessToken": "t", "expiry": "2026-02-20T15:45:16Z"}\')\n'
        "assert entry.access_token == 't', entry\n"
        "print(sorted(m for m in ('cattrs', 'jwt', 'httpx') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
