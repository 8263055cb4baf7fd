"""Immutable data of the token domain.

The domain model is kept apart from the wire formats (`_codecs.py`,
`_cache_codec.py`). Every field holding a secret is a `secret()` field, left
out of `repr`, so a token cannot reach a log line or a test failure message
through a record.
"""

from ._record import Record, secret
from ._time import timedelta

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime
    from typing import Any, TypeAlias

    JsonObject: "TypeAlias" = Mapping[str, Any]

__all__ = [
    "CLOCK_SKEW_ALLOWANCE",
    "DEFAULT_CACHE_TTL",
    "EXPIRY_GRACE",
    "CachedToken",
    "ClientCredentials",
    "DiscoveryDocument",
    "Settings",
    "StackAccess",
    "StackKey",
    "TokenRequest",
    "TokenResponse",
]

# docs/design.md §4: named, so a reader sees every margin the library applies.
DEFAULT_CACHE_TTL = timedelta(minutes=5)
EXPIRY_GRACE = timedelta(seconds=30)
CLOCK_SKEW_ALLOWANCE = timedelta(seconds=60)
_NO_TIME = timedelta(0)


class StackKey(Record):
    """Which stack token: fctl's (profile, organization, stack) triple."""

    profile: str
    organization: str
    stack: str

    def __str__(self) -> str:
        return f"{self.profile}/{self.organization}/{self.stack}"


class Settings(Record):
    """The margins of every decision. `cache_ttl` zero disables the disk cache."""

    cache_ttl: timedelta = DEFAULT_CACHE_TTL
    expiry_grace: timedelta = EXPIRY_GRACE
    clock_skew_allowance: timedelta = CLOCK_SKEW_ALLOWANCE

    @property
    def disk_cache_enabled(self) -> bool:
        return self.cache_ttl > _NO_TIME


class CachedToken(Record):
    """A stack API token: what `api_token_cache.json` holds.

    `saved_at` is None for an entry fctl wrote (it has no `savedAt`).
    `expiry` is None when fctl wrote Go's zero time: no known expiry.
    `stack_uri`, `client_id` and `scopes` (sorted) say whom and what the token was
    issued for; the store stamps them on write (fctl writes none, and Go ignores
    them). None is "not stamped"; `scopes=()` is a client token asked for no scope.
    """

    access_token: str = secret()
    token_type: str
    expiry: "datetime | None"
    saved_at: "datetime | None" = None
    stack_uri: "str | None" = None
    client_id: "str | None" = None
    scopes: "tuple[str, ...] | None" = None

    @classmethod
    def issued(cls, response: "TokenResponse") -> "CachedToken":
        """The token a token endpoint just issued, not saved anywhere yet."""
        return cls(
            access_token=response.access_token,
            token_type=response.token_type,
            expiry=response.expiry,
        )


class StackAccess(Record):
    """The stack access token of `accesses.json`, issued by the membership IdP.

    `claims` and `extra` (the file's unknown top-level keys) are carried
    through a rewrite untouched, as fctl may rely on them.
    """

    token: str = secret()
    refresh_token: "str | None" = secret()
    expiry: "datetime | None"
    claims: "JsonObject" = secret(default={})
    extra: "JsonObject" = secret(default={})


class DiscoveryDocument(Record):
    """The parts of an OpenID Provider configuration we use (RFC 8414 sec. 2, RFC 8628 sec. 4).

    `auth_methods` is `token_endpoint_auth_methods_supported`, None when absent.
    """

    token_endpoint: str
    issuer: "str | None" = None
    auth_methods: "tuple[str, ...] | None" = None
    device_authorization_endpoint: "str | None" = None
    jwks_uri: "str | None" = None


class TokenResponse(Record):
    """A successful token response (RFC 6749 section 5.1), expiry already resolved.

    `id_token` is OpenID Connect's (login only); `claims` never leave core unverified.
    """

    access_token: str = secret()
    token_type: str
    expiry: "datetime | None"
    refresh_token: "str | None" = secret(default=None)
    id_token: "str | None" = secret(default=None)


class TokenRequest(Record):
    """A POST to a token endpoint: url, form and headers, ready to send as is.

    `replayable` is False for a request that spends something on receipt (a
    rotating refresh token): such a request is never sent twice once a server
    may have received it (docs/design.md §5's retries apply only where that is safe).
    `secrets` are the values a server must never be shown quoting back.
    """

    url: str
    form: "tuple[tuple[str, str], ...]" = secret()
    headers: "tuple[tuple[str, str], ...]" = secret(default=())
    replayable: bool = True
    secrets: "tuple[str, ...]" = secret(default=())

    @property
    def grant_type(self) -> str:
        return dict(self.form).get("grant_type", "")


class ClientCredentials(Record):
    """A stack OAuth client. `scopes` are kept sorted and unique (they are part of the key)."""

    stack_uri: str
    client_id: str
    client_secret: str = secret()
    scopes: "tuple[str, ...]" = ()

    @classmethod
    def of(
        cls, *, stack_uri: str, client_id: str, client_secret: str, scopes: "tuple[str, ...]" = ()
    ) -> "ClientCredentials":
        return cls(
            stack_uri=stack_uri,
            client_id=client_id,
            client_secret=client_secret,
            scopes=tuple(sorted(set(scopes))),
        )
