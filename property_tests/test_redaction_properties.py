"""Redacting secrets a server quotes back, whatever it does to them."""

from __future__ import annotations

from hypothesis import given, note
from hypothesis import strategies as st
from stacktoken.core._text import MIN_SECRET_PIECE, redact
from strategies import secrets

FILLER = st.text(st.characters(codec="ascii", categories=["L", "N", "P", "Zs"]), max_size=12)


def _pieces(secret: str) -> set[str]:
    return {secret[i : i + MIN_SECRET_PIECE] for i in range(len(secret) - MIN_SECRET_PIECE + 1)}


@st.composite
def echoes(draw: st.DrawFn) -> tuple[str, tuple[str, ...]]:
    """Server text mixing filler with slices of our secrets: whole, prefixes, splits."""
    sent = tuple(draw(st.lists(secrets("sent"), min_size=1, max_size=3)))
    parts: list[str] = []
    for _ in range(draw(st.integers(1, 6))):
        parts.append(draw(FILLER))
        secret = draw(st.sampled_from(sent))
        start = draw(st.integers(0, len(secret)))
        parts.append(secret[start : draw(st.integers(start, len(secret)))])
    return "".join(parts), sent


@given(echoes())
def test_redact_leaves_no_piece_of_a_secret(echo: tuple[str, tuple[str, ...]]) -> None:
    """No run of MIN_SECRET_PIECE characters of a secret survives redaction."""
    text, sent = echo
    shown = redact(text, sent)
    note(f"shown: {shown!r}")
    for secret in sent:
        for piece in _pieces(secret):
            assert piece not in shown


@given(FILLER, st.lists(secrets("sent"), max_size=3))
def test_redact_keeps_text_that_shares_no_piece_with_a_secret(text: str, sent: list[str]) -> None:
    """Text sharing no MIN_SECRET_PIECE-long run with any secret is left as it is."""
    shared = any(piece in text for secret in sent for piece in _pieces(secret))
    if not shared:
        assert redact(text, tuple(sent)) == text
