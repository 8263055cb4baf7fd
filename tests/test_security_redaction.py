"""Issue 15 #4: a server quoting our secrets back, whole or in part, in any field.

A hostile or careless token endpoint answers an error that quotes the
assertion or refresh token we sent: in `error` (not only in
`error_description`), or a prefix of it, a copy split in two, or a JWT's
signature part. None of it may reach the one-line error.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from returns.result import Failure
from stacktoken.core._errors import OAuthError
from stacktoken.core._requests import exchange_request, interpret_token_response, refresh_request
from stacktoken.core._types import TokenRequest

NOW = datetime(2026, 2, 20, 12, tzinfo=UTC)
JWT = (
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiJ1c2VyLTEiLCJleHAiOjE3NjYwMDAwMDB9"
    ".k7Qm2xZpR4vT9wYbN3cLfHs8dJ1uGaE6oKiP0qWrXyVnMtB5"
)
REFRESH = "rt_9fK2mQ7xLw4ZpN8vB3cT6yH1sD5gJ0aR"
SIGNATURE = JWT.rsplit(".", 1)[1]

EXCHANGE = exchange_request("https://s.example/token", JWT)
REFRESH_REQUEST = refresh_request("https://m.example/token", REFRESH)
ECHOES = {
    "whole, in error": (EXCHANGE, {"error": f"invalid_grant {JWT}"}),
    "whole, in description": (
        EXCHANGE,
        {"error": "invalid_grant", "error_description": f"bad {JWT}"},
    ),
    "prefix": (EXCHANGE, {"error": "invalid_grant", "error_description": f"token {JWT[:40]}..."}),
    "signature part": (
        EXCHANGE,
        {"error": "invalid_grant", "error_description": f"signature {SIGNATURE}"},
    ),
    "split copy": (
        EXCHANGE,
        {"error": "invalid_grant", "error_description": f"{SIGNATURE[:20]} then {SIGNATURE[20:]}"},
    ),
    "refresh token in error": (REFRESH_REQUEST, {"error": REFRESH}),
    "refresh token suffix": (
        REFRESH_REQUEST,
        {"error": "invalid_grant", "error_description": f"...{REFRESH[-16:]}"},
    ),
}


def _error(request: TokenRequest, body: dict[str, str]) -> OAuthError:
    answer = interpret_token_response(400, json.dumps(body).encode(), request=request, sent_at=NOW)
    assert isinstance(answer, Failure)
    error = answer.failure()
    assert isinstance(error, OAuthError)
    return error


@pytest.mark.parametrize(("request_sent", "body"), ECHOES.values(), ids=list(ECHOES))
def test_redaction_no_secret_or_long_piece_of_one_reaches_the_message(
    request_sent: TokenRequest, body: dict[str, str]
) -> None:
    message = _error(request_sent, body).message
    for secret in (JWT, REFRESH, SIGNATURE):
        for start in range(len(secret) - 7):
            piece = secret[start : start + 8]
            assert piece not in message, "a piece of a secret reached the message"
    assert "[redacted]" in message


def test_redaction_leaves_an_ordinary_error_alone() -> None:
    error = _error(
        REFRESH_REQUEST, {"error": "invalid_grant", "error_description": "refresh token expired"}
    )
    assert error.message == "server answered 400 invalid_grant: refresh token expired"
