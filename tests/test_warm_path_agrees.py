"""The warm path answers only what the full CLI would answer, and answers it the same way.

Each case changes a warm world (a usable cache entry on disk) and gives a
command line. The warm path (`warm_output`, in-process) either declines or
prints something; the full CLI (`_cli.main` in a subprocess, without the warm
path in front) then runs on the same files. Whenever the warm path answers,
the full CLI prints exactly that, exits 0 and makes no request. The table also
says which cases the warm path must answer, so that it cannot pass by
declining everything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from stacktoken.core._cache_codec import encode_cache_entry
from stacktoken.core._types import CachedToken
from stacktoken.shell._warm import warm_output

from conftest import CLI_TIMEOUT_SECONDS, World

TOKEN = "st_warm-path-agreement"
_FULL_CLI = "import sys\nfrom stacktoken.shell._cli import main\nsys.exit(main())"


def _write_entry(
    world: World, *, saved_ago: timedelta = timedelta(0), saved_at: bool = True
) -> None:
    now = datetime.now(UTC)
    entry = CachedToken(
        access_token=TOKEN,
        token_type="Bearer",
        expiry=now + timedelta(hours=1),
        saved_at=now - saved_ago if saved_at else None,
    )
    path = world.profile.api_token_cache_path
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(encode_cache_entry(entry))


def _nothing(world: World) -> None:
    return None


def _entry_ten_minutes_old(world: World) -> None:
    _write_entry(world, saved_ago=timedelta(minutes=10))


def _fctl_entry(world: World) -> None:
    """As fctl writes it: no `savedAt`, so the file's mtime (now) counts."""
    _write_entry(world, saved_at=False)


def _logged_out(world: World) -> None:
    path = world.profile.profile_path
    document = json.loads(path.read_text())
    document["rootTokens"] = None
    path.write_text(json.dumps(document))


def _profile_removed(world: World) -> None:
    world.profile.profile_path.unlink()


def _entry_group_writable(world: World) -> None:
    world.profile.api_token_cache_path.chmod(0o660)


def _entry_symlinked(world: World) -> None:
    path = world.profile.api_token_cache_path
    target = path.with_name("elsewhere.json")
    path.rename(target)
    path.symlink_to(target)


def _entry_not_json(world: World) -> None:
    world.profile.api_token_cache_path.write_bytes(b'{"accessToken": ')


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    answers: bool
    change: Callable[[World], None] = _nothing
    env: dict[str, str] = field(default_factory=dict)


CASES = {
    "plain": Case(("token",), answers=True),
    "json": Case(("token", "--output", "json"), answers=True),
    "json, equals sign": Case(("token", "--output=json"), answers=True),
    "env": Case(("token", "--output", "env"), answers=True),
    "env-no-export": Case(("token", "--output=env-no-export"), answers=True),
    "text, explicit": Case(("token", "--output", "text"), answers=True),
    "names given": Case(
        ("--profile", "default", "token", "--organization", "orgA", "--stack", "stk1"),
        answers=True,
    ),
    "names given twice, last wins": Case(
        ("--profile", "nobody", "--profile=default", "token", "--stack", "x", "--stack", "stk1"),
        answers=True,
    ),
    "empty stack flag (a usage error)": Case(("token", "--stack="), answers=False),
    "fctl entry without savedAt": Case(("token",), answers=True, change=_fctl_entry),
    "old entry, long TTL from env": Case(
        ("token",),
        answers=True,
        change=_entry_ten_minutes_old,
        env={"STACK_TOKEN_CACHE_TTL": "1h"},
    ),
    "old entry, default TTL": Case(("token",), answers=False, change=_entry_ten_minutes_old),
    "old entry, TTL flag beats env": Case(
        ("token", "--stack-token-cache-ttl", "1m"),
        answers=False,
        change=_entry_ten_minutes_old,
        env={"STACK_TOKEN_CACHE_TTL": "1h"},
    ),
    "TTL 0": Case(("token", "--stack-token-cache-ttl", "0"), answers=False),
    "TTL 0 from env": Case(("token",), answers=False, env={"STACK_TOKEN_CACHE_TTL": "0"}),
    "negative TTL": Case(("token", "--stack-token-cache-ttl=-5m"), answers=False),
    "bad TTL in env": Case(("token",), answers=False, env={"STACK_TOKEN_CACHE_TTL": "5 min"}),
    "debug": Case(("--debug", "token"), answers=False),
    "abbreviated option": Case(("token", "--org", "orgA"), answers=False),
    "value looking like an option": Case(("token", "--stack", "-x"), answers=False),
    "unknown stack": Case(("token", "--stack", "nope"), answers=False),
    "stack name climbing out": Case(("token", "--stack", "../stk1"), answers=False),
    "profile name with a separator": Case(("--profile", "a/b", "token"), answers=False),
    "global option after the command": Case(("token", "--profile", "default"), answers=False),
    "extra argument": Case(("token", "extra"), answers=False),
    "bad output": Case(("token", "--output", "yaml"), answers=False),
    "help": Case(("token", "--help"), answers=False),
    "no command": Case((), answers=False),
    "cache list": Case(("cache", "list"), answers=False),
    "logged out": Case(("token",), answers=False, change=_logged_out),
    "profile removed": Case(("token",), answers=False, change=_profile_removed),
    "entry group-writable": Case(("token",), answers=False, change=_entry_group_writable),
    "entry symlinked": Case(("token",), answers=False, change=_entry_symlinked),
    "entry not JSON": Case(("token",), answers=False, change=_entry_not_json),
    "store flag (fctl: a usage error)": Case(
        ("token", "--store", "redis://127.0.0.1:1/0"), answers=False
    ),
    "redis env (fctl: ignored)": Case(
        ("token",), answers=True, env={"STACKTOKEN_REDIS_URL": "redis://127.0.0.1:1/0"}
    ),
}


def _full_cli(
    world: World, args: tuple[str, ...], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _FULL_CLI, "--cache-dir", str(world.cache_dir), *args],
        capture_output=True,
        text=True,
        env=world.env(env),
        timeout=CLI_TIMEOUT_SECONDS,
        check=False,
    )


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_warm_path_agrees_with_the_full_cli(world: World, case: Case) -> None:
    _write_entry(world)
    case.change(world)
    args = ("--cache-dir", str(world.cache_dir), *case.args)
    warm = warm_output(args, world.env(case.env), now=datetime.now(UTC))
    requests = world.requests()
    full = _full_cli(world, case.args, case.env)
    assert "Traceback" not in full.stderr
    if warm is not None:
        assert (full.returncode, full.stdout) == (0, warm), full.stderr
        assert world.requests() == requests
    assert (warm is not None) == case.answers
    if case.answers:
        assert TOKEN in full.stdout


def test_warm_path_json_output_is_the_cli_json(world: World) -> None:
    _write_entry(world)
    warm = warm_output(("token", "--output", "json"), world.env(), now=datetime.now(UTC))
    assert warm is not None
    document = json.loads(warm)
    assert sorted(document) == ["access_token", "expires_on", "expiry", "stack_uri", "token_type"]
    assert document["access_token"] == TOKEN
    assert document["expiry"].endswith("Z")
    assert document["stack_uri"] == world.stack.origin
