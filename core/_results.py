"""From the warm set's plain values to `Result`s, for the cold path.

Functions a warm run calls (locating a stack, reading settings) return the
value or the error value itself, since a warm run cannot afford to import
`returns`. The cold path composes with `Result`s; `lift` is the one bridge
between the two, so no function needs a `Result` twin.
"""

from __future__ import annotations

from returns.result import Failure, Result, Success

from ._errors import AcquireError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypeVar

    T = TypeVar("T")

__all__ = ["lift"]


def lift(value: T | AcquireError) -> Result[T, AcquireError]:
    """`Failure` for an error value, else `Success`."""
    if isinstance(value, AcquireError):
        return Failure(value)
    return Success(value)
