"""The local half of the fault matrix: `reliability_matrix.LOCAL_FAULTS`.

Tests run as root, whom permissions do not stop, so a read-only folder and a
full disk are injected in-process (`os` functions raising `EROFS`/`ENOSPC` for
paths in the stack folder) and driven through the library API; the other
faults are real files and run through the CLI.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import pytest
from reliability_helpers import (
    assert_files_intact,
    assert_ok,
    assert_one_line_error,
    library_source,
    stack_folder_names,
    temp_files,
    write_accesses,
)
from reliability_matrix import LOCAL_FAULTS, LocalFault
from stacktoken import LocalStorageError, StackTokenError
from stacktoken.core._cache_codec import encode_cache_entry
from stacktoken.core._types import CachedToken

from conftest import World

NOBODY = 65534


def run_debug(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    return world.run(*args, global_args=("--cache-dir", str(world.cache_dir), "--debug"))


def token_of(result: subprocess.CompletedProcess[str], code: int) -> str:
    """Check the run against the expected exit code; the token when it is 0."""
    if code == 0:
        return assert_ok(result)
    assert_one_line_error(result, code)
    return ""


# -- CLI cases ------------------------------------------------------------------


def cache_is_directory(world: World, case: LocalFault) -> None:
    cache = world.profile.api_token_cache_path
    cache.mkdir()
    for runs in (1, 2):  # every run goes to the network: nothing can be cached
        result = run_debug(world, "token")
        token_of(result, case.exit_code)
        assert "cache miss: not a regular file" in result.stderr
        assert "cache write failed" in result.stderr
        assert world.exchanges() == runs
    cache.rmdir()
    assert_ok(world.run("token"))
    assert_ok(world.run("token"))
    assert world.exchanges() == 3


def _untrusted_cache(world: World, case: LocalFault, spoil: Callable[[Path], object]) -> str:
    first = assert_ok(world.run("token"))
    cache = world.profile.api_token_cache_path
    spoil(cache)
    result = run_debug(world, "token")
    second = token_of(result, case.exit_code)
    assert second != first, "an untrusted cache entry was served"
    assert world.exchanges() == 2
    info = cache.lstat()
    assert (info.st_uid, info.st_mode & 0o777) == (os.geteuid(), 0o600)
    assert assert_ok(world.run("token")) == second  # our entry is trusted again
    assert world.exchanges() == 2
    return result.stderr


def cache_other_owner(world: World, case: LocalFault) -> None:
    stderr = _untrusted_cache(world, case, lambda path: os.chown(path, NOBODY, NOBODY))
    assert "cache miss: owned by another user" in stderr


def cache_world_writable(world: World, case: LocalFault) -> None:
    stderr = _untrusted_cache(world, case, lambda path: os.chmod(path, 0o666))
    assert "cache miss: writable by other users" in stderr


def cache_symlink(world: World, case: LocalFault) -> None:
    planted = world.home / "planted.json"
    planted.parent.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    entry = CachedToken(
        access_token="planted-token",
        token_type="Bearer",
        expiry=now + timedelta(hours=1),
        saved_at=now,
    )
    planted.write_bytes(encode_cache_entry(entry))
    os.chmod(planted, 0o600)
    before = planted.read_bytes()
    cache = world.profile.api_token_cache_path
    cache.symlink_to(planted)
    result = run_debug(world, "token")
    token = token_of(result, case.exit_code)
    assert token != "planted-token"
    assert "cache miss: a symbolic link (not followed)" in result.stderr
    assert not cache.is_symlink() and cache.is_file()
    assert planted.read_bytes() == before
    assert assert_ok(world.run("token")) == token
    assert world.exchanges() == 1


def cache_garbage(world: World, case: LocalFault) -> None:
    cache = world.profile.api_token_cache_path
    cache.write_bytes(b'{"accessToken": "torn-tok')
    os.chmod(cache, 0o600)
    result = run_debug(world, "token")
    token = token_of(result, case.exit_code)
    assert "cache miss: not JSON" in result.stderr
    assert json.loads(cache.read_bytes())["accessToken"] == token


@contextmanager
def _spoiled_accesses(world: World, spoil: Callable[[Path], object]) -> Iterator[Path]:
    """Spoil accesses.json, then put the original back."""
    path = world.profile.accesses_path
    saved = world.home / "accesses.saved"
    saved.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, saved)
    spoil(path)
    try:
        yield path
    finally:
        if path.is_dir() and not path.is_symlink():
            path.rmdir()
        else:
            path.unlink()
        shutil.copy2(saved, path)
        os.chown(path, os.geteuid(), os.getegid())


def _accesses_fault(world: World, case: LocalFault, spoil: Callable[[Path], object]) -> str:
    with _spoiled_accesses(world, spoil):
        line = assert_one_line_error(world.run("token"), case.exit_code)
    assert_ok(world.run("token"))
    assert_files_intact(world)
    return line


def _replace_with_directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _replace_with_symlink(path: Path) -> None:
    target = path.with_name("elsewhere.json")
    path.rename(target)
    path.symlink_to(target)


def accesses_is_directory(world: World, case: LocalFault) -> None:
    assert "not a regular file" in _accesses_fault(world, case, _replace_with_directory)


def accesses_other_owner(world: World, case: LocalFault) -> None:
    line = _accesses_fault(world, case, lambda path: os.chown(path, NOBODY, NOBODY))
    assert "owned by another user" in line


def accesses_world_writable(world: World, case: LocalFault) -> None:
    line = _accesses_fault(world, case, lambda path: os.chmod(path, 0o666))
    assert "writable by other users" in line


def accesses_symlink(world: World, case: LocalFault) -> None:
    with _spoiled_accesses(world, _replace_with_symlink):
        assert_one_line_error(world.run("token"), case.exit_code)
        (world.profile.stack_dir / "elsewhere.json").unlink()
    assert_ok(world.run("token"))
    assert_files_intact(world)


def accesses_garbage(world: World, case: LocalFault) -> None:
    line = _accesses_fault(world, case, lambda path: path.write_bytes(b"\x00not json"))
    assert "unreadable" in line


def lock_is_directory(world: World, case: LocalFault) -> None:
    lock = world.profile.stack_dir / "api_token_cache.json.lock"
    lock.mkdir()
    result = run_debug(world, "token")
    token_of(result, case.exit_code)
    assert "running unlocked" in result.stderr
    lock.rmdir()
    assert_ok(world.run("token"))
    assert_files_intact(world)


def discovery_cache_unusable(world: World, case: LocalFault) -> None:
    world.cache_dir.parent.mkdir(parents=True, exist_ok=True)
    world.cache_dir.write_text("")
    result = run_debug(world, "token")
    token_of(result, case.exit_code)
    assert "discovery cache write failed" in result.stderr
    world.cache_dir.unlink()
    world.profile.api_token_cache_path.unlink()
    assert_ok(world.run("token"))
    assert (world.cache_dir / "discovery").is_dir()


# -- in-process cases: a read-only folder, a full disk -----------------------------


def _inside(path: object, folder: Path, dir_fd: int | None = None) -> bool:
    """Whether `path` (relative to `dir_fd`, as the file store opens files) is in `folder`."""
    if not isinstance(path, (str, os.PathLike)):
        return False
    if dir_fd is not None and not os.path.isabs(path):
        path = os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), path)
    return os.fspath(path).startswith(f"{folder}{os.sep}")


def _refuse(code: int, path: object) -> OSError:
    return OSError(code, os.strerror(code), str(path))


def make_read_only(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Every create, rename or removal in `folder` fails with EROFS; reads work."""
    real_open = os.open
    writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC

    def open_(path: Any, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        if flags & writing and _inside(path, folder, dir_fd):
            raise _refuse(errno.EROFS, path)
        return real_open(path, flags, mode, dir_fd=dir_fd)

    monkeypatch.setattr(os, "open", open_)
    for name in ("replace", "rename", "unlink", "remove", "mkdir", "rmdir"):
        real = getattr(os, name)

        def refusing(path: Any, *args: Any, _real: Any = real, **kwargs: Any) -> Any:
            base = kwargs.get("dir_fd", kwargs.get("src_dir_fd"))
            if _inside(path, folder, base) or any(_inside(arg, folder, base) for arg in args):
                raise _refuse(errno.EROFS, path)
            return _real(path, *args, **kwargs)

        monkeypatch.setattr(os, name, refusing)


class _NoSpace:
    """A file that takes half of a write, then reports ENOSPC, as a full disk does."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle

    def __enter__(self) -> _NoSpace:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._handle.close()

    def write(self, data: bytes) -> int:
        self._handle.write(data[: len(data) // 2])
        self._handle.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def flush(self) -> None:
        self._handle.flush()

    def fileno(self) -> int:
        return self._handle.fileno()

    def close(self) -> None:
        self._handle.close()


def make_disk_full(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Files can be created in `folder`, but writing to them fails with ENOSPC."""
    real_fdopen = os.fdopen

    def fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
        handle = real_fdopen(fd, *args, **kwargs)
        if _inside(os.readlink(f"/proc/self/fd/{fd}"), folder):
            return _NoSpace(handle)
        return handle

    monkeypatch.setattr(os, "fdopen", fdopen)


def _library_token(world: World, log: list[str]) -> tuple[int, str]:
    """(exit code, token or error message) of one library call."""
    with library_source(world, log=log.append) as source:
        try:
            return 0, source.token()
        except StackTokenError as error:
            assert "\n" not in str(error)
            if error.exit_code == 1:
                assert isinstance(error, LocalStorageError), error
            return error.exit_code, str(error)


def _contents(folder: Path) -> dict[str, bytes]:
    # The lock file's content is filelock's business (it may record a pid).
    return {path.name: path.read_bytes() for path in folder.iterdir() if path.suffix != ".lock"}


def _in_process(
    world: World,
    case: LocalFault,
    monkeypatch: pytest.MonkeyPatch,
    fault: Callable[[pytest.MonkeyPatch, Path], None],
    *,
    refresh_due: bool,
) -> list[str]:
    if refresh_due:
        write_accesses(world, exp_in=-120)
    folder = world.profile.stack_dir
    before = _contents(folder)
    log: list[str] = []
    with monkeypatch.context() as patched:
        fault(patched, folder)
        code, seen = _library_token(world, log)
    assert code == case.exit_code, seen
    assert _contents(folder) == before
    assert not temp_files(folder)
    if refresh_due:
        assert world.membership.count(world.membership.TOKEN) == 0, "the refresh token was spent"
        assert "refresh" in seen
    # The fault is gone: the next run works and nothing was lost.
    with library_source(world) as source:
        assert source.token()
    assert_files_intact(world)
    return log


def read_only_folder(world: World, case: LocalFault, monkeypatch: pytest.MonkeyPatch) -> None:
    log = _in_process(world, case, monkeypatch, make_read_only, refresh_due=False)
    assert any("cache write failed" in line for line in log), log
    assert any("running unlocked" in line for line in log), log


def read_only_folder_refresh(
    world: World, case: LocalFault, monkeypatch: pytest.MonkeyPatch
) -> None:
    _in_process(world, case, monkeypatch, make_read_only, refresh_due=True)


def disk_full(world: World, case: LocalFault, monkeypatch: pytest.MonkeyPatch) -> None:
    # A stale entry (saved 10 minutes ago, TTL 5m) that the run must rewrite.
    assert_ok(world.run("token"))
    cache = world.profile.api_token_cache_path
    stale = json.loads(cache.read_bytes())
    stale["savedAt"] = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
    cache.write_text(json.dumps(stale))
    log = _in_process(world, case, monkeypatch, make_disk_full, refresh_due=False)
    assert any("cache write failed" in line and "No space" in line for line in log), log


def disk_full_refresh(world: World, case: LocalFault, monkeypatch: pytest.MonkeyPatch) -> None:
    _in_process(world, case, monkeypatch, make_disk_full, refresh_due=True)


CLI_CASES: dict[str, Callable[[World, LocalFault], None]] = {
    "cache_is_directory": cache_is_directory,
    "cache_other_owner": cache_other_owner,
    "cache_world_writable": cache_world_writable,
    "cache_symlink": cache_symlink,
    "cache_garbage": cache_garbage,
    "accesses_is_directory": accesses_is_directory,
    "accesses_other_owner": accesses_other_owner,
    "accesses_world_writable": accesses_world_writable,
    "accesses_symlink": accesses_symlink,
    "accesses_garbage": accesses_garbage,
    "lock_is_directory": lock_is_directory,
    "discovery_cache_unusable": discovery_cache_unusable,
}
LIBRARY_CASES: dict[str, Callable[[World, LocalFault, pytest.MonkeyPatch], None]] = {
    "read_only_folder": read_only_folder,
    "read_only_folder_refresh": read_only_folder_refresh,
    "disk_full": disk_full,
    "disk_full_refresh": disk_full_refresh,
}


def test_local_faults_each_have_a_test() -> None:
    cases = {case.id: case.via for case in LOCAL_FAULTS}
    assert cases == {**dict.fromkeys(CLI_CASES, "cli"), **dict.fromkeys(LIBRARY_CASES, "library")}


@pytest.mark.parametrize("case", LOCAL_FAULTS, ids=[case.id for case in LOCAL_FAULTS])
def test_local_fault_outcome_as_documented(
    world: World, case: LocalFault, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run ends as the matrix says, and the next one works once the fault is gone."""
    if case.via == "cli":
        CLI_CASES[case.id](world, case)
    else:
        LIBRARY_CASES[case.id](world, case, monkeypatch)
    assert stack_folder_names(world) <= {
        "accesses.json",
        "api_token_cache.json",
        "api_token_cache.json.lock",
    }
