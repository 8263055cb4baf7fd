"""docs/reliability.md is the rendering of the tables the fault tests run."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from reliability_matrix import (
    ATTACKS,
    CLIENT_FAULT_TEST,
    CLIENT_FAULTS,
    DOC_PATH,
    FAILURE_FAULTS,
    LOGIN_FAULTS,
    REDIS_FAULTS,
    REMOTE_FAULTS,
    ClientFault,
    ClientStep,
    Step,
    client_case_id,
    client_cases,
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
    named += [row.test for row in FAILURE_FAULTS]
    named += [row.test for row in ATTACKS]
    missing = []
    for reference in (part.strip() for text in named for part in text.split(",")):
        path, _, test = reference.partition("::")
        source = ROOT / path
        if not source.is_file() or (test and f"def {test}(" not in source.read_text("utf-8")):
            missing.append(reference)
    assert missing == []
    assert len(LOGIN_FAULTS) >= 10


def test_reliability_client_credentials_rows_cover_every_fault() -> None:
    """A client-credentials row for each fault of the matrix, each applying at a
    step of that grant, and every cell of the existing rows that applies to the
    stack steps applies here too."""
    ids = [fault.id for fault in CLIENT_FAULTS]
    assert len(ids) == len(set(ids))
    assert {fault.id for fault in REMOTE_FAULTS} <= set(ids)
    for fault in CLIENT_FAULTS:
        assert fault.expect, fault.id
        remote = fault.remote
        if remote is not None and Step.STACK_DISCOVERY in remote.expect:
            assert ClientStep.STACK_DISCOVERY in fault.expect, fault.id


def test_reliability_client_credentials_rows_name_real_test_cases() -> None:
    """The test the table names exists and has exactly one case a cell, by id."""
    path, _, name = CLIENT_FAULT_TEST.partition("::")
    assert (ROOT / path).is_file(), path
    test = getattr(importlib.import_module(Path(path).stem), name)
    marks = [mark for mark in getattr(test, "pytestmark", []) if mark.name == "parametrize"]
    assert len(marks) == 1, "the named test is not parametrized by the table"
    assert list(marks[0].kwargs["ids"]) == [client_case_id(f, s) for f, s in client_cases()]
    assert list(marks[0].args[1]) == client_cases()


@pytest.mark.parametrize("fault", CLIENT_FAULTS, ids=[fault.id for fault in CLIENT_FAULTS])
def test_reliability_client_credentials_row_is_in_the_doc(fault: ClientFault) -> None:
    text = DOC_PATH.read_text(encoding="utf-8")
    for step in fault.expect:
        assert f"`{client_case_id(fault, step)}`" in text
