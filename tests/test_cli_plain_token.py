"""The plain `token` command is read without argparse (it costs a cold run ~10 ms):
what core's `token_options` reads must plan as what argparse would have read plans."""

from __future__ import annotations

import argparse

import pytest
from stacktoken.core._commands import (
    GLOBAL_OPTIONS,
    REPEATED_TOKEN_OPTIONS,
    TOKEN_DESTINATIONS,
    TOKEN_OPTIONS,
    plan_token,
    token_options,
)
from stacktoken.shell import _cli

COMMAND_LINES = [
    ["token"],
    ["--profile", "p", "token", "--stack", "s"],
    ["--config-dir=/c", "--cache-dir", "/k", "token", "--organization", "o", "--output", "json"],
    ["token", "--stack-token-cache-ttl=0", "--stack", "a", "--stack", "b"],
    ["--cache-dir", "/k", "token", "--stack-uri", "https://s.example", "--client-id", "ci"],
    ["token", "--stack-uri=http://127.0.0.1:1", "--client-id=ci", "--scope", "b", "--scope=a"],
    ["token", "--client-id", "ci", "--client-secret-file", "/run/secret"],
    ["token", "--stack-uri", "https://s.example", "--client-id", "ci", "--store", "redis://h/0"],
    ["token", "--store", "redis://h/0"],
    ["token", "--stack-uri", "https://s.example", "--client-id", "ci", "--store", ""],
]
# The environments each command line is planned in: with and without a secret
# and a shared store in the environment.
ENVIRONMENTS = [
    {},
    {"STACKTOKEN_CLIENT_SECRET": "s3cret-value", "STACKTOKEN_REDIS_URL": "redis://:pw@h/1"},
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
    """Every option of the global and `token` parsers is read by the plan, and nothing else."""
    assert set(TOKEN_DESTINATIONS) == _destinations(_cli._parser())
    assert len(TOKEN_DESTINATIONS) == len(set(TOKEN_DESTINATIONS))


def test_cli_plain_token_options_are_spelled_as_the_parser_spells_them() -> None:
    """Each option `token_options` reads is the parser's, under the same destination."""
    parser = _cli._parser()
    token = next(
        action.choices["token"]
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    for table, owner in (
        (GLOBAL_OPTIONS, parser),
        (TOKEN_OPTIONS, token),
        (REPEATED_TOKEN_OPTIONS, token),
    ):
        for flag, destination in table.items():
            (action,) = [a for a in owner._actions if flag in a.option_strings]
            assert action.dest == destination, flag


@pytest.mark.parametrize("environ", ENVIRONMENTS, ids=["no env", "secret and store in env"])
@pytest.mark.parametrize("argv", COMMAND_LINES, ids=[" ".join(line) for line in COMMAND_LINES])
def test_cli_plain_token_plans_what_argparse_plans(
    argv: list[str], environ: dict[str, str]
) -> None:
    quick = token_options(argv)
    assert quick is not None
    parsed = vars(_cli._parser().parse_args(argv))
    assert {key: parsed[key] for key in quick} == quick
    assert plan_token(quick, environ) == plan_token(parsed, environ)


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
        ["token", "--login"],
    ],
)
def test_cli_plain_token_leaves_anything_else_to_argparse(argv: list[str]) -> None:
    assert token_options(argv) is None
