"""Shared fixtures: the loopback servers of stacktoken.testing, an fctl profile, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from stacktoken.testing import FctlProfile, MembershipServer, StackAuthServer, write_fctl_profile

CLI_TIMEOUT_SECONDS = 60


@dataclass
class World:
    """Two loopback OAuth servers, an fctl config dir pointing at them, and the CLI."""

    membership: MembershipServer
    stack: StackAuthServer
    profile: FctlProfile
    home: Path
    cache_dir: Path

    @classmethod
    def at(
        cls,
        tmp_path: Path,
        membership: MembershipServer,
        stack: StackAuthServer,
        profile: FctlProfile,
    ) -> World:
        """A world whose home and discovery cache live under `tmp_path`."""
        return cls(
            membership=membership,
            stack=stack,
            profile=profile,
            home=tmp_path / "home",
            cache_dir=tmp_path / "cache",
        )

    @property
    def config_dir(self) -> Path:
        return self.profile.config_dir

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("STACK_TOKEN_CACHE_TTL", "FCTL_CONFIG_DIR", "XDG_CONFIG_HOME")
        }
        env.update(
            HOME=str(self.home),
            XDG_CACHE_HOME=str(self.home / ".cache"),
            FCTL_CONFIG_DIR=str(self.config_dir),
        )
        env.update(extra or {})
        return env

    def run(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        global_args: tuple[str, ...] | None = None,
        timeout: float = CLI_TIMEOUT_SECONDS,
    ) -> subprocess.CompletedProcess[str]:
        """Run `python -m stacktoken [--cache-dir D] ARGS` as a user would.

        Whatever the outcome, the user must never see a traceback.
        """
        prefix = ("--cache-dir", str(self.cache_dir)) if global_args is None else global_args
        result = subprocess.run(
            [sys.executable, "-m", "stacktoken", *prefix, *args],
            capture_output=True,
            text=True,
            env=self.env(env),
            timeout=timeout,
            check=False,
        )
        assert "Traceback" not in result.stderr, result.stderr
        return result

    def requests(self) -> int:
        return self.membership.total_requests + self.stack.total_requests

    def exchanges(self) -> int:
        return self.stack.count(self.stack.TOKEN)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with MembershipServer() as membership, StackAuthServer(membership) as stack:
        yield World.at(
            tmp_path, membership, stack, write_fctl_profile(tmp_path / "fctl", membership, stack)
        )
