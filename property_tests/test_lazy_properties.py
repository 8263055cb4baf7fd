"""Lazy initialisation (docs/design.md §6) as a pure state machine, under any interleaving."""

from __future__ import annotations

from hypothesis import given, note
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from returns.result import Failure, Result, Success
from stacktoken.core._errors import AcquireError
from stacktoken.core._lazy import (
    Idle,
    Join,
    LazyState,
    Ready,
    Running,
    Start,
    Use,
    on_request,
    on_settle,
)
from strategies import acquire_errors, outcomes, timelines

VALUES = st.integers(min_value=0, max_value=1000)
OUTCOMES = outcomes(VALUES, acquire_errors())


class LazyInitMachine(RuleBasedStateMachine):
    """Callers request the value and attempts settle, in any order.

    The model: `in_flight` is the attempt callers must wait for, `waiting` the
    callers that joined it, `value` the first success once there is one.
    """

    def __init__(self) -> None:
        super().__init__()
        self.state: LazyState[int] = Idle()
        self.in_flight: int | None = None
        self.waiting: list[int] = []
        self.value: int | None = None
        self.attempts = 0
        self.callers = 0

    @initialize()
    def nothing_tried_yet(self) -> None:
        assert self.state == Idle()

    @rule()
    def request(self) -> None:
        """A new caller asks for the value."""
        self.callers += 1
        self.state, action = on_request(self.state)
        note(f"caller {self.callers}: {action!r}")
        if self.value is not None:
            assert action == Use(value=self.value)  # never tried again after a success
        elif self.in_flight is not None:
            assert action == Join(attempt=self.in_flight)  # single flight
            self.waiting.append(self.callers)
        else:
            assert action == Start(attempt=self.attempts + 1)  # tried again after a failure
            self.attempts += 1
            self.in_flight = self.attempts
            self.waiting = [self.callers]

    @precondition(lambda self: self.in_flight is not None)
    @rule(outcome=OUTCOMES)
    def settle(self, outcome: Result[int, AcquireError]) -> None:
        """The attempt in flight ends; its callers all get its outcome."""
        assert self.in_flight is not None
        self.state = on_settle(self.state, self.in_flight, outcome)
        note(f"attempt {self.in_flight} settled: {outcome!r} for callers {self.waiting}")
        match outcome:
            case Success(value):
                self.value = value
                assert self.state == Ready(value=value, attempt=self.in_flight)
            case Failure(_):
                assert self.state == Idle(attempts=self.in_flight)  # the failure is not kept
        self.in_flight = None
        self.waiting = []

    @rule(attempt=st.integers(min_value=-1, max_value=12), outcome=OUTCOMES)
    def settle_a_stale_attempt(self, attempt: int, outcome: Result[int, AcquireError]) -> None:
        """A late report for an attempt that is not in flight changes nothing."""
        if attempt == self.in_flight:
            return
        before = self.state
        self.state = on_settle(self.state, attempt, outcome)
        assert self.state == before

    @invariant()
    def state_matches_the_model(self) -> None:
        if self.value is not None:
            assert isinstance(self.state, Ready) and self.state.value == self.value
        elif self.in_flight is not None:
            assert self.state == Running(attempt=self.in_flight)
        else:
            assert self.state == Idle(attempts=self.attempts)


TestLazyInitUnderAnyInterleaving = LazyInitMachine.TestCase


@given(timelines(VALUES, acquire_errors()), st.integers(min_value=1, max_value=4))
def test_sequential_callers_retry_each_failure_and_keep_the_first_success(
    timeline: tuple[Result[int, AcquireError], ...], extra_calls: int
) -> None:
    """One caller at a time: one attempt per call until the first success, none after it."""
    state: LazyState[int] = Idle()
    attempts: list[Result[int, AcquireError]] = []
    received: list[Result[int, AcquireError]] = []
    for _ in range(len(timeline) + extra_calls):
        state, action = on_request(state)
        match action:
            case Start(attempt=attempt):
                outcome = timeline[min(attempt - 1, len(timeline) - 1)]
                attempts.append(outcome)
                state = on_settle(state, attempt, outcome)
                received.append(outcome)
            case Use(value=value):
                received.append(Success(value))
            case Join():
                raise AssertionError("nobody else is in flight")
    first_success = next(
        (i for i, outcome in enumerate(timeline) if isinstance(outcome, Success)), None
    )
    note(f"attempts: {attempts}")
    if first_success is None:
        assert attempts == [timeline[min(i, len(timeline) - 1)] for i in range(len(received))]
    else:
        assert attempts == list(timeline[: first_success + 1])
        assert received[first_success:] == [timeline[first_success]] * (
            len(received) - first_success
        )
