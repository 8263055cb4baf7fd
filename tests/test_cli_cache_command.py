"""`stacktoken cache list` and `cache clear` over several profiles, organizations and stacks."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from oauth_servers import FctlProfile, MembershipServer, StackAuthServer, write_fctl_profile

from conftest import World

# (profile, organization, stack) of every stack the fixture logs in to.
STACKS = [
    ("default", "orgA", "stk1"),
    ("default", "orgA", "stk2"),
    ("default", "orgB", "stk3"),
    ("other", "orgA", "stk1"),
]


class Estate:
    """Several fctl stacks served by one stack server, each with a warm cache entry."""

    def __init__(self, world: World, profiles: dict[tuple[str, str, str], FctlProfile]) -> None:
        self.world = world
        self.profiles = profiles

    def run(self, *args: str, profile: str | None = None) -> subprocess.CompletedProcess[str]:
        prefix: tuple[str, ...] = ("--cache-dir", str(self.world.cache_dir))
        if profile is not None:
            prefix += ("--profile", profile)
        result = self.world.run(*args, global_args=prefix)
        assert "Traceback" not in result.stderr, result.stderr
        return result

    def cached(self) -> set[tuple[str, str, str]]:
        return {key for key, p in self.profiles.items() if p.api_token_cache_path.exists()}

    def secrets(self) -> list[str]:
        found = ["st_cached_"]
        for p in self.profiles.values():
            found += [p.stack_access_token, p.stack_refresh_token, p.root_refresh_token]
        return found


def write_entry(path: Path, token: str) -> None:
    """A fresh entry as stacktoken writes it (saved now, expiring in 50 minutes)."""
    now = datetime.now(UTC)
    document = {
        "accessToken": token,
        "tokenType": "Bearer",
        "expiry": (now + timedelta(minutes=50)).isoformat().replace("+00:00", "Z"),
        "savedAt": now.isoformat().replace("+00:00", "Z"),
    }
    path.write_text(json.dumps(document))
    path.chmod(0o600)


@pytest.fixture
def estate(tmp_path: Path) -> Iterator[Estate]:
    with MembershipServer() as membership, StackAuthServer(membership) as stack:
        profiles = {
            key: write_fctl_profile(
                tmp_path / "fctl",
                membership,
                stack,
                profile=key[0],
                org=key[1],
                stack_id=key[2],
                set_current_profile=key[0] == "default",
                set_defaults=False,
            )
            for key in STACKS
        }
        world = World.at(tmp_path, membership, stack, profiles[STACKS[0]])
        estate = Estate(world, profiles)
        for key, p in profiles.items():
            write_entry(p.api_token_cache_path, "st_cached_" + "_".join(key))
        assert estate.cached() == set(STACKS)
        yield estate


def test_cache_list_without_entries(world: World) -> None:
    result = world.run("cache", "list")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "no cache entries\n"
    assert result.stderr == ""


def test_cache_list_shows_every_entry_without_tokens(estate: Estate) -> None:
    for debug in ((), ("--debug",)):
        result = estate.world.run(
            "cache", "list", global_args=("--cache-dir", str(estate.world.cache_dir), *debug)
        )
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert len(lines) == len(STACKS)
        for profile, org, stack in STACKS:
            line = next(line for line in lines if line.startswith(f"{profile}/{org}/{stack} "))
            assert "expiry" in line and "age" in line and "usable" in line
        for secret in estate.secrets():
            assert secret not in result.stdout
            assert secret not in result.stderr
    assert estate.world.requests() == 0


def test_cache_list_of_one_profile(estate: Estate) -> None:
    result = estate.run("cache", "list", profile="other")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("other/orgA/stk1 ")
    assert len(result.stdout.splitlines()) == 1


def test_cache_list_reports_unreadable_entry(estate: Estate) -> None:
    estate.profiles[STACKS[1]].api_token_cache_path.write_text("{not json")
    result = estate.run("cache", "list")
    assert result.returncode == 0, result.stderr
    (line,) = [line for line in result.stdout.splitlines() if "default/orgA/stk2" in line]
    assert "unreadable" in line


def test_cache_list_escapes_a_client_folder_name_read_from_disk(world: World) -> None:
    """An unreadable machine-credential entry is listed by its folder's name: one named
    with an escape sequence (here one that sets the terminal's title) is shown escaped."""
    folder = world.cache_dir / "clients" / "\x1b]0;owned\x07"
    folder.mkdir(parents=True)
    (folder / "api_token_cache.json").write_text("{not json")
    result = world.run("cache", "list")
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    (line,) = result.stdout.splitlines()
    assert line.startswith("client \\x1b]0;owned\\x07  unreadable (")


def test_cache_list_escapes_stack_folder_names_read_from_disk(estate: Estate) -> None:
    """A stack folder named with an escape sequence or a newline is one escaped line."""
    path = estate.profiles[STACKS[0]].api_token_cache_path
    odd = path.parent.parent / "stk\x1b[2J\n"
    odd.mkdir()
    (odd / path.name).write_bytes(path.read_bytes())
    (odd / path.name).chmod(0o600)
    result = estate.run("cache", "list")
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout
    lines = result.stdout.splitlines()
    assert len(lines) == len(STACKS) + 1
    assert any(line.startswith("default/orgA/stk\\x1b[2J\\n ") for line in lines)


def test_cache_list_says_when_entry_is_stale(estate: Estate) -> None:
    path = estate.profiles[STACKS[0]].api_token_cache_path
    document = json.loads(path.read_text())
    document["savedAt"] = "2000-01-01T00:00:00Z"
    path.write_text(json.dumps(document))
    result = estate.run("cache", "list")
    (line,) = [line for line in result.stdout.splitlines() if "default/orgA/stk1" in line]
    assert "older than the cache TTL" in line


@pytest.mark.parametrize(
    ("args", "profile", "removed"),
    [
        ((), None, {STACKS[0], STACKS[1], STACKS[2]}),
        ((), "other", {STACKS[3]}),
        (("--organization", "orgA"), None, {STACKS[0], STACKS[1]}),
        (("--stack", "stk1"), None, {STACKS[0]}),
        (("--organization", "orgB", "--stack", "stk3"), None, {STACKS[2]}),
        (("--organization", "orgB", "--stack", "stk1"), None, set()),
        (("--organization", "orgZ"), None, set()),
        (("--stack", "stk1"), "other", {STACKS[3]}),
    ],
    ids=[
        "current-profile",
        "other-profile",
        "one-organization",
        "one-stack",
        "organization-and-stack",
        "no-such-pair",
        "no-such-organization",
        "other-profile-one-stack",
    ],
)
def test_cache_clear_removes_matching_entries(
    estate: Estate,
    args: tuple[str, ...],
    profile: str | None,
    removed: set[tuple[str, str, str]],
) -> None:
    result = estate.run("cache", "clear", *args, profile=profile)
    assert result.returncode == 0, result.stderr
    noun = "entry" if len(removed) == 1 else "entries"
    assert result.stdout == f"removed {len(removed)} cache {noun}\n"
    assert estate.cached() == set(STACKS) - removed
    for p in estate.profiles.values():
        assert p.accesses_path.exists()
    assert (
        estate.run("cache", "clear", *args, profile=profile).stdout == "removed 0 cache entries\n"
    )


def test_cache_clear_makes_next_run_cold(estate: Estate) -> None:
    assert estate.run("cache", "clear", "--stack", "stk2").returncode == 0
    cold = estate.run("token", "--organization", "orgA", "--stack", "stk2")
    assert cold.returncode == 0, cold.stderr
    assert estate.world.exchanges() == 1
    warm = estate.run("token", "--organization", "orgA", "--stack", "stk1")
    assert warm.stdout == "st_cached_default_orgA_stk1\n"
    assert estate.world.exchanges() == 1


@pytest.mark.parametrize("pattern", ["*", "?ther", "[od]*", "**"])
def test_cache_commands_take_profile_literally(estate: Estate, pattern: str) -> None:
    """A profile name is a name, not a glob: it never reaches other profiles' entries."""
    listed = estate.run("cache", "list", profile=pattern)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout == "no cache entries\n"
    cleared = estate.run("cache", "clear", profile=pattern)
    assert cleared.returncode == 0, cleared.stderr
    assert cleared.stdout == "removed 0 cache entries\n"
    assert estate.cached() == set(STACKS)


@pytest.mark.parametrize("pattern", ["*", "stk?", "[s]tk1"])
def test_cache_clear_takes_stack_literally(estate: Estate, pattern: str) -> None:
    cleared = estate.run("cache", "clear", "--stack", pattern)
    assert cleared.returncode == 0, cleared.stderr
    assert cleared.stdout == "removed 0 cache entries\n"
    assert estate.cached() == set(STACKS)
