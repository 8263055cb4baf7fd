"""The device flow's polling machine (RFC 8628 section 3.4-3.5, docs/design.md §13).

Theory of operation
-------------------
After the device authorization answer, we poll the token endpoint until an
answer ends the flow. The loop is a state machine,
`device_step(state, answer, now) -> (state, action)`:

    state   DevicePolling(interval, deadline, not_before, polls, failures, last_failure)
    answer  None (nothing sent since the last step) or the last poll's Result
    action  DeviceWait(until) | DeviceSend() | DeviceFinish(response) | DeviceFail(error)

What each kind of answer does is data, in `TRANSITIONS` (as h11 keeps its
state machine in tables), read in two halves:

1. the answer: it ends the flow (`Finish` on a success; `Fail` on
   `access_denied`, `expired_token` or any failure that is not transient), or
   it moves the next allowed poll: one interval after the answer
   (`authorization_pending`; `slow_down` after adding 5 s to the interval,
   RFC 8628 section 3.5), or a backoff after it (a transient failure), or not at all
   (None: nothing was sent);
2. the clock: `now >= deadline` fails (the code expired, naming the last
   failed poll if the last poll failed), `now < not_before` waits until
   `min(not_before, deadline)`, else the next poll is sent.

`not_before` counts from the time the answer came back, so two sends are
always at least one interval apart. The deadline is the answer's `expires_in`
counted from before the device request was sent.

A transient failure is a poll that got no usable answer: a refused or reset
connection, a timeout, a 429 or 5xx, an unreadable 200, or `server_error` /
`temporarily_unavailable`. RFC 8628 section 3.5 asks for an exponential backoff
then: the wait after `k` failures in a row is `poll_backoff(interval, k)`,
the interval doubled `k` times, at most `POLL_BACKOFF_CAP` and never less
than the interval. It is pulled back to the code's last chance
(`deadline - interval`) when it would pass it, so an outage that ends in
time still lets an approval through; never below the interval. The shell
sends each poll once (no retry of its own): this machine is the only pace.
"""

from __future__ import annotations

from collections.abc import Mapping

from returns.result import Failure, Result, Success

from ._errors import AcquireError, AuthRequired, OAuthError, RemoteError
from ._profile import LOGIN_HINT
from ._record import Record, replace
from ._time import datetime, timedelta
from ._types import TokenResponse

__all__ = [
    "DENIED",
    "EXPIRED",
    "POLL_BACKOFF_CAP",
    "POLL_BACKOFF_FLOOR",
    "SLOW_DOWN_STEP",
    "TRANSITIONS",
    "DeviceAction",
    "DeviceFail",
    "DeviceFinish",
    "DevicePolling",
    "DeviceSend",
    "DeviceWait",
    "PollAnswer",
    "Transition",
    "answer_kind",
    "device_step",
    "poll_backoff",
    "start_polling",
]

SLOW_DOWN_STEP = timedelta(seconds=5)  # RFC 8628 section 3.5
# The longest wait after failed polls (RFC 8628 section 3.5 backoff): an IdP back after an
# outage is noticed within a minute, a device code lives minutes.
POLL_BACKOFF_CAP = timedelta(seconds=60)
# An IdP's near-zero interval doubles to nothing: failed polls back off from this at least.
POLL_BACKOFF_FLOOR = timedelta(milliseconds=100)


class DevicePolling(Record):
    """Where the polling is: the interval in force, the code's end, the next allowed send,
    and the transient failures in a row just before (with the last one's message)."""

    interval: timedelta
    deadline: datetime
    not_before: datetime
    polls: int = 0
    failures: int = 0
    last_failure: str | None = None


class DeviceWait(Record):
    """Wait until `until`; `reason` (to log) says why when a poll just failed."""

    until: datetime
    reason: str | None = None


class DeviceSend(Record):
    pass


class DeviceFinish(Record):
    response: TokenResponse


class DeviceFail(Record):
    error: AcquireError


DeviceAction = DeviceWait | DeviceSend | DeviceFinish | DeviceFail
PollAnswer = Result[TokenResponse, AcquireError] | None

EXPIRED = AuthRequired(message=f"the login code expired before it was approved; {LOGIN_HINT}")
DENIED = AuthRequired(message=f"the login was denied; {LOGIN_HINT}")


class Transition(Record):
    """What one kind of answer does: end the flow (`ends`: "finish", or "fail" with
    `error`, else the answer's own), or move the next poll (`next_poll`:
    "interval" or "backoff"; None leaves it), after adding `interval_step`."""

    ends: str | None = None
    error: AcquireError | None = None
    next_poll: str | None = None
    interval_step: timedelta = timedelta(0)


#: The answer's kind (`answer_kind`) -> what it does; then the clock decides.
TRANSITIONS: Mapping[str, Transition] = {
    "nothing": Transition(),
    "authorization_pending": Transition(next_poll="interval"),
    "slow_down": Transition(next_poll="interval", interval_step=SLOW_DOWN_STEP),
    "transient": Transition(next_poll="backoff"),
    "success": Transition(ends="finish"),
    "access_denied": Transition(ends="fail", error=DENIED),
    "expired_token": Transition(ends="fail", error=EXPIRED),
    "failure": Transition(ends="fail"),
}

# The OAuth error codes of a poll that have rows of their own (RFC 8628 section 3.5).
_POLL_CODES = frozenset({"authorization_pending", "slow_down", "access_denied", "expired_token"})
# Not token-endpoint codes (RFC 6749 section 5.2), but some IdPs answer a poll with them.
_TRANSIENT_CODES = frozenset({"server_error", "temporarily_unavailable"})


def answer_kind(answer: PollAnswer) -> str:
    """Which row of `TRANSITIONS` an answer is."""
    match answer:
        case None:
            return "nothing"
        case Success(_):
            return "success"
        case Failure(OAuthError(error=code)) if code in _POLL_CODES:
            return str(code)
        case Failure(RemoteError(transient=True)):
            return "transient"
        case Failure(OAuthError(error=code)) if code in _TRANSIENT_CODES:
            return "transient"
    return "failure"


def start_polling(
    *, interval: timedelta, expires_in: timedelta, requested_at: datetime
) -> DevicePolling:
    """The first state: the first poll waits one interval after the answer (RFC 8628 sec. 3.4)."""
    return DevicePolling(
        interval=interval, deadline=requested_at + expires_in, not_before=requested_at + interval
    )


def poll_backoff(interval: timedelta, failures: int) -> timedelta:
    """The wait after `failures` transient failures in a row (RFC 8628 section 3.5): the
    interval doubled per failure, at most `POLL_BACKOFF_CAP`, never under the interval."""
    if failures <= 0:
        return interval
    base = max(interval, POLL_BACKOFF_FLOOR)
    doubled = base * (1 << min(failures, 16))  # 2**16: past any cap, within timedelta
    return max(base, min(doubled, POLL_BACKOFF_CAP))


def _after_failure(state: DevicePolling, message: str, *, now: datetime) -> DevicePolling:
    """One more transient failure: back off, but not past the code's last chance."""
    failures = state.failures + 1
    not_before = now + poll_backoff(state.interval, failures)
    last_chance = state.deadline - state.interval
    if not_before > last_chance:
        not_before = max(now + state.interval, last_chance)
    return replace(
        state,
        not_before=not_before,
        polls=state.polls + 1,
        failures=failures,
        last_failure=message,
    )


def device_step(
    state: DevicePolling, answer: PollAnswer, *, now: datetime
) -> tuple[DevicePolling, DeviceAction]:
    """The next state and action, from the state, the last poll's answer (None: no
    answer since the last step) and `now` (see the theory of operation above)."""
    rule = TRANSITIONS[answer_kind(answer)]
    match answer:
        case Success(response) if rule.ends == "finish":
            return state, DeviceFinish(response=response)
        case Failure(error) if rule.ends == "fail":
            return state, DeviceFail(error=rule.error or error)
    reason: str | None = None
    if rule.next_poll == "interval":
        interval = state.interval + rule.interval_step
        state = replace(
            state,
            interval=interval,
            not_before=now + interval,
            polls=state.polls + 1,
            failures=0,
            last_failure=None,
        )
    elif rule.next_poll == "backoff" and isinstance(answer, Failure):
        error = answer.failure()
        state = _after_failure(state, error.message, now=now)
        wait = (state.not_before - now).total_seconds()
        reason = f"poll failed ({error.message}; {state.failures} in a row), " + (
            f"polling again in {wait:.2f} s"
            if state.not_before < state.deadline
            else "no time left to poll again before the code expires"
        )
    if now >= state.deadline:
        if state.last_failure is None:
            return state, DeviceFail(error=EXPIRED)
        message = (
            "the login code expired before it was approved (the last poll failed: "
            f"{state.last_failure}); {LOGIN_HINT}"
        )
        return state, DeviceFail(error=AuthRequired(message=message))
    if now < state.not_before:
        return state, DeviceWait(until=min(state.not_before, state.deadline), reason=reason)
    return state, DeviceSend()
