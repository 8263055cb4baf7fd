"""The `stacktoken` command (DESIGN §7).

Global options go before the command, command options after it. Errors are
one line on stderr, `stacktoken: error: ...`, with exit code 1 (network,
server, protocol), 2 (usage) or 3 (log in again); never a traceback. Without
`--debug` nothing imports `logging`, and a warm `token` imports no HTTP code.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import NoReturn, TextIO

from returns.result import Failure, Result, Success
from stacktoken.core import (
    CACHE_FILE,
    AcquireError,
    CachedToken,
    Settings,
    StackKey,
    UsageError,
    exit_code,
    format_rfc3339,
    judge_disk_entry,
    one_line,
    validate_name,
)

from ._fctl import config_dir_from, current_profile, read_cache_entry
from ._files import remove_file
from ._source import TokenSource, settings_from, utc_now
from ._warm import printed

__all__ = ["main"]

PROGRAM = "stacktoken"


class _UsageProblem(Exception):
    """argparse found the command line wrong."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageProblem(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROGRAM,
        description="Stack API tokens for Formance stacks, kept warm on disk (fctl-compatible).",
    )
    parser.add_argument(
        "--config-dir",
        help="fctl's config dir (default: $FCTL_CONFIG_DIR, else ~/.config/formance/fctl)",
    )
    parser.add_argument("--cache-dir", help="where discovery documents are cached")
    parser.add_argument("--profile", help="fctl profile (default: config.yml's current profile)")
    parser.add_argument("--debug", action="store_true", help="debug logs on stderr")
    parser.add_argument("--version", action="version", version=f"{PROGRAM} {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    token = commands.add_parser("token", help="print a stack API token")
    token.add_argument("--organization", help="organization ID (default: the profile's)")
    token.add_argument("--stack", help="stack ID (default: the profile's)")
    token.add_argument(
        "--stack-token-cache-ttl",
        metavar="DURATION",
        help="how long a token is served from the disk cache (Go duration; 0 disables; "
        "default $STACK_TOKEN_CACHE_TTL, else 5m)",
    )
    token.add_argument("--output", choices=("text", "json"), default="text")

    cache = commands.add_parser("cache", help="inspect or clear the token cache")
    cache_commands = cache.add_subparsers(dest="cache_command", required=True, parser_class=_Parser)
    cache_commands.add_parser("list", help="list cache entries (never token values)")
    clear = cache_commands.add_parser("clear", help="remove cache entries of the profile")
    clear.add_argument("--organization")
    clear.add_argument("--stack")
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(PROGRAM)
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    try:
        return _run(sys.argv[1:] if argv is None else argv)
    except _UsageProblem as problem:
        return _fail(UsageError(message=str(problem)))
    except KeyboardInterrupt:
        _print_error("interrupted")
        return 130
    except Exception as error:  # the promise is one line and no traceback, whatever happens
        # The type only: an unexpected exception's text may hold anything, a token included.
        _print_error(f"unexpected {type(error).__name__}")
        return 1


def _run(argv: Sequence[str]) -> int:
    options = _parser().parse_args(argv)
    log = _debug_log() if options.debug else _no_log
    config_dir = config_dir_from(options.config_dir, os.environ)
    if options.command == "token":
        return _token(options, config_dir, log)
    if options.cache_command == "list":
        return _cache_list(options, config_dir)
    return _cache_clear(options, config_dir)


def _token(options: argparse.Namespace, config_dir: Path, log: Callable[[str], None]) -> int:
    built = TokenSource.from_fctl_result(
        config_dir=config_dir,
        profile=options.profile,
        organization=options.organization,
        stack=options.stack,
        cache_dir=options.cache_dir,
        cache_ttl=options.stack_token_cache_ttl,
        log=log,
    )
    result: Result[CachedToken, AcquireError] = built.bind(_token_of)
    match result:
        case Success(token):
            sys.stdout.write(printed(token, options.output))
            return 0
        case Failure(error):
            return _fail(error)
    raise AssertionError("a Result is a Success or a Failure")  # for mypy's exhaustiveness


def _token_of(source: TokenSource) -> Result[CachedToken, AcquireError]:
    with source:
        return source.token_result()


def _cache_entries(config_dir: Path, profile: str | None) -> Iterator[tuple[StackKey, Path]]:
    """Every stack cache file under the config dir (of one profile, if given)."""
    import glob  # a profile name is literal: `*` or `[od]*` must not reach other profiles

    pattern = f"{glob.escape(profile) if profile else '*'}/organizations/*/stacks/*/{CACHE_FILE}"
    for path in sorted((config_dir / "profiles").glob(pattern)):
        stack_folder = path.parent
        org_folder = stack_folder.parent.parent
        key = StackKey(
            profile=org_folder.parent.parent.name,
            organization=org_folder.name,
            stack=stack_folder.name,
        )
        yield key, path


def _cache_list(options: argparse.Namespace, config_dir: Path) -> int:
    if options.profile is not None and isinstance(
        failed := validate_name("profile", options.profile), Failure
    ):
        return _fail(failed.failure())
    settings = settings_from(None, os.environ).value_or(Settings())
    now = utc_now()
    lines = [
        _describe(key, path, settings=settings, now=now)
        for key, path in _cache_entries(config_dir, options.profile)
    ]
    sys.stdout.write("".join(line + "\n" for line in lines) if lines else "no cache entries\n")
    return 0


def _describe(key: StackKey, path: Path, *, settings: Settings, now: datetime) -> str:
    shown = _printable(str(key))
    match read_cache_entry(path):
        case Failure(reason):
            return f"{shown}  unreadable ({reason})"
        case Success((entry, mtime)):
            pass
    saved_at = entry.saved_at or mtime
    verdict = judge_disk_entry(entry, file_mtime=mtime, settings=settings, now=now)
    expiry = format_rfc3339(entry.expiry) if entry.expiry else "none"
    age = _seconds(now - saved_at)
    return f"{shown}  expiry {expiry}  age {age}  {verdict.value}"


def _printable(text: str) -> str:
    """Folder names as found on disk, escaped to one printable line: a newline
    or an undecodable byte (a lone surrogate here) must not break the listing."""
    return "".join(
        char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        for char in text
    )


def _seconds(delta: timedelta) -> str:
    total = int(delta.total_seconds())
    return f"{total}s" if total >= 0 else f"{total}s (in the future)"


def _cache_clear(options: argparse.Namespace, config_dir: Path) -> int:
    profile = current_profile(config_dir, options.profile)
    checks = [validate_name("profile", profile)]
    if options.organization is not None:
        checks.append(validate_name("organization", options.organization))
    if options.stack is not None:
        checks.append(validate_name("stack", options.stack))
    for check in checks:
        if isinstance(check, Failure):
            return _fail(check.failure())
    removed = 0
    for key, path in _cache_entries(config_dir, profile):
        if options.organization not in (None, key.organization):
            continue
        if options.stack not in (None, key.stack):
            continue
        match remove_file(path):
            case Success(True):
                removed += 1
            case Failure(error):
                return _fail(error)
    sys.stdout.write(f"removed {removed} cache {'entry' if removed == 1 else 'entries'}\n")
    return 0


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
