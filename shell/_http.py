"""HTTP on httpx: timeouts, bounded jittered retries, capped bodies, no redirects.

One `Http` per token source holds one `httpx.Client`, created on the first
request so that a warm run never imports httpx. Every request goes through
the URL policy (https, or http on loopback) first; retry decisions are core's
`retry_delay`. Redirects are never followed: a token endpoint that redirects
a POST would replay credentials to wherever it points (DESIGN §5), and a
discovery document must be served at its own issuer's URL (RFC 8414 §3.3).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from returns.result import Failure, Result, Success
from stacktoken.core import (
    RETRYABLE_STATUSES,
    Record,
    RemoteError,
    RetryPolicy,
    TokenRequest,
    check_endpoint_url,
    retry_delay,
    safe_url,
    secret,
)
from stacktoken.core._time import datetime

if TYPE_CHECKING:
    import httpx

_Form = tuple[tuple[str, str], ...]

__all__ = ["Http", "HttpAnswer", "HttpPolicy"]


class HttpPolicy(Record):
    """Limits of every request.

    `timeout` (seconds) bounds each connect, read and write, and also the time
    from sending a request to having its whole body.
    """

    timeout: float = 10.0
    max_body_bytes: int = 1 << 20
    retry: RetryPolicy = RetryPolicy()


class HttpAnswer(Record):
    """A response read whole (within the cap); `sent_at` is taken before sending."""

    status_code: int
    body: bytes = secret()
    cache_control: str | None
    sent_at: datetime


class _BodyTooLarge(Exception):
    pass


class _TooSlow(Exception):
    """The body kept coming, but too slowly to finish within the timeout."""


class Http:
    """Sends requests for one token source; thread-safe."""

    def __init__(
        self,
        *,
        policy: HttpPolicy,
        clock: Callable[[], datetime],
        log: Callable[[str], None],
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._policy = policy
        self._clock = clock
        self._log = log
        self._sleep = sleep
        self._jitter = jitter
        self._client: httpx.Client | None = None
        self._client_lock = threading.Lock()

    def get(self, url: str) -> Result[HttpAnswer, RemoteError]:
        """GET `url`, retrying transient failures."""
        return self._send("GET", url, None, (), replayable=True)

    def post(self, request: TokenRequest) -> Result[HttpAnswer, RemoteError]:
        """POST a token request's urlencoded form, retrying transient failures
        (a request that is not replayable only when the server cannot have acted)."""
        return self._send(
            "POST", request.url, request.form, request.headers, replayable=request.replayable
        )

    def close(self) -> None:
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _send(
        self,
        method: str,
        url: str,
        form: _Form | None,
        headers: _Form,
        *,
        replayable: bool,
    ) -> Result[HttpAnswer, RemoteError]:
        refused = check_endpoint_url(url)
        if isinstance(refused, RemoteError):
            return Failure(refused)
        attempt = 0
        while True:
            outcome, retry_after, sent = self._attempt(method, url, form, headers)
            answer = outcome.value_or(None)
            status_code = answer.status_code if answer is not None else None
            if not _worth_retrying(outcome, status_code):
                return outcome
            delay = retry_delay(
                self._policy.retry,
                attempt=attempt,
                status_code=status_code,
                sent=sent,
                replayable=replayable,
                retry_after=retry_after,
                jitter=self._jitter(),
            )
            if delay is None:
                return outcome
            self._log(f"retrying {method} {safe_url(url)} in {delay:.2f}s")
            self._sleep(delay)
            attempt += 1

    def _attempt(
        self, method: str, url: str, form: _Form | None, headers: _Form
    ) -> tuple[Result[HttpAnswer, RemoteError], str | None, bool]:
        """One try: its outcome, the `Retry-After` it carried, and whether the
        request may have reached the server (False: no connection was made)."""
        import httpx

        where = f"{method} {safe_url(url)}"
        sent_at = self._clock()
        started = time.perf_counter()
        try:
            with self._http_client().stream(
                method, url, data=dict(form) if form else None, headers=dict(headers)
            ) as response:
                body = self._read_capped(response, deadline=started + self._policy.timeout)
                elapsed = time.perf_counter() - started
                self._log(f"{where} -> {response.status_code} in {elapsed * 1000:.0f} ms")
                answer = HttpAnswer(
                    status_code=response.status_code,
                    body=body,
                    cache_control=response.headers.get("cache-control"),
                    sent_at=sent_at,
                )
                return Success(answer), response.headers.get("retry-after"), True
        except _BodyTooLarge:
            self._log(f"{where} -> body over {self._policy.max_body_bytes} bytes")
            return (
                Failure(RemoteError(message=f"{where} answered with a body over the size limit")),
                None,
                True,
            )
        except httpx.ConnectTimeout:
            self._log(f"{where} -> connecting timed out")
            return Failure(RemoteError(message=f"{where} timed out", transient=True)), None, False
        except (httpx.TimeoutException, _TooSlow):
            self._log(f"{where} -> timed out")
            return Failure(RemoteError(message=f"{where} timed out", transient=True)), None, True
        except httpx.ConnectError:
            self._log(f"{where} -> connection failed")
            return (
                Failure(
                    RemoteError(
                        message=f"{where}: cannot connect", transient=True, endpoint_gone=True
                    )
                ),
                None,
                False,
            )
        except (httpx.InvalidURL, UnicodeError) as error:
            # A URL that passed `check_endpoint_url` but that httpx or IDNA refuses
            # (control characters, bad labels): the document that named it is no good.
            # (A form value outside UTF-8 lands here too; the type alone is logged.)
            self._log(f"{where} -> cannot be sent: {type(error).__name__}")
            return (
                Failure(
                    RemoteError(
                        message=f"{where}: cannot be sent (invalid URL)", endpoint_gone=True
                    )
                ),
                None,
                False,
            )
        except httpx.HTTPError as error:
            self._log(f"{where} -> {type(error).__name__}")
            return (
                Failure(
                    RemoteError(message=f"{where} failed: {type(error).__name__}", transient=True)
                ),
                None,
                True,
            )

    def _read_capped(self, response: httpx.Response, *, deadline: float) -> bytes:
        # httpx's timeout bounds each read, not the whole body: a server dripping
        # a byte at a time would hold the stack's lock for ever without `deadline`.
        limit = self._policy.max_body_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise _BodyTooLarge
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > limit:
                raise _BodyTooLarge
            if time.perf_counter() > deadline:
                raise _TooSlow
            chunks.append(chunk)
        return b"".join(chunks)

    def _http_client(self) -> httpx.Client:
        import httpx

        with self._client_lock:
            if self._client is None:
                self._client = httpx.Client(
                    timeout=self._policy.timeout,
                    follow_redirects=False,
                    headers={"Accept": "application/json", "User-Agent": "stacktoken"},
                    transport=_transport_by_scheme(),
                )
            return self._client


def _transport_by_scheme() -> httpx.BaseTransport:
    """http and https each on a transport of its own, made on first use.

    httpx's default transport loads the CA bundle into an SSL context when the
    client is made (about 40 ms, benchmarks/RESULTS.md), though a run on
    plain http (loopback: the URL policy allows no other) never needs it.
    The https transport is httpx's default, certificates verified as ever.
    """
    import ssl

    import httpx

    class ByScheme(httpx.BaseTransport):
        def __init__(self) -> None:
            self._transports: dict[str, httpx.BaseTransport] = {}
            self._lock = threading.Lock()

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            return self._for(request.url.scheme).handle_request(request)

        def _for(self, scheme: str) -> httpx.BaseTransport:
            with self._lock:
                if scheme not in self._transports:
                    if scheme == "http":
                        # Never used for TLS: only http URLs are routed here. A bare
                        # context, so no CA bundle is loaded (it would verify, not trust,
                        # were it ever asked to handshake: no CA, every peer refused).
                        bare = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                        self._transports[scheme] = httpx.HTTPTransport(verify=bare)
                    else:
                        self._transports[scheme] = httpx.HTTPTransport()
                return self._transports[scheme]

        def close(self) -> None:
            with self._lock:
                for transport in self._transports.values():
                    transport.close()
                self._transports.clear()

    return ByScheme()


def _worth_retrying(outcome: Result[HttpAnswer, RemoteError], status_code: int | None) -> bool:
    if status_code is not None:
        return status_code in RETRYABLE_STATUSES
    return isinstance(outcome, Failure) and outcome.failure().transient
