"""The loopback membership IdP's device authorization grant (RFC 8628), driven with httpx.

Approval is real: the test posts the user's decision to the IdP's own endpoint.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator

import httpx
import jwt as pyjwt
import pytest
from oauth_servers import (
    DEVICE_CODE_GRANT_TYPE,
    JWT_BEARER_GRANT_TYPE,
    LOGIN_SCOPE,
    STACK_ACCESS_SCOPE,
    IdTokenDefect,
    MembershipServer,
    StackAuthServer,
    decode_jwt_unverified,
    org_claim,
)

RESOURCE = "stack://orgA/stk1|stack:Read stack:Write"
POLL_DEADLINE = 10.0


@pytest.fixture
def idp() -> Iterator[MembershipServer]:
    """An IdP answering sub-second intervals, so polling tests are quick."""
    with MembershipServer(device_interval=0.05) as server:
        yield server


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0, follow_redirects=False) as c:
        yield c


def _login_request(client: httpx.Client, idp: MembershipServer) -> dict[str, object]:
    r = client.post(
        idp.device_authorization_endpoint,
        auth=("fctl", ""),
        data={"scope": LOGIN_SCOPE, "prompt": "no-org"},
    )
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


def _stack_request(
    client: httpx.Client, idp: MembershipServer, *, id_token: str = "id.token.hint"
) -> dict[str, object]:
    r = client.post(
        idp.device_authorization_endpoint,
        auth=("fctl", ""),
        data={
            "scope": STACK_ACCESS_SCOPE,
            "organization_id": "orgA",
            "id_token_hint": id_token,
            "resource": RESOURCE,
        },
    )
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


def _poll(
    client: httpx.Client, idp: MembershipServer, device_code: object, **extra: str
) -> httpx.Response:
    return client.post(
        idp.token_endpoint,
        data={
            "grant_type": DEVICE_CODE_GRANT_TYPE,
            "device_code": str(device_code),
            "client_id": "fctl",
            **extra,
        },
    )


def _error(response: httpx.Response) -> str:
    error: str = response.json()["error"]
    return error


def _verify_id_token(idp: MembershipServer, token: str) -> dict[str, object]:
    """What docs/design.md §13 asks of the client: JWKS signature, iss, aud contains fctl, exp."""
    key = pyjwt.PyJWKClient(idp.jwks_uri, cache_keys=False).get_signing_key_from_jwt(token)
    claims: dict[str, object] = pyjwt.decode(
        token,
        key.key,
        algorithms=["RS256"],
        audience="fctl",
        issuer=idp.issuer,
        options={"require": ["exp", "iss", "aud", "sub"]},
    )
    return claims


# --------------------------------------------------------------------------- request


def test_device_discovery_advertises_endpoints(idp: MembershipServer, client: httpx.Client) -> None:
    doc = client.get(idp.discovery_url).json()
    assert doc["device_authorization_endpoint"] == idp.device_authorization_endpoint
    assert doc["device_authorization_endpoint"] == f"{idp.base_url}/oauth/device/authorize"
    assert doc["jwks_uri"] == idp.jwks_uri
    assert doc["token_endpoint"] == idp.token_endpoint
    assert DEVICE_CODE_GRANT_TYPE in doc["grant_types_supported"]


def test_device_authorization_answer_and_recorded_request(client: httpx.Client) -> None:
    with MembershipServer() as idp:
        answer = _stack_request(client, idp, id_token="the-id-token")
        assert set(answer) == {
            "device_code",
            "user_code",
            "verification_uri",
            "verification_uri_complete",
            "expires_in",
            "interval",
        }
        assert answer["interval"] == 5  # authlib's and RFC 8628's default
        assert answer["expires_in"] == 600
        assert answer["verification_uri"] == idp.verification_uri
        assert answer["verification_uri_complete"] == (
            f"{idp.verification_uri}?user_code={answer['user_code']}"
        )
        page = client.get(str(answer["verification_uri_complete"]))
        assert page.status_code == 200
        assert str(answer["user_code"]) in page.text

        (auth,) = idp.device_authorizations
        assert auth.user_code == answer["user_code"]
        assert (auth.client_id, auth.auth_method) == ("fctl", "public_client_basic")
        assert auth.scope == STACK_ACCESS_SCOPE
        assert (auth.organization_id, auth.resource, auth.prompt) == ("orgA", RESOURCE, None)
        assert auth.id_token_hint == "the-id-token"
        assert auth.kind == "stack_access"
        assert auth.response == answer
        assert "the-id-token" not in repr(auth)
        assert str(answer["device_code"]) not in repr(auth)
        assert idp.count(idp.DEVICE_AUTHORIZATION) == 1


def test_device_authorization_public_client_by_form_client_id(
    idp: MembershipServer, client: httpx.Client
) -> None:
    r = client.post(
        idp.device_authorization_endpoint,
        data={"client_id": "fctl", "scope": LOGIN_SCOPE, "prompt": "no-org"},
    )
    assert r.status_code == 200, r.text
    (auth,) = idp.device_authorizations
    assert (auth.auth_method, auth.kind, auth.prompt) == ("none", "login", "no-org")


@pytest.mark.parametrize(
    ("auth", "form"),
    [
        (None, {}),  # nobody named
        (("other", ""), {}),  # unknown client
        (("fctl", "a-secret"), {}),  # a public client has no secret
        (None, {"client_id": "other"}),
    ],
)
def test_device_authorization_rejects_unknown_or_unauthenticated_client(
    idp: MembershipServer,
    client: httpx.Client,
    auth: tuple[str, str] | None,
    form: dict[str, str],
) -> None:
    data = {"scope": "openid", **form}
    url = idp.device_authorization_endpoint
    r = client.post(url, data=data) if auth is None else client.post(url, auth=auth, data=data)
    assert r.status_code in (400, 401)
    assert _error(r) == "invalid_client"
    assert idp.device_authorizations == []


def test_device_interval_sub_second_omitted_and_no_complete_uri(client: httpx.Client) -> None:
    with MembershipServer(device_interval=0.25, device_expires_in=1.5) as idp:
        answer = _login_request(client, idp)
        assert (answer["interval"], answer["expires_in"]) == (0.25, 1.5)
        idp.device_interval = None
        idp.device_verification_uri_complete = False
        answer = _login_request(client, idp)
        assert "interval" not in answer
        assert "verification_uri_complete" not in answer
        # RFC 8628 §3.2: no interval means 5 s, and the server holds the client to it.
        assert idp.device_interval_of(str(answer["user_code"])) == 5.0


# --------------------------------------------------------------------------- login


def test_device_login_pending_then_approved_issues_verifiable_tokens(
    idp: MembershipServer, client: httpx.Client
) -> None:
    answer = _login_request(client, idp)
    pending = _poll(client, idp, answer["device_code"])
    assert (pending.status_code, _error(pending)) == (400, "authorization_pending")

    orgs = [org_claim("orgA", {"stk1": "http://127.0.0.1:9/"}, display_name="A")]
    idp.approve_device(
        str(answer["user_code"]), subject="u-42", email="u42@example.com", organizations=orgs
    )
    r = _poll(client, idp, answer["device_code"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert {"access_token", "refresh_token", "id_token", "expires_in"} <= set(body)
    assert body["token_type"] == "Bearer"
    assert body["scope"] == LOGIN_SCOPE

    claims = _verify_id_token(idp, body["id_token"])
    assert claims["sub"] == "u-42"
    assert claims["email"] == "u42@example.com"
    assert claims["org"] == [
        {
            "id": "orgA",
            "displayName": "A",
            "stacks": [
                {
                    "id": "stk1",
                    "displayName": "stk1",
                    "uri": "http://127.0.0.1:9/",
                    "scopes": ["stack:Read", "stack:Write"],
                }
            ],
            "applications": [],
        }
    ]
    access = pyjwt.decode(
        body["access_token"], idp.public_key_pem(), algorithms=["RS256"], issuer=idp.issuer
    )
    assert access["sub"] == "u-42"
    assert "organization_id" not in access
    assert pyjwt.get_unverified_header(body["access_token"])["alg"] == "RS256"

    # The refresh token is live at the refresh grant; the device code is spent.
    assert idp.is_refresh_token_valid(body["refresh_token"])
    refreshed = client.post(
        idp.token_endpoint,
        data={
            "grant_type": "refresh_token",
            "refresh_token": body["refresh_token"],
            "client_id": "fctl",
        },
    )
    assert refreshed.status_code == 200, refreshed.text
    spent = _poll(client, idp, answer["device_code"])
    assert (spent.status_code, _error(spent)) == (400, "invalid_request")
    assert [p.answer for p in idp.device_polls] == [
        "authorization_pending",
        "success",
        "invalid_request",
    ]


def test_device_login_default_organizations_and_form_approval(
    client: httpx.Client,
) -> None:
    with MembershipServer(
        device_interval=0.05, device_organizations=[org_claim("orgD")], subject="s"
    ) as idp:
        answer = _login_request(client, idp)
        # The approval endpoint also takes a plain form, as a browser page would post.
        r = client.post(
            idp.device_approve_url,
            data={"user_code": str(answer["user_code"]).lower().replace("-", "")},
        )
        assert r.status_code == 200, r.text
        assert r.json() == {"user_code": answer["user_code"], "decision": "approved"}
        body = _poll(client, idp, answer["device_code"]).json()
        claims = _verify_id_token(idp, body["id_token"])
        assert claims["sub"] == "s"
        assert claims["org"] == [org_claim("orgD")]


@pytest.mark.parametrize(
    ("defect", "error"),
    [
        ("bad_signature", pyjwt.InvalidSignatureError),
        ("wrong_issuer", pyjwt.InvalidIssuerError),
        ("wrong_audience", pyjwt.InvalidAudienceError),
        ("expired", pyjwt.ExpiredSignatureError),
    ],
)
def test_device_login_id_token_defects_fail_verification(
    idp: MembershipServer,
    client: httpx.Client,
    defect: IdTokenDefect,
    error: type[Exception],
) -> None:
    idp.id_token_defect = defect
    answer = _login_request(client, idp)
    idp.approve_device(str(answer["user_code"]))
    body = _poll(client, idp, answer["device_code"]).json()
    with pytest.raises(error):
        _verify_id_token(idp, body["id_token"])
    # Everything else about the answer is as usual.
    assert idp.is_refresh_token_valid(body["refresh_token"])
    idp.id_token_defect = None
    again = _login_request(client, idp)
    idp.approve_device(str(again["user_code"]))
    _verify_id_token(idp, _poll(client, idp, again["device_code"]).json()["id_token"])


# --------------------------------------------------------------------------- stack access


def test_device_stack_access_token_exchanges_at_the_stack_and_refreshes(
    idp: MembershipServer, client: httpx.Client
) -> None:
    with StackAuthServer(idp) as stack:
        answer = _stack_request(client, idp)
        idp.approve_device(str(answer["user_code"]), subject="u-7")
        r = _poll(client, idp, answer["device_code"], resource=RESOURCE)
        assert r.status_code == 200, r.text
        body = r.json()
        assert "id_token" not in body
        claims = decode_jwt_unverified(body["access_token"])
        assert claims["organization_id"] == "orgA"
        assert claims["scope"] == STACK_ACCESS_SCOPE
        assert claims["sub"] == "u-7"
        assert claims["exp"] > time.time() + 3000

        exchange = client.post(
            stack.token_endpoint,
            data={
                "grant_type": JWT_BEARER_GRANT_TYPE,
                "assertion": body["access_token"],
                "scope": "openid email",
            },
        )
        assert exchange.status_code == 200, exchange.text

        refreshed = client.post(
            idp.token_endpoint,
            data={
                "grant_type": "refresh_token",
                "refresh_token": body["refresh_token"],
                "client_id": "fctl",
            },
        )
        assert refreshed.status_code == 200, refreshed.text
        assert decode_jwt_unverified(refreshed.json()["access_token"])["organization_id"] == "orgA"


def test_device_stack_access_poll_must_repeat_the_resource(
    idp: MembershipServer, client: httpx.Client
) -> None:
    answer = _stack_request(client, idp)
    idp.approve_device(str(answer["user_code"]))
    missing = _poll(client, idp, answer["device_code"])
    assert (missing.status_code, _error(missing)) == (400, "invalid_target")
    other = _poll(client, idp, answer["device_code"], resource="stack://orgA/other|stack:Read")
    assert _error(other) == "invalid_target"
    assert _poll(client, idp, answer["device_code"], resource=RESOURCE).status_code == 200
    assert [p.resource for p in idp.device_polls] == [
        None,
        "stack://orgA/other|stack:Read",
        RESOURCE,
    ]

    idp.device_require_resource_on_poll = False
    lax = _stack_request(client, idp)
    idp.approve_device(str(lax["user_code"]))
    assert _poll(client, idp, lax["device_code"]).status_code == 200


# --------------------------------------------------------------------------- terminal answers


def test_device_denied_answers_access_denied_on_every_poll(
    idp: MembershipServer, client: httpx.Client
) -> None:
    answer = _login_request(client, idp)
    idp.deny_device(str(answer["user_code"]))
    for _ in range(2):
        r = _poll(client, idp, answer["device_code"])
        assert (r.status_code, _error(r)) == (400, "access_denied")
    with pytest.raises(RuntimeError, match="409"):
        idp.approve_device(str(answer["user_code"]))


def test_device_expired_code_answers_expired_token(
    idp: MembershipServer, client: httpx.Client
) -> None:
    answer = _login_request(client, idp)
    idp.expire_device_code(str(answer["user_code"]))
    r = _poll(client, idp, answer["device_code"])
    assert (r.status_code, _error(r)) == (400, "expired_token")
    with pytest.raises(RuntimeError, match="expired_token"):
        idp.approve_device(str(answer["user_code"]))


def test_device_code_expires_by_itself_after_expires_in(client: httpx.Client) -> None:
    with MembershipServer(device_interval=0.05, device_expires_in=0.3) as idp:
        answer = _login_request(client, idp)
        deadline = time.monotonic() + POLL_DEADLINE
        answers: list[str] = []
        while time.monotonic() < deadline:
            answers.append(_error(_poll(client, idp, answer["device_code"])))
            if answers[-1] != "authorization_pending":
                break
            time.sleep(0.05)
        assert answers[-1] == "expired_token"
        assert set(answers[:-1]) <= {"authorization_pending"}


def test_device_unknown_device_code_is_invalid_request(
    idp: MembershipServer, client: httpx.Client
) -> None:
    r = _poll(client, idp, "no-such-code")
    assert (r.status_code, _error(r)) == (400, "invalid_request")
    (poll,) = idp.device_polls
    assert (poll.user_code, poll.answer) == (None, "invalid_request")


def test_device_approve_unknown_user_code_is_refused(idp: MembershipServer) -> None:
    with pytest.raises(RuntimeError, match="404"):
        idp.approve_device("NOPE-NOPE")


# --------------------------------------------------------------------------- pacing


def test_device_scripted_slow_down_then_success(
    idp: MembershipServer, client: httpx.Client
) -> None:
    answer = _login_request(client, idp)
    user_code = str(answer["user_code"])
    idp.approve_device(user_code)
    idp.slow_down_next(2)
    idp.script_device_answers("authorization_pending")
    answers = [_error(_poll(client, idp, answer["device_code"])) for _ in range(3)]
    assert answers == ["slow_down", "slow_down", "authorization_pending"]
    assert idp.device_interval_of(user_code) == pytest.approx(0.05 + 10)
    assert _poll(client, idp, answer["device_code"]).status_code == 200
    with pytest.raises(ValueError, match="device answer"):
        idp.script_device_answers("bogus")  # type: ignore[arg-type]


def test_device_scripted_terminal_answers(idp: MembershipServer, client: httpx.Client) -> None:
    answer = _login_request(client, idp)
    idp.script_device_answers("access_denied", "expired_token")
    assert _error(_poll(client, idp, answer["device_code"])) == "access_denied"
    assert _error(_poll(client, idp, answer["device_code"])) == "expired_token"
    assert _error(_poll(client, idp, answer["device_code"])) == "authorization_pending"


def test_device_enforced_interval_slows_down_an_early_poll(client: httpx.Client) -> None:
    # A 30 s interval makes the immediate second poll early without any timing premise.
    with MembershipServer(device_interval=30, device_enforce_interval=True) as idp:
        answer = _login_request(client, idp)
        user_code = str(answer["user_code"])
        assert _error(_poll(client, idp, answer["device_code"])) == "authorization_pending"
        assert _error(_poll(client, idp, answer["device_code"])) == "slow_down"
        assert idp.device_interval_of(user_code) == 35
        first, second = idp.device_polls
        assert not first.early
        assert second.early
        assert second.interval == 30
        assert second.since_previous is not None
        assert second.since_previous < 30


def test_device_poll_times_recorded_and_not_early_after_waiting(
    client: httpx.Client,
) -> None:
    interval = 0.1
    with MembershipServer(device_interval=interval, device_enforce_interval=True) as idp:
        answer = _login_request(client, idp)
        user_code = str(answer["user_code"])
        for _ in range(3):
            assert _error(_poll(client, idp, answer["device_code"])) == "authorization_pending"
            # Wait out the interval from the answer: the server compares arrival
            # times, and a wait counted from the send can arrive early by the
            # difference in latency of two requests.
            answered = time.monotonic()
            while (left := answered + interval - time.monotonic()) > 0:
                time.sleep(left)
        times = idp.device_poll_times(user_code)
        assert len(times) == 3
        assert all(later - earlier >= interval for earlier, later in itertools.pairwise(times))
        assert not any(p.early for p in idp.device_polls)
        assert idp.device_interval_of(user_code) == interval


def test_device_flow_client_thread_approved_by_the_test(idp: MembershipServer) -> None:
    """The shape of a client test: the client polls elsewhere, the test approves."""
    result: dict[str, object] = {}

    def device_client() -> None:
        with httpx.Client(timeout=5.0) as c:
            answer = _login_request(c, idp)
            deadline = time.monotonic() + POLL_DEADLINE
            while time.monotonic() < deadline:
                r = _poll(c, idp, answer["device_code"])
                if r.status_code == 200:
                    result["token"] = r.json()
                    return
                time.sleep(float(str(answer["interval"])))

    thread = threading.Thread(target=device_client)
    thread.start()
    auth = idp.wait_for_device_authorization(timeout=5)
    assert idp.wait_for_device_polls(1, timeout=5, user_code=auth.user_code)
    idp.approve_device(auth.user_code, organizations=[org_claim("orgA")])
    thread.join(POLL_DEADLINE + 5)
    assert not thread.is_alive()
    token = result["token"]
    assert isinstance(token, dict)
    assert _verify_id_token(idp, token["id_token"])["org"] == [org_claim("orgA")]
    with pytest.raises(TimeoutError):
        idp.wait_for_device_authorization(count=2, timeout=0.05)
