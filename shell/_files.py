"""The file store: private reads, atomic writes, the per-stack lock.

Reads never raise: a missing, unreadable, oversized or untrustworthy file is a
reason (a cache miss), which the caller logs. Writes go to a temp file in the
same folder, are flushed and fsynced, then `os.replace`d over the final path,
so a reader never sees a torn file and a crash leaves the old content or the
new, never a mix. `os.replace` renames over a symlink rather than through it,
so a symlink planted at the final path is replaced, never followed.

Every warm run reads through this module, so it imports `returns` only inside
the functions that build a `Result`; the warm path uses `read_private_or_reason`.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from stacktoken.core import LocalError

if TYPE_CHECKING:
    from returns.result import Result

__all__ = [
    "LOCK_TIMEOUT_SECONDS",
    "MAX_FILE_BYTES",
    "check_writable",
    "ensure_private_dir",
    "locked",
    "read_plain",
    "read_private",
    "read_private_or_reason",
    "remove_file",
    "write_atomic",
]

MAX_FILE_BYTES = 1 << 20  # our files are a few hundred bytes; anything larger is not ours
LOCK_TIMEOUT_SECONDS = 30.0
WRITE_PROBE_BYTES = 4096  # accesses.json is 1-2 KB: a rewrite needs no more room than this
_TEMP_SUFFIX = ".tmp"

R = TypeVar("R")
E = TypeVar("E")


def read_private(path: Path) -> Result[tuple[bytes, datetime], str]:
    """Read a token file we trust: a regular file, ours, not writable by others.

    Success holds the bytes and the file's mtime; see `read_private_or_reason`.
    """
    from returns.result import Failure, Success

    read = read_private_or_reason(path)
    return Failure(read) if isinstance(read, str) else Success(read)


def read_private_or_reason(path: Path) -> tuple[bytes, datetime] | str:
    """`read_private` without the `Result`: the bytes and mtime, or the reason.

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


def read_plain(path: Path) -> bytes | None:
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


def ensure_private_dir(folder: Path) -> None:
    """Create `folder` and missing parents with mode 0700 (existing ones are left as they are)."""
    # Not `mkdir(parents=True)`, which makes the parents with the umask's mode, not 0700.
    missing: list[Path] = []
    for level in (folder, *folder.parents):
        if level.is_dir():
            break
        missing.append(level)
    for level in reversed(missing):
        level.mkdir(mode=0o700, exist_ok=True)


def write_atomic(path: Path, data: bytes, *, sweep: bool = False) -> Result[None, LocalError]:
    """Write `data` to `path` atomically, mode 0600.

    `sweep` removes temp files that killed writers left beside `path`; only a
    caller holding the stack's lock may ask for it, as the lock is what tells
    a leftover from another process's write in progress.
    """
    from returns.result import Failure, Success

    folder = path.parent
    temp: Path | None = None
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
        return Failure(LocalError(message=_reason(f"cannot write {path.name}", error)))
    finally:
        if temp is not None:
            _unlink_quietly(temp)
    return Success(None)


def check_writable(path: Path, size: int = WRITE_PROBE_BYTES) -> Result[None, LocalError]:
    """Show that `path` can be rewritten now: write `size` bytes to a temp file
    beside it, fsync, remove it. For callers about to spend something only a
    write can keep (a refresh token the IdP rotates on use): a read-only folder
    or a full disk is found before, not after.
    """
    from returns.result import Failure, Success

    temp: Path | None = None
    try:
        descriptor, temp = _create_temp(path)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(bytes(size))
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as error:
        return Failure(LocalError(message=_reason(f"cannot write {path.name}", error)))
    finally:
        if temp is not None:
            _unlink_quietly(temp)
    return Success(None)


def remove_file(path: Path) -> Result[bool, LocalError]:
    """Remove `path`; Success(False) if it was not there."""
    from returns.result import Failure, Success

    try:
        path.unlink()
    except FileNotFoundError:
        return Success(False)
    except OSError as error:
        return Failure(LocalError(message=_reason(f"cannot remove {path.name}", error)))
    return Success(True)


def locked(
    lock_path: Path,
    body: Callable[[bool], Result[R, E]],
    *,
    timeout: float = LOCK_TIMEOUT_SECONDS,
    log: Callable[[str], None],
) -> Result[R, E | LocalError]:
    """Run `body(held)` holding the cross-process lock at `lock_path`.

    The lock is an advisory `flock` (through filelock): the kernel drops it
    when its holder dies, so a killed process never leaves a stale lock. When
    the lock file cannot be created at all (a read-only folder), `body(False)`
    runs unlocked: the cache is best effort, and refusing would fail the
    command. `held` tells `body` whether it may sweep leftovers.
    """
    from filelock import FileLock, Timeout
    from returns.result import Failure

    if not lock_path.parent.is_dir():
        # No stack folder means no `accesses.json` either: `body` will say so, and
        # creating the folder (as filelock would) only leaves litter behind.
        log("running unlocked: the stack folder does not exist")
        return body(False)
    try:
        lock = FileLock(lock_path, timeout=timeout, mode=0o600, fallback_to_soft=False)
        lock.acquire()
    except Timeout:
        return Failure(
            LocalError(message=f"another process held the lock {lock_path.name} for {timeout:g}s")
        )
    except OSError as error:
        log(_reason("running unlocked: cannot take the lock", error))
        return body(False)
    try:
        return body(True)
    finally:
        lock.release()


def _create_temp(path: Path) -> tuple[int, Path]:
    import tempfile  # only writers need it

    descriptor, name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=_TEMP_SUFFIX, dir=path.parent
    )
    return descriptor, Path(name)


def _sweep_leftovers(path: Path) -> None:
    for leftover in path.parent.glob(f".{path.name}.*{_TEMP_SUFFIX}"):
        _unlink_quietly(leftover)


def _fsync_folder(folder: Path) -> None:
    # The rename is durable only once the folder entry is on disk.
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def _reason(what: str, error: OSError) -> str:
    return f"{what}: {error.strerror or error.__class__.__name__}"
