"""Exceptions of the public facade, one per error value of core.

StackTokenError                 .error holds core's value, .exit_code the CLI's code
├── InvalidUsageError           exit 2
├── AuthenticationRequiredError exit 3  (log in again with `stacktoken login`)
├── RemoteServerError           exit 1  (network, server, protocol, OAuth error)
└── LocalStorageError           exit 1  (file system, lock)
"""

from __future__ import annotations

from stacktoken.core._errors import (
    AcquireError,
    AuthRequired,
    LocalError,
    OAuthError,
    RemoteError,
    UsageError,
    exit_code,
)

__all__ = [
    "AuthenticationRequiredError",
    "InvalidUsageError",
    "LocalStorageError",
    "RemoteServerError",
    "StackTokenError",
    "as_exception",
]


class StackTokenError(Exception):
    """A token could not be had; `error` says why, as core's value."""

    def __init__(self, error: AcquireError) -> None:
        super().__init__(error.message)
        self.error = error

    @property
    def exit_code(self) -> int:
        return exit_code(self.error)


class InvalidUsageError(StackTokenError):
    """A bad option, duration or name."""


class AuthenticationRequiredError(StackTokenError):
    """Not logged in, no access to the stack, or the refresh token was rejected."""


class RemoteServerError(StackTokenError):
    """A server could not be reached, failed, or broke the protocol."""


class LocalStorageError(StackTokenError):
    """The file system or the lock failed."""


_EXCEPTION_OF: dict[type[AcquireError], type[StackTokenError]] = {
    UsageError: InvalidUsageError,
    AuthRequired: AuthenticationRequiredError,
    RemoteError: RemoteServerError,
    OAuthError: RemoteServerError,
    LocalError: LocalStorageError,
}


def as_exception(error: AcquireError) -> StackTokenError:
    """The exception that carries `error`."""
    return _EXCEPTION_OF[type(error)](error)
