"""The HTTP transport under `Http`: one deadline per request, TLS set up only
for https, loopback never proxied (issue 15 #2, #5; DESIGN §5, §12).

- httpx bounds each connect, read and write, not a request: a server that
  drips its headers a byte at a time, within every read timeout, holds a run
  (and the stack's lock) for ever. Here every network operation is bounded by
  what is left of the request's deadline (`deadline`), headers included.
- httpx loads the CA bundle into an SSL context when a client is made (about
  40 ms), though a run on plain http (loopback: the URL policy allows no
  other) never needs one; here the https pool, with httpx's own CA rules
  (`SSL_CERT_FILE`, `SSL_CERT_DIR`, else certifi), is made on first use, and
  a CA file that cannot be loaded is a clear error, not a traceback.
- A proxy set in the environment would receive loopback traffic, tokens and
  all, in clear text; fctl's Go transport never proxies loopback, nor does
  this one. Other hosts go through `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY`
  unless `NO_PROXY` says otherwise, as with httpx.

Built on httpcore's public API (a connection pool with a network backend),
which httpx itself uses; imported on the cold path only.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx
from stacktoken.core import is_loopback

__all__ = ["TlsSetupError", "Transport", "deadline"]

_local = threading.local()


class TlsSetupError(httpx.TransportError):
    """The CA certificates for https could not be loaded."""


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Bound every network operation of this thread's next request by `seconds` in all."""
    _local.until = time.monotonic() + seconds
    try:
        yield
    finally:
        _local.until = None


def _left(timeout: float | None, expired: type[Exception]) -> float | None:
    """The smaller of an operation's own timeout and what is left of the deadline."""
    until: float | None = getattr(_local, "until", None)
    if until is None:
        return timeout
    left = until - time.monotonic()
    if left <= 0:
        raise expired("the request's deadline passed")
    return left if timeout is None else min(timeout, left)


class _BoundedStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        return _BoundedStream(
            self._stream.start_tls(
                ssl_context, server_hostname, _left(timeout, httpcore.ConnectTimeout)
            )
        )

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _BoundedBackend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._backend = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        return _BoundedStream(
            self._backend.connect_tcp(
                host, port, _left(timeout, httpcore.ConnectTimeout), local_address, socket_options
            )
        )

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not used")

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


# httpcore's exceptions and httpx's, as httpx maps them (same names, public in both).
_EXCEPTIONS: tuple[tuple[type[Exception], type[httpx.HTTPError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextmanager
def _as_httpx_errors() -> Iterator[None]:
    try:
        yield
    except Exception as error:
        for theirs, ours in _EXCEPTIONS:
            if isinstance(error, theirs):
                raise ours(str(error)) from error
        raise


class _ResponseStream(httpx.SyncByteStream):
    def __init__(self, stream: Iterable[bytes]) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        with _as_httpx_errors():
            yield from self._stream

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


class Transport(httpx.BaseTransport):
    """Routes each request to a pool: direct, or through the environment's proxy."""

    def __init__(self) -> None:
        self._pools: dict[tuple[str, str | None], httpcore.ConnectionPool | httpcore.HTTPProxy] = {}
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        pool = self._pool(url.scheme, _proxy_for(url))
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _as_httpx_errors():
            answer = pool.handle_request(core_request)
        assert isinstance(answer.stream, Iterable)  # a sync pool answers a sync stream
        return httpx.Response(
            status_code=answer.status,
            headers=answer.headers,
            stream=_ResponseStream(answer.stream),
            extensions=answer.extensions,
        )

    def _pool(self, scheme: str, proxy: str | None) -> httpcore.ConnectionPool | httpcore.HTTPProxy:
        with self._lock:
            found = self._pools.get((scheme, proxy))
            if found is None:
                found = self._pools[(scheme, proxy)] = _make_pool(scheme, proxy)
            return found

    def close(self) -> None:
        with self._lock:
            for pool in self._pools.values():
                pool.close()
            self._pools.clear()


def _make_pool(scheme: str, proxy: str | None) -> httpcore.ConnectionPool | httpcore.HTTPProxy:
    context = _tls_context() if scheme == "https" or (proxy or "").startswith("https:") else None
    # Never used for TLS, as no https URL is routed to it: a bare context, so no CA
    # bundle is loaded (were it ever asked to handshake, it would trust no one).
    bare = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if proxy is None:
        return httpcore.ConnectionPool(
            ssl_context=context or bare, network_backend=_BoundedBackend()
        )
    parsed = httpx.URL(proxy)
    if parsed.scheme not in ("http", "https"):
        raise httpx.ProxyError(f"unsupported proxy scheme {parsed.scheme!r} (http and https are)")
    return httpcore.HTTPProxy(
        proxy_url=httpcore.URL(
            scheme=parsed.raw_scheme, host=parsed.raw_host, port=parsed.port, target=parsed.raw_path
        ),
        proxy_auth=(parsed.username, parsed.password) if parsed.username else None,
        ssl_context=context or bare,
        network_backend=_BoundedBackend(),
    )


def _tls_context() -> ssl.SSLContext:
    """httpx's own CA rules, with a clear error when they cannot be followed."""
    import os

    try:
        return httpx.create_ssl_context(verify=True, trust_env=True)
    except (OSError, ssl.SSLError) as error:
        source = next(
            (
                f"{name}={os.environ[name]!r}"
                for name in ("SSL_CERT_FILE", "SSL_CERT_DIR")
                if os.environ.get(name)
            ),
            "the CA bundle",
        )
        reason = getattr(error, "strerror", None) or type(error).__name__
        raise TlsSetupError(f"cannot load the CA certificates from {source}: {reason}") from error


def _proxy_for(url: httpx.URL) -> str | None:
    """The environment's proxy for `url`, None for a direct connection (loopback always)."""
    host = url.host
    if is_loopback(host):
        return None
    from urllib.request import getproxies_environment, proxy_bypass

    if proxy_bypass(host):  # NO_PROXY (on macOS and Windows, the system's settings too)
        return None
    proxies = getproxies_environment()
    found = proxies.get(url.scheme) or proxies.get("all")
    if not found:
        return None
    return found if "://" in found else f"http://{found}"
