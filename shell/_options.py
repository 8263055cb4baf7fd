"""What the command line and the environment choose: fctl's config dir, the
profile, organization and stack, and the cache TTL (DESIGN §3, §3.1, §3.2, §4).

Every run starts here, warm ones included, so this module uses the stdlib
only: its functions return the value or the error value itself, and
`_fctl`/`_source` wrap them in `Result`s for the cold path.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from stacktoken.core import (
    CONFIG_FILE,
    LOGIN_HINT,
    PROFILE_FILE,
    AuthRequired,
    Profile,
    Settings,
    StackKey,
    StackPaths,
    UsageError,
    decode_current_profile,
    decode_profile_or_error,
    name_error,
    parse_ttl_or_error,
    profile_folder,
    resolve_organization_or_error,
    resolve_stack_or_error,
    stack_paths_or_error,
)

from ._files import read_plain

__all__ = [
    "TTL_ENV",
    "FctlStack",
    "config_dir_from",
    "current_profile",
    "load_profile_or_error",
    "locate_stack_or_error",
    "settings_or_error",
]

TTL_ENV = "STACK_TOKEN_CACHE_TTL"


def config_dir_from(flag: str | None, environ: Mapping[str, str]) -> Path:
    """`--config-dir`, else `FCTL_CONFIG_DIR`, else `$XDG_CONFIG_HOME/formance/fctl`,
    else `~/.config/formance/fctl` (fctl's default on every OS)."""
    if flag:
        return Path(flag)
    if configured := environ.get("FCTL_CONFIG_DIR"):
        return Path(configured)
    if xdg := environ.get("XDG_CONFIG_HOME"):
        return Path(xdg) / "formance" / "fctl"
    return Path(os.path.expanduser("~")) / ".config" / "formance" / "fctl"


def current_profile(config_dir: Path, flag: str | None) -> str:
    """`--profile`, else the profile `config.yml` names, else `default`.

    `--profile ""` is kept, for the name check to refuse (DESIGN §3.6)."""
    if flag is not None:
        return flag
    return decode_current_profile(read_plain(config_dir / CONFIG_FILE))


def settings_or_error(
    ttl: str | timedelta | None, environ: Mapping[str, str]
) -> Settings | UsageError:
    """Settings from `--stack-token-cache-ttl`, else `STACK_TOKEN_CACHE_TTL`, else 5 min."""
    if isinstance(ttl, timedelta):
        if ttl < timedelta(0):  # as `parse_ttl` refuses "-5m"
            return UsageError(message=f"invalid cache TTL {ttl}: must not be negative")
        return Settings(cache_ttl=ttl)
    text = ttl if ttl is not None else environ.get(TTL_ENV)
    if text is None:
        return Settings()
    parsed = parse_ttl_or_error(text)
    return parsed if isinstance(parsed, UsageError) else Settings(cache_ttl=parsed)


@dataclass(frozen=True, slots=True, kw_only=True)
class FctlStack:
    """A stack of an fctl profile: its key, its profile and its files."""

    key: StackKey
    profile: Profile
    root: Path
    paths: StackPaths


def load_profile_or_error(config_dir: Path, name: str) -> Profile | UsageError | AuthRequired:
    """Read and decode `profiles/<name>/profile.json` of a logged-in profile."""
    invalid = name_error("profile", name)
    if invalid is not None:
        return invalid
    data = read_plain(config_dir / profile_folder(name) / PROFILE_FILE)
    if data is None:
        return AuthRequired(message=f"profile {name!r} is not logged in; {LOGIN_HINT}")
    profile = decode_profile_or_error(name, data)
    # Checked before the disk cache: after `fctl logout` (rootTokens null) a
    # warm entry must not keep serving tokens.
    if isinstance(profile, Profile) and not profile.logged_in:
        return AuthRequired(message=f"profile {name!r} is not logged in; {LOGIN_HINT}")
    return profile


def locate_stack_or_error(
    config_dir: Path, *, profile: str | None, organization: str | None, stack: str | None
) -> FctlStack | UsageError | AuthRequired:
    """Resolve profile, organization and stack as fctl does, and the stack's files."""
    name = current_profile(config_dir, profile)
    loaded = load_profile_or_error(config_dir, name)
    if not isinstance(loaded, Profile):
        return loaded
    organization_id = resolve_organization_or_error(loaded, organization)
    if isinstance(organization_id, UsageError):
        return organization_id
    stack_id = resolve_stack_or_error(loaded, stack)
    if isinstance(stack_id, UsageError):
        return stack_id
    key = StackKey(profile=name, organization=organization_id, stack=stack_id)
    paths = stack_paths_or_error(key)
    if isinstance(paths, UsageError):
        return paths
    return FctlStack(key=key, profile=loaded, root=config_dir, paths=paths)
