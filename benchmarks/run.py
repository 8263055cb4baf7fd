"""stacktoken's benchmarks, side by side in one run, on a regular install.

Run, from anywhere, with any Python 3.11+ (a bare interpreter will do)::

    python3 benchmarks/run.py

It installs this checkout the way a user does, `pip install <checkout>[test]`
(plus `formance-sdk-python`, for scale and the SDK section), non-editable,
into a scratch virtualenv under the temp dir (`$TMPDIR/stacktoken-bench/venv-<key>`, the key
hashing the checkout's installable files as git lists them, tracked or not, so
an edit means a new install and an unchanged tree reuses the last one), then
re-runs itself with that virtualenv's interpreter and measures that. An
editable install is never what is measured: its `.pth` hooks slow the bare
interpreter and flatter every ratio. The run takes a minute or two (plus
the install, about 40 s, when the key changed) and rewrites benchmarks/RESULTS.md;
`--only KEY,...` or `--quick` print a partial run without writing it.

Everything is measured as paired, alternating ratios within this one run
(medians, minimums, and the median of per-round ratios), never against
absolute thresholds: the machine is shared, so only comparisons made at the
same moment mean anything. Process CPU time is the child's own user + sys,
from `os.wait4`.

Adding a section is a decorated function; `SECTIONS` runs, and RESULTS.md
shows, the sections in the order they are written, and `--only KEY` runs one::

    @section("cold-json", "Cold run, `--output json`")
    def cold_json(bench: Bench) -> Report:
        world = bench.world
        run = world.command("cold json", world.token_argv("--output", "json"),
                            prepare=world.drop_token_cache, expect={"exchange": 1})
        measured = alternate([bench.httpx_floor(), run], world.env(), bench.rounds(10))
        ratio = Ratio.between(measured[1], measured[0], "cpu").of_medians
        return Report(timing_table(measured, measured[0]),
                      [Target("cold json / httpx import", ratio, 1.5, "CPU")])

A section leaves the world as it found it (a warm cache entry, the discovery
documents cached: `world.make_warm()`). Everything stacktoken-specific (the
CLI's options, the servers, the files a run reads) goes through
`_world.World`, the one place to change when the project's internals move;
the timing tools are in `_measure`.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from statistics import median
from typing import TYPE_CHECKING

from _measure import (
    Command,
    HyperfineRow,
    ImportProfile,
    Measured,
    Ratio,
    alternate,
    hyperfine,
    importtime,
    load_average,
    machine,
    markdown_table,
    package_kind,
    run_once,
    timeit_rounds,
)

if TYPE_CHECKING:
    from _world import World

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"

# ---------------------------------------------------------------------------
# The scratch virtualenv (stdlib only: this part runs under any interpreter)
# ---------------------------------------------------------------------------

SCRATCH = Path(tempfile.gettempdir()) / "stacktoken-bench"
RECIPE = "v1: pip install <copy>[test] formance-sdk-python"  # part of the key
SCALE_PACKAGES = ("formance-sdk-python",)  # optional: a failed install skips its section
NOT_INSTALLED = ("benchmarks", "tests", "property_tests", "docs")  # and dot-files
BUILD_LEFTOVERS = ("__pycache__", "build", "dist")  # skipped when git cannot list the files
KEEP_VENVS = 3
INSTALL_TIMEOUT = 900
MARKER = "ready"  # written last: a virtualenv without it is half-built
SCALE_STATUS = "scale-packages.txt"
INSIDE = "STACKTOKEN_BENCH_VENV"
VERSIONS_SHOWN = ("stacktoken", "httpx", "returns", "cattrs", "pyjwt", "filelock", "platformdirs")


def checkout_files() -> list[str]:
    """The checkout's installable files, relative, sorted: what git lists (tracked
    and untracked, not ignored), less the folders a wheel does not contain."""
    try:
        listed = subprocess.run(
            ["git", "-C", str(ROOT), "ls-files", "-z", "-co", "--exclude-standard"],
            capture_output=True,
            check=True,
        ).stdout.decode()
        names = [name for name in listed.split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        relative = [path.relative_to(ROOT) for path in ROOT.rglob("*") if path.is_file()]
        names = [
            str(path)
            for path in relative
            if not any(part in BUILD_LEFTOVERS for part in path.parts)
            and not path.parts[0].endswith(".egg-info")
        ]
    return sorted(
        name
        for name in names
        if name.split("/")[0] not in NOT_INSTALLED
        and not any(part.startswith(".") for part in name.split("/"))
        and (ROOT / name).is_file()
    )


def install_key(files: Sequence[str]) -> str:
    digest = hashlib.sha256(RECIPE.encode())
    base = getattr(sys, "_base_executable", sys.executable)
    digest.update(f"\0{sys.version}\0{os.path.realpath(base)}".encode())
    for name in files:
        digest.update(b"\0" + name.encode() + b"\0")
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()[:16]


def scratch_python(rebuild: bool) -> Path:
    """The scratch virtualenv's interpreter, building the virtualenv if needed."""
    files = checkout_files()
    home = SCRATCH / f"venv-{install_key(files)}"
    SCRATCH.mkdir(parents=True, exist_ok=True)
    with open(SCRATCH / "lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time
        if rebuild or not (home / MARKER).is_file():
            shutil.rmtree(home, ignore_errors=True)
            _build(home, files)
        else:
            print(f"bench: reusing {home}", file=sys.stderr)
        (home / MARKER).touch()
        _prune(keep=home)
    return home / "bin" / "python"


def _build(home: Path, files: Sequence[str]) -> None:
    started = time.perf_counter()
    print(f"bench: installing the checkout into {home} ...", file=sys.stderr)
    venv.create(home, with_pip=True)
    python = str(home / "bin" / "python")
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    env.pop("VIRTUAL_ENV", None)
    with tempfile.TemporaryDirectory(prefix="stacktoken-src-") as folder:
        # A copy, so that the build's `build/` and `*.egg-info` stay out of the checkout.
        source = Path(folder) / "stacktoken"
        for name in files:
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
        pip = [python, "-m", "pip", "install", "--quiet", f"{source}[test]"]
        done = subprocess.run(
            pip + list(SCALE_PACKAGES),
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=INSTALL_TIMEOUT,
        )
        status = "installed: " + " ".join(SCALE_PACKAGES)
        if done.returncode != 0:
            status = f"not installed: {done.stderr.strip()[-500:]}"
            subprocess.run(pip, env=env, check=True, timeout=INSTALL_TIMEOUT)
    (home / SCALE_STATUS).write_text(status + "\n")
    (home / MARKER).write_text(f"built in {time.perf_counter() - started:.0f} s\n")
    print(f"bench: installed in {time.perf_counter() - started:.0f} s", file=sys.stderr)


def _prune(keep: Path) -> None:
    """Keep the KEEP_VENVS virtualenvs used last; remove older ones."""
    homes = [path for path in SCRATCH.glob("venv-*") if path != keep]
    homes.sort(key=lambda path: (path / MARKER).stat().st_mtime if (path / MARKER).exists() else 0)
    for old in homes[: max(0, len(homes) - (KEEP_VENVS - 1))]:
        shutil.rmtree(old, ignore_errors=True)


def inside_scratch() -> bool:
    marked = os.environ.get(INSIDE)
    return marked is not None and Path(marked).resolve() == Path(sys.prefix).resolve()


# ---------------------------------------------------------------------------
# Sections: the registry
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str
    figure: float  # a ratio; the target is met iff figure <= limit
    limit: float
    how: str  # what the figure is, e.g. "CPU, ratio of medians"
    # Not a budget: the same figure like-for-like, shown beside the budget it reads.
    reference: bool = False

    @property
    def met(self) -> bool:
        return self.figure <= self.limit


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)


@dataclass(frozen=True)
class Bench:
    """What a section gets: the world, the round counts, the usual baselines."""

    world: World
    scale: float  # multiplies every round count (--quick makes it small)
    scratch: Path

    def rounds(self, count: int) -> int:
        return max(2, round(count * self.scale))

    def floor(self) -> Command:
        return self.world.python_c("bare interpreter", "pass")

    def httpx_floor(self) -> Command:
        return self.world.python_c("httpx import", "import httpx")

    def stack_floor(self, *, frozen_exit: bool = False) -> Command:
        """The cold budget's yardstick: importing the card's stack (cattrs once installed).

        `frozen_exit`: then `gc.freeze()`, as the command does before it exits
        (shell/_warm.py `command`), for a like-for-like row.
        """
        from importlib.util import find_spec

        names = ["httpx", "httpcore"] + (["cattrs"] if find_spec("cattrs") else [])
        label, code = f"{', '.join(names)} import", f"import {', '.join(names)}"
        if frozen_exit:
            label, code = f"{label}, then `gc.freeze()`", f"{code}, gc; gc.freeze()"
        return self.world.python_c(label, code)


SectionFn = Callable[[Bench], Report]


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    run: SectionFn


SECTIONS: list[Section] = []


def section(key: str, title: str) -> Callable[[SectionFn], SectionFn]:
    """Register a section; sections run, and appear in RESULTS.md, in the order written."""

    def register(function: SectionFn) -> SectionFn:
        SECTIONS.append(Section(key, title, function))
        return function

    return register


# ---------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------

COLUMNS = (
    "command",
    "wall median ms",
    "wall min ms",
    "CPU median ms",
    "CPU min ms",
    "wall ratio",
    "CPU ratio",
)
HOW_TO_READ = [
    "Commands are run round by round, each round running every command of a table once",
    "(the first in the round rotating), after warm-up rounds that are not counted, so a",
    "busy moment of this shared machine hits them alike. *CPU* is the child's own user +",
    "sys time (`os.wait4`); *wall* is spawn to reap. A ratio cell reads *ratio of medians",
    "· ratio of minimums · median of the per-round ratios*; the targets use the first.",
]


def timing_table(measured: Sequence[Measured], baseline: Measured) -> list[str]:
    rows = [
        (
            f"{m.command.label} (`{m.command.shown}`)",
            f"{m.median_ms('wall'):.1f}",
            f"{m.min_ms('wall'):.1f}",
            f"{m.median_ms('cpu'):.1f}",
            f"{m.min_ms('cpu'):.1f}",
            Ratio.between(m, baseline, "wall").text(),
            Ratio.between(m, baseline, "cpu").text(),
        )
        for m in measured
    ]
    return [
        *markdown_table(COLUMNS, rows),
        "",
        f"Ratios to the {baseline.command.label} row; {len(baseline.samples)} alternating rounds.",
    ]


def hyperfine_table(rows: Sequence[HyperfineRow]) -> list[str]:
    base = rows[0]
    return markdown_table(
        (
            "command (hyperfine -N, one batch per command)",
            "median ms",
            "min ms",
            "CPU mean ms",
            f"median / {base.command.label}",
        ),
        [
            (
                f"{row.command.label}",
                f"{row.median_ms:.1f}",
                f"{row.min_ms:.1f}",
                f"{row.cpu_mean_ms:.1f}",
                f"{row.median_ms / base.median_ms:.2f}x",
            )
            for row in rows
        ],
    )


@section("warm", "Warm `stacktoken token` vs `python -c pass`")
def warm(bench: Bench) -> Report:
    world = bench.world
    world.make_warm()
    floor = bench.floor()
    script = world.command("warm console script", world.token_argv(), expect={})
    module = world.command("warm `-m`", world.token_argv(via="module"), expect={})
    # pip's console-script wrapper runs `import re` before stacktoken's code.
    wrapper = world.python_c("the wrapper's `import re`", "import re")
    frozen = world.python_c("bare interpreter, then `gc.freeze()`", "import gc; gc.freeze()")
    unfrozen = world.command("warm, without the exit freeze", world.unfrozen_argv(), expect={})
    commands = [floor, script, module, wrapper, frozen, unfrozen]
    # 120 rounds: a run is ~35 ms on a shared machine, and 40 rounds left the ratio
    # of medians wandering by +-0.07 from one run of this script to the next.
    measured = alternate(commands, world.env(), bench.rounds(120), warmup=2)
    report = Report(lines=timing_table(measured, measured[0]))
    like_for_like = Ratio.between(measured[1], measured[4], "wall").of_medians
    saving = 1 - measured[1].median_ms("wall") / measured[5].median_ms("wall")
    report.targets += [
        Target(
            f"{measured[1].command.label} / bare interpreter",
            Ratio.between(measured[1], measured[0], "wall").of_medians,
            1.5,
            "wall, ratio of medians",
        ),
        Target(
            f"like-for-like: {measured[1].command.label} / {measured[4].command.label}",
            like_for_like,
            1.5,
            "wall, ratio of medians",
            reference=True,
        ),
    ]
    report.lines += [
        "",
        "Every warm run was checked to make no request. The budget is the command,",
        "`stacktoken token` (docs/design.md §12); `-m` is shown for scale, not budgeted:",
        "`runpy` costs it about a third of a bare start before stacktoken's first line.",
        "The `import re` row is for scale too: pip's generated console-script wrapper starts",
        "with `import re`, which is why `stacktoken` is a plain script (bin/stacktoken).",
        "The command freezes the garbage collector as it exits (shell/_warm.py",
        "`command`); the `gc.freeze()` row does the same to a bare start, for a",
        f"like-for-like figure: the warm command is {like_for_like:.2f}x it (wall, ratio of",
        "medians). The last row is the same command without the freeze (stacktoken's",
        f"`main` run by `python -c`): the freeze saves {saving:.0%} of a warm run's wall time.",
    ]
    by_hyperfine = hyperfine(commands[:3], world.env(), bench.rounds(20))
    if by_hyperfine is not None:
        report.lines += ["", "The same, through hyperfine:", "", *hyperfine_table(by_hyperfine)]
    return report


@section("cold", 'Cold run vs `python -c "import httpx, httpcore, cattrs"`')
def cold(bench: Bench) -> Report:
    """Cache entry absent, discovery document cached, one exchange."""
    world = bench.world
    world.make_warm()  # fills the discovery cache
    run = world.command(
        "cold `stacktoken token`",
        world.token_argv(),
        prepare=world.drop_token_cache,
        expect={"exchange": 1},
    )
    floor = bench.stack_floor()
    frozen_floor = bench.stack_floor(frozen_exit=True)
    unfrozen = world.command(
        "cold, without the exit freeze",
        world.unfrozen_argv(),
        prepare=world.drop_token_cache,
        expect={"exchange": 1},
    )
    measured = alternate(
        [floor, run, frozen_floor, unfrozen, bench.httpx_floor(), bench.floor()],
        world.env(),
        bench.rounds(40),
    )
    ratio = Ratio.between(measured[1], measured[0], "cpu")
    like_for_like = Ratio.between(measured[1], measured[2], "cpu").of_medians
    saving = 1 - measured[1].median_ms("cpu") / measured[3].median_ms("cpu")
    return Report(
        lines=[
            "Before each cold run the cache entry (`api_token_cache.json`) is removed; the",
            "stack's discovery document stays cached, so each run makes one request, the",
            "exchange (checked after every run). The yardstick is importing the libraries",
            "the run is built on (cattrs when installed), the floor of any run on that stack.",
            "",
            *timing_table(measured, measured[0]),
            "",
            "The command freezes the garbage collector as it exits (shell/_warm.py",
            "`command`), which spares the interpreter's exit-time collections; the",
            "yardstick pays them. The third row does the same after its imports: against",
            f"it the cold run is {like_for_like:.2f}x (CPU, ratio of medians), what the run",
            "adds to the libraries' imports without that saving. The fourth row is the",
            "same command without the freeze (stacktoken's `main` run by `python -c`):",
            f"the freeze saves {saving:.0%} of a cold run's CPU.",
        ],
        targets=[
            Target(f"cold run / {floor.label}", ratio.of_medians, 1.3, "CPU, ratio of medians"),
            Target(
                f"like-for-like: cold run / {frozen_floor.label}",
                like_for_like,
                1.3,
                "CPU, ratio of medians",
                reference=True,
            ),
        ],
    )


@section("refresh", "A run that refreshes the stack access token")
def refresh(bench: Bench) -> Report:
    world = bench.world

    def expired() -> None:
        world.drop_token_cache()
        world.expire_stack_access()

    def expired_nothing_cached() -> None:
        expired()
        world.drop_discovery_cache()

    cached = world.command(
        "refresh, discovery cached",
        world.token_argv(),
        prepare=expired,
        expect={"refresh": 1, "exchange": 1},
    )
    uncached = world.command(
        "refresh, no discovery cached",
        world.token_argv(),
        prepare=expired_nothing_cached,
        expect={"membership discovery": 1, "refresh": 1, "stack discovery": 1, "exchange": 1},
    )
    # `uncached` first: it leaves both discovery documents cached for `cached`.
    commands = [bench.httpx_floor(), uncached, cached]
    measured = alternate(commands, world.env(), bench.rounds(10))
    world.make_warm()
    return Report(
        lines=[
            "Before each run `accesses.json` holds an expired stack access token (with a live",
            "refresh token) and the cache entry is removed. *Discovery cached*: both the",
            "membership and the stack discovery documents are in the discovery cache, as",
            "after any earlier run (2 requests: refresh, exchange). *No discovery cached*:",
            "the cache dir is emptied too (4 requests: membership discovery, refresh, stack",
            "discovery, exchange). Request counts are checked after every run. There is no",
            "target for this run; it is reported as the cold run is.",
            "",
            *timing_table(measured, measured[0]),
        ]
    )


@section("ttl0", "TTL 0 (disk cache off)")
def ttl0(bench: Bench) -> Report:
    world = bench.world
    world.make_warm()
    warm_run = world.command("warm console script", world.token_argv(), expect={})
    off = world.command(
        "TTL 0 `stacktoken token`",
        world.token_argv("--stack-token-cache-ttl", "0"),
        expect={"exchange": 1},
    )
    measured = alternate([warm_run, off, bench.httpx_floor()], world.env(), bench.rounds(10))
    saved = measured[1].median_ms("wall") - measured[0].median_ms("wall")
    return Report(
        lines=[
            "TTL 0 reads and writes no cache entry, so every run exchanges (the discovery",
            "document is cached either way).",
            "",
            *timing_table(measured, measured[0]),
            "",
            f"The disk cache saves {saved:.0f} ms of wall time per command on loopback, "
            "before any real network latency.",
        ]
    )


@section("token", "In-process `TokenSource.token()` on a fresh in-memory token")
def token_call(bench: Bench) -> Report:
    world = bench.world
    world.make_warm()
    statements = {"time.time()": "clock()", "source.token()": "token()", "pass": "pass"}
    number, repeat = 200_000, bench.rounds(41)
    rounds = timeit_rounds(
        world.python, world.token_setup_code(), statements, world.env(), number, repeat
    )
    clock = rounds["time.time()"]
    rows = []
    for label, values in rounds.items():
        ratio = Ratio.of(values, clock)
        rows.append((f"`{label}`", f"{min(values):.1f}", f"{median(values):.1f}", ratio.text()))
    token_ratio = Ratio.of(rounds["source.token()"], clock)
    return Report(
        lines=[
            f"timeit in a child of the scratch interpreter: {repeat} alternating rounds of",
            f"{number:,} calls each; `token` and `clock` are globals bound to `source.token`",
            "and `time.time`, so both go through the same lookup and call. `pass` is",
            "timeit's own loop, for scale.",
            "",
            *markdown_table(
                ("statement", "min ns", "median ns", "ratio to `time.time()`"),
                rows,
            ),
        ],
        targets=[
            Target("`token()` / `time.time()`", token_ratio.of_medians, 2.0, "timeit medians")
        ],
    )


@section("requests", "Requests per run")
def requests(bench: Bench) -> Report:
    world = bench.world

    def counted(prepare: Callable[[], None], *options: str) -> dict[str, int]:
        prepare()
        world.reset_counts()
        world.run_token(*options)
        return world.counts()

    def nothing_cached() -> None:
        world.drop_token_cache()
        world.drop_discovery_cache()

    def expired() -> None:
        world.drop_token_cache()
        world.expire_stack_access()

    def expired_nothing_cached() -> None:
        expired()
        world.drop_discovery_cache()

    def nothing() -> None:
        pass

    concurrent = 8
    rows = [
        ("first run (nothing cached)", counted(nothing_cached)),
        ("cold, discovery document cached", counted(world.drop_token_cache)),
        ("warm (usable cache entry)", counted(nothing)),
        ("TTL 0", counted(nothing, "--stack-token-cache-ttl", "0")),
        # This order: the first refresh also caches the membership discovery document.
        ("refresh needed, no discovery cached", counted(expired_nothing_cached)),
        ("refresh needed, discovery cached", counted(expired)),
    ]
    together, distinct = world.concurrent_cold(concurrent)
    rows.append((f"{concurrent} concurrent cold processes, in total", together))
    world.make_warm()
    return Report(
        lines=[
            *markdown_table(
                ("run", "by endpoint", "requests"),
                [(name, _counts_text(c), str(sum(c.values()))) for name, c in rows],
                left=2,
            ),
            "",
            f"The {concurrent} concurrent processes printed {distinct} distinct token(s).",
        ]
    )


@section("fleet", "Token requests per TTL window: H hosts x P processes, disk vs Redis store")
def fleet(bench: Bench) -> Report:
    from _world import redis

    world = bench.world
    hosts, processes, windows, ttl = 4, 4, 3, 6
    rows = []
    longest = 0.0
    with redis() as url:
        for name, store in (("disk store (per host)", None), ("Redis store (shared)", url)):
            if name.startswith("Redis") and store is None:
                rows.append((name, "skipped: no redis-server", "", ""))
                continue
            per_window, distinct, took = world.fleet_windows(hosts, processes, windows, ttl, store)
            longest = max(longest, took)
            rows.append(
                (name, " / ".join(map(str, per_window)), str(sum(per_window)), str(distinct))
            )
    world.make_warm()
    return Report(
        lines=[
            f"{hosts} hosts (a cache dir each) x {processes} `stacktoken token --stack-uri ...`",
            "processes of one machine credential, all started together at the start of each of",
            f"{windows} TTL windows (`--stack-token-cache-ttl {ttl}s`; the next round starts once",
            "the last one's entries are older than the TTL). Token requests the stack received:",
            "",
            *markdown_table(
                ("store", "requests per window", "total", "distinct tokens printed"), rows
            ),
            "",
            f"The longest round took {longest:.1f} s: a round shorter than the TTL ({ttl} s) stays "
            "within its window.",
        ]
    )


@section("renewal", "Renewal before expiry: token requests and caller waits per hour (simulated)")
def renewal(bench: Bench) -> Report:
    from datetime import timedelta

    from _renewal_sim import MODES, simulate

    latency, timeout = 0.2, 10.0
    steady = []
    for label, lifetime, hours in (
        ("5 min (RFC 7523 exchange)", timedelta(minutes=5), 1.0),
        ("1 h (client credentials)", timedelta(hours=1), 24.0),
    ):
        for sources in (1, 8):
            for mode in MODES:
                o = simulate(mode, sources=sources, hours=hours, lifetime=lifetime)
                steady.append(
                    (
                        label,
                        str(sources),
                        mode,
                        f"{o.requests / hours:.2f}",
                        f"{o.waited / hours:.2f}",
                        f"{o.worst_wait:.1f}",
                        str(o.failed),
                    )
                )
    starts = range(900, 1200, 15)  # an outage starting anywhere in one 5-minute span
    outages = []
    for length in (30, 120):
        for mode in MODES:
            runs = [
                simulate(
                    mode,
                    hours=0.5,
                    down=(timedelta(seconds=start), timedelta(seconds=start + length)),
                )
                for start in starts
            ]
            outages.append(
                (
                    f"{length} s",
                    mode,
                    f"{sum(o.failed for o in runs) / len(runs):.2f}",
                    f"{sum(o.failed > 0 for o in runs)}/{len(runs)}",
                    f"{sum(o.waited for o in runs) / len(runs):.1f}",
                    f"{max(o.worst_wait for o in runs):.1f}",
                )
            )
    return Report(
        lines=[
            "Real `TokenSource`s on a simulated clock (`benchmarks/_renewal_sim.py`): each calls",
            "`token_result()` once a simulated second; sources share one in-memory store, as",
            f"processes share a cache dir. A token request takes {latency} s, a failing one",
            f"{timeout} s (a timeout); the call that makes it waits that long. *at expiry*:",
            "`renewal=None`; *early, on call*: the default `RenewalPolicy()` (80 % ± 10 %),",
            "the first call past the refresh point renews; *early, background*: the same",
            "policy, renewed by the source's background step (what its daemon thread runs),",
            "played on the same clock. Counts, not timings: the same on any machine.",
            "",
            *markdown_table(
                (
                    "token lifetime",
                    "sources",
                    "renewal",
                    "requests / h",
                    "calls that waited / h",
                    "worst wait s",
                    "failed calls",
                ),
                steady,
                left=3,
            ),
            "",
            f"The token endpoint down for a while, one source, 5-minute tokens, {len(starts)}",
            "runs of 30 minutes with the outage starting every 15 s across one token's life:",
            "",
            *markdown_table(
                (
                    "outage",
                    "renewal",
                    "failed calls / run",
                    "runs with a failure",
                    "calls that waited / run",
                    "worst wait s",
                ),
                outages,
                left=2,
            ),
            "",
            "Early renewal costs a few more requests (one per 80 % of a lifetime instead of one",
            "per lifetime minus the 30 s grace; a fleet on one store renews at its earliest",
            "source's point, about 70 % for 5-minute tokens; the jitter band is at most half the",
            "cache TTL wide, so 8 sources with 1-hour tokens and the default 5-minute TTL still",
            "ask once per window), and buys slack: a renewal that fails leaves the held",
            "token in use. On call, one caller per renewal still waits for the request (and for",
            "a failing one's timeout); in the background no caller waits while a token is",
            "held. A 5-minute token leaves only 30-60 s between the refresh point and the end",
            "of its freshness, so an outage longer than that still reaches callers.",
        ]
    )


@section("sdk", 'For scale: `python -c "import formance_sdk_python"`')
def sdk(bench: Bench) -> Report:
    status = (bench.scratch / SCALE_STATUS).read_text().strip()
    try:
        version = metadata.version("formance-sdk-python")
    except metadata.PackageNotFoundError:
        return Report(lines=[f"Skipped: formance-sdk-python {status}"])
    world = bench.world
    world.make_warm()
    commands = [
        bench.floor(),
        bench.httpx_floor(),
        world.python_c("SDK package import", "import formance_sdk_python"),
        world.python_c("SDK class import", "from formance_sdk_python import SDK"),
        world.command("warm console script", world.token_argv(), expect={}),
    ]
    measured = alternate(commands, world.env(), bench.rounds(8))
    return Report(
        lines=[
            f"formance-sdk-python {version}, in the same scratch virtualenv.",
            "",
            *timing_table(measured, measured[0]),
        ]
    )


def _sdk_missing(bench: Bench) -> Report | None:
    status = (bench.scratch / SCALE_STATUS).read_text().strip()
    try:
        metadata.version("formance-sdk-python")
    except metadata.PackageNotFoundError:
        return Report(lines=[f"Skipped: formance-sdk-python {status}"])
    return None


SDK_PROCESSES = 10
SDK_CALLS_PER_ROUND = 200
SDK_PAIRS = (
    "sync, loopback stub",
    "async, loopback stub",
    "sync, MockTransport",
    "async, MockTransport",
)
SDK_TOKEN_AWAITS = ("await source.token_async()", "await anyio.to_thread.run_sync(source.token)")


@section(
    "sdk-auth",
    "The official SDK on stacktoken: token requests of N processes, per-call cost of the auth",
)
def sdk_auth(bench: Bench) -> Report:
    missing = _sdk_missing(bench)
    if missing is not None:
        return missing
    world = bench.world
    cache = world.home.parent / "sdk-cache"
    shutil.rmtree(cache, ignore_errors=True)  # the SDK on stacktoken starts with nothing cached
    cache.mkdir(mode=0o700)
    config = world.sdk_config(cache)
    own = world.sdk_call("SDK with its own `security` (client credentials)", "own", config)
    ours = world.sdk_call(
        "SDK on stacktoken (`formance_sdk`, shared cache dir)", "stacktoken", config
    )
    counted = []
    for command in (own, ours):
        world.reset_counts()
        for _ in range(SDK_PROCESSES):
            run_once(command.argv, command.env or world.sdk_env())
        counted.append(
            (
                command.label,
                str(SDK_PROCESSES),
                str(world.ledger_calls()),
                str(world.token_requests()),
                str(world.auth_requests()),
            )
        )
    measured = alternate([bench.floor(), own, ours], world.env(), bench.rounds(8))
    repeat = bench.rounds(8)
    rounds = world.sdk_overhead(config, SDK_CALLS_PER_ROUND, repeat)
    world.make_warm()
    per_call = []
    for case in SDK_PAIRS:
        bare, auth = rounds[f"{case}, bearer header"], rounds[f"{case}, StackTokenAuth"]
        per_call.append(
            (
                case,
                f"{median(bare):.1f}",
                f"{median(auth):.1f}",
                f"{median(auth) - median(bare):+.1f}",
                Ratio.of(auth, bare).text(),
            )
        )
    fast, thread = (rounds[label] for label in SDK_TOKEN_AWAITS)
    awaits = [
        (f"`{label}`", f"{median(values):.1f}", f"{min(values):.1f}", Ratio.of(values, fast).text())
        for label, values in ((SDK_TOKEN_AWAITS[0], fast), (SDK_TOKEN_AWAITS[1], thread))
    ]
    return Report(
        lines=[
            f"**Requests to the auth server.** {SDK_PROCESSES} processes one after the other,",
            "each making one `sdk.ledger.v2.get_info()` with the same client credentials",
            "(a CI job's steps, a cron, a CLI) against the same loopback stack and ledger stub",
            "(tests/ledger_stub.py). The SDK on stacktoken starts with nothing cached; its",
            "first process also fetches the stack's discovery document.",
            "",
            *markdown_table(
                (
                    "SDK",
                    "processes",
                    "ledger calls",
                    "token requests",
                    "all auth-server requests",
                ),
                counted,
                left=1,
            ),
            "",
            "The SDK's own hook keeps its token in the memory of one process, so every",
            "process asks again; stacktoken's cache is shared by every process on the host",
            "(and by hosts, with Redis). tests/test_sdk_requests.py checks these counts",
            "(4 processes: 4 token requests vs 1) with the same child script.",
            "",
            "One such process, timed (stacktoken's cache warm; the SDK's own hook asks each",
            "time):",
            "",
            *timing_table(measured, measured[0]),
            "",
            "**Per-call cost of `StackTokenAuth` on a warm source.** µs per call, in one child",
            f"process: {repeat} alternating rounds of {SDK_CALLS_PER_ROUND} calls per case (after",
            "one warm-up round). *bare httpx* is a client with the token in a default",
            "`Authorization` header; *StackTokenAuth* asks the warm source for each request.",
            "The loopback stub is HTTP/1.0 (a connection per call); `MockTransport` answers",
            "in process, so the auth's own cost is not hidden by the network.",
            "",
            *markdown_table(
                (
                    "GET `_info`",
                    "bare httpx µs",
                    "StackTokenAuth µs",
                    "difference µs",
                    "StackTokenAuth / bare httpx",
                ),
                per_call,
                left=1,
            ),
            "",
            "What the async flow awaits for a token on a warm source, against a worker",
            "thread per call:",
            "",
            *markdown_table(
                ("await", "median µs", "min µs", "ratio to `token_async()`"), awaits, left=1
            ),
            "",
            "Ratio cells: ratio of medians · ratio of minimums · median of per-round ratios.",
        ]
    )


def importtime_report(bench: Bench, argv: tuple[str, ...], prepare: Callable[[], None]) -> Report:
    world = bench.world
    runs = bench.rounds(9)
    baseline = set(importtime((world.python, "-c", "pass"), world.env(), runs).modules())
    profile = importtime(argv, world.env(), runs, prepare=prepare)
    return Report(lines=importtime_lines(profile, baseline, world.shown(argv)))


@section("importtime-warm", "Where a warm run's time goes (`-X importtime`)")
def importtime_warm(bench: Bench) -> Report:
    bench.world.make_warm()
    return importtime_report(bench, bench.world.token_argv(), lambda: None)


@section("importtime-cold", "Where a cold run's time goes (`-X importtime`)")
def importtime_cold(bench: Bench) -> Report:
    world = bench.world
    world.make_warm()
    report = importtime_report(bench, world.token_argv(), world.drop_token_cache)
    world.make_warm()
    return report


TOP_MODULES = 25
TOP_LEVEL = "(script or call)"  # imported by running code, not while importing a module
TOP_PACKAGES = 20


def importtime_lines(profile: ImportProfile, baseline: set[str], shown: str) -> list[str]:
    from _world import PACKAGE

    extra = [module for module in profile.modules() if module not in baseline]
    top = sorted(extra, key=lambda module: -profile.cumulative_ms[module])[:TOP_MODULES]
    packages: dict[str, list[str]] = {}
    for module in extra:
        packages.setdefault(module.split(".")[0], []).append(module)
    by_self = sorted(packages.items(), key=lambda item: -sum(profile.self_ms[m] for m in item[1]))
    total = sum(profile.self_ms[module] for module in extra)
    rest = [
        f"`{package}` {sum(profile.self_ms[m] for m in modules):.1f}"
        + ("" if package_kind(package, PACKAGE) != "absent (import tried)" else " (absent)")
        for package, modules in by_self[TOP_PACKAGES:]
    ]
    return [
        f"`PYTHONPROFILEIMPORTTIME=1 {shown}`, medians over {profile.runs} runs, of the",
        f"{len(extra)} modules imported beyond those of `python -c pass` (which are",
        f"left out): {total:.1f} ms of import time in all (importtime's own overhead",
        "inflates it a little).",
        "",
        "Top modules by cumulative time (a module's own time plus that of what it imports):",
        "",
        *markdown_table(
            ("module", "imported by", "cumulative ms", "self ms"),
            [
                (
                    f"`{module}`",
                    f"`{profile.parent[module]}`" if profile.parent[module] else TOP_LEVEL,
                    f"{profile.cumulative_ms[module]:.1f}",
                    f"{profile.self_ms[module]:.1f}",
                )
                for module in top
            ],
            left=2,
        ),
        "",
        "Top-level packages imported, by the sum of their modules' own time:",
        "",
        *markdown_table(
            ("package", "kind", "modules", "self ms"),
            [
                (
                    f"`{package}`",
                    package_kind(package, PACKAGE),
                    str(len(modules)),
                    f"{sum(profile.self_ms[m] for m in modules):.1f}",
                )
                for package, modules in by_self[:TOP_PACKAGES]
            ],
            left=2,
        ),
        "",
        "The other packages imported: " + (", ".join(rest) or "none") + ".",
    ]


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------


def _counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in counts.items()) or "none"


def installed_lines(world: World, scratch: Path) -> list[str]:
    where = Path(world.where_imported()).resolve()
    editable = [p.name for p in where.parents[1].glob("__editable__*")]
    if editable or ROOT in where.parents or scratch.resolve() not in where.parents:
        raise SystemExit(f"bench: stacktoken is not a regular install here: {where}")
    kind = "regular (non-editable)"
    versions = ", ".join(f"{name} {_version(name)}" for name in VERSIONS_SHOWN)
    return [
        f"- install: {kind}, `pip install <copy of the checkout>[test] "
        f"{' '.join(SCALE_PACKAGES)}` into `{scratch}` ({(scratch / MARKER).read_text().strip()}"
        "); bytecode compiled by pip",
        f"- stacktoken imported from `{where.parent}`",
        f"- versions: {versions}",
        f"- hyperfine: {shutil.which('hyperfine') or 'not installed'}",
    ]


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def measure(keys: Sequence[str] | None, scale: float, write: bool) -> int:
    from _world import world

    started = time.perf_counter()
    scratch = Path(sys.prefix)
    chosen = [s for s in SECTIONS if keys is None or s.key in keys]
    body: list[str] = []
    targets: list[Target] = []
    with world() as the_world:
        header = machine(sys.executable) + installed_lines(the_world, scratch)
        bench = Bench(world=the_world, scale=scale, scratch=scratch)
        the_world.make_warm()  # every section starts (and ends) warm, discovery cached
        for number, chosen_section in enumerate(chosen, start=1):
            print(f"bench: {chosen_section.key} ...", file=sys.stderr, flush=True)
            began = time.perf_counter()
            report = chosen_section.run(bench)
            took = time.perf_counter() - began
            body += [f"## {number}. {chosen_section.title}", "", *report.lines, ""]
            body += [f"_Section `{chosen_section.key}` took {took:.0f} s._", ""]
            targets += report.targets
    elapsed = time.perf_counter() - started
    lines = [
        "# Benchmarks",
        "",
        "Written by `python3 benchmarks/run.py` (see its docstring): a regular install of",
        "the checkout in a scratch virtualenv, measured side by side in one run.",
        "",
        *HOW_TO_READ,
        "",
        "## Machine and install",
        "",
        *header,
        f"- load average at the end: {load_average()}; benchmark wall time {elapsed:.0f} s",
        "",
        "## Targets (docs/design.md §12)",
        "",
        *markdown_table(
            ("target", "figure", "limit", "met"),
            [
                (f"{t.name} ({t.how})", f"{t.figure:.2f}x", f"<= {t.limit:g}x", _met(t))
                for t in targets
            ],
        ),
        *(
            [
                "",
                "Rows marked *like-for-like* are not budgets: the yardstick freezes the",
                'collector at its exit as the command does (docs/design.md §12, "The',
                "command's exit\"). A budget met while its like-for-like row is not is met",
                "by that saving, not by the command doing less.",
            ]
            if any(t.reference for t in targets)
            else []
        ),
        "",
        *body,
    ]
    text = "\n".join(lines).rstrip() + "\n"
    print(text)
    if write:
        RESULTS.write_text(text)
        print(f"bench: wrote {RESULTS}", file=sys.stderr)
    return 0


def _met(target: Target) -> str:
    if target.reference:
        return "yes" if target.met else "no (like-for-like)"
    return "yes" if target.met else "**no**"


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--only", help="comma-separated section keys; RESULTS.md is not written")
    parser.add_argument("--quick", action="store_true", help="few rounds; RESULTS.md not written")
    parser.add_argument("--rebuild", action="store_true", help="reinstall the scratch virtualenv")
    parser.add_argument("--list", action="store_true", help="list the section keys")
    args = parser.parse_args(argv)
    if args.list:
        for known in SECTIONS:
            print(f"{known.key}: {known.title}")
        return 0
    keys = args.only.split(",") if args.only else None
    unknown = set(keys or ()) - {known.key for known in SECTIONS}
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    if not inside_scratch():
        python = scratch_python(rebuild=args.rebuild)
        home = python.parent.parent
        os.environ[INSIDE] = str(home)
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(python, [str(python), str(Path(__file__).resolve()), *argv])
    scale = 0.25 if args.quick else 1.0
    return measure(keys, scale, write=keys is None and not args.quick)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
