"""What the trial report reads, and the same cut to an as-of date.

Everything comes from this machine: the synced store (rows, the open problems, the reminder
outbox) and the register store's catalog of deliveries, so the report runs without REDCap.
`as_of` cuts it to what was known on that day (docs/report.md, "As of"):

- a record whose entry date (the consent form's first date field, the form holding the
  randomization's consent logic) is after the day is left out; a record without one is kept
  (screening without consent has no date);
- a record randomised after the day is kept, not randomised: its anchor date and group are
  blanked;
- follow-up rows whose assessment date (`export.assessment_date`) is after the day are left
  out, and an end of study dated after it is blanked (the end-of-study form's fields);
- outbox messages after the day, problems first seen after it and deliveries delivered after it
  are left out (a problem resolved since cannot be seen again: the store keeps only open ones).

Follow-ups are then judged on that day by the flow report and the worklist themselves.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from zoneinfo import ZoneInfo

import pandas as pd

from hekta_redcap.analysis.consort import EOS_DATE
from hekta_redcap.analysis.export.frames import assessment_date
from hekta_redcap.core.clock import parse
from hekta_redcap.core.settings import Settings
from hekta_redcap.data.store import Store
from hekta_redcap.definitions.study import Project
from hekta_redcap.followup.outbox import Outbox
from hekta_redcap.followup.schedule import empty_history, frame_of
from hekta_redcap.randomization.design import design_of
from hekta_redcap.redcap import logic
from hekta_redcap.redcap.names import EVENT
from hekta_redcap.registers.store import Delivery, RegisterStore

OSLO = ZoneInfo("Europe/Oslo")


@dataclass(frozen=True)
class Inputs:
    """The report's sources: the flat export as text, the outbox (`followup.HISTORY`), the
    open problems (as `Store.open_problems` gives them), the register deliveries and when the
    store was last synced."""

    rows: pd.DataFrame
    history: pd.DataFrame
    problems: pd.DataFrame
    deliveries: tuple[Delivery, ...] = ()
    synced: dt.datetime | None = None


def read_inputs(settings: Settings, project: Project) -> Inputs:
    """The sources as the store and the register store hold them now."""
    with Store.open(settings) as store:
        rows = frame_of(store.raw_rows(project.name), project)
        history = Outbox(store, project.name).history()
        problems = pd.DataFrame(store.open_problems(project.name))
        cursor = store.cursor(project.name)
    deliveries: tuple[Delivery, ...] = ()
    if settings.register_dir.is_dir():
        deliveries = tuple(RegisterStore.open(settings, project.root).deliveries())
    return Inputs(rows, history, problems, deliveries, cursor[0] if cursor else None)


def entry_date_field(project: Project) -> str | None:
    """The consent form's first date field: the day a record entered the trial."""
    spec = project.study.randomization
    if spec is None:
        return None
    fields = project.field_map()
    named = [r.field for r in logic.references(logic.parse(spec.consent)) if r.field in fields]
    if not named:
        return None
    form = fields[named[0]][0]
    dates = [f.name for f in form.fields if (f.validation or "").startswith("date")]
    return dates[0] if dates else None


def as_of(project: Project, inputs: Inputs, day: dt.date) -> Inputs:
    """The sources as they stood at the end of `day` (see the module docstring)."""
    rows = inputs.rows.copy()
    record_id = project.study.record_id
    rules = project.study.schedule
    design = design_of(project)
    entry = entry_date_field(project)
    if entry is not None and entry in rows.columns:
        entered = _dates(rows[entry])
        late = set(rows.loc[entered > pd.Timestamp(day), record_id])
        rows = rows[~rows[record_id].isin(late)]
    if rules is not None and rules.anchor_field in rows.columns:
        anchors = _dates(rows[rules.anchor_field])
        later = anchors > pd.Timestamp(day)
        rows.loc[later, [c for c in (rules.anchor_field, design.target) if c in rows]] = ""
        followups = {f.event for f in rules.followups}
        assessed = assessment_date(project)
        if assessed in rows.columns and EVENT in rows.columns:
            after = rows[EVENT].isin(followups) & (_dates(rows[assessed]) > pd.Timestamp(day))
            rows = rows[~after]
    eos = project.field_map().get(EOS_DATE)
    if eos is not None and EOS_DATE in rows.columns:
        ended_later = _dates(rows[EOS_DATE]) > pd.Timestamp(day)
        form = [f.name for f in eos[0].fields if f.name in rows.columns and f.name != record_id]
        rows.loc[ended_later, form] = ""
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), OSLO)
    history = inputs.history
    if len(history):
        moments = pd.to_datetime(history["at"], utc=True)
        history = history[moments.isna() | (moments < pd.Timestamp(end))]
    else:
        history = empty_history()
    problems = inputs.problems
    if len(problems):
        seen = problems["first_seen"].map(lambda v: parse(v) < end if v else True)
        problems = problems[seen.astype(bool)]
    deliveries = tuple(d for d in inputs.deliveries if d.delivered <= day)
    return replace(
        inputs,
        rows=rows.reset_index(drop=True),
        history=history.reset_index(drop=True),
        problems=problems.reset_index(drop=True),
        deliveries=deliveries,
    )


def _dates(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, format="%Y-%m-%d", errors="coerce")
