"""The file store: a cache entry in a folder of its own, its lock beside it.

One class serves the fctl stack folder (§3.4, below the config dir) and a
machine credential's folder (§9, below the cache dir): both are "a folder
holding `api_token_cache.json` and `api_token_cache.json.lock`". `record()`
is the store core's workflow uses.

Reads are warm-path code: a plain value back, no `returns` imported.
"""

from __future__ import annotations

from stacktoken.core._cache import Store
from stacktoken.core._cache_codec import decode_cache_entry, encode_cache_entry
from stacktoken.core._decisions import stamp_mismatch
from stacktoken.core._paths import client_key, client_paths
from stacktoken.core._record import replace

from ._config import FctlStack
from ._files import (
    LOCK_TIMEOUT_SECONDS,
    Place,
    ensure_folder,
    locked,
    read_private,
    remove_file,
    write_atomic,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from returns.result import Result
    from stacktoken.core._cache import CacheRead
    from stacktoken.core._errors import AcquireError, LocalError
    from stacktoken.core._paths import Segments, StackPaths
    from stacktoken.core._types import CachedToken, ClientCredentials

__all__ = ["FileStore", "client_store", "fctl_store", "read_cache_entry"]


def read_cache_entry(
    place: Place | str, *, log: Callable[[str], None] | None = None
) -> CacheRead | str:
    """A cache file's entry and mtime, or the reason it is a cache miss."""
    read = read_private(place) if log is None else read_private(place, log=log)
    if isinstance(read, str):
        return read
    data, mtime = read
    entry = decode_cache_entry(data)
    return entry if isinstance(entry, str) else (entry, mtime)


class FileStore:
    """The entry at `paths.cache` below `root`, locked by `paths.lock`.

    Entries are written stamped with `stack_uri`, `client_id` and `scopes`
    (whom and what the token is for); an entry stamped for another stack, client
    or scope set is not used (issue 15 #6). `creates_folder`: lock and write even
    if the folder is not there yet (a machine credential's; an fctl stack without
    a folder has no `accesses.json` either, so creating one would only leave litter).
    """

    def __init__(
        self,
        root: str,
        paths: StackPaths,
        *,
        log: Callable[[str], None],
        lock_timeout: float = LOCK_TIMEOUT_SECONDS,
        stack_uri: str | None = None,
        client_id: str | None = None,
        scopes: tuple[str, ...] | None = None,
        creates_folder: bool = False,
        name: str = "disk",
    ) -> None:
        self.root = root
        self.paths = paths
        self._log = log
        self._lock_timeout = lock_timeout
        self._stack_uri = stack_uri
        self._client_id = client_id
        self._scopes = scopes
        self._creates_folder = creates_folder
        self._name = name
        # Leftover temp files may be swept only while this process holds the
        # lock: without it they cannot be told from another process's write in
        # progress. A token source runs one acquisition at a time, so one flag does.
        self._lock_held = False

    @property
    def stack_uri(self) -> str | None:
        """The stack the entries are for."""
        return self._stack_uri

    def place(self, segments: Segments) -> Place:
        """A file of this store, below its root (nothing below it is followed)."""
        return Place(root=self.root, parts=segments)

    def read(self) -> CacheRead | str:
        read = read_cache_entry(self.place(self.paths.cache), log=self._log)
        if isinstance(read, str):
            return read
        mismatch = stamp_mismatch(
            read[0], stack_uri=self._stack_uri, client_id=self._client_id, scopes=self._scopes
        )
        return mismatch if mismatch is not None else read

    def write(self, entry: CachedToken) -> Result[None, LocalError]:
        stamped = replace(
            entry, stack_uri=self._stack_uri, client_id=self._client_id, scopes=self._scopes
        )
        return self.write_file(self.paths.cache, encode_cache_entry(stamped))

    def write_file(self, segments: Segments, data: bytes) -> Result[None, LocalError]:
        """Write a file of this folder atomically (sweeping leftovers under the lock)."""
        return write_atomic(self.place(segments), data, sweep=self._lock_held, log=self._log)

    def locked(
        self, body: Callable[[], Result[CachedToken, AcquireError]]
    ) -> Result[CachedToken, AcquireError]:
        def noting_the_lock(held: bool) -> Result[CachedToken, AcquireError]:
            self._lock_held = held
            try:
                return body()
            finally:
                self._lock_held = False

        if self._creates_folder and (problem := ensure_folder(self.place(self.paths.lock))):
            self._log(problem)  # the lock then runs its body unlocked, and says so
        return locked(
            self.place(self.paths.lock), noting_the_lock, timeout=self._lock_timeout, log=self._log
        )

    def drop(self, token: str) -> Result[bool, LocalError]:
        """Remove the entry if it still holds `token`: a newer one another
        process wrote since is left alone."""
        from returns.result import Success

        read = self.read()
        if isinstance(read, str) or read[0].access_token != token:
            return Success(False)
        return remove_file(self.place(self.paths.cache))

    def record(self) -> Store:
        return Store(
            name=self._name, read=self.read, write=self.write, locked=self.locked, drop=self.drop
        )


def fctl_store(
    stack: FctlStack, *, log: Callable[[str], None], lock_timeout: float = LOCK_TIMEOUT_SECONDS
) -> FileStore:
    """The file store of a stack of an fctl profile, stamped with the stack's URI."""
    ref = stack.profile.stack(stack.key.organization, stack.key.stack)
    return FileStore(
        stack.root,
        stack.paths,
        log=log,
        lock_timeout=lock_timeout,
        stack_uri=ref.uri if ref is not None else None,
    )


def client_store(
    cache_dir: str,
    credentials: ClientCredentials,
    *,
    log: Callable[[str], None],
    lock_timeout: float = LOCK_TIMEOUT_SECONDS,
) -> FileStore:
    """A machine credential's file store below `cache_dir` (DESIGN §9), in
    `clients/<key>/`, `<key>` being core's hash of the stack URI, the client id
    and the scopes, never the secret. Here, not in `_client.py`, because warm
    runs read it: `_client.py` brings the grant, `returns` and the HTTP code."""
    key = client_key(credentials.stack_uri, credentials.client_id, credentials.scopes)
    return FileStore(
        cache_dir,
        client_paths(key),
        log=log,
        lock_timeout=lock_timeout,
        stack_uri=credentials.stack_uri,
        client_id=credentials.client_id,
        scopes=credentials.scopes,
        creates_folder=True,
    )
