"""A simulated clock for the sandbox's servers (and, if you like, your token source)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

__all__ = ["SimulatedClock"]


class SimulatedClock:
    """Wall-clock time that moves only when told to (:meth:`advance`).

    Give it to :class:`~stacktoken.testing.Sandbox` and the servers issue and
    check tokens on it; give :meth:`now` to
    ``TokenSource.from_client_credentials(clock=...)`` and the client measures
    lifetimes on it too, so an hour passes in a call.
    """

    def __init__(self, start: float | None = None) -> None:
        self._lock = threading.Lock()
        self._epoch = time.time() if start is None else float(start)

    def time(self) -> float:
        """Seconds since the epoch, as ``time.time()``."""
        with self._lock:
            return self._epoch

    __call__ = time

    def now(self) -> datetime:
        """The same instant as an aware UTC datetime."""
        return datetime.fromtimestamp(self.time(), UTC)

    def advance(self, seconds: float) -> None:
        """Move forward by ``seconds`` (never backwards)."""
        if seconds < 0:
            raise ValueError("a simulated clock does not go back")
        with self._lock:
            self._epoch += seconds

    def __repr__(self) -> str:
        return f"SimulatedClock({self.now().isoformat()})"
