"""What every service the sandbox and the tests start has in common: a
`with` block that starts and stops it, and, for those that listen, the
loopback host and the port learnt when started (0 asks the kernel for one)."""

from __future__ import annotations

from types import TracebackType
from typing import ClassVar, Final, Self

__all__ = ["LOOPBACK_HOST", "LoopbackService", "Service"]

LOOPBACK_HOST: Final = "127.0.0.1"


class Service:
    """Started by `start()` (which returns it), stopped by `stop()`; `with` does both."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class LoopbackService(Service):
    """A service listening on 127.0.0.1; `_port` is its port once started (0 before)."""

    name: ClassVar[str] = "service"
    _port: int

    @property
    def host(self) -> str:
        return LOOPBACK_HOST

    @property
    def port(self) -> int:
        if self._port == 0:
            raise RuntimeError(f"{self.name} was never started")
        return self._port
