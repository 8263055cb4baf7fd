"""Lazy re-exports (PEP 562) for the public face, `stacktoken`.

Each package names where its public names live; a name's module is imported
on first access, so importing a package costs nothing until a name is used
and a warm run loads only the modules it needs.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    namespace: dict[str, Any], homes: Mapping[str, str], public: Iterable[str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for the package whose globals are `namespace`.

    `homes` maps a module (relative, as `_types`, or absolute, as
    `stacktoken.shell`) to the space-separated names it provides.
    """
    package = namespace["__name__"]
    home_of = {name: module for module, names in homes.items() for name in names.split()}
    listed = sorted(public)

    def getattr_(name: str) -> object:
        module = home_of.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        absolute = f"{package}.{module}" if module.startswith("_") else module
        # `__import__`, unlike importlib, shows in `python -X importtime`.
        value = getattr(__import__(absolute, fromlist=[name]), name)
        namespace[name] = value  # later lookups skip this function
        return value

    def dir_() -> list[str]:
        return sorted({*namespace, *listed})

    return getattr_, dir_
