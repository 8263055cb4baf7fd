"""Go's own `time` test tables, against our Go-duration and RFC 3339 parsers.

fctl writes Go times and takes Go durations, so each row here is copied from
Go's src/time tests (`parseDurationTests` in time_test.go,
`longFractionalDigitsTests` in format_test.go) with Go's expected value. Rows
that Go accepts but stacktoken refuses on purpose (a negative TTL) are left out;
tests/test_core_durations.py covers those.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from stacktoken.core._cache_codec import parse_rfc3339
from stacktoken.core._durations import parse_duration

NANOSECOND = 1
MICROSECOND = 1_000 * NANOSECOND
MILLISECOND = 1_000 * MICROSECOND
SECOND = 1_000 * MILLISECOND
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

# Go's parseDurationTests, the rows with a non-negative result.
GO_PARSE_DURATION = [
    ("0", 0),
    ("5s", 5 * SECOND),
    ("30s", 30 * SECOND),
    ("1478s", 1478 * SECOND),
    ("+5s", 5 * SECOND),
    ("-0", 0),
    ("+0", 0),
    ("5.0s", 5 * SECOND),
    ("5.6s", 5 * SECOND + 600 * MILLISECOND),
    ("5.s", 5 * SECOND),
    (".5s", 500 * MILLISECOND),
    ("1.0s", 1 * SECOND),
    ("1.00s", 1 * SECOND),
    ("1.004s", 1 * SECOND + 4 * MILLISECOND),
    ("1.0040s", 1 * SECOND + 4 * MILLISECOND),
    ("100.00100s", 100 * SECOND + 1 * MILLISECOND),
    ("10ns", 10 * NANOSECOND),
    ("11us", 11 * MICROSECOND),
    ("12\u00b5s", 12 * MICROSECOND),
    ("12\u03bcs", 12 * MICROSECOND),
    ("13ms", 13 * MILLISECOND),
    ("14s", 14 * SECOND),
    ("15m", 15 * MINUTE),
    ("16h", 16 * HOUR),
    ("3h30m", 3 * HOUR + 30 * MINUTE),
    ("10.5s4m", 4 * MINUTE + 10 * SECOND + 500 * MILLISECOND),
    (
        "1h2m3s4ms5us6ns",
        1 * HOUR + 2 * MINUTE + 3 * SECOND + 4 * MILLISECOND + 5 * MICROSECOND + 6 * NANOSECOND,
    ),
    ("39h9m14.425s", 39 * HOUR + 9 * MINUTE + 14 * SECOND + 425 * MILLISECOND),
    ("52763797000ns", 52763797000 * NANOSECOND),
    # more than 9 digits after the point (golang.org/issue/6617)
    ("0.3333333333333333333h", 20 * MINUTE),
    # 1<<53+1 cannot be stored precisely in a float64
    ("9007199254740993ns", (1 << 53) + 1),
    # the largest duration an int64 of nanoseconds holds
    ("9223372036854775807ns", (1 << 63) - 1),
    ("9223372036854775.807us", (1 << 63) - 1),
    ("9223372036s854ms775us807ns", (1 << 63) - 1),
    # huge string (golang.org/issue/15011)
    ("0.100000000000000000000h", 6 * MINUTE),
    # the first overflow check in Go's leadingFraction
    ("0.830103483285477580700h", 49 * MINUTE + 48 * SECOND + 372539827 * NANOSECOND),
]


@pytest.mark.parametrize(("text", "nanoseconds"), GO_PARSE_DURATION)
def test_parse_duration_agrees_with_go_parse_duration_tests(text: str, nanoseconds: int) -> None:
    assert parse_duration(text) == nanoseconds


# Go's longFractionalDigitsTests: any number of fractional digits, truncated to
# nanoseconds (Go's Nanosecond()).
GO_LONG_FRACTIONS = [
    ("2021-09-29T16:04:33.000000000Z", 0),
    ("2021-09-29T16:04:33.000000001Z", 1),
    ("2021-09-29T16:04:33.100000000Z", 100_000_000),
    ("2021-09-29T16:04:33.100000001Z", 100_000_001),
    ("2021-09-29T16:04:33.999999999Z", 999_999_999),
    ("2021-09-29T16:04:33.012345678Z", 12_345_678),
    ("2021-09-29T16:04:33.0000000000Z", 0),
    ("2021-09-29T16:04:33.0000000001Z", 0),
    ("2021-09-29T16:04:33.1000000000Z", 100_000_000),
    ("2021-09-29T16:04:33.1000000009Z", 100_000_000),
    ("2021-09-29T16:04:33.9999999999Z", 999_999_999),
    ("2021-09-29T16:04:33.0123456789Z", 12_345_678),
    ("2021-09-29T16:04:33.10000000000Z", 100_000_000),
    ("2021-09-29T16:04:33.00123456789Z", 1_234_567),
    ("2021-09-29T16:04:33.000123456789Z", 123_456),
    ("2021-09-29T16:04:33.9999999999999999Z", 999_999_999),
]


@pytest.mark.parametrize(("text", "nanosecond"), GO_LONG_FRACTIONS)
def test_parse_rfc3339_agrees_with_go_long_fractional_digits_tests(
    text: str, nanosecond: int
) -> None:
    # Our times hold microseconds: Go's nanosecond, truncated once more.
    assert parse_rfc3339(text) == datetime(2021, 9, 29, 16, 4, 33, nanosecond // 1_000, tzinfo=UTC)
