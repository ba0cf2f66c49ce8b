"""Retention and completeness by arm, and the assessments made outside their window.

- Retention per follow-up and arm is the flow report's (`Flow.retention`): assessed of those due.
- Completeness per instrument: at the randomization event, of the randomised; at each follow-up,
  of those the flow report counts as due there (every state but "not yet due"), the share whose
  form is complete, by the rule the flow report and the worklist use (`followup.completed`:
  status complete, or the survey submitted).
- Outside the window: of the follow-ups the worklist (`followup.worklist`) calls completed, those
  whose assessment date (`export.assessment_date`, at that event) is before the window opens or
  after it closes, or missing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

from hekta_redcap.analysis.consort import GROUP, TOTAL, Flow
from hekta_redcap.analysis.export.frames import assessment_date
from hekta_redcap.definitions.study import Followup, Offset, Project
from hekta_redcap.followup.schedule import completed, worklist
from hekta_redcap.randomization.design import design_of
from hekta_redcap.redcap.names import EVENT, REPEAT_INSTRUMENT
from hekta_redcap.report.blinding import Arms

WINDOW = ("completed", "before", "after", "undated")


@dataclass(frozen=True)
class Retention:
    """`retention`: the flow's (event, months, column, due, assessed, share), column an arm
    code or TOTAL; `completeness`: (event, form, column, due, complete, share);
    `windows`: (event, column, *WINDOW); `work`: the worklist they were judged from."""

    retention: pd.DataFrame
    completeness: pd.DataFrame
    windows: pd.DataFrame
    work: pd.DataFrame


def retention(
    project: Project,
    rows: pd.DataFrame,
    report: Flow,
    history: pd.DataFrame,
    as_of: dt.date,
    arms: Arms,
) -> Retention:
    work = worklist(project, rows, history, as_of)
    return Retention(
        retention=report.retention[report.retention["column"].isin([*arms.codes, TOTAL])],
        completeness=_completeness(project, rows, report, arms),
        windows=_windows(project, rows, work, report, arms),
        work=work,
    )


def measured_events(project: Project, report: Flow) -> list[str]:
    """The randomization event, then the follow-ups where participants are assessed."""
    event = design_of(project).event
    return [*([event] if event else []), *report.followups]


def forms_at(project: Project, event: str) -> list[str]:
    """The forms people fill in at `event`: not repeating, not the follow-up tracking form
    (the reminder pass writes it)."""
    rules = project.study.schedule
    tracking = rules.tracking.form if rules and rules.tracking else None
    return [
        u.form
        for u in project.study.instruments
        if event in u.events and not u.repeating and u.form != tracking
    ]


def _completeness(project: Project, rows: pd.DataFrame, report: Flow, arms: Arms) -> pd.DataFrame:
    states = report.states
    out = []
    for event in measured_events(project, report):
        due = states.index if event not in states else states.index[states[event] != "not_yet_due"]
        plain = rows[rows[REPEAT_INSTRUMENT] == ""] if REPEAT_INSTRUMENT in rows else rows
        for form in forms_at(project, event):
            one = Followup(event=event, target=Offset(), complete=[form])
            done = due.intersection(completed(project, plain, one))
            for column in [*arms.codes, TOTAL]:
                mine = due if column == TOTAL else due[states.loc[due, GROUP] == column]
                complete = len(done.intersection(mine))
                share = complete / len(mine) if len(mine) else float("nan")
                out.append((event, form, column, len(mine), complete, share))
    return pd.DataFrame(out, columns=["event", "form", "column", "due", "complete", "share"])


def _windows(
    project: Project, rows: pd.DataFrame, work: pd.DataFrame, report: Flow, arms: Arms
) -> pd.DataFrame:
    field = assessment_date(project)
    record_id = project.study.record_id
    dated = rows.reindex(columns=[record_id, EVENT, field], fill_value="")
    if REPEAT_INSTRUMENT in rows:
        dated = dated[rows[REPEAT_INSTRUMENT] == ""]
    day = pd.to_datetime(dated[field], format="%Y-%m-%d", errors="coerce").dt.date
    when = dict(zip(zip(dated[record_id], dated[EVENT], strict=True), day, strict=True))
    done = work[(work["state"] == "completed") & work["event"].isin(report.followups)]
    group = report.states[GROUP] if GROUP in report.states else pd.Series(dtype=object)
    out = []
    for event in report.followups:
        mine = done[done["event"] == event]
        assessed = [when.get((r.record_id, event)) for r in mine.itertuples()]
        kind = [
            "undated"
            if pd.isna(d) or d is None
            else "before"
            if d < r.window_open
            else "after"
            if d > r.window_close
            else ""
            for d, r in zip(assessed, mine.itertuples(), strict=True)
        ]
        frame = pd.DataFrame({"column": group.reindex(mine["record_id"]).to_numpy(), "kind": kind})
        for column in [*arms.codes, TOTAL]:
            part = frame if column == TOTAL else frame[frame["column"] == column]
            counts = part["kind"].value_counts()
            out.append((event, column, len(part), *(int(counts.get(k, 0)) for k in WINDOW[1:])))
    return pd.DataFrame(out, columns=["event", "column", *WINDOW])
