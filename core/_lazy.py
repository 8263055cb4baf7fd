"""Lazy initialisation as a pure state machine (docs/design.md §6).

Theory of operation
-------------------
A lazily initialised value (the membership IdP's discovery document) starts
`Idle`: nothing has been tried, no network touched. The first caller to ask
is told to `Start` an attempt, and the state becomes `Running`. Callers that
ask while an attempt runs are told to `Join` it: they wait for that attempt
and get its outcome, so concurrent callers share one attempt (single flight).
When the attempt settles:

    Running --success--> Ready(value)   every later caller is told to `Use` it
    Running --failure--> Idle           the failure is returned to the callers
                                        of that attempt and NOT remembered;
                                        the next caller starts a new attempt
    Ready   --forget---> Idle           the value turned out stale (a token
                                        endpoint it named is gone): the next
                                        caller starts a new attempt

`fctl` once kept a failed lazy init forever; here a transient failure can
never outlive the attempt that met it. The shell's thread-safe wrapper holds
the state behind a lock and only drives these transitions.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from returns.result import Result, Success

from ._record import Record

__all__ = [
    "Idle",
    "Join",
    "LazyAction",
    "LazyState",
    "Ready",
    "Running",
    "Start",
    "Use",
    "on_forget",
    "on_request",
    "on_settle",
]

T = TypeVar("T")
E = TypeVar("E")


class Idle(Record):
    """No value, nothing in flight; `attempts` have been made so far."""

    attempts: int = 0


class Running(Record):
    """Attempt number `attempt` is in flight."""

    attempt: int


class Ready(Record, Generic[T]):
    """Attempt number `attempt` succeeded with `value`, for good."""

    value: T
    attempt: int


class Start(Record):
    """Run attempt `attempt`, then report its outcome with `on_settle`."""

    attempt: int


class Join(Record):
    """Wait for attempt `attempt`, in flight, and take its outcome."""

    attempt: int


class Use(Record, Generic[T]):
    """The value is known."""

    value: T


LazyState = Idle | Running | Ready[T]
LazyAction = Start | Join | Use[T]


def on_request(state: LazyState[T]) -> tuple[LazyState[T], LazyAction[T]]:
    """A caller wants the value: what it must do, and the state after."""
    match state:
        case Ready(value=value):
            return state, Use(value=value)
        case Running(attempt=attempt):
            return state, Join(attempt=attempt)
        case Idle(attempts=attempts):
            return Running(attempt=attempts + 1), Start(attempt=attempts + 1)


def on_settle(state: LazyState[T], attempt: int, outcome: Result[T, E]) -> LazyState[T]:
    """Attempt `attempt` ended with `outcome`: remember a success, forget a failure."""
    if not (isinstance(state, Running) and state.attempt == attempt):
        return state  # not the attempt in flight: nothing to settle
    match outcome:
        case Success(value):
            return Ready(value=value, attempt=attempt)
        case _:
            return Idle(attempts=attempt)


def on_forget(state: LazyState[T]) -> LazyState[T]:
    """The value is known to be stale: forget it. An attempt in flight is left alone."""
    if isinstance(state, Ready):
        return Idle(attempts=state.attempt)
    return state
