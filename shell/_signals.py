"""Ctrl-C and SIGTERM: one line and exit 130 / 143, and never a lost refresh token.

The IdP rotates a refresh token when it receives the refresh request: from
then on, the new token exists only in the answer on its way to us until it
is written to `accesses.json`. A signal in that window would lose it (the
old one is spent), so the CLI *defers* SIGINT and SIGTERM while a rotation
is in flight (`hold` ... `release`): the signal is noted and raised once the
rotation is on disk. The window is bounded by the request's timeout.

Only the CLI installs the handlers (`install`); a library caller keeps its
own, and `hold`/`release` then only count.
"""

from __future__ import annotations

import signal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import FrameType

__all__ = ["Terminated", "guard"]


class Terminated(BaseException):
    """SIGTERM, raised like KeyboardInterrupt is for SIGINT (not an `Exception`,
    so no `except Exception` on the way swallows it)."""


class _Guard:
    def __init__(self) -> None:
        self._depth = 0
        self._pending: int | None = None

    def install(self) -> None:
        """Route SIGINT and SIGTERM through the guard (the CLI's main thread only)."""
        signal.signal(signal.SIGINT, self._handle)
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self._depth:
            self._pending = signum  # raised by `release`, once the rotation is saved
            return
        _raise(signum)

    def hold(self) -> None:
        """From here on, defer interruptions until the matching `release`."""
        self._depth += 1

    def release(self) -> None:
        """End one `hold`; the last one raises an interruption that arrived meanwhile."""
        if self._depth == 0:
            return
        self._depth -= 1
        if self._depth == 0 and self._pending is not None:
            pending, self._pending = self._pending, None
            _raise(pending)

    @property
    def holding(self) -> bool:
        return self._depth > 0


def _raise(signum: int) -> None:
    if signum == signal.SIGTERM:
        raise Terminated
    raise KeyboardInterrupt


guard = _Guard()
