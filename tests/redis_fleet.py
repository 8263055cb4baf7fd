"""A simulated fleet for the Redis store's tests (docs/design.md §11).

A **host** is a cache dir of its own (its disk store and its flocks); a
**process** is a separate OS process. Two kinds of process:

* the CLI, `python -m stacktoken token --stack-uri ... --store URL`, as a
  service's wrapper would run it: :func:`run_cli_fleet` starts H x P of them
  at once;
* a :class:`Worker`, one long-lived interpreter that builds a fresh
  `TokenSource.from_client_credentials(store=RedisStore(url))` for each
  command it reads (a new process's memory, without paying an interpreter
  start per call): rounds over several TTL windows stay cheap.

Run as a script, this module is the worker: one JSON command a line on stdin,
one JSON answer a line on stdout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 60.0


@dataclass(frozen=True)
class Credential:
    stack_uri: str
    client_id: str
    client_secret: str


def cli_env(credential: Credential, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("STACK_TOKEN_CACHE_TTL", "STACKTOKEN_REDIS_URL", "STACKTOKEN_CLIENT_SECRET")
    }
    env["STACKTOKEN_CLIENT_SECRET"] = credential.client_secret
    env.update(extra or {})
    return env


def cli_args(
    credential: Credential, cache_dir: Path, store: str | None, *extra: str, debug: bool = False
) -> list[str]:
    """`stacktoken [--debug] --cache-dir HOST token --stack-uri ... [--store URL] EXTRA`."""
    args = [sys.executable, "-m", "stacktoken", *(["--debug"] if debug else [])]
    args += ["--cache-dir", str(cache_dir), "token"]
    args += ["--stack-uri", credential.stack_uri, "--client-id", credential.client_id]
    if store is not None:
        args += ["--store", store]
    return args + list(extra)


def run_cli_fleet(
    credential: Credential,
    hosts: Sequence[Path],
    processes: int,
    store: str | None,
    *extra: str,
    debug: bool = False,
    store_in_env: bool = False,
) -> list[subprocess.CompletedProcess[str]]:
    """H x P CLI processes started at once; their results once all have exited.

    `store_in_env`: the store's URL goes in `$STACKTOKEN_REDIS_URL`, not `--store`
    (the way to give one with a password: a command line may not carry it)."""
    env = cli_env(credential, {"STACKTOKEN_REDIS_URL": store} if store_in_env and store else None)
    flag = None if store_in_env else store
    running = []
    for host in hosts:
        for _ in range(processes):
            args = cli_args(credential, host, flag, *extra, debug=debug)
            running.append(
                subprocess.Popen(
                    args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
                )
            )
    results = []
    for proc in running:
        out, err = proc.communicate(timeout=TIMEOUT)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return results


class Worker:
    """One long-lived process of one host (see the module's docstring)."""

    def __init__(self, credential: Credential, host: Path, store: str | None, ttl: str) -> None:
        self.host = host
        self._command = {
            "stack_uri": credential.stack_uri,
            "client_id": credential.client_id,
            "cache_dir": str(host),
            "store": store,
            "ttl": ttl,
        }
        self._proc = subprocess.Popen(
            [sys.executable, __file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(credential),
            cwd=ROOT,
        )

    def send(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(self._command) + "\n")
        self._proc.stdin.flush()

    def answer(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()  # the worker answers or dies: bounded by it
        if not line:
            raise AssertionError(f"worker died: {self.close()}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> str:
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                self._proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(TIMEOUT)
        assert self._proc.stderr is not None
        return self._proc.stderr.read()


@contextmanager
def workers(
    credential: Credential, hosts: Sequence[Path], per_host: int, store: str | None, ttl: str
) -> Iterator[list[Worker]]:
    started = [Worker(credential, host, store, ttl) for host in hosts for _ in range(per_host)]
    try:
        yield started
    finally:
        for worker in started:
            worker.close()


def run_round(fleet: Sequence[Worker]) -> list[dict[str, Any]]:
    """Every worker asks for a token at once; their answers."""
    for worker in fleet:
        worker.send()
    return [worker.answer() for worker in fleet]


def wait_for_window_end(answers: Sequence[dict[str, Any]], ttl: timedelta) -> None:
    """Until every entry the round stored is older than the TTL (a new window),
    bounded by the TTL itself: the end of a window is an event of the data."""
    end = max(datetime.fromisoformat(a["saved_at"]) for a in answers) + ttl
    deadline = time.monotonic() + ttl.total_seconds() + 5
    while datetime.now(UTC) <= end:
        assert time.monotonic() < deadline, "the window did not end"
        time.sleep(min(0.05, max(0.0, (end - datetime.now(UTC)).total_seconds())))


def _serve() -> int:
    from stacktoken import RedisStore, TokenSource

    for line in sys.stdin:
        command = json.loads(line)
        store = RedisStore(command["store"]) if command["store"] else None
        try:
            source = TokenSource.from_client_credentials(
                stack_uri=command["stack_uri"],
                client_id=command["client_id"],
                client_secret=os.environ["STACKTOKEN_CLIENT_SECRET"],
                cache_dir=command["cache_dir"],
                cache_ttl=command["ttl"],
                store=store,
            )
            with source:
                result = source.token_result()
            token = result.value_or(None)
            answer = (
                {"ok": False, "error": type(result.failure()).__name__}
                if token is None
                else {
                    "ok": True,
                    "token": token.access_token,
                    "saved_at": token.saved_at.isoformat() if token.saved_at else None,
                }
            )
        except Exception as error:  # the test reports it; a worker must answer
            answer = {"ok": False, "error": type(error).__name__}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_serve())
