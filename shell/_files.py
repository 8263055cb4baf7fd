"""Files below a trusted root: private reads, atomic writes, leftovers swept.

Every file stacktoken reads or writes lies below a root it trusts as given
(fctl's config dir, the cache dir): a `Place` is that root and the path
segments below it. Each segment is opened relative to its parent's
descriptor, without following a symlink, so a folder swapped
for a symlink mid-run sends nothing anywhere else: it is refused. A folder
or file of ours with looser permissions than 0700 / 0600 is tightened, and
one owned by another user is refused, with the reason at debug.

Reads never raise: a missing, unreadable, oversized or untrustworthy file is a
reason (a cache miss), which the caller logs. Writes go to a temp file in the
same folder, are flushed and fsynced, then renamed over the final name, so a
reader never sees a torn file and a crash leaves the old content or the new,
never a mix; the rename replaces a symlink at the final name, never follows it.

Every warm run reads through this module, so it imports neither `pathlib`
nor `returns` at its top (paths are strings; `Result`s are built by the
writers, which only the cold path calls), and reads answer a plain value.
"""

import errno
import os
import stat

from stacktoken.core._errors import LocalError
from stacktoken.core._record import Record
from stacktoken.core._time import UTC, datetime

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from returns.result import Result

__all__ = [
    "LOCK_TIMEOUT_SECONDS",
    "MAX_FILE_BYTES",
    "Place",
    "check_writable",
    "ensure_folder",
    "ensure_private_dir",
    "folder_of",
    "os_reason",
    "read_plain",
    "read_private",
    "remove_file",
    "write_atomic",
]

MAX_FILE_BYTES = 1 << 20  # our files are a few hundred bytes; anything larger is not ours
#: How long a process waits for another's cross-process lock (`_lock.locked`).
LOCK_TIMEOUT_SECONDS = 30.0
WRITE_PROBE_BYTES = 4096  # accesses.json is 1-2 KB: a rewrite needs no more room than this
_TEMP_SUFFIX = ".tmp"
# A write takes milliseconds: a temp file this old is a killed writer's, whoever
# holds the lock (a discovery document is written without one).
STALE_TEMP_SECONDS = 600.0
_PRIVATE_FILE = 0o600
_PRIVATE_FOLDER = 0o700
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_AT_SUPPORTED = os.open in os.supports_dir_fd  # False on Windows: paths are joined there


class Place(Record):
    """A file `parts` below a `root` trusted as given; nothing below it is followed."""

    root: str
    parts: "tuple[str, ...]"

    @classmethod
    def of(cls, place: "Place | str") -> "Place":
        """A place, or a bare path (only its last segment then escapes symlinks)."""
        if isinstance(place, Place):
            return place
        folder, name = os.path.split(place)
        return cls(root=folder or ".", parts=(name,))

    @property
    def name(self) -> str:
        return self.parts[-1]

    def __str__(self) -> str:
        return os.path.join(self.root, *self.parts)


def _ignore(_: str) -> None:
    return None


class _Refused(OSError):
    """A folder on the way cannot be trusted; the message says why."""


class _Folder:
    """A folder opened once; its files are reached relative to it (`openat`)."""

    def __init__(self, descriptor: "int | None", path: str) -> None:
        self._descriptor = descriptor  # None: no dir_fd support, paths are joined
        self._path = path

    def at(self, name: str) -> "tuple[str, int | None]":
        """The path and `dir_fd` to reach `name` by."""
        if self._descriptor is None:
            return os.path.join(self._path, name), None
        return name, self._descriptor

    def open(self, name: str, flags: int, mode: int = _PRIVATE_FILE) -> int:
        path, folder = self.at(name)
        return os.open(path, flags | _NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=folder)

    def replace(self, source: str, target: str) -> None:
        if self._descriptor is None:
            os.replace(os.path.join(self._path, source), os.path.join(self._path, target))
        else:
            os.replace(source, target, src_dir_fd=self._descriptor, dst_dir_fd=self._descriptor)

    def unlink(self, name: str) -> None:
        path, folder = self.at(name)
        os.unlink(path, dir_fd=folder)

    def modified(self, name: str) -> float:
        path, folder = self.at(name)
        return os.stat(path, dir_fd=folder, follow_symlinks=False).st_mtime

    def names(self) -> "list[str]":
        return os.listdir(self._descriptor if self._descriptor is not None else self._path)

    def sync(self) -> None:
        # The rename is durable only once the folder entry is on disk.
        if self._descriptor is not None:
            os.fsync(self._descriptor)

    def close(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)


def folder_of(place: Place, *, create: bool, log: "Callable[[str], None]") -> _Folder:
    """The folder holding `place`'s file, each segment opened without following a
    symlink; missing folders are made 0700 when `create`. Raises `OSError`."""
    if create:
        ensure_private_dir(place.root)
    if not _AT_SUPPORTED:
        folder = os.path.join(place.root, *place.parts[:-1])
        if create:
            ensure_private_dir(folder)
        return _Folder(None, folder)
    descriptor = os.open(place.root, os.O_RDONLY | _DIRECTORY | os.O_CLOEXEC)
    path = place.root
    for part in place.parts[:-1]:
        path = os.path.join(path, part)
        descriptor = _step(descriptor, part, path, create=create, log=log)
    return _Folder(descriptor, path)


def _step(parent: int, name: str, path: str, *, create: bool, log: "Callable[[str], None]") -> int:
    """Open folder `name` of `parent`, never through a symlink. Takes `parent` over:
    it is closed whatever happens, and so is the child if it cannot be trusted."""
    flags = os.O_RDONLY | _DIRECTORY | _NOFOLLOW | os.O_CLOEXEC
    try:
        try:
            child = os.open(name, flags, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                raise
            try:  # noqa: SIM105 - contextlib costs a warm run (this module is on it)
                os.mkdir(name, _PRIVATE_FOLDER, dir_fd=parent)
            except FileExistsError:
                pass  # another process made it meanwhile
            child = os.open(name, flags, dir_fd=parent)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENOTDIR):
            raise _Refused(f"{path} is a symbolic link or not a folder (not followed)") from error
        raise
    finally:
        os.close(parent)
    try:
        info = os.fstat(child)
        if info.st_uid != os.geteuid():
            raise _Refused(f"{path} is owned by another user")
        if stat.S_IMODE(info.st_mode) & 0o077:
            log(f"tightened {path} from {stat.S_IMODE(info.st_mode):04o} to 0700")
            os.fchmod(child, _PRIVATE_FOLDER)
    except BaseException:
        os.close(child)
        raise
    return child


def read_private(
    place: "Place | str", *, log: "Callable[[str], None]" = _ignore
) -> "tuple[bytes, datetime] | str":
    """Read a token file we trust: a regular file, ours, not writable by others.

    The bytes and the file's mtime, or the reason the file cannot be used.
    The checks run on the opened descriptor (`O_NOFOLLOW`, `fstat`), so the file
    checked is the file read. A file of ours readable by others is tightened to
    0600 (and said so at debug). `O_NONBLOCK` keeps a FIFO planted at the path
    from blocking the open forever; it is then refused as not a regular file.
    """
    where = Place.of(place)
    descriptor = _open_for_reading(where, log=log)
    if isinstance(descriptor, str):
        return descriptor
    try:
        info = os.fstat(descriptor)
        refused = _untrusted(info)
        if refused is not None:
            return refused
        if stat.S_IMODE(info.st_mode) & 0o077:
            log(f"tightened {where} from {stat.S_IMODE(info.st_mode):04o} to 0600")
            os.fchmod(descriptor, _PRIVATE_FILE)
        data = _read_all(descriptor)
    except OSError as error:
        return os_reason("cannot read", error)
    finally:
        os.close(descriptor)
    return data, _mtime(info.st_mtime)


def _open_for_reading(where: Place, *, log: "Callable[[str], None]") -> "int | str":
    """The open file, or why it cannot be opened."""
    try:
        folder = folder_of(where, create=False, log=log)
    except FileNotFoundError:
        return "no such file"
    except OSError as error:
        return os_reason("cannot open its folder", error)
    try:
        return folder.open(where.name, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        return "no such file"
    except OSError as error:
        if error.errno == errno.ELOOP:  # O_NOFOLLOW met a symlink at the final name
            return "a symbolic link (not followed)"
        return os_reason("cannot open", error)
    finally:
        folder.close()


def _untrusted(info: os.stat_result) -> "str | None":
    """Why a file opened for reading cannot be trusted; None when it can."""
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if info.st_uid != os.geteuid():
        return "owned by another user"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return "writable by other users"
    if info.st_size > MAX_FILE_BYTES:
        return "larger than any file we write"
    return None


def _mtime(seconds: float) -> datetime:
    # Some file systems (tmpfs) keep times outside datetime's years 1-9999:
    # such a time is as far as it can be, never an exception.
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return datetime.max.replace(tzinfo=UTC) if seconds > 0 else datetime.min.replace(tzinfo=UTC)


def read_plain(path: str) -> "bytes | None":
    """Read a file the user named (a client secret); None when absent, unreadable or
    not a regular file (`O_NONBLOCK`: a FIFO planted there must not block the open)."""
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
            os.mkdir(level, _PRIVATE_FOLDER)
        except FileExistsError:
            pass


def ensure_folder(place: Place, *, log: "Callable[[str], None]" = _ignore) -> "str | None":
    """Make the folders holding `place` (0700, no symlink followed); None, or why not."""
    try:
        folder_of(place, create=True, log=log).close()
    except OSError as error:
        return os_reason("cannot make its folder", error)
    return None


def write_atomic(
    place: "Place | str",
    data: bytes,
    *,
    sweep: bool = False,
    log: "Callable[[str], None]" = _ignore,
) -> "Result[None, LocalError]":
    """Write `data` to `place` atomically, mode 0600, making missing folders 0700.

    `sweep` removes temp files that killed writers left beside it; only a
    caller holding the lock may ask for it, as the lock is what tells a
    leftover from another process's write in progress. Without it, only temp
    files older than `STALE_TEMP_SECONDS` are removed: no write takes that long.
    """
    from returns.result import Failure, Success

    where = Place.of(place)
    temp: str | None = None
    folder: _Folder | None = None
    try:
        folder = folder_of(where, create=True, log=log)
        _sweep_leftovers(folder, where.name, stale_only=not sweep)
        temp, descriptor = _create_temp(folder, where.name)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        folder.replace(temp, where.name)
        temp = None
        folder.sync()
    except OSError as error:
        return Failure(LocalError(message=os_reason(f"cannot write {where.name}", error)))
    finally:
        if folder is not None:
            if temp is not None:
                _unlink_quietly(folder, temp)
            folder.close()
    return Success(None)


def check_writable(
    place: "Place | str", size: int = WRITE_PROBE_BYTES
) -> "Result[None, LocalError]":
    """Show that `place` can be rewritten now: write `size` bytes to a temp file
    beside it, fsync, remove it. For callers about to spend something only a
    write can keep (a refresh token the IdP rotates on use): a read-only folder
    or a full disk is found before, not after.
    """
    from returns.result import Failure, Success

    where = Place.of(place)
    temp: str | None = None
    folder: _Folder | None = None
    try:
        folder = folder_of(where, create=False, log=_ignore)
        temp, descriptor = _create_temp(folder, where.name)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(bytes(size))
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as error:
        return Failure(LocalError(message=os_reason(f"cannot write {where.name}", error)))
    finally:
        if folder is not None:
            if temp is not None:
                _unlink_quietly(folder, temp)
            folder.close()
    return Success(None)


def remove_file(place: "Place | str") -> "Result[bool, LocalError]":
    """Remove `place`'s file; Success(False) if it was not there."""
    from returns.result import Failure, Success

    where = Place.of(place)
    try:
        folder = folder_of(where, create=False, log=_ignore)
    except FileNotFoundError:
        return Success(False)
    except OSError as error:
        return Failure(LocalError(message=os_reason(f"cannot remove {where.name}", error)))
    try:
        folder.unlink(where.name)
    except FileNotFoundError:
        return Success(False)
    except OSError as error:
        return Failure(LocalError(message=os_reason(f"cannot remove {where.name}", error)))
    finally:
        folder.close()
    return Success(True)


def _create_temp(folder: _Folder, name: str) -> "tuple[str, int]":
    """A new file beside `name`, 0600, never an existing one (`O_EXCL`), as
    `tempfile.mkstemp` does without importing `tempfile` (and `random`, `shutil`)."""
    for _ in range(100):
        temp = f".{name}.{os.urandom(6).hex()}{_TEMP_SUFFIX}"
        try:
            return temp, folder.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temp file name")


def _sweep_leftovers(folder: _Folder, name: str, *, stale_only: bool) -> None:
    import time  # writes are never on a warm run

    prefix = f".{name}."
    oldest_kept = time.time() - STALE_TEMP_SECONDS
    for entry in folder.names():
        ours = entry.startswith(prefix) and entry.endswith(_TEMP_SUFFIX)
        if ours and (not stale_only or _modified_before(folder, entry, oldest_kept)):
            _unlink_quietly(folder, entry)


def _modified_before(folder: _Folder, name: str, moment: float) -> bool:
    try:
        return folder.modified(name) < moment
    except OSError:
        return False  # gone already, or not ours to judge


def _unlink_quietly(folder: _Folder, name: str) -> None:
    try:  # noqa: SIM105 - contextlib costs a warm run (this module is on it)
        folder.unlink(name)
    except OSError:
        pass


def os_reason(what: str, error: OSError) -> str:
    if isinstance(error, _Refused):
        return f"{what}: {error}"
    return f"{what}: {error.strerror or error.__class__.__name__}"
