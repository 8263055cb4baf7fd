"""core/_device.py: the device flow's requests, answers, steps and documents, table-driven."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from returns.result import Failure, Success
from stacktoken.core._device import (
    device_token_request,
    interpret_device_authorization,
    interpret_poll_answer,
    login_device_request,
    stack_device_request,
    stack_resource,
)
from stacktoken.core._device_polling import (
    POLL_BACKOFF_CAP,
    DeviceFail,
    DeviceFinish,
    DevicePolling,
    DeviceSend,
    DeviceWait,
    device_step,
    poll_backoff,
)
from stacktoken.core._errors import AuthRequired, OAuthError, RemoteError
from stacktoken.core._profile import (
    LoginTokens,
    Organization,
    Profile,
    StackRef,
    encode_config,
    encode_profile,
)
from stacktoken.core._types import TokenResponse

NOW = datetime(2030, 1, 1, tzinfo=UTC)
ENDPOINT = "https://idp.example/api/oauth/device/authorize"
BASIC_FCTL = "Basic " + base64.b64encode(b"fctl:").decode()


def _profile(scopes: tuple[str, ...]) -> Profile:
    return Profile(
        name="default",
        membership_uri="https://idp.example/api",
        logged_in=True,
        organizations=(
            Organization(id="orgA", stacks=(StackRef(id="stk1", uri="https://s", scopes=scopes),)),
        ),
        default_organization=None,
        default_stack=None,
        id_token="the-id-token",
    )


def test_login_device_request_is_fctls() -> None:
    request = login_device_request(ENDPOINT)
    assert request.url == ENDPOINT
    assert dict(request.form) == {
        "scope": "openid offline_access accesses on_behalf",
        "prompt": "no-org",
    }
    assert dict(request.headers) == {"Authorization": BASIC_FCTL}
    assert not request.replayable


def test_stack_device_request_and_poll_carry_the_resource() -> None:
    request = stack_device_request(
        ENDPOINT, organization="orgA", id_token="the-id-token", resource="stack://orgA/stk1|x"
    )
    assert dict(request.form) == {
        "scope": "openid offline_access",
        "organization_id": "orgA",
        "id_token_hint": "the-id-token",
        "resource": "stack://orgA/stk1|x",
    }
    assert dict(request.headers) == {"Authorization": BASIC_FCTL}
    assert "the-id-token" in request.secrets
    poll = device_token_request("https://t", "dc", resource="stack://orgA/stk1|x")
    assert dict(poll.form) == {
        "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
        "device_code": "dc",
        "client_id": "fctl",
        "resource": "stack://orgA/stk1|x",
    }
    assert "resource" not in dict(device_token_request("https://t", "dc").form)


@pytest.mark.parametrize(
    ("scopes", "expected"),
    [
        (("stack:Read", "stack:Write"), "stack://orgA/stk1|stack:Read stack:Write"),
        (("stack:Write", "stack:Read"), "stack://orgA/stk1|stack:Write stack:Read"),
        (("stack:Read", "other:Admin"), "stack://orgA/stk1|stack:Read"),
        (("other:Admin",), None),
        ((), None),
    ],
)
def test_stack_resource_keeps_the_claims_stack_scopes(
    scopes: tuple[str, ...], expected: str | None
) -> None:
    found = stack_resource(_profile(scopes), "orgA", "stk1")
    if expected is None:
        assert isinstance(found, AuthRequired)
        assert "stacktoken login" in found.message
    else:
        assert found == expected
    assert isinstance(stack_resource(_profile(scopes), "orgA", "other"), AuthRequired)


def _answer(**fields: object) -> bytes:
    document: dict[str, object] = {
        "device_code": "dc",
        "user_code": "ABCD-EFGH",
        "verification_uri": "https://idp.example/device",
        "expires_in": 600,
    }
    document.update(fields)
    return json.dumps({k: v for k, v in document.items() if v is not None}).encode()


def test_device_authorization_answer_read_with_defaults() -> None:
    request = login_device_request(ENDPOINT)
    found = interpret_device_authorization(200, _answer(), request=request).unwrap()
    assert found.interval == timedelta(seconds=5)  # RFC 8628 §3.2
    assert found.expires_in == timedelta(seconds=600)
    assert found.prompt_url == "https://idp.example/device?user_code=ABCD-EFGH"
    assert "dc" not in repr(found)
    fast = interpret_device_authorization(200, _answer(interval=0.05), request=request).unwrap()
    assert fast.interval == timedelta(seconds=0.05)


@pytest.mark.parametrize(
    "body",
    [
        _answer(device_code=None),
        _answer(expires_in="600"),
        _answer(expires_in=-1),
        _answer(interval=True),
        _answer(verification_uri="http://idp.example/device"),
        _answer(verification_uri="https://idp.example/dev\x1b]0;owned\x07\x1b[2J"),
        _answer(verification_uri="https://idp.example/dev ice"),
        b"not json",
    ],
)
def test_device_authorization_bad_answers_are_remote_errors(body: bytes) -> None:
    found = interpret_device_authorization(200, body, request=login_device_request(ENDPOINT))
    assert isinstance(found, Failure)
    assert isinstance(found.failure(), RemoteError)


def test_device_authorization_error_answer_is_an_oauth_error() -> None:
    body = json.dumps({"error": "invalid_client"}).encode()
    found = interpret_device_authorization(401, body, request=login_device_request(ENDPOINT))
    assert found == Failure(OAuthError(error="invalid_client", status_code=401))


STATE = DevicePolling(
    interval=timedelta(seconds=5),
    deadline=NOW + timedelta(seconds=60),
    not_before=NOW + timedelta(seconds=5),
)
TOKENS = TokenResponse(access_token="a", token_type="Bearer", expiry=None)


@pytest.mark.parametrize(
    ("answer", "at", "interval", "action"),
    [
        (None, 0, 5, DeviceWait(until=NOW + timedelta(seconds=5))),
        (None, 5, 5, DeviceSend()),
        (None, 60, 5, DeviceFail(error=AuthRequired(message="expired"))),
        (
            Failure(OAuthError(error="authorization_pending")),
            6,
            5,
            DeviceWait(until=NOW + timedelta(seconds=11)),
        ),
        (
            Failure(OAuthError(error="slow_down")),
            6,
            10,
            DeviceWait(until=NOW + timedelta(seconds=16)),
        ),
        (
            Failure(OAuthError(error="slow_down")),
            58,
            10,
            DeviceWait(until=NOW + timedelta(seconds=60)),
        ),
        (
            Failure(RemoteError(message="timeout", transient=True)),
            6,
            5,
            DeviceWait(until=NOW + timedelta(seconds=16)),  # backed off: 2 x 5 s
        ),
        (
            Failure(OAuthError(error="access_denied")),
            6,
            5,
            DeviceFail(error=AuthRequired(message="denied")),
        ),
        (
            Failure(OAuthError(error="expired_token")),
            6,
            5,
            DeviceFail(error=AuthRequired(message="expired")),
        ),
        (
            Failure(OAuthError(error="invalid_grant")),
            6,
            5,
            DeviceFail(error=OAuthError(error="invalid_grant")),
        ),
        (Success(TOKENS), 6, 5, DeviceFinish(response=TOKENS)),
    ],
)
def test_device_step_table(answer: object, at: int, interval: int, action: object) -> None:
    state, found = device_step(STATE, answer, now=NOW + timedelta(seconds=at))  # type: ignore[arg-type]
    assert state.interval == timedelta(seconds=interval)
    if isinstance(action, DeviceFail) and isinstance(action.error, AuthRequired):
        assert isinstance(found, DeviceFail)
        assert isinstance(found.error, AuthRequired)
        assert action.error.message in found.error.message
        assert "stacktoken login" in found.error.message
    elif isinstance(action, DeviceWait):
        assert isinstance(found, DeviceWait)
        assert found.until == action.until
        # A wait after a failed poll says why (to log); no other wait does.
        failed = isinstance(answer, Failure) and isinstance(answer.failure(), RemoteError)
        assert (found.reason is not None) == failed
    else:
        assert found == action


FAR = DevicePolling(
    interval=timedelta(seconds=5),
    deadline=NOW + timedelta(seconds=600),
    not_before=NOW + timedelta(seconds=5),
)
TIMEOUT = Failure(RemoteError(message="POST https://t timed out", transient=True))


@pytest.mark.parametrize(
    "answers",
    [
        # RFC 8628 §3.5: exponential backoff while polls fail, capped at 60 s.
        [(TIMEOUT, 10), (TIMEOUT, 20), (TIMEOUT, 40), (TIMEOUT, 60), (TIMEOUT, 60)],
        # An answer from the IdP ends the backoff: back to the interval.
        [(TIMEOUT, 10), (TIMEOUT, 20), (Failure(OAuthError(error="authorization_pending")), 5)],
        [(TIMEOUT, 10), (Failure(OAuthError(error="slow_down")), 10), (TIMEOUT, 20)],
        # Codes some IdPs answer a poll with while they are unwell.
        [
            (Failure(OAuthError(error="temporarily_unavailable", status_code=503)), 10),
            (Failure(OAuthError(error="server_error")), 20),
        ],
        [(Failure(RemoteError(message="answered 503", transient=True)), 10)],
    ],
)
def test_device_step_transient_failures_back_off(answers: list[tuple[object, int]]) -> None:
    state, now = FAR, NOW + timedelta(seconds=5)
    for answer, wait in answers:
        state, action = device_step(state, answer, now=now)  # type: ignore[arg-type]
        assert isinstance(action, DeviceWait)
        assert action.until == now + timedelta(seconds=wait)
        now = action.until
        state, action = device_step(state, None, now=now)
        assert action == DeviceSend()


def test_device_step_backoff_keeps_a_last_chance_before_the_deadline() -> None:
    """A backoff that would pass `deadline - interval` is pulled back to it (an IdP
    back in time still lets the approval through), never under the interval; at the
    deadline the flow ends as expired, naming the last failure."""
    state = DevicePolling(
        interval=timedelta(seconds=5),
        deadline=NOW + timedelta(seconds=60),
        not_before=NOW,
        failures=3,  # the next backoff would be 40 s
    )
    state, action = device_step(state, TIMEOUT, now=NOW + timedelta(seconds=30))
    assert isinstance(action, DeviceWait)
    assert action.until == NOW + timedelta(seconds=55)
    state, action = device_step(state, TIMEOUT, now=NOW + timedelta(seconds=58))
    assert isinstance(action, DeviceWait)
    assert action.until == NOW + timedelta(seconds=60)  # the interval, cut by the deadline
    assert action.reason is not None and "no time left" in action.reason
    state, action = device_step(state, None, now=NOW + timedelta(seconds=60))
    assert isinstance(action, DeviceFail)
    assert isinstance(action.error, AuthRequired)
    assert "expired" in action.error.message
    assert "timed out" in action.error.message
    assert "stacktoken login" in action.error.message


def test_poll_backoff_doubles_within_the_interval_and_the_cap() -> None:
    second = timedelta(seconds=1)
    assert [poll_backoff(5 * second, k) for k in range(6)] == [
        5 * second,
        10 * second,
        20 * second,
        40 * second,
        60 * second,
        60 * second,
    ]
    assert poll_backoff(90 * second, 3) == 90 * second  # never under the interval
    assert poll_backoff(second, 10_000) == POLL_BACKOFF_CAP


POLL = device_token_request("https://idp.example/token", "the-device-code")


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, b"<html>captive portal</html>", "transient"),
        (200, b'{"token_type": "Bearer"}', "transient"),
        (200, b'{"refresh_token": "rt", "token_type": "Bearer"}', "fail"),
        (502, b"<html>bad gateway</html>", "transient"),
        (503, b'{"error": "temporarily_unavailable"}', "transient"),
        (404, b"", "fail"),
        (403, b"<html>forbidden</html>", "fail"),
        (400, b'{"error": "authorization_pending"}', "pending"),
    ],
)
def test_interpret_poll_answer_unreadable_success_is_transient(
    status: int, body: bytes, expected: str
) -> None:
    found = interpret_poll_answer(status, body, request=POLL, sent_at=NOW)
    assert isinstance(found, Failure)
    error = found.failure()
    if expected == "pending":
        assert error == OAuthError(error="authorization_pending")
    else:
        assert isinstance(error, RemoteError)
        assert error.transient == (expected == "transient")
    assert "the-device-code" not in repr(found)


def test_encode_profile_and_config_keep_what_fctl_keeps() -> None:
    tokens = LoginTokens(
        access_token="at",
        access_claims={"sub": "u"},
        refresh_token="rt",
        id_token="it",
        id_claims={"org": []},
    )
    fresh = json.loads(encode_profile(None, membership_uri="https://m/api", tokens=tokens))
    assert fresh == {
        "membershipURI": "https://m/api",
        "rootTokens": {
            "accessToken": {"token": "at", "claims": {"sub": "u"}, "refreshToken": "rt"},
            "idToken": {"token": "it", "claims": {"org": []}},
        },
        "defaultOrganization": "",
        "defaultStack": "",
    }
    kept = json.loads(
        encode_profile(
            {"defaultOrganization": "o", "defaultStack": "s", "x": 1, "rootTokens": None},
            membership_uri="https://m/api",
            tokens=tokens,
        )
    )
    assert (kept["defaultOrganization"], kept["defaultStack"], kept["x"]) == ("o", "s", 1)
    assert json.loads(encode_config(None, profile="p", unique_id="new")) == {
        "currentProfile": "p",
        "uniqueID": "new",
    }
    assert json.loads(
        encode_config({"currentProfile": "q", "uniqueID": "old"}, profile="p", unique_id="new")
    ) == {"currentProfile": "p", "uniqueID": "old"}


def test_device_authorization_huge_interval_is_capped_not_a_crash() -> None:
    request = login_device_request(ENDPOINT)
    for interval in (1e12, 1e300):
        found = interpret_device_authorization(200, _answer(interval=interval), request=request)
        assert found.unwrap().interval == timedelta(seconds=3600)


def test_poll_backoff_of_a_near_zero_interval_still_backs_off() -> None:
    tiny = timedelta(microseconds=1)
    assert poll_backoff(tiny, 1) == timedelta(milliseconds=200)
    assert poll_backoff(tiny, 3) == timedelta(milliseconds=800)
