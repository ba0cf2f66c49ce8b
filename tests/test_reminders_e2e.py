"""Reminder passes end to end: the trial project on the local REDCap-compatible server, a
synced store, a real SMTP server (aiosmtpd) and an HTTP server standing in for the SMS gateway,
all on 127.0.0.1, with the clock pinned. Nothing leaves the machine.

Each test provisions its own trial project and loads a small hand-made cohort whose follow-up
windows open on known days, so what is due is known without asking the engine:

    >>> trial = make_trial([opening_on("1", dt.date(2026, 9, 1), "email")], **providers)
    >>> trial.remind(at(2026, 9, 1, 10))        # one pass, the write-back, the digests
    ['hekta: 1 sent, 0 nurse task(s), ...', 'hekta: ... tracking value(s) written ...', ...]
"""

from __future__ import annotations

import datetime as dt
import email
import email.message
import email.policy
import hashlib
import json
import logging
import re
import socket
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import holidays
import pytest
from aiosmtpd.controller import Controller
from click.testing import CliRunner
from conftest import LIBRARY, edit, serving
from werkzeug.wrappers import Request, Response

from hekta_redcap import gateway as redcap_gateway
from hekta_redcap.cli import cli
from hekta_redcap.core.settings import Settings
from hekta_redcap.data import sync
from hekta_redcap.data.store import Store
from hekta_redcap.definitions.study import Project, load_project
from hekta_redcap.devtools.provision import provision
from hekta_redcap.devtools.sandbox.server import SandboxServer
from hekta_redcap.followup.messages import check_text
from hekta_redcap.followup.outbox import Outbox
from hekta_redcap.followup.reminders import remind
from hekta_redcap.followup.schedule import MAX_ATTEMPTS

OSLO = ZoneInfo("Europe/Oslo")
EVENT = "redcap_event_name"
M6, M12 = "followup_6m_arm_1", "followup_12m_arm_1"
SMS_TOKEN = "gw-tok-5f0c1e9a77d24b"
NURSE = "sykepleier@example.org"
# The follow-up surveys at 6 months: all submitted means the follow-up is complete.
SURVEYS = (
    "audit dudit substance_days hscl10 phq9 gad7 life_satisfaction swls whoqol_bref eq5d5l".split()
)
LINK = re.compile(r"https?://\S+")
# The bokmål invitations (instruments/templates/nb/invite.*.j2, no phone number set) for a
# 6-month window opening on 1 September 2026: target 29 September, reply by 24 November.
INVITE_SUBJECT = "Nytt spørreskjema i forskningsprosjektet"
INVITE_EMAIL = (
    "Hei!\n\n"
    "Det er tid for et nytt spørreskjema i forskningsprosjektet du er med i. Vi setter stor pris "
    "på svarene dine.\n\n"
    "Svar her: {link}\n\n"
    "Svarfrist: 24.11.2026\n\n"
    "Vennlig hilsen\nprosjektgruppen"
)
INVITE_SMS = (
    "Hei! Det er tid for et nytt spørreskjema i forskningsprosjektet du er med i.\n"
    "Svar her: {link}\n"
    "Svarfrist: 24.11.2026\n"
    "Vennlig hilsen prosjektgruppen"
)


def at(year: int, month: int, day: int, hour: int = 10, minute: int = 0) -> dt.datetime:
    """A pinned moment, Oslo wall-clock time."""
    return dt.datetime(year, month, day, hour, minute, tzinfo=OSLO)


def months_after(day: dt.date, months: int) -> dt.date:
    """Calendar months later (the cohort's days are <= 28, so no month-end clipping)."""
    month = day.month - 1 + months
    return day.replace(year=day.year + month // 12, month=month % 12 + 1)


@dataclass(frozen=True)
class Person:
    """A randomised participant with a mobile number and an e-mail address, and a preference."""

    record: str
    rand: dt.date
    prefers: str = "sms"  # "sms" or "email"

    @property
    def mobile(self) -> str:
        return f"9{int(self.record):07d}"  # a fake Norwegian mobile number

    @property
    def e164(self) -> str:
        return f"+47{self.mobile}"

    @property
    def email(self) -> str:
        return f"deltaker{self.record}@example.org"

    def window(self, months: int) -> tuple[dt.date, dt.date]:
        """The follow-up window (hekta.yaml: target - 28 days to target + 56 days)."""
        target = months_after(self.rand, months)
        return target - dt.timedelta(days=28), target + dt.timedelta(days=56)

    def row(self) -> dict[str, str]:
        return {
            "record_id": self.record,
            EVENT: "baseline_arm_1",
            "rand_date": self.rand.isoformat(),
            "contact_mobile": self.mobile,
            "contact_email": self.email,
            "contact_channel": "2" if self.prefers == "email" else "1",
            "do_not_contact": "0",
        }


def opening_on(record: str, day: dt.date, prefers: str = "sms") -> Person:
    """A participant whose 6-month window opens on `day` (a day of the month <= 28)."""
    target = day + dt.timedelta(days=28)
    return Person(record, months_after(target, -6), prefers)


def reference(key: str) -> str:
    """The reference a message with this key carries: the first 16 hex digits of the key's
    SHA-256 (worked out here, not taken from the channels)."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


# -- stand-ins for the providers ---------------------------------------------------------------


@dataclass
class Gateway:
    """A WSGI app standing in for the SMS gateway: keeps each JSON body and its Authorization
    header, and answers with `status`."""

    status: int = 202
    bodies: list[dict[str, str]] = field(default_factory=list)
    auth: list[str] = field(default_factory=list)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        self.bodies.append(json.loads(request.get_data()))
        self.auth.append(request.headers.get("Authorization", ""))
        reply = '{"id": "gw-1"}' if self.status < 300 else '{"error": "no"}'
        return Response(reply, self.status, content_type="application/json")(
            environ, start_response
        )

    def to(self, phone: str) -> list[dict[str, str]]:
        return [b for b in self.bodies if b["to"] == phone]


@dataclass
class Inbox:
    """An aiosmtpd handler that keeps every message it accepts."""

    mails: list[tuple[list[str], email.message.EmailMessage]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.mails.append((list(envelope.rcpt_tos), parsed))  # type: ignore[arg-type]
        return "250 2.0.0 Ok: queued"

    def to(self, address: str) -> list[email.message.EmailMessage]:
        return [m for rcpt, m in self.mails if address in rcpt]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def gateway() -> Iterator[tuple[Gateway, str]]:
    app = Gateway()
    with serving(app) as url:
        yield app, f"{url}/v1/sms"


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, controller.port
    controller.stop()


@pytest.fixture
def providers(gateway: tuple[Gateway, str], inbox: tuple[Inbox, int]) -> dict[str, str]:
    """The settings of both providers and of the nurses' digest."""
    return {
        "HEKTA_SMS_URL": gateway[1],
        "HEKTA_SMS_TOKEN": SMS_TOKEN,
        "HEKTA_SMS_TIMEOUT": "5",
        "HEKTA_SMTP_HOST": "127.0.0.1",
        "HEKTA_SMTP_PORT": str(inbox[1]),
        "HEKTA_SMTP_SECURITY": "none",
        "HEKTA_SMTP_FROM": "Prosjektgruppen <prosjekt@example.org>",
        "HEKTA_SMTP_TIMEOUT": "5",
        "HEKTA_DIGEST_TO": NURSE,
    }


# -- the trial ---------------------------------------------------------------------------------


@dataclass
class Trial:
    """A provisioned trial project with a synced store, and the settings a pass runs with."""

    project: Project
    settings: Settings
    api: redcap_gateway.Gateway

    def remind(self, moment: dt.datetime) -> list[str]:
        """What `hekta-redcap remind` runs: a pass, the write-back, the digests."""
        with Store.open(self.settings) as store:
            return remind(self.settings, self.project, store, self.api, now=moment)

    def outbox(self) -> dict[str, tuple[str, int]]:
        """key -> (status, attempts)."""
        with Store.open(self.settings) as store:
            found = store.conn.execute("SELECT key, status, attempts FROM outbox").fetchall()
        return {key: (status, attempts) for key, status, attempts in found}

    def key(self, person: Person, step: str, channel: str, event: str = M6) -> str:
        return f"hekta/{person.record}/{event}/{step}/{channel}"

    def tracking(self, record: str, event: str = M6) -> dict[str, str]:
        [row] = self.api.export_records(
            records=[record], events=[event], forms=["followup_tracking"], format_type="json"
        )
        return row


@pytest.fixture
def make_trial(sandbox: SandboxServer, tmp_path: Path) -> Callable[..., Trial]:
    """`make_trial(people, library=LIBRARY, **settings)`: a new trial project holding the
    people, synced into a new store."""

    def make(people: list[Person], library: Path = LIBRARY, **values: str) -> Trial:
        env = tmp_path / "env"
        project = load_project("hekta", library)
        provision(sandbox, [project], env)
        store = tmp_path / "store.sqlite3"
        settings = Settings.load((env,), {"HEKTA_STORE": str(store), **values})
        api = redcap_gateway.Gateway.open(settings, "hekta")
        api.import_records([p.row() for p in people])
        assert sync.run(settings, "hekta").summary()
        return Trial(project, settings, api)

    return make


# -- e-mail ------------------------------------------------------------------------------------


def test_email_reminders_and_the_digest_reach_a_real_smtp_server(
    make_trial: Callable[..., Trial],
    providers: dict[str, str],
    inbox: tuple[Inbox, int],
    gateway: tuple[Gateway, str],
    sandbox: SandboxServer,
) -> None:
    day = dt.date(2026, 9, 1)  # a Tuesday
    people = [opening_on(str(n), day, "email" if n % 2 else "sms") for n in range(1, 7)]
    trial = make_trial(people, **providers)
    mailbox, app = inbox[0], gateway[0]

    lines = trial.remind(at(2026, 9, 1, 10))
    assert lines[0].startswith("hekta: 6 sent, 0 nurse task(s), 0 failed"), lines
    assert "1 digest e-mail(s) sent" in lines[-1], lines

    by_mail = [p for p in people if p.prefers == "email"]
    participants = [(rcpt, m) for rcpt, m in mailbox.mails if NURSE not in rcpt]
    assert sorted(r for rcpt, _ in participants for r in rcpt) == sorted(p.email for p in by_mail)
    assert sorted(b["to"] for b in app.bodies) == sorted(
        p.e164 for p in people if p.prefers == "sms"
    )
    base = sandbox.url.removesuffix("api/")
    for person in by_mail:
        [mail] = mailbox.to(person.email)
        assert mail["To"] == person.email
        body = mail.get_content().replace("\r\n", "\n").strip()
        [link] = LINK.findall(body)
        assert re.fullmatch(re.escape(base) + r"surveys/\?s=[A-Z0-9]{10}", link), link
        assert link == trial.api.client.export_survey_link(
            record=person.record, instrument="audit", event=M6
        )
        assert (mail["Subject"], body) == (INVITE_SUBJECT, INVITE_EMAIL.format(link=link))
        assert "spørreskjema" in body and "Svarfrist" in body  # bokmål
        assert check_text(body, "nb") == [] and check_text(mail["Subject"], "nb") == []
        key = trial.key(person, "invite", "email")
        assert mail["Message-ID"] == f"<{reference(key)}@example.org>"
    ids = Counter(m["Message-ID"] for _, m in participants)
    assert set(ids.values()) == {1}

    [digest] = mailbox.to(NURSE)
    text = digest.get_content()
    assert digest["Subject"].startswith("Oppfølging 01.09.2026")
    assert check_text(text, "nb") == []
    for person in people:  # record ids only: no addresses or numbers
        assert person.email not in text and person.mobile not in text

    again = trial.remind(at(2026, 9, 1, 15))
    assert again[0].startswith("hekta: 0 sent"), again
    assert len(mailbox.to(NURSE)) == 1 and len(mailbox.mails) == 4


# -- SMS ---------------------------------------------------------------------------------------


def test_sms_bodies_at_the_gateway(
    make_trial: Callable[..., Trial], providers: dict[str, str], gateway: tuple[Gateway, str]
) -> None:
    day = dt.date(2026, 9, 1)
    people = [opening_on(str(n), day) for n in range(11, 15)]
    trial = make_trial(people, **providers)
    app = gateway[0]

    trial.remind(at(2026, 9, 1, 9))
    assert sorted(b["to"] for b in app.bodies) == sorted(p.e164 for p in people)
    assert set(app.auth) == {f"Bearer {SMS_TOKEN}"}
    for person in people:
        [body] = app.to(person.e164)
        assert re.fullmatch(r"\+47[49]\d{7}", body["to"])
        assert body["reference"] == reference(trial.key(person, "invite", "sms"))
        [link] = LINK.findall(body["text"])
        assert link == trial.api.client.export_survey_link(
            record=person.record, instrument="audit", event=M6
        )
        assert body["text"] == INVITE_SMS.format(link=link)
        assert check_text(body["text"], "nb") == []
    assert Counter(b["reference"] for b in app.bodies).most_common(1)[0][1] == 1


def test_gateway_500_is_maybe_sent_listed_and_never_resent(
    make_trial: Callable[..., Trial], providers: dict[str, str], gateway: tuple[Gateway, str]
) -> None:
    people = [opening_on(str(n), dt.date(2026, 9, 1)) for n in (21, 22)]
    trial = make_trial(people, **providers)
    app = gateway[0]
    app.status = 500

    lines = trial.remind(at(2026, 9, 1))
    assert "0 sent" in lines[0] and "2 maybe sent" in lines[0], lines
    keys = [trial.key(p, "invite", "sms") for p in people]
    assert {trial.outbox()[k] for k in keys} == {("maybe_sent", 1)}
    shown = CliRunner().invoke(
        cli, ["outbox", "--project", "hekta"], env=dict(trial.settings.values)
    )
    assert shown.exit_code == 0, shown.output
    assert all(k in shown.output for k in keys) and "2 message(s) need a person" in shown.output

    app.status = 202
    for moment in (at(2026, 9, 2), at(2026, 9, 9), at(2026, 9, 16)):  # reminder days included
        trial.remind(moment)
    assert len(app.bodies) == 2  # the two answered 500; nothing since, not even a nurse task
    assert {k: v for k, v in trial.outbox().items() if "/digest" not in k} == dict.fromkeys(
        keys, ("maybe_sent", 1)
    )


def test_gateway_400_fails_and_is_retried_up_to_max_attempts(
    make_trial: Callable[..., Trial], providers: dict[str, str], gateway: tuple[Gateway, str]
) -> None:
    [person] = people = [opening_on("31", dt.date(2026, 9, 1))]
    trial = make_trial(people, **providers)
    app = gateway[0]
    app.status = 400
    key = trial.key(person, "invite", "sms")

    for attempt, day in enumerate((1, 2, 3, 4, 5), start=1):
        lines = trial.remind(at(2026, 9, day))
        tried = min(attempt, MAX_ATTEMPTS)
        assert trial.outbox()[key] == ("failed", tried)
        assert len(app.bodies) == tried, lines
    assert {b["reference"] for b in app.bodies} == {reference(key)}
    with Store.open(trial.settings) as store:
        assert [e.key for e in Outbox(store, "hekta").needing_a_person()] == [key]


# -- eligibility, write-back -------------------------------------------------------------------


def test_a_completed_or_withdrawn_participant_is_skipped_without_a_sync(
    make_trial: Callable[..., Trial],
    providers: dict[str, str],
    gateway: tuple[Gateway, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    people = [opening_on(str(n), dt.date(2026, 9, 1)) for n in (41, 42, 43)]
    done, withdrawn, due = people
    trial = make_trial(people, **providers)
    trial.api.import_records(
        [
            {"record_id": done.record, EVENT: M6, **{f"{s}_complete": "2" for s in SURVEYS}},
            {"record_id": withdrawn.record, EVENT: "baseline_arm_1", "eos_status": "2"},
        ]
    )  # in REDCap only: the store still has them due

    with caplog.at_level(logging.INFO, logger="hekta_redcap.followup.reminders"):
        lines = trial.remind(at(2026, 9, 1))
    assert lines[0].startswith("hekta: 1 sent") and "2 skipped" in lines[0], lines
    assert [b["to"] for b in gateway[0].bodies] == [due.e164]
    assert [k for k in trial.outbox() if "/digest" not in k] == [trial.key(due, "invite", "sms")]
    skipped = [r.getMessage() for r in caplog.records if "event=reminder.skipped" in r.getMessage()]
    assert any(f"record={done.record} " in m and 'reason="now completed"' in m for m in skipped)
    assert any(f"record={withdrawn.record} " in m and "withdrawn" in m for m in skipped)


def test_tracking_is_written_back_and_only_changes(
    make_trial: Callable[..., Trial], providers: dict[str, str]
) -> None:
    person = opening_on("51", dt.date(2026, 9, 1))
    later = opening_on("52", dt.date(2026, 10, 1))
    trial = make_trial([person, later], **providers)
    trial.remind(at(2026, 9, 1, 11, 30))

    opens, closes = person.window(6)
    row = trial.tracking(person.record)
    assert (row["fu_status"], row["fu_reminder_count"]) == ("3", "1")
    assert row["fu_last_reminder"] == "2026-09-01 11:30"
    assert (row["fu_window_open"], row["fu_window_close"]) == (
        opens.isoformat(),
        closes.isoformat(),
    )
    assert row["fu_due_date"] == months_after(person.rand, 6).isoformat()
    assert "08.09.2026" in row["fu_next_action"]  # the reminder, a week on
    assert trial.tracking(later.record)["fu_status"] == "1"  # not due

    calls: list[int] = []
    original = trial.api.import_records

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(len(args[0]))
        return original(*args, **kwargs)

    trial.api.import_records = counted  # type: ignore[method-assign]
    lines = trial.remind(at(2026, 9, 1, 16))
    assert lines[1] == "hekta: 0 tracking value(s) written for 0 record(s)", lines
    assert calls == []


# -- weeks of passes: daily cap, catch-up, send days and hours ---------------------------------

WIDE_CLOSE = 250  # days after the 6-month target: the 6- and 12-month windows overlap
OUTAGE = (dt.date(2026, 4, 8), dt.date(2026, 4, 13))  # no passes: the daemon was down
OUTSIDE = (dt.time(8, 59), dt.time(20, 0), dt.time(23, 30), dt.time(0, 15))


def passes(first: dt.date, last: dt.date) -> list[dt.datetime]:
    """A pass a day (at a time that wanders through the send hours) except in the outage,
    a second one at the end of the hours every fifth day, and one outside them every fourth."""
    moments = []
    day = first
    while day <= last:
        n = (day - first).days
        if not OUTAGE[0] <= day <= OUTAGE[1]:
            moments.append(at(day.year, day.month, day.day, 9 + n % 11, 7 * n % 60))
            if n % 5 == 0:
                moments.append(at(day.year, day.month, day.day, 19, 59))
            if n % 4 == 2:
                outside = OUTSIDE[n // 4 % len(OUTSIDE)]
                moments.append(at(day.year, day.month, day.day, outside.hour, outside.minute))
        day += dt.timedelta(days=1)
    return moments


@pytest.mark.slow
def test_weeks_of_passes_hold_the_cap_the_calendar_and_the_catch_up_rule(
    make_trial: Callable[..., Trial],
    providers: dict[str, str],
    gateway: tuple[Gateway, str],
    inbox: tuple[Inbox, int],
    library: Path,
) -> None:
    """A month over the spring DST change and Easter, with a week's outage. The 6-month
    window is widened (close +250 days) so two participants have two follow-ups open at once
    and the daily cap has something to hold."""
    edit(library, "studies/hekta.yaml", "close: {days: 56}", f"close: {{days: {WIDE_CLOSE}}}")
    people = [
        opening_on("61", dt.date(2026, 3, 23)),  # a Monday
        opening_on("62", dt.date(2026, 3, 28), "email"),  # a Saturday
        opening_on("63", dt.date(2026, 3, 29)),  # Sunday, the DST change
        opening_on("64", dt.date(2026, 4, 2), "email"),  # Maundy Thursday, then Good Friday
        opening_on("65", dt.date(2026, 4, 6)),  # Easter Monday
        opening_on("66", dt.date(2026, 4, 9)),  # in the outage
        Person("67", dt.date(2025, 4, 17)),  # 12 months open since 20 March, 6 still open
        Person("68", dt.date(2025, 4, 15), "email"),
    ]
    trial = make_trial(people, library, **{**providers, "HEKTA_DIGEST_TO": ""})
    app, mailbox = gateway[0], inbox[0]
    steps = ("invite", "reminder")
    known = {
        reference(trial.key(p, s, p.prefers, e)): (p, e, s)
        for p in people
        for e in (M6, M12)
        for s in steps
    }
    calendar = holidays.country_holidays("NO", years=2026)
    got: list[tuple[Person, str, str, dt.datetime]] = []
    capped = 0
    moments = passes(dt.date(2026, 3, 23), dt.date(2026, 4, 21))
    for moment in moments:
        sms, mails = len(app.bodies), len(mailbox.mails)
        lines = trial.remind(moment)
        new = [b["reference"] for b in app.bodies[sms:]]
        new += [m["Message-ID"].strip("<>").split("@")[0] for _, m in mailbox.mails[mails:]]
        got += [(*known[r], moment) for r in new]
        inside = dt.time(9) <= moment.time() < dt.time(20)
        if not inside or moment.weekday() == 6 or moment.date() in calendar:
            assert new == [], (moment, lines)
        if not inside:
            assert "no reminders now" in lines[0], lines
        held = re.search(r"(\d+) held by the daily cap", lines[0])
        capped += int(held.group(1)) if held else 0

    assert capped > 0  # the cap had something to hold
    per_day = Counter((p.record, moment.date()) for p, _, _, moment in got)
    assert max(per_day.values()) == 1  # daily_cap: 1
    assert len(got) == len({(p.record, e, s) for p, e, s, _ in got})  # each message once
    sent = {(p.record, e, s): moment for p, e, s, moment in got}
    for person, event, _, moment in got:
        months = 6 if event == M6 else 12
        opens = person.window(months)[0]
        closes = months_after(person.rand, months) + dt.timedelta(
            days=WIDE_CLOSE if event == M6 else 56
        )
        assert opens <= moment.date() <= closes, (person, event, moment)
    for (record, event, step), moment in sent.items():
        if step == "reminder":
            assert (moment.date() - sent[record, event, "invite"].date()).days >= 7
    expected_invites = {(p.record, M6) for p in people} | {("67", M12), ("68", M12)}
    assert {(r, e) for r, e, s in sent if s == "invite"} == expected_invites
    assert len([s for *_, s in sent if s == "reminder"]) == len(expected_invites)
    firsts = {r: m.date() for (r, e, s), m in sent.items() if s == "invite" and e == M6}
    assert firsts["63"] == dt.date(2026, 3, 30)  # not on the Sunday it opened
    assert firsts["64"] == dt.date(2026, 4, 4)  # after Maundy Thursday and Good Friday
    assert firsts["65"] == dt.date(2026, 4, 7)  # after Easter Monday
    assert firsts["66"] == dt.date(2026, 4, 14)  # the first pass after the outage
