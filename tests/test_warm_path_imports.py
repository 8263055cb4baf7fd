"""Import discipline of the warm path: what a warm run and `import stacktoken` load.

A warm `stacktoken token` runs in a subprocess that writes `sys.modules` to a
file as it exits, so any module imported on the way, by whatever means, is
seen. The in-process `TokenSource.token()` holding a fresh token is watched
with an audit hook (every file open, `os` call and `flock`), a counting lock
and tracemalloc.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from types import FrameType, ModuleType, TracebackType
from typing import TYPE_CHECKING, Any

import pytest
import stacktoken
from stacktoken import TokenSource

from conftest import CLI_TIMEOUT_SECONDS, World

if TYPE_CHECKING:
    from _typeshed import TraceFunction

# Never on a warm run: the HTTP and TLS stack, JWT and crypto, cattrs, the
# cold path's helpers (platformdirs for the discovery cache, filelock for the
# lock, tempfile for writes) and the test servers' authlib.
NETWORK_AND_COLD_PATH = (
    "httpx",
    "httpcore",
    "h11",
    "anyio",
    "jwt",
    "cryptography",
    "ssl",
    "cattrs",
    "platformdirs",
    "filelock",
    "authlib",
    "tempfile",
)
# Not on the warm path either: the full CLI and what it brings (logging only
# with `--debug`, argparse, returns, the acquisition workflow, ...).
FULL_CLI = (
    "logging",
    "argparse",
    "returns",
    "random",
    "threading",
    "stacktoken.shell._cli",
    "stacktoken.shell._source",
    "stacktoken.core._acquire",
    "stacktoken.core._codecs",
)

# `python -m stacktoken ARGS`, writing `sys.modules` to the file named first as it exits.
_DUMP_MODULES = """
import atexit, runpy, sys

def dump(path=sys.argv.pop(1)):
    with open(path, "w") as handle:
        handle.write("\\n".join(sorted(sys.modules)))

atexit.register(dump)
runpy.run_module("stacktoken", run_name="__main__", alter_sys=True)
"""


def _imported(names: set[str], prefixes: tuple[str, ...]) -> list[str]:
    """The modules of `names` that are, or belong to, one of `prefixes`."""
    return sorted(
        name
        for name in names
        for prefix in prefixes
        if name == prefix or name.startswith(f"{prefix}.")
    )


def _run_with_module_dump(
    world: World, tmp_path: Path, *args: str
) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """`python -m stacktoken --cache-dir D ARGS`, and the modules it had at exit."""
    dump = tmp_path / "modules.txt"
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            _DUMP_MODULES,
            str(dump),
            "--cache-dir",
            str(world.cache_dir),
            *args,
        ],
        capture_output=True,
        text=True,
        env=world.env(),
        timeout=CLI_TIMEOUT_SECONDS,
        check=False,
    )
    return run, set(dump.read_text().split())


@pytest.fixture
def warm_token(world: World) -> str:
    """What a first, cold run printed; its token is now in the disk cache."""
    cold = world.run("token")
    assert cold.returncode == 0, cold.stderr
    return cold.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("token",),
        ("token", "--output", "json"),
        ("--profile", "default", "token", "--organization", "orgA", "--stack", "stk1"),
        ("--profile=default", "token", "--stack=stk1", "--stack-token-cache-ttl=1h"),
    ],
)
def test_warm_path_imports_no_network_stack(
    world: World, warm_token: str, tmp_path: Path, args: tuple[str, ...]
) -> None:
    before = world.requests()
    run, modules = _run_with_module_dump(world, tmp_path, *args)
    assert run.returncode == 0, run.stderr
    assert warm_token.strip() in run.stdout
    assert world.requests() == before
    assert _imported(modules, NETWORK_AND_COLD_PATH) == []
    assert _imported(modules, FULL_CLI) == []


def test_warm_path_debug_runs_the_full_cli_without_network_stack(
    world: World, warm_token: str, tmp_path: Path
) -> None:
    """`--debug` is the full CLI (argparse, logging), yet a cache hit loads no HTTP code."""
    run, modules = _run_with_module_dump(world, tmp_path, "--debug", "token")
    assert run.returncode == 0, run.stderr
    assert run.stdout == warm_token
    assert "cache hit" in run.stderr
    assert "logging" in modules
    assert "stacktoken.shell._cli" in modules
    assert _imported(modules, NETWORK_AND_COLD_PATH) == []


def test_warm_path_cold_run_does_import_the_network_stack(world: World, tmp_path: Path) -> None:
    """The check above can fail: a run that goes to the network shows httpx."""
    run, modules = _run_with_module_dump(world, tmp_path, "token")
    assert run.returncode == 0, run.stderr
    assert "httpx" in modules


@pytest.mark.parametrize(
    "statement",
    [
        "import stacktoken",
        "from stacktoken import TokenSource, StackTokenError, Settings, parse_duration",
        "import stacktoken.core, stacktoken.shell",
    ],
)
def test_warm_path_import_stacktoken_loads_no_http_jwt_or_cattrs(statement: str) -> None:
    code = f"{statement}\nimport sys\nprint('\\n'.join(sorted(sys.modules)))"
    run = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_SECONDS,
        check=True,
    )
    modules = set(run.stdout.split())
    assert _imported(modules, ("httpx", "httpcore", "h11", "anyio", "jwt", "cattrs", "ssl")) == []


def test_warm_path_import_stacktoken_alone_loads_no_submodule() -> None:
    code = "import sys, stacktoken\nprint(*sorted(sys.modules))"
    run = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_SECONDS,
        check=True,
    )
    # Not even the lazy-export helper: it loads with the first public name used.
    assert _imported(set(run.stdout.split()), ("stacktoken",)) == ["stacktoken"]


def test_warm_path_lazy_exports_match_all() -> None:
    """The public face's table of lazily loaded names is its `__all__`, and every name loads."""
    package: ModuleType = stacktoken
    tables: dict[str, str] = package._HOMES
    homes = [name for names in tables.values() for name in names.split()]
    assert sorted(homes) == sorted(package.__all__)
    for name in package.__all__:
        assert getattr(package, name) is not None
        assert name in dir(package)
    with pytest.raises(AttributeError):
        package.no_such_name  # noqa: B018


# -- the in-process fast path ------------------------------------------------


class _CountingLock:
    """Stands in for `TokenSource`'s thread lock and counts its uses."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.uses = 0

    def __enter__(self) -> bool:
        self.uses += 1
        return self._lock.__enter__()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._lock.__exit__(kind, error, traceback)


class _AuditLog:
    """File and OS events (`open`, `os.*`, `fcntl.*`) while `recording` is set."""

    def __init__(self) -> None:
        self.recording = False
        self.events: list[str] = []

    def __call__(self, event: str, _: tuple[object, ...]) -> None:
        if self.recording and (event == "open" or event.startswith(("os.", "fcntl.", "shutil."))):
            self.events.append(event)


_AUDIT = _AuditLog()
sys.addaudithook(_AUDIT)  # audit hooks cannot be removed: one for the whole session


@pytest.fixture
def audit() -> Iterator[_AuditLog]:
    _AUDIT.events.clear()
    yield _AUDIT
    _AUDIT.recording = False


@pytest.fixture
def source(world: World) -> Iterator[TokenSource]:
    with TokenSource.from_fctl(
        config_dir=world.config_dir, cache_dir=world.cache_dir, environ=world.env()
    ) as built:
        yield built


def test_warm_path_audit_hook_sees_file_access(source: TokenSource, audit: _AuditLog) -> None:
    """The hook works: the first call reads the disk (and goes to the network)."""
    audit.recording = True
    source.token()
    audit.recording = False
    assert "open" in audit.events


def test_warm_path_token_in_memory_touches_no_file_and_no_lock(
    world: World, source: TokenSource, audit: _AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = source.token()
    requests = world.requests()
    lock = _CountingLock()
    monkeypatch.setattr(source, "_lock", lock)
    audit.recording = True
    for _ in range(100):
        assert source.token() == first
    audit.recording = False
    assert audit.events == []
    assert lock.uses == 0
    assert world.requests() == requests


def test_warm_path_token_in_memory_keeps_no_allocation(source: TokenSource) -> None:
    """Ten thousand fast-path calls leave nothing allocated in `_source.py` behind."""
    source.token()
    only_source = [tracemalloc.Filter(True, TokenSource.token.__code__.co_filename)]
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot().filter_traces(only_source)
        for _ in range(10_000):
            source.token()
        after = tracemalloc.take_snapshot().filter_traces(only_source)
    finally:
        tracemalloc.stop()
    grown = [stat for stat in after.compare_to(before, "lineno") if stat.size_diff > 0]
    assert grown == []


def test_warm_path_fast_path_changes_hands_in_an_order_readers_can_trust(
    source: TokenSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`token()` reads the deadline, then the token, without a lock. At every
    bytecode step of `_source.py` while tokens are published and taken away, a
    reader that read a deadline then (at that step or any later one) the token
    gets the token published with that deadline or a later one, never an older
    token under a newer deadline (`_publish` writes the token first)."""
    published: list[tuple[str, float]] = []  # (token, deadline), in publish order
    publish = TokenSource._publish

    def recorded(self: TokenSource, token: str, until: float) -> None:
        published.append((token, until))
        publish(self, token, until)

    monkeypatch.setattr(TokenSource, "_publish", recorded)
    filename = TokenSource.token.__code__.co_filename
    states: list[tuple[str, float]] = []  # (token, deadline) a reader could read

    def step(frame: FrameType, event: str, _: Any) -> TraceFunction:
        if event == "opcode":
            states.append((source._fast_token, source._fast_until))
        return step

    def enter(frame: FrameType, event: str, _: Any) -> TraceFunction | None:
        if frame.f_code.co_filename != filename:
            return None
        frame.f_trace_opcodes = True
        return step

    outer = sys.gettrace()  # a coverage tool's or debugger's, put back after
    sys.settrace(enter)
    try:
        first = source.token()
        source.invalidate()
        second = source.token()
    finally:
        sys.settrace(outer)
    assert first != second
    assert [token for token, _ in published] == [first, second]
    order = {token: index for index, (token, _) in enumerate(published)}
    order[""] = -1  # the empty token before anything is published
    deadline_order = {until: index for index, (_, until) in enumerate(published)}
    assert len(states) > 50 and len(deadline_order) == 2
    # The oldest token any later step shows, for each step.
    oldest_from = [0] * len(states)
    oldest = len(published)
    for index in range(len(states) - 1, -1, -1):
        oldest = min(oldest, order[states[index][0]])
        oldest_from[index] = oldest
    for index, (_, until) in enumerate(states):
        if until != float("-inf"):  # a reader that passed the check
            assert oldest_from[index] >= deadline_order[until], (index, until)


# -- the warm set, named in one place -------------------------------------------

# `__future__` too: `from __future__ import annotations` is a real import of that module.
_AUSTERE_FORBIDDEN = ("typing", "dataclasses", "enum", "re", "json", "returns", "__future__")


def _warm_set() -> set[str]:
    """The modules core/__init__.py's docstring names as the warm set."""
    import stacktoken.core

    doc = stacktoken.core.__doc__ or ""
    listed = doc.split("this list and each listed module to those rules:", 1)[1]
    modules: set[str] = set()
    package = ""
    for line in listed.splitlines():
        head, colon, names = line.strip().partition(":")
        if colon:
            package = head
        else:
            names = head
        modules |= {f"stacktoken.{package}.{name}" for name in names.split()}
    return modules


def test_warm_path_imports_only_the_warm_set(world: World, warm_token: str, tmp_path: Path) -> None:
    """A warm run loads no stacktoken module beyond the warm set (plus packages)."""
    run, modules = _run_with_module_dump(world, tmp_path, "token")
    assert run.returncode == 0, run.stderr
    ours = {m for m in modules if m.startswith("stacktoken.") and m.count(".") == 2}
    assert len(_warm_set()) >= 15  # the docstring's list was read
    assert ours <= _warm_set(), sorted(ours - _warm_set())


def test_warm_path_warm_set_modules_import_nothing_costly_at_top_level() -> None:
    """Each warm-set module imports no typing/dataclasses/enum/re/json/returns/__future__
    at import."""
    import ast

    root = Path(__file__).resolve().parent.parent
    for module in sorted(_warm_set()):
        _, package, name = module.split(".")
        tree = ast.parse((root / package / f"{name}.py").read_text())
        for node in tree.body:  # top level only: a function's own import is paid on use
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and node.level == 0
                else []
            )
            for imported in names:
                top = imported.split(".")[0]
                assert top not in _AUSTERE_FORBIDDEN, f"{module} imports {imported}"


def _evaluated_annotations(tree: ast.Module) -> list[ast.expr]:
    """Annotations Python evaluates at definition time: every signature's, and the
    module's and classes' own (not those inside a function body)."""
    found: list[ast.expr] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                arguments = child.args
                for arg in (
                    *arguments.posonlyargs,
                    *arguments.args,
                    *arguments.kwonlyargs,
                    arguments.vararg,
                    arguments.kwarg,
                ):
                    if arg is not None and arg.annotation is not None:
                        found.append(arg.annotation)
                if child.returns is not None:
                    found.append(child.returns)
                visit(child, True)
            elif isinstance(child, ast.AnnAssign):
                if not in_function:
                    found.append(child.annotation)
            elif isinstance(child, ast.If) and ast.unparse(child.test) == "TYPE_CHECKING":
                for branch in child.orelse:
                    visit(branch, in_function)
            elif not isinstance(child, ast.expr):
                visit(child, in_function if not isinstance(child, ast.ClassDef) else False)

    visit(tree, False)
    return found


def test_warm_path_warm_set_builds_no_annotation_at_definition_time() -> None:
    """Without `from __future__ import annotations` (a module import of its own), a
    compound annotation (`str | None`, `tuple[str, ...]`) would be built each time
    its function or class is defined: the warm set spells them as strings."""
    root = Path(__file__).resolve().parent.parent
    for module in sorted(_warm_set()):
        _, package, name = module.split(".")
        tree = ast.parse((root / package / f"{name}.py").read_text())
        built = [
            ast.unparse(annotation)
            for annotation in _evaluated_annotations(tree)
            if isinstance(annotation, ast.BinOp | ast.Subscript)
        ]
        assert built == [], f"{module}: {built}"
