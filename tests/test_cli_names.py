"""Hostile profile, organization and stack names: usage errors, nothing written anywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from stacktoken.shell._cli import main

from conftest import World

HOSTILE_NAMES = {
    "dot": ".",
    "dot-dot": "..",
    "slash": "a/b",
    "climb": "../../etc",
    "climb-far": "../" * 12 + "tmp/stacktoken-escape",
    "absolute": "/tmp/stacktoken-escape",
    "backslash": "..\\evil",
    "control-01": "\x01",
    "newline": "stk\n1",
    "tab": "stk\t1",
    "del": "stk\x7f",
    "c1-control": "stk\x85",
    "300-bytes": "a" * 300,
    "256-bytes-utf8": "\u00e9" * 128,
}


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under `root` with its size and mtime."""
    found: dict[str, tuple[int, int]] = {}
    for folder, folders, files in os.walk(root):
        for name in folders + files:
            path = Path(folder, name)
            info = path.lstat()
            found[str(path.relative_to(root))] = (info.st_size, info.st_mtime_ns)
    return found


def assert_usage_error(code: int, stdout: str, stderr: str) -> None:
    assert code == 2, (code, stderr)
    assert stdout == ""
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("stacktoken: error: invalid "), lines[0]


def argv_with(world: World, option: str, name: str) -> list[str]:
    """The command line that passes `name` through `option` (`command:flag`)."""
    cache = ["--config-dir", str(world.config_dir), "--cache-dir", str(world.cache_dir)]
    command, _, flag = option.partition(":")
    if flag == "profile":
        return [*cache, "--profile", name, *command.split()]
    return [*cache, *command.split(), f"--{flag}", name]


OPTIONS = [
    "token:profile",
    "token:organization",
    "token:stack",
    "cache list:profile",
    "cache clear:profile",
    "cache clear:organization",
    "cache clear:stack",
]


def plant_entry(world: World) -> None:
    """A cache entry that a wrong `cache clear` would remove."""
    world.profile.api_token_cache_path.write_text(
        json.dumps({"accessToken": "st_x", "tokenType": "Bearer", "expiry": "2999-01-01T00:00:00Z"})
    )


@pytest.mark.parametrize(
    ("option", "name"),
    [pytest.param(option, "../../etc", id=f"{option}-climb") for option in OPTIONS]
    + [
        pytest.param("token:stack", name, id=f"token:stack-{key}")
        for key, name in HOSTILE_NAMES.items()
        if key != "climb"
    ],
)
def test_cli_hostile_name_is_usage_error(
    world: World, tmp_path: Path, option: str, name: str
) -> None:
    """As a user runs it: a subprocess."""
    plant_entry(world)
    before = snapshot(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "stacktoken", *argv_with(world, option, name)],
        capture_output=True,
        text=True,
        env=world.env(),
        timeout=60,
        check=False,
    )
    assert_usage_error(result.returncode, result.stdout, result.stderr)
    assert snapshot(tmp_path) == before
    assert not Path("/tmp/stacktoken-escape").exists()
    assert world.requests() == 0


@pytest.mark.parametrize("option", OPTIONS)
def test_cli_every_hostile_name_for_every_option(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str
) -> None:
    """The whole table, in process: the `main` the subprocess runs, without its start-up."""
    plant_entry(world)
    before = snapshot(tmp_path)
    for name in HOSTILE_NAMES.values():
        code = main(argv_with(world, option, name))
        captured = capsys.readouterr()
        assert_usage_error(code, captured.out, captured.err)
    assert snapshot(tmp_path) == before
    assert not Path("/tmp/stacktoken-escape").exists()
    assert world.requests() == 0


def _set_current_profile(world: World, name: str) -> None:
    world.profile.config_path.write_text(json.dumps({"currentProfile": name}))


def _set_profile_field(field: str) -> Callable[[World, str], None]:
    def change(world: World, name: str) -> None:
        document = json.loads(world.profile.profile_path.read_text())
        document[field] = name
        world.profile.profile_path.write_text(json.dumps(document))

    return change


@pytest.mark.parametrize(
    "plant",
    [
        _set_current_profile,
        _set_profile_field("defaultOrganization"),
        _set_profile_field("defaultStack"),
    ],
    ids=["config-currentProfile", "profile-defaultOrganization", "profile-defaultStack"],
)
@pytest.mark.parametrize("name", ["..", "../../etc", "a/b", "\x01"], ids=repr)
def test_token_hostile_name_from_fctl_files_is_usage_error(
    world: World, tmp_path: Path, plant: Callable[[World, str], None], name: str
) -> None:
    plant(world, name)
    before = snapshot(tmp_path)
    result = world.run("token")
    assert_usage_error(result.returncode, result.stdout, result.stderr)
    assert snapshot(tmp_path) == before
    assert world.requests() == 0


@pytest.mark.parametrize(
    "name",
    ["a" * 255, "\u00e9" * 127, "stk 1", "stk-\u2603", "..stk", "stk.."],
    ids=["255-bytes", "254-bytes-utf8", "space", "snowman", "leading-dots", "trailing-dots"],
)
def test_token_unusual_but_valid_stack_name_is_not_usage_error(world: World, name: str) -> None:
    """Valid names pass the check: the stack is simply not one of the profile's (exit 3)."""
    result = world.run("token", "--stack", name)
    assert result.returncode == 3, result.stderr
    assert "stacktoken login" in result.stderr
