"""Reminder passes and the daemon against the local REDCap-compatible server while it fails the
way REDCap and its proxies fail (PHP error pages, a proxy's 502, bodies cut short, connections
dropped after the work was done, slow answers) on the survey-link and record calls that the
pass, its re-checks and the follow-up write-back make.

What must hold: no message carries anything but a valid survey link; every due message goes
out once, later if not now; `remind` and `daemon --once` exit 0 and log each failure in one
line, never a traceback.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import LIBRARY, REPO
from test_reminders_e2e import LINK, M6, at, opening_on

from hekta_redcap.core.settings import Settings
from hekta_redcap.data import sync
from hekta_redcap.definitions.study import load_project
from hekta_redcap.devtools.provision import provision
from hekta_redcap.devtools.sandbox.faults import KINDS
from hekta_redcap.devtools.sandbox.server import SandboxServer
from hekta_redcap.gateway import Gateway

DAY = dt.date(2026, 9, 1)  # a Tuesday: every 6-month window opens today
PEOPLE = [opening_on(str(n), DAY, "sms") for n in range(1, 13)]

pytestmark = pytest.mark.slow  # subprocess runs under faults and kills


@pytest.fixture
def trial(sandbox: SandboxServer, tmp_path: Path) -> Iterator[Settings]:
    """A trial project holding the people, synced, with a file outbox; the server's faults are
    switched off again afterwards (the server is shared by the session)."""
    provision(sandbox, [load_project("hekta", LIBRARY)], tmp_path / "env")
    settings = Settings.load(
        (tmp_path / "env",),
        {
            "HEKTA_STORE": str(tmp_path / "store.sqlite3"),
            "HEKTA_OUTBOX_DIR": str(tmp_path / "outbox"),
            "HEKTA_REDCAP_ATTEMPTS": "2",  # so that some calls fail for good and wait a pass
            "HEKTA_REDCAP_BACKOFF_SECONDS": "0",
        },
    )
    Gateway.open(settings, "hekta").import_records([p.row() for p in PEOPLE])
    sync.run(settings, "hekta")
    delay = sandbox.faults.delay
    sandbox.faults.delay = 0.2
    try:
        yield settings
    finally:
        sandbox.faults.configure(0.0)
        sandbox.faults.delay = delay


def hekta_redcap(settings: Settings, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The command as a user runs it: its own process, its settings from the environment."""
    env = {**os.environ, **settings.values, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "hekta_redcap", *args, "--definitions", str(LIBRARY)]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def survey_links(outbox: Path) -> dict[str, list[str]]:
    """record -> the links in the messages it was sent (each message's whole text searched)."""
    found: dict[str, list[str]] = {}
    for line in outbox.read_text(encoding="utf-8").splitlines():
        message = json.loads(line)
        record = message["key"].split("/")[1]
        found.setdefault(record, []).append(message["key"])
        found[record] += LINK.findall(message["body"])
    return found


def test_reminders_under_faults_send_only_valid_links_once_and_keep_going(
    sandbox: SandboxServer, trial: Settings, tmp_path: Path
) -> None:
    sandbox.faults.configure(0.45, KINDS, seed=19, contents=["surveyLink", "record"])
    runs = [
        hekta_redcap(
            trial, tmp_path, "remind", "-p", "hekta", "--now", f"{moment:%Y-%m-%dT%H:%M%z}"
        )
        for moment in (at(2026, 9, 1, 10), at(2026, 9, 1, 11), at(2026, 9, 1, 12))
    ]
    runs.append(hekta_redcap(trial, tmp_path, "daemon", "-p", "hekta", "--once"))
    injected = len(sandbox.faults.injected)
    sandbox.faults.configure(0.0)
    runs.append(
        hekta_redcap(trial, tmp_path, "remind", "-p", "hekta", "--now", "2026-09-01T13:00+0200")
    )

    for run in runs:
        assert run.returncode == 0, run.stderr
        assert "Traceback" not in run.stdout + run.stderr
        assert all(line.startswith("ts=") for line in run.stderr.splitlines()), run.stderr
    logged = "".join(run.stderr for run in runs)
    assert injected > 10 and "event=retry" in logged
    assert "event=reminder.unprepared" in logged or "event=reminder.writeback.failed" in logged

    api = Gateway.open(trial, "hekta")
    sent = survey_links(tmp_path / "outbox" / "outbox.jsonl")
    assert sorted(sent, key=int) == [p.record for p in PEOPLE]  # everyone, nobody lost
    for person in PEOPLE:
        key, *links = sent[person.record]
        assert key == f"hekta/{person.record}/{M6}/invite/sms"  # one message, not two
        assert links == [api.survey_link(person.record, "audit", M6)]  # the link REDCap gives

    final = runs[-1].stdout
    assert "0 could not be prepared" not in final  # the line is left out when none was
    [row] = api.export_records(records=["1"], events=[M6], fields=["record_id", "fu_status"])
    assert row["fu_status"] == "3"  # reminded: the write-back caught up


def test_a_project_with_surveys_off_says_so_where_nurses_look(
    trial: Settings, tmp_path: Path
) -> None:
    """Until push enables surveys, no reminder can be prepared: the pass holds them and says
    why, and the worklist, `status` and the digest say it plainly."""
    api = Gateway.open(trial, "hekta")
    assert api.import_project_settings({"surveys_enabled": 0}) == 1
    sync.run(trial, "hekta")  # the store learns it with the next sync
    digest = {**trial.values, "HEKTA_DIGEST_TO": "sykepleier@example.org"}
    remind = hekta_redcap(
        Settings(digest), tmp_path, "remind", "-p", "hekta", "--now", "2026-09-01T10:00+0200"
    )
    assert remind.returncode == 0, remind.stderr
    assert f"{len(PEOPLE)} held: surveys are disabled in the REDCap project" in remind.stdout
    messages = [
        json.loads(line)
        for line in (tmp_path / "outbox" / "outbox.jsonl").read_text("utf-8").splitlines()
    ]
    assert [m["channel"] for m in messages] == ["email"]  # the digest alone
    assert "OBS: Undersøkelser (surveys) er slått av i REDCap-prosjektet" in messages[0]["body"]

    worklist = hekta_redcap(trial, tmp_path, "followups", "-p", "hekta", "--as-of", "2026-09-01")
    assert worklist.stdout.startswith("! Undersøkelser (surveys) er slått av i REDCap-prosjektet")
    english = hekta_redcap(
        trial, tmp_path, "followups", "-p", "hekta", "--as-of", "2026-09-01", "--lang", "en"
    )
    assert "! Surveys are disabled in the REDCap project" in english.stdout
    status = hekta_redcap(trial, tmp_path, "status", "-p", "hekta")
    assert "  ! Surveys are disabled in the REDCap project" in status.stdout

    api.import_project_settings({"surveys_enabled": 1})
    sync.run(trial, "hekta")
    again = hekta_redcap(trial, tmp_path, "followups", "-p", "hekta", "--as-of", "2026-09-01")
    assert "surveys" not in again.stdout
