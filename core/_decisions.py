"""Whether a token can be used, as pure decisions over one `now`.

docs/design.md §4. Each function takes the moment it decides for as the keyword-only,
timezone-aware `now`; callers capture it once per decision, so two checks in
one decision can never disagree about the time.
"""

from ._record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime
    from typing import ClassVar

    from ._types import CachedToken, Settings, StackAccess

__all__ = [
    "DiskVerdict",
    "fresh_until",
    "is_fresh",
    "judge_disk_entry",
    "needs_refresh",
    "stamp_mismatch",
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
