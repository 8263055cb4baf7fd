"""The request counts that benchmarks/run.py's `sdk-auth` section reports (issues 10, 12).

N short-lived processes, each making one `sdk.ledger.v2.get_info()` with the
real formance-sdk-python: with the SDK's own `security` (its in-memory
client-credentials hook) every process asks the stack for a token; with
`formance_sdk` on a client-credentials TokenSource over one cache dir, the
first one does and the others read its cache. The processes are the
benchmark's own child script, so the table and this test cannot drift apart.
Counts only, never timings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ledger_stub import LedgerStub, ledger_stub
from oauth_servers import (
    ConfidentialClient,
    StackAuthServer,
    membership_server,
    stack_oauth_client,
    stack_server,
)

from conftest import CLI_TIMEOUT_SECONDS

__all__ = ["ledger_stub", "membership_server", "stack_oauth_client", "stack_server"]

SDK_CHILD = Path(__file__).resolve().parent.parent / "benchmarks" / "_sdk_child.py"
SECRET_VARIABLE = "BENCH_SDK_CLIENT_SECRET"  # what _sdk_child.py reads (never argv)
PROCESSES = 4


def _processes(
    kind: str, client: ConfidentialClient, stub: LedgerStub, cache_dir: Path
) -> list[str]:
    """PROCESSES child processes, one after the other; their stderr, each checked."""
    config = {
        "stack_uri": stub.server_url,
        "client_id": client.client_id,
        "cache_dir": str(cache_dir),
        "info_url": stub.info_url,
    }
    env = {**os.environ, SECRET_VARIABLE: client.client_secret}
    failures = []
    for _ in range(PROCESSES):
        done = subprocess.run(
            [sys.executable, str(SDK_CHILD), "call", kind, json.dumps(config)],
            capture_output=True,
            text=True,
            env=env,
            timeout=CLI_TIMEOUT_SECONDS,
            check=False,
        )
        if done.returncode != 0:
            failures.append(f"exit {done.returncode}: {done.stderr.strip()[-500:]}")
    return failures


def _methods(stack: StackAuthServer) -> list[str]:
    return [request.auth_method for request in stack.client_credentials_requests]


def test_sdk_requests_own_hook_asks_once_per_process(
    ledger_stub: LedgerStub,
    stack_server: StackAuthServer,
    stack_oauth_client: ConfidentialClient,
    tmp_path: Path,
) -> None:
    assert _processes("own", stack_oauth_client, ledger_stub, tmp_path / "unused") == []
    assert ledger_stub.accepted == PROCESSES
    assert stack_server.count(stack_server.TOKEN) == PROCESSES
    # The SDK's hook, not stacktoken: it sends the secret in the form.
    assert _methods(stack_server) == ["client_secret_post"] * PROCESSES
    assert stack_server.count(stack_server.DISCOVERY) == 0


def test_sdk_requests_on_stacktoken_ask_once_for_all_processes(
    ledger_stub: LedgerStub,
    stack_server: StackAuthServer,
    stack_oauth_client: ConfidentialClient,
    tmp_path: Path,
) -> None:
    cache_dir = tmp_path / "cache"
    assert _processes("stacktoken", stack_oauth_client, ledger_stub, cache_dir) == []
    assert ledger_stub.accepted == PROCESSES
    assert stack_server.count(stack_server.TOKEN) == 1
    # stacktoken's request (Basic auth, as the stack's discovery lists it), not the SDK hook's.
    assert _methods(stack_server) == ["client_secret_basic"]
    assert stack_server.count(stack_server.DISCOVERY) == 1
    assert ledger_stub.unauthorized == 0
