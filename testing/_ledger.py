"""A loopback stub of a stack's ledger v2 API, for the official SDK (docs/design.md §10).

:class:`LedgerStub` adds two routes to a :class:`~stacktoken.testing.StackAuthServer`,
so they share its origin (the stack URI) and its registry of issued tokens:

* ``GET /api/ledger/_/info`` -- ``sdk.ledger.v2.get_info()`` (formance-sdk-python
  9.x calls this path, not ``/api/ledger/v2/_info``) -> ``V2ConfigInfo``
  ``{"server", "version"}``;
* ``GET /api/ledger/v2`` -- ``sdk.ledger.v2.list_ledgers(request=...)`` with
  cursor pagination -> ``V2LedgerListResponse``
  ``{"cursor": {"pageSize", "hasMore", "next"?, "previous"?, "data": [V2Ledger]}}``.

Both want ``Authorization: Bearer <token>`` for a token the stack issued
(JWT-bearer or client credentials) that is neither revoked nor expired. As the
ledger does (go-libs ``auth.Middleware`` behind a router that sets
``Content-Type: application/json`` first), a missing or unknown token gets 401
with an empty body. :meth:`LedgerStub.reject_next_valid_tokens` turns the next N
*valid* tokens away the same way, to test a 401-once retry. Bodies are what the
SDK's pydantic models parse (checked by tests/test_servers_ledger.py with the
real SDK).
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from ._servers import HTTPRequest, HTTPResponse, StackAuthServer

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "LedgerCall",
    "LedgerStub",
]

#: The ledger's defaults for cursor pagination (go-libs bunpaginate).
DEFAULT_PAGE_SIZE: Final = 15
MAX_PAGE_SIZE: Final = 100

JSONDict = dict[str, Any]


@dataclass(frozen=True)
class LedgerCall:
    """One request to the stub's API."""

    endpoint: str
    status: int
    #: The bearer token presented (None: no bearer).
    token: str | None = field(repr=False)
    #: Whether the token was one the stack issued, unrevoked and unexpired.
    token_valid: bool
    #: Turned away by :meth:`LedgerStub.reject_next_valid_tokens`.
    rejected_on_purpose: bool
    query: dict[str, str]


def _encode_cursor(offset: int, page_size: int) -> str:
    raw = json.dumps({"offset": offset, "pageSize": page_size}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()


def _decode_cursor(cursor: str) -> tuple[int, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
        offset, page_size = value["offset"], value["pageSize"]
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise ValueError("invalid cursor") from exc
    if not isinstance(offset, int) or not isinstance(page_size, int) or offset < 0:
        raise ValueError("invalid cursor")
    return offset, page_size


def _ledger(index: int, name: str) -> JSONDict:
    return {
        "id": index + 1,
        "name": name,
        "bucket": "_default",
        "metadata": {"index": str(index)},
        "features": {"HASH_LOGS": "SYNC", "MOVES_HISTORY": "ON"},
        "addedAt": f"2024-01-{1 + index % 28:02d}T12:00:00Z",
    }


class LedgerStub:
    """The ledger v2 routes on ``stack`` (see the module docstring).

    ``ledgers``: how many (named ``ledger-000``...) or their names.
    ``check_scopes``: like the ledger's ``checkScopes``, a token whose scope has
    neither ``ledger:read`` nor ``ledger:write`` gets 403 (empty body).
    ``info_requires_auth``: older ledgers served ``_info`` without auth.
    """

    INFO: Final = "GET /api/ledger/_/info"
    LIST: Final = "GET /api/ledger/v2"

    def __init__(
        self,
        stack: StackAuthServer,
        *,
        ledgers: int | Sequence[str] = 20,
        version: str = "v2.2.0-stub",
        check_scopes: bool = False,
        info_requires_auth: bool = True,
    ) -> None:
        self.stack = stack
        names = [f"ledger-{i:03d}" for i in range(ledgers)] if isinstance(ledgers, int) else ledgers
        self.ledgers: list[JSONDict] = [_ledger(i, n) for i, n in enumerate(names)]
        self.version = version
        self.check_scopes = check_scopes
        self.info_requires_auth = info_requires_auth
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._reject_next = 0
        self._calls: list[LedgerCall] = []
        stack.add_route(self.INFO, self._info)
        stack.add_route(self.LIST, self._list)

    # -- URLs ------------------------------------------------------------------
    @property
    def server_url(self) -> str:
        """What to give the SDK as ``server_url``: the stack URI."""
        return self.stack.stack_uri

    @property
    def info_url(self) -> str:
        return f"{self.stack.origin}/api/ledger/_/info"

    @property
    def list_url(self) -> str:
        return f"{self.stack.origin}/api/ledger/v2"

    # -- script and record -------------------------------------------------------
    def reject_next_valid_tokens(self, count: int) -> None:
        """The next ``count`` requests bearing a *valid* token get 401 anyway."""
        with self._lock:
            self._reject_next += count

    @property
    def pending_rejections(self) -> int:
        with self._lock:
            return self._reject_next

    @property
    def calls(self) -> list[LedgerCall]:
        with self._lock:
            return list(self._calls)

    def count(self, endpoint: str | None = None) -> int:
        """Calls received (of one endpoint, e.g. ``LedgerStub.INFO``, or of both)."""
        with self._lock:
            return sum(1 for c in self._calls if endpoint is None or c.endpoint == endpoint)

    @property
    def accepted(self) -> int:
        with self._lock:
            return sum(1 for c in self._calls if c.status < 400)

    @property
    def unauthorized(self) -> int:
        with self._lock:
            return sum(1 for c in self._calls if c.status == 401)

    def wait_for_calls(self, count: int, timeout: float = 5.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: len(self._calls) >= count, timeout)

    def reset(self) -> None:
        """Forget calls and pending rejections."""
        with self._lock:
            self._calls.clear()
            self._reject_next = 0

    # -- routes --------------------------------------------------------------------
    def _authorize(self, request: HTTPRequest, *, required: bool = True) -> _Bearer:
        """Who is calling, and the refusal (already recorded) if they may not."""
        header = request.headers.get("Authorization") or ""
        scheme, _, value = header.partition(" ")
        token = value.strip() if scheme.lower() == "bearer" and value.strip() else None
        valid = token is not None and self.stack.is_valid_access_token(token)
        on_purpose = False
        with self._lock:
            if valid and self._reject_next > 0:
                self._reject_next -= 1
                on_purpose = True
        bearer = _Bearer(token, valid)
        if on_purpose or (required and not valid):
            bearer.refusal = self._refuse(request, 401, bearer, on_purpose=on_purpose)
        elif valid and self.check_scopes and token is not None:
            issued = self.stack.issued_token(token)
            scopes = set((issued.scope if issued else "").split())
            if not scopes & {"ledger:read", "ledger:write"}:
                bearer.refusal = self._refuse(request, 403, bearer, on_purpose=False)
        return bearer

    def _record(self, request: HTTPRequest, status: int, bearer: _Bearer, on_purpose: bool) -> None:
        call = LedgerCall(
            request.endpoint, status, bearer.token, bearer.valid, on_purpose, dict(request.query)
        )
        with self._changed:
            self._calls.append(call)
            self._changed.notify_all()

    def _refuse(
        self, request: HTTPRequest, status: int, bearer: _Bearer, *, on_purpose: bool
    ) -> HTTPResponse:
        self._record(request, status, bearer, on_purpose)
        return HTTPResponse(status, b"", [("Content-Type", "application/json")])

    def _answer(
        self, request: HTTPRequest, status: int, body: object, bearer: _Bearer
    ) -> HTTPResponse:
        self._record(request, status, bearer, False)
        return HTTPResponse.json(body, status)

    def _info(self, request: HTTPRequest) -> HTTPResponse:
        bearer = self._authorize(request, required=self.info_requires_auth)
        if bearer.refusal is not None:
            return bearer.refusal
        return self._answer(request, 200, {"server": "ledger", "version": self.version}, bearer)

    def _list(self, request: HTTPRequest) -> HTTPResponse:
        bearer = self._authorize(request)
        if bearer.refusal is not None:
            return bearer.refusal
        cursor = request.query.get("cursor")
        try:
            if cursor:
                offset, page_size = _decode_cursor(cursor)
            else:
                offset = 0
                page_size = int(request.query.get("pageSize", DEFAULT_PAGE_SIZE))
            if page_size < 1:
                raise ValueError("pageSize must be positive")
        except ValueError as exc:
            error = {"errorCode": "VALIDATION", "errorMessage": str(exc)}
            return self._answer(request, 400, error, bearer)
        page_size = min(page_size, MAX_PAGE_SIZE)
        data = self.ledgers[offset : offset + page_size]
        page: JSONDict = {
            "pageSize": page_size,
            "hasMore": offset + page_size < len(self.ledgers),
            "data": data,
        }
        if page["hasMore"]:
            page["next"] = _encode_cursor(offset + page_size, page_size)
        if offset > 0:
            page["previous"] = _encode_cursor(max(0, offset - page_size), page_size)
        return self._answer(request, 200, {"cursor": page}, bearer)


@dataclass
class _Bearer:
    token: str | None = field(repr=False)
    valid: bool
    refusal: HTTPResponse | None = None
