"""Logging in without fctl: the effects of core's device flow (docs/design.md §13).

`login_flow` is the one way in, for the CLI's `login` and `token` and the
public `login` (which raises): it gets a profile's root tokens (fctl's `login`)
and writes `profile.json` and `config.yml`, and, for a stack, gets that stack's
access token (fctl's `EnsureStackAccess` when `accesses.json` is missing or its
refresh token is rejected) and writes its `accesses.json`. Core decides every
step (`core/_device.py`, `core/_device_polling.py`); this module only sends,
waits, shows the code, verifies the ID token's signature with the IdP's JWKS
(pyjwt) and writes, after a verified success only.

Waits are slices of `time.sleep`, which Ctrl-C interrupts at once: the CLI then
exits 130 and nothing is written.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from returns.result import Failure, Result, Success
from stacktoken.core._codecs import encode_accesses
from stacktoken.core._device import (
    DEFAULT_MEMBERSHIP_URI,
    DeviceAuthorization,
    DeviceEffects,
    device_login,
    interpret_device_authorization,
    interpret_poll_answer,
    login_device_request,
    stack_access,
    stack_device_request,
    stack_resource,
)
from stacktoken.core._errors import AcquireError, AuthRequired, LocalError, RemoteError, UsageError
from stacktoken.core._json import json_object
from stacktoken.core._paths import CONFIG_FILE, name_error, profile_file
from stacktoken.core._profile import (
    LOGIN_HINT,
    LoginTokens,
    Profile,
    encode_config,
    encode_profile,
)
from stacktoken.core._record import replace
from stacktoken.core._requests import RetryPolicy, membership_discovery
from stacktoken.core._text import one_line
from stacktoken.core._time import datetime
from stacktoken.core._types import DiscoveryDocument, StackAccess, TokenRequest, TokenResponse
from stacktoken.core._urls import check_endpoint_url, endpoint_url_refusal

from ._config import (
    FctlStack,
    config_dir_from,
    current_profile,
    default_cache_dir,
    locate_stack,
)
from ._discovery import DiscoveryCache, discover
from ._files import Place, ensure_folder, read_private, write_atomic
from ._http import Http, HttpPolicy
from ._id_token import verified_id_token
from ._lock import locked
from ._process import utc_now

__all__ = ["Prompt", "login", "login_flow", "stderr_notice", "terminal_prompt"]

#: How the code is shown: `(url with ?user_code=, user code)`.
Prompt = Callable[[str, str], None]
_WAIT_SLICE = 0.5  # seconds: a wait is cut in slices so the clock is looked at again


def terminal_prompt(*, browser: bool, stream: Any = None) -> Prompt:
    """Show the URL and code on stderr, as fctl does, and open a browser when asked
    and a graphical one can be (a text browser would take over the terminal)."""

    def show(url: str, user_code: str) -> None:
        out = stream or sys.stderr
        opened = browser and _open_browser(url)
        if opened:
            out.write(f"A browser window has been opened on {url}\n")
        else:
            out.write(f"Please open the following URL in your browser: {url}\n")
        out.write(f"and check that it shows the code {user_code}\n")
        out.write("Waiting for authentication...\n")
        out.flush()

    return show


def stderr_notice(line: str) -> None:
    """A line for the user waiting on a login (a failed poll, the wait after it)."""
    sys.stderr.write(f"stacktoken: login still waiting: {one_line(line, limit=300)}\n")
    sys.stderr.flush()


def _open_browser(url: str) -> bool:
    has_display = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if not (has_display or sys.platform in ("darwin", "win32")):
        return False
    import webbrowser

    try:
        return webbrowser.open(url)
    except webbrowser.Error:
        return False


def _wait_until(clock: Callable[[], datetime]) -> Callable[[datetime], None]:
    def wait(until: datetime) -> None:
        while (left := (until - clock()).total_seconds()) > 0:
            time.sleep(min(left, _WAIT_SLICE))

    return wait


class _Membership:
    """The membership IdP of one login: discovery, and the device flow's effects."""

    def __init__(
        self,
        membership_uri: str,
        *,
        http: Http,
        cache: DiscoveryCache,
        poll_http: Http,
        prompt: Prompt,
        clock: Callable[[], datetime],
        log: Callable[[str], None],
        notice: Callable[[str], None] | None,
    ) -> None:
        self.uri = membership_uri.rstrip("/")
        self.http = http
        self.poll_http = poll_http
        self.cache = cache
        self.prompt = prompt
        self.clock = clock
        self.log = log
        self.notice = notice

    def close(self) -> None:
        self.http.close()
        self.poll_http.close()

    def discover(self) -> Result[DiscoveryDocument, AcquireError]:
        checked: Result[str, AcquireError] = check_endpoint_url(self.uri)
        found: Result[DiscoveryDocument, AcquireError] = checked.bind(
            lambda _: discover(
                membership_discovery(self.uri), http=self.http, cache=self.cache, clock=self.clock
            )
        )
        return found.bind(_device_capable)

    def effects(self) -> DeviceEffects:
        def authorize(request: TokenRequest) -> Result[DeviceAuthorization, AcquireError]:
            answered: Result[Any, AcquireError] = self.http.post(request)
            return answered.bind(
                lambda answer: interpret_device_authorization(
                    answer.status_code, answer.body, request=request
                )
            )

        def poll(request: TokenRequest) -> Result[TokenResponse, AcquireError]:
            answered: Result[Any, AcquireError] = self.poll_http.post(request)
            return answered.bind(
                lambda answer: interpret_poll_answer(
                    answer.status_code, answer.body, request=request, sent_at=answer.sent_at
                )
            )

        return DeviceEffects(
            authorize=authorize,
            show=lambda found: self.prompt(found.prompt_url, found.user_code),
            poll=poll,
            wait_until=_wait_until(self.clock),
            clock=self.clock,
            # A failed poll and the wait after it: the user's to see, when asked for.
            log=self.notice or self.log,
        )

    def verify_id_token(
        self, document: DiscoveryDocument
    ) -> Callable[[str], Result[Mapping[str, Any], AcquireError]]:
        """The ID token checked as docs/design.md §13 asks: the IdP's JWKS signature,
        `iss` = the issuer, `aud` contains `fctl`, `exp` not passed."""
        issuer = membership_discovery(self.uri).issuer

        def verify(id_token: str) -> Result[Mapping[str, Any], AcquireError]:
            jwks_uri = document.jwks_uri or ""
            answered: Result[Any, AcquireError] = self.http.get(jwks_uri)
            return answered.bind(
                lambda answer: verified_id_token(id_token, answer.body, issuer, jwks_uri)
            )

        return verify


def _device_capable(document: DiscoveryDocument) -> Result[DiscoveryDocument, AcquireError]:
    for name, url in (
        ("device_authorization_endpoint", document.device_authorization_endpoint),
        ("jwks_uri", document.jwks_uri),
    ):
        if not url:
            return Failure(
                RemoteError(message=f"the membership discovery document names no {name}")
            )
        if (refusal := endpoint_url_refusal(url)) is not None:
            return Failure(refusal)
    return Success(document)


def _membership(
    membership_uri: str,
    *,
    prompt: Prompt,
    cache_dir: str | None,
    http_policy: HttpPolicy | None,
    log: Callable[[str], None],
    notice: Callable[[str], None] | None,
    environ: Mapping[str, str],
) -> _Membership:
    root = cache_dir or default_cache_dir(environ)
    policy = http_policy or HttpPolicy()
    # A poll is sent once: core backs off after a failed one (RFC 8628 section 3.5), and a
    # quick resend would poll faster than the interval.
    once = replace(policy, retry=RetryPolicy(attempts=1))
    return _Membership(
        membership_uri,
        http=Http(policy=policy, clock=utc_now, log=log),
        poll_http=Http(policy=once, clock=utc_now, log=log),
        cache=DiscoveryCache(lambda: root, log=log),
        prompt=prompt,
        clock=utc_now,
        log=log,
        notice=notice,
    )


def _read_document(place: Place) -> Result[dict[str, Any] | None, AcquireError]:
    """A JSON file we are about to rewrite: its keys (kept), None when absent."""
    read = read_private(place)
    if read == "no such file":
        return Success(None)
    if isinstance(read, str):
        return Failure(LocalError(message=f"refusing {place}: {read}"))
    document = json_object(read[0])
    return Success(document if isinstance(document, dict) else None)


def _log_in(
    *,
    root: str,
    profile: str | None,
    membership_uri: str | None,
    prompt: Prompt | None,
    cache_dir: str | None,
    http_policy: HttpPolicy | None,
    log: Callable[[str], None],
    notice: Callable[[str], None] | None,
    environ: Mapping[str, str],
) -> Result[str, AcquireError]:
    """fctl's `login`: the device flow for the profile's root tokens, the ID token
    verified, then `profile.json` and `config.yml` written. The profile's name, or why not."""
    env = environ
    name = current_profile(root, profile, env)
    if isinstance(name, LocalError):
        return Failure(name)
    invalid = name_error("profile", name)
    if invalid is not None:
        return Failure(invalid)
    profile_place = Place(root=root, parts=profile_file(name))
    config_place = Place(root=root, parts=(CONFIG_FILE,))
    match _read_document(profile_place):
        case Failure(problem):
            return Failure(problem)
        case Success(document):
            existing_profile: dict[str, Any] | None = document
    uri = membership_uri or _str(existing_profile, "membershipURI") or DEFAULT_MEMBERSHIP_URI
    membership = _membership(
        uri,
        prompt=prompt or terminal_prompt(browser=False),
        cache_dir=cache_dir,
        http_policy=http_policy,
        log=log,
        notice=notice,
        environ=env,
    )

    def write(tokens: LoginTokens) -> Result[None, AcquireError]:
        profile_data = encode_profile(
            existing_profile, membership_uri=membership.uri, tokens=tokens
        )
        written: Result[None, AcquireError] = write_atomic(profile_place, profile_data)

        def config(_: None) -> Result[None, AcquireError]:
            import uuid

            current: Result[dict[str, Any] | None, AcquireError] = _read_document(config_place)
            return current.bind(
                lambda document: write_atomic(
                    config_place,
                    encode_config(document, profile=name, unique_id=str(uuid.uuid4())),
                )
            )

        return written.bind(config)

    def run(document: DiscoveryDocument) -> Result[LoginTokens, AcquireError]:
        return device_login(
            login_device_request(document.device_authorization_endpoint or ""),
            membership.effects(),
            token_endpoint=document.token_endpoint,
            verify_id_token=membership.verify_id_token(document),
            write=write,
        )

    try:
        return membership.discover().bind(run).map(lambda _: name)
    finally:
        membership.close()


def _get_stack_access(
    stack: FctlStack,
    *,
    prompt: Prompt | None,
    cache_dir: str | None,
    http_policy: HttpPolicy | None,
    log: Callable[[str], None],
    notice: Callable[[str], None] | None,
    environ: Mapping[str, str],
) -> Result[StackAccess, AcquireError]:
    """fctl's `EnsureStackAccess` for a stack without a usable `accesses.json`: the
    device flow for that stack, then its `accesses.json` written under the stack's lock."""
    env = environ
    known: Profile = stack.profile
    key = stack.key
    if not known.logged_in or not known.id_token or not known.membership_uri:
        return Failure(
            AuthRequired(message=f"profile {key.profile!r} is not logged in; {LOGIN_HINT}")
        )
    resource = stack_resource(known, key.organization, key.stack)
    if isinstance(resource, AuthRequired):
        return Failure(resource)
    membership = _membership(
        known.membership_uri,
        prompt=prompt or terminal_prompt(browser=False),
        cache_dir=cache_dir,
        http_policy=http_policy,
        log=log,
        notice=notice,
        environ=env,
    )
    accesses = Place(root=stack.root, parts=stack.paths.accesses)
    lock = Place(root=stack.root, parts=stack.paths.lock)

    def write(access: StackAccess) -> Result[None, AcquireError]:
        problem = ensure_folder(accesses, log=log)
        if problem is not None:
            return Failure(LocalError(message=f"cannot write {accesses}: {problem}"))
        data = encode_accesses(access)
        written: Result[None, AcquireError] = locked(
            lock, lambda held: write_atomic(accesses, data, sweep=held, log=log), log=log
        )
        return written

    def run(document: DiscoveryDocument) -> Result[StackAccess, AcquireError]:
        return stack_access(
            stack_device_request(
                document.device_authorization_endpoint or "",
                organization=key.organization,
                id_token=known.id_token or "",
                resource=resource,
            ),
            membership.effects(),
            token_endpoint=document.token_endpoint,
            organization=key.organization,
            resource=resource,
            write=write,
        )

    try:
        return membership.discover().bind(run)
    finally:
        membership.close()


def login(
    *,
    profile: str | None = None,
    membership_uri: str | None = None,
    on_prompt: Prompt | None = None,
    config_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    organization: str | None = None,
    stack: str | None = None,
    http_policy: HttpPolicy | None = None,
) -> None:
    """Log in by the device flow, as `fctl login` does, and write the profile.

    `on_prompt(url, user_code)` shows the user where to go (default: stderr, with a
    line for each failed poll and the wait after it).
    With `organization` and `stack`, that stack's access is also got ahead of
    time. Raises `StackTokenError` subclasses (`AuthenticationRequiredError`
    when the login is denied, expires or its ID token fails verification).
    """
    from ._exceptions import as_exception

    result = login_flow(
        config_dir=os.fspath(config_dir) if config_dir is not None else None,
        profile=profile,
        membership_uri=membership_uri,
        prompt=on_prompt,
        cache_dir=os.fspath(cache_dir) if cache_dir is not None else None,
        organization=organization,
        stack=stack,
        http_policy=http_policy,
        notice=stderr_notice if on_prompt is None else None,
    )
    if isinstance(result, Failure):
        raise as_exception(result.failure())


def login_flow(
    *,
    config_dir: str | None = None,
    profile: str | None = None,
    membership_uri: str | None = None,
    prompt: Prompt | None = None,
    cache_dir: str | None = None,
    organization: str | None = None,
    stack: str | None = None,
    http_policy: HttpPolicy | None = None,
    log: Callable[[str], None] = lambda _: None,
    notice: Callable[[str], None] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Result[str, AcquireError]:
    """Log in unless a stack is named and the profile is logged in already, then get
    that stack's access (`stacktoken login [--organization O --stack S]`, and `token`
    when a stack asks for a login). The profile's name, or why not.

    `notice` gets a line for each failed poll and the wait after it (else `log` does)."""
    env = os.environ if environ is None else environ
    if (organization is None) != (stack is None):
        return Failure(UsageError(message="--organization and --stack go together"))
    root = config_dir_from(config_dir, env)

    def located() -> FctlStack | AcquireError:
        return locate_stack(
            root, profile=profile, organization=organization, stack=stack, environ=env
        )

    found = located() if stack is not None else None
    logged: Result[str, AcquireError] = Success("")
    if stack is None or (membership_uri is not None) or isinstance(found, AuthRequired):
        logged = _log_in(
            root=root,
            profile=profile,
            membership_uri=membership_uri,
            prompt=prompt,
            cache_dir=cache_dir,
            http_policy=http_policy,
            log=log,
            notice=notice,
            environ=env,
        )
        found = located() if stack is not None else None
    if isinstance(logged, Failure) or found is None:
        return logged
    if not isinstance(found, FctlStack):
        return Failure(found)
    return _get_stack_access(
        found,
        prompt=prompt,
        cache_dir=cache_dir,
        http_policy=http_policy,
        log=log,
        notice=notice,
        environ=env,
    ).map(lambda _: found.key.profile)


def _str(document: Mapping[str, Any] | None, key: str) -> str | None:
    value = (document or {}).get(key)
    return value if isinstance(value, str) and value else None
