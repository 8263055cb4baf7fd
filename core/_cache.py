"""The cache's parts (docs/design.md §8): stores, grants, and which stored entry may be used.

A **store** is one level of the cache: the fctl stack folder (§3), a machine
credential's files (§9), Redis (§11). A **grant** gets a new token from the
network: the fctl stack grant (§1 step 3), client credentials (§9). The
workflow (`_workflow.acquire`) applies the cache rules of §1 and §4 to any
stores and any grant, so neither a store nor a grant repeats them.

This module is imported by warm runs, which only ask `usable_entry`: it
imports neither `returns` nor anything else that a warm run cannot afford.
A store's `read` therefore answers a plain value (the entry, or the reason
for a miss: a miss is not an error); everything only the cold path calls
returns a `Result`.
"""

from ._decisions import judge_disk_entry
from ._record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime
    from typing import TypeAlias

    from returns.result import Result

    from ._errors import AcquireError, LocalError
    from ._renewal import RenewalPolicy
    from ._types import CachedToken, Settings

    #: The work a store runs under its lock.
    Body: "TypeAlias" = Callable[[], Result[CachedToken, AcquireError]]

__all__ = ["CacheRead", "Grant", "Store", "usable_entry", "write_failed"]

#: A stored entry and the moment it counts as saved at when it has no `savedAt`
#: (fctl's entries: the file's mtime).
CacheRead = tuple["CachedToken", "datetime"]


class Store(Record):
    """One level of the token cache.

    - `read()`: the entry, or why there is none to use (a string, logged);
    - `write(entry)`: store it, best effort (the workflow logs a failure);
    - `locked(body)`: run `body` holding this level's cross-process lock. A
      store that cannot lock may run `body` unlocked (the cache is best
      effort), or fail with the reason (a lock not had in time);
    - `drop(token)`: forget the entry if it still holds `token` (a server
      refused it); True if something was dropped.
    """

    name: str
    read: "Callable[[], CacheRead | str]"
    write: "Callable[[CachedToken], Result[None, LocalError]]"
    locked: "Callable[[Body], Result[CachedToken, AcquireError]]"
    drop: "Callable[[str], Result[bool, LocalError]]"


class Grant(Record):
    """How to get a new token from the network; `obtain(now)` decides with `now`."""

    name: str
    obtain: "Callable[[datetime], Result[CachedToken, AcquireError]]"


def usable_entry(
    stores: "tuple[Store, ...]",
    *,
    settings: "Settings",
    now: "datetime",
    log: "Callable[[str], None]",
    renewing: "RenewalPolicy | None" = None,
) -> "CachedToken | None":
    """The first stored entry usable at `now` (docs/design.md §4), looking level by level.

    An entry found below the first level is copied up (best effort), with its
    own `savedAt`, so the next read is local and the TTL window stays the one
    the entry's first writer opened. While `renewing`, an entry as old as the
    token being renewed is passed over (`_renewal.due_for_renewal`).
    """
    for level, store in enumerate(stores):
        read = store.read()
        if isinstance(read, str):
            log(f"{store.name} cache miss: {read}")
            continue
        entry, mtime = read
        verdict = judge_disk_entry(entry, file_mtime=mtime, settings=settings, now=now)
        log(f"{store.name} cache {'hit' if verdict.usable else 'miss'}: {verdict.reason}")
        if verdict.usable and renewing is not None:
            from ._renewal import due_for_renewal

            if due_for_renewal(entry, policy=renewing, settings=settings, now=now):
                log(f"{store.name} cache entry due for renewal: passed over")
                continue
        if verdict.usable:
            for upper in stores[:level]:
                upper.write(entry).alt(write_failed(upper, log))
            return entry
    return None


def write_failed(store: Store, log: "Callable[[str], None]") -> "Callable[[LocalError], None]":
    """What to do when `store` could not keep an entry: say so, at debug level."""

    def report(error: "LocalError") -> None:
        log(f"{store.name} cache write failed: {error.message}")

    return report
