"""stacktoken: stack API tokens for Formance-style stacks, kept warm on disk.

    from stacktoken import TokenSource, stack_client

    source = TokenSource.from_fctl(profile="default", stack="stk1")
    with stack_client(source) as client:
        client.get("/api/ledger/v2/_info")

The public API is re-exported here. Each name loads on first use (PEP 562),
so `import stacktoken` imports nothing else, and httpx, pyjwt and cattrs load
only when a request, a JWT or a cold-path message needs them.
"""

TYPE_CHECKING = False  # not typing's: importing typing costs a warm run dearly

if TYPE_CHECKING:
    from stacktoken.core import (
        AcquireError,
        CachedToken,
        RenewalPolicy,
        Settings,
        StackKey,
        parse_duration,
    )
    from stacktoken.shell import (
        AuthenticationRequiredError,
        HttpPolicy,
        InvalidUsageError,
        LocalStorageError,
        RedisStore,
        RemoteServerError,
        StackTokenAuth,
        StackTokenError,
        TokenSource,
        formance_sdk,
        stack_client,
    )
    from stacktoken.shell._login import login

__all__ = [
    "AcquireError",
    "AuthenticationRequiredError",
    "CachedToken",
    "HttpPolicy",
    "InvalidUsageError",
    "LocalStorageError",
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
    "parse_duration",
    "stack_client",
]


# Where each public name lives, for `__getattr__`; tests/test_warm_path_imports.py
# keeps it equal to `__all__`.
_HOMES = {
    "stacktoken.core": "AcquireError CachedToken RenewalPolicy Settings StackKey parse_duration",
    "stacktoken.shell": (
        "AuthenticationRequiredError HttpPolicy InvalidUsageError LocalStorageError"
        " RedisStore RemoteServerError StackTokenAuth StackTokenError TokenSource formance_sdk"
        " stack_client"
    ),
    "stacktoken.shell._login": "login",
}
if not TYPE_CHECKING:  # hidden from mypy, so that a misspelt name stays an error
    from stacktoken.core._exports import lazy_exports

    __getattr__, __dir__ = lazy_exports(globals(), _HOMES, __all__)
