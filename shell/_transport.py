"""The HTTP transport under `Http`: httpcore's connection pool (httpx's own
stack), one deadline per request, TLS set up only for https, loopback never
proxied (docs/design.md §5, §12).

- httpx bounds each connect, read and write, not a request: a server that
  drips its headers a byte at a time, within every read timeout, holds a run
  (and the stack's lock) for ever. Here a `NetworkBackend` of ours, httpcore's
  extension point, bounds every network operation by what is left of the
  request's deadline: connect, TLS, headers and body in one bound.
- HTTP/1.1 framing is h11's: a body cut short of its `Content-Length`, or
  conflicting lengths, are protocol errors and the connection is dropped. A
  response with both `Transfer-Encoding` and `Content-Length` (RFC 9112 section 6.3:
  a sign of response splitting), which h11 reads by the former, is refused here.
- httpx loads the CA bundle into an SSL context when a transport is made,
  though a run on plain http (loopback: the URL policy allows no other) never
  needs one; here the https context, with httpx's own CA rules
  (`SSL_CERT_FILE`, else `SSL_CERT_DIR`, else certifi), is made on first use,
  and CAs that cannot be loaded are a clear error, not a traceback.
- A proxy set in the environment would receive loopback traffic, tokens and
  all, in clear text; fctl's Go transport never proxies loopback, nor does
  this one. Other hosts go through `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY`
  unless `NO_PROXY` says otherwise, as with httpx.
"""

from __future__ import annotations

import os
import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx
from stacktoken.core._urls import is_loopback

__all__ = ["TlsSetupError", "Transport", "tls_context"]

_local = threading.local()  # `until`: the deadline of this thread's request in flight
# httpx's own pool limits; no cap on connections, so a request never waits for one.
_LIMITS: dict[str, Any] = {
    "max_connections": None,
    "max_keepalive_connections": 20,
    "keepalive_expiry": 5.0,
}


class TlsSetupError(httpx.TransportError):
    """The CA certificates for https could not be loaded."""


def _left(timeout: float | None, expired: type[Exception]) -> float | None:
    """The smaller of an operation's own timeout and what is left of the deadline."""
    until: float | None = getattr(_local, "until", None)
    if until is None:
        return timeout
    remaining = until - time.monotonic()
    if remaining <= 0:
        raise expired("the request's deadline passed")
    return remaining if timeout is None else min(timeout, remaining)


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
        bound = _left(timeout, httpcore.ConnectTimeout)
        return _BoundedStream(self._stream.start_tls(ssl_context, server_hostname, bound))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _BoundedBackend(httpcore.NetworkBackend):
    """httpcore's sync backend, each operation bounded by the request's deadline."""

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
        bound = _left(timeout, httpcore.ConnectTimeout)
        stream = self._backend.connect_tcp(host, port, bound, local_address, socket_options)
        return _BoundedStream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not used")

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


# httpcore's exceptions and httpx's, as httpx maps them (same names, public in both),
# the more specific first.
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


class _Body(httpx.SyncByteStream):
    """A response's body; closing it returns (or drops) the connection and ends the deadline."""

    def __init__(self, stream: Iterable[bytes]) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        with _as_httpx_errors():
            yield from self._stream

    def close(self) -> None:
        _local.until = None
        close = getattr(self._stream, "close", None)
        if close is not None:
            with _as_httpx_errors():
                close()


_Pool = httpcore.ConnectionPool | httpcore.HTTPProxy


class Transport(httpx.BaseTransport):
    """Routes each request to a pool: direct, or through the environment's proxy.
    Each request, body included, must be done within `total` seconds."""

    def __init__(self, *, total: float) -> None:
        self._total = total
        self._pools: dict[tuple[str, str | None], _Pool] = {}
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"unsupported scheme {url.scheme!r}")
        if url.scheme == "http" and not is_loopback(url.host):
            # The URL policy refused this already, by urllib's reading of the URL:
            # httpx's reading must agree before anything goes out in clear text.
            raise httpx.UnsupportedProtocol("plain http is for loopback hosts only")
        pool = self._pool(url.scheme, _proxy_for(url))
        _local.until = time.monotonic() + self._total
        try:
            with _as_httpx_errors():
                answer = pool.handle_request(
                    httpcore.Request(
                        method=request.method,
                        url=httpcore.URL(
                            scheme=url.raw_scheme,
                            host=url.raw_host,
                            port=url.port,
                            target=url.raw_path,
                        ),
                        headers=request.headers.raw,
                        content=request.stream,
                        extensions=request.extensions,
                    )
                )
            names = {name.lower() for name, _ in answer.headers}
            if b"transfer-encoding" in names and b"content-length" in names:
                answer.close()  # unread: the connection is dropped, not reused
                raise httpx.RemoteProtocolError(
                    "a response framed by both Transfer-Encoding and Content-Length"
                )
        except BaseException:
            _local.until = None
            raise
        assert isinstance(answer.stream, Iterable)  # a sync pool answers a sync stream
        return httpx.Response(
            status_code=answer.status,
            headers=answer.headers,
            stream=_Body(answer.stream),
            extensions=answer.extensions,
        )

    def _pool(self, scheme: str, proxy: str | None) -> _Pool:
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


def _make_pool(scheme: str, proxy: str | None) -> _Pool:
    # Plain http never handshakes: no context, so no CA bundle is loaded.
    context = tls_context() if scheme == "https" else None
    if proxy is None:
        return httpcore.ConnectionPool(
            ssl_context=context, network_backend=_BoundedBackend(), **_LIMITS
        )
    parsed = httpx.URL(proxy)
    if parsed.scheme not in ("http", "https"):
        raise httpx.ProxyError(f"unsupported proxy scheme {parsed.scheme!r} (http and https are)")
    return httpcore.HTTPProxy(
        proxy_url=httpcore.URL(
            scheme=parsed.raw_scheme, host=parsed.raw_host, port=parsed.port, target=parsed.raw_path
        ),
        proxy_auth=(parsed.username, parsed.password) if parsed.username else None,
        ssl_context=context,
        # Our CA rules for an https proxy too (httpcore's default is certifi alone).
        proxy_ssl_context=tls_context() if parsed.scheme == "https" else None,
        network_backend=_BoundedBackend(),
        **_LIMITS,
    )


def tls_context() -> ssl.SSLContext:
    """httpx's own CA rules, with a clear error when they cannot be followed.

    The context always verifies (`ssl.create_default_context`); a CA directory
    that does not exist would load nothing and trust no server, silently: it is
    named instead, as a CA file that cannot be read is.
    """
    cafile, capath = os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")
    source = (
        f"SSL_CERT_FILE={cafile!r}"
        if cafile
        else f"SSL_CERT_DIR={capath!r}"
        if capath
        else "the CA bundle"
    )
    if not cafile and capath and not os.path.isdir(capath):
        raise TlsSetupError(f"cannot load the CA certificates from {source}: not a directory")
    try:
        return httpx.create_ssl_context(verify=True, trust_env=True)
    except (OSError, ssl.SSLError) as error:
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
