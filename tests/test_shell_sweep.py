"""Leftover temp files are swept only under the stack's lock: without it they
cannot be told from another process's write in progress (DESIGN §3.5)."""

from __future__ import annotations

from pathlib import Path

from reliability_helpers import library_source

from conftest import World

LEFTOVER = ".api_token_cache.json.abc123.tmp"


def _plant_leftover(world: World) -> Path:
    leftover = world.profile.stack_dir / LEFTOVER
    leftover.write_bytes(b'{"accessToken": "half')
    return leftover


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
