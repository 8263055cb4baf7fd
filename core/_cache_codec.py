"""`api_token_cache.json` and Go's RFC 3339 timestamps, with the stdlib only.

This document is read on every warm run, so it is decoded with the stdlib:
without cattrs or pyjwt (importing either costs more than the whole warm run),
and without returns (as much again): the `..._or_reason` functions return the
value or the reason, and their namesakes wrap that in a `Result`. fctl writes
`accessToken`, `tokenType` and `expiry` (Go's `time.Time` JSON: RFC 3339 with
0-9 fractional digits and any offset, or `Z`); `savedAt` is ours and Go
ignores it. Decoding is total: any input gives a value or a reason.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING

from ._types import CachedToken

if TYPE_CHECKING:
    from returns.result import Result

__all__ = [
    "GO_ZERO_TIME",
    "decode_cache_entry",
    "decode_cache_entry_or_reason",
    "encode_cache_entry",
    "format_rfc3339",
    "is_token_text",
    "parse_rfc3339",
    "parse_rfc3339_or_reason",
]

# Go's zero `time.Time`, which oauth2 writes for a token with no expiry.
GO_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)
# RFC 6749 Appendix A.12/A.17: access and refresh tokens are 1*VSCHAR (%x20-7E).
_VSCHARS = re.compile(r"[\x20-\x7e]+", re.ASCII)


def is_token_text(text: str) -> bool:
    """Whether `text` can be a token: printable ASCII (RFC 6749 Appendix A), so
    it prints on one line and goes into a header or a form as it is."""
    return _VSCHARS.fullmatch(text) is not None


def parse_rfc3339(text: str) -> Result[datetime, str]:
    """Parse RFC 3339 as Go writes it; nanoseconds are truncated to microseconds."""
    from returns.result import Failure, Success

    parsed = parse_rfc3339_or_reason(text)
    return Failure(parsed) if isinstance(parsed, str) else Success(parsed)


def parse_rfc3339_or_reason(text: str) -> datetime | str:
    """`parse_rfc3339` without the `Result`: the time, or why it is not one."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        return f"not an RFC 3339 time: {text[:40]!r}"
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    micros = int((fraction or "0").ljust(6, "0")[:6])
    try:
        if zulu:
            zone = UTC
        else:
            if int(off_h) > 23 or int(off_m) > 59:
                raise ValueError("offset out of range")  # as Go's time.Parse refuses
            offset = timedelta(hours=int(off_h), minutes=int(off_m))
            zone = timezone(-offset if sign == "-" else offset)
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micros, zone
        )
        moment.astimezone(UTC)  # a time that cannot be told in UTC is of no use to us
    except (ValueError, OverflowError):
        return f"not a valid date and time: {text[:40]!r}"
    return moment


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
    from returns.result import Failure, Success

    decoded = decode_cache_entry_or_reason(data)
    return Failure(decoded) if isinstance(decoded, str) else Success(decoded)


def decode_cache_entry_or_reason(data: bytes) -> CachedToken | str:
    """`decode_cache_entry` without the `Result`: the entry, or why it is a cache miss."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        return "not JSON"
    if not isinstance(document, dict):
        return "not a JSON object"
    access_token = document.get("accessToken")
    token_type = document.get("tokenType", "Bearer")
    expiry_text = document.get("expiry")
    saved_at_text = document.get("savedAt")
    if not isinstance(access_token, str) or not access_token:
        return "accessToken missing or not a string"
    if not is_token_text(access_token):
        return "accessToken has characters no token has"
    if not isinstance(token_type, str):
        return "tokenType not a string"
    if not isinstance(expiry_text, str):
        return "expiry missing or not a string"
    if saved_at_text is not None and not isinstance(saved_at_text, str):
        return "savedAt not a string"
    expiry = parse_rfc3339_or_reason(expiry_text)
    if isinstance(expiry, str):
        return expiry
    saved_at = None if saved_at_text is None else parse_rfc3339_or_reason(saved_at_text)
    if isinstance(saved_at, str):
        return saved_at
    return CachedToken(
        access_token=access_token,
        token_type=token_type,
        expiry=None if expiry == GO_ZERO_TIME else expiry,
        saved_at=saved_at,
    )


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
