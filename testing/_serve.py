"""``python -m stacktoken.testing serve``: the sandbox as a process, for tests elsewhere."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import sys
import threading
from pathlib import Path
from typing import TextIO

from stacktoken.testing._sandbox import Sandbox

__all__ = ["serve"]


def _write_env_file(path: Path, env: dict[str, str]) -> None:
    lines = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(env.items()))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(lines)


def serve(*, seconds: float, workdir: str | None, out: TextIO = sys.stdout) -> int:
    """Serve until Ctrl-C, SIGTERM or ``seconds``; print the URLs and the environment.

    The machine credential's secret goes to a 0600 env file, never to the output.
    """
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with Sandbox(workdir=workdir, lifetime=seconds + 5) as sandbox:
            profile = sandbox.fctl_profile()
            client = sandbox.client()
            env = {**sandbox.env(), **client.env()}
            env_file = sandbox.workdir / "sandbox.env"
            _write_env_file(env_file, env)
            shown = {k: v for k, v in env.items() if k != "STACKTOKEN_CLIENT_SECRET"}
            print(f"membership IdP  {sandbox.membership_uri}", file=out)
            print(f"stack           {sandbox.stack_uri}", file=out)
            print(f"ledger          {sandbox.ledger.info_url}", file=out)
            print(f"fctl profile    {profile.config_dir} (logged in)", file=out)
            print(f"machine client  {client.client_id} (secret in the env file)", file=out)
            print("\nenvironment (all of it, secret included, in the env file):", file=out)
            for key, value in sorted(shown.items()):
                print(f"  {key}={shlex.quote(value)}", file=out)
            print(f"\n  . {shlex.quote(str(env_file))}", file=out)
            print(
                f"\nserving for {seconds:.0f} s; Ctrl-C or SIGTERM stops it.", file=out, flush=True
            )
            with contextlib.suppress(KeyboardInterrupt):
                stop.wait(seconds)
        print("stopped.", file=out)
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
