"""stacktoken's imperative shell: files, HTTP, discovery, clock, logging, the facade, the CLI.

`StackTokenAuth` and `stack_client` need httpx, so they are loaded on first
access: importing this package never imports the HTTP stack.
"""

from typing import TYPE_CHECKING, Any

from ._exceptions import (
    AuthenticationRequiredError,
    InvalidUsageError,
    LocalStorageError,
    RemoteServerError,
    StackTokenError,
)
from ._http import HttpPolicy
from ._source import TokenSource

if TYPE_CHECKING:
    from ._auth import StackTokenAuth, stack_client

__all__ = [
    "AuthenticationRequiredError",
    "HttpPolicy",
    "InvalidUsageError",
    "LocalStorageError",
    "RemoteServerError",
    "StackTokenAuth",
    "StackTokenError",
    "TokenSource",
    "stack_client",
]


def __getattr__(name: str) -> Any:
    if name in ("StackTokenAuth", "stack_client"):
        from . import _auth

        return getattr(_auth, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
