"""A program for the crash tests to SIGKILL: it writes through the real shell code.

    python tests/crash_writer.py zygote FOLDER
        Writes version A of `api_token_cache.json` and `accesses.json` in FOLDER,
        prints `ready`, then serves commands on stdin, one per line:
          spawn       fork a writer that loops forever, under the stack lock,
                      over `write_atomic(..., sweep=True)` of both files,
                      alternating versions A and B; prints its pid
          reap PID    wait for that writer (killed by the test); prints its
                      wait status as `os.waitstatus_to_exitcode` gives it
        A fork costs a millisecond where a new interpreter costs a hundred, so
        hundreds of kills fit in a CI run; each writer is a separate process
        killed by the kernel, as a real run would be.

    python tests/crash_writer.py hold-lock LOCKFILE
        Takes the stack lock through `shell._files.locked`, prints `locked`,
        and sleeps until killed.

Both versions of each file are valid and of very different sizes, so a torn
or mixed write could not pass for either.
"""

from __future__ import annotations

import functools
import os
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from returns.result import Failure, Result, Success
from stacktoken.core import (
    ACCESSES_FILE,
    CACHE_FILE,
    LOCK_SUFFIX,
    CachedToken,
    LocalError,
    StackAccess,
    encode_accesses,
    encode_cache_entry,
)
from stacktoken.shell._files import locked, write_atomic

__all__ = ["VERSIONS", "main"]

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


def _write_all(folder: Path, version: int, held: bool) -> Result[None, LocalError]:
    for name, contents in VERSIONS.items():
        written = write_atomic(folder / name, contents[version], sweep=held)
        if isinstance(written, Failure):
            return written
    return Success(None)


def _writer(folder: Path) -> None:
    """Loop forever; a failed write is a bug, reported by exit status 2."""
    random.seed()
    version = random.randrange(2)
    lock = folder / (CACHE_FILE + LOCK_SUFFIX)
    while True:
        outcome = locked(lock, functools.partial(_write_all, folder, version), log=_NO_LOG)
        if isinstance(outcome, Failure):
            os._exit(2)
        version ^= 1


def _zygote(folder: Path) -> int:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if isinstance(_write_all(folder, 0, True), Failure):  # alone: nothing to race
        return 2
    print("ready", flush=True)
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command == "spawn":
            pid = os.fork()
            if pid == 0:
                try:
                    _writer(folder)
                finally:
                    os._exit(3)
            print(pid, flush=True)
        elif command == "reap":
            _, status = os.waitpid(int(argument), 0)
            print(os.waitstatus_to_exitcode(status), flush=True)
        else:
            return 2
    return 0


def _hold_lock(lock: Path) -> int:
    def hold(_held: bool) -> Result[None, LocalError]:
        print("locked", flush=True)
        time.sleep(600)
        return Success(None)

    locked(lock, hold, log=_NO_LOG)
    return 0


def main(argv: list[str]) -> int:
    match argv:
        case ["zygote", folder]:
            return _zygote(Path(folder))
        case ["hold-lock", lock]:
            return _hold_lock(Path(lock))
    sys.stderr.write(__doc__ or "")
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
