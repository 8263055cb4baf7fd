"""fctl's `config.yml` and `profile.json`, read and written, and which
organization and stack to use.

Both files are read on every run, warm ones included, so they are decoded
without cattrs: only the few fields stacktoken needs are looked at. Decoders
and resolvers return the value or the error value itself (no `Result`, which
a warm run cannot afford to import). A login writes them as fctl does
(`encode_profile`, `encode_config`).
"""

from ._errors import AuthRequired, UsageError
from ._json import json_object
from ._record import Record, secret

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

__all__ = [
    "DEFAULT_PROFILE",
    "LOGIN_HINT",
    "LoginTokens",
    "Organization",
    "Profile",
    "StackRef",
    "decode_current_profile",
    "decode_profile",
    "encode_config",
    "encode_profile",
    "resolve_organization",
    "resolve_stack",
    "stack_uri",
]

DEFAULT_PROFILE = "default"
LOGIN_HINT = (
    "log in again with `stacktoken login` (for a profile fctl made, `fctl login` works too)"
)


class StackRef(Record):
    """A stack the ID token grants: `org[].stacks[]`."""

    id: str
    uri: "str | None"
    scopes: "tuple[str, ...]" = ()


class Organization(Record):
    id: str
    stacks: "tuple[StackRef, ...]"


class Profile(Record):
    """What stacktoken needs of `profile.json`."""

    name: str
    membership_uri: "str | None"
    logged_in: bool
    organizations: "tuple[Organization, ...]"
    default_organization: "str | None"
    default_stack: "str | None"
    id_token: "str | None" = secret(default=None)

    def stack(self, organization: str, stack: str) -> "StackRef | None":
        """The stack of that organization the ID token names, if any."""
        for org in self.organizations:
            if org.id == organization:
                for ref in org.stacks:
                    if ref.id == stack:
                        return ref
        return None


def decode_current_profile(data: "bytes | None") -> str:
    """The profile `config.yml` names; a missing or unreadable file means `default`."""
    if data is None:
        return DEFAULT_PROFILE
    document = json_object(data)
    current = document.get("currentProfile") if isinstance(document, dict) else None
    return current if isinstance(current, str) and current else DEFAULT_PROFILE


def decode_profile(name: str, data: bytes) -> "Profile | AuthRequired":
    """Decode `profile.json`; a file we cannot use means the user must log in again."""
    document = json_object(data)
    if isinstance(document, str):
        return AuthRequired(message=f"profile {name!r} is unreadable ({document}); {LOGIN_HINT}")
    root_tokens = document.get("rootTokens")
    id_token = _dict(_dict(root_tokens).get("idToken"))
    organizations = tuple(
        org
        for item in _list(_dict(id_token.get("claims")).get("org"))
        if (org := _organization(item)) is not None
    )
    return Profile(
        name=name,
        membership_uri=_str(document.get("membershipURI")),
        logged_in=isinstance(root_tokens, dict) and bool(root_tokens),
        organizations=organizations,
        default_organization=_str(document.get("defaultOrganization")),
        default_stack=_str(document.get("defaultStack")),
        id_token=_str(id_token.get("token")),
    )


def resolve_organization(profile: Profile, chosen: "str | None") -> "str | UsageError":
    """The organization asked for (flag or `ORGANIZATION`), else the profile's
    default, else its only organization (as fctl).

    A choice given empty is kept: the name check refuses it (docs/design.md §3.6), so
    that `--organization "$ORG"` with ORG unset never quietly means the default.
    """
    if chosen is not None:
        return chosen
    if profile.default_organization:
        return profile.default_organization
    if len(profile.organizations) == 1:
        return profile.organizations[0].id
    found = "no organization" if not profile.organizations else "several organizations"
    return UsageError(
        message=f"profile {profile.name!r} has {found}; choose one with --organization"
        + _choices(org.id for org in profile.organizations)
    )


def resolve_stack(profile: Profile, organization: str, chosen: "str | None") -> "str | UsageError":
    """The stack asked for (flag or `STACK`), else the profile's default stack,
    else the organization's only stack (fctl's `ResolveStackID`)."""
    if chosen is not None:
        return chosen
    if profile.default_stack:
        return profile.default_stack
    stacks = [
        ref.id for org in profile.organizations if org.id == organization for ref in org.stacks
    ]
    if len(stacks) == 1:
        return stacks[0]
    found = "no stack" if not stacks else "several stacks"
    return UsageError(
        message=f"organization {organization!r} of profile {profile.name!r} has {found} and "
        "the profile no default stack; choose one with --stack" + _choices(stacks)
    )


def stack_uri(profile: Profile, organization: str, stack: str) -> "str | AuthRequired":
    """The stack's URI from the ID-token claims `org[].stacks[].uri`."""
    if not profile.logged_in:
        return AuthRequired(message=f"profile {profile.name!r} is not logged in; {LOGIN_HINT}")
    ref = profile.stack(organization, stack)
    if ref is not None and ref.uri:
        return ref.uri
    return AuthRequired(
        message=f"profile {profile.name!r} has no access to stack {stack!r} of organization "
        f"{organization!r}; {LOGIN_HINT} if it was granted since"
    )


def _choices(names: "Any") -> str:
    listed = sorted(names)
    if not listed:
        return ""
    shown = ", ".join(repr(name) for name in listed[:10])
    return f" (one of {shown}{', ...' if len(listed) > 10 else ''})"


def _organization(item: "Any") -> "Organization | None":
    org_id = _str(_dict(item).get("id"))
    if org_id is None:
        return None
    stacks = tuple(
        StackRef(
            id=stack_id,
            uri=_str(_dict(entry).get("uri")),
            scopes=tuple(scope for scope in _list(_dict(entry).get("scopes")) if _str(scope)),
        )
        for entry in _list(_dict(item).get("stacks"))
        if (stack_id := _str(_dict(entry).get("id"))) is not None
    )
    return Organization(id=org_id, stacks=stacks)


def _dict(value: "Any") -> "dict[str, Any]":
    return value if isinstance(value, dict) else {}


def _list(value: "Any") -> "list[Any]":
    return value if isinstance(value, list) else []


def _str(value: "Any") -> "str | None":
    return value if isinstance(value, str) and value else None


# -- what a login writes ----------------------------------------------------------


class LoginTokens(Record):
    """A login's tokens, the ID token verified (`id_claims` are its verified claims)."""

    access_token: str = secret()
    access_claims: "Mapping[str, Any]" = secret()
    refresh_token: "str | None" = secret()
    id_token: str = secret()
    id_claims: "Mapping[str, Any]" = secret()


def encode_profile(
    existing: "Mapping[str, Any] | None", *, membership_uri: str, tokens: LoginTokens
) -> bytes:
    """`profile.json` as fctl's `Profile` struct (pkg/profile.go) is written: unknown
    keys and the defaults kept, `rootTokens` replaced (pkg/authentication.go `Tokens`)."""
    document: dict[str, Any] = dict(existing or {})
    document["membershipURI"] = membership_uri
    access: dict[str, Any] = {"token": tokens.access_token, "claims": dict(tokens.access_claims)}
    access["refreshToken"] = tokens.refresh_token or ""
    document["rootTokens"] = {
        "accessToken": access,
        "idToken": {"token": tokens.id_token, "claims": dict(tokens.id_claims)},
    }
    # Go writes every field of the struct (no omitempty): "" when unset.
    for key in ("defaultOrganization", "defaultStack"):
        if not isinstance(document.get(key), str):
            document[key] = ""
    import json  # a login pays for it, never a warm run

    return json.dumps(document, indent=2).encode("utf-8")


def encode_config(existing: "Mapping[str, Any] | None", *, profile: str, unique_id: str) -> bytes:
    """`config.yml` (JSON, fctl's `Config` struct, pkg/config.go): the logged-in profile
    made current, `uniqueID` kept (`unique_id` is used only when there is none)."""
    document: dict[str, Any] = dict(existing or {})
    document["currentProfile"] = profile
    if not (isinstance(document.get("uniqueID"), str) and document["uniqueID"]):
        document["uniqueID"] = unique_id
    import json  # a login pays for it, never a warm run

    return json.dumps(document, indent=2).encode("utf-8")
