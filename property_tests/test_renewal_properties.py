"""Renewal before expiry: refresh points, the held-token machine (core's `_holding`),
and a fleet of sources on one store, on a simulated clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from hypothesis import event, example, given, note, settings
from hypothesis import strategies as st
from returns.result import Failure, Result, Success
from stacktoken.core._backoff import capped_backoff
from stacktoken.core._cache import CacheRead, Grant, Store, is_fresh
from stacktoken.core._errors import AcquireError, LocalError, RemoteError
from stacktoken.core._holding import Act, Holding, hold, on_call
from stacktoken.core._renewal import (
    RenewalPolicy,
    due_for_renewal,
    latest_refresh_point,
    refresh_point,
    renewal_retry_delay,
)
from stacktoken.core._types import CachedToken, Settings
from stacktoken.core._workflow import acquire
from stacktoken.shell._source import TokenSource
from strategies import (
    RenewalStep,
    aware_datetimes,
    renewal_policies,
    renewal_timelines,
    unit_jitters,
)

START = datetime(2026, 2, 20, 12, tzinfo=UTC)
NOWS = aware_datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1))
LIFETIMES = st.sampled_from([timedelta(minutes=5), timedelta(hours=1)]) | st.timedeltas(
    min_value=timedelta(seconds=1), max_value=timedelta(days=2)
)
JITTERS = unit_jitters()
POLICIES = renewal_policies()
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
    expiry minus grace minus the renewal's room (nor before the token was obtained)."""
    token = _token(issued, lifetime)
    point = refresh_point(token, policy=policy, settings=settings, jitter=jitter)
    latest = latest_refresh_point(token, policy=policy, settings=settings)
    assert point is not None and token.expiry is not None and latest is not None
    assert latest <= token.expiry - settings.expiry_grace
    low = issued + lifetime * max(0.0, policy.fraction - policy.jitter)
    high = issued + lifetime * min(1.0, policy.fraction + policy.jitter)
    assert max(issued, min(low, latest)) <= point
    assert point <= max(issued, min(high, latest))


@given(
    NOWS,
    LIFETIMES,
    POLICIES,
    st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=1)),
    JITTERS,
    JITTERS,
)
def test_refresh_points_of_one_token_lie_within_half_the_cache_ttl(
    issued: datetime,
    lifetime: timedelta,
    policy: RenewalPolicy,
    ttl: timedelta,
    one: float,
    other: float,
) -> None:
    """Two sources holding the same stored token renew at most TTL/2 apart, so the first
    renewer's stored token is still within its TTL when the last one renews."""
    settings = Settings(cache_ttl=ttl)
    token = _token(issued, lifetime)
    first = refresh_point(token, policy=policy, settings=settings, jitter=one)
    second = refresh_point(token, policy=policy, settings=settings, jitter=other)
    assert first is not None and second is not None
    assert abs(first - second) <= ttl / 2 + timedelta(microseconds=2)


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
    holding = hold(token, policy=policy, settings=settings, now=issued, jitter=jitter)
    renew_at = None if holding is None else holding.renew_at
    now = issued + later
    verdict = on_call(holding, now=now, busy=False, background=False)
    event(verdict.name)
    if verdict in (Act.USE, Act.RENEW):
        assert is_fresh(token.expiry, settings=settings, now=now)
    if verdict is Act.RENEW:
        assert renew_at is not None and now >= renew_at
    if verdict is Act.USE:
        assert renew_at is None or now < renew_at


@given(st.integers(1, 50), POLICIES, JITTERS)
def test_renewal_retry_waits_grow_and_stay_capped(
    failures: int, policy: RenewalPolicy, jitter: float
) -> None:
    """A failed renewal waits at least half its doubling backoff, at most the cap."""
    wait = renewal_retry_delay(failures=failures, policy=policy, jitter=jitter)
    full = min(policy.first_retry_seconds * 2.0 ** (failures - 1), policy.max_retry_seconds)
    assert full / 2 <= wait <= full
    assert wait == capped_backoff(
        failures, first=policy.first_retry_seconds, cap=policy.max_retry_seconds, jitter=jitter
    )


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
    held: dict[int, Holding] = field(default_factory=dict)

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
        act = on_call(held, now=self.now, busy=False, background=False)
        if act is Act.USE:
            return
        result = acquire(
            stores=(self.store(),),
            grant=self.grant(),
            settings=self.settings,
            now=self.now,
            clock=lambda: self.now,
            log=lambda _: None,
            renewing=self.policy if act is Act.RENEW else None,
        )
        token = result.unwrap()
        holding = hold(
            token,
            policy=self.policy,
            settings=self.settings,
            now=self.now,
            jitter=self.jitters[source],
        )
        assert holding is not None
        self.held[source] = holding


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
        token = fleet.held[source % len(jitters)].token
        assert is_fresh(token.expiry, settings=settings, now=fleet.now)
    note(f"requests at: {fleet.requests}")
    event(f"{len(fleet.requests)} requests")
    window = _refresh_window(lifetime, policy=policy, settings=settings)
    for earlier, later in zip(fleet.requests, fleet.requests[1:], strict=False):
        assert later - earlier >= window


@given(
    NOWS,
    LIFETIMES,
    POLICIES,
    SETTINGS,
    JITTERS,
    st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3)),
)
# A point the room moved before the band: 90 % of 5 minutes is past 270 s - 27 s.
@example(
    START,
    timedelta(minutes=5),
    RenewalPolicy(fraction=0.9, jitter=0.0),
    Settings(),
    0.5,
    timedelta(seconds=250),
)
def test_a_stored_token_is_due_once_any_source_may_renew_it_and_not_before(
    issued: datetime,
    lifetime: timedelta,
    policy: RenewalPolicy,
    settings: Settings,
    jitter: float,
    later: timedelta,
) -> None:
    """Past its refresh point (whatever the jitter), a token's stored entry is due, so a
    renewal never takes back the token it renews; before the earliest point any source
    may draw, it is not, so the entry a renewal stored serves every other renewer."""
    token = _token(issued, lifetime)
    point = refresh_point(token, policy=policy, settings=settings, jitter=jitter)
    assert point is not None and token.expiry is not None
    now = issued + later
    due = due_for_renewal(token, policy=policy, settings=settings, now=now)
    event(f"due: {due}")
    if now >= point:
        assert due
    if now < _earliest_refresh_point(token, policy=policy, settings=settings):
        assert not due


def _earliest_refresh_point(
    token: CachedToken, *, policy: RenewalPolicy, settings: Settings
) -> datetime:
    """The earliest refresh point any jitter may give `token`."""
    assert token.saved_at is not None and token.expiry is not None
    lifetime = token.expiry - token.saved_at
    earliest = token.saved_at + lifetime * policy.earliest
    cap = latest_refresh_point(token, policy=policy, settings=settings)
    assert cap is not None
    return max(token.saved_at, min(earliest, cap))


def _refresh_window(lifetime: timedelta, *, policy: RenewalPolicy, settings: Settings) -> timedelta:
    """How long a token of `lifetime` is held at least before any source renews it."""
    token = _token(START, lifetime)
    return _earliest_refresh_point(token, policy=policy, settings=settings) - START


def _latest_refresh_point(
    token: CachedToken, *, policy: RenewalPolicy, settings: Settings
) -> datetime:
    """The latest refresh point any jitter may give `token`."""
    assert token.saved_at is not None and token.expiry is not None
    lifetime = token.expiry - token.saved_at
    latest = token.saved_at + lifetime * min(1.0, policy.fraction + policy.jitter)
    cap = latest_refresh_point(token, policy=policy, settings=settings)
    assert cap is not None
    return max(token.saved_at, min(latest, cap))


# --- the shell's TokenSource, N of them on one store, the endpoint failing at times ---


@dataclass
class ShellFleet:
    """Real `TokenSource`s on a simulated clock, sharing one in-memory store and a
    token endpoint that fails while `failing` is set."""

    settings: Settings
    lifetime: timedelta
    now: datetime = START
    stored: CacheRead | None = None
    failing: bool = False
    caller: int = -1
    # (when, which source asked, whether a token came back)
    requests: list[tuple[datetime, int, bool]] = field(default_factory=list)

    def __post_init__(self) -> None:
        def read() -> CacheRead | str:
            return self.stored if self.stored is not None else "empty"

        def write(entry: CachedToken) -> Result[None, LocalError]:
            self.stored = (entry, self.now)
            return Success(None)

        def locked(
            body: Callable[[], Result[CachedToken, AcquireError]],
        ) -> Result[CachedToken, AcquireError]:
            return body()  # one caller at a time: the simulation is sequential

        def obtain(now: datetime) -> Result[CachedToken, AcquireError]:
            self.requests.append((now, self.caller, not self.failing))
            if self.failing:
                return Failure(RemoteError(message="token endpoint down", transient=True))
            return Success(
                CachedToken(
                    access_token=f"SECRET-{len(self.requests)}",
                    token_type="Bearer",
                    expiry=now + self.lifetime,
                )
            )

        self.store = Store(
            name="shared", read=read, write=write, locked=locked, drop=lambda _: Success(False)
        )
        self.grant = Grant(name="fake", obtain=obtain)

    def source(self, policy: RenewalPolicy, jitter: float) -> TokenSource:
        return TokenSource(
            stores=(self.store,),
            grant=self.grant,
            settings=self.settings,
            log=lambda _: None,
            stack_uri=None,
            close=lambda: None,
            name="simulated",
            clock=lambda: self.now,
            renewal=policy,
            jitter=lambda: jitter,
        )


@given(
    policy=POLICIES,
    lifetime=st.sampled_from([timedelta(minutes=5), timedelta(hours=1)]),
    jitters=st.lists(JITTERS, min_size=1, max_size=6),
    steps=renewal_timelines(sources=6, max_pause=timedelta(minutes=3)),
)
def test_token_sources_renew_no_earlier_than_due_and_never_fail_a_caller_while_fresh(
    policy: RenewalPolicy,
    lifetime: timedelta,
    jitters: list[float],
    steps: list[RenewalStep],
) -> None:
    """N real `TokenSource`s on one store, the token endpoint failing at arbitrary calls:
    - no token is handed out past expiry minus grace;
    - a call fails only when its source holds no fresh token (a failed renewal is silent);
    - a source holding a fresh token asks the network no earlier than that token's
      earliest refresh point, and again after a failure no sooner than half the first
      retry wait;
    - past the latest refresh point it may have drawn, with no failed renewal of that
      token, a source holding a fresh token renews it (a renewal never gets it back);
    - two tokens obtained are at least one refresh window apart (one per window, fleet-wide).
    """
    settings = Settings(cache_ttl=timedelta(days=30))
    fleet = ShellFleet(settings=settings, lifetime=lifetime)
    sources = [fleet.source(policy, jitter) for jitter in jitters]
    handed: dict[int, CachedToken] = {}
    since: dict[int, datetime] = {}  # when each source first handed out its current token
    failed_renewal: dict[int, tuple[datetime, str]] = {}
    for step in steps:
        index = step.source % len(sources)
        fleet.now += step.pause
        fleet.failing, fleet.caller = step.grant_fails, index
        before = handed.get(index)
        held_fresh = before is not None and is_fresh(
            before.expiry, settings=settings, now=fleet.now
        )
        asked = len(fleet.requests)
        result = sources[index].token_result()
        made = fleet.requests[asked:]
        match result:
            case Success(token):
                assert is_fresh(token.expiry, settings=settings, now=fleet.now)
                if held_fresh and not step.grant_fails and before is not None:
                    due = _latest_refresh_point(before, policy=policy, settings=settings)
                    settle = timedelta(seconds=policy.first_retry_seconds)
                    failed = failed_renewal.get(index, (fleet.now, ""))[1] == before.access_token
                    if fleet.now >= max(due, since[index] + settle) and not failed:
                        assert token.access_token != before.access_token
                if before is None or token.access_token != before.access_token:
                    since[index] = fleet.now
                handed[index] = token
            case Failure(error):
                note(f"source {index} failed at {fleet.now}: {error}")
                assert not held_fresh
        if held_fresh and made:
            assert before is not None and before.saved_at is not None
            assert before.expiry is not None
            assert fleet.now >= _earliest_refresh_point(before, policy=policy, settings=settings)
            previous = failed_renewal.get(index)
            if previous is not None and previous[1] == before.access_token:
                gap = (fleet.now - previous[0]).total_seconds()
                assert gap >= policy.first_retry_seconds / 2
            if not made[-1][2]:
                failed_renewal[index] = (fleet.now, before.access_token)
    note(f"requests: {fleet.requests}")
    event(f"{len(fleet.requests)} requests")
    obtained = [when for when, _, ok in fleet.requests if ok]
    window = _refresh_window(lifetime, policy=policy, settings=settings)
    for earlier, later in pairwise(obtained):
        assert later - earlier >= window


# --- 5-minute tokens, the default policy: renewals end while the token is fresh ---


class _Stepped(TokenSource):
    """A source whose background step the test plays on its clock, not a thread."""

    def _start_renewer(self) -> None:
        pass


@settings(max_examples=40)
@given(
    jitters=st.lists(JITTERS, min_size=1, max_size=8),
    latency=st.sampled_from([0.4, 10.0]) | st.floats(min_value=0.0, max_value=10.0),
    background=st.booleans(),
)
def test_five_minute_tokens_are_renewed_before_they_stop_being_fresh(
    jitters: list[float], latency: float, background: bool
) -> None:
    """Formance's 5-minute tokens, the default policy with the default request deadline
    (10 s): every renewal starts while the held token is fresh and ends, its request
    taking up to that deadline, before the token stops being fresh. So in the background
    no call waits, and on call only the renewing caller does (the others use the held
    token meanwhile). A call once a simulated second for 20 minutes, jitter drawn anew
    for each token."""
    now = [START]
    draws = iter(jitters * 100)
    renewals: list[tuple[datetime, datetime, datetime]] = []  # start, end, stale moment
    obtained: list[datetime] = []

    def obtain(at: datetime) -> Result[CachedToken, AcquireError]:
        obtained.append(at)
        now[0] += timedelta(seconds=latency)
        return Success(
            CachedToken(
                access_token="SECRET", token_type="Bearer", expiry=at + timedelta(minutes=5)
            )
        )

    source = _Stepped(
        stores=(),
        grant=Grant(name="sim", obtain=obtain),
        settings=Settings(),
        log=lambda _: None,
        stack_uri=None,
        close=lambda: None,
        name="sim",
        clock=lambda: now[0],
        renewal=RenewalPolicy(room_seconds=10.0),  # what the constructors give it
        renew_in_background=background,
        jitter=lambda: next(draws),
    )
    source.token_result()
    wake = now[0]
    end = START + timedelta(minutes=20)
    tick = now[0]
    while tick < end:
        tick += timedelta(seconds=1)
        now[0] = max(now[0], tick)
        holding = source._holding
        assert holding is not None
        asked = len(obtained)
        if background and now[0] >= wake:
            delay = source._renewal_step()
            assert delay is not None
            wake = now[0] + timedelta(seconds=delay)
        else:
            source.token_result()
        if len(obtained) > asked:
            renewals.append((obtained[-1], now[0], holding.stale_at))
    event(f"{len(renewals)} renewals")
    assert len(renewals) >= 4
    for started, ended, stale_at in renewals:
        assert started < stale_at and ended < stale_at
