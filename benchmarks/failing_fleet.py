"""Token requests per minute from a failing fleet, with and without failure memory.

A fleet of P worker processes on one host (one cache dir), each asking for a
token in a loop with a fresh `TokenSource.from_client_credentials` per call (a
new process's memory, without an interpreter start per call), against a stack
that rejects the secret (`invalid_client`) or answers 503 to every token
request. Without the memory (`FailureKnobs(window=0, first=0, cap=0)`: nothing
is ever in force), every call asks; with the defaults, the host asks about once
a rejection window (60 s), or once a backoff step while the endpoint fails.

    python benchmarks/failing_fleet.py [--processes 8] [--seconds 10]

Prints requests per minute for each case (measured over `--seconds`, scaled).
"""

from __future__ import annotations

import argparse
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from oauth_servers import (  # noqa: E402 (tests/ goes on the path first)
    CLIENT_CREDENTIALS_GRANT_TYPE,
    Fault,
    MembershipServer,
    StackAuthServer,
)

WORKER = """
import sys, time
from stacktoken import FailureKnobs, TokenSource, StackTokenError
uri, client_id, secret, cache_dir, memory, seconds = sys.argv[1:]
knobs = FailureKnobs() if memory == "on" else FailureKnobs(window=0, first=0, cap=0)
deadline = time.monotonic() + float(seconds)
calls = 0
while time.monotonic() < deadline:
    source = TokenSource.from_client_credentials(
        stack_uri=uri, client_id=client_id, client_secret=secret,
        cache_dir=cache_dir, environ={}, failures=knobs,
    )
    try:
        source.token()
    except StackTokenError:
        pass
    finally:
        source.close()
    calls += 1
print(calls)
"""


def run_case(kind: str, memory: str, processes: int, seconds: float) -> tuple[int, int]:
    """(token requests, calls) of `processes` workers for `seconds`."""
    with MembershipServer() as membership, StackAuthServer(membership) as stack:
        client = stack.add_client(f"svc-{secrets.token_hex(4)}", secrets.token_urlsafe(24))
        secret = "wrong-" + secrets.token_hex(8) if kind == "rejected" else client.client_secret
        if kind == "503":
            stack.inject(StackAuthServer.TOKEN, *[Fault.status(503)] * 100_000)
        with tempfile.TemporaryDirectory() as cache_dir:
            args = [stack.stack_uri, client.client_id, secret, cache_dir, memory, str(seconds)]
            workers = [
                subprocess.Popen(
                    [sys.executable, "-c", WORKER, *args],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    text=True,
                )
                for _ in range(processes)
            ]
            calls = 0
            for worker in workers:
                out, _ = worker.communicate(timeout=seconds + 120)
                calls += int(out.strip() or 0)
        return stack.count_grant(CLIENT_CREDENTIALS_GRANT_TYPE), calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    options = parser.parse_args()
    print(f"{options.processes} processes, {options.seconds:g} s, one host")
    print("| failure | memory | token requests | calls | requests/min |")
    print("|---|---|---|---|---|")
    for kind in ("rejected", "503"):
        for memory in ("off", "on"):
            started = time.monotonic()
            requests, calls = run_case(kind, memory, options.processes, options.seconds)
            per_minute = requests * 60 / max(options.seconds, time.monotonic() - started)
            print(f"| {kind} | {memory} | {requests} | {calls} | {per_minute:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
