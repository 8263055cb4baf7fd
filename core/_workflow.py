"""The cache workflow (docs/design.md §1 steps 1-3, §4, §8), for any stores and any grant.

Theory of operation
-------------------
    1. Memory: the token this process holds is `_holding`'s to judge; the
       workflow runs when a source has none to use (or renews it).
    2. TTL 0: no store at all, no lock -> the grant.
    3. A stored entry usable at `now`, level by level -> return it. No other
       effect is called, the network least of all.
    4. Otherwise take the levels' locks in order, and under each, at a new
       `now` (the wait may have been long), look again: another process may
       have filled a level meanwhile. Under the last lock, the grant obtains a
       new token; a fresh one is written to every level, best effort: a failed
       write is logged, never fails the call.

Effects are plain callables; core performs no I/O. Every decision takes one
`now`: the one given, or the one read after a lock.
"""

from __future__ import annotations

from returns.result import Result, Success

from ._cache import Grant, Store, usable_entry, write_failed
from ._decisions import is_fresh
from ._record import replace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from ._errors import AcquireError
    from ._renewal import RenewalPolicy
    from ._types import CachedToken, Settings

__all__ = ["acquire"]


def acquire(
    *,
    stores: tuple[Store, ...],
    grant: Grant,
    settings: Settings,
    now: datetime,
    clock: Callable[[], datetime],
    log: Callable[[str], None],
    renewing: RenewalPolicy | None = None,
) -> Result[CachedToken, AcquireError]:
    """A token: a usable stored one, else a new one from `grant`, stored for the
    next caller.

    `renewing`: the caller renews a token before it expires (`_renewal`): a
    stored entry as old as that token is passed over, so the first renewer
    of a host or fleet asks the network and the others find its token.
    """
    if not settings.disk_cache_enabled:
        log("cache disabled (TTL 0)")
        return grant.obtain(now)
    cached = usable_entry(stores, settings=settings, now=now, log=log, renewing=renewing)
    if cached is not None:
        return Success(cached)
    if not stores:
        return _obtain_and_store(stores, grant, settings=settings, now=now, log=log)
    return _under_lock(0, stores, grant, settings=settings, clock=clock, log=log, renewing=renewing)


def _under_lock(
    level: int,
    stores: tuple[Store, ...],
    grant: Grant,
    *,
    settings: Settings,
    clock: Callable[[], datetime],
    log: Callable[[str], None],
    renewing: RenewalPolicy | None,
) -> Result[CachedToken, AcquireError]:
    def body() -> Result[CachedToken, AcquireError]:
        now = clock()
        cached = usable_entry(stores, settings=settings, now=now, log=log, renewing=renewing)
        if cached is not None:
            return Success(cached)
        if level + 1 < len(stores):
            return _under_lock(
                level + 1, stores, grant, settings=settings, clock=clock, log=log, renewing=renewing
            )
        return _obtain_and_store(stores, grant, settings=settings, now=now, log=log)

    return stores[level].locked(body)


def _obtain_and_store(
    stores: tuple[Store, ...],
    grant: Grant,
    *,
    settings: Settings,
    now: datetime,
    log: Callable[[str], None],
) -> Result[CachedToken, AcquireError]:
    log(f"obtaining a token: {grant.name}")
    return grant.obtain(now).map(
        lambda token: _store(token, stores, settings=settings, now=now, log=log)
    )


def _store(
    token: CachedToken,
    stores: tuple[Store, ...],
    *,
    settings: Settings,
    now: datetime,
    log: Callable[[str], None],
) -> CachedToken:
    if not is_fresh(token.expiry, settings=settings, now=now):
        log("not caching: the issued token has no expiry or expires within the grace")
        return token
    entry = replace(token, saved_at=now)
    for store in stores:
        store.write(entry).alt(write_failed(store, log))
    return entry
