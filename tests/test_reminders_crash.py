"""The reminder pass killed at random moments, over and over: no participant ever gets the same
message twice, and every message that was due was either sent or is listed as maybe sent.

The local REDCap-compatible server runs in the test process, with an SMS gateway stand-in that
answers slowly (20-50 ms a message, like a real one) so that kills land mid-pass, and notes every
message it receives. Each pass is `hekta-redcap remind --project hekta --now ...` in a process of
its own, sent SIGKILL after a seeded random delay (some passes are left to finish).

The command takes ~2.5 s to start (it imports pandas, pandera and pyarrow), which 25 passes
cannot afford in a test; so the passes are forked from a process that has imported the command
line once (`ZYGOTE`) and then runs `hekta_redcap.cli.main` as the console script does. The
final pass, left to finish, is a cold `python -m hekta_redcap remind` all the same.

    $ .venv/bin/pytest tests/test_reminders_crash.py -s     # prints what was measured
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

import pytest
import redcap
from click.testing import CliRunner
from conftest import LIBRARY, REPO, serving
from werkzeug.wrappers import Request, Response

from hekta_redcap.cli import cli
from hekta_redcap.core.settings import Settings
from hekta_redcap.data import sync
from hekta_redcap.data.store import Store
from hekta_redcap.definitions.study import load_project
from hekta_redcap.devtools.provision import provision
from hekta_redcap.devtools.sandbox.server import SandboxServer
from hekta_redcap.followup.outbox import Outbox

SEED = 20260907
PEOPLE = 60
PASSES = 25
TYPICAL_PASS = 3.0  # seconds a pass with a day's messages takes here: kills fall in [0, this)
FINISHED = 0.25  # the share of passes left to finish
RESTARTS = (10, 13, 16)  # the hours of a day's passes
TIMED = 0.5  # the share killed at a random moment; the rest are killed by the gateway
OSLO = ZoneInfo("Europe/Oslo")
FIRST_DAY = dt.date(2026, 9, 7)  # a Monday; no public holiday in the weeks that follow
OPENING_DAYS = 10  # the 6-month windows open over the first 10 send days
M6 = "followup_6m_arm_1"
STEPS = ("invite", "reminder")

# Runs each order (a JSON line: argv, env, cwd, log, kill_after) in a forked child: answers
# with the child's pid at once, kills the child with SIGKILL once kill_after seconds have
# passed, reaps it, and answers again with its exit code. The child is not reaped before its
# end is reported, so a kill by pid (here or from the gateway) cannot hit a reused pid.
ZYGOTE = r"""
import json, os, signal, sys, time, traceback
from hekta_redcap import cli

for line in sys.stdin:
    order = json.loads(line)
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.chdir(order["cwd"])
        os.environ.clear()
        os.environ.update(order["env"])
        log = os.open(order["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        sys.argv = ["hekta-redcap", *order["argv"]]
        code = 0
        try:
            cli.main()
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    print(json.dumps({"pid": pid}), flush=True)
    deadline = started + order["kill_after"]
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() >= deadline:
            os.kill(pid, signal.SIGKILL)
            done, status = os.waitpid(pid, 0)
            break
        time.sleep(0.002)
    print(json.dumps({"code": os.waitstatus_to_exitcode(status)}), flush=True)
"""

pytestmark = pytest.mark.slow  # subprocess runs under faults and kills


@dataclass
class Gateway:
    """The SMS gateway stand-in: slow, and it notes every message (reference, number). Armed
    with (pid, n), it kills that pass with SIGKILL while it holds the pass's n-th message,
    before answering: the message is delivered, its answer never recorded."""

    rng: random.Random
    received: list[tuple[str, str]] = field(default_factory=list)
    armed: tuple[int, int] | None = None
    in_flight: int = 0  # passes killed that way
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        body = json.loads(Request(environ).get_data())
        with self.lock:
            self.received.append((body["reference"], body["to"]))
            pause = self.rng.uniform(0.02, 0.05)
            if self.armed is not None:
                pid, left = self.armed
                self.armed = (pid, left - 1) if left > 1 else None
                if left == 1:  # the pass waits for this answer: it is alive, its pid its own
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                    self.in_flight += 1
        time.sleep(pause)
        return Response('{"id": "gw"}', 202, content_type="application/json")(
            environ, start_response
        )

    def arm(self, target: tuple[int, int] | None) -> None:
        with self.lock:
            self.armed = target


@pytest.fixture
def gateway() -> Iterator[tuple[Gateway, str]]:
    app = Gateway(random.Random(SEED + 1))
    with serving(app) as url:
        yield app, f"{url}/v1/sms"


class Zygote:
    """The process passes are forked from (see ZYGOTE)."""

    def __init__(self, cwd: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-c", ZYGOTE],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def start(
        self, argv: list[str], env: dict[str, str], cwd: Path, log: Path, kill_after: float
    ) -> int:
        """Start one command, to be killed after `kill_after` seconds: its pid."""
        order = {"argv": argv, "env": env, "cwd": str(cwd), "log": str(log)}
        stdin = self._pipes()[0]
        stdin.write(json.dumps({**order, "kill_after": kill_after}) + "\n")
        stdin.flush()
        return self._answer()["pid"]

    def wait(self) -> int:
        """The exit code of the command started last (-9: killed)."""
        return self._answer()["code"]

    def _answer(self) -> dict[str, int]:
        line = self._pipes()[1].readline()
        assert line, f"the zygote stopped (exit code {self.process.poll()})"
        return json.loads(line)

    def _pipes(self) -> tuple[IO[str], IO[str]]:
        assert self.process.stdin is not None and self.process.stdout is not None
        return self.process.stdin, self.process.stdout

    def close(self) -> None:
        """End the zygote (it ends when its input does; killed if a pass keeps it)."""
        self._pipes()[0].close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def rand_date(opens: dt.date) -> dt.date:
    """The randomisation date whose 6-month window opens on `opens` (hekta.yaml: the target
    is 6 calendar months on, the window opens 28 days before; days of the month <= 28)."""
    target = opens + dt.timedelta(days=28)
    month = target.month - 7
    return target.replace(year=target.year + month // 12, month=month % 12 + 1)


def send_days(first: dt.date, count: int) -> list[dt.date]:
    days, day = [], first
    while len(days) < count:
        if day.weekday() != 6:  # Sundays are quiet
            days.append(day)
        day += dt.timedelta(days=1)
    return days


def reference(key: str) -> str:
    """The reference a message with this key carries: the first 16 hex digits of the key's
    SHA-256 (worked out here, not taken from the channels)."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def key_of(record: str, step: str) -> str:
    return f"hekta/{record}/{M6}/{step}/sms"


@dataclass(frozen=True)
class Cohort:
    phones: dict[str, str]  # record -> mobile number, E.164
    opens: dict[str, dt.date]  # record -> the day its 6-month window opens


def load_cohort(client: redcap.Project, days: list[dt.date]) -> Cohort:
    """PEOPLE participants reached by SMS, whose windows open over the first days."""
    phones = {str(n): f"+479{n:07d}" for n in range(1, PEOPLE + 1)}
    opens = {r: days[int(r) % OPENING_DAYS] for r in phones}
    client.import_records(
        [
            {
                "record_id": record,
                "redcap_event_name": "baseline_arm_1",
                "rand_date": rand_date(opens[record]).isoformat(),
                "contact_mobile": phone.removeprefix("+47"),
                "contact_channel": "1",
                "do_not_contact": "0",
            }
            for record, phone in phones.items()
        ]
    )
    return Cohort(phones, opens)


@dataclass
class Passes:
    moments: list[dt.datetime] = field(default_factory=list)
    killed: int = 0
    finished: int = 0
    stale_locks: int = 0  # passes that found a killed pass's lock file


def run_passes(
    zygote: Zygote, app: Gateway, env: dict[str, str], where: Path, days: list[dt.date]
) -> Passes:
    """PASSES passes, one a day at 10:00, and after a killed one another the same day (the
    daemon restarting). Each is left to finish, killed after a random delay, or killed by the
    gateway while it holds the pass's n-th message (n random)."""
    rng = random.Random(SEED)
    done = Passes()
    lock = where / "store.hekta.daemon.lock"
    log = where / "passes.log"
    day, restart = 0, 0
    while len(done.moments) < PASSES:
        moment = dt.datetime.combine(days[day], dt.time(RESTARTS[restart]), tzinfo=OSLO)
        done.moments.append(moment)
        done.stale_locks += lock.exists()
        how = rng.random()
        timed = FINISHED <= how < FINISHED + TIMED
        argv = ["remind", "--project", "hekta", "--now", moment.isoformat()]
        argv += ["--definitions", str(LIBRARY)]
        pid = zygote.start(argv, env, where, log, rng.uniform(0, TYPICAL_PASS) if timed else 120)
        if how >= FINISHED + TIMED:
            app.arm((pid, rng.randint(1, 4)))
        code = zygote.wait()
        app.arm(None)
        if code == -signal.SIGKILL:
            done.killed += 1
        else:
            assert code == 0, log.read_text()[-3000:]
            done.finished += 1
        if code == -signal.SIGKILL and restart + 1 < len(RESTARTS):
            restart += 1
        else:
            day, restart = day + 1, 0
    assert "Traceback" not in log.read_text()
    return done


def due_messages(
    cohort: Cohort, status: dict[str, str], at: dict[str, dt.date], today: dt.date
) -> set[str]:
    """The keys of the messages due by `today`: every invite whose window has opened, and
    every reminder a week after an invite that certainly went out (after a maybe-sent
    invite a person decides first)."""
    due = {key_of(r, "invite") for r, day in cohort.opens.items() if day <= today}
    return due | {
        key_of(r, "reminder")
        for r in cohort.phones
        if status.get(key_of(r, "invite")) == "sent"
        and at[key_of(r, "invite")] + dt.timedelta(days=7) <= today
    }


def test_killed_passes_never_send_twice_and_lose_nothing(
    sandbox: SandboxServer, gateway: tuple[Gateway, str], tmp_path: Path
) -> None:
    app, url = gateway
    env_file = tmp_path / "env"
    provision(sandbox, [load_project("hekta", LIBRARY)], env_file)
    values = {
        "HEKTA_STORE": str(tmp_path / "store.sqlite3"),
        "HEKTA_SMS_URL": url,
        "HEKTA_SMS_TOKEN": "gw-tok-crash-test",
        "HEKTA_SMS_TIMEOUT": "10",
    }
    settings = Settings.load((env_file,), values)
    days = send_days(FIRST_DAY, PASSES)
    cohort = load_cohort(redcap.Project(sandbox.url, settings.token("hekta").reveal()), days)
    sync.run(settings, "hekta")

    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEKTA_", "REDCAP_"))}
    env |= dict(settings.values)
    zygote = Zygote(tmp_path)
    try:
        passes = run_passes(zygote, app, env, tmp_path, days)
    finally:
        zygote.close()
    assert passes.killed >= PASSES // 4 and app.in_flight >= 1, passes  # kills did land

    last = passes.moments[-1] + dt.timedelta(hours=2)  # a cold start, left to finish
    command = ["remind", "--project", "hekta", "--now", last.isoformat()]
    final = subprocess.run(
        [sys.executable, "-m", "hekta_redcap", *command, "--definitions", str(LIBRARY)],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert final.returncode == 0, final.stderr[-3000:]

    with Store.open(settings) as store:
        assert store.check() == []  # (d)
        rows = store.conn.execute(
            "SELECT key, record, channel, status, at FROM outbox WHERE project = 'hekta'"
        ).fetchall()
        waiting = {e.key for e in Outbox(store, "hekta").needing_a_person()}
    record_of = {key: record for key, record, *_ in rows}
    status = {key: state for key, _, _, state, _ in rows}
    at = {key: dt.datetime.fromisoformat(t).astimezone(OSLO).date() for key, *_, t in rows}
    messages = {key for key, _, channel, _, _ in rows if channel == "sms"}
    by_reference = {reference(key): key for key in messages}

    # (a) no message twice at the gateway, and none to anyone but its participant
    counts = Counter(ref for ref, _ in app.received)
    assert [ref for ref, n in counts.items() if n > 1] == []
    for ref, phone in app.received:
        assert ref in by_reference, f"the gateway got a message the outbox lacks: {ref}"
        assert cohort.phones[record_of[by_reference[ref]]] == phone
    received = {by_reference[ref] for ref in counts}

    # (c) everything the gateway got is sent or maybe sent; everything sent, it got
    assert {status[k] for k in received} <= {"sent", "maybe_sent"}
    assert {k for k in messages if status[k] == "sent"} <= received
    assert set(status.values()) <= {"sent", "maybe_sent"}  # no intent left, none refused

    # (b) every message due was sent or is listed for a person to check
    due = due_messages(cohort, status, at, last.date())
    maybe = {k for k in messages if status[k] == "maybe_sent"}
    assert {k for k in due if status.get(k) != "sent"} <= maybe <= waiting
    shown = CliRunner().invoke(cli, ["outbox", "--project", "hekta"], env=dict(settings.values))
    assert shown.exit_code == 0 and f"{len(waiting)} message(s) need a person" in shown.output
    assert all(k in shown.output for k in maybe)

    print(
        f"\n{PASSES} passes: {passes.killed} killed ({app.in_flight} by the gateway while "
        f"it held a message), {passes.finished} finished, then 1 cold; "
        f"{passes.stale_locks} stale lock(s) taken over; {len(due)} message(s) due, "
        f"{len(app.received)} received by the gateway, {len(messages) - len(maybe)} sent, "
        f"{len(maybe)} maybe sent ({len(maybe & received)} of them received)"
    )
