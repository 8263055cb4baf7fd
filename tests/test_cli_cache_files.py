"""The stack folder's files under abuse: corrupt caches, fctl's entries, read-only folders."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from oauth_servers import MembershipServer, StackAuthServer, write_fctl_profile
from stacktoken import TokenSource

from conftest import World

# What Go's time.Time JSON parser accepts for what we write (UTC, `Z`).
GO_RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z")
CAPABILITIES_BYPASSING_MODES = "-dac_override,-dac_read_search,-fowner"


def debug_run(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    result = world.run(*args, global_args=("--cache-dir", str(world.cache_dir), "--debug"))
    assert "Traceback" not in result.stderr, result.stderr
    return result


def good_entry(world: World) -> dict[str, object]:
    document = json.loads(world.profile.api_token_cache_path.read_bytes())
    assert isinstance(document, dict)
    # fctl's three keys, plus ours, which Go ignores: when it was saved, and for
    # which stack URI the token was issued.
    assert set(document) == {"accessToken", "tokenType", "expiry", "savedAt", "stackURI"}
    assert document["stackURI"] == world.stack.origin
    for key in ("expiry", "savedAt"):
        value = document[key]
        assert isinstance(value, str) and GO_RFC3339_UTC.fullmatch(value), value
    return document


def go_time(moment: datetime, offset: timedelta, digits: int) -> str:
    """`moment` as Go's time.Time JSON writes it, at `offset`, with `digits` fraction digits."""
    local = moment.astimezone(timezone(offset))
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        text += "." + f"{local.microsecond:06d}{'123'}"[:digits]
    if offset == timedelta(0):
        return text + "Z"
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"{text}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


# -- corrupt cache files ----------------------------------------------------------

VALID_EXPIRY = "2999-01-01T00:00:00Z"

CORRUPT_CACHES: dict[str, bytes] = {
    "empty": b"",
    "whitespace": b"  \n",
    "truncated": b'{"accessToken": "st_abc", "tokenType": "Bea',
    "non-json": b"\x00\xffthis is {not json",
    "latin1": '{"accessToken": "\xe9"}'.encode("latin-1"),
    "array": b'[{"accessToken": "st_abc", "tokenType": "Bearer"}]',
    "null": b"null",
    "string": b'"st_abc"',
    "number": b"42",
    "token-not-string": json.dumps(
        {"accessToken": 5, "tokenType": "Bearer", "expiry": VALID_EXPIRY}
    ).encode(),
    "token-empty": json.dumps(
        {"accessToken": "", "tokenType": "Bearer", "expiry": VALID_EXPIRY}
    ).encode(),
    "type-not-string": json.dumps(
        {"accessToken": "st_abc", "tokenType": ["Bearer"], "expiry": VALID_EXPIRY}
    ).encode(),
    "expiry-number": json.dumps(
        {"accessToken": "st_abc", "tokenType": "Bearer", "expiry": 4102444800}
    ).encode(),
    "expiry-missing": json.dumps({"accessToken": "st_abc", "tokenType": "Bearer"}).encode(),
    "expiry-not-rfc3339": json.dumps(
        {"accessToken": "st_abc", "tokenType": "Bearer", "expiry": "tomorrow"}
    ).encode(),
    "expiry-impossible-date": json.dumps(
        {"accessToken": "st_abc", "tokenType": "Bearer", "expiry": "2999-02-30T00:00:00Z"}
    ).encode(),
    "saved-at-number": json.dumps(
        {"accessToken": "st_abc", "tokenType": "Bearer", "expiry": VALID_EXPIRY, "savedAt": 1}
    ).encode(),
    "go-zero-expiry": json.dumps(
        {"accessToken": "st_abc", "tokenType": "Bearer", "expiry": "0001-01-01T00:00:00Z"}
    ).encode(),
    "deep-arrays": b"[" * 200_000 + b"]" * 200_000,
    "deep-objects": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "over-one-mebibyte": b'{"accessToken": "st_abc", "pad": "' + b"a" * (1 << 20) + b'"}',
}


@pytest.mark.parametrize("content", CORRUPT_CACHES.values(), ids=CORRUPT_CACHES.keys())
def test_token_corrupt_cache_is_clean_miss(world: World, content: bytes) -> None:
    path = world.profile.api_token_cache_path
    path.write_bytes(content)
    os.chmod(path, 0o600)
    result = debug_run(world, "token")
    assert result.returncode == 0, result.stderr
    assert "cache miss" in result.stderr
    assert world.exchanges() == 1
    assert result.stdout.strip() != "st_abc"
    assert good_entry(world)["accessToken"] == result.stdout.strip()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "plant",
    ["symlink", "world-writable", "directory", "fifo"],
)
def test_token_untrusted_cache_path_is_miss(world: World, tmp_path: Path, plant: str) -> None:
    """A cache path we cannot trust is never read as a token, and never written through."""
    path = world.profile.api_token_cache_path
    elsewhere = tmp_path / "elsewhere.json"
    planted = json.dumps(
        {"accessToken": "st_planted", "tokenType": "Bearer", "expiry": VALID_EXPIRY}
    )
    elsewhere.write_text(planted)
    if plant == "symlink":
        path.symlink_to(elsewhere)
    elif plant == "world-writable":
        path.write_text(planted)
        os.chmod(path, 0o666)
    elif plant == "directory":
        path.mkdir()
    else:
        os.mkfifo(path, 0o600)
    result = world.run(
        "token", global_args=("--cache-dir", str(world.cache_dir), "--debug"), timeout=20
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() != "st_planted"
    assert world.exchanges() == 1
    assert elsewhere.read_text() == planted  # never written through the symlink
    if plant == "directory":
        assert "cache write failed" in result.stderr
    else:
        assert not path.is_symlink()
        assert good_entry(world)["accessToken"] == result.stdout.strip()


# -- entries written by fctl ---------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "digits"),
    [
        (timedelta(hours=1), 9),
        (timedelta(0), 0),
        (timedelta(hours=-5, minutes=-30), 3),
        (timedelta(hours=14), 6),
    ],
    ids=["+01:00-nanoseconds", "Z-seconds", "-05:30-milliseconds", "+14:00-microseconds"],
)
def test_token_fctl_entry_is_used_warm(world: World, offset: timedelta, digits: int) -> None:
    expiry = datetime.now(UTC) + timedelta(minutes=50)
    path = world.profile.api_token_cache_path
    document = {
        "accessToken": "st_from_fctl",
        "tokenType": "Bearer",
        "expiry": go_time(expiry, offset, digits),
    }
    path.write_text(json.dumps(document))
    os.chmod(path, 0o600)
    result = world.run("token", "--output", "json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["access_token"] == "st_from_fctl"
    shown = datetime.fromisoformat(answer["expiry"])
    assert timedelta(0) <= expiry - shown < timedelta(seconds=max(10**-digits, 1e-6))
    assert world.requests() == 0
    assert json.loads(path.read_text()) == document  # a warm run rewrites nothing


@pytest.mark.parametrize(
    ("age", "ttl_flag"),
    [
        (timedelta(minutes=10), ()),
        (timedelta(minutes=2), ("--stack-token-cache-ttl=1m",)),
        (timedelta(seconds=-120), ()),  # mtime in the future beyond the skew allowance
    ],
    ids=["older-than-default-ttl", "older-than-flag-ttl", "from-the-future"],
)
def test_token_fctl_entry_outside_ttl_is_refreshed(
    world: World, age: timedelta, ttl_flag: tuple[str, ...]
) -> None:
    expiry = datetime.now(UTC) + timedelta(minutes=50)
    path = world.profile.api_token_cache_path
    path.write_text(
        json.dumps(
            {
                "accessToken": "st_from_fctl",
                "tokenType": "Bearer",
                "expiry": go_time(expiry, timedelta(hours=1), 9),
            }
        )
    )
    os.chmod(path, 0o600)
    mtime = (datetime.now(UTC) - age).timestamp()
    os.utime(path, (mtime, mtime))
    result = world.run("token", *ttl_flag)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() != "st_from_fctl"
    assert world.exchanges() == 1
    assert good_entry(world)["accessToken"] == result.stdout.strip()


@pytest.mark.parametrize(
    ("saved_in", "warm"),
    [
        (timedelta(seconds=-10), True),
        (timedelta(seconds=30), True),  # within the 60 s clock-skew allowance
        (timedelta(seconds=-301), False),  # older than the 5 min TTL
        (timedelta(seconds=90), False),  # further in the future than the allowance
    ],
    ids=["recent", "slightly-future", "too-old", "far-future"],
)
def test_token_saved_at_decides_over_mtime(world: World, saved_in: timedelta, warm: bool) -> None:
    now = datetime.now(UTC)
    path = world.profile.api_token_cache_path
    path.write_text(
        json.dumps(
            {
                "accessToken": "st_saved",
                "tokenType": "Bearer",
                "expiry": go_time(now + timedelta(minutes=50), timedelta(0), 6),
                "savedAt": go_time(now + saved_in, timedelta(hours=2), 9),
            }
        )
    )
    os.chmod(path, 0o600)
    result = world.run("token")
    assert result.returncode == 0, result.stderr
    assert (result.stdout.strip() == "st_saved") is warm
    assert world.exchanges() == (0 if warm else 1)


def test_token_entry_expiring_within_grace_is_refreshed(world: World) -> None:
    path = world.profile.api_token_cache_path
    expiry = datetime.now(UTC) + timedelta(seconds=20)  # inside the 30 s grace
    path.write_text(
        json.dumps(
            {
                "accessToken": "st_old",
                "tokenType": "Bearer",
                "expiry": go_time(expiry, timedelta(0), 0),
            }
        )
    )
    os.chmod(path, 0o600)
    result = world.run("token")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() != "st_old"
    assert world.exchanges() == 1


def test_token_leftover_temp_file_is_swept(world: World) -> None:
    leftover = world.profile.stack_dir / ".api_token_cache.json.abc123.tmp"
    leftover.write_text("half a tok")
    result = world.run("token")
    assert result.returncode == 0, result.stderr
    assert not leftover.exists()
    assert {p.name for p in world.profile.stack_dir.iterdir()} <= {
        "accesses.json",
        "api_token_cache.json",
        "api_token_cache.json.lock",
    }


# -- a stack folder we cannot write ---------------------------------------------------


def _unprivileged(command: list[str]) -> list[str] | None:
    """`command` run so that file modes bind it, or None if that cannot be arranged.

    Root ignores modes through CAP_DAC_OVERRIDE (and CAP_FOWNER for chmod);
    `setpriv` drops them from the bounding set, so the exec'd process lacks them.
    """
    if os.geteuid() != 0:
        return command
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    probe = subprocess.run(
        [setpriv, "--bounding-set", CAPABILITIES_BYPASSING_MODES, "--", "true"],
        capture_output=True,
        check=False,
        timeout=10,
    )
    if probe.returncode != 0:
        return None
    return [setpriv, "--bounding-set", CAPABILITIES_BYPASSING_MODES, "--", *command]


def test_token_read_only_stack_folder_still_prints_token(world: World) -> None:
    stack_dir = world.profile.stack_dir
    command = _unprivileged(
        [
            sys.executable,
            "-m",
            "stacktoken",
            "--cache-dir",
            str(world.cache_dir),
            "--debug",
            "token",
        ]
    )
    if command is None:
        pytest.skip("running as root without setpriv/CAP_SETPCAP: modes cannot bind us")
    os.chmod(stack_dir, 0o500)
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, env=world.env(), timeout=60, check=False
        )
        quiet = subprocess.run(
            [c for c in command if c != "--debug"],
            capture_output=True,
            text=True,
            env=world.env(),
            timeout=60,
            check=False,
        )
    finally:
        os.chmod(stack_dir, 0o700)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == world.stack.issued_tokens[0].access_token
    assert "cache write failed" in result.stderr
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""
    assert world.exchanges() == 2
    assert sorted(p.name for p in stack_dir.iterdir()) == ["accesses.json"]


def test_source_cache_write_failure_is_logged_not_raised(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    messages: list[str] = []

    def refuse(*_: object, **__: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with TokenSource.from_fctl(
        config_dir=world.config_dir, cache_dir=world.cache_dir, log=messages.append
    ) as source:
        token = source.token()
    assert token == world.stack.issued_tokens[0].access_token
    assert any(m.startswith("disk cache write failed") for m in messages), messages
    assert not world.profile.api_token_cache_path.exists()


# -- a second, unrelated stack ---------------------------------------------------------


def test_token_two_stacks_have_separate_entries(tmp_path: Path) -> None:
    with MembershipServer() as membership, StackAuthServer(membership) as stack:
        write_fctl_profile(tmp_path / "fctl", membership, stack, stack_id="stk1")
        second = write_fctl_profile(tmp_path / "fctl", membership, stack, stack_id="stk2")
        world = World.at(tmp_path, membership, stack, second)
        one = world.run("token", "--stack", "stk1")
        two = world.run("token", "--stack", "stk2")
        assert one.returncode == 0 and two.returncode == 0, (one.stderr, two.stderr)
        assert one.stdout != two.stdout
        assert world.exchanges() == 2
        assert world.run("token", "--stack", "stk1").stdout == one.stdout
        assert world.run("token", "--stack", "stk2").stdout == two.stdout
        assert world.exchanges() == 2
