"""Logging in without fctl: the OAuth device authorization grant (RFC 8628,
docs/design.md §13).

Theory of operation
-------------------
A device flow is one request and then a loop. The request
(`login_device_request` / `stack_device_request`) is answered with a device
code, a user code, where the user goes, how long the code lives
(`expires_in`) and how often we may ask (`interval`, 5 s when absent,
RFC 8628 section 3.2). The user approves in a browser while we poll the token
endpoint (`device_token_request`).

The polling is a state machine, `core/_device_polling.py` (its transition
table is data there). Nothing is written here: the callers (`device_login`,
`stack_access`) write only after a verified success, with the shell's effects.

The shell only sleeps (`wait_until`) and sends (`poll`): `run_device_flow`
drives `device_step` with those effects and a clock, all injected.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from typing import Any

from returns.result import Failure, Result, Success

from ._codecs import jwt_claims
from ._device_polling import (
    DeviceFail,
    DeviceFinish,
    DeviceSend,
    DeviceWait,
    PollAnswer,
    device_step,
    start_polling,
)
from ._errors import AcquireError, AuthRequired, RemoteError
from ._profile import LOGIN_HINT, LoginTokens, Profile
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
    "STACK_ACCESS_SCOPE",
    "STACK_SCOPES",
    "DeviceAuthorization",
    "DeviceEffects",
    "device_login",
    "device_token_request",
    "interpret_device_authorization",
    "interpret_poll_answer",
    "login_device_request",
    "run_device_flow",
    "stack_access",
    "stack_device_request",
    "stack_resource",
]

DEFAULT_MEMBERSHIP_URI = "https://app.formance.cloud/api"  # fctl's pkg/config.go
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"  # RFC 8628 section 3.4
LOGIN_SCOPE = "openid offline_access accesses on_behalf"  # fctl's login
STACK_ACCESS_SCOPE = "openid offline_access"  # fctl's EnsureStackAccess
STACK_SCOPES = ("stack:Read", "stack:Write")  # fctl's StackScopes
DEFAULT_DEVICE_INTERVAL = timedelta(seconds=5)  # RFC 8628 section 3.2
_FCTL_BASIC = "Basic " + base64.b64encode(b"fctl:").decode("ascii")  # public client, no secret
# A device code said to live longer is held to this: a prompt is for a person.
_MAX_EXPIRES_IN = 3600.0


# -- the device authorization request (RFC 8628 section 3.1-3.2) ------------------------


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
    """Read the device authorization answer (RFC 8628 section 3.2), or why it is unusable."""
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
    """A poll (RFC 8628 section 3.4); a stack access repeats its `resource`."""
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
    """A poll's answer, read as any token answer (RFC 6749 section 5.1-5.2), except that a
    200 we cannot read (a proxy's page, a torn body) is transient: the code is still
    good, so it is asked again after a backoff (RFC 8628 section 3.5). One that carries a
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


def _ignore(_: str) -> None:
    pass


class DeviceEffects(Record):
    """What a device flow does outside core: send requests, show the code, wait, read the clock.

    `wait_until` returns at (or after) the time given; the CLI's raises on Ctrl-C.
    `poll` sends once: the backoff after a failure is this module's (RFC 8628 section 3.5).
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
        state = start_polling(
            interval=authorization.interval,
            expires_in=authorization.expires_in,
            requested_at=requested_at,
        )
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
