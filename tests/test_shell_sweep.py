"""Leftover temp files are swept under the stack's lock: without it they cannot
be told from another process's write in progress (docs/design.md §3.5), unless they are
older than any write takes (a discovery document is written without a lock)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from reliability_helpers import library_source
from stacktoken.core._paths import discovery_cache_name
from stacktoken.core._requests import stack_discovery
from stacktoken.shell._files import STALE_TEMP_SECONDS

from conftest import World

LEFTOVER = ".api_token_cache.json.abc123.tmp"


def _plant_leftover(world: World, name: str = LEFTOVER, folder: Path | None = None) -> Path:
    leftover = (folder or world.profile.stack_dir) / name
    leftover.write_bytes(b'{"accessToken": "half')
    return leftover


def _age(path: Path) -> Path:
    """Make `path` look left there by a writer killed well before any write now."""
    then = time.time() - 2 * STALE_TEMP_SECONDS
    os.utime(path, (then, then))
    return path


def test_write_cache_under_the_lock_sweeps_leftovers(world: World) -> None:
    leftover = _plant_leftover(world)
    with library_source(world) as source:
        source.token()
    assert not leftover.exists()
    assert world.profile.api_token_cache_path.exists()


def test_write_cache_without_the_lock_leaves_leftovers_alone(world: World) -> None:
    leftover = _plant_leftover(world)
    lock = world.profile.stack_dir / "api_token_cache.json.lock"
    lock.mkdir()  # the lock cannot be taken: the acquisition runs unlocked
    with library_source(world) as source:
        source.token()
    assert leftover.exists()
    assert world.profile.api_token_cache_path.exists()


def test_write_cache_without_the_lock_sweeps_only_stale_leftovers(world: World) -> None:
    fresh = _plant_leftover(world)
    stale = _age(_plant_leftover(world, ".api_token_cache.json.def456.tmp"))
    lock = world.profile.stack_dir / "api_token_cache.json.lock"
    lock.mkdir()  # the lock cannot be taken: the acquisition runs unlocked
    with library_source(world) as source:
        source.token()
    assert fresh.exists()
    assert not stale.exists()


def test_discovery_write_sweeps_stale_leftovers_of_its_document(world: World) -> None:
    folder = world.cache_dir / "discovery"
    folder.mkdir(parents=True, mode=0o700)
    document = discovery_cache_name(stack_discovery(world.stack.stack_uri).url)
    fresh = _plant_leftover(world, f".{document}.abc123.tmp", folder)
    stale = _age(_plant_leftover(world, f".{document}.def456.tmp", folder))
    other = _age(_plant_leftover(world, "unrelated.tmp", folder))
    with library_source(world) as source:
        source.token()
    assert (folder / document).exists()
    assert fresh.exists()  # may be another process's write in progress
    assert not stale.exists()
    assert other.exists()  # not a temp file of ours
