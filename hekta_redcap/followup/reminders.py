"""One reminder pass: send every reminder that is due now, at most once each.

A pass (the daemon runs one on its schedule; `hekta-redcap remind` runs one by hand) takes the
worklist from the store, keeps the steps that are due (see followup.py for the catch-up rule),
and for each, in order of due date:

1. re-reads the record from REDCap and re-computes its follow-up: completed, withdrawn or
   changed since the last sync? Then the step is skipped, with the reason logged;
2. holds the per-participant daily cap and the send calendar (hours, quiet days, holidays);
3. fetches the survey link from REDCap and renders the message (a failure here sends and
   records nothing: the step stays due and the log says why), writes the intent to the outbox
   and commits it, sends, and records the provider's answer (outbox.py says what happens when
   the process dies between the two).

The caller holds the project's daemon lock (one pass at a time), so intents found at the start
are from a process that died, and become "maybe sent".

    >>> result = run_pass(settings, project, store, api, store.raw_rows("hekta"), now=now())
    >>> result.summary()
    'hekta: 12 sent, 3 nurse task(s), 0 failed, 0 maybe sent, 2 skipped, 1 held by the cap'
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from hekta_redcap.core.clock import shown_time
from hekta_redcap.core.errors import ConfigError, HektaError
from hekta_redcap.core.logline import line
from hekta_redcap.core.settings import Settings
from hekta_redcap.data.store import Store
from hekta_redcap.definitions.study import Project
from hekta_redcap.followup.channels import Channel, Channels, Message
from hekta_redcap.followup.digest import send_digests
from hekta_redcap.followup.messages import render
from hekta_redcap.followup.outbox import TASK, Key, Outbox, deliver
from hekta_redcap.followup.schedule import (
    EVENT,
    contact_fields,
    contact_of,
    frame_of,
    latest_values,
    policy_of,
    worklist,
)
from hekta_redcap.followup.sendtime import SendCalendar
from hekta_redcap.followup.tracking import desired, write_back
from hekta_redcap.followup.worklist import notices
from hekta_redcap.gateway import EXPORT, Gateway
from hekta_redcap.registers.outcomes import coverage

logger = logging.getLogger("hekta_redcap.followup.reminders")

ACTIVE = ("window_open", "reminded", "overdue")  # the states a step may be taken in
SURVEYS_OFF = "surveys are disabled in the REDCap project (enable them in Project Setup)"


def log(event: str, **fields: object) -> None:
    """A structured log line (logline.py): record ids, steps and reasons, never addresses."""
    logger.info(line(f"reminder.{event}", **fields))


@dataclass
class PassResult:
    project: str
    sent: int = 0
    tasks: int = 0
    failed: int = 0
    maybe_sent: int = 0
    skipped: int = 0
    capped: int = 0
    unprepared: int = 0  # could not be prepared (no link, no template ...): due again next pass
    why_unprepared: dict[str, int] = field(default_factory=dict)  # reason -> messages
    held: int = 0  # participant messages held while the project's surveys are off
    orphaned: int = 0
    quiet: str = ""  # why nothing may be sent now, if so
    dry_run: bool = False

    def not_prepared(self, exc: HektaError) -> str:
        """Count a message that could not be prepared (it stays due); its reason in one line."""
        reason = str(exc).splitlines()[0][:200]
        self.unprepared += 1
        self.why_unprepared[reason] = self.why_unprepared.get(reason, 0) + 1
        return reason

    def summary(self) -> str:
        if self.quiet:
            return f"{self.project}: no reminders now ({self.quiet})"
        verb = "would send" if self.dry_run else "sent"
        parts = [
            f"{self.sent} {verb}",
            f"{self.tasks} nurse task(s)",
            f"{self.failed} failed",
            f"{self.maybe_sent} maybe sent",
            f"{self.skipped} skipped",
            f"{self.capped} held by the daily cap",
        ]
        if self.held:
            parts.append(f"{self.held} held: {SURVEYS_OFF}")
        if self.unprepared:
            reasons = "; ".join(f"{n}x {why}" for why, n in self.why_unprepared.items())
            parts.append(f"{self.unprepared} could not be prepared, due again ({reasons})")
        if self.orphaned:
            parts.append(f"{self.orphaned} interrupted earlier, now listed as maybe sent")
        return f"{self.project}: " + ", ".join(parts)


def run_pass(
    settings: Settings,
    project: Project,
    store: Store,
    api: Gateway,
    rows: list[dict[str, Any]],
    *,
    now: dt.datetime,
    channels: Channels | None = None,
    dry_run: Path | None = None,
) -> PassResult:
    """One pass at the moment `now` (aware) over the synced `rows` (`store.raw_rows`). With
    `dry_run` (a directory) nothing is recorded and every message goes to a file outbox there
    instead."""
    policy = policy_of(project)
    calendar = SendCalendar.from_policy(policy)
    box = Outbox(store, project.name)
    result = PassResult(project.name, dry_run=dry_run is not None)
    if dry_run is None:
        result.orphaned = box.orphans_to_maybe_sent()
    if channels is None:
        channels = Channels.file(dry_run) if dry_run else Channels.from_settings(settings)
    if not calendar.allowed(now):
        result.quiet = f"outside sending times until {shown_time(calendar.next_allowed(now))}"
        return result
    today = calendar.day(now)
    history = box.history()
    work = worklist(project, rows, history, today, policy.language)
    due = work[
        work["state"].isin(ACTIVE)
        & (work["maybe_sent"] == 0)
        & work["next_due"].map(lambda d: d is not None and d <= today)
    ].sort_values(["next_due", "record_id"], kind="stable")
    day_start = dt.datetime.combine(today, dt.time(), tzinfo=calendar.zone)
    day_end = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), tzinfo=calendar.zone)
    counted: dict[str, int] = {}  # messages per record today, this pass's included
    surveys_off: bool | None = None
    for item in due.itertuples(index=False):
        record, event = str(item.record_id), item.event
        step = next(s for s in policy.steps if s.name == item.next_step)
        participant = step.to == "participant"
        if participant:
            if record not in counted:
                counted[record] = box.sent_on(record, day_start, day_end)  # a read: dry too
            if counted[record] >= policy.daily_cap:
                result.capped += 1
                log("held", record=record, followup=event, step=step.name, reason="daily cap")
                continue
        try:  # REDCap's answers now; a call that keeps failing leaves the step due
            if participant and surveys_off is None:  # asked once a pass, when a message is due
                surveys_off = not int(api.export_project_info().get("surveys_enabled") or 0)
                if surveys_off:
                    log("held", reason="surveys disabled in the REDCap project")
            if participant and surveys_off:
                result.held += 1
                continue
            exported = api.export_records(records=[record], **EXPORT)
        except HektaError as exc:
            reason = result.not_prepared(exc)
            log("unprepared", record=record, followup=event, step=step.name, reason=reason)
            continue
        fresh = frame_of(exported, project, narrow=True)
        mine = history[history["record_id"] == record]
        again = worklist(project, fresh, mine, today, policy.language)
        again = again[again["event"] == event]
        reason = _changed(again, item)
        if reason:
            result.skipped += 1
            log("skipped", record=record, followup=event, step=step.name, reason=reason)
            continue
        channel = again.iloc[0]["channel"] if participant else TASK
        key = Key(project.name, record, event, step.name, channel)
        if participant:  # all that can fail before anything goes out, before the intent
            try:
                sender, message = _prepare(api, channels, project, settings, fresh, item, key)
            except ConfigError:
                raise  # no channel configured: the whole pass cannot send
            except HektaError as exc:
                reason = result.not_prepared(exc)
                log("unprepared", record=record, followup=event, step=step.name, reason=reason)
                continue
        if dry_run is None and not box.intend(key, item.next_due, now):
            result.skipped += 1
            log("skipped", record=record, followup=event, step=step.name, reason="already taken")
            continue
        if not participant:
            if dry_run is None:
                box.answer(key, "sent", "task on the worklist", now)
            result.tasks += 1
            log("task", record=record, followup=event, step=step.name)
            continue
        status, answer = deliver(sender, message)
        counted[record] += 1
        if dry_run is None:
            box.answer(key, status, answer, now)
        if status == "sent":
            result.sent += 1
        elif status == "failed":
            result.failed += 1
        else:
            result.maybe_sent += 1
        log(status, record=record, followup=event, step=step.name, channel=channel)
    return result


class _Due(Protocol):
    """A worklist row (as `itertuples` gives it) whose next step is due."""

    next_step: str
    channel: str
    window_close: dt.date


def _changed(again: pd.DataFrame, planned: _Due) -> str:
    """Why the freshly read record no longer calls for the planned step ("" if it does)."""
    if again.empty:
        return "no longer randomised"
    now = again.iloc[0]
    if now["state"] not in ACTIVE:
        return f"now {now['stop_reason'] or now['state']}"
    if now["next_step"] != planned.next_step or now["channel"] != planned.channel:
        return "contact details or steps changed"
    return ""


def _prepare(
    api: Gateway,
    channels: Channels,
    project: Project,
    settings: Settings,
    fresh: pd.DataFrame,
    item: _Due,
    key: Key,
) -> tuple[Channel, Message]:
    """The channel and the rendered message, addressed from the freshly read record, with the
    survey link REDCap gives now (checked by the gateway: an error page or a cut link is a
    failed call, never a message). Raises HektaError; nothing is sent."""
    policy = policy_of(project)
    step = next(s for s in policy.steps if s.name == key.step)
    latest = latest_values(project, fresh, contact_fields(policy))
    contact = contact_of(policy, latest.iloc[0])
    if contact is None or contact.channel != key.channel:
        raise HektaError("the contact details changed while preparing the message")
    assert contact.channel  # a participant step is chosen only for a reachable participant
    form = _survey_form(project, fresh, key.event)
    link = api.survey_link(key.record, form, key.event)
    text = render(
        project.root,
        step.template or step.name,
        key.channel,
        policy.language,
        link=link,
        window_close=item.window_close,
        phone=settings.study_phone,
    )
    sender = channels.get(contact.channel)
    return sender, Message(contact.channel, contact.to, text.body, text.subject, str(key))


def _survey_form(project: Project, fresh: pd.DataFrame, event: str) -> str:
    """The survey the link opens: the event's first survey not yet submitted (REDCap's
    auto-continue leads on to the next)."""
    surveys = [u.form for u in project.study.instruments if u.survey and event in u.events]
    if not surveys:
        raise HektaError(f"no survey is collected at {event}: nothing to link to")
    at = fresh[fresh[EVENT] == event] if EVENT in fresh.columns else fresh.iloc[0:0]
    for form in surveys:
        status = at.get(f"{form}_complete", pd.Series(dtype=str))
        if not (status == "2").any():
            return form
    return surveys[0]


def remind(
    settings: Settings,
    project: Project,
    store: Store,
    api: Gateway,
    *,
    now: dt.datetime,
    dry_run: Path | None = None,
) -> list[str]:
    """What `hekta-redcap remind` and the daemon run: a pass, then (unless dry) the write-back
    of every follow-up's state to REDCap, then the daily digests. One summary line each."""
    channels = Channels.file(dry_run) if dry_run is not None else Channels.from_settings(settings)
    rows = store.raw_rows(project.name)  # read once: the pass and the write-back share it
    result = run_pass(
        settings, project, store, api, rows, now=now, channels=channels, dry_run=dry_run
    )
    lines = [result.summary()]
    policy = policy_of(project)
    calendar = SendCalendar.from_policy(policy)
    box = Outbox(store, project.name)
    day, covered = calendar.day(now), coverage(settings, project)  # register follow-ups
    work = worklist(project, rows, box.history(), day, policy.language, covered)
    if dry_run is None:
        try:
            written = write_back(api, project, desired(project, work, calendar.zone))
            lines.append(f"{project.name}: {written.summary()}")
        except HektaError as exc:  # the next pass writes what this one could not
            log("writeback.failed", reason=str(exc).splitlines()[0][:200])
            lines.append(f"{project.name}: tracking write-back failed, again next pass: {exc}")
    notes = notices(project, store.project_info(project.name), policy.language)
    problems = store.open_problems(project.name)
    digests = send_digests(
        settings, project, None if dry_run else box, work, now, channels, notes, problems
    )
    if digests:
        lines.append(f"{project.name}: {digests} digest e-mail(s) sent")
    waiting = box.needing_a_person()
    if waiting:
        lines.append(
            f"{project.name}: {len(waiting)} message(s) need a person to check "
            "(hekta-redcap outbox --project " + project.name + ")"
        )
    return lines
