"""The Redis store never shows its password (design.md §11): not in its repr, not in an error."""

from __future__ import annotations

from urllib.parse import quote

from hypothesis import given, note
from hypothesis import strategies as st
from stacktoken import InvalidUsageError, RedisStore
from strategies import redis_passwords

_PLACES = st.sampled_from(
    [
        "redis://:{p}@127.0.0.1:6379/0",
        "redis://user:{p}@redis.internal:6380/2",
        "rediss://:{p}@127.0.0.1/0?ssl_ca_certs=/ca.pem",
        "redis://127.0.0.1:6379/0?password={p}",
        "http://:{p}@127.0.0.1/0",  # refused: not a Redis URL
        "redis://:{p}@127.0.0.1:port/0",  # refused: not a port
    ]
)


@given(password=redis_passwords(), place=_PLACES)
def test_redis_store_repr_and_errors_never_show_the_password(password: str, place: str) -> None:
    url = place.format(p=quote(password, safe=""))
    note(url)
    try:
        shown = repr(RedisStore(url))
    except InvalidUsageError as error:
        shown = str(error)
    note(shown)
    assert password not in shown
    assert quote(password, safe="") not in shown
    assert "SECRET" not in shown
