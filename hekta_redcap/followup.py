"""Follow-up windows as data: each participant's target date, window open and window close per
follow-up event, computed from the anchor date (randomization) and the study file's rules.

Months are calendar months, added first and clipped to the end of the target month (31 August
+ 6 months is 28 February, or 29 in a leap year); days are added after. All arithmetic is on
dates, so daylight-saving changes cannot move a window. (The worklist, states and reminders of
the follow-up issue build on this.)

    >>> schedule(load_project("hekta"), pd.Series({"1": dt.date(2026, 8, 31)}))
"""

from __future__ import annotations

import pandas as pd

from hekta_redcap.errors import HektaError
from hekta_redcap.study import Offset, Project

COLUMNS = ("record_id", "event", "anchor_date", "target_date", "window_open", "window_close")


def shift(dates: pd.Series, offset: Offset) -> pd.Series:
    """Dates moved by a span: calendar months first (clipped to the month's end), then days."""
    moved = pd.to_datetime(dates)
    if offset.months:
        moved = moved + pd.DateOffset(months=offset.months)
    if offset.days:
        moved = moved + pd.Timedelta(days=offset.days)
    return moved.dt.date


def schedule(project: Project, anchors: pd.Series) -> pd.DataFrame:
    """One row per record (the index of `anchors`) and follow-up event, with dates (a missing
    anchor gives missing dates: the participant has no schedule yet)."""
    rules = project.study.schedule
    if rules is None:
        raise HektaError(f"the study file of {project.name} has no schedule")
    anchors = pd.Series(anchors, dtype=object)
    known = anchors.dropna()
    parts = []
    for followup in rules.followups:
        target = shift(known, followup.target)
        parts.append(
            pd.DataFrame(
                {
                    "record_id": known.index.astype(str),
                    "event": followup.event,
                    "anchor_date": known.to_numpy(),
                    "target_date": target.to_numpy(),
                    "window_open": shift(target, followup.open).to_numpy(),
                    "window_close": shift(target, followup.close).to_numpy(),
                }
            )
        )
    if not parts:
        return pd.DataFrame(columns=list(COLUMNS))
    return pd.concat(parts, ignore_index=True).sort_values(
        ["record_id", "target_date"], kind="stable", ignore_index=True
    )


def anchor_dates(project: Project, rows: pd.DataFrame) -> pd.Series:
    """Each record's anchor date from a flat export (the anchor field at the anchor event),
    as dates indexed by record id; blank or unreadable anchors are left out."""
    rules = project.study.schedule
    if rules is None:
        raise HektaError(f"the study file of {project.name} has no schedule")
    record_id = project.study.record_id
    at = rows
    if rules.anchor_event and "redcap_event_name" in rows.columns:
        at = rows[rows["redcap_event_name"] == rules.anchor_event]
    values = pd.to_datetime(at[rules.anchor_field], format="%Y-%m-%d", errors="coerce")
    found = pd.Series(values.dt.date.to_numpy(), index=at[record_id].astype(str).to_numpy())
    return found[values.notna().to_numpy()]
