"""The public facade: a thread-safe token source.

`token()` first looks at the token this process already holds: while it is
fresh that costs one clock read and one comparison, no file access and no
lock. Otherwise one thread at a time runs core's cache workflow (the others
wait and then find the token it got) over the source's stores and grant.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from time import time as _wall  # one global lookup on `token()`'s fast path
from typing import Protocol

from returns.result import Failure, Result, Success
from stacktoken.core import (
    LOGIN_HINT,
    AcquireError,
    AuthRequired,
    CachedToken,
    ClientCredentials,
    FctlEffects,
    Grant,
    Settings,
    StackAccess,
    Store,
    TokenRequest,
    TokenResponse,
    UsageError,
    acquire,
    check_endpoint_url,
    client_key,
    fctl_grant,
    fresh_until,
    is_fresh,
    jwt_expiry,
    lift,
    stack_discovery,
)
from stacktoken.core._time import UTC, datetime, timedelta

from ._client import bind_client
from ._discovery import DiscoveryCache, discover
from ._exceptions import as_exception
from ._fctl import bind_fctl, membership_discoverer, post_token
from ._files import LOCK_TIMEOUT_SECONDS
from ._http import Http, HttpPolicy
from ._options import FctlStack, config_dir_from, default_cache_dir, locate_stack, settings_from

__all__ = ["SharedStore", "TokenSource", "utc_now"]


def utc_now() -> datetime:
    """The clock, the one place stacktoken reads the time of day."""
    return datetime.now(UTC)


class SharedStore(Protocol):
    """A store several hosts share (`RedisStore`): it gives core the `Store` record
    of the entry of core key `key` (`client_key`: never the secret), stamped with
    `stack_uri` and `client_id`."""

    def record(self, key: str, *, stack_uri: str, client_id: str) -> Store: ...


class TokenSource:
    """Stack API tokens: in memory, then the stores (disk, shared), then the network."""

    def __init__(
        self,
        *,
        stores: tuple[Store, ...],
        grant: Grant,
        settings: Settings,
        log: Callable[[str], None],
        stack_uri: str | None,
        close: Callable[[], None],
        name: str,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._stores = stores
        self._grant = grant
        self._settings = settings
        self._log = log
        self._stack_uri = stack_uri
        self._close = close
        self._name = name
        self._clock = clock
        self._lock = threading.Lock()
        self._held: CachedToken | None = None
        # (token, epoch seconds it stays fresh until): one attribute, so the
        # lock-free fast path of `token()` reads both halves consistently.
        self._fast: tuple[str, float] | None = None

    # -- construction ------------------------------------------------------

    @classmethod
    def from_fctl(
        cls,
        *,
        config_dir: str | os.PathLike[str] | None = None,
        profile: str | None = None,
        organization: str | None = None,
        stack: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        cache_ttl: str | timedelta | None = None,
        log: Callable[[str], None] | None = None,
        http_policy: HttpPolicy | None = None,
        environ: Mapping[str, str] | None = None,
        lock_timeout: float = LOCK_TIMEOUT_SECONDS,
    ) -> TokenSource:
        """A source for a stack of an fctl profile; raises `StackTokenError` subclasses.

        Profile, organization and stack are resolved as fctl does: the argument,
        else `PROFILE` / `ORGANIZATION` / `STACK` in `environ`, else the
        profile's defaults. `lock_timeout` bounds the wait (seconds) for the
        stack's cross-process lock; when it runs out, `LocalStorageError` is raised.
        """
        return _raise_on_failure(
            cls.from_fctl_result(
                config_dir=config_dir,
                profile=profile,
                organization=organization,
                stack=stack,
                cache_dir=cache_dir,
                cache_ttl=cache_ttl,
                log=log,
                http_policy=http_policy,
                environ=environ,
                lock_timeout=lock_timeout,
            )
        )

    @classmethod
    def from_fctl_result(
        cls,
        *,
        config_dir: str | os.PathLike[str] | None = None,
        profile: str | None = None,
        organization: str | None = None,
        stack: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        cache_ttl: str | timedelta | None = None,
        log: Callable[[str], None] | None = None,
        http_policy: HttpPolicy | None = None,
        environ: Mapping[str, str] | None = None,
        lock_timeout: float = LOCK_TIMEOUT_SECONDS,
    ) -> Result[TokenSource, AcquireError]:
        """`from_fctl`, for callers who compose with `returns`."""
        env = os.environ if environ is None else environ
        root = config_dir_from(os.fspath(config_dir) if config_dir is not None else None, env)
        logger = log if log is not None else _library_logger()

        def build(settings: Settings) -> Result[TokenSource, AcquireError]:
            located: Result[FctlStack, AcquireError] = lift(
                locate_stack(
                    root, profile=profile, organization=organization, stack=stack, environ=env
                )
            )
            return located.map(
                lambda found: cls._for_fctl_stack(
                    found,
                    settings=settings,
                    cache_dir=_cache_root(cache_dir, env),
                    log=logger,
                    http_policy=http_policy,
                    lock_timeout=lock_timeout,
                )
            )

        return lift(settings_from(cache_ttl, env)).bind(build)

    @classmethod
    def _for_fctl_stack(
        cls,
        stack: FctlStack,
        *,
        settings: Settings,
        cache_dir: Callable[[], str],
        log: Callable[[str], None],
        http_policy: HttpPolicy | None,
        lock_timeout: float,
    ) -> TokenSource:
        http = Http(policy=http_policy or HttpPolicy(), clock=utc_now, log=log)
        stores, grant = bind_fctl(
            stack,
            settings=settings,
            http=http,
            discovery_cache=DiscoveryCache(cache_dir, log=log),
            clock=utc_now,
            log=log,
            lock_timeout=lock_timeout,
        )
        ref = stack.profile.stack(stack.key.organization, stack.key.stack)
        return cls(
            stores=stores,
            grant=grant,
            settings=settings,
            log=log,
            stack_uri=ref.uri if ref is not None else None,
            close=http.close,
            name=str(stack.key),
        )

    @classmethod
    def from_client_credentials(
        cls,
        *,
        stack_uri: str,
        client_id: str,
        client_secret: str,
        scopes: tuple[str, ...] | list[str] = (),
        cache_dir: str | os.PathLike[str] | None = None,
        cache_ttl: str | timedelta | None = None,
        store: SharedStore | None = None,
        log: Callable[[str], None] | None = None,
        http_policy: HttpPolicy | None = None,
        environ: Mapping[str, str] | None = None,
        lock_timeout: float = LOCK_TIMEOUT_SECONDS,
    ) -> TokenSource:
        """A source for a stack OAuth client (DESIGN §9), warm across processes.

        Tokens are cached under `cache_dir` (default: the user cache dir) by
        stack URI, client id and scopes, never by the secret. `store` adds a
        store several hosts share (a `RedisStore`), after this host's files.
        """
        return _raise_on_failure(
            cls.from_client_credentials_result(
                stack_uri=stack_uri,
                client_id=client_id,
                client_secret=client_secret,
                scopes=scopes,
                cache_dir=cache_dir,
                cache_ttl=cache_ttl,
                store=store,
                log=log,
                http_policy=http_policy,
                environ=environ,
                lock_timeout=lock_timeout,
            )
        )

    @classmethod
    def from_client_credentials_result(
        cls,
        *,
        stack_uri: str,
        client_id: str,
        client_secret: str,
        scopes: tuple[str, ...] | list[str] = (),
        cache_dir: str | os.PathLike[str] | None = None,
        cache_ttl: str | timedelta | None = None,
        store: SharedStore | None = None,
        log: Callable[[str], None] | None = None,
        http_policy: HttpPolicy | None = None,
        environ: Mapping[str, str] | None = None,
        lock_timeout: float = LOCK_TIMEOUT_SECONDS,
    ) -> Result[TokenSource, AcquireError]:
        """`from_client_credentials`, for callers who compose with `returns`."""
        env = os.environ if environ is None else environ
        logger = log if log is not None else _library_logger()
        if not client_id:
            return Failure(UsageError(message="the client id is empty"))
        if not client_secret:
            return Failure(UsageError(message="the client secret is empty"))
        credentials = ClientCredentials.of(
            stack_uri=stack_uri.rstrip("/"),
            client_id=client_id,
            client_secret=client_secret,
            scopes=tuple(scopes),
        )

        def build(settings: Settings) -> TokenSource:
            root = _cache_root(cache_dir, env)
            http = Http(policy=http_policy or HttpPolicy(), clock=utc_now, log=logger)
            stores, grant = bind_client(
                credentials,
                cache_dir=root(),
                http=http,
                discovery_cache=DiscoveryCache(root, log=logger),
                clock=utc_now,
                log=logger,
                lock_timeout=lock_timeout,
                shared=_shared_record(store, credentials),
            )
            return cls(
                stores=stores,
                grant=grant,
                settings=settings,
                log=logger,
                stack_uri=credentials.stack_uri,
                close=http.close,
                name=f"client {client_id} at {credentials.stack_uri}",
            )

        checked: Result[str, AcquireError] = lift(check_endpoint_url(credentials.stack_uri))
        return checked.bind(lambda _: lift(settings_from(cache_ttl, env))).map(build)

    @classmethod
    def from_credentials(
        cls,
        *,
        stack_uri: str,
        access_token: str,
        refresh_token: str | None = None,
        membership_uri: str | None = None,
        on_refresh: Callable[[str, str | None], None] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        log: Callable[[str], None] | None = None,
        http_policy: HttpPolicy | None = None,
    ) -> TokenSource:
        """A source for a service that keeps its own stack access token, without fctl files.

        Tokens are held in memory only (no store). When the stack access token
        is refreshed, `on_refresh(access_token, refresh_token)` is called
        before the exchange, so the service can persist a rotated refresh
        token. `cache_dir` only holds discovery documents.
        """
        logger = log if log is not None else _library_logger()
        root = _cache_root(cache_dir, os.environ)
        http = Http(policy=http_policy or HttpPolicy(), clock=utc_now, log=logger)
        discovery_cache = DiscoveryCache(root, log=logger)
        held = [
            StackAccess(
                token=access_token, refresh_token=refresh_token, expiry=jwt_expiry(access_token)
            )
        ]

        def write_access(access: StackAccess) -> Result[None, AcquireError]:
            held[0] = access
            if on_refresh is not None:
                on_refresh(access.token, access.refresh_token)
            return Success(None)

        def post(request: TokenRequest) -> Result[TokenResponse, AcquireError]:
            return post_token(http, request)

        settings = Settings()
        effects = FctlEffects(
            log=logger,
            read_access=lambda: Success(held[0]),
            write_access=write_access,
            discover_stack=lambda refresh: discover(
                stack_discovery(stack_uri),
                http=http,
                cache=discovery_cache,
                clock=utc_now,
                refresh=refresh,
            ),
            exchange=post,
            discover_membership=membership_discoverer(
                membership_uri,
                # Like an expired token without a refresh token (core's `_refresh`):
                # nothing here can renew it, so new credentials are needed.
                missing=AuthRequired(
                    message="the stack access token expired and no membership URI was "
                    "given to refresh it"
                ),
                http=http,
                discovery_cache=discovery_cache,
                clock=utc_now,
            ),
            refresh=post,
        )
        return cls(
            stores=(),
            grant=fctl_grant(effects, settings=settings),
            settings=settings,
            log=logger,
            stack_uri=stack_uri,
            close=http.close,
            name=stack_uri,
        )

    # -- use -----------------------------------------------------------------

    def token(self) -> str:
        """The stack API token; raises a `StackTokenError` subclass when none can be had."""
        fast = self._fast
        if fast is not None and _wall() < fast[1]:
            return fast[0]
        result = self.token_result()
        token = result.value_or(None)
        if token is None:
            raise as_exception(result.failure())
        return token.access_token

    def cached_token(self) -> str | None:
        """The token this process holds while it is fresh, else None.

        Never blocks: no lock, no file, no network (what async callers try
        before they wait for an acquisition, see `token_async`).
        """
        fast = self._fast
        if fast is not None and _wall() < fast[1]:
            return fast[0]
        return None

    async def token_async(self) -> str:
        """`token()` for async callers (asyncio or trio); never blocks the event loop.

        A fresh token in memory is returned at once; otherwise the task waits
        for the one acquisition of this source in flight (started if none is),
        which runs in its own thread and is never cancelled with a waiting task.
        """
        from ._flight import token_async

        return await token_async(self)

    def token_result(self) -> Result[CachedToken, AcquireError]:
        """The stack API token with its type and expiry, as a `Result`."""
        with self._lock:
            now = self._clock()
            result = acquire(
                stores=self._stores,
                grant=self._grant,
                settings=self._settings,
                now=now,
                clock=self._clock,
                log=self._log,
                held=self._held,
            )
            match result:
                case Success(token) if token is not self._held:
                    self._hold(token, now=now)
            return result

    def _hold(self, token: CachedToken, *, now: datetime) -> None:
        until = fresh_until(token, settings=self._settings)
        if until is None or not is_fresh(token.expiry, settings=self._settings, now=now):
            return  # handed out once, never reused (no expiry, or inside the grace)
        self._held = token
        self._fast = (token.access_token, until.timestamp())

    def invalidate(self, rejected: str | None = None) -> None:
        """Drop the token held in memory and in the stores (a server rejected it).

        Given the `rejected` token, nothing is dropped if this source already
        holds another one: N requests refused at once then cost one new token.
        """
        with self._lock:
            held = self._held
            if rejected is not None and held is not None and held.access_token != rejected:
                return
            self._held = None
            self._fast = None
            dropped = rejected if rejected is not None else held.access_token if held else None
            if dropped is None:
                return
            for store in self._stores:
                match store.drop(dropped):
                    case Failure(error):
                        self._log(f"{store.name} cache drop failed: {error.message}")

    @property
    def stack_uri(self) -> str:
        """The stack's base URI, for API clients."""
        if self._stack_uri is None:
            raise as_exception(
                AuthRequired(message=f"no URI known for stack {self._name}; {LOGIN_HINT}")
            )
        return self._stack_uri

    def close(self) -> None:
        """Close the HTTP connections; the source stays usable."""
        self._close()

    def __enter__(self) -> TokenSource:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TokenSource({self._name})"


def _raise_on_failure(built: Result[TokenSource, AcquireError]) -> TokenSource:
    source = built.value_or(None)
    if source is None:
        raise as_exception(built.failure())
    return source


def _shared_record(store: SharedStore | None, credentials: ClientCredentials) -> Store | None:
    if store is None:
        return None
    key = client_key(credentials.stack_uri, credentials.client_id, credentials.scopes)
    return store.record(key, stack_uri=credentials.stack_uri, client_id=credentials.client_id)


def _cache_root(
    cache_dir: str | os.PathLike[str] | None, environ: Mapping[str, str]
) -> Callable[[], str]:
    """The cache dir, computed when first needed (a warm run never needs it)."""
    if cache_dir is not None:
        fixed = os.fspath(cache_dir)
        return lambda: fixed
    return lambda: default_cache_dir(environ)


def _library_logger() -> Callable[[str], None]:
    import logging

    return logging.getLogger("stacktoken").debug
