"""``python -m stacktoken.testing demo``: stacktoken's whole story against a sandbox.

Each step goes through the public API (``stacktoken.login``,
``TokenSource.from_fctl`` / ``from_client_credentials``, ``formance_sdk``) or
the CLI as a subprocess, as a user would, and the table says where its token
came from, how many requests the auth servers received and how long it took.
A step that made no request got its token from memory (the same source held
it) or from disk (a new process found it in the cache).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from stacktoken.testing._sandbox import Sandbox

if TYPE_CHECKING:
    from stacktoken import TokenSource

__all__ = ["run_demo"]

#: Processes that share one machine credential in the demo.
PROCESSES = 4
#: Bound on each CLI subprocess, and on the whole sandbox.
SUBPROCESS_TIMEOUT = 25.0
SANDBOX_LIFETIME = 120.0
#: Variables of the caller's that would point the CLI elsewhere than the sandbox.
_FOREIGN = ("FCTL_CONFIG_DIR", "PROFILE", "ORGANIZATION", "STACK", "XDG_CONFIG_HOME")


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    name: str
    source: str
    requests: int
    seconds: float
    note: str = ""


class DemoError(Exception):
    """A step did not do what the demo promises (one line)."""


def _clean_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _FOREIGN and not k.startswith(("STACKTOKEN_", "STACK_TOKEN_"))
    }
    env.update(extra)
    return env


def _cli(args: list[str], env: Mapping[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "stacktoken", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(env),
    )


def _finish(process: subprocess.Popen[str]) -> None:
    try:
        out, err = process.communicate(timeout=SUBPROCESS_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise DemoError(f"`stacktoken token` took over {SUBPROCESS_TIMEOUT:.0f} s") from None
    if process.returncode != 0 or not out.strip():
        last = (err.strip().splitlines() or ["no output"])[-1]
        raise DemoError(f"`stacktoken token` exited {process.returncode}: {last}")


class _Story:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.steps: list[Step] = []
        self.env = _clean_env(sandbox.env())

    def step(self, name: str, action: Callable[[], str], *, local: str, note: str = "") -> None:
        """Run ``action``; its source is the network if the auth servers were asked,
        else ``local``. ``action`` may return a note of its own."""
        before = self.sandbox.auth_requests
        started = time.perf_counter()
        said = action()
        seconds = time.perf_counter() - started
        requests = self.sandbox.auth_requests - before
        source = "network" if requests else local
        self.steps.append(
            Step(name=name, source=said or source, requests=requests, seconds=seconds, note=note)
        )

    def run(self) -> None:
        import stacktoken

        sandbox = self.sandbox
        config_dir = sandbox.workdir / "fctl"

        def login() -> str:
            stacktoken.login(
                membership_uri=sandbox.membership_uri,
                config_dir=config_dir,
                organization=sandbox.organization,
                stack=sandbox.stack_id,
                on_prompt=lambda _url, _code: None,  # the sandbox approves at once
            )
            return ""

        self.step("login (device flow, approved by the demo)", login, local="disk")
        source = stacktoken.TokenSource.from_fctl(config_dir=config_dir, environ=self.env)

        def token() -> str:
            if not source.token():
                raise DemoError("an empty token")
            return ""

        with source:
            self.step("cold token (fctl profile)", token, local="disk")
            self.step("same token again, same process", token, local="memory")
            self.step("warm token, new process (CLI)", self._cli_token, local="disk")
            self.step(
                f"machine credential, {PROCESSES} processes",
                self._shared_credential,
                local="disk",
            )
            self._sdk_call(source)
        if self.steps[1].source != "network" or self.steps[2].requests or self.steps[3].requests:
            raise DemoError("a warm token made requests, or the cold one none")

    def _cli_token(self) -> str:
        _finish(_cli(["token"], self.env))
        return ""

    def _shared_credential(self) -> str:
        client = self.sandbox.client()
        env = {**self.env, "STACKTOKEN_CLIENT_SECRET": client.client_secret}
        args = ["token", "--stack-uri", client.stack_uri, "--client-id", client.client_id]
        before = self.sandbox.count("stack.token")
        processes = [_cli(args, env) for _ in range(PROCESSES)]
        for process in processes:
            _finish(process)
        exchanges = self.sandbox.count("stack.token") - before
        if exchanges != 1:
            raise DemoError(f"{PROCESSES} processes made {exchanges} token requests, not 1")
        return f"network x1, disk x{PROCESSES - 1}"

    def _sdk_call(self, source: TokenSource) -> None:
        import stacktoken

        try:
            # Loaded before the clock starts: the step times the call, not the import.
            from formance_sdk_python import SDK  # noqa: F401
        except ImportError:
            self.steps.append(
                Step(
                    name="SDK call ledger.v2.get_info()",
                    source="skipped",
                    requests=0,
                    seconds=0.0,
                    note="pip install 'stacktoken[sdk]'",
                )
            )
            return

        def call() -> str:
            with stacktoken.formance_sdk(source) as sdk:
                sdk.ledger.v2.get_info()
            return ""

        calls = self.sandbox.ledger.count()
        self.step("SDK call ledger.v2.get_info()", call, local="memory")
        if self.sandbox.ledger.count() - calls != 1 or self.sandbox.ledger.unauthorized:
            raise DemoError("the SDK call did not reach the ledger with a valid token")
        self.steps[-1] = Step(
            name=self.steps[-1].name,
            source=self.steps[-1].source,
            requests=self.steps[-1].requests,
            seconds=self.steps[-1].seconds,
            note="+1 ledger call, 200",
        )


def _duration(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} µs" if seconds < 0.001 else f"{seconds * 1000:.1f} ms"


def _table(steps: list[Step]) -> str:
    header = ("step", "token from", "auth requests", "time", "")
    rows = [header] + [
        (s.name, s.source, str(s.requests), _duration(s.seconds), s.note) for s in steps
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            cell.rjust(widths[i]) if i in (2, 3) and n else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths[:4]))
    return "\n".join(lines)


def run_demo(out: TextIO = sys.stdout) -> int:
    """Run the story on a fresh sandbox, print the table; 0 on success, 1 otherwise."""
    from stacktoken import StackTokenError

    started = time.perf_counter()
    with Sandbox(lifetime=SANDBOX_LIFETIME) as sandbox:
        print(
            f"stacktoken demo: a Formance sandbox on 127.0.0.1 (membership "
            f"{sandbox.membership_uri}, stack {sandbox.stack_uri}); no account needed.\n",
            file=out,
        )
        story = _Story(sandbox)
        try:
            story.run()
        except (DemoError, StackTokenError) as error:
            print(_table(story.steps), file=out)
            print(f"\ndemo failed: {error}", file=out)
            return 1
        print(_table(story.steps), file=out)
    total = time.perf_counter() - started
    print(
        f"\nDone in {total:.1f} s. Real use: `stacktoken login`, then `stacktoken token`"
        " (see the README).",
        file=out,
    )
    return 0
