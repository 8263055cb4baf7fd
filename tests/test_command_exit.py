"""The command's process freezes the garbage collector as it exits (shell/_warm.py
`command`, docs/design.md §12), and only the command's: `main` leaves its caller alone."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Runs an entry point as its process would, then reports the collector's
# permanent generation from an atexit hook registered before the command ran.
_REPORT = """
import atexit, gc, runpy, sys
atexit.register(lambda: sys.stderr.write("frozen %d\\n" % gc.get_freeze_count()))
sys.argv = ["stacktoken", "--cache-dir", sys.argv[1], "token"]
RUN
"""


def _run(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`code` with no credential anywhere: `token` ends with its one-line error, exit 3.

    Nothing of the caller's environment may steer stacktoken, fctl's profile
    variables or the interpreter (a warning on stderr would be a third line).
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTHON", "STACKTOKEN", "STACK_TOKEN", "FCTL_", "XDG_"))
        and key not in ("PROFILE", "ORGANIZATION", "STACK")
    }
    env.update(FCTL_CONFIG_DIR=str(tmp_path / "no-fctl"), HOME=str(tmp_path))
    return subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@pytest.mark.parametrize(
    "run",
    [
        "runpy.run_module('stacktoken', run_name='__main__')",
        f"runpy.run_path({str(ROOT / 'bin' / 'stacktoken')!r}, run_name='__main__')",
    ],
    ids=["python -m stacktoken", "bin/stacktoken"],
)
def test_command_exit_freezes_the_collector(run: str, tmp_path: Path) -> None:
    done = _run(_REPORT.replace("RUN", run), tmp_path)
    assert done.returncode == 3, done.stderr
    error, report = done.stderr.splitlines()
    assert error.startswith("stacktoken: error: no credential found")
    assert int(report.removeprefix("frozen ")) > 1000, report


def test_command_exit_main_leaves_the_caller_collector_alone(tmp_path: Path) -> None:
    code = (
        "import gc, sys\n"
        "from stacktoken.shell._warm import main\n"
        "assert main(['--cache-dir', sys.argv[1], 'token']) == 3\n"
        "print(gc.get_freeze_count())"
    )
    done = _run(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0"
