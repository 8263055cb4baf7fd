"""The held token: what a token source does with it, call by call (docs/design.md §4).

Theory of operation
-------------------
A source holds at most one token, as a `Holding`: the token, its refresh
point (`_renewal`; None when nothing renews it before it goes stale), the
moment it stops being fresh, and, after failed renewals, how many failed in
a row and when the next may start. `TokenSource` (shell) keeps the current
`Holding` in one attribute and carries out what these functions decide; the
renewal thread only asks `next_wake` and sleeps.

A call at `now` (`on_call`):

    nothing held, or held but stale             -> ACQUIRE (wait for the lock)
    held, before its refresh point              -> USE
    held, past it, still fresh, and
        a background thread renews it           -> USE
        a failed renewal's wait is running      -> USE
        another caller holds the lock (busy)    -> USE
        else                                    -> RENEW (this caller, once)

Transitions:

    hold(token)          a new Holding: refresh point drawn once, failures cleared
                         (None: the token cannot be held, it has no expiry or is
                         already inside the grace; the shell keeps what it had)
    on_failed(holding)   one more failure; the next try after `capped_backoff`
    (invalidate)         no Holding

The background thread (`next_wake`): nothing held -> idle (None); a failed
renewal's wait running -> sleep to its end; before the refresh point ->
sleep to it; else 0 (renew now).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from ._record import replace
from ._renewal import RenewalPolicy, refresh_point, renewal_retry_delay, too_short
from ._types import CachedToken, Settings

__all__ = ["Act", "Holding", "hold", "next_wake", "on_call", "on_failed", "usable"]


class Act(Enum):
    """What a call does with the held token."""

    USE = "use"
    RENEW = "renew"
    ACQUIRE = "acquire"


@dataclass(frozen=True, slots=True, kw_only=True)
class Holding:
    """The token a source holds, and where it stands in its renewal."""

    token: CachedToken
    renew_at: datetime | None  # None: renewed only once stale
    stale_at: datetime  # expiry minus grace: not fresh from then on
    short: bool = False  # too short to leave room for its renewal: renewed at once
    failures: int = 0  # failed renewals in a row
    retry_at: datetime | None = None  # no renewal before this, after a failure


def hold(
    token: CachedToken,
    *,
    policy: RenewalPolicy | None,
    settings: Settings,
    now: datetime,
    jitter: float,
) -> Holding | None:
    """A token just obtained (or found), held from `now`; None if it cannot be held."""
    if token.expiry is None:
        return None
    stale_at = token.expiry - settings.expiry_grace
    if now >= stale_at:
        return None  # handed out once, never reused
    if policy is None:
        return Holding(token=token, renew_at=None, stale_at=stale_at)
    # An entry fctl wrote has no savedAt: its lifetime counts from now.
    basis = token if token.saved_at is not None else replace(token, saved_at=now)
    point = refresh_point(basis, policy=policy, settings=settings, jitter=jitter)
    # Never a renewal right after the last (a tiny fraction, a short-lived token).
    floor = now + timedelta(seconds=policy.first_retry_seconds)
    renew_at = stale_at if point is None else min(max(point, floor), stale_at)
    short = too_short(basis, policy=policy, settings=settings)
    return Holding(token=token, renew_at=renew_at, stale_at=stale_at, short=short)


def on_call(holding: Holding | None, *, now: datetime, busy: bool, background: bool) -> Act:
    """What a call at `now` does (see the table above). `busy`: another caller holds
    the source's lock; `background`: a renewal thread runs for this source."""
    if holding is None or now >= holding.stale_at:
        return Act.ACQUIRE
    if holding.renew_at is None or now < holding.renew_at:
        return Act.USE
    if background or busy or (holding.retry_at is not None and now < holding.retry_at):
        return Act.USE
    return Act.RENEW


def usable(holding: Holding | None, *, now: datetime) -> CachedToken | None:
    """The held token while it is fresh, past its refresh point or not."""
    if holding is None or now >= holding.stale_at:
        return None
    return holding.token


def on_failed(
    holding: Holding, *, policy: RenewalPolicy | None, now: datetime, jitter: float
) -> tuple[Holding, float]:
    """A renewal ended in failure at `now`: the holding with one more failure, and the
    seconds until the next try (doubling, capped, equal jitter)."""
    failures = holding.failures + 1
    wait = renewal_retry_delay(failures=failures, policy=policy or RenewalPolicy(), jitter=jitter)
    retry_at = now + timedelta(seconds=wait)
    return dataclasses.replace(holding, failures=failures, retry_at=retry_at), wait


def next_wake(holding: Holding | None, *, now: datetime) -> float | None:
    """Seconds until the renewal thread has something to do (0: renew now), or None
    when it has nothing to do until it is poked (no token held, none to renew)."""
    if holding is None or holding.renew_at is None:
        return None
    if holding.retry_at is not None and now < holding.retry_at:
        return (holding.retry_at - now).total_seconds()
    if now < holding.renew_at:
        return (holding.renew_at - now).total_seconds()
    return 0.0
