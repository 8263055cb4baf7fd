"""Background renewal: one daemon thread per source, only when the user asks for it.

Theory of operation. The thread loops over one step of its source
(`TokenSource._renewal_step`), which renews the held token when core's
`_holding.next_wake` says it is due (past its refresh point, or past a failed
renewal's retry time) and answers how many seconds to sleep until the next
thing to do, or None when the source holds no token. The thread sleeps on an event:
the source sets it when it takes a new token (the wait changes) and on
`stop`, so a stopped source's thread ends at once instead of at its next
refresh point. The thread holds its source weakly: a source dropped without
`close()` lets its thread end at its next wake-up.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable

__all__ = ["Renewer"]

#: How long `stop()` waits for the thread (it may be inside a request, whose
#: own timeout bounds it; the thread is a daemon either way).
STOP_TIMEOUT_SECONDS = 5.0
#: How long the thread sleeps after its step raised (a bug: logged, not fatal).
AFTER_CRASH_SECONDS = 60.0


class Renewer:
    """The daemon thread that renews a source's token at its refresh point."""

    def __init__(
        self,
        step: Callable[[], float | None],
        *,
        name: str,
        log: Callable[[str], None],
    ) -> None:
        self._step = weakref.WeakMethod(step)
        self._log = log
        self._wake = threading.Event()
        # A source dropped without close(): wake the thread, which then finds it gone
        # (else it sleeps to the next refresh point, or for ever when nothing is held).
        weakref.finalize(getattr(step, "__self__", step), self._wake.set)
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def poke(self) -> None:
        """Look again at the source now (it holds a new token, or was stopped)."""
        self._wake.set()

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> bool:
        """End the thread; True once it has ended (within `timeout` seconds)."""
        self._stopped = True
        self._wake.set()
        if self._thread is threading.current_thread() or not self._thread.is_alive():
            return not self._thread.is_alive()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while not self._stopped:
            self._wake.clear()  # before the step: a poke during the step is not lost
            step = self._step()
            if step is None:
                return  # the source is gone
            try:
                delay = step()
            except Exception as crash:  # a bug must not end renewal for good
                self._log(f"background renewal step failed: {type(crash).__name__}")
                delay = AFTER_CRASH_SECONDS
            del step
            if self._stopped:
                return
            self._wake.wait(None if delay is None else max(0.0, delay))
