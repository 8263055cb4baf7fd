"""Logging out: RFC 7009 revocation messages and the profile rewritten (docs/design.md §14).

The membership IdP revokes a refresh token of its public client `fctl`; a
stack revokes a client-credentials token for the client that authenticates
as for its token request (RFC 7009 section 2.1). `revocation_endpoint` comes from
the discovery document (RFC 8414 section 2); a provider without one revokes nothing.
"""

from __future__ import annotations

import json
from typing import Any

from ._json import json_object
from ._requests import FCTL_CLIENT_ID, client_credentials_request
from ._text import one_line
from ._types import ClientCredentials, DiscoveryDocument, TokenRequest
from ._urls import endpoint_url_refusal, safe_url

__all__ = [
    "cleared_profile",
    "client_revocation_request",
    "interpret_revocation",
    "refresh_revocation_request",
    "refresh_tokens_of_profile",
    "revocation_endpoint",
]


def revocation_endpoint(discovery_body: bytes) -> str | None:
    """The discovery document's `revocation_endpoint`; None when it names none,
    or one our transport rules refuse (neither https nor loopback)."""
    document = json_object(discovery_body)
    if isinstance(document, str):
        return None
    value = document.get("revocation_endpoint")
    if not isinstance(value, str) or not value:
        return None
    return value if endpoint_url_refusal(value) is None else None


def refresh_revocation_request(endpoint: str, refresh_token: str) -> TokenRequest:
    """RFC 7009 section 2.1 for a membership refresh token of the public client `fctl`."""
    return TokenRequest(
        url=endpoint,
        form=(
            ("token", refresh_token),
            ("token_type_hint", "refresh_token"),
            ("client_id", FCTL_CLIENT_ID),
        ),
        secrets=(refresh_token,),
    )


def client_revocation_request(
    endpoint: str, document: DiscoveryDocument, credentials: ClientCredentials, token: str
) -> TokenRequest:
    """RFC 7009 section 2.1 for a client-credentials token, the client authenticated
    as for its token request (`client_secret_basic` or `client_secret_post`)."""
    authenticated = client_credentials_request(
        document,
        client_id=credentials.client_id,
        client_secret=credentials.client_secret,
        scopes=(),
    )
    # Keep the client authentication, swap the grant for the revocation form.
    auth_form = tuple(pair for pair in authenticated.form if pair[0] != "grant_type")
    return TokenRequest(
        url=endpoint,
        form=(("token", token), ("token_type_hint", "access_token"), *auth_form),
        headers=authenticated.headers,
        secrets=(*authenticated.secrets, token),
    )


def interpret_revocation(status_code: int, body: bytes, *, url: str) -> str | None:
    """None when the token is revoked (RFC 7009 section 2.2: 200, also for a token the
    server no longer knows), else why not, on one line, never quoting the body's
    secrets (only an RFC 6749 section 5.2 `error` code is shown)."""
    if status_code == 200:
        return None
    document = json_object(body)
    error = document.get("error") if isinstance(document, dict) else None
    code = f" {one_line(error, limit=60)}" if isinstance(error, str) and error.isascii() else ""
    return f"{safe_url(url)} answered {status_code}{code}"


def refresh_tokens_of_profile(profile_json: bytes) -> str | None:
    """The root refresh token `profile.json` holds (`rootTokens.accessToken.refreshToken`)."""
    document = json_object(profile_json)
    if isinstance(document, str):
        return None
    root = document.get("rootTokens")
    access = root.get("accessToken") if isinstance(root, dict) else None
    token = access.get("refreshToken") if isinstance(access, dict) else None
    return token if isinstance(token, str) and token else None


def cleared_profile(profile_json: bytes) -> bytes | None:
    """`profile.json` logged out as fctl's decoder reads it: `rootTokens` null,
    every other key kept; None when the file is not a JSON object (left alone)."""
    document: dict[str, Any] | str = json_object(profile_json)
    if isinstance(document, str):
        return None
    cleared = dict(document)
    cleared["rootTokens"] = None
    return json.dumps(cleared, indent=2).encode("utf-8")
