"""Direct httpx tests of the loopback OAuth servers in tests/oauth_servers.py."""

from __future__ import annotations

import json
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt as pyjwt
import pytest
from joserfc import jwt as jose_jwt
from joserfc.jwk import RSAKey
from oauth_servers import (
    JWT_BEARER_GRANT_TYPE,
    Fault,
    FctlProfile,
    MembershipServer,
    RecordedRequest,
    StackAuthServer,
    decode_jwt_unverified,
    fctl_profile,
    membership_server,
    new_rsa_key,
    stack_server,
    write_fctl_profile,
)

# Re-exported fixtures used by the tests below (pytest finds them by name).
__all__ = ["fctl_profile", "membership_server", "stack_server"]

MEMBERSHIP_TOKEN = "POST /api/oauth/token"
MEMBERSHIP_DISCOVERY = "GET /api/.well-known/openid-configuration"
STACK_TOKEN = "POST /api/auth/oauth/token"
STACK_DISCOVERY = "GET /api/auth/.well-known/openid-configuration"


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0, follow_redirects=False) as c:
        yield c


def _refresh(client: httpx.Client, idp: MembershipServer, refresh_token: str) -> httpx.Response:
    return client.post(
        idp.token_endpoint,
        data={"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": "fctl"},
    )


def _exchange(client: httpx.Client, stack: StackAuthServer, assertion: str) -> httpx.Response:
    return client.post(
        stack.token_endpoint,
        data={"grant_type": JWT_BEARER_GRANT_TYPE, "assertion": assertion, "scope": "openid email"},
    )


# --------------------------------------------------------------------------- membership


def test_membership_discovery_document(
    membership_server: MembershipServer, client: httpx.Client
) -> None:
    r = client.get(membership_server.discovery_url)
    assert r.status_code == 200
    assert r.headers["cache-control"] == "max-age=3600"
    doc = r.json()
    base = f"http://127.0.0.1:{membership_server.port}/api"
    assert membership_server.base_url == base
    assert doc["issuer"] == base
    assert doc["token_endpoint"] == f"{base}/oauth/token"
    jwks = client.get(doc["jwks_uri"]).json()
    assert jwks["keys"][0]["kty"] == "RSA"
    assert "d" not in jwks["keys"][0]


def test_membership_discovery_cache_control_configurable(client: httpx.Client) -> None:
    with MembershipServer(discovery_cache_control=None) as idp:
        assert "cache-control" not in client.get(idp.discovery_url).headers
        idp.discovery_cache_control = "no-store"
        assert client.get(idp.discovery_url).headers["cache-control"] == "no-store"


def test_membership_refresh_rotates_and_rejects_old_token(
    membership_server: MembershipServer, client: httpx.Client
) -> None:
    _, rt1 = membership_server.mint_stack_access(-60)
    r = _refresh(client, membership_server, rt1)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "openid offline_access"
    rt2 = body["refresh_token"]
    assert rt2 != rt1
    assert not membership_server.is_refresh_token_valid(rt1)

    again = _refresh(client, membership_server, rt1)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"

    assert _refresh(client, membership_server, rt2).status_code == 200


def test_membership_refresh_issues_rs256_jwt_with_claims(client: httpx.Client) -> None:
    with MembershipServer(access_token_lifetime=120) as idp:
        _, rt = idp.mint_stack_access(10, organization_id="orgZ")
        before = int(time.time())
        body = _refresh(client, idp, rt).json()
        assert body["expires_in"] == 120
        claims = pyjwt.decode(
            body["access_token"],
            idp.public_key_pem(),
            algorithms=["RS256"],
            issuer=idp.issuer,
        )
        assert claims["sub"] == idp.subject
        assert claims["organization_id"] == "orgZ"
        assert claims["scope"] == "openid offline_access"
        assert before <= claims["iat"] <= claims["exp"] - 120 + 1
        assert pyjwt.get_unverified_header(body["access_token"])["alg"] == "RS256"


def test_membership_refresh_requires_public_client_id(
    membership_server: MembershipServer, client: httpx.Client
) -> None:
    _, rt = membership_server.mint_stack_access(10)
    r = client.post(
        membership_server.token_endpoint,
        data={"grant_type": "refresh_token", "refresh_token": rt},
    )
    assert r.status_code in (400, 401)
    assert r.json()["error"] == "invalid_client"
    r = client.post(
        membership_server.token_endpoint,
        data={"grant_type": "refresh_token", "refresh_token": rt, "client_id": "other"},
    )
    assert r.json()["error"] == "invalid_client"
    assert membership_server.is_refresh_token_valid(rt)


def test_membership_revoke_all_refresh_tokens_gives_invalid_grant(
    membership_server: MembershipServer, client: httpx.Client
) -> None:
    _, rt = membership_server.mint_stack_access(10)
    membership_server.revoke_all_refresh_tokens()
    r = _refresh(client, membership_server, rt)
    assert r.status_code == 400
    assert r.json() == {"error": "invalid_grant"}


def test_membership_refresh_concurrent_reuse_succeeds_once(
    membership_server: MembershipServer,
) -> None:
    _, rt = membership_server.mint_stack_access(10)
    statuses: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        with httpx.Client(timeout=5.0) as c:
            code = _refresh(c, membership_server, rt).status_code
        with lock:
            statuses.append(code)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(statuses) == [200, 400, 400, 400, 400, 400]


def test_membership_mint_stack_access_expiry(membership_server: MembershipServer) -> None:
    now = int(time.time())
    token, rt = membership_server.mint_stack_access(-30)
    claims = decode_jwt_unverified(token)
    assert claims["exp"] - now in range(-31, -28)
    assert claims["iss"] == membership_server.issuer
    assert claims["organization_id"] == "orgA"
    assert membership_server.is_refresh_token_valid(rt)


# --------------------------------------------------------------------------- stack


def test_stack_discovery_document(stack_server: StackAuthServer, client: httpx.Client) -> None:
    r = client.get(f"{stack_server.stack_uri}/api/auth/.well-known/openid-configuration")
    assert r.status_code == 200
    assert r.headers["cache-control"] == "max-age=3600"
    origin = f"http://127.0.0.1:{stack_server.port}"
    assert r.json()["issuer"] == f"{origin}/api/auth"
    assert r.json()["token_endpoint"] == f"{origin}/api/auth/oauth/token"


def test_stack_exchange_success(
    membership_server: MembershipServer, stack_server: StackAuthServer, client: httpx.Client
) -> None:
    assertion, _ = membership_server.mint_stack_access(3600)
    r = _exchange(client, stack_server, assertion)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["access_token"].count(".") == 0  # opaque by default
    headers = stack_server.request_headers[-1]
    assert "authorization" not in headers
    ok = client.get(
        stack_server.resource_url, headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert ok.status_code == 200
    assert client.get(stack_server.resource_url).status_code == 401
    stack_server.revoke_issued_tokens()
    gone = client.get(
        stack_server.resource_url, headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert gone.status_code == 401


def test_stack_exchange_jwt_without_expires_in(
    membership_server: MembershipServer, client: httpx.Client
) -> None:
    with StackAuthServer(
        membership_server, access_token_format="jwt", expires_in=None, jwt_lifetime=600
    ) as stack:
        assertion, _ = membership_server.mint_stack_access(3600)
        body = _exchange(client, stack, assertion).json()
        assert "expires_in" not in body
        claims = pyjwt.decode(
            body["access_token"],
            stack.public_key_pem(),
            algorithms=["RS256"],
            audience=stack.stack_uri,
        )
        assert claims["exp"] - claims["iat"] == 600
        stack.expires_in = 42
        assert _exchange(client, stack, assertion).json()["expires_in"] == 42


def test_stack_exchange_bad_signature_rejected(
    membership_server: MembershipServer, stack_server: StackAuthServer, client: httpx.Client
) -> None:
    other = RSAKey.generate_key(2048, parameters={"kid": str(membership_server.signing_key.kid)})
    claims = membership_server.stack_access_claims(3600)
    forged = jose_jwt.encode({"alg": "RS256", "kid": other.kid}, claims, other)
    r = _exchange(client, stack_server, forged)
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_grant"

    header, payload, sig = membership_server.mint_stack_access(3600)[0].split(".")
    tampered = ".".join([header, payload, sig[:-4] + ("AAAA" if sig[-4:] != "AAAA" else "BBBB")])
    assert _exchange(client, stack_server, tampered).json()["error"] == "invalid_grant"
    assert _exchange(client, stack_server, "not-a-jwt").json()["error"] == "invalid_grant"


def test_stack_exchange_after_idp_key_rotation(client: httpx.Client) -> None:
    with MembershipServer(signing_key=new_rsa_key()) as idp, StackAuthServer(idp) as stack:
        before, _ = idp.mint_stack_access(3600)
        assert _exchange(client, stack, before).status_code == 200
        idp.rotate_signing_key()
        assert _exchange(client, stack, before).json()["error"] == "invalid_grant"
        after, _ = idp.mint_stack_access(3600)
        assert _exchange(client, stack, after).status_code == 200


def test_stack_exchange_expired_assertion_rejected(
    membership_server: MembershipServer, stack_server: StackAuthServer, client: httpx.Client
) -> None:
    expired, _ = membership_server.mint_stack_access(-5)
    r = _exchange(client, stack_server, expired)
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_grant"


def test_stack_exchange_wrong_issuer_rejected(
    membership_server: MembershipServer, stack_server: StackAuthServer, client: httpx.Client
) -> None:
    claims = membership_server.stack_access_claims(3600)
    claims["iss"] = "http://127.0.0.1:1/api"
    r = _exchange(client, stack_server, membership_server.sign(claims))
    assert r.json()["error"] == "invalid_grant"


def test_stack_reject_assertions_issued_before(
    membership_server: MembershipServer, stack_server: StackAuthServer, client: httpx.Client
) -> None:
    old, _ = membership_server.mint_stack_access(3600)
    stack_server.reject_assertions_issued_before(time.time() + 1)
    r = _exchange(client, stack_server, old)
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_grant"
    stack_server.reject_assertions_issued_before(None)
    assert _exchange(client, stack_server, old).status_code == 200

    stack_server.reject_all_assertions()
    assert _exchange(client, stack_server, old).json()["error"] == "invalid_grant"
    stack_server.reject_all_assertions(False)
    assert _exchange(client, stack_server, old).status_code == 200


# --------------------------------------------------------------------------- counting


def test_counting_per_endpoint_and_reset(
    membership_server: MembershipServer, stack_server: StackAuthServer, client: httpx.Client
) -> None:
    assertion, rt = membership_server.mint_stack_access(3600)
    client.get(membership_server.discovery_url)
    client.get(membership_server.discovery_url)
    _refresh(client, membership_server, rt)
    _exchange(client, stack_server, assertion)
    client.get(f"{stack_server.origin}/nope")
    assert membership_server.count(MEMBERSHIP_DISCOVERY) == 2
    assert membership_server.count(MEMBERSHIP_TOKEN) == 1
    assert stack_server.count(STACK_TOKEN) == 1
    assert stack_server.count(STACK_DISCOVERY) == 0
    assert stack_server.count("GET /nope") == 1
    assert membership_server.requests[-1] == RecordedRequest(
        "POST",
        "/api/oauth/token",
        {"grant_type": "refresh_token", "refresh_token": rt, "client_id": "fctl"},
    )
    method, path, form = stack_server.requests[0]
    assert (method, path, form["grant_type"]) == (
        "POST",
        "/api/auth/oauth/token",
        JWT_BEARER_GRANT_TYPE,
    )
    membership_server.reset_counts()
    assert membership_server.count(MEMBERSHIP_DISCOVERY) == 0
    assert membership_server.requests == []
    assert membership_server.total_requests == 0
    with pytest.raises(ValueError, match="endpoint"):
        membership_server.count("/api/oauth/token")


def test_counting_is_thread_safe(membership_server: MembershipServer) -> None:
    def worker() -> None:
        with httpx.Client(timeout=5.0) as c:
            for _ in range(5):
                c.get(membership_server.discovery_url)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert membership_server.count(MEMBERSHIP_DISCOVERY) == 40
    assert membership_server.wait_for_count(MEMBERSHIP_DISCOVERY, 40, timeout=0.1)
    assert not membership_server.wait_for_count(MEMBERSHIP_DISCOVERY, 41, timeout=0.05)
    assert len(membership_server.requests) == 40


# --------------------------------------------------------------------------- faults


def test_fault_status_queue_is_fifo_and_consumed(
    membership_server: MembershipServer, stack_server: StackAuthServer, client: httpx.Client
) -> None:
    assertion, _ = membership_server.mint_stack_access(3600)
    stack_server.inject(STACK_TOKEN, Fault.status(503), Fault.status(502), Fault.invalid_grant())
    assert stack_server.pending_faults(STACK_TOKEN) == 3
    first = _exchange(client, stack_server, assertion)
    assert first.status_code == 503
    assert first.json() == {"error": "temporarily_unavailable"}
    assert _exchange(client, stack_server, assertion).status_code == 502
    third = _exchange(client, stack_server, assertion)
    assert (third.status_code, third.json()["error"]) == (400, "invalid_grant")
    assert _exchange(client, stack_server, assertion).status_code == 200
    assert stack_server.count(STACK_TOKEN) == 4
    stack_server.inject(STACK_TOKEN, Fault.status(500))
    stack_server.clear_faults()
    assert _exchange(client, stack_server, assertion).status_code == 200


def test_fault_rate_limited_sends_retry_after(
    stack_server: StackAuthServer, client: httpx.Client
) -> None:
    stack_server.inject(STACK_DISCOVERY, Fault.rate_limited(2))
    r = client.get(stack_server.discovery_url)
    assert r.status_code == 429
    assert r.headers["retry-after"] == "2"
    assert "error" in r.json()


def test_fault_delay_causes_client_timeout(
    stack_server: StackAuthServer, client: httpx.Client
) -> None:
    stack_server.inject(STACK_DISCOVERY, Fault.delay(0.6))
    t0 = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        client.get(stack_server.discovery_url, timeout=0.2)
    assert time.monotonic() - t0 < 0.6
    stack_server.inject(STACK_DISCOVERY, Fault.delay(0.1))
    t0 = time.monotonic()
    assert client.get(stack_server.discovery_url).status_code == 200
    assert time.monotonic() - t0 >= 0.1


def test_fault_garbage_body(stack_server: StackAuthServer, client: httpx.Client) -> None:
    stack_server.inject(STACK_DISCOVERY, Fault.garbage())
    r = client.get(stack_server.discovery_url)
    assert r.status_code == 200
    with pytest.raises(ValueError):
        json.loads(r.content)


def test_fault_html_error_page(stack_server: StackAuthServer, client: httpx.Client) -> None:
    stack_server.inject(STACK_TOKEN, Fault.html_error())
    r = client.post(stack_server.token_endpoint, data={"grant_type": JWT_BEARER_GRANT_TYPE})
    assert r.status_code == 500
    assert r.headers["content-type"].startswith("text/html")
    assert r.text.startswith("<!DOCTYPE html>")


def test_fault_missing_fields(
    membership_server: MembershipServer, stack_server: StackAuthServer, client: httpx.Client
) -> None:
    assertion, _ = membership_server.mint_stack_access(3600)
    stack_server.inject(STACK_TOKEN, Fault.missing_fields(), Fault.missing_fields("token_type"))
    r = _exchange(client, stack_server, assertion)
    assert r.status_code == 200
    assert "access_token" not in r.json()
    assert r.json()["token_type"] == "Bearer"
    assert "token_type" not in _exchange(client, stack_server, assertion).json()
    stack_server.inject(STACK_TOKEN, Fault.override_fields(expires_in="soon"))
    assert _exchange(client, stack_server, assertion).json()["expires_in"] == "soon"


def test_fault_oversized_body(stack_server: StackAuthServer, client: httpx.Client) -> None:
    stack_server.inject(
        STACK_TOKEN, Fault.oversized(10_000), Fault.oversized(5_000, send_content_length=False)
    )
    r = client.post(stack_server.token_endpoint, data={})
    assert r.status_code == 200
    assert len(r.content) == 10_001
    assert int(r.headers["content-length"]) == 10_001
    assert r.json()["access_token"] == "x"
    r = client.post(stack_server.token_endpoint, data={})
    assert "content-length" not in r.headers
    assert len(r.content) == 5_001


def test_fault_wrong_issuer_in_discovery(
    membership_server: MembershipServer, client: httpx.Client
) -> None:
    membership_server.inject(MEMBERSHIP_DISCOVERY, Fault.wrong_issuer("https://evil.example"))
    doc = client.get(membership_server.discovery_url).json()
    assert doc["issuer"] == "https://evil.example"
    assert doc["token_endpoint"] == membership_server.token_endpoint
    assert client.get(membership_server.discovery_url).json()["issuer"] == membership_server.issuer


def test_fault_close_connection(stack_server: StackAuthServer, client: httpx.Client) -> None:
    stack_server.inject(
        STACK_DISCOVERY, Fault.close_connection(), Fault.close_connection(reset=True)
    )
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(stack_server.discovery_url)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        client.get(stack_server.discovery_url)
    assert client.get(stack_server.discovery_url).status_code == 200
    assert stack_server.count(STACK_DISCOVERY) == 3


def test_fault_redirect_and_raw(stack_server: StackAuthServer, client: httpx.Client) -> None:
    stack_server.inject(
        STACK_TOKEN,
        Fault.redirect("http://127.0.0.1:1/elsewhere"),
        Fault.raw(201, {"hello": "world"}, headers={"X-Test": "1"}),
    )
    r = client.post(stack_server.token_endpoint, data={})
    assert r.status_code == 307
    assert r.headers["location"] == "http://127.0.0.1:1/elsewhere"
    r = client.post(stack_server.token_endpoint, data={})
    assert (r.status_code, r.json(), r.headers["x-test"]) == (201, {"hello": "world"}, "1")


def test_fault_inject_rejects_malformed_endpoint(stack_server: StackAuthServer) -> None:
    with pytest.raises(ValueError, match="endpoint"):
        stack_server.inject("api/auth/oauth/token", Fault.status(500))


# --------------------------------------------------------------------------- lifecycle


def test_server_restart_on_same_port(
    membership_server: MembershipServer, stack_server: StackAuthServer, client: httpx.Client
) -> None:
    port = stack_server.port
    url = stack_server.discovery_url
    assert client.get(url).status_code == 200
    stack_server.stop()
    assert not stack_server.is_running
    with pytest.raises(httpx.ConnectError):
        client.get(url)
    stack_server.start()
    assert stack_server.port == port
    assert client.get(url).status_code == 200
    assertion, _ = membership_server.mint_stack_access(3600)
    assert _exchange(client, stack_server, assertion).status_code == 200

    membership_server.restart()
    _, rt = membership_server.mint_stack_access(10)
    assert _refresh(client, membership_server, rt).status_code == 200


def test_server_stop_interrupts_delayed_request(stack_server: StackAuthServer) -> None:
    stack_server.inject(STACK_DISCOVERY, Fault.delay(30))
    errors: list[BaseException] = []

    def call() -> None:
        try:
            httpx.get(stack_server.discovery_url, timeout=10)
        except httpx.HTTPError as exc:
            errors.append(exc)

    t = threading.Thread(target=call)
    t.start()
    assert stack_server.wait_for_count(STACK_DISCOVERY, 1, timeout=5)
    t0 = time.monotonic()
    stack_server.stop(timeout=3)
    assert time.monotonic() - t0 < 2
    t.join(5)
    assert not t.is_alive()
    assert len(errors) == 1


def test_server_context_manager_stops(client: httpx.Client) -> None:
    with MembershipServer() as idp:
        url = idp.discovery_url
        assert client.get(url).status_code == 200
    with pytest.raises(httpx.ConnectError):
        client.get(url)
    assert MembershipServer().is_running is False
    with pytest.raises(RuntimeError):
        _ = MembershipServer().port


# --------------------------------------------------------------------------- fctl profile


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_fctl_profile_layout(
    fctl_profile: FctlProfile, stack_server: StackAuthServer, membership_server: MembershipServer
) -> None:
    p = fctl_profile
    config = json.loads(p.config_path.read_text())
    assert config["currentProfile"] == "default"
    assert config["uniqueID"]
    prof = json.loads(p.profile_path.read_text())
    assert p.profile_path == p.config_dir / "profiles" / "default" / "profile.json"
    assert prof["membershipURI"] == membership_server.base_url
    assert prof["defaultOrganization"] == "orgA"
    assert prof["defaultStack"] == "stk1"
    id_claims = prof["rootTokens"]["idToken"]["claims"]
    assert id_claims["org"][0]["id"] == "orgA"
    assert id_claims["org"][0]["stacks"][0]["uri"] == stack_server.stack_uri
    assert decode_jwt_unverified(prof["rootTokens"]["idToken"]["token"]) == id_claims
    assert prof["rootTokens"]["accessToken"]["refreshToken"] == p.root_refresh_token

    assert p.accesses_path == (
        p.config_dir / "profiles/default/organizations/orgA/stacks/stk1/accesses.json"
    )
    accesses = json.loads(p.accesses_path.read_text())
    assert accesses["token"] == p.stack_access_token
    assert accesses["claims"] == decode_jwt_unverified(p.stack_access_token)
    assert accesses["claims"]["exp"] > time.time() + 3000
    assert accesses["refreshToken"] == p.stack_refresh_token
    assert membership_server.is_refresh_token_valid(p.stack_refresh_token)

    for d in (p.config_dir, p.profile_dir, p.stack_dir):
        assert _mode(d) == 0o700
    for f in (p.config_path, p.profile_path, p.accesses_path):
        assert _mode(f) == 0o600
    assert p.stack_access_token not in repr(p)


def test_write_fctl_profile_usable_end_to_end(
    tmp_path: Path,
    membership_server: MembershipServer,
    stack_server: StackAuthServer,
    client: httpx.Client,
) -> None:
    p = write_fctl_profile(
        tmp_path / "cfg",
        membership_server,
        stack_server,
        profile="p2",
        org="o",
        stack_id="s",
        stack_access_exp_in=-10,
    )
    second = write_fctl_profile(
        tmp_path / "cfg",
        membership_server,
        stack_server,
        profile="p2",
        org="o",
        stack_id="t",
        set_defaults=False,
    )
    prof = json.loads(second.profile_path.read_text())
    assert [s["id"] for s in prof["rootTokens"]["idToken"]["claims"]["org"][0]["stacks"]] == [
        "s",
        "t",
    ]
    assert prof["defaultStack"] == "s"
    assert json.loads(p.config_path.read_text())["currentProfile"] == "p2"

    # The expired stack access token must be refreshed before the exchange.
    accesses = json.loads(p.accesses_path.read_text())
    assert _exchange(client, stack_server, accesses["token"]).json()["error"] == "invalid_grant"
    refreshed = _refresh(client, membership_server, accesses["refreshToken"]).json()
    assert _exchange(client, stack_server, refreshed["access_token"]).status_code == 200
