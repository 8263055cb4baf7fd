"""Failure memory (docs/design.md §15): a rejected credential does not storm the server.

A rejection (the client refused, a refresh still refused after the re-read) is
remembered for a window; a transient failure at the token endpoint (5xx, a
timeout, a refused connection) for a jittered, doubling backoff. Within it a
call fails at once, without the network. The entry is stored where the token
would have gone, so every process of a host (every host of a fleet, on Redis)
sees it.

A rejection holds only for the secret that was rejected: the entry keeps a
fingerprint of it (a slow, salted hash the shell computes, and only while an
entry is there), so a corrected secret is tried at once. A transient failure
is the endpoint's, whatever the secret.

The decisions here are pure; the shell reads and writes the entries, draws
the salt and the jitter, and hashes.
"""

from __future__ import annotations

from ._backoff import capped_backoff
from ._errors import AuthRequired, OAuthError, RemoteError
from ._record import Record
from ._time import UTC, datetime, timedelta

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from ._errors import AcquireError

__all__ = [
    "REJECTED",
    "TRANSIENT",
    "FailureKnobs",
    "FailureMemory",
    "Remembered",
    "decode_remembered",
    "encode_remembered",
    "failure_kind",
    "in_force",
    "remember",
    "remembered_error",
]

REJECTED = "rejected"
TRANSIENT = "transient"


class FailureKnobs(Record):
    """How long failures are remembered (seconds): a rejection for `window`; a
    transient failure for `first` doubled per failure in a row, at most `cap`,
    jittered (between half and all of it)."""

    window: float = 60.0
    first: float = 1.0
    cap: float = 30.0


class Remembered(Record):
    """A remembered failure. `fingerprint`/`salt` (hex): the slow hash of the
    secret it was for, never the secret; `reason`: the failure's own one line
    (errors never hold a secret); `owner`: whom the entry is for (a client id, a
    profile's stack), so `cache clear` can find it."""

    kind: str
    at: datetime
    until: datetime
    count: int = 1
    salt: str
    fingerprint: str
    reason: str
    owner: str = ""


class FailureMemory(Record):
    """The shell's side of the memory of one token's failures.

    - `read()`: the remembered failure, or None (nothing, or a corrupt entry);
    - `fingerprint(salt)`: the slow hash of the current secret under `salt`;
    - `write(remembered)`: keep it until its `until`, best effort;
    - `forget()`: drop it (a success);
    - `draw()`: a new salt (hex) and a jitter draw in [0, 1).
    """

    read: Callable[[], Remembered | None]
    fingerprint: Callable[[str], str]
    write: Callable[[Remembered], None]
    forget: Callable[[], None]
    draw: Callable[[], tuple[str, float]]
    knobs: FailureKnobs = FailureKnobs()
    owner: str = ""


def failure_kind(error: AcquireError) -> str | None:
    """Whether `error` is worth remembering: a rejection, a transient failure, or neither."""
    if isinstance(error, AuthRequired):
        return REJECTED if error.remember else None
    if isinstance(error, RemoteError):
        return TRANSIENT if error.transient else None
    if isinstance(error, OAuthError):
        return TRANSIENT if error.status_code >= 500 else None
    return None


def in_force(remembered: Remembered, *, same_secret: Callable[[], bool], now: datetime) -> bool:
    """Whether `remembered` stops a call at `now`. `same_secret` (the slow hash)
    is asked only for a rejection still inside its window."""
    # Another host's clock may run a little behind the writer's: an entry from up
    # to one window "in the future" holds; from further, the clock went back.
    if not remembered.at - (remembered.until - remembered.at) <= now < remembered.until:
        return False
    return remembered.kind == TRANSIENT or same_secret()


def remember(
    kind: str,
    reason: str,
    *,
    previous: Remembered | None,
    knobs: FailureKnobs,
    salt: str,
    fingerprint: str,
    jitter: float,
    now: datetime,
    owner: str = "",
) -> Remembered:
    """The entry for a failure of `kind` at `now`: a rejection for the window; a
    transient failure for the backoff of its count in a row (`previous`, if it
    was transient too), with the `jitter` draw."""
    count = previous.count + 1 if previous is not None and previous.kind == kind else 1
    if kind == REJECTED:
        wait = knobs.window
    else:
        wait = capped_backoff(count, first=knobs.first, cap=knobs.cap, jitter=jitter)
    return Remembered(
        kind=kind,
        at=now,
        until=now + timedelta(seconds=wait),
        count=count,
        salt=salt,
        fingerprint=fingerprint,
        reason=reason,
        owner=owner,
    )


def remembered_error(remembered: Remembered, *, now: datetime) -> AcquireError:
    """The one line a call stopped by `remembered` fails with."""
    ago = max(0, int((now - remembered.at).total_seconds()))
    left = max(0.0, (remembered.until - now).total_seconds())
    ends = remembered.until.astimezone(UTC).strftime("%H:%M:%S UTC")
    if remembered.kind == REJECTED:
        return AuthRequired(
            message=f"not asking again: this credential was rejected {ago} s ago "
            f"({remembered.reason}); remembered until {ends} (in {left:.0f} s), "
            "or until the secret changes (`stacktoken cache clear` forgets it)"
        )
    return RemoteError(
        message=f"not asking again yet: the token endpoint failed {ago} s ago, "
        f"{remembered.count} time(s) in a row ({remembered.reason}); "
        f"next try after {ends} (in {left:.1f} s)",
        transient=True,
    )


def encode_remembered(remembered: Remembered) -> bytes:
    """The entry's JSON (no secret in it: the fingerprint is a slow salted hash)."""
    import json

    return json.dumps(
        {
            "kind": remembered.kind,
            "at": remembered.at.isoformat(),
            "until": remembered.until.isoformat(),
            "count": remembered.count,
            "salt": remembered.salt,
            "fingerprint": remembered.fingerprint,
            "reason": remembered.reason,
            "owner": remembered.owner,
        }
    ).encode()


def decode_remembered(data: bytes) -> Remembered | str:
    """The entry, or why it is a miss (a corrupt entry is never an error)."""
    from ._json import json_object

    found = json_object(data)
    if isinstance(found, str):
        return found
    try:
        kind, count = found["kind"], found["count"]
        texts = [found[name] for name in ("salt", "fingerprint", "reason", "owner")]
        at, until = (datetime.fromisoformat(found[name]) for name in ("at", "until"))
    except (KeyError, TypeError, ValueError):
        return "failure entry malformed"
    if (
        kind not in (REJECTED, TRANSIENT)
        or type(count) is not int
        or count < 1
        or not all(isinstance(text, str) for text in texts)
        or at.tzinfo is None
        or until.tzinfo is None
    ):
        return "failure entry malformed"
    salt, fingerprint, reason, owner = texts
    return Remembered(
        kind=kind,
        at=at,
        until=until,
        count=count,
        salt=salt,
        fingerprint=fingerprint,
        reason=reason,
        owner=owner,
    )
