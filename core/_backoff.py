"""One backoff schedule: doubling waits, capped, optionally jittered.

Every retry loop of stacktoken is a policy of `capped_backoff` (a first wait
and a cap), so "how long until the next try" has one answer and one set of
properties.
"""

from __future__ import annotations

__all__ = ["capped_backoff"]

# 2**64 times any first wait is past every cap; a higher exponent only risks
# OverflowError (a renewal failing for days counts its failures past 1024).
_MAX_DOUBLINGS = 64


def capped_backoff(attempt: int, *, first: float, cap: float, jitter: float | None = None) -> float:
    """Seconds to wait after the `attempt`-th failure in a row (1, 2, ...): `first`
    doubled `attempt - 1` times, at most `cap`. With `jitter` (a draw in [0, 1)),
    "equal jitter": between half and all of that wait."""
    wait = min(first * 2.0 ** min(max(0, attempt - 1), _MAX_DOUBLINGS), cap)
    return wait if jitter is None else wait * (0.5 + jitter / 2)
