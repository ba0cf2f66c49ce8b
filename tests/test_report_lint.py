"""Lint of what the trial report reads in the study file: the planned recruitment and the
baseline table's variables, each finding at its line."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import edit, line_of

from hekta_redcap.core.errors import DefinitionError
from hekta_redcap.definitions.study import load_project
from hekta_redcap.lint import lint_all

STUDY = "studies/hekta.yaml"


@pytest.mark.parametrize(
    ("old", "new", "anchor", "message"),
    [
        (
            "  end: 2026-12-31",
            "  end: 2024-12-31",
            "  end: 2024-12-31",
            "recruitment ends (2024-12-31) before it starts (2025-01-01)",
        ),
        (
            "per_site: {1: 80, 2: 70, 3: 50}",
            "per_site: {1: 80, 2: 70, 4: 50}",
            "per_site: {1: 80",
            "per_site: '4' is not a site (codes of site: 1, 2, 3)",
        ),
        (
            "per_site: {1: 80, 2: 70, 3: 50}",
            "per_site: {1: 80, 2: 70, 3: 40}",
            "per_site: {1: 80",
            "per_site adds up to 190, not the target 200",
        ),
        (
            "  target: 200",
            "  target: 320",
            "per_site: {1: 80",
            "per_site adds up to 200, not the target 320",
        ),
        (
            "per_site: {1: 80, 2: 70, 3: 50}",
            "per_site: {1: 130, 2: 40, 3: 30}",
            "per_site: {1: 130",
            "per_site: site '1' plans 130, more than the allocation table's planned enrolment "
            "per stratum (100)",
        ),
        (
            "variables: [audit_total, dudit_total]",
            "variables: [audit_total, dudit_totl]",
            "variables: [audit_total, dudit_totl]",
            "baseline_table: 'dudit_totl' is no field or score",
        ),
        (
            "variables: [audit_total, dudit_total]",
            "variables: [audit_total, job_start_date]",
            "variables: [audit_total, job_start_date]",
            "baseline_table: 'job_start_date' is on a repeating form",
        ),
        (
            "variables: [audit_total, dudit_total]",
            "variables: [audit_total, fu_status]",
            "variables: [audit_total, fu_status]",
            "baseline_table: 'fu_status' (form followup_tracking) is not collected at "
            "'baseline_arm_1'",
        ),
    ],
)
def test_a_broken_plan_or_table_is_an_error_at_its_line(
    library: Path, old: str, new: str, anchor: str, message: str
) -> None:
    file = edit(library, STUDY, old, new)
    findings = [f for f in lint_all(library, ["hekta"]) if f.rule == "report"]
    assert [f.message for f in findings] == [message]
    assert findings[0].severity == "error"
    assert findings[0].origin is not None
    assert findings[0].origin.line == line_of(file, anchor)


def test_the_shipped_plan_lints_clean(library: Path) -> None:
    assert [f for f in lint_all(library, ["hekta"]) if f.rule == "report"] == []


def test_a_date_that_is_no_date_is_an_error_at_its_line(library: Path) -> None:
    file = edit(library, STUDY, "  start: 2025-01-01", "  start: 2025-13-01")
    with pytest.raises(DefinitionError) as raised:
        load_project("hekta", library)
    assert raised.value.origin is not None
    assert raised.value.origin.line == line_of(file, "  start: 2025-13-01")
