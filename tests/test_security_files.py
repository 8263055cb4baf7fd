"""Issue 15 #6, #7, #9: tokens bound to their stack, folders never followed, modes tightened."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import threading
from pathlib import Path

from oauth_servers import Fault, MembershipServer
from reliability_helpers import (
    accesses,
    assert_ok,
    assert_one_line_error,
    finish,
    start_cli,
    write_accesses,
)

from conftest import World

HANDLED_TIMEOUT = 30.0


def _debug(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    return world.run(*args, global_args=("--cache-dir", str(world.cache_dir), "--debug"))


def _set_stack_uri(world: World, uri: str) -> None:
    path = world.profile.profile_path
    document = json.loads(path.read_text())
    for organization in document["rootTokens"]["idToken"]["claims"]["org"]:
        for stack in organization["stacks"]:
            stack["uri"] = uri
    path.write_text(json.dumps(document))
    os.chmod(path, 0o600)


def test_token_cached_for_one_stack_uri_is_not_served_once_the_uri_changed(world: World) -> None:
    """#6: the warm entry is tied to the stack URI it was issued for."""
    write_accesses(world, exp_in=3600)
    cached = assert_ok(world.run("token"))
    _set_stack_uri(world, "http://127.0.0.2:1")  # another host (nothing listens there)
    result = _debug(world, "token")
    assert cached not in result.stdout
    assert "entry was issued for another stack URI" in result.stderr
    assert result.returncode == 1  # the new host cannot be reached: no token at all


def test_rotated_refresh_token_never_follows_a_stack_folder_swapped_for_a_symlink(
    world: World, tmp_path: Path
) -> None:
    """#7: while the refresh is in flight, the stack folder becomes a symlink to a
    folder outside the config dir; the rotated tokens are not written there."""
    write_accesses(world, exp_in=-60)
    outside = tmp_path / "outside"
    outside.mkdir(mode=0o700)
    handled, released = threading.Event(), threading.Event()
    world.membership.inject(MembershipServer.TOKEN, Fault.hold(handled, released))
    process = start_cli(world, "token")
    try:
        assert handled.wait(HANDLED_TIMEOUT), "the refresh never reached the IdP"
        stack_dir = world.profile.stack_dir
        stack_dir.rename(stack_dir.with_name("moved-away"))
        stack_dir.symlink_to(outside)
    finally:
        released.set()
    result = finish(process)
    assert list(outside.iterdir()) == [], "something was written through the symlink"
    message = assert_one_line_error(result, 1)
    assert "symbolic link" in message, message


def test_discovery_cache_folder_symlinked_elsewhere_is_not_written_through(
    world: World, tmp_path: Path
) -> None:
    """#7: a symlink planted in a (shared, writable) cache dir redirects no write."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    world.cache_dir.mkdir(parents=True, exist_ok=True)
    (world.cache_dir / "discovery").symlink_to(elsewhere)
    write_accesses(world, exp_in=3600)
    result = _debug(world, "token")
    assert result.returncode == 0, result.stderr
    assert list(elsewhere.iterdir()) == []
    assert "discovery cache write failed" in result.stderr


def test_cache_clear_does_not_follow_a_symlinked_organization_folder(
    world: World, tmp_path: Path
) -> None:
    """#7: `cache clear` removes nothing outside the config dir."""
    outside = tmp_path / "outside-org"
    victim = outside / "stacks" / "s1" / "api_token_cache.json"
    victim.parent.mkdir(parents=True)
    victim.write_text("{}")
    organizations = world.profile.stack_dir.parents[2]
    (organizations / "evil").symlink_to(outside)
    assert assert_ok(world.run("cache", "clear", global_args=())).startswith("removed")
    assert victim.exists()


def test_loose_modes_of_our_own_files_and_folders_are_tightened_and_said(world: World) -> None:
    """#9: a 0644 accesses.json and a 0777 stack folder of ours become 0600 / 0700,
    with a debug line each; nothing is refused for it."""
    write_accesses(world, exp_in=3600)
    os.chmod(world.profile.accesses_path, 0o644)
    os.chmod(world.profile.stack_dir, 0o777)
    result = _debug(world, "token")
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(world.profile.accesses_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(world.profile.stack_dir.stat().st_mode) == 0o700
    assert f"tightened {world.profile.stack_dir} from 0777 to 0700" in result.stderr
    assert "tightened" in result.stderr and "accesses.json from 0644 to 0600" in result.stderr
    assert accesses(world)["token"]
