"""`api_token_cache.json` and Go's RFC 3339 timestamps, with the stdlib only.

This document is read on every warm run, so it is decoded without cattrs or
pyjwt (importing either costs more than the whole warm run). fctl writes
`accessToken`, `tokenType` and `expiry` (Go's `time.Time` JSON: RFC 3339 with
0-9 fractional digits and any offset, or `Z`); `savedAt` is ours and Go
ignores it. Decoding is total: any input gives a value or a reason.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone

from returns.result import Failure, Result, Success

from ._types import CachedToken

__all__ = [
    "GO_ZERO_TIME",
    "decode_cache_entry",
    "encode_cache_entry",
    "format_rfc3339",
    "parse_rfc3339",
]

# Go's zero `time.Time`, which oauth2 writes for a token with no expiry.
GO_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)


def parse_rfc3339(text: str) -> Result[datetime, str]:
    """Parse RFC 3339 as Go writes it; nanoseconds are truncated to microseconds."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        return Failure(f"not an RFC 3339 time: {text[:40]!r}")
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    micros = int((fraction or "0").ljust(6, "0")[:6])
    try:
        if zulu:
            zone = UTC
        else:
            offset = timedelta(hours=int(off_h), minutes=int(off_m))
            zone = timezone(-offset if sign == "-" else offset)
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micros, zone
        )
        moment.astimezone(UTC)  # a time that cannot be told in UTC is of no use to us
    except (ValueError, OverflowError):
        return Failure(f"not a valid date and time: {text[:40]!r}")
    return Success(moment)


def format_rfc3339(moment: datetime) -> str:
    """Format in UTC as `2026-02-20T15:40:16.123456Z`, which Go parses."""
    utc = moment.astimezone(UTC)
    fraction = f".{utc.microsecond:06d}".rstrip("0").rstrip(".")
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}"
        f"T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}{fraction}Z"
    )


def decode_cache_entry(data: bytes) -> Result[CachedToken, str]:
    """Decode a cache file; Failure carries the reason it is a cache miss."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        return Failure("not JSON")
    if not isinstance(document, dict):
        return Failure("not a JSON object")
    access_token = document.get("accessToken")
    token_type = document.get("tokenType", "Bearer")
    expiry_text = document.get("expiry")
    saved_at_text = document.get("savedAt")
    if not isinstance(access_token, str) or not access_token:
        return Failure("accessToken missing or not a string")
    if not isinstance(token_type, str):
        return Failure("tokenType not a string")
    if not isinstance(expiry_text, str):
        return Failure("expiry missing or not a string")
    if saved_at_text is not None and not isinstance(saved_at_text, str):
        return Failure("savedAt not a string")
    return parse_rfc3339(expiry_text).bind(
        lambda expiry: _with_saved_at(access_token, token_type, expiry, saved_at_text)
    )


def _with_saved_at(
    access_token: str, token_type: str, expiry: datetime, saved_at_text: str | None
) -> Result[CachedToken, str]:
    def entry(saved_at: datetime | None) -> CachedToken:
        return CachedToken(
            access_token=access_token,
            token_type=token_type,
            expiry=None if expiry == GO_ZERO_TIME else expiry,
            saved_at=saved_at,
        )

    if saved_at_text is None:
        return Success(entry(None))
    return parse_rfc3339(saved_at_text).map(entry)


def encode_cache_entry(entry: CachedToken) -> bytes:
    """Encode as fctl does, plus our `savedAt`."""
    document: dict[str, str] = {
        "accessToken": entry.access_token,
        "tokenType": entry.token_type,
        "expiry": format_rfc3339(entry.expiry if entry.expiry is not None else GO_ZERO_TIME),
    }
    if entry.saved_at is not None:
        document["savedAt"] = format_rfc3339(entry.saved_at)
    return json.dumps(document).encode("utf-8")
