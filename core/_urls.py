"""Which URLs may carry our secrets, and how a URL may be shown (docs/design.md §5).

https everywhere; plain http only to a loopback host (127.0.0.0/8, ::1,
localhost); never a user or password in the URL (httpx would send them as
HTTP Basic to whoever the URL names). `endpoint_url_refusal` is the rule as a
plain value, for the warm run of a machine credential, which checks the stack
URI too and cannot import `returns`; the cold path asks `check_endpoint_url`.
"""

from ._errors import RemoteError
from ._text import one_line

TYPE_CHECKING = False
if TYPE_CHECKING:
    from returns.result import Result

__all__ = ["check_endpoint_url", "endpoint_url_refusal", "is_loopback", "safe_url"]


def check_endpoint_url(url: str) -> "Result[str, RemoteError]":
    """`Success(url)` when secrets may be sent there, else why not."""
    from returns.result import Failure, Success

    refusal = endpoint_url_refusal(url)
    return Success(url) if refusal is None else Failure(refusal)


def endpoint_url_refusal(url: str) -> "RemoteError | None":
    """Why secrets may not be sent to `url`; None when they may."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return RemoteError(message=f"invalid URL {safe_url(url)!r}")
    if not host:
        return RemoteError(message=f"invalid URL {safe_url(url)!r}: no host")
    if "@" in parts.netloc:
        return RemoteError(
            message=f"refusing {safe_url(url)!r}: it carries a user or password "
            "(credentials never go in a URL)"
        )
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback(host)):
        return None
    return RemoteError(
        message=f"refusing {safe_url(url)!r}: endpoints must use https "
        "(plain http only on loopback)"
    )


def safe_url(url: str) -> str:
    """A URL fit for a log line or message: no credentials, query or fragment; bounded."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    host = parts.netloc.rpartition("@")[2]
    return one_line(f"{parts.scheme}://{host}{parts.path}", limit=300)


def is_loopback(host: str) -> bool:
    """`localhost`, or an IP address of the loopback network."""
    if host.lower() == "localhost":
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
