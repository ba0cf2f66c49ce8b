"""The nurses' worklist and the outbox commands against the local REDCap-compatible server: the
CSV contract, the HTML page, the terminal table, a dry run that records nothing, and the outbox's
at-most-once rules."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from conftest import LIBRARY, synced_trial

from hekta_redcap.cli import cli
from hekta_redcap.core.settings import Settings
from hekta_redcap.data.store import Store
from hekta_redcap.definitions.study import load_project
from hekta_redcap.devtools.sandbox.server import SandboxServer
from hekta_redcap.followup.outbox import Key, Outbox
from hekta_redcap.followup.schedule import STATES

OSLO = ZoneInfo("Europe/Oslo")
CSV_HEADER = [
    "record_id", "event", "anchor_date", "target_date", "window_open", "window_close", "state",
    "reminders_sent", "next_action",
]  # fmt: skip


@pytest.fixture(scope="module")
def synced(sandbox: SandboxServer, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A provisioned trial with 80 synthetic participants, synced into a store."""
    return synced_trial(sandbox, tmp_path_factory.mktemp("worklist"), 80, 11)


def _run(settings: Settings, *args: str) -> str:
    result = CliRunner().invoke(cli, list(args), env=dict(settings.values))
    assert result.exit_code == 0, result.output
    return result.output


def test_the_worklist_csv_keeps_its_contract(synced: Settings, tmp_path: Path) -> None:
    out = _run(
        synced, "followups", "--project", "hekta", "--as-of", "2026-11-23",
        "--csv", str(tmp_path / "w.csv"), "--html", str(tmp_path / "w.html"), "--lang", "en",
    )  # fmt: skip
    with (tmp_path / "w.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[: len(CSV_HEADER)] == CSV_HEADER
    assert {r["state"] for r in rows} <= set(STATES)
    for row in rows:
        for column in ("anchor_date", "target_date", "window_open", "window_close"):
            assert dt.date.fromisoformat(row[column])  # YYYY-MM-DD
        assert row["window_open"] <= row["target_date"] <= row["window_close"]
    assert len({(r["record_id"], r["event"]) for r in rows}) == len(rows)
    page = (tmp_path / "w.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "Needs action" in page
    assert "ID" in out.splitlines()[0] and "Next action" in out.splitlines()[0]


def test_the_terminal_lists_only_what_needs_doing(synced: Settings) -> None:
    urgent = _run(synced, "followups", "--project", "hekta", "--as-of", "2026-11-23")
    everything = _run(synced, "followups", "--project", "hekta", "--as-of", "2026-11-23", "--all")
    assert len(everything.splitlines()) > len(urgent.splitlines())
    assert "Fullført" not in "\n".join(urgent.splitlines()[2:-2])  # completed ones are not listed


def test_a_dry_run_writes_the_file_outbox_and_records_nothing(
    synced: Settings, tmp_path: Path
) -> None:
    dry = tmp_path / "dry"
    with Store.open(synced) as store:
        before = Outbox(store, "hekta").history()
    out = _run(
        synced, "remind", "--project", "hekta", "--dry-run", "--outbox-dir", str(dry),
        "--now", "2026-11-23T10:00:00+01:00",
    )  # fmt: skip
    assert "would send" in out
    written = [json.loads(line) for line in (dry / "outbox.jsonl").read_text().splitlines()]
    assert written and all(m["key"].startswith("hekta/") for m in written)
    assert len({m["key"] for m in written}) == len(written)
    with Store.open(synced) as store:
        assert Outbox(store, "hekta").history().equals(before)


def test_quiet_hours_send_nothing(synced: Settings, tmp_path: Path) -> None:
    out = _run(
        synced, "remind", "--project", "hekta", "--dry-run", "--outbox-dir", str(tmp_path),
        "--now", "2026-11-23T21:30:00+01:00",
    )  # fmt: skip
    assert "no reminders now (outside sending times until 2026-11-24 09:00)" in out
    assert not (tmp_path / "outbox.jsonl").exists()


def test_the_outbox_sends_each_key_at_most_once(tmp_path: Path) -> None:
    moment = dt.datetime(2026, 11, 23, 10, tzinfo=OSLO)
    with Store(tmp_path / "store.sqlite3") as store:
        box = Outbox(store, "hekta")
        key = Key("hekta", "7", "followup_6m_arm_1", "invite", "sms")
        assert box.intend(key, moment.date(), moment)
        assert not box.intend(key, moment.date(), moment)  # being sent: not again
        box.answer(key, "failed", "HTTP 400", moment)
        assert box.intend(key, moment.date(), moment)  # certainly refused: may try again
        # the process dies here, between intent and answer; the next pass finds the intent
        assert Outbox(store, "hekta").orphans_to_maybe_sent() == 1
        assert not box.intend(key, moment.date(), moment)  # maybe sent: never again by itself
        listed = box.needing_a_person()
        assert [(e.key, e.status, e.attempts) for e in listed] == [(str(key), "maybe_sent", 2)]
        assert box.sent_on("7", moment.replace(hour=0), moment.replace(hour=23)) == 1


def test_a_person_resolves_a_maybe_sent_message(synced: Settings, tmp_path: Path) -> None:
    settings = Settings({**synced.values, "HEKTA_STORE": str(tmp_path / "store.sqlite3")})
    moment = dt.datetime(2026, 11, 23, 10, tzinfo=OSLO)
    keys = [Key("hekta", r, "followup_6m_arm_1", "invite", "sms") for r in ("1", "2")]
    with Store.open(settings) as store:
        box = Outbox(store, "hekta")
        for key in keys:
            box.intend(key, None, moment)
            box.answer(key, "maybe_sent", "outcome unknown: ReadTimeout", moment)
    listing = _run(settings, "outbox", "--project", "hekta")
    assert str(keys[0]) in listing and "2 message(s) need a person" in listing
    _run(settings, "outbox", "--project", "hekta", "--resolve", str(keys[0]), "--sent")
    _run(settings, "outbox", "--project", "hekta", "--resolve", str(keys[1]), "--not-sent")
    with Store.open(settings) as store:
        box = Outbox(store, "hekta")
        assert box.needing_a_person() == []
        assert not box.intend(keys[0], None, moment)  # confirmed sent: never again
        assert box.intend(keys[1], None, moment)  # not sent: due again
    wrong = CliRunner().invoke(
        cli, ["outbox", "--project", "hekta", "--resolve", "nope", "--sent"],
        env=dict(settings.values),
    )  # fmt: skip
    assert wrong.exit_code != 0 and "no message needing a check has the key nope" in wrong.output


def test_each_group_gets_its_own_digest_once_a_day(tmp_path: Path) -> None:
    from hekta_redcap.followup.channels import Channels
    from hekta_redcap.followup.digest import send_digests
    from hekta_redcap.followup.schedule import worklist

    project = load_project("hekta", LIBRARY)
    rows = [
        {"record_id": r, "redcap_event_name": "baseline_arm_1", "redcap_repeat_instrument": "",
         "redcap_data_access_group": dag, "rand_date": "2026-05-20", "contact_mobile": "91234567",
         "contact_channel": "1", "do_not_contact": "0"}
        for r, dag in (("1", "oslo"), ("2", "bergen"))
    ]  # fmt: skip
    settings = Settings(
        {"HEKTA_DIGEST_TO": "koordinator@example.org", "HEKTA_DIGEST_TO_OSLO": "oslo@example.org"}
    )
    before, at = (dt.datetime(2026, 11, 23, h, tzinfo=OSLO) for h in (7, 8))
    work = worklist(project, rows, None, at.date())
    channels = Channels.file(tmp_path)
    with Store(tmp_path / "store.sqlite3") as store:
        box = Outbox(store, "hekta")
        assert send_digests(settings, project, box, work, before, channels) == 0  # before 07:30
        assert send_digests(settings, project, box, work, at, channels) == 2
        assert send_digests(settings, project, box, work, at, channels) == 0  # once a day
    sent = {m["to"]: m["body"] for m in channels.get("email").read()}
    assert set(sent) == {"koordinator@example.org", "oslo@example.org"}
    assert "ID 1," in sent["oslo@example.org"] and "ID 2," not in sent["oslo@example.org"]
    assert "ID 1," in sent["koordinator@example.org"] and "ID 2," in sent["koordinator@example.org"]
    assert "91234567" not in "".join(sent.values())  # record ids only


def test_a_message_that_cannot_be_prepared_is_not_recorded(
    synced: Settings, library: Path, tmp_path: Path
) -> None:
    """No template (or no survey link): nothing is sent or recorded, so the step stays due."""
    for channel in ("sms", "email"):
        (library / "templates" / "nb" / f"invite.{channel}.j2").unlink()
    settings = {**synced.values, "HEKTA_OUTBOX_DIR": str(tmp_path)}
    result = CliRunner().invoke(
        cli,
        ["remind", "--project", "hekta", "--definitions", str(library),
         "--now", "2026-11-23T10:00:00+01:00"],
        env=settings,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "0 sent" in result.output and "could not be prepared" in result.output
    with Store.open(synced) as store:
        history = Outbox(store, "hekta").history()
    assert not history["channel"].isin(["sms", "email"]).any()


def test_no_configured_channel_stops_the_pass_before_any_intent(synced: Settings) -> None:
    result = CliRunner().invoke(
        cli,
        ["remind", "--project", "hekta", "--now", "2026-11-23T10:00:00+01:00"],
        env={**synced.values, "HEKTA_OUTBOX_DIR": ""},
    )
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "HEKTA_SMS_URL" in result.output or "HEKTA_SMTP_HOST" in result.output
    with Store.open(synced) as store:
        assert not Outbox(store, "hekta").history()["channel"].isin(["sms", "email"]).any()


def test_the_daily_cap_counts_local_days_whatever_zone_wrote_the_time(tmp_path: Path) -> None:
    """00:30 in Oslo on 23 November is 23:30 UTC on the 22nd: it counts on the 23rd."""
    with Store(tmp_path / "store.sqlite3") as store:
        box = Outbox(store, "hekta")
        key = Key("hekta", "7", "followup_6m_arm_1", "invite", "sms")
        box.intend(key, None, dt.datetime(2026, 11, 22, 23, 30, tzinfo=dt.UTC))
        day = [dt.datetime(2026, 11, d, tzinfo=OSLO) for d in (22, 23, 24)]
        assert box.sent_on("7", day[0], day[1]) == 0
        assert box.sent_on("7", day[1], day[2]) == 1
