"""The data problems a nurse can act on: blanks only where an answer is expected, outliers only
where a field asks and by a robust rule, the study's cross-field checks, rules a study
switches off, accepted values that stay accepted until they change, and a report with the
errors on top, split into pages when large.

Each case is a hand-made export of the trial project (no server needed): a baseline row, a
6-month row and job episodes, validated directly.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import LIBRARY, edit

from hekta_redcap.cli import cli
from hekta_redcap.core.settings import Settings
from hekta_redcap.data.store import Store
from hekta_redcap.definitions.study import Project, load_project
from hekta_redcap.followup.digest import data_problems
from hekta_redcap.ops.daemon import status
from hekta_redcap.validation import validate_records, write_report
from hekta_redcap.validation.layout import Layout
from hekta_redcap.validation.report import PAGE_PROBLEMS

BASE, SIX = "baseline_arm_1", "followup_6m_arm_1"
PROJECT = load_project("hekta", LIBRARY)
PLACES = ["redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance"]
# A saved 6-month PHQ-9 with every scored item answered.
PHQ9 = {f"phq9_{n}": "1" for n in range(1, 10)} | {"phq9_10": "1", "phq9_complete": "2"}
DRUGS = "cannabis amphetamine cocaine heroin opioids benzo ghb hallucinogens other".split()
SUBST = {f"subst_{d}": "0" for d in DRUGS} | {"subst_alcohol": "24", "subst_injected": "0"}
SUBST |= {"substance_days_complete": "2"}


def job(record: str, instance: int, **values: str) -> dict[str, str]:
    """A finished, well-kept job episode at 6 months (overridden by `values`)."""
    return {
        "record_id": record,
        "redcap_event_name": SIX,
        "redcap_repeat_instrument": "job_episode",
        "redcap_repeat_instance": str(instance),
        "job_start_date": "2025-09-01",
        "job_start_precision": "1",
        "job_end_date": "2025-12-31",
        "job_ongoing": "0",
        "job_type": "1",
        "job_competitive": "1",
        "job_nav_measure": "0",
        "job_data_source": "1",
        "job_hours_week": str(30 + instance % 11),
        "job_pay": str(200 + instance),
        "job_pay_unit": "1",
        "job_episode_complete": "2",
    } | values


def export(*rows: dict[str, str], project: Project = PROJECT) -> pd.DataFrame:
    """Rows as a full flat export: every column of the project, blank where not given."""
    columns = [*Layout(project, pd.DataFrame()).raw.columns]
    columns[1:1] = [p for p in [*PLACES, "redcap_data_access_group"] if p not in columns]
    frame = pd.DataFrame(list(rows), dtype=object).reindex(columns=columns)
    return frame.astype(object).where(frame.notna(), "")


def six(record: str = "1", **values: str) -> dict[str, str]:
    return {"record_id": record, "redcap_event_name": SIX} | values


def problems(rows: pd.DataFrame, project: Project = PROJECT, **kwargs) -> set[tuple[str, ...]]:
    found = validate_records(project, rows, **kwargs).problems
    return set(found[["record", "field", "rule", "severity"]].itertuples(index=False, name=None))


# -- blanks ----------------------------------------------------------------------------------


def test_an_unanswered_scale_item_on_a_saved_form_is_listed(library: Path) -> None:
    rows = export(six(**(PHQ9 | {"phq9_4": ""})))
    assert problems(rows) == {("1", "phq9_4", "required", "error")}  # the shipped item: required
    item = "    choices: phq_freq\n{}\n  - name: phq9_5"
    edit(library, "forms/phq9.yaml", item.format("    required: true\n"), item.format(""))
    optional = load_project("hekta", library)
    assert problems(export(six(**(PHQ9 | {"phq9_4": ""})), project=optional), optional) == {
        ("1", "phq9_4", "blank", "advisory")  # still a scale item: its absence changes a score
    }


def test_blanks_where_no_answer_is_expected_are_not_noted() -> None:
    # phq9_10 is asked but not scored; a form never started is not checked at all
    assert problems(export(six(**(PHQ9 | {"phq9_10": ""})))) == set()
    assert problems(export(six(**{"phq9_complete": "0"}))) == set()


def test_an_optional_comment_and_an_alternative_contact_are_not_noted() -> None:
    end = {"eos_status": "1", "eos_date": "2026-06-01", "eos_comment": "", "eos_data_use": "1"}
    end |= {"end_of_study_complete": "2"}
    contact = {"contact_mobile": "91234567", "contact_alternative": "", "contact_email": ""}
    contact |= {"contact_channel": "1", "do_not_contact": "0", "contact_complete": "2"}
    rows = export({"record_id": "1", "redcap_event_name": BASE} | contact, six(**end))
    assert {f for _, f, *_ in problems(rows)} & {"eos_comment", "contact_alternative"} == set()


# -- the job episode's end date ----------------------------------------------------------------


def test_an_ongoing_jobs_blank_end_date_is_right() -> None:
    assert problems(export(job("1", 1, job_end_date="", job_ongoing="1"))) == set()


def test_a_finished_job_needs_its_end_date_and_an_ongoing_one_has_none() -> None:
    rows = export(
        job("1", 1, job_end_date=""),  # finished, no end date
        job("2", 1, job_ongoing="1"),  # ongoing, with an end date
        job("3", 1),  # finished, with its end date: right
    )
    found = validate_records(PROJECT, rows).problems
    assert set(
        found[["record", "field", "rule", "severity"]].itertuples(index=False, name=None)
    ) == {
        ("1", "job_end_date", "check", "error"),
        ("2", "job_end_date", "check", "error"),
    }
    messages = found.set_index("record")["message_en"]
    assert messages["1"].startswith("“End date” is missing for a job that has ended")
    assert messages["2"].startswith("“End date” is filled in but the job is said to be ongoing")


# -- ranges and outliers -----------------------------------------------------------------------


def test_days_of_use_are_bounded_not_outliers() -> None:
    heavy = [six(str(n), **(SUBST | {"subst_alcohol": str(n % 3)})) for n in range(1, 40)]
    rows = export(*heavy, six("40", **(SUBST | {"subst_alcohol": "30"})))
    assert problems(rows) == set()  # 30 days of 30 in a treatment population: no note
    over = export(*heavy, six("40", **(SUBST | {"subst_alcohol": "31"})))
    assert problems(over) == {("40", "subst_alcohol", "range", "error")}


def test_an_hours_per_week_typo_stands_out_by_the_median() -> None:
    usual = [job(str(n), 1, job_hours_week=str(h)) for n, h in enumerate([37.5, 20, 30] * 9, 1)]
    typo = job("99", 1, job_hours_week="75")  # 37.5 typed twice; inside the 0-80 range
    found = validate_records(PROJECT, export(*usual, typo)).problems
    assert found[["record", "field", "rule"]].values.tolist() == [
        ["99", "job_hours_week", "outlier"]
    ]
    assert "(median 30)" in found["message_en"].iat[0]
    # too few answers to tell: no note
    assert problems(export(*usual[:10], typo)) == set()


def test_pay_is_compared_within_its_unit() -> None:
    hourly = [job(str(n), 1, job_pay=str(200 + n % 7), job_pay_unit="1") for n in range(1, 26)]
    monthly = [job(str(n), 1, job_pay=str(35000 + n), job_pay_unit="2") for n in range(26, 51)]
    assert problems(export(*hourly, *monthly)) == set()  # two units, no outlier
    slip = job("99", 1, job_pay="2100", job_pay_unit="1")  # 210 per hour, a zero too many
    assert problems(export(*hourly, *monthly, slip)) == {("99", "job_pay", "outlier", "advisory")}


@pytest.mark.parametrize("method", ["mad", "iqr"])
def test_outlier_methods(library: Path, method: str) -> None:
    edit(
        library,
        "forms/job_episode.yaml",
        "outlier: {method: mad}",
        f"outlier: {{method: {method}}}",
    )
    project = load_project("hekta", library)
    same = [job(str(n), 1, job_hours_week="37.5") for n in range(1, 30)]
    assert problems(export(*same, project=project), project) == set()  # no spread: no note
    spread = [job(str(n), 1, job_hours_week=str(h)) for n, h in enumerate([35, 37.5, 40] * 9, 1)]
    assert (
        problems(export(*spread, job("99", 1, job_hours_week="50"), project=project), project)
        == set()
    )
    odd = export(*spread, job("99", 1, job_hours_week="60"), project=project)
    assert problems(odd, project) == {("99", "job_hours_week", "outlier", "advisory")}


def test_a_study_can_switch_a_rule_off(library: Path) -> None:
    edit(
        library,
        "studies/hekta.yaml",
        "  disabled: []",
        "  disabled: [required, finished-job-end-date]",
    )
    project = load_project("hekta", library)
    rows = export(six(**(PHQ9 | {"phq9_4": ""})), job("2", 1, job_end_date=""), project=project)
    assert problems(rows, project) == set()


# -- accepted values ---------------------------------------------------------------------------


def test_an_accepted_note_stays_away_until_its_value_changes(tmp_path: Path) -> None:
    settings = Settings({"HEKTA_STORE": str(tmp_path / "store.sqlite3"), "HEKTA_USER": "kari"})
    usual = [job(str(n), 1, job_hours_week=str(h)) for n, h in enumerate([37.5, 20, 30] * 9, 1)]
    rows = export(*usual, job("99", 1, job_hours_week="75"))
    with Store.open(settings) as store:
        store.set_problems("hekta", validate_records(PROJECT, rows).problems.to_dict("records"))
    accept = CliRunner().invoke(
        cli,
        [
            "problems",
            "accept",
            "-p",
            "hekta",
            "99",
            SIX,
            "job_hours_week",
            "--reason",
            "works two jobs: checked with the participant",
        ],
        env=dict(settings.values),
    )
    assert accept.exit_code == 0, accept.output
    assert accept.output == (
        f"accepted: record 99, {SIX} instance 1, job_hours_week (outlier), by kari\n"
    )
    with Store.open(settings) as store:
        accepted = store.acceptances("hekta")
    again = validate_records(PROJECT, rows, accepted=accepted)
    assert again.problems.empty
    assert again.accepted[["record", "field", "by"]].values.tolist() == [
        ["99", "job_hours_week", "kari"]
    ]
    changed = export(*usual, job("99", 1, job_hours_week="76"))
    assert problems(changed, accepted=accepted) == {("99", "job_hours_week", "outlier", "advisory")}


def test_accepting_what_is_not_open_is_a_clear_error(tmp_path: Path) -> None:
    env = {"HEKTA_STORE": str(tmp_path / "store.sqlite3")}
    missing = CliRunner().invoke(
        cli, ["problems", "accept", "-p", "hekta", "7", SIX, "job_pay", "--reason", "ok"], env=env
    )
    assert missing.exit_code == 1
    assert missing.output == (
        f"error: no open problem for record 7, {SIX}, job_pay (the latest validation lists "
        "what is open)\n"
    )
    lines = tmp_path / "accept.csv"
    lines.write_text("record,event,field,reason\n7,baseline_arm_1,job_pay\n", encoding="utf-8")
    bad = CliRunner().invoke(
        cli, ["problems", "accept", "-p", "hekta", "--file", str(lines)], env=env
    )
    assert (
        bad.exit_code == 1 and f"{lines}:2: the line's cells do not match the header" in bad.output
    )


# -- the report --------------------------------------------------------------------------------


def test_the_report_puts_errors_first_and_folds_the_notes(tmp_path: Path) -> None:
    rows = export(job("1", 1, job_pay="", job_pay_unit=""), job("2", 1, job_end_date=""))
    result = validate_records(PROJECT, rows)
    page = write_report(result, tmp_path)[1].read_text(encoding="utf-8")
    assert page.index("<h2>Feil") < page.index("<h2>Merknader")
    assert page.index("<code>job_end_date</code></td>") < page.index("<code>job_pay</code></td>")
    assert re.search(r"<details>\s*<summary>Tomt felt", page)
    assert "<b>1 feil</b> i 1 poster og 1 merknader" in page


def test_a_large_report_is_split_per_data_access_group(tmp_path: Path) -> None:
    many = [
        six(str(n), redcap_data_access_group=dag, **(PHQ9 | {"phq9_1": "", "phq9_2": ""}))
        for n, dag in zip(range(1, 400), ["oslo", "bergen", "tromso"] * 140, strict=False)
    ]
    result = validate_records(PROJECT, export(*many))
    assert len(result.problems) == 798 > PAGE_PROBLEMS
    index = write_report(result, tmp_path)[1]
    pages = sorted(p.name for p in tmp_path.glob("report-*.html"))
    assert pages == ["report-bergen.html", "report-oslo.html", "report-tromso.html"]
    text = index.read_text(encoding="utf-8")
    assert all(f'href="{p}"' in text for p in pages) and "phq9_1" not in text
    sizes = [(tmp_path / p).stat().st_size for p in pages]
    assert max(sizes) < 400_000, sizes
    assert sum((tmp_path / p).read_text("utf-8").count("<td><code>phq9_") for p in pages) == 798


def test_status_and_the_digest_summarise_as_the_report_does(tmp_path: Path) -> None:
    settings = Settings({"HEKTA_STORE": str(tmp_path / "store.sqlite3")})
    rows = export(
        job("1", 1, job_pay="", job_pay_unit=""),
        job("2", 1, job_end_date=""),
        job("3", 1, job_end_date="", redcap_data_access_group="oslo"),
    )
    found = validate_records(PROJECT, rows).problems
    with Store.open(settings) as store:
        store.set_problems("hekta", found.to_dict("records"))
        problems = store.open_problems("hekta")
    today = str(problems[0]["first_seen"])[:10]
    line = status(settings, "hekta", definitions=PROJECT).render("hekta")
    assert (
        f"  open data problems: 2 error(s) in 2 record(s), oldest open since {today} (record 2, "
        "job_end_date); 1 advisory note(s) (blank 1)"
    ) in line
    everyone = data_problems(pd.DataFrame(problems))
    assert everyone["error_records_list"] == [("2", 1), ("3", 1)]
    oslo = data_problems(pd.DataFrame([p for p in problems if p["dag"] == "oslo"]))
    assert (oslo["errors"], oslo["advisories"], oslo["error_records_list"]) == (1, 0, [("3", 1)])
