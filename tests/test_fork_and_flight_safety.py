"""A source forked while another thread acquires, an acquisition stopped by a
BaseException, a source dropped without close(): no caller waits for a thread
that will never come back, and no thread waits for a source that is gone."""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from returns.result import Failure, Result
from stacktoken.core._errors import AcquireError, RemoteError
from stacktoken.core._types import CachedToken
from stacktoken.shell import _flight, _source
from stacktoken.shell._source import TokenSource

# A bound on waits that only a hang can reach: the child's acquisition answers at once.
HANG_SECONDS = 30.0

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")


def _source_for(tmp_path: Path) -> TokenSource:
    return TokenSource.from_client_credentials(
        stack_uri="https://stack.invalid",
        client_id="svc",
        client_secret="not-a-real-secret-but-long-enough",
        cache_dir=tmp_path,
        renewal=None,
    )


def _answer(message: str) -> Result[CachedToken, AcquireError]:
    return Failure(RemoteError(message=message))


def _in_child(body: Callable[[], str]) -> str:
    """Run `body` in a forked child; what it says, or "hang" if it never says it."""
    read_end, write_end = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: report, then leave without running the parent's cleanup
        os.close(read_end)
        said = "crash"
        try:
            said = body()
        finally:
            os.write(write_end, said.encode())
            os._exit(0)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], HANG_SECONDS)
        said = os.read(read_end, 1000).decode() if ready else "hang"
    finally:
        os.close(read_end)
        if said == "hang":
            os.kill(pid, 9)
        os.waitpid(pid, 0)
    return said


def _child_call(call: Callable[[], object]) -> Callable[[], str]:
    def run() -> str:
        done: list[str] = []

        def target() -> None:
            try:
                call()
            except Exception as error:  # the expected answer is an error value's exception
                done.append(str(error))

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        thread.join(HANG_SECONDS / 2)
        return done[0] if done else "hang"

    return run


def _acquiring_in_parent(
    source: TokenSource, monkeypatch: pytest.MonkeyPatch, call: Callable[[], Any]
) -> tuple[threading.Thread, threading.Event]:
    """A parent thread inside an acquisition (holding the source's lock) until released."""
    inside, release = threading.Event(), threading.Event()

    def held_acquire(**_: object) -> Result[CachedToken, AcquireError]:
        inside.set()
        release.wait(HANG_SECONDS)
        return _answer("parent's acquisition")

    monkeypatch.setattr(_source, "acquire", held_acquire)

    def target() -> None:
        with contextlib.suppress(Exception):  # its answer is no concern of the test's
            call()

    thread = threading.Thread(target=target)
    thread.start()
    assert inside.wait(HANG_SECONDS)
    return thread, release


def test_token_source_forked_while_acquiring_answers_in_the_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _source_for(tmp_path)
    thread, release = _acquiring_in_parent(source, monkeypatch, source.token)
    try:
        monkeypatch.setattr(_source, "acquire", lambda **_: _answer("child's acquisition"))
        said = _in_child(_child_call(source.token))
    finally:
        release.set()
        thread.join(HANG_SECONDS)
    assert "child's acquisition" in said


def test_token_async_forked_while_a_flight_is_out_answers_in_the_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _source_for(tmp_path)
    thread, release = _acquiring_in_parent(
        source, monkeypatch, lambda: asyncio.run(source.token_async())
    )
    try:
        monkeypatch.setattr(_source, "acquire", lambda **_: _answer("child's acquisition"))
        assert _flight._FLIGHTS.get(source)  # the parent's flight is out
        said = _in_child(_child_call(lambda: asyncio.run(source.token_async())))
    finally:
        release.set()
        thread.join(HANG_SECONDS)
    assert "child's acquisition" in said


def test_token_async_acquisition_stopped_by_system_exit_wakes_waiters_and_is_forgotten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _source_for(tmp_path)

    def stopped() -> Result[CachedToken, AcquireError]:
        raise SystemExit("a log handler called sys.exit")

    monkeypatch.setattr(source, "token_result", stopped)

    async def twice() -> list[str]:
        said = []
        for _ in range(2):
            try:
                await asyncio.wait_for(source.token_async(), HANG_SECONDS)
            except TimeoutError:
                said.append("hang")
            except Exception as error:
                said.append(str(error))
            monkeypatch.setattr(source, "token_result", lambda: _answer("works again"))
        return said

    first, second = asyncio.run(twice())
    assert "stopped by SystemExit" in first
    assert "works again" in second
    assert not _flight._FLIGHTS.get(source)


@pytest.mark.parametrize("holding", [True, False], ids=["holding_a_token", "after_invalidate"])
def test_renewal_thread_of_a_source_dropped_without_close_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, holding: bool
) -> None:
    import gc
    from datetime import UTC, datetime, timedelta

    from returns.result import Success

    def issued(**_: object) -> Result[CachedToken, AcquireError]:
        now = datetime.now(UTC)
        token = CachedToken(
            access_token="t" * 40,
            token_type="Bearer",
            expiry=now + timedelta(hours=1),
            saved_at=now,
        )
        return Success(token)

    monkeypatch.setattr(_source, "acquire", issued)
    source = TokenSource.from_client_credentials(
        stack_uri="https://stack.invalid",
        client_id="svc",
        client_secret="not-a-real-secret-but-long-enough",
        cache_dir=tmp_path,
        renew_in_background=True,
    )
    source.token()
    renewer = source._renewer
    assert renewer is not None and renewer.alive
    thread = renewer._thread
    if not holding:
        source.invalidate()
    del source, renewer
    gc.collect()
    thread.join(HANG_SECONDS)  # woken by the source's finalizer, not by a timeout
    assert not thread.is_alive()
