"""Machine credentials end to end (docs/design.md §9.

`stacktoken token --stack-uri URI --client-id ID` (the secret in
`$STACKTOKEN_CLIENT_SECRET` or `--client-secret-file`) and
`TokenSource.from_client_credentials`, against the real loopback stack auth
server (authlib's client-credentials grant, tests/oauth_servers.py), through
the real shell: cold, warm (on the warm path), TTL, scopes, both client
authentication methods, single flight across processes and threads, rejected
clients, secrecy under `--debug`, `cache list` / `cache clear`, SIGKILLs
inside a cold acquisition, and the client-credentials rows of the fault
matrix (`reliability_matrix.CLIENT_FAULTS`).

Every overlap is made by construction: the token endpoint holds its answer
(`Fault.hold`) until every racer is seen waiting for it; no test sleeps.
"""

from __future__ import annotations

import base64
import json
import os
import random
import secrets
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType

import pytest
from client_crash_run import FILE_STEPS, STEPS
from oauth_servers import (
    CLIENT_CREDENTIALS_GRANT_TYPE,
    DEFAULT_STACK_AUTH_METHODS,
    ClientAuthMethod,
    ConfidentialClient,
    Fault,
    StackAuthServer,
)
from reliability_helpers import (
    BLACK_HOLE_SECONDS,
    ERROR_PREFIX,
    FAST_POLICY,
    LOCK_FILE,
    let_failures_expire,
    prime_discovery,
    temp_files,
)
from reliability_matrix import (
    CLIENT_CRASH_ROUNDS,
    CLIENT_FAULTS,
    HEAVY_ENV,
    ClientFault,
    ClientStep,
    Expect,
    Outcome,
    client_case_id,
    client_cases,
)
from returns.result import Success
from stacktoken import StackTokenError, TokenSource, stack_client
from stacktoken.core._cache_codec import decode_cache_entry
from stacktoken.core._codecs import decode_discovery_cache
from stacktoken.core._paths import CACHE_FILE, client_key, client_paths, discovery_cache_name
from stacktoken.core._requests import stack_discovery
from stacktoken.core._types import CachedToken, ClientCredentials
from stacktoken.shell._failures import FAILURE_FILE
from stacktoken.shell._stores import client_store
from test_crash_writes import Zygote
from test_warm_path_imports import _DUMP_MODULES, FULL_CLI, NETWORK_AND_COLD_PATH, _imported

from conftest import CLI_TIMEOUT_SECONDS, World

SECRET_ENV = "STACKTOKEN_CLIENT_SECRET"
PROCESSES = 8
THREADS = 32
SOURCES = 4
WAIT = 30.0  # bound of every wait for an event
URL_PASSWORD = "hunter2-url-password"
CLIENT_CRASH_RUN = Path(__file__).with_name("client_crash_run.py")


# -- the machine credential under test -------------------------------------------


@dataclass
class Machine:
    """A stack OAuth client on the world's stack server, and how to run with it."""

    world: World
    client: ConfidentialClient

    @property
    def stack(self) -> StackAuthServer:
        return self.world.stack

    @property
    def cache_dir(self) -> Path:
        return self.world.cache_dir

    @property
    def client_id(self) -> str:
        return self.client.client_id

    @property
    def secret(self) -> str:
        return self.client.client_secret

    def token_args(
        self,
        *extra: str,
        scopes: Sequence[str] = (),
        stack_uri: str | None = None,
        client_id: str | None = None,
    ) -> list[str]:
        args = ["token", "--stack-uri", stack_uri or self.stack.stack_uri]
        args += ["--client-id", client_id or self.client_id]
        for scope in scopes:
            args += ["--scope", scope]
        return [*args, *extra]

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return {SECRET_ENV: self.secret, **(extra or {})}

    def run(
        self,
        *extra: str,
        scopes: Sequence[str] = (),
        debug: bool = False,
        env: Mapping[str, str] | None = None,
        stack_uri: str | None = None,
        client_id: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """`stacktoken [--debug] --cache-dir D token --stack-uri ... --client-id ... EXTRA`."""
        prefix = ("--debug",) if debug else ()
        return self.world.run(
            *self.token_args(*extra, scopes=scopes, stack_uri=stack_uri, client_id=client_id),
            env=self.env(env),
            global_args=(*prefix, "--cache-dir", str(self.cache_dir)),
        )

    def command(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Any other command (`cache list`, ...) on the same cache dir."""
        return self.world.run(*args, env=self.env())

    def source(self, *, scopes: Sequence[str] = (), **options: object) -> TokenSource:
        return TokenSource.from_client_credentials(
            stack_uri=self.stack.stack_uri,
            client_id=self.client_id,
            client_secret=self.secret,
            scopes=tuple(scopes),
            cache_dir=self.cache_dir,
            environ={},
            **options,  # type: ignore[arg-type]
        )

    def requests(self) -> int:
        """Client-credentials requests the stack received."""
        return self.stack.client_credentials_count

    def folder(self, scopes: Sequence[str] = (), client_id: str | None = None) -> Path:
        key = client_key(self.stack.stack_uri, client_id or self.client_id, scopes)
        return self.cache_dir.joinpath(*client_paths(key).folder)

    def entry_path(self, scopes: Sequence[str] = ()) -> Path:
        return self.folder(scopes) / CACHE_FILE

    def entry(self, scopes: Sequence[str] = ()) -> CachedToken:
        decoded = decode_cache_entry(self.entry_path(scopes).read_bytes())
        assert isinstance(decoded, CachedToken), decoded
        return decoded

    def plant(
        self, *, saved_ago: timedelta, expires_in: timedelta, scopes: Sequence[str] = ()
    ) -> str:
        """Write an entry through the real store, saved `saved_ago` and expiring in
        `expires_in` (negative: in the past); returns its token (never issued)."""
        credentials = ClientCredentials.of(
            stack_uri=self.stack.stack_uri,
            client_id=self.client_id,
            client_secret="unused",
            scopes=tuple(scopes),
        )
        now = datetime.now(UTC)
        token = f"planted-{secrets.token_hex(16)}"
        entry = CachedToken(
            access_token=token,
            token_type="Bearer",
            expiry=now + expires_in,
            saved_at=now - saved_ago,
        )
        store = client_store(str(self.cache_dir), credentials, log=lambda _: None)
        store.write(entry).unwrap()
        return token


@pytest.fixture
def machine(world: World) -> Machine:
    """A client allowed both secret methods, on a stack advertising both."""
    client = world.stack.add_client(f"svc-{secrets.token_hex(4)}", secrets.token_urlsafe(24))
    return Machine(world, client)


def assert_token(result: subprocess.CompletedProcess[str], machine: Machine) -> str:
    """Exit 0, the token alone on stdout, nothing on stderr, a token the stack
    issued to this client."""
    assert result.returncode == 0, (result.returncode, result.stderr)
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0], "stdout is not one token line"
    token = lines[0]
    issued = machine.stack.issued_token(token)
    assert issued is not None, "the stack never issued the token printed"
    assert (issued.grant_type, issued.client_id) == (
        CLIENT_CREDENTIALS_GRANT_TYPE,
        machine.client_id,
    )
    return token


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    """Exit `code`, nothing on stdout, exactly one `stacktoken: error: ` line."""
    assert result.returncode == code, (result.returncode, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"{len(lines)} lines on stderr"
    assert lines[0].startswith(ERROR_PREFIX), lines[0]
    return lines[0]


def files_under(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file())


def assert_secret_in_no_file(machine: Machine, *secrets_: str) -> None:
    for path in files_under(machine.cache_dir):
        data = path.read_bytes()
        for secret in secrets_:
            assert secret.encode() not in data, f"a secret is in {path.name}"


def basic_header_value(client_id: str, secret: str) -> str:
    return base64.b64encode(f"{client_id}:{secret}".encode()).decode()


# -- cold and warm ------------------------------------------------------------------


def test_client_credentials_cold_run_makes_one_token_request(machine: Machine) -> None:
    result = machine.run()
    token = assert_token(result, machine)
    assert result.stderr == ""
    assert machine.requests() == 1
    assert machine.stack.count(machine.stack.DISCOVERY) == 1
    (request,) = machine.stack.client_credentials_requests
    assert (request.client_id, request.status, request.scope) == (machine.client_id, 200, None)

    folder = machine.folder()
    assert {path.name for path in folder.iterdir()} == {CACHE_FILE, LOCK_FILE}
    assert folder.stat().st_mode & 0o777 == 0o700
    assert machine.entry_path().stat().st_mode & 0o777 == 0o600
    entry = machine.entry()
    assert entry.access_token == token
    assert (entry.client_id, entry.stack_uri) == (machine.client_id, machine.stack.stack_uri)
    assert entry.expiry is not None and entry.saved_at is not None
    assert_secret_in_no_file(machine, machine.secret)


def run_with_module_dump(
    machine: Machine,
    tmp_path: Path,
    args: Sequence[str],
    env: Mapping[str, str] | None = None,
) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """`python -m stacktoken --cache-dir D ARGS`, and the modules it had at exit."""
    dump = tmp_path / "modules.txt"
    command = [
        sys.executable,
        "-c",
        _DUMP_MODULES,
        str(dump),
        "--cache-dir",
        str(machine.cache_dir),
    ]
    run = subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        env=machine.world.env(machine.env(env)),
        timeout=CLI_TIMEOUT_SECONDS,
        check=False,
    )
    assert "Traceback" not in run.stderr, run.stderr
    return run, set(dump.read_text().split())


WARM_VARIANTS = {
    "text": ((), ()),
    "json": (("--output", "json"), ("--output", "json")),
    "env": (("--output", "env"), ("--output", "env")),
    "scopes-in-any-order": (
        ("--scope", "ledger:read", "--scope", "ledger:write"),
        ("--scope=ledger:write", "--scope", "ledger:read", "--scope", "ledger:read"),
    ),
    "ttl-flag": (("--stack-token-cache-ttl", "1h"), ("--stack-token-cache-ttl=1h",)),
}


@pytest.mark.parametrize(("cold_extra", "warm_extra"), WARM_VARIANTS.values(), ids=WARM_VARIANTS)
def test_client_credentials_warm_run_takes_the_warm_path(
    machine: Machine, tmp_path: Path, cold_extra: tuple[str, ...], warm_extra: tuple[str, ...]
) -> None:
    """A second process prints the same output with no request and no HTTP,
    JWT, cattrs or argparse module loaded."""
    cold = machine.run(*cold_extra)
    assert cold.returncode == 0, cold.stderr
    requests = machine.stack.total_requests
    warm, modules = run_with_module_dump(machine, tmp_path, machine.token_args(*warm_extra))
    assert (warm.returncode, warm.stderr) == (0, "")
    assert warm.stdout == cold.stdout
    assert machine.stack.total_requests == requests
    assert _imported(modules, NETWORK_AND_COLD_PATH) == []
    assert _imported(modules, FULL_CLI) == []


def test_client_credentials_warm_run_with_secret_file_and_trailing_slash(
    machine: Machine, tmp_path: Path
) -> None:
    """The same entry whether the secret comes from the environment or a file, and
    whether the stack URI ends with `/`; the warm run still loads no HTTP code."""
    cold = assert_token(machine.run(), machine)
    secret_file = tmp_path / "secret"
    secret_file.write_text(machine.secret + "\n")
    secret_file.chmod(0o600)
    args = machine.token_args(
        "--client-secret-file", str(secret_file), stack_uri=machine.stack.stack_uri + "/"
    )
    warm, modules = run_with_module_dump(machine, tmp_path, args, env={SECRET_ENV: ""})
    assert (warm.returncode, warm.stdout, warm.stderr) == (0, cold + "\n", "")
    assert machine.requests() == 1
    assert _imported(modules, NETWORK_AND_COLD_PATH) == []


def test_client_credentials_cold_run_does_import_the_network_stack(
    machine: Machine, tmp_path: Path
) -> None:
    """The module check above can fail: a cold run shows httpx."""
    cold, modules = run_with_module_dump(machine, tmp_path, machine.token_args())
    assert cold.returncode == 0, cold.stderr
    assert "httpx" in modules


def test_client_credentials_secret_on_stdin_cold_and_warm(machine: Machine) -> None:
    """`--client-secret-file -`: the warm path declines (it must leave stdin to the
    full CLI), and the full CLI still serves the stored entry without a request."""
    command = [sys.executable, "-m", "stacktoken", "--cache-dir", str(machine.cache_dir)]
    command += machine.token_args("--client-secret-file", "-")
    env = machine.world.env({SECRET_ENV: ""})
    runs = [
        subprocess.run(
            command,
            input=machine.secret + "\n",
            capture_output=True,
            text=True,
            env=env,
            timeout=CLI_TIMEOUT_SECONDS,
            check=False,
        )
        for _ in range(2)
    ]
    cold, warm = (assert_token(run, machine) for run in runs)
    assert cold == warm
    assert machine.requests() == 1
    empty = subprocess.run(
        command, input="", capture_output=True, text=True, env=env, timeout=CLI_TIMEOUT_SECONDS
    )
    assert "no client secret on stdin" in assert_one_line_error(empty, 2)


def test_client_credentials_stack_client_renews_a_rejected_token(machine: Machine) -> None:
    """`stack_client` on a machine credential: the stack's API accepts its token;
    a token the API rejects (401) is dropped from memory and disk and renewed once."""
    with machine.source() as source, stack_client(source, timeout=5.0) as client:
        assert client.get("/api/ledger/_info").status_code == 200
        first = machine.entry().access_token
        result = source.token_result()
        assert isinstance(result, Success) and result.unwrap().access_token == first
        machine.stack.revoke_issued_tokens()  # the API now refuses every token issued
        assert client.get("/api/ledger/_info").status_code == 200
        renewed = machine.entry().access_token
    assert renewed != first
    assert machine.requests() == 2


def test_client_credentials_library_and_cli_share_one_entry(machine: Machine) -> None:
    """A new source (a new process's memory) and the CLI find the first source's token."""
    with machine.source() as first:
        token = first.token()
        assert first.token() == token
        assert first.stack_uri == machine.stack.stack_uri
    assert machine.requests() == 1
    with machine.source() as second:
        assert second.token() == token
    assert machine.run().stdout == token + "\n"
    assert machine.requests() == 1


# -- TTL ----------------------------------------------------------------------------


class _OpenAudit:
    """The store's files and folders opened while recording (an audit hook sees
    every `open` and `os.open`, relative to a folder descriptor or not)."""

    NAMES = frozenset({"clients", CACHE_FILE, LOCK_FILE})

    def __init__(self) -> None:
        self.on = False
        self.opened: list[str] = []

    def __call__(self, event: str, args: tuple[object, ...]) -> None:
        if not self.on or event != "open" or not args:
            return
        path = args[0]
        if isinstance(path, (str, bytes, os.PathLike)):
            name = os.path.basename(os.fsdecode(path))
            if name in self.NAMES:
                self.opened.append(name)

    @contextmanager
    def recording(self) -> Iterator[list[str]]:
        self.opened = []
        self.on = True
        try:
            yield self.opened
        finally:
            self.on = False


_AUDIT = _OpenAudit()
sys.addaudithook(_AUDIT)  # cannot be removed: one for the session, idle unless recording


@pytest.mark.parametrize("ttl", ["0", "0s", timedelta(0)])
def test_client_credentials_ttl_zero_library_never_touches_the_store(
    machine: Machine, ttl: str | timedelta
) -> None:
    """TTL 0: a usable stored entry is not even opened; each new source asks."""
    planted = machine.plant(saved_ago=timedelta(0), expires_in=timedelta(hours=1))
    before = machine.entry_path().read_bytes()
    with _AUDIT.recording() as opened:
        tokens = []
        for _ in range(2):
            with machine.source(cache_ttl=ttl) as source:
                tokens.append(source.token())
                assert source.token() == tokens[-1]  # memory still serves
    assert opened == []
    assert planted not in tokens and len(set(tokens)) == 2
    assert machine.requests() == 2
    assert machine.entry_path().read_bytes() == before
    assert {path.name for path in machine.folder().iterdir()} == {CACHE_FILE}  # no lock taken


def test_client_credentials_default_ttl_library_does_open_the_store(machine: Machine) -> None:
    """The audit above can fail: with the default TTL the entry is read and served."""
    planted = machine.plant(saved_ago=timedelta(0), expires_in=timedelta(hours=1))
    with _AUDIT.recording() as opened, machine.source() as source:
        assert source.token() == planted
    assert CACHE_FILE in opened
    assert machine.requests() == 0


@pytest.mark.parametrize("how", ["flag", "env"])
def test_client_credentials_ttl_zero_cli_writes_and_locks_nothing(
    machine: Machine, how: str
) -> None:
    planted = machine.plant(saved_ago=timedelta(0), expires_in=timedelta(hours=1))
    before = machine.entry_path().read_bytes()
    extra = ("--stack-token-cache-ttl", "0") if how == "flag" else ()
    env = {"STACK_TOKEN_CACHE_TTL": "0"} if how == "env" else None
    first = machine.run(*extra, env=env, debug=True)
    second = machine.run(*extra, env=env, scopes=["ledger:read"])
    tokens = {assert_token(second, machine), first.stdout.strip()}
    assert first.returncode == 0 and planted not in tokens and len(tokens) == 2
    assert "cache disabled (TTL 0)" in first.stderr
    assert "disk cache" not in first.stderr
    assert machine.requests() == 2
    assert machine.entry_path().read_bytes() == before
    assert {path.name for path in machine.folder().iterdir()} == {CACHE_FILE}
    assert not machine.folder(["ledger:read"]).exists()


# (saved how long ago, expires in, served from the cache?)
ENTRY_AGES = {
    "usable": (timedelta(minutes=1), timedelta(hours=1), True),
    "ttl-ran-out": (timedelta(minutes=6), timedelta(hours=1), False),
    "expired": (timedelta(minutes=1), timedelta(seconds=-1), False),
    "inside-the-grace": (timedelta(minutes=1), timedelta(seconds=20), False),
    "saved-in-the-future": (timedelta(hours=-2), timedelta(hours=3), False),
}


@pytest.mark.parametrize(("saved_ago", "expires_in", "served"), ENTRY_AGES.values(), ids=ENTRY_AGES)
def test_client_credentials_stored_entry_served_only_while_usable(
    machine: Machine, saved_ago: timedelta, expires_in: timedelta, served: bool
) -> None:
    """An entry past the default 5 m TTL, expired, inside the 30 s grace or from
    the future costs one request and is replaced; a usable one costs none."""
    planted = machine.plant(saved_ago=saved_ago, expires_in=expires_in)
    result = machine.run()
    if served:
        assert (result.returncode, result.stdout) == (0, planted + "\n")
        assert machine.requests() == 0
        return
    token = assert_token(result, machine)
    assert machine.requests() == 1
    entry = machine.entry()
    assert entry.access_token == token
    assert entry.saved_at is not None
    assert abs(entry.saved_at - datetime.now(UTC)) < timedelta(minutes=1)
    assert machine.run().stdout == token + "\n"
    assert machine.requests() == 1


def test_client_credentials_ttl_flag_decides_what_ran_out(machine: Machine) -> None:
    """The same 6-minute-old entry: served under a 10 m TTL, replaced under 5 m."""
    planted = machine.plant(saved_ago=timedelta(minutes=6), expires_in=timedelta(hours=1))
    assert machine.run("--stack-token-cache-ttl", "10m").stdout == planted + "\n"
    assert machine.requests() == 0
    assert machine.run("--stack-token-cache-ttl", "5m").stdout != planted + "\n"
    assert machine.requests() == 1


def test_client_credentials_short_lived_token_is_printed_not_cached(world: World) -> None:
    """A token living less than the grace is handed out once and never stored."""
    client = world.stack.add_client("short-lived", secrets.token_urlsafe(24), expires_in=20)
    machine = Machine(world, client)
    first, second = assert_token(machine.run(), machine), assert_token(machine.run(), machine)
    assert first != second
    assert machine.requests() == 2
    assert not machine.entry_path().exists()


# -- scopes ---------------------------------------------------------------------------


def test_client_credentials_scopes_are_distinct_entries(machine: Machine) -> None:
    """Each set of scopes (sorted, de-duplicated) is its own entry and request."""
    sets = {
        "none": (),
        "read": ("ledger:read",),
        "both": ("ledger:write", "ledger:read"),
    }
    tokens = {
        name: assert_token(machine.run(scopes=scopes), machine) for name, scopes in sets.items()
    }
    assert len(set(tokens.values())) == 3
    assert machine.requests() == 3
    sent = [request.scope for request in machine.stack.client_credentials_requests]
    assert sent == [None, "ledger:read", "ledger:read ledger:write"]
    for name, scopes in sets.items():
        issued = machine.stack.issued_token(tokens[name])
        assert issued is not None and issued.scope == " ".join(sorted(scopes))
        assert machine.entry(scopes).access_token == tokens[name]
    assert len(list((machine.cache_dir / "clients").iterdir())) == 3

    # The same sets again, spelled otherwise: all warm.
    again = {
        "none": (),
        "read": ("ledger:read", "ledger:read"),
        "both": ("ledger:read", "ledger:write", "ledger:read"),
    }
    for name, scopes in again.items():
        assert machine.run(scopes=scopes).stdout == tokens[name] + "\n"
    with machine.source(scopes=["ledger:write", "ledger:read"]) as source:
        assert source.token() == tokens["both"]
    assert machine.requests() == 3


def test_client_credentials_clients_and_stacks_are_distinct_entries(
    machine: Machine, world: World
) -> None:
    other = Machine(world, world.stack.add_client("svc-other", secrets.token_urlsafe(24)))
    assert assert_token(machine.run(), machine) != assert_token(other.run(), other)
    assert machine.requests() == 2
    with StackAuthServer(world.membership) as second_stack:
        client = second_stack.add_client(machine.client_id, machine.secret)
        elsewhere = Machine(
            World.at(world.cache_dir.parent, world.membership, second_stack, world.profile), client
        )
        token = assert_token(elsewhere.run(), elsewhere)
        assert second_stack.client_credentials_count == 1
        assert elsewhere.entry().stack_uri == second_stack.stack_uri
    assert machine.run().stdout != token + "\n"
    assert machine.requests() == 2


# -- client authentication -------------------------------------------------------------

# discovery's token_endpoint_auth_methods_supported -> the method used
AUTH_METHODS = {
    "default-lists-basic": (DEFAULT_STACK_AUTH_METHODS, "client_secret_basic"),
    "absent-means-basic": (None, "client_secret_basic"),
    "post-only": (("client_secret_post",), "client_secret_post"),
    "post-then-basic": (("client_secret_post", "client_secret_basic"), "client_secret_basic"),
    "post-among-others": (("private_key_jwt", "client_secret_post"), "client_secret_post"),
}


@pytest.mark.parametrize(("advertised", "expected"), AUTH_METHODS.values(), ids=AUTH_METHODS)
def test_client_credentials_auth_method_from_discovery(
    world: World, advertised: tuple[str, ...] | None, expected: str
) -> None:
    with StackAuthServer(world.membership, token_endpoint_auth_methods=advertised) as stack:
        client = stack.add_client("svc", secrets.token_urlsafe(24))
        with TokenSource.from_client_credentials(
            stack_uri=stack.stack_uri,
            client_id="svc",
            client_secret=client.client_secret,
            cache_dir=world.cache_dir,
            environ={},
        ) as source:
            token = source.token()
        assert stack.is_valid_access_token(token)
        (request,) = stack.client_credentials_requests
        assert (request.auth_method, request.authenticated_method) == (expected, expected)


# (what discovery advertises, the one method the client allows, exit code)
SINGLE_METHOD = {
    "basic-client-basic-stack": (("client_secret_basic",), "client_secret_basic", 0),
    "post-client-post-stack": (("client_secret_post",), "client_secret_post", 0),
    "basic-client-default-stack": (DEFAULT_STACK_AUTH_METHODS, "client_secret_basic", 0),
    # Basic is chosen when listed (docs/design.md §9); a post-only client there is refused,
    # once: the secret is not tried a second way.
    "post-client-default-stack": (DEFAULT_STACK_AUTH_METHODS, "client_secret_post", 3),
}


@pytest.mark.parametrize(
    ("advertised", "allowed", "code"), SINGLE_METHOD.values(), ids=SINGLE_METHOD
)
def test_client_credentials_client_allowing_one_method(
    world: World, advertised: tuple[str, ...], allowed: ClientAuthMethod, code: int
) -> None:
    with StackAuthServer(world.membership, token_endpoint_auth_methods=advertised) as stack:
        client = stack.add_client("one-way", secrets.token_urlsafe(24), auth_methods=(allowed,))
        machine = Machine(
            World.at(world.cache_dir.parent, world.membership, stack, world.profile), client
        )
        result = machine.run()
        (request,) = stack.client_credentials_requests
        if code == 0:
            assert_token(result, machine)
            assert request.authenticated_method == allowed
        else:
            line = assert_one_line_error(result, code)
            assert "invalid_client" in line and machine.secret not in line
            assert request.authenticated_method is None


# -- single flight ------------------------------------------------------------------------


@dataclass
class _Stderr:
    """A running CLI's stderr, read as it comes (bounded waits)."""

    process: subprocess.Popen[bytes]
    data: bytes = b""

    def wait_for(self, text: bytes, deadline: float) -> bool:
        assert self.process.stderr is not None
        fd = self.process.stderr.fileno()
        while text not in self.data:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    return text in self.data
                self.data += chunk
        return True


@contextmanager
def held_token_endpoint(
    stack: StackAuthServer,
) -> Iterator[tuple[threading.Event, threading.Event]]:
    """The next token request is handled for real, then its answer is held
    until the test sets `released` (set on the way out in any case)."""
    handled, released = threading.Event(), threading.Event()
    stack.inject(stack.TOKEN, Fault.hold(handled, released))
    try:
        yield handled, released
    finally:
        released.set()


def _kill_if_running(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(timeout=5)


def test_client_credentials_processes_on_a_cold_cache_make_one_request(machine: Machine) -> None:
    """8 CLI processes that all saw the cold cache while the first one's token
    request was in flight print one token, from one request."""
    args = [sys.executable, "-m", "stacktoken", "--debug", "--cache-dir", str(machine.cache_dir)]
    args += machine.token_args()
    env = machine.world.env(machine.env())
    with held_token_endpoint(machine.stack) as (handled, released), ExitStack() as running:
        processes = []
        for _ in range(PROCESSES):
            process = subprocess.Popen(
                args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
            )
            running.callback(_kill_if_running, process)
            processes.append(process)
        assert handled.wait(WAIT), "no token request arrived"
        deadline = time.monotonic() + WAIT
        watched = [_Stderr(process) for process in processes]
        assert all(w.wait_for(b"disk cache miss", deadline) for w in watched), (
            "not every process read the cold cache"
        )
        # Every process has found the cache cold before any token exists.
        released.set()
        outputs = []
        for w in watched:
            stdout, stderr = w.process.communicate(timeout=CLI_TIMEOUT_SECONDS)
            outputs.append(
                subprocess.CompletedProcess(
                    args, w.process.returncode, stdout.decode(), (w.data + stderr).decode()
                )
            )
    tokens = {result.stdout for result in outputs}
    assert all(result.returncode == 0 for result in outputs), [r.stderr for r in outputs]
    assert len(tokens) == 1
    assert machine.requests() == 1
    assert machine.stack.count(machine.stack.DISCOVERY) == 1
    waited = [r for r in outputs if "cache hit: usable" in r.stderr]
    assert len(waited) == PROCESSES - 1  # the others found the winner's token under the lock


class _WatchedLock:
    """Stands in for a `TokenSource`'s thread lock; counts the threads that asked for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._asked = threading.Condition()
        self.asked = 0

    def __enter__(self) -> bool:
        with self._asked:
            self.asked += 1
            self._asked.notify_all()
        return self._lock.__enter__()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._lock.__exit__(kind, error, traceback)

    def wait_asked(self, count: int, timeout: float) -> bool:
        with self._asked:
            return self._asked.wait_for(lambda: self.asked >= count, timeout)


@dataclass
class _Log:
    """A source's debug log, shared by its threads; a test can wait for a line."""

    lines: list[str] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def __call__(self, line: str) -> None:
        with self.changed:
            self.lines.append(line)
            self.changed.notify_all()

    def count(self, text: str) -> int:
        with self.changed:
            return sum(text in line for line in self.lines)

    def wait_for(self, text: str, deadline: float) -> bool:
        with self.changed:
            return self.changed.wait_for(
                lambda: any(text in line for line in self.lines),
                max(0.0, deadline - time.monotonic()),
            )


def _race(
    machine: Machine,
    sources: Sequence[TokenSource],
    per_source: int,
    logs: Sequence[_Log],
    monkeypatch: pytest.MonkeyPatch,
) -> list[str]:
    """`per_source` threads on each source, released once every thread has asked
    its source and every source has read the cold cache, while the first token
    request is in flight."""
    locks = []
    for source in sources:
        lock = _WatchedLock()
        monkeypatch.setattr(source, "_lock", lock)
        locks.append(lock)
    calls = [source.token for source in sources for _ in range(per_source)]
    with (
        held_token_endpoint(machine.stack) as (handled, released),
        ThreadPoolExecutor(len(calls)) as pool,
    ):
        futures = [pool.submit(call) for call in calls]
        try:
            assert handled.wait(WAIT), "no token request arrived"
            deadline = time.monotonic() + WAIT
            for lock in locks:
                assert lock.wait_asked(per_source, max(0.0, deadline - time.monotonic()))
            for log in logs:
                assert log.wait_for("disk cache miss", deadline), "a source never read the cache"
        finally:
            released.set()
        return [future.result(timeout=CLI_TIMEOUT_SECONDS) for future in futures]


def test_client_credentials_threads_sharing_a_source_make_one_request(
    machine: Machine, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = _Log()
    with machine.source(log=log) as source:
        tokens = _race(machine, [source], THREADS, [log], monkeypatch)
    assert len(tokens) == THREADS and len(set(tokens)) == 1
    assert machine.requests() == 1


def test_client_credentials_threads_over_four_sources_make_one_request(
    machine: Machine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """32 threads over 4 sources sharing the cache dir: the file lock serialises the
    sources, each of which had found the cache cold."""
    logs = [_Log() for _ in range(SOURCES)]
    with ExitStack() as opened:
        sources = [opened.enter_context(machine.source(log=log)) for log in logs]
        tokens = _race(machine, sources, THREADS // SOURCES, logs, monkeypatch)
    assert len(tokens) == THREADS and len(set(tokens)) == 1
    assert machine.requests() == 1
    assert sum(log.count("disk cache hit: usable") for log in logs) == SOURCES - 1


# -- rejected clients -------------------------------------------------------------------


@pytest.mark.parametrize(
    "advertised", [DEFAULT_STACK_AUTH_METHODS, ("client_secret_post",)], ids=["basic", "post"]
)
def test_client_credentials_wrong_secret_exits_3_in_one_line(
    world: World, advertised: tuple[str, ...]
) -> None:
    with StackAuthServer(world.membership, token_endpoint_auth_methods=advertised) as stack:
        client = stack.add_client("svc", secrets.token_urlsafe(24))
        machine = Machine(
            World.at(world.cache_dir.parent, world.membership, stack, world.profile), client
        )
        wrong = "wrong-" + secrets.token_urlsafe(24)
        for debug in (False, True):
            result = machine.run(env={SECRET_ENV: wrong}, debug=debug)
            assert result.returncode == 3 and result.stdout == ""
            if not debug:
                line = assert_one_line_error(result, 3)
                assert "invalid_client" in line and "client id and its secret" in line
            else:  # the rejection is remembered: the second run asks nothing
                assert "failure memory used: a rejected failure" in result.stderr
            for secret in (wrong, client.client_secret, basic_header_value("svc", wrong)):
                assert secret not in result.stderr
        assert stack.client_credentials_count == 1  # never retried, nor asked again
        assert stack.issued_tokens == []
        assert not machine.entry_path().exists()
        assert_token(machine.run(), machine)  # the right secret works at once


@pytest.mark.parametrize(
    "fault",
    [Fault.status(400, "unauthorized_client"), Fault.status(401, "invalid_client")],
    ids=["unauthorized_client", "invalid_client"],
)
def test_client_credentials_rejection_exits_3_in_one_line(machine: Machine, fault: Fault) -> None:
    machine.stack.inject(machine.stack.TOKEN, fault)
    line = assert_one_line_error(machine.run(), 3)
    error = json.loads(fault.body)["error"]
    assert f"({error})" in line and machine.secret not in line
    assert machine.requests() == 1
    # The same secret is not sent again within the rejection's window (docs/design.md §15).
    again = assert_one_line_error(machine.run(), 3)
    assert "not asking again" in again and f"({error})" in again
    assert machine.requests() == 1
    assert let_failures_expire(machine.cache_dir) == ["rejected"]
    assert_token(machine.run(), machine)


def test_client_credentials_unknown_client_exits_3(machine: Machine) -> None:
    line = assert_one_line_error(machine.run(client_id="nobody"), 3)
    assert "invalid_client" in line and machine.secret not in line


@pytest.mark.parametrize(
    "args",
    [("--client-secret", "VALUE"), ("--client-secret=VALUE",), ("--client-sec=VALUE",)],
    ids=["separate", "equals", "abbreviated"],
)
def test_client_credentials_secret_on_the_command_line_is_refused(
    machine: Machine, args: tuple[str, ...]
) -> None:
    secret = "cmdline-" + secrets.token_hex(12)
    spelled = tuple(arg.replace("VALUE", secret) for arg in args)
    result = machine.run(*spelled, env={SECRET_ENV: ""})
    line = assert_one_line_error(result, 2)
    assert secret not in line
    assert machine.stack.total_requests == 0


# -- secrecy -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "advertised", [DEFAULT_STACK_AUTH_METHODS, ("client_secret_post",)], ids=["basic", "post"]
)
def test_client_credentials_debug_shows_neither_secret_nor_token(
    world: World, advertised: tuple[str, ...]
) -> None:
    """Cold, warm, TTL-0 and failing `--debug` runs: the token only on stdout, the
    secret (and its Basic header) nowhere, and in no file of the cache dir."""
    with StackAuthServer(world.membership, token_endpoint_auth_methods=advertised) as stack:
        client = stack.add_client("svc", secrets.token_urlsafe(24))
        machine = Machine(
            World.at(world.cache_dir.parent, world.membership, stack, world.profile), client
        )
        basic = basic_header_value("svc", client.client_secret)
        cold = machine.run(debug=True, scopes=["ledger:read"])
        warm = machine.run(debug=True, scopes=["ledger:read"])
        uncached = machine.run("--stack-token-cache-ttl", "0", debug=True)
        stack.inject(stack.TOKEN, Fault.status(503), Fault.status(503), Fault.status(503))
        failing = machine.run(debug=True, scopes=["ledger:write"])
        assert "POST" in cold.stderr and "cache hit" in warm.stderr  # the logs were there
        tokens = [assert_token(run, machine) for run in (cold, warm, uncached)]
        assert failing.returncode == 1
        for run in (cold, warm, uncached, failing):
            for secret in (client.client_secret, basic, *tokens):
                assert secret not in run.stderr, "a secret or token in the debug log"
            assert client.client_secret not in run.stdout and basic not in run.stdout
            assert run.stdout in ("", *(token + "\n" for token in tokens))
        assert_secret_in_no_file(machine, client.client_secret, basic)


# -- cache list / clear ---------------------------------------------------------------------


def test_client_credentials_cache_list_names_client_and_stack_never_secrets(
    machine: Machine, world: World
) -> None:
    other = Machine(world, world.stack.add_client("svc-other", secrets.token_urlsafe(24)))
    tokens = [
        assert_token(machine.run(), machine),
        assert_token(machine.run(scopes=["ledger:read"]), machine),
        assert_token(other.run(), other),
    ]
    listed = machine.command("cache", "list")
    assert listed.returncode == 0 and listed.stderr == ""
    ours = [line for line in listed.stdout.splitlines() if line.startswith("client ")]
    assert len(ours) == 3
    uri = machine.stack.stack_uri
    assert sum(f"client {machine.client_id} at {uri}" in line for line in ours) == 2
    assert sum(f"client svc-other at {uri}" in line for line in ours) == 1
    # one client's two scope sets are told apart (the entries are stamped with them)
    assert (
        sum(line.startswith(f"client {machine.client_id} at {uri} scopes (none) ") for line in ours)
        == 1
    )
    assert (
        sum(
            line.startswith(f"client {machine.client_id} at {uri} scopes ledger:read ")
            for line in ours
        )
        == 1
    )
    assert all("usable" in line for line in ours)
    for secret in (*tokens, machine.secret, other.secret):
        assert secret not in listed.stdout


def test_client_credentials_entry_stamped_for_other_scopes_is_a_miss(machine: Machine) -> None:
    """An entry found in another scope set's folder (copied there, or a key that
    collided) is not served: its `scopes` stamp says what it was issued for."""
    scoped = assert_token(machine.run(scopes=["ledger:read"]), machine)
    assert machine.entry(["ledger:read"]).scopes == ("ledger:read",)
    unscoped = machine.entry_path()
    for debug in (False, True):  # the warm path, then the full CLI
        unscoped.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(machine.entry_path(["ledger:read"]), unscoped)
        result = machine.run(debug=debug)
        assert result.returncode == 0
        assert scoped not in result.stdout
        assert machine.entry().scopes == ()
    assert "entry was issued for other scopes" in result.stderr
    assert machine.requests() == 3


def test_client_credentials_cache_clear_by_client_id(machine: Machine, world: World) -> None:
    other = Machine(world, world.stack.add_client("svc-other", secrets.token_urlsafe(24)))
    assert_token(machine.run(), machine)
    assert_token(machine.run(scopes=["ledger:read"]), machine)
    kept = assert_token(other.run(), other)
    assert machine.requests() == 3

    elsewhere = machine.command(
        "cache", "clear", "--client-id", machine.client_id, "--stack-uri", "http://127.0.0.1:1"
    )
    assert elsewhere.returncode == 0
    assert machine.entry_path().exists()
    narrowed = machine.command("cache", "clear", "--stack-uri", machine.stack.stack_uri)
    assert_one_line_error(narrowed, 2)

    cleared = machine.command(
        "cache",
        "clear",
        "--client-id",
        machine.client_id,
        "--stack-uri",
        machine.stack.stack_uri + "/",
    )
    assert cleared.returncode == 0, cleared.stderr
    assert "2" in cleared.stdout and machine.secret not in cleared.stdout
    assert not machine.entry_path().exists()
    assert not machine.entry_path(["ledger:read"]).exists()
    assert other.run().stdout == kept + "\n"  # another client's entry stays
    assert machine.requests() == 3
    assert_token(machine.run(), machine)  # the next run is cold
    assert machine.requests() == 4
    listed = machine.command("cache", "list").stdout
    assert sum(line.startswith("client ") for line in listed.splitlines()) == 2


# -- SIGKILL inside a cold acquisition --------------------------------------------------------


@contextmanager
def acquisition_zygote(machine: Machine) -> Iterator[Zygote]:
    process = subprocess.Popen(
        [
            sys.executable,
            str(CLIENT_CRASH_RUN),
            "zygote",
            str(machine.cache_dir),
            machine.stack.stack_uri,
            machine.client_id,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=machine.world.env(machine.env()),
    )
    try:
        channel = Zygote(process)
        assert channel.line() == "ready"
        yield channel
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _temp_count(folder: Path) -> int:
    return len(temp_files(folder)) if folder.is_dir() else 0


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def test_client_credentials_sigkilled_acquisitions_leave_old_or_new(machine: Machine) -> None:
    """Cold acquisitions SIGKILLed at every step, in a shuffled order: the cache
    entry is the old bytes or a token the stack issued, never a mix; the
    discovery document decodes; leftovers are one temp file per write killed
    before its rename; and the next run always gets a token."""
    seed = random.randrange(1 << 32)
    ci, heavy = CLIENT_CRASH_ROUNDS
    rounds = heavy if os.environ.get(HEAVY_ENV) == "1" else ci
    stops = list(STEPS) * rounds
    random.Random(seed).shuffle(stops)
    entry = machine.entry_path()
    discovery = (
        machine.cache_dir
        / "discovery"
        / discovery_cache_name(stack_discovery(machine.stack.stack_uri).url)
    )
    killed_in_discovery_write = 0
    leftovers = 0
    hit: Counter[str] = Counter()
    with acquisition_zygote(machine) as zygote:
        for kill, stop in enumerate(stops):
            where = f"kill {kill} at {stop!r} (seed {seed})"
            if stop.endswith(" discovery"):
                discovery.unlink(missing_ok=True)  # so that this acquisition writes one
            old = _read(entry)
            answer = zygote.ask(f"spawn {stop}").split(maxsplit=1)
            assert len(answer) == 2 and answer[1] == stop, f"{where}: {answer}"
            os.kill(int(answer[0]), signal.SIGKILL)
            assert int(zygote.ask(f"reap {answer[0]}")) == -signal.SIGKILL, where
            hit[stop] += 1

            now = _read(entry)
            if stop == "renamed cache":
                assert now is not None and now != old, where
                new = decode_cache_entry(now)
                assert isinstance(new, CachedToken), where
                assert machine.stack.issued_token(new.access_token) is not None, where
                assert (new.client_id, new.stack_uri) == (
                    machine.client_id,
                    machine.stack.stack_uri,
                )
            else:
                assert now == old, f"{where}: the entry changed before its rename"
            if now is not None:
                assert isinstance(decode_cache_entry(now), CachedToken), where
            if discovery.exists():
                assert decode_discovery_cache(discovery.read_bytes()).value_or(None) is not None, (
                    where
                )
            if stop.split()[0] in FILE_STEPS[:3] and stop.endswith(" discovery"):
                killed_in_discovery_write += 1
            # A write of the entry runs under the lock and first sweeps what killed
            # writers left: one leftover at most, this kill's if it was in a write.
            if stop.endswith(" cache"):
                leftovers = 1 if stop.split()[0] in FILE_STEPS[:3] else 0
            assert _temp_count(entry.parent) == leftovers, where
            # Discovery documents are written without a lock (a stack's document is
            # shared by all its clients): nothing sweeps, one leftover a kill.
            assert _temp_count(discovery.parent) == killed_in_discovery_write, where

            # The next run, whatever the kill left: a token the stack issued.
            status, _, token = zygote.ask("run").partition(" ")
            assert status == "ok", f"{where}: {token}"
            assert machine.stack.issued_token(token) is not None, where
            if _read(entry) != now:  # it wrote the entry, sweeping
                leftovers = 0
            assert _temp_count(entry.parent) == leftovers, where
    assert set(hit) == set(STEPS), hit
    print(
        f"client crash: {len(stops)} SIGKILLs inside cold acquisitions: {dict(hit)} (seed {seed})"
    )
    # The CLI, next: a cold run (TTL run out) sweeps the entry's folder.
    assert_token(machine.run("--stack-token-cache-ttl", "1ns"), machine)
    assert {p.name for p in entry.parent.iterdir()} == {CACHE_FILE, LOCK_FILE}


# -- the fault matrix rows of this grant --------------------------------------------------------


@dataclass
class _Armed:
    """A fault in place: the endpoint it targets, the queues it must drain, how
    the faulty run differs, and how to take the fault away."""

    endpoint: str
    injected: list[str] = field(default_factory=list)
    stack_uri: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    disarm: Callable[[], object] = lambda: None


def _endpoint_of(machine: Machine, step: ClientStep) -> str:
    return machine.stack.DISCOVERY if step is ClientStep.STACK_DISCOVERY else machine.stack.TOKEN


def _url_of(machine: Machine, step: ClientStep) -> str:
    if step is ClientStep.STACK_DISCOVERY:
        return machine.stack.discovery_url
    return machine.stack.token_endpoint


def _expected_requests(fault_id: str, step: ClientStep) -> int:
    fault = next(fault for fault in CLIENT_FAULTS if fault.id == fault_id)
    return fault.expect[step].requests or 0


def _arm(machine: Machine, fault_id: str, step: ClientStep) -> _Armed:
    stack = machine.stack
    armed = _Armed(_endpoint_of(machine, step))

    def inject(*faults: Fault, at: str | None = None) -> None:
        target = at or armed.endpoint
        stack.inject(target, *faults)
        armed.injected.append(target)

    discovery = step is ClientStep.STACK_DISCOVERY
    match fault_id:
        case "refused":
            stack.stop()
            armed.disarm = stack.start
        case "reset_once":
            inject(Fault.close_connection(reset=True))
        case "timeout_once":
            inject(Fault.delay(BLACK_HOLE_SECONDS))
        case "timeout_always":
            inject(*[Fault.delay(BLACK_HOLE_SECONDS)] * _expected_requests(fault_id, step))
        case "s500":
            inject(Fault.status(500))
        case "s503_once":
            inject(Fault.status(503))
        case "s429_retry_after":
            inject(Fault.rate_limited(1))
        case "garbage":
            inject(Fault.garbage())
        case "html":
            inject(Fault.html_error())
        case "missing_fields":
            inject(Fault.missing_fields("token_endpoint" if discovery else "access_token"))
        case "oversized":
            inject(Fault.oversized(1 << 20))
        case "oversized_streamed":
            inject(Fault.oversized(1 << 20, send_content_length=False))
        case "wrong_issuer":
            inject(Fault.wrong_issuer())
        case "redirect":
            inject(Fault.redirect(_url_of(machine, step), status=302 if discovery else 307))
        case "invalid_grant":
            inject(Fault.invalid_grant())
        case "unauthorized_client":
            inject(Fault.status(400, "unauthorized_client"))
        case "invalid_client":
            armed.env = {SECRET_ENV: "wrong-" + secrets.token_urlsafe(16)}
        case "plain_http" if discovery:
            armed.stack_uri = "http://example.com"
        case "plain_http":
            endpoint = "http://example.com/api/auth/oauth/token"
            inject(Fault.override_fields(token_endpoint=endpoint), at=stack.DISCOVERY)
        case "credentials_in_url":

            def with_password(url: str) -> str:
                return url.replace("http://", f"http://stacktoken-user:{URL_PASSWORD}@", 1)

            if discovery:
                armed.stack_uri = with_password(stack.stack_uri)
            else:
                endpoint = with_password(stack.token_endpoint)
                inject(Fault.override_fields(token_endpoint=endpoint), at=stack.DISCOVERY)
        case _:
            raise AssertionError(f"no way to inject {fault_id!r}")
    return armed


def _faulty_run(machine: Machine, fault: ClientFault, armed: _Armed, outcome: Outcome) -> str:
    """One run under the fault; what the user saw (the token or the error line)."""
    if fault.via == "library":
        with machine.source(http_policy=FAST_POLICY) as source:
            try:
                token = source.token()
            except StackTokenError as error:
                assert error.exit_code == outcome.exit_code, error
                message = str(error)
                assert message and "\n" not in message
                return message
        assert outcome.exit_code == 0
        return token
    result = machine.run(stack_uri=armed.stack_uri, env=armed.env)
    if outcome.exit_code == 0:
        return assert_token(result, machine)
    return assert_one_line_error(result, outcome.exit_code)


def _assert_cache_sound(machine: Machine, *, written: bool) -> None:
    """The entry is there (decodable, ours) iff a token was issued; nothing else lies
    in the credential's folder but its lock and a remembered failure (never beside
    a token)."""
    folder = machine.folder()
    names = {path.name for path in folder.iterdir()} if folder.exists() else set()
    assert names <= {CACHE_FILE, LOCK_FILE, FAILURE_FILE}, names
    assert (CACHE_FILE in names) == written, names
    assert not (written and FAILURE_FILE in names), names
    if written:
        assert machine.stack.issued_token(machine.entry().access_token) is not None


@pytest.mark.parametrize(
    ("fault", "step"),
    client_cases(),
    ids=[client_case_id(fault, step) for fault, step in client_cases()],
)
def test_client_credentials_fault_outcome_as_documented(
    machine: Machine, fault: ClientFault, step: ClientStep
) -> None:
    """The faulty run ends as `CLIENT_FAULTS` says, with as many requests at the
    faulted endpoint, shows no secret, stores nothing wrong; the next run works."""
    expect: Expect = fault.expect[step]
    if step is ClientStep.TOKEN and fault.id not in ("plain_http", "credentials_in_url"):
        prime_discovery(machine.world, "stack")
    armed = _arm(machine, fault.id, step)
    machine.stack.reset_counts()

    seen = _faulty_run(machine, fault, armed, expect.outcome)

    for secret in (machine.secret, URL_PASSWORD, *armed.env.values()):
        assert secret not in seen, "a secret reached what the user saw"
    if expect.requests is not None:
        assert machine.stack.count(armed.endpoint) == expect.requests, machine.stack.counts()
    for endpoint in armed.injected:
        assert machine.stack.pending_faults(endpoint) == 0, f"{endpoint}: the fault was never hit"
    if fault.id == "credentials_in_url":
        assert all("authorization" not in headers for headers in machine.stack.request_headers)
    _assert_cache_sound(machine, written=expect.outcome.exit_code == 0)

    armed.disarm()
    machine.stack.clear_faults()
    remembered = let_failures_expire(machine.cache_dir)  # the fault is gone, and its time
    if expect.outcome.exit_code == 0:
        assert remembered == [], "a success remembers no failure"
    with machine.source(http_policy=FAST_POLICY) as source:  # the next run, in-process
        token = source.token()
    assert machine.stack.issued_token(token) is not None
    _assert_cache_sound(machine, written=True)
