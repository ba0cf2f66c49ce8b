"""The daemon: sync, then validation, then the reminder pass (with the follow-up write-back and
the daily digests), each on its own interval, for years, unattended.

One daemon per project at a time: the operating system's lock on a file beside the store says
who runs (released by the kernel however its holder ends), and the file names its holder so a
daemon on another host counts while its heartbeat is fresh. A step that fails, for whatever
reason, is logged in one line and runs again at its next turn. SIGTERM or SIGINT stops the loop
after the step that is running, so a step is never cut short by a shutdown.

    >>> run_daemon(Settings.load(), load_project("hekta"), once=True)   # one cycle

Intervals come from the settings `HEKTA_SYNC_MINUTES` (default 15), `HEKTA_VALIDATE_MINUTES`
(default 60) and `HEKTA_REMIND_MINUTES` (default 15; only for projects with a reminder policy).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import schedule

from hekta_redcap.core.clock import local, now, shown_time
from hekta_redcap.core.errors import HektaError
from hekta_redcap.core.logline import line
from hekta_redcap.core.settings import Settings
from hekta_redcap.data import sync
from hekta_redcap.data.store import Store
from hekta_redcap.definitions.study import Project
from hekta_redcap.followup.outbox import Outbox
from hekta_redcap.followup.reminders import remind
from hekta_redcap.followup.worklist import notices
from hekta_redcap.gateway import Gateway
from hekta_redcap.validation import validate_store, write_report
from hekta_redcap.validation.report import overview, overview_line

logger = logging.getLogger("hekta_redcap.ops.daemon")

STALE_AFTER = dt.timedelta(minutes=30)  # a lock whose heartbeat is older is abandoned
TICK_SECONDS = 1.0
BEAT_EVERY = dt.timedelta(seconds=30)  # heartbeat while idle
ALIVE_WITHIN = dt.timedelta(minutes=2)


def daemon_name(project: str) -> str:
    return f"{project}@{socket.gethostname()}"


@dataclass
class Step:
    name: str
    minutes: int
    action: Callable[[], str]  # returns a one-line summary with counts only


class Locked(HektaError):
    """Another daemon runs this project."""


@contextmanager
def daemon_lock(store: Store, project: str) -> Iterator[Path]:
    """Hold the project's lock for the daemon's lifetime.

    The operating system's lock (`flock`) on the file decides between starters on this host:
    the kernel releases it when its holder ends, however it ends, so two starters can never
    both win. The file also names its holder, and a holder on another host (a store on a
    shared disk, which `flock` may not span) still counts while its heartbeat is younger than
    `STALE_AFTER`.
    """
    path = store.path.with_name(f"{store.path.stem}.{project}.daemon.lock")
    fd = _flock(path)
    if fd is None:
        raise Locked(f"a daemon already runs {project} ({_holder_text(path)}; lock {path})")
    try:
        holder = _holder(path)
        if holder and holder[1] != socket.gethostname() and _beating(store, project, holder[1]):
            raise Locked(f"a daemon already runs {project} ({_holder_text(path)}; lock {path})")
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode(), 0)
        yield path
    finally:
        path.unlink(missing_ok=True)  # before unlocking: a starter waiting on it sees a new file
        os.close(fd)


def _flock(path: Path) -> int | None:
    """A descriptor of `path` holding its exclusive lock, or None when another process holds it.
    A file unlinked by its last holder between our open and our lock is opened anew."""
    while True:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _holder(path: Path) -> tuple[int, str] | None:
    """The pid and host the lock file names (None when empty or unreadable)."""
    try:
        holder = json.loads(path.read_text())
        return int(holder["pid"]), str(holder["host"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _holder_text(path: Path) -> str:
    holder = _holder(path)
    return f"pid {holder[0]} on {holder[1]}" if holder else "holder unknown"


def _beating(store: Store, project: str, host: str) -> bool:
    beat = store.read_heartbeat(f"{project}@{host}")
    return beat is not None and beat.state != "stopped" and now() - beat.beat <= STALE_AFTER


def _running_here(pid: int) -> bool:
    """Whether a process with this id runs on this host (a signal-0 probe; a zombie, ended but
    not yet reaped by its parent, does not count)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): the probe's answer stands
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def steps(settings: Settings, project: Project, store: Store, reports: Path) -> list[Step]:
    """The daemon's steps in the order they run."""

    def sync_step() -> str:
        return sync.run(settings, project.name, store=store).summary()

    def validate_step() -> str:
        result = validate_store(settings, project, store)
        if result is None:
            return f"{project.name}: nothing to validate yet"
        html = write_report(result, reports / project.name)[1]
        return (
            f"{project.name}: validated {result.run.records} record(s): {result.errors} "
            f"problem(s), {result.advisories} advisory, {len(result.accepted)} accepted; "
            f"report {html}"
        )

    def remind_step() -> str:
        api = Gateway.open(settings, project.name)
        return "; ".join(remind(settings, project, store, api, now=now()))

    actions = [("sync", sync_step), ("validate", validate_step)]
    if project.study.reminders is not None:
        actions.append(("remind", remind_step))
    minutes = {
        "sync": settings.sync_minutes,
        "validate": settings.validate_minutes,
        "remind": settings.remind_minutes,
    }
    return [Step(name, minutes[name], action) for name, action in actions]


def run_daemon(
    settings: Settings,
    project: Project,
    *,
    once: bool = False,
    reports: Path = Path("var/reports"),
    say: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> list[str]:
    """Run the steps on their schedule until stopped (or one cycle with `once`); returns the
    summaries of the steps run. Each step is logged as one structured line (or handed to `say`,
    as the demo does). A failing step is logged and retried at its next turn."""
    stop = stop or threading.Event()
    done: list[str] = []
    with Store.open(settings) as store, daemon_lock(store, project.name):
        name = daemon_name(project.name)
        plan = steps(settings, project, store, reports)
        scheduler = schedule.Scheduler()

        def turn(step: Step) -> None:
            if stop.is_set():
                return
            store.heartbeat(name, step.name)
            outcome = "ok"
            try:
                summary = step.action()
            except HektaError as exc:
                outcome, summary = "failed", f"{project.name}: {step.name} failed: {exc}"
            except (
                Exception
            ) as exc:  # an unforeseen fault must not end a daemon that runs for years
                logger.debug("step %s failed", step.name, exc_info=True)
                kind = type(exc).__name__
                outcome, summary = "failed", f"{project.name}: {step.name} failed: {kind}: {exc}"
            done.append(summary)
            if say is None:  # structured: the summary holds counts and paths, never values
                logger.info(
                    line(
                        "step",
                        project=project.name,
                        step=step.name,
                        outcome=outcome,
                        summary=summary,
                    )
                )
            else:
                say(summary)
            store.heartbeat(name, "idle")

        for step in plan:
            scheduler.every(step.minutes).minutes.do(turn, step)
        with _stopping_on_signals(stop):
            for step in plan:  # every step once at start, in order
                turn(step)
            last_beat = now()
            while not once and not stop.is_set():
                scheduler.run_pending()
                if now() - last_beat >= BEAT_EVERY:
                    store.heartbeat(name, "idle")
                    last_beat = now()
                stop.wait(TICK_SECONDS)
        store.heartbeat(name, "stopped")
    return done


@contextmanager
def _stopping_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set `stop`: the loop ends after the step that is running."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    for s in previous:
        signal.signal(s, lambda *_: stop.set())
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@dataclass
class Status:
    """What `hekta-redcap status` shows."""

    runs: list[sync.SyncRun]
    lag: dt.timedelta | None
    problems: int
    alive: bool
    beat: str
    to_check: int = 0  # reminders a person must check (maybe sent, or refused)
    notes: list[str] = field(default_factory=list)  # what stops the reminders as a whole
    data: str = ""  # the open data problems in one line (`report.overview_line`)

    def render(self, project: str) -> str:
        lines = [f"{project}: daemon {'alive' if self.alive else 'not running'} ({self.beat})"]
        lines += [f"  ! {note}" for note in self.notes]
        lag = f"{self.lag.total_seconds() / 60:.0f} min" if self.lag is not None else "never synced"
        lines.append(f"  lag since the last successful sync: {lag}")
        lines.append(f"  open data problems: {self.data or self.problems}")
        if self.to_check:
            lines.append(
                f"  reminders a person must check: {self.to_check} "
                f"(hekta-redcap outbox --project {project})"
            )
        lines.append("  last runs:" if self.runs else "  no sync runs yet")
        lines += [f"    {shown_time(r.started)} {r.outcome:6} {r.summary()}" for r in self.runs]
        return "\n".join(lines)


def status(
    settings: Settings, project: str, runs: int = 5, definitions: Project | None = None
) -> Status:
    """What `hekta-redcap status` shows; with the project's `definitions`, also what stops its
    reminders as a whole (surveys off in REDCap, as the last sync saw it)."""
    with Store.open(settings) as store:
        last = store.last_runs(project, runs)
        ok = [r for r in last if r.outcome == "ok"]
        lag = now() - ok[0].ended if ok else None
        beat = store.read_heartbeat(daemon_name(project))
        alive = (
            beat is not None
            and beat.state != "stopped"
            and (now() - beat.beat < ALIVE_WITHIN or _running_here(beat.pid))
        )
        shown = (
            f"last beat {local(beat.beat):%Y-%m-%d %H:%M:%S}, {beat.state}"
            if beat
            else "no heartbeat"
        )
        checks = len(Outbox(store, project).needing_a_person())
        notes = notices(definitions, store.project_info(project), "en") if definitions else []
        problems = pd.DataFrame(store.open_problems(project))
        accepted = pd.DataFrame(list(store.acceptances(project).values()))
        data = overview_line(overview(problems, accepted))
        return Status(last, lag, len(problems), alive, shown, checks, notes, data)
