"""Text from servers and users, made fit for one line of output."""

__all__ = ["MIN_SECRET_PIECE", "escaped", "one_line", "redact"]

#: The shortest run of characters shared with a secret that is redacted: long
#: enough that ordinary words are left alone (secrets are random), short enough
#: that no useful piece of a secret (a prefix, half a split copy, a JWT's
#: signature part) gets through.
MIN_SECRET_PIECE = 8
#: Server text is cut to this before it is searched (the answer is already
#: capped at 1 MiB; a one-line error shows 200 characters of it).
_MAX_SEARCHED = 4096
REDACTED = "[redacted]"


def one_line(text: str, limit: int = 200) -> str:
    """Server-provided text made safe for a one-line error: no control chars, bounded."""
    cleaned = "".join(char if char.isprintable() else " " for char in text)
    return cleaned if len(cleaned) <= limit else cleaned[:limit] + "..."


def escaped(text: str) -> str:
    """Text found on disk (a folder name) escaped to one printable line, as Python
    escapes it (`\\x1b`, `\\n`, `\\udcff`): an escape sequence must not reach the
    terminal, a newline or an undecodable byte must not break a listing."""
    return "".join(
        char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        for char in text
    )


def redact(text: str, secrets: "tuple[str, ...]") -> str:
    """`text` with every run of `MIN_SECRET_PIECE` or more characters that also
    occurs in one of `secrets` replaced by `[redacted]`: a whole secret, a
    prefix, a suffix, each half of a split copy, a JWT's signature part."""
    text = text[:_MAX_SEARCHED]
    pieces = {
        secret[start : start + MIN_SECRET_PIECE]
        for secret in secrets
        for start in range(len(secret) - MIN_SECRET_PIECE + 1)
    }
    if not pieces:
        return text
    hidden = [False] * len(text)
    for start in range(len(text) - MIN_SECRET_PIECE + 1):
        if text[start : start + MIN_SECRET_PIECE] in pieces:
            hidden[start : start + MIN_SECRET_PIECE] = [True] * MIN_SECRET_PIECE
    shown: list[str] = []
    for char, hide in zip(text, hidden, strict=True):
        if not hide:
            shown.append(char)
        elif not shown or shown[-1] is not REDACTED:
            shown.append(REDACTED)
    return "".join(shown)
