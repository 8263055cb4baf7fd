"""Transport decisions (docs/design.md §5): URL policy, retries, discovery cache lifetime."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import event, given, note
from hypothesis import strategies as st
from returns.result import Failure, Success
from stacktoken.core._errors import RemoteError
from stacktoken.core._requests import (
    DEFAULT_DISCOVERY_MAX_AGE,
    NOT_ACTED_ON_STATUSES,
    RETRYABLE_STATUSES,
    DiscoveryTarget,
    RetryPolicy,
    discovery_max_age,
    membership_discovery,
    retry_delay,
    stack_discovery,
)
from stacktoken.core._urls import check_endpoint_url, endpoint_url_refusal, safe_url
from strategies import SECRET_MARKER, Url, urls

ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=60)
POLICIES = st.builds(
    RetryPolicy,
    attempts=st.integers(min_value=1, max_value=6),
    base_delay=st.floats(min_value=0, max_value=5),
    max_delay=st.floats(min_value=0, max_value=30),
    retry_after_cap=st.floats(min_value=0, max_value=60),
)


@given(urls())
def test_endpoint_urls_are_https_or_loopback_http(url: Url) -> None:
    """A URL is accepted iff it is https, or http to 127.0.0.0/8, ::1 or localhost, and
    carries no user or password: httpx would send them as HTTP Basic)."""
    result = check_endpoint_url(url.text)
    note(f"result: {result!r}")
    secure = url.scheme == "https" or (url.scheme == "http" and url.loopback)
    expected = secure and not url.credentials
    event(f"{url.scheme} {'loopback' if url.loopback else 'remote'}")
    event(f"credentials: {url.credentials}")
    assert isinstance(result, Failure) != expected
    match result:
        case Failure(error):
            assert isinstance(error, RemoteError)
            assert SECRET_MARKER not in error.message
            assert endpoint_url_refusal(url.text) == error
        case _:
            assert result == Success(url.text)
            assert endpoint_url_refusal(url.text) is None


@given(st.one_of(urls().map(lambda url: url.text), ANY_TEXT))
def test_safe_url_drops_credentials_query_and_fragment(text: str) -> None:
    """A URL made fit for a message keeps scheme, host and path, and nothing secret, on one line."""
    shown = safe_url(text)
    assert SECRET_MARKER not in shown
    assert shown.isprintable()
    assert len(shown) <= 303


@given(
    POLICIES,
    st.integers(min_value=0, max_value=8),
    st.one_of(st.none(), st.sampled_from([200, 400, 404, 429, 500, 502, 503, 504])),
    st.one_of(st.none(), st.sampled_from(["0", "3", "120", "soon", "-1", " 7 "]), ANY_TEXT),
    st.floats(min_value=0, max_value=1, exclude_max=True),
    st.booleans(),
    st.booleans(),
)
def test_retry_delay_is_bounded_and_only_for_transient_failures(
    policy: RetryPolicy,
    attempt: int,
    status: int | None,
    retry_after: str | None,
    jitter: float,
    sent_flag: bool,
    replayable: bool,
) -> None:
    """A delay is offered only within the attempt budget and for transient failures, never
    negative, never beyond the cap, and at least half the backoff without Retry-After. A
    request that is not replayable is retried only if the server cannot have acted on it:
    it was never sent, or the answer says so (429, 503)."""
    sent = sent_flag or status is not None  # an answer means the request arrived
    delay = retry_delay(
        policy,
        attempt=attempt,
        status_code=status,
        sent=sent,
        replayable=replayable,
        retry_after=retry_after,
        jitter=jitter,
    )
    note(f"sent: {sent}, delay: {delay}")
    transient = status is None or status in RETRYABLE_STATUSES
    not_acted_on = not sent or status in NOT_ACTED_ON_STATUSES
    event(f"replayable={replayable} not_acted_on={not_acted_on}")
    if attempt + 1 >= policy.attempts or not transient or not (replayable or not_acted_on):
        assert delay is None
        return
    assert delay is not None
    assert 0 <= delay <= max(policy.max_delay, policy.retry_after_cap)
    honoured = (
        retry_after is not None and retry_after.strip().isascii() and retry_after.strip().isdigit()
    )
    if not honoured:
        backoff = min(policy.base_delay * 2.0**attempt, policy.max_delay)
        assert backoff / 2 <= delay <= backoff


@given(
    st.one_of(st.none(), ANY_TEXT, st.sampled_from(["max-age=60", "no-store", "public, max-age=0"]))
)
def test_discovery_max_age_is_total_and_never_negative(header: str | None) -> None:
    """Any Cache-Control header gives a lifetime >= 0; without one, an hour."""
    age = discovery_max_age(header)
    assert age >= timedelta(0)
    if header is None:
        assert age == DEFAULT_DISCOVERY_MAX_AGE


@given(st.integers(min_value=0, max_value=10**9), st.sampled_from(["", "public, ", "private,"]))
def test_discovery_max_age_honours_max_age_and_no_store(seconds: int, prefix: str) -> None:
    """`max-age=N` keeps N seconds, unless `no-store`/`no-cache` forbid keeping at all."""
    assert discovery_max_age(f"{prefix}max-age={seconds}") == timedelta(seconds=seconds)
    assert discovery_max_age(f"{prefix}max-age={seconds}, no-store") == timedelta(0)
    assert discovery_max_age(f"no-cache, {prefix}max-age={seconds}") == timedelta(0)


@given(
    st.sampled_from(["https://orga-stk1.example", "http://127.0.0.1:8080", "https://s.example/"]),
    st.booleans(),
)
def test_discovery_targets_name_the_issuer_their_url_lives_under(uri: str, stack: bool) -> None:
    """The discovery URL is `{issuer}/.well-known/openid-configuration` (RFC 8414 §3)."""
    target: DiscoveryTarget = stack_discovery(uri) if stack else membership_discovery(uri)
    assert target.url == target.issuer + "/.well-known/openid-configuration"
    assert "//" not in target.url.split("://", 1)[1]
