"""The sandbox: Formance's membership IdP and one stack (auth and ledger) on 127.0.0.1.

Built from the loopback servers of :mod:`stacktoken.testing._servers`, set up as
Formance's services behave (docs/design.md §5, §13): user tokens live 5
minutes, client-credentials tokens an hour; stack tokens are RS256 JWTs whose
``scope`` claim alone says what was granted (responses carry no ``scope``, and
a scope the client may not have is cut silently); discovery advertises
``private_key_jwt``, which the token endpoint refuses; refresh tokens rotate;
the ledger accepts only tokens its stack issued, unexpired and unrevoked.

Endpoints are named by short keys (:data:`ENDPOINTS`) for the counters and the
faults. Everything binds 127.0.0.1 only, every wait is bounded, and a sandbox
given a ``lifetime`` stops itself when it runs out.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Self

from stacktoken.testing._clock import SimulatedClock
from stacktoken.testing._ledger import LedgerStub
from stacktoken.testing._loopback import Service
from stacktoken.testing._servers import (
    ClientAuthMethod,
    DeviceAuthorization,
    DeviceDecision,
    Fault,
    FctlProfile,
    LoopbackOAuthServer,
    MembershipServer,
    StackAuthServer,
    org_claim,
    write_fctl_profile,
)

if TYPE_CHECKING:
    from stacktoken import TokenSource

__all__ = ["ENDPOINTS", "Hold", "Sandbox", "SandboxClient"]

#: Formance's lifetimes (docs/design.md §5): user tokens, client-credentials tokens.
USER_TOKEN_LIFETIME: Final = 300
CLIENT_TOKEN_LIFETIME: Final = 3600
#: What the stack's discovery advertises; ``private_key_jwt`` is refused.
STACK_AUTH_METHODS: Final = ("none", "client_secret_basic", "client_secret_post", "private_key_jwt")
DEFAULT_SCOPES: Final = ("ledger:read", "ledger:write")

#: Short endpoint names -> (server: "membership" or "stack", the server's endpoint key).
ENDPOINTS: Final[Mapping[str, tuple[str, str]]] = {
    "membership.discovery": ("membership", MembershipServer.DISCOVERY),
    "membership.jwks": ("membership", MembershipServer.JWKS),
    "membership.token": ("membership", MembershipServer.TOKEN),
    "membership.device": ("membership", MembershipServer.DEVICE_AUTHORIZATION),
    "membership.revoke": ("membership", MembershipServer.REVOCATION),
    "stack.discovery": ("stack", StackAuthServer.DISCOVERY),
    "stack.token": ("stack", StackAuthServer.TOKEN),
    "stack.revoke": ("stack", StackAuthServer.REVOCATION),
    "ledger.info": ("stack", LedgerStub.INFO),
    "ledger.list": ("stack", LedgerStub.LIST),
    "ledger.v1_info": ("stack", StackAuthServer.RESOURCE),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class SandboxClient:
    """A stack OAuth client of the sandbox (``fctl auth clients create``)."""

    client_id: str
    client_secret: str = field(repr=False)
    stack_uri: str
    scopes: tuple[str, ...]
    #: The cache dir its token sources use (inside the sandbox's work dir).
    cache_dir: Path

    def token_source(self, *, scopes: Sequence[str] | None = None, **options: Any) -> TokenSource:
        """``TokenSource.from_client_credentials`` for this client; ``options`` go there too."""
        from stacktoken import TokenSource

        options.setdefault("cache_dir", self.cache_dir)
        return TokenSource.from_client_credentials(
            stack_uri=self.stack_uri,
            client_id=self.client_id,
            client_secret=self.client_secret,
            scopes=tuple(self.scopes if scopes is None else scopes),
            **options,
        )

    def env(self) -> dict[str, str]:
        """The environment a process (the CLI, ``TokenSource.default()``) finds it in."""
        return {
            "STACKTOKEN_STACK_URI": self.stack_uri,
            "STACKTOKEN_CLIENT_ID": self.client_id,
            "STACKTOKEN_CLIENT_SECRET": self.client_secret,
        }


class Hold:
    """The next request to an endpoint, handled but unanswered until :meth:`release`."""

    def __init__(self) -> None:
        self.handled = threading.Event()
        self.released = threading.Event()

    def wait(self, timeout: float = 10.0) -> bool:
        """Block until the server has handled the held request; True if it has."""
        return self.handled.wait(timeout)

    def release(self) -> None:
        """Let the answer go (it goes anyway after 30 s, or when the sandbox stops)."""
        self.released.set()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


class Sandbox(Service):
    """Formance's membership IdP and one stack on 127.0.0.1; a context manager.

    ``clock``: a :class:`SimulatedClock` the servers issue and check tokens on
    (default: real time). ``workdir``: where profiles and caches go (default:
    a temporary dir removed by :meth:`stop`). ``lifetime``: seconds after which
    the sandbox stops itself (None: until :meth:`stop`). ``approve_devices``:
    approve each device-flow login at once, as a user would in the browser
    (else approve with :meth:`approve_device`, or set :meth:`decide_devices`).
    ``device_interval``: the poll interval device answers give (Formance's is
    5 s; shorter here, so that a login in a test takes a fraction of a second).
    """

    def __init__(
        self,
        *,
        organization: str = "org1",
        stack: str = "stk1",
        clock: SimulatedClock | None = None,
        workdir: str | os.PathLike[str] | None = None,
        lifetime: float | None = None,
        approve_devices: bool = True,
        device_interval: float = 0.2,
        ledgers: int | Sequence[str] = 20,
    ) -> None:
        self.organization = organization
        self.stack_id = stack
        self.clock = clock
        self.lifetime = lifetime
        self._own_workdir = workdir is None
        self._workdir_arg = workdir
        self._workdir: Path | None = None
        self._timer: threading.Timer | None = None
        self._stopped = threading.Event()
        self.membership = MembershipServer(
            access_token_lifetime=USER_TOKEN_LIFETIME, device_interval=device_interval
        )
        self.membership.token_ids = True
        self.stack = StackAuthServer(
            self.membership,
            expires_in=USER_TOKEN_LIFETIME,
            client_credentials_expires_in=CLIENT_TOKEN_LIFETIME,
            access_token_format="jwt",
            scope_in_response=False,
            token_endpoint_auth_methods=STACK_AUTH_METHODS,
        )
        if clock is not None:
            self.membership.clock = self.stack.clock = clock.time
        self.ledger = LedgerStub(self.stack, ledgers=ledgers)
        self.decide_devices((lambda _: "approve") if approve_devices else None)

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> Self:
        """Start both servers (idempotent)."""
        self._stopped.clear()
        self.membership.start()
        self.stack.start()
        self.membership.device_organizations = [
            org_claim(self.organization, {self.stack_id: self.stack.stack_uri})
        ]
        if self._workdir is None:
            if self._workdir_arg is None:
                self._workdir = Path(tempfile.mkdtemp(prefix="stacktoken-sandbox-"))
            else:
                self._workdir = Path(self._workdir_arg)
                self._workdir.mkdir(parents=True, exist_ok=True)
        if self.lifetime is not None and self._timer is None:
            self._timer = threading.Timer(self.lifetime, self.stop)
            self._timer.daemon = True
            self._timer.start()
        return self

    def stop(self) -> None:
        """Stop both servers, and remove the work dir the sandbox made itself."""
        if self._timer is not None and self._timer is not threading.current_thread():
            self._timer.cancel()
        self.stack.stop()
        self.membership.stop()
        if self._own_workdir and self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
        self._stopped.set()

    def wait_stopped(self, timeout: float) -> bool:
        """Block until :meth:`stop` has finished (or ``timeout`` s); True if it has."""
        return self._stopped.wait(timeout)

    @property
    def is_running(self) -> bool:
        return self.membership.is_running and self.stack.is_running

    # -- where things are -----------------------------------------------------------
    @property
    def membership_uri(self) -> str:
        """fctl's ``membershipURI`` (``http://127.0.0.1:P/api``)."""
        return self.membership.base_url

    @property
    def stack_uri(self) -> str:
        return self.stack.stack_uri

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            raise RuntimeError("the sandbox is not started")
        return self._workdir

    # -- credentials ------------------------------------------------------------------
    def client(
        self,
        client_id: str | None = None,
        client_secret: str | None = None,
        *,
        scopes: Sequence[str] = DEFAULT_SCOPES,
        auth_methods: Sequence[ClientAuthMethod] = ("client_secret_basic", "client_secret_post"),
    ) -> SandboxClient:
        """A new confidential client of the stack; ``scopes``: those it may be granted
        (a request for others is cut silently, as Formance does)."""
        client_id = client_id or f"svc-{secrets.token_hex(4)}"
        client_secret = client_secret or secrets.token_urlsafe(24)
        self.stack.add_client(
            client_id,
            client_secret,
            auth_methods=tuple(auth_methods),
            scopes=tuple(scopes),
        )
        return SandboxClient(
            client_id=client_id,
            client_secret=client_secret,
            stack_uri=self.stack_uri,
            scopes=tuple(scopes),
            cache_dir=self.workdir / "cache",
        )

    def fctl_profile(
        self, config_dir: str | os.PathLike[str] | None = None, *, profile: str = "default"
    ) -> FctlProfile:
        """An fctl config dir logged in to the sandbox (written directly, no device flow);
        default ``<workdir>/fctl``."""
        return write_fctl_profile(
            Path(config_dir) if config_dir is not None else self.workdir / "fctl",
            self.membership,
            self.stack,
            profile=profile,
            org=self.organization,
            stack_id=self.stack_id,
            stack_access_exp_in=USER_TOKEN_LIFETIME,
        )

    def login(
        self, config_dir: str | os.PathLike[str] | None = None, *, profile: str | None = None
    ) -> Path:
        """Log in by the real device flow (``stacktoken.login``), approved by the sandbox,
        with the stack's access got ahead of time; returns the config dir
        (default ``<workdir>/fctl``)."""
        from stacktoken import login

        target = Path(config_dir) if config_dir is not None else self.workdir / "fctl"
        decider = self.membership.device_decider
        self.decide_devices(lambda _: "approve")
        try:
            login(
                profile=profile,
                membership_uri=self.membership_uri,
                config_dir=target,
                cache_dir=self.workdir / "cache",
                organization=self.organization,
                stack=self.stack_id,
                on_prompt=lambda _url, _code: None,
            )
        finally:
            self.decide_devices(decider)
        return target

    def env(self, config_dir: str | os.PathLike[str] | None = None) -> dict[str, str]:
        """Variables that point fctl, stacktoken's CLI and ``TokenSource.from_fctl`` at
        the sandbox's profile and keep every cache inside the work dir."""
        home = self.workdir / "home"
        return {
            "HOME": str(home),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "FCTL_CONFIG_DIR": str(config_dir or self.workdir / "fctl"),
            "ORGANIZATION": self.organization,
            "STACK": self.stack_id,
        }

    # -- the device flow --------------------------------------------------------------
    def decide_devices(
        self, decider: Callable[[DeviceAuthorization], DeviceDecision | None] | None
    ) -> None:
        """Decide each new device authorization at once (``"approve"``, ``"deny"``, or
        None to leave it pending); None: leave them all to :meth:`approve_device`."""
        self.membership.device_decider = decider

    def approve_device(self, user_code: str, *, timeout: float = 5.0) -> None:
        """Approve a pending device login, as the user would in the browser."""
        self.membership.approve_device(user_code, timeout=timeout)

    def deny_device(self, user_code: str, *, timeout: float = 5.0) -> None:
        self.membership.deny_device(user_code, timeout=timeout)

    # -- counters ---------------------------------------------------------------------
    def _server(self, name: str) -> LoopbackOAuthServer:
        return self.membership if name == "membership" else self.stack

    def _where(self, endpoint: str) -> tuple[LoopbackOAuthServer, str]:
        try:
            server, key = ENDPOINTS[endpoint]
        except KeyError:
            known = ", ".join(ENDPOINTS)
            raise ValueError(f"unknown endpoint {endpoint!r}; known: {known}") from None
        return self._server(server), key

    def count(self, endpoint: str) -> int:
        """Requests an endpoint received (e.g. ``"stack.token"``), faulted ones included."""
        server, key = self._where(endpoint)
        return server.count(key)

    def counts(self) -> dict[str, int]:
        """Requests per endpoint, by short name (endpoints never called included)."""
        return {name: self.count(name) for name in ENDPOINTS}

    @property
    def total_requests(self) -> int:
        """Requests the sandbox received, every endpoint."""
        return self.membership.total_requests + self.stack.total_requests

    @property
    def auth_requests(self) -> int:
        """Requests to the auth servers (the ledger's left out)."""
        return sum(n for name, n in self.counts().items() if not name.startswith("ledger."))

    def wait_for_count(self, endpoint: str, count: int, timeout: float = 5.0) -> bool:
        server, key = self._where(endpoint)
        return server.wait_for_count(key, count, timeout)

    def reset_counts(self) -> None:
        self.membership.reset_counts()
        self.stack.reset_counts()
        self.ledger.reset()

    # -- faults -----------------------------------------------------------------------
    def inject(self, endpoint: str, *faults: Fault) -> None:
        """Queue faults for the next requests to ``endpoint``, one each (see :class:`Fault`)."""
        server, key = self._where(endpoint)
        server.inject(key, *faults)

    def fail_next(self, endpoint: str, times: int = 1, *, status: int = 503) -> None:
        """The next ``times`` requests get ``status`` with an OAuth error body."""
        self.inject(endpoint, *[Fault.status(status) for _ in range(times)])

    def delay_next(self, endpoint: str, seconds: float, times: int = 1) -> None:
        """The next ``times`` requests are answered ``seconds`` late."""
        self.inject(endpoint, *[Fault.delay(seconds) for _ in range(times)])

    def hold_next(self, endpoint: str) -> Hold:
        """The next request is handled but its answer held until ``release()``
        (or 30 s); use the returned :class:`Hold` as a context manager."""
        hold = Hold()
        self.inject(endpoint, Fault.hold(hold.handled, hold.released))
        return hold

    def reject_next(self, times: int = 1) -> None:
        """The ledger answers the next ``times`` requests 401, valid token or not
        (as after a revocation the client cannot know of)."""
        self.ledger.reject_next_valid_tokens(times)

    def expire_all(self) -> None:
        """Every token issued so far is expired now: the ledger refuses the stack's
        tokens and the stack refuses the membership's stack access tokens (a client
        must refresh at the membership and exchange again). Refresh tokens stay."""
        self.stack.expire_issued_tokens()
        self.stack.reject_assertion_ids(self.membership.signed_token_ids())

    def revoke_all(self) -> None:
        """Every refresh token and every issued stack token is revoked."""
        self.membership.revoke_all_refresh_tokens()
        self.stack.revoke_issued_tokens()

    def clear_faults(self) -> None:
        self.membership.clear_faults()
        self.stack.clear_faults()
