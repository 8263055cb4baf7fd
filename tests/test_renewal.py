"""Renewal before expiry, in the shell: `TokenSource` against the loopback
stack's client-credentials grant, on a simulated clock where the source takes one.

The stack issues 1-hour tokens; with `RenewalPolicy(jitter=0.0)` the refresh point
is 48 minutes after a token was obtained, and it stops being fresh 30 s (the
grace) before its hour is up.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest
from oauth_servers import (
    CLIENT_CREDENTIALS_GRANT_TYPE,
    Fault,
    StackAuthServer,
    membership_server,
    stack_server,
)
from redis_server import RedisServer, redis_server
from stacktoken import FailureKnobs, RedisStore, RemoteServerError, RenewalPolicy, TokenSource
from stacktoken.core._types import EXPIRY_GRACE

__all__ = ["membership_server", "redis_server", "stack_server"]

CLIENT = "svc-renewal"
SECRET = "renewal-secret-0123456789abcdef"
LIFETIME = timedelta(hours=1)
POINT = LIFETIME * 0.8
NO_JITTER = RenewalPolicy(jitter=0.0)


class Clock:
    """A simulated clock: time moves only when the test says so."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> None:
        self.now += by


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)


@pytest.fixture
def stack(stack_server: StackAuthServer) -> StackAuthServer:
    stack_server.add_client(CLIENT, SECRET)
    assert stack_server.expires_in == int(LIFETIME.total_seconds())
    return stack_server


def requests(stack: StackAuthServer) -> int:
    return stack.count_grant(CLIENT_CREDENTIALS_GRANT_TYPE)


def source_of(
    stack: StackAuthServer,
    cache_dir: Path,
    *,
    clock: Clock | None = None,
    renewal: RenewalPolicy | None = NO_JITTER,
    background: bool = False,
    cache_ttl: str | None = None,
    log: Log | None = None,
) -> TokenSource:
    if clock is None:
        return TokenSource.from_client_credentials(
            stack_uri=stack.stack_uri,
            client_id=CLIENT,
            client_secret=SECRET,
            cache_dir=cache_dir,
            cache_ttl=cache_ttl,
            renewal=renewal,
            renew_in_background=background,
            log=log,
            environ={},
        )
    return TokenSource.from_client_credentials(
        stack_uri=stack.stack_uri,
        client_id=CLIENT,
        client_secret=SECRET,
        cache_dir=cache_dir,
        cache_ttl=cache_ttl,
        renewal=renewal,
        renew_in_background=background,
        log=log,
        environ={},
        clock=clock,
    )


def renewal_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("stacktoken-renewal")]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def source(stack: StackAuthServer, tmp_path: Path, clock: Clock) -> Iterator[TokenSource]:
    with source_of(stack, tmp_path, clock=clock) as opened:
        yield opened


# -- renewal on call -------------------------------------------------------------


def test_renewal_call_after_refresh_point_renews_once_while_old_token_fresh(
    stack: StackAuthServer, source: TokenSource, clock: Clock
) -> None:
    held = source.token_result().unwrap()
    first = held.access_token
    clock.advance(POINT - timedelta(seconds=1))
    assert source.token() == first
    assert requests(stack) == 1
    clock.advance(timedelta(seconds=2))
    assert held.expiry is not None and held.expiry - clock.now > timedelta(minutes=11)
    renewed = source.token()  # the old token is fresh for 11 more minutes
    assert renewed != first
    assert requests(stack) == 2
    assert stack.issued_token(renewed) is not None
    for _ in range(5):
        clock.advance(timedelta(minutes=1))
        assert source.token() == renewed
    assert requests(stack) == 2


def test_renewal_none_renews_only_once_the_token_is_stale(
    stack: StackAuthServer, tmp_path: Path, clock: Clock
) -> None:
    with source_of(stack, tmp_path, clock=clock, renewal=None) as source:
        first = source.token()
        clock.advance(LIFETIME - EXPIRY_GRACE - timedelta(seconds=1))
        assert source.token() == first
        assert requests(stack) == 1
        clock.advance(timedelta(seconds=1))
        assert source.token() != first
        assert requests(stack) == 2


def test_renewal_real_clock_fast_path_ends_at_the_refresh_point(
    stack: StackAuthServer, tmp_path: Path
) -> None:
    """On the system clock, `token()`'s lock-free path ends at the refresh point: with a
    point at once (fraction 0, no minimum gap), the very next call renews."""
    now = RenewalPolicy(fraction=0.0, jitter=0.0, first_retry_seconds=0.0)
    with source_of(stack, tmp_path, renewal=now) as source:
        first = source.token()
        second = source.token()
    assert second != first
    assert requests(stack) == 2


def test_renewal_real_clock_default_policy_keeps_the_token(
    stack: StackAuthServer, tmp_path: Path
) -> None:
    with source_of(stack, tmp_path, renewal=RenewalPolicy()) as source:
        assert source.token() == source.token()
    assert requests(stack) == 1


# -- a failing renewal -----------------------------------------------------------


def test_renewal_failing_keeps_serving_the_old_token_until_expiry_minus_grace(
    stack: StackAuthServer, source: TokenSource, clock: Clock
) -> None:
    first = source.token()
    stack.inject(stack.TOKEN, *[Fault.status(500) for _ in range(200)])
    clock.advance(POINT)
    stale_at = clock.now - POINT + LIFETIME - EXPIRY_GRACE
    calls = 0
    while clock.now < stale_at:
        assert source.token() == first  # no error while the old token is fresh
        calls += 1
        clock.advance(timedelta(seconds=5))
    failed = requests(stack) - 1
    assert 1 <= failed < calls  # renewals were tried, with waits between them
    with pytest.raises(RemoteServerError):
        source.token()
    stack.clear_faults()
    # The endpoint's failures are remembered for a backoff (docs/design.md §15),
    # at most the knob's cap: once it is over, the next call gets a token.
    clock.advance(timedelta(seconds=FailureKnobs().cap))
    assert source.token() not in (first, None)


def test_renewal_failing_backoff_doubles_on_the_simulated_clock(
    stack: StackAuthServer, tmp_path: Path, clock: Clock
) -> None:
    """Attempt k+1 comes between half and all of min(10 s * 2^(k-1), 80 s) after attempt
    k (equal jitter), seen through one call per simulated second."""
    policy = RenewalPolicy(jitter=0.0, first_retry_seconds=10.0, max_retry_seconds=80.0)
    with source_of(stack, tmp_path, clock=clock, renewal=policy) as source:
        first = source.token()
        stack.inject(stack.TOKEN, *[Fault.status(500) for _ in range(100)])
        clock.advance(POINT)
        attempts: list[datetime] = []
        for _ in range(600):
            before = requests(stack)
            assert source.token() == first
            if requests(stack) > before:
                attempts.append(clock.now)
            clock.advance(timedelta(seconds=1))
    assert len(attempts) >= 6
    for k, (earlier, later) in enumerate(pairwise(attempts), start=1):
        full = min(10.0 * 2 ** (k - 1), 80.0)
        gap = (later - earlier).total_seconds()
        assert full / 2 <= gap <= full + 1, (k, gap)


# -- two processes on one cache dir ------------------------------------------------


def test_renewal_two_sources_on_one_cache_dir_make_one_request(
    stack: StackAuthServer, tmp_path: Path, clock: Clock
) -> None:
    """Two sources (two processes' memories) on one cache dir whose TTL outlasts the
    refresh point: the first to renew asks the network, and passes over the stored
    entry as old as its token; the second finds the first one's new entry."""
    with (
        source_of(stack, tmp_path, clock=clock, cache_ttl="2h") as one,
        source_of(stack, tmp_path, clock=clock, cache_ttl="2h") as two,
    ):
        first = one.token()
        assert two.token() == first
        assert requests(stack) == 1
        clock.advance(POINT + timedelta(seconds=1))
        renewed = one.token()
        assert renewed != first
        clock.advance(timedelta(seconds=1))
        assert two.token() == renewed
        assert requests(stack) == 2


def test_renewal_two_sources_without_the_pass_over_would_keep_the_old_entry(
    stack: StackAuthServer, tmp_path: Path, clock: Clock
) -> None:
    """The stored entry is still within its TTL at the refresh point: the renewal must
    not take it back (it would be the very token being renewed)."""
    with source_of(stack, tmp_path, clock=clock, cache_ttl="2h") as one:
        first = one.token()
        clock.advance(POINT + timedelta(seconds=1))
        assert one.token() != first
    assert requests(stack) == 2


def test_renewal_two_hosts_on_one_redis_store_make_one_request(
    stack: StackAuthServer, tmp_path: Path, clock: Clock, redis_server: RedisServer
) -> None:
    """Two hosts (a cache dir each) sharing Redis, the default 5-minute TTL: at the
    refresh point each host's own file is long past its TTL, and the second host takes
    the token the first one's renewal stored in Redis."""

    def host(name: str) -> TokenSource:
        return TokenSource.from_client_credentials(
            stack_uri=stack.stack_uri,
            client_id=CLIENT,
            client_secret=SECRET,
            cache_dir=tmp_path / name,
            store=RedisStore(redis_server.url),
            renewal=NO_JITTER,
            environ={},
            clock=clock,
        )

    with host("a") as one, host("b") as two:
        first = one.token()
        assert two.token() == first
        clock.advance(POINT + timedelta(seconds=1))
        renewed = one.token()
        clock.advance(timedelta(seconds=1))
        assert two.token() == renewed != first
    assert requests(stack) == 2


# -- background renewal ----------------------------------------------------------


def test_renewal_no_thread_unless_asked(stack: StackAuthServer, tmp_path: Path) -> None:
    with source_of(stack, tmp_path) as source:
        source.token()
        assert renewal_threads() == []


def test_renewal_background_renews_without_a_call_and_stops_on_close(
    stack: StackAuthServer, tmp_path: Path
) -> None:
    """A refresh point about 2 s after the token (fraction 0.0005 of an hour): the
    thread asks the stack for a new token while no call is made, and `close()` ends it."""
    soon = RenewalPolicy(fraction=0.0005, jitter=0.0)
    renewed = threading.Event()

    def log(line: str) -> None:
        if line == "token renewed before its expiry":
            renewed.set()

    source = TokenSource.from_client_credentials(
        stack_uri=stack.stack_uri,
        client_id=CLIENT,
        client_secret=SECRET,
        cache_dir=tmp_path,
        renewal=soon,
        renew_in_background=True,
        log=log,
        environ={},
    )
    try:
        assert renewal_threads() == []  # started with the first token, not before
        first = source.token()
        assert len(renewal_threads()) == 1
        assert renewed.wait(timeout=15.0)
        issued = [t.access_token for t in stack.issued_tokens]
        assert issued[0] == first and len(issued) >= 2
        latest = source.token()
        assert latest != first and latest in issued
    finally:
        source.close()
    assert renewal_threads() == []


def test_renewal_background_close_wakes_a_sleeping_thread(
    stack: StackAuthServer, tmp_path: Path
) -> None:
    """The thread sleeps until a refresh point 48 minutes away; `close()` ends it at once."""
    source = source_of(stack, tmp_path, background=True)
    source.token()
    assert len(renewal_threads()) == 1
    source.close()
    assert renewal_threads() == []
    assert requests(stack) == 1
    source.token()  # still usable after close, without a thread
    assert renewal_threads() == []


# -- async callers ------------------------------------------------------------------


def test_renewal_async_tasks_keep_the_held_token_while_one_renewal_is_held(
    stack: StackAuthServer, source: TokenSource, clock: Clock
) -> None:
    """Past the refresh point, the first task's flight renews; while the stack holds that
    request, other tasks get the fresh held token at once, and none makes a request."""
    handled, released = threading.Event(), threading.Event()

    async def scenario() -> tuple[str, str, list[str], str]:
        first = await source.token_async()
        clock.advance(POINT + timedelta(seconds=1))
        stack.inject(stack.TOKEN, Fault.hold(handled, released))
        renewing = asyncio.create_task(source.token_async())
        assert await asyncio.to_thread(handled.wait, 10.0)
        others = await asyncio.wait_for(
            asyncio.gather(*(source.token_async() for _ in range(20))), timeout=10.0
        )
        assert source.cached_token() == first
        released.set()
        renewed = await asyncio.wait_for(renewing, timeout=10.0)
        return first, renewed, list(others), await source.token_async()

    try:
        first, renewed, others, after = asyncio.run(scenario())
    finally:
        released.set()
    assert others == [first] * 20
    assert renewed != first and after == renewed
    assert requests(stack) == 2


def test_renewal_async_failing_renewal_keeps_the_old_token(
    stack: StackAuthServer, source: TokenSource, clock: Clock
) -> None:
    async def scenario() -> tuple[str, list[str]]:
        first = await source.token_async()
        stack.inject(stack.TOKEN, *[Fault.status(500) for _ in range(20)])
        clock.advance(POINT + timedelta(seconds=1))
        seen = []
        for _ in range(5):
            seen.append(await source.token_async())
            clock.advance(timedelta(seconds=1))
        return first, seen

    first, seen = asyncio.run(scenario())
    assert seen == [first] * 5
    assert 2 <= requests(stack) <= 4  # tried, then waiting between tries


def test_renewal_background_failure_is_retried_and_callers_keep_the_old_token(
    stack: StackAuthServer, tmp_path: Path
) -> None:
    """The thread's first two renewals fail (500): callers in between get the held token
    with no error, and the thread tries again until a renewal succeeds."""
    soon = RenewalPolicy(fraction=0.0005, jitter=0.0, first_retry_seconds=0.5)
    renewed = threading.Event()
    lines: list[str] = []

    def log(line: str) -> None:
        lines.append(line)
        if line == "token renewed before its expiry":
            renewed.set()

    source = TokenSource.from_client_credentials(
        stack_uri=stack.stack_uri,
        client_id=CLIENT,
        client_secret=SECRET,
        cache_dir=tmp_path,
        renewal=soon,
        renew_in_background=True,
        log=log,
        environ={},
    )
    handled, released = threading.Event(), threading.Event()
    try:
        first = source.token()
        stack.inject(
            stack.TOKEN, Fault.status(500), Fault.status(500), Fault.hold(handled, released)
        )
        assert stack.wait_for_count(stack.TOKEN, 2, timeout=15.0)  # the first renewal failed
        assert source.token() == first
        assert handled.wait(timeout=15.0)  # the third renewal is in, its answer held
        assert source.token() == first
        released.set()
        assert renewed.wait(timeout=15.0)
        assert requests(stack) >= 4  # the first token, two failures, the renewal (and maybe more)
        assert source.token() != first
        failures = [line for line in lines if line.startswith("renewal failed")]
        # Two renewals failed at the server; a try inside the endpoint's remembered
        # backoff (docs/design.md §15) fails without a request, and is not one of them.
        asked = [line for line in failures if "not asking again" not in line]
        assert len(asked) == 2, failures
        assert all(first not in line and SECRET not in line for line in lines)
    finally:
        released.set()
        source.close()
    assert renewal_threads() == []


# -- the refresh point leaves room for the renewal (real clock) ----------------------

SHORT_CLIENT = "svc-renewal-45s"
CALLERS = 4


@pytest.mark.parametrize("background", [True, False], ids=["background", "on call"])
def test_renewal_real_clock_default_policy_no_caller_waits_for_a_renewal_while_fresh(
    stack: StackAuthServer, tmp_path: Path, background: bool
) -> None:
    """45-second tokens, the default policy, 4 threads calling `token()` every 50 ms.
    The renewal's request is held at the stack (by construction, not by a delay):
    while it is, every caller (background) or every caller but the renewing one (on
    call) keeps getting the held token, which is still fresh: its refresh point left
    the request's deadline (10 s) of its 15 usable seconds for the renewal."""
    stack.add_client(SHORT_CLIENT, SECRET, expires_in=45)
    renewed = threading.Event()

    def log(line: str) -> None:
        if line == "token renewed before its expiry":
            renewed.set()

    source = TokenSource.from_client_credentials(
        stack_uri=stack.stack_uri,
        client_id=SHORT_CLIENT,
        client_secret=SECRET,
        cache_dir=tmp_path,
        renew_in_background=background,
        log=log,
        environ={},
    )
    handled, released, stop = threading.Event(), threading.Event(), threading.Event()
    progress = threading.Condition()
    after_hold = [0] * CALLERS  # calls each thread finished while the renewal was held
    seen: list[set[str]] = [set() for _ in range(CALLERS)]

    def caller(index: int) -> None:
        while not stop.is_set():
            seen[index].add(source.token())
            with progress:
                if handled.is_set() and not released.is_set():
                    after_hold[index] += 1
                progress.notify_all()
            stop.wait(0.05)

    waiting = 0 if background else 1
    with source:
        first = source.token()
        stack.inject(stack.TOKEN, Fault.hold(handled, released))
        threads = [threading.Thread(target=caller, args=(i,)) for i in range(CALLERS)]
        for thread in threads:
            thread.start()
        try:
            assert handled.wait(timeout=30.0), "no renewal started"
            with progress:
                assert progress.wait_for(
                    lambda: sum(done >= 3 for done in after_hold) >= CALLERS - waiting, 10.0
                ), after_hold
                stuck = [done for done in after_hold if done == 0]
            assert len(stuck) == waiting, after_hold
        finally:
            released.set()
            assert renewed.wait(timeout=15.0)
            requests_made = requests(stack)
            stop.set()
            for thread in threads:
                thread.join(timeout=15.0)
        assert not any(thread.is_alive() for thread in threads)
        latest = source.token()
    assert latest != first
    assert set().union(*seen) <= {first, latest}
    assert requests_made == 2  # the first token and its one renewal
