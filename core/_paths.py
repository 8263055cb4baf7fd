"""Where each stack's files live, relative to the config and cache roots.

fctl's layout (docs/design.md §3): names become path segments, so a name is accepted
only when it is one plain segment. Separators are refused, so distinct
(profile, organization, stack) triples always map to distinct paths, and a
path built here is always relative and never climbs out of its root.

Paths are tuples of segments, joined by the shell: `pathlib` costs a warm
run more than all of its work, and a tuple says what it is (segments that
were each checked) better than a string would.
"""

from ._errors import UsageError
from ._record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from ._types import StackKey

__all__ = [
    "ACCESSES_FILE",
    "CACHE_FILE",
    "CLIENTS_FOLDER",
    "CONFIG_FILE",
    "PROFILES_FOLDER",
    "LOCK_SUFFIX",
    "MAX_NAME_BYTES",
    "PROFILE_FILE",
    "Segments",
    "StackPaths",
    "client_key",
    "client_paths",
    "discovery_cache_name",
    "name_error",
    "organizations_folder",
    "profile_file",
    "stack_files",
    "stack_paths",
    "stacks_folder",
]

CONFIG_FILE = "config.yml"
PROFILE_FILE = "profile.json"
ACCESSES_FILE = "accesses.json"
CACHE_FILE = "api_token_cache.json"
LOCK_SUFFIX = ".lock"
MAX_NAME_BYTES = 255  # the usual file-name limit (NAME_MAX)

Segments = tuple[str, ...]

#: Where fctl keeps its profiles (below the config dir), and stacktoken the
#: machine credentials' entries (below the cache dir).
PROFILES_FOLDER: Segments = ("profiles",)
CLIENTS_FOLDER: Segments = ("clients",)


class StackPaths(Record):
    """A stack's (or a machine credential's) files, as segments below their root."""

    folder: Segments
    accesses: Segments
    cache: Segments
    lock: Segments


def name_error(kind: str, name: str) -> "UsageError | None":
    """Why `name` cannot be one path segment; None when it can."""
    problem = _name_problem(name)
    if problem is None:
        return None
    return UsageError(message=f"invalid {kind} name {_shown(name)}: {problem}")


def profile_file(profile: str) -> Segments:
    """`profiles/<profile>/profile.json`; the name must have passed `name_error`."""
    return (*PROFILES_FOLDER, profile, PROFILE_FILE)


def organizations_folder(profile: str) -> Segments:
    """`profiles/<profile>/organizations`, where a profile's organizations are."""
    return (*PROFILES_FOLDER, profile, "organizations")


def stacks_folder(profile: str, organization: str) -> Segments:
    """`profiles/<profile>/organizations/<organization>/stacks`."""
    return (*organizations_folder(profile), organization, "stacks")


def stack_files(profile: str, organization: str, stack: str) -> StackPaths:
    """A stack's files for names found on disk (`cache list`, `cache clear`), used
    as they are: they are one folder name each, whatever they hold."""
    return _paths_in((*stacks_folder(profile, organization), stack))


def stack_paths(key: "StackKey") -> "StackPaths | UsageError":
    """The stack's folder and files below the config dir, once its names are valid."""
    for kind, name in (
        ("profile", key.profile),
        ("organization", key.organization),
        ("stack", key.stack),
    ):
        error = name_error(kind, name)
        if error is not None:
            return error
    return stack_files(key.profile, key.organization, key.stack)


def client_key(stack_uri: str, client_id: str, scopes: "Iterable[str]") -> str:
    """The cache key of a machine credential (docs/design.md §9): a SHA-256 of the stack
    URI, the client id and the sorted, de-duplicated scopes. Never the secret."""
    from hashlib import sha256  # cold path, and client-credentials warm runs only

    # Length-prefixed parts: no two different triples can give the same bytes.
    parts = [stack_uri, client_id, *sorted(set(scopes))]
    encoded = b"".join(
        len(data).to_bytes(4, "big") + data
        for data in (part.encode("utf-8", "surrogatepass") for part in parts)
    )
    return sha256(encoded).hexdigest()


def client_paths(key: str) -> StackPaths:
    """A machine credential's files below the cache dir: `clients/<key>/...`."""
    return _paths_in((*CLIENTS_FOLDER, key))


def _paths_in(folder: Segments) -> StackPaths:
    return StackPaths(
        folder=folder,
        accesses=(*folder, ACCESSES_FILE),
        cache=(*folder, CACHE_FILE),
        lock=(*folder, CACHE_FILE + LOCK_SUFFIX),
    )


def discovery_cache_name(discovery_url: str) -> str:
    """The discovery cache's file name for a URL: a hash, so any URL is a safe name."""
    from hashlib import sha256  # cold path only: hashlib loads OpenSSL

    # surrogatepass: JSON's "\ud800" escapes reach us as lone surrogates; still one
    # distinct name per URL, never a UnicodeEncodeError.
    return sha256(discovery_url.encode("utf-8", "surrogatepass")).hexdigest() + ".json"


def _name_problem(name: str) -> "str | None":
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
