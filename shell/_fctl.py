"""The composition root for a stack an fctl profile knows.

It binds core's fctl grant to the stack's files (`accesses.json`), the
shared HTTP client, discovery and the lazy membership discovery, and the
stack folder's file store to core's cache workflow.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from returns.result import Failure, Result, Success
from stacktoken.core._cache import Grant, Store
from stacktoken.core._codecs import decode_accesses, encode_accesses
from stacktoken.core._errors import AcquireError, AuthRequired, LocalError, OAuthError, RemoteError
from stacktoken.core._fctl_grant import REFRESH_REJECTIONS, FctlEffects, fctl_grant
from stacktoken.core._profile import LOGIN_HINT, stack_uri
from stacktoken.core._record import replace
from stacktoken.core._requests import (
    interpret_token_response,
    membership_discovery,
    stack_discovery,
)
from stacktoken.core._results import lift
from stacktoken.core._time import datetime
from stacktoken.core._types import (
    CachedToken,
    DiscoveryDocument,
    Settings,
    StackAccess,
    TokenRequest,
    TokenResponse,
)

from ._config import FctlStack
from ._discovery import DiscoveryCache, discover
from ._files import LOCK_TIMEOUT_SECONDS, Place, check_writable, read_private
from ._http import Http, HttpAnswer
from ._lazy import Lazy
from ._signals import guard
from ._stores import fctl_store

__all__ = [
    "bind_fctl",
    "membership_discoverer",
    "post_token",
]

#: How long a rejected refresh waits for a concurrent writer's rotation to land.
ROTATION_WAIT_SECONDS = 1.0
ROTATION_POLL_SECONDS = 0.02


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


def post_token(http: Http, request: TokenRequest) -> Result[TokenResponse, AcquireError]:
    """Send a token request and read the answer (RFC 6749 §5)."""
    answered: Result[HttpAnswer, AcquireError] = http.post(request)
    return answered.bind(
        lambda answer: interpret_token_response(
            answer.status_code, answer.body, request=request, sent_at=answer.sent_at
        )
    )


def bind_fctl(
    stack: FctlStack,
    *,
    settings: Settings,
    http: Http,
    discovery_cache: DiscoveryCache,
    clock: Callable[[], datetime],
    log: Callable[[str], None],
    lock_timeout: float = LOCK_TIMEOUT_SECONDS,
) -> tuple[tuple[Store, ...], Grant]:
    """The stores and the grant of a stack of an fctl profile; `lock_timeout`
    bounds the wait for the stack's cross-process lock (seconds)."""
    folder = fctl_store(stack, log=log, lock_timeout=lock_timeout)
    accesses_file = folder.place(stack.paths.accesses)

    def read_access() -> Result[StackAccess, AcquireError]:
        found = read_private(accesses_file, log=log)
        if isinstance(found, str):
            if found == "no such file":
                key = stack.key
                return Failure(
                    AuthRequired(
                        message=f"no stack access token for {key}: get one with `stacktoken "
                        f"login --organization {key.organization} --stack {key.stack}` or "
                        "`stacktoken token --login` (an fctl command on that stack works too)"
                    )
                )
            return Failure(LocalError(message=f"cannot use {accesses_file}: {found}"))
        return decode_accesses(found[0]).alt(
            lambda reason: AuthRequired(
                message=f"the stack access token of {stack.key} is unreadable "
                f"({reason}); {LOGIN_HINT}"
            )
        )

    # True from a refresh the IdP may have acted on until its rotation is written:
    # interruptions wait meanwhile (`_signals`), so the new refresh token is never lost.
    rotation_in_flight = [False]

    def end_rotation() -> None:
        if rotation_in_flight[0]:
            rotation_in_flight[0] = False
            guard.release()  # raises here an interruption that came meanwhile

    def write_access(access: StackAccess) -> Result[None, AcquireError]:
        written: Result[None, AcquireError] = folder.write_file(
            stack.paths.accesses, encode_accesses(access)
        )
        end_rotation()
        return written

    def discover_stack(refresh: bool) -> Result[DiscoveryDocument, AcquireError]:
        uri: Result[str, AcquireError] = lift(
            stack_uri(stack.profile, stack.key.organization, stack.key.stack)
        )
        return uri.bind(
            lambda uri: discover(
                stack_discovery(uri), http=http, cache=discovery_cache, clock=clock, refresh=refresh
            )
        )

    def await_rotation(error: AcquireError, sent: str) -> Result[TokenResponse, AcquireError]:
        # A refresh token is single-use: a rejection may mean that a program
        # taking no lock (fctl, or stacktoken with TTL 0) spent it a moment ago
        # and is saving the new one. Give that write time to land, so that the
        # grant's re-read of accesses.json finds it (core's `_rotated_elsewhere`).
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
        return writable.bind(lambda _: post_rotating(request)).lash(
            lambda error: await_rotation(error, sent)
        )

    def post_rotating(request: TokenRequest) -> Result[TokenResponse, AcquireError]:
        guard.hold()
        rotation_in_flight[0] = True
        answer = post_token(http, request)
        # Core writes accesses.json next only for an answer that rotated the token.
        if not (isinstance(answer, Success) or _stray_rotation(answer)):
            end_rotation()
        return answer

    def obtain_guarded(now: datetime) -> Result[CachedToken, AcquireError]:
        try:
            return grant.obtain(now)
        finally:
            end_rotation()  # whatever happened, no interruption stays deferred

    effects = FctlEffects(
        log=log,
        read_access=read_access,
        write_access=write_access,
        discover_stack=discover_stack,
        exchange=lambda request: post_token(http, request),
        discover_membership=membership_discoverer(
            stack.profile.membership_uri,
            missing=AuthRequired(
                message=f"profile {stack.key.profile!r} has no membership URI; {LOGIN_HINT}"
            ),
            http=http,
            discovery_cache=discovery_cache,
            clock=clock,
        ),
        refresh=refresh,
    )
    grant = fctl_grant(effects, settings=settings)
    return (folder.record(),), replace(grant, obtain=obtain_guarded)


def _stray_rotation(answer: Result[TokenResponse, AcquireError]) -> bool:
    failure = answer.failure() if isinstance(answer, Failure) else None
    return isinstance(failure, RemoteError) and failure.rotated_refresh_token is not None


def _refresh_token_in(accesses_file: Place) -> str | None:
    found = read_private(accesses_file)
    if isinstance(found, str):
        return None
    return decode_accesses(found[0]).map(lambda access: access.refresh_token).value_or(None)
