"""The synthetic cohort: deterministic, accepted by the local REDCap-compatible server as it is,
valid for the definitions everywhere except the deliberate errors it lists, and shaped like the
trial (balanced groups, dates in order, more competitive work with IPS)."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pytest
import redcap
from conftest import LIBRARY

from hekta_redcap.core.settings import Settings
from hekta_redcap.definitions.instruments import Field
from hekta_redcap.definitions.study import Project, load_project
from hekta_redcap.devtools.cohort import (
    ERROR_KINDS,
    EVENT,
    REPEAT_INSTANCE,
    REPEAT_INSTRUMENT,
    Cohort,
    generate,
)
from hekta_redcap.devtools.provision import provision
from hekta_redcap.devtools.sandbox.server import SandboxServer
from hekta_redcap.redcap import logic
from hekta_redcap.redcap.fieldtypes import checkbox_column, has_bounds, is_valid, parse_bound
from hekta_redcap.validation import validate_records

TODAY = dt.date(2026, 11, 20)
PARTICIPANTS = 240
Cell = tuple[str, str, int | None, str, str]  # record, event, instance, field, rule


@pytest.fixture(scope="module")
def project() -> Project:
    return load_project("hekta", LIBRARY)


@pytest.fixture(scope="module")
def cohort(project: Project) -> Cohort:
    return generate(project, PARTICIPANTS, seed=7, today=TODAY)


@dataclass
class Loaded:
    client: redcap.Project
    imported: int


@pytest.fixture(scope="module")
def loaded(
    sandbox: SandboxServer,
    project: Project,
    cohort: Cohort,
    tmp_path_factory: pytest.TempPathFactory,
) -> Loaded:
    env = tmp_path_factory.mktemp("cohort") / "env"
    provision(sandbox, [project], env)
    client = redcap.Project(sandbox.url, Settings.load((env,), {}).token("hekta").reveal())
    return Loaded(client, cohort.load(client, batch=100))


def place(row: dict[str, Any]) -> tuple[str, str, int | None]:
    instance = row[REPEAT_INSTANCE]
    return str(row["record_id"]), row[EVENT], int(instance) if instance != "" else None


def listed(cohort: Cohort) -> set[Cell]:
    return {(e.record, e.event, e.instance, e.field, e.what) for e in cohort.errors}


# -- an independent reading of the rows against the definitions ---------------------------------


def violations(project: Project, rows: list[dict[str, str]]) -> Iterator[Cell]:
    """Every cell that breaks the definitions, named by the validation rule it breaks; asserts
    what the server would refuse (a value of another form or event, a wrong type or code)."""
    fields = project.field_map()
    codes = {m.code for m in project.study.missing_data_codes}
    for row in rows:
        where = place(row)
        forms = [form for form in project.forms if f"{form}_complete" in row]
        repeat = row[REPEAT_INSTRUMENT]
        for form in forms:
            assert where[1] in project.events_of(form), (where, form)
            assert project.use_of(form).repeating == (form == repeat), (where, form)
        for column, value in row.items():
            if column in ("record_id", EVENT, REPEAT_INSTRUMENT, REPEAT_INSTANCE):
                continue
            if column.endswith("_complete"):
                assert value in ("0", "1", "2")
                continue
            instrument, field = fields[column.split("___")[0]]
            assert instrument.form in forms, (where, column)
            allowed = [c.code for c in instrument.choices_of(field)]
            if field.type == "checkbox":
                assert value in ("0", "1") and column in {
                    checkbox_column(field.name, c) for c in allowed
                }
            elif value in codes:
                yield (*where, field.name, "missing-code")
            elif field.type in ("yesno", "truefalse"):
                assert value in ("0", "1"), (where, column, value)
            elif allowed:
                assert value in allowed, (where, column, value)
            elif field.validation:
                assert is_valid(field.validation, value), (where, column, value)
                if has_bounds(field.validation) and out_of_range(field, value):
                    yield (*where, field.name, "range")
        for form in forms:
            for field in project.instruments[form].fields:
                if field.type in ("descriptive", "calc") or field.name == "record_id":
                    continue
                entered = (
                    any(
                        row.get(checkbox_column(field.name, c.code)) == "1"
                        for c in project.instruments[form].choices_of(field)
                    )
                    if field.type == "checkbox"
                    else row.get(field.name, "") != ""
                )
                if not shows(field.branching, row):
                    if entered:
                        yield (*where, field.name, "skip-violation")
                elif field.required and not entered:
                    yield (*where, field.name, "required")
        if row.get("job_end_date", "") and row["job_end_date"] < row["job_start_date"]:
            yield (*where, "job_end_date", "date-order")


def out_of_range(field: Field, value: str) -> bool:
    assert field.validation is not None
    typed: Any = parse_bound(field.validation, value)
    low, high = (
        None if b is None else parse_bound(field.validation, b, TODAY)
        for b in (field.min, field.max)
    )
    return (low is not None and typed < low) or (high is not None and typed > high)


def shows(branching: str | None, row: dict[str, str]) -> bool:
    if not branching:
        return True

    def resolve(ref: logic.Ref) -> str:
        if ref.code is not None:
            return row.get(checkbox_column(ref.field or "", ref.code), "0")
        return row.get(ref.field or "", "")

    return logic.is_true(logic.evaluate(logic.parse(branching), resolve, today=TODAY))


# -- the tests ----------------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_rows(project: Project, cohort: Cohort) -> None:
    again = generate(project, PARTICIPANTS, seed=7, today=TODAY)
    assert again.rows == cohort.rows and again.errors == cohort.errors
    other = generate(project, PARTICIPANTS, seed=8, today=TODAY)
    assert other.rows != cohort.rows


def test_the_rows_import_into_the_local_server_as_they_are(loaded: Loaded, cohort: Cohort) -> None:
    assert loaded.imported == len(cohort.participants) == PARTICIPANTS
    exported = {place(row): row for row in loaded.client.export_records()}
    assert len(exported) == len(cohort.rows)
    for row in cohort.rows:
        stored = exported[place(row)]
        assert {k: str(stored[k]) for k in row} == row
        rest = {k: v for k, v in stored.items() if k not in row and "___" not in k}
        assert set(rest.values()) <= {"", "0"}  # forms not started: status 0 (Incomplete)
        assert all(k.endswith("_complete") for k, v in rest.items() if v)


def test_values_are_valid_except_the_listed_errors(project: Project, cohort: Cohort) -> None:
    found = list(violations(project, cohort.rows))
    assert len(found) == len(set(found))
    assert set(found) == listed(cohort)
    assert {e.what for e in cohort.errors} == set(ERROR_KINDS)
    assert len({e.record for e in cohort.errors}) == len(cohort.errors)


def test_without_errors_every_value_is_valid(project: Project) -> None:
    clean = generate(project, 120, seed=3, errors=False, today=TODAY)
    assert clean.errors == []
    assert list(violations(project, clean.rows)) == []


def test_branching_hidden_fields_are_blank(project: Project, cohort: Cohort) -> None:
    """AUDIT's skip rules in particular (audit_1 = 0 hides items 2-8; no drinking problems in
    items 2-3 hide 4-8): only the listed skip violations answer a hidden item (`violations`
    checks every field the same way)."""
    audit = project.instruments["audit"].fields
    skipped = [r for r in cohort.rows if r.get("audit_1") == "0"]
    assert len({f.name for r in skipped for f in audit if not shows(f.branching, r)}) >= 7
    answering = [r for r in cohort.rows if "audit_complete" in r]
    hidden = [(r, f.name) for r in answering for f in audit if not shows(f.branching, r)]
    answered = {(*place(r), name, "skip-violation") for r, name in hidden if name in r}
    assert answered == {cell for cell in listed(cohort) if cell[4] == "skip-violation"}


def test_the_validator_finds_exactly_the_deliberate_errors(
    project: Project, loaded: Loaded, cohort: Cohort
) -> None:
    result = validate_records(project, pd.DataFrame(loaded.client.export_records()))
    problems = result.problems.astype(str)
    cells = {
        (r.record, r.event, int(r.instance) if r.instance else None, r.field, r.rule): r.severity
        for r in problems.itertuples()
    }
    assert listed(cohort) <= set(cells)
    errors = {cell for cell, severity in cells.items() if severity == "error"}
    # every identity number is fake on purpose (wrong check digits), and validation says so
    fake = {cell for cell in errors if cell[4] == "national-id"}
    holding = {
        (r["record_id"], r["redcap_event_name"]) for r in cohort.rows if r.get("national_id")
    }
    assert {cell[:2] for cell in fake} == holding
    assert errors - fake <= listed(cohort)


def test_groups_are_balanced_and_dates_spread_over_recruitment(cohort: Cohort) -> None:
    baseline = [r for r in cohort.rows if "rand_group" in r]
    assert len(baseline) == PARTICIPANTS
    groups = Counter(r["rand_group"] for r in baseline)
    assert len(groups) == 2 and abs(groups["1"] - groups["2"]) <= 6
    dates = sorted(dt.date.fromisoformat(r["rand_date"]) for r in baseline)
    assert dates[-1] < TODAY and (dates[-1] - dates[0]).days > 600


def test_dates_are_in_order(project: Project, cohort: Cohort) -> None:
    wrong = {e.record for e in cohort.errors if e.what == "date-order"}
    by_record: dict[str, list[dict[str, str]]] = {}
    for row in cohort.rows:
        by_record.setdefault(row["record_id"], []).append(row)
    schedule = project.study.schedule
    assert schedule is not None
    followups = {f.event: f for f in schedule.followups}
    for record, rows in by_record.items():
        base = next(r for r in rows if "rand_date" in r)
        rand, consent = (dt.date.fromisoformat(base[k]) for k in ("rand_date", "consent_date"))
        assert consent <= rand < TODAY
        for row in rows:
            dates = [
                dt.date.fromisoformat(v)
                for k, v in row.items()
                if re.fullmatch(r"\d{4}-\d{2}-\d{2}", v)
            ]
            assert all(d <= TODAY for d in dates), record
            if row[EVENT] in followups and "emp_date" in row:
                target = followups[row[EVENT]].target.months * 30.44
                assert abs((dt.date.fromisoformat(row["emp_date"]) - rand).days - target) < 90
            if row.get("job_end_date") and record not in wrong:
                assert row["job_start_date"] <= row["job_end_date"]
        if "eos_date" in base:
            assert rand <= dt.date.fromisoformat(base["eos_date"]) < TODAY


def test_the_trial_looks_like_a_trial(cohort: Cohort) -> None:
    baseline = {r["record_id"]: r for r in cohort.rows if "rand_group" in r}
    jobs = [r for r in cohort.rows if r[REPEAT_INSTRUMENT] == "job_episode"]
    competitive = Counter(  # jobs reported at follow-up: since randomisation
        baseline[r["record_id"]]["rand_group"]
        for r in jobs
        if r["job_competitive"] == "1" and r[EVENT] != "baseline_arm_1"
    )
    assert competitive["1"] > 1.25 * competitive["2"]  # IPS: group 1
    ongoing = [r for r in jobs if "job_end_date" not in r]
    assert ongoing and all(r["job_ongoing"] == "1" for r in ongoing)
    assert any(
        r["job_start_date"].endswith("-01") and r["job_start_precision"] != "1" for r in jobs
    )
    events = Counter(r[EVENT] for r in cohort.rows if not r[REPEAT_INSTRUMENT])
    assert events["baseline_arm_1"] > events["followup_6m_arm_1"] > events["followup_12m_arm_1"] > 0
    assert "register_18m_arm_1" not in events
    fates = Counter(r.get("eos_status") for r in baseline.values())
    completed, withdrawn, lost, deceased = (fates[code] for code in "1234")
    assert completed > 0 and withdrawn >= 2 and lost + deceased >= 1


def test_identifiers_are_obviously_fake(cohort: Cohort) -> None:
    contact = [r for r in cohort.rows if "contact_first_name" in r]
    assert contact
    for row in contact:
        assert re.fullmatch(r"[94]\d{7}", row["contact_mobile"])
        assert not valid_national_id(row["national_id"])
        assert row.get("contact_email", "@example.com").endswith("@example.com")


def valid_national_id(number: str) -> bool:
    """The mod-11 rule of Norwegian identity numbers (both check digits)."""
    digits = [int(d) for d in number]
    if len(digits) != 11:
        return False
    for weights, at in (((3, 7, 6, 1, 8, 9, 4, 5, 2), 9), ((5, 4, 3, 2, 7, 6, 5, 4, 3, 2), 10)):
        check = (11 - sum(d * w for d, w in zip(digits, weights, strict=False)) % 11) % 11
        if check == 10 or check != digits[at]:
            return False
    return True


def test_load_never_splits_a_record(cohort: Cohort) -> None:
    calls: list[list[dict[str, str]]] = []

    class Recorder:
        def import_records(self, rows: list[dict[str, str]]) -> dict[str, int]:
            calls.append(rows)
            return {"count": len({r["record_id"] for r in rows})}

    assert cohort.load(Recorder(), batch=7) == PARTICIPANTS  # type: ignore[arg-type]
    seen = [{r["record_id"] for r in call} for call in calls]
    assert all(len(records) <= 7 for records in seen)
    assert sum(len(records) for records in seen) == PARTICIPANTS
    assert [r for call in calls for r in call] == cohort.rows


def test_a_second_cohort_can_follow_the_first(project: Project) -> None:
    more = generate(project, 5, seed=2, today=TODAY, first=1001, errors=False)
    assert more.participants == [str(n) for n in range(1001, 1006)]
    assert {r["record_id"] for r in more.rows} == set(more.participants)


def test_a_project_without_a_schedule_is_refused() -> None:
    with pytest.raises(ValueError, match="no schedule"):
        generate(load_project("ips_fidelity", LIBRARY), 3)


def test_groups_come_from_the_allocation_asked_in_enrolment_order(project: Project) -> None:
    """As REDCap's module would allocate: asked once per participant, in order of enrolment,
    with the participant's site; the rows carry what it answered."""
    asked: list[dict[str, str]] = []

    def allocate(strata: Mapping[str, str]) -> str:
        asked.append(dict(strata))
        return "2" if strata["site"] == "1" else "1"

    cohort = generate(project, 40, seed=5, errors=False, today=TODAY, allocate=allocate)
    assert len(asked) == 40
    assert {s["site"] for s in asked} == {"1", "2", "3"}
    baseline = {
        r["record_id"]: r
        for r in cohort.rows
        if r["redcap_event_name"] == "baseline_arm_1" and not r["redcap_repeat_instrument"]
    }
    for record, strata in zip(cohort.participants, asked, strict=True):
        assert baseline[record]["site"] == strata["site"]
        assert baseline[record]["rand_group"] == ("2" if strata["site"] == "1" else "1")
        assert cohort.groups[record] == baseline[record]["rand_group"]
