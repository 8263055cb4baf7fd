"""The `token` command, planned: options in, what to read and what to print out.

Theory of operation
-------------------
A `token` command line reaches this module twice over, as the same options:
the warm path reads a plain one with `token_options` (no argparse: it costs a
warm run more than its whole budget), the full CLI reads any other with
argparse. Both hand the options, a mapping from argparse's destinations to
values, to `plan_token`, which decides once what the command means: the
fctl stack or the machine credential to read, the shared store, where the
client secret comes from, the output format, or the usage error. The warm
path carries a plan out only when one read of the disk answers it, and
otherwise declines; the full CLI carries out every plan. So the two cannot
disagree on what a command line means (docs/design.md §7, §12).

`render_token` says what is printed, in the formats the tools a token usually
goes to next expect:
- `text`: the token alone, as `gcloud auth print-access-token`;
- `json`: `access_token`, `token_type`, `expiry` (RFC 3339 UTC), plus
  `expires_on` (epoch seconds, as Azure added after its DST bugs) and
  `stack_uri`, as `az account get-access-token -o json`;
- `env` / `env-no-export`: `FORMANCE_STACK_TOKEN` and `FORMANCE_STACK_URL`
  as shell assignments, as `aws configure export-credentials --format env`,
  for `eval "$(stacktoken token --output env)"`.

A member of the warm set: stdlib only, no `typing`, plain value-or-error returns.
"""

from ._cache_codec import format_rfc3339
from ._errors import UsageError
from ._record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from ._types import CachedToken

__all__ = [
    "CLIENT_SECRET_ENV",
    "GLOBAL_OPTIONS",
    "OUTPUTS",
    "REDIS_URL_ENV",
    "REPEATED_TOKEN_OPTIONS",
    "STORE_SCHEMES",
    "TOKEN_DESTINATIONS",
    "TOKEN_OPTIONS",
    "TOKEN_VARIABLE",
    "URL_VARIABLE",
    "FctlChoice",
    "MachineChoice",
    "TokenPlan",
    "may_log_in",
    "plan_token",
    "render_token",
    "shell_quote",
    "store_url_from",
    "token_options",
]

OUTPUTS = ("text", "json", "env", "env-no-export")
TOKEN_VARIABLE = "FORMANCE_STACK_TOKEN"  # noqa: S105 - a variable name
URL_VARIABLE = "FORMANCE_STACK_URL"
CLIENT_SECRET_ENV = "STACKTOKEN_CLIENT_SECRET"  # noqa: S105 - a variable name
REDIS_URL_ENV = "STACKTOKEN_REDIS_URL"
STORE_SCHEMES = ("redis://", "rediss://")

# The options `token_options` understands, before and after `token`, spelled as
# the full CLI's parser spells them and mapped to its destinations
# (tests/test_cli_plain_token.py holds the two equal); anything else is argparse's.
GLOBAL_OPTIONS = {"--config-dir": "config_dir", "--cache-dir": "cache_dir", "--profile": "profile"}
TOKEN_OPTIONS = {
    "--organization": "organization",
    "--stack": "stack",
    "--stack-token-cache-ttl": "stack_token_cache_ttl",
    "--output": "output",
    "--stack-uri": "stack_uri",
    "--client-id": "client_id",
    "--client-secret-file": "client_secret_file",
    "--store": "store",
}
REPEATED_TOKEN_OPTIONS = {"--scope": "scope"}
#: Every destination `plan_token` reads: the parser's global and `token` options.
TOKEN_DESTINATIONS = (
    *GLOBAL_OPTIONS.values(),
    *TOKEN_OPTIONS.values(),
    *REPEATED_TOKEN_OPTIONS.values(),
    "client_secret",
    "login",
)

SECRET_ON_COMMAND_LINE = (
    "a secret given on the command line is visible to every user of this machine "
    f"(`ps`, shell history): set ${CLIENT_SECRET_ENV} or use --client-secret-file PATH "
    "(`-` for stdin)"
)
FCTL_TOKENS_STAY_LOCAL = (
    "--store shares a machine credential's token (with --stack-uri and --client-id); "
    "fctl-profile tokens belong to one user and stay on the local disk"
)
# Characters no POSIX shell gives a meaning to in a word (shlex's safe set).
_SHELL_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789@%+=:,./-_")


def token_options(argv: "Sequence[str]") -> "dict[str, object] | None":
    """The options of `[GLOBAL OPTIONS] token [TOKEN OPTIONS]`, else None.

    Only the exact spellings `--name value` and `--name=value` are accepted; a
    separate value may not start with `-` (argparse would not take it either).
    A repeated option keeps its last value, as argparse does; `--scope` values
    accumulate in a list, as argparse's `append` does.
    """
    options: dict[str, object] = {}
    scopes: list[str] = []
    known = GLOBAL_OPTIONS
    words = iter(argv)
    for word in words:
        if known is GLOBAL_OPTIONS and word == "token":
            known = TOKEN_OPTIONS
            continue
        name, equals, value = word.partition("=")
        repeated = REPEATED_TOKEN_OPTIONS.get(name) if known is TOKEN_OPTIONS else None
        if name not in known and repeated is None:
            return None
        if not equals:
            following = next(words, None)
            if following is None or following.startswith("-"):
                return None
            value = following
        if repeated is not None:
            scopes.append(value)
            options[repeated] = scopes
        else:
            options[known[name]] = value
    if known is not TOKEN_OPTIONS or options.get("output", "text") not in OUTPUTS:
        return None
    return options


class FctlChoice(Record):
    """A stack of an fctl profile, as the command line chose it (None: the default)."""

    config_dir: "str | None"
    profile: "str | None"
    organization: "str | None"
    stack: "str | None"


class MachineChoice(Record):
    """A machine credential (docs/design.md §9): whose token, where the secret comes
    from (`secret_file`: a path, `-` for stdin; None: `$STACKTOKEN_CLIENT_SECRET`),
    and the shared store's URL, if any (docs/design.md §11)."""

    stack_uri: str
    client_id: str
    scopes: "tuple[str, ...]"
    secret_file: "str | None"
    store_url: "str | None"


class TokenPlan(Record):
    """What `token` reads (`fctl` or `machine`, exactly one) and how it prints it.

    `ttl` is `--stack-token-cache-ttl` as given (the environment's applies when
    None); `login` is `--login` (None: only on a terminal); `notes` are lines for
    the debug log."""

    fctl: "FctlChoice | None"
    machine: "MachineChoice | None"
    output: str
    ttl: "str | None"
    cache_dir: "str | None"
    login: "bool | None"
    debug: bool
    notes: "tuple[str, ...]" = ()


def plan_token(
    options: "Mapping[str, object]", environ: "Mapping[str, str]"
) -> "TokenPlan | UsageError":
    """What the `token` command given `options` (argparse's destinations; absent or
    None: not given) means, or the usage error to report. `environ` is only looked
    at for the shared store's URL and whether a client secret is set."""
    given = {name: options.get(name) for name in TOKEN_DESTINATIONS}
    output = given["output"] or "text"
    if output not in OUTPUTS:
        return UsageError(message=f"invalid output {output!r}: one of {', '.join(OUTPUTS)}")
    fctl = FctlChoice(
        config_dir=_text(given["config_dir"]),
        profile=_text(given["profile"]),
        organization=_text(given["organization"]),
        stack=_text(given["stack"]),
    )
    machine: MachineChoice | None = None
    notes: tuple[str, ...] = ()
    if given["stack_uri"] is not None or given["client_id"] is not None:
        chosen = _machine(given, fctl, environ)
        if isinstance(chosen, UsageError):
            return chosen
        machine = chosen
    elif given["store"]:
        return UsageError(message=FCTL_TOKENS_STAY_LOCAL)
    elif environ.get(REDIS_URL_ENV):
        notes = (f"${REDIS_URL_ENV} ignored: fctl-profile tokens stay on the local disk",)
    login = given["login"]
    return TokenPlan(
        fctl=None if machine is not None else fctl,
        machine=machine,
        output=str(output),
        ttl=_text(given["stack_token_cache_ttl"]),
        cache_dir=_text(given["cache_dir"]),
        login=None if login is None else bool(login),
        debug=bool(options.get("debug")),
        notes=notes,
    )


def _machine(
    given: "Mapping[str, object]", fctl: FctlChoice, environ: "Mapping[str, str]"
) -> "MachineChoice | UsageError":
    if given["client_secret"] is not None:
        return UsageError(message=f"--client-secret is refused: {SECRET_ON_COMMAND_LINE}")
    stack_uri, client_id = _text(given["stack_uri"]), _text(given["client_id"])
    if not stack_uri or not client_id:
        return UsageError(message="machine credentials need both --stack-uri and --client-id")
    mixed = [
        flag
        for flag, value in (
            ("--profile", fctl.profile),
            ("--config-dir", fctl.config_dir),
            ("--organization", fctl.organization),
            ("--stack", fctl.stack),
        )
        if value is not None
    ]
    if mixed:
        return UsageError(
            message=f"--stack-uri selects a machine credential; {', '.join(mixed)} "
            "choose(s) a stack of an fctl profile: give one or the other"
        )
    store_url = store_url_from(_text(given["store"]), environ)
    if isinstance(store_url, UsageError):
        return store_url
    secret_file = _text(given["client_secret_file"])
    if secret_file is None and not environ.get(CLIENT_SECRET_ENV):
        return UsageError(
            message=f"no client secret: set ${CLIENT_SECRET_ENV} or use --client-secret-file PATH"
        )
    scopes = given["scope"]
    return MachineChoice(
        stack_uri=stack_uri,
        client_id=client_id,
        scopes=tuple(str(scope) for scope in scopes) if isinstance(scopes, list | tuple) else (),
        secret_file=secret_file,
        store_url=store_url,
    )


def store_url_from(flag: "str | None", environ: "Mapping[str, str]") -> "str | UsageError | None":
    """The shared store's URL (docs/design.md §11): `--store`, else `$STACKTOKEN_REDIS_URL`;
    None for no shared store (an empty `--store ""` turns the variable off).

    The URL is never quoted back: it may hold the Redis password. On the command
    line it may not hold one at all (any local user sees argv in `ps`): the
    variable may."""
    url = flag if flag is not None else environ.get(REDIS_URL_ENV)
    if not url:
        return None
    origin = "--store" if flag is not None else f"${REDIS_URL_ENV}"
    if not url.startswith(STORE_SCHEMES):
        return UsageError(message=f"{origin} must be a redis:// or rediss:// URL")
    if flag is not None and _has_password(url):
        return UsageError(
            message="--store must not carry a password: a command line is visible to every "
            f"user of this machine (`ps`); give the URL in ${REDIS_URL_ENV} instead"
        )
    return url


def _has_password(url: str) -> bool:
    """Whether a Redis URL carries a password: `user:pw@` or `:pw@` in its authority,
    or a query parameter whose name says password (`password=`, `ssl_password=`)."""
    authority = url.partition("://")[2].partition("/")[0].partition("?")[0].partition("#")[0]
    user_info, at, _ = authority.rpartition("@")
    if at and user_info.partition(":")[2]:
        return True
    query = url.partition("?")[2].partition("#")[0]
    if not query:
        return False
    from urllib.parse import parse_qsl  # only a `--store` URL with a query pays for it

    return any("password" in name.lower() and value for name, value in parse_qsl(query))


def _text(value: object) -> "str | None":
    return None if value is None else str(value)


def may_log_in(plan: TokenPlan, *, auth_required: bool, source_built: bool, terminal: bool) -> bool:
    """Whether a stack's device flow may follow a refusal (docs/design.md §13): for a
    stack of a logged-in profile (its source was built) that asked for a login,
    with `--login` or on a terminal (stdin and stderr), never in a script, where a
    hidden prompt would hang it."""
    if not auth_required or not source_built or plan.fctl is None:
        return False
    return bool(plan.login) or terminal


def render_token(entry: "CachedToken", output: str, *, stack_uri: "str | None") -> str:
    """`token --output <output>` for `entry`; `output` is one of `OUTPUTS`."""
    if output == "text":
        return entry.access_token + "\n"
    if output == "json":
        import json  # only --output json pays for it

        expiry = entry.expiry
        document = {
            "access_token": entry.access_token,
            "token_type": entry.token_type,
            "expiry": format_rfc3339(expiry) if expiry is not None else None,
            "expires_on": int(expiry.timestamp()) if expiry is not None else None,
            "stack_uri": stack_uri,
        }
        return json.dumps(document) + "\n"
    prefix = "export " if output == "env" else ""
    lines = [f"{prefix}{TOKEN_VARIABLE}={shell_quote(entry.access_token)}"]
    if stack_uri is not None:
        lines.append(f"{prefix}{URL_VARIABLE}={shell_quote(stack_uri)}")
    return "".join(line + "\n" for line in lines)


def shell_quote(text: str) -> str:
    """`text` as one word of a POSIX shell, as `shlex.quote` (which imports `re`) does."""
    if text and all(char in _SHELL_SAFE for char in text):
        return text
    return "'" + text.replace("'", "'\"'\"'") + "'"
