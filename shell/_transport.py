"""The HTTP transport under `Http`: one deadline per request, TLS set up only
for https, loopback never proxied (issue 15 #2, #5; DESIGN §5, §12).

- httpx bounds each connect, read and write, not a request: a server that
  drips its headers a byte at a time, within every read timeout, holds a run
  (and the stack's lock) for ever. Here every network operation is bounded by
  what is left of the request's deadline (`deadline`), headers included.
- httpx loads the CA bundle into an SSL context when a client is made (about
  40 ms), though a run on plain http (loopback: the URL policy allows no
  other) never needs one; here the https context, with httpx's own CA rules
  (`SSL_CERT_FILE`, `SSL_CERT_DIR`, else certifi), is made on first use, and
  a CA file that cannot be loaded is a clear error, not a traceback.
- A proxy set in the environment would receive loopback traffic, tokens and
  all, in clear text; fctl's Go transport never proxies loopback, nor does
  this one. Other hosts go through `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY`
  unless `NO_PROXY` says otherwise, as with httpx.
- A direct request goes over the standard library's `http.client`, which
  `import httpx` has loaded already (through `urllib.request`): httpcore, h11
  and anyio would cost a quarter of `import httpx` more on every cold run
  (DESIGN §12; benchmarks/RESULTS.md). Connections are kept alive and reused,
  one request at a time each, as httpcore's pool does. A request through a
  proxy goes through httpcore (`_proxy`), imported then only.
"""

from __future__ import annotations

import http.client
import io
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import httpx
from stacktoken.core._urls import is_loopback

if TYPE_CHECKING:
    from ._proxy import ProxyRoute

__all__ = ["TlsSetupError", "Transport", "deadline", "left"]

_local = threading.local()
_CHUNK = 64 * 1024


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


def left(timeout: float | None, expired: type[Exception]) -> float | None:
    """The smaller of an operation's own timeout and what is left of the deadline."""
    until: float | None = getattr(_local, "until", None)
    if until is None:
        return timeout
    remaining = until - time.monotonic()
    if remaining <= 0:
        raise expired("the request's deadline passed")
    return remaining if timeout is None else min(timeout, remaining)


class _Timeouts:
    """A request's own timeouts (httpx's `timeout` extension), per operation."""

    def __init__(self, extensions: dict[str, Any]) -> None:
        given = extensions.get("timeout") or {}
        self.connect: float | None = given.get("connect")
        self.read: float | None = given.get("read")
        self.write: float | None = given.get("write")


class _Reader(io.RawIOBase):
    """The raw reader `http.client` reads a response from: each read bounded."""

    def __init__(self, owner: _BoundedSocket) -> None:
        super().__init__()
        self._owner = owner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        sock = self._owner.raw
        sock.settimeout(left(self._owner.timeouts.read, httpx.ReadTimeout))
        try:
            return sock.recv_into(buffer)
        except TimeoutError as error:
            raise httpx.ReadTimeout("timed out reading") from error
        except OSError as error:
            raise httpx.ReadError(str(error)) from error

    def close(self) -> None:
        if not self.closed:
            super().close()
            self._owner.release()


class _BoundedSocket:
    """What `http.client` sees as its socket: every write and read bounded. As with a
    socket's `makefile`, the descriptor is closed once the socket and every reader are."""

    def __init__(self, sock: socket.socket, timeouts: _Timeouts) -> None:
        self.raw = sock
        self.timeouts = timeouts
        self._readers = 0
        self._closed = False

    def sendall(self, data: Any) -> None:
        self.raw.settimeout(left(self.timeouts.write, httpx.WriteTimeout))
        try:
            self.raw.sendall(data)
        except TimeoutError as error:
            raise httpx.WriteTimeout("timed out writing") from error
        except OSError as error:
            raise httpx.WriteError(str(error)) from error

    def makefile(self, mode: str, *_: Any, **__: Any) -> io.BufferedReader:
        self._readers += 1
        return io.BufferedReader(_Reader(self), _CHUNK)

    def release(self) -> None:
        self._readers -= 1
        if self._closed and self._readers == 0:
            self.raw.close()

    def close(self) -> None:
        self._closed = True
        if self._readers == 0:
            self.raw.close()


class _Connection(http.client.HTTPConnection):
    """One connection to one origin, over TLS when a context is given."""

    def __init__(self, host: str, port: int, context: ssl.SSLContext | None) -> None:
        super().__init__(host, port)
        self._context = context
        self.timeouts = _Timeouts({})
        self.bounded: _BoundedSocket | None = None

    def connect(self) -> None:
        try:
            # The host as bytes (httpx's `raw_host`, IDNA-encoded already): a str
            # would have `getaddrinfo` load the idna codec, for nothing. Typeshed
            # admits only str hosts; CPython's getaddrinfo takes bytes too.
            address: tuple[Any, int] = (self.host.encode("ascii"), self.port)
            sock = socket.create_connection(
                address,
                left(self.timeouts.connect, httpx.ConnectTimeout),
            )
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._context is not None:
                sock.settimeout(left(self.timeouts.connect, httpx.ConnectTimeout))
                sock = self._context.wrap_socket(sock, server_hostname=self.host)
        except TimeoutError as error:
            raise httpx.ConnectTimeout("timed out connecting") from error
        except OSError as error:  # refused, unreachable, name unknown, TLS refused
            raise httpx.ConnectError(str(error) or type(error).__name__) from error
        self.bounded = _BoundedSocket(sock, self.timeouts)
        self.sock = self.bounded

    def bound_by(self, timeouts: _Timeouts) -> None:
        """The next request's timeouts, for its connect, writes and reads."""
        self.timeouts = timeouts
        if self.bounded is not None:
            self.bounded.timeouts = timeouts

    def idle_and_open(self) -> bool:
        """Reusable: connected, and the server has neither closed nor sent anything."""
        if self.bounded is None or self.sock is None:
            return False
        import select

        if not hasattr(select, "poll"):  # Windows: select() has no descriptor limit there
            readable, _, _ = select.select([self.bounded.raw], [], [], 0)
            return not readable
        # poll(), not select(): a service with 1024 files open has descriptors
        # select() refuses. Any event (data, hang-up, error) means not reusable.
        poller = select.poll()
        poller.register(self.bounded.raw, select.POLLIN)
        return not poller.poll(0)


class _Body(httpx.SyncByteStream):
    """A response's body; the connection goes back to its pool once read whole."""

    def __init__(self, answer: http.client.HTTPResponse, done: Any) -> None:
        self._answer = answer
        self._done = done
        self._whole = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            while chunk := self._answer.read(_CHUNK):
                yield chunk
        except http.client.HTTPException as error:
            raise httpx.RemoteProtocolError(type(error).__name__) from error
        self._whole = True

    def close(self) -> None:
        done, self._done = self._done, None
        if done is not None:
            done(self._whole and not self._answer.will_close)


class _Direct:
    """Connections to one origin, without a proxy: idle ones are reused."""

    def __init__(self, scheme: str, host: str, port: int) -> None:
        self._scheme, self._host, self._port = scheme, host, port
        self._idle: list[_Connection] = []
        self._context: ssl.SSLContext | None = None  # made on the first https connection
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        connection = self._take()
        connection.bound_by(_Timeouts(request.extensions))
        try:
            answer = self._exchange(connection, request)
        except BaseException:
            connection.close()
            raise

        def done(reusable: bool) -> None:
            if reusable:
                with self._lock:
                    self._idle.append(connection)
            else:
                connection.close()

        return httpx.Response(
            status_code=answer.status,
            headers=[
                (name.encode("latin-1"), value.encode("latin-1"))
                for name, value in answer.getheaders()
            ],
            stream=_Body(answer, done),
            extensions={"http_version": b"HTTP/1.1"},
        )

    @staticmethod
    def _exchange(connection: _Connection, request: httpx.Request) -> http.client.HTTPResponse:
        url = request.url
        body = request.read()
        try:
            connection.putrequest(
                request.method,
                url.raw_path.decode("ascii"),
                skip_host=True,
                skip_accept_encoding=True,
            )
            for name, value in request.headers.raw:
                connection.putheader(name.decode("latin-1"), value.decode("latin-1"))
            connection.endheaders(body or None)
            return connection.getresponse()
        except http.client.HTTPException as error:
            raise httpx.RemoteProtocolError(type(error).__name__) from error
        except ValueError as error:  # a header http.client refuses to send
            raise httpx.LocalProtocolError(str(error)) from error

    def _take(self) -> _Connection:
        with self._lock:
            while self._idle:
                found = self._idle.pop()
                if found.idle_and_open():
                    return found
                found.close()
            if self._scheme == "https" and self._context is None:
                self._context = _tls_context()
        return _Connection(self._host, self._port, self._context)

    def close(self) -> None:
        with self._lock:
            for connection in self._idle:
                connection.close()
            self._idle.clear()


class Transport(httpx.BaseTransport):
    """Routes each request: direct, or through the environment's proxy."""

    def __init__(self) -> None:
        self._routes: dict[tuple[str, str, int, str | None], _Direct | ProxyRoute] = {}
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"unsupported scheme {url.scheme!r}")
        return self._route(url, _proxy_for(url)).handle_request(request)

    def _route(self, url: httpx.URL, proxy: str | None) -> _Direct | ProxyRoute:
        port = url.port or (443 if url.scheme == "https" else 80)
        host = url.raw_host.decode("ascii")
        key = (url.scheme, host, port, proxy)
        with self._lock:
            found = self._routes.get(key)
            if found is None:
                found = self._routes[key] = _make_route(url.scheme, host, port, proxy)
            return found

    def close(self) -> None:
        with self._lock:
            for route in self._routes.values():
                route.close()
            self._routes.clear()


def _make_route(scheme: str, host: str, port: int, proxy: str | None) -> _Direct | ProxyRoute:
    if proxy is None:
        return _Direct(scheme, host, port)
    from ._proxy import ProxyRoute

    https = scheme == "https" or proxy.startswith("https:")
    return ProxyRoute(proxy, _tls_context() if https else None)


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
