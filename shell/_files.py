"""The file store: private reads, atomic writes, the per-stack lock.

Reads never raise: a missing, unreadable, oversized or untrustworthy file is a
reason (a cache miss), which the caller logs. Writes go to a temp file in the
same folder, are flushed and fsynced, then `os.replace`d over the final path,
so a reader never sees a torn file and a crash leaves the old content or the
new, never a mix. `os.replace` renames over a symlink rather than through it,
so a symlink planted at the final path is replaced, never followed.

Every warm run reads through this module, so it imports neither `pathlib`
nor `returns` at its top (paths are strings; `Result`s are built by the
writers, which only the cold path calls), and reads answer a plain value.
"""

from __future__ import annotations

import errno
import os
import stat

from stacktoken.core import LocalError
from stacktoken.core._time import UTC, datetime

from ._lock import LockTimeout, hold_lock, release_lock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeVar

    from returns.result import Result

    R = TypeVar("R")
    E = TypeVar("E")

__all__ = [
    "LOCK_TIMEOUT_SECONDS",
    "MAX_FILE_BYTES",
    "check_writable",
    "ensure_private_dir",
    "locked",
    "read_plain",
    "read_private",
    "remove_file",
    "write_atomic",
]

MAX_FILE_BYTES = 1 << 20  # our files are a few hundred bytes; anything larger is not ours
LOCK_TIMEOUT_SECONDS = 30.0
WRITE_PROBE_BYTES = 4096  # accesses.json is 1-2 KB: a rewrite needs no more room than this
_TEMP_SUFFIX = ".tmp"


def read_private(path: str) -> tuple[bytes, datetime] | str:
    """Read a token file we trust: a regular file, ours, not writable by others.

    The bytes and the file's mtime, or the reason the file cannot be used.
    The checks run on the opened descriptor (`O_NOFOLLOW`, `fstat`), so the file
    checked is the file read. A string is the reason it cannot be used.
    `O_NONBLOCK` keeps a FIFO planted at the path from blocking the open
    forever; it is then refused as not a regular file.
    """
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return "no such file"
    except OSError as error:
        if error.errno == errno.ELOOP:  # O_NOFOLLOW met a symlink at the final path
            return "a symbolic link (not followed)"
        return _reason("cannot open", error)
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            return "not a regular file"
        if info.st_uid != os.geteuid():
            return "owned by another user"
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return "writable by other users"
        if info.st_size > MAX_FILE_BYTES:
            return "larger than any file we write"
        data = _read_all(descriptor)
    except OSError as error:
        return _reason("cannot read", error)
    finally:
        os.close(descriptor)
    return data, _mtime(info.st_mtime)


def _mtime(seconds: float) -> datetime:
    # Some file systems (tmpfs) keep times outside datetime's years 1-9999:
    # such a time is as far as it can be, never an exception.
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return datetime.max.replace(tzinfo=UTC) if seconds > 0 else datetime.min.replace(tzinfo=UTC)


def read_plain(path: str) -> bytes | None:
    """Read fctl's config and profile files; None when absent, unreadable or not
    a regular file (`O_NONBLOCK`: a FIFO planted there must not block the open)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            return None
        return _read_all(descriptor)
    except OSError:
        return None
    finally:
        os.close(descriptor)


def _read_all(descriptor: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := os.read(descriptor, 65536):
        size += len(chunk)
        if size > MAX_FILE_BYTES:
            raise OSError("file grew past the size limit while being read")
        chunks.append(chunk)
    return b"".join(chunks)


def ensure_private_dir(folder: str) -> None:
    """Create `folder` and missing parents with mode 0700 (existing ones are left as they are)."""
    # Not `os.makedirs`, which makes the parents with the umask's mode, not 0700.
    missing: list[str] = []
    level = os.path.abspath(folder)
    while not os.path.isdir(level):
        missing.append(level)
        parent = os.path.dirname(level)
        if parent == level:
            break
        level = parent
    for level in reversed(missing):
        try:  # noqa: SIM105 - contextlib costs a warm run (this module is on it)
            os.mkdir(level, 0o700)
        except FileExistsError:
            pass


def write_atomic(path: str, data: bytes, *, sweep: bool = False) -> Result[None, LocalError]:
    """Write `data` to `path` atomically, mode 0600.

    `sweep` removes temp files that killed writers left beside `path`; only a
    caller holding the stack's lock may ask for it, as the lock is what tells
    a leftover from another process's write in progress.
    """
    from returns.result import Failure, Success

    folder = os.path.dirname(path)
    name = os.path.basename(path)
    temp: str | None = None
    try:
        ensure_private_dir(folder)
        if sweep:
            _sweep_leftovers(path)
        descriptor, temp = _create_temp(path)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
        temp = None
        _fsync_folder(folder)
    except OSError as error:
        return Failure(LocalError(message=_reason(f"cannot write {name}", error)))
    finally:
        if temp is not None:
            _unlink_quietly(temp)
    return Success(None)


def check_writable(path: str, size: int = WRITE_PROBE_BYTES) -> Result[None, LocalError]:
    """Show that `path` can be rewritten now: write `size` bytes to a temp file
    beside it, fsync, remove it. For callers about to spend something only a
    write can keep (a refresh token the IdP rotates on use): a read-only folder
    or a full disk is found before, not after.
    """
    from returns.result import Failure, Success

    temp: str | None = None
    try:
        descriptor, temp = _create_temp(path)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(bytes(size))
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as error:
        return Failure(LocalError(message=_reason(f"cannot write {os.path.basename(path)}", error)))
    finally:
        if temp is not None:
            _unlink_quietly(temp)
    return Success(None)


def remove_file(path: str) -> Result[bool, LocalError]:
    """Remove `path`; Success(False) if it was not there."""
    from returns.result import Failure, Success

    try:
        os.unlink(path)
    except FileNotFoundError:
        return Success(False)
    except OSError as error:
        return Failure(
            LocalError(message=_reason(f"cannot remove {os.path.basename(path)}", error))
        )
    return Success(True)


def locked(
    lock_path: str,
    body: Callable[[bool], Result[R, E]],
    *,
    timeout: float = LOCK_TIMEOUT_SECONDS,
    log: Callable[[str], None],
) -> Result[R, E | LocalError]:
    """Run `body(held)` holding the cross-process lock at `lock_path`.

    The lock is an advisory `flock` (`_lock.py`): the kernel drops it when its
    holder dies, so a killed process never leaves a stale lock. When the lock
    file cannot be created at all (a read-only folder), `body(False)` runs
    unlocked: the cache is best effort, and refusing would fail the command.
    `held` tells `body` whether it may sweep leftovers.
    """
    from returns.result import Failure

    if not os.path.isdir(os.path.dirname(lock_path)):
        # No stack folder means no `accesses.json` either: `body` will say so, and
        # creating the folder only to lock it would leave litter behind.
        log("running unlocked: the folder does not exist")
        return body(False)
    try:
        descriptor = hold_lock(lock_path, timeout=timeout)
    except LockTimeout:
        name = os.path.basename(lock_path)
        return Failure(LocalError(message=f"another process held the lock {name} for {timeout:g}s"))
    except OSError as error:
        log(_reason("running unlocked: cannot take the lock", error))
        return body(False)
    try:
        return body(True)
    finally:
        release_lock(descriptor)


def _create_temp(path: str) -> tuple[int, str]:
    import tempfile  # only writers need it

    return tempfile.mkstemp(
        prefix=f".{os.path.basename(path)}.", suffix=_TEMP_SUFFIX, dir=os.path.dirname(path)
    )


def _sweep_leftovers(path: str) -> None:
    folder, name = os.path.split(path)
    prefix = f".{name}."
    for entry in os.listdir(folder):
        if entry.startswith(prefix) and entry.endswith(_TEMP_SUFFIX):
            _unlink_quietly(os.path.join(folder, entry))


def _fsync_folder(folder: str) -> None:
    # The rename is durable only once the folder entry is on disk.
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _unlink_quietly(path: str) -> None:
    try:  # noqa: SIM105 - contextlib costs a warm run (this module is on it)
        os.unlink(path)
    except OSError:
        pass


def _reason(what: str, error: OSError) -> str:
    return f"{what}: {error.strerror or error.__class__.__name__}"
