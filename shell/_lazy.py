"""A thread-safe lazy value driven by core's lazy-init state machine.

The state lives behind one lock; the initialiser runs outside it, so callers
that join an attempt wait on that attempt's own event and get its outcome.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar
from weakref import WeakSet

from returns.result import Result, Success
from stacktoken.core._lazy import (
    Idle,
    Join,
    LazyState,
    Running,
    Start,
    Use,
    on_forget,
    on_request,
    on_settle,
)

__all__ = ["Lazy"]

T = TypeVar("T")
E = TypeVar("E")


class _Attempt(Generic[T, E]):
    """One initialisation attempt that callers may join."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.outcome: Result[T, E] | None = None
        self.raised: BaseException | None = None


class Lazy(Generic[T, E]):
    """Runs `initialise` on first use; keeps a success, retries after a failure."""

    def __init__(self, initialise: Callable[[], Result[T, E]]) -> None:
        self._initialise = initialise
        self._lock = threading.Lock()
        self._state: LazyState[T] = Idle()
        self._in_flight: _Attempt[T, E] | None = None
        _ALL.add(self)

    def _after_fork(self) -> None:
        """In a forked child: an attempt in flight ran in a thread the child does not
        have, so a caller joining it would wait for ever; the next caller starts anew."""
        self._lock = threading.Lock()
        if isinstance(self._state, Running):
            self._state = Idle(attempts=self._state.attempt)  # its settling is ignored
        self._in_flight = None

    def get(self) -> Result[T, E]:
        """The value, or the failure of the attempt this call started or joined."""
        with self._lock:
            self._state, action = on_request(self._state)
            match action:
                case Use(value=value):
                    return Success(value)
                case Start():
                    attempt: _Attempt[T, E] = _Attempt()
                    self._in_flight = attempt
                case Join():
                    assert self._in_flight is not None  # Running always has an attempt
                    attempt = self._in_flight
        if isinstance(action, Start):
            return self._run(action.attempt, attempt)
        attempt.done.wait()
        if attempt.raised is not None:
            raise attempt.raised
        assert attempt.outcome is not None  # set before `done`
        return attempt.outcome

    def forget(self) -> None:
        """Drop a remembered value (it turned out stale); the next `get` starts anew."""
        with self._lock:
            self._state = on_forget(self._state)

    def _run(self, number: int, attempt: _Attempt[T, E]) -> Result[T, E]:
        try:
            attempt.outcome = self._initialise()
        except BaseException as error:
            attempt.raised = error  # joiners re-raise it rather than hang
            raise
        finally:
            with self._lock:
                if attempt.outcome is not None:
                    self._state = on_settle(self._state, number, attempt.outcome)
                else:
                    self._state = Idle(attempts=number)
                self._in_flight = None
            attempt.done.set()
        return attempt.outcome


_ALL: WeakSet[Lazy[Any, Any]] = WeakSet()


def _reset_after_fork() -> None:
    for lazy in list(_ALL):
        lazy._after_fork()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_reset_after_fork)
