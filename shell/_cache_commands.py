"""`stacktoken cache list` and `cache clear` (docs/design.md §7): the entries fctl's
stacks and the machine credentials keep on disk, found where core's paths say.

Every name found on disk is used as it is, never as a pattern (`*` or `[od]*`
as a profile must not reach other profiles), and shown escaped (a folder
named with an escape sequence must not reach the terminal raw). A symlink is
not a folder here: `cache clear` must not follow one out of the config dir.
The commands answer with the text to print, or the error: the CLI prints.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping

from returns.result import Failure, Result, Success
from stacktoken.core._cache import judge_disk_entry
from stacktoken.core._cache_codec import format_rfc3339
from stacktoken.core._errors import AcquireError, LocalError, UsageError
from stacktoken.core._paths import (
    CLIENTS_FOLDER,
    PROFILES_FOLDER,
    Segments,
    client_paths,
    name_error,
    organizations_folder,
    stack_files,
    stacks_folder,
)
from stacktoken.core._text import escaped
from stacktoken.core._time import datetime, timedelta
from stacktoken.core._types import Settings, StackKey

from ._config import current_profile, default_cache_dir, settings_from
from ._failures import failures_of
from ._files import Place, remove_file
from ._stores import read_cache_entry

__all__ = ["cache_clear", "cache_list"]


def cache_list(
    *,
    config_dir: str,
    profile: str | None,
    cache_dir: str | None,
    environ: Mapping[str, str],
    now: datetime,
) -> Result[str, AcquireError]:
    """One line per entry: whose, its expiry, age and verdict (never the token)."""
    if profile is not None and (invalid := name_error("profile", profile)):
        return Failure(invalid)
    settings = settings_from(None, environ)
    if not isinstance(settings, Settings):
        settings = Settings()
    lines = [
        line
        for key, place in _stack_entries(config_dir, profile)
        if (line := _describe(str(key), place, settings=settings, now=now))
    ]
    lines += [
        line
        for place in _client_entries(cache_dir or default_cache_dir(environ))
        if (line := _describe(None, place, settings=settings, now=now))
    ]
    # Escaped once, whole: every name in a line was read from disk.
    return Success("".join(escaped(line) + "\n" for line in lines) or "no cache entries\n")


def cache_clear(
    *,
    config_dir: str,
    profile: str | None,
    organization: str | None,
    stack: str | None,
    client_id: str | None,
    stack_uri: str | None,
    cache_dir: str | None,
    environ: Mapping[str, str],
) -> Result[str, AcquireError]:
    """Remove the profile's entries (of one organization or stack, if given), or a
    machine credential's (of one stack, if given); says how many."""
    cache_dir = cache_dir or default_cache_dir(environ)
    if client_id is not None or stack_uri is not None:
        return _clear_clients(client_id, stack_uri, cache_dir)
    chosen = current_profile(config_dir, profile, environ)
    if isinstance(chosen, LocalError):
        return Failure(chosen)
    for kind, name in (("profile", chosen), ("organization", organization), ("stack", stack)):
        if name is not None and (invalid := name_error(kind, name)):
            return Failure(invalid)
    places = [
        place
        for key, place in _stack_entries(config_dir, chosen)
        if organization in (None, key.organization) and stack in (None, key.stack)
    ]
    # A remembered failure is forgotten with the entries (docs/design.md §15).
    forgotten = failures_of(cache_dir, ("fctl", chosen, organization, stack))
    return _remove_entries(places + forgotten)


def _folders(root: str, folder: Segments) -> list[str]:
    """The folders in `folder` below `root`, sorted; symlinks are not folders here."""
    try:
        with os.scandir(os.path.join(root, *folder)) as entries:
            return sorted(e.name for e in entries if e.is_dir(follow_symlinks=False))
    except OSError:
        return []


def _stack_entries(config_dir: str, profile: str | None) -> Iterator[tuple[StackKey, Place]]:
    """Every stack cache file under the config dir (of one profile, if given)."""
    for name in [profile] if profile else _folders(config_dir, PROFILES_FOLDER):
        for organization in _folders(config_dir, organizations_folder(name)):
            for stack in _folders(config_dir, stacks_folder(name, organization)):
                key = StackKey(profile=name, organization=organization, stack=stack)
                place = Place(root=config_dir, parts=stack_files(name, organization, stack).cache)
                yield key, place


def _client_entries(cache_dir: str) -> Iterator[Place]:
    """Every machine-credential cache file under the cache dir."""
    for key in _folders(cache_dir, CLIENTS_FOLDER):
        yield Place(root=cache_dir, parts=client_paths(key).cache)


def _describe(shown: str | None, place: Place, *, settings: Settings, now: datetime) -> str | None:
    """One line of `cache list`, not yet escaped; None where a folder holds no entry."""
    read = read_cache_entry(place)
    if read == "no such file":
        return None
    if isinstance(read, str):
        return f"{shown or 'client ' + place.parts[-2][:12]}  unreadable ({read})"
    entry, mtime = read
    if shown is None:
        scopes = f" scopes {' '.join(entry.scopes) or '(none)'}" if entry.scopes is not None else ""
        shown = f"client {entry.client_id or '?'} at {entry.stack_uri or '?'}{scopes}"
    saved_at = entry.saved_at or mtime
    verdict = judge_disk_entry(entry, file_mtime=mtime, settings=settings, now=now)
    expiry = format_rfc3339(entry.expiry) if entry.expiry else "none"
    return f"{shown}  expiry {expiry}  age {_seconds(now - saved_at)}  {verdict.reason}"


def _seconds(delta: timedelta) -> str:
    total = int(delta.total_seconds())
    return f"{total}s" if total >= 0 else f"{total}s (in the future)"


def _clear_clients(
    client_id: str | None, stack_uri: str | None, cache_dir: str
) -> Result[str, AcquireError]:
    if client_id is None:
        return Failure(UsageError(message="--stack-uri narrows --client-id: give --client-id too"))
    uri = stack_uri.rstrip("/") if stack_uri else None
    places = []
    for place in _client_entries(cache_dir):
        read = read_cache_entry(place)
        if isinstance(read, str):
            continue
        entry = read[0]
        if entry.client_id == client_id and uri in (None, entry.stack_uri):
            places.append(place)
    return _remove_entries(places + failures_of(cache_dir, ("client", client_id, uri)))


def _remove_entries(places: list[Place]) -> Result[str, AcquireError]:
    removed = 0
    for place in places:
        match remove_file(place):
            case Success(True):
                removed += 1
            case Failure(error):
                return Failure(error)
    return Success(f"removed {removed} cache {'entry' if removed == 1 else 'entries'}\n")
