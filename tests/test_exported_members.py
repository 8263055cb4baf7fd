"""`stacktoken.core.__all__` is exactly its public names, each of which exists (as httpx does)."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import stacktoken.core as core

# Names a private module lists in its `__all__` for its sibling modules only.
SHARED_INSIDE_CORE = {
    "decode_json_object": "core._codecs, used by core._requests",
    "MAX_EXPIRES_IN": "core._codecs, the clamp of `expires_in`",
    "is_token_text": "core._cache_codec, used by core._codecs",
    "lazy_exports": "core._exports, the packages' own machinery, not part of the API",
}


def _private_modules() -> list[ModuleType]:
    return [
        importlib.import_module(f"{core.__name__}.{info.name}")
        for info in pkgutil.iter_modules(core.__path__)
        if info.name.startswith("_")
    ]


def test_exported_members_all_exist() -> None:
    for name in core.__all__:
        assert getattr(core, name) is not None, name


def test_exported_members_are_unique() -> None:
    assert len(core.__all__) == len(set(core.__all__))


def test_exported_members_are_every_public_name_of_the_private_modules() -> None:
    declared: dict[str, str] = {}
    for module in _private_modules():
        for name in getattr(module, "__all__", ()):
            assert name not in declared, (
                f"{name} declared by {declared.get(name)} and {module.__name__}"
            )
            declared[name] = module.__name__
    public = set(declared) - set(SHARED_INSIDE_CORE)
    assert set(core.__all__) == public


def test_exported_members_come_from_their_home_module() -> None:
    homes = {
        name: module for module in _private_modules() for name in getattr(module, "__all__", ())
    }
    for name in core.__all__:
        assert getattr(core, name) is getattr(homes[name], name), name


def test_exported_members_are_shown_by_dir() -> None:
    assert set(core.__all__) <= set(dir(core))


def test_core_has_no_private_module_without_all() -> None:
    for module in _private_modules():
        assert isinstance(getattr(module, "__all__", None), list), module.__name__
