"""Renewing a token before it expires, not at expiry (issue 14).

Theory of operation
-------------------
A long-lived process holds a token. Formance's stack tokens live 5 minutes
(an RFC 7523 exchange) or an hour (client credentials): a steady caller
that renews only when its token expires stalls on every expiry, and a
fleet that started together renews in lockstep. So each held token gets a
*refresh point*: a fraction of its lifetime (80 %), moved by a jitter
drawn once per token (±10 % of the lifetime), and never later than the
moment it stops being fresh (expiry minus grace). With a store, the jitter
band is also at most half the cache TTL wide: the processes of a fleet then
all renew within a TTL of the first renewer, whose stored token they can
still take (a 1-hour token's ±6 minutes would otherwise outlast the default
5-minute TTL, and each late renewer would ask the network again).

    before the refresh point   -> USE it
    past it, still fresh       -> USE it, and RENEW in the background
    no longer fresh            -> ACQUIRE (the caller waits: there is no
                                  token to give meanwhile)

A renewal runs the cache workflow, with one change: a stored entry past
the *earliest* refresh point any process could have drawn counts as due,
so the process that renews first asks the network once and every other
process (of this host or, through a shared store, of the fleet) finds the
new token under the lock. A renewal that fails is tried again after a
capped, growing wait; the held token stays in use while it is fresh, so a
caller never sees a renewal's failure before the token actually expires.
"""

from __future__ import annotations

from ._decisions import is_fresh
from ._record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import ClassVar

    from ._time import datetime
    from ._types import CachedToken, Settings

__all__ = [
    "HeldVerdict",
    "RenewalPolicy",
    "due_for_renewal",
    "judge_held",
    "refresh_point",
    "renewal_retry_delay",
]


class RenewalPolicy(Record):
    """Where in a token's lifetime it is renewed, and how a failed renewal is retried."""

    fraction: float = 0.8
    jitter: float = 0.1  # plus or minus, as a fraction of the lifetime
    first_retry_seconds: float = 1.0
    max_retry_seconds: float = 60.0

    @property
    def earliest(self) -> float:
        """The earliest fraction any process may renew at."""
        return max(0.0, self.fraction - self.jitter)


class HeldVerdict(Record):
    """What to do with a held token; the members are class attributes (`HeldVerdict.USE`...)."""

    name: str

    USE: ClassVar[HeldVerdict]
    RENEW: ClassVar[HeldVerdict]
    ACQUIRE: ClassVar[HeldVerdict]


HeldVerdict.USE = HeldVerdict(name="USE")
HeldVerdict.RENEW = HeldVerdict(name="RENEW")
HeldVerdict.ACQUIRE = HeldVerdict(name="ACQUIRE")


def _issued_at(token: CachedToken) -> datetime | None:
    return token.saved_at


def refresh_point(
    token: CachedToken, *, policy: RenewalPolicy, settings: Settings, jitter: float
) -> datetime | None:
    """When to renew `token`: at `fraction` of its lifetime, moved by `jitter` (a
    number in [0, 1) the shell draws once per token) within ±`policy.jitter` of the
    lifetime and a band at most half the cache TTL wide, never after it stops being
    fresh. None when it cannot be known (no expiry, or no time it was obtained)."""
    issued, expiry = _issued_at(token), token.expiry
    if issued is None or expiry is None or expiry <= issued:
        return None
    lifetime = expiry - issued
    spread = policy.jitter
    if settings.disk_cache_enabled:
        spread = min(spread, settings.cache_ttl / lifetime / 4)  # band <= TTL / 2
    shift = spread * (2 * jitter - 1)  # in [-spread, +spread)
    point = issued + lifetime * min(1.0, max(0.0, policy.fraction + shift))
    return min(point, expiry - settings.expiry_grace)


def judge_held(
    token: CachedToken, *, renew_at: datetime | None, settings: Settings, now: datetime
) -> HeldVerdict:
    """USE before the refresh point, RENEW past it while fresh, ACQUIRE once not fresh."""
    if not is_fresh(token.expiry, settings=settings, now=now):
        return HeldVerdict.ACQUIRE
    if renew_at is not None and now >= renew_at:
        return HeldVerdict.RENEW
    return HeldVerdict.USE


def due_for_renewal(
    entry: CachedToken, *, policy: RenewalPolicy, settings: Settings, now: datetime
) -> bool:
    """During a renewal, whether a stored entry is as old as the token being renewed:
    past the earliest refresh point any process could draw. A renewal takes no
    such entry, so the first renewer asks the network and the others find its token."""
    issued, expiry = _issued_at(entry), entry.expiry
    if issued is None or expiry is None or expiry <= issued:
        return False
    earliest = issued + (expiry - issued) * policy.earliest
    return now >= min(earliest, expiry - settings.expiry_grace)


def renewal_retry_delay(*, failures: int, policy: RenewalPolicy, jitter: float) -> float:
    """Seconds to wait after the `failures`-th failed renewal in a row: doubling from
    `first_retry_seconds`, capped, with "equal jitter" (at least half the wait)."""
    wait = min(policy.first_retry_seconds * 2.0 ** max(0, failures - 1), policy.max_retry_seconds)
    return wait * (0.5 + jitter / 2)
