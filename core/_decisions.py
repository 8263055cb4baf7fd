"""Whether a token can be used, as pure decisions over one `now`.

DESIGN §4. Each function takes the moment it decides for as the keyword-only,
timezone-aware `now`; callers capture it once per decision, so two checks in
one decision can never disagree about the time.
"""

from __future__ import annotations

import enum
from datetime import datetime

from ._types import CachedToken, Settings, StackAccess

__all__ = [
    "DiskVerdict",
    "is_fresh",
    "judge_disk_entry",
    "needs_refresh",
]


class DiskVerdict(enum.Enum):
    """Why a disk cache entry is, or is not, used. The shell logs the value."""

    USABLE = "usable"
    DISABLED = "cache disabled (TTL 0)"
    NO_EXPIRY = "entry has no expiry"
    EXPIRED = "token expired or within the expiry grace"
    TOO_OLD = "entry older than the cache TTL"
    FROM_FUTURE = "entry saved in the future beyond the clock-skew allowance"

    @property
    def usable(self) -> bool:
        return self is DiskVerdict.USABLE


def is_fresh(expiry: datetime | None, *, settings: Settings, now: datetime) -> bool:
    """A token is fresh iff `now + grace < expiry`; no known expiry is never fresh."""
    return expiry is not None and now + settings.expiry_grace < expiry


def judge_disk_entry(
    entry: CachedToken,
    *,
    file_mtime: datetime,
    settings: Settings,
    now: datetime,
) -> DiskVerdict:
    """Decide whether a disk entry may be returned without any network call.

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


def needs_refresh(access: StackAccess, *, settings: Settings, now: datetime) -> bool:
    """The stack access token needs a refresh iff it is not fresh by its `exp`."""
    return not is_fresh(access.expiry, settings=settings, now=now)
