"""Everything benchmarks/run.py knows about stacktoken and its test servers.

This is the one place coupled to the project, so that a refactoring of
stacktoken's internals changes nothing here. It uses only:

- the `stacktoken` CLI (console script and `python -m stacktoken`), with its
  documented options `--cache-dir`, `token` and `--stack-token-cache-ttl`;
- `TokenSource.from_fctl(...)` and `.token()`, in a child interpreter;
- tests/oauth_servers.py: `MembershipServer`, `StackAuthServer`,
  `write_fctl_profile`, `FctlProfile` (and its `decode_jwt_unverified`);
  `StackAuthServer.add_client` and the `token --stack-uri --client-id
  [--store URL]` options for a fleet of machine-credential processes, and
  tests/redis_server.py's `RedisServer` for the shared store;
- `formance_sdk`, `StackTokenAuth` and `TokenSource.from_client_credentials`,
  with the official SDK, in `_sdk_child.py` (a child too), against
  tests/ledger_stub.py's `LedgerStub` on the stack server;
- the on-disk layout that docs/design.md §3 fixes for fctl: `accesses.json` and
  `api_token_cache.json` (paths as `FctlProfile` gives them), and a
  `--cache-dir` holding only the discovery documents.

The orchestrating process never imports stacktoken: every measurement runs in
a child of the scratch virtualenv's interpreter (`sys.executable` here).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from _measure import Command, Hook, RunFailed

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from ledger_stub import LedgerStub  # noqa: E402 (tests/ goes on the path first)
from oauth_servers import (  # noqa: E402
    FctlProfile,
    MembershipServer,
    StackAuthServer,
    decode_jwt_unverified,
    write_fctl_profile,
)

PACKAGE = "stacktoken"
SDK_CHILD = Path(__file__).resolve().with_name("_sdk_child.py")
SDK_CLIENT_ID = "bench-svc"
SDK_CLIENT_SECRET = "bench-not-a-real-secret"  # a loopback test server's client
SDK_SECRET_VARIABLE = "BENCH_SDK_CLIENT_SECRET"  # how `_sdk_child.py` gets it (not argv)
ENDPOINT_NAMES = {
    StackAuthServer.DISCOVERY: "stack discovery",
    StackAuthServer.TOKEN: "exchange",
    MembershipServer.DISCOVERY: "membership discovery",
    MembershipServer.TOKEN: "refresh",
}
# Variables that would steer stacktoken (or fctl's flag-from-env rule) or the
# interpreter; the children get none of them from the caller's environment.
_UNSET_PREFIXES = ("PYTHON", "STACKTOKEN", "STACK_TOKEN", "FCTL_", "XDG_")
_UNSET = ("PROFILE", "ORGANIZATION", "STACK", "VIRTUAL_ENV")


@dataclass(frozen=True)
class World:
    """Loopback servers, an fctl profile pointing at them, and the installed CLI."""

    python: str
    membership: MembershipServer
    stack: StackAuthServer
    profile: FctlProfile
    home: Path
    cache_dir: Path

    # -- processes -------------------------------------------------------------
    def env(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in _UNSET and not key.startswith(_UNSET_PREFIXES)
        }
        env.update(
            HOME=str(self.home),
            XDG_CACHE_HOME=str(self.home / ".cache"),
            FCTL_CONFIG_DIR=str(self.profile.config_dir),
        )
        return env

    @property
    def script(self) -> str:
        """The console script that `pip install` generated beside the interpreter."""
        return str(Path(self.python).with_name(PACKAGE))

    def token_argv(self, *options: str, via: str = "script") -> tuple[str, ...]:
        """`stacktoken --cache-dir D token [options]`, by console script or `-m`."""
        head = (self.script,) if via == "script" else (self.python, "-m", PACKAGE)
        return (*head, "--cache-dir", str(self.cache_dir), "token", *options)

    def unfrozen_argv(self) -> tuple[str, ...]:
        """`stacktoken --cache-dir D token` by `main` alone: no `gc.freeze()` at exit."""
        code = "import sys; from stacktoken.shell._warm import main; sys.exit(main())"
        return (self.python, "-c", code, "--cache-dir", str(self.cache_dir), "token")

    def shown(self, argv: tuple[str, ...]) -> str:
        """`argv` as a reader would type it: no virtualenv or temp paths."""
        words = [{self.python: "python", self.script: PACKAGE}.get(word, word) for word in argv]
        return " ".join("D" if word == str(self.cache_dir) else _quoted(word) for word in words)

    def command(
        self,
        label: str,
        argv: tuple[str, ...],
        *,
        prepare: Hook | None = None,
        expect: Mapping[str, int] | None = None,
    ) -> Command:
        """A timed command; with `expect`, each run must make exactly those requests."""
        verify = None
        if expect is not None:
            wanted = dict(expect)
            base = prepare

            def prepare_and_reset() -> None:
                if base is not None:
                    base()
                self.reset_counts()

            def check() -> None:
                got = self.counts()
                if got != wanted:
                    raise RunFailed(f"{label}: requests {got}, expected {wanted}")

            prepare, verify = prepare_and_reset, check
        return Command(label, argv, self.shown(argv), prepare=prepare, verify=verify)

    def python_c(self, label: str, code: str) -> Command:
        argv = (self.python, "-c", code)
        return Command(label, argv, self.shown(argv))

    def run_token(self, *options: str) -> str:
        """One checked `stacktoken token` run; its standard output."""
        done = subprocess.run(
            self.token_argv(*options), capture_output=True, text=True, env=self.env(), check=False
        )
        if done.returncode != 0:
            raise RunFailed(f"stacktoken token {' '.join(options)}: {done.stderr.strip()}")
        return done.stdout

    def where_imported(self) -> str:
        """The file of `stacktoken` as a child imports it (from the world's cwd)."""
        done = subprocess.run(
            [self.python, "-c", f"import {PACKAGE}; print({PACKAGE}.__file__)"],
            capture_output=True,
            text=True,
            env=self.env(),
            check=True,
        )
        return done.stdout.strip()

    def token_setup_code(self) -> str:
        """Python for a child: `token` bound to a source holding a fresh token."""
        return "\n".join(
            [
                "import os, time",
                "from stacktoken import TokenSource",
                "source = TokenSource.from_fctl(",
                f"    config_dir={str(self.profile.config_dir)!r},",
                f"    cache_dir={str(self.cache_dir)!r},",
                "    environ=dict(os.environ),",
                ")",
                "source.token()  # from the disk cache; the next calls are in memory",
                "token = source.token",
                "clock = time.time",
            ]
        )

    # -- the official SDK (docs/design.md §10) ------------------------------------------
    def sdk_config(self, cache_dir: Path) -> dict[str, str]:
        """A machine credential at the stack, the ledger stub serving the SDK's calls,
        and what `_sdk_child.py` needs to reach them (tokens cached under `cache_dir`).
        The secret is not in it: `sdk_env` carries it."""
        self.stack.add_client(SDK_CLIENT_ID, SDK_CLIENT_SECRET)
        stub = LedgerStub(self.stack)
        return {
            "stack_uri": self.stack.stack_uri,
            "client_id": SDK_CLIENT_ID,
            "cache_dir": str(cache_dir),
            "info_url": stub.info_url,
        }

    def sdk_env(self) -> dict[str, str]:
        """`env()` plus the client secret, which `_sdk_child.py` reads from there."""
        return {**self.env(), SDK_SECRET_VARIABLE: SDK_CLIENT_SECRET}

    def sdk_call(self, label: str, kind: str, config: Mapping[str, str]) -> Command:
        """A process making one SDK call: `kind` "own" (its `security`) or "stacktoken"."""
        argv = (self.python, str(SDK_CHILD), "call", kind, json.dumps(dict(config)))
        shown = f"python _sdk_child.py call {kind} CONFIG"
        return Command(label, argv, shown, env=self.sdk_env())

    def sdk_overhead(
        self, config: Mapping[str, str], number: int, repeat: int
    ) -> dict[str, list[float]]:
        """µs per call of each case of `_sdk_child.py overhead`, per round."""
        done = subprocess.run(
            [
                self.python,
                str(SDK_CHILD),
                "overhead",
                json.dumps(dict(config)),
                str(number),
                str(repeat),
            ],
            capture_output=True,
            text=True,
            env=self.sdk_env(),
            check=False,
        )
        if done.returncode != 0:
            raise RunFailed(f"SDK overhead child failed: {done.stderr.strip()[-2000:]}")
        rounds: dict[str, list[float]] = json.loads(done.stdout)
        return rounds

    def token_requests(self) -> int:
        """Requests to the stack's token endpoint since the last `reset_counts`."""
        return self.stack.count(StackAuthServer.TOKEN)

    def auth_requests(self) -> int:
        """Requests to the auth servers (discovery, token) since the last `reset_counts`:
        the ledger stub's routes share the stack server but are not counted."""
        ledger = (LedgerStub.INFO, LedgerStub.LIST)
        both = {**self.membership.counts(), **self.stack.counts()}
        return sum(count for name, count in both.items() if name not in ledger)

    def ledger_calls(self) -> int:
        """Calls to the ledger stub's routes since the last `reset_counts`."""
        return self.stack.count(LedgerStub.INFO) + self.stack.count(LedgerStub.LIST)

    # -- states ----------------------------------------------------------------
    def make_warm(self) -> None:
        """A usable cache entry (one run fills it if it is missing)."""
        self.run_token()

    def drop_token_cache(self) -> None:
        self.profile.api_token_cache_path.unlink(missing_ok=True)

    def drop_discovery_cache(self) -> None:
        """Forget every discovery document (stack and membership)."""
        shutil.rmtree(self.cache_dir, ignore_errors=True)
        self.cache_dir.mkdir(mode=0o700)

    def expire_stack_access(self) -> None:
        """An expired stack access token in `accesses.json`, with a live refresh token."""
        token, refresh = self.membership.mint_stack_access(-120, organization_id="orgA")
        document = {"token": token, "claims": decode_jwt_unverified(token), "refreshToken": refresh}
        path = self.profile.accesses_path
        temporary = path.with_name(path.name + ".bench")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(document, handle)
        os.replace(temporary, path)

    # -- requests --------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        both = {**self.membership.counts(), **self.stack.counts()}
        return {ENDPOINT_NAMES.get(name, name): count for name, count in both.items() if count}

    def reset_counts(self) -> None:
        self.membership.reset_counts()
        self.stack.reset_counts()

    def concurrent_cold(self, processes: int) -> tuple[dict[str, int], int]:
        """`processes` cold runs started together: requests, and distinct tokens printed."""
        self.drop_token_cache()
        self.reset_counts()
        started = [
            subprocess.Popen(self.token_argv(), stdout=subprocess.PIPE, text=True, env=self.env())
            for _ in range(processes)
        ]
        outputs = {process.communicate(timeout=60)[0] for process in started}
        if any(process.returncode != 0 for process in started):
            raise RunFailed("a concurrent cold run failed")
        return self.counts(), len(outputs)

    # -- a fleet of machine-credential processes (docs/design.md §9, §11) -----------------
    def fleet_windows(
        self, hosts: int, processes: int, windows: int, ttl_seconds: int, store: str | None
    ) -> tuple[list[int], int, float]:
        """`hosts` x `processes` cold CLI runs of one machine credential started
        together, once per TTL window, each host its own cache dir; the token
        requests of each window, the distinct tokens printed, the longest round (s)."""
        import secrets
        import time

        client_id = f"bench-fleet-{secrets.token_hex(4)}"
        secret = secrets.token_urlsafe(24)
        self.stack.add_client(client_id, secret)
        env = {**self.env(), "STACKTOKEN_CLIENT_SECRET": secret}
        folder = Path(tempfile.mkdtemp(prefix="fleet-", dir=self.home.parent))
        per_window: list[int] = []
        tokens: set[str] = set()
        longest = 0.0
        try:
            for _ in range(windows):
                before = self.stack.count(StackAuthServer.TOKEN)
                began = time.monotonic()
                started = [
                    subprocess.Popen(
                        self._fleet_argv(folder / f"host-{host}", client_id, ttl_seconds, store),
                        stdout=subprocess.PIPE,
                        stderr=subprocess.DEVNULL,
                        text=True,
                        env=env,
                    )
                    for host in range(hosts)
                    for _ in range(processes)
                ]
                tokens |= {process.communicate(timeout=120)[0] for process in started}
                if any(process.returncode != 0 for process in started):
                    raise RunFailed("a fleet run failed")
                longest = max(longest, time.monotonic() - began)
                per_window.append(self.stack.count(StackAuthServer.TOKEN) - before)
                # The next window: every entry this round stored is older than the TTL.
                time.sleep(ttl_seconds + 0.1)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return per_window, len(tokens), longest

    def _fleet_argv(
        self, host: Path, client_id: str, ttl_seconds: int, store: str | None
    ) -> list[str]:
        argv = [self.script, "--cache-dir", str(host), "token"]
        argv += ["--stack-uri", self.stack.stack_uri, "--client-id", client_id]
        argv += ["--stack-token-cache-ttl", f"{ttl_seconds}s"]
        return argv + (["--store", store] if store is not None else [])


@contextmanager
def redis() -> Iterator[str | None]:
    """A redis-server on 127.0.0.1 for the shared store (its URL), or None without one."""
    from redis_server import RedisServer, RedisServerMissing

    folder = Path(tempfile.mkdtemp(prefix="stacktoken-bench-redis-"))
    server = RedisServer(folder)
    try:
        try:
            server.start()
        except RedisServerMissing:
            yield None
            return
        yield server.url
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def world() -> Iterator[World]:
    """The servers and a logged-in fctl profile, in a temporary folder (also the cwd)."""
    with (
        tempfile.TemporaryDirectory(prefix="stacktoken-bench-") as folder,
        MembershipServer() as membership,
        StackAuthServer(membership) as stack,
    ):
        root = Path(folder)
        previous = Path.cwd()
        os.chdir(root)  # nothing in the working directory can shadow the installed package
        try:
            cache_dir = root / "cache"
            cache_dir.mkdir(mode=0o700)
            yield World(
                python=sys.executable,
                membership=membership,
                stack=stack,
                profile=write_fctl_profile(root / "fctl", membership, stack),
                home=root / "home",
                cache_dir=cache_dir,
            )
        finally:
            os.chdir(previous)


def _quoted(word: str) -> str:
    return word if word and all(c.isalnum() or c in "-_=./:" for c in word) else f'"{word}"'
