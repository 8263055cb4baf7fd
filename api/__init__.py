"""stacktoken: stack API tokens for Formance-style stacks, kept warm on disk.

    from stacktoken import TokenSource, stack_client

    source = TokenSource.from_fctl(profile="default", stack="stk1")
    with stack_client(source) as client:
        client.get("/api/ledger/v2/_info")

The public API is re-exported here. Each name loads on first use (PEP 562),
so `import stacktoken` imports nothing else. httpx loads only when a request
is about to be made, pyjwt (with cryptography) only to verify a signed JWT,
and cattrs, which decodes the cold path's wire formats, never on a warm run.
"""

TYPE_CHECKING = False  # not typing's: importing typing costs a warm run dearly

if TYPE_CHECKING:
    from stacktoken.core._durations import parse_duration
    from stacktoken.core._errors import AcquireError
    from stacktoken.core._failures import FailureKnobs
    from stacktoken.core._renewal import RenewalPolicy
    from stacktoken.core._status import CheckResult, CredentialStatus
    from stacktoken.core._types import CachedToken, Settings, StackKey
    from stacktoken.shell._auth import StackTokenAuth, stack_client
    from stacktoken.shell._exceptions import (
        AuthenticationRequiredError,
        InvalidUsageError,
        LocalStorageError,
        RemoteServerError,
        StackTokenError,
    )
    from stacktoken.shell._http import HttpPolicy
    from stacktoken.shell._login import login
    from stacktoken.shell._logout import LogoutReport, logout
    from stacktoken.shell._redis import RedisStore
    from stacktoken.shell._sdk import formance_sdk
    from stacktoken.shell._source import TokenSource
    from stacktoken.shell._status import status

__all__ = [
    "AcquireError",
    "AuthenticationRequiredError",
    "CachedToken",
    "CheckResult",
    "CredentialStatus",
    "FailureKnobs",
    "HttpPolicy",
    "InvalidUsageError",
    "LocalStorageError",
    "LogoutReport",
    "RedisStore",
    "RemoteServerError",
    "RenewalPolicy",
    "Settings",
    "StackKey",
    "StackTokenAuth",
    "StackTokenError",
    "TokenSource",
    "formance_sdk",
    "login",
    "logout",
    "parse_duration",
    "stack_client",
    "status",
]


# Where each public name lives, for `__getattr__`; tests/test_warm_path_imports.py
# keeps it equal to `__all__`.
_HOMES = {
    "stacktoken.core._durations": "parse_duration",
    "stacktoken.core._errors": "AcquireError",
    "stacktoken.core._failures": "FailureKnobs",
    "stacktoken.core._renewal": "RenewalPolicy",
    "stacktoken.core._status": "CheckResult CredentialStatus",
    "stacktoken.core._types": "CachedToken Settings StackKey",
    "stacktoken.shell._auth": "StackTokenAuth stack_client",
    "stacktoken.shell._exceptions": (
        "AuthenticationRequiredError InvalidUsageError LocalStorageError RemoteServerError"
        " StackTokenError"
    ),
    "stacktoken.shell._http": "HttpPolicy",
    "stacktoken.shell._login": "login",
    "stacktoken.shell._logout": "LogoutReport logout",
    "stacktoken.shell._redis": "RedisStore",
    "stacktoken.shell._sdk": "formance_sdk",
    "stacktoken.shell._source": "TokenSource",
    "stacktoken.shell._status": "status",
}
if not TYPE_CHECKING:  # hidden from mypy, so that a misspelt name stays an error
    # The helper is imported on the first public name asked for (each name is
    # then kept in this module's globals): a warm run imports this package only
    # to reach stacktoken.shell, and never needs it.

    def _exports():
        from stacktoken._lazy import lazy_exports

        return lazy_exports(globals(), _HOMES, __all__)

    def __getattr__(name):
        return _exports()[0](name)

    def __dir__():
        return _exports()[1]()
