"""`stacktoken status`: the facts about the credential in use, as a value, and
how they are shown (docs/design.md §14). Never a token or a secret: expiries,
names, scopes and where a secret is kept.

The server cuts requested scopes silently and answers no `scope` field, so the
scopes granted are read from the cached token's JWT `scope` claim (unverified:
what it grants is the server's business, this only reports it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ._cache_codec import format_rfc3339
from ._codecs import jwt_claims
from ._failures import REJECTED, Remembered
from ._json import json_object
from ._time import UTC, datetime, timedelta

__all__ = [
    "REFRESH_TOKEN_LIFETIME",
    "CheckResult",
    "CredentialStatus",
    "granted_scopes",
    "login_time",
    "render_status",
    "status_document",
    "token_origin",
]

#: Membership refresh tokens live 5 h from the first login (docs/design.md §5).
REFRESH_TOKEN_LIFETIME = timedelta(hours=5)


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckResult:
    """What `status --check` found: where the token came from (`memory`, `disk`,
    `redis` or `network`), in how many seconds, and its expiry; or the error
    and the exit code `token` would have given."""

    origin: str | None
    seconds: float
    expiry: datetime | None = None
    error: str | None = None
    exit_code: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class CredentialStatus:
    """Which credential the chain picked and why, and what is known of it locally.

    `credential` is `"fctl"` or `"client"`. For a profile: `profile`,
    `organization`, `stack`, `stack_uri`, `membership_uri`, `token_expiry` (the
    cached stack API token's), `stack_access_expiry` and `logged_in_at` (the ID
    token's `auth_time`, else `iat`: the refresh tokens' 5 h count starts there).
    For a machine credential: `stack_uri`, `client_id`, `scopes_requested`,
    `scopes_granted` (None when unknown: no cached token, or an opaque one),
    `token_expiry`, `secret_from`. `login_needed` with `problem` say why a
    token cannot be had without logging in again. `failure`: a failure this
    host remembers for the credential, still in force by its time
    (docs/design.md §15; whether a rejection holds for the secret at hand is
    not known without its slow hash).
    """

    credential: str
    origin: str
    why: str
    stack_uri: str | None = None
    token_expiry: datetime | None = None
    login_needed: bool = False
    problem: str | None = None
    profile: str | None = None
    organization: str | None = None
    stack: str | None = None
    membership_uri: str | None = None
    stack_access_expiry: datetime | None = None
    logged_in_at: datetime | None = None
    client_id: str | None = None
    scopes_requested: tuple[str, ...] | None = None
    scopes_granted: tuple[str, ...] | None = None
    secret_from: str | None = None
    failure: Remembered | None = None
    check: CheckResult | None = None

    @property
    def refresh_token_expiry(self) -> datetime | None:
        """When the profile's refresh tokens end, whatever their rotations."""
        return None if self.logged_in_at is None else self.logged_in_at + REFRESH_TOKEN_LIFETIME


def login_time(profile_json: bytes) -> datetime | None:
    """The login's time from `profile.json`'s ID token claims (`auth_time`, else `iat`)."""
    document = json_object(profile_json)
    if isinstance(document, str):
        return None
    root = document.get("rootTokens")
    id_token = root.get("idToken") if isinstance(root, dict) else None
    claims = id_token.get("claims") if isinstance(id_token, dict) else None
    if not isinstance(claims, dict):
        token = id_token.get("token") if isinstance(id_token, dict) else None
        claims = jwt_claims(token) if isinstance(token, str) else None
    for name in ("auth_time", "iat"):
        value = claims.get(name) if claims is not None else None
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                return datetime.fromtimestamp(value, tz=UTC)
            except (OverflowError, OSError, ValueError):
                return None
    return None


def granted_scopes(access_token: str) -> tuple[str, ...] | None:
    """The scopes a JWT grants (its `scope` claim, space-separated, or `scp`); None
    for an opaque token or one without the claim."""
    claims = jwt_claims(access_token)
    if claims is None:
        return None
    scope = claims.get("scope", claims.get("scp"))
    if isinstance(scope, str):
        return tuple(sorted(set(scope.split())))
    if isinstance(scope, list) and all(isinstance(item, str) for item in scope):
        return tuple(sorted(set(scope)))
    return None


def token_origin(log_lines: list[str]) -> str:
    """Where an acquisition's token came from, read from the cache workflow's log:
    the network when a grant ran, else the store that hit, else this process's memory."""
    if any(line.startswith("obtaining a token") for line in log_lines):
        return "network"
    for line in log_lines:
        name, _, rest = line.partition(" cache hit")
        if rest.startswith(":") and name in ("disk", "redis"):
            return name
    return "memory"


def _time(moment: datetime | None) -> str | None:
    return format_rfc3339(moment) if moment is not None else None


def status_document(status: CredentialStatus, *, now: datetime) -> dict[str, Any]:
    """`status --output json`: one object, expiries RFC 3339 or null."""
    document: dict[str, Any] = {
        "credential": status.credential,
        "origin": status.origin,
        "why": status.why,
        "stack_uri": status.stack_uri,
        "token_expiry": _time(status.token_expiry),
        "login_needed": status.login_needed,
        "problem": status.problem,
    }
    if status.credential == "fctl":
        age = None if status.logged_in_at is None else now - status.logged_in_at
        document |= {
            "profile": status.profile,
            "organization": status.organization,
            "stack": status.stack,
            "membership_uri": status.membership_uri,
            "stack_access_expiry": _time(status.stack_access_expiry),
            "logged_in_at": _time(status.logged_in_at),
            "refresh_token_age_seconds": None if age is None else int(age.total_seconds()),
            "refresh_token_lifetime_seconds": int(REFRESH_TOKEN_LIFETIME.total_seconds()),
            "refresh_token_expiry": _time(status.refresh_token_expiry),
        }
    else:
        document |= {
            "client_id": status.client_id,
            "scopes_requested": list(status.scopes_requested or ()),
            "scopes_granted": (
                list(status.scopes_granted) if status.scopes_granted is not None else None
            ),
            "secret_from": status.secret_from,
        }
    failure = status.failure
    document["remembered_failure"] = (
        None
        if failure is None
        else {
            "kind": failure.kind,
            "at": _time(failure.at),
            "until": _time(failure.until),
            "count": failure.count,
            "reason": failure.reason,
        }
    )
    if status.check is not None:
        check = status.check
        document["check"] = {
            "origin": check.origin,
            "seconds": round(check.seconds, 6),
            "expiry": _time(check.expiry),
            "error": check.error,
        }
    return document


def _until(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "unknown"
    seconds = int((moment - now).total_seconds())
    when = format_rfc3339(moment)
    if seconds <= 0:
        return f"{when} (expired {_span(-seconds)} ago)"
    return f"{when} (in {_span(seconds)})"


def _span(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def _failure_line(failure: Remembered, now: datetime) -> str:
    ago = _span(max(0, int((now - failure.at).total_seconds())))
    if failure.kind == REJECTED:
        what = f"the credential was rejected {ago} ago"
        stops = "calls with the same secret fail at once"
    else:
        what = f"the token endpoint failed {ago} ago, {failure.count} time(s) in a row"
        stops = "calls fail at once"
    return f"{what} ({failure.reason}); {stops} until {_until(failure.until, now)}"


def render_status(status: CredentialStatus, output: str, *, now: datetime) -> str:
    """`status --output text|json`."""
    if output == "json":
        return json.dumps(status_document(status, now=now)) + "\n"
    kind = "fctl profile" if status.credential == "fctl" else "machine credential"
    lines = [f"credential: {kind} ({status.why})"]
    if status.credential == "fctl":
        lines += [
            f"  profile: {status.profile}",
            f"  organization: {status.organization}",
            f"  stack: {status.stack}",
            f"  stack URI: {status.stack_uri or 'unknown'}",
            f"  membership URI: {status.membership_uri or 'unknown'}",
            f"  stack API token (cached): {_until(status.token_expiry, now)}",
            f"  stack access token: {_until(status.stack_access_expiry, now)}",
        ]
        if status.logged_in_at is not None:
            age = int((now - status.logged_in_at).total_seconds())
            lines.append(
                f"  refresh token: logged in {_span(max(age, 0))} ago, of a "
                f"{_span(int(REFRESH_TOKEN_LIFETIME.total_seconds()))} lifetime; "
                f"ends {_until(status.refresh_token_expiry, now)}"
            )
        else:
            lines.append("  refresh token: age unknown")
    else:
        granted = status.scopes_granted
        lines += [
            f"  stack URI: {status.stack_uri}",
            f"  client id: {status.client_id}",
            f"  secret: from {status.secret_from}",
            f"  scopes asked for: {' '.join(status.scopes_requested or ()) or '(none)'}",
            "  scopes granted: "
            + ("unknown (no cached JWT)" if granted is None else " ".join(granted) or "(none)"),
            f"  token (cached): {_until(status.token_expiry, now)}",
        ]
    if status.failure is not None:
        lines.append(f"  remembered failure: {_failure_line(status.failure, now)}")
    if status.login_needed:
        lines.append(f"  login needed: {status.problem}")
    elif status.problem:
        lines.append(f"  note: {status.problem}")
    if status.check is not None:
        check = status.check
        if check.error is not None:
            lines.append(f"  check: failed after {check.seconds * 1000:.1f} ms: {check.error}")
        else:
            lines.append(
                f"  check: token from {check.origin} in {check.seconds * 1000:.1f} ms, "
                f"expires {_until(check.expiry, now)}"
            )
    return "".join(line + "\n" for line in lines)
