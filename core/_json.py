"""JSON documents in, a dict or the reason out, without importing `json`.

Every run reads JSON (the cache entry, fctl's profile), and `import json`
costs more than half a bare interpreter start, because `json.decoder` imports
`re` (and `re` imports `enum`). The parsing itself is done by the same C
scanner `json.loads` uses (`_json.make_scanner`); this module only replaces
`json.decoder`'s whitespace regexes with `str.lstrip`. Where `_json` is
missing (another Python implementation), `json.loads` does the work.
property_tests/test_json_properties.py holds the result equal to `json.loads`.
"""

from ._record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["NotJson", "json_object", "json_value"]

_WHITESPACE = " \t\n\r"  # RFC 8259 section 2, as json.decoder's WHITESPACE
_BOM = "\ufeff"  # json.loads(bytes) drops it (json.detect_encoding: utf-8-sig)


class _Options:
    """`json.JSONDecoder()`'s defaults, as the C scanner reads them from its context."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {
        "-Infinity": float("-inf"),
        "Infinity": float("inf"),
        "NaN": float("nan"),
    }.__getitem__


def _c_scanner() -> "Callable[[str, int], tuple[Any, int]] | None":
    try:
        from _json import make_scanner
    except ImportError:
        return None
    # typeshed types the context as the scanner class; any object with the
    # attributes of `_Options` is what CPython reads (Modules/_json.c).
    scanner: Callable[[str, int], tuple[Any, int]] = make_scanner(_Options())  # type: ignore[arg-type]
    return scanner


_scan = _c_scanner()


class NotJson(Record):
    """What `json_value` returns for bytes that are no JSON text: the reason.

    Any JSON value can be read, strings included, so the failure is a type of its own."""

    reason: str


def json_value(data: bytes) -> "Any | NotJson":
    """The value of a UTF-8 JSON text, else `NotJson` saying why."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return NotJson(reason="not JSON (not UTF-8)")
    if _scan is None:  # pragma: no cover - CPython always has _json
        import json

        try:
            return json.loads(text.removeprefix(_BOM))
        except (ValueError, RecursionError):
            return NotJson(reason="not JSON")
    body = text.removeprefix(_BOM).lstrip(_WHITESPACE)
    start = len(text) - len(body)
    try:
        value, end = _scan(text, start)
    except (StopIteration, ValueError, RecursionError):
        return NotJson(reason="not JSON")
    if text[end:].lstrip(_WHITESPACE):
        return NotJson(reason="not JSON (extra data after the document)")
    return value


def json_object(data: bytes) -> "dict[str, Any] | str":
    """The JSON object `data` holds, or the reason it holds none (an object is no string)."""
    value = json_value(data)
    if isinstance(value, NotJson):
        return value.reason
    return value if isinstance(value, dict) else "not a JSON object"
