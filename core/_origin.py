"""Where a stack API token may be sent: its own stack's origin, and nowhere else.

An `httpx.Auth` is asked for every request of its client, whatever the URL:
an absolute URL given to `stack_client`, or an SDK operation's `server_url=`,
would otherwise carry the token to another host. The token goes only to the
origin (RFC 6454: scheme, host, port) of the stack URI it was issued for, and
over plain http only to a loopback host (docs/design.md §5).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ._urls import is_loopback, safe_url

__all__ = ["Origin", "origin", "token_refusal"]

Origin = tuple[str, str, int]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> Origin | None:
    """The (scheme, host, port) of `url`, default ports made explicit; None if it has none."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    return scheme, host, port if port is not None else _DEFAULT_PORTS[scheme]


def token_refusal(request_url: str, *, stack_uri: str) -> str | None:
    """Why the token for `stack_uri` must not go to `request_url`, or None when it may."""
    target, own = origin(request_url), origin(stack_uri)
    shown = safe_url(request_url)
    if target is None or own is None or target != own:
        return (
            f"refusing to send the stack token to {shown!r}: it goes only to its own stack"
            f" ({safe_url(stack_uri)})"
        )
    scheme, host, _ = target
    if scheme != "https" and not is_loopback(host):
        return f"refusing to send the stack token over plain http to {shown!r}"
    return None
