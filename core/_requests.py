"""The OAuth/OIDC messages: URLs and forms to send, and how to read the answers.

Builders return plain values the shell sends as they are; interpreters turn a
status code and a body into a `Result`. The transport rules that are decisions
(which URLs may be used, which failures are retried and after how long, how
long a discovery document may be kept) live here too.
"""

from __future__ import annotations

import re

from returns.result import Failure, Result

from ._codecs import decode_discovery, decode_error_response, decode_token_response
from ._errors import OAuthError, RemoteError
from ._record import Record
from ._time import datetime, timedelta
from ._types import DiscoveryDocument, TokenRequest, TokenResponse
from ._urls import check_endpoint_url, safe_url
from ._wire import RefreshTokenWire, read_object, structure

__all__ = [
    "DEFAULT_DISCOVERY_MAX_AGE",
    "NOT_ACTED_ON_STATUSES",
    "JWT_BEARER_GRANT",
    "RETRYABLE_STATUSES",
    "EXCHANGE_SCOPE",
    "FCTL_CLIENT_ID",
    "CLIENT_CREDENTIALS_GRANT",
    "RetryPolicy",
    "client_auth_method",
    "client_credentials_request",
    "discovery_max_age",
    "exchange_request",
    "interpret_discovery",
    "interpret_token_response",
    "membership_discovery",
    "refresh_request",
    "retry_delay",
    "stack_discovery",
    "DiscoveryTarget",
]

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"  # RFC 7523 section 2.1
EXCHANGE_SCOPE = "openid email"
FCTL_CLIENT_ID = "fctl"
CLIENT_CREDENTIALS_GRANT = "client_credentials"  # RFC 6749 section 4.4
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
# Answers that say the server did not act on the request (RFC 6585 section 4, RFC 9110
# section 15.6.4): even a request that spends something on receipt may be sent again.
# A 502/504 comes from a gateway whose upstream may have acted on it.
NOT_ACTED_ON_STATUSES = frozenset({429, 503})
DEFAULT_DISCOVERY_MAX_AGE = timedelta(hours=1)


class DiscoveryTarget(Record):
    """Where to fetch a discovery document, and the issuer it must name."""

    url: str
    issuer: str


def stack_discovery(stack_uri: str) -> DiscoveryTarget:
    """`{stackURI}/api/auth/.well-known/openid-configuration`; issuer `{stackURI}/api/auth`."""
    issuer = stack_uri.rstrip("/") + "/api/auth"
    return DiscoveryTarget(url=issuer + "/.well-known/openid-configuration", issuer=issuer)


def membership_discovery(membership_uri: str) -> DiscoveryTarget:
    """`{membershipURI}/.well-known/openid-configuration`; issuer `{membershipURI}`."""
    issuer = membership_uri.rstrip("/")
    return DiscoveryTarget(url=issuer + "/.well-known/openid-configuration", issuer=issuer)


def exchange_request(token_endpoint: str, assertion: str) -> TokenRequest:
    """The RFC 7523 section 2.1 JWT-bearer grant; Formance stacks take no client authentication."""
    return TokenRequest(
        url=token_endpoint,
        form=(
            ("grant_type", JWT_BEARER_GRANT),
            ("assertion", assertion),
            ("scope", EXCHANGE_SCOPE),
        ),
        secrets=(assertion,),
    )


def refresh_request(token_endpoint: str, refresh_token: str) -> TokenRequest:
    """The RFC 6749 section 6 refresh grant, as fctl's public client sends it.

    Not replayable: the IdP rotates the refresh token on receipt, so once it
    may have received the request, sending it again can only be refused and
    would lose the rotated token the first answer carried."""
    return TokenRequest(
        url=token_endpoint,
        form=(
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", FCTL_CLIENT_ID),
        ),
        replayable=False,
        secrets=(refresh_token,),
    )


def client_auth_method(document: DiscoveryDocument) -> str:
    """`client_secret_basic` when the provider lists it or lists nothing (its
    RFC 8414 section 2 default), else `client_secret_post`."""
    methods = document.auth_methods
    if methods is None or "client_secret_basic" in methods:
        return "client_secret_basic"
    return "client_secret_post"


def client_credentials_request(
    document: DiscoveryDocument, *, client_id: str, client_secret: str, scopes: tuple[str, ...]
) -> TokenRequest:
    """The RFC 6749 section 4.4 client-credentials grant at the discovered token endpoint."""
    import base64
    from urllib.parse import quote

    form: tuple[tuple[str, str], ...] = (("grant_type", CLIENT_CREDENTIALS_GRANT),)
    if scopes:
        form += (("scope", " ".join(sorted(set(scopes)))),)
    if client_auth_method(document) == "client_secret_basic":
        # RFC 6749 section 2.3.1: each part form-urlencoded, then joined and base64-encoded.
        pair = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}"
        basic = "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")
        return TokenRequest(
            url=document.token_endpoint,
            form=form,
            headers=(("Authorization", basic),),
            secrets=(client_secret, basic),
        )
    return TokenRequest(
        url=document.token_endpoint,
        form=(*form, ("client_id", client_id), ("client_secret", client_secret)),
        secrets=(client_secret,),
    )


def interpret_discovery(
    status_code: int, body: bytes, *, target: DiscoveryTarget
) -> Result[DiscoveryDocument, RemoteError]:
    """Accept a discovery answer only if it is well-formed, names a usable token
    endpoint, and names the issuer it was fetched for (RFC 8414 section 3.3)."""
    where = safe_url(target.url)
    if status_code != 200:
        return Failure(
            RemoteError(
                message=f"discovery at {where} answered {status_code}",
                transient=status_code >= 500,
            )
        )
    decoded = decode_discovery(body).alt(
        lambda problem: RemoteError(message=f"discovery at {where} is invalid: {problem.message}")
    )
    return decoded.bind(lambda document: _check_discovered(document, target))


def _check_discovered(
    document: DiscoveryDocument, target: DiscoveryTarget
) -> Result[DiscoveryDocument, RemoteError]:
    if document.issuer is not None and document.issuer.rstrip("/") != target.issuer:
        return Failure(
            RemoteError(
                message=f"discovery at {safe_url(target.url)} names issuer "
                f"{safe_url(document.issuer)!r}, expected {safe_url(target.issuer)!r}"
            )
        )
    return check_endpoint_url(document.token_endpoint).map(lambda _: document)


def interpret_token_response(
    status_code: int, body: bytes, *, request: TokenRequest, sent_at: datetime
) -> Result[TokenResponse, RemoteError | OAuthError]:
    """A token endpoint's answer (RFC 6749 sec. 5.1 success, 5.2 error) or a protocol failure."""
    where = safe_url(request.url)
    if status_code == 200:
        return decode_token_response(body, sent_at=sent_at).alt(
            lambda problem: RemoteError(
                message=f"token endpoint {where} answered badly: {problem.message}",
                rotated_refresh_token=_stray_refresh_token(body),
            )
        )
    if status_code == 404:
        return Failure(
            RemoteError(message=f"token endpoint {where} answered 404", endpoint_gone=True)
        )
    # The secrets this request carried, should the server quote them back.
    oauth_error = decode_error_response(status_code, body, redact=request.secrets).value_or(None)
    if status_code in (400, 401) and oauth_error is not None:
        return Failure(oauth_error)
    return Failure(
        RemoteError(
            message=f"token endpoint {where} answered {status_code}",
            transient=status_code >= 500 or status_code == 429,
        )
    )


def _stray_refresh_token(body: bytes) -> str | None:
    # A 200 we cannot use may still carry a rotated refresh token (RFC 6749 section 6):
    # the old one is spent by now, so the caller must keep this one.
    read = read_object(body).bind(lambda document: structure(document, RefreshTokenWire))
    return read.map(lambda wire: wire.refresh_token or None).value_or(None)


class RetryPolicy(Record):
    """Bounded, jittered retries of transient failures (docs/design.md §5)."""

    attempts: int = 3
    base_delay: float = 0.2
    max_delay: float = 2.0
    retry_after_cap: float = 10.0


def retry_delay(
    policy: RetryPolicy,
    *,
    attempt: int,
    status_code: int | None,
    sent: bool,
    replayable: bool,
    retry_after: str | None,
    jitter: float,
) -> float | None:
    """Seconds to wait before attempt `attempt + 1`, or None not to retry.

    `status_code` None means the connection failed or timed out; `sent` False
    that the request never left (no connection was made). A request that is
    not `replayable` is retried only when the server cannot have acted on it.
    `jitter` is a number in [0, 1) the shell draws, so this stays pure.
    """
    if attempt + 1 >= policy.attempts:
        return None
    if status_code is not None and status_code not in RETRYABLE_STATUSES:
        return None
    if not replayable and sent and status_code not in NOT_ACTED_ON_STATUSES:
        return None
    if retry_after is not None and (seconds := _retry_after_seconds(retry_after)) is not None:
        return min(seconds, policy.retry_after_cap)
    backoff = min(policy.base_delay * 2.0**attempt, policy.max_delay)
    return backoff * (0.5 + jitter / 2)  # "equal jitter": never less than half the backoff


def _retry_after_seconds(value: str) -> float | None:
    # Only the delta-seconds form; an HTTP date would need the clock (RFC 9110 section 10.2.3).
    text = value.strip()
    return float(text) if text.isascii() and text.isdigit() and len(text) < 10 else None


_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*([^,]*)", re.ASCII | re.I)
_DELTA_SECONDS = re.compile(r"\"?(\d{1,10})\"?", re.ASCII)
_NO_STORE = re.compile(r"(?:^|,)\s*(?:no-store|no-cache)\s*(?:[,=]|$)", re.ASCII | re.I)


def discovery_max_age(cache_control: str | None) -> timedelta:
    """How long a discovery document may be kept (docs/design.md §3.4): `max-age`, 1 h
    without the header, nothing for `no-store`, `no-cache`, `max-age=0` or an invalid `max-age`."""
    if cache_control is None:
        return DEFAULT_DISCOVERY_MAX_AGE
    if _NO_STORE.search(cache_control):
        return timedelta(0)
    match = _MAX_AGE.search(cache_control)
    if match is None:
        return DEFAULT_DISCOVERY_MAX_AGE
    seconds = _DELTA_SECONDS.fullmatch(match.group(1).strip())
    # RFC 9111 section 4.2.1: an invalid max-age makes the response stale: keep nothing.
    return timedelta(seconds=int(seconds.group(1))) if seconds else timedelta(0)
