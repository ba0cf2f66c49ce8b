"""Soak: the reminder side under REDCap faults, a flaky SMS gateway and processes killed at random.

Everything on 127.0.0.1. The script creates the hekta project on the local REDCap-compatible
server and loads `--participants` participants reached by SMS whose 6-month windows open over
the first send days of a pinned timeline (the first Monday of September next year, so the
daemon's own clock, which cannot be pinned, finds nothing due yet). Then:

- the server runs as its own process (`hekta-redcap sandbox`) failing `--fault-rate` of the API
  calls with every kind of fault (PHP 500 pages, proxy 502 pages, 2 s delays, bodies cut in
  half, connections dropped after the work was done);
- an SMS gateway stand-in (a WSGI app in this process) answers in 20-50 ms, now and then with
  a 500 or a dropped connection (`--sms-fault-rate`), and records every message it receives;
- `--runs` commands run one after another as a user runs them, each a process of its own:
  `remind --now T` (T advancing over the timeline's send days, within the send hours),
  `daemon --once` and `sync`; 40% are picked for a SIGKILL after a random delay (drawn from
  the seed), or, for half the picked passes, from the gateway while it holds the pass's n-th
  message (delivered, its answer never recorded); a run that ends first escapes it;
- then, with both kinds of faults off: a sync, a last pass, and a sync (which brings the pass's
  write-back into the store).

It prints each run, the runs by command (killed, exit codes, the one-line errors of non-zero
exits, the daemon steps that failed and were logged), what the gateway received and the
invariants, and exits 1 if one fails: no broken
survey link (every link must be `/surveys/?s=` + a 10-character hash the server issued for
that participant and follow-up, on the server's host), no message received twice, none to a
wrong number or unknown to the outbox, none recorded as sent that the gateway never got, none
due and lost (neither sent nor listed for a person), at most one a day per participant and
only in the send hours, no traceback in any run's output, no daemon step failing on an
unforeseen exception, no run hung, the store's integrity check clean and the store equal to a
fresh full export through the gateway, row for row. The commands, clocks, kills and faults come
from `--seed`; where a timed kill lands depends on the machine's speed.

The code under test is the `hekta_redcap` Python imports: to soak a commit rather than a
working tree, export it (`git archive`) and put it first on PYTHONPATH.

    .venv/bin/python benchmarks/soak_reminders.py [--participants 300] [--runs 56]
        [--fault-rate 0.2] [--seed 19] [--keep DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import random
import re
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from local_server import COMMAND, server_process
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

import hekta_redcap
from hekta_redcap.core.settings import Settings
from hekta_redcap.data.store import Store, row_key
from hekta_redcap.definitions.study import load_project
from hekta_redcap.devtools.provision import provision
from hekta_redcap.devtools.sandbox.faults import KINDS
from hekta_redcap.devtools.sandbox.server import DATABASE, running
from hekta_redcap.followup.channels import Message
from hekta_redcap.followup.schedule import MAX_ATTEMPTS
from hekta_redcap.gateway import EXPORT, Gateway
from hekta_redcap.redcap.names import unique_event_name

# the definitions beside the code under test (PYTHONPATH may point at another checkout)
DEFINITIONS = Path(hekta_redcap.__file__).resolve().parents[1] / "instruments"
OSLO = ZoneInfo("Europe/Oslo")
M6 = "followup_6m_arm_1"
SEND_HOURS = (dt.time(9), dt.time(20))  # hekta.yaml: send_from, send_until
OPENING_DAYS = 5  # the windows open over the timeline's first send days
TIMELINE_DAYS = 14  # send days of pinned passes: openings, reminders a week on, a margin
WEIGHTS = {"remind": 0.5, "sync": 0.25, "daemon": 0.25}  # the mix of commands
KILLED = 0.4  # the share of runs sent SIGKILL
# A timed kill falls 0.5 s + a seeded share of this (s) after the start: about the length of
# a busy run here under faults (a pass with a day's messages; start-up included).
KILL_WITHIN = {"remind": 40.0, "sync": 3.0, "daemon": 8.0}
# the share of killed passes killed by the gateway while it holds their n-th message (n drawn
# from 1-30; a pass that sends fewer passes the kill on to the next one)
IN_FLIGHT = 0.5
LIMIT = 900.0  # seconds before a run left to finish counts as hung (and is killed)
LINK = re.compile(r"https?://\S+")
# a daemon step's failure that is a Python exception, not one of the toolkit's one-line errors
UNFORESEEN = re.compile(r"failed: [A-Z]\w*(Error|Exception|Iteration)\b")


# -- the SMS gateway stand-in ----------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    reference: str
    to: str
    body: str
    answer: str  # "202", "500", "drop", or "kill" (its pass killed before the answer)


@dataclass
class SmsGateway:
    """A WSGI app standing in for the SMS gateway: slow like a real one, failing now and then
    (a 500, or the connection dropped after the message was taken), noting every message."""

    rng: random.Random
    fault_rate: float
    received: list[Received] = field(default_factory=list)
    armed: tuple[subprocess.Popen[bytes], int] | None = None  # (pass, messages to let through)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def arm(self, target: tuple[subprocess.Popen[bytes], int] | None) -> None:
        """Kill this pass with SIGKILL while holding its n-th message, before answering."""
        with self.lock:
            self.armed = target

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        body = json.loads(Request(environ).get_data())
        with self.lock:
            pause = self.rng.uniform(0.02, 0.05)
            draw = self.rng.random()
            answer = "202"
            if draw < self.fault_rate:
                answer = "500" if draw < self.fault_rate / 2 else "drop"
            if self.armed is not None:
                process, left = self.armed
                self.armed = (process, left - 1) if left > 1 else None
                if left == 1:  # the pass waits for this answer: alive, not reaped
                    process.send_signal(signal.SIGKILL)
                    answer = "kill"
            self.received.append(Received(body["reference"], body["to"], body["text"], answer))
        time.sleep(pause)
        if answer == "500":
            return Response('{"error": "internal"}', 500, content_type="application/json")(
                environ, start_response
            )
        if answer == "drop":
            sock = environ.get("werkzeug.socket")
            if isinstance(sock, socket.socket):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            raise ConnectionAbortedError("stand-in: connection dropped")
        reply = json.dumps({"id": f"gw-{len(self.received)}"})
        return Response(reply, 202, content_type="application/json")(environ, start_response)


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: object, **kwargs: object) -> None:
        pass

    def log_error(self, *args: object) -> None:
        pass


@contextmanager
def serving(app: SmsGateway) -> Iterator[str]:
    """The stand-in on 127.0.0.1 (a free port) for the block: its URL."""
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_Quiet)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1/sms"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# -- the REDCap-compatible server in its own process -----------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def faults(rate: float, seed: int) -> list[str]:
    """The server's options for `rate` faults of every kind, seeded."""
    return ["--fault-rate", str(rate), "--fault-kinds", ",".join(KINDS), "--fault-seed", str(seed)]


# -- the trial --------------------------------------------------------------------------------


def send_days(first: dt.date, count: int) -> list[dt.date]:
    """`count` days from `first` on which messages may go out (hekta.yaml: not Sundays; the
    timeline lies in September, which has no Norwegian public holiday)."""
    days, day = [], first
    while len(days) < count:
        if day.weekday() != 6:
            days.append(day)
        day += dt.timedelta(days=1)
    return days


def first_day(today: dt.date) -> dt.date:
    """The first Monday of September next year: after today, so the daemon's real clock sees
    every window still closed, and clear of public holidays."""
    day = dt.date(today.year + 1, 9, 1)
    return day + dt.timedelta(days=-day.weekday() % 7)


def rand_date(opens: dt.date) -> dt.date:
    """The randomisation date whose 6-month window opens on `opens` (target 6 calendar months
    after randomisation, the window opening 28 days before it; days of the month <= 28)."""
    target = opens + dt.timedelta(days=28)
    month = target.month - 7
    return target.replace(year=target.year + month // 12, month=month % 12 + 1)


@dataclass(frozen=True)
class Cohort:
    phones: dict[str, str]  # record -> mobile number, E.164
    opens: dict[str, dt.date]  # record -> the day its 6-month window opens

    def rows(self) -> list[dict[str, str]]:
        return [
            {
                "record_id": record,
                "redcap_event_name": "baseline_arm_1",
                "rand_date": rand_date(self.opens[record]).isoformat(),
                "contact_mobile": phone.removeprefix("+47"),
                "contact_channel": "1",  # SMS
                "do_not_contact": "0",
            }
            for record, phone in self.phones.items()
        ]


def make_cohort(people: int, days: list[dt.date]) -> Cohort:
    phones = {str(n): f"+479{n:07d}" for n in range(1, people + 1)}
    return Cohort(phones, {r: days[int(r) % OPENING_DAYS] for r in phones})


# -- the runs ---------------------------------------------------------------------------------


@dataclass
class Run:
    number: int
    command: str
    moment: dt.datetime | None  # remind's pinned clock
    kill_after: float | None = None  # seconds after its start
    kill_at_message: int | None = None  # killed by the gateway while it holds this message
    code: int | None = None
    seconds: float = 0.0
    hung: bool = False
    out: str = ""
    err: str = ""

    @property
    def argv(self) -> list[str]:
        if self.command == "remind":
            assert self.moment is not None
            return ["remind", "-p", "hekta", "--now", f"{self.moment:%Y-%m-%dT%H:%M%z}"]
        if self.command == "daemon":
            return ["daemon", "-p", "hekta", "--once", "--reports", "reports"]
        return ["sync", "-p", "hekta"]

    @property
    def killed(self) -> bool:
        return self.code == -9 and not self.hung

    @property
    def error(self) -> str:
        """The run's one-line error (its last stderr line that is not a log line)."""
        lines = [s for s in self.err.splitlines() if s.strip() and not s.startswith("ts=")]
        return lines[-1] if lines else ""


def plan(runs: int, rng: random.Random, days: list[dt.date]) -> list[Run]:
    """The sequence: commands drawn by WEIGHTS, a share to be killed; the remind passes' clocks
    spread evenly over the timeline's send days, a few a day, within the send hours."""
    commands = rng.choices(list(WEIGHTS), list(WEIGHTS.values()), k=runs)
    passes = commands.count("remind")
    per_day = max(1, math.ceil(passes / len(days)))
    hours = [10 + i * 9 / per_day for i in range(per_day)]  # 10:00 ... before 19:00
    slots = [
        dt.datetime.combine(day, dt.time(int(h), int(h % 1 * 60)), tzinfo=OSLO)
        for day in days
        for h in hours
    ]
    chosen = [slots[round(i * (len(slots) - 1) / max(1, passes - 1))] for i in range(passes)]
    plan: list[Run] = []
    for number, command in enumerate(commands, 1):
        run = Run(number, command, chosen.pop(0) if command == "remind" else None)
        if rng.random() < KILLED:
            if command == "remind" and rng.random() < IN_FLIGHT:
                run.kill_at_message = rng.randint(1, 30)
            else:
                run.kill_after = 0.5 + rng.random() * KILL_WITHIN[command]
        plan.append(run)
    return plan


def execute(run: Run, cwd: Path, env: dict[str, str], logs: Path, sms: SmsGateway) -> None:
    """Run the command in its own process; SIGKILL it after `kill_after` seconds, or have the
    gateway kill it while holding its `kill_at_message`-th message, if set."""
    out, err = (logs / f"{run.number:03d}-{run.command}.{s}" for s in ("out", "err"))
    started = time.perf_counter()
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(
            [COMMAND, *run.argv], cwd=cwd, env=env, stdout=stdout, stderr=stderr
        )
        if run.kill_at_message is not None:
            sms.arm((process, run.kill_at_message))
        try:
            run.code = process.wait(timeout=run.kill_after or LIMIT)
        except subprocess.TimeoutExpired:
            run.hung = run.kill_after is None
            process.kill()  # SIGKILL, this process only
            run.code = process.wait()
        finally:
            sms.arm(None)
    run.seconds = time.perf_counter() - started
    run.out, run.err = out.read_text(), err.read_text()


def daemon_steps(run: Run) -> list[tuple[str, str, str]]:
    """(step, outcome, summary) of each step a daemon run logged."""
    found = re.finditer(r'event=step .*?step=(\w+) outcome=(\w+) summary="(.*)"', run.err)
    return [(m.group(1), m.group(2), m.group(3)) for m in found]


def describe(run: Run) -> str:
    clock = f" {run.moment:%a %d.%m %H:%M}" if run.moment else ""
    if run.killed:
        how = (
            f"by the gateway holding message {run.kill_at_message} " if run.kill_at_message else ""
        )
        return f"  {run.number:3d} {run.command:6}{clock:16} killed {how}after {run.seconds:.1f} s"
    end = f"exit {run.code} in {run.seconds:.1f} s" + (" HUNG" if run.hung else "")
    if run.command == "daemon":
        summary = ", ".join(f"{step} {outcome}" for step, outcome, _ in daemon_steps(run))
    else:
        summary = (run.out.strip().splitlines() or [run.error])[0]
    return f"  {run.number:3d} {run.command:6}{clock:16} {end}  {summary[:110]}"


# -- the checks -------------------------------------------------------------------------------


def reference(key: str) -> str:
    return Message("sms", "", "", key=key).reference


def issued_hashes(data: Path) -> dict[str, tuple[str, str]]:
    """hash -> (record, unique event name) of every survey link the server has issued."""
    with contextlib.closing(sqlite3.connect(f"file:{data / DATABASE}?mode=ro", uri=True)) as db:
        events = {
            event_id: unique_event_name(name, arm)
            for event_id, name, arm in db.execute("SELECT event_id, event_name, arm_num FROM event")
        }
        return {
            h: (record, events.get(event_id, "?"))
            for h, record, event_id in db.execute("SELECT hash, record, event_id FROM participant")
        }


def broken_links(
    received: list[Received], keys: dict[str, str], host: str, issued: dict[str, tuple[str, str]]
) -> list[str]:
    """The references of messages that do not hold exactly one survey link the server issued
    for the message's own participant and follow-up, on the server's host."""
    valid = re.compile(rf"https?://{re.escape(host)}/surveys/\?s=([A-Z0-9]{{10}})")
    broken = []
    for message in received:
        links = LINK.findall(message.body)
        found = valid.fullmatch(links[0]) if len(links) == 1 else None
        key = keys.get(message.reference, "")
        owner = key.split("/")[1:3]
        if found is None or list(issued.get(found.group(1), ())) != owner:
            broken.append(message.reference)
    return broken


def due_keys(cohort: Cohort, status: dict[str, str], day_of: dict[str, dt.date], last: dt.date):
    """The messages due by the last pass: every invite whose window has opened, and every
    reminder a week after an invite that certainly went out (after a maybe-sent invite a
    person decides first)."""
    due = {f"hekta/{r}/{M6}/invite/sms" for r, day in cohort.opens.items() if day <= last}
    for record in cohort.phones:
        invite = f"hekta/{record}/{M6}/invite/sms"
        if status.get(invite) == "sent" and day_of[invite] + dt.timedelta(days=7) <= last:
            due.add(f"hekta/{record}/{M6}/reminder/sms")
    return due


def store_vs_server(store: Store, api: Gateway) -> tuple[int, int, int, int]:
    """(rows in the store, only in the store, only on the server, differing in values)."""
    ours = {row_key(str(r["record_id"]), r): r for r in store.raw_rows("hekta")}
    theirs = {row_key(str(r["record_id"]), r): r for r in api.export_records(**EXPORT)}
    differ = sum(1 for k in ours.keys() & theirs.keys() if ours[k] != theirs[k])
    return len(ours), len(ours.keys() - theirs.keys()), len(theirs.keys() - ours.keys()), differ


# -- main -------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=300)
    parser.add_argument("--runs", type=int, default=56)
    parser.add_argument("--fault-rate", type=float, default=0.2, help="share of API calls")
    parser.add_argument("--sms-fault-rate", type=float, default=0.05, help="500s and drops")
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--attempts", type=int, default=3, help="HEKTA_REDCAP_ATTEMPTS")
    parser.add_argument("--keep", type=Path, help="keep the logs, store and server data here")
    args = parser.parse_args()

    began = time.perf_counter()
    rng = random.Random(args.seed)
    days = send_days(first_day(dt.date.today()), TIMELINE_DAYS)
    cohort = make_cohort(args.participants, days)
    runs = plan(args.runs, rng, days)
    last = dt.datetime.combine(send_days(days[-1] + dt.timedelta(days=1), 1)[0], dt.time(10))
    last = last.replace(tzinfo=OSLO)
    project = load_project("hekta", DEFINITIONS)

    with contextlib.ExitStack() as stack:
        if args.keep:
            work = args.keep.resolve()
            work.mkdir(parents=True, exist_ok=False)
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="soak-")))
        data, logs = work / "server", work / "logs"
        logs.mkdir()
        (work / "no-overlays").mkdir()
        port = free_port()
        sms = SmsGateway(random.Random(args.seed + 1), args.sms_fault_rate)
        sms_url = stack.enter_context(serving(sms))

        # the project and the cohort, on a server without faults (creation is tried once)
        with running(data, port=port) as server:
            provision(server, [project], work / "env")
            env_values = dict(Settings.load((work / "env",), {}).values)
            api_url = server.url
            values = {
                **env_values,
                "HEKTA_STORE": str(work / "store.sqlite3"),
                "HEKTA_DEFINITIONS": str(DEFINITIONS),
                "HEKTA_OVERLAY_DIR": str(work / "no-overlays"),
                "HEKTA_SMS_URL": sms_url,
                "HEKTA_SMS_TOKEN": "gw-tok-soak",
                "HEKTA_SMS_TIMEOUT": "10",
                "HEKTA_REDCAP_ATTEMPTS": str(args.attempts),
            }
            settings = Settings(values)
            Gateway.open(settings, "hekta").import_records(cohort.rows())
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HEKTA_", "REDCAP_"))}
        env |= values | {"OPENBLAS_NUM_THREADS": "1"}
        setup = time.perf_counter() - began
        print(
            f"soak: {args.participants} participants (SMS), windows opening "
            f"{days[0]:%d.%m}-{days[OPENING_DAYS - 1]:%d.%m.%Y}; server {api_url} in its own "
            f"process, {args.fault_rate:.0%} of API calls faulty ({', '.join(KINDS)}); SMS "
            f"gateway stand-in {args.sms_fault_rate:.0%} 500s/drops; seed {args.seed}; "
            f"HEKTA_REDCAP_ATTEMPTS={args.attempts}; set up in {setup:.0f} s",
            flush=True,
        )

        server_log = logs / "server.err"
        with server_process(data, *faults(0.0, args.seed), port=port, log=server_log):
            first = Run(0, "sync", None)
            execute(first, work, env, logs, sms)
            print(describe(first), flush=True)
        with server_process(data, *faults(args.fault_rate, args.seed), port=port, log=server_log):
            armed: int | None = None  # an in-flight kill whose pass sent too few messages
            for run in runs:
                idle = run.kill_after is None and run.kill_at_message is None
                if run.command == "remind" and idle and armed is not None:
                    run.kill_at_message = armed  # carried over to the next pass
                execute(run, work, env, logs, sms)
                if run.command == "remind" and run.kill_at_message is not None:
                    armed = None if run.killed else run.kill_at_message
                print(describe(run), flush=True)
        sms.fault_rate = 0.0
        closing = [
            Run(len(runs) + n, c, last if c == "remind" else None)
            for n, c in enumerate(("sync", "remind", "sync"), 1)
        ]
        print("faults off:", flush=True)
        with server_process(data, *faults(0.0, args.seed), port=port, log=server_log):
            for run in closing:
                execute(run, work, env, logs, sms)
                print(describe(run), flush=True)
            with Store.open(settings) as store:
                integrity = store.check()
                compared = store_vs_server(store, Gateway.open(settings, "hekta"))
                rows = store.conn.execute(
                    "SELECT key, record, channel, status, attempts, at, answer FROM outbox "
                    "WHERE project = 'hekta'"
                ).fetchall()
        issued = issued_hashes(data)
        everything = [first, *runs, *closing]
        failed = report(cohort, sms, rows, issued, api_url, last, everything)
        failed += report_store(integrity, compared)
        print(f"run time {time.perf_counter() - began:.0f} s; logs in {logs}")
        if args.keep is None:
            print("(logs removed with the working directory: --keep DIR keeps them)")
    if failed:
        print(f"FAILED: {', '.join(failed)}")
        return 1
    print("every invariant holds")
    return 0


def report(
    cohort: Cohort,
    sms: SmsGateway,
    rows: list[tuple[str, str, str, str, int, str, str]],
    issued: dict[str, tuple[str, str]],
    api_url: str,
    last: dt.datetime,
    runs: list[Run],
) -> list[str]:
    """Print the runs' table and the message invariants; the names of those that failed."""
    print(
        "\nruns         runs  killed (in flight)  exit 0  exit!=0  hung  tracebacks  "
        "median s (finished)"
    )
    for command in ("remind", "sync", "daemon"):
        mine = [r for r in runs if r.command == command]
        done = [r for r in mine if not r.killed and not r.hung]
        tracebacks = sum("Traceback" in r.out + r.err for r in mine)
        median = statistics.median(r.seconds for r in done) if done else 0.0
        in_flight = sum(r.killed and r.kill_at_message is not None for r in mine)
        print(
            f"  {command:9}{len(mine):6}{sum(r.killed for r in mine):8}{f'({in_flight})':>12}"
            f"{sum(r.code == 0 for r in done):8}{sum(r.code != 0 for r in done):9}"
            f"{sum(r.hung for r in mine):6}{tracebacks:12}{median:10.1f}"
        )
    errors = Counter(
        (r.command, r.code, re.sub(r"\d+\.\d+\.\d+\.\d+:\d+", "<server>", r.error))
        for r in runs
        if not r.killed and r.code != 0
    )
    for (command, code, error), n in sorted(errors.items()):
        print(f"  non-zero exit: {n}x {command} (exit {code}): {error[:160]}")
    steps = Counter(
        (step, re.sub(r"\d+\.\d+\.\d+\.\d+:\d+", "<server>", summary))
        for r in runs
        if r.command == "daemon"
        for step, outcome, summary in daemon_steps(r)
        if outcome != "ok"
    )
    for (step, summary), n in sorted(steps.items()):
        print(f"  daemon step failed, logged, daemon went on: {n}x {step}: {summary[:160]}")
    unforeseen = sum(n for (_, s), n in steps.items() if UNFORESEEN.search(s))
    logged = "".join(r.err for r in runs)
    faults = Counter(re.findall(r"event=retry call=\w+ attempt=\d+ error=(\w+)", logged))
    cut = len(re.findall(r"event=retry call=export_survey_link attempt=\d+ error=BadReply", logged))
    print(
        "  retries by fault: "
        + ", ".join(f"{kind} {n}" for kind, n in faults.most_common())
        + f"; survey links refused as not a link (cut, error page) {cut}"
    )
    print(
        f"  retries logged {logged.count('event=retry')}, messages left due for a later pass "
        f"{logged.count('event=reminder.unprepared')}, write-backs failed "
        f"{logged.count('event=reminder.writeback.failed')}"
    )

    status = {key: state for key, _, _, state, *_ in rows}
    attempts = {key: n for key, _, _, _, n, *_ in rows}
    moment = {row[0]: dt.datetime.fromisoformat(row[5]).astimezone(OSLO) for row in rows}
    orphaned = {key for key, *_, answer in rows if "process stopped while sending" in answer}
    messages = {key for key, _, channel, *_ in rows if channel == "sms"}
    keys = {reference(key): key for key in messages}
    counts = Counter(m.reference for m in sms.received)
    duplicates = [ref for ref, n in counts.items() if n > 1]
    unknown = [ref for ref in counts if ref not in keys]
    misaddressed = [
        m.reference
        for m in sms.received
        if m.reference in keys and cohort.phones[keys[m.reference].split("/")[1]] != m.to
    ]
    host = api_url.split("/")[2]
    broken = broken_links(sms.received, keys, host, issued)
    held = [  # delivered while their pass was killed: the answer never recorded
        m.reference
        for m in sms.received
        if m.answer == "kill" and status.get(keys.get(m.reference, ""), "") != "maybe_sent"
    ]
    unreceived = [k for k in messages if status[k] == "sent" and reference(k) not in counts]
    waiting = {
        k
        for k in messages
        if status[k] == "maybe_sent" or (status[k] == "failed" and attempts[k] >= MAX_ATTEMPTS)
    }
    day_of = {k: moment[k].date() for k in messages}
    due = due_keys(cohort, status, day_of, last.date())
    lost = sorted(k for k in due if status.get(k) != "sent" and k not in waiting)
    taken = [k for k in messages if status[k] in ("sent", "maybe_sent")]
    per_day = Counter((k.split("/")[1], day_of[k]) for k in taken)
    over_cap = sum(n - 1 for n in per_day.values() if n > 1)
    off_hours = [
        k
        for k in taken
        if not SEND_HOURS[0] <= moment[k].time() < SEND_HOURS[1] or moment[k].weekday() == 6
    ]
    tracebacks = sum("Traceback" in r.out + r.err for r in runs)
    hung = sum(r.hung for r in runs)
    by_status = Counter(status[k] for k in messages)
    maybe_received = sum(
        1 for k in messages if status[k] == "maybe_sent" and reference(k) in counts
    )

    answers = Counter(m.answer for m in sms.received)
    print(
        f"\nmessages: {len(sms.received)} received by the gateway ({answers['202']} answered "
        f"202, {answers['500']} 500, {answers['drop']} dropped, {answers['kill']} held while "
        f"their pass was killed); outbox: "
        f"{by_status['sent']} sent, {by_status['maybe_sent']} maybe sent "
        f"({maybe_received} of them received; {len(orphaned & messages)} because their pass "
        f"was killed between intent and answer), {by_status['failed']} failed, "
        f"{by_status['intent']} intent; {len(due)} due by {last:%d.%m.%Y %H:%M} "
        f"({sum('/invite/' in k for k in due)} invites, {sum('/reminder/' in k for k in due)} "
        f"reminders), {len(waiting)} listed for a person"
    )
    checks = [
        ("broken survey links", len(broken)),
        ("messages received twice (same reference)", len(duplicates)),
        ("messages unknown to the outbox", len(unknown)),
        ("messages to a wrong number", len(misaddressed)),
        ("recorded sent, never received", len(unreceived)),
        ("held at a kill, not listed as maybe sent", len(held)),
        ("due messages lost", len(lost)),
        ("over the daily cap", over_cap),
        ("outside the send hours or on a Sunday", len(off_hours)),
        ("runs ending in a traceback", tracebacks),
        ("daemon steps failing on an unforeseen exception", unforeseen),
        ("runs hung", hung),
    ]
    print("invariant                                          found  must be")
    for name, found in checks:
        print(f"  {name:48}{found:6}        0  {'ok' if found == 0 else 'FAILED'}")
    for name, sample in (("broken", broken), ("duplicate", duplicates), ("lost", lost)):
        if sample:
            shown = [keys.get(s, s) for s in sample[:5]]
            print(f"  e.g. {name}: {', '.join(shown)}")
    return [name for name, found in checks if found]


def report_store(integrity: list[str], compared: tuple[int, int, int, int]) -> list[str]:
    rows, only_store, only_server, differ = compared
    same = not (integrity or only_store or only_server or differ)
    print(
        f"  store = server: {'yes' if same else 'NO'} ({rows} rows; {only_store} only in the "
        f"store, {only_server} only on the server, {differ} differing; integrity "
        f"{'ok' if not integrity else '; '.join(integrity[:3])})"
    )
    return [] if same else ["store = server"]


if __name__ == "__main__":
    sys.exit(main())
