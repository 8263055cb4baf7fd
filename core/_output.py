"""What `stacktoken token` prints (DESIGN §7, issue 14): message builders, pure.

The formats follow the tools a token usually goes to next:
- `text`: the token alone, as `gcloud auth print-access-token`;
- `json`: `access_token`, `token_type`, `expiry` (RFC 3339 UTC), plus
  `expires_on` (epoch seconds, as Azure added after its DST bugs) and
  `stack_uri`, as `az account get-access-token -o json`;
- `env` / `env-no-export`: `FORMANCE_STACK_TOKEN` and `FORMANCE_STACK_URL`
  as shell assignments, as `aws configure export-credentials --format env`,
  for `eval "$(stacktoken token --output env)"`.
"""

from __future__ import annotations

from ._cache_codec import format_rfc3339

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._types import CachedToken

__all__ = ["OUTPUTS", "TOKEN_VARIABLE", "URL_VARIABLE", "render_token", "shell_quote"]

OUTPUTS = ("text", "json", "env", "env-no-export")
TOKEN_VARIABLE = "FORMANCE_STACK_TOKEN"  # noqa: S105 - a variable name
URL_VARIABLE = "FORMANCE_STACK_URL"
# Characters no POSIX shell gives a meaning to in a word (shlex's safe set).
_SHELL_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789@%+=:,./-_")


def render_token(entry: CachedToken, output: str, *, stack_uri: str | None) -> str:
    """`token --output <output>` for `entry`; `output` is one of `OUTPUTS`."""
    if output == "text":
        return entry.access_token + "\n"
    if output == "json":
        import json  # only --output json pays for it

        expiry = entry.expiry
        document = {
            "access_token": entry.access_token,
            "token_type": entry.token_type,
            "expiry": format_rfc3339(expiry) if expiry is not None else None,
            "expires_on": int(expiry.timestamp()) if expiry is not None else None,
            "stack_uri": stack_uri,
        }
        return json.dumps(document) + "\n"
    prefix = "export " if output == "env" else ""
    lines = [f"{prefix}{TOKEN_VARIABLE}={shell_quote(entry.access_token)}"]
    if stack_uri is not None:
        lines.append(f"{prefix}{URL_VARIABLE}={shell_quote(stack_uri)}")
    return "".join(line + "\n" for line in lines)


def shell_quote(text: str) -> str:
    """`text` as one word of a POSIX shell, as `shlex.quote` (which imports `re`) does."""
    if text and all(char in _SHELL_SAFE for char in text):
        return text
    return "'" + text.replace("'", "'\"'\"'") + "'"
