"""The closed set of errors stacktoken returns, as values.

Every failure is one of five frozen types. The CLI maps each to an exit code
(`EXIT_CODES`); the public facade turns them into exceptions. Messages are
written for the user and never contain a token, refresh token or assertion.

    AcquireError
    ├── UsageError          exit 2  bad flag, duration or name
    ├── AuthRequired        exit 3  not logged in, refresh rejected, no access
    ├── RemoteError         exit 1  network, server or protocol failure
    ├── OAuthError          exit 1  an RFC 6749 section 5.2 error body we did not map
    └── LocalError          exit 1  the file system or the lock failed us
"""

from ._record import Record, secret

__all__ = [
    "EXIT_CODES",
    "AcquireError",
    "AuthRequired",
    "LocalError",
    "OAuthError",
    "RemoteError",
    "UsageError",
    "exit_code",
]


class UsageError(Record):
    """The caller asked for something that cannot be done as asked."""

    message: str


class AuthRequired(Record):
    """The user has to log in again (`stacktoken login`), or a machine
    credential was rejected: nothing but new credentials can help.

    `remember`: the server rejected the credential itself (not a local lack of
    one), so the failure memory keeps it (docs/design.md §15)."""

    message: str
    remember: bool = False


class RemoteError(Record):
    """A server could not be reached, failed, or answered outside the protocol.

    `endpoint_gone` marks a token endpoint that answered 404 or kept refusing
    connections: the discovery document that named it is stale (docs/design.md §3.4).
    `transient` marks failures worth retrying later (timeouts, 5xx).
    `rotated_refresh_token` is a new refresh token found in a token answer that
    is otherwise unusable: the IdP has spent the old one, so it must be kept.
    """

    message: str
    endpoint_gone: bool = False
    transient: bool = False
    rotated_refresh_token: "str | None" = secret(default=None)


class OAuthError(Record):
    """An RFC 6749 section 5.2 error response."""

    error: str
    description: "str | None" = None
    status_code: int = 400

    @property
    def message(self) -> str:
        detail = f": {self.description}" if self.description else ""
        return f"server answered {self.status_code} {self.error}{detail}"


class LocalError(Record):
    """A local resource failed: an unwritable folder, a lock not had in time."""

    message: str


AcquireError = UsageError | AuthRequired | RemoteError | OAuthError | LocalError

EXIT_CODES: "dict[type[AcquireError], int]" = {
    UsageError: 2,
    AuthRequired: 3,
    RemoteError: 1,
    OAuthError: 1,
    LocalError: 1,
}


def exit_code(error: AcquireError) -> int:
    """The CLI exit code for an error (docs/design.md §7)."""
    return EXIT_CODES[type(error)]
