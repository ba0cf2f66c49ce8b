"""The daemon: one at a time per project, a cycle of sync then validation against the local
REDCap-compatible server, clean shutdown on SIGTERM, and `status`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redcap
from click.testing import CliRunner
from conftest import LIBRARY, REPO

from hekta_redcap.cli import cli
from hekta_redcap.core.clock import now
from hekta_redcap.core.settings import Settings
from hekta_redcap.data.store import Store
from hekta_redcap.definitions.study import load_project
from hekta_redcap.devtools.provision import provision
from hekta_redcap.devtools.sandbox.server import SandboxServer
from hekta_redcap.followup.outbox import Key, Outbox
from hekta_redcap.ops.daemon import Locked, _running_here, daemon_lock, run_daemon, status


@pytest.fixture
def trial(sandbox: SandboxServer, tmp_path: Path) -> Settings:
    """Settings for a freshly provisioned trial project with two records and a store."""
    env = tmp_path / "env"
    provision(sandbox, [load_project("hekta", LIBRARY)], env)
    settings = Settings.load((env,), {"HEKTA_STORE": str(tmp_path / "store.sqlite3")})
    client = redcap.Project(sandbox.url, settings.token("hekta").reveal())
    client.import_records(
        [
            {
                "record_id": "1",
                "redcap_event_name": "baseline_arm_1",
                "audit_1": "0",
                "audit_5": "3",
            },  # an item AUDIT's skip logic hides, answered
            {"record_id": "2", "redcap_event_name": "baseline_arm_1", "audit_1": "1"},
        ]
    )
    return settings


def test_one_cycle_syncs_validates_then_reminds(trial: Settings, tmp_path: Path) -> None:
    summaries = run_daemon(
        trial, load_project("hekta", LIBRARY), once=True, reports=tmp_path / "reports"
    )
    assert len(summaries) == 3
    assert "sync" in summaries[0] and "2 record(s) requested" in summaries[0]
    assert "validated 2 record(s)" in summaries[1]
    assert "reminders" in summaries[2] or "sent" in summaries[2]
    assert "tracking value(s) written" in summaries[2]
    report = tmp_path / "reports" / "hekta" / "report.html"
    assert report.is_file() and str(report) in summaries[1]
    with Store.open(trial) as store:
        problems = store.open_problems("hekta")
        assert any(p["record"] == "1" and p["field"] == "audit_5" for p in problems)
        assert store.read_heartbeat().state == "stopped"
    shown = status(trial, "hekta")
    assert not shown.alive and shown.problems == len(problems) and shown.lag is not None
    assert "ok" in shown.render("hekta")


def test_only_one_daemon_per_project(trial: Settings) -> None:
    with Store.open(trial) as store, daemon_lock(store, "hekta") as lock:
        assert json.loads(lock.read_text())["pid"] == os.getpid()
        with (
            pytest.raises(Locked, match="a daemon already runs hekta"),
            daemon_lock(store, "hekta"),
        ):
            pass
    assert not lock.exists()


def test_a_dead_daemons_lock_is_taken_over(trial: Settings) -> None:
    with Store.open(trial) as store:
        lock = store.path.with_name(f"{store.path.stem}.hekta.daemon.lock")
        dead = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"],
            capture_output=True,
            text=True,
            check=True,
        )
        lock.write_text(json.dumps({"pid": int(dead.stdout), "host": os.uname().nodename}))
        with daemon_lock(store, "hekta") as taken:
            assert json.loads(taken.read_text())["pid"] == os.getpid()


@pytest.mark.slow
def test_sigterm_stops_after_the_current_step(trial: Settings, tmp_path: Path) -> None:
    env = {**os.environ, **trial.values, "PYTHONPATH": str(REPO), "HEKTA_SYNC_MINUTES": "60"}
    daemon = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hekta_redcap",
            "daemon",
            "--project",
            "hekta",
            "--definitions",
            str(LIBRARY),
            "--reports",
            str(tmp_path / "reports"),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (tmp_path / "reports" / "hekta").exists():
            time.sleep(0.2)
        assert (tmp_path / "reports" / "hekta").exists(), "the first cycle did not finish"
        assert status(trial, "hekta").alive
        daemon.send_signal(signal.SIGTERM)
        output, _ = daemon.communicate(timeout=30)
    finally:
        daemon.kill()
    assert daemon.returncode == 0, output
    assert "Traceback" not in output
    steps = [line for line in output.splitlines() if "event=step" in line]
    assert any("step=sync outcome=ok" in line for line in steps), output
    assert any("step=validate outcome=ok" in line for line in steps), output
    with Store.open(trial) as store:
        assert store.read_heartbeat().state == "stopped"
        assert not list(store.path.parent.glob("*.daemon.lock"))


def test_status_command(trial: Settings, tmp_path: Path) -> None:
    run_daemon(trial, load_project("hekta", LIBRARY), once=True, reports=tmp_path / "r")
    result = CliRunner().invoke(cli, ["status", "--project", "hekta"], env=dict(trial.values))
    assert result.exit_code == 0, result.output
    assert "daemon not running" in result.output and "open data problems:" in result.output
    assert "must check" not in result.output
    with Store.open(trial) as store:  # a send whose outcome is unknown is shown to the operator
        box = Outbox(store, "hekta")
        key = Key("hekta", "1", "followup_6m_arm_1", "invite", "sms")
        box.intend(key, None, now())
        box.answer(key, "maybe_sent", "outcome unknown: ReadTimeout", now())
    result = CliRunner().invoke(cli, ["status", "--project", "hekta"], env=dict(trial.values))
    assert "reminders a person must check: 1" in result.output


HOLD_LOCK = """
import sys, time
from pathlib import Path
from hekta_redcap.core.settings import Settings
from hekta_redcap.ops.daemon import Locked, daemon_lock
from hekta_redcap.data.store import Store

go, release = Path(sys.argv[1]), Path(sys.argv[2])
with Store.open(Settings.load((), {"HEKTA_STORE": sys.argv[3]})) as store:
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.005)
    try:
        with daemon_lock(store, "hekta"):
            print("won", flush=True)
            while not release.exists():
                time.sleep(0.05)
    except Locked:
        print("refused", flush=True)
"""


def _starter(tmp_path: Path, trial: Settings) -> subprocess.Popen[str]:
    """A process that takes the project's lock when `go` appears, holding it until `release`."""
    args = [sys.executable, "-c", HOLD_LOCK, str(tmp_path / "go"), str(tmp_path / "release")]
    return subprocess.Popen(
        [*args, trial.values["HEKTA_STORE"]],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


@pytest.mark.slow
def test_starters_racing_for_a_stale_lock_never_both_win(trial: Settings, tmp_path: Path) -> None:
    """Eight starters, released at once onto a lock file left by a dead daemon: one wins."""
    with Store.open(trial) as store:
        lock = store.path.with_name(f"{store.path.stem}.hekta.daemon.lock")
    lock.write_text(json.dumps({"pid": 2**22 + 1, "host": os.uname().nodename}))
    starters = [_starter(tmp_path, trial) for _ in range(8)]
    assert all(p.stdout and p.stdout.readline().strip() == "ready" for p in starters)
    (tmp_path / "go").touch()
    answers = sorted(p.stdout.readline().strip() for p in starters if p.stdout)
    (tmp_path / "release").touch()
    assert all(p.wait(timeout=60) == 0 for p in starters)
    assert answers == ["refused"] * 7 + ["won"]


def test_a_daemon_killed_but_not_reaped_does_not_hold_the_lock(
    trial: Settings, tmp_path: Path
) -> None:
    """A supervisor that does not reap leaves a zombie: its lock is free and it is not alive."""
    (tmp_path / "go").touch()
    killed = _starter(tmp_path, trial)
    assert killed.stdout is not None and killed.stdout.read(10).split() == ["ready", "won"]
    os.kill(killed.pid, signal.SIGKILL)  # the lock file stays behind, naming the killed pid
    stat = Path(f"/proc/{killed.pid}/stat")
    deadline = time.monotonic() + 30
    while stat.read_text().rsplit(")", 1)[-1].split()[0] != "Z" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running_here(killed.pid)
    with Store.open(trial) as store:
        for _ in range(50):  # the kernel may release a killed process's files a moment later
            try:
                with daemon_lock(store, "hekta") as lock:
                    assert json.loads(lock.read_text())["pid"] == os.getpid()
                    break
            except Locked:
                time.sleep(0.1)
        else:
            pytest.fail("the killed daemon's lock was never free")
    killed.wait()


def test_a_step_failing_for_any_reason_is_logged_and_the_cycle_goes_on(
    trial: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object, **__: object) -> None:
        raise ValueError("unexpected reply")

    monkeypatch.setattr("hekta_redcap.ops.daemon.sync.run", broken)
    summaries = run_daemon(
        trial, load_project("hekta", LIBRARY), once=True, reports=tmp_path / "reports"
    )
    assert summaries[0] == "hekta: sync failed: ValueError: unexpected reply"
    assert summaries[1:] and summaries[1] == "hekta: nothing to validate yet"
    assert len(summaries) == 3  # the reminder pass ran too
