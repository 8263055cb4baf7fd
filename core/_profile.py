"""fctl's `config.yml` and `profile.json`, and which organization and stack to use.

Both files are read on every run, warm ones included, so they are decoded with
the stdlib: only the few fields stacktoken needs are looked at, and any other
content is left alone (stacktoken never writes these files).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._errors import AuthRequired, UsageError

if TYPE_CHECKING:
    from returns.result import Result

__all__ = [
    "DEFAULT_PROFILE",
    "LOGIN_HINT",
    "Organization",
    "Profile",
    "StackRef",
    "decode_current_profile",
    "decode_profile",
    "decode_profile_or_error",
    "resolve_organization",
    "resolve_organization_or_error",
    "resolve_stack",
    "resolve_stack_or_error",
    "stack_uri",
]

DEFAULT_PROFILE = "default"
LOGIN_HINT = "log in again with `fctl login`"


@dataclass(frozen=True, slots=True, kw_only=True)
class StackRef:
    id: str
    uri: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Organization:
    id: str
    stacks: tuple[StackRef, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile:
    """What stacktoken needs of `profile.json`."""

    name: str
    membership_uri: str | None
    logged_in: bool
    organizations: tuple[Organization, ...]
    default_organization: str | None
    default_stack: str | None


def decode_current_profile(data: bytes | None) -> str:
    """The profile `config.yml` names; a missing or unreadable file means `default`."""
    if data is None:
        return DEFAULT_PROFILE
    document = _json_object(data)
    current = document.get("currentProfile") if document is not None else None
    return current if isinstance(current, str) and current else DEFAULT_PROFILE


def decode_profile(name: str, data: bytes) -> Result[Profile, AuthRequired]:
    """Decode `profile.json`; a file we cannot use means the user must log in again."""
    from returns.result import Failure, Success

    decoded = decode_profile_or_error(name, data)
    return Failure(decoded) if isinstance(decoded, AuthRequired) else Success(decoded)


def decode_profile_or_error(name: str, data: bytes) -> Profile | AuthRequired:
    """`decode_profile` without the `Result`, for the warm path (which does not import returns)."""
    document = _json_object(data)
    if document is None:
        return AuthRequired(message=f"profile {name!r} is unreadable; {LOGIN_HINT}")
    root_tokens = document.get("rootTokens")
    claims = _path(root_tokens, "idToken", "claims")
    organizations = tuple(
        org for item in _list(_dict(claims).get("org")) if (org := _organization(item)) is not None
    )
    return Profile(
        name=name,
        membership_uri=_str(document.get("membershipURI")),
        logged_in=isinstance(root_tokens, dict) and bool(root_tokens),
        organizations=organizations,
        default_organization=_str(document.get("defaultOrganization")),
        default_stack=_str(document.get("defaultStack")),
    )


def resolve_organization(profile: Profile, flag: str | None) -> Result[str, UsageError]:
    """`--organization`, else the profile's default, else its only organization (as fctl)."""
    from returns.result import Failure, Success

    chosen = resolve_organization_or_error(profile, flag)
    return Failure(chosen) if isinstance(chosen, UsageError) else Success(chosen)


def resolve_organization_or_error(profile: Profile, flag: str | None) -> str | UsageError:
    """`resolve_organization` without the `Result`, for the warm path.

    A flag given empty is kept: the name check refuses it (DESIGN §3.6), so that
    `--organization "$ORG"` with ORG unset never quietly means the default.
    """
    if flag is not None:
        return flag
    if profile.default_organization:
        return profile.default_organization
    if len(profile.organizations) == 1:
        return profile.organizations[0].id
    found = "no organization" if not profile.organizations else "several organizations"
    return UsageError(
        message=f"profile {profile.name!r} has {found}; choose one with --organization"
    )


def resolve_stack(profile: Profile, flag: str | None) -> Result[str, UsageError]:
    """`--stack`, else the profile's default stack."""
    from returns.result import Failure, Success

    chosen = resolve_stack_or_error(profile, flag)
    return Failure(chosen) if isinstance(chosen, UsageError) else Success(chosen)


def resolve_stack_or_error(profile: Profile, flag: str | None) -> str | UsageError:
    """`resolve_stack` without the `Result`, for the warm path (an empty flag is kept)."""
    if flag is not None:
        return flag
    if profile.default_stack:
        return profile.default_stack
    return UsageError(
        message=f"profile {profile.name!r} has no default stack; choose one with --stack"
    )


def stack_uri(profile: Profile, organization: str, stack: str) -> Result[str, AuthRequired]:
    """The stack's URI from the ID-token claims `org[].stacks[].uri`."""
    from returns.result import Failure, Success

    if not profile.logged_in:
        return Failure(
            AuthRequired(message=f"profile {profile.name!r} is not logged in; {LOGIN_HINT}")
        )
    for org in profile.organizations:
        if org.id != organization:
            continue
        for ref in org.stacks:
            if ref.id == stack and ref.uri:
                return Success(ref.uri)
    return Failure(
        AuthRequired(
            message=f"profile {profile.name!r} has no access to stack {stack!r} of organization "
            f"{organization!r}; {LOGIN_HINT} if it was granted since"
        )
    )


def _organization(item: Any) -> Organization | None:
    org_id = _str(_dict(item).get("id"))
    if org_id is None:
        return None
    stacks = tuple(
        StackRef(id=stack_id, uri=_str(_dict(entry).get("uri")))
        for entry in _list(_dict(item).get("stacks"))
        if (stack_id := _str(_dict(entry).get("id"))) is not None
    )
    return Organization(id=org_id, stacks=stacks)


def _json_object(data: bytes) -> dict[str, Any] | None:
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return document if isinstance(document, dict) else None


def _path(value: Any, *keys: str) -> Any:
    for key in keys:
        value = _dict(value).get(key)
    return value


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
