"""The library facade: `TokenSource.from_fctl` and `from_credentials` against loopback servers."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from oauth_servers import MembershipServer, StackAuthServer
from returns.result import Failure, Result, Success
from stacktoken import (
    AuthenticationRequiredError,
    CachedToken,
    InvalidUsageError,
    RemoteServerError,
    StackTokenError,
    TokenSource,
)
from stacktoken.core._errors import AuthRequired, UsageError
from stacktoken.shell._setup import Knobs
from stacktoken.shell._source import client_source, credentials_source, fctl_source

from conftest import World


def source_of(
    world: World, *, stack: str | None = None, cache_ttl: str | timedelta | None = None
) -> TokenSource:
    return TokenSource.from_fctl(
        config_dir=world.config_dir,
        cache_dir=world.cache_dir,
        stack=stack,
        cache_ttl=cache_ttl,
        environ={},
    )


# -- from_fctl -----------------------------------------------------------------------


def test_source_cold_then_in_memory(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    with source_of(world) as source:
        token = source.token()
        assert token == world.stack.issued_tokens[0].access_token
        assert world.stack.counts() == {world.stack.DISCOVERY: 1, world.stack.TOKEN: 1}
        before = world.requests()

        def refuse(*args: object, **kwargs: object) -> None:
            raise AssertionError(f"file opened: {args!r}")

        with monkeypatch.context() as patch:
            patch.setattr(os, "open", refuse)
            patch.setattr(Path, "open", refuse)
            patch.setattr(os, "stat", refuse)
            assert source.token() == token
            again = source.token_result()
        assert isinstance(again, Success) and again.unwrap().access_token == token
        assert world.requests() == before


def test_source_warm_from_disk(world: World) -> None:
    with source_of(world) as first:
        token = first.token()
    before = world.requests()
    with source_of(world) as second:
        assert second.token() == token
    assert world.requests() == before
    assert world.profile.api_token_cache_path.exists()


def test_source_shares_cache_with_cli(world: World) -> None:
    cli = world.run("token")
    assert cli.returncode == 0, cli.stderr
    with source_of(world) as source:
        assert source.token() == cli.stdout.strip()
    assert world.exchanges() == 1


@pytest.mark.parametrize("ttl", ["0", timedelta(0)], ids=["text", "timedelta"])
def test_source_ttl_zero_still_reuses_in_memory(world: World, ttl: str | timedelta) -> None:
    with source_of(world, cache_ttl=ttl) as source:
        assert source.token() == source.token()
    assert world.exchanges() == 1
    assert sorted(p.name for p in world.profile.stack_dir.iterdir()) == ["accesses.json"]
    with source_of(world, cache_ttl=ttl) as other:
        other.token()
    assert world.exchanges() == 2


def test_source_ttl_from_environ(world: World) -> None:
    with TokenSource.from_fctl(
        config_dir=world.config_dir,
        cache_dir=world.cache_dir,
        environ={"STACK_TOKEN_CACHE_TTL": "0"},
    ) as source:
        source.token()
    assert not world.profile.api_token_cache_path.exists()


def test_source_config_dir_from_environ(world: World) -> None:
    environ = {"FCTL_CONFIG_DIR": str(world.config_dir)}
    with TokenSource.from_fctl(cache_dir=world.cache_dir, environ=environ) as source:
        assert source.token() == world.stack.issued_tokens[0].access_token
        assert source.stack_uri == world.stack.stack_uri


def test_source_token_result_is_a_result(world: World) -> None:
    with source_of(world) as source:
        result = source.token_result()
    assert isinstance(result, Result)
    assert isinstance(result, Success)
    token = result.unwrap()
    assert isinstance(token, CachedToken)
    assert token.token_type == "Bearer"
    assert token.expiry is not None and token.expiry.tzinfo is not None
    assert timedelta(minutes=59) < token.expiry - datetime.now(UTC) < timedelta(minutes=61)


def test_source_token_result_failure_is_a_value(world: World) -> None:
    world.membership.revoke_all_refresh_tokens()
    world.stack.reject_all_assertions()
    with source_of(world) as source:
        result = source.token_result()
    assert isinstance(result, Failure)
    assert isinstance(result.failure(), AuthRequired)


def test_source_fctl_source_failure_is_a_value(world: World) -> None:
    result = fctl_source(config_dir=world.config_dir, stack="../x", environ={})
    assert isinstance(result, Failure)
    assert isinstance(result.failure(), UsageError)
    assert isinstance(fctl_source(config_dir=world.config_dir), Success)


def test_source_every_constructor_takes_the_same_knobs(world: World, tmp_path: Path) -> None:
    """One set of knobs, the clock included, for every kind of source; none builds
    anything on the network."""
    seen: list[datetime] = []

    def clock() -> datetime:
        seen.append(datetime.now(UTC))
        return seen[-1]

    knobs: Knobs = {
        "cache_dir": tmp_path,
        "cache_ttl": "1m",
        "log": lambda _: None,
        "http_policy": None,
        "environ": {},
        "lock_timeout": 1.0,
        "renewal": None,
        "renew_in_background": False,
        "clock": clock,
    }
    uri = "https://stack.example"
    built = [
        fctl_source(config_dir=world.config_dir, **knobs),
        client_source(stack_uri=uri, client_id="svc", client_secret="s3cr3t-value", **knobs),
        credentials_source(stack_uri=uri, access_token="opaque-token-value", **knobs),
    ]
    for result in built:
        source = result.unwrap()
        assert source._clock is clock and source._renewal is None
        source.close()


def test_source_constructors_refuse_an_unknown_keyword(world: World) -> None:
    with pytest.raises(TypeError, match="cache_tll"):
        TokenSource.from_fctl(config_dir=world.config_dir, cache_tll="1m")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="lock_timeot"):
        TokenSource.from_credentials(
            stack_uri="https://stack.example",
            access_token="opaque-token-value",
            lock_timeot=1.0,  # type: ignore[call-arg]
        )


def test_source_invalidate_drops_memory_and_disk(world: World) -> None:
    with source_of(world) as source:
        first = source.token()
        source.invalidate()
        assert not world.profile.api_token_cache_path.exists()
        second = source.token()
    assert first != second
    assert world.exchanges() == 2


def test_source_threads_share_one_exchange(world: World) -> None:
    with source_of(world) as source:
        results: list[str] = []
        barrier = threading.Barrier(8)

        def worker() -> None:
            barrier.wait(timeout=10)
            results.append(source.token())

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert len(results) == 8 and len(set(results)) == 1
    assert world.exchanges() == 1


# -- typed exceptions ------------------------------------------------------------------


def _token_of(source: TokenSource) -> object:
    with source:
        return source.token()


def _empty_config(world: World, tmp_path: Path) -> object:
    (tmp_path / "empty").mkdir()
    return TokenSource.from_fctl(config_dir=tmp_path / "empty", environ={})


def _bad_stack_name(world: World, tmp_path: Path) -> object:
    return source_of(world, stack="../../etc")


def _bad_ttl(world: World, tmp_path: Path) -> object:
    return source_of(world, cache_ttl="-5m")


def _bad_ttl_env(world: World, tmp_path: Path) -> object:
    return TokenSource.from_fctl(
        config_dir=world.config_dir, environ={"STACK_TOKEN_CACHE_TTL": "abc"}
    )


def _unknown_stack(world: World, tmp_path: Path) -> object:
    return _token_of(source_of(world, stack="stk-unknown"))


def _stack_down(world: World, tmp_path: Path) -> object:
    world.stack.stop()
    return _token_of(source_of(world))


def _refresh_rejected(world: World, tmp_path: Path) -> object:
    world.membership.revoke_all_refresh_tokens()
    world.stack.reject_all_assertions()
    return _token_of(source_of(world))


@pytest.mark.parametrize(
    ("make", "kind", "code"),
    [
        (_empty_config, AuthenticationRequiredError, 3),
        (_bad_stack_name, InvalidUsageError, 2),
        (_bad_ttl, InvalidUsageError, 2),
        (_bad_ttl_env, InvalidUsageError, 2),
        (_unknown_stack, AuthenticationRequiredError, 3),
        (_stack_down, RemoteServerError, 1),
        (_refresh_rejected, AuthenticationRequiredError, 3),
    ],
    ids=[
        "not-logged-in",
        "bad-name",
        "bad-ttl",
        "bad-ttl-env",
        "unknown-stack",
        "stack-down",
        "refresh-rejected",
    ],
)
def test_source_raises_typed_exceptions(
    world: World,
    tmp_path: Path,
    make: Callable[[World, Path], object],
    kind: type[StackTokenError],
    code: int,
) -> None:
    with pytest.raises(kind) as caught:
        make(world, tmp_path)
    error = caught.value
    assert isinstance(error, StackTokenError)
    assert error.exit_code == code
    assert "\n" not in str(error)
    if code == 3:
        assert "stacktoken login" in str(error)


# -- from_credentials --------------------------------------------------------------------


@pytest.fixture
def servers() -> Iterator[tuple[MembershipServer, StackAuthServer]]:
    with MembershipServer() as membership, StackAuthServer(membership) as stack:
        yield membership, stack


def test_source_from_credentials_without_fctl_files(
    servers: tuple[MembershipServer, StackAuthServer], tmp_path: Path
) -> None:
    membership, stack = servers
    access, _ = membership.mint_stack_access(3600)
    with TokenSource.from_credentials(
        stack_uri=stack.stack_uri, access_token=access, cache_dir=tmp_path / "cache"
    ) as source:
        token = source.token()
        assert source.token() == token
        assert source.stack_uri == stack.stack_uri
    assert token == stack.issued_tokens[0].access_token
    assert stack.counts() == {stack.DISCOVERY: 1, stack.TOKEN: 1}
    assert membership.total_requests == 0
    assert stack.requests[-1].form["assertion"] == access
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]  # no fctl file anywhere


def test_source_from_credentials_refreshes_and_reports_rotation(
    servers: tuple[MembershipServer, StackAuthServer], tmp_path: Path
) -> None:
    membership, stack = servers
    access, refresh = membership.mint_stack_access(-60)
    rotations: list[tuple[str, str | None]] = []
    with TokenSource.from_credentials(
        stack_uri=stack.stack_uri,
        access_token=access,
        refresh_token=refresh,
        membership_uri=membership.base_url,
        on_refresh=lambda new_access, new_refresh: rotations.append((new_access, new_refresh)),
        cache_dir=tmp_path / "cache",
    ) as source:
        source.token()
        source.token()
    assert membership.counts() == {membership.DISCOVERY: 1, membership.TOKEN: 1}
    assert stack.count(stack.TOKEN) == 1
    ((new_access, new_refresh),) = rotations
    assert new_access != access
    assert new_refresh is not None and new_refresh != refresh
    assert membership.is_refresh_token_valid(new_refresh)
    assert not membership.is_refresh_token_valid(refresh)
    assert stack.requests[-1].form["assertion"] == new_access


def test_source_from_credentials_refresh_rejected(
    servers: tuple[MembershipServer, StackAuthServer], tmp_path: Path
) -> None:
    membership, stack = servers
    access, refresh = membership.mint_stack_access(-60)
    membership.revoke_all_refresh_tokens()
    rotations: list[object] = []
    source = TokenSource.from_credentials(
        stack_uri=stack.stack_uri,
        access_token=access,
        refresh_token=refresh,
        membership_uri=membership.base_url,
        on_refresh=lambda *args: rotations.append(args),
        cache_dir=tmp_path / "cache",
    )
    with source, pytest.raises(AuthenticationRequiredError) as caught:
        source.token()
    assert caught.value.exit_code == 3
    assert rotations == []
    assert stack.count(stack.TOKEN) == 0


@pytest.mark.parametrize(
    ("refresh", "membership_uri"),
    [(None, True), ("rt_x", False)],
    ids=["no-refresh-token", "no-membership-uri"],
)
def test_source_from_credentials_expired_without_means_to_refresh(
    servers: tuple[MembershipServer, StackAuthServer],
    tmp_path: Path,
    refresh: str | None,
    membership_uri: bool,
) -> None:
    membership, stack = servers
    access, _ = membership.mint_stack_access(-60)
    with (
        TokenSource.from_credentials(
            stack_uri=stack.stack_uri,
            access_token=access,
            refresh_token=refresh,
            membership_uri=membership.base_url if membership_uri else None,
            cache_dir=tmp_path / "cache",
        ) as source,
        pytest.raises(AuthenticationRequiredError) as caught,
    ):
        source.token()
    assert caught.value.exit_code == 3
    assert membership.total_requests == 0 and stack.total_requests == 0


@pytest.mark.parametrize(
    "stack_uri",
    ["http://stack.example.com", "ftp://127.0.0.1:1", "not a url"],
)
def test_source_from_credentials_refuses_insecure_stack(
    servers: tuple[MembershipServer, StackAuthServer], tmp_path: Path, stack_uri: str
) -> None:
    membership, _ = servers
    access, _ = membership.mint_stack_access(3600)
    with (
        TokenSource.from_credentials(
            stack_uri=stack_uri, access_token=access, cache_dir=tmp_path / "cache"
        ) as source,
        pytest.raises(RemoteServerError) as caught,
    ):
        source.token()
    assert caught.value.exit_code == 1
    assert access not in str(caught.value)
