"""fctl's files: where they are, which stack they name, and effects bound to them.

This is the composition root for a stack known to an fctl profile: it binds
core's `Effects` to the stack's files, the shared HTTP client, discovery and
the lazy membership discovery.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from returns.result import Failure, Result, Success
from stacktoken.core import (
    LOGIN_HINT,
    REFRESH_REJECTIONS,
    AcquireError,
    AuthRequired,
    CachedToken,
    CacheRead,
    DiscoveryDocument,
    Effects,
    LocalError,
    OAuthError,
    Settings,
    StackAccess,
    TokenRequest,
    TokenResponse,
    decode_accesses,
    decode_cache_entry,
    encode_accesses,
    encode_cache_entry,
    interpret_token_response,
    membership_discovery,
    stack_discovery,
    stack_uri,
)

from ._discovery import DiscoveryCache, discover
from ._files import (
    LOCK_TIMEOUT_SECONDS,
    check_writable,
    locked,
    read_private,
    remove_file,
    write_atomic,
)
from ._http import Http, HttpAnswer
from ._lazy import Lazy
from ._options import FctlStack, config_dir_from, current_profile, locate_stack_or_error

__all__ = [
    "FctlStack",
    "bind_fctl_effects",
    "config_dir_from",
    "current_profile",
    "forget_cached",
    "locate_stack",
    "membership_discoverer",
    "post_token",
    "read_cache_entry",
]

#: How long a rejected refresh waits for a concurrent writer's rotation to land.
ROTATION_WAIT_SECONDS = 1.0
ROTATION_POLL_SECONDS = 0.02


def locate_stack(
    config_dir: Path, *, profile: str | None, organization: str | None, stack: str | None
) -> Result[FctlStack, AcquireError]:
    """Resolve profile, organization and stack as fctl does, and the stack's files."""
    found = locate_stack_or_error(
        config_dir, profile=profile, organization=organization, stack=stack
    )
    return Success(found) if isinstance(found, FctlStack) else Failure(found)


def membership_discoverer(
    membership_uri: str | None,
    *,
    missing: AcquireError,
    http: Http,
    discovery_cache: DiscoveryCache,
    clock: Callable[[], datetime],
) -> Callable[[bool], Result[DiscoveryDocument, AcquireError]]:
    """Core's `discover_membership` effect: lazy and memoised (DESIGN §6); with
    `refresh`, the memoised and the cached document are dropped first."""

    def discover_now() -> Result[DiscoveryDocument, AcquireError]:
        if membership_uri is None:
            return Failure(missing)
        return discover(
            membership_discovery(membership_uri), http=http, cache=discovery_cache, clock=clock
        )

    lazy: Lazy[DiscoveryDocument, AcquireError] = Lazy(discover_now)

    def discover_membership(refresh: bool) -> Result[DiscoveryDocument, AcquireError]:
        if refresh:
            lazy.forget()
            if membership_uri is not None:
                discovery_cache.drop(membership_discovery(membership_uri).url)
        return lazy.get()

    return discover_membership


def read_cache_entry(path: Path) -> Result[CacheRead, str]:
    """A cache file's entry and mtime, or the reason it is a cache miss."""
    return read_private(path).bind(
        lambda found: decode_cache_entry(found[0]).map(lambda entry: (entry, found[1]))
    )


def post_token(http: Http, request: TokenRequest) -> Result[TokenResponse, AcquireError]:
    """Send a token request and read the answer (RFC 6749 §5)."""
    answered: Result[HttpAnswer, AcquireError] = http.post_form(request.url, request.form)
    return answered.bind(
        lambda answer: interpret_token_response(
            answer.status_code, answer.body, request=request, sent_at=answer.sent_at
        )
    )


def bind_fctl_effects(
    stack: FctlStack,
    *,
    settings: Settings,
    http: Http,
    discovery_cache: DiscoveryCache,
    clock: Callable[[], datetime],
    log: Callable[[str], None],
    lock_timeout: float = LOCK_TIMEOUT_SECONDS,
) -> Effects:
    """Core's effects for a stack of an fctl profile; `lock_timeout` bounds the
    wait for the stack's cross-process lock (seconds)."""
    cache_file = stack.root / stack.paths.cache
    accesses_file = stack.root / stack.paths.accesses

    def read_cache() -> Result[CacheRead, str]:
        return read_cache_entry(cache_file)

    # Leftover temp files may be swept only while this source holds the stack's
    # lock: without it they cannot be told from another process's write in
    # progress. `TokenSource` runs one acquisition at a time, so one flag does.
    lock_held = [False]

    def write_cache(entry: CachedToken) -> Result[None, LocalError]:
        return write_atomic(cache_file, encode_cache_entry(entry), sweep=lock_held[0])

    def run_locked(
        body: Callable[[], Result[CachedToken, AcquireError]],
    ) -> Result[CachedToken, AcquireError]:
        def body_noting_the_lock(held: bool) -> Result[CachedToken, AcquireError]:
            lock_held[0] = held
            try:
                return body()
            finally:
                lock_held[0] = False

        return locked(
            stack.root / stack.paths.lock, body_noting_the_lock, timeout=lock_timeout, log=log
        )

    def read_access() -> Result[StackAccess, AcquireError]:
        found = read_private(accesses_file)
        if isinstance(found, Success):
            data, _ = found.value_or((b"", None))
            return decode_accesses(data).alt(
                lambda reason: AuthRequired(
                    message=f"the stack access token of {stack.key} is unreadable "
                    f"({reason}); {LOGIN_HINT}"
                )
            )
        if found.failure() == "no such file":
            return Failure(
                AuthRequired(message=f"no stack access token for {stack.key}; {LOGIN_HINT}")
            )
        return Failure(LocalError(message=f"cannot use {accesses_file}: {found.failure()}"))

    def write_access(access: StackAccess) -> Result[None, AcquireError]:
        return write_atomic(accesses_file, encode_accesses(access), sweep=lock_held[0])

    def discover_stack(refresh: bool) -> Result[DiscoveryDocument, AcquireError]:
        uri: Result[str, AcquireError] = stack_uri(
            stack.profile, stack.key.organization, stack.key.stack
        )
        return uri.bind(
            lambda uri: discover(
                stack_discovery(uri), http=http, cache=discovery_cache, clock=clock, refresh=refresh
            )
        )

    membership = membership_discoverer(
        stack.profile.membership_uri,
        missing=AuthRequired(
            message=f"profile {stack.key.profile!r} has no membership URI; {LOGIN_HINT}"
        ),
        http=http,
        discovery_cache=discovery_cache,
        clock=clock,
    )

    def await_rotation(error: AcquireError, sent: str) -> Result[TokenResponse, AcquireError]:
        # A refresh token is single-use: a rejection may mean that a program
        # taking no lock (fctl, or stacktoken with TTL 0) spent it a moment ago
        # and is saving the new one. Give that write time to land, so that the
        # workflow's re-read of accesses.json finds it (core's `_rotated_elsewhere`).
        # An unreadable file may be fctl's write in progress (fctl writes in place).
        if isinstance(error, OAuthError) and error.error in REFRESH_REJECTIONS:
            deadline = time.monotonic() + ROTATION_WAIT_SECONDS
            while time.monotonic() < deadline and _refresh_token_in(accesses_file) in (sent, None):
                time.sleep(ROTATION_POLL_SECONDS)
        return Failure(error)

    def refresh(request: TokenRequest) -> Result[TokenResponse, AcquireError]:
        # The IdP rotates the refresh token on use: spend it only when the new
        # one can be saved (a read-only folder or a full disk would lose it).
        writable: Result[None, AcquireError] = check_writable(accesses_file).alt(
            lambda error: LocalError(
                message=f"not refreshing the stack access token: {error.message}"
            )
        )
        sent = dict(request.form).get("refresh_token", "")
        return writable.bind(lambda _: post_token(http, request)).lash(
            lambda error: await_rotation(error, sent)
        )

    return Effects(
        clock=clock,
        log=log,
        read_cache=read_cache,
        write_cache=write_cache,
        locked=run_locked,
        read_access=read_access,
        write_access=write_access,
        discover_stack=discover_stack,
        exchange=lambda request: post_token(http, request),
        discover_membership=membership,
        refresh=refresh,
    )


def _refresh_token_in(accesses_file: Path) -> str | None:
    found = read_private(accesses_file).bind(lambda read: decode_accesses(read[0]))
    return found.map(lambda access: access.refresh_token).value_or(None)


def forget_cached(stack: FctlStack) -> Result[bool, LocalError]:
    """Remove the stack's disk cache entry."""
    return remove_file(stack.root / stack.paths.cache)
