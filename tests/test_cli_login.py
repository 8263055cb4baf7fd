"""`stacktoken login` and on-demand stack access by the device flow (docs/design.md §13),
against the loopback IdP's real RFC 8628 grant (authlib's DeviceCodeGrant),
approved by the test through the IdP's own endpoint.

Each test runs the CLI as a subprocess; a thread (or the test itself) waits for
the device authorization to be recorded and then decides, so no test waits on
a timer: every wait is for an event, bounded.
"""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from oauth_servers import (
    LOGIN_SCOPE,
    STACK_ACCESS_SCOPE,
    DeviceAuthorization,
    Fault,
    IdTokenDefect,
    MembershipServer,
    StackAuthServer,
    decode_jwt_unverified,
    org_claim,
    write_fctl_profile,
)

WAIT = 20.0  # seconds: the bound of every wait for an event
RESOURCE = "stack://orgA/stk1|stack:Read stack:Write"
ERROR_PREFIX = "stacktoken: error: "


@dataclass
class Setup:
    idp: MembershipServer
    stack: StackAuthServer
    config_dir: Path
    cache_dir: Path
    home: Path

    def env(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if key
            not in (
                "STACK_TOKEN_CACHE_TTL",
                "FCTL_CONFIG_DIR",
                "PROFILE",
                "ORGANIZATION",
                "STACK",
                "DISPLAY",
                "WAYLAND_DISPLAY",
            )
        }
        env.update(HOME=str(self.home), XDG_CACHE_HOME=str(self.home / ".cache"))
        return env

    def argv(self, *args: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "stacktoken",
            "--config-dir",
            str(self.config_dir),
            "--cache-dir",
            str(self.cache_dir),
            *args,
        ]

    def start(self, *args: str, **popen: Any) -> subprocess.Popen[str]:
        popen.setdefault("stdin", subprocess.DEVNULL)
        popen.setdefault("stdout", subprocess.PIPE)
        popen.setdefault("stderr", subprocess.PIPE)
        return subprocess.Popen(self.argv(*args), env=self.env(), text=True, **popen)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self.argv(*args),
            env=self.env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=False,
        )
        assert "Traceback" not in result.stderr, result.stderr
        return result

    @property
    def organizations(self) -> list[dict[str, object]]:
        return [org_claim("orgA", {"stk1": self.stack.stack_uri}, display_name="A")]

    def login(self, *extra: str) -> subprocess.CompletedProcess[str]:
        """A whole login, approved by a thread as soon as the IdP has the request."""
        decide = approver(
            self,
            lambda auth: self.idp.approve_device(auth.user_code, organizations=self.organizations),
        )
        process = self.start("login", "--membership-uri", self.idp.base_url, "--no-browser", *extra)
        return finish(process, decide)

    def files(self) -> list[str]:
        if not self.config_dir.exists():
            return []
        return sorted(str(p.relative_to(self.config_dir)) for p in self.config_dir.rglob("*"))


def approver(
    setup: Setup, decide: Callable[[DeviceAuthorization], None], count: int = 1
) -> threading.Thread:
    """A thread that waits for the `count`-th device authorization, then decides."""

    def run() -> None:
        auth = setup.idp.wait_for_device_authorization(count=count, timeout=WAIT)
        decide(auth)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def finish(
    process: subprocess.Popen[str], thread: threading.Thread | None = None
) -> subprocess.CompletedProcess[str]:
    stdout, stderr = process.communicate(timeout=WAIT)
    if thread is not None:
        thread.join(WAIT)
        assert not thread.is_alive()
    assert "Traceback" not in stderr, stderr
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def error_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.startswith(ERROR_PREFIX)]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    with MembershipServer(device_interval=0.05) as idp, StackAuthServer(idp) as stack:
        yield Setup(
            idp=idp,
            stack=stack,
            config_dir=tmp_path / "fctl",
            cache_dir=tmp_path / "cache",
            home=tmp_path / "home",
        )


def _json(path: Path) -> dict[str, Any]:
    document = json.loads(path.read_text("utf-8"))
    assert isinstance(document, dict)
    return document


def _profile_path(setup: Setup, profile: str = "default") -> Path:
    return setup.config_dir / "profiles" / profile / "profile.json"


def _accesses_path(setup: Setup) -> Path:
    return setup.config_dir / "profiles/default/organizations/orgA/stacks/stk1/accesses.json"


# -- login ----------------------------------------------------------------------


def test_login_from_an_empty_config_dir_writes_profile_and_config(setup: Setup) -> None:
    result = setup.login()
    assert result.returncode == 0, result.stderr
    (auth,) = setup.idp.device_authorizations
    assert (auth.kind, auth.scope, auth.prompt) == ("login", LOGIN_SCOPE, "no-org")
    assert (auth.client_id, auth.auth_method) == ("fctl", "public_client_basic")
    # The URL with ?user_code= and the code, on stderr (as fctl); nothing on stdout.
    assert f"{setup.idp.verification_uri}?user_code={auth.user_code}" in result.stderr
    assert auth.user_code in result.stderr
    assert result.stdout == ""

    profile = _json(_profile_path(setup))
    assert profile["membershipURI"] == setup.idp.base_url
    root = profile["rootTokens"]
    assert root["idToken"]["claims"]["org"] == setup.organizations
    assert root["idToken"]["claims"]["aud"] == "fctl"
    assert setup.idp.is_refresh_token_valid(root["accessToken"]["refreshToken"])
    assert root["accessToken"]["claims"] == decode_jwt_unverified(root["accessToken"]["token"])
    for secret in (root["accessToken"]["token"], root["accessToken"]["refreshToken"]):
        assert secret not in result.stderr
    assert root["idToken"]["token"] not in result.stderr
    config = _json(setup.config_dir / "config.yml")
    assert config["currentProfile"] == "default"
    assert isinstance(config["uniqueID"], str) and config["uniqueID"]
    for path in (_profile_path(setup), setup.config_dir / "config.yml"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for folder in (setup.config_dir, setup.config_dir / "profiles" / "default"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    # No temp file left behind.
    assert not [name for name in setup.files() if name.endswith(".tmp")]


def test_login_keeps_defaults_unknown_keys_and_unique_id(setup: Setup) -> None:
    profile_dir = setup.config_dir / "profiles" / "work"
    profile_dir.mkdir(parents=True, mode=0o700)
    os.chmod(setup.config_dir, 0o700)
    os.chmod(setup.config_dir / "profiles", 0o700)
    (profile_dir / "profile.json").write_text(
        json.dumps(
            {
                "membershipURI": setup.idp.base_url,
                "rootTokens": None,
                "defaultOrganization": "orgA",
                "defaultStack": "stk1",
                "somethingNew": [1, 2],
            }
        )
    )
    (setup.config_dir / "config.yml").write_text(
        json.dumps({"currentProfile": "default", "uniqueID": "keep-me"})
    )
    for path in (profile_dir / "profile.json", setup.config_dir / "config.yml"):
        os.chmod(path, 0o600)
    decide = approver(
        setup,
        lambda auth: setup.idp.approve_device(auth.user_code, organizations=setup.organizations),
    )
    # The profile's own membershipURI is used when no --membership-uri is given.
    result = finish(setup.start("--profile", "work", "login", "--no-browser"), decide)
    assert result.returncode == 0, result.stderr
    profile = _json(profile_dir / "profile.json")
    assert (profile["defaultOrganization"], profile["defaultStack"]) == ("orgA", "stk1")
    assert profile["somethingNew"] == [1, 2]
    assert profile["rootTokens"]["idToken"]["token"]
    assert _json(setup.config_dir / "config.yml") == {
        "currentProfile": "work",
        "uniqueID": "keep-me",
    }


def test_login_then_token_with_login_flag_runs_one_stack_device_flow(setup: Setup) -> None:
    assert setup.login().returncode == 0
    id_token = _json(_profile_path(setup))["rootTokens"]["idToken"]["token"]

    decide = approver(setup, lambda auth: setup.idp.approve_device(auth.user_code), count=2)
    result = finish(setup.start("token", "--login"), decide)
    assert result.returncode == 0, result.stderr
    auths = setup.idp.device_authorizations
    assert len(auths) == 2
    stack_auth = auths[1]
    assert stack_auth.kind == "stack_access"
    assert stack_auth.scope == STACK_ACCESS_SCOPE
    assert (stack_auth.organization_id, stack_auth.resource) == ("orgA", RESOURCE)
    assert stack_auth.id_token_hint == id_token
    assert [p.resource for p in setup.idp.device_polls if p.answer == "success"][-1] == RESOURCE
    issued = [token.access_token for token in setup.stack.issued_tokens]
    assert result.stdout == issued[0] + "\n"

    accesses = _json(_accesses_path(setup))
    assert accesses["claims"]["organization_id"] == "orgA"
    assert setup.idp.is_refresh_token_valid(accesses["refreshToken"])
    assert stat.S_IMODE(_accesses_path(setup).stat().st_mode) == 0o600

    # The next run is served from the cache: no device flow, no request.
    before = setup.idp.total_requests + setup.stack.total_requests
    again = setup.run("token")
    assert again.returncode == 0, again.stderr
    assert again.stdout == result.stdout
    assert setup.idp.total_requests + setup.stack.total_requests == before
    assert len(setup.idp.device_authorizations) == 2


def test_login_with_organization_and_stack_gets_the_stack_access_ahead(setup: Setup) -> None:
    decide = approver(
        setup,
        lambda auth: setup.idp.approve_device(auth.user_code, organizations=setup.organizations),
    )
    stack_decide = approver(setup, lambda auth: setup.idp.approve_device(auth.user_code), count=2)
    process = setup.start(
        "login",
        "--membership-uri",
        setup.idp.base_url,
        "--no-browser",
        "--organization",
        "orgA",
        "--stack",
        "stk1",
    )
    result = finish(process, decide)
    stack_decide.join(WAIT)
    assert result.returncode == 0, result.stderr
    assert [auth.kind for auth in setup.idp.device_authorizations] == ["login", "stack_access"]
    assert _accesses_path(setup).exists()
    token = setup.run("token")  # not a terminal, and no device flow is needed
    assert token.returncode == 0, token.stderr
    assert len(setup.idp.device_authorizations) == 2


def test_login_token_on_a_terminal_starts_the_stack_device_flow(setup: Setup) -> None:
    assert setup.login().returncode == 0
    controller, terminal = pty.openpty()
    try:
        decide = approver(setup, lambda auth: setup.idp.approve_device(auth.user_code), count=2)
        process = setup.start("token", stdin=terminal, stderr=terminal)
        os.close(terminal)
        terminal = -1
        shown = _drain(controller, process)
        stdout = process.stdout.read() if process.stdout else ""
        assert process.wait(WAIT) == 0, shown
        decide.join(WAIT)
    finally:
        os.close(controller)
        if terminal != -1:
            os.close(terminal)
    assert [auth.kind for auth in setup.idp.device_authorizations] == ["login", "stack_access"]
    assert setup.idp.device_authorizations[1].user_code in shown
    assert stdout.strip() == setup.stack.issued_tokens[0].access_token


def _drain(controller: int, process: subprocess.Popen[str]) -> str:
    """What the process wrote to its terminal, until it closed it (bounded)."""
    chunks: list[bytes] = []
    for _ in range(10_000):
        ready, _, _ = select.select([controller], [], [], WAIT)
        if not ready:
            break
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # EIO: the last holder of the terminal closed it
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def test_login_token_in_a_script_exits_3_without_waiting(setup: Setup) -> None:
    assert setup.login().returncode == 0
    result = setup.run("token")  # stdin is /dev/null, stderr a pipe: no terminal
    line = error_line(result, 3)
    assert "stacktoken login --organization orgA --stack stk1" in line
    assert "stacktoken token --login" in line
    assert len(setup.idp.device_authorizations) == 1  # the login's only
    assert not _accesses_path(setup).exists()


def test_login_token_with_login_after_a_rejected_refresh_token(tmp_path: Path) -> None:
    with MembershipServer(device_interval=0.05) as idp, StackAuthServer(idp) as stack:
        profile = write_fctl_profile(tmp_path / "fctl", idp, stack, stack_access_exp_in=-60)
        idp.revoke_refresh_token(profile.stack_refresh_token)
        setup = Setup(idp, stack, profile.config_dir, tmp_path / "cache", tmp_path / "home")
        assert error_line(setup.run("token"), 3)
        decide = approver(setup, lambda auth: idp.approve_device(auth.user_code))
        result = finish(setup.start("token", "--login"), decide)
        assert result.returncode == 0, result.stderr
        (auth,) = idp.device_authorizations
        assert (auth.kind, auth.resource) == ("stack_access", RESOURCE)
        assert auth.id_token_hint == profile.id_token
        assert _json(profile.accesses_path)["refreshToken"] != profile.stack_refresh_token


# -- pacing ---------------------------------------------------------------------------


def test_login_authorization_pending_then_success_polls_at_the_interval(tmp_path: Path) -> None:
    with MembershipServer(device_interval=0.2, device_enforce_interval=True) as idp:
        setup = Setup(idp, None, tmp_path / "fctl", tmp_path / "cache", tmp_path / "home")  # type: ignore[arg-type]

        def decide(auth: DeviceAuthorization) -> None:
            assert idp.wait_for_device_polls(3, timeout=WAIT, user_code=auth.user_code)
            idp.approve_device(auth.user_code, organizations=[org_claim("orgA")])

        thread = approver(setup, decide)
        result = finish(
            setup.start("login", "--membership-uri", idp.base_url, "--no-browser"), thread
        )
        assert result.returncode == 0, result.stderr
        answers = [poll.answer for poll in idp.device_polls]
        assert answers[-1] == "success"
        assert set(answers[:-1]) == {"authorization_pending"}
        assert len(answers) >= 4
        # The IdP enforces the interval: no poll of ours came early.
        assert not any(poll.early for poll in idp.device_polls)


def test_login_slow_down_raises_the_interval_by_five_seconds(tmp_path: Path) -> None:
    with MembershipServer(device_interval=0.05, device_enforce_interval=True) as idp:
        setup = Setup(idp, None, tmp_path / "fctl", tmp_path / "cache", tmp_path / "home")  # type: ignore[arg-type]
        idp.slow_down_next(1)

        def decide(auth: DeviceAuthorization) -> None:
            idp.approve_device(auth.user_code, organizations=[org_claim("orgA")])

        result = finish(
            setup.start("login", "--membership-uri", idp.base_url, "--no-browser"),
            approver(setup, decide),
        )
        assert result.returncode == 0, result.stderr
        assert [poll.answer for poll in idp.device_polls] == ["slow_down", "success"]
        # The poll after slow_down waited the raised interval (the IdP compares arrivals).
        assert not idp.device_polls[1].early
        assert idp.device_polls[1].interval == pytest.approx(5.05)


# -- transient failures while polling (RFC 8628 §3.5: exponential backoff) -----------------

POLL_OUTAGES = {
    "503": (Fault.status(503), Fault.status(503)),
    "garbage": (Fault.garbage(), Fault.html_error(502)),  # an unreadable 200, a proxy's page
    "connection_dropped": (Fault.close_connection(reset=True), Fault.close_connection()),
}


def _backoff_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "polling again in" in line]


@pytest.mark.parametrize("faults", POLL_OUTAGES.values(), ids=POLL_OUTAGES.keys())
def test_login_transient_poll_failures_back_off_then_log_in(
    tmp_path: Path, faults: tuple[Fault, Fault]
) -> None:
    with MembershipServer(device_interval=0.2, device_enforce_interval=True) as idp:
        setup = Setup(idp, None, tmp_path / "fctl", tmp_path / "cache", tmp_path / "home")  # type: ignore[arg-type]
        idp.fail_device_polls(*faults)

        def decide(auth: DeviceAuthorization) -> None:
            # Approved once both polls failed: the login outlives the outage.
            assert idp.wait_for_device_polls(2, timeout=WAIT, user_code=auth.user_code)
            idp.approve_device(auth.user_code, organizations=[org_claim("orgA")])

        process = setup.start("--debug", "login", "--membership-uri", idp.base_url, "--no-browser")
        result = finish(process, approver(setup, decide))
        assert result.returncode == 0, result.stderr
        answers = [poll.answer for poll in idp.device_polls]
        assert answers[:2] == ["fault", "fault"]
        assert answers[-1] == "success"
        assert set(answers[2:-1]) <= {"authorization_pending"}
        # Each poll sent once (no quick resend by the HTTP layer), none early.
        assert f"retrying POST {idp.token_endpoint}" not in result.stderr
        assert not any(poll.early for poll in idp.device_polls)
        # core's backoff (logged at debug): 2 x, then 4 x the 0.2 s interval.
        backoffs = _backoff_lines(result.stderr)
        assert len(backoffs) == 2, result.stderr
        assert "1 in a row" in backoffs[0] and "polling again in 0.40 s" in backoffs[0]
        assert "2 in a row" in backoffs[1] and "polling again in 0.80 s" in backoffs[1]
        (auth,) = idp.device_authorizations
        assert auth.device_code not in result.stderr
        assert _json(_profile_path(setup))["rootTokens"]["idToken"]["token"]


def test_login_failed_poll_is_told_on_stderr_without_debug(tmp_path: Path) -> None:
    """A user without `--debug` sees each failed poll and the wait after it, not silence."""
    with MembershipServer(device_interval=0.2, device_enforce_interval=True) as idp:
        setup = Setup(idp, None, tmp_path / "fctl", tmp_path / "cache", tmp_path / "home")  # type: ignore[arg-type]
        idp.fail_device_polls(Fault.status(503))

        def decide(auth: DeviceAuthorization) -> None:
            assert idp.wait_for_device_polls(1, timeout=WAIT, user_code=auth.user_code)
            idp.approve_device(auth.user_code, organizations=[org_claim("orgA")])

        process = setup.start("login", "--membership-uri", idp.base_url, "--no-browser")
        result = finish(process, approver(setup, decide))
        assert result.returncode == 0, result.stderr
        (told,) = _backoff_lines(result.stderr)
        assert told.startswith("stacktoken: login still waiting: poll failed (")
        assert "1 in a row" in told and "polling again in 0.40 s" in told
        assert "debug:" not in result.stderr
        (auth,) = idp.device_authorizations
        assert auth.device_code not in result.stderr


def test_login_poll_timeout_backs_off_then_logs_in(tmp_path: Path) -> None:
    """A poll the IdP holds past the client's timeout (in process, 0.3 s): asked again."""
    from stacktoken.shell._http import HttpPolicy
    from stacktoken.shell._login import login_flow

    with MembershipServer(device_interval=0.1, device_enforce_interval=True) as idp:
        idp.fail_device_polls(Fault.delay(WAIT))
        lines: list[str] = []
        result = login_flow(
            config_dir=str(tmp_path / "fctl"),
            profile=None,
            membership_uri=idp.base_url,
            # Approved at once: the only failure is the held poll.
            prompt=lambda url, code: idp.approve_device(code, organizations=[org_claim("o")]),
            cache_dir=str(tmp_path / "cache"),
            organization=None,
            stack=None,
            http_policy=HttpPolicy(timeout=0.3),
            log=lines.append,
            environ={},
        )
        assert result.value_or(None) == "default", result
        assert [poll.answer for poll in idp.device_polls] == ["fault", "success"]
        assert not any(poll.early for poll in idp.device_polls)
        (backoff,) = _backoff_lines("\n".join(lines))
        assert "timed out" in backoff and "polling again in 0.20 s" in backoff
        assert (tmp_path / "fctl" / "profiles" / "default" / "profile.json").exists()


def test_login_poll_refused_while_the_idp_is_down_backs_off_then_logs_in(tmp_path: Path) -> None:
    """The IdP goes down right after the device answer (in process): the refused poll
    is backed off and logged; the test brings the IdP back and approves on that line."""
    from stacktoken.shell._login import login_flow

    with MembershipServer(device_interval=0.1, device_enforce_interval=True) as idp:
        lines: list[str] = []
        codes: list[str] = []

        def show(url: str, user_code: str) -> None:
            codes.append(user_code)
            idp.stop()  # connections refused from now on

        def log(line: str) -> None:
            lines.append(line)
            if "polling again in" in line and not idp.is_running:
                idp.start()  # the same port: the next poll reaches it
                idp.approve_device(codes[0], organizations=[org_claim("o")])

        result = login_flow(
            config_dir=str(tmp_path / "fctl"),
            profile=None,
            membership_uri=idp.base_url,
            prompt=show,
            cache_dir=str(tmp_path / "cache"),
            organization=None,
            stack=None,
            log=log,
            environ={},
        )
        assert result.value_or(None) == "default", result
        (backoff,) = _backoff_lines("\n".join(lines))
        assert "cannot connect" in backoff and "polling again in 0.20 s" in backoff
        # The refused poll never reached the IdP; the one after it did, and succeeded.
        assert [poll.answer for poll in idp.device_polls] == ["success"]
        assert (tmp_path / "fctl" / "profiles" / "default" / "profile.json").exists()


def test_login_idp_failing_until_the_code_expires_exits_3_naming_it(tmp_path: Path) -> None:
    with MembershipServer(device_interval=0.1, device_expires_in=1.0) as idp:
        setup = Setup(idp, None, tmp_path / "fctl", tmp_path / "cache", tmp_path / "home")  # type: ignore[arg-type]
        idp.fail_device_polls(*[Fault.status(503)] * 50)
        result = setup.run("login", "--membership-uri", idp.base_url, "--no-browser")
        line = error_line(result, 3)
        assert "expired" in line and "503" in line and "stacktoken login" in line
        polls = idp.device_polls
        # Backed off (0.2, 0.4 s, then the last chance at 0.9 s): far fewer than the
        # ten polls the 0.1 s interval allows in 1 s, and all of them failed.
        assert 1 <= len(polls) <= 5, [poll.since_previous for poll in polls]
        assert {poll.answer for poll in polls} == {"fault"}
        assert not _profile_path(setup).exists()
        assert not (setup.config_dir / "config.yml").exists()


def test_login_idp_down_at_discovery_exits_1_and_writes_nothing(setup: Setup) -> None:
    setup.idp.stop()  # connections to its port are refused from now on
    result = setup.run("login", "--membership-uri", setup.idp.base_url, "--no-browser")
    assert "cannot connect" in error_line(result, 1)
    assert setup.files() == []
    setup.idp.start()  # back on the same port: the next login works
    assert setup.login().returncode == 0


# -- failures: nothing written ----------------------------------------------------------


@pytest.mark.parametrize("answer", ["denied", "expired"])
def test_login_denied_or_expired_exits_3_and_writes_nothing(setup: Setup, answer: str) -> None:
    def decide(auth: DeviceAuthorization) -> None:
        if answer == "denied":
            setup.idp.deny_device(auth.user_code)
        else:
            setup.idp.expire_device_code(auth.user_code)

    result = finish(
        setup.start("login", "--membership-uri", setup.idp.base_url, "--no-browser"),
        approver(setup, decide),
    )
    line = error_line(result, 3)
    assert ("denied" if answer == "denied" else "expired") in line
    assert "stacktoken login" in line
    assert not _profile_path(setup).exists()
    assert not (setup.config_dir / "config.yml").exists()


def test_login_expires_by_itself_after_expires_in(tmp_path: Path) -> None:
    with MembershipServer(device_interval=0.05, device_expires_in=0.5) as idp:
        setup = Setup(idp, None, tmp_path / "fctl", tmp_path / "cache", tmp_path / "home")  # type: ignore[arg-type]
        result = setup.run("login", "--membership-uri", idp.base_url, "--no-browser")
        assert "expired" in error_line(result, 3)
        assert not _profile_path(setup).exists()


def test_login_ctrl_c_exits_130_and_writes_nothing(setup: Setup) -> None:
    process = setup.start("login", "--membership-uri", setup.idp.base_url, "--no-browser")
    auth = setup.idp.wait_for_device_authorization(timeout=WAIT)
    assert setup.idp.wait_for_device_polls(1, timeout=WAIT, user_code=auth.user_code)
    process.send_signal(signal.SIGINT)
    result = finish(process)
    assert "interrupted" in error_line(result, 130)
    # Approved after the interruption: nothing may be written any more.
    setup.idp.approve_device(auth.user_code, organizations=setup.organizations)
    assert not _profile_path(setup).exists()
    assert not (setup.config_dir / "config.yml").exists()


@pytest.mark.parametrize(
    ("defect", "reason"),
    [
        ("bad_signature", "bad signature"),
        ("wrong_issuer", "wrong issuer"),
        ("wrong_audience", "wrong audience"),
        ("expired", "expired"),
    ],
)
def test_login_id_token_defect_exits_3_and_writes_nothing(
    setup: Setup, defect: IdTokenDefect, reason: str
) -> None:
    setup.idp.id_token_defect = defect
    line = error_line(setup.login(), 3)
    assert reason in line
    assert "ID token" in line
    assert not _profile_path(setup).exists()
    assert not (setup.config_dir / "config.yml").exists()


# -- fctl's reader: the Go structs' field names and JSON types ----------------------------

# JSON type of each field as fctl's Go structs read it (encoding/json): a field
# of the wrong type fails fctl's whole decode. Sources, formancehq/fctl:
# pkg/profile.go `Profile`; pkg/authentication.go `Tokens`, `AccessToken`,
# `TokenWithClaims`, `IDTokenClaims`, `OrganizationAccess`, `StackAccess`,
# `AccessTokenClaims`; pkg/config.go `Config`.
FCTL_STRUCTS: list[tuple[str, str, str, type | tuple[type, ...]]] = [
    # (file, JSON path, Go type, Python type of the decoded value)
    ("profile", "membershipURI", "string", str),
    ("profile", "rootTokens", "*Tokens", dict),
    ("profile", "defaultOrganization", "string", str),
    ("profile", "defaultStack", "string", str),
    ("profile", "rootTokens.accessToken", "AccessToken", dict),
    ("profile", "rootTokens.accessToken.token", "string", str),
    ("profile", "rootTokens.accessToken.claims", "AccessTokenClaims", dict),
    ("profile", "rootTokens.accessToken.refreshToken", "string", str),
    ("profile", "rootTokens.idToken", "IDToken", dict),
    ("profile", "rootTokens.idToken.token", "string", str),
    ("profile", "rootTokens.idToken.claims", "IDTokenClaims", dict),
    ("profile", "rootTokens.idToken.claims.org", "[]OrganizationAccess", list),
    ("profile", "rootTokens.idToken.claims.org.0.id", "string", str),
    ("profile", "rootTokens.idToken.claims.org.0.displayName", "string", str),
    ("profile", "rootTokens.idToken.claims.org.0.stacks", "[]StackAccess", list),
    ("profile", "rootTokens.idToken.claims.org.0.stacks.0.id", "string", str),
    ("profile", "rootTokens.idToken.claims.org.0.stacks.0.uri", "string", str),
    ("profile", "rootTokens.idToken.claims.org.0.stacks.0.scopes", "[]string", list),
    ("profile", "rootTokens.idToken.claims.org.0.applications", "[]ApplicationAccess", list),
    ("profile", "rootTokens.idToken.claims.exp", "oidc.Time", (int, float)),
    ("accesses", "token", "string", str),
    ("accesses", "claims", "AccessTokenClaims", dict),
    ("accesses", "claims.organization_id", "string", str),
    ("accesses", "claims.scope", "oidc.SpaceDelimitedArray", str),
    ("accesses", "claims.exp", "oidc.Time", (int, float)),
    ("accesses", "refreshToken", "string", str),
    ("config", "currentProfile", "string", str),
    ("config", "uniqueID", "string", str),
]


def _at(document: Any, path: str) -> Any:
    for part in path.split("."):
        document = document[int(part)] if isinstance(document, list) else document[part]
    return document


def test_login_files_decode_as_fctl_structs(setup: Setup) -> None:
    assert setup.login().returncode == 0
    decide = approver(setup, lambda auth: setup.idp.approve_device(auth.user_code), count=2)
    assert finish(setup.start("token", "--login"), decide).returncode == 0
    documents = {
        "profile": _json(_profile_path(setup)),
        "accesses": _json(_accesses_path(setup)),
        "config": _json(setup.config_dir / "config.yml"),
    }
    for file, path, go_type, python_type in FCTL_STRUCTS:
        value = _at(documents[file], path)
        assert isinstance(value, python_type) and not isinstance(value, bool), (
            f"{file}: {path} should decode as Go {go_type}"
        )
    # Only the fields of fctl's structs (Go ignores others, but we add none).
    assert set(documents["profile"]) == {
        "membershipURI",
        "rootTokens",
        "defaultOrganization",
        "defaultStack",
    }
    assert set(documents["profile"]["rootTokens"]) == {"accessToken", "idToken"}
    assert set(documents["accesses"]) == {"token", "claims", "refreshToken"}
    assert set(documents["config"]) == {"currentProfile", "uniqueID"}


# -- the library ------------------------------------------------------------------------


def test_login_library_shows_the_code_through_on_prompt(setup: Setup) -> None:
    import stacktoken

    shown: list[tuple[str, str]] = []

    def on_prompt(url: str, user_code: str) -> None:
        shown.append((url, user_code))
        setup.idp.approve_device(user_code, organizations=setup.organizations)

    stacktoken.login(
        profile="lib",
        membership_uri=setup.idp.base_url,
        on_prompt=on_prompt,
        config_dir=setup.config_dir,
        cache_dir=setup.cache_dir,
    )
    (auth,) = setup.idp.device_authorizations
    assert shown == [(f"{setup.idp.verification_uri}?user_code={auth.user_code}", auth.user_code)]
    assert _json(_profile_path(setup, "lib"))["rootTokens"]["idToken"]["token"]

    def deny(url: str, user_code: str) -> None:
        setup.idp.deny_device(user_code)

    with pytest.raises(stacktoken.AuthenticationRequiredError, match="denied"):
        stacktoken.login(
            profile="other",
            membership_uri=setup.idp.base_url,
            on_prompt=deny,
            config_dir=setup.config_dir,
            cache_dir=setup.cache_dir,
        )
    assert not _profile_path(setup, "other").exists()


def test_login_flows_are_declined_by_the_warm_path() -> None:
    """`login` and `token --login` always go to the full CLI (the warm path cannot log in)."""
    from stacktoken.core._commands import token_options

    assert token_options(["token"]) == {}
    assert token_options(["login"]) is None
    assert token_options(["token", "--login"]) is None
    assert token_options(["--profile", "p", "login", "--no-browser"]) is None


def test_login_commands_are_declined_by_the_warm_path() -> None:
    """`login` and `token --login` always go to the full CLI (the warm path cannot log in)."""
    from stacktoken.core._commands import token_options

    assert token_options(["token"]) == {}
    assert token_options(["login"]) is None
    assert token_options(["token", "--login"]) is None
    assert token_options(["--profile", "p", "login", "--no-browser"]) is None


def test_login_organization_without_stack_is_a_usage_error(setup: Setup) -> None:
    result = setup.run("login", "--membership-uri", setup.idp.base_url, "--organization", "orgA")
    assert "go together" in error_line(result, 2)
    assert setup.idp.device_authorizations == []
