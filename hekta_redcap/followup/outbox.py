"""The reminder outbox: one row per message (or nurse task, or digest) in the store, keyed by
what the message is, so that it is sent at most once whatever happens to the process.

The key is deterministic: `project/record/event/step/channel` (a digest:
`project/digest/<group>/<day>/email`). The engine writes the intent (status `intent`) and
commits it before it calls the provider, and the provider's answer after:

- `sent`: the provider took it;
- `failed`: the provider certainly did not (tried again on later passes, up to
  `followup.MAX_ATTEMPTS` attempts, then listed for a person);
- `maybe_sent`: the answer is unknown (a timeout, or the process died between intent and
  answer): never sent again automatically, listed until a person resolves it (`resolve`).

    >>> box = Outbox(store, "hekta")
    >>> box.orphans_to_maybe_sent()        # at the start of a pass, under the daemon lock
    >>> if box.intend(key, due=day, at=now): ...send..., then box.answer(key, "sent", "HTTP 202")

Answers hold no personal data: provider ids, status codes, error class names.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from dataclasses import dataclass

import pandas as pd

from hekta_redcap.core.clock import stamp
from hekta_redcap.core.errors import HektaError
from hekta_redcap.data.store import Store
from hekta_redcap.followup.channels import Channel, Message, NotSent
from hekta_redcap.followup.schedule import HISTORY, MAX_ATTEMPTS, TAKEN

PARTICIPANT_CHANNELS = ("sms", "email")
TASK = "task"  # the channel of a nurse task: nothing is sent, the worklist shows it


@dataclass(frozen=True)
class Key:
    project: str
    record: str
    event: str
    step: str
    channel: str

    def __str__(self) -> str:
        return "/".join((self.project, self.record, self.event, self.step, self.channel))


@dataclass(frozen=True)
class Entry:
    """An outbox row as listed for people (no addresses or texts are stored)."""

    key: str
    record: str
    event: str
    step: str
    channel: str
    status: str
    attempts: int
    at: str
    answer: str


def deliver(channel: Channel, message: Message) -> tuple[str, str]:
    """Send through a channel: (outbox status, answer). Only a certain refusal is `failed`;
    any other failure once the intent is written leaves the outcome unknown."""
    try:
        return "sent", channel.send(message)
    except NotSent as exc:
        return "failed", str(exc)
    except Exception as exc:
        return "maybe_sent", f"outcome unknown: {type(exc).__name__}"


class Outbox:
    def __init__(self, store: Store, project: str) -> None:
        self.store, self.project = store, project
        self.run = f"{socket.gethostname()}:{os.getpid()}"

    def orphans_to_maybe_sent(self) -> int:
        """Intents left by a process that died between intent and answer become `maybe_sent`
        (call it only while holding the project's daemon lock, so no live pass owns them)."""
        with self.store.transaction() as conn:
            changed = conn.execute(
                "UPDATE outbox SET status = 'maybe_sent', answer = 'no answer recorded: the "
                "process stopped while sending' WHERE project = ? AND status = 'intent'",
                (self.project,),
            ).rowcount
        return changed

    def intend(self, key: Key, due: dt.date | None, at: dt.datetime) -> bool:
        """Record the intent to send, committed before anything is sent. False when the
        message was already taken (sent, maybe sent, being sent) or has failed too often."""
        with self.store.transaction() as conn:
            found = conn.execute(
                "SELECT status, attempts FROM outbox WHERE key = ?", (str(key),)
            ).fetchone()
            if found is None:
                conn.execute(
                    "INSERT INTO outbox (key, project, record, event, step, channel, status, "
                    "attempts, due, at, pass) VALUES (?, ?, ?, ?, ?, ?, 'intent', 1, ?, ?, ?)",
                    (
                        str(key),
                        key.project,
                        key.record,
                        key.event,
                        key.step,
                        key.channel,
                        due.isoformat() if due else None,
                        stamp(at),
                        self.run,
                    ),
                )
                return True
            status, attempts = found
            if status in TAKEN or attempts >= MAX_ATTEMPTS:
                return False
            conn.execute(
                "UPDATE outbox SET status = 'intent', attempts = attempts + 1, at = ?, pass = ?, "
                "answered = NULL WHERE key = ?",
                (stamp(at), self.run, str(key)),
            )
            return True

    def answer(self, key: Key, status: str, answer: str, at: dt.datetime) -> None:
        if status not in ("sent", "failed", "maybe_sent"):
            raise ValueError(f"not an answer status: {status}")
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE outbox SET status = ?, answer = ?, answered = ? WHERE key = ?",
                (status, answer[:500], stamp(at), str(key)),
            )

    def history(self) -> pd.DataFrame:
        """The project's rows as the worklist reads them (columns `followup.HISTORY`)."""
        found = self.store.conn.execute(
            "SELECT record, event, step, channel, status, attempts, at FROM outbox "
            "WHERE project = ?",
            (self.project,),
        ).fetchall()
        frame = pd.DataFrame(found, columns=list(HISTORY), dtype=object)
        frame["at"] = [dt.datetime.fromisoformat(v) if v else None for v in frame["at"]]
        return frame

    def sent_on(self, record: str, start: dt.datetime, end: dt.datetime) -> int:
        """Messages to a participant whose intent falls in [start, end) (the daily cap)."""
        return self.store.conn.execute(
            "SELECT count(*) FROM outbox WHERE project = ? AND record = ? AND channel IN "
            "(?, ?) AND status IN (?, ?, ?) AND at >= ? AND at < ?",
            (self.project, record, *PARTICIPANT_CHANNELS, *TAKEN, stamp(start), stamp(end)),
        ).fetchone()[0]

    def needing_a_person(self) -> list[Entry]:
        """Messages a person must check: maybe sent, or refused too often."""
        found = self.store.conn.execute(
            "SELECT key, record, event, step, channel, status, attempts, at, answer FROM outbox "
            "WHERE project = ? AND (status = 'maybe_sent' OR (status = 'failed' AND "
            "attempts >= ?)) ORDER BY at",
            (self.project, MAX_ATTEMPTS),
        ).fetchall()
        return [Entry(*row) for row in found]

    def resolve(self, key: str, sent: bool, at: dt.datetime) -> None:
        """A person's verdict on a message needing one: sent (kept, never sent again) or not
        sent (removed, so the step is due again)."""
        found = self.store.conn.execute(
            "SELECT status FROM outbox WHERE key = ? AND project = ?", (key, self.project)
        ).fetchone()
        if found is None or found[0] not in ("maybe_sent", "failed"):
            raise HektaError(f"no message needing a check has the key {key}")
        with self.store.transaction() as conn:
            if sent:
                conn.execute(
                    "UPDATE outbox SET status = 'sent', answer = 'confirmed sent by a person', "
                    "answered = ? WHERE key = ?",
                    (stamp(at), key),
                )
            else:
                conn.execute("DELETE FROM outbox WHERE key = ?", (key,))
