"""`token --output env|env-no-export` handed to a real POSIX shell."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from stacktoken.core._commands import shell_quote

from conftest import World

SH = shutil.which("sh") or "/bin/sh"
# Values a shell would mangle if they were not quoted as one word each.
AWKWARD = ["plain", "", "it's", "a b", "$HOME", "`id`", '"q"', "a\\b", "x;y", "*", "~", "é"]


def _in_shell(script: str, *args: str) -> str:
    done = subprocess.run(
        [SH, "-c", script, "sh", *args], capture_output=True, text=True, timeout=30, check=True
    )
    return done.stdout


@pytest.mark.parametrize("value", AWKWARD)
def test_shell_quote_gives_back_the_value_in_a_real_shell(value: str) -> None:
    assert _in_shell(f"printf %s {shell_quote(value)}") == value


def test_cli_env_output_sets_token_and_url_when_evaluated(world: World) -> None:
    for _ in ("cold", "warm"):
        result = world.run("token", "--output", "env")
        assert result.returncode == 0 and result.stderr == "", result.stderr
        lines = result.stdout.splitlines()
        assert [line.split("=")[0] for line in lines] == [
            "export FORMANCE_STACK_TOKEN",
            "export FORMANCE_STACK_URL",
        ]
        # Exported: a child process of the shell sees both.
        seen = _in_shell(
            'eval "$1"; sh -c \'printf "%s\\n%s" "$FORMANCE_STACK_TOKEN" "$FORMANCE_STACK_URL"\'',
            result.stdout,
        )
        assert seen == f"{world.stack.issued_tokens[0].access_token}\n{world.stack.origin}"


def test_cli_env_no_export_output_sets_shell_variables_only(world: World) -> None:
    result = world.run("token", "--output", "env-no-export")
    assert result.returncode == 0, result.stderr
    assert not any(line.startswith("export ") for line in result.stdout.splitlines())
    token = world.stack.issued_tokens[0].access_token
    assert _in_shell('eval "$1"; printf %s "$FORMANCE_STACK_TOKEN"', result.stdout) == token
    assert _in_shell('eval "$1"; sh -c \'printf %s "$FORMANCE_STACK_TOKEN"\'', result.stdout) == ""
