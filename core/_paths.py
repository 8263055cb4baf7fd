"""Where each stack's files live, relative to the config and cache roots.

fctl's layout (DESIGN §3): names become path segments, so a name is accepted
only when it is one plain segment. Separators are refused, so distinct
(profile, organization, stack) triples always map to distinct paths, and a
path built here is always relative and never climbs out of its root.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from ._errors import UsageError
from ._types import StackKey

if TYPE_CHECKING:
    from returns.result import Result

__all__ = [
    "ACCESSES_FILE",
    "CACHE_FILE",
    "CONFIG_FILE",
    "LOCK_SUFFIX",
    "MAX_NAME_BYTES",
    "PROFILE_FILE",
    "StackPaths",
    "discovery_cache_name",
    "name_error",
    "profile_folder",
    "stack_paths",
    "stack_paths_or_error",
    "validate_key",
    "validate_name",
]

CONFIG_FILE = "config.yml"
PROFILE_FILE = "profile.json"
ACCESSES_FILE = "accesses.json"
CACHE_FILE = "api_token_cache.json"
LOCK_SUFFIX = ".lock"
MAX_NAME_BYTES = 255  # the usual file-name limit (NAME_MAX)


@dataclass(frozen=True, slots=True, kw_only=True)
class StackPaths:
    """A stack's files, relative to the config root."""

    folder: PurePosixPath
    accesses: PurePosixPath
    cache: PurePosixPath
    lock: PurePosixPath


def name_error(kind: str, name: str) -> UsageError | None:
    """Why `name` cannot be one path segment; None when it can (`validate_name`
    without the `Result`, for the warm path, which does not import returns)."""
    problem = _name_problem(name)
    if problem is None:
        return None
    return UsageError(message=f"invalid {kind} name {_shown(name)}: {problem}")


def validate_name(kind: str, name: str) -> Result[str, UsageError]:
    """Accept `name` as one path segment, or say why not."""
    from returns.result import Failure, Success

    error = name_error(kind, name)
    return Success(name) if error is None else Failure(error)


def validate_key(key: StackKey) -> Result[StackKey, UsageError]:
    """Validate all three names of a key."""
    return (
        validate_name("profile", key.profile)
        .bind(lambda _: validate_name("organization", key.organization))
        .bind(lambda _: validate_name("stack", key.stack))
        .map(lambda _: key)
    )


def profile_folder(profile: str) -> PurePosixPath:
    """`profiles/<profile>`; the name must have passed `validate_name`."""
    return PurePosixPath("profiles", profile)


def stack_paths(key: StackKey) -> Result[StackPaths, UsageError]:
    """The stack's folder and files, once its key is valid."""
    return validate_key(key).map(_paths_of)


def stack_paths_or_error(key: StackKey) -> StackPaths | UsageError:
    """`stack_paths` without the `Result`, for the warm path."""
    for kind, name in (
        ("profile", key.profile),
        ("organization", key.organization),
        ("stack", key.stack),
    ):
        error = name_error(kind, name)
        if error is not None:
            return error
    return _paths_of(key)


def _paths_of(key: StackKey) -> StackPaths:
    folder = profile_folder(key.profile) / "organizations" / key.organization / "stacks" / key.stack
    return StackPaths(
        folder=folder,
        accesses=folder / ACCESSES_FILE,
        cache=folder / CACHE_FILE,
        lock=folder / (CACHE_FILE + LOCK_SUFFIX),
    )


def discovery_cache_name(discovery_url: str) -> str:
    """The discovery cache's file name for a URL: a hash, so any URL is a safe name."""
    import hashlib  # cold path only: hashlib loads OpenSSL

    # surrogatepass: JSON's "\ud800" escapes reach us as lone surrogates; still one
    # distinct name per URL, never a UnicodeEncodeError.
    encoded = discovery_url.encode("utf-8", "surrogatepass")
    return hashlib.sha256(encoded).hexdigest() + ".json"


def _name_problem(name: str) -> str | None:
    if not name:
        return "it is empty"
    if name in (".", ".."):
        return "it is a relative folder reference"
    if "/" in name or "\\" in name:
        return "it contains a path separator"
    if any(_is_control(char) for char in name):
        return "it contains a control character"
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return "it is not valid Unicode"
    if size > MAX_NAME_BYTES:
        return f"it is longer than {MAX_NAME_BYTES} bytes"
    return None


def _is_control(char: str) -> bool:
    code = ord(char)
    return code < 0x20 or 0x7F <= code <= 0x9F


def _shown(name: str) -> str:
    """Quote a rejected name safely on one line, cut short."""
    return repr(name if len(name) <= 40 else name[:40] + "...")
