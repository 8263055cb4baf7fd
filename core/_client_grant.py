"""The client-credentials grant (docs/design.md §9, RFC 6749 section 4.4): machine credentials.

A service or CI job holds a stack OAuth client (`client_id` + secret). Its
token comes from the stack's discovered token endpoint, with the client
authentication the discovery document offers. There is no refresh token: a
rejected client means new credentials, nothing else.
"""

from __future__ import annotations

from ._cache import Grant
from ._endpoint import at_token_endpoint
from ._errors import AuthRequired, OAuthError
from ._record import Record
from ._requests import client_credentials_request
from ._types import CachedToken, ClientCredentials

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from returns.result import Result

    from ._errors import AcquireError
    from ._types import DiscoveryDocument, TokenRequest, TokenResponse

__all__ = ["CLIENT_REJECTIONS", "ClientEffects", "client_credentials_grant"]

# RFC 6749 section 5.2: the client itself is refused; retrying cannot help.
CLIENT_REJECTIONS = frozenset({"invalid_client", "unauthorized_client"})


class ClientEffects(Record):
    """What the client-credentials grant may do: stack discovery and one POST."""

    log: Callable[[str], None]
    discover_stack: Callable[[bool], Result[DiscoveryDocument, AcquireError]]
    post_token: Callable[[TokenRequest], Result[TokenResponse, AcquireError]]


def client_credentials_grant(credentials: ClientCredentials, effects: ClientEffects) -> Grant:
    """The grant of a machine credential at its stack."""

    def obtain(_now: object) -> Result[CachedToken, AcquireError]:
        return (
            at_token_endpoint(
                lambda document: client_credentials_request(
                    document,
                    client_id=credentials.client_id,
                    client_secret=credentials.client_secret,
                    scopes=credentials.scopes,
                ),
                discover=effects.discover_stack,
                send=effects.post_token,
                log=effects.log,
                who="stack",
            )
            .map(CachedToken.issued)
            .alt(_rejection)
        )

    return Grant(name="client credentials", obtain=obtain)


def _rejection(error: AcquireError) -> AcquireError:
    if isinstance(error, OAuthError) and error.error in CLIENT_REJECTIONS:
        return AuthRequired(
            message=f"the stack rejected the client credentials ({error.error}); "
            "check the client id and its secret",
            remember=True,
        )
    return error
