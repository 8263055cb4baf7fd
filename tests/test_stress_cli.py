"""Stress: many CLI processes at once, `token` mixed with `cache clear`.

CI runs the reduced form; `STACKTOKEN_HEAVY=1` runs the full one (see
`reliability_matrix.STRESS` and docs/reliability.md).
"""

from __future__ import annotations

import math
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from reliability_helpers import STACK_FOLDER_FILES, assert_files_intact, write_accesses
from reliability_matrix import HEAVY_ENV, STRESS

from conftest import World

CLEAR_SHARE = 0.2
#: Half of the workers use this TTL, so the cache also expires during the run.
SHORT_TTL_SECONDS = 2


def shape() -> tuple[int, int]:
    ci, heavy = STRESS
    return heavy if os.environ.get(HEAVY_ENV) == "1" else ci


@pytest.mark.timeout(900)  # the heavy form; CI's takes seconds
def test_stress_token_and_cache_clear_from_many_processes(world: World) -> None:
    """Zero failures, zero tracebacks, no more exchanges than clears and TTLs require."""
    processes, runs = shape()
    write_accesses(world, exp_in=-120)  # the first runs race to refresh as well
    seed = random.randrange(1 << 32)
    chooser = random.Random(seed)
    plans = [
        ["clear" if chooser.random() < CLEAR_SHARE else "token" for _ in range(runs)]
        for _ in range(processes)
    ]
    clears = sum(plan.count("clear") for plan in plans)

    def worker(index: int) -> list[tuple[str, int, str, str]]:
        ttl = f"{SHORT_TTL_SECONDS}s" if index % 2 else "5m"
        outcomes = []
        for command in plans[index]:
            if command == "clear":
                result = world.run("cache", "clear")
            else:
                result = world.run("token", "--stack-token-cache-ttl", ttl)
            outcomes.append((command, result.returncode, result.stdout, result.stderr))
        return outcomes

    started = time.monotonic()
    with ThreadPoolExecutor(processes) as pool:
        results = [run for runs_of in pool.map(worker, range(processes)) for run in runs_of]
    elapsed = time.monotonic() - started

    print(
        f"stress: {processes}x{runs} runs in {elapsed:.1f}s, {clears} clears, "
        f"{world.exchanges()} exchanges (seed {seed})"
    )
    failures = [(command, code, err) for command, code, _, err in results if code or err]
    assert not failures, f"seed {seed}: {failures[:3]}"
    tokens = {out.strip() for command, _, out, _ in results if command == "token"}
    exchanges = world.exchanges()
    # Every exchange is caused by a clear, by the TTL window of a short-TTL
    # worker (at most one per window), or is the very first.
    allowed = 1 + clears + math.ceil(elapsed / SHORT_TTL_SECONDS) + 1
    assert exchanges <= allowed, (exchanges, clears, elapsed, seed)
    assert len(tokens) == exchanges  # each token printed was issued by one exchange
    assert world.membership.count(world.membership.TOKEN) == 1  # one refresh, under the lock
    assert_files_intact(world)
    assert set(os.listdir(world.profile.stack_dir)) <= STACK_FOLDER_FILES
    issued = {token.access_token for token in world.stack.issued_tokens}
    assert tokens <= issued
    sample = sorted(tokens)[:5]
    for token in sample:
        answer = httpx.get(
            world.stack.resource_url, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert answer.status_code == 200
