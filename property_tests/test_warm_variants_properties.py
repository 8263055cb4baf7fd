"""The warm path's `returns`-free variants (`..._or_error`, `..._or_reason`) agree with the
`Result` functions they mirror, on every input."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from returns.result import Failure, Result, Success
from stacktoken.core import (
    AuthRequired,
    Organization,
    Profile,
    StackKey,
    UsageError,
    decode_cache_entry,
    decode_cache_entry_or_reason,
    decode_profile,
    decode_profile_or_error,
    name_error,
    parse_duration,
    parse_duration_or_error,
    parse_rfc3339,
    parse_rfc3339_or_reason,
    parse_ttl,
    parse_ttl_or_error,
    resolve_organization,
    resolve_organization_or_error,
    resolve_stack,
    resolve_stack_or_error,
    stack_paths,
    stack_paths_or_error,
    validate_name,
)
from strategies import arbitrary_bytes, go_times, hostile_names, stack_keys, valid_names

ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=40)
NAMES = st.one_of(valid_names(), hostile_names())
PROFILES = st.builds(
    Profile,
    name=st.just("p"),
    membership_uri=st.none(),
    logged_in=st.booleans(),
    organizations=st.lists(
        st.builds(Organization, id=st.sampled_from(["a", "b"]), stacks=st.just(())), max_size=3
    ).map(tuple),
    default_organization=st.one_of(st.none(), st.just(""), st.just("d")),
    default_stack=st.one_of(st.none(), st.just(""), st.just("s")),
)
FLAGS = st.one_of(st.none(), st.just(""), st.just("f"))


def _as_result(value: object, error_type: type) -> Result[object, object]:
    return Failure(value) if isinstance(value, error_type) else Success(value)


@given(st.one_of(ANY_TEXT, go_times().map(lambda time: time.text)))
def test_parse_rfc3339_or_reason_agrees_with_parse_rfc3339(text: str) -> None:
    """The time or the reason, as parse_rfc3339's Success or Failure."""
    assert _as_result(parse_rfc3339_or_reason(text), str) == parse_rfc3339(text)


@given(arbitrary_bytes())
def test_decode_cache_entry_or_reason_agrees_with_decode_cache_entry(data: bytes) -> None:
    """The entry or the reason, as decode_cache_entry's Success or Failure."""
    assert _as_result(decode_cache_entry_or_reason(data), str) == decode_cache_entry(data)


@given(st.one_of(ANY_TEXT, st.sampled_from(["5m", "-5m", "0", "30", "1h30m", "2562048h"])))
def test_duration_or_error_agrees_with_parse_duration_and_parse_ttl(text: str) -> None:
    """Nanoseconds and TTLs or the usage error, as the Result functions give them."""
    assert _as_result(parse_duration_or_error(text), UsageError) == parse_duration(text)
    assert _as_result(parse_ttl_or_error(text), UsageError) == parse_ttl(text)


@given(NAMES, st.sampled_from(["profile", "organization", "stack"]))
def test_name_error_agrees_with_validate_name(name: str, kind: str) -> None:
    """None exactly when validate_name accepts, else the same usage error."""
    error = name_error(kind, name)
    assert validate_name(kind, name) == (Success(name) if error is None else Failure(error))


@given(stack_keys(NAMES))
def test_stack_paths_or_error_agrees_with_stack_paths(key: StackKey) -> None:
    """The same paths, or the same first usage error."""
    assert _as_result(stack_paths_or_error(key), UsageError) == stack_paths(key)


@given(arbitrary_bytes())
def test_decode_profile_or_error_agrees_with_decode_profile(data: bytes) -> None:
    """The same profile, or the same AuthRequired."""
    assert _as_result(decode_profile_or_error("p", data), AuthRequired) == decode_profile("p", data)


@given(PROFILES, FLAGS)
def test_resolution_or_error_agrees_with_resolve(profile: Profile, flag: str | None) -> None:
    """Organization and stack resolution give the same choice or usage error either way."""
    assert _as_result(resolve_organization_or_error(profile, flag), UsageError) == (
        resolve_organization(profile, flag)
    )
    assert _as_result(resolve_stack_or_error(profile, flag), UsageError) == resolve_stack(
        profile, flag
    )
