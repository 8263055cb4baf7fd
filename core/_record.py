"""Frozen records: the shape of a frozen, slotted, keyword-only dataclass,
without importing `dataclasses`.

Why not dataclasses: every run imports the cache-decision types, warm runs
included, and `import dataclasses` pulls in `inspect`, `ast`, `re` and `enum`,
which alone cost more than half a bare interpreter start (benchmarks/RESULTS.md).
A record class is made by the metaclass from its annotations, in microseconds,
and type checkers see a frozen keyword-only dataclass (PEP 681 `dataclass_transform`).

    class CachedToken(Record):
        access_token: str = secret()      # required, left out of repr
        expiry: datetime | None
        saved_at: datetime | None = None  # optional

Instances are immutable, compare and hash by value (and class), and
`repr` shows every field but the secret ones. `replace` is
`dataclasses.replace`. `ClassVar` annotations are class attributes, not fields.
"""

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: importing typing costs a warm run dearly
if TYPE_CHECKING:
    from typing import Any, ClassVar, TypeVar, dataclass_transform

    R = TypeVar("R", bound="Record")
else:

    def dataclass_transform(**_: object) -> object:
        return lambda cls: cls


__all__ = ["Record", "replace", "secret"]

_MISSING: "Any" = object()


class _Secret:
    """What `secret()` leaves in a class body, for the metaclass to read."""

    __slots__ = ("default",)

    def __init__(self, default: object) -> None:
        self.default = default


def secret(*, default: "Any" = _MISSING) -> "Any":
    """Declare a field whose value never appears in `repr` (a token, a secret)."""
    return _Secret(default)


class _RecordMeta(type):
    """Turns the annotations of a class body into slots, defaults and field lists."""

    def __new__(
        mcs, name: str, bases: "tuple[type, ...]", namespace: "dict[str, Any]", **kwargs: "Any"
    ) -> "_RecordMeta":
        inherited: tuple[str, ...] = ()
        defaults: dict[str, object] = {}
        hidden: set[str] = set()
        for base in reversed(bases):
            inherited += tuple(f for f in getattr(base, "_fields", ()) if f not in inherited)
            defaults.update(getattr(base, "_defaults", {}))
            hidden.update(getattr(base, "_hidden", ()))
        # An annotation is a string (quoted, or under `from __future__ import
        # annotations`) or an evaluated type; a ClassVar is always spelled as a string.
        own = [
            field
            for field, hint in namespace.get("__annotations__", {}).items()
            if not str(hint).startswith(("ClassVar", "typing.ClassVar"))
        ]
        for field in own:
            value = namespace.pop(field, _MISSING)
            if isinstance(value, _Secret):
                hidden.add(field)
                value = value.default
            if value is not _MISSING:
                defaults[field] = value
        fields = inherited + tuple(field for field in own if field not in inherited)
        namespace["__slots__"] = tuple(field for field in own if field not in inherited)
        namespace["_fields"] = fields
        namespace["_defaults"] = defaults
        namespace["_hidden"] = frozenset(hidden)
        namespace["__match_args__"] = fields
        return super().__new__(mcs, name, bases, namespace, **kwargs)


@dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(secret,))
class Record(metaclass=_RecordMeta):
    """Base of every frozen value type of stacktoken."""

    __slots__ = ()
    _fields: "ClassVar[tuple[str, ...]]"
    _defaults: "ClassVar[dict[str, object]]"
    _hidden: "ClassVar[frozenset[str]]"

    def __init__(self, **values: object) -> None:
        for field in self._fields:
            if field in values:
                value = values.pop(field)
            elif field in self._defaults:
                value = self._defaults[field]
            else:
                raise TypeError(f"{type(self).__name__}() needs the keyword argument {field!r}")
            object.__setattr__(self, field, value)
        if values:
            raise TypeError(f"{type(self).__name__}() got unexpected arguments {sorted(values)}")

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: cannot delete {name!r}")

    def _values(self) -> "tuple[object, ...]":
        return tuple(getattr(self, field) for field in self._fields)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self), self._values()))

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{field}={getattr(self, field)!r}"
            for field in self._fields
            if field not in self._hidden
        )
        return f"{type(self).__name__}({shown})"

    def __reduce__(self) -> "tuple[object, ...]":
        # Pickling (multiprocessing, copy) rebuilds through __init__: slots
        # behind a raising __setattr__ cannot be restored the default way.
        return (_rebuild, (type(self), dict(zip(self._fields, self._values(), strict=True))))


def _rebuild(kind: "type[R]", values: "dict[str, object]") -> "R":
    return kind(**values)


def replace(record: "R", **changes: object) -> "R":
    """A copy of `record` with some fields changed (`dataclasses.replace`)."""
    values = dict(zip(record._fields, record._values(), strict=True))
    values.update(changes)
    return type(record)(**values)
