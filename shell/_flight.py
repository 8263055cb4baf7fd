"""Tokens for async callers: one acquisition in flight per source, off the event loop.

Theory of operation. A task asking for a token first reads the source's fresh
in-memory token (`TokenSource.cached_token`): no thread, no lock, no await.
Otherwise it joins the source's acquisition in flight, starting one if there
is none. A flight is a plain thread running the blocking `token_result()`
(the stack's file lock, the cache files, the network) to its end, whatever
happens to the tasks waiting for it; each event loop with tasks waiting gets
one `anyio.Event`, set from that thread through the loop's own thread-safe
scheduling when the flight lands. Hence:

- the event loop never blocks on a file lock or a request: it only waits on an Event;
- N tasks on a cold source make one acquisition in one thread (not one of
  anyio's 40 worker threads each, which would also starve other users of them);
- a task cancelled while it waits just stops waiting: the flight is not a
  task, so it cannot be cancelled half-way; it releases the lock and finishes
  its write as a sync caller would, and the other tasks get its token.

States of one flight, keyed by (source, rejected token): absent -> flying
(tasks join; their loops are recorded) -> landed (result set and the flight
removed, in one step under `_FLIGHTS_LOCK`, so a later task starts a new one
or finds the token in memory) -> every recorded loop woken. A flight for a
rejected token (a 401) first drops it (`invalidate`), then acquires.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from returns.result import Result
from stacktoken.core._errors import AcquireError
from stacktoken.core._types import CachedToken

from ._exceptions import as_exception

if TYPE_CHECKING:
    import anyio

    from ._source import TokenSource

__all__ = ["token_async"]

Schedule = Callable[[Callable[[], object]], object]


@dataclass(slots=True)
class _Flight:
    result: Result[CachedToken, AcquireError] | None = None
    crash: Exception | None = None  # a bug in the acquisition, re-raised to every waiter
    waiters: dict[object, tuple[anyio.Event, Schedule]] = field(default_factory=dict)


_FLIGHTS_LOCK = threading.Lock()  # held for dictionary updates only, never across I/O
_FLIGHTS: WeakKeyDictionary[TokenSource, dict[str | None, _Flight]] = WeakKeyDictionary()


def _forget_flights_after_fork() -> None:
    """In a forked child, the parent's flights have no thread to land them, and the
    lock may have been held by a thread that is not here: start afresh."""
    global _FLIGHTS_LOCK, _FLIGHTS  # noqa: PLW0603 - the state a fork leaves stale
    _FLIGHTS_LOCK = threading.Lock()
    _FLIGHTS = WeakKeyDictionary()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_forget_flights_after_fork)


async def token_async(source: TokenSource, rejected: str | None = None) -> str:
    """The source's token, without blocking the event loop; raises `StackTokenError`.

    With `rejected` (a token a server refused), that token is dropped first,
    unless the source already holds another one, which is then returned.
    """
    fresh = source.cached_token()
    if fresh is not None and fresh != rejected:
        return fresh
    if rejected is None:
        # A renewal in flight: a task holding a fresh token need not wait for it.
        with _FLIGHTS_LOCK:
            flying = None in _FLIGHTS.get(source, {})
        held = source.held_token() if flying else None
        if held is not None:
            return held
    flight = await _join(source, rejected)
    if flight.crash is not None:
        raise flight.crash
    assert flight.result is not None  # set before any waiter is woken
    token = flight.result.value_or(None)
    if token is None:
        raise as_exception(flight.result.failure())
    return token.access_token


async def _join(source: TokenSource, rejected: str | None) -> _Flight:
    import anyio  # httpx's own dependency, loaded by async callers only

    loop, schedule = _current_loop()
    with _FLIGHTS_LOCK:
        flights = _FLIGHTS.setdefault(source, {})
        flight = flights.get(rejected)
        start = flight is None
        if flight is None:
            flight = flights[rejected] = _Flight()
        waiter = flight.waiters.get(loop)
        if waiter is None:
            waiter = flight.waiters[loop] = (anyio.Event(), schedule)
    if start:
        try:
            thread = threading.Thread(
                target=_fly, args=(source, rejected, flight), name="stacktoken-acquire"
            )
            thread.start()
        except RuntimeError as error:  # no thread to be had: fail this flight's waiters
            _land(source, rejected, flight, crash=error)
    await waiter[0].wait()
    return flight


def _fly(source: TokenSource, rejected: str | None, flight: _Flight) -> None:
    try:
        if rejected is not None:
            source.invalidate(rejected)
        result = source.token_result()
    except Exception as error:  # errors are values; this is a bug, but waiters must wake
        _land(source, rejected, flight, crash=error)
    except BaseException as error:
        # SystemExit from a log handler, say: this thread ends either way, and waiters
        # must wake (a flight that never lands blocks its source's async callers for good).
        crash = RuntimeError(f"the acquisition was stopped by {type(error).__name__}")
        _land(source, rejected, flight, crash=crash)
    else:
        _land(source, rejected, flight, result=result)


def _land(
    source: TokenSource,
    rejected: str | None,
    flight: _Flight,
    *,
    result: Result[CachedToken, AcquireError] | None = None,
    crash: Exception | None = None,
) -> None:
    with _FLIGHTS_LOCK:
        flight.result, flight.crash = result, crash
        flights = _FLIGHTS.get(source)
        if flights is not None and flights.get(rejected) is flight:
            del flights[rejected]
        waiters = list(flight.waiters.values())
    for event, schedule in waiters:
        # A loop closed meanwhile (or trio's run finished) has nobody left waiting.
        with contextlib.suppress(RuntimeError):
            schedule(event.set)


def _current_loop() -> tuple[object, Schedule]:
    """The running event loop, and how another thread schedules a callback on it."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not asyncio: anyio's other backend
        import trio  # type: ignore[import-not-found,unused-ignore]

        token = trio.lowlevel.current_trio_token()
        return token, token.run_sync_soon
    return loop, loop.call_soon_threadsafe
