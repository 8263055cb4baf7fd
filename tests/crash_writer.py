"""A program for the crash tests to SIGKILL: it writes through the real shell code.

    python tests/crash_writer.py zygote FOLDER
        Writes version A of `api_token_cache.json` and `accesses.json` in FOLDER,
        prints `ready`, then serves commands on stdin, one per line:
          spawn STEP  fork a writer that loops, under the stack lock, over
                      `write_atomic(..., sweep=True)` of both files, alternating
                      versions A and B, and stops at its STEP-th step (see
                      `STEPS`): it reports the step and waits there to be killed.
                      Prints `PID STEP FILE VERSION` once the writer has
                      reported, so the kill that follows lands inside that step
                      by construction, however fast or slow the machine.
          reap PID    wait for that writer (killed by the test); prints its
                      wait status as `os.waitstatus_to_exitcode` gives it
        A fork costs a millisecond where a new interpreter costs a hundred, so
        hundreds of kills fit in a CI run; each writer is a separate process
        killed by the kernel, as a real run would be.

    python tests/crash_writer.py hold-lock LOCKFILE
        Takes the stack lock through `shell._lock.locked`, prints `locked`,
        and sleeps until killed.

Both versions of each file are valid and of very different sizes, so a torn
or mixed write could not pass for either.

A writer's steps are seen from the system calls the real `write_atomic` makes
(`os.fdopen`, `os.fsync`, `os.replace` are wrapped in the forked writer only):
a process SIGKILLed in a system call is in the state of one killed just before
or after it, so these stops cover every state a kill can leave.
"""

from __future__ import annotations

import functools
import os
import random
import stat
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from returns.result import Failure, Result, Success
from stacktoken.core._cache_codec import encode_cache_entry
from stacktoken.core._codecs import encode_accesses
from stacktoken.core._errors import LocalError
from stacktoken.core._paths import ACCESSES_FILE, CACHE_FILE, LOCK_SUFFIX
from stacktoken.core._types import CachedToken, StackAccess
from stacktoken.shell._files import Place, write_atomic
from stacktoken.shell._lock import locked

__all__ = ["IN_WRITE", "STEPS", "VERSIONS", "main"]

_EXPIRY = datetime(2030, 1, 1, tzinfo=UTC)


def _cache_entry(token: str) -> bytes:
    entry = CachedToken(access_token=token, token_type="Bearer", expiry=_EXPIRY, saved_at=_EXPIRY)
    return encode_cache_entry(entry)


def _access(token: str, refresh: str) -> bytes:
    claims = {"exp": int(_EXPIRY.timestamp()), "organization_id": "orgA"}
    return encode_accesses(
        StackAccess(token=token, refresh_token=refresh, expiry=_EXPIRY, claims=claims)
    )


#: file name -> (version A, version B)
VERSIONS: dict[str, tuple[bytes, bytes]] = {
    CACHE_FILE: (_cache_entry("a" * 40), _cache_entry("b" * 150_000)),
    ACCESSES_FILE: (_access("A" * 60, "rA"), _access("B" * 200_000, "r" * 1000)),
}
_NO_LOG: Callable[[str], None] = lambda _: None  # noqa: E731

#: The steps of one file's `write_atomic`, in order:
#:   created  the temp file exists, empty (`os.fdopen` of it)
#:   filled   its bytes are written and flushed, not yet fsynced (`os.fsync` of it)
#:   synced   it is fsynced, not yet renamed (`os.replace`)
#:   renamed  it is renamed over the file, the folder not yet fsynced
#: Before each pass over both files, under the lock, comes `locked`.
#: `IN_WRITE` are the steps between a temp file's creation and its rename.
IN_WRITE = ("created", "filled", "synced")
FILE_STEPS = (*IN_WRITE, "renamed")
STEPS = ("locked", *(f"{step} {name}" for name in VERSIONS for step in FILE_STEPS))
#: How long a stopped writer waits to be killed before it gives up (exit 4).
STOPPED_FOR = 60.0


class _Stop:
    """Counts a writer's steps; at the chosen one, reports it and waits to be killed."""

    def __init__(self, at: int, report: int) -> None:
        self._at = at
        self._report = report
        self._count = 0
        self.file = ""
        self.version = 0

    def step(self, what: str) -> None:
        if self._count == self._at:
            os.write(self._report, f"{what} {self.file} {self.version}\n".encode())
            os.close(self._report)
            time.sleep(STOPPED_FOR)
            os._exit(4)
        self._count += 1

    def wrap_system_calls(self) -> None:
        """Make `write_atomic`'s system calls steps (in this forked writer only)."""
        fdopen, fsync, replace = os.fdopen, os.fsync, os.replace

        def stepped_fdopen(descriptor: int, *args: Any, **kwargs: Any) -> Any:
            self.step("created")
            return fdopen(descriptor, *args, **kwargs)

        def stepped_fsync(descriptor: Any) -> None:
            folder = stat.S_ISDIR(os.fstat(descriptor).st_mode)
            self.step("renamed" if folder else "filled")
            fsync(descriptor)

        def stepped_replace(*args: Any, **kwargs: Any) -> None:
            self.step("synced")
            replace(*args, **kwargs)

        wrappers = {"fdopen": stepped_fdopen, "fsync": stepped_fsync, "replace": stepped_replace}
        for name, wrapper in wrappers.items():
            setattr(os, name, wrapper)


def _place(folder: str, name: str) -> Place:
    return Place(root=folder, parts=(name,))


def _write_all(
    folder: str, version: int, held: bool, stop: _Stop | None = None
) -> Result[None, LocalError]:
    if stop is not None:
        stop.file, stop.version = "-", version
        stop.step("locked")
    for name, contents in VERSIONS.items():
        if stop is not None:
            stop.file = name
        written = write_atomic(_place(folder, name), contents[version], sweep=held)
        if isinstance(written, Failure):
            return written
    return Success(None)


def _writer(folder: str, stop: _Stop) -> None:
    """Loop until stopped; a failed write is a bug, reported by exit status 2."""
    random.seed()
    version = random.randrange(2)
    lock = _place(folder, CACHE_FILE + LOCK_SUFFIX)
    stop.wrap_system_calls()
    while True:
        write = functools.partial(_write_all, folder, version, stop=stop)
        outcome = locked(lock, write, log=_NO_LOG)
        if isinstance(outcome, Failure):
            os._exit(2)
        version ^= 1


def _spawn(folder: str, at: int) -> str:
    """Fork a writer stopping at its `at`-th step; `PID STEP FILE VERSION` once it
    is there, or `PID gone` if it ended without reaching it."""
    readable, writable = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(readable)
            _writer(folder, _Stop(at, writable))
        finally:
            os._exit(3)
    os.close(writable)
    with os.fdopen(readable, "rb") as report:
        reached = report.readline().decode().strip()  # EOF if the writer ended
    return f"{pid} {reached or 'gone'}"


def _zygote(folder: str) -> int:
    os.makedirs(folder, mode=0o700, exist_ok=True)
    if isinstance(_write_all(folder, 0, True), Failure):  # alone: nothing to race
        return 2
    print("ready", flush=True)
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command == "spawn":
            print(_spawn(folder, int(argument)), flush=True)
        elif command == "reap":
            _, status = os.waitpid(int(argument), 0)
            print(os.waitstatus_to_exitcode(status), flush=True)
        else:
            return 2
    return 0


def _hold_lock(lock: str) -> int:
    def hold(_held: bool) -> Result[None, LocalError]:
        print("locked", flush=True)
        time.sleep(600)
        return Success(None)

    locked(lock, hold, log=_NO_LOG)
    return 0


def main(argv: list[str]) -> int:
    match argv:
        case ["zygote", folder]:
            return _zygote(folder)
        case ["hold-lock", lock]:
            return _hold_lock(lock)
    sys.stderr.write(__doc__ or "")
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
