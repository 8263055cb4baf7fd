"""The child processes of the SDK sections of benchmarks/run.py (a scratch interpreter runs them).

python _sdk_child.py call own|stacktoken CONFIG_JSON
    one SDK call (`ledger.v2.get_info()`), as a short-lived process does:
    `own` gives the SDK its `security` (its own client-credentials hook),
    `stacktoken` uses `formance_sdk` on a client-credentials TokenSource
    (tokens cached under the config's `cache_dir`, shared by every process).
python _sdk_child.py overhead CONFIG_JSON NUMBER REPEAT
    per-call time (µs) of the same GET with a bare bearer header and with
    `StackTokenAuth` on a warm source, sync and async, to the loopback stub
    and to an in-process `httpx.MockTransport` (no network: the auth's own
    cost shows); alternating rounds, printed as JSON.

CONFIG_JSON holds `stack_uri`, `client_id`, `cache_dir` and `info_url`; the
client secret comes from the environment (`BENCH_SDK_CLIENT_SECRET`), never
from argv. tests/test_sdk_requests.py runs `call` too, to check the request
counts the benchmark reports.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

SECRET_VARIABLE = "BENCH_SDK_CLIENT_SECRET"


def _secret() -> str:
    return os.environ[SECRET_VARIABLE]


def _client_source(config: dict[str, Any]) -> Any:
    from stacktoken import TokenSource

    return TokenSource.from_client_credentials(
        stack_uri=config["stack_uri"],
        client_id=config["client_id"],
        client_secret=_secret(),
        cache_dir=config["cache_dir"],
        environ={},
    )


def call(kind: str, config: dict[str, Any]) -> None:
    if kind == "own":
        from formance_sdk_python import SDK
        from formance_sdk_python.models import shared

        security = shared.Security(client_id=config["client_id"], client_secret=_secret())
        with SDK(server_url=config["stack_uri"], security=security) as sdk:
            status = sdk.ledger.v2.get_info().status_code
    elif kind == "stacktoken":
        from stacktoken import formance_sdk

        with _client_source(config) as source, formance_sdk(source) as sdk:
            status = sdk.ledger.v2.get_info().status_code
    else:
        raise SystemExit(f"unknown kind {kind!r}: own or stacktoken")
    if status != 200:
        raise SystemExit(f"status {status}")


def _answer(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"server": "ledger", "version": "mock"})


def overhead(config: dict[str, Any], number: int, repeat: int) -> dict[str, list[float]]:
    from stacktoken import StackTokenAuth

    source = _client_source(config)
    token = source.token()  # warm: from here on, in memory
    url = config["info_url"]
    bearer = {"Authorization": f"Bearer {token}"}
    auth = StackTokenAuth(source)
    mock = httpx.MockTransport(_answer)
    sync_cases: dict[str, httpx.Client] = {
        "sync, loopback stub, bearer header": httpx.Client(headers=bearer),
        "sync, loopback stub, StackTokenAuth": httpx.Client(auth=auth),
        "sync, MockTransport, bearer header": httpx.Client(headers=bearer, transport=mock),
        "sync, MockTransport, StackTokenAuth": httpx.Client(auth=auth, transport=mock),
    }
    rounds: dict[str, list[float]] = {label: [] for label in sync_cases}

    def timed_sync(client: httpx.Client) -> float:
        started = time.perf_counter()
        for _ in range(number):
            client.get(url).raise_for_status()
        return (time.perf_counter() - started) / number * 1e6

    async def run_async() -> None:
        import anyio.to_thread

        async_cases: dict[str, httpx.AsyncClient] = {
            "async, loopback stub, bearer header": httpx.AsyncClient(headers=bearer),
            "async, loopback stub, StackTokenAuth": httpx.AsyncClient(auth=auth),
            "async, MockTransport, bearer header": httpx.AsyncClient(
                headers=bearer, transport=mock
            ),
            "async, MockTransport, StackTokenAuth": httpx.AsyncClient(auth=auth, transport=mock),
        }
        calls: dict[str, Callable[[], Awaitable[object]]] = {
            # What the async flow awaits for a token: the fast path, against
            # what it did before (a worker thread per call).
            "await source.token_async()": source.token_async,
            "await anyio.to_thread.run_sync(source.token)": lambda: anyio.to_thread.run_sync(
                source.token
            ),
        }
        for label in [*async_cases, *calls]:
            rounds[label] = []

        async def timed_async(send: Callable[[], Awaitable[object]]) -> float:
            started = time.perf_counter()
            for _ in range(number):
                await send()
            return (time.perf_counter() - started) / number * 1e6

        for _ in range(repeat + 1):  # the first round warms up, not counted
            for label, client in sync_cases.items():
                rounds[label].append(timed_sync(client))
            for label, aclient in async_cases.items():

                async def get(c: httpx.AsyncClient = aclient) -> None:
                    (await c.get(url)).raise_for_status()

                rounds[label].append(await timed_async(get))
            for label, function in calls.items():
                rounds[label].append(await timed_async(function))

    asyncio.run(run_async())
    return {label: values[1:] for label, values in rounds.items()}


def main(argv: list[str]) -> None:
    mode, config = argv[0], json.loads(argv[2] if argv[0] == "call" else argv[1])
    if mode == "call":
        call(argv[1], config)
    else:
        print(json.dumps(overhead(config, int(argv[2]), int(argv[3]))))


if __name__ == "__main__":
    main(sys.argv[1:])
