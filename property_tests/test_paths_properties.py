"""Cache keys and paths (docs/design.md §3.6): injective, relative, contained; bad names refused."""

from __future__ import annotations

import posixpath
import re

import pytest
from hypothesis import event, given, note
from hypothesis import strategies as st
from stacktoken.core._errors import UsageError
from stacktoken.core._paths import (
    ACCESSES_FILE,
    CACHE_FILE,
    Segments,
    StackPaths,
    discovery_cache_name,
    name_error,
    stack_paths,
)
from stacktoken.core._types import StackKey
from strategies import hostile_names, stack_keys, valid_names

# Names that differ only slightly, so distinct keys often look alike.
LOOKALIKE_NAMES = st.one_of(
    st.sampled_from(["a", "b", "a.b", "ab", "a b", "A", "\u00e9", "e\u0301", "..."]), valid_names()
)
ROOT = "/config/root"


def _paths(key: StackKey) -> StackPaths:
    paths = stack_paths(key)
    assert isinstance(paths, StackPaths), paths
    return paths


def _relative(segments: Segments) -> str:
    """The path the shell opens below its root (segments joined as os.path.join does)."""
    return posixpath.join(*segments)


def _all_paths(key: StackKey) -> list[str]:
    paths = _paths(key)
    return [_relative(path) for path in (paths.folder, paths.accesses, paths.cache, paths.lock)]


@given(st.lists(stack_keys(LOOKALIKE_NAMES), min_size=2, max_size=6, unique=True))
def test_stack_paths_are_injective_over_valid_keys(keys: list[StackKey]) -> None:
    """Distinct (profile, organization, stack) triples never share any path."""
    every = [path for key in keys for path in _all_paths(key)]
    note(f"paths: {every}")
    assert len(set(every)) == len(every)


@given(stack_keys())
def test_stack_paths_are_relative_and_contained(key: StackKey) -> None:
    """Every path is relative, has no `..`, and stays under the root once joined."""
    paths = _paths(key)
    for path in (paths.folder, paths.accesses, paths.cache, paths.lock):
        relative = _relative(path)
        assert not posixpath.isabs(relative)
        assert ".." not in path
        assert ".." not in relative.split("/")
        joined = posixpath.normpath(posixpath.join(ROOT, *path))
        assert joined.startswith(ROOT + "/")
        assert posixpath.commonpath([ROOT, joined]) == ROOT


@given(stack_keys())
def test_each_name_is_exactly_one_path_segment(key: StackKey) -> None:
    """The layout is fctl's: profiles/<p>/organizations/<o>/stacks/<s>/<file>."""
    paths = _paths(key)
    # Joined as the shell joins them, the segments split back into exactly themselves.
    assert _relative(paths.folder).split("/") == list(paths.folder)
    assert paths.folder == (
        "profiles",
        key.profile,
        "organizations",
        key.organization,
        "stacks",
        key.stack,
    )
    assert paths.accesses[-1] == ACCESSES_FILE
    assert paths.cache[-1] == CACHE_FILE
    assert "lock" in paths.lock[-1]
    assert paths.accesses[:-1] == paths.cache[:-1] == paths.lock[:-1] == paths.folder


@given(valid_names())
def test_valid_names_are_accepted_unchanged(name: str) -> None:
    """A plain segment of at most 255 UTF-8 bytes is accepted as is."""
    assert name_error("stack", name) is None


@given(hostile_names(), st.sampled_from(["profile", "organization", "stack"]), stack_keys())
def test_hostile_names_are_refused_with_a_one_line_usage_error(
    name: str, where: str, key: StackKey
) -> None:
    """Empty, `.`/`..`, separators, NUL/control, >255 bytes or surrogates: a usage error, in any
    position of the key, and no path at all."""
    bad = StackKey(
        **{
            **{"profile": key.profile, "organization": key.organization, "stack": key.stack},
            where: name,
        }
    )
    error = stack_paths(bad)
    note(f"result: {error!r}")
    assert isinstance(error, UsageError)
    assert error.message.isprintable()
    assert where in error.message
    assert name_error(where, name) == error


@given(
    st.lists(
        st.text(st.characters(exclude_categories=()), max_size=60),
        min_size=2,
        max_size=5,
        unique=True,
    )
)
def test_discovery_cache_names_are_injective_plain_file_names(urls: list[str]) -> None:
    """Any two URLs, however hostile, get distinct names that are one safe segment."""
    names = [discovery_cache_name(url) for url in urls]
    assert len(set(names)) == len(names)
    for name in names:
        assert re.fullmatch(r"[0-9a-f]{64}\.json", name)


# Past failure: a lone surrogate (JSON allows "\ud800" escapes in profile.json's
# membershipURI) made the name raise UnicodeEncodeError.
_DISCOVERY_NAME_EXAMPLES = ["https://app.example/\ud800", "\udfff", "", "https://\x00/"]


@pytest.mark.parametrize("url", _DISCOVERY_NAME_EXAMPLES)
def test_discovery_cache_names_are_plain_file_names_examples(url: str) -> None:
    """Recorded examples of the property above."""
    assert re.fullmatch(r"[0-9a-f]{64}\.json", discovery_cache_name(url))


@given(st.text(st.characters(exclude_categories=()), max_size=300))
def test_name_error_never_raises_and_agrees_with_the_rules(name: str) -> None:
    """Any text is accepted or refused (never an exception), exactly by design.md §3.6's rules."""
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        size = None
    acceptable = (
        bool(name)
        and name not in (".", "..")
        and "/" not in name
        and "\\" not in name
        and not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in name)
        and size is not None
        and size <= 255
    )
    event("accepted" if acceptable else "refused")
    assert (name_error("profile", name) is None) == acceptable
