"""The command's entry point: a warm `stacktoken token` in one interpreter start.

Theory of operation
-------------------
`main` first asks `warm_output` whether the command line is a plain `token`
command that a usable stored entry answers (DESIGN §1 step 2). That path
decides with the very functions the cold path uses (`locate_stack`, the
file store's `read`, core's `usable_entry`, `render_token`), and loads only
the stdlib pieces they need: no argparse, `returns`, logging, `re`, `json`
or HTTP code.

The warm path never fails and never reports. For anything it does not
recognise or doubts (an option it does not know, `--debug`, TTL 0, a name to
reject, a logged-out profile, a missing or unusable entry, an unexpected
error), it declines, and `_cli.main` runs from the start as if the warm path
did not exist, deciding and reporting everything itself. So whatever the
warm path prints, the full CLI would have printed too:
tests/test_warm_path_agrees.py holds it to that.
"""

from __future__ import annotations

import os
import sys

from stacktoken.core._cache import usable_entry
from stacktoken.core._output import OUTPUTS, render_token
from stacktoken.core._time import UTC, datetime
from stacktoken.core._types import ClientCredentials, Settings

from ._options import (
    CLIENT_SECRET_ENV,
    FctlStack,
    config_dir_from,
    default_cache_dir,
    locate_stack,
    settings_from,
    store_url_from,
)
from ._stores import FileStore, fctl_store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = ["GLOBAL_OPTIONS", "TOKEN_OPTIONS", "main", "token_options", "warm_output"]

# The options the warm path understands, before and after `token`, as the
# full CLI's parser spells them (tests/test_warm_path_agrees.py checks that
# the parser knows each, under the same destination); anything else goes to
# the full CLI.
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
_FCTL_ONLY = ("config_dir", "profile", "organization", "stack")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line: the warm path if it answers, else the full CLI."""
    args = sys.argv[1:] if argv is None else argv
    try:
        if _answered(args):
            return 0
    except KeyboardInterrupt:
        sys.stderr.write("stacktoken: error: interrupted\n")  # as `_cli.main` says it
        return 130
    from ._cli import main as full_main

    return full_main(args)


def _answered(args: Sequence[str]) -> bool:
    """Print the warm path's answer; False when it declines or anything goes wrong
    (declining is always safe: the full CLI then decides and reports)."""
    try:
        output = warm_output(args, os.environ, now=datetime.now(UTC))
        if output is None:
            return False
        sys.stdout.write(output)  # buffered: nothing is written if this raises
    except Exception:
        return False
    return True


def _ignore(_: str) -> None:
    return None


def warm_output(argv: Sequence[str], environ: Mapping[str, str], *, now: datetime) -> str | None:
    """What `stacktoken token` prints when a usable stored entry answers it, else None."""
    options = token_options(argv)
    if options is None:
        return None
    settings = settings_from(options.get("stack_token_cache_ttl"), environ)
    if not isinstance(settings, Settings) or not settings.disk_cache_enabled:
        return None
    machine = "stack_uri" in options or "client_id" in options
    if not _store_agrees(options, environ, machine=machine):
        return None
    store = _client_store(options, environ) if machine else _fctl_store(options, environ)
    if store is None:
        return None
    entry = usable_entry((store.record(),), settings=settings, now=now, log=_ignore)
    if entry is None:
        return None
    return render_token(entry, options.get("output", "text"), stack_uri=store.stack_uri)


def _store_agrees(options: dict[str, str], environ: Mapping[str, str], *, machine: bool) -> bool:
    """Whether the full CLI would accept the shared store asked for (DESIGN §11).

    The host's disk is the level above the shared store, so a usable entry on
    it answers without Redis; but the full CLI refuses `--store` for an fctl
    profile, a URL that is not Redis's, or a missing redis-py, and then so must
    this path, by declining."""
    if not machine:
        return not options.get("store")
    url = store_url_from(options.get("store"), environ)
    if url is None:
        return True
    if not isinstance(url, str):
        return False
    # Whether redis-py is installed, without importing it (nor importlib.util).
    return any(
        finder.find_spec("redis", None) is not None
        for finder in sys.meta_path
        if hasattr(finder, "find_spec")
    )


def _fctl_store(options: dict[str, str], environ: Mapping[str, str]) -> FileStore | None:
    stack = locate_stack(
        config_dir_from(options.get("config_dir"), environ),
        profile=options.get("profile"),
        organization=options.get("organization"),
        stack=options.get("stack"),
        environ=environ,
    )
    if not isinstance(stack, FctlStack):
        return None
    return fctl_store(stack, log=_ignore)


def _client_store(options: dict[str, str], environ: Mapping[str, str]) -> FileStore | None:
    from stacktoken.core._urls import endpoint_url_refusal

    from ._stores import client_store

    stack_uri, client_id = options.get("stack_uri"), options.get("client_id")
    if any(name in options for name in _FCTL_ONLY) or not stack_uri or not client_id:
        return None  # the full CLI explains what is wrong
    if endpoint_url_refusal(stack_uri.rstrip("/")) is not None:
        return None
    if not _secret_given(options.get("client_secret_file"), environ):
        return None
    credentials = ClientCredentials.of(
        stack_uri=stack_uri.rstrip("/"),
        client_id=client_id,
        client_secret="-",  # noqa: S106 - unused: neither the key nor the files hold it
        scopes=tuple(options.get("scope", "").split("\0")) if "scope" in options else (),
    )
    cache_dir = options.get("cache_dir") or default_cache_dir(environ)
    return client_store(cache_dir, credentials, log=_ignore)


def _secret_given(path: str | None, environ: Mapping[str, str]) -> bool:
    """Whether the full CLI would find a secret (it reads it; this path needs none)."""
    from ._options import read_secret_file

    if path is None:
        return bool(environ.get(CLIENT_SECRET_ENV))
    if path == "-":
        return False  # reading stdin here would leave nothing for the full CLI
    return isinstance(read_secret_file(path), str)


def token_options(argv: Sequence[str]) -> dict[str, str] | None:
    """The options of `[GLOBAL OPTIONS] token [TOKEN OPTIONS]`, else None.

    Only the exact spellings `--name value` and `--name=value` are accepted; a
    separate value may not start with `-` (argparse would not take it either).
    A repeated option keeps its last value, as argparse does; `--scope`
    values accumulate (NUL-separated, a character no argument can hold).
    """
    options: dict[str, str] = {}
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
            options[repeated] = f"{options[repeated]}\0{value}" if repeated in options else value
        else:
            options[known[name]] = value
    if known is not TOKEN_OPTIONS or options.get("output", "text") not in OUTPUTS:
        return None
    return options
