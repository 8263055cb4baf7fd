"""Renewal before expiry (issue 14): refresh points, held-token verdicts, and a fleet
of sources on one store, on a simulated clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hypothesis import event, given, note
from hypothesis import strategies as st
from returns.result import Result, Success
from stacktoken.core import (
    AcquireError,
    CachedToken,
    CacheRead,
    Grant,
    HeldVerdict,
    LocalError,
    RenewalPolicy,
    Settings,
    Store,
    acquire,
    is_fresh,
    judge_held,
    refresh_point,
    renewal_retry_delay,
)
from strategies import aware_datetimes

START = datetime(2026, 2, 20, 12, tzinfo=UTC)
NOWS = aware_datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1))
LIFETIMES = st.sampled_from([timedelta(minutes=5), timedelta(hours=1)]) | st.timedeltas(
    min_value=timedelta(seconds=1), max_value=timedelta(days=2)
)
JITTERS = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)
POLICIES = st.builds(
    RenewalPolicy,
    fraction=st.floats(min_value=0.05, max_value=1.0),
    jitter=st.floats(min_value=0.0, max_value=0.3),
)
SETTINGS = st.builds(
    Settings,
    cache_ttl=st.just(timedelta(days=30)),
    expiry_grace=st.sampled_from([timedelta(0), timedelta(seconds=30), timedelta(minutes=2)]),
)


def _token(issued: datetime, lifetime: timedelta, name: str = "SECRET-t") -> CachedToken:
    return CachedToken(
        access_token=name, token_type="Bearer", expiry=issued + lifetime, saved_at=issued
    )


@given(NOWS, LIFETIMES, POLICIES, SETTINGS, JITTERS)
def test_refresh_point_stays_in_its_jitter_band_and_before_the_token_goes_stale(
    issued: datetime, lifetime: timedelta, policy: RenewalPolicy, settings: Settings, jitter: float
) -> None:
    """The refresh point lies within fraction ± jitter of the lifetime, and never after
    expiry minus grace."""
    token = _token(issued, lifetime)
    point = refresh_point(token, policy=policy, settings=settings, jitter=jitter)
    assert point is not None and token.expiry is not None
    low = issued + lifetime * max(0.0, policy.fraction - policy.jitter)
    high = issued + lifetime * min(1.0, policy.fraction + policy.jitter)
    assert min(low, token.expiry - settings.expiry_grace) <= point
    assert point <= min(high, token.expiry - settings.expiry_grace)


@given(
    NOWS,
    LIFETIMES,
    POLICIES,
    SETTINGS,
    JITTERS,
    st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3)),
)
def test_held_token_is_renewed_never_before_its_point_and_never_served_stale(
    issued: datetime,
    lifetime: timedelta,
    policy: RenewalPolicy,
    settings: Settings,
    jitter: float,
    later: timedelta,
) -> None:
    """RENEW only at or after the refresh point; USE or RENEW only while fresh."""
    token = _token(issued, lifetime)
    renew_at = refresh_point(token, policy=policy, settings=settings, jitter=jitter)
    now = issued + later
    verdict = judge_held(token, renew_at=renew_at, settings=settings, now=now)
    event(verdict.name)
    if verdict in (HeldVerdict.USE, HeldVerdict.RENEW):
        assert is_fresh(token.expiry, settings=settings, now=now)
    if verdict is HeldVerdict.RENEW:
        assert renew_at is not None and now >= renew_at
    if verdict is HeldVerdict.USE:
        assert renew_at is None or now < renew_at


@given(st.integers(1, 50), POLICIES, JITTERS)
def test_renewal_retry_waits_grow_and_stay_capped(
    failures: int, policy: RenewalPolicy, jitter: float
) -> None:
    """A failed renewal waits at least half its doubling backoff, at most the cap."""
    wait = renewal_retry_delay(failures=failures, policy=policy, jitter=jitter)
    full = min(policy.first_retry_seconds * 2.0 ** (failures - 1), policy.max_retry_seconds)
    assert full / 2 <= wait <= full


# --- a fleet on one store -----------------------------------------------------

PAUSES = st.timedeltas(min_value=timedelta(0), max_value=timedelta(minutes=7))


@dataclass
class Fleet:
    """N token sources (each its own memory and jitter) sharing one store and one grant."""

    policy: RenewalPolicy
    settings: Settings
    lifetime: timedelta
    jitters: list[float]
    now: datetime = START
    stored: CacheRead | None = None
    requests: list[datetime] = field(default_factory=list)
    held: dict[int, tuple[CachedToken, datetime | None]] = field(default_factory=dict)

    def store(self) -> Store:
        def read() -> CacheRead | str:
            return self.stored if self.stored is not None else "empty"

        def write(entry: CachedToken) -> Result[None, LocalError]:
            self.stored = (entry, self.now)
            return Success(None)

        def locked(
            body: Callable[[], Result[CachedToken, AcquireError]],
        ) -> Result[CachedToken, AcquireError]:
            return body()  # one caller at a time: the simulation is sequential

        return Store(
            name="shared", read=read, write=write, locked=locked, drop=lambda _: Success(False)
        )

    def grant(self) -> Grant:
        def obtain(now: datetime) -> Result[CachedToken, AcquireError]:
            self.requests.append(now)
            return Success(
                CachedToken(
                    access_token=f"SECRET-{len(self.requests)}",
                    token_type="Bearer",
                    expiry=now + self.lifetime,
                )
            )

        return Grant(name="fake", obtain=obtain)

    def call(self, source: int) -> None:
        """What `TokenSource.token()` does, renewal included (synchronously here)."""
        held = self.held.get(source)
        verdict = (
            judge_held(held[0], renew_at=held[1], settings=self.settings, now=self.now)
            if held is not None
            else HeldVerdict.ACQUIRE
        )
        if verdict is HeldVerdict.USE:
            return
        result = acquire(
            stores=(self.store(),),
            grant=self.grant(),
            settings=self.settings,
            now=self.now,
            clock=lambda: self.now,
            log=lambda _: None,
            renewing=self.policy if verdict is HeldVerdict.RENEW else None,
        )
        token = result.unwrap()
        point = refresh_point(
            token, policy=self.policy, settings=self.settings, jitter=self.jitters[source]
        )
        self.held[source] = (token, point)


@given(
    policy=POLICIES,
    lifetime=st.sampled_from([timedelta(minutes=5), timedelta(hours=1)]),
    jitters=st.lists(JITTERS, min_size=1, max_size=8),
    steps=st.lists(
        st.tuples(
            st.integers(0, 7), st.timedeltas(min_value=timedelta(0), max_value=timedelta(minutes=7))
        ),
        min_size=1,
        max_size=60,
    ),
)
def test_fleet_on_one_store_asks_once_per_refresh_window(
    policy: RenewalPolicy,
    lifetime: timedelta,
    jitters: list[float],
    steps: list[tuple[int, timedelta]],
) -> None:
    """However N sources interleave their calls over time, two token requests are always
    at least one refresh window apart (the earliest fraction of a lifetime), and no
    caller is ever handed a token that is not fresh."""
    settings = Settings(cache_ttl=timedelta(days=30))
    fleet = Fleet(policy=policy, settings=settings, lifetime=lifetime, jitters=jitters)
    for source, pause in steps:
        fleet.now += pause
        fleet.call(source % len(jitters))
        token, _ = fleet.held[source % len(jitters)]
        assert is_fresh(token.expiry, settings=settings, now=fleet.now)
    note(f"requests at: {fleet.requests}")
    event(f"{len(fleet.requests)} requests")
    window = min(lifetime * policy.earliest, lifetime - settings.expiry_grace)
    for earlier, later in zip(fleet.requests, fleet.requests[1:], strict=False):
        assert later - earlier >= window
