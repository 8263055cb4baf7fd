"""The held-token machine (core's `_holding`) on a simulated clock, without threads:
what a call does, when a failed renewal is retried, when the renewal thread wakes,
and where a held token's refresh point falls."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from hypothesis import event, example, given
from hypothesis import strategies as st
from stacktoken.core._holding import Act, Holding, hold, next_wake, on_call, on_failed, usable
from stacktoken.core._renewal import (
    RenewalPolicy,
    latest_refresh_point,
    refresh_point,
    too_short,
)
from stacktoken.core._types import CachedToken, Settings
from strategies import HoldingStep, holding_timelines, renewal_policies, unit_jitters

START = datetime(2026, 2, 20, 12, tzinfo=UTC)
LIFETIMES = st.sampled_from(
    [timedelta(seconds=45), timedelta(minutes=5), timedelta(hours=1), timedelta(seconds=30)]
) | st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=2))
SETTINGS = st.builds(
    Settings,
    cache_ttl=st.sampled_from([timedelta(0), timedelta(minutes=5), timedelta(days=30)]),
    expiry_grace=st.sampled_from([timedelta(0), timedelta(seconds=30), timedelta(minutes=2)]),
)
POLICIES = st.none() | renewal_policies()


def _token(issued: datetime, lifetime: timedelta, n: int = 0) -> CachedToken:
    return CachedToken(
        access_token=f"SECRET-{n}", token_type="Bearer", expiry=issued + lifetime, saved_at=issued
    )


def _moments(holding: Holding | None, now: datetime) -> Iterator[datetime]:
    """`now`, and the holding's own instants and their neighbours after it: where a
    wrong comparison (`>` for `>=`) shows."""
    yield now
    if holding is None:
        return
    tick = timedelta(microseconds=1)
    for instant in (holding.renew_at, holding.stale_at, holding.retry_at):
        if instant is not None:
            for moment in (instant - tick, instant, instant + tick):
                if moment >= now:
                    yield moment


def _play(
    steps: list[HoldingStep],
    *,
    lifetime: timedelta,
    policy: RenewalPolicy | None,
    settings: Settings,
    jitter: float,
) -> Iterator[tuple[Holding | None, datetime, HoldingStep]]:
    """Drive the machine as `TokenSource` does: yield (holding, now, step) before each
    call, then carry out what `on_call` decides, the request ending as the step says."""
    holding: Holding | None = None
    now = START
    for index, step in enumerate(steps):
        now += step.pause
        for moment in _moments(holding, now):
            yield holding, moment, step
        act = on_call(holding, now=now, busy=step.busy, background=step.background)
        if act is Act.USE:
            continue
        if step.request_succeeds:
            held = hold(
                _token(now, lifetime, index),
                policy=policy,
                settings=settings,
                now=now,
                jitter=jitter,
            )
            holding = held if held is not None else holding
        elif act is Act.RENEW and holding is not None:
            holding, _ = on_failed(holding, policy=policy, now=now, jitter=jitter)


TIMELINE = {
    "steps": holding_timelines(),
    "lifetime": LIFETIMES,
    "policy": POLICIES,
    "settings": SETTINGS,
    "jitter": unit_jitters(),
}


@given(**TIMELINE)
def test_a_call_uses_only_a_fresh_token_and_acquires_only_without_one(
    steps: list[HoldingStep],
    lifetime: timedelta,
    policy: RenewalPolicy | None,
    settings: Settings,
    jitter: float,
) -> None:
    """USE (or RENEW, which hands the held token on while it renews) only while the held
    token is fresh; ACQUIRE (the caller waits) only when there is no fresh token to give."""
    for holding, now, step in _play(
        steps, lifetime=lifetime, policy=policy, settings=settings, jitter=jitter
    ):
        act = on_call(holding, now=now, busy=step.busy, background=step.background)
        event(act.name)
        fresh = usable(holding, now=now)
        assert (act is Act.ACQUIRE) == (fresh is None)
        if fresh is not None:
            assert holding is not None and now < holding.stale_at
            assert fresh.expiry is not None and now + settings.expiry_grace < fresh.expiry


@given(**TIMELINE)
def test_a_call_renews_exactly_past_the_point_when_nothing_else_renews(
    steps: list[HoldingStep],
    lifetime: timedelta,
    policy: RenewalPolicy | None,
    settings: Settings,
    jitter: float,
) -> None:
    """A call renews iff the held token is fresh, past its refresh point, no renewal
    thread runs, no other caller holds the lock, and no failed renewal's wait runs."""
    for holding, now, step in _play(
        steps, lifetime=lifetime, policy=policy, settings=settings, jitter=jitter
    ):
        act = on_call(holding, now=now, busy=step.busy, background=step.background)
        due = (
            holding is not None
            and now < holding.stale_at
            and holding.renew_at is not None
            and now >= holding.renew_at
            and (holding.retry_at is None or now >= holding.retry_at)
        )
        assert (act is Act.RENEW) == (due and not step.busy and not step.background)


@given(**TIMELINE)
def test_failed_renewals_wait_a_doubling_capped_time_and_a_new_token_clears_them(
    steps: list[HoldingStep],
    lifetime: timedelta,
    policy: RenewalPolicy | None,
    settings: Settings,
    jitter: float,
) -> None:
    """After the k-th failed renewal in a row the next waits between half and all of
    min(first * 2^(k-1), cap); a token newly held has no failure and no wait."""
    rules = policy or RenewalPolicy()
    for holding, now, _ in _play(
        steps, lifetime=lifetime, policy=policy, settings=settings, jitter=jitter
    ):
        if holding is None:
            continue
        if holding.failures == 0:
            assert holding.retry_at is None
            continue
        failed, wait = on_failed(holding, policy=policy, now=now, jitter=jitter)
        full = min(
            rules.first_retry_seconds * 2.0 ** (failed.failures - 1), rules.max_retry_seconds
        )
        assert failed.failures == holding.failures + 1
        assert full / 2 <= wait <= full
        assert failed.retry_at == now + timedelta(seconds=wait)
    fresh = hold(
        _token(START, lifetime), policy=policy, settings=settings, now=START, jitter=jitter
    )
    assert fresh is None or (fresh.failures, fresh.retry_at) == (0, None)


@given(**TIMELINE)
def test_the_renewal_thread_wakes_exactly_when_a_call_would_renew(
    steps: list[HoldingStep],
    lifetime: timedelta,
    policy: RenewalPolicy | None,
    settings: Settings,
    jitter: float,
) -> None:
    """While a fresh token is held, the thread's wait ends at the moment a lone caller
    (no thread, no lock held) would renew: never past it, never before it."""
    for holding, now, _ in _play(
        steps, lifetime=lifetime, policy=policy, settings=settings, jitter=jitter
    ):
        wake = next_wake(holding, now=now)
        if holding is None or holding.renew_at is None:
            assert wake is None
            continue
        assert wake is not None and wake >= 0
        if now >= holding.stale_at:
            continue  # the thread renews a stale token too (no caller has one to use)
        renews_now = on_call(holding, now=now, busy=False, background=False) is Act.RENEW
        assert (wake == 0) == renews_now
        if wake > 0:
            at = now + timedelta(seconds=wake)
            assert on_call(holding, now=at, busy=False, background=False) is not Act.USE
            before = at - timedelta(microseconds=2)
            if before > now:
                assert on_call(holding, now=before, busy=False, background=False) is Act.USE


# --- where the refresh point falls --------------------------------------------


@given(LIFETIMES, renewal_policies(), SETTINGS, unit_jitters())
@example(timedelta(seconds=45), RenewalPolicy(room_seconds=20.0), Settings(), 0.5)
@example(timedelta(seconds=45), RenewalPolicy(room_seconds=10.0), Settings(), 0.999)
@example(timedelta(minutes=5), RenewalPolicy(room_seconds=10.0), Settings(), 0.999)
def test_the_refresh_point_leaves_the_renewal_its_room_before_the_token_goes_stale(
    lifetime: timedelta, policy: RenewalPolicy, settings: Settings, jitter: float
) -> None:
    """For any lifetime, policy and jitter draw, the refresh point lies before
    expiry - grace - room, the room being at least the request's deadline
    (`room_seconds`) and at least `room` of the usable lifetime; a token too short to
    leave that room is renewed at once (its point is the moment it was obtained)."""
    token = _token(START, lifetime)
    assert token.expiry is not None
    point = refresh_point(token, policy=policy, settings=settings, jitter=jitter)
    latest = latest_refresh_point(token, policy=policy, settings=settings)
    assert point is not None and latest is not None
    end = token.expiry - settings.expiry_grace
    room = end - latest
    assert room >= max(end - START, timedelta(0)) * policy.room - timedelta(microseconds=1)
    assert room >= timedelta(seconds=policy.room_seconds or 0) - timedelta(microseconds=1)
    short = too_short(token, policy=policy, settings=settings)
    event(f"too short: {short}")
    if short:
        assert point == START
    else:
        assert START <= point <= latest


@given(LIFETIMES, renewal_policies(), SETTINGS, unit_jitters(), st.sampled_from([0, 1, 59]))
# Too short: 15 usable seconds, 20 s of room.
@example(timedelta(seconds=45), RenewalPolicy(room_seconds=20.0), Settings(), 0.5, 0)
# The default policy, with the default request deadline, at the top of the jitter band.
@example(timedelta(seconds=45), RenewalPolicy(room_seconds=10.0), Settings(), 0.999, 0)
@example(timedelta(minutes=5), RenewalPolicy(room_seconds=10.0), Settings(), 0.999, 0)
def test_a_held_token_is_renewed_inside_its_usable_lifetime(
    lifetime: timedelta, policy: RenewalPolicy, settings: Settings, jitter: float, age: int
) -> None:
    """A token held `age` seconds after it was stored is renewed before it goes stale,
    not sooner than `first_retry_seconds` after it is taken (no renewal right after the
    last), and, when that leaves the room, no later than expiry - grace - room; one too
    short for that is marked so (the shell says so) and renewed as soon as allowed."""
    stored = _token(START, lifetime)
    now = START + timedelta(seconds=age)
    holding = hold(stored, policy=policy, settings=settings, now=now, jitter=jitter)
    assert stored.expiry is not None
    if now >= stored.expiry - settings.expiry_grace:
        assert holding is None
        return
    assert holding is not None and holding.renew_at is not None
    floor = now + timedelta(seconds=policy.first_retry_seconds)
    latest = latest_refresh_point(stored, policy=policy, settings=settings)
    assert latest is not None
    assert min(floor, holding.stale_at) <= holding.renew_at <= holding.stale_at
    assert holding.short == too_short(stored, policy=policy, settings=settings)
    if holding.short:
        assert holding.renew_at == min(floor, holding.stale_at)
    elif latest >= floor:
        assert holding.renew_at <= latest


@given(LIFETIMES, SETTINGS, unit_jitters())
def test_no_renewal_policy_holds_a_token_until_it_goes_stale(
    lifetime: timedelta, settings: Settings, jitter: float
) -> None:
    """`renewal=None`: a held token is used until it is not fresh, then acquired anew."""
    holding = hold(
        _token(START, lifetime), policy=None, settings=settings, now=START, jitter=jitter
    )
    if holding is None:
        return
    assert holding.renew_at is None
    just_before = holding.stale_at - timedelta(microseconds=1)
    assert on_call(holding, now=just_before, busy=False, background=False) is Act.USE
    assert on_call(holding, now=holding.stale_at, busy=False, background=False) is Act.ACQUIRE


@given(
    LIFETIMES,
    renewal_policies(),
    SETTINGS,
    unit_jitters(),
    st.integers(min_value=1, max_value=12),
    st.booleans(),
)
def test_a_failed_renewal_is_retried_when_its_wait_ends_and_not_before(
    lifetime: timedelta,
    policy: RenewalPolicy,
    settings: Settings,
    jitter: float,
    failures: int,
    background: bool,
) -> None:
    """After the k-th failed renewal in a row (each tried as soon as allowed), the wait is
    between half and all of min(first * 2^(k-1), cap); a lone caller uses the held token
    until it ends and renews from then on, while the token is fresh; the renewal thread
    sleeps exactly that wait."""
    holding = hold(
        _token(START, lifetime), policy=policy, settings=settings, now=START, jitter=jitter
    )
    if holding is None or holding.renew_at is None:
        return
    now = holding.renew_at
    for k in range(1, failures + 1):
        if now >= holding.stale_at:
            return
        assert on_call(holding, now=now, busy=False, background=False) is Act.RENEW
        holding, wait = on_failed(holding, policy=policy, now=now, jitter=jitter)
        full = min(policy.first_retry_seconds * 2.0 ** (k - 1), policy.max_retry_seconds)
        assert holding.failures == k
        assert full / 2 <= wait <= full
        assert holding.retry_at is not None
        tick = timedelta(microseconds=1)
        if holding.retry_at - tick >= now and holding.retry_at - tick < holding.stale_at:
            before = holding.retry_at - tick
            assert on_call(holding, now=before, busy=False, background=background) is Act.USE
            assert abs(wait - (holding.retry_at - now).total_seconds()) <= 1e-6
            assert next_wake(holding, now=now) == (holding.retry_at - now).total_seconds()
        now = holding.retry_at
    if now < holding.stale_at:
        event("retried while fresh")
        expected = Act.USE if background else Act.RENEW
        assert on_call(holding, now=now, busy=False, background=background) is expected
        assert next_wake(holding, now=now) == 0
