"""docs/reliability.md is the rendering of the tables the fault tests run."""

from __future__ import annotations

from pathlib import Path

from reliability_matrix import (
    ATTACKS,
    DOC_PATH,
    LOGIN_FAULTS,
    REDIS_FAULTS,
    REMOTE_FAULTS,
    Step,
    main,
    remote_cases,
    render,
)

ROOT = Path(__file__).resolve().parent.parent


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


def test_reliability_matrix_names_tests_that_exist() -> None:
    """Every test a row names (`path` or `path::test_name`) is in the repository."""
    named = [row.test for row in LOGIN_FAULTS] + [row.test for row in REDIS_FAULTS]
    named += [row.test for row in ATTACKS]
    missing = []
    for reference in (part.strip() for text in named for part in text.split(",")):
        path, _, test = reference.partition("::")
        source = ROOT / path
        if not source.is_file() or (test and f"def {test}(" not in source.read_text("utf-8")):
            missing.append(reference)
    assert missing == []
    assert len(LOGIN_FAULTS) >= 10
