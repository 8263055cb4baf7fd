"""stacktoken: stack API tokens for Formance-style stacks, kept warm on disk.

    from stacktoken import TokenSource, stack_client

    source = TokenSource.from_fctl(profile="default", stack="stk1")
    with stack_client(source) as client:
        client.get("/api/ledger/v2/_info")

The public API is re-exported here; importing it never imports httpx, pyjwt
or cattrs (they load when first needed).
"""

from typing import TYPE_CHECKING, Any

from stacktoken.core import AcquireError, CachedToken, Settings, StackKey, parse_duration
from stacktoken.shell import (
    AuthenticationRequiredError,
    HttpPolicy,
    InvalidUsageError,
    LocalStorageError,
    RemoteServerError,
    StackTokenError,
    TokenSource,
)

if TYPE_CHECKING:
    from stacktoken.shell import StackTokenAuth, stack_client

__all__ = [
    "AcquireError",
    "AuthenticationRequiredError",
    "CachedToken",
    "HttpPolicy",
    "InvalidUsageError",
    "LocalStorageError",
    "RemoteServerError",
    "Settings",
    "StackKey",
    "StackTokenAuth",
    "StackTokenError",
    "TokenSource",
    "parse_duration",
    "stack_client",
]


def __getattr__(name: str) -> Any:
    if name in ("StackTokenAuth", "stack_client"):
        from stacktoken.shell import _auth

        return getattr(_auth, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
