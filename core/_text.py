"""Text from servers and users, made fit for one line of output."""

from __future__ import annotations

__all__ = ["one_line"]


def one_line(text: str, limit: int = 200) -> str:
    """Server-provided text made safe for a one-line error: no control chars, bounded."""
    cleaned = "".join(char if char.isprintable() else " " for char in text)
    return cleaned if len(cleaned) <= limit else cleaned[:limit] + "..."
