"""Properties of the device-flow polling (RFC 8628 §3.4-3.5, core/_device_polling.py and
its driver in core/_device.py), played back on a fake clock: every wait moves the clock,
every poll answers from a script."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import event, given, note
from hypothesis import strategies as st
from returns.result import Failure, Result, Success
from stacktoken.core._device import (
    DeviceAuthorization,
    DeviceEffects,
    device_login,
    login_device_request,
    run_device_flow,
)
from stacktoken.core._device_polling import (
    POLL_BACKOFF_CAP,
    SLOW_DOWN_STEP,
    DevicePolling,
    DeviceSend,
    DeviceWait,
    device_step,
)
from stacktoken.core._errors import AcquireError, AuthRequired, OAuthError, RemoteError
from stacktoken.core._profile import LoginTokens
from stacktoken.core._types import TokenRequest, TokenResponse
from strategies import DEVICE_TERMINAL, DeviceScript, aware_datetimes, device_scripts

START = datetime(2030, 1, 1, tzinfo=UTC)
MAX_TURNS = 100_000  # the fake refuses to loop forever: the flow must end by itself
BACKOFF_CAP = timedelta(seconds=60)  # the longest wait after failed polls (core/_device_polling.py)


@dataclass
class FakeIdP:
    """Plays a `DeviceScript`: the clock moves only by waits; polls are recorded."""

    script: DeviceScript
    now: datetime = START
    sends: list[datetime] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    turns: int = 0

    def clock(self) -> datetime:
        self.turns += 1
        assert self.turns < MAX_TURNS, "the flow does not end"
        return self.now

    def authorize(self, _: TokenRequest) -> Result[DeviceAuthorization, AcquireError]:
        self.log.append("authorize")
        return Success(
            DeviceAuthorization(
                device_code="SECRET-device-code",
                user_code="ABCD-EFGH",
                verification_uri="https://idp.example/device",
                verification_uri_complete=None,
                expires_in=timedelta(seconds=self.script.expires_in),
                interval=timedelta(seconds=self.script.interval),
            )
        )

    def wait_until(self, until: datetime) -> None:
        index = len(self.sends)
        late = self.script.oversleep[index] if index < len(self.script.oversleep) else 0.0
        self.now = max(self.now, until) + timedelta(seconds=late)

    def poll(self, _: TokenRequest) -> Result[TokenResponse, AcquireError]:
        self.sends.append(self.now)
        index = len(self.sends) - 1
        answer = (
            self.script.answers[index]
            if index < len(self.script.answers)
            else "authorization_pending"
        )
        self.answers.append(answer)
        self.log.append(f"poll:{answer}")
        if answer == "success":
            return Success(
                TokenResponse(
                    access_token="SECRET-access",
                    token_type="Bearer",
                    expiry=None,
                    refresh_token="SECRET-refresh",
                    id_token="SECRET-id",
                )
            )
        if answer == "transient":
            return Failure(RemoteError(message="timed out", transient=True))
        return Failure(OAuthError(error=answer))

    def effects(self) -> DeviceEffects:
        return DeviceEffects(
            authorize=self.authorize,
            show=lambda _: self.log.append("show"),
            poll=self.poll,
            wait_until=self.wait_until,
            clock=self.clock,
        )


def _run(script: DeviceScript) -> tuple[FakeIdP, Result[TokenResponse, AcquireError]]:
    idp = FakeIdP(script)
    result = run_device_flow(
        login_device_request("https://idp.example/device/authorize"),
        idp.effects(),
        token_endpoint="https://idp.example/token",
    )
    note(f"answers={idp.answers} result={result}")
    return idp, result


def _intervals_in_force(script: DeviceScript, answers: list[str]) -> list[float]:
    """The interval in force before each send: the start one, +5 s per slow_down seen."""
    interval = script.interval
    intervals = []
    for answer in answers:
        intervals.append(interval)
        if answer == "slow_down":
            interval += SLOW_DOWN_STEP.total_seconds()
    return intervals


@given(device_scripts())
def test_device_flow_never_polls_faster_than_the_current_interval(script: DeviceScript) -> None:
    """Each poll comes at least the interval in force after the previous answer (or the start)."""
    idp, _ = _run(script)
    previous = START
    for sent, interval in zip(idp.sends, _intervals_in_force(script, idp.answers), strict=True):
        assert (sent - previous).total_seconds() >= interval - 1e-6
        previous = sent
    event(f"{len(idp.sends)} polls")


@given(device_scripts())
def test_device_flow_slow_down_raises_the_interval_by_five_seconds(script: DeviceScript) -> None:
    """After a slow_down, the next poll waits at least the interval before it plus 5 s."""
    idp, _ = _run(script)
    intervals = _intervals_in_force(script, idp.answers)
    for index, answer in enumerate(idp.answers[:-1]):
        if answer == "slow_down":
            assert intervals[index + 1] == intervals[index] + 5
            gap = (idp.sends[index + 1] - idp.sends[index]).total_seconds()
            assert gap >= intervals[index] + 5 - 1e-6


@given(
    st.builds(
        DevicePolling,
        interval=st.integers(1, 600).map(lambda s: timedelta(seconds=s)),
        deadline=aware_datetimes(),
        not_before=aware_datetimes(),
    ),
    aware_datetimes(),
)
def test_device_step_slow_down_adds_five_seconds_to_any_state(
    state: DevicePolling, now: datetime
) -> None:
    """Whatever the state and the time, slow_down raises the interval by exactly 5 s."""
    after, action = device_step(state, Failure(OAuthError(error="slow_down")), now=now)
    assert after.interval == state.interval + SLOW_DOWN_STEP
    if isinstance(action, DeviceSend | DeviceWait):
        assert after.not_before == now + after.interval
    if isinstance(action, DeviceSend):
        raise AssertionError("a slow_down is never followed by an immediate poll")


def _failures_in_a_row(answers: list[str]) -> list[int]:
    """How many transient failures in a row end at each answer (0: not a failure)."""
    runs, run = [], 0
    for answer in answers:
        run = run + 1 if answer == "transient" else 0
        runs.append(run)
    return runs


@given(device_scripts())
def test_device_flow_transient_failures_lengthen_the_wait(script: DeviceScript) -> None:
    """After k failed polls in a row, the next poll waits at least the interval doubled
    k times (at most 60 s), unless that passes the code's last chance (deadline -
    interval): then it comes at that last chance, and never sooner than the interval."""
    idp, _ = _run(script)
    deadline = START + timedelta(seconds=script.expires_in)
    intervals = _intervals_in_force(script, idp.answers)
    runs = _failures_in_a_row(idp.answers)
    for index, (sent, following) in enumerate(zip(idp.sends, idp.sends[1:], strict=False)):
        if runs[index] == 0:
            continue
        interval = timedelta(seconds=intervals[index])
        # Spelled out here, not via core's poll_backoff: the property is the spec.
        backoff = max(interval, min(interval * 2 ** min(runs[index], 20), BACKOFF_CAP))
        earliest = sent + backoff
        if earliest > deadline - interval:
            earliest = max(sent + interval, deadline - interval)
        note(f"poll {index}: {runs[index]} failures in a row, interval {interval}")
        assert following >= earliest - timedelta(microseconds=1)
        event(f"{min(runs[index], 4)} failures in a row")


@given(
    st.builds(
        DevicePolling,
        interval=st.integers(1, 600).map(lambda s: timedelta(seconds=s)),
        deadline=aware_datetimes(),
        not_before=aware_datetimes(),
        failures=st.integers(0, 40),
    ),
    aware_datetimes(),
    st.sampled_from(
        [
            RemoteError(message="timed out", transient=True),
            OAuthError(error="temporarily_unavailable", status_code=503),
            OAuthError(error="server_error"),
        ]
    ),
)
def test_device_step_backoff_is_bounded_and_never_below_the_interval(
    state: DevicePolling, now: datetime, error: AcquireError
) -> None:
    """Whatever the state: a transient failure counts one more failure in a row; the
    next poll is at least one interval away, at most max(interval, 60 s), and no later
    than the code's last chance (deadline - interval) when one interval still fits;
    a wait never passes the code's end, and is never skipped."""
    after, action = device_step(state, Failure(error), now=now)
    assert after.failures == state.failures + 1
    assert after.interval == state.interval
    wait = after.not_before - now
    assert state.interval <= wait <= max(state.interval, POLL_BACKOFF_CAP)
    assert POLL_BACKOFF_CAP == BACKOFF_CAP
    assert after.not_before <= max(now + state.interval, state.deadline - state.interval)
    assert not isinstance(action, DeviceSend)
    if isinstance(action, DeviceWait):
        assert action.until <= after.deadline
        assert action.reason is not None


@given(device_scripts())
def test_device_flow_stops_by_expires_in(script: DeviceScript) -> None:
    """No poll at or after the code's end; a flow never approved ends as expired."""
    idp, result = _run(script)
    deadline = START + timedelta(seconds=script.expires_in)
    assert all(sent < deadline for sent in idp.sends)
    if not (set(idp.answers) & {"success", "invalid_grant", *DEVICE_TERMINAL}):
        assert isinstance(result, Failure)
        assert isinstance(result.failure(), AuthRequired)
        assert "expired" in result.failure().message


@given(device_scripts())
def test_device_flow_terminal_answers_end_it(script: DeviceScript) -> None:
    """success, access_denied, expired_token (or any unknown error) is the last poll."""
    idp, result = _run(script)
    ending = {"success", "invalid_grant", *DEVICE_TERMINAL}
    for answer in idp.answers[:-1]:
        assert answer not in ending
    if idp.answers and idp.answers[-1] in ending:
        last = idp.answers[-1]
        event(last)
        if last == "success":
            assert isinstance(result, Success)
        elif last in DEVICE_TERMINAL:
            assert isinstance(result, Failure)
            assert isinstance(result.failure(), AuthRequired)
        else:
            assert result == Failure(OAuthError(error="invalid_grant"))


@given(device_scripts(), st.booleans())
def test_device_login_writes_nothing_before_a_verified_success(
    script: DeviceScript, verifies: bool
) -> None:
    """The profile is written once, and only after a success whose ID token verified."""
    idp = FakeIdP(script)
    written: list[LoginTokens] = []

    def verify(token: str) -> Result[Mapping[str, Any], AcquireError]:
        idp.log.append("verify")
        assert token == "SECRET-id"
        if verifies:
            return Success({"sub": "u", "aud": "fctl"})
        return Failure(AuthRequired(message="the ID token was refused"))

    def write(tokens: LoginTokens) -> Result[None, AcquireError]:
        idp.log.append("write")
        written.append(tokens)
        return Success(None)

    result = device_login(
        login_device_request("https://idp.example/device/authorize"),
        idp.effects(),
        token_endpoint="https://idp.example/token",
        verify_id_token=verify,
        write=write,
    )
    succeeded = "success" in idp.answers
    assert idp.log.count("verify") == (1 if succeeded else 0)
    if succeeded and verifies:
        assert idp.log[-3:] == ["poll:success", "verify", "write"]
        assert len(written) == 1
        assert isinstance(result, Success)
    else:
        assert written == []
        assert "write" not in idp.log
        assert isinstance(result, Failure)
    # Nothing secret leaks into the outcome's repr.
    assert "SECRET" not in repr(result)
