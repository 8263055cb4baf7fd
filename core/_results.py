"""From the warm path's plain values to `Result`s, for the cold path.

Functions a warm run calls return the value or an error value itself, since
a warm run cannot afford to import `returns`. The cold path composes with
`Result`s; `lift` is the one bridge between the two, so no function needs
a `Result` twin.
"""

from __future__ import annotations

from returns.result import Failure, Result, Success

from ._errors import AcquireError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypeVar

    T = TypeVar("T")

__all__ = ["lift", "lift_reason"]


def lift(value: T | AcquireError) -> Result[T, AcquireError]:
    """`Failure` for an error value, else `Success`."""
    if isinstance(value, AcquireError):
        return Failure(value)
    return Success(value)


def lift_reason(value: T | str) -> Result[T, str]:
    """`Failure` for a reason (a string: the value is never one), else `Success`."""
    if isinstance(value, str):
        return Failure(value)
    return Success(value)
