"""The composition roots: a source's stores and grant, one small function per kind.

- `bind_fctl`: a stack of an fctl profile: core's fctl grant over the stack's
  `accesses.json`, and the stack folder's file store.
- `bind_client`: a machine credential (docs/design.md §9): core's client grant,
  the host's files under the cache dir, then a shared store if given.
- `bind_credentials`: a service that keeps its own stack access token: the fctl
  grant over that token in memory, and no store.

The roots only wire effects; the rules (when to refresh, when a rejected refresh
may have been rotated elsewhere, that a refresh is spent only when its rotation
can be saved) are core's grants'.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from returns.result import Failure, Result, Success
from stacktoken.core._cache import Grant, Store
from stacktoken.core._client_grant import ClientEffects, client_credentials_grant
from stacktoken.core._codecs import decode_accesses, encode_accesses, jwt_expiry
from stacktoken.core._errors import AcquireError, AuthRequired, LocalError, RemoteError
from stacktoken.core._failures import FailureKnobs, FailureMemory
from stacktoken.core._fctl_grant import FctlEffects, fctl_grant
from stacktoken.core._paths import client_key, client_paths
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
    ClientCredentials,
    DiscoveryDocument,
    Settings,
    StackAccess,
    TokenRequest,
    TokenResponse,
)
from stacktoken.core._urls import safe_url

from ._config import FctlStack
from ._discovery import DiscoveryCache, discover
from ._failures import FAILURE_FILE, FailureSlot, FileSlot, failure_memory, fctl_failure_place
from ._files import Place, check_writable, read_private
from ._http import Http, HttpAnswer
from ._lazy import Lazy
from ._signals import guard
from ._stores import client_store, fctl_store

__all__ = [
    "Bound",
    "RotationGuard",
    "bind_client",
    "bind_credentials",
    "bind_fctl",
    "membership_discoverer",
    "post_token",
]

#: How long a rejected refresh waits for a concurrent writer's rotation to land.
ROTATION_WAIT_SECONDS = 1.0
ROTATION_POLL_SECONDS = 0.02


@dataclass(frozen=True, slots=True, kw_only=True)
class Bound:
    """What a root gives a token source: its stores, its grant, and how it is named."""

    stores: tuple[Store, ...]
    grant: Grant
    stack_uri: str | None
    name: str  # for the repr and the renewal thread: never a secret or a URL's credentials
    memory: FailureMemory | None = None  # its failures remembered (docs/design.md §15)


def post_token(http: Http, request: TokenRequest) -> Result[TokenResponse, AcquireError]:
    """Send a token request and read the answer (RFC 6749 section 5)."""
    answered: Result[HttpAnswer, AcquireError] = http.post(request)
    return answered.bind(
        lambda answer: interpret_token_response(
            answer.status_code, answer.body, request=request, sent_at=answer.sent_at
        )
    )


def membership_discoverer(
    membership_uri: str | None,
    *,
    missing: AcquireError,
    http: Http,
    discovery_cache: DiscoveryCache,
    clock: Callable[[], datetime],
) -> Callable[[bool], Result[DiscoveryDocument, AcquireError]]:
    """Core's `discover_membership` effect: lazy and memoised (docs/design.md §6); with
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


class RotationGuard:
    """Interruptions wait from a refresh the IdP may have acted on until its rotation is
    written (`_signals`), so a new refresh token is never lost to Ctrl-C."""

    def __init__(self) -> None:
        self._in_flight = False

    def start(self) -> None:
        guard.hold()
        self._in_flight = True

    def end(self) -> None:
        if self._in_flight:
            self._in_flight = False
            guard.release()  # raises here an interruption that came meanwhile

    def post(self, http: Http, request: TokenRequest) -> Result[TokenResponse, AcquireError]:
        """A refresh request, guarded until core writes the rotation it brings (only a
        success or a failure carrying a rotated refresh token is written next)."""
        self.start()
        answer = post_token(http, request)
        if not (isinstance(answer, Success) or _stray_rotation(answer)):
            self.end()
        return answer


def bind_fctl(
    stack: FctlStack,
    *,
    settings: Settings,
    http: Http,
    discovery_cache: DiscoveryCache,
    clock: Callable[[], datetime],
    log: Callable[[str], None],
    lock_timeout: float,
    cache_dir: str | None = None,
    failures: FailureKnobs | None = None,
) -> Bound:
    """A stack of an fctl profile; `lock_timeout` bounds the wait for the stack's
    cross-process lock (seconds); its failures are remembered below `cache_dir`
    (never in the fctl stack folder), keyed by the refresh token's fingerprint."""
    folder = fctl_store(stack, log=log, lock_timeout=lock_timeout)
    accesses_file = folder.place(stack.paths.accesses)
    rotation = RotationGuard()

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

    def write_access(access: StackAccess) -> Result[None, AcquireError]:
        written: Result[None, AcquireError] = folder.write_file(
            stack.paths.accesses, encode_accesses(access)
        )
        rotation.end()
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

    def await_rotation(sent: str) -> None:
        # An unreadable file may be fctl's write in progress (fctl writes in place).
        deadline = time.monotonic() + ROTATION_WAIT_SECONDS
        while time.monotonic() < deadline and _refresh_token_in(accesses_file) in (sent, None):
            time.sleep(ROTATION_POLL_SECONDS)

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
        refresh=lambda request: rotation.post(http, request),
        writable=lambda: check_writable(accesses_file),
        await_rotation=await_rotation,
    )
    grant = fctl_grant(effects, settings=settings)

    def obtain_guarded(now: datetime) -> Result[CachedToken, AcquireError]:
        try:
            return grant.obtain(now)
        finally:
            rotation.end()  # whatever happened, no interruption stays deferred

    ref = stack.profile.stack(stack.key.organization, stack.key.stack)
    memory = None
    if cache_dir is not None:
        slot = FileSlot(fctl_failure_place(cache_dir, stack.root, stack.paths.folder), log=log)
        memory = failure_memory(
            (slot,),
            secret=lambda: _refresh_token_in(accesses_file),
            clock=clock,
            log=log,
            knobs=failures,
            owner=f"fctl {stack.key.profile} {stack.key.organization} {stack.key.stack}",
        )
    return Bound(
        stores=(folder.record(),),
        grant=replace(grant, obtain=obtain_guarded),
        stack_uri=ref.uri if ref is not None else None,
        name=str(stack.key),
        memory=memory,
    )


def bind_client(
    credentials: ClientCredentials,
    *,
    cache_dir: str,
    http: Http,
    discovery_cache: DiscoveryCache,
    clock: Callable[[], datetime],
    log: Callable[[str], None],
    lock_timeout: float,
    shared: Store | None = None,
    shared_failures: FailureSlot | None = None,
    failures: FailureKnobs | None = None,
) -> Bound:
    """A machine credential: the host's files, then `shared` if given, and its grant;
    its failures are remembered beside the token (`shared_failures` for the fleet),
    keyed by the secret's fingerprint."""

    def discover_stack(refresh: bool) -> Result[DiscoveryDocument, AcquireError]:
        found: Result[DiscoveryDocument, AcquireError] = discover(
            stack_discovery(credentials.stack_uri),
            http=http,
            cache=discovery_cache,
            clock=clock,
            refresh=refresh,
        )
        return found

    local = client_store(cache_dir, credentials, log=log, lock_timeout=lock_timeout).record()
    effects = ClientEffects(
        log=log,
        discover_stack=discover_stack,
        post_token=lambda request: post_token(http, request),
    )
    key = client_key(credentials.stack_uri, credentials.client_id, credentials.scopes)
    host_slot = FileSlot(
        Place(root=cache_dir, parts=(*client_paths(key).folder, FAILURE_FILE)), log=log
    )
    slots: tuple[FailureSlot, ...] = (
        (host_slot,) if shared_failures is None else (host_slot, shared_failures)
    )
    secret = credentials.client_secret
    return Bound(
        stores=(local,) if shared is None else (local, shared),
        grant=client_credentials_grant(credentials, effects),
        stack_uri=credentials.stack_uri,
        name=f"client {credentials.client_id} at {credentials.stack_uri}",
        memory=failure_memory(
            slots,
            secret=lambda: secret,
            clock=clock,
            log=log,
            knobs=failures,
            owner=f"client {credentials.client_id} {credentials.stack_uri}",
        ),
    )


@dataclass(slots=True)
class _HeldAccess:
    """The stack access token a service keeps itself: held here, never on disk."""

    access: StackAccess
    on_refresh: Callable[[str, str | None], None] | None

    def read(self) -> Result[StackAccess, AcquireError]:
        return Success(self.access)

    def write(self, access: StackAccess) -> Result[None, AcquireError]:
        self.access = access
        if self.on_refresh is not None:
            self.on_refresh(access.token, access.refresh_token)
        return Success(None)


def bind_credentials(
    *,
    stack_uri: str,
    access_token: str,
    refresh_token: str | None,
    membership_uri: str | None,
    on_refresh: Callable[[str, str | None], None] | None,
    settings: Settings,
    http: Http,
    discovery_cache: DiscoveryCache,
    clock: Callable[[], datetime],
    log: Callable[[str], None],
) -> Bound:
    """A stack access token a service keeps itself: the fctl grant over it, no store."""
    held = _HeldAccess(
        StackAccess(
            token=access_token, refresh_token=refresh_token, expiry=jwt_expiry(access_token)
        ),
        on_refresh,
    )
    effects = FctlEffects(
        log=log,
        read_access=held.read,
        write_access=held.write,
        discover_stack=lambda refresh: discover(
            stack_discovery(stack_uri),
            http=http,
            cache=discovery_cache,
            clock=clock,
            refresh=refresh,
        ),
        exchange=lambda request: post_token(http, request),
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
            clock=clock,
        ),
        refresh=lambda request: post_token(http, request),
    )
    return Bound(
        stores=(),
        grant=fctl_grant(effects, settings=settings),
        stack_uri=stack_uri,
        name=safe_url(stack_uri),  # the repr's: never a URL's credentials
    )


def _stray_rotation(answer: Result[TokenResponse, AcquireError]) -> bool:
    failure = answer.failure() if isinstance(answer, Failure) else None
    return isinstance(failure, RemoteError) and failure.rotated_refresh_token is not None


def _refresh_token_in(accesses_file: Place) -> str | None:
    found = read_private(accesses_file)
    if isinstance(found, str):
        return None
    return decode_accesses(found[0]).map(lambda access: access.refresh_token).value_or(None)
