"""fctl's files: where they are, which stack they name, and effects bound to them.

This is the composition root for a stack known to an fctl profile: it binds
core's `Effects` to the stack's files, the shared HTTP client, discovery and
the lazy membership discovery.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from returns.result import Failure, Result, Success
from stacktoken.core import (
    CONFIG_FILE,
    LOGIN_HINT,
    PROFILE_FILE,
    AcquireError,
    AuthRequired,
    CachedToken,
    CacheRead,
    DiscoveryDocument,
    Effects,
    LocalError,
    Profile,
    Settings,
    StackAccess,
    StackKey,
    StackPaths,
    TokenRequest,
    TokenResponse,
    decode_accesses,
    decode_cache_entry,
    decode_current_profile,
    decode_profile,
    encode_accesses,
    encode_cache_entry,
    interpret_token_response,
    membership_discovery,
    profile_folder,
    resolve_organization,
    resolve_stack,
    stack_discovery,
    stack_paths,
    stack_uri,
    validate_name,
)

from ._discovery import DiscoveryCache, discover
from ._files import locked, read_plain, read_private, remove_file, write_atomic
from ._http import Http, HttpAnswer
from ._lazy import Lazy

__all__ = [
    "FctlStack",
    "bind_fctl_effects",
    "config_dir_from",
    "current_profile",
    "forget_cached",
    "load_profile",
    "locate_stack",
    "post_token",
]


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
    """`--profile`, else the profile `config.yml` names, else `default`."""
    return flag or decode_current_profile(read_plain(config_dir / CONFIG_FILE))


def load_profile(config_dir: Path, name: str) -> Result[Profile, AcquireError]:
    """Read and decode `profiles/<name>/profile.json`."""
    valid = validate_name("profile", name)
    if isinstance(valid, Failure):
        return valid
    data = read_plain(config_dir / profile_folder(name) / PROFILE_FILE)
    if data is None:
        return Failure(AuthRequired(message=f"profile {name!r} is not logged in; {LOGIN_HINT}"))
    return decode_profile(name, data)


@dataclass(frozen=True, slots=True, kw_only=True)
class FctlStack:
    """A stack of an fctl profile: its key, its profile and its files."""

    key: StackKey
    profile: Profile
    root: Path
    paths: StackPaths


def locate_stack(
    config_dir: Path, *, profile: str | None, organization: str | None, stack: str | None
) -> Result[FctlStack, AcquireError]:
    """Resolve profile, organization and stack as fctl does, and the stack's files."""
    name = current_profile(config_dir, profile)

    def with_profile(loaded: Profile) -> Result[FctlStack, AcquireError]:
        organization_id: Result[str, AcquireError] = resolve_organization(loaded, organization)
        key: Result[StackKey, AcquireError] = organization_id.bind(
            lambda org: resolve_stack(loaded, stack).map(
                lambda stack_id: StackKey(profile=name, organization=org, stack=stack_id)
            )
        )
        return key.bind(
            lambda valid: stack_paths(valid).map(
                lambda paths: FctlStack(key=valid, profile=loaded, root=config_dir, paths=paths)
            )
        )

    return load_profile(config_dir, name).bind(with_profile)


def post_token(http: Http, request: TokenRequest) -> Result[TokenResponse, AcquireError]:
    """Send a token request and read the answer (RFC 6749 §5)."""
    answered: Result[HttpAnswer, AcquireError] = http.post_form(request.url, request.form)
    return answered.bind(
        lambda answer: interpret_token_response(
            answer.status_code, answer.body, request=request, sent_at=answer.sent_at
        )
    )


def bind_fctl_effects(
    stack: FctlStack,
    *,
    settings: Settings,
    http: Http,
    discovery_cache: DiscoveryCache,
    clock: Callable[[], datetime],
    log: Callable[[str], None],
) -> Effects:
    """Core's effects for a stack of an fctl profile."""
    cache_file = stack.root / stack.paths.cache
    accesses_file = stack.root / stack.paths.accesses

    def read_cache() -> Result[CacheRead, str]:
        return read_private(cache_file).bind(
            lambda found: decode_cache_entry(found[0]).map(lambda entry: (entry, found[1]))
        )

    def write_cache(entry: CachedToken) -> Result[None, LocalError]:
        return write_atomic(cache_file, encode_cache_entry(entry), sweep=True)

    def run_locked(
        body: Callable[[], Result[CachedToken, AcquireError]],
    ) -> Result[CachedToken, AcquireError]:
        return locked(stack.root / stack.paths.lock, body, log=log)

    def read_access() -> Result[StackAccess, AcquireError]:
        found = read_private(accesses_file)
        if isinstance(found, Success):
            return decode_accesses(found.unwrap()[0]).alt(
                lambda reason: AuthRequired(
                    message=f"the stack access token of {stack.key} is unreadable "
                    f"({reason}); {LOGIN_HINT}"
                )
            )
        if found.failure() == "no such file":
            return Failure(
                AuthRequired(message=f"no stack access token for {stack.key}; {LOGIN_HINT}")
            )
        return Failure(LocalError(message=f"cannot use {accesses_file}: {found.failure()}"))

    def write_access(access: StackAccess) -> Result[None, AcquireError]:
        # Sweeping leftovers is safe only under the lock, which TTL 0 does not take.
        return write_atomic(
            accesses_file, encode_accesses(access), sweep=settings.disk_cache_enabled
        )

    def discover_stack(refresh: bool) -> Result[DiscoveryDocument, AcquireError]:
        uri: Result[str, AcquireError] = stack_uri(
            stack.profile, stack.key.organization, stack.key.stack
        )
        return uri.bind(
            lambda uri: discover(
                stack_discovery(uri), http=http, cache=discovery_cache, clock=clock, refresh=refresh
            )
        )

    def discover_membership_now() -> Result[DiscoveryDocument, AcquireError]:
        uri = stack.profile.membership_uri
        if uri is None:
            return Failure(
                AuthRequired(
                    message=f"profile {stack.key.profile!r} has no membership URI; {LOGIN_HINT}"
                )
            )
        return discover(membership_discovery(uri), http=http, cache=discovery_cache, clock=clock)

    membership: Lazy[DiscoveryDocument, AcquireError] = Lazy(discover_membership_now)

    return Effects(
        clock=clock,
        log=log,
        read_cache=read_cache,
        write_cache=write_cache,
        locked=run_locked,
        read_access=read_access,
        write_access=write_access,
        discover_stack=discover_stack,
        exchange=lambda request: post_token(http, request),
        discover_membership=membership.get,
        refresh=lambda request: post_token(http, request),
    )


def forget_cached(stack: FctlStack) -> Result[bool, LocalError]:
    """Remove the stack's disk cache entry."""
    return remove_file(stack.root / stack.paths.cache)
