"""Failure memory's decisions (core's `_failures`) and its one hook in the workflow:
when a remembered failure stops a call, how long it is remembered, and that the
grant is asked exactly when no failure in force stops it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st
from returns.result import Failure, Result, Success
from stacktoken.core._cache import Grant
from stacktoken.core._errors import (
    AcquireError,
    AuthRequired,
    LocalError,
    OAuthError,
    RemoteError,
    UsageError,
)
from stacktoken.core._failures import (
    REJECTED,
    TRANSIENT,
    FailureKnobs,
    FailureMemory,
    Remembered,
    decode_remembered,
    encode_remembered,
    failure_kind,
    in_force,
    remember,
    remembered_error,
)
from stacktoken.core._types import CachedToken, Settings
from stacktoken.core._workflow import acquire

START = datetime(2026, 2, 20, 12, tzinfo=UTC)
KINDS = st.sampled_from([REJECTED, TRANSIENT])
KNOBS = st.builds(
    FailureKnobs,
    window=st.floats(min_value=0.001, max_value=3600),
    first=st.floats(min_value=0.001, max_value=60),
    cap=st.floats(min_value=0.001, max_value=3600),
)
JITTERS = st.floats(min_value=0, max_value=1, exclude_max=True)
OFFSETS = st.floats(min_value=-10, max_value=7200)
SECRET = "SECRET-never-shown"


def _entry(
    kind: str, knobs: FailureKnobs, jitter: float, previous: Remembered | None = None
) -> Remembered:
    return remember(
        kind,
        "the server said no",
        previous=previous,
        knobs=knobs,
        salt="00",
        fingerprint="f1",
        jitter=jitter,
        now=START,
    )


@given(kind=KINDS, knobs=KNOBS, jitter=JITTERS, offset=OFFSETS, same=st.booleans())
def test_a_remembered_failure_stops_a_call_exactly_inside_its_window(
    kind: str, knobs: FailureKnobs, jitter: float, offset: float, same: bool
) -> None:
    entry = _entry(kind, knobs, jitter)
    now = START + timedelta(seconds=offset)
    asked: list[bool] = []

    def same_secret() -> bool:
        asked.append(True)
        return same

    stops = in_force(entry, same_secret=same_secret, now=now)
    inside = START - (entry.until - START) <= now < entry.until
    # A rejection holds for the rejected secret only; a transient failure for any.
    assert stops == (inside and (kind == TRANSIENT or same))
    # The slow hash is asked only for a rejection inside its window.
    assert (asked != []) == (inside and kind == REJECTED)


@given(knobs=KNOBS, jitter=JITTERS)
def test_a_rejection_is_remembered_for_the_window(knobs: FailureKnobs, jitter: float) -> None:
    entry = _entry(REJECTED, knobs, jitter)
    assert entry.until - entry.at == timedelta(seconds=knobs.window)


@given(knobs=KNOBS, jitters=st.lists(JITTERS, min_size=1, max_size=12))
def test_transient_backoff_doubles_in_a_row_jittered_and_capped(
    knobs: FailureKnobs, jitters: list[float]
) -> None:
    previous: Remembered | None = None
    for count, jitter in enumerate(jitters, start=1):
        entry = _entry(TRANSIENT, knobs, jitter, previous)
        assert entry.count == count
        full = min(knobs.first * 2 ** (count - 1), knobs.cap)
        wait = (entry.until - entry.at).total_seconds()
        assert full / 2 - 1e-6 <= wait <= full + 1e-6
        previous = entry
    # A rejection after transient failures starts its own count.
    assert _entry(REJECTED, knobs, 0.5, previous).count == 1


@given(kind=KINDS, knobs=KNOBS, jitter=JITTERS, offset=st.floats(min_value=0, max_value=3600))
def test_the_error_is_one_line_of_the_right_kind_and_says_when(
    kind: str, knobs: FailureKnobs, jitter: float, offset: float
) -> None:
    entry = _entry(kind, knobs, jitter)
    error = remembered_error(entry, now=START + timedelta(seconds=offset))
    assert isinstance(error, AuthRequired if kind == REJECTED else RemoteError)
    assert "\n" not in error.message and "UTC" in error.message and "s ago" in error.message


@given(kind=KINDS, knobs=KNOBS, jitter=JITTERS)
def test_entries_round_trip_and_garbage_is_a_miss(
    kind: str, knobs: FailureKnobs, jitter: float
) -> None:
    entry = _entry(kind, knobs, jitter)
    assert decode_remembered(encode_remembered(entry)) == entry
    data = encode_remembered(entry)
    for cut in range(0, len(data), 7):
        assert isinstance(decode_remembered(data[:cut]), str)


def test_what_is_worth_remembering() -> None:
    assert failure_kind(AuthRequired(message="x", remember=True)) == REJECTED
    assert failure_kind(AuthRequired(message="not logged in")) is None
    assert failure_kind(RemoteError(message="x", transient=True)) == TRANSIENT
    assert failure_kind(RemoteError(message="x")) is None
    assert failure_kind(OAuthError(error="server_error", status_code=503)) == TRANSIENT
    assert failure_kind(OAuthError(error="invalid_scope")) is None
    assert failure_kind(LocalError(message="x")) is None
    assert failure_kind(UsageError(message="x")) is None


# -- the workflow's hook ---------------------------------------------------------


@dataclass
class Memory:
    """An in-memory failure memory whose fingerprint is of `secret` (a fake hash)."""

    secret: str
    entry: Remembered | None = None
    hashed: int = 0
    forgotten: int = 0
    writes: list[Remembered] = field(default_factory=list)

    def record(self) -> FailureMemory:
        def fingerprint(salt: str) -> str:
            self.hashed += 1
            return f"{salt}:{len(self.secret)}:{hash(self.secret)}"

        def write(entry: Remembered) -> None:
            self.entry = entry
            self.writes.append(entry)

        def forget() -> None:
            self.forgotten += 1
            self.entry = None

        return FailureMemory(
            read=lambda: self.entry,
            fingerprint=fingerprint,
            write=write,
            forget=forget,
            draw=lambda: ("ab", 0.5),
        )


OUTCOMES = st.sampled_from(
    [
        "ok",
        "rejected",
        "transient",
        "refused-scope",
    ]
)


def _outcome(name: str, now: datetime) -> Result[CachedToken, AcquireError]:
    match name:
        case "ok":
            return Success(
                CachedToken(
                    access_token=SECRET, token_type="Bearer", expiry=now + timedelta(hours=1)
                )
            )
        case "rejected":
            return Failure(AuthRequired(message="the stack rejected the client", remember=True))
        case "transient":
            return Failure(RemoteError(message="503", transient=True))
    return Failure(OAuthError(error="invalid_scope"))


def _answer(value: bool) -> Callable[[], bool]:
    return lambda: value


def _fixed(now: datetime) -> Callable[[], datetime]:
    return lambda: now


@given(
    steps=st.lists(
        st.tuples(OUTCOMES, st.floats(min_value=0, max_value=120), st.booleans()),
        min_size=1,
        max_size=10,
    )
)
def test_the_grant_is_asked_exactly_when_no_failure_in_force_stops_it(
    steps: list[tuple[str, float, bool]],
) -> None:
    memory = Memory(secret="s0")
    now = START
    for n, (outcome, gap, new_secret) in enumerate(steps):
        now += timedelta(seconds=gap)
        if new_secret:
            memory.secret = f"s{n + 1}"
        asked: list[datetime] = []

        def obtain(
            at: datetime, outcome: str = outcome, asked: list[datetime] = asked
        ) -> Result[CachedToken, AcquireError]:
            asked.append(at)
            return _outcome(outcome, at)

        before = memory.entry
        expected = None if before is None else memory.record().fingerprint(before.salt)
        stopped = before is not None and in_force(
            before,
            same_secret=_answer(before is not None and before.fingerprint == expected),
            now=now,
        )
        result = acquire(
            stores=(),
            grant=Grant(name="fake", obtain=obtain),
            settings=Settings(),
            now=now,
            clock=_fixed(now),
            log=lambda _: None,
            memory=memory.record(),
        )
        assert (asked == []) == stopped
        if stopped:
            assert isinstance(result, Failure)
            assert memory.entry == before  # nothing written, nothing forgotten
            continue
        if outcome == "ok":
            assert isinstance(result, Success)
            assert memory.entry is None  # a success forgets
        elif outcome in ("rejected", "transient"):
            assert memory.entry is not None and memory.entry.at == now
            assert memory.entry.kind == (REJECTED if outcome == "rejected" else TRANSIENT)
        else:
            assert memory.entry == before  # not worth remembering: left as it was
