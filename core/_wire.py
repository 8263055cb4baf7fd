"""The cold path's wire formats: their shapes, and the one converter that reads them.

Wire types mirror the JSON as it is sent (their field names are the wire's
keys) and stay apart from the domain model (`_types.py`); `_codecs.py` and the
device flow map one to the other. One private cattrs converter structures
them, strict as a wire reader must be: `5` is never the string `"5"`, `true`
is never a number, a string is never a list of characters. A failure becomes
a `ParseError` naming the field (`cattrs.transform_error` walks the errors).

The JSON text itself is parsed by `_json.json_object`, the scanner the warm
path uses too, so both sides agree on what is JSON. The converter and its
per-type structure functions are built on first use, and cattrs is imported
then: importing this module loads no cattrs (docs/design.md §12).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any, NewType, TypeVar

from returns.result import Failure, Result, Success

from ._json import json_object

if TYPE_CHECKING:
    from cattrs import Converter

__all__ = [
    "AccessesWire",
    "DeviceAuthorizationWire",
    "DiscoveryCacheWire",
    "DiscoveryWire",
    "ErrorWire",
    "JwksWire",
    "Lifetime",
    "ParseError",
    "PositiveSeconds",
    "RefreshTokenWire",
    "TokenWire",
    "read_object",
    "structure",
]

T = TypeVar("T")

#: `expires_in` of a token answer: whole seconds, from a number or a digit string.
Lifetime = NewType("Lifetime", int)
#: `expires_in` and `interval` of a device authorization answer: positive and finite.
PositiveSeconds = NewType("PositiveSeconds", float)


@dataclass(frozen=True, slots=True, kw_only=True)
class ParseError:
    """Why a document is not the format it should be.

    `field` is where (`token_endpoint`, `keys[0]`), empty for the whole document.
    """

    field: str
    problem: str

    @property
    def message(self) -> str:
        return f"{self.field}: {self.problem}" if self.field else self.problem

    def __str__(self) -> str:
        return self.message


# -- the wire types ----------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessesWire:
    """fctl's `accesses.json` (docs/design.md §3.3); other keys are kept by the codec."""

    token: str
    claims: dict[str, Any] | None = None
    refreshToken: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DiscoveryWire:
    """The parts of an OpenID Provider configuration we use (RFC 8414 sec. 2, RFC 8628 sec. 4)."""

    token_endpoint: str
    issuer: str | None = None
    token_endpoint_auth_methods_supported: tuple[str, ...] | None = None
    device_authorization_endpoint: str | None = None
    jwks_uri: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DiscoveryCacheWire(DiscoveryWire):
    """A discovery document as the discovery cache keeps it, with its end of life."""

    expiresAt: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenWire:
    """A successful token response (RFC 6749 section 5.1)."""

    access_token: str
    token_type: str
    expires_in: Lifetime | None = None
    refresh_token: str | None = None
    id_token: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RefreshTokenWire:
    """Only the `refresh_token` of a token answer otherwise unusable (RFC 6749 section 6)."""

    refresh_token: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorWire:
    """An error response (RFC 6749 section 5.2)."""

    error: str
    error_description: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceAuthorizationWire:
    """The device authorization answer (RFC 8628 section 3.2)."""

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None = None
    expires_in: PositiveSeconds
    interval: PositiveSeconds | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class JwksWire:
    """A JSON Web Key Set (RFC 7517 section 5): its keys, each an object pyjwt reads."""

    keys: tuple[dict[str, Any], ...]


# -- reading -------------------------------------------------------------------------


def read_object(data: bytes) -> Result[dict[str, Any], ParseError]:
    """The JSON object `data` holds (UTF-8), or why it holds none."""
    document = json_object(data)
    if isinstance(document, str):
        return Failure(ParseError(field="", problem=document))
    return Success(document)


def structure(document: object, wire_type: type[T]) -> Result[T, ParseError]:
    """`document` (decoded JSON) as `wire_type`, or the first field that does not fit."""
    converter = _converter()
    from cattrs.errors import BaseValidationError

    try:
        return Success(converter.structure(document, wire_type))
    except (BaseValidationError, ValueError, TypeError, KeyError, RecursionError) as error:
        return Failure(_first_problem(error))


def _first_problem(error: BaseException) -> ParseError:
    from cattrs.v import transform_error

    problems = transform_error(error, path="$", format_exception=_describe)
    problem, _, path = (problems[0] if problems else "invalid").rpartition(" @ ")
    field = path.removeprefix("$").removeprefix(".")
    return ParseError(field=field, problem=problem or "invalid")


class _Unfit(ValueError):
    """A value that does not fit its field; the message says how."""


def _describe(error: BaseException, wire_type: type | None) -> str:
    from cattrs.v import format_exception

    if isinstance(error, _Unfit):
        return str(error)
    return format_exception(error, wire_type)


@cache
def _converter() -> Converter:
    # cattrs is imported here, on first use: `import stacktoken` and a warm run never load it.
    from cattrs import Converter

    converter = Converter(detailed_validation=True)
    converter.register_structure_hook(str, _text)
    converter.register_structure_hook(datetime, _moment)
    converter.register_structure_hook(Lifetime, _lifetime)
    converter.register_structure_hook(PositiveSeconds, _positive_seconds)
    converter.register_structure_hook_func(lambda kind: kind == tuple[str, ...], _texts)
    converter.register_structure_hook_func(lambda kind: kind == dict[str, Any], _object)
    converter.register_structure_hook_func(
        lambda kind: kind == tuple[dict[str, Any], ...], _objects
    )
    return converter


# -- strict hooks for the simple types ----------------------------------------------


def _text(value: object, _: object) -> str:
    if not isinstance(value, str):
        raise _Unfit(_expected("a string", value))
    return value


def _texts(value: object, _: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _Unfit("expected a list of strings")
    return tuple(value)


def _object(value: object, _: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Unfit(_expected("an object", value))
    return value


def _objects(value: object, _: object) -> tuple[dict[str, Any], ...]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise _Unfit("expected a list of objects")
    return tuple(value)


def _moment(value: object, _: object) -> datetime:
    from ._cache_codec import parse_rfc3339

    if not isinstance(value, str):
        raise _Unfit(_expected("an RFC 3339 time", value))
    moment = parse_rfc3339(value)
    if isinstance(moment, str):
        raise _Unfit(moment)
    return moment


def _lifetime(value: object, _: object) -> Lifetime:
    # RFC 6749 says a number; some servers send "3600" or 3599.5. Rounded down.
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value[:12])  # more digits would be clamped anyway
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Unfit("not a number")
    if not 0 <= value < float("inf"):
        raise _Unfit("negative or not finite")
    return Lifetime(int(value))


def _positive_seconds(value: object, _: object) -> PositiveSeconds:
    if value is None:
        raise _Unfit("required field missing")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Unfit("not a number")
    if not 0 < value < float("inf"):
        raise _Unfit("not positive")
    return PositiveSeconds(float(value))


def _expected(what: str, value: object) -> str:
    # A required field sent as null is as good as missing (an optional one never gets here).
    if value is None:
        return "required field missing"
    kinds = {bool: "a boolean", int: "a number", float: "a number", list: "a list"}
    kind = kinds.get(type(value), "an object" if isinstance(value, dict) else "a string")
    return f"expected {what}, got {kind}"
