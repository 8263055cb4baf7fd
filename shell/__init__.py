"""stacktoken's imperative shell: files, HTTP, discovery, clock, logging, the facade, the CLI.

Each name loads its module on first use (PEP 562): importing this package
imports nothing else, so the warm command path (`_warm`) stays cheap, and the
HTTP stack loads only with `StackTokenAuth`, `stack_client` or a request, and
the official SDK only with `formance_sdk`.
"""

TYPE_CHECKING = False  # not typing's: importing typing costs a warm run dearly

if TYPE_CHECKING:
    from ._auth import StackTokenAuth, stack_client
    from ._exceptions import (
        AuthenticationRequiredError,
        InvalidUsageError,
        LocalStorageError,
        RemoteServerError,
        StackTokenError,
    )
    from ._http import HttpPolicy
    from ._redis import RedisStore
    from ._sdk import formance_sdk
    from ._source import TokenSource

__all__ = [
    "AuthenticationRequiredError",
    "HttpPolicy",
    "InvalidUsageError",
    "LocalStorageError",
    "RedisStore",
    "RemoteServerError",
    "StackTokenAuth",
    "StackTokenError",
    "TokenSource",
    "formance_sdk",
    "stack_client",
]


# Where each public name lives, for `__getattr__`; tests/test_warm_path_imports.py
# keeps it equal to `__all__`.
_HOMES = {
    "_auth": "StackTokenAuth stack_client",
    "_exceptions": (
        "AuthenticationRequiredError InvalidUsageError LocalStorageError RemoteServerError"
        " StackTokenError"
    ),
    "_http": "HttpPolicy",
    "_redis": "RedisStore",
    "_sdk": "formance_sdk",
    "_source": "TokenSource",
}
if not TYPE_CHECKING:  # hidden from mypy, so that a misspelt name stays an error
    from stacktoken.core._exports import lazy_exports

    __getattr__, __dir__ = lazy_exports(globals(), _HOMES, __all__)
