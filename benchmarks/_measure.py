"""Measuring tools for benchmarks/run.py: stdlib only, nothing about stacktoken.

- `alternate` times child processes, one round at a time, each round running
  every command once (rotating which goes first), so that a busy moment of a
  shared machine hits all of them alike. Each child is started with
  `os.posix_spawn` and reaped with `os.wait4`, which returns that child's own
  resource usage: its CPU time (user + sys) is exact, whatever else runs.
- `Ratio` compares two commands three ways: ratio of medians (the figure the
  targets use), ratio of minimums (the least noisy hint), and the median of the
  per-round ratios (paired: both runs of a pair saw the same moment).
- `hyperfine` runs the same comparison through hyperfine, when installed.
- `timeit_rounds` runs `timeit` in a child interpreter, alternating statements.
- `importtime` reads `-X importtime` (PYTHONPROFILEIMPORTTIME) over several runs.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

Hook = Callable[[], None]


@dataclass(frozen=True)
class Command:
    """A process to time: `prepare` runs untimed before each run, `verify` after it."""

    label: str
    argv: tuple[str, ...]
    shown: str  # the command as a reader would type it
    prepare: Hook | None = None
    verify: Hook | None = None
    env: Mapping[str, str] | None = None  # replaces the section's environment


@dataclass(frozen=True)
class Sample:
    wall: float  # seconds, spawn to reap
    cpu: float  # seconds, user + sys of the child (os.wait4)


@dataclass(frozen=True)
class Measured:
    command: Command
    samples: tuple[Sample, ...]

    def walls(self) -> list[float]:
        return [sample.wall for sample in self.samples]

    def cpus(self) -> list[float]:
        return [sample.cpu for sample in self.samples]

    def median_ms(self, metric: str) -> float:
        return statistics.median(self._values(metric)) * 1000

    def min_ms(self, metric: str) -> float:
        return min(self._values(metric)) * 1000

    def _values(self, metric: str) -> list[float]:
        return self.walls() if metric == "wall" else self.cpus()


@dataclass(frozen=True)
class Ratio:
    """`subject` over `baseline`: ratio of medians, of minimums, and median paired ratio."""

    of_medians: float
    of_mins: float
    paired: float

    @classmethod
    def of(cls, subject: Sequence[float], baseline: Sequence[float]) -> Ratio:
        pairs = [s / b for s, b in zip(subject, baseline, strict=True) if b > 0]
        return cls(
            of_medians=statistics.median(subject) / statistics.median(baseline),
            of_mins=min(subject) / min(baseline),
            paired=statistics.median(pairs) if pairs else math.nan,
        )

    @classmethod
    def between(cls, subject: Measured, baseline: Measured, metric: str) -> Ratio:
        if metric == "wall":
            return cls.of(subject.walls(), baseline.walls())
        return cls.of(subject.cpus(), baseline.cpus())

    def text(self) -> str:
        return f"{self.of_medians:.2f}x · {self.of_mins:.2f}x · {self.paired:.2f}x"


class RunFailed(RuntimeError):
    pass


def run_once(argv: Sequence[str], env: Mapping[str, str]) -> Sample:
    """One child, its output discarded: wall time and its own CPU time."""
    with tempfile.NamedTemporaryFile(prefix="bench-stderr-") as stderr:
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
            (os.POSIX_SPAWN_OPEN, 2, stderr.name, os.O_WRONLY | os.O_TRUNC, 0),
        ]
        started = time.perf_counter()
        pid = os.posix_spawn(argv[0], list(argv), dict(env), file_actions=actions)
        _, status, usage = os.wait4(pid, 0)
        wall = time.perf_counter() - started
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            message = Path(stderr.name).read_text(errors="replace").strip()
            raise RunFailed(f"{shlex.join(argv)} exited {code}: {message[-2000:]}")
    return Sample(wall=wall, cpu=usage.ru_utime + usage.ru_stime)


def alternate(
    commands: Sequence[Command], env: Mapping[str, str], rounds: int, warmup: int = 1
) -> list[Measured]:
    """Each command `warmup` + `rounds` times, round by round; results in the given order."""
    samples: list[list[Sample]] = [[] for _ in commands]
    for index in range(warmup + rounds):
        start = index % len(commands)
        for position in [*range(start, len(commands)), *range(start)]:
            command = commands[position]
            if command.prepare is not None:
                command.prepare()
            sample = run_once(command.argv, command.env if command.env is not None else env)
            if command.verify is not None:
                command.verify()
            if index >= warmup:
                samples[position].append(sample)
    return [Measured(command, tuple(got)) for command, got in zip(commands, samples, strict=True)]


@dataclass(frozen=True)
class HyperfineRow:
    command: Command
    median_ms: float
    min_ms: float
    cpu_mean_ms: float  # hyperfine reports user and system as means only


def hyperfine(
    commands: Sequence[Command], env: Mapping[str, str], runs: int
) -> list[HyperfineRow] | None:
    """The same commands through hyperfine (one batch per command); None when not installed."""
    tool = shutil.which("hyperfine")
    if tool is None:
        return None
    with tempfile.TemporaryDirectory(prefix="bench-hyperfine-") as folder:
        export = Path(folder) / "hyperfine.json"
        subprocess.run(
            [tool, "-N", "--warmup", "3", "--runs", str(runs), "--export-json", str(export)]
            + [shlex.join(command.argv) for command in commands],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=dict(env),
            check=True,
        )
        results = json.loads(export.read_text())["results"]
    return [
        HyperfineRow(
            command=command,
            median_ms=result["median"] * 1000,
            min_ms=result["min"] * 1000,
            cpu_mean_ms=(result["user"] + result["system"]) * 1000,
        )
        for command, result in zip(commands, results, strict=True)
    ]


_TIMEIT_DRIVER = """
import json, sys, timeit
statements = json.loads(sys.argv[1])
number, repeat = int(sys.argv[2]), int(sys.argv[3])
timers = {label: timeit.Timer(code, globals=globals()) for label, code in statements.items()}
rounds = {label: [] for label in statements}
for _ in range(repeat):
    for label, timer in timers.items():
        rounds[label].append(timer.timeit(number) / number * 1e9)
print(json.dumps(rounds))
"""


def timeit_rounds(
    python: str,
    setup: str,
    statements: Mapping[str, str],
    env: Mapping[str, str],
    number: int,
    repeat: int,
) -> dict[str, list[float]]:
    """ns per execution of each statement, `repeat` alternating rounds of `number`,
    in a child `python` after `setup` (whose globals the statements see)."""
    code = setup + "\n" + _TIMEIT_DRIVER
    done = subprocess.run(
        [python, "-c", code, json.dumps(statements), str(number), str(repeat)],
        capture_output=True,
        text=True,
        env=dict(env),
        check=False,
    )
    if done.returncode != 0:
        raise RunFailed(f"timeit child failed: {done.stderr.strip()[-2000:]}")
    rounds: dict[str, list[float]] = json.loads(done.stdout)
    return rounds


@dataclass(frozen=True)
class ImportLine:
    module: str
    parent: str | None
    self_us: int
    cumulative_us: int


@dataclass
class ImportProfile:
    """Medians over runs of each module's self and cumulative import time, in ms."""

    runs: int
    self_ms: dict[str, float] = field(default_factory=dict)
    cumulative_ms: dict[str, float] = field(default_factory=dict)
    parent: dict[str, str | None] = field(default_factory=dict)

    def modules(self) -> list[str]:
        return list(self.self_ms)


def importtime(
    argv: Sequence[str], env: Mapping[str, str], runs: int, prepare: Hook | None = None
) -> ImportProfile:
    """`argv` run `runs` times with PYTHONPROFILEIMPORTTIME=1 (works for console
    scripts too); modules seen in every run, with median times."""
    selfs: dict[str, list[float]] = {}
    cumulatives: dict[str, list[float]] = {}
    parents: dict[str, str | None] = {}
    for _ in range(runs):
        if prepare is not None:
            prepare()
        for line in _importtime_once(argv, env):
            selfs.setdefault(line.module, []).append(line.self_us / 1000)
            cumulatives.setdefault(line.module, []).append(line.cumulative_us / 1000)
            parents.setdefault(line.module, line.parent)
    profile = ImportProfile(runs=runs)
    for module, values in selfs.items():
        if len(values) == runs:
            profile.self_ms[module] = statistics.median(values)
            profile.cumulative_ms[module] = statistics.median(cumulatives[module])
            profile.parent[module] = parents[module]
    return profile


def _importtime_once(argv: Sequence[str], env: Mapping[str, str]) -> list[ImportLine]:
    done = subprocess.run(
        list(argv),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**env, "PYTHONPROFILEIMPORTTIME": "1"},
        check=False,
    )
    if done.returncode != 0:
        raise RunFailed(f"{shlex.join(argv)} failed under importtime: {done.stderr[-2000:]}")
    # Lines come after the imports they caused (post-order), indented by depth:
    # read backwards, each line's parent is the last one seen one level up.
    found: list[ImportLine] = []
    ancestors: list[str] = []
    for text in reversed(done.stderr.splitlines()):
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", text)
        if match is None:
            continue
        depth = (len(match.group(3)) - 1) // 2
        del ancestors[depth:]
        parent = ancestors[-1] if ancestors else None
        ancestors.append(match.group(4))
        found.append(ImportLine(match.group(4), parent, int(match.group(1)), int(match.group(2))))
    return found


def package_kind(package: str, ours: str) -> str:
    """ours, stdlib, third-party, or absent (importtime logs failed imports too)."""
    if package == ours:
        return "ours"
    try:
        found = importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        return "absent (import tried)"
    if package in sys.stdlib_module_names or package.startswith("_"):
        return "stdlib"
    return "third-party"


def machine(python: str) -> list[str]:
    """The machine, as markdown bullet lines."""
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return [
        f"- CPU: {model}; `nproc` {usable} (of {os.cpu_count()} online)",
        f"- Python {platform.python_version()} ({platform.python_implementation()}), `{python}`",
        f"- OS: {_os_name()}, {platform.system()} {platform.release()} ({platform.machine()})",
        f"- load average at the start: {load_average()}",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
    ]


def load_average() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def _os_name() -> str:
    try:
        release = platform.freedesktop_os_release()
    except OSError:
        return platform.platform()
    return release.get("PRETTY_NAME", platform.platform())


def markdown_table(
    header: Sequence[str], rows: Iterable[Sequence[str]], left: int = 1
) -> list[str]:
    """A markdown table whose first `left` columns are left-aligned, the rest right-aligned."""
    aligns = ["---" if i < left else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(aligns) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines
