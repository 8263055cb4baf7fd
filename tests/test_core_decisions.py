"""Decision rules at their boundaries (docs/design.md §4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from stacktoken.core._cache import (
    DiskVerdict,
    is_fresh,
    judge_disk_entry,
    needs_refresh,
    stamp_mismatch,
)
from stacktoken.core._record import replace
from stacktoken.core._types import (
    CLOCK_SKEW_ALLOWANCE,
    DEFAULT_CACHE_TTL,
    EXPIRY_GRACE,
    CachedToken,
    Settings,
    StackAccess,
)

NOW = datetime(2026, 2, 20, 15, 40, 16, tzinfo=UTC)
US = timedelta(microseconds=1)
HOUR = timedelta(hours=1)
SETTINGS = Settings()


def test_constants_are_the_documented_margins() -> None:
    assert timedelta(minutes=5) == DEFAULT_CACHE_TTL
    assert timedelta(seconds=30) == EXPIRY_GRACE
    assert timedelta(seconds=60) == CLOCK_SKEW_ALLOWANCE
    assert Settings() == Settings(
        cache_ttl=DEFAULT_CACHE_TTL,
        expiry_grace=EXPIRY_GRACE,
        clock_skew_allowance=CLOCK_SKEW_ALLOWANCE,
    )


FRESHNESS = [
    ("expiry exactly at now + grace", NOW + EXPIRY_GRACE, False),
    ("one microsecond later", NOW + EXPIRY_GRACE + US, True),
    ("inside the grace", NOW + EXPIRY_GRACE - US, False),
    ("already expired", NOW - HOUR, False),
    ("no known expiry", None, False),
    ("an hour ahead", NOW + HOUR, True),
]


@pytest.mark.parametrize(("case", "expiry", "fresh"), FRESHNESS)
def test_is_fresh_at_the_grace_boundary(case: str, expiry: datetime | None, fresh: bool) -> None:
    assert is_fresh(expiry, settings=SETTINGS, now=NOW) is fresh, case


def _entry(*, saved_at: datetime | None, expiry: datetime | None = NOW + HOUR) -> CachedToken:
    return CachedToken(access_token="tok", token_type="Bearer", expiry=expiry, saved_at=saved_at)


VERDICTS = [
    ("saved now", _entry(saved_at=NOW), SETTINGS, DiskVerdict.USABLE),
    (
        "savedAt == now + 60s",
        _entry(saved_at=NOW + timedelta(seconds=60)),
        SETTINGS,
        DiskVerdict.USABLE,
    ),
    (
        "savedAt == now + 60s + 1us",
        _entry(saved_at=NOW + timedelta(seconds=60) + US),
        SETTINGS,
        DiskVerdict.FROM_FUTURE,
    ),
    (
        "savedAt == now + 61s",
        _entry(saved_at=NOW + timedelta(seconds=61)),
        SETTINGS,
        DiskVerdict.FROM_FUTURE,
    ),
    (
        "now == savedAt + TTL",
        _entry(saved_at=NOW - DEFAULT_CACHE_TTL),
        SETTINGS,
        DiskVerdict.TOO_OLD,
    ),
    (
        "now == savedAt + TTL - 1us",
        _entry(saved_at=NOW - DEFAULT_CACHE_TTL + US),
        SETTINGS,
        DiskVerdict.USABLE,
    ),
    (
        "expiry == now + grace",
        _entry(saved_at=NOW, expiry=NOW + EXPIRY_GRACE),
        SETTINGS,
        DiskVerdict.EXPIRED,
    ),
    (
        "no expiry (Go zero time)",
        _entry(saved_at=NOW, expiry=None),
        SETTINGS,
        DiskVerdict.NO_EXPIRY,
    ),
    ("TTL 0", _entry(saved_at=NOW), Settings(cache_ttl=timedelta(0)), DiskVerdict.DISABLED),
    ("fctl's entry, fresh mtime", _entry(saved_at=None), SETTINGS, DiskVerdict.USABLE),
]


@pytest.mark.parametrize(("case", "entry", "settings", "verdict"), VERDICTS)
def test_judge_disk_entry_at_boundaries(
    case: str, entry: CachedToken, settings: Settings, verdict: DiskVerdict
) -> None:
    assert judge_disk_entry(entry, file_mtime=NOW, settings=settings, now=NOW) is verdict, case


MTIMES = [
    ("mtime now", NOW, DiskVerdict.USABLE),
    ("mtime a TTL ago", NOW - DEFAULT_CACHE_TTL, DiskVerdict.TOO_OLD),
    ("mtime 61 s ahead", NOW + timedelta(seconds=61), DiskVerdict.FROM_FUTURE),
]


@pytest.mark.parametrize(("case", "mtime", "verdict"), MTIMES)
def test_judge_disk_entry_without_saved_at_uses_the_file_mtime(
    case: str, mtime: datetime, verdict: DiskVerdict
) -> None:
    entry = _entry(saved_at=None)
    assert judge_disk_entry(entry, file_mtime=mtime, settings=SETTINGS, now=NOW) is verdict, case


def test_judge_disk_entry_prefers_saved_at_over_mtime() -> None:
    entry = _entry(saved_at=NOW)
    old_mtime = NOW - 10 * DEFAULT_CACHE_TTL
    assert judge_disk_entry(entry, file_mtime=old_mtime, settings=SETTINGS, now=NOW).usable


def test_disk_verdict_reasons_are_loggable() -> None:
    assert {verdict.reason for verdict in DiskVerdict.all()} == {
        "usable",
        "cache disabled (TTL 0)",
        "entry has no expiry",
        "token expired or within the expiry grace",
        "entry older than the cache TTL",
        "entry saved in the future beyond the clock-skew allowance",
    }
    assert [verdict for verdict in DiskVerdict.all() if verdict.usable] == [DiskVerdict.USABLE]


REFRESH = [
    ("exp exactly at now + grace", NOW + EXPIRY_GRACE, True),
    ("exp one microsecond later", NOW + EXPIRY_GRACE + US, False),
    ("no exp", None, True),
    ("expired", NOW - HOUR, True),
]


@pytest.mark.parametrize(("case", "expiry", "refresh"), REFRESH)
def test_needs_refresh_by_claims_exp(case: str, expiry: datetime | None, refresh: bool) -> None:
    access = StackAccess(token="jwt", refresh_token="r", expiry=expiry)
    assert needs_refresh(access, settings=SETTINGS, now=NOW) is refresh, case


@pytest.mark.parametrize("missing", ["stack_uri", "client_id", "scopes"])
def test_stamp_mismatch_unstamped_entry_is_taken_unless_strict(missing: str) -> None:
    """fctl stamps nothing, so a file's unstamped entry is taken; a store only
    stacktoken writes to (Redis) is strict: an entry missing any stamp is refused."""
    stamped = CachedToken(
        access_token="tok-0123456789",
        token_type="Bearer",
        expiry=NOW,
        stack_uri="https://s.example",
        client_id="svc",
        scopes=("a",),
    )
    entry = replace(stamped, **{missing: None})
    assert (
        stamp_mismatch(entry, stack_uri="https://s.example", client_id="svc", scopes=("a",)) is None
    )
    assert stamp_mismatch(
        entry, stack_uri="https://s.example", client_id="svc", scopes=("a",), strict=True
    ) == ("entry is not stamped with its stack, client and scopes")
    assert (
        stamp_mismatch(
            stamped, stack_uri="https://s.example", client_id="svc", scopes=("a",), strict=True
        )
        is None
    )
