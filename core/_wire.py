"""Strict reading of the fields of a JSON object: the wire formats' one reader.

Why not cattrs: the formats are a handful of flat objects of strings, and
importing cattrs (with attrs) costs a cold run about 25 ms, a sixth of its
whole budget (DESIGN §12, benchmarks/RESULTS.md), for work this module does
in a few lines. Strict as cattrs' strict hooks were: `5` is never read as the
string `"5"`, `true` is never a number, and a failure names the field.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any, TypeVar

    T = TypeVar("T")

__all__ = ["Fields", "WireError", "read_fields"]


class WireError(Exception):
    """A field is missing or of the wrong type; the message names it."""


class Fields:
    """The fields of one decoded JSON object, each read with the type it must have."""

    __slots__ = ("_document",)

    def __init__(self, document: Mapping[str, Any]) -> None:
        self._document = document

    def text(self, key: str) -> str:
        """A required string."""
        value = self.optional_text(key)
        if value is None:
            raise WireError(f"{key}: required field missing")
        return value

    def optional_text(self, key: str) -> str | None:
        """A string, or None when the field is absent or null."""
        value = self._document.get(key)
        if value is not None and not isinstance(value, str):
            raise WireError(f"{key}: expected a string, got {_kind(value)}")
        return value

    def optional_texts(self, key: str) -> tuple[str, ...] | None:
        """A list of strings, or None when the field is absent or null."""
        value = self._document.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise WireError(f"{key}: expected a list of strings")
        return tuple(value)

    def optional_object(self, key: str) -> dict[str, Any] | None:
        """A JSON object, or None when the field is absent or null."""
        value = self._document.get(key)
        if value is not None and not isinstance(value, dict):
            raise WireError(f"{key}: expected an object, got {_kind(value)}")
        return value

    def raw(self, key: str) -> object:
        """The value as decoded, for a field read leniently by its caller."""
        return self._document.get(key)


def read_fields(document: Mapping[str, Any], build: Callable[[Fields], T]) -> T | str:
    """`build(fields)`, or the reason the document does not have the fields it needs."""
    try:
        return build(Fields(document))
    except WireError as error:
        return str(error)


def _kind(value: object) -> str:
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        list: "a list",
        dict: "an object",
    }.get(type(value), type(value).__name__)
