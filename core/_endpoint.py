"""One step every grant takes: a request at a discovered token endpoint.

A token endpoint that is gone (404, refusing connections) means the
discovery document that named it is stale (docs/design.md §3.4): the document is
dropped, discovery is done once more, and the request is sent once more.
Neither case reached a server that could act on the request, so even a
request that spends a refresh token may be sent again.
"""

from __future__ import annotations

from returns.result import Failure

from ._errors import RemoteError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from returns.result import Result

    from ._errors import AcquireError
    from ._types import DiscoveryDocument, TokenRequest, TokenResponse

__all__ = ["at_token_endpoint"]


def at_token_endpoint(
    request_for: Callable[[DiscoveryDocument], TokenRequest],
    *,
    discover: Callable[[bool], Result[DiscoveryDocument, AcquireError]],
    send: Callable[[TokenRequest], Result[TokenResponse, AcquireError]],
    log: Callable[[str], None],
    who: str,
) -> Result[TokenResponse, AcquireError]:
    """Send `request_for(document)` at the discovered endpoint, rediscovering once if gone.

    `discover(True)` drops any cached document first. Only the request's own
    failures can say the endpoint is gone, never discovery's.
    """

    def send_at(document: DiscoveryDocument) -> Result[TokenResponse, AcquireError]:
        return send(request_for(document))

    def rediscover(error: AcquireError) -> Result[TokenResponse, AcquireError]:
        if isinstance(error, RemoteError) and error.endpoint_gone:
            log(f"{who} token endpoint gone: dropping its discovery document")
            return discover(True).bind(send_at)
        return Failure(error)

    return discover(False).bind(lambda document: send_at(document).lash(rediscover))
