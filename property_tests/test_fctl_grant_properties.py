"""The fctl stack grant (design.md §1 step 3, §5, §6) over generated effect timelines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fakes import Call, FakeWorld, form_value
from hypothesis import event, example, given, note
from returns.result import Failure, Success
from stacktoken.core._cache import is_fresh, needs_refresh
from stacktoken.core._errors import AuthRequired, LocalError, OAuthError, RemoteError
from stacktoken.core._fctl_grant import REFRESH_REJECTIONS
from stacktoken.core._record import replace
from stacktoken.core._types import Settings, StackAccess, TokenResponse
from strategies import (
    MEMBERSHIP_DOCUMENT,
    STACK_DOCUMENT,
    Scenario,
    acquisitions,
)

NOW = datetime(2026, 2, 20, 12, tzinfo=UTC)
GONE = RemoteError(message="token endpoint answered 404", endpoint_gone=True)
TIMED_OUT = RemoteError(message="POST timed out", transient=True)


def _is_invalid_grant(call: Call) -> bool:
    """An answer refusing the assertion: invalid_grant, or Formance's 400 server_error."""
    answer = call.answer
    failure = answer.failure() if isinstance(answer, Failure) else None
    return isinstance(failure, OAuthError) and (
        failure.error == "invalid_grant"
        or (failure.error == "server_error" and failure.status_code == 400)
    )


def _is_endpoint_gone(call: Call) -> bool:
    answer = call.answer
    return isinstance(answer, Failure) and (
        isinstance(answer.failure(), RemoteError) and answer.failure().endpoint_gone
    )


def _stale_access() -> StackAccess:
    return StackAccess(
        token="SECRET-access-old",
        refresh_token="SECRET-refresh-old",
        expiry=NOW - timedelta(minutes=1),
    )


def _refresh_scenario(*refreshes: object) -> Scenario:
    """A cold run whose stack access token needs a refresh, the refresh answering `refreshes`."""
    issued = TokenResponse(
        access_token="SECRET-issued", token_type="Bearer", expiry=NOW + timedelta(hours=1)
    )
    refreshed = TokenResponse(
        access_token="SECRET-refreshed",
        token_type="Bearer",
        expiry=NOW + timedelta(hours=1),
        refresh_token="SECRET-refresh-new",
    )
    answers = tuple(Success(refreshed) if item == "ok" else Failure(item) for item in refreshes)
    return Scenario(
        now=NOW,
        settings=Settings(),
        lock_wait=timedelta(0),
        disk=Failure("no such file"),
        other_writer=None,
        cache_write_fails=False,
        lock_fails=False,
        access=_stale_access(),
        access_write_fails=False,
        rotated_elsewhere=None,
        stack_discoveries=(Success(STACK_DOCUMENT),),
        exchanges=(Success(issued),),
        membership_discoveries=(Success(MEMBERSHIP_DOCUMENT),),
        refreshes=answers,  # type: ignore[arg-type]
    )


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


@pytest.mark.parametrize(
    "answers",
    [
        # Found by hypothesis in CI: the refresh endpoint unreachable, so it is
        # rediscovered and the same refresh token sent again. Legitimate: the IdP never had it.
        (GONE, GONE),
        (GONE, "ok"),
    ],
    ids=["gone-twice", "gone-then-ok"],
)
def test_refresh_token_resent_only_after_the_idp_never_received_it_examples(
    answers: tuple[object, ...],
) -> None:
    """Regressions: a refresh answered "gone" is resent once, at the rediscovered endpoint."""
    world = FakeWorld(_refresh_scenario(*answers))
    world.acquire()
    sent = [form_value(call.argument, "refresh_token") for call in world.called("refresh")]
    assert sent == ["SECRET-refresh-old", "SECRET-refresh-old"]
    assert [call.argument for call in world.called("discover_membership")] == [False, True]


@given(acquisitions())
@example(_refresh_scenario(GONE, GONE))
@example(_refresh_scenario(TIMED_OUT, "ok"))
def test_refresh_token_is_sent_again_only_after_an_answer_proving_it_unspent(
    scenario: Scenario,
) -> None:
    """A refresh token is spent at most once by a request the IdP received: it is sent
    again only when every earlier request with it was answered "gone" (404, refused
    connection), i.e. never reached a token endpoint able to spend it."""
    world = FakeWorld(scenario)
    world.acquire()
    refreshes = world.called("refresh")
    note(f"calls: {world.names()}")
    for position, call in enumerate(refreshes):
        token = form_value(call.argument, "refresh_token")
        earlier = [
            c for c in refreshes[:position] if form_value(c.argument, "refresh_token") == token
        ]
        if earlier:
            event("refresh token sent again")
        assert all(_is_endpoint_gone(c) for c in earlier), [c.answer for c in earlier]


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
    refreshes = [
        i
        for i, call in enumerate(world.calls)
        if call.effect == "refresh" and not _is_endpoint_gone(call)
    ]
    assert len(refreshes) <= 1  # one refresh reached the IdP at most (the others were "gone")
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
