"""Validation against a seeded local REDCap-compatible server: each record breaks one rule (or
none), and the report must list exactly those problems, with the right record, event, field,
instance and data access group.

Values the API refuses, as REDCap does (a wrong type, a code that is not a choice, a missing
data code in a coded field, a stored calculation), are written into the server's store, as a
REDCap database can hold them after a changed dictionary or a forced import.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd
import pandera.pandas as pa
import pytest
import redcap
from click.testing import CliRunner
from click.testing import Result as CliResult
from conftest import LIBRARY, edit
from markupsafe import escape
from sandbox_support import Handle

from hekta_redcap.cli import cli
from hekta_redcap.core.errors import HektaError
from hekta_redcap.core.settings import Settings
from hekta_redcap.definitions.study import Project, load_project
from hekta_redcap.devtools.provision import provision
from hekta_redcap.devtools.sandbox.server import SandboxServer
from hekta_redcap.validation import Result, read_export, validate_records, write_report
from hekta_redcap.validation.layout import Layout
from hekta_redcap.validation.schemas import ANSWER, form_schema

BASELINE, FOLLOWUP = "baseline_arm_1", "followup_6m_arm_1"
# A calculated field, added to a copy of the definitions (the shipped forms have none), so that
# rule H has something to check: age in 2030 from the year of birth.
CALC = """  - name: demo_age_2030
    type: calc
    label: {nb: Alder i 2030, en: Age in 2030}
    calc: "2030 - [demo_birth_year]"

  - name: demo_education
"""
# Blanks and outliers are checked where the definitions ask: the last job's year is marked so in
# the copy (the shipped form does not ask), as the records below are too few for the default.
ASKED = """    max: 2040
    expected: true
    outlier: {method: mad, min_values: 3}
"""


def clean(record: str, dag: str = "") -> dict[str, str]:
    """A baseline row with consent, demographics and randomisation complete and consistent."""
    return {
        "record_id": record,
        "redcap_event_name": BASELINE,
        "redcap_data_access_group": dag,
        "site": "1",
        "consent_elig_adult": "1",
        "consent_elig_sud_tx": "1",
        "consent_elig_wants_work": "1",
        "consent_elig_capacity": "1",
        "consent_given": "1",
        "consent_date": "2025-01-10",
        "consent_obtained_by": "AB",
        "consent_version": "2.0 av 01.03.2024",
        "consent_registers": "1",
        "consent_complete": "2",
        "sex": "2",
        "demo_birth_year": "1985",
        "demo_education": "4",
        "demo_living": "1",
        "demo_ever_worked": "1",
        "demo_work_years": "10",
        "demo_last_job_year": "2020",
        "demographics_complete": "2",
        "rand_date": "2025-01-15",
        "rand_group": "1",
        "rand_by": "AB",
        "randomization_complete": "2",
    }


JOB = {
    "redcap_event_name": BASELINE,
    "redcap_repeat_instrument": "job_episode",
    "redcap_repeat_instance": "1",
    "job_start_date": "2025-03-01",
    "job_start_precision": "1",
    "job_end_date": "2025-02-01",  # before the start
    "job_ongoing": "0",
    "job_employer_name": "Hemmelig Arbeidsgiver AS",
    "job_employer_orgnr": "987654321",
    "job_occupation": "Lagerarbeider",
    "job_styrk": "9321",
    "job_type": "2",
    "job_competitive": "1",
    "job_nav_measure": "0",
    "job_hours_week": "37.5",
    "job_pay": "210",
    "job_pay_unit": "1",
    "job_found_with_ips": "1",
    "job_disclosure": "2",
    "job_end_reason": "3",
    "job_data_source": "1",
    "job_episode_complete": "2",
}
CONTACT = {
    "contact_first_name": "Kari",
    "contact_last_name": "Nordmann",
    "national_id": "01019912345",
    "contact_mobile": "91234567",
    "contact_alternative": "Ola Nordmann, bror, 99887766",
    "contact_channel": "1",
    "do_not_contact": "0",
    "contact_confirmed_date": "2025-01-10",
    "contact_complete": "2",
}
SECRET_EMAIL = "kari.nordmann.uten.krollalfa"  # not an e-mail address; an identifier's value

# record -> (data access group, changes to the clean baseline row, extra rows)
API_RECORDS: dict[str, tuple[str, dict[str, str], list[dict[str, str]]]] = {
    "clean-1": ("oslo", {}, []),
    "clean-2": ("bergen", {}, []),
    "clean-3": ("", {}, []),
    "required": ("oslo", {"consent_obtained_by": ""}, []),
    "blank": ("oslo", {"demo_last_job_year": ""}, []),
    "range": ("bergen", {"demo_work_years": "61"}, []),
    "outlier": ("bergen", {"demo_last_job_year": "2039"}, []),
    "hidden": ("", {"demo_living_other": "Hos venner"}, []),
    "consent-order": ("", {"consent_date": "2025-01-20"}, []),
    "followup-order": (
        "oslo",
        {},
        [
            {
                "redcap_event_name": FOLLOWUP,
                "emp_date": "2025-01-05",
                "emp_status": "5",
                "emp_any_work_since": "0",
                "emp_in_education": "0",
                "employment_complete": "2",
            }
        ],
    ),
    "job-order": ("bergen", {}, [JOB]),
    "skip": (
        "",
        {"audit_1": "0", "audit_2": "3", "audit_9": "0", "audit_10": "0", "audit_complete": "2"},
        [],
    ),
    # items 4-8 are hidden by audit_1 = 0 as well (AUDIT's structural zeros, not AUDIT-C's)
    "skip-late": (
        "",
        {"audit_1": "0", "audit_5": "1", "audit_9": "2", "audit_10": "0", "audit_complete": "2"},
        [],
    ),
    "identifier": ("oslo", CONTACT, []),
    "type": ("", {}, []),
    "choice": ("", {}, []),
    "code": ("bergen", {}, []),
    "calc": ("", {}, []),
}
# Values the API refuses, written into the store: (record, event, values).
STORED = [
    ("type", BASELINE, {"consent_date": "2025-02-30"}),
    ("choice", BASELINE, {"demo_education": "9"}),
    ("code", BASELINE, {"demo_education": "ASKU"}),
    ("identifier", BASELINE, {"contact_email": SECRET_EMAIL}),
    *((record, BASELINE, {"demo_age_2030": "45"}) for record in API_RECORDS if record != "calc"),
    ("calc", BASELINE, {"demo_age_2030": "44"}),
]
# (record, event, instance, field, rule): exactly what the report must list.
EXPECTED = {
    ("required", BASELINE, "", "consent_obtained_by", "required"),
    ("blank", BASELINE, "", "demo_last_job_year", "blank"),
    ("range", BASELINE, "", "demo_work_years", "range"),
    ("outlier", BASELINE, "", "demo_last_job_year", "outlier"),
    ("hidden", BASELINE, "", "demo_living_other", "hidden-value"),
    ("consent-order", BASELINE, "", "rand_date", "date-order"),
    ("followup-order", FOLLOWUP, "", "emp_date", "date-order"),
    ("job-order", BASELINE, "1", "job_end_date", "date-order"),
    ("skip", BASELINE, "", "audit_2", "skip-violation"),
    ("skip-late", BASELINE, "", "audit_5", "skip-violation"),
    ("identifier", BASELINE, "", "contact_email", "type"),
    ("identifier", BASELINE, "", "national_id", "national-id"),  # wrong check digits
    ("type", BASELINE, "", "consent_date", "type"),
    ("choice", BASELINE, "", "demo_education", "choice"),
    ("code", BASELINE, "", "demo_education", "missing-code"),
    ("calc", BASELINE, "", "demo_age_2030", "calc-mismatch"),
}


@dataclass
class Seeded:
    project: Project
    definitions: Path
    client: redcap.Project
    url: str
    token: str

    def export(self) -> pd.DataFrame:
        return pd.DataFrame(self.client.export_records(export_data_access_groups=True))

    @cached_property
    def result(self) -> Result:
        """The export validated once (the tests only read it)."""
        return validate_records(self.project, self.export())


@pytest.fixture(scope="module")
def seeded(sandbox: SandboxServer, tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    root = tmp_path_factory.mktemp("validation") / "instruments"
    shutil.copytree(LIBRARY, root, ignore=shutil.ignore_patterns("local"))
    edit(root, "forms/demographics.yaml", "  - name: demo_education\n", CALC)
    edit(root, "forms/demographics.yaml", "    max: 2040\n", ASKED)
    project = load_project("hekta", root)
    env = root.parent / "env"
    provision(sandbox, [project], env)
    token = Settings.load((env,), {}).token("hekta").reveal()
    client = redcap.Project(sandbox.url, token)
    client.import_dags(
        [{"data_access_group_name": name, "unique_group_name": ""} for name in ("Oslo", "Bergen")]
    )
    rows = []
    for record, (dag, changes, extra) in API_RECORDS.items():
        rows.append(clean(record, dag) | changes)
        rows += [{"record_id": record, **row} for row in extra]
    client.import_records(rows)
    handle = Handle(sandbox, int(client.export_project_info()["project_id"]), token)
    for record, event, values in STORED:
        handle.put(record, values, event)
    return Seeded(project, root, client, sandbox.url, token)


def found(problems: pd.DataFrame) -> set[tuple[str, ...]]:
    columns = ["record", "event", "instance", "field", "rule"]
    return set(problems[columns].astype(str).itertuples(index=False, name=None))


def test_the_report_lists_exactly_the_seeded_problems(seeded: Seeded) -> None:
    result = seeded.result
    assert found(result.problems) == EXPECTED
    dags = dict(zip(result.problems["record"], result.problems["dag"], strict=True))
    assert dags == {record: API_RECORDS[record][0] for record, *_ in EXPECTED}
    severity = dict(zip(result.problems["rule"], result.problems["severity"], strict=True))
    assert {rule for rule, level in severity.items() if level == "advisory"} == {
        "blank",
        "outlier",
        "missing-code",
    }


def test_messages_name_the_field_and_value_in_both_languages(seeded: Seeded) -> None:
    problems = seeded.result.problems.set_index("record")
    assert problems.at["range", "message_nb"] == (
        "Verdien 61 er over maks 60 for «Omtrent hvor mange år har du hatt lønnet arbeid til "
        "sammen?»."
    )
    assert problems.at["range", "message_en"] == (
        "The value 61 is above the maximum 60 for “About how many years have you been in paid "
        "work altogether?”."
    )
    assert problems.at["consent-order", "message_en"] == (
        "“Date of randomisation” (15-01-2025) is before “Date of consent” (20-01-2025): "
        "check both dates."
    )
    skip = problems.at["skip", "message_nb"]
    assert "3 (7–9)" in skip and "«Hvor ofte drikker du alkohol?» er 0 (Aldri)" in skip
    assert problems.at["calc", "value"] == "44" and "(45)" in problems.at["calc", "message_en"]
    assert "ASKU" in problems.at["code", "message_en"]


def test_identifier_values_never_reach_the_report(seeded: Seeded, tmp_path: Path) -> None:
    result = seeded.result
    table, page = write_report(result, tmp_path)
    problems = result.problems[result.problems["record"] == "identifier"]
    assert set(zip(problems["field"], problems["rule"], problems["value"], strict=True)) == {
        ("contact_email", "type", ""),
        ("national_id", "national-id", ""),
    }
    for text in (table.read_text(encoding="utf-8-sig"), page.read_text(encoding="utf-8")):
        assert SECRET_EMAIL not in text
        assert "Hemmelig Arbeidsgiver" not in text and "Nordmann" not in text
        assert CONTACT["national_id"] not in text


def test_the_typed_frame_has_the_definitions_types(seeded: Seeded) -> None:
    typed = seeded.result.typed
    assert str(typed["record_id"].dtype) == "string"
    assert typed["rand_date"].dtype.kind == "M"
    assert str(typed["demo_birth_year"].dtype) == "Int64"
    assert str(typed["job_hours_week"].dtype) == "Float64"
    assert str(typed["consent_given"].dtype) == "boolean"
    education = typed["demo_education"].dtype
    assert education.ordered and list(education.categories) == [str(c) for c in range(1, 8)]
    baseline = typed[typed["redcap_event_name"] == BASELINE].set_index("record_id")
    assert baseline.at["clean-1", "rand_date"] == pd.Timestamp("2025-01-15")
    # invalid values are NA in the typed frame (and reported), missing data codes too
    assert pd.isna(baseline.at["type", "consent_date"])
    assert pd.isna(baseline.at["choice", "demo_education"])
    assert pd.isna(baseline.at["code", "demo_education"])
    # a checkbox is NA where its form was never started
    assert baseline["benefit_types___1"].isna().all()
    assert str(typed["benefit_types___1"].dtype) == "boolean"


def test_a_csv_export_gives_the_same_problems(seeded: Seeded, tmp_path: Path) -> None:
    export = tmp_path / "export.csv"
    export.write_text(
        seeded.client.export_records(format_type="csv", export_data_access_groups=True),
        encoding="utf-8",
    )
    result = validate_records(seeded.project, read_export(export))
    assert found(result.problems) == EXPECTED


def test_checkbox_problems_in_a_hand_edited_export(seeded: Seeded) -> None:
    """REDCap exports checkbox options as 0/1, but a CSV edited by hand may not: a value that
    is not 0/1 is an invalid choice, and the exclusive option (@NONEOFTHEABOVE) ticked with
    another is too. A started form with nothing ticked in a required checkbox is a blank."""
    rows = seeded.export()
    base = (rows["record_id"] == "clean-1") & (rows["redcap_event_name"] == BASELINE)
    at = rows.index[base][0]
    extra = rows.loc[[at, at, at]].assign(record_id=["cb-value", "cb-none", "cb-blank"])
    extra["benefit_main_income"] = "3"
    extra.loc[extra["record_id"] == "cb-value", ["benefit_types___1", "benefit_types___2"]] = [
        "1",
        "2",
    ]
    extra.loc[extra["record_id"] == "cb-none", ["benefit_types___0", "benefit_types___3"]] = "1"
    result = validate_records(seeded.project, pd.concat([rows, extra], ignore_index=True))
    new = result.problems[result.problems["record"].str.startswith("cb-")]
    assert found(new) == {
        ("cb-value", BASELINE, "", "benefit_types", "choice"),
        ("cb-none", BASELINE, "", "benefit_types", "choice"),
        ("cb-blank", BASELINE, "", "benefit_types", "required"),
    }
    messages = new.set_index("record")["message_nb"]
    assert "«Hvilke ytelser" in messages["cb-value"] and "Uføretrygd" in messages["cb-value"]
    assert "«Ingen av disse»" in messages["cb-none"]
    assert new.set_index("record").at["cb-none", "value"] == "3,0"


def test_an_export_that_does_not_fit_the_definitions_is_refused(seeded: Seeded) -> None:
    rows = seeded.export()
    for broken, words in (
        (rows.assign(not_a_field="x"), "does not define: not_a_field"),
        (rows.drop(columns=["rand_date"]), "lacks columns of project 'hekta': rand_date"),
        (pd.concat([rows, rows.head(1)]), f"row {len(rows) + 1} .* '{rows.at[0, 'record_id']}'"),
        (rows.replace({FOLLOWUP: "followup_9m_arm_1"}), "event 'followup_9m_arm_1'"),
    ):
        with pytest.raises(HektaError, match=words):
            validate_records(seeded.project, broken)


def test_a_schema_reports_every_failure_of_a_form_at_an_event(seeded: Seeded) -> None:
    """The pandera schema for one instrument and event, validated lazily: every failing cell
    comes back, not the first."""
    layout = Layout(seeded.project, seeded.export())
    schema = form_schema(layout, "demographics", BASELINE, dt.date(2026, 1, 1))
    frame = pd.DataFrame(
        {column: [pd.NA] * 3 for column in schema.columns}, index=[7, 8, 9], dtype=object
    )
    frame[[c for c in schema.columns if c.startswith(ANSWER)]] = "answered"
    frame["sex"] = ["1", "3", "2"]
    frame["demo_birth_year"] = ["1939", "19x5", "1990"]
    frame.loc[9, ANSWER + "demo_education"] = pd.NA
    with pytest.raises(pa.errors.SchemaErrors) as caught:
        schema.validate(frame, lazy=True)
    cases = caught.value.failure_cases
    assert set(zip(cases["column"], cases["check"], cases["index"], strict=True)) == {
        ("sex", "choice", 8),
        ("demo_birth_year", "range", 7),
        ("demo_birth_year", "type", 8),
        (ANSWER + "demo_education", "not_nullable", 9),
    }


# -- the command line ----------------------------------------------------------------------------


def run_cli(seeded: Seeded, *args: str, env: dict[str, str] | None = None) -> CliResult:
    """`hekta-redcap validate` with the seeded project's settings, or only those in `env`."""
    live = {"REDCAP_API_URL": seeded.url, "REDCAP_TOKEN_HEKTA": seeded.token}
    settings: dict[str, str | None] = dict.fromkeys(live)  # unset what the shell may have set
    settings |= live if env is None else env
    return CliRunner().invoke(
        cli,
        ["validate", "--project", "hekta", "--definitions", str(seeded.definitions), *args],
        env=settings,
    )


def test_the_command_reports_the_live_project(
    seeded: Seeded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env files
    outcome = run_cli(seeded, "--report", "out")
    assert outcome.exit_code == 1, outcome.output
    assert "error(s)" in outcome.output and "out/report.html" in outcome.output
    problems = pd.read_csv(tmp_path / "out/problems.csv", dtype=str, keep_default_na=False)
    assert found(problems) == EXPECTED
    link = problems.set_index("record").at["job-order", "link"]
    project_id = seeded.client.export_project_info()["project_id"]
    event_id = {e["unique_event_name"]: e["event_id"] for e in seeded.client.export_events()}
    version = seeded.client.export_version()
    assert link == (
        f"{seeded.url.removesuffix('api/')}redcap_v{version}/DataEntry/index.php?pid={project_id}"
        f"&id=job-order&event_id={event_id[BASELINE]}&page=job_episode&instance=1"
    )
    page = (tmp_path / "out/report.html").read_text(encoding="utf-8")
    # self-contained: nothing to fetch (the only URLs are the links to REDCap)
    for fetching in ("<script", "<link", "src=", "@import", "url("):
        assert fetching not in page
    assert set(re.findall(r'href="([^"]+)"', page)) == {escape(u) for u in problems["link"]}
    for message in problems["message_nb"]:
        assert escape(message) in page
    # errors first, by data access group; then the advisory notes, folded by rule
    errors = problems[problems["severity"] == "error"]
    groups = re.findall(r"Data access group</span>: ([^<]*) – (\d+)</h3>", page)
    per_group = Counter(API_RECORDS[record][0] or "(ingen / none)" for record in errors["record"])
    assert dict((name, int(n)) for name, n in groups) == per_group
    assert [name for name, _ in groups] == ["(ingen / none)", "bergen", "oslo"]
    notes = re.findall(r'<summary>[^<]*<span class="en">([^<]*)</span> \((\d+)\)</summary>', page)
    assert notes == [("Missing data code", "1"), ("Blank field", "1"), ("Unusual value", "1")]
    assert page.index("<h2>Feil") < page.index("<h2>Merknader")
    assert f"<b>{len(errors)} feil</b> i {errors['record'].nunique()} poster og 3 merknader" in page


def test_a_clean_export_exits_0_and_a_bad_call_exits_2(
    seeded: Seeded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    rows = seeded.export()
    rows[rows["record_id"].str.startswith("clean")].to_csv("clean.csv", index=False)
    outcome = run_cli(seeded, "--input", "clean.csv", "--report", "clean", env={})
    assert outcome.exit_code == 0, outcome.output
    assert "0 error(s), 0 advisory note(s)" in outcome.output
    assert "Ingen problemer funnet" in (tmp_path / "clean/report.html").read_text("utf-8")
    closed = "http://127.0.0.1:9/api/"  # the discard port: nothing listens
    for args, env, words in (
        (["--input", "absent.csv", "--report", "r"], {}, "file not found"),
        (
            ["--report", "r"],
            {"REDCAP_API_URL": closed, "REDCAP_TOKEN_HEKTA": "A" * 32},
            "cannot connect",
        ),
        (["--report", "r"], {}, "REDCAP_API_URL is not set"),
        ([], {}, "Missing option '--report'"),
    ):
        outcome = run_cli(seeded, *args, env=env)
        assert outcome.exit_code == 2, (args, outcome.output)
        assert words in outcome.output


# -- without the server --------------------------------------------------------------------------


def test_a_classic_project_and_an_empty_export() -> None:
    """ips_fidelity has no events: every form is on the record's one row. A date after `today`
    (its max) is out of range; a record without any value on a form has not started it."""
    project = load_project("ips_fidelity", LIBRARY)
    assert validate_records(project, pd.DataFrame()).problems.empty
    row = dict.fromkeys(Layout(project, pd.DataFrame()).raw.columns, "")  # every column
    row |= {"review_id": "7", "review_site": "Oslo", "review_date": "2030-01-01"}
    row |= {"review_type": "9", "review_unit": "Team 1", "review_comments": "-"}
    row |= {"review_reviewer_2": "Per Hansen"}
    result = validate_records(project, pd.DataFrame([row]), today=dt.date(2026, 6, 1))
    assert found(result.problems) == {
        ("7", "", "", "review_date", "range"),
        ("7", "", "", "review_site", "choice"),  # free text, not a code of the site list
        ("7", "", "", "review_reviewer_1", "required"),
        ("7", "", "", "review_type", "choice"),
    }
    assert result.problems.set_index("field").at["review_date", "message_en"] == (
        "The value 01-01-2030 is after the latest allowed date (today) for “Date of the review”."
    )
