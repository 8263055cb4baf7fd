"""fctl's config.yml and profile.json, and which organization and stack (design.md §3.1-3.2)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from stacktoken.core._errors import AuthRequired, UsageError
from stacktoken.core._profile import (
    Organization,
    Profile,
    StackRef,
    decode_current_profile,
    decode_profile,
    resolve_organization,
    resolve_stack,
    stack_uri,
)
from stacktoken.core._record import replace


def _profile(
    *,
    orgs: tuple[str, ...] = ("orgA",),
    default_org: str | None = None,
    default_stack: str | None = None,
) -> Profile:
    return Profile(
        name="default",
        membership_uri="https://app.formance.cloud/api",
        logged_in=True,
        organizations=tuple(
            Organization(id=org, stacks=(StackRef(id="stk1", uri=f"https://{org}-stk1.example"),))
            for org in orgs
        ),
        default_organization=default_org,
        default_stack=default_stack,
    )


ORGANIZATIONS = [
    ("flag wins over default", _profile(orgs=("a", "b"), default_org="b"), "a", "a"),
    ("default wins over the only org", _profile(orgs=("a",), default_org="b"), None, "b"),
    ("the only organization", _profile(orgs=("a",)), None, "a"),
    # docs/design.md §3.6: an empty name is refused (by the path check), never read as "no flag".
    ("empty flag is a name, kept for the name check", _profile(orgs=("a",)), "", ""),
]


@pytest.mark.parametrize(("case", "profile", "flag", "chosen"), ORGANIZATIONS)
def test_resolve_organization_flag_then_default_then_only(
    case: str, profile: Profile, flag: str | None, chosen: str
) -> None:
    assert resolve_organization(profile, flag) == chosen, case


@pytest.mark.parametrize(
    ("profile", "found"),
    [(_profile(orgs=()), "no organization"), (_profile(orgs=("a", "b")), "several organizations")],
)
def test_resolve_organization_none_or_several_is_a_usage_error(
    profile: Profile, found: str
) -> None:
    error = resolve_organization(profile, None)
    assert isinstance(error, UsageError)
    assert found in error.message
    assert "--organization" in error.message


def test_resolve_stack_flag_then_default_then_only() -> None:
    assert resolve_stack(_profile(default_stack="s"), "orgA", "f") == "f"
    assert resolve_stack(_profile(default_stack="s"), "orgA", None) == "s"
    # fctl's ResolveStackID: the organization's only stack.
    assert resolve_stack(_profile(), "orgA", None) == "stk1"
    two_stacks = replace(
        _profile(),
        organizations=(
            Organization(
                id="orgA", stacks=(StackRef(id="s1", uri=None), StackRef(id="s2", uri=None))
            ),
        ),
    )
    for profile, organization, found in (
        (_profile(), "orgB", "no stack"),
        (two_stacks, "orgA", "several stacks"),
    ):
        missing = resolve_stack(profile, organization, None)
        assert isinstance(missing, UsageError)
        assert found in missing.message
        assert "--stack" in missing.message


PROFILE_JSON: dict[str, Any] = {
    "membershipURI": "https://app.formance.cloud/api",
    "rootTokens": {
        "accessToken": {"token": "jwt", "claims": {}, "refreshToken": "r"},
        "idToken": {
            "token": "jwt",
            "claims": {
                "sub": "u",
                "org": [
                    {
                        "id": "orgA",
                        "displayName": "A",
                        "stacks": [
                            {"id": "stk1", "uri": "https://orga-stk1.formance.cloud", "scopes": []},
                            {"id": "nouri"},
                        ],
                        "applications": [],
                    }
                ],
            },
        },
    },
    "defaultOrganization": "orgA",
    "defaultStack": "stk1",
}


def test_decode_profile_reads_what_fctl_writes() -> None:
    profile = decode_profile("default", json.dumps(PROFILE_JSON).encode())
    assert profile == Profile(
        name="default",
        membership_uri="https://app.formance.cloud/api",
        logged_in=True,
        organizations=(
            Organization(
                id="orgA",
                stacks=(
                    StackRef(id="stk1", uri="https://orga-stk1.formance.cloud"),
                    StackRef(id="nouri", uri=None),
                ),
            ),
        ),
        default_organization="orgA",
        default_stack="stk1",
        id_token="jwt",
    )
    assert isinstance(profile, Profile)
    assert stack_uri(profile, "orgA", "stk1") == "https://orga-stk1.formance.cloud"


@pytest.mark.parametrize("root_tokens", [None, {}, "absent"])
def test_decode_profile_without_root_tokens_is_logged_out(root_tokens: object) -> None:
    document = {key: value for key, value in PROFILE_JSON.items() if key != "rootTokens"}
    if root_tokens != "absent":
        document["rootTokens"] = root_tokens
    profile = decode_profile("p", json.dumps(document).encode())
    assert isinstance(profile, Profile)
    assert not profile.logged_in
    error = stack_uri(profile, "orgA", "stk1")
    assert isinstance(error, AuthRequired)
    assert "stacktoken login" in error.message


@pytest.mark.parametrize("data", [b"", b"{", b"[]", b"null", b"\xff"])
def test_decode_profile_unreadable_means_log_in_again(data: bytes) -> None:
    assert isinstance(decode_profile("p", data), AuthRequired)


@pytest.mark.parametrize(
    ("organization", "stack"), [("orgA", "nouri"), ("orgA", "other"), ("orgB", "stk1")]
)
def test_stack_uri_unknown_or_without_uri_is_auth_required(organization: str, stack: str) -> None:
    profile = decode_profile("default", json.dumps(PROFILE_JSON).encode())
    assert isinstance(profile, Profile)
    assert isinstance(stack_uri(profile, organization, stack), AuthRequired)


CURRENT = [
    (None, "default"),
    (b'{"currentProfile": "work", "uniqueID": "x"}', "work"),
    (b'{"currentProfile": ""}', "default"),
    (b'{"currentProfile": 5}', "default"),
    (b"{}", "default"),
    (b"not json", "default"),
]


@pytest.mark.parametrize(("data", "name"), CURRENT)
def test_decode_current_profile_defaults_to_default(data: bytes | None, name: str) -> None:
    assert decode_current_profile(data) == name
