"""The cache workflow (design.md §1, §4, §8) over generated worlds: either grant, one or two levels.

These rules belong to the workflow, not to a grant or a store, so each is
stated for every grant (fctl's, client credentials) and for one level (the
host's files) as for two (then a store hosts share).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from fakes import GRANT_EFFECTS, NETWORK_EFFECTS, STORE_EFFECTS, FakeWorld, with_cache_write
from hypothesis import event, given, note
from hypothesis import strategies as st
from returns.result import Failure, Success
from stacktoken.core._cache import is_fresh, judge_disk_entry
from stacktoken.core._errors import AuthRequired, LocalError, OAuthError, RemoteError, UsageError
from stacktoken.core._types import CachedToken, Settings
from strategies import SECRET_MARKER, Scenario, cache_runs, scenarios

_ISSUING = ("exchange", "client_token")


def _usable(read: object, scenario: Scenario, now: datetime) -> CachedToken | None:
    """The entry of a recorded read, if it is usable at `now`."""
    match read:
        case (CachedToken() as entry, datetime() as mtime):
            verdict = judge_disk_entry(entry, file_mtime=mtime, settings=scenario.settings, now=now)
            return entry if verdict.usable else None
    return None


def _levels(scenario: Scenario) -> str:
    return "two levels" if scenario.shared is not None else "one level"


@given(
    st.one_of(
        scenarios(usable_disk=True),
        scenarios(usable_disk=True, grant="client"),
        scenarios(usable_disk=True, levels=2),
        scenarios(usable_disk=True, grant="client", levels=2),
    )
)
def test_usable_first_level_entry_means_no_other_effect(scenario: Scenario) -> None:
    """An entry of the first level usable at `now` is returned as is, and nothing else runs."""
    world = FakeWorld(scenario)
    result = world.acquire()
    event(f"{scenario.grant} grant, {_levels(scenario)}")
    assert isinstance(scenario.disk, Success)
    entry, _ = scenario.disk.unwrap()
    assert world.names() == ["read_cache"]
    assert result == Success(entry)


@given(
    st.one_of(
        cache_runs(ttl_zero=False),
        scenarios(filled_meanwhile=True),
        scenarios(filled_meanwhile=True, grant="client", levels=2),
        scenarios(cold=True, shared_filled_meanwhile=True),
        scenarios(cold=True, shared_filled_meanwhile=True, grant="client"),
    )
)
def test_usable_entry_found_under_a_lock_means_no_grant_effect(scenario: Scenario) -> None:
    """Once a read under a lock finds a usable entry, it is returned and the grant never runs."""
    world = FakeWorld(scenario)
    result = world.acquire()
    names = world.names()
    note(f"calls: {names}")
    if "locked" not in names:
        return
    after_lock = world.calls[names.index("locked") + 1 :]
    for position, call in enumerate(after_lock):
        if call.effect not in ("read_cache", "shared_read"):
            continue
        found = _usable(call.answer, scenario, scenario.lock_now)
        if found is not None:
            event(f"filled meanwhile, {_levels(scenario)}")
            assert GRANT_EFFECTS.isdisjoint(c.effect for c in after_lock[position:])
            assert result == Success(found)
            return


@given(cache_runs(ttl_zero=True))
def test_ttl_zero_never_touches_a_store(scenario: Scenario) -> None:
    """With TTL 0, no level is read, written or locked, whatever happens."""
    world = FakeWorld(scenario)
    world.acquire()
    note(f"calls: {world.names()}")
    assert STORE_EFFECTS.isdisjoint(world.names())


@given(cache_runs(ttl_zero=False))
def test_grant_runs_only_under_every_lock_after_every_level_missed(scenario: Scenario) -> None:
    """The grant runs only after the locks of all levels, taken in order, and after the
    last read of every level under them found nothing usable."""
    world = FakeWorld(scenario)
    world.acquire()
    names = world.names()
    note(f"calls: {names}")
    first_grant = next((i for i, name in enumerate(names) if name in GRANT_EFFECTS), None)
    if first_grant is None:
        return
    before = names[:first_grant]
    locks = ["locked"] if scenario.shared is None else ["locked", "shared_locked"]
    assert [name for name in before if name in ("locked", "shared_locked")] == locks
    last_lock = max(i for i, name in enumerate(before) if name in locks)
    reads = world.calls[last_lock + 1 : first_grant]
    expected = ["read_cache"] if scenario.shared is None else ["read_cache", "shared_read"]
    assert [call.effect for call in reads] == expected
    assert all(_usable(call.answer, scenario, scenario.lock_now) is None for call in reads)
    event(f"{scenario.grant} grant ran, {_levels(scenario)}")


@given(
    st.one_of(
        scenarios(shared_usable=True),
        scenarios(shared_usable=True, grant="client"),
        scenarios(cold=True, shared_filled_meanwhile=True),
        cache_runs(ttl_zero=False),
    )
)
def test_entry_found_below_is_copied_up_with_its_own_saved_at(scenario: Scenario) -> None:
    """An entry usable only at the shared level is returned and written to the host's
    level unchanged, so every host serves it for the same TTL window."""
    world = FakeWorld(scenario)
    result = world.acquire()
    names = world.names()
    if scenario.shared is None or "shared_read" not in names:
        return
    for index, call in enumerate(world.calls):
        if call.effect != "shared_read":
            continue
        now = scenario.lock_now if "locked" in names[:index] else scenario.now
        found = _usable(call.answer, scenario, now)
        if found is None:
            continue
        event("found at the shared level")
        following = world.calls[index + 1]
        assert following.effect == "write_cache"
        assert following.argument == found  # savedAt included: the window stays the writer's
        assert result == Success(found)
        assert GRANT_EFFECTS.isdisjoint(c.effect for c in world.calls[index:])
        return


@given(cache_runs(ttl_zero=False))
def test_obtained_token_is_written_to_every_level_once(scenario: Scenario) -> None:
    """A fresh token the grant obtained is written, saved at the lock's `now`, to each
    level once, first level first; a short-lived one to none."""
    world = FakeWorld(scenario)
    result = world.acquire()
    names = world.names()
    issued = [c for c in world.calls if c.effect in _ISSUING and isinstance(c.answer, Success)]
    if not isinstance(result, Success) or not issued:
        return
    token = result.unwrap()
    last = issued[-1].answer
    assert isinstance(last, Success)
    if token.access_token != last.unwrap().access_token:
        return  # served from a level after all (the grant's token came from another path)
    first_write = next(i for i, name in enumerate(names) if name in _ISSUING)
    writes = [c for c in world.calls[first_write:] if c.effect in ("write_cache", "shared_write")]
    if token.saved_at is None:
        event("short-lived: not cached")
        assert writes == []
        return
    event(f"cached at {_levels(scenario)}")
    expected = ["write_cache"] if scenario.shared is None else ["write_cache", "shared_write"]
    assert [c.effect for c in writes] == expected
    assert all(c.argument == token for c in writes)
    assert token.saved_at == scenario.lock_now


@given(st.one_of(cache_runs(ttl_zero=False), scenarios(ttl_zero=False, cold=True, happy=True)))
def test_failed_cache_write_never_fails_the_acquisition(scenario: Scenario) -> None:
    """The same timeline gives the same result whether the cache writes succeed or fail."""
    succeeding = FakeWorld(with_cache_write(scenario, fails=False))
    failing = FakeWorld(with_cache_write(scenario, fails=True))
    expected = succeeding.acquire()
    actual = failing.acquire()
    note(f"calls: {failing.names()}")
    event("cache written" if "write_cache" in failing.names() else "no cache write")
    assert actual == expected
    assert failing.names() == succeeding.names()


@given(cache_runs())
def test_returned_token_is_fresh_unless_just_issued_short_lived_and_then_not_cached(
    scenario: Scenario,
) -> None:
    """A returned token is fresh at `now`, except a just-issued one with a short or unknown
    lifetime, which is returned but never written to any level."""
    world = FakeWorld(scenario)
    result = world.acquire()
    note(f"calls: {world.names()}")
    settings = scenario.settings
    now = world.decision_now
    for call in world.calls:
        if call.effect in ("write_cache", "shared_write"):
            entry = call.argument
            assert isinstance(entry, CachedToken)
            # What we write, we would accept at once.
            assert judge_disk_entry(entry, file_mtime=now, settings=settings, now=now).usable
    if not isinstance(result, Success):
        return
    token: CachedToken = result.unwrap()
    if is_fresh(token.expiry, settings=settings, now=now):
        event("fresh token")
        assert is_fresh(token.expiry, settings=settings, now=scenario.now)
        return
    event("short-lived or no expiry, just issued")
    issued = [
        call.answer.unwrap()
        for call in world.calls
        if call.effect in _ISSUING and isinstance(call.answer, Success)
    ]
    assert issued, "a stale token came from a store"
    assert token.access_token == issued[-1].access_token
    assert token.expiry == issued[-1].expiry
    assert all(
        not (
            isinstance(call.argument, CachedToken)
            and call.argument.access_token == token.access_token
        )
        for call in world.calls
        if call.effect in ("write_cache", "shared_write")
    )


@given(cache_runs(ttl_zero=False))
def test_lock_is_taken_exactly_when_no_level_is_usable_at_first(scenario: Scenario) -> None:
    """With the cache on, the first lock is taken exactly when no level's first read is
    usable at `now`."""
    world = FakeWorld(scenario)
    world.acquire()
    names = world.names()
    first_lock = names.index("locked") if "locked" in names else len(names)
    first_reads = world.calls[:first_lock]
    usable = any(_usable(call.answer, scenario, scenario.now) for call in first_reads)
    event(f"first reads usable: {usable}, {_levels(scenario)}")
    assert ("locked" in names) == (not usable)


@given(cache_runs())
def test_acquisition_returns_a_value_from_the_closed_error_set(scenario: Scenario) -> None:
    """Whatever the effects answer, the result is a token or one of the five error types."""
    result = FakeWorld(scenario).acquire()
    match result:
        case Success(token):
            assert isinstance(token, CachedToken)
        case Failure(error):
            assert isinstance(
                error, UsageError | AuthRequired | RemoteError | OAuthError | LocalError
            )


@given(cache_runs())
def test_secrets_never_reach_a_log_line_or_the_result_repr(scenario: Scenario) -> None:
    """No token, refresh token, assertion or client secret appears in a log line, in
    repr/str of the result, or in the repr of anything handed to an effect."""
    world = FakeWorld(scenario)
    result = world.acquire()
    for line in world.logs:
        assert SECRET_MARKER not in line, line
    assert SECRET_MARKER not in repr(result)
    assert SECRET_MARKER not in str(result)
    for call in world.calls:
        assert SECRET_MARKER not in repr(call.argument)


def test_fake_world_replays_a_warm_and_a_cold_run() -> None:
    """The fake itself: a warm scenario reads the cache only; a cold one goes on under the lock."""
    now = datetime(2026, 2, 20, 12, tzinfo=UTC)
    entry = CachedToken(
        access_token="SECRET-api-1",
        token_type="Bearer",
        expiry=now + timedelta(hours=1),
        saved_at=now,
    )
    unreachable = (Failure(RemoteError(message="unreachable")),)
    scenario = Scenario(
        now=now,
        settings=Settings(),
        lock_wait=timedelta(0),
        disk=Success((entry, now)),
        other_writer=None,
        cache_write_fails=False,
        lock_fails=False,
        access=None,
        access_write_fails=False,
        rotated_elsewhere=None,
        stack_discoveries=unreachable,
        exchanges=unreachable,
        membership_discoveries=unreachable,
        refreshes=unreachable,
    )
    warm = FakeWorld(scenario)
    assert warm.acquire() == Success(entry)
    assert warm.names() == ["read_cache"]
    cold = FakeWorld(replace(scenario, disk=Failure("no file")))
    assert isinstance(cold.acquire(), Failure)
    assert cold.names() == ["read_cache", "locked", "read_cache", "read_access"]
    assert {"locked", "read_access"} <= NETWORK_EFFECTS
