"""A cold machine-credential acquisition for the crash test to SIGKILL at a chosen step.

    python tests/client_crash_run.py zygote CACHE_DIR STACK_URI CLIENT_ID
        The secret comes from $STACKTOKEN_CLIENT_SECRET (never argv). Imports
        stacktoken, prints `ready`, then serves commands on stdin, one a line:
          spawn STEP  fork a process that builds a new
                      `TokenSource.from_client_credentials` on CACHE_DIR (a new
                      process's memory) whose TTL has always run out, so every
                      acquisition is cold: lock, re-read, discovery if not
                      cached, the token request, the write. The process stops at
                      STEP (see `STEPS`), reports it and waits to be killed.
                      Prints `PID STEP` once it is there, so the kill that
                      follows lands inside that step by construction; or
                      `PID gone` if the process ended without reaching it.
          reap PID    wait for that process; prints its wait status
                      (`os.waitstatus_to_exitcode`)
          run         fork a process running a plain acquisition (default TTL)
                      to its end; prints `ok TOKEN` or `error MESSAGE`

A step is seen where the real code does it: the store's lock taken, the token
endpoint's answer received (nothing written yet), and the system calls of the
real `write_atomic` (`os.fdopen`, `os.fsync`, `os.replace`, wrapped in the forked
process only) for the cache entry and the discovery document. A process
SIGKILLed in a system call is in the state of one killed just before or after
it, so these stops cover every state a kill can leave.
"""

from __future__ import annotations

import os
import stat
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from types import ModuleType
from typing import Any

from stacktoken import TokenSource
from stacktoken.shell import _discovery, _lock, _roots, _stores

__all__ = ["STEPS", "main"]

#: Per file written: temp file created, filled (not fsynced), fsynced (not
#: renamed), renamed (folder not fsynced).
FILE_STEPS = ("created", "filled", "synced", "renamed")
#: `locked`: the store's lock just taken; `answered`: the token endpoint's
#: answer in hand, nothing written. A discovery step is reached only when no
#: discovery document is cached.
STEPS = (
    "locked",
    *(f"{step} discovery" for step in FILE_STEPS),
    "answered",
    *(f"{step} cache" for step in FILE_STEPS),
)
#: How long a stopped process waits to be killed before it gives up (exit 4).
STOPPED_FOR = 60.0
#: So short that every stored entry is too old: each acquisition is cold.
RUN_OUT_TTL = timedelta(microseconds=1)


class _Stop:
    """Watches the steps of one acquisition; at the chosen one, reports and waits."""

    def __init__(self, at: str, report: int) -> None:
        self._at = at
        self._report = report
        self.file = ""

    def step(self, what: str) -> None:
        name = what if what in ("locked", "answered") else f"{what} {self.file}"
        if name == self._at:
            os.write(self._report, f"{name}\n".encode())
            os.close(self._report)
            time.sleep(STOPPED_FOR)
            os._exit(4)

    def wrap(self) -> None:
        """Make the real code's steps visible (in this forked process only)."""
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

        os.fdopen, os.fsync, os.replace = stepped_fdopen, stepped_fsync, stepped_replace  # type: ignore[assignment]
        _replace(_stores, "write_atomic", lambda real: self._naming("cache", real))
        _replace(_discovery, "write_atomic", lambda real: self._naming("discovery", real))
        _replace(_lock, "locked", self._locking)  # the store imports it when it locks
        _replace(_roots, "post_token", self._answering)

    def _locking(self, real_locked: Callable[..., Any]) -> Callable[..., Any]:
        def stepped_locked(place: Any, body: Callable[[bool], Any], **kwargs: Any) -> Any:
            def stopping(held: bool) -> Any:
                self.step("locked")
                return body(held)

            return real_locked(place, stopping, **kwargs)

        return stepped_locked

    def _answering(self, real_post: Callable[..., Any]) -> Callable[..., Any]:
        def stepped_post(*args: Any, **kwargs: Any) -> Any:
            answer = real_post(*args, **kwargs)
            self.step("answered")
            return answer

        return stepped_post

    def _naming(self, file: str, write: Callable[..., Any]) -> Callable[..., Any]:
        def named(*args: Any, **kwargs: Any) -> Any:
            self.file = file
            try:
                return write(*args, **kwargs)
            finally:
                self.file = ""

        return named


def _replace(
    module: ModuleType, name: str, wrap: Callable[[Callable[..., Any]], Callable[..., Any]]
) -> None:
    """`module.name` becomes `wrap(module.name)`: the name the real code calls."""
    setattr(module, name, wrap(getattr(module, name)))


def _source(where: tuple[str, str, str], ttl: timedelta | None) -> TokenSource:
    cache_dir, stack_uri, client_id = where
    return TokenSource.from_client_credentials(
        stack_uri=stack_uri,
        client_id=client_id,
        client_secret=os.environ["STACKTOKEN_CLIENT_SECRET"],
        cache_dir=cache_dir,
        cache_ttl=ttl,
        environ={},
        log=lambda _: None,
    )


def _spawn(at: str, where: tuple[str, str, str]) -> str:
    readable, writable = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(readable)
            _Stop(at, writable).wrap()
            with _source(where, RUN_OUT_TTL) as source:
                source.token()
        finally:
            os._exit(3)  # ended without reaching the step
    os.close(writable)
    with os.fdopen(readable, "rb") as report:
        reached = report.readline().decode().strip()  # EOF if it ended
    return f"{pid} {reached or 'gone'}"


def _run(where: tuple[str, str, str]) -> str:
    readable, writable = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(readable)
            with _source(where, None) as source:
                answer = f"ok {source.token()}"
        except Exception as error:
            answer, code = f"error {str(error).splitlines()[0]}", 1
        os.write(writable, answer.encode() + b"\n")
        os._exit(code)
    os.close(writable)
    with os.fdopen(readable, "rb") as report:
        answer = report.readline().decode().strip()
    os.waitpid(pid, 0)
    return answer or "error no answer"


def _zygote(cache_dir: str, stack_uri: str, client_id: str) -> int:
    where = (cache_dir, stack_uri, client_id)
    print("ready", flush=True)
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command == "spawn":
            print(_spawn(argument, where), flush=True)
        elif command == "reap":
            _, status = os.waitpid(int(argument), 0)
            print(os.waitstatus_to_exitcode(status), flush=True)
        elif command == "run":
            print(_run(where), flush=True)
        else:
            return 2
    return 0


def main(argv: list[str]) -> int:
    match argv:
        case ["zygote", cache_dir, stack_uri, client_id]:
            return _zygote(cache_dir, stack_uri, client_id)
    sys.stderr.write(__doc__ or "")
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
