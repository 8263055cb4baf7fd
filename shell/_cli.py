"""The `stacktoken` command (DESIGN §7).

Global options go before the command, command options after it. Errors are
one line on stderr, `stacktoken: error: ...`, with exit code 1 (network,
server, protocol), 2 (usage) or 3 (log in again, or credentials rejected);
never a traceback. Without `--debug` nothing imports `logging`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from returns.result import Failure, Result, Success
from stacktoken.core._cache_codec import format_rfc3339
from stacktoken.core._decisions import judge_disk_entry
from stacktoken.core._errors import AcquireError, AuthRequired, LocalError, UsageError, exit_code
from stacktoken.core._output import OUTPUTS, render_token
from stacktoken.core._paths import CACHE_FILE, name_error
from stacktoken.core._results import lift
from stacktoken.core._text import one_line
from stacktoken.core._time import datetime, timedelta
from stacktoken.core._types import CachedToken, Settings, StackKey

from ._files import Place, remove_file
from ._options import (
    CLIENT_SECRET_ENV,
    REDIS_URL_ENV,
    config_dir_from,
    current_profile,
    default_cache_dir,
    read_secret_file,
    settings_from,
    store_url_from,
)
from ._process import utc_now
from ._signals import Terminated, guard
from ._source import TokenSource, client_source, fctl_source
from ._stores import read_cache_entry
from ._warm import token_options

if TYPE_CHECKING:
    import argparse

    from ._redis import RedisStore

__all__ = ["main"]

PROGRAM = "stacktoken"
SECRET_ON_COMMAND_LINE = (
    "a secret given on the command line is visible to every user of this machine "
    f"(`ps`, shell history): set ${CLIENT_SECRET_ENV} or use --client-secret-file PATH "
    "(`-` for stdin)"
)


FCTL_TOKENS_STAY_LOCAL = (
    "--store shares a machine credential's token (with --stack-uri and --client-id); "
    "fctl-profile tokens belong to one user and stay on the local disk"
)


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
    options = _plain_token_command(argv) or _parse(argv)
    log = _debug_log() if options.debug else _no_log
    config_dir = config_dir_from(options.config_dir, os.environ)
    if options.command == "token":
        return _token(options, config_dir, log)
    if options.command == "login":
        return _login(options, config_dir, log)
    if options.cache_command == "list":
        return _cache_list(options, config_dir)
    return _cache_clear(options, config_dir)


def _plain_token_command(argv: Sequence[str]) -> SimpleNamespace | None:
    """A plain `token` command line, read as the warm path reads it, as the parser's
    namespace would hold it; None for anything else (argparse then reads it)."""
    options: dict[str, Any] | None = token_options(argv)
    if options is None:
        return None
    scopes = options.pop("scope", None)
    namespace = SimpleNamespace(**{**dict.fromkeys(_TOKEN_DESTINATIONS), **options})
    namespace.command = "token"
    namespace.debug = False
    namespace.output = options.get("output", "text")
    namespace.scope = scopes.split("\0") if scopes is not None else None
    return namespace


#: Every destination of the parser's `token` command and global options (their
#: defaults are None); tests/test_warm_path_agrees.py checks the list against the parser.
_TOKEN_DESTINATIONS = (
    "config_dir",
    "cache_dir",
    "profile",
    "organization",
    "stack",
    "stack_token_cache_ttl",
    "output",
    "stack_uri",
    "client_id",
    "scope",
    "client_secret_file",
    "client_secret",
    "store",
    "login",
)


def _token(options: Any, config_dir: str, log: Callable[[str], None]) -> int:
    machine = options.stack_uri is not None or options.client_id is not None
    if not machine and options.store:
        return _fail(UsageError(message=FCTL_TOKENS_STAY_LOCAL))
    if not machine and os.environ.get(REDIS_URL_ENV):
        log(f"${REDIS_URL_ENV} ignored: fctl-profile tokens stay on the local disk")
    built = (
        _client_source(options, log)
        if machine
        else fctl_source(
            config_dir=config_dir,
            profile=options.profile,
            organization=options.organization,
            stack=options.stack,
            cache_dir=options.cache_dir,
            cache_ttl=options.stack_token_cache_ttl,
            log=log,
        )
    )
    result: Result[tuple[CachedToken, str | None], AcquireError] = built.bind(_token_of)
    if _may_log_in(options, built, result):
        result = _with_stack_access(options, config_dir, log).bind(_token_of)
    match result:
        case Success((token, stack_uri)):
            sys.stdout.write(render_token(token, options.output, stack_uri=stack_uri))
            return 0
        case Failure(error):
            return _fail(error)
    raise AssertionError("a Result is a Success or a Failure")  # for mypy's exhaustiveness


def _may_log_in(
    options: Any,
    built: Result[TokenSource, AcquireError],
    result: Result[tuple[CachedToken, str | None], AcquireError],
) -> bool:
    """Whether a stack's device flow may follow a refusal (DESIGN §13): for a stack of a
    logged-in profile, with `--login` or on a terminal (stdin and stderr), never in a
    script, where a hidden prompt would hang it."""
    if not isinstance(result, Failure) or not isinstance(result.failure(), AuthRequired):
        return False
    if not isinstance(built, Success) or options.stack_uri is not None:
        return False
    return bool(options.login) or (sys.stdin.isatty() and sys.stderr.isatty())


def _with_stack_access(
    options: Any, config_dir: str, log: Callable[[str], None]
) -> Result[TokenSource, AcquireError]:
    """Get the stack's access by the device flow, then a new source for it."""
    from ._login import stack_access_result, stderr_notice, terminal_prompt
    from ._options import locate_stack

    located: Result[Any, AcquireError] = lift(
        locate_stack(
            config_dir,
            profile=options.profile,
            organization=options.organization,
            stack=options.stack,
            environ=os.environ,
        )
    )
    return located.bind(
        lambda stack: stack_access_result(
            stack,
            prompt=terminal_prompt(browser=True),
            cache_dir=options.cache_dir,
            log=log,
            notice=stderr_notice,
        )
    ).bind(
        lambda _: fctl_source(
            config_dir=config_dir,
            profile=options.profile,
            organization=options.organization,
            stack=options.stack,
            cache_dir=options.cache_dir,
            cache_ttl=options.stack_token_cache_ttl,
            log=log,
        )
    )


def _login(options: Any, config_dir: str, log: Callable[[str], None]) -> int:
    from ._login import login_command, stderr_notice, terminal_prompt

    result = login_command(
        config_dir=config_dir,
        profile=options.profile,
        membership_uri=options.membership_uri,
        prompt=terminal_prompt(browser=not options.no_browser),
        cache_dir=options.cache_dir,
        organization=options.organization,
        stack=options.stack,
        log=log,
        notice=stderr_notice,
    )
    match result:
        case Success(profile):
            sys.stderr.write(f"Logged in (profile {_printable(profile)!r})\n")
            return 0
        case Failure(error):
            return _fail(error)
    raise AssertionError("a Result is a Success or a Failure")


def _client_source(options: Any, log: Callable[[str], None]) -> Result[TokenSource, AcquireError]:
    if options.client_secret is not None:
        return Failure(UsageError(message=f"--client-secret is refused: {SECRET_ON_COMMAND_LINE}"))
    if not options.stack_uri or not options.client_id:
        return Failure(
            UsageError(message="machine credentials need both --stack-uri and --client-id")
        )
    mixed = [
        flag
        for flag, value in (
            ("--profile", options.profile),
            ("--config-dir", options.config_dir),
            ("--organization", options.organization),
            ("--stack", options.stack),
        )
        if value is not None
    ]
    if mixed:
        return Failure(
            UsageError(
                message=f"--stack-uri selects a machine credential; {', '.join(mixed)} "
                "choose(s) a stack of an fctl profile: give one or the other"
            )
        )
    store: Result[RedisStore | None, AcquireError] = lift(_shared_store(options.store, log))
    secret: Result[str, AcquireError] = lift(_client_secret(options.client_secret_file))
    return store.bind(
        lambda shared: secret.bind(
            lambda client_secret: client_source(
                stack_uri=options.stack_uri,
                client_id=options.client_id,
                client_secret=client_secret,
                scopes=tuple(options.scope or ()),
                cache_dir=options.cache_dir,
                cache_ttl=options.stack_token_cache_ttl,
                store=shared,
                log=log,
            )
        )
    )


def _shared_store(flag: str | None, log: Callable[[str], None]) -> RedisStore | UsageError | None:
    """The Redis store `--store` or `$STACKTOKEN_REDIS_URL` names, if any (DESIGN §11)."""
    url = store_url_from(flag, os.environ)
    if url is None or isinstance(url, UsageError):
        return url
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


# -- cache list / clear --------------------------------------------------------


def _folders(folder: str) -> list[str]:
    """The folders in `folder`, sorted; a symlink is not a folder here (issue 15 #7:
    `cache clear` must not follow a symlinked org folder out of the config dir)."""
    try:
        with os.scandir(folder) as entries:
            return sorted(e.name for e in entries if e.is_dir(follow_symlinks=False))
    except OSError:
        return []


def _stack_entries(config_dir: str, profile: str | None) -> Iterator[tuple[StackKey, Place]]:
    """Every stack cache file under the config dir (of one profile, if given).

    A name found on disk is used as it is, never as a pattern: `*` or `[od]*`
    as a profile must not reach other profiles."""
    profiles_dir = os.path.join(config_dir, "profiles")
    for name in [profile] if profile else _folders(profiles_dir):
        organizations = os.path.join(profiles_dir, name, "organizations")
        for organization in _folders(organizations):
            for stack in _folders(os.path.join(organizations, organization, "stacks")):
                parts = ("profiles", name, "organizations", organization, "stacks", stack)
                key = StackKey(profile=name, organization=organization, stack=stack)
                yield key, Place(root=config_dir, parts=(*parts, CACHE_FILE))


def _client_entries(cache_dir: str) -> Iterator[Place]:
    """Every machine-credential cache file under the cache dir."""
    for key in _folders(os.path.join(cache_dir, "clients")):
        yield Place(root=cache_dir, parts=("clients", key, CACHE_FILE))


def _cache_list(options: Any, config_dir: str) -> int:
    if options.profile is not None and (invalid := name_error("profile", options.profile)):
        return _fail(invalid)
    settings = settings_from(None, os.environ)
    if not isinstance(settings, Settings):
        settings = Settings()
    now = utc_now()
    lines = [
        line
        for key, place in _stack_entries(config_dir, options.profile)
        if (line := _describe(_printable(str(key)), place, settings=settings, now=now))
    ]
    lines += [
        line
        for place in _client_entries(options.cache_dir or default_cache_dir(os.environ))
        if (line := _describe(None, place, settings=settings, now=now))
    ]
    sys.stdout.write("".join(line + "\n" for line in lines) if lines else "no cache entries\n")
    return 0


def _describe(shown: str | None, place: Place, *, settings: Settings, now: datetime) -> str | None:
    """One line of `cache list`: whose entry, its expiry, age and verdict (never the
    token); None where a folder holds no entry."""
    read = read_cache_entry(place)
    if read == "no such file":
        return None
    if isinstance(read, str):
        return f"{shown or 'client ' + place.parts[-2][:12]}  unreadable ({read})"
    entry, mtime = read
    if shown is None:
        scopes = f" scopes {' '.join(entry.scopes) or '(none)'}" if entry.scopes is not None else ""
        shown = _printable(f"client {entry.client_id or '?'} at {entry.stack_uri or '?'}{scopes}")
    saved_at = entry.saved_at or mtime
    verdict = judge_disk_entry(entry, file_mtime=mtime, settings=settings, now=now)
    expiry = format_rfc3339(entry.expiry) if entry.expiry else "none"
    return f"{shown}  expiry {expiry}  age {_seconds(now - saved_at)}  {verdict.reason}"


def _printable(text: str) -> str:
    """Names as found on disk, escaped to one printable line: a newline or an
    undecodable byte (a lone surrogate here) must not break the listing."""
    return "".join(
        char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        for char in text
    )


def _seconds(delta: timedelta) -> str:
    total = int(delta.total_seconds())
    return f"{total}s" if total >= 0 else f"{total}s (in the future)"


def _cache_clear(options: Any, config_dir: str) -> int:
    if options.client_id is not None or options.stack_uri is not None:
        return _clear_clients(options)
    profile = current_profile(config_dir, options.profile, os.environ)
    if isinstance(profile, LocalError):
        return _fail(profile)
    for kind, name in (
        ("profile", profile),
        ("organization", options.organization),
        ("stack", options.stack),
    ):
        if name is not None and (invalid := name_error(kind, name)):
            return _fail(invalid)
    places = [
        place
        for key, place in _stack_entries(config_dir, profile)
        if options.organization in (None, key.organization) and options.stack in (None, key.stack)
    ]
    owner = ("fctl", profile, options.organization, options.stack)
    return _remove_entries(places + _failures_of(options, *owner))


def _clear_clients(options: Any) -> int:
    if options.client_id is None:
        return _fail(UsageError(message="--stack-uri narrows --client-id: give --client-id too"))
    places = []
    uri = options.stack_uri.rstrip("/") if options.stack_uri else None
    for place in _client_entries(options.cache_dir or default_cache_dir(os.environ)):
        read = read_cache_entry(place)
        if isinstance(read, str):
            continue
        entry = read[0]
        if entry.client_id == options.client_id and uri in (None, entry.stack_uri):
            places.append(place)
    return _remove_entries(places + _failures_of(options, "client", options.client_id, uri))


def _failures_of(options: Any, *owner: str | None) -> list[Place]:
    """The remembered failures of `owner` that `cache clear` forgets too."""
    from ._failures import failures_of

    return failures_of(options.cache_dir or default_cache_dir(os.environ), owner)


def _remove_entries(places: list[Place]) -> int:
    removed = 0
    for place in places:
        match remove_file(place):
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
