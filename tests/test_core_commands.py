"""core/_commands.py: the `token` command's plan, table-driven (no process, no file)."""

from __future__ import annotations

import pytest
from stacktoken.core._commands import (
    FctlChoice,
    MachineChoice,
    TokenPlan,
    may_log_in,
    plan_token,
    token_options,
)
from stacktoken.core._errors import UsageError

SECRET_ENV = {"STACKTOKEN_CLIENT_SECRET": "s3cret-0123456789"}
MACHINE = ("token", "--stack-uri", "https://s.example", "--client-id", "ci")


def _plan(*argv: str, environ: dict[str, str] | None = None) -> TokenPlan | UsageError:
    options = token_options(argv)
    assert options is not None, argv
    return plan_token(options, environ or {})


def test_plan_token_fctl_defaults() -> None:
    assert _plan("token") == TokenPlan(
        fctl=FctlChoice(config_dir=None, profile=None, organization=None, stack=None),
        machine=None,
        output="text",
        ttl=None,
        cache_dir=None,
        login=None,
        debug=False,
    )


def test_plan_token_fctl_names_and_output() -> None:
    plan = _plan(
        "--profile", "p", "token", "--organization", "o", "--stack", "s", "--output", "json"
    )
    assert isinstance(plan, TokenPlan)
    assert plan.fctl == FctlChoice(config_dir=None, profile="p", organization="o", stack="s")
    assert plan.output == "json"


def test_plan_token_fctl_notes_an_ignored_redis_env() -> None:
    plan = _plan("token", environ={"STACKTOKEN_REDIS_URL": "redis://h/0"})
    assert isinstance(plan, TokenPlan)
    assert plan.notes == (
        "$STACKTOKEN_REDIS_URL ignored: fctl-profile tokens stay on the local disk",
    )


def test_plan_token_machine() -> None:
    plan = _plan(*MACHINE, "--scope", "b", "--scope", "a", environ=SECRET_ENV)
    assert isinstance(plan, TokenPlan)
    assert plan.fctl is None
    assert plan.machine == MachineChoice(
        stack_uri="https://s.example",
        client_id="ci",
        scopes=("b", "a"),
        secret_file=None,
        store_url=None,
    )


def test_plan_token_machine_store_from_env_and_flag() -> None:
    environ = {**SECRET_ENV, "STACKTOKEN_REDIS_URL": "rediss://:pw-in-env@h/0"}
    from_env = _plan(*MACHINE, environ=environ)
    from_flag = _plan(*MACHINE, "--store", "redis://other/1", environ=environ)
    turned_off = _plan(*MACHINE, "--store=", environ=environ)
    assert isinstance(from_env, TokenPlan) and from_env.machine is not None
    assert from_env.machine.store_url == "rediss://:pw-in-env@h/0"
    assert isinstance(from_flag, TokenPlan) and from_flag.machine is not None
    assert from_flag.machine.store_url == "redis://other/1"
    assert isinstance(turned_off, TokenPlan) and turned_off.machine is not None
    assert turned_off.machine.store_url is None


@pytest.mark.parametrize(
    ("options", "environ", "message"),
    [
        ({"store": "redis://h/0"}, {}, "fctl-profile tokens belong to one user"),
        ({"stack_uri": "https://s", "client_secret": "x"}, SECRET_ENV, "--client-secret is"),
        ({"stack_uri": "https://s"}, SECRET_ENV, "need both --stack-uri and --client-id"),
        ({"client_id": "ci"}, SECRET_ENV, "need both --stack-uri and --client-id"),
        (
            {"stack_uri": "https://s", "client_id": "ci", "profile": "p", "stack": "s"},
            SECRET_ENV,
            "--profile, --stack choose(s) a stack of an fctl profile",
        ),
        ({"stack_uri": "https://s", "client_id": "ci"}, {}, "no client secret: set $STACKTOKEN"),
        (
            {"stack_uri": "https://s", "client_id": "ci", "store": "http://h"},
            SECRET_ENV,
            "--store must be a redis:// or rediss:// URL",
        ),
        (
            {"stack_uri": "https://s", "client_id": "ci"},
            {**SECRET_ENV, "STACKTOKEN_REDIS_URL": "memcached://h"},
            "$STACKTOKEN_REDIS_URL must be a redis:// or rediss:// URL",
        ),
        (
            {"stack_uri": "https://s", "client_id": "ci", "store": "redis://:pw-123@h/0"},
            SECRET_ENV,
            "--store must not carry a password",
        ),
        ({"output": "yaml"}, {}, "invalid output 'yaml'"),
    ],
)
def test_plan_token_usage_errors(
    options: dict[str, object], environ: dict[str, str], message: str
) -> None:
    plan = plan_token(options, environ)
    assert isinstance(plan, UsageError)
    assert message in plan.message
    assert "s3cret" not in plan.message and "pw-123" not in plan.message


@pytest.mark.parametrize(
    ("argv", "auth_required", "built", "terminal", "expected"),
    [
        (("token",), True, True, True, True),
        (("token",), True, True, False, False),
        (("token",), False, True, True, False),
        (("token",), True, False, True, False),
        (MACHINE, True, True, True, False),
    ],
)
def test_may_log_in(
    argv: tuple[str, ...], auth_required: bool, built: bool, terminal: bool, expected: bool
) -> None:
    plan = _plan(*argv, environ=SECRET_ENV)
    assert isinstance(plan, TokenPlan)
    decided = may_log_in(plan, auth_required=auth_required, source_built=built, terminal=terminal)
    assert decided is expected


def test_may_log_in_with_the_login_flag_off_a_terminal() -> None:
    plan = plan_token({"login": True}, {})
    assert isinstance(plan, TokenPlan)
    assert may_log_in(plan, auth_required=True, source_built=True, terminal=False)
    assert not may_log_in(plan, auth_required=False, source_built=True, terminal=False)
