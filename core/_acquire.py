"""The acquisition workflow (DESIGN §1), written against injected effects.

Theory of operation
-------------------
    1. TTL 0: no cache, no lock -> straight to the network (step 3's body).
    2. Disk entry usable at `now` -> return it. No other effect is called.
    3. Under the stack's lock, at a new `now` (the wait may have been long):
       re-read the cache (another process may have filled it), then
       a. refresh the stack access token if it is not fresh: lazy membership
          discovery, refresh grant (a gone endpoint is rediscovered once), and
          the rotated tokens written to `accesses.json` before anything else
          can fail;
       b. stack discovery, then the RFC 7523 exchange. A token endpoint that
          is gone (404, refusing connections) is rediscovered once; an
          exchange refused with `invalid_grant` although our clock thinks the
          assertion fresh leads to one refresh and one retry;
       c. write the cache entry, best effort: a failed write is logged, never
          fails the call.

Effects are plain callables returning `Result`s; core never performs I/O.
Every decision takes one `now`: the one given, or the one read after the lock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from returns.result import Failure, Result, Success

from ._codecs import claims_expiry, jwt_claims
from ._decisions import is_fresh, judge_disk_entry, needs_refresh
from ._errors import AcquireError, AuthRequired, LocalError, OAuthError, RemoteError
from ._profile import LOGIN_HINT
from ._requests import exchange_request, refresh_request
from ._types import (
    CachedToken,
    DiscoveryDocument,
    Settings,
    StackAccess,
    TokenRequest,
    TokenResponse,
)

__all__ = [
    "REFRESH_REJECTIONS",
    "CacheRead",
    "Effects",
    "acquire",
    "refreshed_access",
]

# RFC 6749 §5.2 codes that mean the refresh token is no good: log in again.
REFRESH_REJECTIONS = frozenset({"invalid_grant", "invalid_token", "invalid_request"})
# Codes with which a stack refuses the exchange for good (after the one retry).
EXCHANGE_REJECTIONS = frozenset({"invalid_grant", "access_denied", "unauthorized_client"})

CacheRead = tuple[CachedToken, datetime]  # the entry and its file's mtime


@dataclass(frozen=True, slots=True, kw_only=True)
class Effects:
    """What the workflow may do to the world, each returning a `Result`.

    `read_cache` fails with the reason it is a miss. `locked(body)` runs
    `body` while holding the stack's cross-process lock. `discover_stack(True)`
    and `discover_membership(True)` drop a cached document and ask the network
    again. `discover_membership` is memoised by the shell (lazy, single-flight,
    failures not kept).
    """

    clock: Callable[[], datetime]
    log: Callable[[str], None]
    read_cache: Callable[[], Result[CacheRead, str]]
    write_cache: Callable[[CachedToken], Result[None, LocalError]]
    locked: Callable[
        [Callable[[], Result[CachedToken, AcquireError]]], Result[CachedToken, AcquireError]
    ]
    read_access: Callable[[], Result[StackAccess, AcquireError]]
    write_access: Callable[[StackAccess], Result[None, AcquireError]]
    discover_stack: Callable[[bool], Result[DiscoveryDocument, AcquireError]]
    exchange: Callable[[TokenRequest], Result[TokenResponse, AcquireError]]
    discover_membership: Callable[[bool], Result[DiscoveryDocument, AcquireError]]
    refresh: Callable[[TokenRequest], Result[TokenResponse, AcquireError]]


def acquire(
    *, settings: Settings, now: datetime, effects: Effects
) -> Result[CachedToken, AcquireError]:
    """Get a stack API token: from the disk cache if usable, else from the network."""
    if not settings.disk_cache_enabled:
        effects.log("cache disabled (TTL 0)")
        return _from_network(settings=settings, now=now, effects=effects)
    cached = _usable_entry(settings=settings, now=now, effects=effects)
    if cached is not None:
        return Success(cached)
    return effects.locked(lambda: _under_lock(settings=settings, effects=effects))


def _usable_entry(*, settings: Settings, now: datetime, effects: Effects) -> CachedToken | None:
    match effects.read_cache():
        case Success((entry, mtime)):
            verdict = judge_disk_entry(entry, file_mtime=mtime, settings=settings, now=now)
            effects.log(f"cache {'hit' if verdict.usable else 'miss'}: {verdict.value}")
            return entry if verdict.usable else None
        case Failure(reason):
            effects.log(f"cache miss: {reason}")
    return None


def _under_lock(*, settings: Settings, effects: Effects) -> Result[CachedToken, AcquireError]:
    now = effects.clock()
    cached = _usable_entry(settings=settings, now=now, effects=effects)
    if cached is not None:
        return Success(cached)
    return _from_network(settings=settings, now=now, effects=effects).map(
        lambda token: _store(token, settings=settings, now=now, effects=effects)
    )


def _store(
    token: CachedToken, *, settings: Settings, now: datetime, effects: Effects
) -> CachedToken:
    if not is_fresh(token.expiry, settings=settings, now=now):
        effects.log("not caching: the issued token has no expiry or expires within the grace")
        return token
    entry = replace(token, saved_at=now)
    match effects.write_cache(entry):
        case Failure(error):
            effects.log(f"cache write failed: {error.message}")
    return entry


def _from_network(
    *, settings: Settings, now: datetime, effects: Effects
) -> Result[CachedToken, AcquireError]:
    def with_access(access: StackAccess) -> Result[CachedToken, AcquireError]:
        if needs_refresh(access, settings=settings, now=now):
            effects.log("stack access token needs a refresh")
            return _refresh(access, settings=settings, now=now, effects=effects).bind(
                lambda fresh: _exchange(fresh, effects=effects, may_refresh=False)
            )
        return _exchange(access, effects=effects, may_refresh=True).lash(
            lambda error: _refresh_and_retry(
                error, access, settings=settings, now=now, effects=effects
            )
        )

    return effects.read_access().bind(with_access)


def _refresh_and_retry(
    error: AcquireError,
    access: StackAccess,
    *,
    settings: Settings,
    now: datetime,
    effects: Effects,
) -> Result[CachedToken, AcquireError]:
    # RFC 7523 §3.1: the stack refused an assertion our clock thinks fresh
    # (revoked, or clocks apart). Refresh once and retry once, no more.
    if not (isinstance(error, OAuthError) and error.error == "invalid_grant"):
        return Failure(_exchange_failure(error))
    effects.log("exchange refused with invalid_grant: refreshing once and retrying")
    return _refresh(access, settings=settings, now=now, effects=effects).bind(
        lambda fresh: _exchange(fresh, effects=effects, may_refresh=False)
    )


def _exchange(
    access: StackAccess, *, effects: Effects, may_refresh: bool
) -> Result[CachedToken, AcquireError]:
    def exchange_at(document: DiscoveryDocument) -> Result[TokenResponse, AcquireError]:
        return effects.exchange(exchange_request(document.token_endpoint, access.token))

    def rediscover(error: AcquireError) -> Result[TokenResponse, AcquireError]:
        if isinstance(error, RemoteError) and error.endpoint_gone:
            effects.log("token endpoint gone: dropping the cached discovery document")
            return effects.discover_stack(True).bind(exchange_at)
        return Failure(error)

    # Only the exchange's own failures say the endpoint is gone, not discovery's.
    result = (
        effects.discover_stack(False)
        .bind(lambda document: exchange_at(document).lash(rediscover))
        .map(_as_token)
    )
    return result if may_refresh else result.alt(_exchange_failure)


def _as_token(response: TokenResponse) -> CachedToken:
    return CachedToken(
        access_token=response.access_token,
        token_type=response.token_type,
        expiry=response.expiry,
    )


def _exchange_failure(error: AcquireError) -> AcquireError:
    if isinstance(error, OAuthError) and error.error in EXCHANGE_REJECTIONS:
        return AuthRequired(
            message=f"the stack refused the access token ({error.error}); {LOGIN_HINT}"
        )
    return error


def _refresh(
    access: StackAccess, *, settings: Settings, now: datetime, effects: Effects
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
            return _rotated_elsewhere(access, settings=settings, now=now, effects=effects)
        if isinstance(error, RemoteError) and error.rotated_refresh_token is not None:
            return _keep_stray_rotation(access, error, effects=effects)
        return Failure(error)

    def persist(outcome: TokenResponse | StackAccess) -> Result[StackAccess, AcquireError]:
        if isinstance(outcome, StackAccess):
            return Success(outcome)  # another program refreshed it already: nothing to write
        fresh = refreshed_access(access, outcome)
        return effects.write_access(fresh).alt(_lost_rotation).map(lambda _: fresh)

    def refresh_at(document: DiscoveryDocument) -> Result[TokenResponse, AcquireError]:
        return effects.refresh(refresh_request(document.token_endpoint, refresh_token))

    def rediscover(error: AcquireError) -> Result[TokenResponse, AcquireError]:
        # 404 or refused connections: the refresh token was not spent, so it is
        # safe to ask the rediscovered endpoint once (DESIGN §3.4).
        if isinstance(error, RemoteError) and error.endpoint_gone:
            effects.log("membership token endpoint gone: dropping its discovery document")
            return effects.discover_membership(True).bind(refresh_at)
        return Failure(error)

    refreshed: Result[TokenResponse | StackAccess, AcquireError] = effects.discover_membership(
        False
    ).bind(lambda document: refresh_at(document).lash(rediscover))
    return refreshed.lash(rescue).bind(persist)


def _keep_stray_rotation(
    access: StackAccess, error: RemoteError, *, effects: Effects
) -> Result[TokenResponse | StackAccess, AcquireError]:
    """The IdP rotated the refresh token in an answer we cannot otherwise use:
    the old one is spent, so save the new one, then report the failure."""
    effects.log("refresh answer unusable but it rotated the refresh token: saving it")
    kept = replace(access, refresh_token=error.rotated_refresh_token)
    reported = replace(error, rotated_refresh_token=None)
    saved = effects.write_access(kept)
    return Failure(reported if isinstance(saved, Success) else _lost_rotation(saved.failure()))


def _rotated_elsewhere(
    used: StackAccess, *, settings: Settings, now: datetime, effects: Effects
) -> Result[TokenResponse | StackAccess, AcquireError]:
    """fctl takes no lock: it may have rotated the refresh token under us. If
    `accesses.json` now holds a different, fresh token, use it (no new login)."""
    rejected = AuthRequired(message=f"the refresh token was rejected; {LOGIN_HINT}")
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
    token keeps the old one (RFC 6749 §6); the file's other keys are kept.

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
