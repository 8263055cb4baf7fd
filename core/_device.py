"""Logging in without fctl: the OAuth device authorization grant (RFC 8628, DESIGN §13).

Theory of operation
-------------------
A device flow is one request and then a loop. The request
(`login_device_request` / `stack_device_request`) is answered with a device
code, a user code, where the user goes, how long the code lives
(`expires_in`) and how often we may ask (`interval`, 5 s when absent,
RFC 8628 §3.2). The user approves in a browser while we poll the token
endpoint (`device_token_request`).

The loop is a state machine, `device_step(state, answer, now) -> (state, action)`:

    state   DevicePolling(interval, deadline, not_before)
    answer  None (nothing sent since the last step) or the last poll's Result
    action  Wait(until) | Send() | Finish(response) | Fail(error)

    answer                           next state / action
    ------------------------------   ------------------------------------------------
    None, now >= deadline            Fail(AuthRequired: the code expired)
    None, now <  not_before          Wait(until = min(not_before, deadline))
    None, otherwise                  Send()
    authorization_pending            not_before = now + interval, failures = 0, then as for None
    slow_down                        interval += 5 s (RFC 8628 §3.5), not_before = now + interval,
                                     failures = 0
    a transient failure              failures += 1, not_before = now + backoff (below)
    access_denied / expired_token    Fail(AuthRequired)
    any other failure                Fail(it)
    success                          Finish(response)

`not_before` counts from the time the answer came back, so two sends are
always at least one interval apart. The deadline is the answer's `expires_in`
counted from before the device request was sent. Nothing is written here: the
caller (`device_login`, `stack_access`) writes only after a verified success.

A transient failure is a poll that got no usable answer: a refused or reset
connection, a timeout, a 429 or 5xx, an unreadable 200 (`interpret_poll_answer`),
or `server_error` / `temporarily_unavailable`. RFC 8628 §3.5 asks for an
exponential backoff then: the wait after `k` failures in a row is
`poll_backoff(interval, k)`, the interval doubled `k` times, at most
`POLL_BACKOFF_CAP` and never less than the interval. It is pulled back to the
code's last chance (`deadline - interval`) when it would pass it, so an outage
that ends in time still lets an approval through; never below the interval.
The code's end still ends the flow, its message naming the last failure. The
shell sends each poll once (no retry of its own): this machine is the only pace.

The shell only sleeps (`wait_until`) and sends (`poll`): `run_device_flow`
drives `step` with those effects and a clock, all injected.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from typing import Any

from returns.result import Failure, Result, Success

from ._codecs import jwt_claims
from ._errors import AcquireError, AuthRequired, OAuthError, RemoteError
from ._profile import LOGIN_HINT, Profile
from ._record import Record, secret
from ._requests import interpret_token_response
from ._time import datetime, timedelta
from ._types import StackAccess, TokenRequest, TokenResponse
from ._urls import endpoint_url_refusal, safe_url
from ._wire import DeviceAuthorizationWire, ParseError, read_object, structure

__all__ = [
    "DEFAULT_DEVICE_INTERVAL",
    "DEFAULT_MEMBERSHIP_URI",
    "DEVICE_CODE_GRANT",
    "LOGIN_SCOPE",
    "SLOW_DOWN_STEP",
    "STACK_ACCESS_SCOPE",
    "STACK_SCOPES",
    "DeviceAuthorization",
    "DeviceEffects",
    "DeviceFail",
    "DeviceFinish",
    "DeviceSend",
    "DeviceWait",
    "LoginTokens",
    "POLL_BACKOFF_CAP",
    "DevicePolling",
    "device_login",
    "device_token_request",
    "encode_config",
    "encode_profile",
    "interpret_device_authorization",
    "interpret_poll_answer",
    "login_device_request",
    "poll_backoff",
    "run_device_flow",
    "stack_access",
    "stack_device_request",
    "stack_resource",
    "start_polling",
    "device_step",
]

DEFAULT_MEMBERSHIP_URI = "https://app.formance.cloud/api"  # fctl's pkg/config.go
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"  # RFC 8628 §3.4
LOGIN_SCOPE = "openid offline_access accesses on_behalf"  # fctl's login
STACK_ACCESS_SCOPE = "openid offline_access"  # fctl's EnsureStackAccess
STACK_SCOPES = ("stack:Read", "stack:Write")  # fctl's StackScopes
DEFAULT_DEVICE_INTERVAL = timedelta(seconds=5)  # RFC 8628 §3.2
SLOW_DOWN_STEP = timedelta(seconds=5)  # RFC 8628 §3.5
# The longest wait after failed polls (RFC 8628 §3.5 backoff): an IdP back after an
# outage is noticed within a minute, a device code lives minutes.
POLL_BACKOFF_CAP = timedelta(seconds=60)
# An IdP's near-zero interval doubles to nothing: failed polls back off from this at least.
POLL_BACKOFF_FLOOR = timedelta(milliseconds=100)
_FCTL_BASIC = "Basic " + base64.b64encode(b"fctl:").decode("ascii")  # public client, no secret
# A device code said to live longer is held to this: a prompt is for a person.
_MAX_EXPIRES_IN = 3600.0


# -- the device authorization request (RFC 8628 §3.1-3.2) ------------------------


class DeviceAuthorization(Record):
    """The device authorization answer. `device_code` is a secret; the user code is shown."""

    device_code: str = secret()
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: timedelta
    interval: timedelta

    @property
    def prompt_url(self) -> str:
        """`verification_uri` with `?user_code=`, as fctl opens it."""
        from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

        parts = urlsplit(self.verification_uri)
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "user_code"]
        query.append(("user_code", self.user_code))
        return urlunsplit(parts._replace(query=urlencode(query)))


def login_device_request(endpoint: str) -> TokenRequest:
    """fctl's login: HTTP Basic `fctl:`, the login scopes, `prompt=no-org`."""
    return TokenRequest(
        url=endpoint,
        form=(("scope", LOGIN_SCOPE), ("prompt", "no-org")),
        headers=(("Authorization", _FCTL_BASIC),),
        replayable=False,
    )


def stack_resource(profile: Profile, organization: str, stack: str) -> str | AuthRequired:
    """`stack://<org>/<stack>|<scopes>`: the stack's claim scopes within `stack:Read
    stack:Write`, in the claim's order (fctl's EnsureStackAccess); none -> AuthRequired."""
    ref = profile.stack(organization, stack)
    scopes = [scope for scope in (ref.scopes if ref is not None else ()) if scope in STACK_SCOPES]
    if not scopes:
        return AuthRequired(
            message=f"profile {profile.name!r} has no access to stack {stack!r} of organization "
            f"{organization!r}; {LOGIN_HINT} if it was granted since"
        )
    return f"stack://{organization}/{stack}|{' '.join(scopes)}"


def stack_device_request(
    endpoint: str, *, organization: str, id_token: str, resource: str
) -> TokenRequest:
    """fctl's stack access: `organization_id`, `id_token_hint` and the `resource`."""
    return TokenRequest(
        url=endpoint,
        form=(
            ("organization_id", organization),
            ("id_token_hint", id_token),
            ("resource", resource),
            ("scope", STACK_ACCESS_SCOPE),
        ),
        headers=(("Authorization", _FCTL_BASIC),),
        replayable=False,
        secrets=(id_token,),
    )


def interpret_device_authorization(
    status_code: int, body: bytes, *, request: TokenRequest
) -> Result[DeviceAuthorization, AcquireError]:
    """Read the device authorization answer (RFC 8628 §3.2), or why it is unusable."""
    where = safe_url(request.url)
    if status_code != 200:
        from ._codecs import decode_error_response

        error = decode_error_response(status_code, body, redact=request.secrets).value_or(None)
        if error is not None and status_code in (400, 401):
            return Failure(error)
        return Failure(
            RemoteError(
                message=f"device authorization at {where} answered {status_code}",
                transient=status_code >= 500,
            )
        )

    def unusable(problem: ParseError) -> AcquireError:
        return RemoteError(message=f"device authorization at {where}: {problem.message}")

    read = read_object(body).bind(
        lambda document: structure(document, DeviceAuthorizationWire).bind(_device_authorization)
    )
    return read.alt(unusable)


def _device_authorization(
    wire: DeviceAuthorizationWire,
) -> Result[DeviceAuthorization, ParseError]:
    for field, code in (("device_code", wire.device_code), ("user_code", wire.user_code)):
        if not code:
            return Failure(ParseError(field=field, problem="is empty"))
    if not wire.user_code.isprintable():  # it is shown on the terminal
        return Failure(ParseError(field="user_code", problem="is unprintable"))
    for field, uri in (
        ("verification_uri", wire.verification_uri),
        ("verification_uri_complete", wire.verification_uri_complete),
    ):
        # Shown on the terminal and opened in a browser: no escape sequence, no space.
        if uri is not None and not (uri.isascii() and uri.isprintable() and " " not in uri):
            return Failure(ParseError(field=field, problem="has characters no URL has"))
        if uri is not None and endpoint_url_refusal(uri) is not None:
            return Failure(ParseError(field=field, problem=f"{safe_url(uri)!r} is not https"))
    return Success(
        DeviceAuthorization(
            device_code=wire.device_code,
            user_code=wire.user_code,
            verification_uri=wire.verification_uri,
            verification_uri_complete=wire.verification_uri_complete,
            expires_in=timedelta(seconds=min(wire.expires_in, _MAX_EXPIRES_IN)),
            interval=(
                timedelta(seconds=min(wire.interval, _MAX_EXPIRES_IN))
                if wire.interval
                else DEFAULT_DEVICE_INTERVAL
            ),
        )
    )


def device_token_request(
    token_endpoint: str, device_code: str, *, resource: str | None = None
) -> TokenRequest:
    """A poll (RFC 8628 §3.4); a stack access repeats its `resource`."""
    form: tuple[tuple[str, str], ...] = (
        ("grant_type", DEVICE_CODE_GRANT),
        ("device_code", device_code),
        ("client_id", "fctl"),
    )
    if resource is not None:
        form += (("resource", resource),)
    # Replayable: a poll spends nothing until it succeeds, and a success
    # answered twice is refused the second time, never lost silently.
    return TokenRequest(url=token_endpoint, form=form, secrets=(device_code,))


def interpret_poll_answer(
    status_code: int, body: bytes, *, request: TokenRequest, sent_at: datetime
) -> Result[TokenResponse, AcquireError]:
    """A poll's answer, read as any token answer (RFC 6749 §5.1-5.2), except that a
    200 we cannot read (a proxy's page, a torn body) is transient: the code is still
    good, so it is asked again after a backoff (RFC 8628 §3.5). One that carries a
    refresh token was a success we lost: not retried, the next poll could not redo it."""
    read: Result[TokenResponse, AcquireError] = interpret_token_response(
        status_code, body, request=request, sent_at=sent_at
    )
    match read:
        case Failure(RemoteError(endpoint_gone=False, rotated_refresh_token=None) as error) if (
            status_code == 200
        ):
            from ._record import replace

            return Failure(replace(error, transient=True))
    return read


# -- the polling state machine (RFC 8628 §3.4-3.5) ----------------------------


class DevicePolling(Record):
    """Where the polling is: the interval in force, the code's end, the next allowed send,
    and the transient failures in a row just before (with the last one's message)."""

    interval: timedelta
    deadline: datetime
    not_before: datetime
    polls: int = 0
    failures: int = 0
    last_failure: str | None = None


class DeviceWait(Record):
    """Wait until `until`; `reason` (to log) says why when a poll just failed."""

    until: datetime
    reason: str | None = None


class DeviceSend(Record):
    pass


class DeviceFinish(Record):
    response: TokenResponse


class DeviceFail(Record):
    error: AcquireError


DeviceAction = DeviceWait | DeviceSend | DeviceFinish | DeviceFail
PollAnswer = Result[TokenResponse, AcquireError] | None

EXPIRED = AuthRequired(message=f"the login code expired before it was approved; {LOGIN_HINT}")
DENIED = AuthRequired(message=f"the login was denied; {LOGIN_HINT}")
_TERMINAL = {"access_denied": DENIED, "expired_token": EXPIRED}


def start_polling(authorization: DeviceAuthorization, *, requested_at: datetime) -> DevicePolling:
    """The first state: the first poll waits one interval after the answer (RFC 8628 §3.4)."""
    return DevicePolling(
        interval=authorization.interval,
        deadline=requested_at + authorization.expires_in,
        not_before=requested_at + authorization.interval,
    )


def poll_backoff(interval: timedelta, failures: int) -> timedelta:
    """The wait after `failures` transient failures in a row (RFC 8628 §3.5): the
    interval doubled per failure, at most `POLL_BACKOFF_CAP`, never under the interval."""
    if failures <= 0:
        return interval
    base = max(interval, POLL_BACKOFF_FLOOR)
    doubled = base * (1 << min(failures, 16))  # 2**16: past any cap, within timedelta
    return max(base, min(doubled, POLL_BACKOFF_CAP))


def _after_failure(state: DevicePolling, message: str, *, now: datetime) -> DevicePolling:
    """One more transient failure: back off, but not past the code's last chance."""
    from ._record import replace

    failures = state.failures + 1
    not_before = now + poll_backoff(state.interval, failures)
    last_chance = state.deadline - state.interval
    if not_before > last_chance:
        not_before = max(now + state.interval, last_chance)
    return replace(
        state,
        not_before=not_before,
        polls=state.polls + 1,
        failures=failures,
        last_failure=message,
    )


# Not token-endpoint codes (RFC 6749 §5.2), but some IdPs answer a poll with them.
_TRANSIENT_CODES = frozenset({"server_error", "temporarily_unavailable"})


def _transient(error: AcquireError) -> bool:
    """A poll that got no usable answer, worth asking again after a backoff."""
    match error:
        case RemoteError(transient=True):
            return True
        case OAuthError(error=code):
            return code in _TRANSIENT_CODES
    return False


def device_step(
    state: DevicePolling, answer: PollAnswer, *, now: datetime
) -> tuple[DevicePolling, DeviceAction]:
    """The next state and action, from the state, the last poll's answer (None: no
    answer since the last step) and `now` (see the table at the top)."""
    from ._record import replace

    reason: str | None = None
    match answer:
        case Success(response):
            return state, DeviceFinish(response=response)
        case Failure(OAuthError(error="authorization_pending")):
            state = replace(
                state,
                not_before=now + state.interval,
                polls=state.polls + 1,
                failures=0,
                last_failure=None,
            )
        case Failure(OAuthError(error="slow_down")):
            interval = state.interval + SLOW_DOWN_STEP
            state = replace(
                state,
                interval=interval,
                not_before=now + interval,
                polls=state.polls + 1,
                failures=0,
                last_failure=None,
            )
        case Failure(OAuthError(error=code)) if code in _TERMINAL:
            return state, DeviceFail(error=_TERMINAL[code])
        case Failure(error) if _transient(error):
            state = _after_failure(state, error.message, now=now)
            wait = (state.not_before - now).total_seconds()
            reason = f"poll failed ({error.message}; {state.failures} in a row), " + (
                f"polling again in {wait:.2f} s"
                if state.not_before < state.deadline
                else "no time left to poll again before the code expires"
            )
        case Failure(error):
            return state, DeviceFail(error=error)
    if now >= state.deadline:
        if state.last_failure is None:
            return state, DeviceFail(error=EXPIRED)
        message = (
            "the login code expired before it was approved (the last poll failed: "
            f"{state.last_failure}); {LOGIN_HINT}"
        )
        return state, DeviceFail(error=AuthRequired(message=message))
    if now < state.not_before:
        return state, DeviceWait(until=min(state.not_before, state.deadline), reason=reason)
    return state, DeviceSend()


def _ignore(_: str) -> None:
    pass


class DeviceEffects(Record):
    """What a device flow does outside core: send requests, show the code, wait, read the clock.

    `wait_until` returns at (or after) the time given; the CLI's raises on Ctrl-C.
    `poll` sends once: the backoff after a failure is this module's (RFC 8628 §3.5).
    `log` gets the reason of a wait after a failed poll.
    """

    authorize: Callable[[TokenRequest], Result[DeviceAuthorization, AcquireError]]
    show: Callable[[DeviceAuthorization], None]
    poll: Callable[[TokenRequest], Result[TokenResponse, AcquireError]]
    wait_until: Callable[[datetime], None]
    clock: Callable[[], datetime]
    log: Callable[[str], None] = _ignore


def run_device_flow(
    request: TokenRequest,
    effects: DeviceEffects,
    *,
    token_endpoint: str,
    resource: str | None = None,
) -> Result[TokenResponse, AcquireError]:
    """Ask for a device code, show it, poll until an answer ends it (the table above)."""
    requested_at = effects.clock()

    def poll_loop(authorization: DeviceAuthorization) -> Result[TokenResponse, AcquireError]:
        effects.show(authorization)
        poll = device_token_request(token_endpoint, authorization.device_code, resource=resource)
        state = start_polling(authorization, requested_at=requested_at)
        answer: PollAnswer = None
        while True:  # bounded: every turn waits or sends, and the deadline ends it
            state, action = device_step(state, answer, now=effects.clock())
            answer = None
            match action:
                case DeviceWait(until=until, reason=reason):
                    if reason is not None:
                        effects.log(reason)
                    effects.wait_until(until)
                case DeviceSend():
                    answer = effects.poll(poll)
                case DeviceFinish(response=response):
                    return Success(response)
                case DeviceFail(error=error):
                    return Failure(error)

    return effects.authorize(request).bind(poll_loop)


# -- what a success becomes: profile.json, config.yml, accesses.json --------------


class LoginTokens(Record):
    """A login's tokens, the ID token verified (`id_claims` are its verified claims)."""

    access_token: str = secret()
    access_claims: Mapping[str, Any] = secret()
    refresh_token: str | None = secret()
    id_token: str = secret()
    id_claims: Mapping[str, Any] = secret()


def device_login(
    request: TokenRequest,
    effects: DeviceEffects,
    *,
    token_endpoint: str,
    verify_id_token: Callable[[str], Result[Mapping[str, Any], AcquireError]],
    write: Callable[[LoginTokens], Result[None, AcquireError]],
) -> Result[LoginTokens, AcquireError]:
    """fctl's login: the device flow, then the ID token verified, then (only then) written."""

    def verified(response: TokenResponse) -> Result[LoginTokens, AcquireError]:
        if response.id_token is None:
            return Failure(RemoteError(message="the login answer carries no ID token"))
        return verify_id_token(response.id_token).map(
            lambda claims: LoginTokens(
                access_token=response.access_token,
                access_claims=dict(jwt_claims(response.access_token) or {}),
                refresh_token=response.refresh_token,
                id_token=response.id_token or "",
                id_claims=dict(claims),
            )
        )

    def written(tokens: LoginTokens) -> Result[LoginTokens, AcquireError]:
        return write(tokens).map(lambda _: tokens)

    return (
        run_device_flow(request, effects, token_endpoint=token_endpoint)
        .bind(verified)
        .bind(written)
    )


def stack_access(
    request: TokenRequest,
    effects: DeviceEffects,
    *,
    token_endpoint: str,
    organization: str,
    resource: str,
    write: Callable[[StackAccess], Result[None, AcquireError]],
) -> Result[StackAccess, AcquireError]:
    """fctl's EnsureStackAccess when no usable `accesses.json` exists: the device flow
    with the stack's `resource`, then `accesses.json` written (fctl's WriteStackToken,
    in the folder its `organization_id` claim names: it must be the one asked for)."""

    def checked(response: TokenResponse) -> Result[StackAccess, AcquireError]:
        claims = dict(jwt_claims(response.access_token) or {})
        if claims.get("organization_id") != organization:
            return Failure(
                RemoteError(
                    message="the stack access token is not for organization "
                    f"{organization!r} (its organization_id claim differs)"
                )
            )
        return Success(
            StackAccess(
                token=response.access_token,
                refresh_token=response.refresh_token,
                expiry=response.expiry,
                claims=claims,
            )
        )

    def written(access: StackAccess) -> Result[StackAccess, AcquireError]:
        return write(access).map(lambda _: access)

    return (
        run_device_flow(request, effects, token_endpoint=token_endpoint, resource=resource)
        .bind(checked)
        .bind(written)
    )


def encode_profile(
    existing: Mapping[str, Any] | None, *, membership_uri: str, tokens: LoginTokens
) -> bytes:
    """`profile.json` as fctl's `Profile` struct (pkg/profile.go) is written: unknown
    keys and the defaults kept, `rootTokens` replaced (pkg/authentication.go `Tokens`)."""
    document: dict[str, Any] = dict(existing or {})
    document["membershipURI"] = membership_uri
    access: dict[str, Any] = {"token": tokens.access_token, "claims": dict(tokens.access_claims)}
    access["refreshToken"] = tokens.refresh_token or ""
    document["rootTokens"] = {
        "accessToken": access,
        "idToken": {"token": tokens.id_token, "claims": dict(tokens.id_claims)},
    }
    # Go writes every field of the struct (no omitempty): "" when unset.
    for key in ("defaultOrganization", "defaultStack"):
        if not isinstance(document.get(key), str):
            document[key] = ""
    return json.dumps(document, indent=2).encode("utf-8")


def encode_config(existing: Mapping[str, Any] | None, *, profile: str, unique_id: str) -> bytes:
    """`config.yml` (JSON, fctl's `Config` struct, pkg/config.go): the logged-in profile
    made current, `uniqueID` kept (`unique_id` is used only when there is none)."""
    document: dict[str, Any] = dict(existing or {})
    document["currentProfile"] = profile
    if not (isinstance(document.get("uniqueID"), str) and document["uniqueID"]):
        document["uniqueID"] = unique_id
    return json.dumps(document, indent=2).encode("utf-8")
