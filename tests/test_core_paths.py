"""Cache keys and paths (docs/design.md §3.6)."""

from __future__ import annotations

import hashlib

import pytest
from stacktoken.core._errors import UsageError
from stacktoken.core._paths import (
    StackPaths,
    discovery_cache_name,
    name_error,
    profile_file,
    stack_paths,
)
from stacktoken.core._types import StackKey


def test_stack_paths_follow_fctl_layout() -> None:
    paths = stack_paths(StackKey(profile="default", organization="orgA", stack="stk1"))
    assert isinstance(paths, StackPaths)
    folder = ("profiles", "default", "organizations", "orgA", "stacks", "stk1")
    assert paths.folder == folder
    assert paths.accesses == (*folder, "accesses.json")
    assert paths.cache == (*folder, "api_token_cache.json")
    assert paths.lock == (*folder, "api_token_cache.json.lock")


def test_profile_file_is_under_profiles() -> None:
    assert profile_file("default") == ("profiles", "default", "profile.json")


ACCEPTED = [
    "default",
    "orgA",
    "...",
    "a.b",
    " ",
    "-rf",
    "\u00e9t\u00e9",
    "\u6f22\u5b57",
    "x" * 255,
    "\u00e9" * 127 + "x",  # 255 bytes
]


@pytest.mark.parametrize("name", ACCEPTED)
def test_name_error_accepts_one_plain_segment(name: str) -> None:
    assert name_error("stack", name) is None


REFUSED = [
    ("", "empty"),
    (".", "relative folder"),
    ("..", "relative folder"),
    ("a/b", "separator"),
    ("../x", "separator"),
    ("/", "separator"),
    ("a\\b", "separator"),
    ("a\x00b", "control"),
    ("a\nb", "control"),
    ("\t", "control"),
    ("\x7f", "control"),
    ("\x85", "control"),
    ("x" * 256, "255 bytes"),
    ("\u00e9" * 128, "255 bytes"),  # 128 characters, 256 bytes
    ("\ud800", "Unicode"),
]


@pytest.mark.parametrize(("name", "reason"), REFUSED)
def test_name_error_refuses_unsafe_names_with_usage_error(name: str, reason: str) -> None:
    error = name_error("organization", name)
    assert isinstance(error, UsageError)
    assert reason in error.message
    assert error.message.startswith("invalid organization name ")
    assert error.message.isprintable()


@pytest.mark.parametrize("where", ["profile", "organization", "stack"])
def test_stack_paths_refuse_a_bad_name_in_any_position(where: str) -> None:
    names = {"profile": "p", "organization": "o", "stack": "s", where: ".."}
    error = stack_paths(StackKey(**names))
    assert isinstance(error, UsageError)
    assert f"invalid {where} name" in error.message


def test_discovery_cache_name_is_the_sha256_of_the_url() -> None:
    url = "https://orga-stk1.formance.cloud/api/auth/.well-known/openid-configuration"
    assert discovery_cache_name(url) == hashlib.sha256(url.encode()).hexdigest() + ".json"


def test_discovery_cache_name_takes_a_lone_surrogate() -> None:
    """JSON's "\\ud800" escapes reach us as lone surrogates; they once raised here."""
    assert discovery_cache_name("https://x/\ud800") != discovery_cache_name("https://x/\udc00")
