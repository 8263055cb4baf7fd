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
    5. Failure memory (`_failures`, docs/design.md §15): just before the
       grant, a remembered failure still in force fails the call at once; a
       failure of the grant worth remembering is remembered, a success
       forgets one.

Effects are plain callables; core performs no I/O. Every decision takes one
`now`: the one given, or the one read after a lock.
"""

from __future__ import annotations

from returns.result import Failure, Result, Success

from ._cache import Grant, Store, is_fresh, usable_entry, write_failed
from ._record import replace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from ._errors import AcquireError
    from ._failures import FailureMemory, Remembered
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
    memory: FailureMemory | None = None,
) -> Result[CachedToken, AcquireError]:
    """A token: a usable stored one, else a new one from `grant`, stored for the
    next caller; `memory`: the failures of this token remembered (step 5).

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
        return _obtain_and_store(
            stores, grant, settings=settings, now=now, clock=clock, log=log, memory=memory
        )
    return _under_lock(
        0, stores, grant, settings=settings, clock=clock, log=log, renewing=renewing, memory=memory
    )


def _under_lock(
    level: int,
    stores: tuple[Store, ...],
    grant: Grant,
    *,
    settings: Settings,
    clock: Callable[[], datetime],
    log: Callable[[str], None],
    renewing: RenewalPolicy | None,
    memory: FailureMemory | None,
) -> Result[CachedToken, AcquireError]:
    def body() -> Result[CachedToken, AcquireError]:
        now = clock()
        cached = usable_entry(stores, settings=settings, now=now, log=log, renewing=renewing)
        if cached is not None:
            return Success(cached)
        if level + 1 < len(stores):
            return _under_lock(
                level + 1,
                stores,
                grant,
                settings=settings,
                clock=clock,
                log=log,
                renewing=renewing,
                memory=memory,
            )
        return _obtain_and_store(
            stores, grant, settings=settings, now=now, clock=clock, log=log, memory=memory
        )

    return stores[level].locked(body)


def _obtain_and_store(
    stores: tuple[Store, ...],
    grant: Grant,
    *,
    settings: Settings,
    now: datetime,
    clock: Callable[[], datetime],
    log: Callable[[str], None],
    memory: FailureMemory | None,
) -> Result[CachedToken, AcquireError]:
    remembered = None if memory is None else memory.read()
    if memory is not None and remembered is not None:
        from ._failures import in_force, remembered_error

        salt = remembered.salt
        if in_force(
            remembered,
            same_secret=lambda: memory.fingerprint(salt) == remembered.fingerprint,
            now=now,
        ):
            log(
                f"failure memory used: a {remembered.kind} failure, "
                f"remembered until {remembered.until.isoformat()}"
            )
            return Failure(remembered_error(remembered, now=now))
        log(f"failure memory: the {remembered.kind} failure remembered no longer applies")
    log(f"obtaining a token: {grant.name}")
    obtained = grant.obtain(now)
    if memory is not None:
        # The window starts when the failure is known: retries may have taken a while.
        _note(obtained, memory, remembered, now=clock(), log=log)
    return obtained.map(lambda token: _store(token, stores, settings=settings, now=now, log=log))


def _note(
    obtained: Result[CachedToken, AcquireError],
    memory: FailureMemory,
    remembered: Remembered | None,
    *,
    now: datetime,
    log: Callable[[str], None],
) -> None:
    """Remember the grant's failure if it is worth it; forget one on a success."""
    from ._failures import failure_kind, remember

    if isinstance(obtained, Success):
        if remembered is not None:
            memory.forget()
        return
    error = obtained.failure()
    kind = failure_kind(error)
    if kind is None:
        return
    salt, jitter = memory.draw()
    entry = remember(
        kind,
        error.message,
        previous=remembered,
        knobs=memory.knobs,
        salt=salt,
        fingerprint=memory.fingerprint(salt),
        jitter=jitter,
        now=now,
        owner=memory.owner,
    )
    log(f"failure memory: remembering a {kind} failure until {entry.until.isoformat()}")
    memory.write(entry)


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
