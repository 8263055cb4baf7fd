"""Hypothesis strategies for stacktoken's core, one place for every generator.

Times are timezone-aware and kept well inside `datetime`'s range (core adds
grace, TTL and skew to them). Secrets all contain `SECRET`, a marker no
message of ours contains, so a leak test only has to look for it. The
acquisition `Scenario` is a timeline of effect outcomes that `fakes.FakeWorld`
plays back.
"""

from __future__ import annotations

import base64
import json
import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from fractions import Fraction
from functools import cache
from typing import Any, TypeVar

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy
from returns.result import Failure, Result, Success
from stacktoken.core._cache import CacheRead
from stacktoken.core._durations import MAX_DURATION_NS
from stacktoken.core._errors import (
    AcquireError,
    AuthRequired,
    LocalError,
    OAuthError,
    RemoteError,
    UsageError,
)
from stacktoken.core._paths import MAX_NAME_BYTES
from stacktoken.core._renewal import RenewalPolicy
from stacktoken.core._types import (
    CachedToken,
    DiscoveryDocument,
    Settings,
    StackAccess,
    StackKey,
    TokenResponse,
)

T = TypeVar("T")

# --- time -------------------------------------------------------------------

# Realistic clocks: far from datetime's ends, so `now + TTL` never overflows.
EARLIEST = datetime(1971, 1, 1)
LATEST = datetime(2200, 1, 1)
SECRET_MARKER = "SECRET"


def fixed_offsets() -> SearchStrategy[tzinfo]:
    """UTC or any whole-minute offset strictly inside ±24 h, as RFC 3339 allows."""
    return st.one_of(
        st.just(UTC),
        st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
            lambda minutes: timezone(timedelta(minutes=minutes))
        ),
    )


def aware_datetimes(
    *, min_value: datetime = EARLIEST, max_value: datetime = LATEST
) -> SearchStrategy[datetime]:
    """Timezone-aware datetimes with arbitrary offsets (bounds are naive local times)."""
    return st.datetimes(min_value=min_value, max_value=max_value, timezones=fixed_offsets())


def any_representable_datetimes() -> SearchStrategy[datetime]:
    """Aware datetimes whose UTC instant stays inside datetime's range (year 1..9999)."""
    return aware_datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30))


@cache
def settings_values(*, ttl_zero: bool | None = None) -> SearchStrategy[Settings]:
    """Settings with TTL 0 (disk cache off) or positive, and any grace and skew allowance.

    `ttl_zero` True forces TTL 0, False forces a positive TTL, None draws either.
    """
    positive_ttl = st.one_of(
        st.sampled_from([timedelta(seconds=1), timedelta(minutes=5), timedelta(hours=1)]),
        st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=2)),
    )
    if ttl_zero is True:
        ttl: SearchStrategy[timedelta] = st.just(timedelta(0))
    elif ttl_zero is False:
        ttl = positive_ttl
    else:
        ttl = st.one_of(st.just(timedelta(0)), positive_ttl)
    margins = st.one_of(
        st.sampled_from([timedelta(0), timedelta(seconds=30), timedelta(seconds=60)]),
        st.timedeltas(min_value=timedelta(0), max_value=timedelta(minutes=10)),
    )
    return st.builds(Settings, cache_ttl=ttl, expiry_grace=margins, clock_skew_allowance=margins)


# --- names and keys ---------------------------------------------------------

_SEPARATORS = ("/", "\\")
# Everything but control characters (Cc) and lone surrogates (Cs).
_NAME_CHARACTERS = st.characters(exclude_categories=("Cc", "Cs"), exclude_characters=_SEPARATORS)


def _fits(name: str) -> bool:
    return name not in (".", "..") and len(name.encode("utf-8")) <= MAX_NAME_BYTES


def valid_names() -> SearchStrategy[str]:
    """Names that are one plain path segment: unicode welcome, up to 255 UTF-8 bytes."""
    exactly_max = st.sampled_from(["a" * MAX_NAME_BYTES, "\u00e9" * (MAX_NAME_BYTES // 2) + "a"])
    return st.one_of(
        st.sampled_from(["default", "orgA", "stk1", "...", " ", "-", "a.b", "\u00e9t\u00e9"]),
        exactly_max,
        st.text(_NAME_CHARACTERS, min_size=1, max_size=40).filter(_fits),
    )


def hostile_names() -> SearchStrategy[str]:
    """Names to refuse: empty, `.`/`..`, separators, NUL/control, >255 bytes, surrogates."""
    control = st.one_of(
        st.characters(min_codepoint=0, max_codepoint=0x1F),
        st.characters(min_codepoint=0x7F, max_codepoint=0x9F),
    )
    wrapped = st.tuples(
        st.text(_NAME_CHARACTERS, max_size=8), st.text(_NAME_CHARACTERS, max_size=8)
    )
    return st.one_of(
        st.sampled_from(["", ".", "..", "/", "\\", "\x00", "../etc", "a/..", "..\\x", "\n"]),
        st.builds(lambda ends, bad: ends[0] + bad + ends[1], wrapped, st.sampled_from(_SEPARATORS)),
        st.builds(lambda ends, bad: ends[0] + bad + ends[1], wrapped, control),
        st.builds(
            lambda ends, bad: ends[0] + bad + ends[1], wrapped, st.characters(categories=["Cs"])
        ),
        st.integers(min_value=MAX_NAME_BYTES + 1, max_value=MAX_NAME_BYTES + 40).map(
            lambda size: "x" * size
        ),
        st.integers(min_value=MAX_NAME_BYTES // 2 + 1, max_value=MAX_NAME_BYTES).map(
            lambda count: "\u00e9" * count  # two bytes each: over 255 bytes, not 255 chars
        ),
    )


def stack_keys(names: SearchStrategy[str] | None = None) -> SearchStrategy[StackKey]:
    """(profile, organization, stack) triples of the given names (valid by default)."""
    parts = valid_names() if names is None else names
    return st.builds(StackKey, profile=parts, organization=parts, stack=parts)


# --- durations --------------------------------------------------------------

GO_UNITS: dict[str, int] = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,
    "\u03bcs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}


def durations_ns() -> SearchStrategy[int]:
    """Nanoseconds across 0..MAX_DURATION_NS, with each unit's boundaries favoured."""
    edges = [0, 1, 999, 1_000, 999_999, 1_000_000, 10**9 - 1, 10**9, 60 * 10**9, 3600 * 10**9]
    return st.one_of(
        st.sampled_from([*edges, MAX_DURATION_NS, MAX_DURATION_NS - 1]),
        st.integers(min_value=0, max_value=10**12),
        st.integers(min_value=0, max_value=MAX_DURATION_NS),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class GoDuration:
    """A Go duration text and the nanoseconds it stands for."""

    text: str
    nanoseconds: int


@st.composite
def go_durations(draw: st.DrawFn) -> GoDuration:
    """Multi-component Go durations (`1h30m`, `.5s`, `2.000001ms`) with their value.

    The value is computed exactly with fractions; each component is truncated
    to whole nanoseconds on its own, as Go's parser does.
    """
    count = draw(st.integers(min_value=1, max_value=4))
    parts: list[str] = []
    total = 0
    for _ in range(count):
        unit = draw(st.sampled_from(sorted(GO_UNITS)))
        whole = draw(st.one_of(st.none(), st.integers(min_value=0, max_value=10_000)))
        fraction = draw(st.one_of(st.none(), st.text("0123456789", max_size=12)))
        if whole is None and not fraction:
            whole = draw(st.integers(min_value=0, max_value=99))
        digits = "" if whole is None else str(whole)
        if fraction is not None:
            digits += "." + fraction
        parts.append(digits + unit)
        value = Fraction(whole or 0) + (
            Fraction(int(fraction), 10 ** len(fraction)) if fraction else 0
        )
        total += int(value * GO_UNITS[unit])  # int() truncates towards zero, like Go
    return GoDuration(text="".join(parts), nanoseconds=total)


def malformed_durations() -> SearchStrategy[str]:
    """Texts that are not durations at all."""
    return st.one_of(
        st.sampled_from(
            ["", " ", "abc", "5x", "1h30", "h", ".s", "1..5s", "1e3s", "5 m", "--5m", "+"]
        ),
        st.text(string.ascii_letters + " .,+-", max_size=10),  # no digit: never a duration
    )


# --- tokens and documents ---------------------------------------------------


@cache
def secrets(kind: str) -> SearchStrategy[str]:
    """A token-like secret, unmistakable in any text: `SECRET-<kind>-<hex>`."""
    return st.text("0123456789abcdef", min_size=4, max_size=12).map(
        lambda tail: f"{SECRET_MARKER}-{kind}-{tail}"
    )


def token_texts(*, max_size: int = 30) -> SearchStrategy[str]:
    """Any text a token can be: 1*VSCHAR, printable ASCII (RFC 6749 Appendix A.12)."""
    return st.text(
        st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=max_size
    )


_TOKEN_TYPES = st.sampled_from(["Bearer", "bearer", "DPoP"])
_MAYBE_TIME = st.one_of(st.none(), aware_datetimes())


def cached_tokens(
    *,
    expiry: SearchStrategy[datetime | None] = _MAYBE_TIME,
    saved_at: SearchStrategy[datetime | None] = _MAYBE_TIME,
) -> SearchStrategy[CachedToken]:
    """Cache entries; expiry and savedAt default to any aware time or none; each
    stamp (stack URI, client id, sorted scopes) is there or not."""
    return st.builds(
        CachedToken,
        access_token=secrets("api"),
        token_type=_TOKEN_TYPES,
        expiry=expiry,
        saved_at=saved_at,
        stack_uri=st.none() | st.text(max_size=30),
        client_id=st.none() | st.text(max_size=12),
        scopes=st.none()
        | st.lists(st.text(max_size=10), max_size=3, unique=True).map(lambda s: tuple(sorted(s))),
    )


# JSON values as `json.loads` returns them (no NaN: it is not equal to itself).
_JSON_SCALARS: SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(exclude_categories=()), max_size=20),
)


def _json_containers(children: SearchStrategy[Any]) -> SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=8), children, max_size=4),
    )


@cache
def json_values(*, max_leaves: int = 12) -> SearchStrategy[Any]:
    """Any JSON value: scalars, lists and objects, nested (surrogate escapes included)."""
    return st.recursive(_JSON_SCALARS, _json_containers, max_leaves=max_leaves)


@cache
def json_objects(*, max_leaves: int = 12) -> SearchStrategy[dict[str, Any]]:
    """JSON objects with arbitrary keys and values."""
    return st.dictionaries(st.text(max_size=8), json_values(max_leaves=max_leaves), max_size=5)


def documents_with_keys(keys: tuple[str, ...]) -> SearchStrategy[dict[str, Any]]:
    """Objects that have some of `keys`, each holding a value of any JSON type, plus extras."""
    return st.builds(
        lambda known, extra: {**extra, **known},
        st.fixed_dictionaries({}, optional={key: json_values(max_leaves=4) for key in keys}),
        json_objects(max_leaves=4),
    )


def json_bytes(values: SearchStrategy[Any]) -> SearchStrategy[bytes]:
    """JSON-encode generated values (ASCII-escaped, so lone surrogates survive)."""
    return values.map(lambda value: json.dumps(value).encode("utf-8"))


def arbitrary_bytes() -> SearchStrategy[bytes]:
    """Any bytes, any JSON document, or JSON-ish fragments."""
    return st.one_of(
        st.binary(max_size=64),
        json_bytes(json_values()),
        st.sampled_from(
            [b"", b"{", b"null", b"[]", b'{"a":', b"\xff\xfe{}", b"1" * 5000, b"[" * 5000]
        ),
    )


_ACCESSES_KNOWN = frozenset({"token", "claims", "refreshToken"})
_CLAIMS = st.dictionaries(
    st.sampled_from(["iat", "scope", "organization_id", "sub"]), json_values(max_leaves=3)
)
_EXTRA = st.dictionaries(
    st.text(max_size=8).filter(lambda key: key not in _ACCESSES_KNOWN),
    json_values(max_leaves=3),
    max_size=3,
)
_MAYBE_REFRESH = st.one_of(st.none(), secrets("refresh"))


def _draw_access(draw: st.DrawFn, moment: datetime | None) -> StackAccess:
    claims: dict[str, Any] = dict(draw(_CLAIMS))  # a copy: drawn values are not ours to change
    if moment is not None:
        # fctl writes whole seconds; a float NumericDate is legal too.
        claims["exp"] = draw(st.sampled_from([int(moment.timestamp()), moment.timestamp()]))
    exp = claims.get("exp")
    return StackAccess(
        token=draw(secrets("access")),
        refresh_token=draw(_MAYBE_REFRESH),
        expiry=None if exp is None else datetime.fromtimestamp(exp, tz=UTC),
        claims=claims,
        extra=draw(_EXTRA),
    )


@st.composite
def stack_accesses(
    draw: st.DrawFn, *, expiry: SearchStrategy[datetime | None] = _MAYBE_TIME
) -> StackAccess:
    """Stack access tokens as `decode_accesses` builds them: expiry comes from `claims.exp`."""
    return _draw_access(draw, draw(expiry))


def discovery_documents() -> SearchStrategy[DiscoveryDocument]:
    """Discovery documents with any endpoint text and an optional issuer."""
    return st.builds(
        DiscoveryDocument,
        token_endpoint=st.one_of(
            st.just("https://stack.example/api/auth/oauth/token"), st.text(max_size=30)
        ),
        issuer=st.one_of(st.none(), st.text(max_size=30)),
    )


# --- errors -----------------------------------------------------------------

OAUTH_CODES = (
    "invalid_grant",
    "invalid_token",
    "invalid_request",
    "access_denied",
    "unauthorized_client",
    "invalid_client",
    "server_error",
)


def oauth_errors(codes: tuple[str, ...] = OAUTH_CODES) -> SearchStrategy[OAuthError]:
    return st.builds(
        OAuthError,
        error=st.sampled_from(codes),
        description=st.one_of(st.none(), st.just("the server said no")),
        status_code=st.sampled_from([400, 401]),
    )


def remote_errors(*, endpoint_gone: bool | None = None) -> SearchStrategy[RemoteError]:
    gone = st.booleans() if endpoint_gone is None else st.just(endpoint_gone)
    return st.builds(
        RemoteError,
        message=st.just("server unreachable"),
        endpoint_gone=gone,
        transient=st.booleans(),
    )


@cache
def acquire_errors(*, endpoint_gone: bool | None = None) -> SearchStrategy[AcquireError]:
    """Any error an effect may return (`endpoint_gone` False: none saying the endpoint is gone)."""
    return st.one_of(
        oauth_errors(),
        remote_errors(endpoint_gone=endpoint_gone),
        st.just(LocalError(message="disk full")),
        st.just(AuthRequired(message="not logged in")),
        st.just(UsageError(message="bad name")),
    )


def outcomes(
    values: SearchStrategy[T], errors: SearchStrategy[AcquireError]
) -> SearchStrategy[Result[T, AcquireError]]:
    """An effect's answer: a value or an error."""
    successes: SearchStrategy[Result[T, AcquireError]] = values.map(Success)
    failures: SearchStrategy[Result[T, AcquireError]] = errors.map(Failure)
    return st.one_of(successes, successes, failures)  # mostly answers, so paths run deep


def timelines(
    values: SearchStrategy[T], errors: SearchStrategy[AcquireError]
) -> SearchStrategy[tuple[Result[T, AcquireError], ...]]:
    """Successive answers of one effect; the last repeats once the timeline runs out."""
    return st.lists(outcomes(values, errors), min_size=1, max_size=4).map(tuple)


# --- acquisition scenarios --------------------------------------------------

STACK_DOCUMENT = DiscoveryDocument(
    token_endpoint="https://orga-stk1.example/api/auth/oauth/token",
    issuer="https://orga-stk1.example/api/auth",
)
MEMBERSHIP_DOCUMENT = DiscoveryDocument(
    token_endpoint="https://app.example/api/oauth/token", issuer="https://app.example/api"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    """Everything the fake world will answer during one acquisition.

    `disk` is what `read_cache` finds at first; `other_writer` is what another
    process leaves in the cache while we wait for the lock (None: nothing).
    `shared` is the second level (a store hosts share, as Redis), None for a
    single level; `shared_other_writer` is what another host leaves there
    while we wait for its lock, which we may not get (`shared_lock_held`:
    the body then runs unlocked). `rotated_elsewhere` is what fctl writes to
    `accesses.json` while our refresh is in flight (None: nothing). The
    clock reads `now + lock_wait`. `grant` is "fctl" (the stack grant) or
    "client" (client credentials, whose token answers are `exchanges`).
    Each timeline answers its effect's calls in order, its last answer repeating.
    """

    now: datetime
    settings: Settings
    lock_wait: timedelta
    disk: Result[CacheRead, str]
    other_writer: CacheRead | None
    cache_write_fails: bool
    lock_fails: bool
    access: StackAccess | None
    access_write_fails: bool
    rotated_elsewhere: StackAccess | None
    stack_discoveries: tuple[Result[DiscoveryDocument, AcquireError], ...]
    exchanges: tuple[Result[TokenResponse, AcquireError], ...]
    membership_discoveries: tuple[Result[DiscoveryDocument, AcquireError], ...]
    refreshes: tuple[Result[TokenResponse, AcquireError], ...]
    grant: str = "fctl"
    shared: Result[CacheRead, str] | None = None
    shared_other_writer: CacheRead | None = None
    shared_write_fails: bool = False
    shared_lock_held: bool = True

    @property
    def lock_now(self) -> datetime:
        return self.now + self.lock_wait


# The scenario draws from these constants (building strategies per example is slow).
_NOW = aware_datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1))
_LOCK_WAIT = st.one_of(
    st.just(timedelta(0)), st.timedeltas(min_value=timedelta(0), max_value=timedelta(minutes=10))
)
_FREE_DELTA = st.timedeltas(min_value=-timedelta(hours=3), max_value=timedelta(hours=3))
_EDGE = st.sampled_from([timedelta(0), timedelta(minutes=1)])  # added to the grace
_TWEAK = st.sampled_from(
    [timedelta(0), timedelta(0), timedelta(microseconds=1), -timedelta(microseconds=1)]
)
_SHAPE = st.sampled_from(["none", "edge", "free", "fresh"])
_ISSUED_SHAPE = st.sampled_from(["none", "edge", "free", "fresh", "fresh", "fresh"])
_SAVED_SHAPE = st.sampled_from(["none", "ttl edge", "skew edge", "free"])
_USABLE_AGE = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3))
_USABLE_MARGIN = st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=1))
_LENGTH = st.integers(min_value=1, max_value=4)
_ANSWERS = st.sampled_from([True, True, True, False])  # mostly answers: paths run deep
_DISK_MISSES = st.sampled_from(["no file", "not JSON"])


def sometimes() -> SearchStrategy[bool]:
    """True one time in four: a failure worth trying without drowning the other paths."""
    return _SOMETIMES


_SOMETIMES = st.sampled_from([False, False, False, True])


def _near(
    draw: st.DrawFn, anchor: datetime, settings: Settings, shapes: SearchStrategy[str] = _SHAPE
) -> datetime | None:
    """None, a time at the grace boundary (to the microsecond), within 3 h of `anchor`,
    or fresh at `anchor`."""
    shape = draw(shapes)
    if shape == "none":
        return None
    if shape == "edge":
        return anchor + settings.expiry_grace + draw(_EDGE) + draw(_TWEAK)
    if shape == "fresh":
        return anchor + settings.expiry_grace + draw(_USABLE_MARGIN)
    return anchor + draw(_FREE_DELTA)


def _draw_usable(draw: st.DrawFn, now: datetime, settings: Settings) -> CacheRead:
    oldest = min(settings.cache_ttl - timedelta(microseconds=1), timedelta(days=3))
    age = draw(_USABLE_AGE)
    if age > oldest + settings.clock_skew_allowance:
        age = oldest + settings.clock_skew_allowance
    saved_at = now - oldest + age  # within (now - TTL, now + skew]
    expiry = now + settings.expiry_grace + draw(_USABLE_MARGIN)
    entry = CachedToken(
        access_token=draw(secrets("api")),
        token_type=draw(_TOKEN_TYPES),
        expiry=expiry,
        saved_at=saved_at if draw(st.booleans()) else None,  # None: fctl's entry, mtime counts
    )
    return entry, saved_at


def _saved(draw: st.DrawFn, now: datetime, settings: Settings) -> datetime | None:
    """None, a time at the TTL or skew boundary (to the microsecond), or within 3 h of `now`."""
    shape = draw(_SAVED_SHAPE)
    if shape == "none":
        return None
    if shape == "ttl edge":
        return now - settings.cache_ttl + draw(_TWEAK)
    if shape == "skew edge":
        return now + settings.clock_skew_allowance + draw(_TWEAK)
    return now + draw(_FREE_DELTA)


def _draw_cache_read(draw: st.DrawFn, now: datetime, settings: Settings) -> CacheRead:
    if settings.disk_cache_enabled and draw(sometimes()):
        return _draw_usable(draw, now, settings)
    entry = CachedToken(
        access_token=draw(secrets("api")),
        token_type=draw(_TOKEN_TYPES),
        expiry=_near(draw, now, settings),
        saved_at=_saved(draw, now, settings),
    )
    return entry, _saved(draw, now, settings) or now


def _draw_response(
    draw: st.DrawFn, kind: str, anchor: datetime, settings: Settings
) -> TokenResponse:
    return TokenResponse(
        access_token=draw(secrets(kind)),
        token_type="Bearer",
        expiry=_near(draw, anchor, settings, _ISSUED_SHAPE),
        refresh_token=draw(st.one_of(st.none(), secrets(f"{kind}-refresh"))),
    )


def _draw_timeline(
    draw: st.DrawFn,
    answer: Callable[[], T],
    errors: SearchStrategy[AcquireError],
    answers: SearchStrategy[bool] = _ANSWERS,
) -> tuple[Result[T, AcquireError], ...]:
    timeline: list[Result[T, AcquireError]] = []
    for _ in range(draw(_LENGTH)):
        timeline.append(Success(answer()) if draw(answers) else Failure(draw(errors)))
    return tuple(timeline)


_SCENARIO_CLAIMS = st.fixed_dictionaries(
    {}, optional={"iat": st.integers(0, 2**31), "scope": st.just("openid offline_access")}
)
_SCENARIO_EXTRA = st.dictionaries(st.sampled_from(["note", "x-fctl"]), st.integers(), max_size=2)
_MOSTLY_REFRESHABLE = st.sampled_from([True, True, True, False])
_INVALID_GRANT = OAuthError(error="invalid_grant", description="assertion refused")
_GONE = RemoteError(message="token endpoint answered 404", endpoint_gone=True)


def _draw_scenario_access(
    draw: st.DrawFn,
    lock_now: datetime,
    settings: Settings,
    *,
    stale: bool = False,
    fresh: bool = False,
) -> StackAccess:
    if stale:
        expiry: datetime | None = lock_now - draw(_USABLE_AGE)
    elif fresh:
        expiry = lock_now + settings.expiry_grace + draw(_USABLE_MARGIN)
    else:
        expiry = _near(draw, lock_now, settings)
    claims: dict[str, Any] = dict(draw(_SCENARIO_CLAIMS))
    if expiry is not None:
        claims["exp"] = int(expiry.timestamp())
    refreshable = stale or draw(_MOSTLY_REFRESHABLE)
    return StackAccess(
        token=draw(secrets("access")),
        refresh_token=draw(secrets("refresh")) if refreshable else None,
        expiry=None if expiry is None else datetime.fromtimestamp(claims["exp"], tz=UTC),
        claims=claims,
        extra=draw(_SCENARIO_EXTRA),
    )


@cache
def discovery_errors() -> SearchStrategy[AcquireError]:
    """What a discovery effect can answer: the shell builds it on `interpret_discovery`
    (RemoteError, never endpoint_gone) plus the discovery cache (LocalError)."""
    return st.one_of(remote_errors(endpoint_gone=False), st.just(LocalError(message="disk full")))


_SERVER_ERROR = OAuthError(error="server_error", description="token has expired")


@cache
def _exchange_errors(endpoint_gone: bool | None) -> SearchStrategy[AcquireError]:
    """Any error, with the refusals of an assertion (the ones with a retry path:
    invalid_grant, and Formance's 400 server_error) as likely as all others."""
    return st.one_of(
        st.sampled_from([_INVALID_GRANT, _SERVER_ERROR]),
        acquire_errors(endpoint_gone=endpoint_gone),
    )


_STRAY_ROTATIONS = secrets("stray").map(
    lambda token: RemoteError(message="token endpoint answered badly", rotated_refresh_token=token)
)


@cache
def refresh_errors(*, stray_weight: int = 1) -> SearchStrategy[AcquireError]:
    """A refresh's errors: invalid_grant, an unusable answer that still rotated the
    refresh token (the old one is spent), or any other, in roughly equal shares."""
    kinds = st.sampled_from(["invalid_grant", "other", *["stray"] * stray_weight])
    return kinds.flatmap(
        lambda kind: (
            st.just(_INVALID_GRANT)
            if kind == "invalid_grant"
            else _STRAY_ROTATIONS
            if kind == "stray"
            else acquire_errors()
        )
    )


@st.composite
def scenarios(
    draw: st.DrawFn,
    *,
    ttl_zero: bool | None = None,
    usable_disk: bool = False,
    cold: bool = False,
    refused_first: bool = False,
    stale: bool = False,
    gone_first: bool = False,
    fctl_rotated: bool = False,
    happy: bool = False,
    filled_meanwhile: bool = False,
    endpoint_gone: bool | None = None,
    grant: str = "fctl",
    levels: int = 1,
    shared_usable: bool = False,
    shared_filled_meanwhile: bool = False,
    refresh_gone_first: bool = False,
    client_rejected: bool = False,
) -> Scenario:
    """One acquisition's timeline of effect outcomes, every effect free to fail.

    `ttl_zero` True/False forces the disk cache off/on; `usable_disk` forces a
    disk entry usable at `now`; `cold` forces a cache miss, the lock and an
    `accesses.json` (the network paths); `refused_first` makes the stack
    answer the first one or two exchanges with invalid_grant (the stack access
    token is fresh half the time); `stale` makes the stack access token need a
    refresh, which fails as often as not; `gone_first` has the token endpoint
    answer "gone" (404) two or three times first; `fctl_rotated` has fctl
    refresh the token while ours is in flight, so the IdP rejects ours with
    invalid_grant; `happy` has every network effect answer (tokens may still
    be short-lived); `filled_meanwhile` has another process leave a usable
    entry while we wait for the lock; `endpoint_gone` False keeps "token
    endpoint gone" answers out of the exchange's timeline. `grant` "client"
    plays client credentials instead of the fctl grant (whose discovery
    documents then name the auth methods the stack offers); `levels` 2 adds
    a shared store after the host's, usable about as often as the first;
    `shared_usable` makes the host's level miss and the shared one usable at
    `now`; `shared_filled_meanwhile` has another host leave a usable entry in
    the shared level while we wait for its lock. `refresh_gone_first` has the
    membership token endpoint answer "gone" (404, refused) once or twice first.
    `client_rejected` has the stack refuse the machine credential first.
    """
    if shared_usable or shared_filled_meanwhile:
        levels = 2
    cache_on = usable_disk or filled_meanwhile or shared_usable or shared_filled_meanwhile
    settings = draw(settings_values(ttl_zero=False if cache_on else ttl_zero))
    now = draw(_NOW)
    lock_now = now + draw(_LOCK_WAIT)
    if usable_disk:
        disk: Result[CacheRead, str] = Success(_draw_usable(draw, now, settings))
    elif cold or shared_usable or draw(sometimes()):
        disk = Failure(draw(_DISK_MISSES))
    else:
        disk = Success(_draw_cache_read(draw, now, settings))
    has_access = cold or not draw(sometimes())
    fresh = refused_first and draw(st.booleans())
    access = (
        _draw_scenario_access(draw, lock_now, settings, stale=stale, fresh=fresh)
        if has_access
        else None
    )
    rotated = None
    if access is not None and (fctl_rotated or draw(st.booleans() if stale else sometimes())):
        same = not fctl_rotated and draw(st.booleans())
        rotated = access if same else _draw_scenario_access(draw, lock_now, settings)
    errors = discovery_errors()
    answers = st.just(True) if happy else _ANSWERS
    exchanges = _draw_timeline(
        draw,
        lambda: _draw_response(draw, "issued", lock_now, settings),
        _exchange_errors(endpoint_gone),
        answers,
    )
    if refused_first:
        refusal = draw(st.sampled_from([_INVALID_GRANT, _SERVER_ERROR]))
        exchanges = (Failure(refusal),) * draw(st.integers(1, 2)) + exchanges
    if gone_first:
        exchanges = (Failure(_GONE),) * draw(st.integers(2, 3)) + exchanges
    if grant == "client" and (client_rejected or (not happy and draw(sometimes()))):
        exchanges = (Failure(draw(_CLIENT_REJECTIONS)), *exchanges)
    refreshes = _draw_timeline(
        draw,
        lambda: _draw_response(draw, "refreshed", lock_now, settings),
        refresh_errors(stray_weight=2 if stale else 1),
        st.booleans() if stale else answers,
    )
    if fctl_rotated:
        refreshes = (Failure(_INVALID_GRANT), *refreshes)
    if refresh_gone_first:
        refreshes = (Failure(_GONE),) * draw(st.integers(1, 2)) + refreshes
    shared: Result[CacheRead, str] | None = None
    if shared_usable:
        shared = Success(_draw_usable(draw, now, settings))
    elif levels == 2:
        shared = (
            Failure(draw(_DISK_MISSES))
            if cold or draw(sometimes())
            else Success(_draw_cache_read(draw, now, settings))
        )
    stack_document = (
        STACK_DOCUMENT
        if grant == "fctl"
        else DiscoveryDocument(
            token_endpoint=STACK_DOCUMENT.token_endpoint,
            issuer=STACK_DOCUMENT.issuer,
            auth_methods=draw(_AUTH_METHODS),
        )
    )
    return Scenario(
        now=now,
        settings=settings,
        lock_wait=lock_now - now,
        disk=disk,
        other_writer=(
            _draw_usable(draw, lock_now, settings)
            if filled_meanwhile
            else _draw_cache_read(draw, lock_now, settings)
            if not cold and not shared_filled_meanwhile and draw(sometimes())
            else None
        ),
        cache_write_fails=draw(st.booleans()),
        lock_fails=not cold and not shared_filled_meanwhile and draw(sometimes()),
        access=access,
        access_write_fails=not happy and draw(st.booleans() if stale else sometimes()),
        rotated_elsewhere=rotated,
        stack_discoveries=_draw_timeline(
            draw, lambda: stack_document, errors, st.just(True) if gone_first else answers
        ),
        exchanges=exchanges,
        membership_discoveries=_draw_timeline(draw, lambda: MEMBERSHIP_DOCUMENT, errors, answers),
        refreshes=refreshes,
        grant=grant,
        shared=shared,
        shared_other_writer=(
            _draw_usable(draw, lock_now, settings)
            if shared_filled_meanwhile
            else _draw_cache_read(draw, lock_now, settings)
            if levels == 2 and draw(sometimes())
            else None
        ),
        shared_write_fails=levels == 2 and draw(sometimes()),
        shared_lock_held=not draw(sometimes()),
    )


def acquisitions(*, ttl_zero: bool | None = None) -> SearchStrategy[Scenario]:
    """fctl-grant scenarios of every kind, the deep network paths as likely as the shallow ones."""
    return st.one_of(
        scenarios(ttl_zero=ttl_zero),
        scenarios(ttl_zero=ttl_zero, cold=True),
        scenarios(ttl_zero=ttl_zero, cold=True, refused_first=True),
        scenarios(ttl_zero=ttl_zero, cold=True, stale=True),
        scenarios(ttl_zero=ttl_zero, cold=True, stale=True),
        scenarios(ttl_zero=ttl_zero, cold=True, gone_first=True),
        scenarios(ttl_zero=ttl_zero, cold=True, stale=True, fctl_rotated=True),
        scenarios(ttl_zero=ttl_zero, cold=True, stale=True, refresh_gone_first=True),
    )


def cache_runs(*, ttl_zero: bool | None = None) -> SearchStrategy[Scenario]:
    """Scenarios for the cache workflow's own rules: either grant, one level or two."""
    return st.one_of(
        acquisitions(ttl_zero=ttl_zero),
        client_runs(ttl_zero=ttl_zero),
        scenarios(ttl_zero=ttl_zero, levels=2),
        scenarios(ttl_zero=ttl_zero, cold=True, levels=2),
        scenarios(ttl_zero=ttl_zero, grant="client", levels=2),
        scenarios(ttl_zero=ttl_zero, cold=True, grant="client", levels=2),
    )


def client_runs(*, ttl_zero: bool | None = None) -> SearchStrategy[Scenario]:
    """Client-credentials scenarios, the network paths as likely as the cached ones."""
    return st.one_of(
        scenarios(ttl_zero=ttl_zero, grant="client"),
        scenarios(ttl_zero=ttl_zero, grant="client", cold=True),
        scenarios(ttl_zero=ttl_zero, grant="client", cold=True, gone_first=True),
        scenarios(ttl_zero=ttl_zero, grant="client", cold=True, happy=True),
        scenarios(ttl_zero=ttl_zero, grant="client", cold=True, client_rejected=True),
    )


_AUTH_METHODS = st.sampled_from(
    [
        None,
        ("client_secret_basic",),
        ("client_secret_post",),
        ("client_secret_basic", "client_secret_post"),
        ("private_key_jwt",),
        (),
    ]
)
_CLIENT_REJECTIONS = st.sampled_from(
    [OAuthError(error="invalid_client", status_code=401), OAuthError(error="unauthorized_client")]
)


# --- decisions ----------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DiskSituation:
    """A cache read judged at `now` under `settings`."""

    entry: CachedToken
    mtime: datetime
    settings: Settings
    now: datetime


@st.composite
def disk_situations(draw: st.DrawFn) -> DiskSituation:
    """Cache reads near `now`, every verdict likely, boundaries hit to the microsecond."""
    settings = draw(settings_values())
    now = draw(_NOW)
    entry, mtime = _draw_cache_read(draw, now, settings)
    return DiskSituation(entry=entry, mtime=mtime, settings=settings, now=now)


# --- JWTs -------------------------------------------------------------------


def _b64(document: object) -> str:
    raw = json.dumps(document).encode("utf-8")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def unsigned_jwt(claims: dict[str, Any]) -> str:
    """A JWT with the given payload and a dummy signature (core never verifies it)."""
    return f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{_b64(claims)}.{SECRET_MARKER}sig"


@st.composite
def access_tokens(draw: st.DrawFn) -> str:
    """Opaque tokens, or JWTs whose payload has an `exp` or none."""
    if draw(st.booleans()):
        return draw(secrets("opaque"))
    claims: dict[str, Any] = {"sub": draw(secrets("sub"))}
    if draw(st.booleans()):
        claims["exp"] = draw(st.integers(min_value=0, max_value=2**33))
    return unsigned_jwt(claims)


# --- RFC 3339 as Go writes it -----------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class GoTime:
    """An RFC 3339 text as Go may write it, and the instant it names (None: not
    representable in UTC), to the microsecond."""

    text: str
    moment: datetime | None


@st.composite
def go_times(draw: st.DrawFn) -> GoTime:
    """RFC 3339 with 0-9 fractional digits, `Z`/`z` or any ±hh:mm offset, `T` or `t`."""
    naive = draw(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)))
    naive = naive.replace(microsecond=0)
    digits = draw(st.text("0123456789", max_size=9))
    fraction = f".{digits}" if digits else ""
    if draw(st.booleans()):
        zone, suffix = UTC, draw(st.sampled_from(["Z", "z"]))
    else:
        minutes = draw(st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1))
        sign = "-" if minutes < 0 else "+"
        hours, rest = divmod(abs(minutes), 60)
        zone, suffix = timezone(timedelta(minutes=minutes)), f"{sign}{hours:02d}:{rest:02d}"
    separator = draw(st.sampled_from(["T", "t"]))
    text = (
        f"{naive.year:04d}-{naive.month:02d}-{naive.day:02d}{separator}"
        f"{naive.hour:02d}:{naive.minute:02d}:{naive.second:02d}{fraction}{suffix}"
    )
    moment = naive.replace(microsecond=int(digits.ljust(6, "0")[:6]), tzinfo=zone)
    try:
        moment.astimezone(UTC)
    except OverflowError:
        return GoTime(text=text, moment=None)
    return GoTime(text=text, moment=moment)


# --- URLs ---------------------------------------------------------------------

LOOPBACK_HOSTS = ("localhost", "LocalHost", "127.0.0.1", "127.8.9.10", "[::1]")
REMOTE_HOSTS = (
    "example.com",
    "10.0.0.1",
    "192.168.1.1",
    "[2001:db8::1]",
    "127.0.0.1.nip.io",
    "localhost.example",
    "0.0.0.0",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Url:
    """A URL built from parts, and the parts the policy looks at."""

    text: str
    scheme: str
    loopback: bool
    credentials: bool


@st.composite
def urls(draw: st.DrawFn) -> Url:
    """Endpoint URLs over http/https/others, loopback or not, with credentials and queries."""
    scheme = draw(st.sampled_from(["https", "http", "HTTPS", "HTTP", "ftp", "file"]))
    loopback = draw(st.booleans())
    host = draw(st.sampled_from(LOOPBACK_HOSTS if loopback else REMOTE_HOSTS))
    port = draw(st.one_of(st.just(""), st.integers(min_value=1, max_value=65535).map(":{}".format)))
    userinfo = draw(st.sampled_from(["", f"user:{SECRET_MARKER}pw@"]))
    path = draw(st.sampled_from(["", "/", "/api/auth/oauth/token"]))
    query = draw(st.sampled_from(["", f"?code={SECRET_MARKER}q", f"#{SECRET_MARKER}frag"]))
    return Url(
        text=f"{scheme}://{userinfo}{host}{port}{path}{query}",
        scheme=scheme.lower(),
        loopback=loopback,
        credentials=bool(userinfo),
    )


def odd_numeric_dates() -> SearchStrategy[Any]:
    """`exp` values a hostile or broken issuer may send: any JSON, inf, NaN, huge, negative."""
    return st.one_of(
        json_values(max_leaves=2),
        st.floats(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.sampled_from([True, 1e300, -1e300, 253402300800, -62135596801]),
    )


def odd_jwts() -> SearchStrategy[str]:
    """JWTs whose payload has an `exp` of any type or size, or is not an object at all."""
    return st.one_of(
        odd_numeric_dates().map(lambda exp: unsigned_jwt({"exp": exp})),
        json_values(max_leaves=3).map(lambda payload: f"{_b64({'alg': 'none'})}.{_b64(payload)}."),
        st.sampled_from(["a.b.c", "..", "e30.e30.", "x" * 3 + "." * 5]),
    )


def redis_passwords() -> SearchStrategy[str]:
    """A Redis password (docs/design.md §11): unmistakable, then any printable ASCII,
    characters a URL must percent-encode included."""
    return st.builds(
        lambda secret, tail: secret + tail,
        secrets("redis"),
        st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12),
    )


# --- device authorization (RFC 8628) -------------------------------------------

#: What a poll of the token endpoint can answer, as the device flow sees it.
DEVICE_PENDING = ("authorization_pending", "slow_down")
DEVICE_TERMINAL = ("access_denied", "expired_token")


@dataclass(frozen=True)
class DeviceScript:
    """A device flow played back: the device answer's interval and lifetime (seconds),
    the answers of successive polls (an OAuth error code, "transient", or "success"),
    and how late (seconds) each wait returns past the time asked for."""

    interval: float
    expires_in: float
    answers: tuple[str, ...]
    oversleep: tuple[float, ...]


@st.composite
def device_scripts(draw: st.DrawFn) -> DeviceScript:
    """Intervals and lifetimes from sub-second to minutes; any sequence of answers."""
    interval = draw(st.floats(min_value=0.01, max_value=30, allow_nan=False))
    # At most ~50 intervals long, so a flow that is never approved ends in few polls.
    expires_in = interval * draw(st.floats(min_value=0.1, max_value=50, allow_nan=False))
    answer = st.sampled_from(
        (
            *DEVICE_PENDING,
            *DEVICE_PENDING,
            *DEVICE_TERMINAL,
            # Thrice: so that failures come in runs, and the backoff grows.
            "transient",
            "transient",
            "transient",
            "invalid_grant",
            "success",
        )
    )
    answers = tuple(draw(st.lists(answer, max_size=30)))
    oversleep = tuple(
        draw(st.lists(st.floats(min_value=0, max_value=3, allow_nan=False), max_size=30))
    )
    return DeviceScript(
        interval=interval, expires_in=expires_in, answers=answers, oversleep=oversleep
    )


# --- renewal before expiry ------------------------------------------


def renewal_policies() -> SearchStrategy[RenewalPolicy]:
    """Refresh fractions from 5 % to 100 % of a lifetime, jitter up to ±30 %, retry
    waits from a fraction of a second to minutes, and the room a renewal keeps (up
    to half the usable lifetime, at least up to a minute or no minimum)."""
    return st.builds(
        RenewalPolicy,
        fraction=st.floats(min_value=0.05, max_value=1.0),
        jitter=st.floats(min_value=0.0, max_value=0.3),
        first_retry_seconds=st.sampled_from([0.5, 1.0, 10.0]),
        max_retry_seconds=st.sampled_from([30.0, 60.0, 300.0]),
        room=st.sampled_from([0.0, 0.1]) | st.floats(min_value=0.0, max_value=0.5),
        room_seconds=st.none() | st.sampled_from([10.0]) | st.floats(min_value=0.0, max_value=60.0),
    )


def unit_jitters() -> SearchStrategy[float]:
    """What the shell draws for one jitter: a number in [0, 1)."""
    return st.floats(min_value=0.0, max_value=1.0, exclude_max=True)


@dataclass(frozen=True)
class RenewalStep:
    """One call of a fleet's timeline: which source calls, after how long a pause,
    and whether the token endpoint fails any request made during the call."""

    source: int
    pause: timedelta
    grant_fails: bool


def renewal_timelines(*, sources: int, max_pause: timedelta) -> SearchStrategy[list[RenewalStep]]:
    """Calls of `sources` sources, spaced by pauses up to `max_pause`, the token endpoint
    failing in runs (an outage) or at single calls."""
    step = st.builds(
        RenewalStep,
        source=st.integers(0, sources - 1),
        # Calls at the same moment or a second apart, as a busy caller makes them, too.
        pause=st.sampled_from([timedelta(0), timedelta(seconds=1)])
        | st.timedeltas(min_value=timedelta(0), max_value=max_pause),
        grant_fails=st.booleans(),
    )
    return st.lists(step, min_size=1, max_size=80)


@dataclass(frozen=True)
class HoldingStep:
    """One moment of a held token's life: how long after the last, whether another
    caller holds the lock, whether a renewal thread runs, and how a request made
    now ends (a new token, or a failure)."""

    pause: timedelta
    busy: bool
    background: bool
    request_succeeds: bool


def holding_timelines() -> SearchStrategy[list[HoldingStep]]:
    """Calls on a simulated clock, at the same moment, seconds or minutes apart."""
    step = st.builds(
        HoldingStep,
        pause=st.sampled_from([timedelta(0), timedelta(seconds=1), timedelta(microseconds=1)])
        | st.timedeltas(min_value=timedelta(0), max_value=timedelta(minutes=20)),
        busy=st.booleans(),
        background=st.booleans(),
        request_succeeds=st.booleans(),
    )
    return st.lists(step, min_size=1, max_size=60)


#: The chain's variables (docs/design.md §14), each unset, empty or set.
CHAIN_VARIABLES = (
    "STACKTOKEN_STACK_URI",
    "STACKTOKEN_CLIENT_ID",
    "STACKTOKEN_CLIENT_SECRET",
    "STACKTOKEN_CLIENT_SECRET_FILE",
    "STACKTOKEN_SCOPES",
)


def chain_environments() -> st.SearchStrategy[dict[str, str]]:
    """Environments for the credential chain: any subset of its variables, some
    empty, a pin or not (sometimes an invalid one)."""
    values = st.one_of(st.just(""), st.sampled_from(["x", "https://s.example", "a b"]))
    variables = st.dictionaries(st.sampled_from(CHAIN_VARIABLES), values)
    pins = st.one_of(st.none(), st.sampled_from(["client", "fctl", "", "aws"]))
    return st.builds(
        lambda found, pin: found if pin is None else {**found, "STACKTOKEN_CREDENTIAL": pin},
        variables,
        pins,
    )
