"""ID token forgeries a login must refuse (docs/design.md §13): the review's attacks,
each against `verified_id_token` with the IdP's real JWKS (an RSA key)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from returns.result import Failure, Success
from stacktoken.shell._id_token import verified_id_token

ISSUER = "http://127.0.0.1:1/api"
JWKS_URI = f"{ISSUER}/keys"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}


JWKS = json.dumps({"keys": [_jwk(KEY, "idp-key")]}).encode()


def _claims(**changes: object) -> dict[str, object]:
    now = int(time.time())
    return {"iss": ISSUER, "aud": "fctl", "sub": "u1", "iat": now, "exp": now + 600, **changes}


def _b64(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).decode().rstrip("=")


def _unsigned(header: dict[str, object]) -> str:
    body = json.dumps(_claims()).encode()
    return f"{_b64(json.dumps(header).encode())}.{_b64(body)}."


def _hs256_with_the_public_key() -> str:
    """The classic confusion: the RSA public key's PEM used as an HMAC secret."""
    pem = KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = _b64(json.dumps({"alg": "HS256", "kid": "idp-key", "typ": "JWT"}).encode())
    body = _b64(json.dumps(_claims()).encode())
    signature = hmac.new(pem, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64(signature)}"


FORGERIES: dict[str, Callable[[], str]] = {
    "alg_none": lambda: _unsigned({"alg": "none", "kid": "idp-key"}),
    "alg_none_no_kid": lambda: _unsigned({"alg": "none"}),
    "hs256_with_the_public_key": _hs256_with_the_public_key,
    # signed by a key of the attacker's, naming a kid the JWKS does not have
    "foreign_kid": lambda: jwt.encode(
        _claims(), OTHER_KEY, algorithm="RS256", headers={"kid": "attacker"}
    ),
    # signed by the attacker's key, claiming the IdP's kid
    "idp_kid_other_key": lambda: jwt.encode(
        _claims(), OTHER_KEY, algorithm="RS256", headers={"kid": "idp-key"}
    ),
    # a `jku`/`jwk` header pointing at the attacker's keys: never fetched nor used
    "jku_header": lambda: jwt.encode(
        _claims(),
        OTHER_KEY,
        algorithm="RS256",
        headers={"kid": "attacker", "jku": "http://127.0.0.1:9/keys"},
    ),
    "embedded_jwk": lambda: jwt.encode(
        _claims(),
        OTHER_KEY,
        algorithm="RS256",
        headers={"jwk": _jwk(OTHER_KEY, "attacker")},
    ),
}


@pytest.mark.parametrize("forgery", FORGERIES)
def test_id_token_forgery_is_refused(forgery: str) -> None:
    verified = verified_id_token(FORGERIES[forgery](), JWKS, ISSUER, JWKS_URI)
    assert isinstance(verified, Failure), forgery
    assert "ID token was refused" in verified.failure().message


def test_id_token_signed_by_the_idp_key_is_accepted() -> None:
    """The control: the same claims, signed by the IdP's key under its kid."""
    token = jwt.encode(_claims(), KEY, algorithm="RS256", headers={"kid": "idp-key"})
    verified = verified_id_token(token, JWKS, ISSUER, JWKS_URI)
    assert isinstance(verified, Success)
    assert verified.unwrap()["sub"] == "u1"
