"""What `stacktoken token` prints (DESIGN §7): a message builder, pure."""

from __future__ import annotations

from ._cache_codec import format_rfc3339

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._types import CachedToken

__all__ = ["OUTPUTS", "render_token"]

OUTPUTS = ("text", "json")


def render_token(entry: CachedToken, output: str) -> str:
    """`token --output text|json` for `entry`; `output` is one of `OUTPUTS`."""
    if output == "text":
        return entry.access_token + "\n"
    import json  # only --output json pays for it

    expiry = format_rfc3339(entry.expiry) if entry.expiry is not None else None
    document = {
        "access_token": entry.access_token,
        "token_type": entry.token_type,
        "expiry": expiry,
    }
    return json.dumps(document) + "\n"
