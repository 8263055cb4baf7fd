"""The `status` and `logout` commands, and the chain applied to `token`
(docs/design.md §7, §14). `_cli` registers them (`register_commands`), runs
them (`run_command`) and lets the chain fill in `token`'s credential
(`chain_token_options`)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from returns.result import Failure, Success
from stacktoken.core._chain import CLIENT, Credential
from stacktoken.core._commands import CLIENT_SECRET_ENV
from stacktoken.core._errors import AcquireError, UsageError

from ._credential import choose
from ._process import utc_now

if TYPE_CHECKING:
    import argparse

    from stacktoken.core._status import CheckResult

__all__ = ["chain_token_options", "register_commands", "run_command"]

_FCTL_FLAGS = ("config_dir", "profile", "organization", "stack")


def register_commands(commands: Any) -> None:
    """Add `status` and `logout` to the CLI's subcommands."""
    status = commands.add_parser(
        "status",
        help="which credential would be used, and until when (no request without --check)",
        allow_abbrev=False,
    )
    status.add_argument("--output", choices=("text", "json"), default="text")
    status.add_argument(
        "--check",
        action="store_true",
        help="also get a token through the cache: where it came from, how long it took",
    )
    _credential_options(status)
    logout = commands.add_parser(
        "logout",
        help="revoke the profile's (or a machine credential's) tokens and delete them locally",
        allow_abbrev=False,
    )
    _credential_options(logout)
    logout.add_argument(
        "--store",
        metavar="URL",
        help="the fleet's Redis, whose entry is deleted too (default: $STACKTOKEN_REDIS_URL)",
    )


def _credential_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--organization", help="organization ID (default as for `token`)")
    parser.add_argument("--stack", help="stack ID (default as for `token`)")
    parser.add_argument("--stack-uri", metavar="URI", help="a machine credential's stack URI")
    parser.add_argument("--client-id", metavar="ID", help="a machine credential's client id")
    parser.add_argument("--scope", action="append", metavar="SCOPE", help="a scope (repeatable)")
    parser.add_argument(
        "--client-secret-file",
        metavar="PATH",
        help=f"a file holding the client secret, `-` for stdin (default: ${CLIENT_SECRET_ENV})",
    )


def chain_token_options(
    options: Mapping[str, object], config_dir: str
) -> dict[str, object] | AcquireError:
    """`token`'s options with the chain applied: a machine credential from the
    environment filled in as if given by flags; or the error when the chain
    refuses (half a credential, a bad pin, nothing found)."""
    explicit_fctl = any(options.get(name) is not None for name in _FCTL_FLAGS)
    chosen = choose(
        explicit_client=options.get("stack_uri") is not None
        or options.get("client_id") is not None,
        explicit_fctl=explicit_fctl,
        config_dir=config_dir,
        profile=_text(options.get("profile")),
        environ=os.environ,
    )
    if not isinstance(chosen, Credential):
        return chosen
    chained = dict(options)
    if chosen.kind != CLIENT:
        return chained
    if chosen.origin == "environment":
        chained["stack_uri"], chained["client_id"] = chosen.stack_uri, chosen.client_id
        if chained.get("scope") is None and chosen.scopes:
            chained["scope"] = list(chosen.scopes)
    if chained.get("client_secret_file") is None and chosen.secret_file is not None:
        chained["client_secret_file"] = chosen.secret_file
    return chained


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def run_command(
    options: Mapping[str, object],
    config_dir: str,
    log: Callable[[str], None],
    fail: Callable[[AcquireError], int],
) -> int | None:
    """Run `status` or `logout`; None for any other command."""
    if options["command"] == "status":
        return _status(options, config_dir, log, fail)
    if options["command"] == "logout":
        return _logout(options, config_dir, log, fail)
    return None


def _chain_arguments(options: Mapping[str, object], config_dir: str) -> dict[str, Any]:
    flagged = options["config_dir"] is not None
    return {
        "stack_uri": options["stack_uri"],
        "client_id": options["client_id"],
        "secret_file": options["client_secret_file"],
        "scopes": options["scope"],
        "config_dir": config_dir if flagged else None,
        "profile": options["profile"],
        "organization": options["organization"],
        "stack": options["stack"],
    }


def _stdin() -> str:
    return sys.stdin.read()


def _status(
    options: Mapping[str, object],
    config_dir: str,
    log: Callable[[str], None],
    fail: Callable[[AcquireError], int],
) -> int:
    from stacktoken.core._status import render_status

    from ._status import collect_status

    result = collect_status(
        check=bool(options["check"]),
        cache_dir=_text(options["cache_dir"]),
        log=log,
        stdin=_stdin,
        **_chain_arguments(options, config_dir),
    )
    match result:
        case Success(found):
            sys.stdout.write(render_status(found, str(options["output"]), now=utc_now()))
            check: CheckResult | None = found.check
            if check is not None and check.error is not None:
                return check.exit_code
            return 3 if found.login_needed else 0
        case Failure(error):
            return fail(error)
    raise AssertionError("a Result is a Success or a Failure")


def _logout(
    options: Mapping[str, object],
    config_dir: str,
    log: Callable[[str], None],
    fail: Callable[[AcquireError], int],
) -> int:
    from ._logout import logout_command

    arguments = _chain_arguments(options, config_dir)
    for unused in ("organization", "stack"):  # a logout is the whole profile's
        if arguments.pop(unused) is not None:
            return fail(UsageError(message=f"logout logs the whole profile out: no --{unused}"))
    result = logout_command(
        cache_dir=_text(options["cache_dir"]),
        store=_text(options["store"]),
        log=log,
        stdin=_stdin,
        **arguments,
    )
    match result:
        case Success(report):
            for line in (*report.not_revoked, *report.notes):
                sys.stderr.write(f"stacktoken: warning: {line}\n")
            kind = "profile" if report.credential == "fctl" else "machine credential"
            sys.stdout.write(
                f"logged out of {kind} {report.name}: {report.revoked} token(s) revoked, "
                f"{report.removed} file(s) or entries removed\n"
            )
            return 0
        case Failure(error):
            return fail(error)
    raise AssertionError("a Result is a Success or a Failure")
