"""The ledger v2 stub of the tests: now stacktoken.testing's (one set of servers).

Kept as a thin module so that existing tests' ``from ledger_stub import ...``
goes on working; new code imports from ``stacktoken.testing``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from stacktoken.testing._ledger import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, LedgerCall, LedgerStub
from stacktoken.testing._servers import StackAuthServer

__all__ = ["DEFAULT_PAGE_SIZE", "MAX_PAGE_SIZE", "LedgerCall", "LedgerStub", "ledger_stub"]


@pytest.fixture
def ledger_stub(stack_server: StackAuthServer) -> Iterator[LedgerStub]:
    """:class:`LedgerStub` (20 ledgers) on the ``stack_server`` fixture."""
    yield LedgerStub(stack_server)
