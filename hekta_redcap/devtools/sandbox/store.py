"""Persistence for the local REDCap-compatible server: one SQLite file per server.

The file holds every project the server knows, so a restarted server has the same projects,
records, users and files. WAL mode lets readers (tests, the demo) open the file while the
server writes. Requests are applied one at a time inside a transaction: REDCap's API is
all-or-nothing per call, and serialising calls is what makes that simple to guarantee here.

Record data is kept as one JSON object per record × event × repeat instance (`data.vals`),
which is how REDCap's exports are shaped; exporting 30,000 rows is then 30,000 JSON loads, not
millions of EAV tuples.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS server (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS project (project_id INTEGER PRIMARY KEY, info TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS metadata (
    project_id INTEGER NOT NULL, position INTEGER NOT NULL, row TEXT NOT NULL,
    PRIMARY KEY (project_id, position));
CREATE TABLE IF NOT EXISTS instrument (
    project_id INTEGER NOT NULL, form_name TEXT NOT NULL, label TEXT NOT NULL,
    PRIMARY KEY (project_id, form_name));
CREATE TABLE IF NOT EXISTS arm (
    project_id INTEGER NOT NULL, arm_num INTEGER NOT NULL, name TEXT NOT NULL,
    PRIMARY KEY (project_id, arm_num));
CREATE TABLE IF NOT EXISTS event (
    event_id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, arm_num INTEGER NOT NULL,
    event_name TEXT NOT NULL, custom_event_label TEXT NOT NULL DEFAULT '',
    day_offset REAL, offset_min REAL, offset_max REAL);
CREATE TABLE IF NOT EXISTS form_event (
    project_id INTEGER NOT NULL, event_id INTEGER NOT NULL, form_name TEXT NOT NULL,
    PRIMARY KEY (project_id, event_id, form_name));
-- event_id 0 in a classic project, form_name '' when a whole event repeats
CREATE TABLE IF NOT EXISTS repeating (
    project_id INTEGER NOT NULL, event_id INTEGER NOT NULL, form_name TEXT NOT NULL,
    custom_form_label TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (project_id, event_id, form_name));
CREATE TABLE IF NOT EXISTS record (
    project_id INTEGER NOT NULL, record TEXT NOT NULL, dag_id INTEGER,
    created TEXT NOT NULL, modified TEXT NOT NULL,
    PRIMARY KEY (project_id, record));
CREATE INDEX IF NOT EXISTS record_modified ON record (project_id, modified);
-- event_id 0 in a classic project, repeat_instrument '' and instance 0 when not repeating
CREATE TABLE IF NOT EXISTS data (
    project_id INTEGER NOT NULL, record TEXT NOT NULL, event_id INTEGER NOT NULL,
    repeat_instrument TEXT NOT NULL, instance INTEGER NOT NULL, vals TEXT NOT NULL,
    PRIMARY KEY (project_id, record, event_id, repeat_instrument, instance));
CREATE TABLE IF NOT EXISTS user (
    project_id INTEGER NOT NULL, username TEXT NOT NULL, token TEXT UNIQUE,
    rights TEXT NOT NULL, PRIMARY KEY (project_id, username));
CREATE TABLE IF NOT EXISTS role (
    role_id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, unique_role_name TEXT NOT NULL,
    role_label TEXT NOT NULL, rights TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS user_role (
    project_id INTEGER NOT NULL, username TEXT NOT NULL, role_id INTEGER NOT NULL,
    PRIMARY KEY (project_id, username));
CREATE TABLE IF NOT EXISTS dag (
    dag_id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, name TEXT NOT NULL,
    unique_name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS user_dag (
    project_id INTEGER NOT NULL, username TEXT NOT NULL, dag_id INTEGER NOT NULL,
    PRIMARY KEY (project_id, username));
CREATE TABLE IF NOT EXISTS log (
    log_id INTEGER PRIMARY KEY AUTOINCREMENT, project_id INTEGER NOT NULL, ts TEXT NOT NULL,
    username TEXT NOT NULL, action TEXT NOT NULL, details TEXT NOT NULL DEFAULT '',
    record TEXT, event TEXT, kind TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS log_project ON log (project_id, ts);
CREATE TABLE IF NOT EXISTS document (
    doc_id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, name TEXT NOT NULL,
    mime TEXT NOT NULL, content BLOB NOT NULL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS repo_folder (
    folder_id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, parent_id INTEGER,
    name TEXT NOT NULL, dag_id INTEGER, role_id INTEGER);
CREATE TABLE IF NOT EXISTS repo_file (
    doc_id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, folder_id INTEGER);
CREATE TABLE IF NOT EXISTS survey (
    project_id INTEGER NOT NULL, form_name TEXT NOT NULL, settings TEXT NOT NULL,
    PRIMARY KEY (project_id, form_name));
CREATE TABLE IF NOT EXISTS participant (
    participant_id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, form_name TEXT NOT NULL,
    event_id INTEGER NOT NULL, record TEXT, instance INTEGER NOT NULL DEFAULT 1,
    email TEXT NOT NULL DEFAULT '', identifier TEXT NOT NULL DEFAULT '',
    hash TEXT NOT NULL UNIQUE, access_code TEXT NOT NULL, return_code TEXT NOT NULL,
    invitation_sent INTEGER NOT NULL DEFAULT 0, invitation_time TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS report (
    report_id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, definition TEXT NOT NULL);
-- REDCap's randomization module: a randomization's target and strata fields, each with the
-- event holding it (JSON [[field, event_id], ...], the DAG by its column name), and its two
-- allocation tables (production 0/1), slots in table order. A slot is used once it names a
-- record. Unused slots never leave the server. (No semicolons here: the schema splits on them.)
CREATE TABLE IF NOT EXISTS randomization (
    rid INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, target TEXT NOT NULL,
    target_event INTEGER NOT NULL, strata TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS allocation (
    rid INTEGER NOT NULL, production INTEGER NOT NULL, slot INTEGER NOT NULL,
    target_value TEXT NOT NULL, strata TEXT NOT NULL,
    record TEXT, allocated TEXT, username TEXT,
    PRIMARY KEY (rid, production, slot));
CREATE INDEX IF NOT EXISTS allocation_record ON allocation (rid, record);
"""


class Store:
    """The server's SQLite file. Use `transaction()` for every request."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._lock = threading.RLock()
        with self.transaction() as conn:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(
                "INSERT OR IGNORE INTO server VALUES ('schema_version', ?)", (SCHEMA_VERSION,)
            )

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One request: everything it writes is committed together, or not at all."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def setting(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM server WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_setting(self, key: str, value: str) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO server VALUES (?, ?)", (key, value))

    def close(self) -> None:
        with self._lock:
            self._conn.close()
