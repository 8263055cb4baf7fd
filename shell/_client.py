"""The composition root for a machine credential (DESIGN §9).

Its token lives under the cache dir, in `clients/<key>/` (`_stores.client_store`,
which warm runs read without this module), with the same format, lock and
rules as an fctl stack's entry.
"""

from __future__ import annotations

from collections.abc import Callable

from returns.result import Result
from stacktoken.core._cache import Grant, Store
from stacktoken.core._client_grant import ClientEffects, client_credentials_grant
from stacktoken.core._errors import AcquireError
from stacktoken.core._requests import stack_discovery
from stacktoken.core._time import datetime
from stacktoken.core._types import ClientCredentials, DiscoveryDocument

from ._discovery import DiscoveryCache, discover
from ._fctl import post_token
from ._files import LOCK_TIMEOUT_SECONDS
from ._http import Http
from ._stores import client_store

__all__ = ["bind_client", "client_store"]


def bind_client(
    credentials: ClientCredentials,
    *,
    cache_dir: str,
    http: Http,
    discovery_cache: DiscoveryCache,
    clock: Callable[[], datetime],
    log: Callable[[str], None],
    lock_timeout: float = LOCK_TIMEOUT_SECONDS,
    shared: Store | None = None,
) -> tuple[tuple[Store, ...], Grant]:
    """The stores (the host's files, then `shared` if given) and the grant."""

    def discover_stack(refresh: bool) -> Result[DiscoveryDocument, AcquireError]:
        found: Result[DiscoveryDocument, AcquireError] = discover(
            stack_discovery(credentials.stack_uri),
            http=http,
            cache=discovery_cache,
            clock=clock,
            refresh=refresh,
        )
        return found

    local = client_store(cache_dir, credentials, log=log, lock_timeout=lock_timeout).record()
    stores = (local,) if shared is None else (local, shared)
    effects = ClientEffects(
        log=log,
        discover_stack=discover_stack,
        post_token=lambda request: post_token(http, request),
    )
    return stores, client_credentials_grant(credentials, effects)
