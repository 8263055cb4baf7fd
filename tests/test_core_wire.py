"""core/_wire.py: the cold path's one converter, strict, naming the field that does not fit."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import pytest
from returns.result import Failure, Success
from stacktoken.core import _wire
from stacktoken.core._codecs import (
    decode_accesses,
    decode_discovery,
    decode_discovery_cache,
    decode_error_response,
    decode_jwks,
    decode_token_response,
)
from stacktoken.core._device import interpret_device_authorization, login_device_request
from stacktoken.core._errors import RemoteError
from stacktoken.core._wire import ParseError, TokenWire, structure

SENT_AT = datetime(2026, 1, 1, tzinfo=UTC)


def _body(document: object) -> bytes:
    return json.dumps(document).encode()


FAILURES: list[tuple[str, Any, object, str]] = [
    (
        "discovery",
        decode_discovery,
        {"token_endpoint": 5},
        "token_endpoint: expected a string, got a number",
    ),
    ("discovery", decode_discovery, {}, "token_endpoint: required field missing"),
    (
        "discovery",
        decode_discovery,
        {"token_endpoint": None},
        "token_endpoint: required field missing",
    ),
    (
        "discovery",
        decode_discovery,
        {"token_endpoint": "https://t", "token_endpoint_auth_methods_supported": "abc"},
        "token_endpoint_auth_methods_supported: expected a list of strings",
    ),
    ("discovery", decode_discovery, [1, 2], "not a JSON object"),
    ("accesses", decode_accesses, {"token": True}, "token: expected a string, got a boolean"),
    (
        "accesses",
        decode_accesses,
        {"token": "t", "claims": []},
        "claims: expected an object, got a list",
    ),
    ("accesses", decode_accesses, {"token": ""}, "token: is empty"),
    (
        "accesses",
        decode_accesses,
        {"token": "t", "refreshToken": "a\u00e9b"},
        "refreshToken: has characters no token has",
    ),
    (
        "discovery cache",
        decode_discovery_cache,
        {"token_endpoint": "https://t", "expiresAt": 1},
        "expiresAt: expected an RFC 3339 time, got a number",
    ),
    ("jwks", decode_jwks, {"keys": [{"kty": "RSA"}, "x"]}, "keys: expected a list of objects"),
    ("jwks", decode_jwks, {}, "keys: required field missing"),
]


@pytest.mark.parametrize(
    ("decode", "document", "message"),
    [
        pytest.param(decode, document, message, id=f"{name}: {message}")
        for name, decode, document, message in FAILURES
    ],
)
def test_wire_failure_names_the_field(decode: Any, document: object, message: str) -> None:
    result = decode(_body(document))
    assert isinstance(result, Failure)
    assert isinstance(result.failure(), ParseError)
    assert result.failure().message == message
    assert str(result.failure()) == message


@pytest.mark.parametrize(
    ("expires_in", "message"),
    [
        (True, "expires_in: not a number"),
        ("soon", "expires_in: not a number"),
        (-1, "expires_in: negative or not finite"),
        ([3600], "expires_in: not a number"),
    ],
)
def test_wire_token_expires_in_is_a_number(expires_in: object, message: str) -> None:
    body = _body({"access_token": "a", "token_type": "Bearer", "expires_in": expires_in})
    assert decode_token_response(body, sent_at=SENT_AT).failure().message == message


def test_wire_token_expires_in_reads_digit_strings_and_fractions_down() -> None:
    for expires_in in ("3600", 3600.9):
        body = _body({"access_token": "a", "token_type": "Bearer", "expires_in": expires_in})
        response = decode_token_response(body, sent_at=SENT_AT).unwrap()
        assert response.expiry == datetime(2026, 1, 1, 1, tzinfo=UTC)


def test_wire_never_reads_a_number_as_a_string() -> None:
    """cattrs' default `str` hook would turn 5 into "5": the converter's own refuses."""
    assert structure({"access_token": 5, "token_type": "Bearer"}, TokenWire) == Failure(
        ParseError(field="access_token", problem="expected a string, got a number")
    )
    error = decode_error_response(400, _body({"error": 400}))
    assert error.failure().message == "error: expected a string, got a number"


def test_wire_garbage_is_a_one_line_error() -> None:
    for data in (b"", b"\xff", b"<html>\n<body>502</body>", b'{"a": 1} x'):
        problem = decode_discovery(data).failure()
        assert problem.field == ""
        assert problem.message.isprintable() and problem.message.startswith("not JSON")


def test_wire_jwks_keeps_the_document_for_pyjwt() -> None:
    document = {"keys": [{"kty": "RSA", "n": "x", "e": "AQAB"}], "other": 1}
    assert decode_jwks(_body(document)) == Success(document)


def test_wire_device_authorization_names_the_field() -> None:
    request = login_device_request("https://idp.example/device")
    body = _body(
        {"device_code": "d", "user_code": "U", "verification_uri": "https://idp.example/v"}
    )
    error = interpret_device_authorization(200, body, request=request).failure()
    assert error == RemoteError(
        message="device authorization at https://idp.example/device: "
        "expires_in: required field missing"
    )
    body = _body(
        {
            "device_code": "d",
            "user_code": "U",
            "verification_uri": "https://idp.example/v",
            "expires_in": 600,
            "interval": "5",
        }
    )
    error = interpret_device_authorization(200, body, request=request).failure()
    assert isinstance(error, RemoteError)
    assert error.message.endswith("interval: not a number")


def test_wire_types_are_frozen_slotted_keyword_only() -> None:
    wire_types = [
        value
        for value in vars(_wire).values()
        if isinstance(value, type) and dataclasses.is_dataclass(value)
    ]
    assert len(wire_types) >= 9
    for wire_type in wire_types:
        parameters = wire_type.__dataclass_params__  # type: ignore[attr-defined]
        assert parameters.frozen, wire_type
        assert "__slots__" in vars(wire_type), wire_type
        assert all(field.kw_only for field in dataclasses.fields(wire_type)), wire_type


def test_wire_import_builds_no_converter() -> None:
    """The converter is built on first use: importing the module costs cattrs' import only."""
    code = (
        "from stacktoken.core import _wire\n"
        "print(_wire._converter.cache_info().currsize)\n"
        "_wire.structure({'error': 'e'}, _wire.ErrorWire)\n"
        "print(_wire._converter.cache_info().currsize)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert run.stdout.split() == ["0", "1"]
