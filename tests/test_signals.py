"""Ctrl-C and SIGTERM during a cold run, with real signals against the loopback servers.

Each premise ("the signal arrives while the exchange / the refresh is in
flight") is true by construction: the server holds its answer (`Fault.hold`)
until the test has sent the signal, and a refresh has really rotated the
token at the IdP before the signal is sent.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from oauth_servers import Fault, MembershipServer, StackAuthServer
from reliability_helpers import (
    ERROR_PREFIX,
    accesses,
    assert_files_intact,
    assert_ok,
    finish,
    stack_folder_names,
    start_cli,
    temp_files,
    write_accesses,
)
from returns.result import Success
from stacktoken.core._cache_codec import decode_cache_entry
from stacktoken.shell._files import write_atomic

from conftest import World

HANDLED_TIMEOUT = 30.0  # bounded wait for the server to have handled the request
SIGNALS = [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")]
SIGNAL_IDS = ["sigint", "sigterm"]


def _held(
    server: MembershipServer | StackAuthServer, endpoint: str
) -> tuple[threading.Event, threading.Event]:
    handled, released = threading.Event(), threading.Event()
    server.inject(endpoint, Fault.hold(handled, released))
    return handled, released


def _interrupt(
    process: subprocess.Popen[str], number: int, handled: threading.Event, released: threading.Event
) -> subprocess.CompletedProcess[str]:
    try:
        assert handled.wait(HANDLED_TIMEOUT), "the server never received the request"
        process.send_signal(number)
    finally:
        released.set()
    return finish(process)


def _one_line(result: subprocess.CompletedProcess[str], code: int, word: str) -> None:
    assert result.returncode == code, result.stderr
    assert result.stderr == f"{ERROR_PREFIX}{word}\n"
    assert result.stdout == ""


@pytest.mark.parametrize(("number", "code", "word"), SIGNALS, ids=SIGNAL_IDS)
def test_signal_during_the_exchange_exits_with_one_line_and_leaves_nothing_behind(
    world: World, number: int, code: int, word: str
) -> None:
    write_accesses(world, exp_in=3600)
    handled, released = _held(world.stack, StackAuthServer.TOKEN)
    process = start_cli(world, "token")  # holds the stack's lock while it waits
    _one_line(_interrupt(process, number, handled, released), code, word)
    assert stack_folder_names(world) <= {"accesses.json", "api_token_cache.json.lock"}
    assert temp_files(world.profile.stack_dir) == []
    # The lock was released: the next run goes through at once.
    assert assert_ok(world.run("token"))
    assert_files_intact(world)


@pytest.mark.parametrize(("number", "code", "word"), SIGNALS, ids=SIGNAL_IDS)
def test_signal_during_a_refresh_waits_until_the_rotated_token_is_on_disk(
    world: World, number: int, code: int, word: str
) -> None:
    """The IdP has rotated the refresh token when the signal comes: the run saves the
    new one before it stops, and never exchanges."""
    spent = write_accesses(world, exp_in=-60)
    handled, released = _held(world.membership, MembershipServer.TOKEN)
    process = start_cli(world, "token")
    _one_line(_interrupt(process, number, handled, released), code, word)
    saved = accesses(world)["refreshToken"]
    assert saved != spent
    assert not world.membership.is_refresh_token_valid(spent)
    assert world.membership.is_refresh_token_valid(saved), "the rotated refresh token was lost"
    assert world.stack.count(StackAuthServer.TOKEN) == 0
    assert temp_files(world.profile.stack_dir) == []
    assert assert_ok(world.run("token"))
    assert_files_intact(world)


# A writer that loops over atomic writes of the cache file under the CLI's signal
# handling; it says "writing" once inside the `try`, and stops on a signal.
_WRITER = """
import sys
from stacktoken.shell._files import write_atomic
from stacktoken.shell._signals import Terminated, guard

guard.install()
path, old = sys.argv[1], sys.argv[2].encode()
padded = b" " * 200_000 + old  # the same document, in a write long enough to be caught in
try:
    # Inside the try: a signal that lands right after this line is still caught
    # here, not before the try (which would kill the writer by the signal itself).
    print("writing", flush=True)
    while True:
        write_atomic(path, padded)
        write_atomic(path, old)
except KeyboardInterrupt:
    sys.exit(130)
except Terminated:
    sys.exit(143)
"""


@pytest.mark.parametrize(("number", "code", "word"), SIGNALS, ids=SIGNAL_IDS)
def test_signal_during_writes_leaves_old_or_new_and_no_temp_file_after_the_next_write(
    tmp_path: Path, number: int, code: int, word: str
) -> None:
    del word  # the writer is not the CLI: only its exit code matters here
    folder = tmp_path / "stack"
    folder.mkdir(mode=0o700)
    path = folder / "api_token_cache.json"
    old = b'{"accessToken": "st_old", "tokenType": "Bearer", "expiry": "2099-01-01T00:00:00Z"}'
    path.write_bytes(old)
    os.chmod(path, 0o600)
    process = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path), old.decode()],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "writing\n"
        process.send_signal(number)
        assert process.wait(timeout=30) == code
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
        if process.stdout is not None:
            process.stdout.close()
    # Either write, whole: the file decodes as the one entry both writes hold.
    entry = decode_cache_entry(path.read_bytes())
    assert not isinstance(entry, str), entry
    assert entry.access_token == "st_old"
    assert len(temp_files(folder)) <= 1  # a signal between mkstemp and the bookkeeping
    assert isinstance(write_atomic(str(path), old, sweep=True), Success)
    assert temp_files(folder) == []
