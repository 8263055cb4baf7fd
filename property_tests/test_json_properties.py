"""core/_json.py (docs/design.md §12): the warm path's JSON reader agrees with `json.loads`."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import event, given, note
from hypothesis import strategies as st
from stacktoken.core._json import NotJson, json_object, json_value
from strategies import arbitrary_bytes, json_bytes, json_values

_WHITESPACE = st.text(" \t\n\r", max_size=3)
# JSON texts as a file may hold them: any document, a BOM, whitespace around it,
# text after it, or bytes that are not UTF-8 at all.
DOCUMENTS = st.one_of(
    arbitrary_bytes(),
    st.builds(
        lambda bom, before, document, after, tail: (
            (bom + before).encode() + document + (after + tail).encode()
        ),
        st.sampled_from(["", "\ufeff"]),
        _WHITESPACE,
        json_bytes(json_values(max_leaves=6)),
        _WHITESPACE,
        st.sampled_from(["", "", "x", "{}", "\x00", "\u00a0", "\ufeff"]),
    ),
)


def _loads(data: bytes) -> tuple[Any, None] | tuple[None, str]:
    """The reference: `json.loads` of the UTF-8 text (a leading BOM dropped, as
    `json.loads(bytes)` drops it); the failure's wording is not compared."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None, "not UTF-8"
    try:
        return json.loads(text.removeprefix("\ufeff")), None
    except (ValueError, RecursionError):
        return None, "failed"


def _ours(data: bytes) -> tuple[Any, None] | tuple[None, str]:
    """`json_value` in the reference's shape: the value, or NotJson's reason."""
    value = json_value(data)
    return (None, value.reason) if isinstance(value, NotJson) else (value, None)


@given(DOCUMENTS)
def test_json_value_agrees_with_json_loads(data: bytes) -> None:
    """Any bytes: the value `json.loads` gives (NaN, -0.0, duplicate keys, lone surrogates
    alike), or a reason exactly when `json.loads` fails. Never an exception."""
    value, reason = _ours(data)
    expected, failure = _loads(data)
    note(f"ours: {value!r} {reason!r}; json.loads: {expected!r} {failure!r}")
    event("refused" if failure else "parsed")
    assert (reason is None) == (failure is None)
    if reason is None:
        assert repr(value) == repr(expected)  # repr: NaN equals NaN, -0.0 differs from 0.0
        assert type(value) is type(expected)
    else:
        assert isinstance(reason, str) and reason.isprintable() and reason
        assert value is None


@given(DOCUMENTS)
def test_json_object_is_json_value_when_it_is_an_object(data: bytes) -> None:
    """json_object gives the object json_value read, else a reason (a string)."""
    value, reason = _ours(data)
    result = json_object(data)
    if reason is None and isinstance(value, dict):
        assert repr(result) == repr(value)
    else:
        assert isinstance(result, str) and result


_JSON_EXAMPLES = [b"\xef\xbb\xbf{}", b' {"a": 1} \n', b"[NaN, -0.0]", b'{"a":1,"a":2}', b"1 x"]


@pytest.mark.parametrize("data", _JSON_EXAMPLES)
def test_json_value_agrees_with_json_loads_examples(data: bytes) -> None:
    """Recorded examples of the property above."""
    value, reason = _ours(data)
    expected, failure = _loads(data)
    assert (reason is None) == (failure is None)
    assert repr(value) == repr(expected)
