"""`httpx.Auth` for stack APIs, and a client helper (fctl's `NewStackClient`).

The auth only asks the token source and yields requests. Getting a token may
read files, take a lock or call the network, so it overrides
`sync_auth_flow`/`async_auth_flow` rather than the I/O-free `auth_flow`
(httpx docs, "Custom authentication schemes"). On a 401 it drops the token
(in memory and on disk) and retries the request once with a new one. The
async flow never blocks the event loop: see `_flight`.

A request to any origin but the source's stack is refused before a token is
asked for (core's `_origin`): raising names the mistake, where sending the
request bare would only come back as a puzzling 401 from another server.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from typing import Any
from urllib.parse import urlsplit

import httpx
from stacktoken.core._errors import UsageError
from stacktoken.core._origin import token_refusal

from ._exceptions import InvalidUsageError
from ._flight import token_async
from ._source import TokenSource

__all__ = ["StackTokenAuth", "stack_client", "stack_client_defaults"]


class StackTokenAuth(httpx.Auth):
    """Bearer authentication with stack API tokens from a `TokenSource`."""

    requires_request_body = True  # the request may be sent twice

    def __init__(self, source: TokenSource) -> None:
        self._source = source

    def _check_origin(self, request: httpx.Request) -> None:
        """Raise `InvalidUsageError` unless the request goes to the source's own stack."""
        refusal = token_refusal(str(request.url), stack_uri=self._source.stack_uri)
        if refusal is not None:
            raise InvalidUsageError(UsageError(message=refusal))

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        self._check_origin(request)
        token = self._source.token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == httpx.codes.UNAUTHORIZED:
            self._source.invalidate(token)
            request.headers["Authorization"] = f"Bearer {self._source.token()}"
            yield request

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        # A fresh token in memory costs no thread; otherwise the task waits for
        # the source's one acquisition in flight, run in its own thread (_flight).
        self._check_origin(request)
        token = await token_async(self._source)
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == httpx.codes.UNAUTHORIZED:
            token = await token_async(self._source, rejected=token)
            request.headers["Authorization"] = f"Bearer {token}"
            yield request

    def __repr__(self) -> str:
        return f"StackTokenAuth({self._source!r})"


def stack_client(source: TokenSource, **client_options: Any) -> httpx.Client:
    """An `httpx.Client` for the stack's API: `base_url` is the stack URI, auth attached."""
    options = {**stack_client_defaults(source.stack_uri), **client_options}
    return httpx.Client(base_url=source.stack_uri, auth=StackTokenAuth(source), **options)


def stack_client_defaults(stack_uri: str) -> dict[str, Any]:
    """httpx options for a client of the stack: a stack on plain http (loopback, the
    only http a token goes to) is never reached through the environment's proxy,
    which would get the token in clear text (docs/design.md §5), as the token
    requests never are. httpx itself proxies loopback unless `NO_PROXY` names it."""
    if urlsplit(stack_uri).scheme.lower() == "http":
        return {"trust_env": False}
    return {}
