"""Go duration syntax (`time.ParseDuration`), as fctl's flags take it.

`--stack-token-cache-ttl` and `STACK_TOKEN_CACHE_TTL` accept Go durations
(`300ms`, `1.5h`, `1h30m`, `0`) and, for convenience, a bare integer meaning
seconds. Durations are integers of nanoseconds, like Go's, so a formatted
duration parses back to exactly the same value.
"""

from __future__ import annotations

from ._errors import UsageError
from ._time import timedelta

__all__ = [
    "MAX_DURATION_NS",
    "format_duration",
    "parse_duration",
    "parse_ttl",
]

# Go's Duration is an int64 of nanoseconds.
MAX_DURATION_NS = 2**63 - 1

_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # µ MICRO SIGN, as Go writes it
    "\u03bcs": 1_000,  # μ GREEK SMALL LETTER MU, which Go also accepts
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}
_DIGITS = "0123456789"
# Longer than any valid duration; also keeps int() far from its digit limit.
_MAX_TEXT_LENGTH = 100


def _is_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def parse_duration(text: str) -> int | UsageError:
    """Parse a Go duration or bare integer seconds into nanoseconds (>= 0)."""
    stripped = text.strip()
    if len(stripped) > _MAX_TEXT_LENGTH:
        return _invalid(text)
    if _is_digits(stripped):
        return _within_range(int(stripped) * _UNIT_NS["s"], text)
    body = stripped
    if body[:1] in ("+", "-"):
        negative, body = body[0] == "-", body[1:]
    else:
        negative = False
    if body == "0":
        return 0
    if not body:
        return _invalid(text)
    total = 0
    position = 0
    while position < len(body):
        component = _component(body, position)
        if component is None:
            return _invalid(text)
        whole, fraction, unit, end = component
        if (not whole and not fraction) or unit not in _UNIT_NS:
            return _invalid(text)
        unit_ns = _UNIT_NS[unit]
        total += int(whole or "0") * unit_ns + _fraction_ns(fraction, unit_ns)
        if total > MAX_DURATION_NS:
            return _out_of_range(text)
        position = end
    if negative and total:
        return UsageError(message=f"invalid duration {_shown(text)}: must not be negative")
    return total


def _component(body: str, start: int) -> tuple[str, str, str, int] | None:
    """One `<digits>[.<digits>]<unit>` of a Go duration from `start`: its whole
    and fractional digits, its unit, and where it ends; None if there is none."""
    position = start
    while position < len(body) and body[position] in _DIGITS:
        position += 1
    whole = body[start:position]
    fraction = ""
    if position < len(body) and body[position] == ".":
        begin = position = position + 1
        while position < len(body) and body[position] in _DIGITS:
            position += 1
        fraction = body[begin:position]
    unit_start = position
    while position < len(body) and body[position] not in _DIGITS and body[position] != ".":
        position += 1
    if position == unit_start:
        return None
    return whole, fraction, body[unit_start:position], position


def _fraction_ns(fraction: str, unit_ns: int) -> int:
    """Go's `time.ParseDuration` for the digits after the point, to the bit: they
    accumulate into a uint64 until it would overflow (later digits are dropped),
    then `uint64(float64(f) * (float64(unit) / scale))`. Exact decimal arithmetic
    differs in the last nanosecond (`0.3333333333333333333h` is 20m in Go)."""
    accumulated, scale = 0, 1.0
    for digit in fraction:
        if accumulated > (2**63 - 1) // 10:
            break
        following = accumulated * 10 + ord(digit) - ord("0")
        if following > 2**63:
            break
        accumulated, scale = following, scale * 10
    if not accumulated:
        return 0
    return int(float(accumulated) * (float(unit_ns) / scale))


def parse_ttl(text: str) -> timedelta | UsageError:
    """Parse a cache TTL, rounded up to timedelta's microsecond resolution."""
    parsed = parse_duration(text)
    return parsed if isinstance(parsed, UsageError) else _as_ttl(parsed)


def _as_ttl(nanoseconds: int) -> timedelta:
    # Rounded up: a positive TTL must never become 0, which disables the cache.
    return timedelta(microseconds=-(-nanoseconds // 1_000))


def format_duration(nanoseconds: int) -> str:
    """Format like Go's `Duration.String` (`1h30m0s`, `1.5s`, `300ms`, `0s`)."""
    if nanoseconds == 0:
        return "0s"
    if nanoseconds < 1_000:
        return f"{nanoseconds}ns"
    if nanoseconds < 1_000_000:
        return _with_fraction(nanoseconds, 3) + "\u00b5s"
    if nanoseconds < 1_000_000_000:
        return _with_fraction(nanoseconds, 6) + "ms"
    seconds = nanoseconds // 1_000_000_000
    hours, rest = divmod(seconds, 3600)
    minutes = rest // 60
    text = _with_fraction(nanoseconds % 60_000_000_000, 9) + "s"
    if seconds >= 60:
        text = f"{minutes}m{text}"
    if seconds >= 3600:
        text = f"{hours}h{text}"
    return text


def _with_fraction(value: int, digits: int) -> str:
    whole, fraction = divmod(value, 10**digits)
    decimals = str(fraction).rjust(digits, "0").rstrip("0")
    return f"{whole}.{decimals}" if decimals else str(whole)


def _within_range(nanoseconds: int, text: str) -> int | UsageError:
    if nanoseconds > MAX_DURATION_NS:
        return _out_of_range(text)
    return nanoseconds


def _invalid(text: str) -> UsageError:
    return UsageError(
        message=f"invalid duration {_shown(text)}: use Go syntax such as 300ms, 30s, 5m, 1h30m, "
        "or a whole number of seconds"
    )


def _out_of_range(text: str) -> UsageError:
    return UsageError(message=f"invalid duration {_shown(text)}: longer than about 292 years")


def _shown(text: str) -> str:
    """The user's input, quoted and cut short so one bad value stays one line."""
    return repr(text if len(text) <= 40 else text[:40] + "...")
