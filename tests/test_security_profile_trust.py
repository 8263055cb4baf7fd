"""Issue 15 #1: files that decide where our secrets go get the trust checks of the secrets.

`profile.json` names the stack URI (where the assertion goes) and the
membership URI (where the refresh token goes); `config.yml` names the
profile. Another user who can write them could send our tokens to a server
of theirs. Each test points such a file at a second loopback server, the
attacker's, and checks the run refuses the file and sends it nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from oauth_servers import MembershipServer, StackAuthServer
from reliability_helpers import assert_one_line_error, write_accesses

from conftest import World

NOBODY = 65534
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")


@pytest.fixture
def attacker() -> Iterator[StackAuthServer]:
    with MembershipServer() as membership, StackAuthServer(membership) as stack:
        yield stack


def _point_profile_at(world: World, attacker: StackAuthServer) -> None:
    path = world.profile.profile_path
    document = json.loads(path.read_text())
    for organization in document["rootTokens"]["idToken"]["claims"]["org"]:
        for stack in organization["stacks"]:
            stack["uri"] = attacker.origin
    path.write_text(json.dumps(document))
    os.chmod(path, 0o600)


def _assert_refused(world: World, attacker: StackAuthServer, what: str) -> None:
    write_accesses(world, exp_in=3600)
    message = assert_one_line_error(world.run("token"), 1)
    assert what in message, message
    assert attacker.total_requests == 0, attacker.counts()


@needs_root
def test_trust_foreign_profile_is_refused_and_gets_nothing(
    world: World, attacker: StackAuthServer
) -> None:
    _point_profile_at(world, attacker)
    os.chown(world.profile.profile_path, NOBODY, NOBODY)
    _assert_refused(world, attacker, "owned by another user")


@pytest.mark.parametrize("mode", [0o620, 0o602], ids=["group-writable", "world-writable"])
def test_trust_profile_writable_by_others_is_refused(
    world: World, attacker: StackAuthServer, mode: int
) -> None:
    _point_profile_at(world, attacker)
    os.chmod(world.profile.profile_path, mode)
    _assert_refused(world, attacker, "writable by other users")


def test_trust_symlinked_profile_is_refused(world: World, attacker: StackAuthServer) -> None:
    _point_profile_at(world, attacker)
    path = world.profile.profile_path
    elsewhere = path.with_name("elsewhere.json")
    path.rename(elsewhere)
    path.symlink_to(elsewhere)
    _assert_refused(world, attacker, "symbolic link")


def test_trust_config_writable_by_others_is_refused(world: World, tmp_path: Path) -> None:
    config = world.config_dir / "config.yml"
    config.write_text(json.dumps({"currentProfile": "default"}))
    os.chmod(config, 0o666)
    write_accesses(world, exp_in=3600)
    message = assert_one_line_error(world.run("token"), 1)
    assert "config.yml" in message and "writable by other users" in message, message
    assert world.stack.total_requests == 0
