"""The Hypothesis profiles of conftest.py: a CI failure reproduces and shows its blob."""

from __future__ import annotations

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st


def _first_failure(profile: str) -> list[str]:
    """The report of the first failing example a property finds under `profile`
    (generation only: shrinking would hide whether the examples are the same; no
    database: a replayed example would hide it too)."""

    @settings(settings.get_profile(profile), phases=[Phase.generate], database=None)
    @given(st.binary(min_size=16, max_size=16))
    def fails_on_anything_but_zeros(data: bytes) -> None:
        assert not any(data)

    with pytest.raises(AssertionError) as failure:
        fails_on_anything_but_zeros()
    return list(getattr(failure.value, "__notes__", []))


def test_ci_profile_finds_the_same_failure_on_every_run() -> None:
    """Derandomized and without a database: two runs draw the same failing example."""
    ci = settings.get_profile("ci")
    assert ci.derandomize
    assert ci.database is None
    first, second = _first_failure("ci"), _first_failure("ci")
    assert first == second


@pytest.mark.parametrize("profile", ["ci", "heavy", "dev"])
def test_profile_failure_prints_its_blob(profile: str) -> None:
    """Every profile prints the `@reproduce_failure` blob of a failure."""
    assert settings.get_profile(profile).print_blob
    notes = _first_failure(profile)
    assert any("@reproduce_failure(" in note for note in notes), notes
