"""Single flight: however many processes and threads ask at once, the auth
servers see one refresh and one exchange; the lock wait is bounded, and a lock
whose holder was SIGKILLed does not block anyone.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from oauth_servers import Fault
from reliability_helpers import (
    LOCK_FILE,
    assert_files_intact,
    assert_ok,
    finish,
    library_source,
    stack_folder_names,
    start_cli,
    write_accesses,
)
from stacktoken import HttpPolicy, LocalStorageError, TokenSource

from conftest import World

PROCESSES = 8
THREADS = 32
CRASH_WRITER = Path(__file__).with_name("crash_writer.py")


def run_together(world: World, count: int, *args: str) -> list[subprocess.CompletedProcess[str]]:
    processes = [start_cli(world, *args) for _ in range(count)]
    return [finish(process) for process in processes]


def in_threads(count: int, call: Callable[[], str]) -> list[str]:
    """`call` in `count` threads released together by a barrier."""
    barrier = threading.Barrier(count, timeout=30)

    def together() -> str:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(together) for _ in range(count)]
        return [future.result(timeout=60) for future in futures]


def assert_one_of_each(world: World) -> None:
    """One refresh, one exchange, each discovery once."""
    assert world.membership.count(world.membership.TOKEN) == 1, world.membership.counts()
    assert world.membership.count(world.membership.DISCOVERY) == 1, world.membership.counts()
    assert world.stack.count(world.stack.DISCOVERY) == 1, world.stack.counts()
    assert world.exchanges() == 1, world.stack.counts()


def test_single_flight_processes_on_a_cold_cache(world: World) -> None:
    """8 CLI processes started together print one token; one refresh, one exchange."""
    write_accesses(world, exp_in=-120)
    # The exchange takes a second, so every process queues on the lock.
    world.stack.inject(world.stack.TOKEN, Fault.delay(1.0))
    results = run_together(world, PROCESSES, "--debug", "token")
    tokens = {assert_ok(result) for result in results}
    assert len(tokens) == 1
    assert_one_of_each(world)
    waited = [
        result
        for result in results
        if "cache miss: no such file" in result.stderr and "cache hit: usable" in result.stderr
    ]
    assert len(waited) >= PROCESSES // 2, "the processes did not overlap: nothing was tested"
    assert_files_intact(world)


def test_single_flight_threads_sharing_a_source(world: World) -> None:
    """32 threads on one TokenSource: one token, one refresh, one exchange."""
    write_accesses(world, exp_in=-120)
    world.stack.inject(world.stack.TOKEN, Fault.delay(0.3))
    with library_source(world, policy=HttpPolicy()) as source:
        tokens = in_threads(THREADS, source.token)
    assert len(set(tokens)) == 1
    assert_one_of_each(world)


def test_single_flight_threads_with_a_source_each(world: World) -> None:
    """32 threads, each with its own TokenSource: the file lock serialises them."""
    write_accesses(world, exp_in=-120)
    world.stack.inject(world.stack.TOKEN, Fault.delay(0.3))

    def own_source() -> str:
        with library_source(world, policy=HttpPolicy()) as source:
            return source.token()

    tokens = in_threads(THREADS, own_source)
    assert len(set(tokens)) == 1
    assert_one_of_each(world)
    assert_files_intact(world)


def test_ttl_zero_takes_no_lock_and_writes_no_cache(world: World) -> None:
    """TTL 0: every caller goes to the network; no lock file, no cache file."""
    results = run_together(world, PROCESSES, "token", "--stack-token-cache-ttl", "0")
    for result in results:
        assert_ok(result)
    with library_source(world, cache_ttl="0") as source:
        shared = in_threads(4, source.token)  # in memory, a fresh token is reused

    def own_source() -> str:
        with library_source(world, cache_ttl="0") as source:
            return source.token()

    in_threads(4, own_source)
    assert len(set(shared)) == 1
    assert stack_folder_names(world) == {"accesses.json"}
    assert world.exchanges() == PROCESSES + 1 + 4


def test_ttl_zero_processes_due_for_a_refresh_all_succeed(world: World) -> None:
    """TTL 0 takes no lock, so 8 processes refresh at once with one single-use
    refresh token: the IdP rejects all but one, and each loser must pick up the
    winner's rotation from accesses.json rather than ask for a login."""
    write_accesses(world, exp_in=-120)
    # Hold the first refresh for a while, so that the others are sent meanwhile.
    world.membership.inject(world.membership.TOKEN, Fault.delay(0.5))
    results = run_together(world, PROCESSES, "token", "--stack-token-cache-ttl", "0")
    for result in results:
        assert_ok(result)
    assert world.membership.count(world.membership.TOKEN) >= 2, "no race happened"
    assert_files_intact(world)
    assert stack_folder_names(world) == {"accesses.json"}


@contextmanager
def holding_flock(path: Path) -> Iterator[None]:
    """Hold the lock file's flock, as another stacktoken process would."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing drops the flock


def test_lock_wait_is_bounded(world: World) -> None:
    """A lock held elsewhere ends the wait after `lock_timeout` with LocalStorageError."""
    lock = world.profile.stack_dir / LOCK_FILE
    with holding_flock(lock), library_source(world, lock_timeout=0.5) as source:
        started = time.monotonic()
        with pytest.raises(LocalStorageError, match="lock") as raised:
            source.token()
        waited = time.monotonic() - started
    assert 0.5 <= waited < 5, waited
    assert raised.value.exit_code == 1
    assert world.exchanges() == 0
    with library_source(world, lock_timeout=0.5) as source:
        assert source.token()  # released: the next caller gets it at once


def flock_is_free(path: Path) -> bool:
    descriptor = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(descriptor)
    return True


def test_lock_of_a_sigkilled_process_does_not_block(world: World) -> None:
    """The kernel drops a flock with its holder: the lock file stays, nobody waits."""
    lock = world.profile.stack_dir / LOCK_FILE
    holder = subprocess.Popen(
        [sys.executable, str(CRASH_WRITER), "hold-lock", str(lock)],
        stdout=subprocess.PIPE,
        text=True,
        env=world.env(),
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "locked\n"
        assert not flock_is_free(lock), "the helper does not hold the lock"
        with library_source(world, lock_timeout=0.3) as source, pytest.raises(LocalStorageError):
            source.token()
        holder.send_signal(signal.SIGKILL)
        assert holder.wait(timeout=10) == -signal.SIGKILL
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=5)
    assert lock.exists(), "the stale lock file is still there"
    assert flock_is_free(lock)
    started = time.monotonic()
    assert_ok(world.run("token"))  # the CLI's own 30 s lock timeout
    assert time.monotonic() - started < 5
    assert world.exchanges() == 1


def test_single_flight_source_shared_by_cli_and_library(world: World) -> None:
    """CLI processes and library threads at once: still one exchange."""
    world.stack.inject(world.stack.TOKEN, Fault.delay(0.5))
    processes = [start_cli(world, "token") for _ in range(4)]

    def own_source() -> str:
        with TokenSource.from_fctl(
            config_dir=world.config_dir, cache_dir=world.cache_dir, environ={}
        ) as source:
            return source.token()

    tokens = in_threads(8, own_source)
    tokens += [assert_ok(finish(process)) for process in processes]
    assert len(set(tokens)) == 1
    assert world.exchanges() == 1
