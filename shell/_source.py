"""The public facade: a thread-safe token source per stack.

`token()` first looks at the token this process already holds: while it is
fresh that costs one clock read and one comparison, no file access and no
lock. Otherwise one thread at a time runs core's `acquire` (the others wait
and then find the token it got), which reads the disk cache and, only if it
must, the network.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

from returns.result import Failure, Result, Success
from stacktoken.core import (
    LOGIN_HINT,
    AcquireError,
    AuthRequired,
    CachedToken,
    Effects,
    Settings,
    StackAccess,
    StackRef,
    TokenRequest,
    TokenResponse,
    acquire,
    is_fresh,
    jwt_expiry,
    stack_discovery,
)

from ._discovery import DiscoveryCache, default_cache_dir, discover
from ._exceptions import as_exception
from ._fctl import (
    FctlStack,
    bind_fctl_effects,
    config_dir_from,
    forget_cached,
    locate_stack,
    membership_discoverer,
    post_token,
)
from ._files import LOCK_TIMEOUT_SECONDS
from ._http import Http, HttpPolicy
from ._options import settings_or_error

__all__ = ["TokenSource", "settings_from"]


def utc_now() -> datetime:
    """The clock, the one place stacktoken reads the time of day."""
    return datetime.now(UTC)


def _discard(_: str) -> None:
    return None


def settings_from(
    ttl: str | timedelta | None, environ: Mapping[str, str]
) -> Result[Settings, AcquireError]:
    """Settings from `--stack-token-cache-ttl`, else `STACK_TOKEN_CACHE_TTL`, else 5 min."""
    settings = settings_or_error(ttl, environ)
    return Success(settings) if isinstance(settings, Settings) else Failure(settings)


class TokenSource:
    """Stack API tokens for one stack: in memory, then the disk cache, then the network."""

    def __init__(
        self,
        *,
        effects: Effects,
        settings: Settings,
        stack_uri: str | None,
        forget: Callable[[], object],
        close: Callable[[], None],
        name: str,
    ) -> None:
        self._effects = effects
        self._settings = settings
        self._stack_uri = stack_uri
        self._forget = forget
        self._close = close
        self._name = name
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

        `lock_timeout` bounds the wait (seconds) for the stack's cross-process
        lock; when it runs out, `LocalStorageError` is raised.
        """
        built = cls.from_fctl_result(
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
        source = built.value_or(None)
        if source is None:
            raise as_exception(built.failure())
        return source

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
            return locate_stack(root, profile=profile, organization=organization, stack=stack).map(
                lambda found: cls._for_fctl_stack(
                    found,
                    settings=settings,
                    cache_dir=Path(cache_dir) if cache_dir is not None else None,
                    log=logger,
                    http_policy=http_policy,
                    lock_timeout=lock_timeout,
                )
            )

        return settings_from(cache_ttl, env).bind(build)

    @classmethod
    def _for_fctl_stack(
        cls,
        stack: FctlStack,
        *,
        settings: Settings,
        cache_dir: Path | None,
        log: Callable[[str], None],
        http_policy: HttpPolicy | None,
        lock_timeout: float = LOCK_TIMEOUT_SECONDS,
    ) -> TokenSource:
        http, discovery_cache = _network(cache_dir, log=log, http_policy=http_policy)
        effects = bind_fctl_effects(
            stack,
            settings=settings,
            http=http,
            discovery_cache=discovery_cache,
            clock=utc_now,
            log=log,
            lock_timeout=lock_timeout,
        )
        refs: list[StackRef] = [
            ref
            for org in stack.profile.organizations
            if org.id == stack.key.organization
            for ref in org.stacks
            if ref.id == stack.key.stack
        ]
        uri = refs[0].uri if refs else None
        return cls(
            effects=effects,
            settings=settings,
            stack_uri=uri,
            forget=lambda: forget_cached(stack),
            close=http.close,
            name=str(stack.key),
        )

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
        """A source for a service that keeps its own credentials, without fctl files.

        Tokens are held in memory only (no disk cache). When the stack access
        token is refreshed, `on_refresh(access_token, refresh_token)` is called
        before the exchange, so the service can persist a rotated refresh token.
        `cache_dir` only holds discovery documents.
        """
        logger = log if log is not None else _library_logger()
        http, discovery_cache = _network(
            Path(cache_dir) if cache_dir is not None else None, log=logger, http_policy=http_policy
        )
        held = [
            StackAccess(
                token=access_token,
                refresh_token=refresh_token,
                expiry=jwt_expiry(access_token),
            )
        ]
        settings = Settings(cache_ttl=timedelta(0))

        def write_access(access: StackAccess) -> Result[None, AcquireError]:
            held[0] = access
            if on_refresh is not None:
                on_refresh(access.token, access.refresh_token)
            return Success(None)

        membership = membership_discoverer(
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
        )

        def post(request: TokenRequest) -> Result[TokenResponse, AcquireError]:
            return post_token(http, request)

        effects = Effects(
            clock=utc_now,
            log=logger,
            read_cache=lambda: Failure("memory-only source"),
            write_cache=lambda _: Success(None),
            locked=lambda body: body(),
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
            discover_membership=membership,
            refresh=post,
        )
        return cls(
            effects=effects,
            settings=settings,
            stack_uri=stack_uri,
            forget=lambda: None,
            close=http.close,
            name=stack_uri,
        )

    # -- use -----------------------------------------------------------------

    def token(self) -> str:
        """The stack API token; raises a `StackTokenError` subclass when none can be had."""
        fast = self._fast
        if fast is not None and time.time() < fast[1]:
            return fast[0]
        result = self.token_result()
        token = result.value_or(None)
        if token is None:
            raise as_exception(result.failure())
        return token.access_token

    def token_result(self) -> Result[CachedToken, AcquireError]:
        """The stack API token with its type and expiry, as a `Result`."""
        with self._lock:
            now = utc_now()
            held = self._held
            if held is not None and is_fresh(held.expiry, settings=self._settings, now=now):
                return Success(held)
            result = acquire(settings=self._settings, now=now, effects=self._effects)
            match result:
                case Success(token) if token.expiry is not None and is_fresh(
                    token.expiry, settings=self._settings, now=now
                ):
                    self._held = token
                    fresh_until = (token.expiry - self._settings.expiry_grace).timestamp()
                    self._fast = (token.access_token, fresh_until)
            return result

    def invalidate(self, rejected: str | None = None) -> None:
        """Drop the token held in memory and on disk (a server rejected it).

        Given the `rejected` token, nothing is dropped if this source already
        holds another one: N requests refused at once then cost one new token.
        """
        with self._lock:
            held = self._held
            if rejected is not None and held is not None and held.access_token != rejected:
                return
            self._held = None
            self._fast = None
            self._forget()

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


def _network(
    cache_dir: Path | None, *, log: Callable[[str], None], http_policy: HttpPolicy | None
) -> tuple[Http, DiscoveryCache]:
    http = Http(policy=http_policy or HttpPolicy(), clock=utc_now, log=log)
    root: Callable[[], Path] = (lambda: cache_dir) if cache_dir is not None else default_cache_dir
    return http, DiscoveryCache(root, log=log)


def _library_logger() -> Callable[[str], None]:
    import logging

    return logging.getLogger("stacktoken").debug
