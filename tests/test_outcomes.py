"""Employment outcomes: hand-worked participants (numbers worked out in the comments) and a
synthetic cohort for the shape of the result.

Most participants are randomised on 1 January 2025, so the 18-month window runs from day 0
(2025-01-01) to day 545 (2026-06-30): 1 July 2026 is day 546, the first day after it. Useful
days: 2025-03-01 = 59, 2025-03-15 = 73, 2025-03-29 = 87, 2025-04-11 = 100, 2025-05-09 = 128,
2025-07-01 = 181, 2025-07-28 = 208, 2026-05-01 = 485, 2026-06-01 = 516."""

from __future__ import annotations

import calendar
import datetime as dt
import logging
from itertools import count

import pandas as pd
import pytest
from conftest import LIBRARY

from hekta_redcap.analysis.outcomes import (
    IGNORED,
    OUTCOME_COLUMNS,
    OUTCOME_DEFINITIONS,
    OUTCOME_DTYPES,
    employment_outcomes,
    outcome_definitions,
)
from hekta_redcap.core.errors import HektaError
from hekta_redcap.definitions.study import Project, load_project
from hekta_redcap.devtools.cohort import generate

RAND = "2025-01-01"
NA = None  # how `plain` shows a missing value
# Codes from job_episode.yaml: precision 1 day, 2 month, 3 year; nav measure 0 none, 1 wage
# subsidy, 2 work training, 3 sheltered; pay unit 1 hour, 2 month, 3 year.
_orgnrs = count(900000001)


@pytest.fixture(scope="module")
def project() -> Project:
    return load_project("hekta", LIBRARY)


def job(start: str, end: str = "", event: str = "followup_6m_arm_1", **answers: str) -> dict:
    """A job-episode row: a competitive day-precision job, 37.5 h/week at 200 NOK an hour,
    at a new employer, ongoing when `end` is blank."""
    return {
        "redcap_event_name": event,
        "redcap_repeat_instrument": "job_episode",
        "job_start_date": start,
        "job_start_precision": "1",
        "job_end_date": end,
        "job_ongoing": "0" if end else "1",
        "job_employer_orgnr": str(next(_orgnrs)),
        "job_employer_name": "Eksempel AS",
        "job_competitive": "1",
        "job_nav_measure": "0",
        "job_hours_week": "37.5",
        "job_pay": "200",
        "job_pay_unit": "1",
        **answers,
    }


def export(*participants: tuple[str, str, list[dict]]) -> pd.DataFrame:
    """A flat export (all text, blank "") of (record, randomisation date, jobs) triples."""
    rows = []
    for record, rand, jobs in participants:
        rows.append(
            {"record_id": record, "redcap_event_name": "baseline_arm_1", "rand_date": rand}
            | ({"rand_group": "1" if int(record) % 2 else "2"} if rand else {})
        )
        instances: dict[str, int] = {}
        for episode in jobs:
            event = episode["redcap_event_name"]
            instances[event] = instances.get(event, 0) + 1
            rows.append(
                {"record_id": record, "redcap_repeat_instance": str(instances[event])} | episode
            )
    frame = pd.DataFrame(rows)
    for column in ("redcap_repeat_instrument", "redcap_repeat_instance", "rand_group"):
        if column not in frame:
            frame[column] = ""
    return frame.fillna("")


def one(project: Project, jobs: list[dict], rand: str = RAND, months: int = 18) -> dict:
    """The outcomes of a single participant (record 1) with these jobs."""
    result = employment_outcomes(project, export(("1", rand, jobs)), months)
    assert len(result) == 1
    return plain(result)[0]


def plain(result: pd.DataFrame) -> list[dict]:
    """Rows as dicts, missing values as None (so that == compares them)."""
    return result.astype(object).where(result.notna(), None).to_dict("records")


NO_JOB = {
    "any_competitive_job": False,
    "days_to_first_job": NA,
    "days_worked": 0,
    "weeks_worked": 0.0,
    "total_hours": 0.0,
    "earnings": 0.0,
    "longest_job_days": 0,
    "worked_20h_week": False,
}


def outcomes_of(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in ("record_id", "group")}


def test_a_single_job_inside_the_window(project: Project) -> None:
    # days 59..100 = 42 days = 6 weeks; 6 x 37.5 h = 225 h; 225 h x 200 NOK = 45,000.
    assert outcomes_of(one(project, [job("2025-03-01", "2025-04-11")])) == {
        "any_competitive_job": True,
        "days_to_first_job": 59,
        "days_worked": 42,
        "weeks_worked": 6.0,
        "total_hours": 225.0,
        "earnings": 45000.0,
        "longest_job_days": 42,
        "worked_20h_week": True,
    }


def test_overlapping_jobs_count_their_days_once_and_add_their_hours(project: Project) -> None:
    # A: days 59..100 (42 days, 20 h/week); B: days 87..128 (42 days, 10 h/week).
    # Union 59..128 = 70 days = 10 weeks; hours 6 x 20 + 6 x 10 = 180; earnings 180 x 200.
    row = one(
        project,
        [
            job("2025-03-01", "2025-04-11", job_hours_week="20"),
            job("2025-03-29", "2025-05-09", job_hours_week="10"),
        ],
    )
    assert (row["days_worked"], row["weeks_worked"], row["longest_job_days"]) == (70, 10.0, 42)
    assert (row["total_hours"], row["earnings"]) == (180.0, 36000.0)
    assert (row["days_to_first_job"], row["worked_20h_week"]) == (59, True)


def test_a_job_inside_another_adds_no_days(project: Project) -> None:
    # A: days 59..128 (70 days); B inside it: days 87..100 (14 days). Union = 70 days.
    row = one(project, [job("2025-03-01", "2025-05-09"), job("2025-03-29", "2025-04-11")])
    assert (row["days_worked"], row["longest_job_days"]) == (70, 70)
    assert row["total_hours"] == (10 + 2) * 37.5


@pytest.mark.parametrize(
    ("episode", "days"),
    [
        (job("2026-05-01"), 61),  # ongoing: days 485..545 (censored at the window's last day)
        (job("2026-05-01", job_ongoing="0"), 61),  # a blank end date is ongoing too
        (job("2026-05-01", "2026-05-31", job_ongoing="1"), 61),  # job_ongoing wins
        (job("2026-06-01", "2026-12-31"), 30),  # ends after the window: days 516..545
    ],
)
def test_jobs_running_past_the_window_are_censored(
    project: Project, episode: dict, days: int
) -> None:
    row = one(project, [episode])
    assert (row["days_worked"], row["longest_job_days"]) == (days, days)
    assert row["total_hours"] == pytest.approx(days / 7 * 37.5)


def test_a_job_held_at_randomisation_counts_from_day_0(project: Project) -> None:
    # 2024-10-01..2025-01-14 clipped to days 0..13 = 14 days = 2 weeks; 2 x 30 h = 60 h.
    row = one(project, [job("2024-10-01", "2025-01-14", job_hours_week="30")])
    assert (row["days_to_first_job"], row["days_worked"], row["total_hours"]) == (0, 14, 60.0)


@pytest.mark.parametrize(
    "episode",
    [
        job("2026-07-01"),  # starts on day 546, the day after the window
        job("2024-06-01", "2024-12-31"),  # ends on day -1, the day before randomisation
        job("2025-03-01", "2025-04-11", job_competitive="0"),  # not competitive
        job("2025-03-01", "2025-04-11", job_nav_measure="2"),  # work training
        job("2025-03-01", "2025-04-11", job_nav_measure="3"),  # sheltered or adapted work
        job("2025-03-01", "2025-04-11", job_competitive=""),  # competitive not answered
    ],
)
def test_jobs_that_do_not_count(project: Project, episode: dict) -> None:
    assert outcomes_of(one(project, [episode])) == NO_JOB


def test_a_wage_subsidised_job_counts(project: Project) -> None:
    row = one(project, [job("2025-03-01", "2025-04-11", job_nav_measure="1")])
    assert (row["any_competitive_job"], row["days_worked"]) == (True, 42)


def test_vague_start_dates(project: Project) -> None:
    # Month: stored 2025-03-01, counted from 2025-03-15 (day 73) to day 100 = 28 days.
    row = one(project, [job("2025-03-01", "2025-04-11", job_start_precision="2")])
    assert (row["days_to_first_job"], row["days_worked"], row["total_hours"]) == (73, 28, 150.0)
    # Month, whatever day is stored: 2025-03-20 also counts from the 15th.
    row = one(project, [job("2025-03-20", "2025-04-11", job_start_precision="2")])
    assert row["days_to_first_job"] == 73
    # Year: stored 2025-01-01, counted from 1 July (day 181) to 2025-07-28 (day 208) = 28 days.
    row = one(project, [job("2025-01-01", "2025-07-28", job_start_precision="3")])
    assert (row["days_to_first_job"], row["days_worked"]) == (181, 28)
    # The imputed start never passes the end: 2025-03-15 > 2025-03-10, so one day (day 68).
    row = one(project, [job("2025-03-01", "2025-03-10", job_start_precision="2")])
    assert (row["days_to_first_job"], row["days_worked"]) == (68, 1)


@pytest.mark.parametrize(
    ("pay", "unit", "earnings"),
    [
        ("30000", "2", 6 * 30000 * 12 / 52),  # = 225 h x 30000 / (37.5 x 52/12) = 41,538.46
        ("390000", "3", 45000.0),  # 390000 / (37.5 x 52) = 200 NOK an hour, x 225 h
        ("", "", NA),  # no pay: unknown earnings
        ("30000", "", NA),  # pay without its unit
    ],
)
def test_pay_conversion(project: Project, pay: str, unit: str, earnings: object) -> None:
    row = one(project, [job("2025-03-01", "2025-04-11", job_pay=pay, job_pay_unit=unit)])
    if earnings is NA:
        assert row["earnings"] is None and row["total_hours"] == 225.0
    else:
        assert row["earnings"] == pytest.approx(earnings)


def test_blank_hours_make_hours_unknown_not_zero(project: Project) -> None:
    # Job A has no hours: total hours unknown; A is paid by the hour, so earnings too; no job
    # reaches 20 h for sure (B has 10), so worked_20h_week is unknown. Days still count.
    row = one(
        project,
        [
            job("2025-03-01", "2025-04-11", job_hours_week=""),
            job("2025-05-01", "2025-05-14", job_hours_week="10"),
        ],
    )
    assert (row["total_hours"], row["earnings"], row["worked_20h_week"]) == (NA, NA, NA)
    assert row["days_worked"] == 42 + 14
    # A missing data code is no number either; a 20-hour job makes the flag True regardless.
    row = one(
        project,
        [
            job("2025-03-01", "2025-04-11", job_hours_week="UNK"),
            job("2025-05-01", "2025-05-14", job_hours_week="20"),
        ],
    )
    assert (row["total_hours"], row["worked_20h_week"]) == (NA, True)
    # Monthly pay needs no hours: 6 weeks x 26000 x 12/52 = 36,000.
    row = one(
        project,
        [job("2025-03-01", "2025-04-11", job_hours_week="", job_pay="26000", job_pay_unit="2")],
    )
    assert (row["total_hours"], row["earnings"]) == (NA, pytest.approx(36000.0))


def test_randomisation_on_31_august(project: Project) -> None:
    # 2025-08-31 + 18 months = 2027-02-28 (February has no 31st), so the last day is
    # 2027-02-27 (day 545). An ongoing job from 2027-02-01 (day 519) counts 27 days.
    row = one(project, [job("2027-02-01")], rand="2025-08-31")
    assert (row["days_to_first_job"], row["days_worked"]) == (519, 27)
    assert outcomes_of(one(project, [job("2027-02-28")], rand="2025-08-31")) == NO_JOB


def test_a_shorter_window(project: Project) -> None:
    # 6 months: 2025-01-01 to 2025-06-30 (days 0..180); an ongoing job from day 59 = 122 days.
    assert one(project, [job("2025-03-01")], months=6)["days_worked"] == 122
    with pytest.raises(HektaError, match="at least 1 month"):
        one(project, [], months=0)


def test_the_same_job_reported_twice_counts_once(project: Project) -> None:
    # Reported ongoing at 6 months and ended at 12 months (same start and org. number): the
    # 12-month report is kept, so days 59..100 = 42 days and 225 h, not 225 h more.
    orgnr = "912345678"
    first = job("2025-03-01", event="followup_6m_arm_1", job_employer_orgnr=orgnr)
    later = job("2025-03-01", "2025-04-11", "followup_12m_arm_1", job_employer_orgnr=orgnr)
    result = employment_outcomes(project, export(("1", RAND, [later, first])))
    assert result.loc[0, ["days_worked", "total_hours"]].tolist() == [42, 225.0]
    assert result.attrs[IGNORED]["duplicate"] == 1
    # Without org. numbers the employer's name decides (case and spacing ignored) ...
    a = job("2025-03-01", "2025-04-11", job_employer_orgnr="", job_employer_name="Demo  Bygg AS")
    b = job("2025-03-01", "2025-04-11", job_employer_orgnr="", job_employer_name="demo bygg as")
    assert one(project, [a, b])["total_hours"] == 225.0
    # ... and two employers from the same day are two concurrent jobs: hours add.
    assert (
        one(project, [job("2025-03-01", "2025-04-11"), job("2025-03-01", "2025-04-11")])[
            "total_hours"
        ]
        == 450.0
    )


def test_an_end_before_the_start_leaves_the_episode_out(
    project: Project, caplog: pytest.LogCaptureFixture
) -> None:
    jobs = [job("2025-05-01", "2025-04-11"), job("2025-03-01", "2025-03-14"), job("bad", "")]
    with caplog.at_level(logging.INFO, logger="hekta_redcap.analysis.outcomes"):
        result = employment_outcomes(project, export(("1", RAND, jobs)))
    assert result.loc[0, "days_worked"] == 14  # only the 2-week job
    assert result.attrs[IGNORED] == {"unreadable_date": 1, "end_before_start": 1, "duplicate": 0}
    assert "end_before_start=1" in caplog.text


def test_participants_without_jobs_or_randomisation(project: Project) -> None:
    frame = export(
        ("1", RAND, [job("2025-03-01", "2025-04-11")]),
        ("2", RAND, []),  # randomised, never worked
        ("3", "", [job("2025-03-01", "2025-04-11")]),  # not randomised: not in the output
        ("4", "2025-02-01", [job("2025-03-01", "2025-04-11", job_competitive="0")]),
    )
    result = employment_outcomes(project, frame)
    assert result["record_id"].tolist() == ["1", "2", "4"]
    assert result["group"].tolist() == ["1", "2", "2"]
    assert list(result["group"].cat.categories) == ["1", "2"]  # rand_group's codes, in order
    for row in plain(result)[1:]:
        assert outcomes_of(row) == NO_JOB


def test_a_missing_column_is_named(project: Project) -> None:
    frame = export(("1", RAND, [job("2025-03-01")])).drop(columns="job_hours_week")
    with pytest.raises(HektaError, match="no column job_hours_week"):
        employment_outcomes(project, frame)


def test_definitions_cover_every_column_in_both_languages() -> None:
    assert list(OUTCOME_DEFINITIONS) == list(OUTCOME_COLUMNS)
    for texts in OUTCOME_DEFINITIONS.values():
        assert set(texts) == {"nb", "en"} and all(t.endswith(".") for t in texts.values())
    assert "the 18 months" in OUTCOME_DEFINITIONS["any_competitive_job"]["en"]
    assert "de 12 månedene" in outcome_definitions(12)["any_competitive_job"]["nb"]


def window_days(anchor: dt.date, months: int = 18) -> int:
    """Days from `anchor` to the same day `months` calendar months later (clipped to that
    month's last day): the window's length, counted with the calendar module rather than with
    the schedule's arithmetic that the outcomes use."""
    years, month = divmod(anchor.month - 1 + months, 12)
    year, month = anchor.year + years, month + 1
    end = dt.date(year, month, min(anchor.day, calendar.monthrange(year, month)[1]))
    return (end - anchor).days


def test_window_days_on_dates_worked_out_by_hand() -> None:
    """1 Jan 2025 -> 1 Jul 2026: 365 + 181; 31 Aug 2025 -> 28 Feb 2027: 365 + 181 (clipped);
    29 Feb 2024 -> 29 Aug 2025: 365 + 182; 1 Mar 2023 -> 1 Sep 2024: 366 + 184 (the longest)."""
    anchors = (dt.date(2025, 1, 1), dt.date(2025, 8, 31), dt.date(2024, 2, 29), dt.date(2023, 3, 1))
    assert [window_days(day) for day in anchors] == [546, 546, 547, 550]


def test_a_synthetic_cohort(project: Project) -> None:
    cohort = generate(project, 200, seed=3)
    rows = pd.DataFrame(cohort.rows)  # NA where a row has no value
    result = employment_outcomes(project, rows)
    baseline = rows[(rows["redcap_event_name"] == "baseline_arm_1") & rows["rand_date"].notna()]
    anchors = dict(zip(baseline["record_id"], baseline["rand_date"], strict=True))
    assert result["record_id"].tolist() == list(anchors)  # one row each, export order
    assert tuple(result.columns) == OUTCOME_COLUMNS
    assert result["group"].dtype == pd.CategoricalDtype(["1", "2"])
    assert {c: str(t) for c, t in result.dtypes.drop("group").items()} == OUTCOME_DTYPES
    length = {record: window_days(dt.date.fromisoformat(day)) for record, day in anchors.items()}
    worked = result.set_index("record_id")
    assert (worked["days_worked"] <= pd.Series(length)).all()
    assert (worked["longest_job_days"] <= worked["days_worked"]).all()
    assert (worked["any_competitive_job"] == (worked["days_worked"] > 0)).all()
    assert worked["any_competitive_job"].any() and not worked["any_competitive_job"].all()
    assert (worked["weeks_worked"] == worked["days_worked"] / 7).all()
    # The cohort's deliberate date-order errors are job episodes ending before they start.
    wrong = sum(error.what == "date-order" for error in cohort.errors)
    assert result.attrs[IGNORED] == {
        "unreadable_date": 0,
        "end_before_start": wrong,
        "duplicate": 0,
    }
