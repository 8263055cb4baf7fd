"""Immutable data of the token domain.

The domain model is kept apart from the wire formats (`_codecs.py`,
`_cache_codec.py`). Every field holding a secret is left out of `repr`, so a
token cannot reach a log line or a test failure message through a dataclass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

__all__ = [
    "CLOCK_SKEW_ALLOWANCE",
    "DEFAULT_CACHE_TTL",
    "EXPIRY_GRACE",
    "JsonObject",
    "CachedToken",
    "DiscoveryDocument",
    "Settings",
    "StackAccess",
    "StackKey",
    "TokenRequest",
    "TokenResponse",
]

JsonObject = Mapping[str, Any]

# DESIGN §4: named, so a reader sees every margin the library applies.
DEFAULT_CACHE_TTL = timedelta(minutes=5)
EXPIRY_GRACE = timedelta(seconds=30)
CLOCK_SKEW_ALLOWANCE = timedelta(seconds=60)


@dataclass(frozen=True, slots=True, kw_only=True)
class StackKey:
    """Which stack token: fctl's (profile, organization, stack) triple."""

    profile: str
    organization: str
    stack: str

    def __str__(self) -> str:
        return f"{self.profile}/{self.organization}/{self.stack}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """The margins of every decision. `cache_ttl` zero disables the disk cache."""

    cache_ttl: timedelta = DEFAULT_CACHE_TTL
    expiry_grace: timedelta = EXPIRY_GRACE
    clock_skew_allowance: timedelta = CLOCK_SKEW_ALLOWANCE

    @property
    def disk_cache_enabled(self) -> bool:
        return self.cache_ttl > timedelta(0)


@dataclass(frozen=True, slots=True, kw_only=True)
class CachedToken:
    """A stack API token: what `api_token_cache.json` holds.

    `saved_at` is None for an entry fctl wrote (it has no `savedAt`).
    `expiry` is None when fctl wrote Go's zero time: no known expiry.
    """

    access_token: str = field(repr=False)
    token_type: str
    expiry: datetime | None
    saved_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StackAccess:
    """The stack access token of `accesses.json`, issued by the membership IdP.

    `claims` and `extra` (the file's unknown top-level keys) are carried
    through a rewrite untouched, as fctl may rely on them.
    """

    token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expiry: datetime | None
    claims: JsonObject = field(default_factory=dict, repr=False)
    extra: JsonObject = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class DiscoveryDocument:
    """The parts of an OpenID Provider configuration we use (RFC 8414 §2)."""

    token_endpoint: str
    issuer: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenResponse:
    """A successful token response (RFC 6749 §5.1), expiry already resolved."""

    access_token: str = field(repr=False)
    token_type: str
    expiry: datetime | None
    refresh_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenRequest:
    """A POST to a token endpoint: url and form, ready to send as is."""

    url: str
    form: tuple[tuple[str, str], ...] = field(repr=False)

    @property
    def grant_type(self) -> str:
        return dict(self.form).get("grant_type", "")
