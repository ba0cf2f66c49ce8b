"""The daily digest: one e-mail a day to each nurse (or data access group) with the follow-ups
that need them, holding record ids only (e-mail is not a secure channel).

Recipients are settings, not definitions: `HEKTA_DIGEST_TO` (comma-separated addresses) gets the
whole worklist; `HEKTA_DIGEST_TO_<GROUP>` the records of one data access group (its unique
name in capitals, e.g. `HEKTA_DIGEST_TO_OSLO`). Each goes out once a day, after the policy's
`digest.at`, through the outbox like any reminder (key `project/digest:<group>/<day>/digest/email`).

    >>> sent = send_digests(settings, project, Outbox(store, "hekta"), work, now, channels)
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from hekta_redcap.core.errors import ConfigError
from hekta_redcap.core.settings import Settings
from hekta_redcap.definitions.study import Project
from hekta_redcap.followup.channels import Channels, InvalidContact, Message, normalise_email
from hekta_redcap.followup.messages import render
from hekta_redcap.followup.outbox import Key, Outbox, deliver
from hekta_redcap.followup.schedule import policy_of
from hekta_redcap.followup.sendtime import SendCalendar
from hekta_redcap.followup.worklist import counts, items, needing_action
from hekta_redcap.validation.problems import ERROR
from hekta_redcap.validation.report import overview

SETTING = "HEKTA_DIGEST_TO"
EVERYONE = "*"  # the group of the recipients of every record


def recipients(settings: Settings) -> dict[str, list[str]]:
    """group -> addresses from the settings (EVERYONE for `HEKTA_DIGEST_TO`)."""
    found: dict[str, list[str]] = {}
    for name in sorted(settings.values):
        if name == SETTING or name.startswith(f"{SETTING}_"):
            group = EVERYONE if name == SETTING else name[len(SETTING) + 1 :].lower()
            text = settings.get(name) or ""
            try:
                found[group] = [normalise_email(a) for a in text.split(",") if a.strip()]
            except InvalidContact as exc:  # an address we cannot use is a settings mistake
                raise ConfigError(f"{name}: {exc}") from None
    return {g: a for g, a in found.items() if a}


def send_digests(
    settings: Settings,
    project: Project,
    box: Outbox | None,
    work: pd.DataFrame,
    now: dt.datetime,
    channels: Channels,
    notes: list[str] | None = None,
    problems: list[dict[str, Any]] | None = None,
) -> int:
    """Send today's digests not yet sent, once the digest time has come, with `notes` (what
    stops the reminders as a whole, `worklist.notices`) on top and the open data `problems`
    (`Store.open_problems`) of the recipient's records after the follow-ups; with `box` None
    (a dry run) they are written without being recorded. Returns the number sent."""
    policy = policy_of(project)
    if policy.digest is None:
        return 0
    calendar = SendCalendar.from_policy(policy)
    local = calendar.local(now)
    if local.time() < policy.digest.at:
        return 0
    day = local.date()
    notes = notes or []
    found = pd.DataFrame(problems or [], columns=["record", "dag", "field", "rule", "severity"])
    urgent = needing_action(work, day)
    sent = 0
    for group, addresses in recipients(settings).items():
        mine = urgent if group == EVERYONE else urgent[urgent["dag"] == group]
        data = found if group == EVERYONE else found[found["dag"] == group]
        key = Key(project.name, f"digest:{group}", day.isoformat(), "digest", "email")
        if box is not None and not box.intend(key, day, now):
            continue
        label = ("alle" if policy.language == "nb" else "all") if group == EVERYONE else group
        text = render(
            project.root,
            policy.digest.template,
            "email",
            policy.language,
            recipient=label,
            day=day,
            items=items(project, mine, policy.language),
            counts=counts(project, mine, policy.language),
            notes=notes,
            data=data_problems(data),
        )
        message = Message("email", ", ".join(addresses), text.body, text.subject, str(key))
        status, answer = deliver(channels.get("email"), message)
        if box is not None:
            box.answer(key, status, answer, now)
        sent += status == "sent"
    return sent


def data_problems(problems: pd.DataFrame) -> dict[str, Any]:
    """The open data problems as the digest shows them: the report's overview, and the records
    with errors (ids and counts only: e-mail is not a secure channel, and a field's name can
    say what a participant answered about)."""
    view = overview(problems, pd.DataFrame())
    errors = problems[problems["severity"] == ERROR]
    view["error_records_list"] = list(errors.groupby("record", sort=False).size().items())
    return view
