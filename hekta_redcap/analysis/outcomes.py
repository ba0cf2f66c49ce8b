"""Employment outcomes per randomised participant, derived from the repeating job-episode form:
the standard IPS measures (Bond, Campbell & Drake 2012) for the analyst exports and codebook.

The rules ([C] marks a project choice the SAP may revise):

- Window: from the randomisation date (the schedule's anchor) to the same date `months`
  calendar months later, exclusive, so the last day is the day before; months are added as the
  follow-up schedule adds them (`followup.shift`: 31 August + 18 months = 28 February).
- An episode covers its start and end dates inclusive. An ongoing job (`job_ongoing` Yes, or a
  blank end date) is right-censored: it ends on the window's last day. Episodes are clipped to
  the window; one that does not overlap it is ignored.
- Vague start dates [C]: REDCap holds a full date, so a start known to the month counts from
  the 15th of that month and one known to the year from 1 July of that year, whatever day is
  stored; the imputed start never lies after the episode's own end date.
- Competitive [C]: `job_competitive` Yes and `job_nav_measure` not work training or sheltered/
  adapted work. Wage-subsidised jobs stay competitive (the SAP decides; `job_nav_measure`
  keeps them apart). The excluded measures and the precision and pay-unit codes are looked up
  by their English labels in the definitions (the constants below), never repeated as codes.
- The same job reported at two events is two instances: episodes of a record with the same
  stored start date and the same employer (organisation number when given, else the name,
  case and spacing ignored; no employer = the same blank employer) are one job [C], and the
  report from the latest event (then the highest instance) is kept.
- Ignored episodes, never counted anywhere: an unreadable or blank start date, an unreadable end
  date, an end date before the start date (on the stored dates). Their numbers, and the number
  of duplicates dropped, are in the result's `attrs[IGNORED]` and logged as counts.
- Unreadable numbers (a missing data code in hours or pay) are missing values.

The outcome columns, over competitive episodes in the window (`OUTCOME_DEFINITIONS` words them
for the codebook; a participant without any has False, 0 and NA as stated):

- any_competitive_job: at least one (False if none).
- days_to_first_job: earliest clipped start minus the randomisation date, so a job held at
  randomisation gives 0; NA if none (censored at the window length, in days).
- days_worked: calendar days covered by their union (overlaps counted once); weeks_worked =
  days_worked / 7 (0 if none).
- total_hours: sum of days in the window / 7 x `job_hours_week` (concurrent jobs add up); NA if
  any of them lacks hours, never counted as 0 [C] (0 if none).
- earnings: sum of days in the window / 7 x weekly pay, where weekly pay is hourly pay x
  weekly hours, monthly pay x 12/52 or yearly pay / 52. This is the reference's hours x hourly
  pay with hourly pay = monthly pay / (hours x 52/12) or yearly pay / (hours x 52); written this
  way it needs no hours for monthly or yearly pay (and survives 0 hours). NA if any of them
  lacks pay, its unit, or (for hourly pay) its hours [C] (0 if none).
- longest_job_days: days in the window of the longest single one (0 if none).
- worked_20h_week: any with `job_hours_week` >= 20; NA when none has but one lacks hours
  (False if none).

    >>> rows = pd.DataFrame(generate(load_project("hekta"), 200, seed=3).rows)  # a flat export
    >>> outcomes = employment_outcomes(load_project("hekta"), rows)
    >>> tuple(outcomes.columns) == OUTCOME_COLUMNS, outcomes.attrs[IGNORED]["end_before_start"]
    (True, 1)
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from hekta_redcap.core.errors import HektaError
from hekta_redcap.definitions.study import Offset, Project
from hekta_redcap.followup.schedule import anchor_dates, shift
from hekta_redcap.redcap.names import EVENT, REPEAT_INSTANCE, REPEAT_INSTRUMENT

logger = logging.getLogger("hekta_redcap.analysis.outcomes")

OUTCOME_COLUMNS = (  # this order is a contract: the analyst export relies on it
    "record_id",
    "group",
    "any_competitive_job",
    "days_to_first_job",
    "days_worked",
    "weeks_worked",
    "total_hours",
    "earnings",
    "longest_job_days",
    "worked_20h_week",
)
OUTCOME_DTYPES = {  # `group` is a categorical of the group codes, in definition order
    "record_id": "string",
    "any_competitive_job": "boolean",
    "days_to_first_job": "Int64",
    "days_worked": "Int64",
    "weeks_worked": "Float64",
    "total_hours": "Float64",
    "earnings": "Float64",
    "longest_job_days": "Int64",
    "worked_20h_week": "boolean",
}
IGNORED = "ignored_episodes"
"""Key in the result's `attrs`: {reason: number of job episodes left out}."""

# The fields read (instruments/forms/randomization.yaml and job_episode.yaml).
GROUP = "rand_group"
JOBS = "job_episode"
START, PRECISION, END, ONGOING = (
    "job_start_date",
    "job_start_precision",
    "job_end_date",
    "job_ongoing",
)
COMPETITIVE, MEASURE, HOURS = "job_competitive", "job_nav_measure", "job_hours_week"
PAY, PAY_UNIT = "job_pay", "job_pay_unit"
ORGNR, EMPLOYER = "job_employer_orgnr", "job_employer_name"  # optional: identifiers
REPEAT, INSTANCE = REPEAT_INSTRUMENT, REPEAT_INSTANCE
_JOB = (START, PRECISION, END, ONGOING, COMPETITIVE, MEASURE, HOURS, PAY, PAY_UNIT)

# Choices by the start of their English label: the one place that names codes' meanings.
NOT_COMPETITIVE = ("Work training", "Sheltered")  # job_nav_measure: NAV measures, not jobs
BY_MONTH, BY_YEAR = "Month", "Year"  # job_start_precision
PER_HOUR, PER_MONTH, PER_YEAR = "Per hour", "Per month", "Per year"  # job_pay_unit

MID_MONTH_DAY = 15  # a start known to the month [C]
MID_YEAR_MONTHS = 6  # a start known to the year: 1 January + 6 months = 1 July [C]
WEEKS_PER_YEAR = 52
FULL_HOURS = 20  # worked_20h_week

# A participant without a competitive episode in the window (days_to_first_job stays NA).
_WITHOUT_JOB = {
    "any_competitive_job": False,
    "days_worked": 0,
    "weeks_worked": 0.0,
    "total_hours": 0.0,
    "earnings": 0.0,
    "longest_job_days": 0,
    "worked_20h_week": False,
}


# Short variable labels of the outcome table (`outcome_definitions` has the definitions
# for the codebook; a variable label must fit Stata's 80 characters).
OUTCOME_LABELS = {
    "any_competitive_job": (
        "Ordinær jobb innen {m} måneder",
        "Any competitive job within {m} months",
    ),
    "days_to_first_job": ("Dager til første ordinære jobb", "Days to the first competitive job"),
    "days_worked": ("Dager i ordinær jobb", "Days worked in competitive jobs"),
    "weeks_worked": ("Uker i ordinær jobb", "Weeks worked in competitive jobs"),
    "total_hours": ("Arbeidstimer i ordinær jobb", "Hours worked in competitive jobs"),
    "earnings": ("Bruttolønn i ordinær jobb (kr)", "Earnings from competitive jobs (NOK)"),
    "longest_job_days": (
        "Dager i den lengste ordinære jobben",
        "Days in the longest competitive job",
    ),
    "worked_20h_week": (
        "Ordinær jobb med 20 timer per uke eller mer",
        "Competitive job of 20+ h/week",
    ),
}
OUTCOME_MONTHS = 18  # the primary outcome's window: 18 months from randomisation


def outcome_definitions(months: int = OUTCOME_MONTHS) -> dict[str, dict[str, str]]:
    """One-sentence definitions of the outcome columns in bokmål and English, for a window of
    `months` months (the codebook shows them). The first outcome defines the window and a
    competitive job; the others refer to both."""
    texts = {
        "record_id": ("Deltakerens post-ID i REDCap.", "The participant's REDCap record id."),
        "group": ("Tildelt gruppe (koden i rand_group).", "Allocated group (the rand_group code)."),
        "any_competitive_job": (
            "Om deltakeren hadde en ordinær jobb minst én dag i oppfølgingsvinduet, de {m} "
            "månedene fra randomiseringsdatoen (siste dag: dagen før samme dato {m} måneder "
            "senere); ordinær = besvart Ja og ikke arbeidstrening eller skjermet/tilrettelagt "
            "arbeid (jobber med lønnstilskudd teller).",
            "Whether the participant held a competitive job on at least one day of the "
            "follow-up window, the {m} months from the randomisation date (last day: the day "
            "before the same date {m} months later); competitive = answered Yes and not work "
            "training or sheltered/adapted work (wage-subsidised jobs count).",
        ),
        "days_to_first_job": (
            "Dager fra randomisering til start av første ordinære jobb i vinduet (0 for en jobb "
            "deltakeren hadde ved randomisering; start kjent bare til måned regnes fra den 15., "
            "bare til år fra 1. juli), tom hvis ingen: sensurert ved vinduets lengde.",
            "Days from randomisation to the start of the first competitive job in the window "
            "(0 for a job held at randomisation; a start known only to the month counts from "
            "the 15th, only to the year from 1 July), missing if none: censored at the "
            "window's length.",
        ),
        "days_worked": (
            "Kalenderdager i vinduet med minst én ordinær jobb, der overlappende jobber telles "
            "én gang og pågående jobber teller til vinduets siste dag.",
            "Calendar days in the window with at least one competitive job, counting "
            "overlapping jobs once and ongoing jobs to the window's last day.",
        ),
        "weeks_worked": ("days_worked / 7.", "days_worked / 7."),
        "total_hours": (
            "Summen over ordinære jobber av uker i vinduet ganger timer per uke (samtidige "
            "jobber legges sammen, samme jobb rapportert to ganger teller én gang), tom hvis en "
            "av dem mangler timer.",
            "Sum over competitive jobs of weeks in the window times hours per week (concurrent "
            "jobs add up, the same job reported twice counts once), missing if any of them "
            "lacks hours.",
        ),
        "earnings": (
            "Bruttolønn i kroner i vinduet: summen over ordinære jobber av uker i vinduet "
            "ganger ukelønn (timelønn ganger timer per uke, månedslønn ganger 12/52, årslønn / "
            "52), tom hvis en av dem mangler lønn eller, ved timelønn, timer.",
            "Gross earnings in NOK in the window: sum over competitive jobs of weeks in the "
            "window times weekly pay (hourly pay times hours per week, monthly pay times 12/52, "
            "yearly pay / 52), missing if any of them lacks pay or, when paid by the hour, "
            "hours.",
        ),
        "longest_job_days": (
            "Dager i vinduet for den lengste enkeltstående ordinære jobben.",
            "Days in the window of the longest single competitive job.",
        ),
        "worked_20h_week": (
            "Om minst én ordinær jobb i vinduet hadde 20 timer per uke eller mer (tom hvis "
            "ingen hadde det, men en av dem mangler timer).",
            "Whether any competitive job in the window had 20 or more hours per week (missing "
            "if none had but one of them lacks hours).",
        ),
    }
    return {
        column: {"nb": texts[column][0].format(m=months), "en": texts[column][1].format(m=months)}
        for column in OUTCOME_COLUMNS
    }


OUTCOME_DEFINITIONS = outcome_definitions()


def employment_outcomes(
    project: Project, rows: pd.DataFrame, months: int = OUTCOME_MONTHS
) -> pd.DataFrame:
    """One row per randomised participant (a readable anchor date), in export order, with
    `OUTCOME_COLUMNS` typed as `OUTCOME_DTYPES` (see the module docstring for the rules).

    `rows` is a flat export as REDCap returns it: text, blank as "" (NA is read as blank)."""
    if months < 1:
        raise HektaError(f"the employment outcome window must be at least 1 month, not {months}")
    rows = _text(project, rows)
    record_id = project.study.record_id
    anchors = anchor_dates(project, rows)
    anchors = anchors[~anchors.index.duplicated()]  # a malformed export: the first one
    rand = pd.to_datetime(pd.Series(anchors.to_numpy(), index=anchors.index))
    length = (pd.to_datetime(shift(anchors, Offset(months=months))) - rand).dt.days
    people = pd.DataFrame({"rand": rand, "length": length})

    jobs = rows[(rows[REPEAT] == JOBS) & rows[record_id].isin(people.index)]
    episodes, ignored = _episodes(project, jobs.set_index(record_id), people)
    if any(ignored.values()):
        counts = " ".join(f"{reason}={count}" for reason, count in ignored.items())
        logger.info("employment outcomes: job episodes left out %s", counts)
    in_window = episodes["start"] <= episodes["end"]
    result = _per_record(episodes[episodes["competitive"] & in_window], people.index)

    instrument, field = project.field_map()[GROUP]
    codes = [choice.code for choice in instrument.choices_of(field)]
    allocated = rows[rows[GROUP] != ""].drop_duplicates(record_id).set_index(record_id)[GROUP]
    result.insert(0, "group", pd.Categorical(allocated.reindex(people.index), categories=codes))
    result.insert(0, "record_id", people.index)
    result = result.reset_index(drop=True).astype(OUTCOME_DTYPES)[list(OUTCOME_COLUMNS)]
    result.attrs[IGNORED] = ignored
    return result


def _text(project: Project, rows: pd.DataFrame) -> pd.DataFrame:
    """The columns the outcomes read, as text with blank "" (employer columns may be absent:
    they are identifiers, left out of de-identified exports)."""
    schedule = project.study.schedule
    if schedule is None:
        raise HektaError(f"the study file of {project.name} has no schedule (no anchor date)")
    needed = [project.study.record_id, REPEAT, INSTANCE, schedule.anchor_field, GROUP, *_JOB]
    missing = [c for c in needed if c not in rows.columns]
    if missing:
        raise HektaError(f"employment outcomes: the export has no column {', '.join(missing)}")
    unknown = [n for n in (GROUP, *_JOB) if n not in project.field_map()]
    if unknown:
        raise HektaError(f"employment outcomes: project {project.name} has no field {unknown[0]}")
    optional = [c for c in (EVENT, ORGNR, EMPLOYER) if c in rows.columns]
    text = rows[needed + optional]
    return text.astype(object).where(text.notna(), "").astype(str)


def _episodes(
    project: Project, jobs: pd.DataFrame, people: pd.DataFrame
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Job episodes (indexed by record) as days counted from their record's randomisation date,
    clipped to the window's days 0 to length - 1 (start > end: outside it), with competitive,
    hours and weekly pay; and the numbers of episodes left out, by reason."""
    stored_start = pd.to_datetime(jobs[START], format="%Y-%m-%d", errors="coerce")
    stored_end = pd.to_datetime(jobs[END], format="%Y-%m-%d", errors="coerce")
    ongoing = (jobs[ONGOING] == "1") | (jobs[END] == "")
    unreadable = stored_start.isna() | (~ongoing & stored_end.isna())
    backwards = ~unreadable & ~ongoing & (stored_end < stored_start)
    readable = ~(unreadable | backwards).to_numpy()
    duplicate = np.zeros(len(jobs), dtype=bool)
    duplicate[readable] = _duplicates(project, jobs[readable])
    kept = readable & ~duplicate
    ignored = {
        "unreadable_date": int(unreadable.sum()),
        "end_before_start": int(backwards.sum()),
        "duplicate": int(duplicate.sum()),
    }
    jobs, stored_start, stored_end, ongoing = (
        s[kept] for s in (jobs, stored_start, stored_end, ongoing)
    )

    by_month, by_year = _codes(project, PRECISION, BY_MONTH, BY_YEAR)
    month_start = stored_start.dt.to_period("M").dt.to_timestamp()
    year_start = stored_start.dt.to_period("Y").dt.to_timestamp()
    start = stored_start.mask(
        jobs[PRECISION] == by_month, month_start + pd.Timedelta(days=MID_MONTH_DAY - 1)
    ).mask(jobs[PRECISION] == by_year, year_start + pd.DateOffset(months=MID_YEAR_MONTHS))

    rand = people["rand"].reindex(jobs.index).to_numpy()
    last = people["length"].reindex(jobs.index).to_numpy() - 1
    ended = ~ongoing.to_numpy()
    end_day = np.where(ended, (stored_end - rand).dt.days.fillna(0), last).astype(int)
    start_day = (start - rand).dt.days.to_numpy()
    start_day = np.where(ended, np.minimum(start_day, end_day), start_day)  # imputation

    hours = pd.to_numeric(jobs[HOURS], errors="coerce").to_numpy(dtype=float)
    pay = pd.to_numeric(jobs[PAY], errors="coerce").to_numpy(dtype=float)
    unit = jobs[PAY_UNIT].to_numpy()
    per_hour, per_month, per_year = _codes(project, PAY_UNIT, PER_HOUR, PER_MONTH, PER_YEAR)
    weekly_pay = np.select(
        [unit == per_hour, unit == per_month, unit == per_year],
        [pay * hours, pay * 12 / WEEKS_PER_YEAR, pay / WEEKS_PER_YEAR],
        np.nan,
    )
    measures = _codes(project, MEASURE, *NOT_COMPETITIVE)
    competitive = (jobs[COMPETITIVE] == "1") & ~jobs[MEASURE].isin(measures)
    episodes = pd.DataFrame(
        {
            "start": np.maximum(start_day, 0),
            "end": np.minimum(end_day, last),
            "competitive": competitive.to_numpy(),
            "hours": hours,
            "weekly_pay": weekly_pay,
        },
        index=jobs.index.rename("record"),
    )
    return episodes, ignored


def _duplicates(project: Project, jobs: pd.DataFrame) -> np.ndarray:
    """Which episodes are an earlier report of a job reported again: same record, stored start
    date and employer; the latest event (study file order), then instance, is the one kept."""
    rank = {event.unique_name: n for n, event in enumerate(project.study.events)}
    events = _optional(jobs, EVENT)
    orgnr = _optional(jobs, ORGNR).str.strip()
    name = _optional(jobs, EMPLOYER).str.casefold().str.split().str.join(" ")
    reports = pd.DataFrame(
        {
            "record": jobs.index.to_numpy(),
            "start": jobs[START].to_numpy(),
            "employer": orgnr.where(orgnr != "", name).to_numpy(),
            "event": events.map(rank).fillna(-1).to_numpy(),
            "instance": pd.to_numeric(jobs[INSTANCE], errors="coerce").fillna(0).to_numpy(),
        }
    )
    in_order = reports.sort_values(["event", "instance"], kind="stable")
    earlier = in_order.duplicated(["record", "start", "employer"], keep="last")
    return earlier.sort_index().to_numpy()


def _optional(jobs: pd.DataFrame, column: str) -> pd.Series:
    return jobs[column] if column in jobs.columns else pd.Series("", index=jobs.index)


def _codes(project: Project, name: str, *labels: str) -> list[str]:
    """The codes of a field's choices whose English labels start with `labels`, in that order."""
    instrument, field = project.field_map()[name]
    choices = instrument.choices_of(field)
    found = []
    for label in labels:
        codes = [c.code for c in choices if instrument.choice_label(c, "en").startswith(label)]
        if len(codes) != 1:
            raise HektaError(
                f"employment outcomes: {name} in form {instrument.form} needs exactly one "
                f"choice labelled '{label}...' in English, found {len(codes)}"
            )
        found += codes
    return found


def _per_record(episodes: pd.DataFrame, records: pd.Index) -> pd.DataFrame:
    """The outcome columns after group for each of `records`, from its competitive episodes
    that overlap the window."""
    days = episodes["end"] - episodes["start"] + 1
    weeks = days / 7
    per = pd.DataFrame(
        {
            "start": episodes["start"],
            "days": days,
            "hours": weeks * episodes["hours"],
            "earnings": weeks * episodes["weekly_pay"],
            "full": episodes["hours"] >= FULL_HOURS,
            "no_hours": episodes["hours"].isna(),
        }
    )
    by = per.groupby(level="record", sort=False)
    full, unknown = by["full"].any(), by["no_hours"].any()
    found = pd.DataFrame(
        {
            "any_competitive_job": True,
            "days_to_first_job": by["start"].min(),
            "days_worked": _union_days(episodes),
            "total_hours": by["hours"].sum(skipna=False),
            "earnings": by["earnings"].sum(skipna=False),
            "longest_job_days": by["days"].max(),
            "worked_20h_week": full.astype("boolean").mask(~full & unknown),
        }
    )
    found["weeks_worked"] = found["days_worked"] / 7
    result = found.astype({c: OUTCOME_DTYPES[c] for c in found.columns}).reindex(records)
    held = records.isin(found.index)
    for column, value in _WITHOUT_JOB.items():
        result[column] = result[column].where(held, value)
    return result


def _union_days(episodes: pd.DataFrame) -> pd.Series:
    """Days covered by the union of each record's episodes: sorted by start, an episode opens
    a new block where it starts after every earlier one has ended, so blocks do not overlap."""
    ordered = episodes[["start", "end"]].reset_index().sort_values(["record", "start"])
    reach = ordered.groupby("record")["end"].cummax()
    before = reach.groupby(ordered["record"]).shift()
    block = (before.isna() | (ordered["start"] > before)).cumsum()
    spans = ordered.groupby(block).agg(
        record=("record", "first"), start=("start", "first"), end=("end", "max")
    )
    return (spans["end"] - spans["start"] + 1).groupby(spans["record"], sort=False).sum()
