"""What a token source's constructors take, and how it becomes a source's parts.

One constructor path per kind of source: `fctl_parts`, `client_parts` and
`credentials_parts` resolve the same knobs (`Knobs`: environment, logger,
clock, HTTP policy, cache dir and TTL, lock timeout, renewal) and call the
kind's composition root (`_roots`); `_source` makes the `TokenSource`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, Required, TypedDict

from returns.result import Failure, Result
from stacktoken.core._cache import Grant, Store
from stacktoken.core._errors import AcquireError, UsageError
from stacktoken.core._failures import FailureKnobs, FailureMemory
from stacktoken.core._paths import client_key
from stacktoken.core._record import replace
from stacktoken.core._renewal import RenewalPolicy
from stacktoken.core._results import lift
from stacktoken.core._time import datetime, timedelta
from stacktoken.core._types import ClientCredentials, Settings
from stacktoken.core._urls import check_endpoint_url

from ._config import FctlStack, config_dir_from, default_cache_dir, locate_stack, settings_from
from ._discovery import DiscoveryCache
from ._failures import FailureSlot
from ._files import LOCK_TIMEOUT_SECONDS
from ._http import Http, HttpPolicy
from ._process import library_logger, utc_now
from ._roots import Bound, bind_client, bind_credentials, bind_fctl

__all__ = [
    "DEFAULT_RENEWAL",
    "ClientOptions",
    "CredentialsOptions",
    "FctlOptions",
    "Knobs",
    "Parts",
    "SharedStore",
    "client_parts",
    "credentials_parts",
    "fctl_parts",
]

#: Early renewal unless the caller says otherwise (`renewal=None`: renew at expiry).
DEFAULT_RENEWAL = RenewalPolicy()


class SharedStore(Protocol):
    """A store several hosts share (`RedisStore`): it gives core the `Store` record
    of the entry of core key `key` (`client_key`: never the secret), stamped with
    `stack_uri`, `client_id` and the sorted `scopes`."""

    def record(
        self,
        key: str,
        *,
        stack_uri: str,
        client_id: str,
        scopes: tuple[str, ...] = (),
        settings: Settings | None = None,
    ) -> Store: ...


class Knobs(TypedDict, total=False):
    """What every constructor takes, besides what names its source.

    `cache_dir`: where tokens (and discovery documents) are cached (default: the
    user cache dir); `cache_ttl`: how long a stored token is reused; `log`: debug
    lines (default: the `stacktoken` logger); `environ`: instead of `os.environ`;
    `lock_timeout`: seconds a cross-process lock is waited for (then
    `LocalStorageError`); `renewal`: when a held token is renewed (None: only
    once it is no longer fresh); `renew_in_background`: a daemon thread renews
    at that point instead of the first call after it (stopped by `close()`);
    `clock`: the time of day tokens' lifetimes are measured on (simulations,
    tests; a source on another clock than the system's has no lock-free fast path);
    `failures`: how long failures at the token endpoint are remembered
    (`FailureKnobs`: a rejection's window, a transient failure's backoff).
    """

    cache_dir: str | os.PathLike[str] | None
    cache_ttl: str | timedelta | None
    log: Callable[[str], None] | None
    http_policy: HttpPolicy | None
    environ: Mapping[str, str] | None
    lock_timeout: float
    renewal: RenewalPolicy | None
    renew_in_background: bool
    clock: Callable[[], datetime]
    failures: FailureKnobs


class FctlOptions(Knobs, total=False):
    config_dir: str | os.PathLike[str] | None
    profile: str | None
    organization: str | None
    stack: str | None


class ClientOptions(Knobs, total=False):
    stack_uri: Required[str]
    client_id: Required[str]
    client_secret: Required[str]
    scopes: tuple[str, ...] | list[str]
    store: SharedStore | None


class CredentialsOptions(Knobs, total=False):
    stack_uri: Required[str]
    access_token: Required[str]
    refresh_token: str | None
    membership_uri: str | None
    on_refresh: Callable[[str, str | None], None] | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Parts:
    """Everything a `TokenSource` is made of."""

    stores: tuple[Store, ...]
    grant: Grant
    settings: Settings
    log: Callable[[str], None]
    stack_uri: str | None
    close: Callable[[], None]
    name: str
    clock: Callable[[], datetime]
    renewal: RenewalPolicy | None
    renew_in_background: bool
    memory: FailureMemory | None = None


class _Setup:
    """The knobs resolved: what every root and every source takes."""

    def __init__(self, knobs: Knobs, settings: Settings) -> None:
        self.environ = _environ(knobs)
        self.settings = settings
        self.log = knobs.get("log") or library_logger()
        self.clock = knobs.get("clock", utc_now)
        self.lock_timeout = knobs.get("lock_timeout", LOCK_TIMEOUT_SECONDS)
        policy = knobs.get("http_policy") or HttpPolicy()
        self.http = Http(policy=policy, clock=self.clock, log=self.log)
        cache_dir = knobs.get("cache_dir")
        fixed = None if cache_dir is None else os.fspath(cache_dir)
        environ = self.environ
        # The cache dir, computed when first needed (a warm run never needs it).
        self.cache_root: Callable[[], str] = (
            (lambda: fixed) if fixed is not None else (lambda: default_cache_dir(environ))
        )
        self.discovery_cache = DiscoveryCache(self.cache_root, log=self.log)
        renewal = knobs.get("renewal", DEFAULT_RENEWAL)
        # A renewal keeps at least the request's deadline before the token goes stale.
        if renewal is not None and renewal.room_seconds is None:
            renewal = replace(renewal, room_seconds=policy.timeout)
        self.renewal = renewal
        self.background = knobs.get("renew_in_background", False)
        self.failures = knobs.get("failures")

    def parts(self, bound: Bound) -> Parts:
        return Parts(
            stores=bound.stores,
            grant=bound.grant,
            settings=self.settings,
            log=self.log,
            stack_uri=bound.stack_uri,
            close=self.http.close,
            name=bound.name,
            clock=self.clock,
            renewal=self.renewal,
            renew_in_background=self.background,
            memory=bound.memory,
        )


def _environ(knobs: Knobs) -> Mapping[str, str]:
    given = knobs.get("environ")
    return os.environ if given is None else given


def _keys(options: type) -> frozenset[str]:
    return frozenset(options.__required_keys__ | options.__optional_keys__)  # type: ignore[attr-defined]


def _setup(knobs: Knobs, *, known: frozenset[str]) -> Result[_Setup, AcquireError]:
    unknown = sorted(set(knobs) - known)
    if unknown:  # what Python says of an unknown keyword argument
        raise TypeError(f"unexpected keyword argument(s): {', '.join(unknown)}")
    settings: Result[Settings, AcquireError] = lift(
        settings_from(knobs.get("cache_ttl"), _environ(knobs))
    )
    return settings.map(lambda settings: _Setup(knobs, settings))


def fctl_parts(options: FctlOptions) -> Result[Parts, AcquireError]:
    """The parts of a source for a stack of an fctl profile."""

    def build(setup: _Setup) -> Result[Parts, AcquireError]:
        config_dir = options.get("config_dir")
        root = config_dir_from(None if config_dir is None else os.fspath(config_dir), setup.environ)
        located: Result[FctlStack, AcquireError] = lift(
            locate_stack(
                root,
                profile=options.get("profile"),
                organization=options.get("organization"),
                stack=options.get("stack"),
                environ=setup.environ,
            )
        )
        return located.map(
            lambda found: setup.parts(
                bind_fctl(
                    found,
                    settings=setup.settings,
                    http=setup.http,
                    discovery_cache=setup.discovery_cache,
                    clock=setup.clock,
                    log=setup.log,
                    lock_timeout=setup.lock_timeout,
                    cache_dir=setup.cache_root(),
                    failures=setup.failures,
                )
            )
        )

    return _setup(options, known=_keys(FctlOptions)).bind(build)


def client_parts(options: ClientOptions) -> Result[Parts, AcquireError]:
    """The parts of a source for a stack OAuth client."""
    if not options["client_id"]:
        return Failure(UsageError(message="the client id is empty"))
    if not options["client_secret"]:
        return Failure(UsageError(message="the client secret is empty"))
    credentials = ClientCredentials.of(
        stack_uri=options["stack_uri"].rstrip("/"),
        client_id=options["client_id"],
        client_secret=options["client_secret"],
        scopes=tuple(options.get("scopes", ())),
    )

    def build(setup: _Setup) -> Parts:
        return setup.parts(
            bind_client(
                credentials,
                cache_dir=setup.cache_root(),
                http=setup.http,
                discovery_cache=setup.discovery_cache,
                clock=setup.clock,
                log=setup.log,
                lock_timeout=setup.lock_timeout,
                shared=_shared_record(options.get("store"), credentials, setup.settings),
                shared_failures=_shared_failures(options.get("store"), credentials),
                failures=setup.failures,
            )
        )

    checked: Result[str, AcquireError] = check_endpoint_url(credentials.stack_uri)
    return checked.bind(lambda _: _setup(options, known=_keys(ClientOptions))).map(build)


def credentials_parts(options: CredentialsOptions) -> Result[Parts, AcquireError]:
    """The parts of a source over a stack access token a service keeps."""

    def build(setup: _Setup) -> Parts:
        return setup.parts(
            bind_credentials(
                stack_uri=options["stack_uri"],
                access_token=options["access_token"],
                refresh_token=options.get("refresh_token"),
                membership_uri=options.get("membership_uri"),
                on_refresh=options.get("on_refresh"),
                settings=setup.settings,
                http=setup.http,
                discovery_cache=setup.discovery_cache,
                clock=setup.clock,
                log=setup.log,
            )
        )

    # The refresh token's destination is refused now rather than at the first
    # refresh, maybe hours later in a thread (every request is checked again when sent).
    membership_uri = options.get("membership_uri")
    if membership_uri is not None and isinstance(
        checked := check_endpoint_url(membership_uri), Failure
    ):
        return checked
    return _setup(options, known=_keys(CredentialsOptions)).map(build)


def _shared_record(
    store: SharedStore | None, credentials: ClientCredentials, settings: Settings
) -> Store | None:
    if store is None:
        return None
    key = client_key(credentials.stack_uri, credentials.client_id, credentials.scopes)
    return store.record(
        key,
        stack_uri=credentials.stack_uri,
        client_id=credentials.client_id,
        scopes=credentials.scopes,
        settings=settings,
    )


def _shared_failures(
    store: SharedStore | None, credentials: ClientCredentials
) -> FailureSlot | None:
    """The shared store's place for this credential's failures, if it keeps them."""
    slot = getattr(store, "failure_slot", None)
    if slot is None:
        return None
    key = client_key(credentials.stack_uri, credentials.client_id, credentials.scopes)
    found: FailureSlot = slot(key)
    return found
