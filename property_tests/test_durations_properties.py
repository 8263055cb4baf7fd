"""Go durations (docs/design.md §4): `--stack-token-cache-ttl` and `STACK_TOKEN_CACHE_TTL`."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, note
from hypothesis import strategies as st
from stacktoken.core._durations import MAX_DURATION_NS, format_duration, parse_duration, parse_ttl
from stacktoken.core._errors import UsageError
from strategies import GoDuration, durations_ns, go_durations, malformed_durations

ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=120)


def _is_one_line_failure(result: object) -> bool:
    return isinstance(result, UsageError) and result.message.isprintable() and bool(result.message)


@given(durations_ns())
def test_format_then_parse_is_identity(nanoseconds: int) -> None:
    """Every duration in 0..MAX_DURATION_NS formats to a text that parses back exactly."""
    text = format_duration(nanoseconds)
    note(f"formatted: {text!r}")
    assert parse_duration(text) == nanoseconds


@given(go_durations())
def test_parse_gives_the_value_go_gives(duration: GoDuration) -> None:
    """Multi-unit Go durations parse to the sum of their components, each truncated to ns."""
    note(f"text: {duration.text!r}")
    assert parse_duration(duration.text) == duration.nanoseconds


@given(st.integers(min_value=0, max_value=MAX_DURATION_NS // 10**9))
def test_bare_integer_means_seconds(seconds: int) -> None:
    """A bare integer is a number of seconds."""
    assert parse_duration(str(seconds)) == seconds * 10**9


@given(durations_ns().filter(lambda ns: ns > 0), st.sampled_from(["-", " -"]))
def test_negative_durations_are_one_line_failures(nanoseconds: int, sign: str) -> None:
    """A negative duration is refused with a one-line usage error."""
    result = parse_duration(sign + format_duration(nanoseconds))
    assert isinstance(result, UsageError)
    assert _is_one_line_failure(result)
    assert "negative" in result.message


@given(st.integers(min_value=MAX_DURATION_NS + 1, max_value=MAX_DURATION_NS * 1000))
def test_overflowing_durations_are_one_line_failures(nanoseconds: int) -> None:
    """A duration beyond Go's int64 nanoseconds is refused, in units and as bare seconds."""
    for text in (format_duration(nanoseconds), f"{nanoseconds}ns", str(nanoseconds // 10**9 + 1)):
        note(f"text: {text!r}")
        result = parse_duration(text)
        assert isinstance(result, UsageError)
        assert _is_one_line_failure(result)
        assert "292 years" in result.message


@given(malformed_durations())
def test_malformed_durations_are_one_line_failures(text: str) -> None:
    """Text that is not a Go duration is refused with a one-line usage error."""
    assert _is_one_line_failure(parse_duration(text))


@given(ANY_TEXT)
def test_parse_never_raises_and_failures_are_one_line(text: str) -> None:
    """Any text at all gives a non-negative duration or a one-line usage error."""
    result = parse_duration(text)
    if isinstance(result, UsageError):
        assert _is_one_line_failure(result)
    else:
        assert type(result) is int
        assert 0 <= result <= MAX_DURATION_NS


@given(st.one_of(durations_ns().map(format_duration), ANY_TEXT))
def test_parse_ttl_is_parse_duration_in_microseconds(text: str) -> None:
    """parse_ttl agrees with parse_duration, rounded up to timedelta's microseconds,
    so a positive TTL never becomes 0 (which would disable the cache)."""
    parsed = parse_duration(text)
    ttl = parse_ttl(text)
    if isinstance(parsed, UsageError):
        assert ttl == parsed
    else:
        assert ttl == timedelta(microseconds=-(-parsed // 1000))
        assert isinstance(ttl, timedelta)
        assert bool(ttl) == bool(parsed)


@given(durations_ns())
def test_format_is_go_shaped(nanoseconds: int) -> None:
    """Formatted durations use Go's units in Go's order and never a leading zero unit."""
    text = format_duration(nanoseconds)
    assert text.isprintable() and " " not in text
    if nanoseconds >= 3600 * 10**9:
        assert text[0] != "0" and "h" in text and text.endswith("s")


# Texts whose exact value Go documents.
_GO_EXAMPLES = [
    ("300ms", 300_000_000),
    ("1.5h", 5_400 * 10**9),
    ("1h30m", 5_400 * 10**9),
    ("-0", 0),
    ("+5s", 5 * 10**9),
    ("2562047h47m16.854775807s", MAX_DURATION_NS),
    ("1.0000000019s", 1_000_000_001),  # truncated, as Go does
]


@pytest.mark.parametrize(("text", "nanoseconds"), _GO_EXAMPLES)
def test_parse_gives_the_value_go_gives_examples(text: str, nanoseconds: int) -> None:
    """Recorded examples of the property above."""
    assert parse_duration(text) == nanoseconds
