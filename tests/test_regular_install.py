"""A regular (non-editable) install, used from the repository root as a new user would.

DESIGN §2: a folder named `stacktoken/` at the root would shadow the installed
package (the working directory comes first on `sys.path`), so `python -m
stacktoken` and `import stacktoken` failed from there with
`ModuleNotFoundError: stacktoken.core`. This test installs the checkout into a
scratch virtualenv, the way the README says, and runs both from the root.
"""

from __future__ import annotations

import os
import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INSTALL_TIMEOUT = 300  # a fresh machine may download the dependencies


@pytest.fixture(scope="module")
def installed_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("regular-install")
    venv.create(home / "venv", with_pip=True)
    python = home / "venv" / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(ROOT)],
        check=True,
        timeout=INSTALL_TIMEOUT,
        env={k: v for k, v in os.environ.items() if not k.startswith("PYTHON")},
    )
    return python


def _run_from_root(python: Path, *args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "FCTL_"))}
    env["HOME"] = str(tmp_path)
    return subprocess.run(
        [str(python), *args], cwd=ROOT, capture_output=True, text=True, timeout=60, env=env
    )


def test_regular_install_runs_module_from_the_repository_root(
    installed_python: Path, tmp_path: Path
) -> None:
    done = _run_from_root(
        installed_python,
        "-m",
        "stacktoken",
        "--config-dir",
        str(tmp_path),
        "cache",
        "list",
        tmp_path=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "no cache entries\n"
    assert "Traceback" not in done.stderr


def test_regular_install_imports_the_installed_package_from_the_repository_root(
    installed_python: Path, tmp_path: Path
) -> None:
    done = _run_from_root(
        installed_python,
        "-c",
        "import stacktoken, stacktoken.core, stacktoken.shell; stacktoken.TokenSource;"
        " print(stacktoken.__file__)",
        tmp_path=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert not Path(done.stdout.strip()).is_relative_to(ROOT)


def test_regular_install_prints_its_version(installed_python: Path, tmp_path: Path) -> None:
    done = _run_from_root(installed_python, "-m", "stacktoken", "--version", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "stacktoken 0.1.0"
    console = installed_python.parent / "stacktoken"
    via_script = subprocess.run(
        [str(console), "--version"], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert via_script.stdout == done.stdout
