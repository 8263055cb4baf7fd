"""Wire formats of the cold path: `accesses.json`, OIDC discovery, token and error responses.

Fields are read strictly by `_wire.Fields` (`5` is never the string `"5"`).
A JWT's claims are read without verification by base64url and JSON alone:
pyjwt (which pulls in cryptography) is for verifying signatures, at login.
Every decoder is total: bytes in, a `Result` out, whatever the bytes are.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, TypeVar

from returns.result import Failure, Result, Success

from ._cache_codec import is_token_text
from ._errors import OAuthError
from ._json import json_object
from ._text import one_line
from ._text import redact as redact_pieces
from ._time import UTC, datetime, timedelta
from ._types import DiscoveryDocument, StackAccess, TokenResponse
from ._wire import Fields, read_fields

if TYPE_CHECKING:
    from ._types import JsonObject

__all__ = [
    "MAX_EXPIRES_IN",
    "claims_expiry",
    "decode_accesses",
    "decode_discovery",
    "decode_discovery_cache",
    "encode_discovery_cache",
    "decode_error_response",
    "decode_json_object",
    "decode_token_response",
    "encode_accesses",
    "jwt_claims",
    "jwt_expiry",
]

# Longer lifetimes are clamped: nothing we cache should outlive a year, and it
# keeps `sent_at + expires_in` far from datetime's range.
MAX_EXPIRES_IN = 366 * 24 * 3600


T = TypeVar("T")

_ACCESSES_KEYS = frozenset({"token", "claims", "refreshToken"})


def decode_json_object(data: bytes) -> Result[dict[str, Any], str]:
    """Parse bytes as a JSON object, or say why not."""
    document = json_object(data)
    return Failure(document) if isinstance(document, str) else Success(document)


def decode_accesses(data: bytes) -> Result[StackAccess, str]:
    """Decode `accesses.json`; unknown keys are kept in `extra` for the rewrite."""
    return decode_json_object(data).bind(_accesses_from)


def _accesses_from(document: dict[str, Any]) -> Result[StackAccess, str]:
    def build(fields: Fields) -> StackAccess | str:
        token = fields.text("token")
        refresh_token = fields.optional_text("refreshToken")
        if not token:
            return "token is empty"
        if not is_token_text(token) or not is_token_text(refresh_token or "-"):
            return "token or refreshToken has characters no token has"
        claims = fields.optional_object("claims")
        if claims is None:
            claims = dict(jwt_claims(token) or {})
        return StackAccess(
            token=token,
            refresh_token=refresh_token or None,
            expiry=claims_expiry(claims),
            claims=claims,
            extra={key: value for key, value in document.items() if key not in _ACCESSES_KEYS},
        )

    return _result(read_fields(document, build))


def _result(decoded: T | str) -> Result[T, str]:
    return Failure(decoded) if isinstance(decoded, str) else Success(decoded)


def encode_accesses(access: StackAccess) -> bytes:
    """Encode `accesses.json` as fctl writes it, unknown keys carried through."""
    document: dict[str, Any] = dict(access.extra)
    document["token"] = access.token
    document["claims"] = dict(access.claims)
    if access.refresh_token is not None:
        document["refreshToken"] = access.refresh_token
    return json.dumps(document).encode("utf-8")


def decode_discovery(data: bytes) -> Result[DiscoveryDocument, str]:
    """Decode an OpenID Provider configuration (RFC 8414 §3.2)."""

    def build(fields: Fields) -> DiscoveryDocument:
        return DiscoveryDocument(
            token_endpoint=fields.text("token_endpoint"),
            issuer=fields.optional_text("issuer"),
            auth_methods=fields.optional_texts("token_endpoint_auth_methods_supported"),
            device_authorization_endpoint=fields.optional_text("device_authorization_endpoint"),
            jwks_uri=fields.optional_text("jwks_uri"),
        )

    return decode_json_object(data).bind(lambda document: _result(read_fields(document, build)))


def decode_token_response(data: bytes, *, sent_at: datetime) -> Result[TokenResponse, str]:
    """Decode a successful token response (RFC 6749 §5.1).

    The expiry counts `expires_in` from `sent_at`, the time taken before the
    request, so network latency can only make us think the token expires
    sooner than it does. Without `expires_in`, a JWT's `exp` is used; an opaque
    token with neither has no known expiry.
    """

    def build(fields: Fields) -> TokenResponse | str:
        access_token = fields.text("access_token")
        token_type = fields.text("token_type")
        refresh_token = fields.optional_text("refresh_token")
        id_token = fields.optional_text("id_token")
        if not access_token:
            return "access_token is empty"
        if not is_token_text(access_token):  # it could not be printed nor sent as is
            return "access_token has characters outside RFC 6749 VSCHAR"
        # RFC 6749 says a number; some servers send "3600" or 3599.5.
        lifetime = _lifetime_seconds(fields.raw("expires_in"))
        if isinstance(lifetime, str):
            return lifetime
        if lifetime is not None:
            expiry: datetime | None = sent_at + timedelta(seconds=min(lifetime, MAX_EXPIRES_IN))
        else:
            expiry = jwt_expiry(access_token)
        return TokenResponse(
            access_token=access_token,
            token_type=token_type,
            expiry=expiry,
            refresh_token=refresh_token or None,
            id_token=id_token or None,
        )

    return decode_json_object(data).bind(lambda document: _result(read_fields(document, build)))


def _lifetime_seconds(expires_in: Any) -> int | str | None:
    """`expires_in` as whole seconds (rounded down), None when absent, else why not."""
    if expires_in is None:
        return None
    if isinstance(expires_in, str) and expires_in.isascii() and expires_in.isdigit():
        expires_in = int(expires_in[:12])  # more digits would be clamped anyway
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
        return "expires_in is not a number"
    if not 0 <= expires_in < float("inf"):
        return "expires_in is negative or not finite"
    return int(expires_in)


def decode_error_response(
    status_code: int, data: bytes, *, redact: tuple[str, ...] = ()
) -> Result[OAuthError, str]:
    """Decode an RFC 6749 §5.2 error body. The `redact` texts (the secrets the
    request carried, which a server may quote back) are cut out of every field,
    and so is any long run of characters a field shares with one of them."""

    def build(fields: Fields) -> OAuthError:
        error = redact_pieces(fields.text("error"), redact)
        description = redact_pieces(fields.optional_text("error_description") or "", redact)
        return OAuthError(
            error=one_line(error),
            description=one_line(description) if description else None,
            status_code=status_code,
        )

    return decode_json_object(data).bind(lambda document: _result(read_fields(document, build)))


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


def decode_discovery_cache(data: bytes) -> Result[tuple[DiscoveryDocument, datetime], str]:
    """Read back `encode_discovery_cache`'s output: the document and its end of life."""
    from ._cache_codec import parse_rfc3339

    def from_document(document: dict[str, Any]) -> Result[tuple[DiscoveryDocument, datetime], str]:
        expires_at = document.get("expiresAt")
        if not isinstance(expires_at, str):
            return Failure("expiresAt missing or not a string")
        moment = parse_rfc3339(expires_at)
        if isinstance(moment, str):
            return Failure(moment)
        return decode_discovery(data).map(lambda found: (found, moment))

    return decode_json_object(data).bind(from_document)


def jwt_claims(token: str) -> JsonObject | None:
    """A JWT's payload, decoded WITHOUT verification (we only read `exp` and
    `organization_id`); None if `token` is not a JWS compact serialization.

    RFC 7515 §7.1: three base64url parts; the header must be a JSON object too,
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
        document = json_object(raw)
        if isinstance(document, str):
            return None
        decoded.append(document)
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
