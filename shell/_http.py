"""HTTP on httpx: timeouts, bounded jittered retries, capped bodies, no redirects.

One `Http` per token source holds one `httpx.Client`, created on the first
request so that a warm run never imports httpx. Every request goes through
the URL policy (https, or http on loopback) first; retry decisions are core's
`retry_delay`. Redirects are never followed: a token endpoint that redirects
a POST would replay credentials to wherever it points (docs/design.md §5), and a
discovery document must be served at its own issuer's URL (RFC 8414 section 3.3).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING
from weakref import WeakSet

from returns.result import Failure, Result, Success
from stacktoken.core._errors import RemoteError
from stacktoken.core._record import Record, secret
from stacktoken.core._requests import RETRYABLE_STATUSES, RetryPolicy, retry_delay
from stacktoken.core._time import datetime
from stacktoken.core._types import TokenRequest
from stacktoken.core._urls import endpoint_url_refusal, safe_url

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


class _UnknownEncoding(Exception):
    """The answer is encoded in a way we did not ask for and cannot undo safely."""


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
        _ALL.add(self)

    def _after_fork(self) -> None:
        """In a forked child: the pooled connections are the parent's sockets too (a
        request on one would interleave with the parent's on the same stream, and
        either could read the other's answer), and a lock may be held by a thread the
        child does not have. Drop the client unclosed (closing takes its pool's lock;
        the child's descriptors close with it) and start a new one on the next request."""
        self._client_lock = threading.Lock()
        self._client = None

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
        if (refusal := endpoint_url_refusal(url)) is not None:
            return Failure(refusal)
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
        from ._transport import TlsSetupError

        started = time.perf_counter()
        try:
            with self._http_client().stream(
                method, url, data=dict(form) if form else None, headers=dict(headers)
            ) as response:
                body = self._read_capped(response)
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
        except _UnknownEncoding as error:
            self._log(f"{where} -> {error}")
            return Failure(RemoteError(message=f"{where} answered {error}")), None, True
        except TlsSetupError as error:
            self._log(f"{where} -> {error}")
            return Failure(RemoteError(message=f"{where}: {error}")), None, False
        except httpx.ConnectTimeout:
            self._log(f"{where} -> connecting timed out")
            return Failure(RemoteError(message=f"{where} timed out", transient=True)), None, False
        except httpx.TimeoutException:
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

    def _read_capped(self, response: httpx.Response) -> bytes:
        """The body, within the size cap before and after decompression. Not httpx's
        `iter_bytes`: its decoders inflate each chunk whole, so a capped stream sees a
        590-byte `gzip, gzip` answer only once it is 256 MiB in memory (and it decodes
        codings we never asked for). The transport's deadline bounds every read, so a
        dripping body ends too."""
        limit = self._policy.max_body_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise _BodyTooLarge
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_raw():
            size += len(chunk)
            if size > limit:
                raise _BodyTooLarge
            chunks.append(chunk)
        return _decoded(b"".join(chunks), response.headers.get("content-encoding", ""), limit)

    def _http_client(self) -> httpx.Client:
        import httpx

        with self._client_lock:
            if self._client is None:
                from ._transport import Transport

                self._client = httpx.Client(
                    timeout=self._policy.timeout,
                    follow_redirects=False,
                    headers={
                        "Accept": "application/json",
                        "Accept-Encoding": "identity",
                        "User-Agent": "stacktoken",
                    },
                    transport=Transport(total=self._policy.timeout),
                    trust_env=False,  # the transport applies proxies, never to loopback
                )
            return self._client


def _decoded(body: bytes, content_encoding: str, limit: int) -> bytes:
    """Undo `Content-Encoding` (gzip, deflate; applied left to right, so undone right
    to left), never producing more than `limit` bytes at any step."""
    import zlib

    for coding in reversed([part.strip().lower() for part in content_encoding.split(",")]):
        if coding in ("", "identity"):
            continue
        if coding not in ("gzip", "x-gzip", "deflate"):
            raise _UnknownEncoding(f"with a content encoding it was not asked for: {coding!r}")
        wbits = 16 + zlib.MAX_WBITS if coding != "deflate" else zlib.MAX_WBITS
        try:
            inflater = zlib.decompressobj(wbits)
            body = inflater.decompress(body, limit + 1)
        except zlib.error as error:
            raise _UnknownEncoding(f"with a corrupt {coding} body") from error
        if len(body) > limit or inflater.unconsumed_tail:
            raise _BodyTooLarge
    return body


def _worth_retrying(outcome: Result[HttpAnswer, RemoteError], status_code: int | None) -> bool:
    if status_code is not None:
        return status_code in RETRYABLE_STATUSES
    return isinstance(outcome, Failure) and outcome.failure().transient


_ALL: WeakSet[Http] = WeakSet()


def _reset_after_fork() -> None:
    for http in list(_ALL):
        http._after_fork()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_reset_after_fork)
