"""Follow-up as data: each participant's windows, state and next step per follow-up event,
computed from the study file, the synced rows and the reminder outbox's history.

Windows. The target date counts from the anchor date (randomisation); the window opens and
closes relative to the target. Months are calendar months, added first and clipped to the end of
the target month (31 August + 6 months is 28 February, or 29 in a leap year); days are added
after. All arithmetic is on dates, so daylight-saving changes cannot move a window.

States, checked in this order (the first that holds wins):

- `completed`: the follow-up's forms are complete (`_complete` = 2 or the survey submitted);
  a register follow-up (`registers:`) once the imported deliveries of those registers cover the
  participant's months up to the target date;
- `stopped`: a stop rule of the reminder policy holds (withdrawn, lost, deceased,
  do-not-contact ...);
- `not_due`: before the window opens;
- `missed`: after the window closed;
- `overdue`: past the target date, window still open;
- `reminded`: at least one reminder went out (or may have);
- `window_open`: otherwise.

The next step of the reminder policy is due at the window's opening plus the step's `after`,
and never sooner after the previous step was actually sent than the planned gap between the
two (the catch-up rule: after downtime the steps shift, they never go out in a burst). A step
that would fall after the window closes is not taken.

A participant with neither a valid mobile number nor e-mail address gets no messages, but the
follow-up keeps its state by time and completion: its next action is to add the contact details
before the window opens, and to call via the clinic while it is open (`contact_missing`).

    >>> work = worklist(project, rows, history, as_of=dt.date(2026, 11, 22))
    >>> work[work["state"] == "overdue"][["record_id", "event", "next_action"]]
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from dateutil.relativedelta import relativedelta

from hekta_redcap import LANGUAGES
from hekta_redcap.core.clock import shown_date
from hekta_redcap.core.errors import HektaError
from hekta_redcap.core.texts import catalog, in_language
from hekta_redcap.definitions.study import (
    Followup,
    Offset,
    Project,
    ReminderPolicy,
    ReminderStep,
    Schedule,
)
from hekta_redcap.followup.channels import (
    ChannelName,
    InvalidContact,
    normalise_email,
    normalise_phone,
)
from hekta_redcap.redcap import logic
from hekta_redcap.redcap.logic_frame import evaluate_frame, truth
from hekta_redcap.redcap.names import DAG, EVENT, REPEAT_INSTRUMENT

if TYPE_CHECKING:  # only for annotations: the registers' module loads DuckDB
    from hekta_redcap.registers.outcomes import Coverage

COLUMNS = ("record_id", "event", "anchor_date", "target_date", "window_open", "window_close")
# The worklist: the CSV contract first, then what the HTML, digest and reminders also use.
WORKLIST = (
    *COLUMNS,
    "state",
    "reminders_sent",
    "next_action",
    "next_step",
    "next_due",
    "channel",
    "stop_reason",
    "last_reminder",
    "maybe_sent",
    "contact_missing",
    "dag",
)
STATES = ("not_due", "window_open", "reminded", "completed", "overdue", "missed", "stopped")
# Outbox statuses: a row in one of these means the step was taken (sent, perhaps sent, or being
# sent); `failed` rows (the provider certainly refused) are tried again up to MAX_ATTEMPTS.
TAKEN = ("intent", "sent", "maybe_sent")
MAX_ATTEMPTS = 3
HISTORY = ("record_id", "event", "step", "channel", "status", "attempts", "at")
# The words of the next actions are in texts.yaml beside this module (`actions.<id>`).
_TEXTS = catalog("hekta_redcap.followup", "texts.yaml")
_ACTIONS = {lang: in_language(_TEXTS, lang, "actions") for lang in LANGUAGES}


def add(day: dt.date, span: Offset) -> dt.date:
    """A date moved by a span: calendar months first (clipped to the month's last day), then
    days, as relativedelta does."""
    return day + relativedelta(months=span.months, days=span.days)


def shift(dates: pd.Series, offset: Offset) -> pd.Series:
    """`add` over a Series of dates, vectorised: pandas' DateOffset is relativedelta's rule
    (months first, clipped, then days) applied to whole arrays."""
    moved = pd.to_datetime(dates) + pd.DateOffset(months=offset.months, days=offset.days)
    return moved.dt.date


class Planned(Protocol):
    """A row of `schedule` as `itertuples` gives it: a record's follow-up and its dates."""

    record_id: str
    event: str
    anchor_date: dt.date
    target_date: dt.date
    window_open: dt.date
    window_close: dt.date


def schedule(project: Project, anchors: pd.Series) -> pd.DataFrame:
    """One row per record (the index of `anchors`) and follow-up event, with dates (a missing
    anchor gives missing dates: the participant has no schedule yet)."""
    rules = _rules(project)
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
    rules = _rules(project)
    record_id = project.study.record_id
    at = rows
    if rules.anchor_event and EVENT in rows.columns:
        at = rows[rows[EVENT] == rules.anchor_event]
    values = pd.to_datetime(at[rules.anchor_field], format="%Y-%m-%d", errors="coerce")
    found = pd.Series(values.dt.date.to_numpy(), index=at[record_id].astype(str).to_numpy())
    return found[values.notna().to_numpy()]


def _rules(project: Project) -> Schedule:
    rules = project.study.schedule
    if rules is None:
        raise HektaError(f"the study file of {project.name} has no schedule")
    return rules


def policy_of(project: Project) -> ReminderPolicy:
    policy = project.study.reminders
    if policy is None:
        raise HektaError(f"the study file of {project.name} has no reminder policy")
    return policy


# -- what the synced rows say -----------------------------------------------------------------


def frame_of(
    rows: list[dict[str, str]] | pd.DataFrame, project: Project, *, narrow: bool = False
) -> pd.DataFrame:
    """A flat export as text with "" for blanks. `narrow` keeps only the columns the follow-up
    reads (places, anchor, contact details, stop rules, form status, survey timestamps): much
    faster on a wide export."""
    frame = pd.DataFrame(rows)
    record_id = project.study.record_id
    if narrow:
        wanted = {record_id, EVENT, REPEAT_INSTRUMENT, DAG, _rules(project).anchor_field}
        if project.study.reminders is not None:
            wanted.update(contact_fields(project.study.reminders))
        frame = frame[
            [c for c in frame.columns if c in wanted or c.endswith(("_complete", "_timestamp"))]
        ]
    frame = frame.fillna("").astype(str)
    if record_id not in frame.columns:
        frame[record_id] = pd.Series(dtype=str)
    return frame


def latest_values(project: Project, rows: pd.DataFrame, fields: list[str]) -> pd.DataFrame:
    """Per record, each field's last filled value over its non-repeating rows in event order
    (contact details and end-of-study answers may be updated at any visit)."""
    record_id = project.study.record_id
    plain = rows
    if REPEAT_INSTRUMENT in rows.columns:
        plain = rows[rows[REPEAT_INSTRUMENT] == ""]
    order = {e.unique_name: n for n, e in enumerate(project.study.events)}
    if EVENT in plain.columns:
        plain = plain.assign(_order=plain[EVENT].map(order).fillna(-1))
        plain = plain.sort_values([record_id, "_order"], kind="stable")
    present = [f for f in fields if f in plain.columns]
    values = plain[[record_id, *present]].replace("", np.nan)
    latest = values.groupby(record_id, sort=False).last().fillna("").astype(str)
    for missing in set(fields) - set(present):
        latest[missing] = ""
    return latest


def completed(
    project: Project,
    rows: pd.DataFrame,
    followup: Followup,
    coverage: Coverage | None = None,
) -> pd.Index:
    """The records whose follow-up forms are all complete at the follow-up's event (status
    complete, or the survey submitted). A follow-up naming `registers` needs a linked record
    whose months up to its target date those registers' deliveries cover (`coverage`, as
    `registers.outcomes.coverage` reads it; none given: none), and only the forms it lists."""
    if followup.registers:
        covered = covered_records(project, rows, followup, coverage)
        if not followup.complete:
            return covered
        return covered.intersection(_forms_complete(project, rows, followup), sort=False)
    return _forms_complete(project, rows, followup)


def covered_records(
    project: Project,
    rows: pd.DataFrame,
    followup: Followup,
    coverage: Coverage | None,
) -> pd.Index:
    """The linked records whose months from the anchor up to the follow-up's target date (the
    last is the day before it: months 1..18 end the day before randomisation + 18 months) lie
    inside a period that each register the follow-up names covers."""
    if coverage is None:
        return pd.Index([], dtype=object)
    anchors = anchor_dates(project, rows)
    anchors = anchors[~anchors.index.duplicated()]
    first = pd.to_datetime(anchors)
    last = pd.to_datetime(shift(anchors, followup.target)) - pd.Timedelta(days=1)
    reached = anchors.index.isin(coverage.linked)
    for source in followup.registers:
        inside = np.zeros(len(anchors), dtype=bool)
        for start, end in coverage.covered.get(source, ()):
            inside |= ((first >= pd.Timestamp(start)) & (last <= pd.Timestamp(end))).to_numpy()
        reached &= inside
    return pd.Index(anchors.index[reached].astype(str))


def _forms_complete(project: Project, rows: pd.DataFrame, followup: Followup) -> pd.Index:
    record_id = project.study.record_id
    forms = followup.complete or [
        u.form for u in project.study.instruments if u.survey and followup.event in u.events
    ]
    at = rows[rows[EVENT] == followup.event] if EVENT in rows.columns else rows
    if REPEAT_INSTRUMENT in at.columns:
        at = at[at[REPEAT_INSTRUMENT] == ""]
    if not forms:
        return pd.Index([])
    status = at.reindex(columns=[f"{f}_complete" for f in forms], fill_value="")
    stamps = at.reindex(columns=[f"{f}_timestamp" for f in forms], fill_value="")
    # a submitted survey's timestamp is a date and time; otherwise blank or "[not completed]"
    submitted = _SUBMITTED(stamps.to_numpy(dtype=object)).astype(bool)
    done = ((status.to_numpy(dtype=object) == "2") | submitted).all(axis=1)
    return pd.Index(at.loc[done, record_id].astype(str).unique())


_SUBMITTED = np.frompyfunc(lambda stamp: stamp[:1].isdigit(), 1, 1)


@dataclass(frozen=True)
class Contact:
    """How a participant is reached: `channel` is "sms", "email", or "" (a nurse calls)."""

    channel: ChannelName | Literal[""]
    to: str


def contact_of(policy: ReminderPolicy, values: Mapping[str, str]) -> Contact | None:
    """The participant's channel and normalised address from their latest values: the
    preferred channel when its address is valid, else the other one; None when neither is
    valid. A participant who prefers a call gets no messages (Contact with channel "")."""
    fields = policy.contact
    valid: dict[str, str] = {}
    for channel, field, normalise in (
        ("sms", fields.mobile, normalise_phone),
        ("email", fields.email, normalise_email),
    ):
        text = str(values.get(field, "")) if field else ""
        if text.strip():
            with contextlib.suppress(InvalidContact):  # an invalid address is no address
                valid[channel] = normalise(text)
    if not valid:
        return None
    order: list[ChannelName] = ["sms", "email"]
    if fields.preferred is not None:
        chosen = str(values.get(fields.preferred.field, ""))
        if chosen == fields.preferred.email:
            order = ["email", "sms"]
        elif chosen and chosen != fields.preferred.sms:
            return Contact("", "")
    channel = next(c for c in order if c in valid)
    return Contact(channel, valid[channel])


def stop_reasons(policy: ReminderPolicy, latest: pd.DataFrame) -> pd.Series:
    """Per record the first stop rule that holds on its latest values, or ""."""
    reasons = pd.Series("", index=latest.index, dtype=object)
    for rule in reversed(policy.stop):  # the first rule listed wins
        hold = truth(evaluate_frame(logic.parse(rule.when), latest))
        reasons[hold.to_numpy()] = rule.reason
    return reasons


# -- the worklist -----------------------------------------------------------------------------


def empty_history() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in HISTORY})


def worklist(
    project: Project,
    rows: list[dict[str, str]] | pd.DataFrame,
    history: pd.DataFrame | None,
    as_of: dt.date,
    language: str = "nb",
    coverage: Coverage | None = None,
) -> pd.DataFrame:
    """Every randomised participant's follow-ups with state and next action on `as_of` (a
    local date). `history` is the outbox (columns HISTORY, `at` the aware time of the send);
    `coverage` what register follow-ups complete by (none given: none complete)."""
    policy = policy_of(project)
    frame = frame_of(rows, project, narrow=True)
    record_id = project.study.record_id
    plan = schedule(project, anchor_dates(project, frame)) if len(frame) else None
    if plan is None or plan.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in WORKLIST})
    fields = contact_fields(policy)
    latest = latest_values(project, frame, fields)
    reasons = stop_reasons(policy, latest).to_dict()
    dags = _dags(frame, record_id)
    rules = {f.event: f for f in _rules(project).followups}
    done = {event: set(completed(project, frame, f, coverage)) for event, f in rules.items()}
    taken = _taken(history if history is not None else empty_history(), policy)
    values = latest.to_dict("index")
    contacts = {r: contact_of(policy, v) for r, v in values.items()}  # once per participant
    out = []
    for item in plan.itertuples(index=False):
        record, event = item.record_id, item.event
        followup = rules[event]
        contact, reason = None, ""
        if followup.contact:  # stop rules and contact details matter only to contacting
            contact = contacts.get(record)
            reason = reasons.get(record, "")
        row = _assess(
            policy,
            followup,
            item,
            as_of,
            completed=record in done[event],
            reason=reason,
            contact=contact,
            history=taken.get((record, event), []),
            language=language,
        )
        row["dag"] = dags.get(record, "")
        out.append(row)
    return pd.DataFrame(out, columns=list(WORKLIST))


def contact_fields(policy: ReminderPolicy) -> list[str]:
    """The fields the contact details and stop rules read."""
    contact = policy.contact
    names = [contact.mobile, contact.email, contact.preferred.field if contact.preferred else None]
    for rule in policy.stop:
        names += [r.field for r in logic.references(logic.parse(rule.when))]
    return sorted({n for n in names if n})


def _dags(frame: pd.DataFrame, record_id: str) -> dict[str, str]:
    if DAG not in frame.columns:
        return {}
    named = frame[frame[DAG] != ""]
    return dict(zip(named[record_id], named[DAG], strict=True))


@dataclass(frozen=True)
class Taken:
    """An outbox row as the worklist reads it."""

    step: str
    channel: str
    status: str
    attempts: int
    at: dt.datetime | None


def _taken(history: pd.DataFrame, policy: ReminderPolicy) -> dict[tuple[str, str], list[Taken]]:
    """The outbox rows per record and event, with times in the policy's zone (a step's day is
    a local day)."""
    steps, zone = {s.name for s in policy.steps}, ZoneInfo(policy.timezone)
    grouped: dict[tuple[str, str], list[Taken]] = {}
    for row in history.itertuples(index=False):
        if row.step not in steps:
            continue
        at = None
        if row.at is not None and not pd.isna(row.at) and row.at != "":
            at = pd.Timestamp(row.at).to_pydatetime().astimezone(zone)
        grouped.setdefault((str(row.record_id), row.event), []).append(
            Taken(row.step, row.channel, row.status, int(row.attempts or 0), at)
        )
    return grouped


@dataclass(frozen=True)
class NextStep:
    step: ReminderStep
    due: dt.date


def next_step(
    policy: ReminderPolicy,
    opens: dt.date,
    closes: dt.date,
    contact: Contact | None,
    history: list[Taken],
) -> NextStep | None:
    """The first step of the policy not yet taken, and the local date it is due (see the
    module docstring: after its planned day, and the planned gap after the previous step
    actually sent); None when every step is taken or the next would fall after the window.
    Once a message has been refused `MAX_ATTEMPTS` times no further participant step is taken
    (the address does not work): the nurse's steps follow."""
    by_step = {t.step: t for t in history}
    to_participant = {s.name for s in policy.steps if s.to == "participant"}
    refused = any(
        t.step in to_participant and t.status == "failed" and t.attempts >= MAX_ATTEMPTS
        for t in history
    )
    reachable = contact is not None and bool(contact.channel) and not refused
    previous: tuple[ReminderStep, dt.date] | None = None
    for step in policy.steps:
        if step.to == "participant" and not reachable:
            continue  # nobody to message (or the provider keeps refusing): the nurse's steps
        row = by_step.get(step.name)
        planned = add(opens, step.after)
        if row is not None and (row.status in TAKEN or row.attempts >= MAX_ATTEMPTS):
            previous = (step, row.at.date() if row.at else planned)
            continue
        due = planned
        if previous is not None:
            gap = planned - add(opens, previous[0].after)
            due = max(due, previous[1] + gap)
        return NextStep(step, due) if due <= closes else None
    return None


def _assess(
    policy: ReminderPolicy,
    followup: Followup,
    item: Planned,
    as_of: dt.date,
    *,
    completed: bool,
    reason: str,
    contact: Contact | None,
    history: list[Taken],
    language: str,
) -> dict[str, object]:
    opens, closes, target = item.window_open, item.window_close, item.target_date
    to_participant = {s.name for s in policy.steps if s.to == "participant"}
    sent = [t for t in history if t.step in to_participant and t.status in TAKEN]
    maybe = [t for t in history if t.status in ("maybe_sent", "intent")]
    refused = [t for t in history if t.status == "failed" and t.attempts >= MAX_ATTEMPTS]
    missing = followup.contact and contact is None
    if completed:
        state = "completed"
    elif reason:
        state = "stopped"
    elif as_of < opens:
        state = "not_due"
    elif as_of > closes:
        state = "missed"
    elif as_of > target:
        state = "overdue"
    elif sent:
        state = "reminded"
    else:
        state = "window_open"
    upcoming = None
    if followup.contact and state in ("not_due", "window_open", "reminded", "overdue"):
        upcoming = next_step(policy, opens, closes, contact, history)
    phrases = _ACTIONS[language]
    if maybe:
        action = phrases["check"]
    elif refused and state not in ("completed", "stopped", "missed"):
        action = phrases["refused"]
    elif state == "stopped":
        action = phrases["stopped"].format(reason=reason)
    elif state in ("completed", "missed"):
        action = ""
    elif missing:
        action = phrases["add"] if state == "not_due" else phrases["clinic"]
    elif not followup.contact and state == "not_due":
        action = ""
    elif followup.registers and not followup.complete:  # nothing to enter: deliveries come
        action = phrases["registers"].format(sources=", ".join(followup.registers))
    elif not followup.contact:
        action = phrases["enter"]
    elif upcoming is not None:
        label = _label(upcoming.step, language)
        when = shown_date(upcoming.due, language)
        if upcoming.step.to == "nurse":
            action = phrases["task"].format(step=label, date=when)
        else:
            assert contact is not None  # a participant step is chosen only when reachable
            action = phrases["by"].format(step=label, channel=phrases[contact.channel], date=when)
    elif any(t.step not in to_participant for t in history) or state == "overdue":
        action = phrases["call"]
    else:
        action = phrases["waiting"]
    last = max((t.at for t in sent if t.at is not None), default=None)
    return {
        "record_id": item.record_id,
        "event": item.event,
        "anchor_date": item.anchor_date,
        "target_date": target,
        "window_open": opens,
        "window_close": closes,
        "state": state,
        "reminders_sent": len(sent),
        "next_action": action,
        "next_step": upcoming.step.name if upcoming else "",
        "next_due": upcoming.due if upcoming else None,
        "channel": contact.channel if contact else "",
        "stop_reason": reason if state == "stopped" else "",
        "last_reminder": last,
        "maybe_sent": len(maybe),
        "contact_missing": missing,
    }


def _label(step: ReminderStep, language: str) -> str:
    if step.label is not None:
        return getattr(step.label, language) or step.name
    return step.name


def state_labels(project: Project, language: str) -> dict[str, tuple[str, str]]:
    """state -> (code, label in `language`) from the tracking form's status choices, matched
    by English label (the form is the one list of the states' labels)."""
    tracking = _rules(project).tracking
    if tracking is None:
        return {s: (s, s.replace("_", " ")) for s in STATES}
    found = project.field_map().get(tracking.status)
    if found is None:
        raise HektaError(f"the tracking status field {tracking.status} does not exist")
    instrument, field = found
    by_english = {
        instrument.choice_label(c, "en").split(" (")[0].lower().replace(" ", "_"): c
        for c in instrument.choices_of(field)
    }
    missing = [s for s in STATES if s not in by_english]
    if missing:
        raise HektaError(f"{tracking.status} has no choice for state(s) {', '.join(missing)}")
    return {
        s: (by_english[s].code, instrument.choice_label(by_english[s], language)) for s in STATES
    }
