"""docs/reliability.md is the rendering of the tables the fault tests run."""

from __future__ import annotations

from reliability_matrix import DOC_PATH, REMOTE_FAULTS, Step, main, remote_cases, render


def test_reliability_doc_matches_the_matrix() -> None:
    """Regenerate with `python tests/reliability_matrix.py --write`."""
    assert DOC_PATH.read_text(encoding="utf-8") == render()
    assert main(["--check"]) == 0


def test_reliability_matrix_covers_every_step_of_every_fault() -> None:
    """Each fault is tested at each remote step, but for the n/a cells named here
    (an issuer is a discovery matter; `invalid_grant` a token-endpoint one)."""
    not_applicable = {
        (fault.id, step) for fault in REMOTE_FAULTS for step in Step if step not in fault.expect
    }
    assert not_applicable == {
        ("wrong_issuer", Step.REFRESH),
        ("wrong_issuer", Step.EXCHANGE),
        ("invalid_grant", Step.MEMBERSHIP_DISCOVERY),
        ("invalid_grant", Step.STACK_DISCOVERY),
    }
    assert len(remote_cases()) == len(REMOTE_FAULTS) * len(Step) - len(not_applicable)
