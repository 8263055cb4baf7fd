"""The cross-process lock: an advisory `flock` on a file beside the entry.

Why not filelock: it is `flock` too, but its import costs 50-115 ms (more
than a cold run's exchange on loopback), where `fcntl` costs 0.4 ms. The
kernel drops a `flock` when its holder dies, so a killed process never
leaves a stale lock behind. The wait is bounded by polling with a capped
backoff; on Windows `msvcrt.locking` plays the part of `flock`.
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["LockTimeout", "hold_lock", "release_lock"]

_FIRST_POLL = 0.001
_MAX_POLL = 0.05  # a waiter notices a release within 50 ms at worst


class LockTimeout(Exception):
    """Another process held the lock for longer than the wait allowed."""


def hold_lock(
    path: str,
    *,
    timeout: float,
    dir_fd: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
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
