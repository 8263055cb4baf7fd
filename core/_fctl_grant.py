"""The fctl stack grant (docs/design.md §1 step 3): refresh if needed, then RFC 7523.

Theory of operation
-------------------
    a. Read the stack access token (`accesses.json`). If it is not fresh,
       refresh it at the membership IdP: lazy membership discovery, the
       refresh grant, and the rotated tokens written back *before anything
       else can fail*. A refresh token is spent at most once by a request the
       IdP received: only an endpoint that is gone (it never saw the request)
       is tried again after rediscovery. It is spent only when its rotation
       can be saved (`writable`: a read-only folder or a full disk would lose
       it). A refresh rejected as spent may mean that a program taking no lock
       (fctl) rotated it a moment ago: the grant gives that write time to land
       (`await_rotation`) and takes the token it wrote if fresh.
    b. Stack discovery, then the JWT-bearer exchange at its token endpoint.
       An exchange refused with `invalid_grant` although our clock thinks the
       assertion fresh leads to one refresh and one retry (RFC 7523 section 3.1).

The cache rules (memory, stores, lock, TTL) are the workflow's, not this
grant's: this module only knows how to get a new token.
"""

from __future__ import annotations

from returns.result import Failure, Success

from ._cache import Grant, is_fresh, needs_refresh
from ._codecs import claims_expiry, jwt_claims
from ._endpoint import at_token_endpoint
from ._errors import AuthRequired, LocalError, OAuthError, RemoteError
from ._profile import LOGIN_HINT
from ._record import Record, replace
from ._requests import exchange_request, refresh_request
from ._types import CachedToken, StackAccess

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from returns.result import Result

    from ._errors import AcquireError
    from ._types import DiscoveryDocument, Settings, TokenRequest, TokenResponse

__all__ = [
    "ASSERTION_REFUSALS",
    "EXCHANGE_REJECTIONS",
    "REFRESH_REJECTIONS",
    "FctlEffects",
    "fctl_grant",
    "refreshed_access",
]

# RFC 6749 section 5.2 codes that mean the refresh token is no good: log in again.
REFRESH_REJECTIONS = frozenset({"invalid_grant", "invalid_token", "invalid_request"})
# How a stack refuses an assertion (worth one refresh and one retry): RFC 7523
# §3.1's `invalid_grant`, and `server_error`, which Formance's auth service
# (zitadel's op, pkg/op/error.go) answers with 400 for an expired, foreign or
# badly signed assertion.
ASSERTION_REFUSALS = frozenset({"invalid_grant", "server_error"})
# Codes with which a stack refuses the exchange for good (besides a refused
# assertion, after its one retry).
EXCHANGE_REJECTIONS = frozenset({"access_denied", "unauthorized_client"})


class FctlEffects(Record):
    """What the fctl grant may do to the world, each returning a `Result`.

    `discover_stack(True)` and `discover_membership(True)` drop a cached
    document and ask the network again. `discover_membership` is memoised by
    the shell (lazy, single-flight, failures not kept: docs/design.md §6).
    """

    log: Callable[[str], None]
    read_access: Callable[[], Result[StackAccess, AcquireError]]
    write_access: Callable[[StackAccess], Result[None, AcquireError]]
    discover_stack: Callable[[bool], Result[DiscoveryDocument, AcquireError]]
    exchange: Callable[[TokenRequest], Result[TokenResponse, AcquireError]]
    discover_membership: Callable[[bool], Result[DiscoveryDocument, AcquireError]]
    refresh: Callable[[TokenRequest], Result[TokenResponse, AcquireError]]
    # Whether a rotated refresh token could be saved now (a probe write).
    writable: Callable[[], Result[None, AcquireError]] = lambda: Success(None)
    # Give a concurrent writer's rotation of the refresh token sent time to land.
    await_rotation: Callable[[str], None] = lambda _sent: None


def fctl_grant(effects: FctlEffects, *, settings: Settings) -> Grant:
    """The grant of a stack an fctl profile knows."""
    return Grant(
        name="stack access token -> RFC 7523 exchange",
        obtain=lambda now: _obtain(effects, settings=settings, now=now),
    )


def _obtain(
    effects: FctlEffects, *, settings: Settings, now: datetime
) -> Result[CachedToken, AcquireError]:
    def with_access(access: StackAccess) -> Result[CachedToken, AcquireError]:
        if needs_refresh(access, settings=settings, now=now):
            effects.log("stack access token needs a refresh")
            return _refresh(access, effects=effects, settings=settings, now=now).bind(
                lambda fresh: _exchange(fresh, effects=effects).alt(_exchange_failure)
            )
        return _exchange(access, effects=effects).lash(
            lambda error: _refresh_and_retry(
                error, access, effects=effects, settings=settings, now=now
            )
        )

    return effects.read_access().bind(with_access)


def _refresh_and_retry(
    error: AcquireError,
    access: StackAccess,
    *,
    effects: FctlEffects,
    settings: Settings,
    now: datetime,
) -> Result[CachedToken, AcquireError]:
    # RFC 7523 section 3.1: the stack refused an assertion our clock thinks fresh
    # (revoked, or clocks apart). Refresh once and retry once, no more.
    if not (isinstance(error, OAuthError) and _refused_assertion(error)):
        return Failure(_exchange_failure(error))
    effects.log(f"exchange refused ({error.error}): refreshing once and retrying")
    return _refresh(access, effects=effects, settings=settings, now=now).bind(
        lambda fresh: _exchange(fresh, effects=effects).alt(_exchange_failure)
    )


def _exchange(access: StackAccess, *, effects: FctlEffects) -> Result[CachedToken, AcquireError]:
    return at_token_endpoint(
        lambda document: exchange_request(document.token_endpoint, access.token),
        discover=effects.discover_stack,
        send=effects.exchange,
        log=effects.log,
        who="stack",
    ).map(CachedToken.issued)


def _refused_assertion(error: OAuthError) -> bool:
    return error.error in ASSERTION_REFUSALS and (
        error.error != "server_error" or error.status_code == 400
    )


def _exchange_failure(error: AcquireError) -> AcquireError:
    if isinstance(error, OAuthError) and (
        _refused_assertion(error) or error.error in EXCHANGE_REJECTIONS
    ):
        return AuthRequired(
            message=f"the stack refused the access token ({error.error}); {LOGIN_HINT}"
        )
    return error


def _refresh(
    access: StackAccess, *, effects: FctlEffects, settings: Settings, now: datetime
) -> Result[StackAccess, AcquireError]:
    refresh_token = access.refresh_token
    if refresh_token is None:
        return Failure(
            AuthRequired(
                message=f"the stack access token expired and has no refresh token; {LOGIN_HINT}"
            )
        )

    def rescue(error: AcquireError) -> Result[TokenResponse | StackAccess, AcquireError]:
        if isinstance(error, OAuthError) and error.error in REFRESH_REJECTIONS:
            effects.await_rotation(refresh_token)
            return _rotated_elsewhere(access, effects=effects, settings=settings, now=now)
        if isinstance(error, RemoteError) and error.rotated_refresh_token is not None:
            return _keep_stray_rotation(access, error, effects=effects)
        return Failure(error)

    def persist(outcome: TokenResponse | StackAccess) -> Result[StackAccess, AcquireError]:
        if isinstance(outcome, StackAccess):
            return Success(outcome)  # another program refreshed it already: nothing to write
        fresh = refreshed_access(access, outcome)
        return effects.write_access(fresh).alt(_lost_rotation).map(lambda _: fresh)

    refreshed: Result[TokenResponse | StackAccess, AcquireError] = at_token_endpoint(
        lambda document: refresh_request(document.token_endpoint, refresh_token),
        discover=effects.discover_membership,
        send=lambda request: _spend(request, effects=effects),
        log=effects.log,
        who="membership",
    )
    return refreshed.lash(rescue).bind(persist)


def _spend(request: TokenRequest, *, effects: FctlEffects) -> Result[TokenResponse, AcquireError]:
    """Send a refresh request only if the rotation it brings could be saved."""
    writable: Result[None, AcquireError] = effects.writable().alt(
        lambda error: LocalError(message=f"not refreshing the stack access token: {error.message}")
    )
    return writable.bind(lambda _: effects.refresh(request))


def _keep_stray_rotation(
    access: StackAccess, error: RemoteError, *, effects: FctlEffects
) -> Result[TokenResponse | StackAccess, AcquireError]:
    """The IdP rotated the refresh token in an answer we cannot otherwise use:
    the old one is spent, so save the new one, then report the failure."""
    effects.log("refresh answer unusable but it rotated the refresh token: saving it")
    kept = replace(access, refresh_token=error.rotated_refresh_token)
    reported = replace(error, rotated_refresh_token=None)
    saved = effects.write_access(kept)
    return Failure(reported if isinstance(saved, Success) else _lost_rotation(saved.failure()))


def _rotated_elsewhere(
    used: StackAccess, *, effects: FctlEffects, settings: Settings, now: datetime
) -> Result[TokenResponse | StackAccess, AcquireError]:
    """fctl takes no lock: it may have rotated the refresh token under us. If
    `accesses.json` now holds a different, fresh token, use it (no new login)."""
    rejected = AuthRequired(message=f"the refresh token was rejected; {LOGIN_HINT}", remember=True)
    match effects.read_access():
        case Success(current) if current.token != used.token and is_fresh(
            current.expiry, settings=settings, now=now
        ):
            effects.log("refresh rejected, but accesses.json was refreshed by another program")
            return Success(current)
    return Failure(rejected)


def _lost_rotation(error: AcquireError) -> AcquireError:
    return LocalError(
        message=f"could not save the refreshed stack access token ({error.message}); "
        "the previous refresh token may be spent, so the next run may need a new login"
    )


def refreshed_access(old: StackAccess, response: TokenResponse) -> StackAccess:
    """The stack access token after a refresh. A response without a new refresh
    token keeps the old one (RFC 6749 section 6); the file's other keys are kept.

    `claims.exp` is what both fctl and we read for the expiry, so when the new
    token carries none (opaque, or a JWT without `exp`) the one derived from
    `expires_in` is written there.
    """
    own_claims = jwt_claims(response.access_token)
    # An opaque new token keeps the file's other claims, but never the old `exp`.
    claims = dict(own_claims if own_claims is not None else old.claims)
    expiry = (claims_expiry(own_claims) if own_claims is not None else None) or response.expiry
    if expiry is None:
        claims.pop("exp", None)
    else:
        claims["exp"] = int(expiry.timestamp())
    return StackAccess(
        token=response.access_token,
        refresh_token=response.refresh_token or old.refresh_token,
        expiry=expiry,
        claims=claims,
        extra=old.extra,
    )
