"""A Formance sandbox on 127.0.0.1 for your own tests (``pip install 'stacktoken[testing]'``).

    from stacktoken import TokenSource, stack_client

    def test_my_service(formance_sandbox):          # a fixture of the pytest plugin
        client = formance_sandbox.client()         # a machine credential on the stack
        with stack_client(client.token_source()) as http:
            assert http.get("/api/ledger/_/info").status_code == 200

:class:`Sandbox` runs the membership IdP and a stack (auth and a ledger stub)
as Formance's services behave; see the README's "Testing against a sandbox".
"""

TYPE_CHECKING = False
if TYPE_CHECKING:
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

# Loaded on first use (PEP 562): the pytest plugin (`_plugin`) is imported by
# pytest wherever stacktoken is installed, and must not need this extra's
# packages until a fixture runs.
_HOMES = {
    "stacktoken.testing._clock": "SimulatedClock",
    "stacktoken.testing._ledger": "LedgerCall LedgerStub",
    "stacktoken.testing._sandbox": "ENDPOINTS Hold Sandbox SandboxClient",
    "stacktoken.testing._servers": (
        "ConfidentialClient DeviceAuthorization Fault FctlProfile IssuedToken MembershipServer"
        " StackAuthServer decode_jwt_unverified write_fctl_profile"
    ),
}
INSTALL_HINT = "pip install 'stacktoken[testing]'"

if not TYPE_CHECKING:  # hidden from mypy, so that a misspelt name stays an error
    from stacktoken._lazy import lazy_exports

    _load, __dir__ = lazy_exports(globals(), _HOMES, __all__)

    def __getattr__(name: str) -> object:
        try:
            return _load(name)
        except ModuleNotFoundError as error:
            raise ImportError(
                f"stacktoken.testing needs its extra ({error}): {INSTALL_HINT}"
            ) from None
