"""The shared store for fleets: Redis (docs/design.md §11).

Theory of operation
-------------------
A machine credential whose core key is K (`client_key`: a SHA-256 of the
stack URI, the client id and the sorted scopes, never the secret) has two
Redis keys; neither name holds anything but K:

    stacktoken:v1:K       the §3.4 JSON entry, `SET ... PX <expiry - grace - now>`
                          (the grace of the `Settings`): Redis drops a dead token itself
    stacktoken:v1:K:lock  a random owner, `SET ... NX PX <lease>`, released by
                          a compare-and-delete script (never another's lock)

This module is the persistence only (`RedisPersistence`: bytes, the lease,
the breaker); the entry's decoding, stamp and TTL are `_stores.StampedStore`'s.
The store is the level below the host's disk (`_client.bind_client`): memory,
then the host's file, then Redis, then the network. So a host's processes
queue on their flock, one of them per host asks Redis, and one host of the
fleet asks the network.

`locked(body)` is told, not polling. It subscribes to the channel named like
the lock key (`stacktoken:v1:K:lock`), then tries `SET NX PX`, and runs `body`:
  - holding the lock, once `SET NX` succeeds (released after `body`);
  - without it, as soon as the holder publishes `written` (after it wrote its
    token, and again after its release): `body`'s re-read (the workflow
    re-reads under each lock) finds the token -- no request;
  - without it, when Redis fails or the wait (`lock_wait`, by default the
    lease and a little more) is over.
The holder publishes after every `SET NX` that failed against it, so a waiter
subscribed before trying cannot miss the news; `released` (given up without a
token) sends the waiters to try the lock again. A message lost, or a holder
dead, costs a waiter one lease at most: it then tries the lock again, and the
one that gets it re-reads first. A cold fleet thus costs Redis about four
commands a waiting host (`GETRANGE`, `SUBSCRIBE`, `SET NX`, `GETRANGE`),
whatever the exchange time; nothing published holds a token.
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
import time
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from returns.result import Failure, Result, Success
from stacktoken.core._cache import Store
from stacktoken.core._cache_codec import decode_cache_entry
from stacktoken.core._commands import STORE_SCHEMES
from stacktoken.core._errors import AcquireError, LocalError, UsageError
from stacktoken.core._text import one_line, redact
from stacktoken.core._time import datetime
from stacktoken.core._types import CachedToken, Settings

from ._files import MAX_FILE_BYTES
from ._process import utc_now
from ._stores import Stamp, StampedStore

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from stacktoken.core._cache import Body

    from ._failures import RedisFailureSlot

__all__ = ["KEY_PREFIX", "RedisPersistence", "RedisStore", "store_url_problem"]

KEY_PREFIX = "stacktoken:v1:"
#: Our entries are a few hundred bytes; a value past this is not ours (as files).
MAX_VALUE_BYTES = MAX_FILE_BYTES
#: Bound on every socket operation (connect, then each reply).
TIMEOUT_SECONDS = 0.2
#: How long a lock holder keeps the lock at most (it releases it earlier).
LEASE_SECONDS = 10.0
#: How long the store is left alone after a connection error.
COOLDOWN_SECONDS = 5.0
#: What a lock holder publishes on the lock's channel (never a token).
_WRITTEN = b"written"
_RELEASED = b"released"

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


class RedisStore:
    """A token store several hosts share: Redis at `url` (`redis://` or `rediss://`,
    a password in the URL allowed; never logged, never in the repr).

    Give it to `TokenSource.from_client_credentials(..., store=RedisStore(url))`.
    Raises `InvalidUsageError` for a URL that is not a Redis URL, or when
    redis-py is not installed (`pip install 'stacktoken[redis]'`); the CLI asks
    `store_url_problem` first.
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
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        made = _client(url, timeout)
        if isinstance(made, UsageError):
            from ._exceptions import as_exception

            raise as_exception(made)
        self._redis, self._errors = made
        self._shown = _without_password(url)
        self._password = _password(url)
        self._hidden = _hidden_values(url)
        self._timeout = timeout
        self._lease_ms = max(1, int(lease * 1000))
        self._lock_wait = lease + 0.5 if lock_wait is None else lock_wait
        self._cooldown = cooldown
        self._log = log if log is not None else _library_logger()
        self._clock = clock
        self._down_until = 0.0

    def __repr__(self) -> str:
        return f"RedisStore({self._shown})"

    def record(
        self,
        key: str,
        *,
        stack_uri: str,
        client_id: str,
        scopes: tuple[str, ...] = (),
        settings: Settings | None = None,
    ) -> Store:
        """Core's `Store` for the entry of core key `key` (`client_key`), whose
        entries are stamped with `stack_uri`, `client_id` and `scopes` (sorted)
        and kept until their expiry less the grace of `settings`."""
        stamp = Stamp(
            stack_uri=stack_uri,
            client_id=client_id,
            scopes=tuple(sorted(set(scopes))),
            strict=True,  # only stacktoken writes here, and always stamped
        )
        persistence = RedisPersistence(self, key)
        return StampedStore(persistence, stamp, settings=settings, clock=self._clock).record()

    def failure_slot(self, key: str) -> RedisFailureSlot:
        """Where the failures of core key `key`'s token are remembered (docs/design.md §15)."""
        from ._failures import RedisFailureSlot

        return RedisFailureSlot(self, KEY_PREFIX + key + ":failure")

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
        hidden = tuple(s for s in (self._password, *self._hidden, *secrets) if s)
        text = redact(str(error), hidden) if hidden else str(error)
        if self._password:
            text = text.replace(self._password, "[redacted]")
        return f"redis {what} failed: {type(error).__name__}: {one_line(text)}"


class RedisPersistence:
    """The two keys of one machine credential: the persistence of a `StampedStore`."""

    name = "redis"
    expiring = True
    unreadable = "redis value unreadable: "

    def __init__(self, store: RedisStore, key: str) -> None:
        self._store = store
        self._key = KEY_PREFIX + key
        self._lock_key = self._key + ":lock"
        self._channel = self._lock_key  # what is published there: `_WRITTEN`, `_RELEASED`
        self._holder: str | None = None  # the owner while this process holds the lock
        self._wrote = False
        self._just_missed = False
        self._locking = False  # inside `locked`: every read asks Redis

    def load(self, *, fresh: bool = False) -> tuple[bytes, datetime | None] | str:
        store = self._store
        if skipped := store._skipped():
            return skipped
        if self._just_missed and not fresh:
            # The read just before found nothing and no lock of this key was
            # tried since: the workflow's re-read under the host's lock (a
            # moment later, unless the host's lock was busy: then the host's
            # disk answers first) need not ask again; under this key's lock
            # every read asks.
            self._just_missed = False
            return "no entry in redis"
        try:
            # At most one byte past the cap: a huge value is never sent whole
            # (a missing key reads as empty, as an empty value would).
            data = store._redis.getrange(self._key, 0, MAX_VALUE_BYTES)
        except Exception as error:
            store._log(store._trouble("read", error))
            return "redis unavailable"
        if not isinstance(data, bytes):
            return "redis answered a value that is not bytes"
        if not data:
            self._just_missed = not self._locking
            return "no entry in redis"
        if len(data) > MAX_VALUE_BYTES:
            return "redis value larger than 1 MiB (not ours): not read"
        return data, None

    def save(self, data: bytes, keep_ms: int | None) -> Result[None, LocalError]:
        store = self._store
        self._just_missed = False
        if skipped := store._skipped():
            return Failure(LocalError(message=skipped))
        try:
            if self._holder is None:
                store._redis.set(self._key, data, px=keep_ms)
            else:  # waiters hear at once, not at the release
                pipe = store._redis.pipeline(transaction=False)
                pipe.set(self._key, data, px=keep_ms)
                pipe.publish(self._channel, _WRITTEN)
                pipe.execute()
                self._wrote = True
        except Exception as error:
            secret = _token_of(data)
            return Failure(LocalError(message=store._trouble("write", error, *secret)))
        return Success(None)

    def delete(self, data: bytes) -> Result[bool, LocalError]:
        """Delete the entry if it still holds `data` (a newer one is left alone)."""
        from hashlib import sha1

        store = self._store
        self._just_missed = False
        if skipped := store._skipped():
            return Failure(LocalError(message=skipped))
        digest = sha1(data, usedforsecurity=False).hexdigest()
        try:
            deleted = store._redis.eval(_DROP, 1, self._key, digest)
        except Exception as error:
            return Failure(LocalError(message=store._trouble("drop", error, *_token_of(data))))
        return Success(bool(deleted))

    def locked(
        self, body: Callable[[], Result[CachedToken, AcquireError]]
    ) -> Result[CachedToken, AcquireError]:
        store = self._store
        self._just_missed, self._locking = False, True
        try:
            if skipped := store._skipped():
                store._log(f"{skipped}: running unlocked")
                return body()
            listening = store._redis.pubsub()
            try:
                return self._waiting(listening, body)
            finally:
                listening.close()  # a dropped connection: no UNSUBSCRIBE sent
        finally:
            self._locking = False

    def _waiting(self, listening: Any, body: Body) -> Result[CachedToken, AcquireError]:
        """Subscribe, then try the lock: a holder publishes after every try that
        failed against it (once written, again once released), so a waiter
        subscribed before its try cannot miss the news, and waits, not polls."""
        store = self._store
        owner = os.urandom(16).hex()
        deadline = time.monotonic() + store._lock_wait
        tries = 0
        try:
            listening.subscribe(self._channel)
            if _heard(listening, store._timeout, kind="subscribe") is None:
                raise TimeoutError("no subscription confirmed")
        except Exception as error:
            store._log(store._trouble("subscribe", error) + "; running unlocked")
            return body()
        while True:
            try:
                taken = store._redis.set(self._lock_key, owner, nx=True, px=store._lease_ms)
            except Exception as error:
                store._log(store._trouble("lock", error) + "; running unlocked")
                return body()
            if taken:
                listening.close()  # a holder hears nothing: free the connection now
                return self._holding(owner, body)
            tries += 1
            if tries == 2:  # another took the lock over since: wait for it afresh, once
                deadline = time.monotonic() + store._lock_wait
            left = deadline - time.monotonic()
            if left > 0:
                try:
                    # A dead holder's lease runs out within one lease.
                    news = _heard(listening, min(left, store._lease_ms / 1000), kind="message")
                except Exception as error:
                    store._log(store._trouble("wait", error) + "; running unlocked")
                    return body()
                if news == _WRITTEN:
                    store._log("redis value written while waiting for the lock: reading it")
                    return body()
            if time.monotonic() >= deadline:
                store._log(f"redis lock not had in {store._lock_wait:g}s: running unlocked")
                return body()
            # Released without a token, or nothing heard in a lease: try again.

    def _holding(self, owner: str, body: Body) -> Result[CachedToken, AcquireError]:
        store = self._store
        self._holder = owner
        self._wrote = False
        try:
            return body()
        finally:
            self._holder = None
            news = _WRITTEN if self._wrote else _RELEASED
            try:
                store._redis.eval(_RELEASE, 1, self._lock_key, owner)
                store._redis.publish(self._channel, news)
            except Exception as error:
                # The lease ends it anyway, and a waiter's wait with it.
                store._log(store._trouble("unlock", error))


def _heard(listening: Any, timeout: float, *, kind: str) -> bytes | None:
    """The next message of `kind` on `listening`'s channel within `timeout`
    seconds (its data), or None. Raises on a connection error or garbage."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        message = listening.get_message(timeout=left)
        if isinstance(message, dict) and message.get("type") == kind:
            data = message.get("data")
            return data if isinstance(data, bytes) else b""
    return None


def _token_of(data: bytes) -> tuple[str, ...]:
    """The token in an entry's bytes, to keep out of a log line."""
    entry = decode_cache_entry(data)
    return () if isinstance(entry, str) else (entry.access_token,)


def store_url_problem(url: str) -> UsageError | None:
    """Why `url` cannot name the shared store (never quoting it); None when it can."""
    made = _client(url, TIMEOUT_SECONDS)
    return made if isinstance(made, UsageError) else None


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
        # No `CLIENT SETINFO` on each new connection either: two commands, for nothing.
        try:
            from redis.driver_info import DriverInfo  # noqa: F401 - redis-py 7.1 and later

            quiet: dict[str, Any] = {"driver_info": None}
        except ImportError:
            quiet = {"lib_name": None, "lib_version": None}
        client = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
            protocol=2,  # RESP3 would cost a `HELLO` on each new connection
            **tls,
            **quiet,
        )
    except (ValueError, TypeError) as error:
        return UsageError(
            message=f"the shared store URL is not a valid Redis URL ({type(error).__name__})"
        )
    return client, redis.exceptions


#: Query parameters shown as given: redis-py's, and none of them a secret.
_SHOWN_PARAMETERS = frozenset(
    {
        "db",
        "protocol",
        "timeout",
        "socket_timeout",
        "socket_connect_timeout",
        "socket_keepalive",
        "retry_on_timeout",
        "max_connections",
        "health_check_interval",
        "client_name",
        "ssl_cert_reqs",
        "ssl_ca_certs",
        "ssl_ca_path",
        "ssl_certfile",
        "ssl_keyfile",
        "ssl_check_hostname",
        "ssl_min_version",
    }
)


def _shown(name: str) -> bool:
    """Whether a query parameter's value may be shown: one we know, never a password."""
    return name in _SHOWN_PARAMETERS and "password" not in name.lower()


def _password(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
    except ValueError:
        return None
    found = parts.password or query.get("password")
    return unquote(found) if found else None


def _hidden_values(url: str) -> tuple[str, ...]:
    """Every value `_without_password` masks, to keep out of error lines too."""
    try:
        query = parse_qsl(urlsplit(url).query)
    except ValueError:
        return ()
    return tuple(value for name, value in query if value and not _shown(name))


def _without_password(url: str) -> str:
    """`url` with its password (in the authority) and every query parameter
    that holds a password or that the store does not know replaced by `***`."""
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
    query = urlencode([(k, v if _shown(k) else "***") for k, v in parse_qsl(parts.query)], safe="/")
    return urlunsplit((parts.scheme, auth + host + port, parts.path, query, ""))


def _library_logger() -> Callable[[str], None]:
    import logging

    return logging.getLogger("stacktoken").debug
