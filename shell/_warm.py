"""The command's entry point: a warm `stacktoken token` in one interpreter start.

Theory of operation
-------------------
`main` first asks `warm_output` whether the command line is a plain `token`
command that a usable disk cache entry answers (DESIGN §1 step 2). That path
loads the stdlib, core's cache decisions (their `..._or_error` twins, so not
`returns`) and the file store: no argparse, no HTTP stack, no logging.

The warm path never fails and never reports. For anything it does not
recognise or doubts (an option it does not know, `--debug`, TTL 0, a name to
reject, a logged-out profile, a missing or unusable entry, an unexpected
error), it declines, and `_cli.main` runs from the start as if the warm path
did not exist, deciding and reporting everything itself. So whatever the
warm path prints, the full CLI would have printed too:
tests/test_warm_path_agrees.py holds it to that.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from stacktoken.core import (
    CachedToken,
    Settings,
    decode_cache_entry_or_reason,
    format_rfc3339,
    judge_disk_entry,
)

from ._files import read_private_or_reason
from ._options import FctlStack, config_dir_from, locate_stack_or_error, settings_or_error

__all__ = ["main", "printed", "warm_output"]

# The options the warm path understands, before and after `token`, as the
# full CLI's parser spells them; anything else goes to the full CLI.
_GLOBAL_OPTIONS = {"--config-dir": "config_dir", "--cache-dir": "cache_dir", "--profile": "profile"}
_TOKEN_OPTIONS = {
    "--organization": "organization",
    "--stack": "stack",
    "--stack-token-cache-ttl": "ttl",
    "--output": "output",
}
_OUTPUTS = ("text", "json")


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


def warm_output(argv: Sequence[str], environ: Mapping[str, str], *, now: datetime) -> str | None:
    """What `stacktoken token` prints when a usable disk entry answers it, else None."""
    options = _token_options(argv)
    if options is None:
        return None
    settings = settings_or_error(options.get("ttl"), environ)
    if not isinstance(settings, Settings) or not settings.disk_cache_enabled:
        return None
    stack = locate_stack_or_error(
        config_dir_from(options.get("config_dir"), environ),
        profile=options.get("profile"),
        organization=options.get("organization"),
        stack=options.get("stack"),
    )
    if not isinstance(stack, FctlStack):
        return None
    read = read_private_or_reason(stack.root / stack.paths.cache)
    if isinstance(read, str):
        return None
    data, mtime = read
    entry = decode_cache_entry_or_reason(data)
    if isinstance(entry, str):
        return None
    if not judge_disk_entry(entry, file_mtime=mtime, settings=settings, now=now).usable:
        return None
    return printed(entry, options.get("output", "text"))


def _token_options(argv: Sequence[str]) -> dict[str, str] | None:
    """The options of `[GLOBAL OPTIONS] token [TOKEN OPTIONS]`, else None.

    Only the exact spellings `--name value` and `--name=value` are accepted; a
    separate value may not start with `-` (argparse would not take it either).
    A repeated option keeps its last value, as argparse does.
    """
    options: dict[str, str] = {}
    known = _GLOBAL_OPTIONS
    words = iter(argv)
    for word in words:
        if known is _GLOBAL_OPTIONS and word == "token":
            known = _TOKEN_OPTIONS
            continue
        name, equals, value = word.partition("=")
        if name not in known:
            return None
        if not equals:
            following = next(words, None)
            if following is None or following.startswith("-"):
                return None
            value = following
        options[known[name]] = value
    if known is not _TOKEN_OPTIONS or options.get("output", "text") not in _OUTPUTS:
        return None
    return options


def printed(entry: CachedToken, output: str) -> str:
    """What `token --output text|json` prints for `entry`."""
    if output == "text":
        return entry.access_token + "\n"
    expiry = format_rfc3339(entry.expiry) if entry.expiry is not None else None
    document = {
        "access_token": entry.access_token,
        "token_type": entry.token_type,
        "expiry": expiry,
    }
    return json.dumps(document) + "\n"
