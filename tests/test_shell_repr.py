"""No token in any `repr` or exception text of the public objects."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from stacktoken import (
    StackTokenAuth,
    StackTokenError,
    TokenSource,
    stack_client,
)
from stacktoken.core._codecs import decode_accesses
from stacktoken.core._requests import exchange_request, refresh_request

from conftest import World


def secrets_of(world: World) -> set[str]:
    p = world.profile
    found = {p.stack_access_token, p.stack_refresh_token, p.root_refresh_token, p.id_token}
    accesses = json.loads(p.accesses_path.read_text())
    found |= {accesses["token"], accesses["refreshToken"]}
    found |= {t.access_token for t in world.stack.issued_tokens}
    return found


def assert_clean(text: str, secrets: set[str]) -> None:
    for secret in secrets:
        assert secret not in text, text
        assert secret[-16:] not in text, text


def test_shell_repr_of_source_auth_and_token(world: World, tmp_path: Path) -> None:
    with TokenSource.from_fctl(
        config_dir=world.config_dir, cache_dir=world.cache_dir, environ={}
    ) as source:
        source.token()
        result = source.token_result()
        auth = StackTokenAuth(source)
        with stack_client(source) as client:
            shown = [repr(source), str(source), repr(auth), repr(client.auth)]
        shown += [repr(result), str(result), repr(result.unwrap())]
    access, _ = world.membership.mint_stack_access(3600)
    with TokenSource.from_credentials(
        stack_uri=world.stack.stack_uri,
        access_token=access,
        refresh_token="rt_secret_refresh_token_value_1234",
        membership_uri=world.membership.base_url,
        cache_dir=tmp_path / "cache2",
    ) as credentials:
        credentials.token()
        shown += [repr(credentials), repr(StackTokenAuth(credentials))]
    secrets = secrets_of(world) | {access, "rt_secret_refresh_token_value_1234"}
    assert "TokenSource" in shown[0]
    for text in shown:
        assert_clean(text, secrets)


def test_shell_repr_of_core_values(world: World) -> None:
    access = decode_accesses(world.profile.accesses_path.read_bytes()).unwrap()
    exchange = exchange_request("http://127.0.0.1:1/token", world.profile.stack_access_token)
    refresh = refresh_request("http://127.0.0.1:1/token", world.profile.stack_refresh_token)
    for value in (access, exchange, refresh):
        assert_clean(repr(value), secrets_of(world))


def _refresh_rejected(world: World) -> None:
    world.membership.revoke_all_refresh_tokens()
    world.stack.reject_all_assertions()


def _stack_down(world: World) -> None:
    world.stack.stop()


def _oauth_error(world: World) -> None:
    from oauth_servers import Fault

    world.stack.inject(world.stack.TOKEN, Fault.status(400, "invalid_scope", "scope refused"))


@pytest.mark.parametrize(
    "break_world", [_refresh_rejected, _stack_down, _oauth_error], ids=lambda f: f.__name__
)
def test_shell_repr_of_exceptions(world: World, break_world: Callable[[World], None]) -> None:
    secrets = secrets_of(world)
    break_world(world)
    with (
        TokenSource.from_fctl(
            config_dir=world.config_dir, cache_dir=world.cache_dir, environ={}
        ) as source,
        pytest.raises(StackTokenError) as caught,
    ):
        source.token()
    error = caught.value
    for text in (repr(error), str(error), repr(error.error), repr(error.args)):
        assert_clean(text, secrets | secrets_of(world))
    assert "\n" not in str(error)


def test_shell_repr_of_credentials_source_hides_url_credentials(tmp_path: Path) -> None:
    """A stack URI with userinfo (a proxy's habit): its password is in no repr."""
    with TokenSource.from_credentials(
        stack_uri="https://svc:url-pass-4f9a2c@stack.example",
        access_token="at_secret_access_token_value_5678",
        cache_dir=tmp_path,
    ) as source:
        shown = [repr(source), str(source), repr(StackTokenAuth(source))]
    assert "stack.example" in shown[0]
    assert_clean("\n".join(shown), {"url-pass-4f9a2c", "at_secret_access_token_value_5678"})
