"""Async callers (design.md §10): the event loop never blocks, one acquisition, safe cancellation.

The premises hold by construction: the stack's token endpoint is held with
`Fault.hold(handled, released)`, so the acquisition is known to be in flight
(the server has issued the token, the stack's lock is held) until the test
releases the answer. The calls are the real SDK's, through `formance_sdk`.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import anyio.to_thread
import httpx
import pytest
from ledger_stub import LedgerStub, ledger_stub
from oauth_servers import (
    ConfidentialClient,
    Fault,
    FctlProfile,
    StackAuthServer,
    fctl_profile,
    membership_server,
    stack_oauth_client,
    stack_server,
)
from reliability_helpers import let_failures_expire
from stacktoken import AuthenticationRequiredError, StackTokenAuth, TokenSource, formance_sdk

__all__ = ["fctl_profile", "ledger_stub", "membership_server", "stack_oauth_client", "stack_server"]

T = TypeVar("T")
ASYNC_TIMEOUT_SECONDS = 60
# A thousand SDK calls take about 50 s of CPU on a 2-core machine (pydantic
# models, the ledger stub's threads): their bound leaves room for a slow or
# busy machine, so that only a hang fails the test, never the machine's speed.
THOUSAND_CALLS_SECONDS = 400
HOLD_WAIT_SECONDS = 20
CONCURRENT = 1000
KINDS = ["fctl_profile", "client_credentials"]
FLIGHT_THREAD = "stacktoken-acquire"


@pytest.fixture(params=KINDS)
def source(
    request: pytest.FixtureRequest, tmp_path: Path, stack_server: StackAuthServer
) -> Iterator[TokenSource]:
    if request.param == "fctl_profile":
        profile: FctlProfile = request.getfixturevalue("fctl_profile")
        opened = TokenSource.from_fctl(
            config_dir=profile.config_dir, cache_dir=tmp_path / "cache", environ={}
        )
    else:
        client: ConfidentialClient = request.getfixturevalue("stack_oauth_client")
        opened = TokenSource.from_client_credentials(
            stack_uri=stack_server.stack_uri,
            client_id=client.client_id,
            client_secret=client.client_secret,
            cache_dir=tmp_path / "cache",
            environ={},
        )
    with opened:
        yield opened


@pytest.fixture
def hold(stack_server: StackAuthServer) -> tuple[threading.Event, threading.Event]:
    """The next token request is handled, then its answer kept until `released` is set."""
    handled, released = threading.Event(), threading.Event()
    stack_server.inject(stack_server.TOKEN, Fault.hold(handled, released))
    return handled, released


def _run(scenario: Callable[[], Awaitable[T]], bound: float = ASYNC_TIMEOUT_SECONDS) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(scenario(), bound)

    return asyncio.run(bounded())


async def _until_set(event: threading.Event) -> None:
    """Wait for a thread's event without taking one of anyio's worker threads."""
    assert await asyncio.to_thread(event.wait, HOLD_WAIT_SECONDS), "the token request never came"


def _flight_threads() -> int:
    return sum(1 for thread in threading.enumerate() if thread.name == FLIGHT_THREAD)


def _lock_files(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file() and "lock" in path.name]


def _lock_is_free(path: Path) -> bool:
    """Whether another holder could take the lock now (a second open file: flock conflicts)."""
    descriptor = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(descriptor)  # closing drops the flock if it was taken
    return True


def _temp_files(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.name.endswith(".tmp")]


# --------------------------------------------------------------------------- one acquisition


@pytest.mark.timeout(THOUSAND_CALLS_SECONDS + 60)
@pytest.mark.parametrize("source", ["fctl_profile"], indirect=True)
def test_auth_async_thousand_concurrent_sdk_calls_make_one_acquisition(
    source: TokenSource,
    ledger_stub: LedgerStub,
    stack_server: StackAuthServer,
    hold: tuple[threading.Event, threading.Event],
) -> None:
    handled, released = hold

    async def scenario() -> tuple[list[int], int, int]:
        # A thousand requests queue for httpx's 100 connections: no pool timeout.
        async with formance_sdk(source, timeout_ms=THOUSAND_CALLS_SECONDS * 1000) as sdk:
            calls = [asyncio.create_task(sdk.ledger.v2.get_info_async()) for _ in range(CONCURRENT)]
            await _until_set(handled)  # the loop ran every task up to its first wait meanwhile
            assert not any(call.done() for call in calls)
            # All of them wait, on the loop, for one acquisition in one thread:
            # none holds one of anyio's worker threads (there are 40).
            borrowed = anyio.to_thread.current_default_thread_limiter().borrowed_tokens
            flights = _flight_threads()
            released.set()
            answers = await asyncio.gather(*calls)
            return [answer.status_code for answer in answers], borrowed, flights

    statuses, borrowed, flights = _run(scenario, THOUSAND_CALLS_SECONDS)
    assert statuses == [200] * CONCURRENT
    assert (borrowed, flights) == (0, 1)
    assert stack_server.count(stack_server.TOKEN) == 1
    (token,) = [issued.access_token for issued in stack_server.issued_tokens]
    assert {call.token for call in ledger_stub.calls} == {token}
    assert ledger_stub.accepted == CONCURRENT


def test_auth_async_thousand_concurrent_waiters_make_one_acquisition(
    source: TokenSource,
    stack_server: StackAuthServer,
    hold: tuple[threading.Event, threading.Event],
) -> None:
    """Both kinds of source; `token_async` is what `StackTokenAuth` awaits."""
    handled, released = hold

    async def scenario() -> tuple[set[str], int, int]:
        waiters = [asyncio.create_task(source.token_async()) for _ in range(CONCURRENT)]
        await _until_set(handled)
        assert not any(waiter.done() for waiter in waiters)
        borrowed = anyio.to_thread.current_default_thread_limiter().borrowed_tokens
        flights = _flight_threads()
        released.set()
        return set(await asyncio.gather(*waiters)), borrowed, flights

    tokens, borrowed, flights = _run(scenario)
    assert (borrowed, flights) == (0, 1)
    assert tokens == {issued.access_token for issued in stack_server.issued_tokens}
    assert len(tokens) == 1
    assert stack_server.count(stack_server.TOKEN) == 1


def test_auth_async_failed_acquisition_fails_every_waiter_once_and_is_not_memoised(
    tmp_path: Path, stack_server: StackAuthServer, stack_oauth_client: ConfidentialClient
) -> None:
    wrong = TokenSource.from_client_credentials(
        stack_uri=stack_server.stack_uri,
        client_id=stack_oauth_client.client_id,
        client_secret="not-the-secret",
        cache_dir=tmp_path / "cache",
        environ={},
    )

    async def scenario() -> list[BaseException | str]:
        return await asyncio.gather(
            *(wrong.token_async() for _ in range(50)), return_exceptions=True
        )

    with wrong:
        outcomes = _run(scenario)
        assert all(isinstance(o, AuthenticationRequiredError) for o in outcomes), outcomes
        assert len({id(o) for o in outcomes}) == 50  # each waiter its own exception
        assert stack_server.client_credentials_count == 1
        # Within the rejection's window the same secret is not sent again
        # (docs/design.md §15); once it ends, the next call asks: the failed
        # flight itself was not kept.
        with pytest.raises(AuthenticationRequiredError, match="not asking again"):
            _run(wrong.token_async)
        assert stack_server.client_credentials_count == 1
        assert let_failures_expire(tmp_path / "cache") == ["rejected"]
        with pytest.raises(AuthenticationRequiredError, match="invalid_client"):
            _run(wrong.token_async)
    assert stack_server.client_credentials_count == 2


def test_auth_async_fresh_token_takes_no_thread_and_no_acquisition(
    source: TokenSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = source.token()
    assert source.cached_token() == token

    def acquisition() -> None:
        raise AssertionError("a fresh token in memory needs no acquisition")

    monkeypatch.setattr(source, "token_result", acquisition)
    started = threading.Thread.start

    def no_thread(thread: threading.Thread) -> None:
        raise AssertionError(f"thread {thread.name} started for a fresh token")

    async def scenario() -> set[str]:
        monkeypatch.setattr(threading.Thread, "start", no_thread)
        try:
            return set(await asyncio.gather(*(source.token_async() for _ in range(100))))
        finally:
            monkeypatch.setattr(threading.Thread, "start", started)

    assert _run(scenario) == {token}


def test_auth_cached_token_is_none_when_cold_and_never_acquires(
    source: TokenSource, stack_server: StackAuthServer
) -> None:
    assert source.cached_token() is None
    assert stack_server.total_requests == 0


# --------------------------------------------------------------------------- the loop never blocks


class _Audit:
    """`fcntl.flock` calls and opens of files under `root`, with the calling thread."""

    def __init__(self) -> None:
        self.root: str | None = None
        self.events: list[tuple[str, int]] = []

    def __call__(self, event: str, args: tuple[object, ...]) -> None:
        root = self.root
        if root is None:
            return
        if event == "fcntl.flock" or (
            event == "open" and isinstance(args[0], str) and args[0].startswith(root)
        ):
            self.events.append((event, threading.get_ident()))


_AUDIT = _Audit()
sys.addaudithook(_AUDIT)  # audit hooks cannot be removed: one for the whole session


@pytest.fixture
def audit(tmp_path: Path) -> Iterator[_Audit]:
    _AUDIT.events = []
    _AUDIT.root = str(tmp_path)
    yield _AUDIT
    _AUDIT.root = None


def test_auth_async_loop_thread_takes_no_lock_and_reads_no_cache_file(
    source: TokenSource, ledger_stub: LedgerStub, audit: _Audit
) -> None:
    async def scenario() -> int:
        async with formance_sdk(source) as sdk:
            answers = await asyncio.gather(*(sdk.ledger.v2.get_info_async() for _ in range(50)))
            assert [a.status_code for a in answers] == [200] * 50
            return threading.get_ident()

    loop_thread = _run(scenario)
    events = list(audit.events)
    assert "fcntl.flock" in {event for event, _ in events}  # the acquisition did lock, elsewhere
    assert [event for event, thread in events if thread == loop_thread] == []


# --------------------------------------------------------------------------- cancellation


def test_auth_async_cancelled_waiters_leave_no_lock_no_temp_file_and_others_get_the_token(
    source: TokenSource,
    ledger_stub: LedgerStub,
    stack_server: StackAuthServer,
    hold: tuple[threading.Event, threading.Event],
    tmp_path: Path,
) -> None:
    handled, released = hold

    async def scenario() -> tuple[list[int], bool, list[bool]]:
        async with formance_sdk(source) as sdk:
            calls = [asyncio.create_task(sdk.ledger.v2.get_info_async()) for _ in range(20)]
            await _until_set(handled)
            # In flight: the server has issued the token and the stack's lock is held.
            locked = [not _lock_is_free(path) for path in _lock_files(tmp_path)]
            # Cancel half, the task that started the acquisition among them: they
            # end at once, while the answer is still held.
            cancelled, kept = calls[:10], calls[10:]
            for call in cancelled:
                call.cancel()
            done, _ = await asyncio.wait(cancelled, timeout=HOLD_WAIT_SECONDS)
            assert done == set(cancelled) and all(call.cancelled() for call in cancelled)
            still_waiting = not released.is_set() and not any(call.done() for call in kept)
            released.set()
            answers = await asyncio.gather(*kept)
            return [a.status_code for a in answers], still_waiting, locked

    statuses, still_waiting, locked_in_flight = _run(scenario)
    assert still_waiting
    assert statuses == [200] * 10
    assert stack_server.count(stack_server.TOKEN) == 1
    (token,) = [issued.access_token for issued in stack_server.issued_tokens]
    assert {call.token for call in ledger_stub.calls} == {token}
    assert ledger_stub.accepted == 10
    lock_files = _lock_files(tmp_path)
    assert lock_files and locked_in_flight and all(locked_in_flight)
    assert all(_lock_is_free(path) for path in lock_files)
    assert _temp_files(tmp_path) == []


def test_auth_async_cancelling_every_waiter_does_not_cancel_the_acquisition(
    source: TokenSource,
    stack_server: StackAuthServer,
    hold: tuple[threading.Event, threading.Event],
    tmp_path: Path,
) -> None:
    handled, released = hold

    async def scenario() -> None:
        waiters = [asyncio.create_task(source.token_async()) for _ in range(5)]
        await _until_set(handled)
        for waiter in waiters:
            waiter.cancel()
        await asyncio.wait(waiters, timeout=HOLD_WAIT_SECONDS)
        assert all(waiter.cancelled() for waiter in waiters)
        released.set()

    _run(scenario)
    # The acquisition lands in its own thread: wait for it (bounded), then the
    # token is in memory and in the cache, and nothing asked twice.
    for thread in threading.enumerate():
        if thread.name == FLIGHT_THREAD:
            thread.join(HOLD_WAIT_SECONDS)
    assert _flight_threads() == 0
    token = source.cached_token()
    assert token is not None
    assert _run(source.token_async) == token
    (issued,) = stack_server.issued_tokens
    assert issued.access_token == token
    assert stack_server.count(stack_server.TOKEN) == 1
    assert all(_lock_is_free(path) for path in _lock_files(tmp_path))
    assert _temp_files(tmp_path) == []


def test_auth_async_cancelled_loop_is_not_woken_after_it_closed(
    source: TokenSource,
    stack_server: StackAuthServer,
    hold: tuple[threading.Event, threading.Event],
) -> None:
    """An event loop gone before the acquisition lands: the flight ends cleanly anyway."""
    handled, released = hold

    async def abandon() -> None:
        waiter = asyncio.create_task(source.token_async())
        await _until_set(handled)
        waiter.cancel()
        await asyncio.wait([waiter], timeout=HOLD_WAIT_SECONDS)

    _run(abandon)  # asyncio.run closes the loop
    crashes: list[threading.ExceptHookArgs] = []
    previous, threading.excepthook = threading.excepthook, crashes.append
    try:
        released.set()
        for thread in threading.enumerate():
            if thread.name == FLIGHT_THREAD:
                thread.join(HOLD_WAIT_SECONDS)
    finally:
        threading.excepthook = previous
    assert crashes == []
    assert _run(source.token_async) == source.cached_token() is not None
    assert stack_server.count(stack_server.TOKEN) == 1


# --------------------------------------------------------------------------- other backends


def test_auth_async_under_trio(
    source: TokenSource,
    ledger_stub: LedgerStub,
    stack_server: StackAuthServer,
    hold: tuple[threading.Event, threading.Event],
) -> None:
    """The SDK's async calls need asyncio (it uses `asyncio.to_thread`); httpx and
    `StackTokenAuth` also run on trio, with the same single acquisition."""
    trio = pytest.importorskip("trio")
    handled, released = hold

    async def scenario() -> list[int]:
        statuses: list[int] = []
        async with httpx.AsyncClient(auth=StackTokenAuth(source), timeout=HOLD_WAIT_SECONDS) as c:

            async def call() -> None:
                statuses.append((await c.get(ledger_stub.info_url)).status_code)

            with trio.fail_after(ASYNC_TIMEOUT_SECONDS):
                async with trio.open_nursery() as nursery:
                    for _ in range(20):
                        nursery.start_soon(call)
                    assert await trio.to_thread.run_sync(handled.wait, HOLD_WAIT_SECONDS)
                    assert _flight_threads() == 1
                    released.set()
        return statuses

    assert trio.run(scenario) == [200] * 20
    assert stack_server.count(stack_server.TOKEN) == 1
    assert ledger_stub.accepted == 20
