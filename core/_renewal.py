"""Where in a held token's lifetime it is renewed (docs/design.md §4).

Theory of operation
-------------------
A long-lived process holds a token. Formance's stack tokens live 5 minutes
(an RFC 7523 exchange) or an hour (client credentials): a steady caller
that renews only when its token expires stalls on every expiry, and a
fleet that started together renews in lockstep. So each held token gets a
*refresh point*: a fraction of its lifetime (80 %), moved by a jitter
drawn once per token (±10 % of the lifetime). With a store, the jitter band
is also at most half the cache TTL wide: the processes of a fleet then all
renew within a TTL of the first renewer, whose stored token they can still
take (a 1-hour token's ±6 minutes would otherwise outlast the default
5-minute TTL, and each late renewer would ask the network again).

The point always lies inside the token's *usable* lifetime (issue time to
expiry minus grace) with *room* left for the renewal itself: at least the
request's deadline, and at least a fraction of the usable time. A renewal
that started at the end of freshness would leave every caller waiting for
it. A token too short to leave that room is renewed at once.

    issued ........ point ....... latest | room | grace | expiry
                    (band)               ^ expiry - grace - room

A renewal runs the cache workflow, with one change: a stored entry past
the *earliest* refresh point any process could have drawn counts as due,
so the process that renews first asks the network once and every other
process (of this host or, through a shared store, of the fleet) finds the
new token under the lock. What a source does with its held token, call by
call, is `_holding`'s machine.
"""

from __future__ import annotations

from ._backoff import capped_backoff
from ._record import Record
from ._time import timedelta

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._time import datetime
    from ._types import CachedToken, Settings

__all__ = [
    "RenewalPolicy",
    "due_for_renewal",
    "latest_refresh_point",
    "refresh_point",
    "renewal_retry_delay",
    "too_short",
]


class RenewalPolicy(Record):
    """Where in a token's lifetime it is renewed, and how a failed renewal is retried.

    `room`: the fraction of the usable lifetime kept free for the renewal;
    `room_seconds`: at least that many seconds (the request's deadline; None:
    the source's HTTP timeout, or none for a source built without HTTP).
    """

    fraction: float = 0.8
    jitter: float = 0.1  # plus or minus, as a fraction of the lifetime
    first_retry_seconds: float = 1.0
    max_retry_seconds: float = 60.0
    room: float = 0.1
    room_seconds: float | None = None

    @property
    def earliest(self) -> float:
        """The earliest fraction any process may renew at (before the room's cap)."""
        return max(0.0, self.fraction - self.jitter)


def _span(token: CachedToken) -> tuple[datetime, datetime] | None:
    issued, expiry = token.saved_at, token.expiry
    if issued is None or expiry is None or expiry <= issued:
        return None
    return issued, expiry


def latest_refresh_point(
    token: CachedToken, *, policy: RenewalPolicy, settings: Settings
) -> datetime | None:
    """`expiry - grace - room`: the last moment a renewal leaves itself its room.
    Before the token's issue time when the token is too short to leave it."""
    span = _span(token)
    if span is None:
        return None
    issued, expiry = span
    end = expiry - settings.expiry_grace
    room = max(end - issued, timedelta(0)) * policy.room
    if policy.room_seconds is not None:
        room = max(room, timedelta(seconds=policy.room_seconds))
    return end - room


def refresh_point(
    token: CachedToken, *, policy: RenewalPolicy, settings: Settings, jitter: float
) -> datetime | None:
    """When to renew `token`: at `fraction` of its lifetime, moved by `jitter` (a
    number in [0, 1) the shell draws once per token) within ±`policy.jitter` of the
    lifetime and a band at most half the cache TTL wide, never after
    `latest_refresh_point`, never before the token was obtained (a token too short
    to leave room: at once). None when it cannot be known (no expiry, or no time
    it was obtained)."""
    span = _span(token)
    latest = latest_refresh_point(token, policy=policy, settings=settings)
    if span is None or latest is None:
        return None
    issued, expiry = span
    lifetime = expiry - issued
    spread = policy.jitter
    if settings.disk_cache_enabled:
        spread = min(spread, settings.cache_ttl / lifetime / 4)  # band <= TTL / 2
    shift = spread * (2 * jitter - 1)  # in [-spread, +spread)
    point = issued + lifetime * min(1.0, max(0.0, policy.fraction + shift))
    return max(issued, min(point, latest))


def due_for_renewal(
    entry: CachedToken, *, policy: RenewalPolicy, settings: Settings, now: datetime
) -> bool:
    """During a renewal, whether a stored entry is as old as the token being renewed:
    past the earliest refresh point any process could draw. A renewal takes no
    such entry, so the first renewer asks the network and the others find its token."""
    span = _span(entry)
    latest = latest_refresh_point(entry, policy=policy, settings=settings)
    if span is None or latest is None:
        return False
    issued, expiry = span
    earliest = issued + (expiry - issued) * policy.earliest
    return now >= max(issued, min(earliest, latest))


def too_short(token: CachedToken, *, policy: RenewalPolicy, settings: Settings) -> bool:
    """Whether `token` leaves no room for its renewal (renewed at once)."""
    span = _span(token)
    latest = latest_refresh_point(token, policy=policy, settings=settings)
    return span is not None and latest is not None and latest <= span[0]


def renewal_retry_delay(*, failures: int, policy: RenewalPolicy, jitter: float) -> float:
    """Seconds to wait after the `failures`-th failed renewal in a row: doubling from
    `first_retry_seconds`, capped, with "equal jitter" (at least half the wait)."""
    return capped_backoff(
        failures, first=policy.first_retry_seconds, cap=policy.max_retry_seconds, jitter=jitter
    )
