"""The public facade: a thread-safe token source.

`token()` first looks at the token this process already holds: until its
refresh point (or, when renewing in the background, while it is fresh) that
costs one clock read and one comparison, no file access and no lock.
Otherwise it asks core's `_holding` machine what to do (use the held token,
renew it, or acquire one) and does it: one thread at a time runs core's
cache workflow over the source's stores and grant (the others use the held
token meanwhile, or wait and then find the token it got).

Renewal (core's `_renewal`): a held token past its refresh point is renewed
by the first call after that point, through the same cache workflow (so a
fleet on one store asks once), while other threads keep getting the held
token without waiting. With `renew_in_background=True` a daemon thread
(`_renewer`) renews at the refresh point instead, and no call waits for a
request while a token is held. A failed renewal is tried again after a
growing wait; the held token stays in use while it is fresh.

Construction: one function per kind of source (`fctl_source`,
`client_source`, `credentials_source`), each returning a `Result`, all taking
the same knobs (`Knobs`); the public classmethods raise instead.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from time import time as _wall  # one global lookup on `token()`'s fast path
from typing import TYPE_CHECKING, Unpack
from weakref import WeakSet

from returns.result import Failure, Result, Success
from stacktoken.core._cache import Grant, Store
from stacktoken.core._errors import AcquireError, AuthRequired
from stacktoken.core._failures import FailureMemory
from stacktoken.core._holding import Act, Holding, hold, next_wake, on_call, on_failed, usable
from stacktoken.core._profile import LOGIN_HINT
from stacktoken.core._renewal import RenewalPolicy
from stacktoken.core._time import datetime
from stacktoken.core._types import CachedToken, Settings
from stacktoken.core._workflow import acquire

from ._exceptions import as_exception
from ._process import uniform, utc_now
from ._renewer import Renewer
from ._setup import (
    DEFAULT_RENEWAL,
    ClientOptions,
    CredentialsOptions,
    FctlOptions,
    Parts,
    client_parts,
    credentials_parts,
    fctl_parts,
)

if TYPE_CHECKING:
    from ._credential import ChainOptions

__all__ = ["TokenSource", "client_source", "credentials_source", "fctl_source"]

#: `_fast_until` when there is no fast path: no clock reading is below it.
_NEVER = float("-inf")


class TokenSource:
    """Stack API tokens: in memory, then the stores (disk, shared), then the network."""

    def __init__(
        self,
        *,
        stores: tuple[Store, ...],
        grant: Grant,
        settings: Settings,
        log: Callable[[str], None],
        stack_uri: str | None,
        close: Callable[[], None],
        name: str,
        clock: Callable[[], datetime] = utc_now,
        renewal: RenewalPolicy | None = DEFAULT_RENEWAL,
        renew_in_background: bool = False,
        jitter: Callable[[], float] = uniform,
        memory: FailureMemory | None = None,
    ) -> None:
        self._stores, self._grant, self._settings = stores, grant, settings
        self._memory = memory
        self._log, self._stack_uri, self._close, self._name = log, stack_uri, close, name
        self._clock, self._renewal, self._jitter = clock, renewal, jitter
        self._lock = threading.Lock()
        # The lock-free fast path of `token()`: a token, and the epoch second until
        # which it is used without asking `_holding` (the system clock's: a source
        # on another clock has no fast path). Two attributes, not a tuple: 8 % of
        # a `token()` call (benchmarks/RESULTS.md). `_publish` keeps them coherent.
        self._fast_token = ""
        self._fast_until = _NEVER
        self._wall_clock = clock is utc_now
        self._holding: Holding | None = None  # replaced whole, read without the lock
        self._background = renew_in_background and renewal is not None
        self._renewer: Renewer | None = None
        _SOURCES.add(self)

    def _after_fork(self) -> None:
        """In a forked child: the parent's other threads are gone, so a lock one of
        them held would never be released, and its renewal thread is not here."""
        self._lock = threading.Lock()
        holding = self._holding
        if self._renewer is not None and holding is not None and self._wall_clock:
            # The fast path ran to the token's end, the thread renewing meanwhile:
            # here it ends at the refresh point, where a call renews (and restarts it).
            bound = holding.renew_at or holding.stale_at
            self._publish(holding.token.access_token, bound.timestamp())
        self._renewer = None  # started again by the next token held

    def _publish(self, token: str, until: float) -> None:
        """Give `token()`'s fast path `token` until the epoch second `until`.

        A reader reads `_fast_until`, then `_fast_token`. The token is written
        first, so a reader past the check takes either the token its deadline
        was for, or the one published after it (just obtained, fresher). Taking
        the fast path away writes only the deadline (`_NEVER`): a reader already
        past the check returns the token it would have returned a moment before.
        """
        self._fast_token = token
        self._fast_until = until

    # -- construction: one-line raising wrappers over the module's functions ---

    @classmethod
    def from_fctl(cls, **options: Unpack[FctlOptions]) -> TokenSource:
        """A source for a stack of an fctl profile; raises `StackTokenError` subclasses.

        `config_dir`, `profile`, `organization`, `stack`: resolved as fctl does (the
        argument, else `PROFILE` / `ORGANIZATION` / `STACK` in `environ`, else the
        profile's defaults); plus the `Knobs` every constructor takes.
        """
        return _or_raise(fctl_source(**options))

    @classmethod
    def default(cls, **options: Unpack[ChainOptions]) -> TokenSource:
        """The source of the credential found where this machine keeps one, with no
        request (docs/design.md §14): the arguments (a `stack_uri` and `client_id`,
        or a `profile`/`organization`/`stack`), else a machine credential in
        `$STACKTOKEN_STACK_URI` and `$STACKTOKEN_CLIENT_ID` (secret in
        `$STACKTOKEN_CLIENT_SECRET` or `$STACKTOKEN_CLIENT_SECRET_FILE`, scopes in
        `$STACKTOKEN_SCOPES`), else the fctl profile. `$STACKTOKEN_CREDENTIAL`
        (`client` or `fctl`) pins one. Other keywords as for `from_fctl` and
        `from_client_credentials`."""
        from ._credential import default_source

        return _or_raise(default_source(fctl=fctl_source, client=client_source, **options))

    @classmethod
    def from_client_credentials(cls, **options: Unpack[ClientOptions]) -> TokenSource:
        """A source for a stack OAuth client (docs/design.md §9), warm across processes:
        `stack_uri`, `client_id`, `client_secret`, `scopes`, and `store` (a store
        several hosts share, after this host's files); plus the `Knobs`. Tokens are
        cached by stack URI, client id and scopes, never by the secret."""
        return _or_raise(client_source(**options))

    @classmethod
    def from_credentials(cls, **options: Unpack[CredentialsOptions]) -> TokenSource:
        """A source for a service that keeps its own stack access token, without fctl
        files: `stack_uri`, `access_token`, `refresh_token`, `membership_uri`, and
        `on_refresh(access_token, refresh_token)`, called when the stack access token
        is refreshed (to persist a rotated refresh token); plus the `Knobs`. Tokens
        are held in memory only; `cache_dir` only holds discovery documents."""
        return _or_raise(credentials_source(**options))

    # -- use -----------------------------------------------------------------

    def token(self) -> str:
        """The stack API token; raises a `StackTokenError` subclass when none can be had."""
        if _wall() < self._fast_until:
            return self._fast_token
        result = self.token_result()
        held = result.value_or(None)
        if held is None:
            raise as_exception(result.failure())
        return held.access_token

    def cached_token(self) -> str | None:
        """The held token when a call would use it as it is, else None (the caller
        should renew or acquire: what async callers try before they wait).

        Never blocks: no lock, no file, no network.
        """
        if _wall() < self._fast_until:
            return self._fast_token
        holding = self._holding
        if self._decide(holding, busy=self._lock.locked()) is Act.USE:
            assert holding is not None
            return holding.token.access_token
        return None

    def held_token(self) -> str | None:
        """The held token while it is fresh, past its refresh point or not; never blocks."""
        held = usable(self._holding, now=self._clock())
        return None if held is None else held.access_token

    async def token_async(self) -> str:
        """`token()` for async callers (asyncio or trio); never blocks the event loop.

        A fresh token in memory is returned at once; otherwise the task waits
        for the one acquisition of this source in flight (started if none is),
        which runs in its own thread and is never cancelled with a waiting task.
        """
        from ._flight import token_async

        return await token_async(self)

    def token_result(self) -> Result[CachedToken, AcquireError]:
        """The stack API token with its type and expiry, as a `Result`."""
        holding = self._holding
        # Busy or not shows when this call tries the lock, should it renew.
        match self._decide(holding, busy=False):
            case Act.USE if holding is not None:
                return Success(holding.token)
            case Act.RENEW if holding is not None:
                if not self._lock.acquire(blocking=False):
                    return Success(holding.token)  # busy: another thread renews or acquires
                try:
                    return self._act()
                finally:
                    self._lock.release()
        with self._lock:
            return self._act()

    def _decide(self, holding: Holding | None, *, busy: bool) -> Act:
        return on_call(holding, now=self._clock(), busy=busy, background=self._renewer is not None)

    def _act(self, *, renew: bool = False) -> Result[CachedToken, AcquireError]:
        """Under the lock: decide again (another thread may have acted meanwhile) and
        use, renew or acquire. `renew`: the renewal thread's call, due by `next_wake`."""
        holding, now = self._holding, self._clock()
        act = (
            Act.RENEW
            if renew
            else on_call(holding, now=now, busy=False, background=self._renewer is not None)
        )
        if act is Act.USE and holding is not None:
            return Success(holding.token)
        renewing = act is Act.RENEW and holding is not None
        result = acquire(
            stores=self._stores,
            grant=self._grant,
            settings=self._settings,
            now=now,
            clock=self._clock,
            log=self._log,
            renewing=(self._renewal or DEFAULT_RENEWAL) if renewing else None,
            memory=self._memory,
        )
        match result:
            case Success(token):
                self._hold(token, now=now)
                if renewing:
                    self._log("token renewed before its expiry")
            case Failure(error) if renewing and holding is not None:
                after = self._clock()
                failed, wait = on_failed(
                    holding, policy=self._renewal, now=after, jitter=self._jitter()
                )
                self._holding = failed
                if usable(holding, now=after) is not None:
                    self._log(
                        f"renewal failed ({error.message}); the held token stays in use, "
                        f"next try in {wait:.1f} s"
                    )
                    return Success(holding.token)
        return result

    def _hold(self, token: CachedToken, *, now: datetime) -> None:
        holding = hold(
            token, policy=self._renewal, settings=self._settings, now=now, jitter=self._jitter()
        )
        if holding is None:
            return  # handed out once, never reused (no expiry, or inside the grace)
        if holding.short:
            self._log("the token leaves no room to renew it before it goes stale: renewing at once")
        self._holding = holding
        if self._wall_clock:
            bound = holding.renew_at if not self._background else None
            self._publish(token.access_token, (bound or holding.stale_at).timestamp())
        if self._background:
            self._start_renewer()

    # -- background renewal -----------------------------------------------------

    def _start_renewer(self) -> None:
        if self._renewer is None:
            self._renewer = Renewer(
                self._renewal_step, name=f"stacktoken-renewal {self._name}", log=self._log
            )
            self._renewer.start()
        else:
            self._renewer.poke()

    def _renewal_step(self) -> float | None:
        """The background thread's step: renew if due; seconds until the next step
        (None: nothing to renew, wait to be poked)."""
        with self._lock:
            wake = next_wake(self._holding, now=self._clock())
            if wake is None or wake > 0:
                return wake
            self._act(renew=True)
            return next_wake(self._holding, now=self._clock())

    def invalidate(self, rejected: str | None = None) -> None:
        """Drop the token held in memory and in the stores (a server rejected it).

        Given the `rejected` token, nothing is dropped if this source already
        holds another one: N requests refused at once then cost one new token.
        """
        with self._lock:
            holding = self._holding
            held = None if holding is None else holding.token.access_token
            if rejected is not None and held is not None and held != rejected:
                return
            self._holding, self._fast_until = None, _NEVER
            dropped = rejected if rejected is not None else held
            if dropped is None:
                return
            for store in self._stores:
                match store.drop(dropped):
                    case Failure(error):
                        self._log(f"{store.name} cache drop failed: {error.message}")

    @property
    def stack_uri(self) -> str:
        """The stack's base URI, for API clients."""
        if self._stack_uri is None:
            raise as_exception(
                AuthRequired(message=f"no URI known for stack {self._name}; {LOGIN_HINT}")
            )
        return self._stack_uri

    def close(self) -> None:
        """Stop the background renewal thread, if any, and close the HTTP connections.

        The source stays usable; from then on it renews on call, with no thread.
        """
        self._background = False
        renewer, self._renewer = self._renewer, None
        if renewer is not None and not renewer.stop():
            self._log("background renewal still inside a request; it ends after it")
        with self._lock:
            holding = self._holding
            if self._wall_clock and holding is not None and holding.renew_at is not None:
                # The fast path now ends at the refresh point, where a call renews.
                self._publish(holding.token.access_token, holding.renew_at.timestamp())
        self._close()

    def __enter__(self) -> TokenSource:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TokenSource({self._name})"


def _or_raise(built: Result[TokenSource, AcquireError]) -> TokenSource:
    source = built.value_or(None)
    if source is None:
        raise as_exception(built.failure())
    return source


_SOURCES: WeakSet[TokenSource] = WeakSet()


def _reset_after_fork() -> None:
    for source in list(_SOURCES):
        source._after_fork()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_reset_after_fork)


# -- construction: one path per kind of source, each a `Result` --------------------


def fctl_source(**options: Unpack[FctlOptions]) -> Result[TokenSource, AcquireError]:
    """A source for a stack of an fctl profile (see `TokenSource.from_fctl`)."""
    return fctl_parts(options).map(_made)


def client_source(**options: Unpack[ClientOptions]) -> Result[TokenSource, AcquireError]:
    """A source for a stack OAuth client (see `TokenSource.from_client_credentials`)."""
    return client_parts(options).map(_made)


def credentials_source(
    **options: Unpack[CredentialsOptions],
) -> Result[TokenSource, AcquireError]:
    """A source over a stack access token a service keeps (see `TokenSource.from_credentials`)."""
    return credentials_parts(options).map(_made)


def _made(parts: Parts) -> TokenSource:
    return TokenSource(
        stores=parts.stores,
        grant=parts.grant,
        settings=parts.settings,
        log=parts.log,
        stack_uri=parts.stack_uri,
        close=parts.close,
        name=parts.name,
        clock=parts.clock,
        renewal=parts.renewal,
        renew_in_background=parts.renew_in_background,
        memory=parts.memory,
    )
