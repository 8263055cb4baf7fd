"""The public facade: a thread-safe token source.

`token()` first looks at the token this process already holds: until its
refresh point (or, when renewing in the background, while it is fresh) that
costs one clock read and one comparison, no file access and no lock.
Otherwise one thread at a time runs core's cache workflow (the others wait
and then find the token it got) over the source's stores and grant.

Renewal (issue 14, core's `_renewal`). A held token past its refresh point
(80 % of its lifetime, jittered, never past expiry minus grace) is renewed
by the first call after that point, through the same cache workflow (so a
fleet on one store asks once), while other threads keep getting the held
token without waiting. With `renew_in_background=True` a daemon thread
(`_renewer`) renews at the refresh point instead, and no call waits for a
request while a token is held. A renewal that fails is tried again after a
growing wait (`renewal_retry_delay`); the held token stays in use while it
is fresh, and a caller sees the failure only once it is not.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from time import time as _wall  # one global lookup on `token()`'s fast path
from typing import Protocol
from weakref import WeakSet

from returns.result import Failure, Result, Success
from stacktoken.core._cache import Grant, Store
from stacktoken.core._codecs import jwt_expiry
from stacktoken.core._decisions import fresh_until, is_fresh
from stacktoken.core._errors import AcquireError, AuthRequired, UsageError
from stacktoken.core._fctl_grant import FctlEffects, fctl_grant
from stacktoken.core._paths import client_key
from stacktoken.core._profile import LOGIN_HINT
from stacktoken.core._record import replace
from stacktoken.core._renewal import (
    HeldVerdict,
    RenewalPolicy,
    judge_held,
    refresh_point,
    renewal_retry_delay,
)
from stacktoken.core._requests import stack_discovery
from stacktoken.core._results import lift
from stacktoken.core._time import UTC, datetime, timedelta
from stacktoken.core._types import (
    CachedToken,
    ClientCredentials,
    Settings,
    StackAccess,
    TokenRequest,
    TokenResponse,
)
from stacktoken.core._urls import check_endpoint_url, safe_url
from stacktoken.core._workflow import acquire

from ._client import bind_client
from ._discovery import DiscoveryCache, discover
from ._exceptions import as_exception
from ._fctl import bind_fctl, membership_discoverer, post_token
from ._files import LOCK_TIMEOUT_SECONDS
from ._http import Http, HttpPolicy
from ._options import FctlStack, config_dir_from, default_cache_dir, locate_stack, settings_from
from ._renewer import Renewer

__all__ = ["SharedStore", "TokenSource", "utc_now"]


def utc_now() -> datetime:
    """The clock, the one place stacktoken reads the time of day."""
    return datetime.now(UTC)


def uniform() -> float:
    """A number in [0, 1) for jitter, from os.urandom (no `random` import)."""
    return int.from_bytes(os.urandom(7)) / 2**56


#: Early renewal unless the caller says otherwise (`renewal=None`: renew at expiry).
DEFAULT_RENEWAL = RenewalPolicy()


class SharedStore(Protocol):
    """A store several hosts share (`RedisStore`): it gives core the `Store` record
    of the entry of core key `key` (`client_key`: never the secret), stamped with
    `stack_uri`, `client_id` and the sorted `scopes`."""

    def record(
        self, key: str, *, stack_uri: str, client_id: str, scopes: tuple[str, ...] = ()
    ) -> Store: ...


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
        renewal: RenewalPolicy | None = DEFAULT_RENEWAL,
        renew_in_background: bool = False,
        jitter: Callable[[], float] = uniform,
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
        # (token, epoch seconds of its refresh point, or of the end of its
        # freshness when nothing renews it on call): one attribute, so the
        # lock-free fast path of `token()` reads both halves consistently. The
        # epoch is the system clock's: a source on another clock has no fast path.
        self._fast: tuple[str, float] | None = None
        self._wall_clock = clock is utc_now
        self._renewal = renewal
        self._jitter = jitter
        # (held token, its refresh point): one attribute, read without the lock.
        self._holding: tuple[CachedToken, datetime | None] | None = None
        self._failures = 0  # failed renewals in a row
        self._retry_at: datetime | None = None  # no renewal before this, after a failure
        self._background = renew_in_background and renewal is not None
        self._renewer: Renewer | None = None
        _SOURCES.add(self)

    def _after_fork(self) -> None:
        """In a forked child: the parent's other threads are gone, so a lock one of
        them held would never be released, and its renewal thread is not here."""
        self._lock = threading.Lock()
        self._renewer = None  # started again by the next token held

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
        renewal: RenewalPolicy | None = DEFAULT_RENEWAL,
        renew_in_background: bool = False,
    ) -> TokenSource:
        """A source for a stack of an fctl profile; raises `StackTokenError` subclasses.

        Profile, organization and stack are resolved as fctl does: the argument,
        else `PROFILE` / `ORGANIZATION` / `STACK` in `environ`, else the
        profile's defaults. `lock_timeout` bounds the wait (seconds) for the
        stack's cross-process lock; when it runs out, `LocalStorageError` is raised.

        `renewal`: when a held token is renewed (default: at 80 % of its
        lifetime, ±10 % jitter, never past expiry minus grace); None renews only
        once it is no longer fresh. By default the first call after that point
        renews; `renew_in_background=True` starts a daemon thread that renews at
        that point instead (stopped by `close()` or leaving the `with` block).
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
                renewal=renewal,
                renew_in_background=renew_in_background,
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
        renewal: RenewalPolicy | None = DEFAULT_RENEWAL,
        renew_in_background: bool = False,
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
                    renewal=renewal,
                    renew_in_background=renew_in_background,
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
        renewal: RenewalPolicy | None,
        renew_in_background: bool,
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
            renewal=renewal,
            renew_in_background=renew_in_background,
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
        renewal: RenewalPolicy | None = DEFAULT_RENEWAL,
        renew_in_background: bool = False,
        clock: Callable[[], datetime] = utc_now,
    ) -> TokenSource:
        """A source for a stack OAuth client (DESIGN §9), warm across processes.

        Tokens are cached under `cache_dir` (default: the user cache dir) by
        stack URI, client id and scopes, never by the secret. `store` adds a
        store several hosts share (a `RedisStore`), after this host's files.
        `renewal`, `renew_in_background`: as for `from_fctl`. `clock` tells the
        time of day the tokens' lifetimes are measured on (simulations, tests);
        a source on another clock than the system's has no lock-free fast path.
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
                renewal=renewal,
                renew_in_background=renew_in_background,
                clock=clock,
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
        renewal: RenewalPolicy | None = DEFAULT_RENEWAL,
        renew_in_background: bool = False,
        clock: Callable[[], datetime] = utc_now,
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
            http = Http(policy=http_policy or HttpPolicy(), clock=clock, log=logger)
            stores, grant = bind_client(
                credentials,
                cache_dir=root(),
                http=http,
                discovery_cache=DiscoveryCache(root, log=logger),
                clock=clock,
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
                clock=clock,
                renewal=renewal,
                renew_in_background=renew_in_background,
            )

        checked: Result[str, AcquireError] = check_endpoint_url(credentials.stack_uri)
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
        renewal: RenewalPolicy | None = DEFAULT_RENEWAL,
        renew_in_background: bool = False,
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
            name=safe_url(stack_uri),  # the repr's: never a URL's credentials
            renewal=renewal,
            renew_in_background=renew_in_background,
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
        before they wait for an acquisition, see `token_async`). Past the
        refresh point it returns the held token while a renewal is under way,
        waiting to be retried, or left to the background thread; otherwise None,
        so that the caller renews.
        """
        fast = self._fast
        if fast is not None and _wall() < fast[1]:
            return fast[0]
        holding = self._holding
        if holding is None:
            return None
        held, renew_at = holding
        now = self._clock()
        verdict = judge_held(held, renew_at=renew_at, settings=self._settings, now=now)
        if verdict is HeldVerdict.USE:
            return held.access_token
        if verdict is HeldVerdict.RENEW and (
            self._renewer is not None
            or (self._retry_at is not None and now < self._retry_at)
            or self._lock.locked()  # a renewal (or an acquisition) is under way
        ):
            return held.access_token
        return None  # the caller should renew (or acquire): join or start a flight

    def _fresh_token(self) -> str | None:
        """The held token while it is fresh, past its refresh point or not."""
        holding = self._holding
        if holding is None or not is_fresh(
            holding[0].expiry, settings=self._settings, now=self._clock()
        ):
            return None
        return holding[0].access_token

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
        holding = self._holding
        if holding is not None:
            held, renew_at = holding
            now = self._clock()
            verdict = judge_held(held, renew_at=renew_at, settings=self._settings, now=now)
            if verdict is HeldVerdict.USE:
                return Success(held)
            if verdict is HeldVerdict.RENEW:
                return self._renew_on_call(held, now=now)
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

    @property
    def _held(self) -> CachedToken | None:
        holding = self._holding
        return None if holding is None else holding[0]

    def _renew_on_call(
        self, held: CachedToken, *, now: datetime
    ) -> Result[CachedToken, AcquireError]:
        """Past the refresh point, still fresh: renew unless the background thread does,
        a failed renewal's wait is running, or another thread is acquiring already
        (this one then takes the held token without waiting)."""
        if self._renewer is not None or (self._retry_at is not None and now < self._retry_at):
            return Success(held)
        if not self._lock.acquire(blocking=False):
            return Success(held)
        try:
            return self._renew(held)
        finally:
            self._lock.release()

    def _renew(self, held: CachedToken) -> Result[CachedToken, AcquireError]:
        """Renew `held` through the cache workflow; the lock is held. A failure
        keeps `held` in use while it is fresh, and sets the next try's time."""
        current = self._held
        now = self._clock()
        if (
            current is not None
            and current is not held
            and is_fresh(current.expiry, settings=self._settings, now=now)
        ):
            return Success(current)  # another thread renewed it meanwhile
        result = acquire(
            stores=self._stores,
            grant=self._grant,
            settings=self._settings,
            now=now,
            clock=self._clock,
            log=self._log,
            renewing=self._renewal,
        )
        match result:
            case Success(token):
                self._hold(token, now=now)
                self._log("token renewed before its expiry")
                return result
            case Failure(error):
                after = self._clock()
                self._failures += 1
                policy = self._renewal or DEFAULT_RENEWAL
                wait = renewal_retry_delay(
                    failures=self._failures, policy=policy, jitter=self._jitter()
                )
                self._retry_at = after + timedelta(seconds=wait)
                if is_fresh(held.expiry, settings=self._settings, now=after):
                    self._log(
                        f"renewal failed ({error.message}); the held token stays in use, "
                        f"next try in {wait:.1f} s"
                    )
                    return Success(held)
        return result

    def _hold(self, token: CachedToken, *, now: datetime) -> None:
        until = fresh_until(token, settings=self._settings)
        if until is None or not is_fresh(token.expiry, settings=self._settings, now=now):
            return  # handed out once, never reused (no expiry, or inside the grace)
        renew_at = self._refresh_point(token, until=until, now=now)
        self._holding = (token, renew_at)
        self._failures = 0
        self._retry_at = None
        if self._wall_clock:
            bound = renew_at if renew_at is not None and not self._background else until
            self._fast = (token.access_token, bound.timestamp())
        if self._background:
            self._start_renewer()

    def _refresh_point(
        self, token: CachedToken, *, until: datetime, now: datetime
    ) -> datetime | None:
        policy = self._renewal
        if policy is None:
            return None
        # An entry fctl wrote has no savedAt: its lifetime counts from now.
        basis = token if token.saved_at is not None else replace(token, saved_at=now)
        point = refresh_point(basis, policy=policy, settings=self._settings, jitter=self._jitter())
        if point is None:
            return None
        # Never a renewal right after the last (a tiny fraction, a short-lived
        # token), and never past the end of freshness.
        return min(max(point, now + timedelta(seconds=policy.first_retry_seconds)), until)

    # -- background renewal -----------------------------------------------------

    def _start_renewer(self) -> None:
        if self._renewer is None:
            self._renewer = Renewer(
                self._renewal_step, name=f"stacktoken-renewal {self._name}", log=self._log
            )
            self._renewer.start()
        else:
            self._renewer.poke()

    def _renewal_step(self) -> float | None:
        """The background thread's step: renew if due; seconds until the next step
        (None: no token held, wait to be poked)."""
        with self._lock:
            holding = self._holding
            if holding is None:
                return None
            held, renew_at = holding
            now = self._clock()
            if self._retry_at is not None and now < self._retry_at:
                return (self._retry_at - now).total_seconds()
            verdict = judge_held(held, renew_at=renew_at, settings=self._settings, now=now)
            if verdict is HeldVerdict.USE and renew_at is not None:
                return (renew_at - now).total_seconds()
            self._renew(held)
            if self._retry_at is not None:
                return max(0.0, (self._retry_at - self._clock()).total_seconds())
            holding = self._holding
            point = None if holding is None else holding[1]
            if point is None:
                return None
            floor = (self._renewal or DEFAULT_RENEWAL).first_retry_seconds
            return max(floor, (point - self._clock()).total_seconds())

    def invalidate(self, rejected: str | None = None) -> None:
        """Drop the token held in memory and in the stores (a server rejected it).

        Given the `rejected` token, nothing is dropped if this source already
        holds another one: N requests refused at once then cost one new token.
        """
        with self._lock:
            held = self._held
            if rejected is not None and held is not None and held.access_token != rejected:
                return
            self._holding = None
            self._fast = None
            self._failures = 0
            self._retry_at = None
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
        """Stop the background renewal thread, if any, and close the HTTP connections.

        The source stays usable; from then on it renews on call, with no thread.
        """
        self._background = False
        renewer, self._renewer = self._renewer, None
        if renewer is not None and not renewer.stop():
            self._log("background renewal still inside a request; it ends after it")
        with self._lock:
            holding = self._holding
            if self._wall_clock and holding is not None and holding[1] is not None:
                # The fast path now ends at the refresh point, where a call renews.
                self._fast = (holding[0].access_token, holding[1].timestamp())
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


_SOURCES: WeakSet[TokenSource] = WeakSet()


def _reset_after_fork() -> None:
    for source in list(_SOURCES):
        source._after_fork()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_reset_after_fork)


def _shared_record(store: SharedStore | None, credentials: ClientCredentials) -> Store | None:
    if store is None:
        return None
    key = client_key(credentials.stack_uri, credentials.client_id, credentials.scopes)
    return store.record(
        key,
        stack_uri=credentials.stack_uri,
        client_id=credentials.client_id,
        scopes=credentials.scopes,
    )


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
