"""Wire formats of the cold path: `accesses.json`, OIDC discovery, token and error responses.

Each decoder reads its document through `_wire`'s converter into a wire type,
then maps it to the domain model (`_types.py`), checking what the wire type
cannot say (a token of VSCHAR characters). A JWT's claims are read without
verification by base64url and JSON alone: pyjwt (which pulls in cryptography)
is for verifying signatures, at login. Every decoder is total: bytes in, a
`Result` out, whatever the bytes are; a failure is a `ParseError` naming the field.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from returns.result import Failure, Result, Success

from ._cache_codec import is_token_text
from ._errors import OAuthError
from ._text import one_line
from ._text import redact as redact_pieces
from ._time import UTC, datetime, timedelta
from ._types import DiscoveryDocument, StackAccess, TokenResponse
from ._wire import (
    AccessesWire,
    DiscoveryCacheWire,
    DiscoveryWire,
    ErrorWire,
    JwksWire,
    ParseError,
    TokenWire,
    read_object,
    structure,
)

if TYPE_CHECKING:
    from ._types import JsonObject

__all__ = [
    "MAX_EXPIRES_IN",
    "claims_expiry",
    "decode_accesses",
    "decode_discovery",
    "decode_discovery_cache",
    "decode_error_response",
    "decode_jwks",
    "decode_token_response",
    "encode_accesses",
    "encode_discovery_cache",
    "jwt_claims",
    "jwt_expiry",
]

# Longer lifetimes are clamped: nothing we cache should outlive a year, and it
# keeps `sent_at + expires_in` far from datetime's range.
MAX_EXPIRES_IN = 366 * 24 * 3600

_ACCESSES_KEYS = frozenset({"token", "claims", "refreshToken"})


def decode_accesses(data: bytes) -> Result[StackAccess, ParseError]:
    """Decode `accesses.json`; unknown keys are kept in `extra` for the rewrite."""
    return read_object(data).bind(
        lambda document: structure(document, AccessesWire).bind(
            lambda wire: _stack_access(wire, document)
        )
    )


def _stack_access(wire: AccessesWire, document: dict[str, Any]) -> Result[StackAccess, ParseError]:
    if not wire.token:
        return Failure(ParseError(field="token", problem="is empty"))
    for field, text in (("token", wire.token), ("refreshToken", wire.refreshToken or "-")):
        if not is_token_text(text):
            return Failure(ParseError(field=field, problem="has characters no token has"))
    claims = wire.claims if wire.claims is not None else dict(jwt_claims(wire.token) or {})
    return Success(
        StackAccess(
            token=wire.token,
            refresh_token=wire.refreshToken or None,
            expiry=claims_expiry(claims),
            claims=claims,
            extra={key: value for key, value in document.items() if key not in _ACCESSES_KEYS},
        )
    )


def encode_accesses(access: StackAccess) -> bytes:
    """Encode `accesses.json` as fctl writes it, unknown keys carried through."""
    document: dict[str, Any] = dict(access.extra)
    document["token"] = access.token
    document["claims"] = dict(access.claims)
    if access.refresh_token is not None:
        document["refreshToken"] = access.refresh_token
    return json.dumps(document).encode("utf-8")


def decode_discovery(data: bytes) -> Result[DiscoveryDocument, ParseError]:
    """Decode an OpenID Provider configuration (RFC 8414 section 3.2)."""
    return (
        read_object(data)
        .bind(lambda document: structure(document, DiscoveryWire))
        .map(_discovery_document)
    )


def _discovery_document(wire: DiscoveryWire) -> DiscoveryDocument:
    return DiscoveryDocument(
        token_endpoint=wire.token_endpoint,
        issuer=wire.issuer,
        auth_methods=wire.token_endpoint_auth_methods_supported,
        device_authorization_endpoint=wire.device_authorization_endpoint,
        jwks_uri=wire.jwks_uri,
    )


def decode_token_response(data: bytes, *, sent_at: datetime) -> Result[TokenResponse, ParseError]:
    """Decode a successful token response (RFC 6749 section 5.1).

    The expiry counts `expires_in` from `sent_at`, the time taken before the
    request, so network latency can only make us think the token expires
    sooner than it does. Without `expires_in`, a JWT's `exp` is used; an opaque
    token with neither has no known expiry.
    """
    return read_object(data).bind(
        lambda document: structure(document, TokenWire).bind(
            lambda wire: _token_response(wire, sent_at=sent_at)
        )
    )


def _token_response(wire: TokenWire, *, sent_at: datetime) -> Result[TokenResponse, ParseError]:
    if not wire.access_token:
        return Failure(ParseError(field="access_token", problem="is empty"))
    if not is_token_text(wire.access_token):  # it could not be printed nor sent as is
        return Failure(
            ParseError(field="access_token", problem="has characters outside RFC 6749 VSCHAR")
        )
    if wire.expires_in is not None:
        lifetime = timedelta(seconds=min(wire.expires_in, MAX_EXPIRES_IN))
        expiry: datetime | None = sent_at + lifetime
    else:
        expiry = jwt_expiry(wire.access_token)
    return Success(
        TokenResponse(
            access_token=wire.access_token,
            token_type=wire.token_type,
            expiry=expiry,
            refresh_token=wire.refresh_token or None,
            id_token=wire.id_token or None,
        )
    )


def decode_error_response(
    status_code: int, data: bytes, *, redact: tuple[str, ...] = ()
) -> Result[OAuthError, ParseError]:
    """Decode an RFC 6749 section 5.2 error body. The `redact` texts (the secrets the
    request carried, which a server may quote back) are cut out of every field,
    and so is any long run of characters a field shares with one of them."""

    def oauth_error(wire: ErrorWire) -> OAuthError:
        error = redact_pieces(wire.error, redact)
        description = redact_pieces(wire.error_description or "", redact)
        return OAuthError(
            error=one_line(error),
            description=one_line(description) if description else None,
            status_code=status_code,
        )

    return read_object(data).bind(lambda document: structure(document, ErrorWire)).map(oauth_error)


def decode_jwks(data: bytes) -> Result[dict[str, Any], ParseError]:
    """A JSON Web Key Set (RFC 7517 section 5) as the object pyjwt's `PyJWKSet.from_dict` reads."""
    return read_object(data).bind(
        lambda document: structure(document, JwksWire).map(lambda _: document)
    )


def encode_discovery_cache(document: DiscoveryDocument, *, expires_at: datetime) -> bytes:
    """A discovery document as kept in the discovery cache, with its end of life."""
    from ._cache_codec import format_rfc3339

    return json.dumps(
        {
            "token_endpoint": document.token_endpoint,
            "issuer": document.issuer,
            "token_endpoint_auth_methods_supported": (
                list(document.auth_methods) if document.auth_methods is not None else None
            ),
            "device_authorization_endpoint": document.device_authorization_endpoint,
            "jwks_uri": document.jwks_uri,
            "expiresAt": format_rfc3339(expires_at),
        }
    ).encode("utf-8")


def decode_discovery_cache(
    data: bytes,
) -> Result[tuple[DiscoveryDocument, datetime], ParseError]:
    """Read back `encode_discovery_cache`'s output: the document and its end of life."""
    return (
        read_object(data)
        .bind(lambda document: structure(document, DiscoveryCacheWire))
        .map(lambda wire: (_discovery_document(wire), wire.expiresAt))
    )


def jwt_claims(token: str) -> JsonObject | None:
    """A JWT's payload, decoded WITHOUT verification (we only read `exp` and
    `organization_id`); None if `token` is not a JWS compact serialization.

    RFC 7515 section 7.1: three base64url parts; the header must be a JSON object too,
    as pyjwt's unverified decode also requires.
    """
    import binascii
    from base64 import urlsafe_b64decode

    parts = token.split(".")
    if len(parts) != 3 or not all(part.isascii() for part in parts):
        return None
    decoded: list[dict[str, Any]] = []
    for part in parts[:2]:
        try:
            raw = urlsafe_b64decode(part + "=" * (-len(part) % 4))
        except (binascii.Error, ValueError):
            return None
        match read_object(raw):
            case Success(document):
                decoded.append(document)
            case _:
                return None
    return decoded[1]


def jwt_expiry(token: str) -> datetime | None:
    """A JWT's `exp`, unverified; None for an opaque token or a JWT without `exp`."""
    claims = jwt_claims(token)
    return claims_expiry(claims) if claims is not None else None


def claims_expiry(claims: JsonObject) -> datetime | None:
    """`exp` (NumericDate seconds) as a time; None when absent or not a number."""
    exp = claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return None
    try:
        return datetime.fromtimestamp(exp, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None
