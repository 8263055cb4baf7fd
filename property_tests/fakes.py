"""An in-memory, recording world for the cache workflow and its grants.

`FakeWorld` plays a `Scenario` back through core's records: one or two
`Store` levels (the host's files, then a shared store such as Redis), and a
grant (the fctl stack grant over `FctlEffects`, or client credentials over
`ClientEffects`). The stored entries and `accesses.json` are variables, the
network effects answer from their timelines, and every call is recorded in
order so a property can state what happened, and in which order. No files,
no network.

Recorded effect names: the first level's `read_cache`, `write_cache`,
`locked`; the shared level's `shared_read`, `shared_write`, `shared_locked`;
the fctl grant's `read_access`, `write_access`, `discover_stack`, `exchange`,
`discover_membership`, `refresh`; the client grant's `discover_stack` and
`client_token`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypeVar

from returns.result import Failure, Result, Success
from stacktoken.core._cache import CacheRead, Grant, Store
from stacktoken.core._client_grant import ClientEffects, client_credentials_grant
from stacktoken.core._errors import AcquireError, AuthRequired, LocalError
from stacktoken.core._fctl_grant import FctlEffects, fctl_grant
from stacktoken.core._types import (
    CachedToken,
    ClientCredentials,
    DiscoveryDocument,
    StackAccess,
    TokenRequest,
    TokenResponse,
)
from stacktoken.core._workflow import acquire
from strategies import Scenario

T = TypeVar("T")

# The effects that reach the network, a lock or the grant's files (docs/design.md §1:
# a warm run makes none of them).
NETWORK_EFFECTS = frozenset(
    {
        "read_access",
        "write_access",
        "discover_stack",
        "exchange",
        "discover_membership",
        "refresh",
        "client_token",
        "locked",
        "shared_locked",
    }
)
STORE_EFFECTS = frozenset(
    {"read_cache", "write_cache", "locked", "shared_read", "shared_write", "shared_locked"}
)
GRANT_EFFECTS = NETWORK_EFFECTS - STORE_EFFECTS
#: The machine credential every client-grant scenario uses; its secret is a marked secret.
CLIENT = ClientCredentials.of(
    stack_uri="https://orga-stk1.example",
    client_id="ci-job",
    client_secret="SECRET-client-secret",
    scopes=("ledger:read", "ledger:write"),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Call:
    """One effect call: its name, its argument, and what it answered."""

    effect: str
    argument: object = None
    answer: object = None


class FakeWorld:
    """The world one acquisition runs in; read `calls`, `cache`, `shared`, `accesses` after."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.calls: list[Call] = []
        self.logs: list[str] = []
        self.cache: Result[CacheRead, str] = scenario.disk
        self.shared: Result[CacheRead, str] | None = scenario.shared
        self.accesses: StackAccess | None = scenario.access
        self._positions: dict[str, int] = {}

    # --- running ------------------------------------------------------------

    def acquire(self) -> Result[CachedToken, AcquireError]:
        return acquire(
            stores=self.stores(),
            grant=self.grant(),
            settings=self.scenario.settings,
            now=self.scenario.now,
            clock=self._clock,
            log=self.logs.append,
        )

    def stores(self) -> tuple[Store, ...]:
        local = Store(
            name="disk",
            read=self._read_cache,
            write=self._write_cache,
            locked=self._locked,
            drop=lambda _: Success(False),
        )
        if self.scenario.shared is None:
            return (local,)
        shared = Store(
            name="shared",
            read=self._shared_read,
            write=self._shared_write,
            locked=self._shared_locked,
            drop=lambda _: Success(False),
        )
        return (local, shared)

    def grant(self) -> Grant:
        if self.scenario.grant == "client":
            return client_credentials_grant(
                CLIENT,
                ClientEffects(
                    log=self.logs.append,
                    discover_stack=self._discover_stack,
                    post_token=self._client_token,
                ),
            )
        return fctl_grant(self.fctl_effects(), settings=self.scenario.settings)

    def fctl_effects(self) -> FctlEffects:
        return FctlEffects(
            log=self.logs.append,
            read_access=self._read_access,
            write_access=self._write_access,
            discover_stack=self._discover_stack,
            exchange=self._exchange,
            discover_membership=self._discover_membership,
            refresh=self._refresh,
        )

    # --- reading the record -------------------------------------------------

    def names(self) -> list[str]:
        return [call.effect for call in self.calls]

    def count(self, effect: str) -> int:
        return self.names().count(effect)

    def called(self, effect: str) -> list[Call]:
        return [call for call in self.calls if call.effect == effect]

    def first_access(self) -> StackAccess:
        """The stack access token the workflow read first (it must have read one)."""
        answer = self.called("read_access")[0].answer
        assert isinstance(answer, Success)
        access = answer.unwrap()
        assert isinstance(access, StackAccess)
        return access

    @property
    def decision_now(self) -> datetime:
        """The `now` core must have decided with: the clock's, once it held a lock."""
        locks = {"locked", "shared_locked"}
        return self.scenario.lock_now if locks & set(self.names()) else self.scenario.now

    # --- the stores ---------------------------------------------------------

    def _record(self, effect: str, argument: object, answer: T) -> T:
        self.calls.append(Call(effect=effect, argument=argument, answer=answer))
        return answer

    def _clock(self) -> datetime:
        return self.scenario.lock_now

    @staticmethod
    def _plain(read: Result[CacheRead, str]) -> CacheRead | str:
        """A scenario's `Result` as a store's `read` answers: the entry, or the reason."""
        if isinstance(read, Success):
            found: CacheRead = read.unwrap()
            return found
        reason: str = read.failure()
        return reason

    def _read_cache(self) -> CacheRead | str:
        return self._record("read_cache", None, self._plain(self.cache))

    def _write_cache(self, entry: CachedToken) -> Result[None, LocalError]:
        if self.scenario.cache_write_fails:
            return self._record("write_cache", entry, Failure(LocalError(message="disk full")))
        self.cache = Success((entry, self.scenario.lock_now))
        return self._record("write_cache", entry, Success(None))

    def _locked(
        self, body: Callable[[], Result[CachedToken, AcquireError]]
    ) -> Result[CachedToken, AcquireError]:
        if self.scenario.lock_fails:
            return self._record(
                "locked", None, Failure(LocalError(message="lock not acquired in time"))
            )
        self._record("locked", None, None)
        if self.scenario.other_writer is not None:
            self.cache = Success(self.scenario.other_writer)
        return body()

    def _shared_read(self) -> CacheRead | str:
        assert self.shared is not None
        return self._record("shared_read", None, self._plain(self.shared))

    def _shared_write(self, entry: CachedToken) -> Result[None, LocalError]:
        if self.scenario.shared_write_fails:
            return self._record("shared_write", entry, Failure(LocalError(message="redis down")))
        self.shared = Success((entry, self.scenario.lock_now))
        return self._record("shared_write", entry, Success(None))

    def _shared_locked(
        self, body: Callable[[], Result[CachedToken, AcquireError]]
    ) -> Result[CachedToken, AcquireError]:
        # A shared store never fails a call: without its lock, the body runs unlocked.
        self._record("shared_locked", None, self.scenario.shared_lock_held)
        if self.scenario.shared_other_writer is not None:
            self.shared = Success(self.scenario.shared_other_writer)
        return body()

    # --- the grants ---------------------------------------------------------

    def _next(
        self, effect: str, timeline: tuple[Result[T, AcquireError], ...]
    ) -> Result[T, AcquireError]:
        position = self._positions.get(effect, 0)
        self._positions[effect] = position + 1
        return timeline[min(position, len(timeline) - 1)]

    def _read_access(self) -> Result[StackAccess, AcquireError]:
        if self.accesses is None:
            return self._record("read_access", None, Failure(AuthRequired(message="no access")))
        return self._record("read_access", None, Success(self.accesses))

    def _write_access(self, access: StackAccess) -> Result[None, AcquireError]:
        if self.scenario.access_write_fails:
            return self._record(
                "write_access", access, Failure(LocalError(message="read-only file system"))
            )
        self.accesses = access
        return self._record("write_access", access, Success(None))

    def _discover_stack(self, force: bool) -> Result[DiscoveryDocument, AcquireError]:
        answer = self._next("discover_stack", self.scenario.stack_discoveries)
        return self._record("discover_stack", force, answer)

    def _exchange(self, request: TokenRequest) -> Result[TokenResponse, AcquireError]:
        answer = self._next("exchange", self.scenario.exchanges)
        return self._record("exchange", request, answer)

    def _client_token(self, request: TokenRequest) -> Result[TokenResponse, AcquireError]:
        answer = self._next("client_token", self.scenario.exchanges)
        return self._record("client_token", request, answer)

    def _discover_membership(self, force: bool) -> Result[DiscoveryDocument, AcquireError]:
        answer = self._next("discover_membership", self.scenario.membership_discoveries)
        return self._record("discover_membership", force, answer)

    def _refresh(self, request: TokenRequest) -> Result[TokenResponse, AcquireError]:
        if self.scenario.rotated_elsewhere is not None:
            self.accesses = self.scenario.rotated_elsewhere  # fctl refreshed meanwhile
        answer = self._next("refresh", self.scenario.refreshes)
        return self._record("refresh", request, answer)


def with_cache_write(scenario: Scenario, *, fails: bool) -> Scenario:
    """The same scenario, with every level's cache write failing or not."""
    return replace(scenario, cache_write_fails=fails, shared_write_fails=fails)


def form_value(request: object, name: str) -> str | None:
    """A form field of a recorded `TokenRequest`."""
    assert isinstance(request, TokenRequest)
    return dict(request.form).get(name)
