"""A Formance sandbox on 127.0.0.1 for your own tests (``pip install 'stacktoken[testing]'``).

    from stacktoken import TokenSource, stack_client

    def test_my_service(formance_sandbox):          # a fixture of the pytest plugin
        client = formance_sandbox.client()         # a machine credential on the stack
        with stack_client(client.token_source()) as http:
            assert http.get("/api/ledger/_/info").status_code == 200

:class:`Sandbox` runs the membership IdP and a stack (auth and a ledger stub)
as Formance's services behave; see the README's "Testing against a sandbox".
"""

from stacktoken.testing._clock import SimulatedClock
from stacktoken.testing._ledger import LedgerCall, LedgerStub
from stacktoken.testing._sandbox import ENDPOINTS, Hold, Sandbox, SandboxClient
from stacktoken.testing._servers import (
    ConfidentialClient,
    DeviceAuthorization,
    Fault,
    FctlProfile,
    IssuedToken,
    MembershipServer,
    StackAuthServer,
    decode_jwt_unverified,
    write_fctl_profile,
)

__all__ = [
    "ENDPOINTS",
    "ConfidentialClient",
    "DeviceAuthorization",
    "Fault",
    "FctlProfile",
    "Hold",
    "IssuedToken",
    "LedgerCall",
    "LedgerStub",
    "MembershipServer",
    "Sandbox",
    "SandboxClient",
    "SimulatedClock",
    "StackAuthServer",
    "decode_jwt_unverified",
    "write_fctl_profile",
]
