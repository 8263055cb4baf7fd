"""The cross-process lock: an advisory `flock` on a file beside the entry.

`locked(place, body)` runs `body` holding it; the folders on the way are
opened as every file of ours is (`_files.folder_of`: no symlink followed).

Why not filelock: it is `flock` too, but its import costs 50-115 ms (more
than a cold run's exchange on loopback), where `fcntl` costs 0.4 ms. The
kernel drops a `flock` when its holder dies, so a killed process never
leaves a stale lock behind. The wait is bounded by polling with a capped
backoff; on Windows `msvcrt.locking` plays the part of `flock`.
"""

import os
import sys
import time

from stacktoken.core._errors import LocalError

from ._files import LOCK_TIMEOUT_SECONDS, Place, folder_of, os_reason

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeVar

    from returns.result import Result

    R = TypeVar("R")
    E = TypeVar("E")

__all__ = ["LockTimeout", "hold_lock", "locked", "release_lock"]

_FIRST_POLL = 0.001
_MAX_POLL = 0.05  # a waiter notices a release within 50 ms at worst


class LockTimeout(Exception):
    """Another process held the lock for longer than the wait allowed."""


def hold_lock(
    path: str,
    *,
    timeout: float,
    dir_fd: "int | None" = None,
    sleep: "Callable[[float], None]" = time.sleep,
    clock: "Callable[[], float]" = time.monotonic,
) -> int:
    """Open (creating it 0600, never through a symlink) and lock `path` (relative
    to `dir_fd` if given); the descriptor, for `release_lock`. Raises
    `LockTimeout` or `OSError`."""
    descriptor = os.open(
        path,
        os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0),
        0o600,
        dir_fd=dir_fd,
    )
    deadline = clock() + timeout
    pause = _FIRST_POLL
    try:
        while not _try_lock(descriptor):
            left = deadline - clock()
            if left <= 0:
                raise LockTimeout(path)
            sleep(min(pause, left))
            pause = min(pause * 2, _MAX_POLL)
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def release_lock(descriptor: int) -> None:
    """Unlock and close; closing alone would unlock too, this says so."""
    try:
        _unlock(descriptor)
    finally:
        os.close(descriptor)


def locked(
    place: "Place | str",
    body: "Callable[[bool], Result[R, E]]",
    *,
    timeout: float = LOCK_TIMEOUT_SECONDS,
    log: "Callable[[str], None]",
) -> "Result[R, E | LocalError]":
    """Run `body(held)` holding the cross-process lock at `place`.

    The lock is an advisory `flock`: the kernel drops it when its
    holder dies, so a killed process never leaves a stale lock. When the lock
    file cannot be created at all (a read-only folder), `body(False)` runs
    unlocked: the cache is best effort, and refusing would fail the command.
    `held` tells `body` whether it may sweep leftovers.
    """
    from returns.result import Failure

    where = Place.of(place)
    try:
        folder = folder_of(where, create=False, log=log)
    except FileNotFoundError:
        # No stack folder means no `accesses.json` either: `body` will say so, and
        # creating the folder only to lock it would leave litter behind.
        log("running unlocked: the folder does not exist")
        return body(False)
    except OSError as error:
        log(os_reason("running unlocked: cannot open the folder", error))
        return body(False)
    try:
        path, at = folder.at(where.name)
        descriptor = hold_lock(path, timeout=timeout, dir_fd=at)
    except LockTimeout:
        return Failure(
            LocalError(message=f"another process held the lock {where.name} for {timeout:g}s")
        )
    except OSError as error:
        log(os_reason("running unlocked: cannot take the lock", error))
        return body(False)
    finally:
        folder.close()
    try:
        return body(True)
    finally:
        release_lock(descriptor)


if sys.platform == "win32":  # pragma: no cover - CI runs on Linux
    import msvcrt

    def _try_lock(descriptor: int) -> bool:
        try:
            msvcrt.locking(descriptor, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(descriptor: int) -> None:
        os.lseek(descriptor, 0, os.SEEK_SET)
        msvcrt.locking(descriptor, msvcrt.LK_UNLCK, 1)

else:

    def _try_lock(descriptor: int) -> bool:
        import fcntl  # here, not at the top: warm runs import this module and never lock

        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(descriptor: int) -> None:
        import fcntl

        fcntl.flock(descriptor, fcntl.LOCK_UN)
