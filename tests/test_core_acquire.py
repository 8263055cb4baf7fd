"""The cache workflow with the fctl grant (docs/design.md §1, §8), scenario by scenario, with a
scripted fake world."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
from returns.result import Failure, Result, Success
from stacktoken.core._cache import CacheRead, Store
from stacktoken.core._errors import AcquireError, AuthRequired, LocalError, OAuthError, RemoteError
from stacktoken.core._fctl_grant import FctlEffects, fctl_grant
from stacktoken.core._types import (
    CachedToken,
    DiscoveryDocument,
    Settings,
    StackAccess,
    TokenRequest,
    TokenResponse,
)
from stacktoken.core._workflow import acquire

T = TypeVar("T")

NOW = datetime(2026, 2, 20, 15, 40, 16, tzinfo=UTC)
LOCKED_AT = NOW + timedelta(seconds=2)  # the clock read once the lock is held
HOUR = timedelta(hours=1)
STACK_DOC = DiscoveryDocument(token_endpoint="https://s.example/api/auth/oauth/token")
MEMBERSHIP_DOC = DiscoveryDocument(token_endpoint="https://app.example/api/oauth/token")
FRESH_ACCESS = StackAccess(
    token="access-1",
    refresh_token="refresh-1",
    expiry=NOW + HOUR,
    claims={"exp": 1},
    extra={"k": 1},
)
STALE_ACCESS = StackAccess(
    token="access-1",
    refresh_token="refresh-1",
    expiry=NOW - HOUR,
    claims={"exp": 1},
    extra={"k": 1},
)
ISSUED = TokenResponse(access_token="api-1", token_type="Bearer", expiry=NOW + HOUR)
REFRESHED = TokenResponse(
    access_token="access-2", token_type="Bearer", expiry=NOW + HOUR, refresh_token="refresh-2"
)
INVALID_GRANT = OAuthError(error="invalid_grant")
GONE = RemoteError(message="token endpoint answered 404", endpoint_gone=True)


@dataclass
class Fake:
    """A scripted world: each network effect answers from its list, in order."""

    cache: Result[CacheRead, str] = field(default_factory=lambda: Failure("no file"))
    filled_meanwhile: CacheRead | None = None
    access: StackAccess | None = FRESH_ACCESS
    rotated_by_fctl: StackAccess | None = None
    cache_write_fails: bool = False
    access_write_fails: bool = False
    lock_fails: bool = False
    stack: list[Result[DiscoveryDocument, AcquireError]] = field(
        default_factory=lambda: [Success(STACK_DOC)]
    )
    exchanges: list[Result[TokenResponse, AcquireError]] = field(
        default_factory=lambda: [Success(ISSUED)]
    )
    membership: list[Result[DiscoveryDocument, AcquireError]] = field(
        default_factory=lambda: [Success(MEMBERSHIP_DOC)]
    )
    refreshes: list[Result[TokenResponse, AcquireError]] = field(
        default_factory=lambda: [Success(REFRESHED)]
    )
    calls: list[str] = field(default_factory=list)
    cache_writes: list[CachedToken] = field(default_factory=list)
    access_writes: list[StackAccess] = field(default_factory=list)
    assertions: list[str] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)

    def run(self, settings: Settings | None = None) -> Result[CachedToken, AcquireError]:
        chosen = settings or Settings()
        return acquire(
            stores=(self.store(),),
            grant=fctl_grant(self.effects(), settings=chosen),
            settings=chosen,
            now=NOW,
            clock=lambda: LOCKED_AT,
            log=self.logs.append,
        )

    def store(self) -> Store:
        return Store(
            name="disk",
            read=self.read_cache,
            write=self.write_cache,
            locked=self.locked,
            drop=lambda _: Success(False),
        )

    def effects(self) -> FctlEffects:
        return FctlEffects(
            log=self.logs.append,
            read_access=self.read_access,
            write_access=self.write_access,
            discover_stack=self.discover_stack,
            exchange=self.exchange,
            discover_membership=lambda force: self.answer(
                "rediscover_membership" if force else "discover_membership", self.membership
            ),
            refresh=self.refresh,
        )

    def answer(self, name: str, answers: list[Result[T, AcquireError]]) -> Result[T, AcquireError]:
        self.calls.append(name)
        return answers.pop(0) if len(answers) > 1 else answers[0]

    def read_cache(self) -> CacheRead | str:
        self.calls.append("read_cache")
        if isinstance(self.cache, Success):
            found: CacheRead = self.cache.unwrap()
            return found
        reason: str = self.cache.failure()
        return reason

    def write_cache(self, entry: CachedToken) -> Result[None, LocalError]:
        self.calls.append("write_cache")
        self.cache_writes.append(entry)
        return Failure(LocalError(message="disk full")) if self.cache_write_fails else Success(None)

    def locked(
        self, body: Callable[[], Result[CachedToken, AcquireError]]
    ) -> Result[CachedToken, AcquireError]:
        self.calls.append("locked")
        if self.lock_fails:
            return Failure(LocalError(message="lock not acquired in time"))
        if self.filled_meanwhile is not None:
            self.cache = Success(self.filled_meanwhile)
        return body()

    def read_access(self) -> Result[StackAccess, AcquireError]:
        self.calls.append("read_access")
        if self.access is None:
            return Failure(AuthRequired(message="no stack access token"))
        return Success(self.access)

    def write_access(self, access: StackAccess) -> Result[None, AcquireError]:
        self.calls.append("write_access")
        if self.access_write_fails:
            return Failure(LocalError(message="read-only file system"))
        self.access_writes.append(access)
        self.access = access
        return Success(None)

    def discover_stack(self, force: bool) -> Result[DiscoveryDocument, AcquireError]:
        return self.answer("rediscover_stack" if force else "discover_stack", self.stack)

    def exchange(self, request: TokenRequest) -> Result[TokenResponse, AcquireError]:
        self.assertions.append(dict(request.form)["assertion"])
        return self.answer("exchange", self.exchanges)

    def refresh(self, request: TokenRequest) -> Result[TokenResponse, AcquireError]:
        if self.rotated_by_fctl is not None:
            self.access = self.rotated_by_fctl
        return self.answer("refresh", self.refreshes)


COLD_CALLS = [
    "read_cache",
    "locked",
    "read_cache",
    "read_access",
    "discover_stack",
    "exchange",
    "write_cache",
]


def _token(response: TokenResponse, saved_at: datetime | None = LOCKED_AT) -> CachedToken:
    return CachedToken(
        access_token=response.access_token,
        token_type=response.token_type,
        expiry=response.expiry,
        saved_at=saved_at,
    )


def test_acquire_cold_exchanges_and_caches() -> None:
    fake = Fake()
    assert fake.run() == Success(_token(ISSUED))
    assert fake.calls == COLD_CALLS
    assert fake.assertions == ["access-1"]
    assert fake.cache_writes == [_token(ISSUED)]


def test_acquire_warm_makes_no_network_call() -> None:
    entry = CachedToken(access_token="api-0", token_type="Bearer", expiry=NOW + HOUR, saved_at=NOW)
    fake = Fake(cache=Success((entry, NOW)))
    assert fake.run() == Success(entry)
    assert fake.calls == ["read_cache"]


def test_acquire_entry_written_while_waiting_for_the_lock_is_used() -> None:
    entry = CachedToken(access_token="api-0", token_type="Bearer", expiry=NOW + HOUR, saved_at=NOW)
    fake = Fake(filled_meanwhile=(entry, NOW))
    assert fake.run() == Success(entry)
    assert fake.calls == ["read_cache", "locked", "read_cache"]


def test_acquire_ttl_zero_neither_reads_nor_writes_nor_locks() -> None:
    fake = Fake()
    assert fake.run(Settings(cache_ttl=timedelta(0))) == Success(_token(ISSUED, saved_at=None))
    assert fake.calls == ["read_access", "discover_stack", "exchange"]


def test_acquire_refresh_saves_the_rotation_before_the_exchange() -> None:
    fake = Fake(access=STALE_ACCESS)
    assert fake.run() == Success(_token(ISSUED))
    assert fake.calls == [
        "read_cache",
        "locked",
        "read_cache",
        "read_access",
        "discover_membership",
        "refresh",
        "write_access",
        "discover_stack",
        "exchange",
        "write_cache",
    ]
    (saved,) = fake.access_writes
    assert (saved.token, saved.refresh_token, saved.expiry, saved.extra) == (
        "access-2",
        "refresh-2",
        NOW + HOUR,
        {"k": 1},
    )
    assert saved.claims["exp"] == int((NOW + HOUR).timestamp())  # what fctl reads back
    assert fake.assertions == ["access-2"]


def test_acquire_refresh_without_rotation_keeps_the_refresh_token() -> None:
    fake = Fake(
        access=STALE_ACCESS,
        refreshes=[
            Success(TokenResponse(access_token="access-2", token_type="Bearer", expiry=NOW + HOUR))
        ],
    )
    assert isinstance(fake.run(), Success)
    assert fake.access_writes[0].refresh_token == "refresh-1"


@pytest.mark.parametrize("code", ["invalid_grant", "invalid_token", "invalid_request"])
def test_acquire_refresh_rejected_means_auth_required(code: str) -> None:
    fake = Fake(access=STALE_ACCESS, refreshes=[Failure(OAuthError(error=code))])
    result = fake.run()
    assert isinstance(result, Failure)
    assert isinstance(result.failure(), AuthRequired)
    assert "stacktoken login" in result.failure().message
    assert fake.calls[-2:] == ["refresh", "read_access"]
    assert fake.access_writes == []


def test_acquire_refresh_rejected_but_rotated_elsewhere_is_rescued() -> None:
    by_fctl = StackAccess(token="access-fctl", refresh_token="refresh-fctl", expiry=NOW + HOUR)
    fake = Fake(access=STALE_ACCESS, rotated_by_fctl=by_fctl, refreshes=[Failure(INVALID_GRANT)])
    assert fake.run() == Success(_token(ISSUED))
    assert fake.assertions == ["access-fctl"]
    assert fake.access_writes == []  # fctl's file is left as fctl wrote it


def test_acquire_refresh_rejected_and_stale_elsewhere_is_not_rescued() -> None:
    by_fctl = StackAccess(token="access-fctl", refresh_token="refresh-fctl", expiry=NOW - HOUR)
    fake = Fake(access=STALE_ACCESS, rotated_by_fctl=by_fctl, refreshes=[Failure(INVALID_GRANT)])
    result = fake.run()
    assert isinstance(result, Failure) and isinstance(result.failure(), AuthRequired)
    assert fake.assertions == []


def test_acquire_stale_without_refresh_token_means_auth_required() -> None:
    fake = Fake(access=StackAccess(token="access-1", refresh_token=None, expiry=NOW - HOUR))
    result = fake.run()
    assert isinstance(result, Failure) and isinstance(result.failure(), AuthRequired)
    assert "discover_membership" not in fake.calls


def test_acquire_rotation_that_cannot_be_saved_stops_before_the_exchange() -> None:
    fake = Fake(access=STALE_ACCESS, access_write_fails=True)
    result = fake.run()
    assert isinstance(result, Failure) and isinstance(result.failure(), LocalError)
    assert "new login" in result.failure().message
    assert "exchange" not in fake.calls


def test_acquire_unusable_refresh_answer_still_saves_its_rotation() -> None:
    stray = RemoteError(message="token endpoint answered badly", rotated_refresh_token="refresh-2")
    fake = Fake(access=STALE_ACCESS, refreshes=[Failure(stray)])
    result = fake.run()
    assert isinstance(result, Failure) and isinstance(result.failure(), RemoteError)
    assert result.failure().rotated_refresh_token is None  # reported without the secret
    assert [(a.token, a.refresh_token) for a in fake.access_writes] == [("access-1", "refresh-2")]
    assert "exchange" not in fake.calls


def test_acquire_endpoint_gone_rediscovers_once() -> None:
    fake = Fake(exchanges=[Failure(GONE), Success(ISSUED)])
    assert fake.run() == Success(_token(ISSUED))
    assert fake.calls[4:] == [
        "discover_stack",
        "exchange",
        "rediscover_stack",
        "exchange",
        "write_cache",
    ]


def test_acquire_discovery_that_cannot_connect_is_not_retried_as_a_gone_endpoint() -> None:
    refused = RemoteError(message="GET discovery: cannot connect", endpoint_gone=True)
    fake = Fake(stack=[Failure(refused)])
    assert fake.run() == Failure(refused)
    assert "rediscover_stack" not in fake.calls
    assert "exchange" not in fake.calls


def test_acquire_refresh_endpoint_gone_rediscovers_the_membership_once() -> None:
    fake = Fake(access=STALE_ACCESS, refreshes=[Failure(GONE), Success(REFRESHED)])
    assert isinstance(fake.run(), Success)
    assert fake.calls.count("discover_membership") == 1
    assert fake.calls.count("rediscover_membership") == 1
    assert fake.calls.count("refresh") == 2


def test_acquire_refresh_endpoint_still_gone_is_reported_after_one_rediscovery() -> None:
    fake = Fake(access=STALE_ACCESS, refreshes=[Failure(GONE)])
    assert fake.run() == Failure(GONE)
    assert fake.calls.count("rediscover_membership") == 1
    assert "exchange" not in fake.calls


def test_acquire_endpoint_still_gone_after_rediscovery_fails() -> None:
    fake = Fake(exchanges=[Failure(GONE)])
    result = fake.run()
    assert result == Failure(GONE)
    assert fake.calls.count("rediscover_stack") == 1
    assert fake.calls.count("exchange") == 2


def test_acquire_invalid_grant_refreshes_once_and_retries_once() -> None:
    fake = Fake(exchanges=[Failure(INVALID_GRANT), Success(ISSUED)])
    assert fake.run() == Success(_token(ISSUED))
    assert fake.assertions == ["access-1", "access-2"]
    assert fake.calls.count("refresh") == 1


@pytest.mark.parametrize(
    ("refusal", "retried"),
    [
        # Formance's auth service (zitadel's op) answers an expired or foreign
        # assertion with 400 server_error, "token has expired".
        (OAuthError(error="server_error", description="token has expired", status_code=400), True),
        (OAuthError(error="server_error", status_code=401), False),
        (OAuthError(error="invalid_request"), False),
    ],
    ids=["400-server-error", "401-server-error", "invalid-request"],
)
def test_acquire_refused_assertion_is_retried_once_only_for_the_refusals_of_an_assertion(
    refusal: OAuthError, retried: bool
) -> None:
    fake = Fake(exchanges=[Failure(refusal), Success(ISSUED)])
    result = fake.run()
    assert fake.calls.count("refresh") == (1 if retried else 0)
    if retried:
        assert result == Success(_token(ISSUED))
        assert fake.assertions == ["access-1", "access-2"]
    else:
        assert result == Failure(refusal)


def test_acquire_invalid_grant_again_after_the_retry_means_auth_required() -> None:
    fake = Fake(exchanges=[Failure(INVALID_GRANT)])
    result = fake.run()
    assert isinstance(result, Failure) and isinstance(result.failure(), AuthRequired)
    assert fake.calls.count("refresh") == 1
    assert fake.calls.count("exchange") == 2
    assert fake.access_writes[0].refresh_token == "refresh-2"  # the rotation is kept


def test_acquire_stale_access_refused_after_refresh_is_not_refreshed_again() -> None:
    fake = Fake(access=STALE_ACCESS, exchanges=[Failure(INVALID_GRANT)])
    result = fake.run()
    assert isinstance(result, Failure) and isinstance(result.failure(), AuthRequired)
    assert fake.calls.count("refresh") == 1
    assert fake.calls.count("exchange") == 1


@pytest.mark.parametrize("code", ["access_denied", "unauthorized_client"])
def test_acquire_exchange_refused_for_good_means_auth_required(code: str) -> None:
    fake = Fake(exchanges=[Failure(OAuthError(error=code))])
    result = fake.run()
    assert isinstance(result, Failure) and isinstance(result.failure(), AuthRequired)
    assert "refresh" not in fake.calls


def test_acquire_failed_cache_write_still_returns_the_token() -> None:
    fake = Fake(cache_write_fails=True)
    assert fake.run() == Success(_token(ISSUED))
    assert any("cache write failed" in line for line in fake.logs)


def test_acquire_short_lived_token_is_returned_but_not_cached() -> None:
    brief = TokenResponse(
        access_token="api-brief", token_type="Bearer", expiry=LOCKED_AT + timedelta(seconds=30)
    )
    fake = Fake(exchanges=[Success(brief)])
    assert fake.run() == Success(_token(brief, saved_at=None))
    assert "write_cache" not in fake.calls


def test_acquire_token_without_expiry_is_returned_but_not_cached() -> None:
    opaque = TokenResponse(access_token="api-opaque", token_type="Bearer", expiry=None)
    fake = Fake(exchanges=[Success(opaque)])
    assert fake.run() == Success(_token(opaque, saved_at=None))
    assert "write_cache" not in fake.calls


def test_acquire_lock_not_had_is_a_local_error() -> None:
    fake = Fake(lock_fails=True)
    result = fake.run()
    assert isinstance(result, Failure) and isinstance(result.failure(), LocalError)
    assert fake.calls == ["read_cache", "locked"]


def test_acquire_not_logged_in_makes_no_network_call() -> None:
    fake = Fake(access=None)
    result = fake.run()
    assert isinstance(result, Failure) and isinstance(result.failure(), AuthRequired)
    assert fake.calls == ["read_cache", "locked", "read_cache", "read_access"]
