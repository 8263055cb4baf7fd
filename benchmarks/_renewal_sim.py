"""Renewal before expiry on a simulated clock: no wall-clock timing.

Real `TokenSource`s, each with its own memory, share one in-memory store (as
processes share a cache dir) and a simulated token endpoint that issues
5-minute tokens, as formancehq/auth does for the RFC 7523 exchange
(`ExpirationToken3Legged`). Each source calls `token_result()` once a
simulated second for an hour. A request takes `latency` simulated seconds
(a failing one `timeout`), and the clock moves by that much inside the call
that made it: that call *waited* that long. Three ways to renew:

- at expiry: `renewal=None`, a token is replaced once it is no longer fresh;
- early, on call: the default, the first call past the refresh point renews;
- early, background: the source's background step (`_renewal_step`, what its
  daemon thread runs) is played at the moments it asks for, on the same clock.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from returns.result import Failure, Result, Success
from stacktoken import RenewalPolicy, TokenSource
from stacktoken.core._cache import CacheRead, Grant, Store
from stacktoken.core._errors import AcquireError, LocalError, RemoteError
from stacktoken.core._types import CachedToken, Settings

__all__ = ["MODES", "Outcome", "simulate"]

START = datetime(2026, 2, 20, 12, tzinfo=UTC)
MODES = ("at expiry", "early, on call", "early, background")


@dataclass
class Outcome:
    requests: int = 0  # token requests the endpoint received (failed ones included)
    waited: int = 0  # calls that waited for a request
    worst_wait: float = 0.0  # simulated seconds, the longest a call waited
    failed: int = 0  # calls that got an error instead of a token
    calls: int = 0


@dataclass
class _World:
    lifetime: timedelta
    latency: float
    timeout: float
    down: tuple[timedelta, timedelta] | None  # the endpoint fails in [start, end)
    now: datetime = START
    stored: CacheRead | None = None
    outcome: Outcome = field(default_factory=Outcome)

    def store(self) -> Store:
        def read() -> CacheRead | str:
            return self.stored if self.stored is not None else "empty"

        def write(entry: CachedToken) -> Result[None, LocalError]:
            self.stored = (entry, self.now)
            return Success(None)

        def locked(
            body: Callable[[], Result[CachedToken, AcquireError]],
        ) -> Result[CachedToken, AcquireError]:
            return body()  # sequential: one caller at a time

        return Store(
            name="sim", read=read, write=write, locked=locked, drop=lambda _: Success(False)
        )

    def grant(self) -> Grant:
        def obtain(now: datetime) -> Result[CachedToken, AcquireError]:
            self.outcome.requests += 1
            elapsed = now - START
            if self.down is not None and self.down[0] <= elapsed < self.down[1]:
                self.now += timedelta(seconds=self.timeout)
                return Failure(RemoteError(message="token endpoint down", transient=True))
            self.now += timedelta(seconds=self.latency)
            return Success(
                CachedToken(
                    access_token=f"t{self.outcome.requests}",
                    token_type="Bearer",
                    expiry=now + self.lifetime,
                )
            )

        return Grant(name="sim", obtain=obtain)


class _Stepped(TokenSource):
    """A source whose background step is played by the simulation, not by a thread."""

    def _start_renewer(self) -> None:
        pass


def simulate(
    mode: str,
    *,
    sources: int = 1,
    hours: float = 1.0,
    lifetime: timedelta = timedelta(minutes=5),
    latency: float = 0.2,
    timeout: float = 10.0,
    down: tuple[timedelta, timedelta] | None = None,
    seed: int = 14,
) -> Outcome:
    """`sources` sources calling once a second each, for `hours`, renewing as `mode` says."""
    world = _World(lifetime=lifetime, latency=latency, timeout=timeout, down=down)
    draw = random.Random(seed).random
    store, grant = world.store(), world.grant()
    background = mode == "early, background"
    made = [
        (_Stepped if background else TokenSource)(
            stores=(store,),
            grant=grant,
            settings=Settings(),
            log=lambda _: None,
            stack_uri=None,
            close=lambda: None,
            name=f"sim {index}",
            clock=lambda: world.now,
            # What the constructors give a source: room for the HTTP timeout (10 s).
            renewal=None if mode == "at expiry" else RenewalPolicy(room_seconds=10.0),
            renew_in_background=background,
            jitter=draw,
        )
        for index in range(sources)
    ]
    wake = [START] * sources  # when each background step asked to run next
    end = START + timedelta(hours=hours)
    tick = START
    while tick < end:
        for index, source in enumerate(made):
            at = tick + timedelta(seconds=index / sources)
            world.now = max(world.now, at)
            if background and world.now >= wake[index]:
                delay = source._renewal_step()  # the thread's work; no caller waits on it
                wake[index] = world.now + timedelta(seconds=1 if delay is None else delay)
                world.now = max(world.now, at)
            before = world.now
            result = source.token_result()
            waited = (world.now - before).total_seconds()
            outcome = world.outcome
            outcome.calls += 1
            if waited > 0:
                outcome.waited += 1
                outcome.worst_wait = max(outcome.worst_wait, waited)
            if isinstance(result, Failure):
                outcome.failed += 1
        tick += timedelta(seconds=1)
    return world.outcome
