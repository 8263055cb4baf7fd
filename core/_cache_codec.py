"""`api_token_cache.json` and Go's RFC 3339 timestamps, cheap to import.

This document is read on every warm run, so this module imports neither
cattrs nor `json` nor `re` (each costs more than the whole warm run) nor
returns: decoders return the value or the reason it is a cache miss. fctl
writes `accessToken`, `tokenType` and `expiry` (Go's `time.Time` JSON: RFC
3339 with 0-9 fractional digits and any offset, or `Z`); `savedAt` is ours
and Go ignores it. Decoding is total: any input gives a value or a reason.
"""

from ._json import json_object
from ._time import UTC, datetime, timedelta, timezone
from ._types import CachedToken

__all__ = [
    "GO_ZERO_TIME",
    "decode_cache_entry",
    "encode_cache_entry",
    "format_rfc3339",
    "is_token_text",
    "parse_rfc3339",
]

# Go's zero `time.Time`, which oauth2 writes for a token with no expiry.
GO_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)
_SHORTEST = len("2006-01-02T15:04:05Z")


def is_token_text(text: str) -> bool:
    """Whether `text` can be a token: printable ASCII (RFC 6749 Appendix A,
    1*VSCHAR), so it prints on one line and goes into a header or a form as it is."""
    return bool(text) and text.isascii() and text.isprintable()


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def parse_rfc3339(text: str) -> "datetime | str":
    """Parse RFC 3339 as Go writes it (nanoseconds truncated to microseconds);
    the time, or why it is not one."""
    bad = f"not an RFC 3339 time: {text[:40]!r}"
    if len(text) < _SHORTEST or not text.isascii():
        return bad
    date, clock = text[:10], text[11:19]
    if not (
        text[10] in "Tt"
        and date[4] == date[7] == "-"
        and clock[2] == clock[5] == ":"
        and all(map(_digits, (date[:4], date[5:7], date[8:], clock[:2], clock[3:5], clock[6:])))
    ):
        return bad
    rest = text[19:]
    fraction = ""
    if rest.startswith("."):
        digits = len(rest) - len(rest[1:].lstrip("0123456789")) - 1
        fraction, rest = rest[1 : 1 + digits], rest[1 + digits :]
        if not fraction:  # any number of digits: Go truncates them to nanoseconds
            return bad
    if rest in ("Z", "z"):
        zone = UTC
    elif len(rest) == 6 and rest[0] in "+-" and rest[3] == ":" and _digits(rest[1:3] + rest[4:]):
        hours, minutes = int(rest[1:3]), int(rest[4:])
        if hours > 23 or minutes > 59:  # as Go's time.Parse refuses
            return f"not a valid date and time: {text[:40]!r}"
        offset = timedelta(hours=hours, minutes=minutes)
        zone = timezone(-offset if rest[0] == "-" else offset)
    else:
        return bad
    try:
        moment = datetime(
            int(date[:4]),
            int(date[5:7]),
            int(date[8:]),
            int(clock[:2]),
            int(clock[3:5]),
            int(clock[6:]),
            int(fraction.ljust(6, "0")[:6]),
            zone,
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


def decode_cache_entry(data: bytes) -> "CachedToken | str":
    """Decode a cache file: the entry, or the reason it is a cache miss."""
    document = json_object(data)
    if isinstance(document, str):
        return document
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
    stack_uri = document.get("stackURI")
    client_id = document.get("clientId")
    if not isinstance(stack_uri, str | None) or not isinstance(client_id, str | None):
        return "stackURI or clientId not a string"
    scopes = document.get("scopes")
    if scopes is not None and not (
        isinstance(scopes, list) and all(isinstance(scope, str) for scope in scopes)
    ):
        return "scopes not a list of strings"
    expiry = parse_rfc3339(expiry_text)
    if isinstance(expiry, str):
        return expiry
    saved_at = None if saved_at_text is None else parse_rfc3339(saved_at_text)
    if isinstance(saved_at, str):
        return saved_at
    return CachedToken(
        access_token=access_token,
        token_type=token_type,
        expiry=None if expiry == GO_ZERO_TIME else expiry,
        saved_at=saved_at,
        stack_uri=stack_uri,
        client_id=client_id,
        scopes=None if scopes is None else tuple(scopes),
    )


def encode_cache_entry(entry: CachedToken) -> bytes:
    """Encode as fctl does, plus our `savedAt` (writers run on the cold path: `json` is fine)."""
    import json

    document: dict[str, str | list[str]] = {
        "accessToken": entry.access_token,
        "tokenType": entry.token_type,
        "expiry": format_rfc3339(entry.expiry if entry.expiry is not None else GO_ZERO_TIME),
    }
    if entry.saved_at is not None:
        document["savedAt"] = format_rfc3339(entry.saved_at)
    if entry.stack_uri is not None:
        document["stackURI"] = entry.stack_uri
    if entry.client_id is not None:
        document["clientId"] = entry.client_id
    if entry.scopes is not None:
        document["scopes"] = list(entry.scopes)
    return json.dumps(document).encode("utf-8")
