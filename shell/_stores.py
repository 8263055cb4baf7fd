"""Stores: the cache entry's semantics once, over a small persistence.

A store (core's `Store` record) is a `StampedStore` over a persistence, as
msal-extensions splits them:

- a **persistence** keeps bytes: `load()` (the bytes and, for a file, its
  mtime; or why there are none; `fresh`: never an answer remembered from the
  read before), `save(data, keep_ms)`, `delete(data)` (only
  while it still holds `data`), `locked(body)` (run under the entry's lock).
  `FilePersistence` is a folder's `api_token_cache.json` and its flock;
  `_redis.RedisPersistence` is a Redis key and its lease. `expiring`: it
  drops entries itself, so writes say how long to keep them; `unreadable`:
  how a miss for an undecodable value begins;
- the **stamped store** holds the entry semantics: decode the
  `api_token_cache.json` entry (docs/design.md §3.4), check its stamp (whom
  and what the token is for), stamp what it writes, and, for a persistence
  that drops entries itself (Redis), keep an entry until its expiry less the
  grace of the `Settings`.

Reads are warm-path code: a plain value back, no `returns` imported.
"""

from stacktoken.core._cache import Store, stamp_mismatch
from stacktoken.core._cache_codec import decode_cache_entry, encode_cache_entry
from stacktoken.core._paths import client_key, client_paths
from stacktoken.core._record import Record, replace
from stacktoken.core._types import Settings

from ._config import FctlStack
from ._files import (
    LOCK_TIMEOUT_SECONDS,
    Place,
    ensure_folder,
    read_private,
    remove_file,
    write_atomic,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Protocol

    from returns.result import Result
    from stacktoken.core._cache import Body, CacheRead
    from stacktoken.core._errors import AcquireError, LocalError
    from stacktoken.core._paths import Segments, StackPaths
    from stacktoken.core._time import datetime
    from stacktoken.core._types import CachedToken, ClientCredentials

    class Persistence(Protocol):
        """Where a store's bytes live (see the module's docstring)."""

        @property
        def name(self) -> str: ...
        @property
        def expiring(self) -> bool: ...
        @property
        def unreadable(self) -> str: ...
        def load(self, *, fresh: bool = False) -> "tuple[bytes, datetime | None] | str": ...
        def save(self, data: bytes, keep_ms: int | None) -> "Result[None, LocalError]": ...
        def delete(self, data: bytes) -> "Result[bool, LocalError]": ...
        def locked(self, body: "Body") -> "Result[CachedToken, AcquireError]": ...


__all__ = [
    "FilePersistence",
    "FileStore",
    "Stamp",
    "StampedStore",
    "client_store",
    "fctl_store",
    "read_cache_entry",
]


def read_cache_entry(
    place: "Place | str", *, log: "Callable[[str], None] | None" = None
) -> "CacheRead | str":
    """A cache file's entry and mtime, or the reason it is a cache miss."""
    read = read_private(place) if log is None else read_private(place, log=log)
    if isinstance(read, str):
        return read
    data, mtime = read
    entry = decode_cache_entry(data)
    return entry if isinstance(entry, str) else (entry, mtime)


class Stamp(Record):
    """Whom and what a store's entries are for (no secret: it is written beside
    the token). `strict`: an entry without a stamp is a miss (a store only
    stacktoken writes to); otherwise it is taken as fctl, which stamps nothing,
    takes it."""

    stack_uri: "str | None" = None
    client_id: "str | None" = None
    scopes: "tuple[str, ...] | None" = None
    strict: bool = False


class StampedStore:
    """The entry semantics over `persistence`, stamped with `stamp`; `settings`
    give the grace an expiring persistence keeps entries by, `clock` the time."""

    def __init__(
        self,
        persistence: "Persistence",
        stamp: Stamp,
        *,
        settings: "Settings | None" = None,
        clock: "Callable[[], datetime] | None" = None,
    ) -> None:
        self._persistence = persistence
        self._stamp = stamp
        self._settings = settings if settings is not None else Settings()
        self._clock = clock

    @property
    def stack_uri(self) -> "str | None":
        """The stack the entries are for."""
        return self._stamp.stack_uri

    def read(self) -> "CacheRead | str":
        loaded = self._persistence.load()
        if isinstance(loaded, str):
            return loaded
        data, mtime = loaded
        entry = decode_cache_entry(data)
        if isinstance(entry, str):
            return self._persistence.unreadable + entry
        stamp = self._stamp
        if mismatch := stamp_mismatch(
            entry,
            stack_uri=stamp.stack_uri,
            client_id=stamp.client_id,
            scopes=stamp.scopes,
            strict=stamp.strict,
        ):
            return mismatch
        # An entry without `savedAt` (fctl's) counts as saved when its file was.
        saved = entry.saved_at if entry.saved_at is not None else mtime
        if saved is None:
            return f"{self._persistence.name} entry has no savedAt"
        return entry, saved

    def write(self, entry: "CachedToken") -> "Result[None, LocalError]":
        from returns.result import Failure
        from stacktoken.core._errors import LocalError

        keep_ms: int | None = None
        if self._persistence.expiring:
            where = self._persistence.name
            if entry.expiry is None:
                reason = "the token has no expiry"
                return Failure(LocalError(message=f"not stored in {where}: {reason}"))
            now = self._clock() if self._clock is not None else _utc_now()
            keep_ms = int((entry.expiry - self._settings.expiry_grace - now).total_seconds() * 1000)
            if keep_ms <= 0:
                grace = "expires within the grace"
                return Failure(LocalError(message=f"not stored in {where}: {grace}"))
        stamp = self._stamp
        stamped = replace(
            entry, stack_uri=stamp.stack_uri, client_id=stamp.client_id, scopes=stamp.scopes
        )
        return self._persistence.save(encode_cache_entry(stamped), keep_ms)

    def locked(self, body: "Body") -> "Result[CachedToken, AcquireError]":
        return self._persistence.locked(body)

    def drop(self, token: str) -> "Result[bool, LocalError]":
        """Remove the entry if it still holds `token`: a newer one another
        process wrote since is left alone."""
        from returns.result import Success

        loaded = self._persistence.load(fresh=True)
        if isinstance(loaded, str):
            return Success(False)
        entry = decode_cache_entry(loaded[0])
        if isinstance(entry, str) or entry.access_token != token:
            return Success(False)
        return self._persistence.delete(loaded[0])

    def record(self) -> Store:
        return Store(
            name=self._persistence.name,
            read=self.read,
            write=self.write,
            locked=self.locked,
            drop=self.drop,
        )


def _utc_now() -> "datetime":
    from stacktoken.core._time import UTC, datetime

    return datetime.now(UTC)


class FilePersistence:
    """The file at `paths.cache` below `root`, locked by `paths.lock`.

    `creates_folder`: lock and write even if the folder is not there yet (a
    machine credential's; an fctl stack without a folder has no `accesses.json`
    either, so creating one would only leave litter).
    """

    expiring = False
    unreadable = ""  # a decoding error says it all: the log names the file's store

    def __init__(
        self,
        root: str,
        paths: "StackPaths",
        *,
        log: "Callable[[str], None]",
        lock_timeout: float = LOCK_TIMEOUT_SECONDS,
        creates_folder: bool = False,
        name: str = "disk",
    ) -> None:
        self.root = root
        self.paths = paths
        self.name = name
        self._log = log
        self._lock_timeout = lock_timeout
        self._creates_folder = creates_folder
        # Leftover temp files may be swept only while this process holds the
        # lock: without it they cannot be told from another process's write in
        # progress. A token source runs one acquisition at a time, so one flag does.
        self._lock_held = False

    def place(self, segments: "Segments") -> Place:
        """A file of this folder, below its root (nothing below it is followed)."""
        return Place(root=self.root, parts=segments)

    def load(self, *, fresh: bool = False) -> "tuple[bytes, datetime | None] | str":
        return read_private(self.place(self.paths.cache), log=self._log)

    def save(self, data: bytes, keep_ms: "int | None") -> "Result[None, LocalError]":
        return self.write_file(self.paths.cache, data)

    def write_file(self, segments: "Segments", data: bytes) -> "Result[None, LocalError]":
        """Write a file of this folder atomically (sweeping leftovers under the lock)."""
        return write_atomic(self.place(segments), data, sweep=self._lock_held, log=self._log)

    def delete(self, data: bytes) -> "Result[bool, LocalError]":
        # The caller has just read `data` here; a file has no compare-and-delete.
        return remove_file(self.place(self.paths.cache))

    def locked(self, body: "Body") -> "Result[CachedToken, AcquireError]":
        def noting_the_lock(held: bool) -> "Result[CachedToken, AcquireError]":
            self._lock_held = held
            try:
                return body()
            finally:
                self._lock_held = False

        # Imported here: a warm run reads and never locks (docs/design.md §12).
        from ._lock import locked

        if self._creates_folder and (problem := ensure_folder(self.place(self.paths.lock))):
            self._log(problem)  # the lock then runs its body unlocked, and says so
        return locked(
            self.place(self.paths.lock), noting_the_lock, timeout=self._lock_timeout, log=self._log
        )


class FileStore(StampedStore):
    """The stamped store of a folder, with the folder's other files at hand."""

    def __init__(self, files: FilePersistence, stamp: Stamp) -> None:
        super().__init__(files, stamp)
        self.files = files
        self.root = files.root
        self.place = files.place
        self.write_file = files.write_file


def fctl_store(
    stack: FctlStack, *, log: "Callable[[str], None]", lock_timeout: float = LOCK_TIMEOUT_SECONDS
) -> FileStore:
    """The file store of a stack of an fctl profile, stamped with the stack's URI."""
    ref = stack.profile.stack(stack.key.organization, stack.key.stack)
    files = FilePersistence(stack.root, stack.paths, log=log, lock_timeout=lock_timeout)
    return FileStore(files, Stamp(stack_uri=ref.uri if ref is not None else None))


def client_store(
    cache_dir: str,
    credentials: "ClientCredentials",
    *,
    log: "Callable[[str], None]",
    lock_timeout: float = LOCK_TIMEOUT_SECONDS,
) -> FileStore:
    """A machine credential's file store below `cache_dir` (docs/design.md §9),
    in `clients/<key>/`, `<key>` being core's hash of the stack URI, the client
    id and the scopes, never the secret. Here, not in `_roots.py`, because warm
    runs read it: `_roots.py` brings the grant, `returns` and the HTTP code."""
    key = client_key(credentials.stack_uri, credentials.client_id, credentials.scopes)
    files = FilePersistence(
        cache_dir, client_paths(key), log=log, lock_timeout=lock_timeout, creates_folder=True
    )
    stamp = Stamp(
        stack_uri=credentials.stack_uri, client_id=credentials.client_id, scopes=credentials.scopes
    )
    return FileStore(files, stamp)
