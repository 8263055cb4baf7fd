"""The loopback OAuth servers of the tests: now stacktoken.testing's (one set of servers).

Kept as a thin module so that existing tests' ``from oauth_servers import ...``
goes on working; new code imports from ``stacktoken.testing``. The pytest
fixtures below are this project's own (users get ``formance_sandbox`` and
friends from the plugin instead).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from stacktoken.testing._servers import (
    CLIENT_CREDENTIALS_GRANT_TYPE,
    DEFAULT_DEVICE_INTERVAL,
    DEFAULT_STACK_AUTH_METHODS,
    DEVICE_CODE_GRANT_TYPE,
    JWT_BEARER_GRANT_TYPE,
    LOGIN_SCOPE,
    LOOPBACK_HOST,
    STACK_ACCESS_SCOPE,
    ClientAuthMethod,
    ClientCredentialsRequest,
    ConfidentialClient,
    DeviceAnswer,
    DeviceAuthorization,
    DevicePoll,
    Fault,
    FctlProfile,
    HTTPRequest,
    HTTPResponse,
    IdTokenDefect,
    IssuedToken,
    LoopbackOAuthServer,
    MembershipServer,
    RecordedRequest,
    StackAuthServer,
    decode_jwt_unverified,
    new_rsa_key,
    org_claim,
    write_fctl_profile,
)

__all__ = [
    "CLIENT_CREDENTIALS_GRANT_TYPE",
    "ClientAuthMethod",
    "ClientCredentialsRequest",
    "ConfidentialClient",
    "DEFAULT_DEVICE_INTERVAL",
    "DEFAULT_STACK_AUTH_METHODS",
    "DEVICE_CODE_GRANT_TYPE",
    "DeviceAnswer",
    "DeviceAuthorization",
    "DevicePoll",
    "Fault",
    "FctlProfile",
    "HTTPRequest",
    "HTTPResponse",
    "IdTokenDefect",
    "IssuedToken",
    "JWT_BEARER_GRANT_TYPE",
    "LOGIN_SCOPE",
    "LOOPBACK_HOST",
    "LoopbackOAuthServer",
    "MembershipServer",
    "RecordedRequest",
    "STACK_ACCESS_SCOPE",
    "StackAuthServer",
    "decode_jwt_unverified",
    "fctl_profile",
    "membership_server",
    "new_rsa_key",
    "org_claim",
    "stack_oauth_client",
    "stack_server",
    "write_fctl_profile",
]


@pytest.fixture
def membership_server() -> Iterator[MembershipServer]:
    """A started :class:`MembershipServer`, stopped after the test."""
    with MembershipServer() as server:
        yield server


@pytest.fixture
def stack_server(membership_server: MembershipServer) -> Iterator[StackAuthServer]:
    """A started :class:`StackAuthServer` trusting ``membership_server``."""
    with StackAuthServer(membership_server) as server:
        yield server


@pytest.fixture
def stack_oauth_client(stack_server: StackAuthServer) -> ConfidentialClient:
    """A confidential client ``svc-<hex>`` with a random secret on ``stack_server``
    (both secret methods, scopes ``ledger:read ledger:write``)."""
    return stack_server.add_client(f"svc-{secrets.token_hex(4)}", secrets.token_urlsafe(24))


@pytest.fixture
def fctl_profile(
    tmp_path: Path, membership_server: MembershipServer, stack_server: StackAuthServer
) -> FctlProfile:
    """fctl layout under ``tmp_path / "fctl"`` for default/orgA/stk1."""
    return write_fctl_profile(tmp_path / "fctl", membership_server, stack_server)
