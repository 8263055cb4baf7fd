"""The plain `token` command is read without argparse (it costs a cold run ~10 ms):
what `_plain_token_command` reads must be what argparse would have read."""

from __future__ import annotations

import argparse

import pytest
from stacktoken.shell import _cli

COMMAND_LINES = [
    ["token"],
    ["--profile", "p", "token", "--stack", "s"],
    ["--config-dir=/c", "--cache-dir", "/k", "token", "--organization", "o", "--output", "json"],
    ["token", "--stack-token-cache-ttl=0", "--stack", "a", "--stack", "b"],
    ["--cache-dir", "/k", "token", "--stack-uri", "https://s.example", "--client-id", "ci"],
    ["token", "--stack-uri=http://127.0.0.1:1", "--client-id=ci", "--scope", "b", "--scope=a"],
    ["token", "--client-id", "ci", "--client-secret-file", "/run/secret"],
]


def _destinations(parser: argparse.ArgumentParser) -> set[str]:
    found: set[str] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found |= _destinations(action.choices["token"]) if "token" in action.choices else set()
        elif action.dest not in ("help", "version", "debug"):
            found.add(action.dest)
    return found


def test_cli_plain_token_destinations_are_the_parsers() -> None:
    """Every option of the global and `token` parsers has its slot, and nothing else."""
    assert set(_cli._TOKEN_DESTINATIONS) == _destinations(_cli._parser())


@pytest.mark.parametrize("argv", COMMAND_LINES, ids=[" ".join(line) for line in COMMAND_LINES])
def test_cli_plain_token_reads_what_argparse_reads(argv: list[str]) -> None:
    quick = _cli._plain_token_command(argv)
    assert quick is not None
    parsed = vars(_cli._parser().parse_args(argv))
    assert {key: parsed[key] for key in vars(quick)} == vars(quick)


@pytest.mark.parametrize(
    "argv",
    [
        ["--debug", "token"],
        ["token", "--help"],
        ["cache", "list"],
        ["token", "--client-secret", "x"],
        ["token", "--output", "yaml"],
        ["token", "--stack"],
        ["token", "--stack", "--output"],
    ],
)
def test_cli_plain_token_leaves_anything_else_to_argparse(argv: list[str]) -> None:
    assert _cli._plain_token_command(argv) is None
