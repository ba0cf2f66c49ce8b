"""The follow-up status write-back: the one place (beside deploy) that writes to REDCap.

After each reminder pass the worklist's due date, window, state, reminder count, last reminder
and next action go into the tracking form (the study file's `schedule.tracking`) at each
follow-up event, so nurses see them where they work. Only values that differ from what REDCap
holds right now are written: the current values are read from REDCap first (not from the
store, which may be a sync behind), so a second write-back with nothing new writes nothing.

    >>> written = write_back(api, project, work)     # work = followup.worklist(...)
    >>> written.values, written.records
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

from hekta_redcap.definitions.study import Project
from hekta_redcap.followup.schedule import state_labels
from hekta_redcap.gateway import Gateway
from hekta_redcap.redcap.names import EVENT, REPEAT_INSTRUMENT

BATCH = 500  # rows per import call


@dataclass(frozen=True)
class Written:
    records: int = 0
    values: int = 0

    def summary(self) -> str:
        return f"{self.values} tracking value(s) written for {self.records} record(s)"


def desired(project: Project, work: pd.DataFrame, zone: dt.tzinfo) -> pd.DataFrame:
    """The tracking values the worklist calls for, as REDCap's API stores them (dates
    YYYY-MM-DD, datetimes YYYY-MM-DD HH:MM in `zone`, the status as its choice code), one row
    per record and follow-up event collected on the tracking form."""
    rules = project.study.schedule
    tracking = rules.tracking if rules else None
    if tracking is None or work.empty:
        return pd.DataFrame()
    codes = {state: code for state, (code, _) in state_labels(project, "en").items()}
    events = set(project.events_of(tracking.form))
    rows = work[work["event"].isin(events)]
    return pd.DataFrame(
        {
            project.study.record_id: rows["record_id"].astype(str),
            EVENT: rows["event"],
            tracking.due_date: rows["target_date"].map(_day),
            tracking.window_open: rows["window_open"].map(_day),
            tracking.window_close: rows["window_close"].map(_day),
            tracking.status: rows["state"].map(codes),
            tracking.reminders: rows["reminders_sent"].astype(int).astype(str),
            tracking.last_reminder: rows["last_reminder"].map(
                lambda t: t.astimezone(zone).strftime("%Y-%m-%d %H:%M") if _known(t) else ""
            ),
            tracking.next_action: rows["next_action"].fillna(""),
        }
    ).reset_index(drop=True)


def write_back(api: Gateway, project: Project, wanted: pd.DataFrame) -> Written:
    """Write the values of `wanted` (from `desired`) that differ from REDCap's."""
    if wanted.empty:
        return Written()
    record_id = project.study.record_id
    keys = [record_id, EVENT]
    fields = [c for c in wanted.columns if c not in keys]
    current = pd.DataFrame(
        api.export_records(
            format_type="json",
            fields=[record_id, *fields],
            events=sorted(set(wanted[EVENT])),
        ),
        dtype=str,
    )
    if REPEAT_INSTRUMENT in current.columns:
        current = current[current[REPEAT_INSTRUMENT].fillna("") == ""]
    merged = wanted.merge(
        current.reindex(columns=keys + fields, fill_value="").fillna(""),
        on=keys,
        how="left",
        suffixes=("", "_now"),
    ).fillna("")
    changes: dict[tuple[str, ...], list[dict[str, str]]] = {}
    records, values = set(), 0
    for row in merged.to_dict("records"):
        changed = tuple(f for f in fields if row[f] != row[f"{f}_now"])
        if changed:
            changes.setdefault(changed, []).append({k: row[k] for k in (*keys, *changed)})
            records.add(row[record_id])
            values += len(changed)
    for rows in changes.values():  # one column set per call: each import sends only changes
        for start in range(0, len(rows), BATCH):
            api.import_records(rows[start : start + BATCH], overwrite="overwrite")
    return Written(len(records), values)


def _known(value: object) -> bool:
    return value is not None and not pd.isna(value)


def _day(value: dt.date | None) -> str:
    return "" if value is None or pd.isna(value) else value.isoformat()
