"""The acquisition workflow (DESIGN §1) over generated timelines of effect outcomes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from fakes import CACHE_EFFECTS, NETWORK_EFFECTS, Call, FakeWorld, form_value, with_cache_write
from hypothesis import event, given, note
from hypothesis import strategies as st
from returns.result import Failure, Success
from stacktoken.core import (
    REFRESH_REJECTIONS,
    AuthRequired,
    CachedToken,
    LocalError,
    OAuthError,
    RemoteError,
    Settings,
    StackAccess,
    TokenResponse,
    UsageError,
    is_fresh,
    judge_disk_entry,
    needs_refresh,
)
from strategies import SECRET_MARKER, Scenario, acquisitions, scenarios


def _is_invalid_grant(call: Call) -> bool:
    answer = call.answer
    return isinstance(answer, Failure) and (
        isinstance(answer.failure(), OAuthError) and answer.failure().error == "invalid_grant"
    )


def _is_endpoint_gone(call: Call) -> bool:
    answer = call.answer
    return isinstance(answer, Failure) and (
        isinstance(answer.failure(), RemoteError) and answer.failure().endpoint_gone
    )


@given(scenarios(usable_disk=True))
def test_usable_disk_entry_means_no_network_effect(scenario: Scenario) -> None:
    """A disk entry usable at `now` is returned as is, and no network effect runs at all."""
    world = FakeWorld(scenario)
    result = world.acquire()
    note(f"calls: {world.names()}")
    assert isinstance(scenario.disk, Success)
    entry, _ = scenario.disk.unwrap()
    assert result == Success(entry)
    assert NETWORK_EFFECTS.isdisjoint(world.names())
    assert world.names() == ["read_cache"]


@given(st.one_of(scenarios(ttl_zero=False), scenarios(filled_meanwhile=True)))
def test_usable_entry_found_under_the_lock_means_no_network_effect(scenario: Scenario) -> None:
    """A usable entry found by the re-read under the lock is returned with no network effect."""
    world = FakeWorld(scenario)
    result = world.acquire()
    names = world.names()
    note(f"calls: {names}")
    reads = world.called("read_cache")
    if len(reads) < 2 or not isinstance(reads[1].answer, Success):
        return
    entry, mtime = reads[1].answer.unwrap()
    verdict = judge_disk_entry(
        entry, file_mtime=mtime, settings=scenario.settings, now=scenario.lock_now
    )
    event(f"entry under the lock: {verdict.name}")
    if verdict.usable:
        after_lock = names[names.index("locked") + 1 :]
        assert after_lock == ["read_cache"]
        assert result == Success(entry)


@given(acquisitions(ttl_zero=True))
def test_ttl_zero_never_reads_writes_or_locks_the_cache(scenario: Scenario) -> None:
    """With TTL 0, read_cache, write_cache and locked are never called, whatever happens."""
    world = FakeWorld(scenario)
    world.acquire()
    note(f"calls: {world.names()}")
    assert CACHE_EFFECTS.isdisjoint(world.names())


@given(acquisitions())
def test_membership_discovery_only_when_a_refresh_is_needed_and_at_most_once(
    scenario: Scenario,
) -> None:
    """Membership discovery runs at most once, and only for a stale token or a refused
    exchange; it is redone once more only after the refresh endpoint was found gone."""
    world = FakeWorld(scenario)
    world.acquire()
    names = world.names()
    note(f"calls: {names}")
    discoveries = world.called("discover_membership")
    assert [call.argument for call in discoveries] in ([], [False], [False, True])
    if len(discoveries) == 2:
        event("membership token endpoint gone: rediscovered")
        second = world.calls.index(discoveries[1])
        assert world.calls[second - 1].effect == "refresh"
        assert _is_endpoint_gone(world.calls[second - 1])
    if "discover_membership" not in names:
        assert "refresh" not in names  # no refresh without the membership's token endpoint
        return
    access = world.first_access()
    stale = needs_refresh(access, settings=scenario.settings, now=world.decision_now)
    before = world.calls[: names.index("discover_membership")]
    refused = any(_is_invalid_grant(call) for call in before if call.effect == "exchange")
    event("stale stack access token" if stale else "exchange refused with invalid_grant")
    assert stale or refused
    assert access.refresh_token is not None


def _rotation(call: Call, before: StackAccess) -> StackAccess | None:
    """What a refresh answer obliges us to save: its new tokens, or the refresh token
    that an otherwise unusable answer rotated. None: nothing was rotated."""
    match call.answer:
        case Success(TokenResponse() as response):
            return StackAccess(
                token=response.access_token,
                refresh_token=response.refresh_token or before.refresh_token,
                expiry=None,
                extra=before.extra,
            )
        case Failure(RemoteError(rotated_refresh_token=str(stray))):
            return replace(before, refresh_token=stray)
    return None


@given(acquisitions())
def test_rotated_refresh_token_is_written_before_the_exchange_and_never_lost(
    scenario: Scenario,
) -> None:
    """A refresh's new tokens reach accesses.json before anything else runs, and stay there;
    if they cannot be saved, the acquisition fails with LocalError and no exchange follows."""
    world = FakeWorld(scenario)
    result = world.acquire()
    note(f"calls: {world.names()}")
    refreshes = [i for i, call in enumerate(world.calls) if call.effect == "refresh"]
    assert len(refreshes) <= 1
    if not refreshes:
        return
    start = refreshes[0]
    before = world.first_access()
    expected = _rotation(world.calls[start], before)
    if expected is None:
        return
    after = world.calls[start + 1 :]
    note(f"after the refresh: {[call.effect for call in after]}")
    # The very next effect saves the rotation: nothing can fail in between.
    assert after[0].effect == "write_access"
    written = after[0].argument
    assert isinstance(written, StackAccess)
    assert written.token == expected.token
    assert written.refresh_token == expected.refresh_token
    assert written.extra == expected.extra
    if isinstance(after[0].answer, Success):
        event("rotation saved")
        assert world.accesses == written  # never overwritten, whatever failed later
        assert [call.effect for call in after].count("write_access") == 1
        for call in after:
            if call.effect == "exchange":
                assert form_value(call.argument, "assertion") == written.token
    else:
        event("rotation could not be saved")
        assert isinstance(result, Failure)
        assert isinstance(result.failure(), LocalError)
        assert "exchange" not in [call.effect for call in after]
    if isinstance(world.calls[start].answer, Failure):
        event("unusable answer that rotated the refresh token")
        assert isinstance(result, Failure)
        assert "exchange" not in [call.effect for call in after]


@given(st.one_of(acquisitions(ttl_zero=False), scenarios(ttl_zero=False, cold=True, happy=True)))
def test_failed_cache_write_never_fails_the_acquisition(scenario: Scenario) -> None:
    """The same timeline gives the same result whether the cache write succeeds or fails."""
    succeeding = FakeWorld(with_cache_write(scenario, fails=False))
    failing = FakeWorld(with_cache_write(scenario, fails=True))
    expected = succeeding.acquire()
    actual = failing.acquire()
    note(f"calls: {failing.names()}")
    event("cache written" if "write_cache" in failing.names() else "no cache write")
    assert actual == expected
    assert failing.names() == succeeding.names()


@given(acquisitions())
def test_returned_token_is_fresh_unless_just_issued_short_lived_and_then_not_cached(
    scenario: Scenario,
) -> None:
    """A returned token is fresh at `now`, except a just-issued one with a short or unknown
    lifetime, which is returned but never written to the cache."""
    world = FakeWorld(scenario)
    result = world.acquire()
    note(f"calls: {world.names()}")
    settings = scenario.settings
    now = world.decision_now
    for call in world.called("write_cache"):
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
        for call in world.called("exchange")
        if isinstance(call.answer, Success)
    ]
    assert issued, "a stale token came from the disk"
    assert token.access_token == issued[-1].access_token
    assert token.expiry == issued[-1].expiry
    assert all(call.argument != token for call in world.called("write_cache"))
    assert all(
        isinstance(call.argument, CachedToken) and call.argument.access_token != token.access_token
        for call in world.called("write_cache")
    )


@given(acquisitions())
def test_invalid_grant_leads_to_at_most_one_refresh_and_one_retry(scenario: Scenario) -> None:
    """After the stack answers invalid_grant, at most one refresh and one more exchange follow
    (plus one rediscovery retry if the endpoint is gone), then AuthRequired if refused again."""
    world = FakeWorld(scenario)
    result = world.acquire()
    exchanges = world.called("exchange")
    note(f"calls: {world.names()}")
    refreshes = world.called("refresh")
    assert len(refreshes) <= 2
    if len(refreshes) == 2:  # the first found its endpoint gone; it was rediscovered
        assert _is_endpoint_gone(refreshes[0])
    first = next((i for i, call in enumerate(exchanges) if _is_invalid_grant(call)), None)
    if first is None:
        return
    event("exchange refused with invalid_grant")
    later = exchanges[first + 1 :]
    retries = [
        call
        for previous, call in zip(exchanges[first:], later, strict=False)
        if not _is_endpoint_gone(previous)
    ]
    assert len(retries) <= 1
    if exchanges[-1] is not exchanges[first] and _is_invalid_grant(exchanges[-1]):
        assert isinstance(result, Failure)
        assert isinstance(result.failure(), AuthRequired)


@given(acquisitions())
def test_token_endpoint_rediscovered_only_after_it_is_gone_and_once_per_attempt(
    scenario: Scenario,
) -> None:
    """A forced stack discovery directly follows an exchange answered "gone", and each
    exchange attempt (which starts with a normal discovery) forces at most one."""
    world = FakeWorld(scenario)
    result = world.acquire()
    note(f"calls: {world.names()}")
    discoveries = [
        (i, call) for i, call in enumerate(world.calls) if call.effect == "discover_stack"
    ]
    forced_in_attempt = 0
    for index, call in discoveries:
        if not call.argument:
            forced_in_attempt = 0
            continue
        forced_in_attempt += 1
        assert forced_in_attempt <= 1
        previous = world.calls[index - 1]
        assert previous.effect == "exchange" and _is_endpoint_gone(previous)
    exchanges = world.called("exchange")
    if len(exchanges) >= 2 and all(_is_endpoint_gone(call) for call in exchanges):
        event("gone again after the rediscovery")
        assert isinstance(result, Failure) and isinstance(result.failure(), RemoteError)


@given(acquisitions())
def test_refused_refresh_is_rescued_only_by_a_fresh_token_another_program_saved(
    scenario: Scenario,
) -> None:
    """After the refresh token is rejected, the only way on is a different stack access token,
    fresh at `now`, that fctl wrote to accesses.json; otherwise the user must log in again."""
    world = FakeWorld(scenario)
    result = world.acquire()
    names = world.names()
    note(f"calls: {names}")
    if "refresh" not in names:
        return
    start = names.index("refresh")
    answer = world.calls[start].answer
    if not (
        isinstance(answer, Failure)
        and isinstance(answer.failure(), OAuthError)
        and answer.failure().error in REFRESH_REJECTIONS
    ):
        return
    used = world.first_access()
    later = world.calls[start + 1 :]
    assert "write_access" not in [call.effect for call in later]
    assertions = [
        form_value(call.argument, "assertion") for call in later if call.effect == "exchange"
    ]
    if not assertions:
        event("refresh rejected: log in again")
        assert isinstance(result, Failure)
        return
    event("rescued by a token fctl saved")
    rescue = world.accesses
    assert rescue is not None
    assert rescue.token != used.token
    assert is_fresh(rescue.expiry, settings=scenario.settings, now=world.decision_now)
    assert set(assertions) == {rescue.token}


@given(acquisitions())
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


@given(acquisitions())
def test_secrets_never_reach_a_log_line_or_the_result_repr(scenario: Scenario) -> None:
    """No token, refresh token or assertion appears in a log line or in repr/str of the result."""
    world = FakeWorld(scenario)
    result = world.acquire()
    for line in world.logs:
        assert SECRET_MARKER not in line, line
    assert SECRET_MARKER not in repr(result)
    assert SECRET_MARKER not in str(result)
    for call in world.calls:
        assert SECRET_MARKER not in repr(call.argument)


@given(scenarios(ttl_zero=False))
def test_disk_verdict_of_first_read_decides_whether_the_lock_is_taken(scenario: Scenario) -> None:
    """With the cache on, the lock is taken exactly when the first read is not usable at `now`."""
    world = FakeWorld(scenario)
    world.acquire()
    usable = False
    match scenario.disk:
        case Success((entry, mtime)):
            verdict = judge_disk_entry(
                entry, file_mtime=mtime, settings=scenario.settings, now=scenario.now
            )
            event(f"first read: {verdict.name}")
            usable = verdict.usable
        case _:
            event("first read: miss")
    assert ("locked" in world.names()) == (not usable)


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
