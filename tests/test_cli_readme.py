"""The README's set-up command runs as written, against a logged-in profile."""

from __future__ import annotations

import shlex
from pathlib import Path

from conftest import World

README = Path(__file__).resolve().parent.parent / "README.md"
INSTALL = "pip install . && "
#: The README's first command: the sandbox demo (tests/test_sandbox.py runs it).
FIRST_COMMAND = "pip install '.[testing,sdk]' && python -m stacktoken.testing demo"


def _setup_command() -> list[str]:
    lines = [line for line in README.read_text().splitlines() if line.startswith(INSTALL)]
    assert len(lines) == 1, lines
    words = shlex.split(lines[0].removeprefix(INSTALL))
    assert words[0] == "stacktoken", words
    return words[1:]


def test_readme_setup_command_prints_a_token(world: World) -> None:
    result = world.run(*_setup_command(), global_args=())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == world.stack.issued_tokens[-1].access_token


def test_readme_first_command_is_the_sandbox_demo() -> None:
    """A newcomer's first command needs no account: the demo, which test_sandbox runs."""
    commands = [line for line in README.read_text().splitlines() if line.startswith("pip install")]
    assert commands[0] == FIRST_COMMAND
