"""Decision rules (docs/design.md §4): freshness, disk-entry usability, refresh need."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import event, given, note
from hypothesis import strategies as st
from stacktoken.core._cache import DiskVerdict, is_fresh, judge_disk_entry, needs_refresh
from stacktoken.core._codecs import decode_accesses, encode_accesses, jwt_expiry
from stacktoken.core._fctl_grant import refreshed_access
from stacktoken.core._record import replace
from stacktoken.core._types import Settings, StackAccess, TokenResponse
from strategies import (
    DiskSituation,
    access_tokens,
    aware_datetimes,
    disk_situations,
    secrets,
    settings_values,
    stack_accesses,
)

LATER = st.one_of(
    st.sampled_from([timedelta(0), timedelta(microseconds=1), timedelta(seconds=30)]),
    st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3)),
)


def _verdict(situation: DiskSituation, now: datetime) -> DiskVerdict:
    return judge_disk_entry(
        situation.entry, file_mtime=situation.mtime, settings=situation.settings, now=now
    )


@given(disk_situations())
def test_disk_entry_is_usable_exactly_when_design_rules_hold(situation: DiskSituation) -> None:
    """USABLE iff TTL > 0, savedAt <= now + skew, now < savedAt + TTL and now + grace < expiry."""
    entry, settings, now = situation.entry, situation.settings, situation.now
    saved_at = entry.saved_at if entry.saved_at is not None else situation.mtime
    expected = (
        settings.cache_ttl > timedelta(0)
        and saved_at <= now + settings.clock_skew_allowance
        and now < saved_at + settings.cache_ttl
        and entry.expiry is not None
        and now + settings.expiry_grace < entry.expiry
    )
    verdict = _verdict(situation, now)
    event(verdict.name)
    assert verdict.usable == expected


@given(disk_situations(), LATER)
def test_disk_entry_unusable_except_from_the_future_stays_unusable_later(
    situation: DiskSituation, later: timedelta
) -> None:
    """An entry unusable at t for any reason but FROM_FUTURE is unusable at every later t."""
    before = _verdict(situation, situation.now)
    after = _verdict(situation, situation.now + later)
    note(f"{before} at t, {after} at t + {later}")
    event(f"{before.name} -> {after.name}")
    if not before.usable and before is not DiskVerdict.FROM_FUTURE:
        assert not after.usable


@given(disk_situations(), LATER)
def test_disk_entry_usable_now_was_usable_or_from_the_future_before(
    situation: DiskSituation, earlier: timedelta
) -> None:
    """Usable at t means usable or FROM_FUTURE at every earlier t (the contrapositive)."""
    if _verdict(situation, situation.now).usable:
        assert _verdict(situation, situation.now - earlier) in (
            DiskVerdict.USABLE,
            DiskVerdict.FROM_FUTURE,
        )


@given(disk_situations())
def test_entry_from_the_future_becomes_usable_once_the_clock_catches_up(
    situation: DiskSituation,
) -> None:
    """A FROM_FUTURE entry is usable at its own savedAt when its token is fresh then."""
    if _verdict(situation, situation.now) is not DiskVerdict.FROM_FUTURE:
        return
    entry = situation.entry
    saved_at = entry.saved_at if entry.saved_at is not None else situation.mtime
    fresh_then = is_fresh(entry.expiry, settings=situation.settings, now=saved_at)
    event(f"fresh at savedAt: {fresh_then}")
    assert (_verdict(situation, saved_at) is DiskVerdict.USABLE) == fresh_then


@given(disk_situations())
def test_disk_cache_disabled_is_the_only_verdict_with_ttl_zero(situation: DiskSituation) -> None:
    """With TTL 0 every entry is DISABLED; with TTL > 0 none is."""
    verdict = _verdict(situation, situation.now)
    assert (verdict is DiskVerdict.DISABLED) == (situation.settings.cache_ttl == timedelta(0))


@given(st.one_of(st.none(), aware_datetimes()), aware_datetimes(), settings_values(), LATER)
def test_freshness_is_lost_for_good_once_lost(
    expiry: datetime | None, now: datetime, settings: Settings, later: timedelta
) -> None:
    """A token not fresh at t is not fresh at any later t; no expiry is never fresh."""
    if not is_fresh(expiry, settings=settings, now=now):
        assert not is_fresh(expiry, settings=settings, now=now + later)
    if expiry is None:
        assert not is_fresh(expiry, settings=settings, now=now)
    else:
        assert is_fresh(expiry, settings=settings, now=now) == (
            now + settings.expiry_grace < expiry
        )


@given(stack_accesses(), aware_datetimes(), settings_values())
def test_stack_access_needs_refresh_exactly_when_not_fresh(
    access: StackAccess, now: datetime, settings: Settings
) -> None:
    """needs_refresh is `not is_fresh(exp)`, with the same grace."""
    assert needs_refresh(access, settings=settings, now=now) == (
        not is_fresh(access.expiry, settings=settings, now=now)
    )


# Past failure: an opaque refreshed token kept the old, expired `exp` of the
# previous token's claims, so every later run refreshed again.
_REFRESHED_EXAMPLES = [
    pytest.param(
        StackAccess(
            token="SECRET-old",
            refresh_token="SECRET-r1",
            expiry=datetime(2020, 1, 1, tzinfo=UTC),
            claims={"exp": 1577836800, "scope": "openid"},
        ),
        TokenResponse(
            access_token="SECRET-opaque",
            token_type="Bearer",
            expiry=datetime(2030, 1, 1, tzinfo=UTC),
            refresh_token="SECRET-r2",
        ),
        id="opaque-token-with-expires_in",
    ),
    pytest.param(
        StackAccess(
            token="SECRET-old",
            refresh_token="SECRET-r1",
            expiry=datetime(2020, 1, 1, tzinfo=UTC),
            claims={"exp": 1577836800},
        ),
        TokenResponse(
            access_token="SECRET-opaque", token_type="Bearer", expiry=None, refresh_token=None
        ),
        id="opaque-token-without-expiry",
    ),
]


def _check_refreshed(old: StackAccess, response: TokenResponse) -> None:
    new = refreshed_access(old, response)
    own_exp = jwt_expiry(response.access_token)
    assert new.token == response.access_token
    assert new.refresh_token == (response.refresh_token or old.refresh_token)
    assert new.extra == old.extra
    assert new.expiry == (own_exp if own_exp is not None else response.expiry)
    # What is written reads back to the same expiry, to the second (fctl reads claims.exp).
    reread = decode_accesses(encode_accesses(new)).unwrap()
    if new.expiry is None:
        assert reread.expiry is None
    else:
        assert reread.expiry is not None
        assert timedelta(0) <= new.expiry - reread.expiry < timedelta(seconds=1)


@pytest.mark.parametrize(("old", "response"), _REFRESHED_EXAMPLES)
def test_refreshed_access_takes_its_expiry_from_the_new_token_examples(
    old: StackAccess, response: TokenResponse
) -> None:
    """Regressions of the property below."""
    _check_refreshed(old, response)


@given(
    stack_accesses(),
    st.builds(
        TokenResponse,
        access_token=access_tokens(),
        token_type=st.just("Bearer"),
        expiry=st.one_of(st.none(), aware_datetimes()),
        refresh_token=st.one_of(st.none(), secrets("rotated")),
    ),
)
def test_refreshed_access_takes_its_expiry_from_the_new_token(
    old: StackAccess, response: TokenResponse
) -> None:
    """After a refresh the expiry is the new JWT's `exp`, else the response's; never the old one."""
    note(f"exp of the new token: {jwt_expiry(response.access_token)}")
    note(f"after the refresh: {refreshed_access(old, response)!r}")
    _check_refreshed(old, response)


def test_refreshed_access_keeps_the_refresh_token_when_not_rotated() -> None:
    """RFC 6749 §6: no refresh_token in the response keeps the old one."""
    old = StackAccess(token="SECRET-a", refresh_token="SECRET-r", expiry=None)
    response = TokenResponse(access_token="SECRET-b", token_type="Bearer", expiry=None)
    assert refreshed_access(old, response).refresh_token == "SECRET-r"
    assert replace(old, refresh_token=None).refresh_token is None
