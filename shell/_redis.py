"""The shared store for fleets: Redis (DESIGN §11).

Theory of operation
-------------------
A machine credential whose core key is K (`client_key`: a SHA-256 of the
stack URI, the client id and the sorted scopes, never the secret) has two
Redis keys; neither name holds anything but K:

    stacktoken:v1:K       the §3.4 JSON entry, `SET ... PX <expiry - grace - now>`:
                          Redis drops a dead token itself
    stacktoken:v1:K:lock  a random owner, `SET ... NX PX <lease>`, released by
                          a compare-and-delete script (never another's lock)

The store is the level below the host's disk (`_client.bind_client`): memory,
then the host's file, then Redis, then the network. So a host's processes
queue on their flock, one of them per host asks Redis, and one host of the
fleet asks the network.

`locked(body)` polls, one round trip per poll (`SET NX PX` and `GET` in one
pipeline), 10 ms apart doubling to 200 ms, and runs `body`:
  - holding the lock, once `SET NX` succeeds (released after `body`);
  - without it, as soon as the value differs from the one the wait began
    with: the holder has written its token, and `body`'s re-read (the
    workflow re-reads under each lock) finds it -- no request, no waiting
    for the release;
  - without it, when Redis fails or the wait (`lock_wait`, by default the
    lease and a little more: a dead holder's lease runs out first) is over.
A holder that dies keeps the lock no longer than its lease; a holder slower
than its lease (an IdP answering after more than 10 s: the HTTP policy allows
up to 3 x 10 s) lets every host waiting then ask the network too, one request
each, never a failure. The lease is not extended while the holder works.

Failures: every socket operation has a timeout (200 ms by default, connect and
each read: a server dripping a reply byte by byte can stretch one call past it)
and no retries. On any error the store logs one debug line (the error's
type and text, the password and the token redacted) and the call goes on: a
read misses, a write fails (the workflow logs it), `locked` runs its body
unlocked. The shared store never fails a call. An error of the connection
(refused, timed out, a stalled server, garbage bytes, a wrong password) also
opens a breaker for `cooldown` seconds: meanwhile the store answers at once
(miss, write failed, unlocked) without touching the network, so a dead Redis
costs a process one timeout, not one per call. An error reply of a live
server (`OOM` when full, `WRONGTYPE`) does not open it.

redis-py is imported when a `RedisStore` is made: `import stacktoken` never loads it.
"""

from __future__ import annotations

import os
import threading
import time
from typing import NamedTuple
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from returns.result import Failure, Result, Success
from stacktoken.core._cache import CacheRead, Store
from stacktoken.core._cache_codec import decode_cache_entry, encode_cache_entry
from stacktoken.core._commands import STORE_SCHEMES
from stacktoken.core._decisions import stamp_mismatch
from stacktoken.core._errors import AcquireError, LocalError, UsageError
from stacktoken.core._record import replace
from stacktoken.core._text import one_line, redact
from stacktoken.core._time import UTC, datetime
from stacktoken.core._types import EXPIRY_GRACE, CachedToken

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["KEY_PREFIX", "RedisStore"]

KEY_PREFIX = "stacktoken:v1:"
#: Bound on every socket operation (connect, then each reply).
TIMEOUT_SECONDS = 0.2
#: How long a lock holder keeps the lock at most (it releases it earlier).
LEASE_SECONDS = 10.0
#: How long the store is left alone after a connection error.
COOLDOWN_SECONDS = 5.0
_FIRST_POLL = 0.01
_LONGEST_POLL = 0.2

# Deletes KEYS[1] only if it still holds ARGV[1]: the lock's owner, never another's.
_RELEASE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)
# Deletes KEYS[1] only if its value's SHA-1 is ARGV[1]: drops a refused token,
# never a newer one, and the token itself is not sent (MONITOR shows arguments).
_DROP = (
    "local v = redis.call('get', KEYS[1]) "
    "if v and redis.sha1hex(v) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class RedisStore:
    """A token store several hosts share: Redis at `url` (`redis://` or `rediss://`,
    a password in the URL allowed; never logged, never in the repr).

    Give it to `TokenSource.from_client_credentials(..., store=RedisStore(url))`.
    Raises `InvalidUsageError` for a URL that is not a Redis URL, or when
    redis-py is not installed (`pip install 'stacktoken[redis]'`).
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = TIMEOUT_SECONDS,
        lease: float = LEASE_SECONDS,
        lock_wait: float | None = None,
        cooldown: float = COOLDOWN_SECONDS,
        log: Callable[[str], None] | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        made = _client(url, timeout)
        if isinstance(made, UsageError):
            from ._exceptions import as_exception

            raise as_exception(made)
        self._redis, self._errors = made
        self._shown = _without_password(url)
        self._password = _password(url)
        self._lease_ms = max(1, int(lease * 1000))
        self._lock_wait = lease + 0.5 if lock_wait is None else lock_wait
        self._cooldown = cooldown
        self._log = log if log is not None else _library_logger()
        self._clock = clock
        self._down_until = 0.0
        self._scripts: dict[str, Any] = {}
        self._scripts_lock = threading.Lock()

    @classmethod
    def of(cls, url: str, *, log: Callable[[str], None] | None = None) -> RedisStore | UsageError:
        """The store, or the usage error (for the CLI, which reports it as a value)."""
        made = _client(url, TIMEOUT_SECONDS)
        if isinstance(made, UsageError):
            return made
        return cls(url, log=log)

    def __repr__(self) -> str:
        return f"RedisStore({self._shown})"

    def record(
        self, key: str, *, stack_uri: str, client_id: str, scopes: tuple[str, ...] = ()
    ) -> Store:
        """Core's `Store` for the entry of core key `key` (`client_key`), whose
        entries are stamped with `stack_uri`, `client_id` and `scopes` (sorted)."""
        stamp = _Stamp(stack_uri=stack_uri, client_id=client_id, scopes=tuple(sorted(set(scopes))))
        return _Entry(self, key, stamp).record()

    # -- the breaker and the log -----------------------------------------------

    def _skipped(self) -> str | None:
        """Why Redis is left alone now, or None to use it."""
        if time.monotonic() < self._down_until:
            return "redis left alone after a connection error"
        return None

    def _trouble(self, what: str, error: Exception, *secrets: str) -> str:
        """One line about `error` (no password, no token); opens the breaker
        unless a live server answered with an error reply."""
        if not isinstance(error, self._errors.ResponseError):
            self._down_until = time.monotonic() + self._cooldown
        hidden = tuple(s for s in (self._password, *secrets) if s)
        text = redact(str(error), hidden) if hidden else str(error)
        if self._password:
            text = text.replace(self._password, "[redacted]")
        return f"redis {what} failed: {type(error).__name__}: {one_line(text)}"

    def _script(self, source: str) -> Any:
        with self._scripts_lock:
            if source not in self._scripts:
                self._scripts[source] = self._redis.register_script(source)
            return self._scripts[source]


class _Stamp(NamedTuple):
    """Whom and what an entry's token is for (no secret: it is written beside the token)."""

    stack_uri: str
    client_id: str
    scopes: tuple[str, ...]


class _Entry:
    """The two keys of one machine credential, and core's `Store` over them."""

    def __init__(self, store: RedisStore, key: str, stamp: _Stamp) -> None:
        self._store = store
        self._key = KEY_PREFIX + key
        self._lock_key = self._key + ":lock"
        self._stamp = stamp

    def record(self) -> Store:
        return Store(
            name="redis", read=self.read, write=self.write, locked=self.locked, drop=self.drop
        )

    def read(self) -> CacheRead | str:
        store = self._store
        if skipped := store._skipped():
            return skipped
        try:
            data = store._redis.get(self._key)
        except Exception as error:
            store._log(store._trouble("read", error))
            return "redis unavailable"
        if data is None:
            return "no entry in redis"
        if not isinstance(data, bytes):
            return "redis answered a value that is not bytes"
        entry = decode_cache_entry(data)
        if isinstance(entry, str):
            return f"redis value unreadable: {entry}"
        stamp = self._stamp
        if mismatch := stamp_mismatch(
            entry, stack_uri=stamp.stack_uri, client_id=stamp.client_id, scopes=stamp.scopes
        ):
            return mismatch
        if entry.saved_at is None:
            return "redis entry has no savedAt"
        return entry, entry.saved_at

    def write(self, entry: CachedToken) -> Result[None, LocalError]:
        store = self._store
        if entry.expiry is None:
            return Failure(LocalError(message="not stored in redis: the token has no expiry"))
        keep_ms = int((entry.expiry - EXPIRY_GRACE - store._clock()).total_seconds() * 1000)
        if keep_ms <= 0:
            return Failure(LocalError(message="not stored in redis: expires within the grace"))
        if skipped := store._skipped():
            return Failure(LocalError(message=skipped))
        stamp = self._stamp
        stamped = replace(
            entry, stack_uri=stamp.stack_uri, client_id=stamp.client_id, scopes=stamp.scopes
        )
        try:
            store._redis.set(self._key, encode_cache_entry(stamped), px=keep_ms)
        except Exception as error:
            return Failure(LocalError(message=store._trouble("write", error, entry.access_token)))
        return Success(None)

    def locked(
        self, body: Callable[[], Result[CachedToken, AcquireError]]
    ) -> Result[CachedToken, AcquireError]:
        store = self._store
        if skipped := store._skipped():
            store._log(f"{skipped}: running unlocked")
            return body()
        owner = os.urandom(16).hex()
        deadline = time.monotonic() + store._lock_wait
        delay = _FIRST_POLL
        first: list[object] = []  # the value when the wait began
        while True:
            try:
                pipe = store._redis.pipeline(transaction=False)
                pipe.set(self._lock_key, owner, nx=True, px=store._lease_ms)
                pipe.get(self._key)
                taken, value = pipe.execute()
            except Exception as error:
                store._log(store._trouble("lock", error) + "; running unlocked")
                return body()
            if taken:
                return self._holding(owner, body)
            if not first:
                first.append(value)
            elif value is not None and value != first[0]:
                store._log("redis value written while waiting for the lock: reading it")
                return body()
            left = deadline - time.monotonic()
            if left <= 0:
                store._log(f"redis lock not had in {store._lock_wait:g}s: running unlocked")
                return body()
            # Jitter, so that waiters of many hosts do not poll in step.
            time.sleep(min(left, delay * (0.5 + os.urandom(1)[0] / 255)))
            delay = min(delay * 2, _LONGEST_POLL)

    def _holding(
        self, owner: str, body: Callable[[], Result[CachedToken, AcquireError]]
    ) -> Result[CachedToken, AcquireError]:
        store = self._store
        try:
            return body()
        finally:
            try:
                store._script(_RELEASE)(keys=[self._lock_key], args=[owner])
            except Exception as error:
                # The lease ends it anyway.
                store._log(store._trouble("unlock", error))

    def drop(self, token: str) -> Result[bool, LocalError]:
        """Delete the entry if it still holds `token` (a newer one is left alone)."""
        from hashlib import sha1

        store = self._store
        if skipped := store._skipped():
            return Failure(LocalError(message=skipped))
        try:
            data = store._redis.get(self._key)
            if not isinstance(data, bytes):
                return Success(False)
            entry = decode_cache_entry(data)
            if isinstance(entry, str) or entry.access_token != token:
                return Success(False)
            digest = sha1(data, usedforsecurity=False).hexdigest()
            deleted = store._script(_DROP)(keys=[self._key], args=[digest])
        except Exception as error:
            return Failure(LocalError(message=store._trouble("drop", error, token)))
        return Success(bool(deleted))


def _client(url: str, timeout: float) -> tuple[Any, Any] | UsageError:
    """A redis-py client for `url` with bounded calls and no retries, and
    redis-py's exceptions module; or why not (never quoting the URL)."""
    if not url.startswith(STORE_SCHEMES):
        return UsageError(message="the shared store URL must be a redis:// or rediss:// URL")
    try:
        import redis
        import redis.exceptions
        from redis.backoff import NoBackoff
        from redis.retry import Retry
    except ImportError:
        return UsageError(message="the Redis store needs redis-py: pip install 'stacktoken[redis]'")
    try:
        # redis-py before 6.0 checks no host name on TLS: any CA-signed certificate
        # for any name would do, and a man in the middle would read the tokens.
        tls = {"ssl_check_hostname": True} if url.startswith("rediss:") else {}
        client = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
            **tls,
        )
    except (ValueError, TypeError) as error:
        return UsageError(
            message=f"the shared store URL is not a valid Redis URL ({type(error).__name__})"
        )
    return client, redis.exceptions


def _password(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
    except ValueError:
        return None
    found = parts.password or query.get("password")
    return unquote(found) if found else None


def _without_password(url: str) -> str:
    """`url` with its password (in the authority or the query) replaced by `***`."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return "<unparsable URL>"
    user = quote(unquote(parts.username), safe="") if parts.username else ""
    auth = f"{user}:***@" if parts.password is not None else f"{user}@" if user else ""
    if ":" in host:
        host = f"[{host}]"
    query = urlencode(
        [(k, "***" if k == "password" else v) for k, v in parse_qsl(parts.query)], safe="/"
    )
    return urlunsplit((parts.scheme, auth + host + port, parts.path, query, ""))


def _library_logger() -> Callable[[str], None]:
    import logging

    return logging.getLogger("stacktoken").debug
