"""The `stacktoken` command (docs/design.md §7).

Global options go before the command, command options after it. Errors are
one line on stderr, `stacktoken: error: ...`, with exit code 1 (network,
server, protocol), 2 (usage) or 3 (log in again, or credentials rejected);
never a traceback. Without `--debug` nothing imports `logging`.

`token` means what core's `plan_token` says it means, as on the warm path
(shell/_warm.py): a plain `token` command line is read by core's
`token_options` (argparse costs a cold run about 10 ms), any other by argparse,
and both give the plan the same options.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, NoReturn, TextIO

from returns.result import Failure, Result, Success
from stacktoken.core._commands import (
    CLIENT_SECRET_ENV,
    OUTPUTS,
    REDIS_URL_ENV,
    MachineChoice,
    TokenPlan,
    may_log_in,
    plan_token,
    render_token,
    token_options,
)
from stacktoken.core._errors import AcquireError, AuthRequired, UsageError, exit_code
from stacktoken.core._results import lift
from stacktoken.core._text import escaped, one_line
from stacktoken.core._types import CachedToken

from ._config import config_dir_from, locate_stack, read_secret_file
from ._credential_commands import chain_token_options, register_commands, run_command
from ._process import utc_now
from ._signals import Terminated, guard
from ._source import TokenSource, client_source, fctl_source

if TYPE_CHECKING:
    import argparse

    from ._config import FctlStack
    from ._redis import RedisStore

__all__ = ["main"]

PROGRAM = "stacktoken"


class _UsageProblem(Exception):
    """argparse found the command line wrong."""


def _parser() -> argparse.ArgumentParser:
    import argparse  # not for the plain `token` command, which `token_options` reads

    class _Parser(argparse.ArgumentParser):
        def error(self, message: str) -> NoReturn:
            raise _UsageProblem(message)

    class _VersionAction(argparse.Action):
        """`--version`, looked up only when asked for: importlib.metadata is slow to import."""

        def __call__(self, parser: argparse.ArgumentParser, *_: object) -> NoReturn:
            # On stdout, as argparse's own "version" action prints it
            # (`parser.exit(message=...)` would write it to stderr).
            sys.stdout.write(f"{PROGRAM} {_version()}\n")
            parser.exit()

    # allow_abbrev=False: `--client-sec=...` must never be taken for an option,
    # nor quoted back in an "ambiguous option" message.
    parser = _Parser(
        prog=PROGRAM,
        description="Stack API tokens for Formance stacks, kept warm on disk (fctl-compatible).",
        allow_abbrev=False,
    )
    parser.add_argument(
        "--config-dir",
        help="fctl's config dir (default: $FCTL_CONFIG_DIR, else ~/.config/formance/fctl)",
    )
    parser.add_argument(
        "--cache-dir",
        help="where discovery documents and machine-credential tokens are cached "
        "(default: the user cache dir, ~/.cache/stacktoken on Linux)",
    )
    parser.add_argument(
        "--profile", help="fctl profile (default: $PROFILE, else config.yml's current profile)"
    )
    parser.add_argument("--debug", action="store_true", help="debug logs on stderr")
    parser.add_argument(
        "--version", action=_VersionAction, nargs=0, help="print the version and exit"
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    token = commands.add_parser("token", help="print a stack API token", allow_abbrev=False)
    token.add_argument(
        "--organization", help="organization ID (default: $ORGANIZATION, else the profile's)"
    )
    token.add_argument("--stack", help="stack ID (default: $STACK, else the profile's)")
    token.add_argument(
        "--stack-token-cache-ttl",
        metavar="DURATION",
        help="how long a token is served from the disk cache (Go duration; 0 disables; "
        "default $STACK_TOKEN_CACHE_TTL, else 5m)",
    )
    token.add_argument(
        "--output",
        choices=OUTPUTS,
        default="text",
        help="text: the token alone; json: token, type, expiry, expires_on, stack_uri; "
        "env / env-no-export: FORMANCE_STACK_TOKEN and FORMANCE_STACK_URL assignments",
    )
    machine = token.add_argument_group(
        "machine credentials (a stack OAuth client instead of an fctl profile)"
    )
    machine.add_argument("--stack-uri", metavar="URI", help="the stack's URI")
    machine.add_argument("--client-id", metavar="ID", help="the OAuth client's id")
    machine.add_argument(
        "--scope", action="append", metavar="SCOPE", help="a scope to ask for (repeatable)"
    )
    machine.add_argument(
        "--client-secret-file",
        metavar="PATH",
        help=f"a file holding the client secret, `-` for stdin (default: ${CLIENT_SECRET_ENV})",
    )
    machine.add_argument(
        "--store",
        metavar="URL",
        help="a Redis the fleet shares the token through, redis:// or rediss:// "
        f"(default: ${REDIS_URL_ENV}; empty: none); machine credentials only",
    )
    # Accepted only to be refused with the reason, never echoed.
    machine.add_argument("--client-secret", help=argparse.SUPPRESS)
    token.add_argument(
        "--login",
        action="store_true",
        default=None,
        help="when the stack has no usable access token, get one by the device flow even "
        "when not on a terminal (on a terminal this is the default)",
    )

    login = commands.add_parser(
        "login", help="log in by the device flow, as `fctl login`", allow_abbrev=False
    )
    login.add_argument(
        "--membership-uri",
        metavar="URI",
        help="the membership API (default: the profile's, else https://app.formance.cloud/api)",
    )
    login.add_argument("--no-browser", action="store_true", help="do not open a browser")
    login.add_argument("--organization", help="with --stack: get that stack's access too")
    login.add_argument("--stack", help="with --organization: get that stack's access too")

    cache = commands.add_parser("cache", help="inspect or clear the token cache")
    cache_commands = cache.add_subparsers(dest="cache_command", required=True, parser_class=_Parser)
    cache_commands.add_parser("list", help="list cache entries (never token values)")
    clear = cache_commands.add_parser(
        "clear", help="remove cache entries of the profile, or of machine credentials"
    )
    clear.add_argument("--organization")
    clear.add_argument("--stack")
    clear.add_argument("--client-id", help="remove this machine credential's entries instead")
    clear.add_argument("--stack-uri", help="with --client-id: only those for this stack")
    register_commands(commands)  # status, logout
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(PROGRAM)
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        guard.install()
        return _run(args)
    except _UsageProblem as problem:
        return _fail(UsageError(message=_without_secrets(str(problem), args)))
    except KeyboardInterrupt:
        _print_error("interrupted")
        return 130
    except Terminated:
        _print_error("terminated")
        return 143
    except Exception as error:  # the promise is one line and no traceback, whatever happens
        # The type only: an unexpected exception's text may hold anything, a token included.
        _print_error(f"unexpected {type(error).__name__}")
        return 1


def _without_secrets(message: str, args: Sequence[str]) -> str:
    """argparse quotes the words it refuses: never a value that may be a secret."""
    for index, word in enumerate(args):
        name, equals, value = word.partition("=")
        if "secret" in name.lower() and name.startswith("-"):
            if equals and value:
                message = message.replace(value, "[redacted]")
            elif index + 1 < len(args) and args[index + 1]:
                message = message.replace(args[index + 1], "[redacted]")
    return message


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    """`parse_args`, but the words it does not know are quoted back safely."""
    options, unknown = _parser().parse_known_args(argv)
    if unknown:
        raise _UsageProblem(f"unrecognized arguments: {' '.join(_shown_unknown(unknown))}")
    return options


def _shown_unknown(words: Sequence[str]) -> list[str]:
    """argparse quotes every word it does not know; the value of an option it does
    not know (`--client-sec=VALUE`, `--client-sec VALUE`) may be a secret: its
    name is shown, never its value."""
    shown: list[str] = []
    after_option = False
    for word in words:
        if word.startswith("-") and word != "-":
            name, equals, _ = word.partition("=")
            shown.append(f"{name}=[redacted]" if equals else name)
            after_option = not equals
        else:
            shown.append("[redacted]" if after_option else word)
            after_option = False
    return shown


def _run(argv: Sequence[str]) -> int:
    plain = token_options(argv)
    options: dict[str, object] = (
        {**plain, "command": "token"} if plain is not None else vars(_parse(argv))
    )
    log = _debug_log() if options.get("debug") else _no_log
    config_dir = config_dir_from(_text(options.get("config_dir")), os.environ)
    if (ran := run_command(options, config_dir, log, _fail)) is not None:
        return ran
    if options["command"] == "token":
        return _token(options, config_dir, log)
    if options["command"] == "login":
        return _login(options, config_dir, log)
    from ._cache_commands import cache_clear, cache_list

    if options["cache_command"] == "list":
        return _print(
            cache_list(
                config_dir=config_dir,
                profile=_text(options["profile"]),
                cache_dir=_text(options["cache_dir"]),
                environ=os.environ,
                now=utc_now(),
            )
        )
    return _print(
        cache_clear(
            config_dir=config_dir,
            profile=_text(options["profile"]),
            organization=_text(options["organization"]),
            stack=_text(options["stack"]),
            client_id=_text(options["client_id"]),
            stack_uri=_text(options["stack_uri"]),
            cache_dir=_text(options["cache_dir"]),
            environ=os.environ,
        )
    )


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _token(given: Mapping[str, object], config_dir: str, log: Callable[[str], None]) -> int:
    options = chain_token_options(given, config_dir)  # docs/design.md §14: the chain
    if not isinstance(options, dict):
        return _fail(options)
    plan = plan_token(options, os.environ)
    if isinstance(plan, UsageError):
        return _fail(plan)
    for note in plan.notes:
        log(note)
    built = (
        _fctl_source(plan, config_dir, log)
        if plan.machine is None
        else _client_source(plan, plan.machine, log)
    )
    result: Result[tuple[CachedToken, str | None], AcquireError] = built.bind(_token_of)
    auth_required = isinstance(result, Failure) and isinstance(result.failure(), AuthRequired)
    if may_log_in(
        plan,
        auth_required=auth_required,
        source_built=isinstance(built, Success),
        terminal=sys.stdin.isatty() and sys.stderr.isatty(),
    ):
        result = _with_stack_access(plan, config_dir, log).bind(_token_of)
    match result:
        case Success((token, stack_uri)):
            sys.stdout.write(render_token(token, plan.output, stack_uri=stack_uri))
            return 0
        case Failure(error):
            return _fail(error)
    raise AssertionError("a Result is a Success or a Failure")  # for mypy's exhaustiveness


def _fctl_source(
    plan: TokenPlan, config_dir: str, log: Callable[[str], None]
) -> Result[TokenSource, AcquireError]:
    """The source of the plan's fctl stack (the one place the CLI builds one)."""
    chosen = plan.fctl
    assert chosen is not None  # a plan reads an fctl stack or a machine credential
    return fctl_source(
        config_dir=config_dir,
        profile=chosen.profile,
        organization=chosen.organization,
        stack=chosen.stack,
        cache_dir=plan.cache_dir,
        cache_ttl=plan.ttl,
        log=log,
    )


def _with_stack_access(
    plan: TokenPlan, config_dir: str, log: Callable[[str], None]
) -> Result[TokenSource, AcquireError]:
    """Get the stack's access by the device flow, then a new source for it."""
    from ._login import login_flow, stderr_notice, terminal_prompt

    chosen = plan.fctl
    assert chosen is not None  # `may_log_in` said so
    located: Result[FctlStack, AcquireError] = lift(
        locate_stack(
            config_dir,
            profile=chosen.profile,
            organization=chosen.organization,
            stack=chosen.stack,
            environ=os.environ,
        )
    )
    return located.bind(
        lambda stack: login_flow(
            config_dir=config_dir,
            profile=stack.key.profile,
            organization=stack.key.organization,
            stack=stack.key.stack,
            prompt=terminal_prompt(browser=True),
            cache_dir=plan.cache_dir,
            log=log,
            notice=stderr_notice,
        )
    ).bind(lambda _: _fctl_source(plan, config_dir, log))


def _login(options: Mapping[str, object], config_dir: str, log: Callable[[str], None]) -> int:
    from ._login import login_flow, stderr_notice, terminal_prompt

    result = login_flow(
        config_dir=config_dir,
        profile=_text(options["profile"]),
        membership_uri=_text(options["membership_uri"]),
        prompt=terminal_prompt(browser=not options["no_browser"]),
        cache_dir=_text(options["cache_dir"]),
        organization=_text(options["organization"]),
        stack=_text(options["stack"]),
        log=log,
        notice=stderr_notice,
    )
    match result:
        case Success(profile):
            sys.stderr.write(f"Logged in (profile {escaped(profile)!r})\n")
            return 0
        case Failure(error):
            return _fail(error)
    raise AssertionError("a Result is a Success or a Failure")


def _client_source(
    plan: TokenPlan, machine: MachineChoice, log: Callable[[str], None]
) -> Result[TokenSource, AcquireError]:
    """The source of the plan's machine credential (the one place the CLI builds one)."""
    store: Result[RedisStore | None, AcquireError] = lift(_shared_store(machine.store_url, log))
    return store.bind(
        lambda shared: lift(_client_secret(machine.secret_file)).bind(
            lambda client_secret: client_source(
                stack_uri=machine.stack_uri,
                client_id=machine.client_id,
                client_secret=client_secret,
                scopes=machine.scopes,
                cache_dir=plan.cache_dir,
                cache_ttl=plan.ttl,
                store=shared,
                log=log,
            )
        )
    )


def _shared_store(url: str | None, log: Callable[[str], None]) -> RedisStore | UsageError | None:
    """The Redis store the plan names, if any (docs/design.md §11)."""
    if url is None:
        return None
    from ._redis import RedisStore, store_url_problem

    if problem := store_url_problem(url):
        return problem
    store = RedisStore(url, log=log)
    log(f"shared store: {store!r}")
    return store


def _client_secret(path: str | None) -> str | UsageError:
    if path == "-":
        secret = sys.stdin.read().strip()
        return secret or UsageError(message="no client secret on stdin")
    if path is not None:
        return read_secret_file(path)
    return os.environ.get(CLIENT_SECRET_ENV) or UsageError(
        message=f"no client secret: set ${CLIENT_SECRET_ENV} or use --client-secret-file PATH"
    )


def _token_of(source: TokenSource) -> Result[tuple[CachedToken, str | None], AcquireError]:
    with source:
        return source.token_result().map(lambda token: (token, source.stack_uri))


def _print(result: Result[str, AcquireError]) -> int:
    match result:
        case Success(text):
            sys.stdout.write(text)
            return 0
        case Failure(error):
            return _fail(error)
    raise AssertionError("a Result is a Success or a Failure")


def _fail(error: AcquireError) -> int:
    _print_error(error.message)
    return exit_code(error)


def _print_error(message: str, stream: TextIO | None = None) -> None:
    (stream or sys.stderr).write(f"{PROGRAM}: error: {one_line(message, limit=500)}\n")


def _no_log(_: str) -> None:
    return None


def _debug_log() -> Callable[[str], None]:
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROGRAM}: debug: %(message)s"))
    logger = logging.getLogger(PROGRAM)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    return logger.debug
