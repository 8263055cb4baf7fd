"""Token output: shell words and JSON that other tools read back exactly."""

from __future__ import annotations

import json
import shlex
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st
from stacktoken.core._cache_codec import parse_rfc3339
from stacktoken.core._commands import render_token, shell_quote
from stacktoken.core._types import CachedToken
from strategies import aware_datetimes, token_texts

ANY_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=60)


@given(ANY_TEXT)
def test_shell_quote_is_shlex_quote(text: str) -> None:
    """Our quoting (written to keep `re` off the warm path) is exactly shlex's."""
    assert shell_quote(text) == shlex.quote(text)


@given(
    token_texts(), aware_datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1))
)
def test_json_output_expiry_and_expires_on_name_the_same_second(
    token: str, expiry: datetime
) -> None:
    """`expires_on` is the epoch second of `expiry` (which keeps microseconds)."""
    entry = CachedToken(access_token=token, token_type="Bearer", expiry=expiry)
    document = json.loads(render_token(entry, "json", stack_uri="https://s.example"))
    parsed = parse_rfc3339(document["expiry"])
    assert isinstance(parsed, datetime)
    assert parsed == expiry.astimezone(UTC)
    assert document["expires_on"] == int(expiry.timestamp())
    assert document["access_token"] == token


@given(token_texts())
def test_env_output_lines_split_back_into_the_token_by_shlex(token: str) -> None:
    """Each line of `--output env` is `export NAME=<one shell word>` whose value is the token."""
    entry = CachedToken(access_token=token, token_type="Bearer", expiry=None)
    line = render_token(entry, "env", stack_uri=None).splitlines()[0]
    assert shlex.split(line) == ["export", f"FORMANCE_STACK_TOKEN={token}"]
