"""Writers SIGKILLed at random moments never leave a torn file, and their
leftover temp files are bounded and removed by the next write.

`crash_writer.py` forks writers that loop over the real `write_atomic` of
`api_token_cache.json` and `accesses.json` under the real stack lock; the test
kills each one at a random moment and then inspects the folder. The kills land
while the lock is held too, so this also shows, hundreds of times, that a
killed holder never blocks the next writer.
"""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from crash_writer import VERSIONS
from oauth_servers import decode_jwt_unverified
from reliability_helpers import (
    STACK_FOLDER_FILES,
    assert_files_intact,
    assert_ok,
    stack_folder_names,
    temp_files,
    write_accesses,
)
from reliability_matrix import CRASH_KILLS, HEAVY_ENV
from stacktoken.core import ACCESSES_FILE, CACHE_FILE, decode_accesses, decode_cache_entry
from stacktoken.shell._files import write_atomic

from conftest import World

CRASH_WRITER = Path(__file__).with_name("crash_writer.py")
#: A writer's loop (two fsynced writes under the lock) takes ~8 ms here: kills
#: spread over a few of them hit every phase, from the lock to the rename.
MAX_KILL_DELAY = 0.02
LINE_TIMEOUT = 10.0


class Zygote:
    """The crash writer's command channel, every read bounded in time."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdin is not None and process.stdout is not None
        self._process = process
        self._stdin = process.stdin
        self._fd = process.stdout.fileno()
        self._buffer = b""

    def ask(self, command: str) -> str:
        self._stdin.write(command.encode() + b"\n")
        self._stdin.flush()
        return self.line()

    def line(self) -> str:
        deadline = time.monotonic() + LINE_TIMEOUT
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([self._fd], [], [], max(0.0, remaining))
            if not ready:
                raise TimeoutError("the crash writer did not answer")
            chunk = os.read(self._fd, 4096)
            if not chunk:
                raise EOFError(f"the crash writer exited ({self._process.poll()})")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()


@contextmanager
def zygote(folder: Path) -> Iterator[Zygote]:
    process = subprocess.Popen(
        [sys.executable, str(CRASH_WRITER), "zygote", str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
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


def kills() -> int:
    ci, heavy = CRASH_KILLS
    return heavy if os.environ.get(HEAVY_ENV) == "1" else ci


def assert_old_or_new(folder: Path) -> None:
    """Each file holds exactly one of its two versions, and decodes."""
    for name, versions in VERSIONS.items():
        data = (folder / name).read_bytes()
        assert data in versions, f"{name} is torn or mixed ({len(data)} bytes)"
    decode_cache_entry((folder / CACHE_FILE).read_bytes()).unwrap()
    decode_accesses((folder / ACCESSES_FILE).read_bytes()).unwrap()


def leftovers_by_target(folder: Path) -> Counter[str]:
    counts: Counter[str] = Counter()
    for path in temp_files(folder):
        target = next(name for name in VERSIONS if path.name.startswith(f".{name}."))
        counts[target] += 1
    return counts


@pytest.mark.timeout(900)  # the heavy form; CI's takes seconds
def test_crash_sigkilled_writers_leave_old_or_new_never_a_mix(tmp_path: Path) -> None:
    """Hundreds of SIGKILLs at random moments: no torn file, bounded leftovers."""
    folder = tmp_path / "stack"
    seed = random.randrange(1 << 32)
    chooser = random.Random(seed)
    total = kills()
    mid_write = 0
    with zygote(folder) as writers:
        for kill in range(total):
            pid = int(writers.ask("spawn"))
            time.sleep(chooser.uniform(0, MAX_KILL_DELAY))
            os.kill(pid, signal.SIGKILL)
            status = int(writers.ask(f"reap {pid}"))
            assert status == -signal.SIGKILL, f"kill {kill} (seed {seed}): writer ended {status}"
            assert_old_or_new(folder)
            leftovers = leftovers_by_target(folder)
            # Each writer sweeps a target's leftovers before writing it: at most
            # the one temp file of the write it was killed in survives per target.
            assert max(leftovers.values(), default=0) <= 1, (kill, seed, leftovers)
            assert set(os.listdir(folder)) - {p.name for p in temp_files(folder)} <= (
                STACK_FOLDER_FILES
            )
            mid_write += bool(leftovers)
    print(f"crash: {total} SIGKILLs, {mid_write} left a temp file (seed {seed})")
    # Not vacuous: a good share of the kills landed between a temp file's
    # creation and its rename.
    assert mid_write >= total // 10, f"only {mid_write} of {total} kills hit a write (seed {seed})"
    # The next sweeping write of each file removes what killed writers left.
    for name, versions in VERSIONS.items():
        write_atomic(folder / name, versions[0], sweep=True).unwrap()
    assert temp_files(folder) == []
    assert_old_or_new(folder)


def test_crash_leftover_temp_files_are_removed_by_the_next_run(world: World) -> None:
    """Temp files a killed writer left in a real stack folder go with the next cold run."""
    write_accesses(world, exp_in=-120)  # the run rewrites both files
    folder = world.profile.stack_dir
    for name in (ACCESSES_FILE, CACHE_FILE):
        for suffix in ("k1l", "z9q"):
            (folder / f".{name}.{suffix}.tmp").write_bytes(b'{"token": "half-writ')
    assert_ok(world.run("token"))
    assert stack_folder_names(world) == STACK_FOLDER_FILES
    assert_files_intact(world)
    document = decode_jwt_unverified(
        decode_accesses((folder / ACCESSES_FILE).read_bytes()).unwrap().token
    )
    assert document["exp"] > time.time()
