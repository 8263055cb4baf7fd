"""Real OAuth servers on 127.0.0.1: the sandbox's Formance services (and stacktoken's own tests).

Two servers, both built on authlib's framework-agnostic
:class:`authlib.oauth2.rfc6749.AuthorizationServer` (adapted to the stdlib
``http.server`` the way authlib's docs describe for custom frameworks:
``create_oauth2_request`` / ``handle_response`` / ``send_signal``) and served by
a :class:`http.server.ThreadingHTTPServer` in a daemon thread:

* :class:`MembershipServer` -- the membership IdP (``membershipURI`` =
  ``http://127.0.0.1:P/api``): OIDC discovery, JWKS, and a token endpoint for the
  ``refresh_token`` grant (authlib's ``RefreshTokenGrant``) for the public
  client ``fctl``. Refresh tokens are rotated on every use. Access tokens are
  RS256 JWTs signed with the IdP's RSA key (joserfc). RFC 8628 device
  authorization (authlib's ``DeviceAuthorizationEndpoint`` + ``DeviceCodeGrant``)
  for login and stack access, approved or denied by the test through the IdP's
  own HTTP endpoint (:meth:`MembershipServer.approve_device`).
* :class:`StackAuthServer` -- a stack's auth server (stack URI =
  ``http://127.0.0.1:Q``): OIDC discovery and a token endpoint for the RFC 7523
  JWT-bearer grant (authlib's ``JWTBearerGrant``) whose assertion is a stack
  access token from the membership IdP; signature (RS256, the IdP's key),
  issuer and ``exp`` are verified; and for RFC 6749 section 4.4 client credentials
  (authlib's ``ClientCredentialsGrant``) of clients added with
  :meth:`StackAuthServer.add_client`. It also serves a tiny protected resource
  (``GET /api/ledger/_info``) that accepts the tokens it issued; the ledger v2
  stub for the SDK is :mod:`stacktoken.testing._ledger`.

Both record requests, count them per endpoint (``"POST /api/oauth/token"``),
accept a FIFO queue of :class:`Fault` per endpoint, and can be stopped and
restarted on the same port. Only loopback addresses are ever bound; every wait
is bounded.

Client secrets are redacted from recorded requests and headers, and query
strings from the servers' log lines, so a test may print them.

Use them as context managers, or all together as a
:class:`stacktoken.testing.Sandbox`.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import errno
import functools
import json
import logging
import os
import re
import secrets
import socket
import socketserver
import struct
import sys
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import Message
from html import escape as html_escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar, Final, Literal, NamedTuple, Self
from urllib.parse import parse_qsl, unquote, urlsplit

import httpx
from authlib.consts import default_json_headers  # type: ignore[import-untyped,unused-ignore]
from authlib.oauth2.base import OAuth2Error  # type: ignore[import-untyped,unused-ignore]
from authlib.oauth2.rfc6749 import (  # type: ignore[import-untyped,unused-ignore]
    AccessDeniedError,
    AuthorizationServer,
    ClientCredentialsGrant,
    InvalidGrantError,
    OAuth2Request,
    RefreshTokenGrant,
)
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload  # type: ignore[import-untyped,unused-ignore]
from authlib.oauth2.rfc6750 import BearerTokenGenerator  # type: ignore[import-untyped,unused-ignore]
from authlib.oauth2.rfc7523 import JWTBearerGrant  # type: ignore[import-untyped,unused-ignore]
from authlib.oauth2.rfc8628 import (  # type: ignore[import-untyped,unused-ignore]
    AuthorizationPendingError,
    DeviceAuthorizationEndpoint,
    DeviceCodeGrant,
    ExpiredTokenError,
    SlowDownError,
)
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey
from stacktoken.testing._loopback import LOOPBACK_HOST, LoopbackService

__all__ = [
    "CLIENT_CREDENTIALS_GRANT_TYPE",
    "DEFAULT_DEVICE_INTERVAL",
    "DEFAULT_STACK_AUTH_METHODS",
    "DEVICE_CODE_GRANT_TYPE",
    "JWT_BEARER_GRANT_TYPE",
    "LOGIN_SCOPE",
    "LOOPBACK_HOST",
    "ClientAuthMethod",
    "ClientCredentialsRequest",
    "ConfidentialClient",
    "DeviceAnswer",
    "DeviceDecision",
    "DeviceAuthorization",
    "DevicePoll",
    "Fault",
    "FctlProfile",
    "IdTokenDefect",
    "IssuedToken",
    "LoopbackOAuthServer",
    "MembershipServer",
    "RecordedRequest",
    "STACK_ACCESS_SCOPE",
    "StackAuthServer",
    "decode_jwt_unverified",
    "new_rsa_key",
    "org_claim",
    "write_fctl_profile",
]

log = logging.getLogger(__name__)

JWT_BEARER_GRANT_TYPE: Final = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CLIENT_CREDENTIALS_GRANT_TYPE: Final = "client_credentials"
#: What the stack's discovery advertises by default (RFC 8414 section 2).
DEFAULT_STACK_AUTH_METHODS: Final = ("none", "client_secret_basic", "client_secret_post")
DEVICE_CODE_GRANT_TYPE: Final = "urn:ietf:params:oauth:grant-type:device_code"
FCTL_CLIENT_ID: Final = "fctl"
STACK_ACCESS_SCOPE: Final = "openid offline_access"
#: fctl's login scope (pkg/authentication.go), docs/design.md §13.
LOGIN_SCOPE: Final = "openid offline_access accesses on_behalf"
#: RFC 8628 section 3.2: without ``interval`` in the answer a client waits 5 s.
DEFAULT_DEVICE_INTERVAL: Final = 5.0
#: RFC 8628 section 3.5: each slow_down raises the interval by 5 s.
SLOW_DOWN_INCREMENT: Final = 5.0
#: Client authentication of a public client by HTTP Basic with an empty
#: password (``fctl:``), which authlib's client_secret_basic refuses.
PUBLIC_BASIC_AUTH: Final = "public_client_basic"
WRONG_ISSUER: Final = "http://127.0.0.1:1/not-the-issuer"

#: Upper bound on request bodies the servers read (they are test servers).
MAX_REQUEST_BODY: Final = 1024 * 1024
#: Socket timeout of a handler thread waiting for a slow/idle client.
HANDLER_SOCKET_TIMEOUT: Final = 10.0
#: Bound on how long start() keeps retrying to re-bind a port still in use.
REBIND_TIMEOUT: Final = 5.0
#: Default bound for stop().
STOP_TIMEOUT: Final = 5.0
#: The longest a `Fault.hold` keeps an answer if the test never releases it.
HOLD_TIMEOUT: Final = 30.0

JSONDict = dict[str, Any]


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------


def _json_bytes(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode("utf-8")


def _safe_description(text: str) -> str:
    """RFC 6749 section 5.2 forbids '"' and '\\' in error_description (authlib checks)."""
    cleaned = "".join(ch for ch in text if 0x20 <= ord(ch) <= 0x7E and ch not in '"\\')
    return cleaned or "invalid"


def new_rsa_key() -> RSAKey:
    """A fresh 2048-bit RS256 signing key with a random ``kid``."""
    return RSAKey.generate_key(
        2048, parameters={"kid": secrets.token_hex(8), "use": "sig", "alg": "RS256"}
    )


@functools.cache
def _shared_rsa_key(role: str) -> RSAKey:
    # RSA generation costs ~50 ms; servers of one role share a key per process
    # unless given their own (issuers differ anyway, so nothing is confused).
    return new_rsa_key()


def decode_jwt_unverified(token: str) -> JSONDict:
    """Decode a JWT's payload without verifying anything (test convenience)."""
    try:
        payload = token.split(".")[1]
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        value = json.loads(raw)
    except (IndexError, ValueError) as exc:
        raise ValueError("not a JWT") from exc
    if not isinstance(value, dict):
        raise TypeError("JWT payload is not an object")
    return value


# --------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------


class RecordedRequest(NamedTuple):
    """One request as seen by a server: ``(method, path, form)``."""

    method: str
    path: str
    form: dict[str, str]


@dataclass(frozen=True)
class HTTPRequest:
    """A parsed incoming request, handed to route handlers and to authlib."""

    method: str
    path: str
    url: str
    query: dict[str, str]
    headers: Message
    body: bytes
    form: dict[str, str]

    @property
    def endpoint(self) -> str:
        return f"{self.method} {self.path}"


@dataclass
class HTTPResponse:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    send_content_length: bool = True

    @classmethod
    def json(
        cls,
        obj: object,
        status: int = 200,
        headers: Sequence[tuple[str, str]] = (),
    ) -> HTTPResponse:
        hdrs = [("Content-Type", "application/json")]
        hdrs.extend(headers)
        return cls(status, _json_bytes(obj), hdrs)

    @classmethod
    def oauth_error(cls, status: int, error: str, description: str | None = None) -> HTTPResponse:
        body: JSONDict = {"error": error}
        if description:
            body["error_description"] = description
        return cls.json(body, status, [("Cache-Control", "no-store"), ("Pragma", "no-cache")])

    def json_body(self) -> object:
        return json.loads(self.body)


FaultKind = Literal[
    "response",  # answer with a canned response (status/body/headers)
    "delay",  # sleep, then answer normally
    "transform",  # answer normally, then drop/override top-level JSON fields
    "close",  # close the connection without answering
    "hold",  # handle the request, then keep the answer until the test releases it
]


@dataclass(frozen=True)
class Fault:
    """One injected misbehaviour, consumed by exactly one request.

    Build them with the class methods, e.g. ``Fault.status(503)``,
    ``Fault.rate_limited(2)``, ``Fault.delay(1.5)``, ``Fault.garbage()``,
    ``Fault.html_error()``, ``Fault.missing_fields("access_token")``,
    ``Fault.oversized(65536)``, ``Fault.wrong_issuer()``,
    ``Fault.close_connection()``.
    """

    kind: FaultKind
    status_code: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    send_content_length: bool = True
    delay_seconds: float = 0.0
    drop_fields: tuple[str, ...] = ()
    override: Mapping[str, object] = field(default_factory=dict)
    reset: bool = False
    handled: threading.Event | None = field(default=None, compare=False)
    released: threading.Event | None = field(default=None, compare=False)

    _DEFAULT_ERRORS: ClassVar[Mapping[int, str]] = {
        400: "invalid_request",
        401: "invalid_client",
        403: "access_denied",
        404: "not_found",
        429: "rate_limited",
        503: "temporarily_unavailable",
    }

    # -- canned responses ------------------------------------------------
    @classmethod
    def status(
        cls,
        code: int,
        error: str | None = None,
        description: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> Fault:
        """``code`` with an RFC 6749 section 5.2 JSON error body."""
        err = error or cls._DEFAULT_ERRORS.get(code, "server_error")
        body: JSONDict = {"error": err}
        if description:
            body["error_description"] = description
        hdrs = (("Content-Type", "application/json"), *(headers or {}).items())
        return cls("response", code, _json_bytes(body), tuple(hdrs))

    @classmethod
    def invalid_grant(cls, description: str | None = None) -> Fault:
        """400 ``{"error": "invalid_grant"}``."""
        return cls.status(400, "invalid_grant", description)

    @classmethod
    def rate_limited(cls, retry_after: float | str = 1, code: int = 429) -> Fault:
        """429 (by default) with a ``Retry-After`` header and a JSON body."""
        if isinstance(retry_after, float) and retry_after.is_integer():
            retry_after = int(retry_after)
        return cls.status(code, headers={"Retry-After": str(retry_after)})

    @classmethod
    def garbage(
        cls,
        body: bytes = b"\x00\xffthis is {not json",
        *,
        status: int = 200,
        content_type: str = "application/json",
    ) -> Fault:
        """``status`` (200) with a body that is not JSON."""
        return cls("response", status, body, (("Content-Type", content_type),))

    @classmethod
    def html_error(cls, status: int = 500) -> Fault:
        """An HTML error page, as a proxy or load balancer would send."""
        page = (
            "<!DOCTYPE html><html><head><title>Internal Server Error</title></head>"
            f"<body><h1>{status} Internal Server Error</h1>"
            "<p>The server encountered an internal error.</p></body></html>"
        ).encode()
        return cls("response", status, page, (("Content-Type", "text/html; charset=utf-8"),))

    @classmethod
    def raw(
        cls,
        status: int,
        body: bytes | str | object,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> Fault:
        """Any canned response. A non-bytes/str ``body`` is JSON-encoded."""
        hdrs = dict(headers or {})
        if isinstance(body, str):
            data = body.encode()
        elif isinstance(body, bytes):
            data = body
        else:
            data = _json_bytes(body)
            hdrs.setdefault("Content-Type", "application/json")
        return cls("response", status, data, tuple(hdrs.items()))

    @classmethod
    def oversized(
        cls, larger_than: int = 1024 * 1024, *, send_content_length: bool = True
    ) -> Fault:
        """200 with a valid JSON token-like body of exactly ``larger_than + 1`` bytes.

        With ``send_content_length=False`` the body is delimited by closing the
        connection, so only a streaming size cap can catch it.
        """
        head = b'{"access_token":"x","token_type":"Bearer","expires_in":3600,"padding":"'
        tail = b'"}'
        pad = max(0, larger_than + 1 - len(head) - len(tail))
        body = head + b"a" * pad + tail
        return cls(
            "response",
            200,
            body,
            (("Content-Type", "application/json"),),
            send_content_length=send_content_length,
        )

    @classmethod
    def redirect(cls, location: str, status: int = 307) -> Fault:
        """A redirect (307 keeps the method and body on a POST)."""
        return cls("response", status, b"", (("Location", location),))

    # -- behaviours ------------------------------------------------------
    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Sleep ``seconds`` (interrupted by stop()), then answer normally."""
        return cls("delay", delay_seconds=seconds)

    @classmethod
    def hold(cls, handled: threading.Event, released: threading.Event) -> Fault:
        """Handle the request for real (a refresh does rotate), set ``handled``,
        then keep the answer until ``released`` is set (or the server stops, or
        ``HOLD_TIMEOUT`` passes). A test can thus act while the client waits,
        knowing the server has acted: true by construction, not by a delay."""
        return cls("hold", handled=handled, released=released)

    @classmethod
    def close_connection(cls, *, reset: bool = False) -> Fault:
        """Read the request, then close the connection without answering.

        ``reset=True`` aborts with a TCP RST instead of a FIN.
        """
        return cls("close", reset=reset)

    # -- transforms of the normal answer -----------------------------------
    @classmethod
    def missing_fields(cls, *fields: str) -> Fault:
        """Answer normally (200 JSON) but without the given top-level fields
        (default: ``access_token``). Note the server state still changes, e.g.
        a refresh token is still rotated."""
        return cls("transform", drop_fields=fields or ("access_token",))

    @classmethod
    def override_fields(cls, **fields: object) -> Fault:
        """Answer normally, with top-level JSON fields replaced/added."""
        return cls("transform", override=dict(fields))

    @classmethod
    def wrong_issuer(cls, issuer: str = "http://127.0.0.1:1/not-the-issuer") -> Fault:
        """For a discovery endpoint: the normal document with another ``issuer``."""
        return cls.override_fields(issuer=issuer)

    # -- application ---------------------------------------------------------
    def canned_response(self) -> HTTPResponse:
        return HTTPResponse(
            self.status_code, self.body, list(self.headers), self.send_content_length
        )

    def transform(self, response: HTTPResponse) -> HTTPResponse:
        try:
            doc = json.loads(response.body)
        except ValueError:
            return response
        if not isinstance(doc, dict):
            return response
        for name in self.drop_fields:
            doc.pop(name, None)
        doc.update(self.override)
        return HTTPResponse(response.status, _json_bytes(doc), list(response.headers))


Route = Callable[[HTTPRequest], HTTPResponse]

_QUERY_IN_LINE: Final = re.compile(r"\?\S*\s")
#: Form fields never kept verbatim in :attr:`LoopbackOAuthServer.requests`.
REDACTED_FORM_FIELDS: Final = frozenset({"client_secret"})
REDACTED: Final = "<redacted>"


def _redacted_form(form: Mapping[str, str]) -> dict[str, str]:
    return {k: (REDACTED if k in REDACTED_FORM_FIELDS else v) for k, v in form.items()}


def _redacted_headers(headers: Message) -> dict[str, str]:
    """Lower-cased headers; HTTP Basic credentials keep their user name only."""
    out: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        out[key] = value
        if key == "authorization" and value[:6].lower() == "basic ":
            user, _ = _basic_credentials(value)
            out[key] = f"Basic {user or ''}:{REDACTED}"
    return out


def _basic_credentials(value: str | None) -> tuple[str | None, str | None]:
    """(user, password) of an ``Authorization: Basic`` value (RFC 7617), else (None, None)."""
    if not value:
        return None, None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "basic":
        return None, None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None, None
    user, sep, password = decoded.partition(":")
    return unquote(user), (unquote(password) if sep else None)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so a stopped server never keeps
    # answering on a pooled keep-alive connection.
    protocol_version = "HTTP/1.0"
    timeout = HANDLER_SOCKET_TIMEOUT
    server: _HTTPServer

    def do_GET(self) -> None:
        self.server.owner._serve(self)

    do_POST = do_GET
    do_PUT = do_GET
    do_DELETE = do_GET
    do_PATCH = do_GET
    do_HEAD = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        # The request line may carry a query string: log the path only, so a
        # secret a client wrongly puts in a URL never reaches a test's log.
        log.debug("%s %s", self.server.owner.name, _QUERY_IN_LINE.sub(" ", format % args))


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128  # listen backlog; the default 5 drops bursts of connects

    def __init__(self, port: int, owner: LoopbackOAuthServer) -> None:
        self.owner = owner
        self._active_lock = threading.Lock()
        self._active: dict[threading.Thread, socket.socket] = {}
        super().__init__((LOOPBACK_HOST, port), _Handler)

    def server_bind(self) -> None:
        # Skip HTTPServer.server_bind's socket.getfqdn() (a reverse DNS lookup).
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Like ThreadingMixIn.process_request, but the connection is registered
        # synchronously (in the serve thread), so once shutdown() has returned
        # stop() sees every connection it has to abort and every thread to join.
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"{self.owner.name}-conn",
            daemon=True,
        )
        with self._active_lock:
            self._active[thread] = request
        thread.start()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._active_lock:
                self._active.pop(threading.current_thread(), None)

    def abort_connections(self) -> list[threading.Thread]:
        with self._active_lock:
            items = list(self._active.items())
        for _thread, sock in items:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        return [t for t, _ in items]

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("%s: connection error: %r", self.owner.name, sys.exc_info()[1])


class LoopbackOAuthServer(LoopbackService):
    """HTTP machinery shared by both servers: lifecycle, routes, recording, faults."""

    name: ClassVar[str] = "server"

    def __init__(
        self,
        *,
        port: int = 0,
        discovery_cache_control: str | None = "max-age=3600",
    ) -> None:
        #: Value of the discovery document's ``Cache-Control`` header (None: absent).
        self.discovery_cache_control = discovery_cache_control
        #: The time (epoch s) tokens are issued and checked on: ``time.time``, or a
        #: simulated clock (:class:`stacktoken.testing.SimulatedClock`).
        self.clock: Callable[[], float] = time.time
        self._port = port
        self._lock = threading.Lock()
        self._counted = threading.Condition(self._lock)
        self._counts: Counter[str] = Counter()
        self._requests: list[RecordedRequest] = []
        self._request_headers: list[dict[str, str]] = []
        self._faults: dict[str, deque[Fault]] = {}
        self._routes: dict[str, Route] = {}
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> Self:
        """Bind 127.0.0.1 (the previous port after a stop) and serve in a daemon thread."""
        if self._httpd is not None:
            return self
        deadline = time.monotonic() + REBIND_TIMEOUT
        while True:
            try:
                httpd = _HTTPServer(self._port, self)
                break
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or self._port == 0:
                    raise
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)
        self._port = int(httpd.server_address[1])
        self._stopping.clear()
        thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=f"{self.name}-{self._port}",
            daemon=True,
        )
        self._httpd = httpd
        self._thread = thread
        thread.start()
        return self

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop accepting, abort in-flight connections, close the socket, join threads.

        Afterwards connections to the port are refused until :meth:`start`.
        """
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._httpd = None
        self._thread = None
        deadline = time.monotonic() + timeout
        self._stopping.set()
        if thread is not None and thread.is_alive():
            # serve_forever polls every 20 ms; shutdown() has no timeout of its
            # own, so run it aside and bound the wait.
            stopper = threading.Thread(target=httpd.shutdown, daemon=True)
            stopper.start()
            stopper.join(max(0.0, deadline - time.monotonic()))
        handler_threads = httpd.abort_connections()
        httpd.server_close()
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))
        for t in handler_threads:
            t.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in handler_threads if t.is_alive()]
        if thread is not None and thread.is_alive():
            alive.append(thread.name)
        if alive:
            log.warning("%s: threads still alive after stop: %s", self.name, alive)

    def restart(self) -> Self:
        """stop() then start() on the same port."""
        self.stop()
        return self.start()

    @property
    def is_running(self) -> bool:
        return self._httpd is not None

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:<port>``"""
        return f"http://{LOOPBACK_HOST}:{self.port}"

    # -- recording -------------------------------------------------------------
    def count(self, endpoint: str) -> int:
        """Requests received for ``"METHOD /path"`` (faulted ones included)."""
        _check_endpoint(endpoint)
        with self._lock:
            return self._counts[endpoint]

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    @property
    def total_requests(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    @property
    def requests(self) -> list[RecordedRequest]:
        """Snapshot of every request received, in order."""
        with self._lock:
            return list(self._requests)

    @property
    def request_headers(self) -> list[dict[str, str]]:
        """Headers (lower-cased names) of each request, parallel to :attr:`requests`.

        HTTP Basic credentials are recorded as ``Basic <user>:<redacted>``, and a
        form's ``client_secret`` as ``<redacted>``: a test may print these.
        """
        with self._lock:
            return [dict(h) for h in self._request_headers]

    def count_grant(self, grant_type: str) -> int:
        """Recorded POSTs whose form has this ``grant_type`` (faulted ones included)."""
        with self._lock:
            return sum(
                1
                for r in self._requests
                if r.method == "POST" and r.form.get("grant_type") == grant_type
            )

    def wait_for_count(self, endpoint: str, count: int, timeout: float = 5.0) -> bool:
        """Block until ``count(endpoint) >= count`` or ``timeout`` s; True if reached."""
        _check_endpoint(endpoint)
        with self._counted:
            return self._counted.wait_for(lambda: self._counts[endpoint] >= count, timeout)

    def reset_counts(self) -> None:
        """Forget counts and recorded requests (faults stay queued)."""
        with self._lock:
            self._counts.clear()
            self._requests.clear()
            self._request_headers.clear()

    # -- faults ----------------------------------------------------------------
    def inject(self, endpoint: str, *faults: Fault) -> None:
        """Queue faults for ``"METHOD /path"``; each request consumes one (FIFO)."""
        _check_endpoint(endpoint)
        with self._lock:
            self._faults.setdefault(endpoint, deque()).extend(faults)

    def pending_faults(self, endpoint: str) -> int:
        _check_endpoint(endpoint)
        with self._lock:
            return len(self._faults.get(endpoint, ()))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    # -- request handling --------------------------------------------------------
    def add_route(self, endpoint: str, route: Route) -> None:
        """Serve ``"METHOD /path"`` with ``route`` (e.g. a stub API on the same origin)."""
        _check_endpoint(endpoint)
        with self._lock:
            # Copy on write: handler threads read the table without the lock.
            self._routes = {**self._routes, endpoint: route}

    def _route(self, endpoint: str, route: Route) -> None:
        self._routes[endpoint] = route

    def _serve(self, handler: _Handler) -> None:
        try:
            request = self._read_request(handler)
        except _BadRequest as exc:
            self._write(handler, HTTPResponse.oauth_error(exc.status, "invalid_request", str(exc)))
            return
        except OSError:
            return
        with self._lock:
            self._counts[request.endpoint] += 1
            self._counted.notify_all()
            self._requests.append(
                RecordedRequest(request.method, request.path, _redacted_form(request.form))
            )
            self._request_headers.append(_redacted_headers(request.headers))
            queue = self._faults.get(request.endpoint)
            fault = queue.popleft() if queue else None

        if fault is not None and fault.kind == "hold":
            response = self._dispatch(request)
            assert fault.handled is not None and fault.released is not None
            fault.handled.set()
            deadline = time.monotonic() + HOLD_TIMEOUT
            while not fault.released.wait(0.02):
                if self._stopping.is_set() or time.monotonic() > deadline:
                    self._abort(handler, reset=False)
                    return
            self._write(handler, response)
            return
        if fault is not None and fault.kind == "delay":
            if self._stopping.wait(fault.delay_seconds):
                self._abort(handler, reset=False)
                return
            fault = None
        if fault is not None and fault.kind == "close":
            self._abort(handler, reset=fault.reset)
            return
        if fault is not None and fault.kind == "response":
            response = fault.canned_response()
        else:
            try:
                response = self._dispatch(request)
            except _AbortConnection as abort:
                self._abort(handler, reset=abort.reset)
                return
            if fault is not None and fault.kind == "transform":
                response = fault.transform(response)
        self._write(handler, response)

    def _dispatch(self, request: HTTPRequest) -> HTTPResponse:
        route = self._routes.get(request.endpoint)
        if route is None:
            if any(key.split(" ", 1)[1] == request.path for key in self._routes):
                return HTTPResponse.oauth_error(405, "invalid_request", "method not allowed")
            return HTTPResponse.json({"error": "not_found"}, 404)
        try:
            return route(request)
        except _AbortConnection:
            raise
        except Exception:
            log.exception("%s: error while handling %s", self.name, request.endpoint)
            return HTTPResponse.oauth_error(500, "server_error")

    def _read_request(self, handler: _Handler) -> HTTPRequest:
        split = urlsplit(handler.path)
        length_header = handler.headers.get("Content-Length")
        body = b""
        if length_header:
            try:
                length = int(length_header)
            except ValueError:
                raise _BadRequest(400, "bad Content-Length") from None
            if length < 0:
                raise _BadRequest(400, "bad Content-Length")
            if length > MAX_REQUEST_BODY:
                raise _BadRequest(413, "request body too large")
            body = handler.rfile.read(length)
        form: dict[str, str] = {}
        ctype = (handler.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if body and ctype == "application/x-www-form-urlencoded":
            form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        return HTTPRequest(
            method=handler.command,
            path=split.path,
            url=f"{self.origin}{handler.path}",
            query=query,
            headers=handler.headers,
            body=body,
            form=form,
        )

    def _write(self, handler: _Handler, response: HTTPResponse) -> None:
        try:
            handler.send_response(response.status)
            for name, value in response.headers:
                handler.send_header(name, value)
            if response.send_content_length:
                handler.send_header("Content-Length", str(len(response.body)))
            handler.end_headers()
            if handler.command != "HEAD":
                handler.wfile.write(response.body)
        except OSError:
            log.debug("%s: client went away", self.name)
        handler.close_connection = True

    @staticmethod
    def _abort(handler: _Handler, *, reset: bool) -> None:
        handler.close_connection = True
        sock = handler.connection
        try:
            if reset:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()  # really closed when rfile is closed by finish()
        except OSError:
            pass

    def _discovery_response(self, doc: JSONDict) -> HTTPResponse:
        headers: list[tuple[str, str]] = []
        if self.discovery_cache_control is not None:
            headers.append(("Cache-Control", self.discovery_cache_control))
        return HTTPResponse.json(doc, 200, headers)


class _AbortConnection(Exception):
    """Raised by a route: close the connection without answering (a ``close`` fault)."""

    def __init__(self, *, reset: bool) -> None:
        super().__init__("abort")
        self.reset = reset


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _check_endpoint(endpoint: str) -> None:
    method, sep, path = endpoint.partition(" ")
    if not sep or not method.isupper() or not path.startswith("/"):
        raise ValueError(f"endpoint must look like 'POST /path', got {endpoint!r}")


# --------------------------------------------------------------------------
# authlib adaptation (custom framework integration)
# --------------------------------------------------------------------------


class _AuthlibRequest(OAuth2Request):  # type: ignore[misc]
    """authlib's OAuth2Request over our parsed HTTPRequest."""

    def __init__(self, request: HTTPRequest) -> None:
        super().__init__(method=request.method, uri=request.url, headers=request.headers)
        self.http_request = request
        self.payload = BasicOAuth2Payload(dict(request.form))
        #: Device-code polls: arrived sooner than the interval after the previous one.
        self.poll_early = False

    @property
    def args(self) -> dict[str, str]:
        return dict(self.http_request.query)

    @property
    def form(self) -> dict[str, str]:
        return dict(self.http_request.form)


class _StdlibAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    """AuthorizationServer integrated with our stdlib HTTP layer."""

    def __init__(self) -> None:
        super().__init__(scopes_supported=None)
        self.signals: list[str] = []

    def create_oauth2_request(self, request: HTTPRequest | _AuthlibRequest) -> _AuthlibRequest:
        if isinstance(request, _AuthlibRequest):
            return request
        return _AuthlibRequest(request)

    def create_json_request(self, request: HTTPRequest) -> Any:
        raise NotImplementedError("no JSON endpoints on these servers")

    def handle_response(
        self, status: int, body: object, headers: Sequence[tuple[str, str]]
    ) -> HTTPResponse:
        if isinstance(body, (dict, list)):
            data = _json_bytes(body)
        elif isinstance(body, str):
            data = body.encode()
        elif isinstance(body, bytes):
            data = body
        else:
            data = b""
        return HTTPResponse(int(status), data, [(str(k), str(v)) for k, v in headers])

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        self.signals.append(name)

    def token_response(self, request: HTTPRequest | _AuthlibRequest) -> HTTPResponse:
        response = self.create_token_response(request)
        assert isinstance(response, HTTPResponse)
        return response


@dataclass(frozen=True)
class _PublicClient:
    """A registered OAuth client (authlib ClientMixin protocol, duck-typed)."""

    client_id: str
    grant_types: frozenset[str]
    scopes: frozenset[str]
    auth_method: str = "none"
    public_key: RSAKey | None = None
    #: Token-endpoint methods accepted besides ``auth_method`` (grants still
    #: restrict theirs: the refresh grant only tries "none").
    extra_token_auth_methods: frozenset[str] = frozenset()

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return False

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if endpoint != "token":
            return True
        return method == self.auth_method or method in self.extra_token_auth_methods

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return ""
        return " ".join(s for s in scope.split() if s in self.scopes)


# --------------------------------------------------------------------------
# Membership IdP
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Subject:
    sub: str
    organization_id: str | None


@dataclass(frozen=True)
class _RefreshRecord:
    """A live refresh token (authlib TokenMixin protocol, duck-typed)."""

    value: str
    client_id: str
    subject: _Subject
    scope: str

    def check_client(self, client: _PublicClient) -> bool:
        return client.client_id == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return 0

    def is_expired(self) -> bool:
        return False

    def is_revoked(self) -> bool:
        return False


class _RotatingRefreshTokenGrant(RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = ["none"]  # public client "fctl"
    INCLUDE_NEW_REFRESH_TOKEN: ClassVar[bool] = True  # rotate on every refresh

    def authenticate_refresh_token(self, refresh_token: str) -> _RefreshRecord | None:
        idp: MembershipServer = self.server.idp
        return idp._find_refresh(refresh_token)

    def authenticate_user(self, refresh_token: _RefreshRecord) -> _Subject:
        return refresh_token.subject

    def revoke_old_credential(self, refresh_token: _RefreshRecord) -> None:
        idp: MembershipServer = self.server.idp
        idp._drop_refresh(refresh_token.value)


DeviceAnswer = Literal["authorization_pending", "slow_down", "access_denied", "expired_token"]
#: What a :attr:`MembershipServer.device_decider` says of a new device authorization.
DeviceDecision = Literal["approve", "deny"]
IdTokenDefect = Literal["bad_signature", "wrong_issuer", "wrong_audience", "expired"]

_DEVICE_ERRORS: Final[Mapping[str, type[OAuth2Error]]] = {
    "authorization_pending": AuthorizationPendingError,
    "slow_down": SlowDownError,
    "access_denied": AccessDeniedError,
    "expired_token": ExpiredTokenError,
}


class _InvalidTargetError(OAuth2Error):  # type: ignore[misc]
    """RFC 8707 section 2: the ``resource`` of the poll is not the one authorized."""

    error = "invalid_target"


def _json_number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _normalise_user_code(user_code: str) -> str:
    # RFC 8628 section 6.1: case and punctuation of a user code do not matter.
    return "".join(ch for ch in user_code.upper() if ch.isalnum())


def org_claim(
    org_id: str,
    stacks: Mapping[str, str] | None = None,
    *,
    display_name: str | None = None,
    scopes: Sequence[str] = ("stack:Read", "stack:Write"),
) -> JSONDict:
    """One entry of the ID token's ``org`` claim (docs/design.md §3.2); ``stacks``: id -> URI."""
    return {
        "id": org_id,
        "displayName": display_name or org_id,
        "stacks": [
            {"id": sid, "displayName": sid, "uri": uri, "scopes": list(scopes)}
            for sid, uri in (stacks or {}).items()
        ],
        "applications": [],
    }


@dataclass(frozen=True)
class DeviceAuthorization:
    """One device authorization request (RFC 8628 section 3.1) and the IdP's answer (§3.2)."""

    user_code: str
    device_code: str = field(repr=False)
    client_id: str
    #: How authlib authenticated the client: ``public_client_basic`` (Basic ``fctl:``)
    #: or ``none`` (``client_id`` in the form).
    auth_method: str
    scope: str
    prompt: str | None
    organization_id: str | None
    id_token_hint: str | None = field(repr=False)
    resource: str | None
    #: The whole request form and the JSON answer.
    form: Mapping[str, str] = field(repr=False)
    response: Mapping[str, Any] = field(repr=False)

    @property
    def kind(self) -> Literal["login", "stack_access"]:
        """``stack_access`` when an ``organization_id`` was given, else ``login``."""
        return "stack_access" if self.organization_id else "login"


@dataclass(frozen=True)
class DevicePoll:
    """One device-code poll of the token endpoint (RFC 8628 section 3.4)."""

    #: The user code of the polled device code; None for an unknown device code.
    user_code: str | None
    #: ``time.monotonic()`` when the poll arrived.
    at: float
    #: Seconds since the previous poll of the same code (None for the first).
    since_previous: float | None
    #: The interval in force when it arrived (before any slow_down it caused).
    interval: float | None
    #: ``"success"`` or the RFC 8628 section 3.5 / RFC 6749 section 5.2 error code, or
    #: ``"fault"`` for one answered by :meth:`MembershipServer.fail_device_polls`.
    answer: str
    status: int
    resource: str | None

    @property
    def early(self) -> bool:
        """Sooner after the previous poll than the interval allowed."""
        return (
            self.since_previous is not None
            and self.interval is not None
            and self.since_previous < self.interval
        )


@dataclass
class _DeviceState:
    """Mutable state of one device code; guarded by ``MembershipServer._device_lock``."""

    auth: DeviceAuthorization
    expires_at: float  # monotonic
    interval: float
    last_poll: float | None = None
    decision: Literal["approved", "denied"] | None = None
    subject: str = ""
    email: str = ""
    organizations: list[JSONDict] = field(default_factory=list)
    issued: bool = False


class _DeviceCredential:
    """authlib DeviceCredentialMixin over a :class:`_DeviceState` (duck-typed)."""

    def __init__(self, state: _DeviceState) -> None:
        self.state = state

    def get_client_id(self) -> str:
        return self.state.auth.client_id

    def get_scope(self) -> str:
        return self.state.auth.scope

    def get_user_code(self) -> str:
        return self.state.auth.user_code

    def is_expired(self) -> bool:
        return time.monotonic() >= self.state.expires_at


def _authenticate_public_basic(
    query_client: Callable[[str], _PublicClient | None], request: _AuthlibRequest
) -> _PublicClient | None:
    """HTTP Basic with an empty password names a public client (fctl sends ``fctl:``)."""
    client_id, password = _basic_credentials(request.headers.get("Authorization"))
    if not client_id or password:
        return None
    client = query_client(client_id)
    if client is None or not client.check_endpoint_auth_method("none", "token"):
        return None  # a confidential client must prove its secret
    return client


class _DeviceAuthorizationEndpoint(DeviceAuthorizationEndpoint):  # type: ignore[misc]
    """authlib's RFC 8628 section 3.1 endpoint; ``expires_in``/``interval`` come from the IdP's
    knobs (sub-second or absent ``interval`` included), and the request is recorded."""

    CLIENT_AUTH_METHODS: ClassVar[list[str]] = [PUBLIC_BASIC_AUTH, "none"]

    def get_verification_uri(self) -> str:
        idp: MembershipServer = self.server.idp
        return idp.verification_uri

    def create_endpoint_response(self, request: _AuthlibRequest) -> tuple[int, JSONDict, Any]:
        self.authenticate_client(request)
        self.server.validate_requested_scope(request.payload.scope)
        idp: MembershipServer = self.server.idp
        data = idp._device_answer(
            self.generate_device_code(), self.generate_user_code(), self.get_verification_uri()
        )
        idp._device_save(request, data)
        return 200, data, default_json_headers


class _DeviceCodeGrant(DeviceCodeGrant):  # type: ignore[misc]
    """authlib's RFC 8628 section 3.4-3.5 grant over the IdP's device states."""

    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = [PUBLIC_BASIC_AUTH, "none"]

    @property
    def idp(self) -> MembershipServer:
        idp: MembershipServer = self.server.idp
        return idp

    def query_device_credential(self, device_code: str) -> _DeviceCredential | None:
        return self.idp._device_credential(device_code)

    def query_user_grant(self, user_code: str) -> tuple[_Subject | None, bool] | None:
        return self.idp._device_user_grant(user_code)

    def should_slow_down(self, credential: _DeviceCredential) -> bool:
        return self.idp._device_should_slow_down(credential, self.request)

    def validate_device_credential(self, credential: _DeviceCredential) -> _Subject:
        self.idp._device_precheck(credential, self.request)
        user: _Subject = super().validate_device_credential(credential)
        return user

    def generate_token(
        self,
        user: _Subject | None = None,
        scope: str | None = None,
        grant_type: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> JSONDict:
        token: JSONDict = super().generate_token(
            user=user,
            scope=scope,
            grant_type=grant_type,
            expires_in=expires_in,
            include_refresh_token=include_refresh_token,
        )
        self.idp._device_complete(self.request.credential, token)
        return token


class _MembershipAuthorizationServer(_StdlibAuthorizationServer):
    def __init__(self, idp: MembershipServer) -> None:
        super().__init__()
        self.idp = idp
        self.register_grant(_RotatingRefreshTokenGrant)
        self.register_grant(_DeviceCodeGrant)
        self.register_endpoint(_DeviceAuthorizationEndpoint)
        self.register_client_auth_method(PUBLIC_BASIC_AUTH, _authenticate_public_basic)
        self.register_token_generator(
            "default",
            BearerTokenGenerator(
                access_token_generator=idp._generate_access_token,
                refresh_token_generator=_random_refresh_token,
                expires_generator=idp._expires_in,
            ),
        )

    def query_client(self, client_id: str) -> _PublicClient | None:
        return self.idp._clients.get(client_id)

    def save_token(self, token: JSONDict, request: _AuthlibRequest) -> None:
        old: _RefreshRecord | None = request.refresh_token
        new_value = token.get("refresh_token")
        if old is not None and isinstance(new_value, str):
            self.idp._store_refresh(
                _RefreshRecord(new_value, old.client_id, old.subject, old.scope)
            )
        elif (
            request.payload.grant_type == DEVICE_CODE_GRANT_TYPE
            and isinstance(new_value, str)
            and isinstance(request.user, _Subject)
        ):
            scope = str(token.get("scope") or request.credential.get_scope())
            self.idp._store_refresh(
                _RefreshRecord(new_value, request.client.get_client_id(), request.user, scope)
            )

    def device_response(self, request: HTTPRequest) -> HTTPResponse:
        response = self.create_endpoint_response(
            _DeviceAuthorizationEndpoint.ENDPOINT_NAME, _AuthlibRequest(request)
        )
        assert isinstance(response, HTTPResponse)
        return response


def _random_refresh_token(**_: Any) -> str:
    return "rt_" + secrets.token_urlsafe(32)


class MembershipServer(LoopbackOAuthServer):
    """The membership IdP at ``http://127.0.0.1:P/api``.

    Endpoints: ``GET /api/.well-known/openid-configuration``,
    ``GET /api/.well-known/jwks.json``, ``POST /api/oauth/token``
    (``grant_type=refresh_token``, ``client_id=fctl``, no secret; and the
    RFC 8628 device-code grant), ``POST /api/oauth/device/authorize`` (RFC 8628
    §3.1, public client ``fctl`` by HTTP Basic ``fctl:`` or ``client_id``),
    ``GET /api/device`` (the verification page) and ``POST /api/device/approve``
    (the user's decision: what the test does instead of a browser; see
    :meth:`approve_device`).

    A device request with ``organization_id`` is a *stack access*: its success
    is a stack access token (``organization_id`` claim) and a refresh token. Any
    other is a *login*: access token, refresh token and an ID token (``iss``,
    ``aud=fctl``, ``exp``, ``sub``, ``email``, ``org``; spoilt on purpose with
    :attr:`id_token_defect`).
    """

    name: ClassVar[str] = "membership"
    DISCOVERY: ClassVar[str] = "GET /api/.well-known/openid-configuration"
    JWKS: ClassVar[str] = "GET /api/.well-known/jwks.json"
    TOKEN: ClassVar[str] = "POST /api/oauth/token"
    DEVICE_AUTHORIZATION: ClassVar[str] = "POST /api/oauth/device/authorize"
    DEVICE_VERIFICATION: ClassVar[str] = "GET /api/device"
    DEVICE_APPROVE: ClassVar[str] = "POST /api/device/approve"
    REVOCATION: ClassVar[str] = "POST /api/oauth/revoke"
    #: Whether discovery names ``revocation_endpoint`` (False: a provider without one).
    advertise_revocation: bool = True

    def __init__(
        self,
        *,
        port: int = 0,
        access_token_lifetime: int = 3600,
        discovery_cache_control: str | None = "max-age=3600",
        signing_key: RSAKey | None = None,
        subject: str = "user-1",
        email: str = "user@example.com",
        device_interval: float | None = DEFAULT_DEVICE_INTERVAL,
        device_expires_in: float = 600,
        device_verification_uri_complete: bool = True,
        device_enforce_interval: bool = False,
        device_interval_tolerance: float = 0.0,
        device_require_resource_on_poll: bool = True,
        device_organizations: Sequence[Mapping[str, Any]] = (),
        id_token_lifetime: int = 3600,
        id_token_defect: IdTokenDefect | None = None,
    ) -> None:
        super().__init__(port=port, discovery_cache_control=discovery_cache_control)
        #: Lifetime (s) of access tokens issued by the token endpoint; also its ``expires_in``.
        self.access_token_lifetime = access_token_lifetime
        self.subject = subject
        self.email = email
        self.signing_key = signing_key or _shared_rsa_key("membership")
        # -- device flow knobs (attributes: change them between requests) --
        #: ``interval`` of device answers (may be sub-second for fast tests, as a
        #: JSON float); None omits it (the client must then use 5 s, RFC 8628 section 3.2).
        self.device_interval = device_interval
        #: ``expires_in`` of device codes (s); after it polls get ``expired_token``.
        self.device_expires_in = device_expires_in
        #: Include ``verification_uri_complete`` in device answers.
        self.device_verification_uri_complete = device_verification_uri_complete
        #: Answer ``slow_down`` (and add 5 s to that code's interval) to a pending
        #: poll that arrives sooner than the interval (minus the tolerance) after
        #: the previous one. Off by default: :attr:`DevicePoll.early` records it anyway.
        #: Arrival times are compared, so a client that counts the interval from
        #: its *send* (not from the answer) can be early by latency jitter: give
        #: such a client a tolerance.
        self.device_enforce_interval = device_enforce_interval
        self.device_interval_tolerance = device_interval_tolerance
        #: A stack-access poll must repeat the device request's ``resource``
        #: (docs/design.md §13), else 400 ``invalid_target``.
        self.device_require_resource_on_poll = device_require_resource_on_poll
        #: ``org`` claim of login ID tokens when the approval names none.
        self.device_organizations: list[JSONDict] = [dict(o) for o in device_organizations]
        self.id_token_lifetime = id_token_lifetime
        #: Spoil every ID token issued from now on (None: a good one).
        self.id_token_defect: IdTokenDefect | None = id_token_defect
        self._device_lock = threading.Lock()
        self._device_changed = threading.Condition(self._device_lock)
        self._device_by_code: dict[str, _DeviceState] = {}
        self._device_by_user_code: dict[str, _DeviceState] = {}
        self._device_auths: list[DeviceAuthorization] = []
        self._device_polls: list[DevicePoll] = []
        self._device_script: deque[DeviceAnswer] = deque()
        self._device_faults: deque[Fault] = deque()
        self._clients: dict[str, _PublicClient] = {
            FCTL_CLIENT_ID: _PublicClient(
                FCTL_CLIENT_ID,
                grant_types=frozenset({"refresh_token", DEVICE_CODE_GRANT_TYPE}),
                scopes=frozenset(
                    {"openid", "offline_access", "email", "profile", "accesses", "on_behalf"}
                ),
                extra_token_auth_methods=frozenset({PUBLIC_BASIC_AUTH}),
            )
        }
        self._refresh: dict[str, _RefreshRecord] = {}
        self._refresh_lock = threading.Lock()
        #: Give every token signed from now on a ``jti`` (remembered: see
        #: :meth:`signed_token_ids`), so that a stack can refuse them one by one.
        self.token_ids = False
        self._signed_ids: list[str] = []
        # Serialises token requests so that "look up, issue, revoke old" of a
        # rotation is atomic: a refresh token is usable exactly once.
        self._grant_lock = threading.Lock()
        self._authz = _MembershipAuthorizationServer(self)
        self._route(self.DISCOVERY, self._discovery)
        self._route(self.JWKS, self._jwks)
        self._route(self.TOKEN, self._token)
        self._route(self.DEVICE_AUTHORIZATION, self._device_authorization)
        self._route(self.DEVICE_VERIFICATION, self._device_verification)
        self._route(self.DEVICE_APPROVE, self._device_approve)
        self._route(self.REVOCATION, self._revocation)
        #: Decides each new device authorization at once, as a user in a browser
        #: would: ``"approve"``, ``"deny"`` or None (left to :meth:`approve_device`).
        self.device_decider: Callable[[DeviceAuthorization], DeviceDecision | None] | None = None

    # -- URLs ------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """The membershipURI, ``http://127.0.0.1:P/api``."""
        return f"{self.origin}/api"

    @property
    def revocation_endpoint(self) -> str:
        return f"{self.base_url}/oauth/revoke"

    @property
    def device_authorization_endpoint(self) -> str:
        return f"{self.base_url}/oauth/device/authorize"

    @property
    def verification_uri(self) -> str:
        return f"{self.base_url}/device"

    @property
    def device_approve_url(self) -> str:
        return f"{self.base_url}/device/approve"

    @property
    def issuer(self) -> str:
        return self.base_url

    @property
    def discovery_url(self) -> str:
        return f"{self.base_url}/.well-known/openid-configuration"

    @property
    def jwks_uri(self) -> str:
        return f"{self.base_url}/.well-known/jwks.json"

    @property
    def token_endpoint(self) -> str:
        return f"{self.base_url}/oauth/token"

    @property
    def public_key(self) -> RSAKey:
        return RSAKey.import_key(self.signing_key.as_dict(private=False))

    def public_key_pem(self) -> bytes:
        """The IdP's public key (SubjectPublicKeyInfo PEM), e.g. for pyjwt."""
        return self.signing_key.as_pem(private=False)

    # -- token helpers ---------------------------------------------------------
    def sign(self, claims: Mapping[str, object]) -> str:
        """Sign arbitrary claims as an RS256 JWT with the IdP's key."""
        if self.token_ids and "jti" not in claims:
            claims = {**claims, "jti": uuid.uuid4().hex}
            with self._refresh_lock:
                self._signed_ids.append(str(claims["jti"]))
        header = {"alg": "RS256", "kid": self.signing_key.kid}
        return jwt.encode(header, dict(claims), self.signing_key)

    def stack_access_claims(
        self, exp_in_seconds: int, *, organization_id: str = "orgA", now: int | None = None
    ) -> JSONDict:
        iat = int(self.clock()) if now is None else now
        return {
            "iss": self.issuer,
            "sub": self.subject,
            "iat": iat,
            "exp": iat + exp_in_seconds,
            "organization_id": organization_id,
            "scope": STACK_ACCESS_SCOPE,
        }

    def mint_stack_access(
        self,
        exp_in_seconds: int,
        *,
        organization_id: str = "orgA",
        extra_claims: Mapping[str, object] | None = None,
    ) -> tuple[str, str]:
        """(stack access JWT expiring ``exp_in_seconds`` from now -- negative means
        already expired --, a fresh refresh token valid at this IdP)."""
        claims = self.stack_access_claims(exp_in_seconds, organization_id=organization_id)
        claims.update(extra_claims or {})
        token = self.sign(claims)
        refresh = _random_refresh_token()
        self._store_refresh(
            _RefreshRecord(
                refresh, FCTL_CLIENT_ID, _Subject(self.subject, organization_id), STACK_ACCESS_SCOPE
            )
        )
        return token, refresh

    def mint_root_tokens(self, exp_in_seconds: int = 3600) -> tuple[str, str]:
        """(root access JWT without organization, its refresh token), for profile.json."""
        iat = int(self.clock())
        token = self.sign(
            {
                "iss": self.issuer,
                "sub": self.subject,
                "iat": iat,
                "exp": iat + exp_in_seconds,
                "scope": "openid offline_access email",
            }
        )
        refresh = _random_refresh_token()
        self._store_refresh(
            _RefreshRecord(
                refresh, FCTL_CLIENT_ID, _Subject(self.subject, None), STACK_ACCESS_SCOPE
            )
        )
        return token, refresh

    def mint_id_token(
        self,
        organizations: Sequence[Mapping[str, object]],
        *,
        subject: str | None = None,
        email: str | None = None,
        lifetime: int = 3600,
        defect: IdTokenDefect | None = None,
    ) -> str:
        """An ID token whose ``org`` claim lists ``organizations``.

        ``defect`` spoils it: ``bad_signature`` (another key, same ``kid``),
        ``wrong_issuer``, ``wrong_audience`` (``aud`` without ``fctl``) or
        ``expired`` (``exp`` an hour ago).
        """
        iat = int(self.clock())
        claims: JSONDict = {
            "iss": self.issuer,
            "sub": self.subject if subject is None else subject,
            "aud": FCTL_CLIENT_ID,
            "iat": iat,
            "exp": iat + lifetime,
            "email": self.email if email is None else email,
            "org": [dict(o) for o in organizations],
        }
        if defect == "wrong_issuer":
            claims["iss"] = WRONG_ISSUER
        elif defect == "wrong_audience":
            claims["aud"] = "not-fctl"
        elif defect == "expired":
            claims["iat"] = iat - lifetime - 3600
            claims["exp"] = iat - 3600
        if defect == "bad_signature":
            forger = _shared_rsa_key("forger")
            return jwt.encode({"alg": "RS256", "kid": self.signing_key.kid}, claims, forger)
        return self.sign(claims)

    def signed_token_ids(self) -> list[str]:
        """The ``jti`` of every token signed while :attr:`token_ids` was on."""
        with self._refresh_lock:
            return list(self._signed_ids)

    def rotate_signing_key(self, key: RSAKey | None = None) -> RSAKey:
        """Switch to another signing key; tokens signed before no longer verify
        at the stack server (it trusts the IdP's current key only)."""
        self.signing_key = key or new_rsa_key()
        return self.signing_key

    def revoke_all_refresh_tokens(self) -> None:
        """Every refresh token becomes invalid (refresh -> 400 invalid_grant)."""
        with self._refresh_lock:
            self._refresh.clear()

    def revoke_refresh_token(self, refresh_token: str) -> None:
        self._drop_refresh(refresh_token)

    def is_refresh_token_valid(self, refresh_token: str) -> bool:
        return self._find_refresh(refresh_token) is not None

    @property
    def refresh_token_count(self) -> int:
        with self._refresh_lock:
            return len(self._refresh)

    # -- store (used by the authlib grant) ---------------------------------------
    def _find_refresh(self, value: str) -> _RefreshRecord | None:
        with self._refresh_lock:
            return self._refresh.get(value)

    def _drop_refresh(self, value: str) -> None:
        with self._refresh_lock:
            self._refresh.pop(value, None)

    def _store_refresh(self, record: _RefreshRecord) -> None:
        with self._refresh_lock:
            self._refresh[record.value] = record

    def _expires_in(self, client: object, grant_type: str) -> int:
        return self.access_token_lifetime

    def _generate_access_token(
        self, client: object, grant_type: str, user: _Subject, scope: str, **_: Any
    ) -> str:
        iat = int(self.clock())
        claims: JSONDict = {
            "iss": self.issuer,
            "sub": user.sub,
            "iat": iat,
            "exp": iat + self.access_token_lifetime,
            "scope": scope or STACK_ACCESS_SCOPE,
        }
        if user.organization_id is not None:
            claims["organization_id"] = user.organization_id
        return self.sign(claims)

    # -- routes ------------------------------------------------------------------
    def _discovery(self, request: HTTPRequest) -> HTTPResponse:
        return self._discovery_response(
            {
                "issuer": self.issuer,
                "token_endpoint": self.token_endpoint,
                "jwks_uri": self.jwks_uri,
                "device_authorization_endpoint": self.device_authorization_endpoint,
                "grant_types_supported": ["refresh_token", DEVICE_CODE_GRANT_TYPE],
                "token_endpoint_auth_methods_supported": ["none"],
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": [
                    "openid",
                    "offline_access",
                    "email",
                    "profile",
                    "accesses",
                    "on_behalf",
                ],
                **self._revocation_field(),
            }
        )

    def _revocation_field(self) -> JSONDict:
        return (
            {"revocation_endpoint": self.revocation_endpoint} if self.advertise_revocation else {}
        )

    def _revocation(self, request: HTTPRequest) -> HTTPResponse:
        """RFC 7009 for the public client ``fctl``: a refresh token stops working.

        Unknown tokens answer 200 too (RFC 7009 section 2.2); access tokens are JWTs
        that live out their short lifetime.
        """
        basic_user, _ = _basic_credentials(request.headers.get("Authorization"))
        if (basic_user or request.form.get("client_id")) != FCTL_CLIENT_ID:
            return HTTPResponse.oauth_error(401, "invalid_client")
        token = request.form.get("token")
        if not token:
            return HTTPResponse.oauth_error(400, "invalid_request", "token is required")
        self._drop_refresh(token)
        return HTTPResponse(200, b"", [("Cache-Control", "no-store")])

    def _jwks(self, request: HTTPRequest) -> HTTPResponse:
        key = self.signing_key.as_dict(private=False)
        return HTTPResponse.json({"keys": [key]}, 200, [("Cache-Control", "max-age=3600")])

    def _token(self, request: HTTPRequest) -> HTTPResponse:
        arrived = time.monotonic()
        if request.form.get("grant_type") == DEVICE_CODE_GRANT_TYPE:
            return self._device_token(request, arrived)
        with self._grant_lock:
            return self._authz.token_response(request)

    # -- device flow: what a test does and sees ------------------------------------
    def approve_device(
        self,
        user_code: str,
        *,
        subject: str | None = None,
        email: str | None = None,
        organizations: Sequence[Mapping[str, Any]] | None = None,
        timeout: float = 5.0,
    ) -> None:
        """Approve ``user_code`` through the IdP's own HTTP endpoint, as the user
        would in the browser. ``organizations`` becomes a login's ID-token ``org``
        claim (default :attr:`device_organizations`; see :func:`org_claim`)."""
        body: JSONDict = {"user_code": user_code, "decision": "approve"}
        if subject is not None:
            body["sub"] = subject
        if email is not None:
            body["email"] = email
        if organizations is not None:
            body["org"] = [dict(o) for o in organizations]
        self._post_decision(body, timeout)

    def deny_device(self, user_code: str, *, timeout: float = 5.0) -> None:
        """The user refuses: every later poll of that code gets ``access_denied``."""
        self._post_decision({"user_code": user_code, "decision": "deny"}, timeout)

    def _post_decision(self, body: JSONDict, timeout: float) -> None:
        response = httpx.post(self.device_approve_url, json=body, timeout=timeout)
        if response.status_code != 200:
            raise RuntimeError(
                f"device decision refused: {response.status_code} {response.text[:200]}"
            )

    def script_device_answers(self, *answers: DeviceAnswer) -> None:
        """The next polls of any known, unexpired device code get these errors, in
        order, whatever the user decided (a scripted ``slow_down`` also adds 5 s to
        that code's interval, as RFC 8628 section 3.5 says)."""
        unknown = [a for a in answers if a not in _DEVICE_ERRORS]
        if unknown:
            raise ValueError(f"not a device answer: {unknown}")
        with self._device_lock:
            self._device_script.extend(answers)

    def fail_device_polls(self, *faults: Fault) -> None:
        """The next device-code polls get these faults, in order, one each: an outage
        between the client and the grant (``Fault.status(503)``, ``Fault.garbage()``,
        ``Fault.html_error(502)``, ``Fault.close_connection(reset=...)``, and
        ``Fault.delay(s)``, which here holds the poll ``s`` seconds and then drops it
        unanswered: a timeout for a client with a shorter one). Each is recorded in
        :attr:`device_polls` (answer ``"fault"``) and counts for the interval check
        (:attr:`DevicePoll.early`); the code's state is untouched."""
        unsupported = [f.kind for f in faults if f.kind not in ("response", "close", "delay")]
        if unsupported:
            raise ValueError(f"not a device poll fault: {unsupported}")
        with self._device_lock:
            self._device_faults.extend(faults)

    @property
    def pending_device_poll_faults(self) -> int:
        with self._device_lock:
            return len(self._device_faults)

    def slow_down_next(self, polls: int) -> None:
        """Answer ``slow_down`` to the next ``polls`` polls."""
        slow: list[DeviceAnswer] = ["slow_down"] * polls
        self.script_device_answers(*slow)

    def expire_device_code(self, user_code: str) -> None:
        """Make ``user_code``'s device code expire now (polls: ``expired_token``)."""
        with self._device_lock:
            self._device_state_for_user_code(user_code).expires_at = time.monotonic()

    def device_interval_of(self, user_code: str) -> float:
        """The interval now in force for that code (grows with each slow_down)."""
        with self._device_lock:
            return self._device_state_for_user_code(user_code).interval

    @property
    def device_authorizations(self) -> list[DeviceAuthorization]:
        """Every device authorization request answered, in order."""
        with self._device_lock:
            return list(self._device_auths)

    @property
    def device_polls(self) -> list[DevicePoll]:
        """Every device-code poll, in order of arrival."""
        with self._device_lock:
            return list(self._device_polls)

    def device_poll_times(self, user_code: str) -> list[float]:
        """``time.monotonic()`` arrival times of the polls of ``user_code``."""
        key = _normalise_user_code(user_code)
        with self._device_lock:
            return [
                p.at
                for p in self._device_polls
                if p.user_code is not None and _normalise_user_code(p.user_code) == key
            ]

    def wait_for_device_authorization(
        self, count: int = 1, timeout: float = 5.0
    ) -> DeviceAuthorization:
        """Block until ``count`` device authorizations were answered; return the
        ``count``-th. Raises TimeoutError after ``timeout`` s."""
        with self._device_changed:
            if not self._device_changed.wait_for(lambda: len(self._device_auths) >= count, timeout):
                raise TimeoutError(f"no device authorization #{count} within {timeout} s")
            return self._device_auths[count - 1]

    def wait_for_device_polls(
        self, count: int, timeout: float = 5.0, *, user_code: str | None = None
    ) -> bool:
        """Block until ``count`` polls (of ``user_code``, or of any) arrived; True if so."""
        key = None if user_code is None else _normalise_user_code(user_code)

        def reached() -> bool:
            polls = [
                p
                for p in self._device_polls
                if key is None
                or (p.user_code is not None and _normalise_user_code(p.user_code) == key)
            ]
            return len(polls) >= count

        with self._device_changed:
            return self._device_changed.wait_for(reached, timeout)

    # -- device flow: internals ------------------------------------------------------
    def _device_state_for_user_code(self, user_code: str) -> _DeviceState:
        state = self._device_by_user_code.get(_normalise_user_code(user_code))
        if state is None:
            raise KeyError(f"unknown user code {user_code!r}")
        return state

    def _device_answer(self, device_code: str, user_code: str, verification_uri: str) -> JSONDict:
        data: JSONDict = {
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": verification_uri,
        }
        if self.device_verification_uri_complete:
            data["verification_uri_complete"] = f"{verification_uri}?user_code={user_code}"
        data["expires_in"] = _json_number(self.device_expires_in)
        if self.device_interval is not None:
            data["interval"] = _json_number(self.device_interval)
        return data

    def _device_save(self, request: _AuthlibRequest, data: JSONDict) -> None:
        form = request.http_request.form
        auth = DeviceAuthorization(
            user_code=data["user_code"],
            device_code=data["device_code"],
            client_id=request.client.get_client_id(),
            auth_method=str(request.auth_method),
            scope=form.get("scope", ""),
            prompt=form.get("prompt"),
            organization_id=form.get("organization_id") or None,
            id_token_hint=form.get("id_token_hint"),
            resource=form.get("resource"),
            form=_redacted_form(form),
            response=dict(data),
        )
        interval = DEFAULT_DEVICE_INTERVAL if self.device_interval is None else self.device_interval
        state = _DeviceState(auth, time.monotonic() + self.device_expires_in, float(interval))
        decider = self.device_decider
        decision = decider(auth) if decider is not None else None
        if decision is not None:
            state.decision = "approved" if decision == "approve" else "denied"
            state.subject, state.email = self.subject, self.email
            state.organizations = [dict(o) for o in self.device_organizations]
        with self._device_changed:
            self._device_by_code[auth.device_code] = state
            self._device_by_user_code[_normalise_user_code(auth.user_code)] = state
            self._device_auths.append(auth)
            self._device_changed.notify_all()

    def _device_credential(self, device_code: str) -> _DeviceCredential | None:
        with self._device_lock:
            state = self._device_by_code.get(device_code)
            if state is None or state.issued:
                return None  # authlib: 400 invalid_request "Invalid 'device_code'"
            return _DeviceCredential(state)

    def _device_user_grant(self, user_code: str) -> tuple[_Subject | None, bool] | None:
        with self._device_lock:
            state = self._device_by_user_code.get(_normalise_user_code(user_code))
            if state is None or state.decision is None:
                return None
            if state.decision == "denied":
                return None, False
            return _Subject(state.subject, state.auth.organization_id), True

    def _device_precheck(self, credential: _DeviceCredential, request: _AuthlibRequest) -> None:
        """Before authlib's own checks (expiry first, then the user's decision)."""
        if credential.is_expired():
            return  # authlib answers expired_token
        state = credential.state
        resource = request.http_request.form.get("resource")
        if (
            self.device_require_resource_on_poll
            and state.auth.resource is not None
            and resource != state.auth.resource
        ):
            raise _InvalidTargetError(description="resource differs from the device request")
        with self._device_lock:
            scripted = self._device_script.popleft() if self._device_script else None
            if scripted == "slow_down":
                state.interval += SLOW_DOWN_INCREMENT
        if scripted is not None:
            raise _DEVICE_ERRORS[scripted]()

    def _device_should_slow_down(
        self, credential: _DeviceCredential, request: _AuthlibRequest
    ) -> bool:
        if not (self.device_enforce_interval and request.poll_early):
            return False
        with self._device_lock:
            credential.state.interval += SLOW_DOWN_INCREMENT
        return True

    def _device_complete(self, credential: _DeviceCredential, token: JSONDict) -> None:
        state = credential.state
        with self._device_lock:
            state.issued = True
            organizations = [dict(o) for o in state.organizations]
        if state.auth.kind == "login" and "openid" in str(token.get("scope", "")).split():
            token["id_token"] = self.mint_id_token(
                organizations,
                subject=state.subject,
                email=state.email,
                lifetime=self.id_token_lifetime,
                defect=self.id_token_defect,
            )

    def _device_token(self, request: HTTPRequest, arrived: float) -> HTTPResponse:
        authlib_request = _AuthlibRequest(request)
        with self._grant_lock:
            with self._device_lock:
                state = self._device_by_code.get(request.form.get("device_code", ""))
                since = interval = None
                if state is not None:
                    interval = state.interval
                    if state.last_poll is not None:
                        since = arrived - state.last_poll
                    state.last_poll = arrived
                fault = self._device_faults.popleft() if self._device_faults else None
            if fault is None:
                authlib_request.poll_early = (
                    since is not None
                    and interval is not None
                    and since < interval - self.device_interval_tolerance
                )
                response = self._authz.token_response(authlib_request)
        if fault is not None:  # out of the grant lock: a held poll blocks no other request
            self._device_record(
                DevicePoll(
                    user_code=state.auth.user_code if state is not None else None,
                    at=arrived,
                    since_previous=since,
                    interval=interval,
                    answer="fault",
                    status=fault.status_code if fault.kind == "response" else 0,
                    resource=request.form.get("resource"),
                )
            )
            if fault.kind == "delay":
                self._stopping.wait(fault.delay_seconds)
            if fault.kind in ("close", "delay"):
                raise _AbortConnection(reset=fault.reset)
            return fault.canned_response()
        try:
            body = json.loads(response.body)
        except ValueError:
            body = {}
        answer = "success" if response.status == 200 else str(body.get("error", "unknown"))
        poll = DevicePoll(
            user_code=state.auth.user_code if state is not None else None,
            at=arrived,
            since_previous=since,
            interval=interval,
            answer=answer,
            status=response.status,
            resource=request.form.get("resource"),
        )
        self._device_record(poll)
        return response

    def _device_record(self, poll: DevicePoll) -> None:
        with self._device_changed:
            self._device_polls.append(poll)
            self._device_changed.notify_all()

    def _device_authorization(self, request: HTTPRequest) -> HTTPResponse:
        return self._authz.device_response(request)

    def _device_verification(self, request: HTTPRequest) -> HTTPResponse:
        code = html_escape(request.query.get("user_code", ""))
        page = (
            "<!DOCTYPE html><html><head><title>Device login</title></head><body>"
            f"<h1>Confirm the code</h1><p>{code}</p></body></html>"
        ).encode()
        return HTTPResponse(200, page, [("Content-Type", "text/html; charset=utf-8")])

    def _device_approve(self, request: HTTPRequest) -> HTTPResponse:
        params: JSONDict
        ctype = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        try:
            if ctype == "application/json":
                loaded = json.loads(request.body or b"{}")
                params = loaded if isinstance(loaded, dict) else {}
            else:
                params = dict(request.form)
                if "org" in params:
                    params["org"] = json.loads(params["org"])
        except ValueError:
            return HTTPResponse.oauth_error(400, "invalid_request", "malformed body")
        user_code = params.get("user_code")
        decision = params.get("decision", "approve")
        organizations = params.get("org", self.device_organizations)
        if (
            not isinstance(user_code, str)
            or decision not in ("approve", "deny")
            or not isinstance(organizations, list)
        ):
            return HTTPResponse.oauth_error(400, "invalid_request", "user_code, decision, org")
        with self._device_changed:
            state = self._device_by_user_code.get(_normalise_user_code(user_code))
            if state is None:
                return HTTPResponse.oauth_error(404, "invalid_user_code")
            if time.monotonic() >= state.expires_at:
                return HTTPResponse.oauth_error(400, "expired_token")
            if state.decision is not None:
                return HTTPResponse.oauth_error(409, "already_decided", state.decision)
            state.decision = "approved" if decision == "approve" else "denied"
            state.subject = str(params.get("sub", self.subject))
            state.email = str(params.get("email", self.email))
            state.organizations = [dict(o) for o in organizations if isinstance(o, dict)]
            self._device_changed.notify_all()
        return HTTPResponse.json({"user_code": state.auth.user_code, "decision": state.decision})


# --------------------------------------------------------------------------
# Stack auth server
# --------------------------------------------------------------------------


class _MembershipAssertionGrant(JWTBearerGrant):  # type: ignore[misc]
    """RFC 7523 grant whose assertion is a stack access token from the membership IdP.

    No client authentication: the "client" is the trusted issuer (the IdP),
    resolved from the assertion's ``iss``; the signature is verified by authlib
    against the IdP's public key, then :meth:`verify_claims` checks iss/exp and
    the test-controlled rejection policy.
    """

    def resolve_issuer_client(self, issuer: str) -> _PublicClient | None:
        stack: StackAuthServer = self.server.stack
        return stack._issuer_client(issuer)

    def resolve_client_public_key(self, client: _PublicClient) -> RSAKey:
        assert client.public_key is not None
        return client.public_key

    def authenticate_user(self, subject: str) -> str:
        return subject

    def has_granted_permission(self, client: _PublicClient, user: str) -> bool:
        return True

    def verify_claims(self, claims: Mapping[str, Any]) -> None:
        stack: StackAuthServer = self.server.stack
        stack._verify_assertion_claims(claims)


ClientAuthMethod = Literal["client_secret_basic", "client_secret_post"]
UnknownScopePolicy = Literal["drop", "reject"]


@dataclass(frozen=True)
class ConfidentialClient:
    """A stack OAuth client (``fctl auth clients create``), authlib ClientMixin duck-typed.

    ``unknown_scope``: what authlib does with a requested scope the client may not
    have -- ``"drop"`` it from the issued token (the usual ClientMixin), or
    ``"reject"`` the request with ``invalid_scope`` (``get_allowed_scope`` returns
    None, RFC 6749 section 5.2).
    """

    client_id: str
    client_secret: str = field(repr=False)
    auth_methods: frozenset[str]
    scopes: frozenset[str]
    unknown_scope: UnknownScopePolicy = "drop"
    #: Scope of the token when the request has none (RFC 6749 section 3.3 "pre-defined default").
    default_scope: str = ""
    #: ``expires_in`` of this client's tokens; None: the server's ``expires_in``.
    expires_in: int | None = None

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret.encode(), self.client_secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in self.auth_methods

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == CLIENT_CREDENTIALS_GRANT_TYPE

    def get_allowed_scope(self, scope: str | None) -> str | None:
        if not scope:
            return self.default_scope
        requested = scope.split()
        allowed = [s for s in requested if s in self.scopes]
        if self.unknown_scope == "reject" and len(allowed) != len(requested):
            return None
        return " ".join(allowed)


@dataclass(frozen=True)
class ClientCredentialsRequest:
    """One ``grant_type=client_credentials`` request at the stack's token endpoint."""

    #: As presented: the Basic user name, else the form's ``client_id``.
    client_id: str | None
    #: How the request presented credentials: ``client_secret_basic``,
    #: ``client_secret_post``, ``both`` (RFC 6749 section 2.3 forbids it) or ``none``.
    auth_method: str
    #: The method authlib accepted, None when the client was not authenticated.
    authenticated_method: str | None
    #: ``scope`` as requested (None: absent) and as granted (None: no token).
    scope: str | None
    granted_scope: str | None
    status: int
    error: str | None


def _presented_client_auth(request: HTTPRequest) -> tuple[str | None, str]:
    basic_user, _ = _basic_credentials(request.headers.get("Authorization"))
    posted = "client_secret" in request.form
    if basic_user is not None and posted:
        return basic_user, "both"
    if basic_user is not None:
        return basic_user, "client_secret_basic"
    return request.form.get("client_id"), "client_secret_post" if posted else "none"


class _StackClientCredentialsGrant(ClientCredentialsGrant):  # type: ignore[misc]
    """RFC 6749 section 4.4 for the stack's confidential clients (either secret method;
    each client allows its own subset)."""

    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = [
        "client_secret_basic",
        "client_secret_post",
    ]


class _StackAuthorizationServer(_StdlibAuthorizationServer):
    def __init__(self, stack: StackAuthServer) -> None:
        super().__init__()
        self.stack = stack
        self.register_grant(_MembershipAssertionGrant)
        self.register_grant(_StackClientCredentialsGrant)
        self.register_token_generator(
            "default",
            BearerTokenGenerator(
                access_token_generator=stack._generate_access_token,
                expires_generator=stack._expires_in,
            ),
        )

    def query_client(self, client_id: str) -> ConfidentialClient | None:
        # Only client credentials authenticate clients; the JWT-bearer grant
        # resolves its "client" from the assertion's issuer instead.
        return self.stack._find_client(client_id)

    def save_token(self, token: JSONDict, request: _AuthlibRequest) -> None:
        grant_type = request.payload.grant_type or JWT_BEARER_GRANT_TYPE
        client_id = None
        if grant_type == CLIENT_CREDENTIALS_GRANT_TYPE and request.client is not None:
            client_id = request.client.get_client_id()
        self.stack._remember_issued(token, grant_type=grant_type, client_id=client_id)


@dataclass(frozen=True)
class IssuedToken:
    access_token: str = field(repr=False)
    expires_at: float | None
    issued_at: float
    grant_type: str = JWT_BEARER_GRANT_TYPE
    #: The confidential client, for client-credentials tokens.
    client_id: str | None = None
    scope: str = ""


class StackAuthServer(LoopbackOAuthServer):
    """A stack's auth server at stack URI ``http://127.0.0.1:Q``.

    Endpoints: ``GET /api/auth/.well-known/openid-configuration``,
    ``POST /api/auth/oauth/token`` (JWT-bearer, assertion = membership access
    token; and ``client_credentials`` for clients added with :meth:`add_client`),
    and ``GET /api/ledger/_info`` (200 with a valid issued bearer token, else 401).
    """

    name: ClassVar[str] = "stack"
    DISCOVERY: ClassVar[str] = "GET /api/auth/.well-known/openid-configuration"
    TOKEN: ClassVar[str] = "POST /api/auth/oauth/token"
    RESOURCE: ClassVar[str] = "GET /api/ledger/_info"
    REVOCATION: ClassVar[str] = "POST /api/auth/oauth/revoke"
    #: Whether discovery names ``revocation_endpoint`` (False: a provider without one).
    advertise_revocation: bool = True

    def __init__(
        self,
        membership: MembershipServer,
        *,
        port: int = 0,
        expires_in: int | None = 3600,
        access_token_format: Literal["opaque", "jwt"] = "opaque",
        jwt_lifetime: int = 3600,
        discovery_cache_control: str | None = "max-age=3600",
        assertion_leeway: int = 0,
        signing_key: RSAKey | None = None,
        token_endpoint_auth_methods: Sequence[str] | None = DEFAULT_STACK_AUTH_METHODS,
        client_credentials_expires_in: int | None = None,
        scope_in_response: bool = True,
    ) -> None:
        super().__init__(port=port, discovery_cache_control=discovery_cache_control)
        self.membership = membership
        #: ``expires_in`` of client-credentials tokens (None: :attr:`expires_in`);
        #: Formance's stacks give them an hour and user tokens 5 minutes.
        self.client_credentials_expires_in = client_credentials_expires_in
        #: Whether token responses carry ``scope``; Formance's do not (only the
        #: JWT's ``scope`` claim says what was granted).
        self.scope_in_response = scope_in_response
        #: Discovery's ``token_endpoint_auth_methods_supported``; None omits the
        #: field (RFC 8414 section 2: the client then assumes ``client_secret_basic``).
        #: What the discovery says does not change what the endpoint accepts:
        #: each client's ``auth_methods`` does.
        self.token_endpoint_auth_methods: Sequence[str] | None = token_endpoint_auth_methods
        self._clients: dict[str, ConfidentialClient] = {}
        self._cc_requests: list[ClientCredentialsRequest] = []
        #: ``expires_in`` of issued tokens; None (or 0) -> the field is absent.
        self.expires_in = expires_in
        #: "opaque" random strings, or "jwt" (RS256, signed with :attr:`signing_key`).
        self.access_token_format: Literal["opaque", "jwt"] = access_token_format
        #: ``exp - iat`` of JWT tokens when :attr:`expires_in` is None.
        self.jwt_lifetime = jwt_lifetime
        #: Clock-skew leeway (s) when checking the assertion's ``exp``.
        self.assertion_leeway = assertion_leeway
        self.signing_key = signing_key or _shared_rsa_key("stack")
        self._policy_lock = threading.Lock()
        self._reject_all = False
        self._reject_issued_before: float | None = None
        self._rejected_ids: set[str] = set()
        self._issued: list[IssuedToken] = []
        self._authz = _StackAuthorizationServer(self)
        self._route(self.DISCOVERY, self._discovery)
        self._route(self.TOKEN, self._token)
        self._route(self.RESOURCE, self._resource)
        self._route(self.REVOCATION, self._revocation)

    # -- URLs ------------------------------------------------------------------
    @property
    def stack_uri(self) -> str:
        """``http://127.0.0.1:Q`` (the ``uri`` in the ID token's org[].stacks[])."""
        return self.origin

    @property
    def issuer(self) -> str:
        return f"{self.origin}/api/auth"

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/oauth/token"

    @property
    def revocation_endpoint(self) -> str:
        return f"{self.issuer}/oauth/revoke"

    @property
    def resource_url(self) -> str:
        return f"{self.origin}/api/ledger/_info"

    def public_key_pem(self) -> bytes:
        """Public key of JWT-format stack tokens."""
        return self.signing_key.as_pem(private=False)

    # -- rejection policy ----------------------------------------------------------
    def reject_all_assertions(self, reject: bool = True) -> None:
        """Answer every (otherwise valid) exchange with 400 invalid_grant."""
        with self._policy_lock:
            self._reject_all = reject

    def reject_assertions_issued_before(self, when: float | None) -> None:
        """Reject assertions whose ``iat`` is before ``when`` (epoch s); None clears.

        ``reject_assertions_issued_before(time.time())`` makes every token minted so
        far fail with invalid_grant while a freshly refreshed one succeeds.
        """
        with self._policy_lock:
            self._reject_issued_before = when

    def reject_assertion_ids(self, ids: Sequence[str]) -> None:
        """Reject assertions whose ``jti`` is one of ``ids`` with invalid_grant
        (as the stack does with an expired one)."""
        with self._policy_lock:
            self._rejected_ids.update(ids)

    # -- confidential clients (client credentials, RFC 6749 section 4.4) -------------------
    def add_client(
        self,
        client_id: str,
        client_secret: str,
        *,
        auth_methods: Sequence[ClientAuthMethod] = ("client_secret_basic", "client_secret_post"),
        scopes: Sequence[str] = ("ledger:read", "ledger:write"),
        unknown_scope: UnknownScopePolicy = "drop",
        default_scope: str = "",
        expires_in: int | None = None,
    ) -> ConfidentialClient:
        """Register (or replace) a confidential client for the client-credentials grant.

        A method outside ``auth_methods`` is rejected with 401 ``invalid_client``,
        as is a wrong secret. ``scopes`` are those the client may be granted
        (the SDK's own hook asks for the operation's, e.g. ``ledger:read``).
        """
        client = ConfidentialClient(
            client_id=client_id,
            client_secret=client_secret,
            auth_methods=frozenset(auth_methods),
            scopes=frozenset(scopes),
            unknown_scope=unknown_scope,
            default_scope=default_scope,
            expires_in=expires_in,
        )
        with self._policy_lock:
            self._clients[client_id] = client
        return client

    def remove_client(self, client_id: str) -> None:
        """Forget a client (its next request: 401 invalid_client); its tokens stay valid."""
        with self._policy_lock:
            self._clients.pop(client_id, None)

    @property
    def client_credentials_requests(self) -> list[ClientCredentialsRequest]:
        """Every client-credentials request, in order, with the auth method it used."""
        with self._policy_lock:
            return list(self._cc_requests)

    @property
    def client_credentials_count(self) -> int:
        """Requests with ``grant_type=client_credentials`` (faulted ones included)."""
        return self.count_grant(CLIENT_CREDENTIALS_GRANT_TYPE)

    def _find_client(self, client_id: str) -> ConfidentialClient | None:
        with self._policy_lock:
            return self._clients.get(client_id)

    # -- issued tokens ---------------------------------------------------------------
    @property
    def issued_tokens(self) -> list[IssuedToken]:
        with self._policy_lock:
            return list(self._issued)

    def issued_token(self, access_token: str) -> IssuedToken | None:
        """The record of a token this server issued and has not revoked, else None."""
        with self._policy_lock:
            for t in self._issued:
                if secrets.compare_digest(t.access_token, access_token):
                    return t
        return None

    def is_valid_access_token(self, access_token: str) -> bool:
        """Issued here (any grant), not revoked, not expired."""
        issued = self.issued_token(access_token)
        return issued is not None and (
            issued.expires_at is None or self.clock() < issued.expires_at
        )

    def revoke_issued_tokens(self) -> None:
        """The resource endpoint rejects every token issued so far (401)."""
        with self._policy_lock:
            self._issued.clear()

    def expire_issued_tokens(self) -> None:
        """Every token issued so far is expired from now on (the resource: 401)."""
        now = self.clock()
        with self._policy_lock:
            self._issued = [
                t
                if t.expires_at is not None and t.expires_at <= now
                else dataclasses.replace(t, expires_at=now)
                for t in self._issued
            ]

    # -- authlib callbacks -------------------------------------------------------------
    def _issuer_client(self, issuer: str) -> _PublicClient | None:
        idp = self.membership
        try:
            if issuer != idp.issuer:
                return None
        except RuntimeError:  # the IdP was never started: it issued nothing
            return None
        return _PublicClient(
            idp.issuer,
            grant_types=frozenset({JWT_BEARER_GRANT_TYPE}),
            scopes=frozenset({"openid", "email", "profile", "offline_access"}),
            auth_method="none",
            public_key=idp.public_key,
        )

    def _verify_assertion_claims(self, claims: Mapping[str, Any]) -> None:
        registry = jwt.JWTClaimsRegistry(
            now=lambda: int(self.clock()),  # a callable since joserfc 1.3
            leeway=self.assertion_leeway,
            iss={"essential": True, "value": self.membership.issuer},
            exp={"essential": True},
        )
        try:
            registry.validate(dict(claims))
        except JoseError as exc:
            raise InvalidGrantError(description=_safe_description(exc.description)) from exc
        with self._policy_lock:
            reject_all, before = self._reject_all, self._reject_issued_before
            rejected_id = claims.get("jti") in self._rejected_ids
        if rejected_id:
            raise InvalidGrantError(description="assertion expired")
        if reject_all:
            raise InvalidGrantError(description="assertion rejected by server policy")
        if before is not None:
            iat = claims.get("iat")
            if not isinstance(iat, (int, float)) or iat < before:
                raise InvalidGrantError(description="assertion issued before revocation")

    def _expires_in(self, client: object, grant_type: str) -> int:
        if isinstance(client, ConfidentialClient) and client.expires_in is not None:
            return client.expires_in
        if grant_type == CLIENT_CREDENTIALS_GRANT_TYPE and self.client_credentials_expires_in:
            return self.client_credentials_expires_in
        return self.expires_in or 0

    def _generate_access_token(
        self, client: object, grant_type: str, user: str | None, scope: str, **_: Any
    ) -> str:
        if self.access_token_format == "opaque":
            return "st_" + secrets.token_urlsafe(32)
        iat = int(self.clock())
        lifetime = self._expires_in(client, grant_type) or self.jwt_lifetime
        if isinstance(client, ConfidentialClient):
            user = client.client_id  # RFC 6749 section 4.4: the client acts for itself
        claims: JSONDict = {
            "iss": self.issuer,
            "sub": user or "",
            "aud": self.stack_uri,
            "iat": iat,
            "exp": iat + lifetime,
            "scope": scope,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode({"alg": "RS256", "kid": self.signing_key.kid}, claims, self.signing_key)

    def _remember_issued(
        self,
        token: Mapping[str, Any],
        *,
        grant_type: str = JWT_BEARER_GRANT_TYPE,
        client_id: str | None = None,
    ) -> None:
        now = self.clock()
        expires_in = token.get("expires_in")
        access = str(token.get("access_token", ""))
        expires_at: float | None = now + expires_in if isinstance(expires_in, int) else None
        if expires_at is None and self.access_token_format == "jwt":
            exp = decode_jwt_unverified(access).get("exp")
            expires_at = float(exp) if isinstance(exp, (int, float)) else None
        issued = IssuedToken(
            access, expires_at, now, grant_type, client_id, str(token.get("scope", ""))
        )
        with self._policy_lock:
            self._issued.append(issued)

    # -- routes ------------------------------------------------------------------------
    def _discovery(self, request: HTTPRequest) -> HTTPResponse:
        doc: JSONDict = {
            "issuer": self.issuer,
            "token_endpoint": self.token_endpoint,
            "grant_types_supported": [JWT_BEARER_GRANT_TYPE, CLIENT_CREDENTIALS_GRANT_TYPE],
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }
        if self.token_endpoint_auth_methods is not None:
            doc["token_endpoint_auth_methods_supported"] = list(self.token_endpoint_auth_methods)
        if self.advertise_revocation:
            doc["revocation_endpoint"] = self.revocation_endpoint
        return self._discovery_response(doc)

    def _token(self, request: HTTPRequest) -> HTTPResponse:
        authlib_request = _AuthlibRequest(request)
        response = self._authz.token_response(authlib_request)
        if request.form.get("grant_type") == CLIENT_CREDENTIALS_GRANT_TYPE:
            self._record_client_credentials(request, authlib_request, response)
        if response.status == 200 and not self.scope_in_response:
            body = json.loads(response.body)
            body.pop("scope", None)
            response = dataclasses.replace(response, body=_json_bytes(body))
        return response

    def _revocation(self, request: HTTPRequest) -> HTTPResponse:
        """RFC 7009 with the client's own authentication (basic or post).

        A JWT-bearer token has no client to authenticate as, so revoking it
        answers ``invalid_client``, as Formance's stacks do; a token of another
        client, or unknown, answers 200 unrevoked (RFC 7009 section 2.2).
        """
        client_id, presented = _presented_client_auth(request)
        _, basic_secret = _basic_credentials(request.headers.get("Authorization"))
        secret = basic_secret if presented == "client_secret_basic" else None
        if presented == "client_secret_post":
            secret = request.form.get("client_secret")
        client = self._find_client(client_id) if client_id else None
        if (
            client is None
            or secret is None
            or presented not in client.auth_methods
            or not client.check_client_secret(secret)
        ):
            return HTTPResponse.oauth_error(401, "invalid_client")
        token = request.form.get("token")
        if not token:
            return HTTPResponse.oauth_error(400, "invalid_request", "token is required")
        with self._policy_lock:
            self._issued = [
                t
                for t in self._issued
                if not (
                    t.client_id == client.client_id
                    and secrets.compare_digest(t.access_token, token)
                )
            ]
        return HTTPResponse(200, b"", [("Cache-Control", "no-store")])

    def _record_client_credentials(
        self, request: HTTPRequest, authlib_request: _AuthlibRequest, response: HTTPResponse
    ) -> None:
        client_id, presented = _presented_client_auth(request)
        try:
            body = json.loads(response.body)
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        granted = body.get("scope", "") if response.status == 200 else None
        record = ClientCredentialsRequest(
            client_id=client_id,
            auth_method=presented,
            authenticated_method=authlib_request.auth_method,
            scope=request.form.get("scope"),
            granted_scope=granted,
            status=response.status,
            error=body.get("error"),
        )
        with self._policy_lock:
            self._cc_requests.append(record)

    def _resource(self, request: HTTPRequest) -> HTTPResponse:
        auth = request.headers.get("Authorization") or ""
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value and self.is_valid_access_token(value):
            return HTTPResponse.json({"server": "ledger", "version": "test"})
        return HTTPResponse.json(
            {"error": "invalid_token"},
            401,
            [("WWW-Authenticate", 'Bearer error="invalid_token"')],
        )


# --------------------------------------------------------------------------
# fctl on-disk profile
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class FctlProfile:
    """What :func:`write_fctl_profile` wrote (paths, names and tokens)."""

    config_dir: Path
    config_path: Path
    profile_dir: Path
    profile_path: Path
    stack_dir: Path
    accesses_path: Path
    #: Where stacktoken/fctl keep the stack API token (not written here).
    api_token_cache_path: Path
    profile: str
    organization: str
    stack_id: str
    membership_uri: str
    stack_uri: str
    stack_access_token: str = field(repr=False)
    stack_refresh_token: str = field(repr=False)
    stack_access_claims: JSONDict = field(repr=False)
    root_access_token: str = field(repr=False)
    root_refresh_token: str = field(repr=False)
    id_token: str = field(repr=False)


def _mkdir_private(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def _write_private_json(path: Path, obj: object) -> None:
    data = json.dumps(obj, indent=2).encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
    finally:
        os.close(fd)


def _read_json_dict(path: Path) -> JSONDict | None:
    try:
        value = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def write_fctl_profile(
    config_dir: Path,
    membership: MembershipServer,
    stack: StackAuthServer,
    *,
    profile: str = "default",
    org: str = "orgA",
    stack_id: str = "stk1",
    stack_access_exp_in: int = 3600,
    set_current_profile: bool = True,
    set_defaults: bool = True,
) -> FctlProfile:
    """Write fctl's layout (docs/design.md §3.1-3.3) for one (profile, org, stack).

    Calling it again for another org/stack of the same profile adds that
    org/stack to the ID token's ``org`` claim (existing ones are kept).
    Directories are 0700, files 0600. Tokens are minted by ``membership`` and
    the refresh tokens are live there.
    """
    config_dir = Path(config_dir)
    profile_dir = config_dir / "profiles" / profile
    stack_dir = profile_dir / "organizations" / org / "stacks" / stack_id
    _mkdir_private(config_dir)
    for d in (
        config_dir / "profiles",
        profile_dir,
        profile_dir / "organizations",
        profile_dir / "organizations" / org,
        profile_dir / "organizations" / org / "stacks",
        stack_dir,
    ):
        _mkdir_private(d)

    # config.yml (JSON despite the name)
    config_path = config_dir / "config.yml"
    config = _read_json_dict(config_path) or {}
    config.setdefault("uniqueID", str(uuid.uuid4()))
    if set_current_profile or "currentProfile" not in config:
        config["currentProfile"] = profile
    _write_private_json(config_path, config)

    # profile.json
    profile_path = profile_dir / "profile.json"
    existing = _read_json_dict(profile_path) or {}
    organizations: list[JSONDict] = []
    try:
        old_orgs = existing["rootTokens"]["idToken"]["claims"]["org"]
        if isinstance(old_orgs, list):
            organizations = [o for o in old_orgs if isinstance(o, dict)]
    except (KeyError, TypeError):
        pass
    org_entry = next((o for o in organizations if o.get("id") == org), None)
    if org_entry is None:
        org_entry = {"id": org, "displayName": org, "stacks": [], "applications": []}
        organizations.append(org_entry)
    stacks = org_entry.get("stacks")
    if not isinstance(stacks, list):
        stacks = []
        org_entry["stacks"] = stacks
    stacks[:] = [s for s in stacks if not (isinstance(s, dict) and s.get("id") == stack_id)]
    stacks.append(
        {
            "id": stack_id,
            "displayName": stack_id,
            "uri": stack.stack_uri,
            "scopes": ["stack:Read", "stack:Write"],
        }
    )
    id_token = membership.mint_id_token(organizations)
    root_access, root_refresh = membership.mint_root_tokens()
    profile_doc = dict(existing)
    profile_doc["membershipURI"] = membership.base_url
    profile_doc["rootTokens"] = {
        "accessToken": {
            "token": root_access,
            "claims": decode_jwt_unverified(root_access),
            "refreshToken": root_refresh,
        },
        "idToken": {"token": id_token, "claims": decode_jwt_unverified(id_token)},
    }
    if set_defaults or "defaultOrganization" not in profile_doc:
        profile_doc["defaultOrganization"] = org
    if set_defaults or "defaultStack" not in profile_doc:
        profile_doc["defaultStack"] = stack_id
    _write_private_json(profile_path, profile_doc)

    # accesses.json
    access, refresh = membership.mint_stack_access(stack_access_exp_in, organization_id=org)
    claims = decode_jwt_unverified(access)
    accesses_path = stack_dir / "accesses.json"
    _write_private_json(accesses_path, {"token": access, "claims": claims, "refreshToken": refresh})

    return FctlProfile(
        config_dir=config_dir,
        config_path=config_path,
        profile_dir=profile_dir,
        profile_path=profile_path,
        stack_dir=stack_dir,
        accesses_path=accesses_path,
        api_token_cache_path=stack_dir / "api_token_cache.json",
        profile=profile,
        organization=org,
        stack_id=stack_id,
        membership_uri=membership.base_url,
        stack_uri=stack.stack_uri,
        stack_access_token=access,
        stack_refresh_token=refresh,
        stack_access_claims=claims,
        root_access_token=root_access,
        root_refresh_token=root_refresh,
        id_token=id_token,
    )
