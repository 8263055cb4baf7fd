"""The pytest plugin of ``stacktoken[testing]`` (entry point ``pytest11``: no conftest needed).

Fixtures:

* ``formance_sandbox`` -- a started :class:`~stacktoken.testing.Sandbox`, fresh
  for each test, its work dir under the test's ``tmp_path``; stopped after it.
* ``formance_client`` -- a machine credential (:class:`~stacktoken.testing.SandboxClient`)
  on that sandbox's stack.
* ``formance_token_source`` -- a ``TokenSource`` for that client, closed after the test.
* ``formance_fctl_profile`` -- an fctl config dir logged in to the sandbox.

Installed wherever stacktoken is, so this module imports nothing beyond pytest
until a fixture runs (a project without the ``testing`` extra never pays).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from stacktoken import TokenSource
    from stacktoken.testing import FctlProfile, Sandbox, SandboxClient

__all__ = [
    "formance_client",
    "formance_fctl_profile",
    "formance_sandbox",
    "formance_token_source",
]

#: A sandbox left running by a hung test stops itself after this long (seconds).
SANDBOX_LIFETIME = 600.0


@pytest.fixture
def formance_sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    """A Formance sandbox on 127.0.0.1 for this test (see ``stacktoken.testing.Sandbox``)."""
    from stacktoken.testing import Sandbox

    with Sandbox(workdir=tmp_path / "formance-sandbox", lifetime=SANDBOX_LIFETIME) as sandbox:
        yield sandbox


@pytest.fixture
def formance_client(formance_sandbox: Sandbox) -> SandboxClient:
    """A new stack OAuth client (scopes ``ledger:read ledger:write``) on the sandbox."""
    return formance_sandbox.client()


@pytest.fixture
def formance_token_source(formance_client: SandboxClient) -> Iterator[TokenSource]:
    """``TokenSource.from_client_credentials`` for ``formance_client``, closed after the test."""
    with formance_client.token_source() as source:
        yield source


@pytest.fixture
def formance_fctl_profile(formance_sandbox: Sandbox) -> FctlProfile:
    """An fctl config dir logged in to the sandbox (``TokenSource.from_fctl(config_dir=...)``)."""
    return formance_sandbox.fctl_profile()
