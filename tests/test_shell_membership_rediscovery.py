"""A membership token endpoint that is gone (404) drops the cached discovery
document and is rediscovered once (docs/design.md §3.4), as the stack's is."""

from __future__ import annotations

from oauth_servers import Fault, MembershipServer, StackAuthServer, write_fctl_profile

from conftest import World


def _stale_world(world: World) -> World:
    """The world's profile again, with an expired stack access token."""
    write_fctl_profile(world.config_dir, world.membership, world.stack, stack_access_exp_in=-60)
    return world


def test_refresh_endpoint_gone_is_rediscovered_once(world: World) -> None:
    _stale_world(world)
    first = world.run("token")
    assert first.returncode == 0, first.stderr
    write_fctl_profile(world.config_dir, world.membership, world.stack, stack_access_exp_in=-60)
    world.membership.reset_counts()
    world.membership.inject(MembershipServer.TOKEN, Fault.status(404))
    second = world.run("token", "--stack-token-cache-ttl=0")
    assert second.returncode == 0, second.stderr
    assert world.membership.count(MembershipServer.DISCOVERY) == 1  # the cached one was dropped
    assert world.membership.count(MembershipServer.TOKEN) == 2
    assert world.stack.count(StackAuthServer.TOKEN) == 2


def test_refresh_endpoint_still_gone_is_one_line_exit_1(world: World) -> None:
    _stale_world(world)
    world.membership.inject(MembershipServer.TOKEN, Fault.status(404), Fault.status(404))
    result = world.run("token")
    assert result.returncode == 1
    assert result.stderr.startswith("stacktoken: error: ") and result.stderr.count("\n") == 1
    assert world.membership.count(MembershipServer.TOKEN) == 2
    retry = world.run("token")
    assert retry.returncode == 0, retry.stderr
