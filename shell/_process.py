"""What the process offers every shell module, one of each: the clock, the jitter
draw, the library logger and the no-op logger.

Cheap to import (a warm run may): no `random`, no `logging` until a logger is asked for.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from stacktoken.core._time import UTC, datetime

__all__ = ["LIBRARY_LOGGER", "library_logger", "no_log", "uniform", "utc_now"]

#: The name of the one library logger (`logging.getLogger`).
LIBRARY_LOGGER = "stacktoken"


def utc_now() -> datetime:
    """The clock: where the shell reads the time of day (the warm set, which must not
    import this module, reads it itself: `_warm`, `_stores`)."""
    return datetime.now(UTC)


def uniform() -> float:
    """A number in [0, 1) for jitter, from os.urandom (no `random` import)."""
    return int.from_bytes(os.urandom(7)) / 2**56


def library_logger() -> Callable[[str], None]:
    """Debug lines of the `stacktoken` logger, for callers who pass no `log`."""
    import logging  # only a library caller without a `log` of its own pays for it

    return logging.getLogger(LIBRARY_LOGGER).debug


def no_log(_line: str) -> None:
    """A logger that says nothing."""
