"""The CLI's two main runs, cold then warm, against the loopback servers."""

from conftest import World


def test_token_cold_then_warm(world: World) -> None:
    cold = world.run("token")
    assert cold.returncode == 0, cold.stderr
    assert world.exchanges() == 1
    before = world.requests()
    warm = world.run("token")
    assert warm.returncode == 0, warm.stderr
    assert warm.stdout == cold.stdout
    assert world.requests() == before
