"""stacktoken.testing: the sandbox behaves as Formance's services do (docs/design.md §5, §13).

The fixtures come from the pytest plugin the package registers (entry point
``pytest11``), not from a conftest.
"""

from __future__ import annotations

import base64
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from stacktoken import (
    AuthenticationRequiredError,
    TokenSource,
    formance_sdk,
    login,
    stack_client,
)
from stacktoken.testing import (
    Sandbox,
    SandboxClient,
    SimulatedClock,
    decode_jwt_unverified,
)

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def _basic(client: SandboxClient) -> dict[str, str]:
    raw = f"{client.client_id}:{client.client_secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def _client_token(
    http: httpx.Client, sandbox: Sandbox, client: SandboxClient, scope: str
) -> dict[str, Any]:
    endpoint = f"{sandbox.stack_uri}/api/auth/oauth/token"
    data = {"grant_type": "client_credentials", "scope": scope}
    response = http.post(endpoint, data=data, headers=_basic(client))
    assert response.status_code == 200, response.text
    return dict(response.json())


def _info(http: httpx.Client, sandbox: Sandbox, token: str) -> int:
    url = sandbox.ledger.info_url
    return http.get(url, headers={"Authorization": f"Bearer {token}"}).status_code


def test_sandbox_binds_loopback_only_and_stops(formance_sandbox: Sandbox) -> None:
    for uri in (formance_sandbox.membership_uri, formance_sandbox.stack_uri):
        assert uri.startswith("http://127.0.0.1:")
    sandbox = Sandbox(lifetime=0.3).start()
    assert sandbox.is_running
    assert sandbox.wait_stopped(10), "a sandbox with a lifetime stops itself"
    assert not sandbox.is_running
    assert not sandbox.workdir.exists(), "its own temporary work dir is removed"


def test_sandbox_client_tokens_live_an_hour_with_scopes_cut_silently(
    formance_sandbox: Sandbox,
) -> None:
    client = formance_sandbox.client(scopes=["ledger:read"])
    with httpx.Client() as http:
        body = _client_token(http, formance_sandbox, client, "ledger:read ledger:write")
        assert "scope" not in body, "Formance's responses carry no scope"
        assert body["expires_in"] == 3600
        claims = decode_jwt_unverified(body["access_token"])
        assert claims["scope"] == "ledger:read"
        assert claims["exp"] - claims["iat"] == 3600
        assert _info(http, formance_sandbox, body["access_token"]) == 200


def test_sandbox_user_tokens_live_five_minutes(formance_sandbox: Sandbox) -> None:
    profile = formance_sandbox.fctl_profile()
    stack_access = decode_jwt_unverified(profile.stack_access_token)
    assert stack_access["exp"] - stack_access["iat"] == 300
    with TokenSource.from_fctl(
        config_dir=profile.config_dir, cache_dir=formance_sandbox.workdir / "cache"
    ) as source:
        claims = decode_jwt_unverified(source.token())
    assert claims["exp"] - claims["iat"] == 300
    assert formance_sandbox.count("stack.token") == 1
    with httpx.Client() as http:
        refreshed = http.post(
            f"{formance_sandbox.membership_uri}/oauth/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": profile.stack_refresh_token,
                "client_id": "fctl",
            },
        ).json()
        assert refreshed["expires_in"] == 300
        assert refreshed["refresh_token"] != profile.stack_refresh_token, "rotated"


def test_sandbox_advertises_private_key_jwt_but_refuses_it(formance_sandbox: Sandbox) -> None:
    client = formance_sandbox.client()
    with httpx.Client() as http:
        discovery = http.get(
            f"{formance_sandbox.stack_uri}/api/auth/.well-known/openid-configuration"
        ).json()
        assert "private_key_jwt" in discovery["token_endpoint_auth_methods_supported"]
        response = http.post(
            discovery["token_endpoint"],
            data={
                "grant_type": "client_credentials",
                "client_id": client.client_id,
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": "eyJhbGciOiJSUzI1NiJ9.e30.c2ln",
            },
        )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_sandbox_revocation_makes_client_tokens_unusable_at_the_ledger(
    formance_sandbox: Sandbox,
) -> None:
    client = formance_sandbox.client()
    revoke = f"{formance_sandbox.stack_uri}/api/auth/oauth/revoke"
    with httpx.Client() as http:
        basic = _client_token(http, formance_sandbox, client, "ledger:read")["access_token"]
        posted = _client_token(http, formance_sandbox, client, "ledger:read")["access_token"]
        wrong = {"client_id": client.client_id, "client_secret": "wrong", "token": basic}
        assert http.post(revoke, data=wrong).status_code == 401
        assert _info(http, formance_sandbox, basic) == 200

        assert http.post(revoke, data={"token": basic}, headers=_basic(client)).status_code == 200
        assert _info(http, formance_sandbox, basic) == 401
        by_post = {"client_id": client.client_id, "client_secret": client.client_secret}
        assert http.post(revoke, data={**by_post, "token": posted}).status_code == 200
        assert _info(http, formance_sandbox, posted) == 401

        # A JWT-bearer token has no client to authenticate as.
        profile = formance_sandbox.fctl_profile()
        exchanged = http.post(
            f"{formance_sandbox.stack_uri}/api/auth/oauth/token",
            data={"grant_type": JWT_BEARER, "assertion": profile.stack_access_token},
        ).json()["access_token"]
        answer = http.post(revoke, data={"token": exchanged})
        assert answer.status_code == 401
        assert answer.json()["error"] == "invalid_client"
        assert _info(http, formance_sandbox, exchanged) == 200


def test_sandbox_membership_revocation_ends_a_refresh_token(formance_sandbox: Sandbox) -> None:
    profile = formance_sandbox.fctl_profile()
    with httpx.Client() as http:
        discovery = http.get(
            f"{formance_sandbox.membership_uri}/.well-known/openid-configuration"
        ).json()
        revoked = http.post(
            discovery["revocation_endpoint"],
            data={
                "token": profile.stack_refresh_token,
                "token_type_hint": "refresh_token",
                "client_id": "fctl",
            },
        )
        assert revoked.status_code == 200
        refresh = http.post(
            discovery["token_endpoint"],
            data={
                "grant_type": "refresh_token",
                "refresh_token": profile.stack_refresh_token,
                "client_id": "fctl",
            },
        )
    assert refresh.status_code == 400
    assert refresh.json()["error"] == "invalid_grant"
    assert formance_sandbox.count("membership.revoke") == 1


def test_sandbox_device_login_is_approved_by_its_hook(
    formance_sandbox: Sandbox, tmp_path: Path
) -> None:
    prompts: list[str] = []
    login(
        membership_uri=formance_sandbox.membership_uri,
        config_dir=tmp_path / "fctl",
        organization=formance_sandbox.organization,
        stack=formance_sandbox.stack_id,
        on_prompt=lambda _url, code: prompts.append(code),
    )
    assert len(prompts) == 2, "a login, then the stack's access"
    with TokenSource.from_fctl(config_dir=tmp_path / "fctl", cache_dir=tmp_path / "c") as source:
        assert source.token()

    formance_sandbox.decide_devices(lambda _authorization: "deny")
    with pytest.raises(AuthenticationRequiredError):
        login(
            membership_uri=formance_sandbox.membership_uri,
            config_dir=tmp_path / "other",
            on_prompt=lambda _url, _code: None,
        )


def test_sandbox_login_helper_logs_in_by_the_device_flow(formance_sandbox: Sandbox) -> None:
    formance_sandbox.decide_devices(None)  # the helper approves its own login
    config_dir = formance_sandbox.login()
    assert formance_sandbox.count("membership.device") == 2, "login, then the stack's access"
    assert formance_sandbox.membership.device_decider is None
    with TokenSource.from_fctl(
        config_dir=config_dir, cache_dir=formance_sandbox.workdir / "cache"
    ) as source:
        assert source.token()


def test_sandbox_device_login_waits_for_a_manual_approval(
    formance_sandbox: Sandbox, tmp_path: Path
) -> None:
    formance_sandbox.decide_devices(None)
    approved: list[str] = []

    def approve() -> None:
        pending = formance_sandbox.membership.wait_for_device_authorization(1, timeout=10)
        formance_sandbox.approve_device(pending.user_code)
        approved.append(pending.user_code)

    approver = threading.Thread(target=approve, daemon=True)
    approver.start()
    codes: list[str] = []
    login(
        membership_uri=formance_sandbox.membership_uri,
        config_dir=tmp_path / "fctl",
        on_prompt=lambda _url, code: codes.append(code),
    )
    approver.join(10)
    assert approved == codes
    assert formance_sandbox.count("membership.device") == 1


def test_sandbox_faults_fail_delay_and_hold(
    formance_sandbox: Sandbox, formance_client: SandboxClient
) -> None:
    formance_sandbox.fail_next("stack.token", 1, status=503)
    with formance_client.token_source() as source:
        assert source.token()
    assert formance_sandbox.count("stack.token") == 2, "one 503, then a retry"

    other = formance_sandbox.client()
    hold = formance_sandbox.hold_next("stack.token")
    got: list[str] = []
    with other.token_source() as source:
        worker = threading.Thread(target=lambda: got.append(source.token()), daemon=True)
        worker.start()
        assert hold.wait(10), "the server handled the request"
        assert not got, "the answer is held"
        hold.release()
        worker.join(10)
    assert got

    formance_sandbox.delay_next("ledger.info", 0.05)
    with httpx.Client() as http:
        assert _info(http, formance_sandbox, got[0]) == 200
    with pytest.raises(ValueError, match="unknown endpoint"):
        formance_sandbox.count("stack.nope")


def test_sandbox_injected_401_is_retried_once_by_the_client(
    formance_sandbox: Sandbox, formance_token_source: TokenSource
) -> None:
    formance_token_source.token()
    formance_sandbox.reject_next(1)
    with stack_client(formance_token_source) as http:
        assert http.get("/api/ledger/_/info").status_code == 200
    assert formance_sandbox.ledger.unauthorized == 1
    assert formance_sandbox.count("stack.token") == 2


def test_sandbox_expire_all_sends_an_fctl_source_back_to_the_membership(
    formance_sandbox: Sandbox,
) -> None:
    profile = formance_sandbox.fctl_profile()
    with TokenSource.from_fctl(
        config_dir=profile.config_dir, cache_dir=formance_sandbox.workdir / "cache"
    ) as source:
        first = source.token()
        formance_sandbox.expire_all()
        with stack_client(source) as http:
            assert http.get("/api/ledger/_/info").status_code == 200
        assert source.token() != first
    assert formance_sandbox.count("membership.token") == 1, "one refresh"
    assert formance_sandbox.count("stack.token") == 3, "exchange, refused, exchange"


def test_sandbox_simulated_clock_moves_server_and_client_together(tmp_path: Path) -> None:
    clock = SimulatedClock()
    with Sandbox(clock=clock, workdir=tmp_path) as sandbox:
        client = sandbox.client()
        with client.token_source(clock=clock.now) as source:
            first = source.token()
            assert decode_jwt_unverified(first)["iat"] == int(clock.time())
            clock.advance(3600)
            with httpx.Client() as http:
                assert _info(http, sandbox, first) == 401, "an hour later it has expired"
            second = source.token()
        assert second != first
        assert sandbox.count("stack.token") == 2
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_sandbox_sdk_call_through_the_fixtures(
    formance_sandbox: Sandbox, formance_token_source: TokenSource
) -> None:
    pytest.importorskip("formance_sdk_python")
    with formance_sdk(formance_token_source) as sdk:
        info = sdk.ledger.v2.get_info()
    assert info.v2_config_info is not None
    assert info.v2_config_info.server == "ledger"
    assert formance_sandbox.counts()["ledger.info"] == 1


def test_sandbox_demo_runs_the_whole_story(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FCTL_", "STACKTOKEN_"))}
    env["HOME"] = str(tmp_path)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "stacktoken.testing", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stdout.splitlines()
    for step, source in (
        ("login (device flow", "network"),
        ("cold token", "network"),
        ("same token again", "memory"),
        ("warm token, new process", "disk"),
        ("machine credential, 4 processes", "network x1, disk x3"),
    ):
        row = next(line for line in lines if line.startswith(step))
        assert source in row, row
    assert any(line.startswith("SDK call") for line in lines)
    print(f"demo: {elapsed:.1f} s")


def test_sandbox_serve_prints_urls_keeps_the_secret_in_a_file_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "stacktoken.testing", "serve", "--workdir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("serving for"):
                break
        printed = "".join(lines)
        stack_uri = next(line.split()[1] for line in lines if line.startswith("stack "))
        env_file = tmp_path / "sandbox.env"
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
        secret = next(
            line.split("=", 1)[1]
            for line in env_file.read_text().splitlines()
            if line.startswith("export STACKTOKEN_CLIENT_SECRET=")
        )
        assert secret not in printed
        assert f"STACKTOKEN_STACK_URI={stack_uri}" in printed
        with httpx.Client() as http:
            discovery = http.get(f"{stack_uri}/api/auth/.well-known/openid-configuration")
        assert discovery.status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


README = Path(__file__).resolve().parent.parent / "README.md"


def test_sandbox_readme_example_passes_as_written(tmp_path: Path) -> None:
    pytest.importorskip("formance_sdk_python")
    section = README.read_text().split("## Testing against a Formance sandbox", 1)[1]
    example = section.split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "test_readme_example.py").write_text(example)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FCTL_", "STACKTOKEN_"))}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_readme_example.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "HOME": str(tmp_path)},
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 passed" in done.stdout


def test_sandbox_plugin_import_needs_none_of_the_extra() -> None:
    """pytest loads the plugin wherever stacktoken is installed: importing it loads
    neither the servers nor authlib, so a user without `[testing]` is unaffected."""
    code = (
        "import sys, stacktoken.testing._plugin\n"
        "print(sorted(m for m in ('authlib', 'joserfc', 'stacktoken.testing._servers')"
        " if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
