"""`formance_sdk`: the real formance-sdk-python on a token source (docs/design.md §10).

The SDK is driven as a user would, sync and async, against the ledger stub of
tests/ledger_stub.py, which accepts only tokens the loopback stack issued.
Every token comes from stacktoken: the SDK's own client-credentials hook is
never used (it would authenticate with `client_secret_post` and ask for the
operation's scope; stacktoken uses `client_secret_basic` when the stack lists it).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from formance_sdk_python import SDK
from formance_sdk_python.models import errors as sdk_errors
from ledger_stub import LedgerStub, ledger_stub
from oauth_servers import (
    JWT_BEARER_GRANT_TYPE,
    ConfidentialClient,
    FctlProfile,
    StackAuthServer,
    fctl_profile,
    membership_server,
    stack_oauth_client,
    stack_server,
)
from stacktoken import InvalidUsageError, TokenSource, formance_sdk

from conftest import CLI_TIMEOUT_SECONDS

__all__ = ["fctl_profile", "ledger_stub", "membership_server", "stack_oauth_client", "stack_server"]

ASYNC_TIMEOUT_SECONDS = 30
T = TypeVar("T")
KINDS = ["fctl_profile", "client_credentials"]


def _open_source(
    kind: str, tmp_path: Path, stack: StackAuthServer, request: pytest.FixtureRequest
) -> TokenSource:
    """A fresh source of `kind` over the test's one cache dir (a new process would make this)."""
    if kind == "fctl_profile":
        profile: FctlProfile = request.getfixturevalue("fctl_profile")
        return TokenSource.from_fctl(
            config_dir=profile.config_dir, cache_dir=tmp_path / "cache", environ={}
        )
    client: ConfidentialClient = request.getfixturevalue("stack_oauth_client")
    return TokenSource.from_client_credentials(
        stack_uri=stack.stack_uri,
        client_id=client.client_id,
        client_secret=client.client_secret,
        scopes=["ledger:read"],
        cache_dir=tmp_path / "cache",
        environ={},
    )


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def source(
    kind: str, tmp_path: Path, stack_server: StackAuthServer, request: pytest.FixtureRequest
) -> Iterator[TokenSource]:
    with _open_source(kind, tmp_path, stack_server, request) as opened:
        yield opened


def _issued(stack: StackAuthServer) -> list[str]:
    return [t.access_token for t in stack.issued_tokens]


def _token_requests(stack: StackAuthServer) -> int:
    return stack.count(stack.TOKEN)


def _assert_only_stacktoken_asked(stack: StackAuthServer, kind: str, requests: int) -> None:
    """`requests` token requests in all, each one stacktoken's, none the SDK hook's."""
    assert _token_requests(stack) == requests
    if kind == "fctl_profile":
        assert stack.count_grant(JWT_BEARER_GRANT_TYPE) == requests
        assert stack.client_credentials_count == 0
    else:
        methods = [r.auth_method for r in stack.client_credentials_requests]
        assert methods == ["client_secret_basic"] * requests


def _run(scenario: Callable[[], Awaitable[T]]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(scenario(), ASYNC_TIMEOUT_SECONDS)

    return asyncio.run(bounded())


# --------------------------------------------------------------------------- sync and async


def test_formance_sdk_sync_calls(
    kind: str, source: TokenSource, ledger_stub: LedgerStub, stack_server: StackAuthServer
) -> None:
    with formance_sdk(source) as sdk:
        assert sdk.sdk_configuration.security is None  # the SDK's hook has no credentials
        assert sdk.sdk_configuration.server_url == stack_server.stack_uri
        info = sdk.ledger.v2.get_info()
        page = sdk.ledger.v2.list_ledgers(request={"request_body": {}, "page_size": 5})
        assert page.v2_ledger_list_response is not None
        cursor = page.v2_ledger_list_response.cursor
        assert cursor.next is not None
        after = sdk.ledger.v2.list_ledgers(request={"request_body": {}, "cursor": cursor.next})
    assert info.v2_config_info is not None and info.v2_config_info.server == "ledger"
    assert after.v2_ledger_list_response is not None
    assert [ledger.name for ledger in after.v2_ledger_list_response.cursor.data] == [
        f"ledger-{i:03d}" for i in range(5, 10)
    ]
    assert ledger_stub.accepted == 3
    (token,) = _issued(stack_server)
    assert {call.token for call in ledger_stub.calls} == {token}
    _assert_only_stacktoken_asked(stack_server, kind, 1)


def test_formance_sdk_async_calls(
    kind: str, source: TokenSource, ledger_stub: LedgerStub, stack_server: StackAuthServer
) -> None:
    async def scenario() -> list[str]:
        async with formance_sdk(source) as sdk:
            info = await sdk.ledger.v2.get_info_async()
            assert info.v2_config_info is not None
            page = await sdk.ledger.v2.list_ledgers_async(request={"request_body": {}})
            assert page.v2_ledger_list_response is not None
            return [ledger.name for ledger in page.v2_ledger_list_response.cursor.data]

    names = _run(scenario)
    assert names == [f"ledger-{i:03d}" for i in range(15)]
    assert ledger_stub.accepted == 2
    _assert_only_stacktoken_asked(stack_server, kind, 1)


def test_formance_sdk_sync_and_async_share_the_source(
    kind: str, source: TokenSource, ledger_stub: LedgerStub, stack_server: StackAuthServer
) -> None:
    sdk = formance_sdk(source)
    assert sdk.ledger.v2.get_info().status_code == 200

    async def scenario() -> int:
        async with formance_sdk(source) as other:
            status: int = (await other.ledger.v2.get_info_async()).status_code
            return status

    assert _run(scenario) == 200
    with sdk:
        assert sdk.ledger.v2.get_info().status_code == 200
    assert ledger_stub.accepted == 3
    _assert_only_stacktoken_asked(stack_server, kind, 1)


def test_formance_sdk_next_process_reuses_the_cached_token(
    kind: str,
    source: TokenSource,
    ledger_stub: LedgerStub,
    stack_server: StackAuthServer,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """What the SDK's own hook cannot do: a second source (process) makes no token request."""
    with formance_sdk(source) as sdk:
        sdk.ledger.v2.get_info()
    with _open_source(kind, tmp_path, stack_server, request) as later, formance_sdk(later) as sdk:
        assert sdk.ledger.v2.get_info().status_code == 200
    _assert_only_stacktoken_asked(stack_server, kind, 1)
    assert ledger_stub.accepted == 2


# --------------------------------------------------------------------------- 401: drop, retry once


def _assert_dropped_and_replaced(
    kind: str,
    stack: StackAuthServer,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    first: str,
    second: str,
) -> None:
    """The rejected token is gone from memory and disk: a new source finds the new one."""
    assert second != first
    before = _token_requests(stack)
    with _open_source(kind, tmp_path, stack, request) as later:
        assert later.token() == second
    assert _token_requests(stack) == before


def test_formance_sdk_sync_401_drops_the_token_and_retries_once(
    kind: str,
    source: TokenSource,
    ledger_stub: LedgerStub,
    stack_server: StackAuthServer,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    with formance_sdk(source) as sdk:
        assert sdk.ledger.v2.get_info().status_code == 200
        ledger_stub.reject_next_valid_tokens(1)
        assert sdk.ledger.v2.get_info().status_code == 200
    first, second = _issued(stack_server)
    assert [(c.status, c.token) for c in ledger_stub.calls] == [
        (200, first),
        (401, first),
        (200, second),
    ]
    _assert_only_stacktoken_asked(stack_server, kind, 2)
    _assert_dropped_and_replaced(kind, stack_server, tmp_path, request, first, second)


def test_formance_sdk_async_401_drops_the_token_and_retries_once(
    kind: str,
    source: TokenSource,
    ledger_stub: LedgerStub,
    stack_server: StackAuthServer,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    async def scenario() -> list[int]:
        async with formance_sdk(source) as sdk:
            statuses = [(await sdk.ledger.v2.get_info_async()).status_code]
            ledger_stub.reject_next_valid_tokens(1)
            statuses.append((await sdk.ledger.v2.get_info_async()).status_code)
            return statuses

    assert _run(scenario) == [200, 200]
    first, second = _issued(stack_server)
    assert [(c.status, c.token) for c in ledger_stub.calls] == [
        (200, first),
        (401, first),
        (200, second),
    ]
    _assert_only_stacktoken_asked(stack_server, kind, 2)
    _assert_dropped_and_replaced(kind, stack_server, tmp_path, request, first, second)


def test_formance_sdk_async_concurrent_401s_cost_one_new_token(
    kind: str, source: TokenSource, ledger_stub: LedgerStub, stack_server: StackAuthServer
) -> None:
    """Twenty calls refused with the same token drop it once and share one new token."""

    async def scenario() -> list[int]:
        async with formance_sdk(source) as sdk:
            await sdk.ledger.v2.get_info_async()
            stack_server.revoke_issued_tokens()  # every call now gets 401 with the old token
            answers = await asyncio.gather(*(sdk.ledger.v2.get_info_async() for _ in range(20)))
            return [answer.status_code for answer in answers]

    assert _run(scenario) == [200] * 20
    _assert_only_stacktoken_asked(stack_server, kind, 2)
    assert ledger_stub.accepted == 21
    assert ledger_stub.unauthorized <= 20


def test_formance_sdk_gives_up_after_one_retry(
    kind: str, source: TokenSource, ledger_stub: LedgerStub, stack_server: StackAuthServer
) -> None:
    ledger_stub.reject_next_valid_tokens(3)
    with formance_sdk(source) as sdk, pytest.raises(sdk_errors.SDKBaseError) as raised:
        sdk.ledger.v2.get_info()
    assert raised.value.raw_response.status_code == 401
    assert ledger_stub.unauthorized == 2
    assert ledger_stub.pending_rejections == 1
    _assert_only_stacktoken_asked(stack_server, kind, 2)


# --------------------------------------------------------------------------- the function itself


@pytest.mark.parametrize("argument", ["security", "server_url", "client", "async_client"])
def test_formance_sdk_refuses_what_would_bypass_the_source(
    argument: str, source: TokenSource
) -> None:
    with pytest.raises(InvalidUsageError, match=argument):
        formance_sdk(source, **{argument: None})


def test_formance_sdk_passes_other_options_to_the_sdk(source: TokenSource) -> None:
    sdk = formance_sdk(source, timeout_ms=1234)
    assert isinstance(sdk, SDK)
    assert sdk.sdk_configuration.timeout_ms == 1234


def test_formance_sdk_context_managers_close_its_clients(source: TokenSource) -> None:
    sdk = formance_sdk(source)
    client, async_client = sdk.sdk_configuration.client, sdk.sdk_configuration.async_client
    assert isinstance(client, httpx.Client) and isinstance(async_client, httpx.AsyncClient)
    with sdk:
        pass
    assert client.is_closed and not async_client.is_closed

    async def close() -> None:
        async with sdk:
            pass

    asyncio.run(close())
    assert async_client.is_closed


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_SECONDS,
        check=False,
    )


def test_formance_sdk_import_loads_neither_the_sdk_nor_pydantic() -> None:
    run = _python(
        "import sys, stacktoken\n"
        "from stacktoken import formance_sdk, StackTokenAuth, TokenSource\n"
        "print(*sorted(sys.modules))"
    )
    assert run.returncode == 0, run.stderr
    modules = run.stdout.split()
    assert "stacktoken.shell._sdk" in modules  # the name did load
    assert [m for m in modules if m.split(".")[0] in ("formance_sdk_python", "pydantic")] == []


def test_formance_sdk_without_the_extra_says_how_to_install(fctl_profile: FctlProfile) -> None:
    # A finder that refuses the SDK stands in for an install without the extra.
    code = f"""
import sys
class NoSdk:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "formance_sdk_python":
            raise ModuleNotFoundError(f"No module named {{name!r}}")
sys.meta_path.insert(0, NoSdk())
from stacktoken import InvalidUsageError, TokenSource, formance_sdk
source = TokenSource.from_fctl(config_dir={str(fctl_profile.config_dir)!r}, environ={{}})
try:
    formance_sdk(source)
except InvalidUsageError as error:
    print(error)
"""
    run = _python(code)
    assert run.returncode == 0, run.stderr
    assert "pip install 'stacktoken[sdk]'" in run.stdout
    assert "Traceback" not in run.stderr


def test_formance_sdk_own_hook_would_have_asked_the_stack(
    ledger_stub: LedgerStub, stack_server: StackAuthServer, stack_oauth_client: ConfidentialClient
) -> None:
    """The control for `_assert_only_stacktoken_asked`: with `security`, the SDK asks
    itself, with client_secret_post, and a new SDK (process) asks again."""
    from formance_sdk_python.models import shared

    security = shared.Security(
        client_id=stack_oauth_client.client_id, client_secret=stack_oauth_client.client_secret
    )
    with httpx.Client() as http:
        SDK(server_url=ledger_stub.server_url, client=http, security=security).ledger.v2.get_info()
    methods = [r.auth_method for r in stack_server.client_credentials_requests]
    assert methods == ["client_secret_post"]


def test_formance_sdk_fctl_cache_file_holds_the_token(
    fctl_profile: FctlProfile,
    ledger_stub: LedgerStub,
    stack_server: StackAuthServer,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """fctl reads the token the SDK used, from the file it would have written itself."""
    with (
        _open_source("fctl_profile", tmp_path, stack_server, request) as source,
        formance_sdk(source) as sdk,
    ):
        sdk.ledger.v2.get_info()
    cached = json.loads(fctl_profile.api_token_cache_path.read_text())
    assert {call.token for call in ledger_stub.calls} == {cached["accessToken"]}
