"""`pip install 'stacktoken[testing]'` in an empty virtualenv is all a user's own tests need.

The install is regular (not editable) and nothing of the test extra is there:
a user's test file in a folder with no conftest uses only the documented
fixtures (a sandbox, a client, an SDK call -- which needs the ``sdk`` extra
too --, an injected 401, an expiry, the simulated clock) and passes. The
README's first command, the demo, runs from the same install. pip's cache is
reused (HOME is kept for the install), so only a first run downloads.
"""

from __future__ import annotations

import os
import subprocess
import time
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INSTALL_TIMEOUT = 900  # a fresh machine downloads the SDK and its dependencies
RUN_TIMEOUT = 300
# The first test pays for the install (pytest-timeout counts fixtures in).
pytestmark = pytest.mark.timeout(INSTALL_TIMEOUT + RUN_TIMEOUT)

USER_TESTS = '''
"""A user's own tests: no conftest, only the fixtures of stacktoken[testing]."""

from stacktoken import formance_sdk, stack_client
from stacktoken.testing import Sandbox, SimulatedClock


def test_my_service_reads_the_ledger(formance_sandbox, formance_token_source):
    with formance_sdk(formance_token_source) as sdk:
        info = sdk.ledger.v2.get_info()
    assert info.v2_config_info.server == "ledger"
    assert formance_sandbox.count("stack.token") == 1


def test_a_rejected_token_is_replaced_once(formance_sandbox, formance_client):
    with formance_client.token_source() as source, stack_client(source) as http:
        assert http.get("/api/ledger/_/info").status_code == 200
        formance_sandbox.reject_next(1)  # the ledger answers 401 once
        assert http.get("/api/ledger/_/info").status_code == 200
    assert formance_sandbox.count("stack.token") == 2


def test_expired_tokens_are_renewed(formance_sandbox, formance_fctl_profile):
    from stacktoken import TokenSource

    with TokenSource.from_fctl(
        config_dir=formance_fctl_profile.config_dir,
        cache_dir=formance_sandbox.workdir / "cache",
    ) as source, stack_client(source) as http:
        assert http.get("/api/ledger/_/info").status_code == 200
        formance_sandbox.expire_all()
        assert http.get("/api/ledger/_/info").status_code == 200
    assert formance_sandbox.count("membership.token") == 1


def test_an_hour_later(tmp_path):
    clock = SimulatedClock()
    with Sandbox(clock=clock, workdir=tmp_path) as sandbox:
        client = sandbox.client()
        with client.token_source(clock=clock.now) as source:
            first = source.token()
            clock.advance(3600)
            assert source.token() != first
        assert sandbox.count("stack.token") == 2
'''


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTHON", "FCTL_", "STACKTOKEN_", "PYTEST_"))
    }
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def user_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("sandbox-install")
    venv.create(home / "venv", with_pip=True)
    python = home / "venv" / "bin" / "python"
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            f"{ROOT}[testing,sdk]",
        ],
        check=True,
        timeout=INSTALL_TIMEOUT,
        env=_env(),
    )
    return python


def test_sandbox_install_brings_no_test_extra(user_python: Path) -> None:
    done = subprocess.run(
        [str(user_python), "-m", "pip", "list", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env=_env(),
        check=True,
    )
    installed = {line.split()[0].lower() for line in done.stdout.splitlines()[2:] if line}
    assert {"pytest", "authlib", "formance-sdk-python"} <= installed
    assert not {"hypothesis", "mypy", "ruff", "redis", "trio"} & installed


def test_sandbox_install_runs_a_users_tests_without_conftest(
    user_python: Path, tmp_path: Path
) -> None:
    project = tmp_path / "my-service"
    project.mkdir()
    (project / "test_my_service.py").write_text(USER_TESTS)
    done = subprocess.run(
        [str(user_python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_my_service.py"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env=_env(HOME=str(tmp_path)),
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "4 passed" in done.stdout
    assert not list(project.glob("conftest.py"))


def test_sandbox_install_runs_the_readme_demo(user_python: Path, tmp_path: Path) -> None:
    started = time.monotonic()
    done = subprocess.run(
        [str(user_python), "-m", "stacktoken.testing", "demo"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env=_env(HOME=str(tmp_path)),
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SDK call ledger.v2.get_info()" in done.stdout
    assert "skipped" not in done.stdout
    print(f"demo from a regular install: {time.monotonic() - started:.1f} s")
