"""Analyst exports: the shapes and types cut from a synthetic cohort (with a few hand-made
edits: missing data codes, a form never started and one started with nothing ticked), then
de-identification and pseudonyms, the manifest and the name and label limits of the formats.
The round trip through every format is in test_export_formats.py."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import stat
from pathlib import Path

import pandas as pd
import pytest
from conftest import LIBRARY

from hekta_redcap import __version__
from hekta_redcap.analysis.export import (
    Format,
    Pseudonyms,
    Table,
    assessment_date,
    build_tables,
    definitions_hash,
    fitted_names,
    timepoints,
    write_manifest,
    write_tables,
)
from hekta_redcap.analysis.export.registers import register_export
from hekta_redcap.analysis.outcomes import OUTCOME_COLUMNS, employment_outcomes
from hekta_redcap.core.errors import HektaError
from hekta_redcap.definitions.registers import load_layouts
from hekta_redcap.definitions.study import Event, Project, load_project
from hekta_redcap.devtools.cohort import generate
from hekta_redcap.registers.outcomes import Registered
from hekta_redcap.registers.outcomes import endpoints as register_endpoints
from hekta_redcap.registers.outcomes import panel as register_panel

TODAY = dt.date(2026, 6, 1)
BASE, SIX = "baseline_arm_1", "followup_6m_arm_1"
KEYS = ["record_id", "redcap_event_name", "redcap_repeat_instance"]


@pytest.fixture(scope="module")
def project() -> Project:
    return load_project("hekta", LIBRARY)


@pytest.fixture(scope="module")
def rows(project: Project) -> pd.DataFrame:
    """80 participants without deliberate errors. Record 1: year of birth UNK, benefits at
    baseline answered ASKU (a checkbox's missing data code); record 2: consent obtained by
    NASK (a text field's); record 4: benefits at 6 months never started; record 3: benefits at
    baseline started (complete) with nothing ticked."""
    cohort = generate(project, 80, seed=11, today=TODAY, errors=False)
    frame = pd.DataFrame(cohort.rows).fillna("")
    frame.loc[_row(frame, "2", BASE), "consent_obtained_by"] = "NASK"
    frame["benefit_types___asku"] = ""
    options = [c for c in frame if c.startswith("benefit_types___")]
    at = _row(frame, "1", BASE)
    frame.loc[at, "demo_birth_year"] = "UNK"
    frame.loc[at, options] = "0"
    frame.loc[at, "benefit_types___asku"] = "1"
    at = _row(frame, "4", SIX)
    benefits = [*options, "benefit_other", "benefit_main_income", "benefits_complete"]
    frame.loc[at, benefits] = ""
    at = _row(frame, "3", BASE)
    frame.loc[at, options] = "0"
    frame.loc[at, ["benefit_other", "benefit_main_income"]] = ""
    frame.loc[at, "benefits_complete"] = "2"
    return frame


def _row(frame: pd.DataFrame, record: str, event: str) -> int:
    found = frame.index[
        (frame["record_id"] == record)
        & (frame["redcap_event_name"] == event)
        & (frame["redcap_repeat_instrument"] == "")
    ]
    assert len(found) == 1, (record, event)
    return int(found[0])


@pytest.fixture(scope="module")
def long(project: Project, rows: pd.DataFrame) -> list[Table]:
    return build_tables(project, rows, "long")


@pytest.fixture(scope="module")
def wide(project: Project, rows: pd.DataFrame) -> list[Table]:
    return build_tables(project, rows, "wide", language="en")


@pytest.fixture(scope="module")
def instruments(project: Project, rows: pd.DataFrame) -> dict[str, Table]:
    return {t.name: t for t in build_tables(project, rows, "instruments")}


def at(table: Table, record: str, event: str) -> pd.Series:
    frame = table.frame
    found = frame[(frame["record_id"] == record) & (frame["redcap_event_name"] == event)]
    assert len(found) == 1
    return found.iloc[0]


# -- shapes ---------------------------------------------------------------------------------------


def test_long_has_one_row_per_participant_and_event(
    project: Project, rows: pd.DataFrame, long: list[Table]
) -> None:
    table, outcomes = long
    assert [table.name, outcomes.name] == ["long", "employment_outcomes"]
    frame = table.frame
    plain = rows[rows["redcap_repeat_instrument"] == ""]
    assert len(frame) == len(plain)  # every plain row of the cohort holds some form
    assert not frame[["record_id", "redcap_event_name"]].duplicated().any()
    assert "redcap_repeat_instance" not in frame and "job_start_date" not in frame
    assert list(frame.columns[:4]) == [
        "record_id",
        "redcap_event_name",
        "rand_group",
        "days_since_randomization",
    ]
    events = [e.unique_name for e in project.study.events]
    assert frame["redcap_event_name"].dtype == pd.CategoricalDtype(events, ordered=True)
    assert table.value_labels["redcap_event_name"][SIX] == "Oppfølging 6 måneder"


def test_long_has_the_group_on_every_row_and_days_to_the_assessment(long: list[Table]) -> None:
    frame = long[0].frame
    baseline = frame[frame["redcap_event_name"] == BASE].set_index("record_id")
    group = frame["record_id"].map(baseline["rand_group"].astype(str))
    assert (frame["rand_group"].astype(str) == group).all()
    assert frame["rand_group"].notna().all()
    rand = frame["record_id"].map(baseline["rand_date"])
    days = (frame["emp_date"] - rand).dt.days
    assert frame["days_since_randomization"].dtype == "Int64"
    assert (frame["days_since_randomization"].dropna() == days.dropna()).all()
    six = frame[frame["redcap_event_name"] == SIX]["days_since_randomization"]
    assert six.between(140, 250).all()  # the 6-month window: target 183 days, -28/+56
    assert long[0].labels["days_since_randomization"].endswith("(emp_date)")


def test_the_assessment_date_is_the_date_field_at_most_events(project: Project) -> None:
    assert assessment_date(project) == "emp_date"


def test_long_holds_every_score_on_started_rows_only(
    project: Project, rows: pd.DataFrame, long: list[Table]
) -> None:
    frame = long[0].frame
    for column in ("phq9_total", "phq9_total_n_answered", "phq9_total_prorated", "phq9_band"):
        assert column in frame
    baseline = rows[(rows["redcap_event_name"] == BASE) & (rows["redcap_repeat_instrument"] == "")]
    # PHQ-9 (docs/scoring.md): the sum of the nine items coded 0-3, pro-rated (sum x 9 / the
    # number answered) when at most 2 are missing, else missing; a missing data code is missing.
    items = baseline[[f"phq9_{i}" for i in range(1, 10)]].apply(pd.to_numeric, errors="coerce")
    answered = items.notna().sum(axis=1)
    expected = (items.sum(axis=1) * 9 / answered).where(answered >= 7).reset_index(drop=True)
    found = frame[frame["redcap_event_name"] == BASE]["phq9_total"].reset_index(drop=True)
    pd.testing.assert_series_equal(found, expected.astype("Float64"), check_names=False)
    # Sex is on the baseline row only; sex-specific cut-offs still apply at follow-ups.
    six = frame[frame["redcap_event_name"] == SIX]
    known = six["auditc_total"].notna()
    assert known.any() and six.loc[known, "auditc_positive"].notna().all()
    assert long[0].value_labels["phq9_band"][1] == "Minimal"
    assert long[0].labels["phq9_total_n_answered"] == "PHQ-9 sumskår: antall besvarte spørsmål"


def test_wide_has_one_row_per_participant_suffixed_by_timepoint(
    project: Project, long: list[Table], wide: list[Table]
) -> None:
    assert timepoints(project) == {
        "baseline_arm_1": "base",
        "followup_6m_arm_1": "6m",
        "followup_12m_arm_1": "12m",
        "register_18m_arm_1": "18m",
    }
    table = wide[0]
    frame = table.frame
    assert frame["record_id"].is_unique and len(frame) == 80
    assert list(frame.columns[:2]) == ["record_id", "rand_group"]
    # A variable appears at the events its form is collected at, and only there.
    assert {"consent_date_base", "emp_date_18m", "phq9_total_12m"} <= set(frame.columns)
    assert not {"consent_date_6m", "phq9_total_18m", "rand_group_base"} & set(frame.columns)
    assert [c for c in frame if c.startswith("phq9_total_n_answered")] == [
        "phq9_total_n_answered_base",
        "phq9_total_n_answered_6m",
        "phq9_total_n_answered_12m",
    ]
    long_frame = long[0].frame
    seen_at_6m = long_frame.loc[long_frame["redcap_event_name"] == SIX, "record_id"]
    for record in list(seen_at_6m)[:2]:  # participants who came to the 6-month follow-up
        row = frame[frame["record_id"] == record].iloc[0]
        assert row["phq9_total_6m"] == at(long[0], record, SIX)["phq9_total"]
        assert row["phq9_1_base"] == at(long[0], record, BASE)["phq9_1"]
    assert frame["phq9_1_6m"].dtype == long_frame["phq9_1"].dtype
    assert table.labels["phq9_total_6m"] == "PHQ-9 total score (Follow-up 6 months)"
    assert table.value_labels["phq9_band_12m"][1] == "Minimal"
    assert "emp_date_6m" in table.dates and "emp_date" not in table.dates


def test_timepoints_must_differ(project: Project) -> None:
    events = [*project.study.events, Event(name="Phone 6m", unique_name="phone_6m_arm_1")]
    other = dataclasses.replace(project, study=project.study.model_copy(update={"events": events}))
    with pytest.raises(HektaError, match="'Followup 6m' and 'Phone 6m' would both be"):
        timepoints(other)


def test_instruments_give_tidy_tables_without_empty_rows(
    project: Project, rows: pd.DataFrame, instruments: dict[str, Table]
) -> None:
    assert list(instruments) == [
        *("consent", "contact", "demographics", "randomization", "audit", "dudit"),
        *("substance_days", "hscl10", "phq9", "gad7", "life_satisfaction", "swls"),
        *("whoqol_bref", "eq5d5l", "employment", "job_episode", "benefits", "service_use"),
        "end_of_study",  # hekta's forms in study order, without followup_tracking
        "employment_outcomes",
    ]
    assert "followup_tracking" not in instruments  # the reminder service's, not research data
    jobs = instruments["job_episode"].frame
    assert list(jobs.columns[:3]) == KEYS
    assert len(jobs) == (rows["redcap_repeat_instrument"] == "job_episode").sum()
    assert not jobs[KEYS].duplicated().any()
    assert list(instruments["phq9"].frame.columns[:2]) == KEYS[:2]
    benefits = instruments["benefits"].frame
    plain = rows[rows["redcap_repeat_instrument"] == ""]
    assert len(benefits) == len(plain) - 1  # record 4 never started it at 6 months
    for name, table in instruments.items():
        values = table.frame.drop(columns=[c for c in KEYS if c in table.frame])
        assert values.notna().any(axis=1).all(), name
    consent = instruments["consent"].frame
    assert (consent["redcap_event_name"] == BASE).all() and len(consent) == 80


def test_employment_outcomes_come_with_every_shape(
    project: Project, rows: pd.DataFrame, long: list[Table], wide: list[Table]
) -> None:
    expected = employment_outcomes(project, rows)
    for tables in (long, wide):
        table = tables[-1]
        assert tuple(table.frame.columns) == OUTCOME_COLUMNS
        pd.testing.assert_frame_equal(table.frame, expected)
    assert set(long[-1].labels) == set(OUTCOME_COLUMNS)
    assert wide[-1].labels["any_competitive_job"] == "Any competitive job within 18 months"
    assert long[-1].value_labels["group"] == {
        "1": "IPS (Individuell jobbstøtte)",
        "2": "Selvhjelpspakke og kurs",
    }


# -- types ----------------------------------------------------------------------------------------


def test_types_come_from_the_definitions(project: Project, long: list[Table]) -> None:
    table = long[0]
    frame = table.frame
    checked = 0
    for instrument, field in project.fields():
        if field.name not in frame or project.use_of(instrument.form).repeating:
            continue
        kind = frame[field.name].dtype
        validation = field.validation or ""
        if field.type in ("radio", "dropdown"):
            codes = [c.code for c in instrument.choices_of(field)]
            assert kind == pd.CategoricalDtype(codes, ordered=True), field.name
            labels = table.value_labels[field.name]
            assert list(labels) == codes
            assert labels[codes[0]] == instrument.choice_label(instrument.choices_of(field)[0])
        elif field.type == "yesno":
            assert kind == "boolean" and table.value_labels[field.name] == {
                True: "Ja",
                False: "Nei",
            }
        elif validation.startswith("date_"):
            assert kind == "datetime64[s]" and field.name in table.dates, field.name
        elif validation.startswith("datetime_"):
            assert kind == "datetime64[s]" and field.name not in table.dates, field.name
        elif validation == "integer":
            assert kind == "Int64", field.name
        elif validation == "number":
            assert kind == "Float64", field.name
        elif field.type in ("text", "notes"):
            assert isinstance(kind, pd.StringDtype), field.name
        checked += 1
    assert checked > 140  # every field the long table holds (no identifiers, notes or tracking)
    assert frame["benefit_types___1"].dtype == "boolean"
    assert table.labels["benefit_types___2"].endswith(": Uføretrygd")
    assert frame["phq9_complete"].dtype == pd.CategoricalDtype(["0", "1", "2"], ordered=True)
    assert table.value_labels["phq9_complete"]["2"] == "Fullført"


def test_checkboxes_are_missing_where_the_form_was_never_started(long: list[Table]) -> None:
    table = long[0]
    options = [c for c in table.frame if c.startswith("benefit_types___")]
    assert len(options) == 10  # the missing data code's column is not an option
    never = at(table, "4", SIX)
    assert never[options].isna().all()
    nothing_ticked = at(table, "3", BASE)
    assert (nothing_ticked[options] == False).all()  # noqa: E712 - False, not NA


def test_missing_data_codes_are_kept_apart(long: list[Table]) -> None:
    table = long[0]
    frame = table.frame
    one = at(table, "1", BASE)
    assert pd.isna(one["demo_birth_year"]) and one["demo_birth_year_missing_code"] == "UNK"
    assert frame["demo_birth_year_missing_code"].dtype == pd.CategoricalDtype(
        ["UNK", "ASKU", "NASK"], ordered=True
    )
    assert frame["demo_birth_year_missing_code"].notna().sum() == 1
    assert table.value_labels["demo_birth_year_missing_code"]["UNK"] == "Ukjent"
    assert table.labels["demo_birth_year_missing_code"].endswith(": manglende-data-kode")
    assert one["benefit_types_missing_code"] == "ASKU"
    assert not one[[c for c in frame if c.startswith("benefit_types___")]].any()
    # Only fields where a code is used get the column.
    coded = [c for c in frame if c.endswith("_missing_code")]
    assert {"benefit_types_missing_code", "demo_birth_year_missing_code"} < set(coded)
    assert len(coded) == 3 and frame[coded].notna().any().all()


def test_unknown_shape_language_and_project_are_errors(
    project: Project, rows: pd.DataFrame
) -> None:
    with pytest.raises(HektaError, match="unknown export shape 'tall'"):
        build_tables(project, rows, "tall")  # type: ignore[arg-type]
    with pytest.raises(HektaError, match="unknown label language 'de'"):
        build_tables(project, rows, "long", language="de")  # type: ignore[arg-type]
    fidelity = load_project("ips_fidelity", LIBRARY)
    with pytest.raises(HektaError, match="ips_fidelity: analyst exports need a longitudinal"):
        build_tables(fidelity, pd.DataFrame(), "long")


# -- de-identification ----------------------------------------------------------------------------


def identifier_fields(project: Project) -> list[str]:
    found = [f.name for _, f in project.fields() if f.identifier]
    assert {"national_id", "contact_mobile", "job_employer_name"} <= set(found)
    return found


def test_identifiers_only_when_asked(
    project: Project, rows: pd.DataFrame, long: list[Table], instruments: dict[str, Table]
) -> None:
    names = identifier_fields(project)
    for table in [*long, *instruments.values()]:
        assert not set(table.frame.columns) & set(names), table.name
    included = build_tables(project, rows, "long", identifiers=True)[0]
    assert {"national_id", "contact_first_name", "contact_email"} <= set(included.frame.columns)


def test_pseudonyms_are_stable_random_and_kept_outside(
    project: Project, rows: pd.DataFrame, tmp_path: Path
) -> None:
    out, key = tmp_path / "export", tmp_path / "keys" / "hekta.json"
    with pytest.raises(HektaError, match="outside the export folder"):
        Pseudonyms.load_or_create(out / "keys.json", export_dir=out)
    with pytest.raises(HektaError, match="outside the export folder"):
        Pseudonyms.load_or_create(out / ".." / "export" / "sub" / "k.json", export_dir=out)
    assert not (out / "keys.json").exists()

    first = build_tables(project, rows, "wide", pseudonyms=Pseudonyms.load_or_create(key, out))
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    more = generate(project, 5, seed=2, errors=False, today=TODAY, first=1001).rows
    more = pd.DataFrame(more).fillna("")
    second = build_tables(
        project,
        pd.concat([more, rows], ignore_index=True),
        "wide",
        pseudonyms=Pseudonyms.load_or_create(key, out),
    )
    known = json.loads(key.read_text(encoding="utf-8"))["pseudonyms"]
    assert len(known) == 85 and len(set(known.values())) == 85
    for tables in (first, second):
        for table in tables:
            ids = table.frame["record_id"]
            assert ids.str.fullmatch(r"P[0-9A-F]{10}").all(), table.name
            assert ids.is_monotonic_increasing  # sorted by pseudonym, not by record id
            assert table.labels["record_id"] == "Pseudonym for deltakeren"
    # The same record gets the same pseudonym in both exports, with the same values.
    one, two = (t[0].frame.set_index("record_id") for t in (first, second))
    assert set(one.index) < set(two.index)
    pd.testing.assert_frame_equal(one, two.loc[one.index])
    assert set(two.index) - set(one.index) == {known[str(r)] for r in range(1001, 1006)}
    # Random, not derived from the record id: another key file gives other pseudonyms.
    other = Pseudonyms.load_or_create(tmp_path / "other.json")
    again = other.apply(pd.Series(["1", "2"]))
    assert again.tolist() != [known["1"], known["2"]]


def test_a_broken_key_file_is_an_error(tmp_path: Path) -> None:
    key = tmp_path / "key.json"
    key.write_text('{"pseudonyms": {"1": "PA"}}', encoding="utf-8")
    with pytest.raises(HektaError, match=r"key\.json: not a pseudonym key file"):
        Pseudonyms.load_or_create(key)
    key.write_text("{", encoding="utf-8")
    with pytest.raises(HektaError, match="cannot read the pseudonym key file"):
        Pseudonyms.load_or_create(key)


# -- manifest -------------------------------------------------------------------------------------


def definitions_digest(project: Project) -> str:
    """SHA-256 over the study file, then each form's file in study order (docs/exports.md),
    each fed as its path, NUL, length in bytes, NUL and bytes: worked out here with hashlib, as
    the exported files' digests are below, so that a change of the recipe shows."""
    digest = hashlib.sha256()
    for relative in [f"studies/{project.name}.yaml", *(f"forms/{f}.yaml" for f in project.forms)]:
        data = (project.root / relative).read_bytes()
        digest.update(f"{relative}\0{len(data)}\0".encode() + data)
    return digest.hexdigest()


def test_the_manifest_cites_the_export(project: Project, long: list[Table], tmp_path: Path) -> None:
    files = write_tables(long, "dta", tmp_path)
    synced = dt.datetime(2026, 5, 31, 23, 30, tzinfo=dt.UTC)
    path = write_manifest(
        tmp_path,
        project,
        long,
        files,
        shape="long",
        fmt="dta",
        language="nb",
        identifiers=False,
        pseudonymised=False,
        last_sync=synced,
    )
    manifest = json.loads(path.read_text(encoding="utf-8"))
    assert manifest["toolkit"] == {"name": "hekta-redcap", "version": __version__}
    assert manifest["project"] == {"name": "hekta", "title": "HEKTA PÅ JOBB"}
    assert manifest["definitions_sha256"] == definitions_digest(project)
    assert manifest["last_sync"] == "2026-05-31T23:30:00+00:00"
    assert (manifest["shape"], manifest["format"], manifest["language"]) == ("long", "dta", "nb")
    assert manifest["identifiers_included"] is False and manifest["pseudonymised"] is False
    assert manifest["tables"] == [
        {"name": t.name, "rows": len(t.frame), "columns": len(t.frame.columns)} for t in long
    ]
    assert [f["file"] for f in manifest["files"]] == ["long.dta", "employment_outcomes.dta"]
    for entry in manifest["files"]:
        data = (tmp_path / entry["file"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["bytes"] == len(data)
    assert manifest["recoded"]["long"]["redcap_event_name"] == {
        "baseline_arm_1": 1,
        "followup_6m_arm_1": 2,
        "followup_12m_arm_1": 3,
        "register_18m_arm_1": 4,
    }
    # 32 characters: over Stata's 32 less the 2 digits pyreadstat adds to a value label set's
    # name; the start, the first 4 hex digits of its SHA-1 (23b31a1e...) and its last part.
    assert manifest["renamed"] == {
        "long": {"consent_obtained_by_missing_code": "consent_obtained_by_23b3_code"}
    }


def test_the_definitions_hash_follows_the_files(project: Project, library: Path) -> None:
    copy = load_project("hekta", library)
    assert definitions_hash(copy) == definitions_hash(project)
    form = library / "forms" / "phq9.yaml"
    form.write_text(form.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    assert definitions_hash(copy) != definitions_hash(project)


# -- names ----------------------------------------------------------------------------------------


def test_long_names_are_shortened_for_stata_and_keep_the_timepoint(wide: list[Table]) -> None:
    table = wide[0]
    renamed = fitted_names(table, "dta")
    assert renamed == fitted_names(table, "dta")  # deterministic
    short = renamed["whoqol_psychological_n_answered_base"]
    assert len(short) <= 32 and short.startswith("whoqol_psych") and short.endswith("_base")
    names = [renamed.get(c, c) for c in table.frame.columns]
    assert len(set(names)) == len(names)
    digits = len(str(len(table.value_labels)))  # pyreadstat's value label set names
    for column, name in zip(table.frame.columns, names, strict=True):
        limit = 32 - (digits if column in table.value_labels else 0)
        assert len(name) <= limit, name
    assert fitted_names(table, "sav") == {}  # SPSS allows 64 bytes


def test_a_name_a_format_cannot_hold_is_an_error() -> None:
    table = Table("t", pd.DataFrame({"with": [1], "ok": [2]}), {}, {})
    with pytest.raises(HektaError, match="table t: variable 'with' is not a valid dta name"):
        fitted_names(table, "dta")
    with pytest.raises(HektaError, match="variable 'with' is not a valid sav name"):
        fitted_names(table, "sav")


def test_the_reminder_services_rows_and_free_text_stay_out(
    project: Project, rows: pd.DataFrame
) -> None:
    """A follow-up event where only the tracking form was written (the reminder service does
    that before anyone is assessed) gives no row; notes fields need identifiers=True."""
    tracked = pd.concat(
        [
            rows,
            pd.DataFrame(
                [
                    {
                        "record_id": "1",
                        "redcap_event_name": "register_18m_arm_1",
                        "fu_status": "1",
                        "fu_nurse_notes": "Ring etter kl. 12",
                    }
                ]
            ),
        ],
        ignore_index=True,
    ).fillna("")
    table = build_tables(project, tracked, "long")[0].frame
    assert not (
        (table["record_id"] == "1") & (table["redcap_event_name"] == "register_18m_arm_1")
    ).any()
    assert not any(c.startswith("fu_") for c in table.columns)
    notes = [f.name for _, f in project.fields() if f.type == "notes" and not f.identifier]
    assert notes and not set(notes) & set(table.columns)
    everything = build_tables(project, tracked, "long", identifiers=True)[0].frame
    assert set(notes) - {"fu_nurse_notes"} <= set(everything.columns)


# -- register tables ------------------------------------------------------------------------------


def _registered() -> Registered:
    """Two participants' register tables from a hand-made AA delivery: record 1 employed in
    months 2 and 3, record 2 not linked."""
    layouts = load_layouts(LIBRARY)
    aa = pd.DataFrame(
        {
            "lopenr": ["10000001"],
            "arbeidsforhold_id": ["a"],
            "startdato": pd.to_datetime(["2025-02-20"]),
            "sluttdato": pd.to_datetime(["2025-04-01"]),
            "avtalte_timer": [20.0],
        }
    )
    people = pd.DataFrame(
        {
            "record_id": ["1", "2"],
            "lopenr": ["10000001", None],
            "rand_date": [dt.date(2025, 1, 15)] * 2,
            "arm": ["1", "2"],
        }
    )
    covered = dict.fromkeys(layouts, ((dt.date(2020, 1, 1), dt.date(2027, 12, 31)),))
    months = register_panel(layouts, {"aa": aa}, people, covered)
    ends = register_endpoints(months, [18])
    deliveries = {source: ["d1"] for source in layouts}
    return Registered(months, ends, [18], layouts, covered, deliveries)


@pytest.mark.parametrize("fmt", ["csv", "parquet", "sav", "dta", "xlsx"])
def test_register_tables_in_every_format(project: Project, tmp_path: Path, fmt: Format) -> None:
    pseudonyms = Pseudonyms.load_or_create(tmp_path / "key.json")
    tables = register_export(project, _registered(), "en", pseudonyms)
    assert [t.name for t in tables] == ["register_panel", "register_outcomes"]
    panel, outcomes = tables
    assert panel.labels["record_id"] == "The participant's pseudonym"
    assert panel.labels["benefit_AAP"] == "Work assessment allowance in the month"
    assert panel.value_labels["arm"] == {
        "1": "IPS (Individual Placement and Support)",
        "2": "Self-help package and course",
    }
    assert panel.dates == {"month_start", "month_end"}
    assert "lopenr" not in panel.frame and "lopenr" not in outcomes.frame
    mine = pseudonyms.known["1"]
    first = outcomes.frame[outcomes.frame["record_id"] == mine].iloc[0]
    assert (first["months_employed"], first["contracted_hours"]) == (2, pytest.approx(
        (20 * 23 / 28 + 20 * 18 / 31) / 18))  # fmt: skip
    files = write_tables(tables, fmt, tmp_path / fmt)
    assert {f.name for f in files} >= {f"register_panel.{fmt}", f"register_outcomes.{fmt}"}
    if fmt == "parquet":
        back = pd.read_parquet(tmp_path / fmt / "register_panel.parquet")
        assert back["month"].tolist()[:25] == [*range(-24, 0), 1]
        assert back["month_start"].iloc[24] == dt.date(2025, 1, 15)
