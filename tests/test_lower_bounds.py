"""The lower-bound run (.ci/lower-bounds) pins exactly the floors pyproject.toml declares.

A floor raised in one file and not the other would make CI test versions no
user is promised, or promise versions CI never tests.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PINNED = ROOT / ".ci" / "lower-bounds.txt"
# An extra of a dependency (`pyjwt[crypto]`) may stand before the floor.
REQUIREMENT = re.compile(r"^([A-Za-z0-9_.-]+)(?:\[[a-z0-9,]+\])?>=([0-9][0-9A-Za-z.]*)$")


def _declared_floors() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements.extend(extra)
    floors = {}
    for requirement in requirements:
        match = REQUIREMENT.match(requirement)
        assert match, f"{requirement!r}: declare a plain floor, name>=version"
        floors[match[1].lower()] = match[2]
    return floors


def _pins() -> dict[str, str]:
    pins = {}
    for line in PINNED.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.strip().lower()] = version.strip()
    return pins


def test_lower_bounds_pin_every_runtime_floor_declared() -> None:
    floors = _declared_floors()
    runtime = [
        re.split(r"[<>=\[]", r)[0].lower()
        for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    ]
    pins = _pins()
    for name in runtime:
        assert pins.get(name) == floors[name], (
            f"{name}: pinned {pins.get(name)}, declared >={floors[name]}"
        )


def test_lower_bounds_pins_are_the_declared_floors() -> None:
    floors = _declared_floors()
    for name, version in _pins().items():
        assert floors.get(name) == version, f"{name}=={version} is not a declared floor"
