"""The sync engine against the local REDCap-compatible server: a first sync equals the server,
an incremental one after edits, creates and deletes asks for exactly those records, a changed
dictionary forces a full pull, injected faults never lose or duplicate data, and a sync killed
at random points leaves a consistent store that the next run completes. Plus the store's own
API: migrations, problems, typed data, heartbeat."""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pandas as pd
import pytest
import redcap
from click.testing import CliRunner
from conftest import REPO

from hekta_redcap.cli import cli
from hekta_redcap.core.settings import Settings
from hekta_redcap.data import sync
from hekta_redcap.data.store import MIGRATIONS, Store
from hekta_redcap.definitions.study import load_project
from hekta_redcap.devtools.cohort import generate
from hekta_redcap.devtools.provision import provision
from hekta_redcap.devtools.sandbox.server import SandboxServer
from hekta_redcap.gateway import EXPORT, Retry

NO_OVERLAP = dt.timedelta(0)
FAST = Retry(attempts=4, base=0.0, jitter=None)


@dataclass
class Trial:
    """The trial's project on the server with a synthetic cohort, and a store for it."""

    settings: Settings
    client: redcap.Project
    store: Store

    def sync(self, **kwargs: Any) -> sync.SyncResult:
        options = {"overlap": NO_OVERLAP, "retry": FAST, "progress": False} | kwargs
        return sync.run(self.settings, "hekta", store=self.store, **options)

    def server_rows(self) -> list[dict[str, Any]]:
        return self.client.export_records(**EXPORT)

    def assert_equal(self) -> None:
        assert self.store.raw_rows("hekta") == self.server_rows()
        assert self.store.check() == []


def next_second() -> None:
    """Wait for the clock's next second: REDCap's change times (and so the cursor) are to the
    second, and changes made in the cursor's second are pulled again."""
    time.sleep(1.02 - time.time() % 1)


@pytest.fixture
def trial(sandbox: SandboxServer, tmp_path: Path) -> Iterator[Trial]:
    project = load_project("hekta")
    env = tmp_path / ".env.sandbox"
    provision(sandbox, [project], env)
    settings = Settings.load((env,), {"HEKTA_STORE": str(tmp_path / "store.sqlite3")})
    client = redcap.Project(sandbox.url, settings.token("hekta").reveal())
    generate(project, 40, seed=6).load(client)
    with Store.open(settings) as store:
        yield Trial(settings, client, store)


def edit(client: redcap.Project, records: list[str], value: str) -> None:
    """Set the year of birth of each record (created when new)."""
    client.import_records(
        [
            {"record_id": r, "redcap_event_name": "baseline_arm_1", "demo_birth_year": value}
            for r in records
        ]
    )


def requested_records(calls: list[dict[str, Any]]) -> list[str]:
    """The record ids asked for by full-row exports (not by listings of the record id alone,
    which ask for no records)."""
    return [
        value
        for data in calls
        if data.get("content") == "record" and "fields[1]" in data
        for key, value in data.items()
        if key.startswith("records[")
    ]


@pytest.fixture
def payloads() -> Iterator[list[dict[str, Any]]]:
    """Every API call's form data, as PyCap posts it."""
    seen: list[dict[str, Any]] = []
    session = redcap.request._session
    real = session.post

    def post(url: str, data: dict[str, Any], **kwargs: Any) -> Any:
        seen.append(dict(data))
        return real(url, data=data, **kwargs)

    with mock.patch.object(session, "post", post):
        yield seen


def test_first_sync_equals_the_server(trial: Trial) -> None:
    result = trial.sync()
    assert (result.kind, result.reason, result.outcome) == ("full", "first run", "ok")
    records = {r["record_id"] for r in trial.server_rows()}
    assert result.requested == result.changed == len(records) == 40
    trial.assert_equal()
    [stored] = trial.store.last_runs("hekta")
    assert stored == result and result.id is not None


def test_incremental_sync_asks_only_for_what_changed(
    trial: Trial, payloads: list[dict[str, Any]]
) -> None:
    next_second()
    trial.sync()
    ids = sorted({r["record_id"] for r in trial.server_rows()}, key=int)
    edited, deleted, created = ids[:3], ids[3:5], ["9001", "9002"]
    edit(trial.client, edited, "1971")
    edit(trial.client, created, "1980")
    trial.client.delete_records(deleted)
    next_second()
    payloads.clear()
    result = trial.sync()
    assert result.kind == "incremental"
    assert sorted(requested_records(payloads)) == sorted(edited + created + deleted)
    assert (result.requested, result.changed, result.deleted) == (7, 5, 2)
    trial.assert_equal()
    payloads.clear()
    quiet = trial.sync()
    assert (quiet.requested, quiet.changed, quiet.deleted) == (0, 0, 0)
    assert requested_records(payloads) == []
    # a record deleted and created again between two runs comes back with its new rows
    trial.client.delete_records([ids[6]])
    edit(trial.client, [ids[6]], "1999")
    again = trial.sync()
    assert (again.requested, again.changed, again.deleted) == (1, 1, 0)
    trial.assert_equal()


def test_a_changed_dictionary_forces_a_full_pull(trial: Trial) -> None:
    trial.sync()
    metadata = trial.client.export_metadata()
    new = {**metadata[-1], "field_name": "sync_probe", "field_label": "Probe", "field_type": "text"}
    new.update(select_choices_or_calculations="", branching_logic="", required_field="")
    trial.client.import_metadata([*metadata, new])
    result = trial.sync()
    assert (result.kind, result.reason) == ("full", "dictionary changed")
    assert result.requested == result.changed == 40  # every row gained the new column
    trial.assert_equal()
    assert all("sync_probe" in row for row in trial.store.raw_rows("hekta"))
    assert trial.sync().kind == "incremental"


def test_reconciliation_finds_deletions_the_log_does_not_show(trial: Trial) -> None:
    trial.sync()
    gone = trial.server_rows()[0]["record_id"]
    trial.client.delete_records([gone])
    # an incremental run that missed the deletion (logged before its window) keeps the record
    with trial.store.transaction() as conn:
        conn.execute("UPDATE sync_state SET cursor = '2999-01-01T00:00:00+00:00'")
    assert trial.sync().deleted == 0
    result = trial.sync(reconcile_every=NO_OVERLAP)
    assert (result.kind, result.reason, result.deleted) == ("full", "reconciliation due", 1)
    trial.assert_equal()


def test_faulty_server_runs_converge_without_losing_or_duplicating(
    trial: Trial, sandbox: SandboxServer
) -> None:
    rng = random.Random(3)
    ids = sorted({r["record_id"] for r in trial.server_rows()}, key=int)
    kinds = ("error", "html", "truncate", "drop")
    failed = ok = 0
    try:
        for round_ in range(6):
            sandbox.faults.configure(0.0)
            edit(trial.client, rng.sample(ids, 4), str(1950 + round_))
            if round_ % 2:
                trial.client.delete_records([ids.pop()])
            sandbox.faults.configure(0.3, kinds, seed=round_)
            for _ in range(20):
                before = trial.store.raw_rows("hekta")
                try:
                    trial.sync(retry=Retry(attempts=3, base=0.0, jitter=None), workers=2)
                except sync.SyncFailed as exc:
                    failed += 1
                    assert trial.store.raw_rows("hekta") == before  # as it was
                    assert trial.store.last_runs("hekta", 1)[0].error == exc.message
                    continue
                ok += 1
                break
            sandbox.faults.configure(0.0)
            trial.assert_equal()
    finally:
        sandbox.faults.configure(0.0)
    assert ok == 6 and failed > 0
    assert set(sandbox.faults.injected) >= set(kinds)
    runs = trial.store.last_runs("hekta", 100)
    assert sum(r.outcome == "failed" for r in runs) == failed
    assert all("REDCap at " in r.error for r in runs if r.outcome == "failed")


def test_a_refused_call_is_recorded_and_leaves_the_store_as_it_was(
    trial: Trial, sandbox: SandboxServer, tmp_path: Path
) -> None:
    trial.sync()
    before = trial.store.raw_rows("hekta")
    wrong = Settings({**trial.settings.values, "REDCAP_TOKEN_HEKTA": "0" * 32})
    with pytest.raises(sync.SyncFailed, match=r"REDCap at .*API") as failed:
        sync.run(wrong, "hekta", store=trial.store, progress=False)
    assert "0" * 32 not in str(failed.value)
    [last, _] = trial.store.last_runs("hekta", 2)
    assert (last.outcome, last.error) == ("failed", failed.value.message)
    assert trial.store.raw_rows("hekta") == before and trial.store.check() == []
    assert trial.store.cursor("hekta") is not None


def test_retry_backs_off_exponentially_up_to_a_cap() -> None:
    fixed = Retry(base=1.0, factor=2.0, cap=5.0, jitter=None)
    assert [fixed.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    jittered = Retry(base=1.0, factor=2.0, cap=5.0, jitter=random.Random(1))
    for n, full in enumerate([1.0, 2.0, 4.0, 5.0, 5.0], 1):
        assert full / 2 <= jittered.delay(n) <= full, n


@pytest.mark.slow
def test_sync_killed_at_random_points_leaves_a_consistent_store(
    trial: Trial, tmp_path: Path
) -> None:
    """SIGKILL a `hekta-redcap sync` process at random moments, again and again, while the
    server changes between attempts: the store always equals the server as some complete run
    saw it (or is empty), and the next run completes and equals the server."""
    rng = random.Random(11)
    more = generate(load_project("hekta"), 120, seed=7, first=100, errors=False)
    more.load(trial.client)
    ids = sorted({r["record_id"] for r in trial.server_rows()}, key=int)
    env = {
        **os.environ,
        **trial.settings.values,
        "HEKTA_SYNC_OVERLAP_MINUTES": "0",
        "HEKTA_SYNC_BATCH_SIZE": "20",
        "PYTHONPATH": str(REPO),
    }
    command = [sys.executable, "-m", "hekta_redcap", "sync", "--project", "hekta"]
    calibrate = {**env, "HEKTA_STORE": str(tmp_path / "c.sqlite3")}

    def duration() -> float:
        """How long a run takes here, start-up included."""
        start = time.perf_counter()
        subprocess.run(command, env=calibrate, capture_output=True, check=True)
        return time.perf_counter() - start

    # the attempts are full runs until one succeeds, then incremental ones (shorter)
    whole = duration()
    edit(trial.client, ids[:3], "1941")
    quick = duration()
    expected: list[dict[str, Any]] = []  # the server as the last successful run saw it
    killed = succeeded = 0
    # The calibrated durations are a guess on a machine whose load varies: a run that finishes
    # before its kill shortens the next waits, and the attempts go on (at most 40) until at
    # least 15 were made and 5 killed.
    scale = 1.0
    for attempt in range(40):
        if attempt >= 15 and killed >= 5:
            break
        edit(trial.client, rng.sample(ids, 3), str(1940 + attempt))
        if attempt % 4 == 3:
            trial.client.delete_records([ids.pop(rng.randrange(len(ids)))])
        snapshot = trial.server_rows()
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(rng.uniform(0.4, 1.1) * scale * (quick if succeeded else whole))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            killed += 1
        else:
            scale *= 0.8
        process.wait()
        with Store.open(trial.settings) as store:
            assert store.check() == []
            runs = store.last_runs("hekta", 100)
            assert all(r.outcome == "ok" for r in runs)  # a killed run leaves no row
            if len(runs) > succeeded:  # this attempt committed (perhaps killed just after)
                succeeded, expected = len(runs), snapshot
            assert store.raw_rows("hekta") == expected
            assert (store.cursor("hekta") is None) == (succeeded == 0)
    assert killed >= 5
    final = trial.sync()
    assert final.outcome == "ok"
    trial.assert_equal()


# -- the command ---------------------------------------------------------------------------------


def test_sync_command_prints_one_line(trial: Trial) -> None:
    runner = CliRunner()
    env = {**trial.settings.values, "HEKTA_SYNC_OVERLAP_MINUTES": "0"}
    done = runner.invoke(cli, ["sync", "--project", "hekta"], env=env)
    assert done.exit_code == 0, done.output
    assert done.stdout.startswith("hekta: full sync (first run): 40 record(s) requested")
    assert done.stdout.count("\n") == 1
    assert "event=sync.done project=hekta kind=full requested=40" in done.stderr
    assert trial.settings.token("hekta").reveal() not in done.output
    refused = {**env, "REDCAP_TOKEN_HEKTA": "0" * 32}
    failed = runner.invoke(cli, ["sync", "--project", "hekta"], env=refused)
    assert failed.exit_code == 1
    assert failed.stderr.splitlines()[-1].startswith("error: REDCap at ")
    assert "Traceback" not in failed.output


# -- the store -----------------------------------------------------------------------------------


def test_store_migrates_once_and_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    with Store(path) as store:
        assert store.version == len(MIGRATIONS)
    with Store(path) as store:  # opening again applies nothing
        assert store.conn.execute("SELECT count(*) FROM schema_version").fetchone()[0] == len(
            MIGRATIONS
        )
        with store.transaction() as conn:
            conn.execute("INSERT INTO schema_version VALUES (?, 'later')", (len(MIGRATIONS) + 1,))
    with pytest.raises(Exception, match="newer than this toolkit"):
        Store(path)


def test_problems_keep_when_they_were_first_seen(tmp_path: Path) -> None:
    problem = {
        "record": "7",
        "event": "baseline_arm_1",
        "instance": None,
        "instrument": "audit",
        "field": "audit_1",
        "value": "9",
        "rule": "choice",
        "severity": "error",
        "message_nb": "...",
    }
    with Store(tmp_path / "s.sqlite3") as store:
        store.set_problems("hekta", [problem])
        with store.transaction() as conn:
            conn.execute("UPDATE problem SET first_seen = '2026-01-01T00:00:00+00:00'")
        other = {**problem, "field": "audit_2"}
        store.set_problems("hekta", [problem, other])
        kept, new = store.open_problems("hekta")
        assert kept == {**problem, "first_seen": "2026-01-01T00:00:00+00:00"}
        assert new["field"] == "audit_2" and new["first_seen"] > kept["first_seen"]
        store.set_problems("hekta", [])
        assert store.open_problems("hekta") == []


def test_typed_data_round_trips_with_its_dtypes(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "record_id": pd.array(["2", "10", "10"], dtype="string"),
            "redcap_event_name": pd.array(["baseline_arm_1", "baseline_arm_1", None], "string"),
            "redcap_repeat_instrument": pd.array([None, None, "job_episode"], dtype="string"),
            "redcap_repeat_instance": pd.array([None, None, 1], dtype="Int64"),
            "audit_1": pd.Categorical(["0", None, None], categories=["0", "1", "2"], ordered=True),
            "demo_birth_year": pd.array([1980, None, None], dtype="Int64"),
            "weight": pd.array([70.5, 80.0, None], dtype="Float64"),
            "consent": pd.array([True, False, None], dtype="boolean"),
            "rand_date": pd.to_datetime(["2026-01-02", None, None]).astype("datetime64[s]"),
            "note": pd.array(["a", None, None], dtype="string"),
        }
    )
    with Store(tmp_path / "s.sqlite3") as store:
        store.set_typed("hekta", frame)
        pd.testing.assert_frame_equal(store.typed("hekta"), frame)
        found = store.conn.execute(
            "SELECT weight, consent, rand_date FROM typed_hekta WHERE record_id = '2'"
        ).fetchone()
        assert found == (70.5, 1, "2026-01-02T00:00:00")  # SQL reads typed values
        with store.transaction():
            store.delete_records("hekta", ["10"])
        pd.testing.assert_frame_equal(store.typed("hekta"), frame.iloc[:1])


def test_heartbeat(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite3") as store:
        assert store.read_heartbeat() is None
        store.heartbeat("daemon-1", "sync")
        beat = store.read_heartbeat("daemon-1")
        assert beat is not None
        assert (beat.pid, beat.state) == (os.getpid(), "sync")
        store.heartbeat("daemon-1", "idle")
        again = store.read_heartbeat()
        assert again is not None and again.state == "idle" and again.started == beat.started
