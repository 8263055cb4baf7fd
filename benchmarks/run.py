"""stacktoken's benchmarks, side by side in one run: `python benchmarks/run.py`.

Measures, on this machine and in this one run (see benchmarks/RESULTS.md):

1. a warm `stacktoken token` against `python -c pass`, as wall time;
2. the warm run against the same command with the disk cache off (TTL 0),
   against the loopback OAuth servers of tests/oauth_servers.py;
3. the in-process `TokenSource.token()` on a fresh in-memory token against
   a bare `time.time()` call (timeit);
4. requests per run: first run, cold cache with the discovery document cached,
   warm, refresh needed, and eight concurrent cold processes;

plus where the warm run's time goes (`python -X importtime`). Processes are
timed with `time.perf_counter` around `subprocess.run`, alternating the
commands compared so that a busy moment hits both; `hyperfine` is used as
well when installed. The figures are printed and written to RESULTS.md.
It needs the `test` extra (authlib, for the servers) and takes under a minute.
"""

from __future__ import annotations

import json
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
import timeit
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from oauth_servers import (  # noqa: E402 (tests/ goes on the path first)
    FctlProfile,
    MembershipServer,
    StackAuthServer,
    decode_jwt_unverified,
    write_fctl_profile,
)
from stacktoken import TokenSource  # noqa: E402

RESULTS = ROOT / "benchmarks" / "RESULTS.md"
PYTHON = sys.executable
START_RUNS = 40  # per command, for (1)
TTL0_RUNS = 15  # per command, for (2): each TTL 0 run imports httpx and does a round trip
IMPORTTIME_RUNS = 15
CONCURRENT = 8
TARGET_RATIO = 5.0
ENDPOINT_NAMES = {
    StackAuthServer.DISCOVERY: "stack discovery",
    StackAuthServer.TOKEN: "exchange",
    MembershipServer.DISCOVERY: "membership discovery",
    MembershipServer.TOKEN: "refresh",
}


@dataclass(frozen=True)
class Timing:
    label: str
    command: str
    seconds: tuple[float, ...]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.seconds) * 1000

    @property
    def min_ms(self) -> float:
        return min(self.seconds) * 1000


@dataclass(frozen=True)
class Bench:
    """The loopback servers, an fctl profile pointing at them, and the CLI."""

    membership: MembershipServer
    stack: StackAuthServer
    profile: FctlProfile
    home: Path
    cache_dir: Path

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        # Bytecode is written and used, as for an installed package (pip compiles it).
        unset = ("STACK_TOKEN_CACHE_TTL", "FCTL_CONFIG_DIR", "XDG_CONFIG_HOME")
        env = {k: v for k, v in os.environ.items() if k not in unset and not k.startswith("PYTHON")}
        env.update(
            HOME=str(self.home),
            XDG_CACHE_HOME=str(self.home / ".cache"),
            FCTL_CONFIG_DIR=str(self.profile.config_dir),
        )
        env.update(extra or {})
        return env

    def command(self, *args: str) -> list[str]:
        return [PYTHON, "-m", "stacktoken", "--cache-dir", str(self.cache_dir), *args]

    def run(self, *args: str) -> str:
        done = subprocess.run(
            self.command(*args), capture_output=True, text=True, env=self.env(), check=False
        )
        if done.returncode != 0:
            raise SystemExit(f"stacktoken {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def counts(self) -> dict[str, int]:
        both = {**self.membership.counts(), **self.stack.counts()}
        return {ENDPOINT_NAMES.get(name, name): count for name, count in both.items() if count}

    def reset_counts(self) -> None:
        self.membership.reset_counts()
        self.stack.reset_counts()

    def drop_token_cache(self) -> None:
        self.profile.api_token_cache_path.unlink(missing_ok=True)

    def expire_stack_access(self) -> None:
        """An expired stack access token in `accesses.json`, with a live refresh token."""
        token, refresh = self.membership.mint_stack_access(-120, organization_id="orgA")
        document = {"token": token, "claims": decode_jwt_unverified(token), "refreshToken": refresh}
        path = self.profile.accesses_path
        path.unlink()
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(document, handle)


@contextmanager
def bench_world() -> Iterator[Bench]:
    with (
        tempfile.TemporaryDirectory(prefix="stacktoken-bench-") as folder,
        MembershipServer() as membership,
        StackAuthServer(membership) as stack,
    ):
        root = Path(folder)
        previous = Path.cwd()
        os.chdir(root)  # so that `-m stacktoken` finds the installed package, not ./stacktoken
        try:
            yield Bench(
                membership=membership,
                stack=stack,
                profile=write_fctl_profile(root / "fctl", membership, stack),
                home=root / "home",
                cache_dir=root / "cache",
            )
        finally:
            os.chdir(previous)


def console_script(bench: Bench) -> tuple[str, list[str]] | None:
    """The installed `stacktoken` script, if its entry point is the warm one."""
    script = Path(PYTHON).with_name("stacktoken")
    if not script.is_file() or "shell._warm" not in script.read_text(errors="replace"):
        return None
    return "console script", [str(script), "--cache-dir", str(bench.cache_dir), "token"]


def time_alternating(
    commands: Sequence[tuple[str, list[str]]], env: Mapping[str, str], runs: int
) -> list[Timing]:
    """Run each command `runs` times, alternating them; wall time of each run."""
    times: dict[str, list[float]] = {label: [] for label, _ in commands}
    for _ in range(runs):
        for label, command in commands:
            started = time.perf_counter()
            subprocess.run(command, stdout=subprocess.DEVNULL, env=env, check=True)
            times[label].append(time.perf_counter() - started)
    return [Timing(label, _shown(command), tuple(times[label])) for label, command in commands]


def hyperfine(commands: Sequence[tuple[str, list[str]]], env: Mapping[str, str]) -> list[Timing]:
    """The same comparison through hyperfine, when it is installed."""
    tool = shutil.which("hyperfine")
    if tool is None:
        return []
    with tempfile.TemporaryDirectory() as folder:
        export = Path(folder) / "hyperfine.json"
        subprocess.run(
            [tool, "-N", "--warmup", "3", "--runs", str(START_RUNS), "--export-json", str(export)]
            + [" ".join(command) for _, command in commands],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            check=True,
        )
        results = json.loads(export.read_text())["results"]
    return [
        Timing(label, _shown(command), tuple(result["times"]))
        for (label, command), result in zip(commands, results, strict=True)
    ]


def per_call_ns(call: Callable[[], object], number: int = 200_000, repeat: int = 7) -> float:
    """Median over `repeat` rounds of the cost of one call, in nanoseconds."""
    rounds = timeit.Timer(call).repeat(repeat=repeat, number=number)
    return statistics.median(rounds) / number * 1e9


@dataclass(frozen=True)
class Imported:
    """One line of `python -X importtime`: a module imported, and by whom."""

    module: str
    parent: str | None
    self_us: int
    cumulative_us: int


def importtime_breakdown(bench: Bench) -> list[tuple[str, str, float]]:
    """What a warm run imports beyond `python -c pass`, as (import, imported by,
    median ms): stacktoken's modules by their own time, and each other module that
    stacktoken (or the `-m` machinery) imports first with all it pulls in; largest first."""
    baseline = {line.module for line in _importtime([PYTHON, "-c", "pass"], bench.env())}
    samples: dict[tuple[str, str], list[float]] = {}
    for _ in range(IMPORTTIME_RUNS):
        for line in _importtime(bench.command("token"), bench.env()):
            ours = line.module.split(".")[0] == "stacktoken"
            direct = line.parent is None or line.parent.split(".")[0] == "stacktoken"
            if line.module in baseline or not (ours or direct):
                continue
            micros = line.self_us if ours else line.cumulative_us
            samples.setdefault((line.module, line.parent or "-"), []).append(micros / 1000)
    rows = [(module, parent, statistics.median(ms)) for (module, parent), ms in samples.items()]
    return sorted(rows, key=lambda row: -row[2])


def _importtime(command: list[str], env: Mapping[str, str]) -> list[Imported]:
    done = subprocess.run(
        [command[0], "-X", "importtime", *command[1:]],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        check=True,
    )
    # Lines come after the imports they caused (post-order), indented by depth:
    # read backwards, each line's parent is the last one seen one level up.
    found: list[Imported] = []
    ancestors: list[str] = []
    for line in reversed(done.stderr.splitlines()):
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if match is None:
            continue
        depth = (len(match.group(3)) - 1) // 2
        del ancestors[depth:]
        parent = ancestors[-1] if ancestors else None
        ancestors.append(match.group(4))
        found.append(Imported(match.group(4), parent, int(match.group(1)), int(match.group(2))))
    return found


def requests_of(bench: Bench, *args: str) -> dict[str, int]:
    bench.reset_counts()
    bench.run(*args)
    return bench.counts()


def concurrent_cold(bench: Bench) -> tuple[dict[str, int], int]:
    """Eight cold processes started together: requests, and distinct tokens printed."""
    bench.drop_token_cache()
    bench.reset_counts()
    processes = [
        subprocess.Popen(bench.command("token"), stdout=subprocess.PIPE, text=True, env=bench.env())
        for _ in range(CONCURRENT)
    ]
    outputs = {process.communicate(timeout=60)[0] for process in processes}
    if any(process.returncode != 0 for process in processes):
        raise SystemExit("a concurrent cold run failed")
    return bench.counts(), len(outputs)


def machine() -> list[str]:
    model = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    usable = len(os.sched_getaffinity(0))
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return [
        f"- CPU: {model}, {usable} usable of {os.cpu_count()} (`nproc`: {usable})",
        f"- Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.system()} {platform.release()}",
        f"- stacktoken: {_install_kind()}; bytecode cached (as pip installs it)",
        f"- load average at the start: {load}",
        f"- run at {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
    ]


def _install_kind() -> str:
    import stacktoken

    where = Path(stacktoken.__file__).resolve()
    return "editable install of this checkout" if ROOT in where.parents else f"installed at {where}"


def _shown(command: Sequence[str]) -> str:
    """The command as a reader would type it: no virtualenv or temp paths."""
    words = [Path(command[0]).name if command[0] != PYTHON else "python", *command[1:]]
    return shlex.join(re.sub(r"^/.*/cache$", "D", word) for word in words)


def _counts_text(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in counts.items()) or "none"


def _timing_rows(timings: Sequence[Timing], floor: Timing) -> list[str]:
    rows = [
        f"| command | median ms | min ms | median / {floor.label} | min / {floor.label} |",
        "|---|---:|---:|---:|---:|",
    ]
    for timing in timings:
        rows.append(
            f"| {timing.label} (`{timing.command}`) | {timing.median_ms:.1f} | "
            f"{timing.min_ms:.1f} | {timing.median_ms / floor.median_ms:.2f}x | "
            f"{timing.min_ms / floor.min_ms:.2f}x |"
        )
    return rows


def main() -> int:
    started = time.perf_counter()
    lines: list[str] = []
    with bench_world() as bench:
        env = bench.env()
        # (4) first: the first run ever also fills the caches the rest relies on.
        counts: list[tuple[str, dict[str, int]]] = []
        counts.append(("first run ever (nothing cached)", requests_of(bench, "token")))
        bench.drop_token_cache()
        counts.append(("cold cache, discovery document cached", requests_of(bench, "token")))
        counts.append(("warm (usable cache entry)", requests_of(bench, "token")))
        counts.append(
            ("TTL 0 (disk cache off)", requests_of(bench, "token", "--stack-token-cache-ttl", "0"))
        )

        # (1) warm run against the bare interpreter.
        bench.drop_token_cache()
        bench.run("token")
        bench.reset_counts()
        warm = ("warm `stacktoken token`", bench.command("token"))
        floor_command = ("bare interpreter", [PYTHON, "-c", "pass"])
        reference = ("`import returns.result` alone", [PYTHON, "-c", "import returns.result"])
        script = console_script(bench)
        extra = [script] if script is not None else []
        starts = time_alternating([floor_command, warm, reference, *extra], env, START_RUNS)
        warm_requests = bench.counts()
        by_hyperfine = hyperfine([floor_command, warm], env)

        # (2) warm against TTL 0.
        ttl0 = ("TTL 0 `stacktoken token`", bench.command("token", "--stack-token-cache-ttl", "0"))
        bench.reset_counts()
        cached = time_alternating([warm, ttl0], env, TTL0_RUNS)
        ttl0_requests = bench.counts()

        # (3) in process.
        source = TokenSource.from_fctl(config_dir=bench.profile.config_dir, environ=env)
        with source:
            source.token()
            token_ns = per_call_ns(source.token)
            clock_ns = per_call_ns(time.time)

        breakdown = importtime_breakdown(bench)

        # (4) the rest: a refresh, then eight processes at once.
        bench.drop_token_cache()
        bench.expire_stack_access()
        counts.append(("refresh needed (stack access token expired)", requests_of(bench, "token")))
        together, distinct = concurrent_cold(bench)
        counts.append((f"{CONCURRENT} concurrent cold processes, in total", together))

    floor, warm_timing, reference_timing = starts[:3]
    ratio = warm_timing.median_ms / floor.median_ms
    verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
    imports_ms = sum(ms for _, _, ms in breakdown)
    lines += [
        "# Benchmarks",
        "",
        "Run `python benchmarks/run.py` from the repository root, in the virtualenv with the",
        "`test` extra (the loopback OAuth servers of `tests/oauth_servers.py` use authlib).",
        "It takes under a minute and rewrites this file; the figures below are its last run.",
        "Processes are timed alternately (so a busy moment hits every command alike);",
        "medians, with the minimum as a hint of the noise.",
        "",
        "## Machine",
        "",
        *machine(),
        "",
        "## 1. Warm `stacktoken token` vs the bare interpreter",
        "",
        *_timing_rows(starts, floor),
        "",
        f"Warm run / `python -c pass`, medians: **{ratio:.2f}x** "
        f"(target <= {TARGET_RATIO:g}x: {verdict}). "
        f"Requests during the {START_RUNS} warm runs: {_counts_text(warm_requests)}. "
        "`import returns.result` alone is shown for scale: the warm path does not import it.",
    ]
    if script is None:
        lines += [
            "",
            f"Console script not measured: `{Path(PYTHON).with_name('stacktoken')}` is missing",
            "or predates the entry point `stacktoken.shell._warm:main` (`pip install -e .`",
            "rewrites it); `python -m stacktoken` runs the same entry point.",
        ]
    if by_hyperfine:
        lines += ["", "hyperfine, same commands:", "", *_timing_rows(by_hyperfine, by_hyperfine[0])]
    warm_again, ttl0_timing = cached
    lines += [
        "",
        "## 2. Warm vs the disk cache disabled (TTL 0), against loopback servers",
        "",
        *_timing_rows(cached, warm_again),
        "",
        f"Requests during the {TTL0_RUNS} TTL 0 runs: {_counts_text(ttl0_requests)} "
        f"(the discovery document is cached on disk either way). The cache saves "
        f"{ttl0_timing.median_ms - warm_again.median_ms:.0f} ms per command on loopback, "
        "before any real network latency.",
        "",
        "## 3. In-process `TokenSource.token()` on a fresh in-memory token",
        "",
        "| call | ns per call (median of 7 rounds of 200,000) | / `time.time()` |",
        "|---|---:|---:|",
        f"| `time.time()` | {clock_ns:.0f} | 1.00x |",
        f"| `source.token()` | {token_ns:.0f} | {token_ns / clock_ns:.2f}x |",
        "",
        "The fast path reads one attribute and the clock, compares, and returns: no lock,",
        "no file (tests/test_warm_path_imports.py checks both).",
        "",
        "## 4. Requests per run",
        "",
        "| run | requests | by endpoint |",
        "|---|---:|---|",
        *(f"| {name} | {sum(c.values())} | {_counts_text(c)} |" for name, c in counts),
        "",
        f"The {CONCURRENT} concurrent processes printed {distinct} distinct token(s).",
        "",
        "## Where the warm run's time goes",
        "",
        f"`python -X importtime`, medians over {IMPORTTIME_RUNS} warm runs, of what a warm run",
        "imports beyond `python -c pass`: each stacktoken module by its own time (mostly",
        "creating its frozen dataclasses), and each other module stacktoken imports first",
        "with everything that import pulls in (importtime's overhead inflates these a",
        f"little). Imports in all: {imports_ms:.1f} ms, of a warm run "
        f"{warm_timing.median_ms - floor.median_ms:.1f} ms (median) longer than the floor;",
        "the rest is the command itself: `-m` lookup, three small files read and",
        "decoded, and a larger interpreter to tear down.",
        "",
        "| import | imported by | ms |",
        "|---|---|---:|",
        *(
            f"| `{module}` | `{parent}` | {ms:.2f} |"
            for module, parent, ms in breakdown
            if ms >= 0.05
        ),
        "",
        "The largest items are structural. `dataclasses` brings `inspect` (and with it",
        "`ast`, `dis`, `tokenize`, `linecache`), and each frozen, slotted dataclass costs",
        "a fraction of a millisecond to create (3.11 compiles its generated methods one by",
        "one): that is most of the `_types`, `_errors`, `_profile` and `_paths` rows.",
        "Plain `__slots__` classes for the warm path's types would remove both, and a",
        "`TYPE_CHECKING = False` idiom instead of `typing.TYPE_CHECKING` (plus no runtime",
        "`Any`/`TypeVar`) would remove `typing`; the house style's frozen dataclasses were",
        "kept. `json` and `datetime` are the file formats themselves.",
        "",
        f"_{reference_timing.label}: {reference_timing.median_ms:.1f} ms; "
        f"benchmark wall time: {time.perf_counter() - started:.0f} s._",
        "",
    ]
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
