"""Go durations, as `--stack-token-cache-ttl` and `STACK_TOKEN_CACHE_TTL` take them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from stacktoken.core._durations import MAX_DURATION_NS, format_duration, parse_duration, parse_ttl
from stacktoken.core._errors import UsageError

SECOND = 1_000_000_000

PARSED = [
    ("300ms", 300_000_000),
    ("1.5h", 5_400 * SECOND),
    ("1h30m", 5_400 * SECOND),
    ("0", 0),
    ("0s", 0),
    ("30", 30 * SECOND),
    ("30s", 30 * SECOND),
    ("5m", 300 * SECOND),
    (".5s", SECOND // 2),
    ("1.s", SECOND),
    ("2ns", 2),
    ("1us", 1_000),
    ("1\u00b5s", 1_000),  # µ MICRO SIGN, as Go writes it
    ("1\u03bcs", 1_000),  # μ GREEK SMALL LETTER MU, which Go also reads
    ("+5m", 300 * SECOND),
    ("-0", 0),
    ("1h1m1s1ms1us1ns", 3_661_001_001_001),
    (" 5m\n", 300 * SECOND),  # an env var read with its newline
    ("2562047h47m16.854775807s", MAX_DURATION_NS),
    (str(MAX_DURATION_NS // SECOND), MAX_DURATION_NS // SECOND * SECOND),
]


@pytest.mark.parametrize(("text", "nanoseconds"), PARSED)
def test_parse_duration_accepts_go_syntax_and_bare_seconds(text: str, nanoseconds: int) -> None:
    assert parse_duration(text) == nanoseconds


REFUSED = [
    ("-5m", "must not be negative"),
    ("-1h30m", "must not be negative"),
    ("abc", "use Go syntax"),
    ("", "use Go syntax"),
    ("   ", "use Go syntax"),
    ("-5", "use Go syntax"),  # a bare integer has no sign
    ("5x", "use Go syntax"),
    ("1h30", "use Go syntax"),
    ("h", "use Go syntax"),
    (".s", "use Go syntax"),
    ("1..5s", "use Go syntax"),
    ("1e3s", "use Go syntax"),
    ("5 m", "use Go syntax"),
    ("+", "use Go syntax"),
    ("1" * 101 + "s", "use Go syntax"),
    ("2562048h", "292 years"),
    ("9223372036854775808ns", "292 years"),
    ("9223372037", "292 years"),  # bare seconds beyond int64 nanoseconds
]


@pytest.mark.parametrize(("text", "reason"), REFUSED)
def test_parse_duration_refuses_with_one_line_message(text: str, reason: str) -> None:
    error = parse_duration(text)
    assert isinstance(error, UsageError)
    assert reason in error.message
    assert error.message.startswith("invalid duration ")
    assert "\n" not in error.message and error.message.isprintable()


def test_parse_duration_quotes_long_input_cut_short() -> None:
    error = parse_duration("x" * 500)
    assert isinstance(error, UsageError)
    assert len(error.message) < 200
    assert "..." in error.message


FORMATTED = [
    (0, "0s"),
    (1, "1ns"),
    (999, "999ns"),
    (1_000, "1\u00b5s"),
    (1_500, "1.5\u00b5s"),
    (300_000_000, "300ms"),
    (SECOND, "1s"),
    (1_500_000_000, "1.5s"),
    (90 * SECOND, "1m30s"),
    (3_600 * SECOND, "1h0m0s"),
    (5_400 * SECOND, "1h30m0s"),
    (MAX_DURATION_NS, "2562047h47m16.854775807s"),
]


@pytest.mark.parametrize(("nanoseconds", "text"), FORMATTED)
def test_format_duration_writes_what_go_writes(nanoseconds: int, text: str) -> None:
    assert format_duration(nanoseconds) == text
    assert parse_duration(text) == nanoseconds


TTLS = [
    ("5m", timedelta(minutes=5)),
    ("300ms", timedelta(milliseconds=300)),
    ("0", timedelta(0)),
    ("1500ns", timedelta(microseconds=2)),  # rounded up to timedelta's resolution
    ("1ns", timedelta(microseconds=1)),  # a positive TTL never becomes 0 (disabled)
]


@pytest.mark.parametrize(("text", "ttl"), TTLS)
def test_parse_ttl_gives_a_timedelta(text: str, ttl: timedelta) -> None:
    assert parse_ttl(text) == ttl


def test_parse_ttl_refuses_a_negative_ttl() -> None:
    assert isinstance(parse_ttl("-5m"), UsageError)
