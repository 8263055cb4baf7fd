"""A login's ID token verified with pyjwt against the IdP's JWKS (docs/design.md §13):
the signature by a key of the set (the header's `kid`, an asymmetric algorithm),
`iss` = the issuer, `aud` contains `fctl`, `exp` not passed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from returns.result import Failure, Result, Success
from stacktoken.core._codecs import decode_jwks
from stacktoken.core._errors import AcquireError, AuthRequired, RemoteError
from stacktoken.core._profile import LOGIN_HINT
from stacktoken.core._urls import safe_url

__all__ = ["verified_id_token"]

_ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512")


def verified_id_token(
    id_token: str, jwks: bytes, issuer: str, jwks_uri: str
) -> Result[Mapping[str, Any], AcquireError]:
    import jwt

    def refused(reason: str) -> Result[Mapping[str, Any], AcquireError]:
        return Failure(AuthRequired(message=f"the ID token was refused ({reason}); {LOGIN_HINT}"))

    match decode_jwks(jwks):
        case Failure(problem):
            return Failure(RemoteError(message=f"JWKS at {safe_url(jwks_uri)}: {problem}"))
        case Success(document):
            pass
    try:
        header = jwt.get_unverified_header(id_token)
        key_set = jwt.PyJWKSet.from_dict(document)
    except jwt.PyJWTError as error:
        return refused(type(error).__name__)
    kid = header.get("kid")
    keys = [key for key in key_set.keys if kid is None or key.key_id == kid]
    algorithm = header.get("alg")
    if not keys or algorithm not in _ALGORITHMS:
        return refused("no key of the IdP's JWKS signed it")
    try:
        claims: dict[str, Any] = jwt.decode(
            id_token,
            keys[0].key,
            algorithms=[algorithm],
            audience="fctl",
            issuer=issuer,
            options={"require": ["exp", "iss", "aud"]},
        )
    except jwt.PyJWTError as error:
        return refused(_reason(error))
    return Success(claims)


def _reason(error: Exception) -> str:
    import jwt

    reasons = {
        jwt.InvalidSignatureError: "bad signature",
        jwt.ExpiredSignatureError: "expired",
        jwt.InvalidIssuerError: "wrong issuer",
        jwt.InvalidAudienceError: "wrong audience",
    }
    for kind, reason in reasons.items():
        if isinstance(error, kind):
            return reason
    return type(error).__name__
