"""The official SDK (`formance-sdk-python`) on a token source (docs/design.md §10).

The SDK gets the stack URI and two httpx clients, sync and async, whose auth
is `StackTokenAuth(source)`; it gets no `security`, so its own in-memory
client-credentials hook stays off (it is disabled without credentials) and
every call, sync or async, is served by the source: its memory, its stores
shared with other processes, one acquisition at a time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
from stacktoken.core._errors import UsageError

from ._auth import StackTokenAuth, stack_client_defaults
from ._exceptions import InvalidUsageError
from ._source import TokenSource

if TYPE_CHECKING:
    from formance_sdk_python import SDK

__all__ = ["formance_sdk"]

#: What `formance_sdk` sets itself; given by the caller they would bypass the source.
_OWN_ARGUMENTS = ("security", "server_url", "client", "async_client")
INSTALL_HINT = "pip install 'stacktoken[sdk]'"


def formance_sdk(source: TokenSource | None = None, **sdk_kwargs: Any) -> SDK:
    """The SDK's `SDK` for the source's stack, authenticated by the source
    (without one, `TokenSource.default()`'s: the credential chain).

    `sdk_kwargs` go to `SDK(...)` (e.g. `retry_config`, `timeout_ms`,
    `debug_logger`). Using it as a context manager (`with` for sync calls,
    `async with` for async ones) closes the matching HTTP client at the end.
    Raises `InvalidUsageError` when the `sdk` extra is not installed or an
    argument would take authentication away from the source.
    """
    given = sorted(set(sdk_kwargs) & set(_OWN_ARGUMENTS))
    if given:
        raise InvalidUsageError(
            UsageError(
                message=f"formance_sdk sets {', '.join(given)} itself: the token source "
                "authenticates every call"
            )
        )
    try:
        from formance_sdk_python import SDK
    except ImportError as error:
        raise InvalidUsageError(
            UsageError(message=f"the official SDK is not installed ({error}): {INSTALL_HINT}")
        ) from None
    if source is None:  # docs/design.md §14: the credential chain's
        source = TokenSource.default()
    auth = StackTokenAuth(source)
    options = stack_client_defaults(source.stack_uri)
    sdk = SDK(
        server_url=source.stack_uri,
        client=httpx.Client(auth=auth, **options),
        async_client=httpx.AsyncClient(auth=auth, **options),
        **sdk_kwargs,
    )
    # The clients are ours, not the caller's: let the SDK's `with`/`async with` close them.
    config = sdk.sdk_configuration
    config.client_supplied = False
    config.async_client_supplied = False
    return sdk
