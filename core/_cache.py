"""The cache's parts (docs/design.md §8): stores, grants, and which stored entry may be used.

Whether a token can be used (docs/design.md §4) is decided here too, as pure
functions over one `now`: each takes the moment it decides for as the
keyword-only, timezone-aware `now`; callers capture it once per decision, so
two checks in one decision can never disagree about the time. (One module, not
two: a warm run imports it, and a module costs a warm run 1 % of a bare start.)

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

from ._record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from datetime import datetime
    from typing import ClassVar, TypeAlias

    from returns.result import Result

    from ._errors import AcquireError, LocalError
    from ._renewal import RenewalPolicy
    from ._types import CachedToken, Settings, StackAccess

    #: The work a store runs under its lock.
    Body: "TypeAlias" = Callable[[], Result[CachedToken, AcquireError]]

__all__ = [
    "CacheRead",
    "DiskVerdict",
    "Grant",
    "Store",
    "fresh_until",
    "is_fresh",
    "judge_disk_entry",
    "needs_refresh",
    "stamp_mismatch",
    "usable_entry",
    "write_failed",
]


class DiskVerdict(Record):
    """Why a stored cache entry is, or is not, used; the shell logs `reason`.

    The verdicts are the class attributes below (`DiskVerdict.USABLE`, ...),
    compared by identity or equality, as enum members would be.
    """

    name: str
    reason: str

    USABLE: "ClassVar[DiskVerdict]"
    DISABLED: "ClassVar[DiskVerdict]"
    NO_EXPIRY: "ClassVar[DiskVerdict]"
    EXPIRED: "ClassVar[DiskVerdict]"
    TOO_OLD: "ClassVar[DiskVerdict]"
    FROM_FUTURE: "ClassVar[DiskVerdict]"

    @property
    def usable(self) -> bool:
        return self.name == "USABLE"

    @property
    def value(self) -> str:
        return self.reason

    @classmethod
    def all(cls) -> "Iterator[DiskVerdict]":
        """Every verdict, in the order the rules are applied."""
        return iter(_ALL)


_ALL = tuple(
    DiskVerdict(name=name, reason=reason)
    for name, reason in (
        ("USABLE", "usable"),
        ("DISABLED", "cache disabled (TTL 0)"),
        ("NO_EXPIRY", "entry has no expiry"),
        ("EXPIRED", "token expired or within the expiry grace"),
        ("TOO_OLD", "entry older than the cache TTL"),
        ("FROM_FUTURE", "entry saved in the future beyond the clock-skew allowance"),
    )
)
for _verdict in _ALL:
    setattr(DiskVerdict, _verdict.name, _verdict)
del _verdict


def is_fresh(expiry: "datetime | None", *, settings: "Settings", now: "datetime") -> bool:
    """A token is fresh iff `now + grace < expiry`; no known expiry is never fresh."""
    return expiry is not None and now + settings.expiry_grace < expiry


def fresh_until(token: "CachedToken", *, settings: "Settings") -> "datetime | None":
    """The first moment `token` is no longer fresh (`is_fresh` turns False), None if never fresh."""
    return None if token.expiry is None else token.expiry - settings.expiry_grace


def judge_disk_entry(
    entry: "CachedToken",
    *,
    file_mtime: "datetime",
    settings: "Settings",
    now: "datetime",
) -> DiskVerdict:
    """Decide whether a stored entry may be returned without any network call.

    An entry fctl wrote has no `savedAt`; it counts as saved at the file's mtime.
    """
    if not settings.disk_cache_enabled:
        return DiskVerdict.DISABLED
    if entry.expiry is None:
        return DiskVerdict.NO_EXPIRY
    saved_at = entry.saved_at if entry.saved_at is not None else file_mtime
    if saved_at > now + settings.clock_skew_allowance:
        return DiskVerdict.FROM_FUTURE
    if not now < saved_at + settings.cache_ttl:
        return DiskVerdict.TOO_OLD
    if not is_fresh(entry.expiry, settings=settings, now=now):
        return DiskVerdict.EXPIRED
    return DiskVerdict.USABLE


def needs_refresh(access: "StackAccess", *, settings: "Settings", now: "datetime") -> bool:
    """The stack access token needs a refresh iff it is not fresh by its `exp`."""
    return not is_fresh(access.expiry, settings=settings, now=now)


def stamp_mismatch(
    entry: "CachedToken",
    *,
    stack_uri: "str | None",
    client_id: "str | None",
    scopes: "tuple[str, ...] | None" = None,
    strict: bool = False,
) -> "str | None":
    """Why a stored entry is not for this store's stack or client (a token must
    never follow a changed stack URI to another host); None when it is.

    An entry without a stamp (fctl writes none) is taken as fctl takes it,
    unless `strict`: a store only stacktoken writes to (Redis) holds stamped
    entries only, so an unstamped one there was put by someone else.
    """
    if strict and (entry.stack_uri is None or entry.client_id is None or entry.scopes is None):
        return "entry is not stamped with its stack, client and scopes"
    if entry.stack_uri is not None and stack_uri is not None and entry.stack_uri != stack_uri:
        return "entry was issued for another stack URI"
    if entry.client_id is not None and client_id is not None and entry.client_id != client_id:
        return "entry was issued for another client"
    if entry.scopes is not None and scopes is not None and entry.scopes != scopes:
        return "entry was issued for other scopes"
    return None


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
