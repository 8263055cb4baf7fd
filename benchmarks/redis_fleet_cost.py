"""What a fleet's cold start costs the shared store: Redis commands per host and wall time.

    python benchmarks/redis_fleet_cost.py [--hosts 10,20,50] [--holds 0.1,1,3]
                                          [--baseline REV] [--out FILE]

H hosts (one cache dir each, one `stacktoken token --store URL` process each)
start cold at once on one real `redis-server` (127.0.0.1), with a machine
credential, the stack holding its token answer for the given time, as a slow
auth server does. For each H x hold it prints the token requests (1 expected),
the Redis commands (`INFO commandstats` before and after, the commands of a
script included) in all and per host, and the fleet's wall time (the first
start to the last exit).

"with notification" is this checkout: waiters subscribe to the lock's channel
and are told. `--baseline REV` also measures a commit of this repository
(by default none) run the same way, e.g. the commit before notification,
where waiters poll `SET NX` + `GET` until the value changes. The interpreter
running this script must have this checkout's dependencies (its venv).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from oauth_servers import (  # noqa: E402 - the test servers live in tests/
    CLIENT_CREDENTIALS_GRANT_TYPE,
    Fault,
    MembershipServer,
    StackAuthServer,
)
from redis_server import RedisServer  # noqa: E402

SECRET = "bench-fleet-secret-0123456789abcdef"


def commands(server: RedisServer) -> int:
    """Commands run so far, those of scripts included (RESP2: this client sends no HELLO)."""
    stats = server.client(protocol=2).info("commandstats")
    return sum(int(e["calls"]) for name, e in stats.items() if not name.startswith("cmdstat_info"))


def source_tree(revision: str, scratch: Path) -> Path:
    """A folder to put on PYTHONPATH that imports `stacktoken` from `revision`
    (exported with `git archive`: no worktree is registered)."""
    checkout = scratch / "checkout"
    checkout.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", revision], check=True, capture_output=True
    )
    subprocess.run(["tar", "-x", "-C", str(checkout)], input=archive.stdout, check=True)
    tree = scratch / "path"
    package = tree / "stacktoken"
    shutil.copytree(checkout / "api", package)
    (package / "core").symlink_to(checkout / "core")
    (package / "shell").symlink_to(checkout / "shell")
    return tree


def fleet(
    stack: StackAuthServer,
    redis: RedisServer,
    client_id: str,
    hosts: int,
    hold: float,
    pythonpath: Path | None,
) -> tuple[int, int, float]:
    """Token requests, Redis commands and wall time (s) of one cold fleet."""
    redis.client(protocol=2).flushall()
    folder = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    env = {**os.environ, "STACKTOKEN_CLIENT_SECRET": SECRET}
    env.pop("STACKTOKEN_REDIS_URL", None)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    stack.inject(stack.TOKEN, Fault.delay(hold))
    requests = stack.count_grant(CLIENT_CREDENTIALS_GRANT_TYPE)
    before = commands(redis)
    began = time.monotonic()
    argv = ["token", "--stack-uri", stack.stack_uri, "--client-id", client_id]
    argv += ["--store", redis.url]
    running = [
        subprocess.Popen(
            [sys.executable, "-m", "stacktoken", "--cache-dir", str(folder / f"host-{h}"), *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for h in range(hosts)
    ]
    tokens = {process.communicate(timeout=300)[0] for process in running}
    wall = time.monotonic() - began
    spent = commands(redis) - before
    shutil.rmtree(folder, ignore_errors=True)
    if any(p.returncode != 0 for p in running) or len(tokens) != 1:
        raise SystemExit(f"the fleet failed: {len(tokens)} tokens")
    return stack.count_grant(CLIENT_CREDENTIALS_GRANT_TYPE) - requests, spent, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", default="10,20,50")
    parser.add_argument("--holds", default="0.1,1,3")
    parser.add_argument("--baseline", help="a commit to measure too (polling waiters)")
    parser.add_argument("--out", help="also write the table to this file")
    options = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-redis-fleet-"))
    variants: list[tuple[str, Path | None]] = [("notified", None)]
    if options.baseline:
        variants.append((f"polling ({options.baseline})", source_tree(options.baseline, scratch)))
    lines = [
        "| waiters | hosts | exchange held | token requests | Redis commands | per host | wall |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    try:
        with (
            MembershipServer() as membership,
            StackAuthServer(membership) as stack,
            RedisServer(scratch / "redis") as redis,
        ):
            for index, (name, path) in enumerate(variants):
                for hosts in map(int, options.hosts.split(",")):
                    for hold in map(float, options.holds.split(",")):
                        client_id = f"bench-{index}-{hosts}-{hold}"
                        stack.add_client(client_id, SECRET)
                        asked, spent, wall = fleet(stack, redis, client_id, hosts, hold, path)
                        line = (
                            f"| {name} | {hosts} | {hold:g} s | {asked} | {spent} "
                            f"| {spent / hosts:.1f} | {wall:.1f} s |"
                        )
                        lines.append(line)
                        print(line, flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if options.out:
        Path(options.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
