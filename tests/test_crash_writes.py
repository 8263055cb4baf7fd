"""Writers SIGKILLed inside a write never leave a torn file, and their
leftover temp files are bounded and removed by the next write.

`crash_writer.py` forks writers that loop over the real `write_atomic` of
`api_token_cache.json` and `accesses.json` under the real stack lock; each
writer stops at a step the test chooses (its temp file created, filled,
fsynced, renamed, or the lock just taken), reports it, and is killed there:
the kill lands inside the write by construction, never by timing. The test
then inspects the folder. Every kill lands while the lock is held, so this
also shows, hundreds of times, that a killed holder never blocks the next
writer.
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
from crash_writer import FILE_STEPS, IN_WRITE, STEPS, VERSIONS
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
from stacktoken.core._cache_codec import decode_cache_entry
from stacktoken.core._codecs import decode_accesses
from stacktoken.core._paths import ACCESSES_FILE, CACHE_FILE
from stacktoken.core._types import CachedToken, StackAccess
from stacktoken.shell._files import Place, write_atomic

from conftest import World

CRASH_WRITER = Path(__file__).with_name("crash_writer.py")
LINE_TIMEOUT = 10.0
#: A writer stops in its first or its second pass over both files, so each
#: file's every step is hit writing either version.
STOPS = 2 * len(STEPS)


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
    assert isinstance(decode_cache_entry((folder / CACHE_FILE).read_bytes()), CachedToken)
    assert isinstance(decode_accesses((folder / ACCESSES_FILE).read_bytes()).unwrap(), StackAccess)


def leftovers_by_target(folder: Path) -> Counter[str]:
    counts: Counter[str] = Counter()
    for path in temp_files(folder):
        target = next(name for name in VERSIONS if path.name.startswith(f".{name}."))
        counts[target] += 1
    return counts


@pytest.mark.timeout(900)  # the heavy form; CI's takes seconds
def test_crash_sigkilled_writers_leave_old_or_new_never_a_mix(tmp_path: Path) -> None:
    """Hundreds of SIGKILLs, each inside a write: no torn file, bounded leftovers."""
    folder = tmp_path / "stack"
    seed = random.randrange(1 << 32)
    chooser = random.Random(seed)
    total = kills()
    assert total >= STOPS
    # Every stop in turn, in a shuffled order: each step of each file is hit.
    stops = [stop for _ in range(total // STOPS + 1) for stop in range(STOPS)][:total]
    chooser.shuffle(stops)
    hit: Counter[str] = Counter()
    with zygote(folder) as writers:
        for kill, stop in enumerate(stops):
            where = f"kill {kill} (seed {seed})"
            answer = writers.ask(f"spawn {stop}")
            assert len(answer.split()) == 4, f"{where}: writer {answer}"  # not `PID gone`
            pid_text, step, name, version = answer.split()
            pid = int(pid_text)
            # The writer waits at `step` until killed: the kill lands there.
            assert step in ("locked", *FILE_STEPS), f"{where}: writer {step}"
            os.kill(pid, signal.SIGKILL)
            status = int(writers.ask(f"reap {pid}"))
            assert status == -signal.SIGKILL, f"{where}: writer ended {status}"
            hit["locked" if step == "locked" else f"{step} {name}"] += 1
            assert_old_or_new(folder)
            leftovers = leftovers_by_target(folder)
            # Each writer sweeps a target's leftovers before writing it: at most
            # the one temp file of the write it was killed in survives per target.
            assert max(leftovers.values(), default=0) <= 1, (where, leftovers)
            if step in IN_WRITE:
                # Killed between its temp file's creation and its rename.
                assert leftovers[name] == 1, (where, step, name, leftovers)
            if step == "renamed":
                assert leftovers[name] == 0, (where, step, name, leftovers)
                assert (folder / name).read_bytes() == VERSIONS[name][int(version)], where
            assert set(os.listdir(folder)) - {p.name for p in temp_files(folder)} <= (
                STACK_FOLDER_FILES
            )
    print(f"crash: {total} SIGKILLs inside a write, by step: {dict(hit)} (seed {seed})")
    # Not vacuous, by construction: every step of every file was killed in.
    assert set(hit) == set(STEPS), hit
    # The next sweeping write of each file removes what killed writers left.
    for name, versions in VERSIONS.items():
        write_atomic(Place(root=str(folder), parts=(name,)), versions[0], sweep=True).unwrap()
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
