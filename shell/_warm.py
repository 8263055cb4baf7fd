"""The command's entry point: a warm `stacktoken token` in one interpreter start.

Theory of operation
-------------------
`main` first asks `warm_output` whether the command line is a plain `token`
command that a usable stored entry answers (docs/design.md §1 step 2, §12):
core's `token_options` reads it, core's `plan_token` says what it means (as
for the full CLI), one read of the file store and core's `usable_entry`
decide, core's `render_token` prints. It loads only the stdlib pieces those
need: no argparse, `returns`, logging, `re`, `json` or HTTP code.

The warm path never fails and never reports. For anything it does not
recognise or doubts (an option it does not know, `--debug`, a usage error,
TTL 0, a logged-out profile, a missing or unusable entry, a secret to read
from stdin, an unexpected error), it declines, and `_cli.main` runs from the
start as if the warm path did not exist, deciding and reporting everything
itself. So whatever the warm path prints, the full CLI would have printed
too: tests/test_warm_path_agrees.py holds it to that.
"""

import os
import sys

from stacktoken.core._cache import usable_entry
from stacktoken.core._commands import TokenPlan, plan_token, render_token, token_options
from stacktoken.core._time import UTC, datetime
from stacktoken.core._types import Settings

from ._config import FctlStack, config_dir_from, locate_stack, settings_from
from ._stores import FileStore, fctl_store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = ["command", "main", "warm_output"]


def main(argv: "Sequence[str] | None" = None) -> int:
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


def command() -> int:
    """`main` for a process that ends with it: bin/stacktoken, `python -m stacktoken`."""
    code = main()
    # The process ends now. Freezing what is alive spares the interpreter's
    # exit-time collections, which walk and free every module's cyclic objects:
    # a fifth to a quarter of a cold run's CPU, 5-10 % of a warm one's
    # (benchmarks/RESULTS.md, docs/design.md §12). Every file, lock and socket
    # the command used is closed by now; atexit handlers, the std streams'
    # flush (stdout is still buffered here) and refcount frees happen as
    # before. Not in `main`, which programs call without ending their process.
    import gc

    gc.freeze()
    return code


def _answered(args: "Sequence[str]") -> bool:
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


def warm_output(
    argv: "Sequence[str]", environ: "Mapping[str, str]", *, now: datetime
) -> "str | None":
    """What `stacktoken token` prints when a usable stored entry answers it, else None."""
    options = token_options(argv)
    # docs/design.md §14: the environment's machine credential. Without a
    # STACKTOKEN_ variable the chain leaves the options as they are (no
    # environment credential, no pin, no secret file): its import is skipped.
    if options is not None and any(name.startswith("STACKTOKEN_") for name in environ):
        from stacktoken.core._chain import chained_options

        options = chained_options(options, environ)
    if options is None:
        return None
    plan = plan_token(options, environ)
    if not isinstance(plan, TokenPlan) or plan.debug:
        return None
    settings = settings_from(plan.ttl, environ)
    if not isinstance(settings, Settings) or not settings.disk_cache_enabled:
        return None
    store = _fctl_store(plan, environ) if plan.machine is None else _client_store(plan, environ)
    if store is None:
        return None
    entry = usable_entry((store.record(),), settings=settings, now=now, log=_ignore)
    if entry is None:
        return None
    return render_token(entry, plan.output, stack_uri=store.stack_uri)


def _fctl_store(plan: TokenPlan, environ: "Mapping[str, str]") -> "FileStore | None":
    chosen = plan.fctl
    if chosen is None:
        return None
    stack = locate_stack(
        config_dir_from(chosen.config_dir, environ),
        profile=chosen.profile,
        organization=chosen.organization,
        stack=chosen.stack,
        environ=environ,
    )
    if not isinstance(stack, FctlStack):
        return None
    return fctl_store(stack, log=_ignore)


def _client_store(plan: TokenPlan, environ: "Mapping[str, str]") -> "FileStore | None":
    """The machine credential's file store, when the full CLI would get that far.

    The host's disk is the level above the shared store (docs/design.md §11), so a
    usable entry on it answers without Redis; but the full CLI refuses a store
    when redis-py is missing, and reads (and may refuse) the secret, and then
    this path declines."""
    from stacktoken.core._types import ClientCredentials
    from stacktoken.core._urls import endpoint_url_refusal

    from ._config import default_cache_dir, read_secret_file
    from ._stores import client_store

    machine = plan.machine
    if machine is None or endpoint_url_refusal(machine.stack_uri.rstrip("/")) is not None:
        return None
    if machine.store_url is not None and not _redis_installed():
        return None
    if machine.secret_file == "-":  # noqa: S105 - stdin, not a secret
        return None  # reading stdin here would leave nothing for the full CLI
    if machine.secret_file is not None and not isinstance(
        read_secret_file(machine.secret_file), str
    ):
        return None
    credentials = ClientCredentials.of(
        stack_uri=machine.stack_uri.rstrip("/"),
        client_id=machine.client_id,
        client_secret="-",  # noqa: S106 - unused: neither the key nor the files hold it
        scopes=machine.scopes,
    )
    cache_dir = plan.cache_dir or default_cache_dir(environ)
    return client_store(cache_dir, credentials, log=_ignore)


def _redis_installed() -> bool:
    """Whether redis-py is installed, without importing it (nor importlib.util)."""
    return any(
        finder.find_spec("redis", None) is not None
        for finder in sys.meta_path
        if hasattr(finder, "find_spec")
    )
