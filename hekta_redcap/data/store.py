"""The local store: one SQLite file (setting `HEKTA_STORE`, default `var/hekta.sqlite3`) that the
sync engine and the validation step write and the follow-up, reminder, export and status code
read; the reminder engine writes its outbox (outbox.py). Nothing else writes it.

    >>> with Store.open(settings) as store:
    ...     rows = store.raw_rows("hekta")           # the project's records as REDCap exports them
    ...     runs = store.last_runs("hekta", 5)

What it holds, per project:

- `raw_row`: each row exactly as REDCap's flat JSON export returned it, keyed by record,
  event, repeat instrument and instance (`''`/0 where they do not apply), with its place among
  the record's rows. A row is kept as the JSON array of its values and its `raw_template`, the
  export's columns in order (the same for every row of an export): column names are most of
  the bytes of a row as REDCap sends it, so this keeps the store, and what a sync writes,
  several times smaller while `raw_rows()` returns the export exactly;
- `record_state`: per record a digest of its rows, when it was first seen and last changed, so
  a sync writes only records whose content changed;
- `sync_run`: every finished sync (kind, start, end, outcome, counts, a one-line error that
  holds no personal data); a run killed before it finished leaves no row;
- `sync_state`: the cursor (the time taken just before the last successful run's first
  export; the overlap margin is applied when it is read) and the hash of the data dictionary
  that run saw;
- `problem`: the open validation problems, each with when it was first seen;
- `typed_<project>`: the validated, typed data, one table per project (neither one per
  instrument nor a generic long table): validation's typed frame as it is, one row per export
  row and one column per value, holding SQLite's integer, real or text (booleans 0/1, dates
  ISO text, durations seconds), so that SQL reads it directly. A long table was measured at
  about 4 µs per value written (a 10,000-participant trial holds millions); this is one row
  per export row. `typed_column` keeps each column's pandas dtype so `typed()` rebuilds the
  frame. The table follows the definitions, so each validation rebuilds it whole and it is not
  part of the migrations;
- `heartbeat`: the daemon's last beat (id, pid, host, state);
- `outbox`: every reminder, nurse task and digest, keyed by what it is (see outbox.py).

The schema is versioned: `schema_version` holds the version reached and `MIGRATIONS` the ordered
steps, each applied once in its own transaction when the store is opened. A released migration
never changes; a new schema is a new step. Writes of a sync are committed in one transaction
(`transaction()`), so a reader sees the state before a run or after it, never in between. Times
are ISO 8601 with the local UTC offset, to the second.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import sqlite3
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from hekta_redcap.core.clock import now, parse, stamp
from hekta_redcap.core.errors import HektaError
from hekta_redcap.core.settings import Settings
from hekta_redcap.redcap.names import EVENT, REPEAT_INSTANCE, REPEAT_INSTRUMENT, natural_key

if TYPE_CHECKING:
    import pandas as pd

BUSY_TIMEOUT_MS = 60_000
Key = tuple[str, str, str, int]  # record, event, repeat instrument, instance
# The problem table's columns taken from each problem (in table order), and those that say
# which problem it is, so that it keeps its first-seen time across validation runs.
PROBLEM_KEYS = ("record", "event", "instance", "instrument", "field", "rule", "severity")
PROBLEM_IDENTITY = ("record", "event", "instance", "field", "rule")


def row_key(record: str, row: Mapping[str, Any]) -> Key:
    """Where a flat export row belongs: REDCap leaves the event blank in classic projects and
    the repeat columns blank (or absent) on rows that do not repeat."""
    instance = row.get(REPEAT_INSTANCE)
    return (
        record,
        str(row.get(EVENT) or ""),
        str(row.get(REPEAT_INSTRUMENT) or ""),
        int(instance) if instance not in (None, "") else 0,
    )


# -- migrations ------------------------------------------------------------------------------


def _script(conn: sqlite3.Connection, sql: str) -> None:
    """Statements one by one (`executescript` would commit the migration's transaction)."""
    for statement in sql.split(";"):
        if statement.strip():
            conn.execute(statement)


def _v1(conn: sqlite3.Connection) -> None:
    _script(
        conn,
        """
        CREATE TABLE raw_template (
            project TEXT NOT NULL, template TEXT NOT NULL, columns TEXT NOT NULL,
            PRIMARY KEY (project, template)) WITHOUT ROWID;
        CREATE TABLE raw_row (
            project TEXT NOT NULL, record TEXT NOT NULL, event TEXT NOT NULL,
            repeat_instrument TEXT NOT NULL, instance INTEGER NOT NULL,
            position INTEGER NOT NULL, template TEXT NOT NULL, row TEXT NOT NULL,
            UNIQUE (project, record, event, repeat_instrument, instance));
        CREATE TABLE record_state (
            project TEXT NOT NULL, record TEXT NOT NULL, digest TEXT NOT NULL,
            rows INTEGER NOT NULL, first_seen TEXT NOT NULL, changed TEXT NOT NULL,
            PRIMARY KEY (project, record)) WITHOUT ROWID;
        CREATE TABLE sync_run (
            id INTEGER PRIMARY KEY, project TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('full', 'incremental')), reason TEXT NOT NULL,
            started TEXT NOT NULL, ended TEXT NOT NULL,
            outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'failed')),
            requested INTEGER NOT NULL, changed INTEGER NOT NULL, deleted INTEGER NOT NULL,
            error TEXT NOT NULL DEFAULT '');
        CREATE INDEX sync_run_project ON sync_run (project, id);
        CREATE TABLE sync_state (
            project TEXT PRIMARY KEY, cursor TEXT NOT NULL, dictionary_hash TEXT NOT NULL,
            run_id INTEGER NOT NULL REFERENCES sync_run (id));
        CREATE TABLE problem (
            project TEXT NOT NULL, position INTEGER NOT NULL, record TEXT NOT NULL,
            event TEXT NOT NULL, instance TEXT NOT NULL, instrument TEXT NOT NULL,
            field TEXT NOT NULL, rule TEXT NOT NULL, severity TEXT NOT NULL,
            first_seen TEXT NOT NULL, data TEXT NOT NULL,
            PRIMARY KEY (project, position));
        CREATE TABLE typed_column (
            project TEXT NOT NULL, position INTEGER NOT NULL, name TEXT NOT NULL,
            dtype TEXT NOT NULL, categories TEXT,
            PRIMARY KEY (project, position));
        CREATE TABLE heartbeat (
            daemon TEXT PRIMARY KEY, pid INTEGER NOT NULL, host TEXT NOT NULL,
            started TEXT NOT NULL, beat TEXT NOT NULL, state TEXT NOT NULL);
        """,
    )


def _v2(conn: sqlite3.Connection) -> None:
    """The reminder outbox (see outbox.py): one row per message, keyed by what it is."""
    _script(
        conn,
        """
        CREATE TABLE outbox (
            key TEXT PRIMARY KEY, project TEXT NOT NULL, record TEXT NOT NULL,
            event TEXT NOT NULL, step TEXT NOT NULL, channel TEXT NOT NULL,
            status TEXT NOT NULL, attempts INTEGER NOT NULL, due TEXT, at TEXT NOT NULL,
            answered TEXT, answer TEXT NOT NULL DEFAULT '', pass TEXT NOT NULL)
            WITHOUT ROWID;
        CREATE INDEX outbox_record ON outbox (project, record);
        """,
    )


def _v3(conn: sqlite3.Connection) -> None:
    """The project information REDCap gave the last successful run (surveys on or off ...)."""
    conn.execute("ALTER TABLE sync_state ADD COLUMN info TEXT NOT NULL DEFAULT '{}'")


def _v4(conn: sqlite3.Connection) -> None:
    """Values a person checked and found right (`hekta-redcap problems accept`): not listed
    again while the value stays the one they checked (`digest`)."""
    _script(
        conn,
        """
        CREATE TABLE accepted (
            project TEXT NOT NULL, record TEXT NOT NULL, event TEXT NOT NULL,
            instance TEXT NOT NULL, field TEXT NOT NULL, rule TEXT NOT NULL,
            digest TEXT NOT NULL, reason TEXT NOT NULL, by TEXT NOT NULL, at TEXT NOT NULL,
            PRIMARY KEY (project, record, event, instance, field)) WITHOUT ROWID;
        """,
    )


# In order; version N is reached by applying the first N. Append only.
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_v1, _v2, _v3, _v4)


# -- what readers and the sync engine exchange ------------------------------------------------


@dataclass(frozen=True)
class Staged:
    """A record whose rows changed: its digest and its rows as (key, template id, values as a
    JSON array), in export order."""

    record: str
    digest: str
    rows: list[tuple[Key, str, str]]


@dataclass(frozen=True)
class SyncRun:
    """A finished sync run (`outcome` ok or failed; counts are records)."""

    project: str
    kind: str
    reason: str
    started: dt.datetime
    ended: dt.datetime
    outcome: str
    requested: int = 0
    changed: int = 0
    deleted: int = 0
    error: str = ""
    id: int | None = None

    @property
    def seconds(self) -> float:
        return (self.ended - self.started).total_seconds()

    def summary(self) -> str:
        """One line for people: what ran, what it did, how long it took."""
        why = f" ({self.reason})" if self.reason else ""
        did = f"{self.kind} sync{why}: {self.requested} record(s) requested, {self.changed} "
        did += f"changed, {self.deleted} deleted in {self.seconds:.1f} s"
        return f"{self.project}: {did}" + (f"; failed: {self.error}" if self.error else "")


@dataclass(frozen=True)
class Heartbeat:
    """A daemon's last sign of life: who (id, pid, host), since when, and what it was doing."""

    daemon: str
    pid: int
    host: str
    started: dt.datetime
    beat: dt.datetime
    state: str


# -- the store -------------------------------------------------------------------------------


class Store:
    """The open store. Reads need no transaction; every write happens inside `transaction()`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            self.conn.execute("PRAGMA journal_mode = WAL")
            # a committed run survives a power cut, not only a killed process
            self.conn.execute("PRAGMA synchronous = FULL")
            self.conn.execute("PRAGMA foreign_keys = ON")
            self.conn.execute("PRAGMA temp_store = FILE")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise HektaError(f"cannot open the store {path}: {exc}") from None

    @classmethod
    def open(cls, settings: Settings) -> Store:
        """The store named by `HEKTA_STORE` (default `var/hekta.sqlite3`)."""
        return cls(settings.store)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (taking the write lock at once): all of it or none of it."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    @property
    def version(self) -> int:
        found = self.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        ).fetchone()
        if not found:
            return 0
        return self.conn.execute("SELECT max(version) FROM schema_version").fetchone()[0] or 0

    def _migrate(self) -> None:
        if self.version > len(MIGRATIONS):
            raise HektaError(
                f"the store {self.path} has schema version {self.version}, newer than this "
                f"toolkit's {len(MIGRATIONS)}: upgrade hekta-redcap"
            )
        while self.version < len(MIGRATIONS):
            with self.transaction() as conn:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_version "
                    "(version INTEGER PRIMARY KEY, applied TEXT NOT NULL)"
                )
                version = self.version  # another process may have migrated meanwhile
                if version < len(MIGRATIONS):
                    MIGRATIONS[version](conn)
                    conn.execute(
                        "INSERT INTO schema_version VALUES (?, ?)", (version + 1, stamp(now()))
                    )

    # -- raw records -----------------------------------------------------------------------

    def raw_rows(self, project: str) -> list[dict[str, Any]]:
        """The project's rows as REDCap exported them, in REDCap's order (records by natural
        order, then each record's rows as exported)."""
        columns = {
            r[0]: orjson.loads(r[1])
            for r in self.conn.execute(
                "SELECT template, columns FROM raw_template WHERE project = ?", (project,)
            )
        }
        found = self.conn.execute(
            "SELECT record, template, row FROM raw_row WHERE project = ? ORDER BY record, position",
            (project,),
        ).fetchall()
        found.sort(key=lambda r: natural_key(r[0]))  # stable: keeps each record's order
        return [dict(zip(columns[r[1]], orjson.loads(r[2]), strict=True)) for r in found]

    def record_digests(self, project: str) -> dict[str, str]:
        """record -> digest of its rows as last stored."""
        return dict(
            self.conn.execute(
                "SELECT record, digest FROM record_state WHERE project = ?", (project,)
            ).fetchall()
        )

    def begin_staging(self) -> None:
        """Start staging a run's records in temporary tables (this connection's own file, not
        the store's): a run keeps one batch in memory and holds no lock while it fetches."""
        _script(
            self.conn,
            """
            CREATE TEMP TABLE IF NOT EXISTS staged_template (
                template TEXT PRIMARY KEY, columns TEXT NOT NULL);
            CREATE TEMP TABLE IF NOT EXISTS staged_row (
                record TEXT NOT NULL, event TEXT NOT NULL, repeat_instrument TEXT NOT NULL,
                instance INTEGER NOT NULL, position INTEGER NOT NULL, template TEXT NOT NULL,
                row TEXT NOT NULL);
            CREATE TEMP TABLE IF NOT EXISTS staged_record (
                record TEXT PRIMARY KEY, digest TEXT NOT NULL, rows INTEGER NOT NULL);
            DELETE FROM temp.staged_template;
            DELETE FROM temp.staged_row;
            DELETE FROM temp.staged_record;
            """,
        )

    def stage(self, records: Iterable[Staged], templates: Mapping[str, str]) -> None:
        """Stage records whose content changed, and the templates (id -> columns as JSON)
        their rows name."""
        rows, states = [], []
        for staged in records:
            rows += [(*key, i, *row) for i, (key, *row) in enumerate(staged.rows)]
            states.append((staged.record, staged.digest, len(staged.rows)))
        self.conn.executemany(
            "INSERT OR IGNORE INTO temp.staged_template VALUES (?, ?)", templates.items()
        )
        self.conn.executemany("INSERT INTO temp.staged_row VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        self.conn.executemany("INSERT INTO temp.staged_record VALUES (?, ?, ?)", states)

    def apply_staged(self, project: str, when: dt.datetime) -> None:
        """Inside a transaction: the staged records replace what is stored for them. Two rows
        with the same key (an export that repeats a row) fail the transaction."""
        assert self.conn.in_transaction
        changed = stamp(when)
        added = self.conn.execute(
            "INSERT OR IGNORE INTO raw_template SELECT ?, template, columns "
            "FROM temp.staged_template",
            (project,),
        ).rowcount
        self.conn.execute(
            "DELETE FROM raw_row WHERE project = ? AND record IN "
            "(SELECT record FROM temp.staged_record)",
            (project,),
        )
        self.conn.execute(
            "INSERT INTO raw_row SELECT ?, record, event, repeat_instrument, instance, position, "
            "template, row FROM temp.staged_row",
            (project,),
        )
        self.conn.execute(
            "INSERT INTO record_state SELECT ?, record, digest, rows, ?, ? FROM "
            "temp.staged_record WHERE true ON CONFLICT DO UPDATE SET digest = excluded.digest, "
            "rows = excluded.rows, changed = excluded.changed",
            (project, changed, changed),
        )
        if added:  # a new template (the dictionary changed) may leave an old one unused
            self.conn.execute(
                "DELETE FROM raw_template WHERE project = ? AND template NOT IN "
                "(SELECT template FROM raw_row WHERE project = ?)",
                (project, project),
            )

    def delete_records(self, project: str, records: Collection[str]) -> None:
        """Inside a transaction: forget records deleted in REDCap."""
        assert self.conn.in_transaction
        for record in records:
            for table in ("raw_row", "record_state"):
                self.conn.execute(
                    f"DELETE FROM {table} WHERE project = ? AND record = ?", (project, record)
                )
        found = self.conn.execute(
            "SELECT name FROM typed_column WHERE project = ? AND position = 0", (project,)
        ).fetchone()
        if found:  # the typed data loses the records too, until validation rebuilds it
            self.conn.executemany(
                f"DELETE FROM {_quote(f'typed_{project}')} WHERE {_quote(found[0])} = ?",
                [(record,) for record in records],
            )

    # -- sync runs -------------------------------------------------------------------------

    def finish_run(
        self,
        run: SyncRun,
        cursor: dt.datetime | None = None,
        dictionary_hash: str = "",
        info: Mapping[str, Any] | None = None,
    ) -> int:
        """Inside a transaction: record a finished run; a successful one also moves the cursor
        and remembers the dictionary and the project information it saw. Returns the run's
        id."""
        assert self.conn.in_transaction
        run_id = self.conn.execute(
            "INSERT INTO sync_run (project, kind, reason, started, ended, outcome, requested, "
            "changed, deleted, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run.project,
                run.kind,
                run.reason,
                stamp(run.started),
                stamp(run.ended),
                run.outcome,
                run.requested,
                run.changed,
                run.deleted,
                run.error,
            ),
        ).lastrowid
        if run.outcome == "ok":
            assert cursor is not None and dictionary_hash
            self.conn.execute(
                "INSERT OR REPLACE INTO sync_state VALUES (?, ?, ?, ?, ?)",
                (
                    run.project,
                    stamp(cursor),
                    dictionary_hash,
                    run_id,
                    orjson.dumps(info or {}).decode(),
                ),
            )
        return int(run_id or 0)

    def last_runs(self, project: str, n: int = 10) -> list[SyncRun]:
        """The project's last `n` finished runs, newest first."""
        found = self.conn.execute(
            "SELECT project, kind, reason, started, ended, outcome, requested, changed, deleted, "
            "error, id FROM sync_run WHERE project = ? ORDER BY id DESC LIMIT ?",
            (project, n),
        )
        return [
            SyncRun(name, kind, reason, parse(started), parse(ended), *rest)
            for name, kind, reason, started, ended, *rest in found
        ]

    def cursor(self, project: str) -> tuple[dt.datetime, str] | None:
        """The last successful run's cursor and the dictionary hash it saw (None: never)."""
        found = self.conn.execute(
            "SELECT cursor, dictionary_hash FROM sync_state WHERE project = ?", (project,)
        ).fetchone()
        return (parse(found[0]), found[1]) if found else None

    def project_info(self, project: str) -> dict[str, Any]:
        """REDCap's project information as the last successful run read it ({}: never)."""
        found = self.conn.execute(
            "SELECT info FROM sync_state WHERE project = ?", (project,)
        ).fetchone()
        return dict(orjson.loads(found[0])) if found else {}

    def last_full(self, project: str) -> dt.datetime | None:
        """When the last successful full run started."""
        found = self.conn.execute(
            "SELECT max(started) FROM sync_run WHERE project = ? AND kind = 'full' AND "
            "outcome = 'ok'",
            (project,),
        ).fetchone()[0]
        return parse(found) if found else None

    # -- validation ------------------------------------------------------------------------

    def set_problems(self, project: str, rows: Iterable[Mapping[str, Any]]) -> list[str]:
        """Replace the project's open problems with `rows` (the validation report's columns,
        kept whole); a problem still open keeps the time it was first seen. Returns each row's
        first-seen time."""
        when = stamp(now())
        with self.transaction() as conn:
            seen = {
                tuple(r[:-1]): r[-1]
                for r in conn.execute(
                    f"SELECT {', '.join(PROBLEM_IDENTITY)}, first_seen FROM problem "
                    "WHERE project = ?",
                    (project,),
                )
            }
            conn.execute("DELETE FROM problem WHERE project = ?", (project,))
            out = []
            for position, row in enumerate(rows):
                keys = {k: _text(row.get(k)) for k in PROBLEM_KEYS}
                first = seen.get(tuple(keys[k] for k in PROBLEM_IDENTITY), when)
                data = orjson.dumps(dict(row), option=orjson.OPT_SERIALIZE_NUMPY, default=str)
                out.append((project, position, *keys.values(), first, data.decode()))
            conn.executemany("INSERT INTO problem VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", out)
        return [row[-2] for row in out]

    def accept(self, project: str, accepted: Iterable[tuple[Mapping[str, Any], str, str]]) -> None:
        """Record, all at once, that open problems' values were checked and are right: each
        as (problem, reason, by); see `_v4`."""
        when = stamp(now())
        rows = [
            (
                project,
                *(_text(problem.get(k)) for k in ("record", "event", "instance", "field", "rule")),
                _text(problem.get("digest")),
                reason,
                by,
                when,
            )
            for problem, reason, by in accepted
        ]
        with self.transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO accepted VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
            )

    def acceptances(self, project: str) -> dict[tuple[str, str, str, str], dict[str, str]]:
        """(record, event, instance, field) -> digest, rule, reason, by and at of each value
        accepted."""
        found = self.conn.execute(
            "SELECT record, event, instance, field, digest, rule, reason, by, at FROM accepted "
            "WHERE project = ?",
            (project,),
        )
        names = ("digest", "rule", "reason", "by", "at")
        return {tuple(r[:4]): dict(zip(names, r[4:], strict=True)) for r in found}

    def open_problems(self, project: str) -> list[dict[str, Any]]:
        """The open problems as `set_problems` was given them, plus `first_seen`."""
        found = self.conn.execute(
            "SELECT data, first_seen FROM problem WHERE project = ? ORDER BY position", (project,)
        )
        return [{**orjson.loads(r[0]), "first_seen": r[1]} for r in found]

    def set_typed(self, project: str, frame: pd.DataFrame) -> None:
        """Replace the project's typed data with validation's typed frame (one row per export
        row, the record id first)."""
        import pandas as pd

        table, names = _quote(f"typed_{project}"), [_quote(str(c)) for c in frame.columns]
        columns = []
        for position, name in enumerate(frame.columns):
            kind, categories = frame[name].dtype, None
            if isinstance(kind, pd.CategoricalDtype):
                categories = orjson.dumps([str(c) for c in kind.categories]).decode()
            columns.append((project, position, str(name), str(kind), categories))
        values = zip(*(_storable(frame[name]) for name in frame.columns), strict=True)
        with self.transaction() as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
            conn.execute(f"CREATE TABLE {table} ({', '.join(names)})")
            index = _quote(f"typed_{project}_record")
            conn.execute(f"CREATE INDEX {index} ON {table} ({names[0]})")
            conn.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(names))})", values)
            conn.execute("DELETE FROM typed_column WHERE project = ?", (project,))
            conn.executemany("INSERT INTO typed_column VALUES (?, ?, ?, ?, ?)", columns)

    def typed(self, project: str) -> pd.DataFrame:
        """The typed frame `set_typed` stored, rows in their order, columns in their dtypes
        (without the rows of records deleted since)."""
        import pandas as pd

        columns = self.conn.execute(
            "SELECT name, dtype, categories FROM typed_column WHERE project = ? ORDER BY position",
            (project,),
        ).fetchall()
        if not columns:
            return pd.DataFrame()
        found = self.conn.execute(f"SELECT * FROM {_quote(f'typed_{project}')} ORDER BY rowid")
        frame = pd.DataFrame(found.fetchall(), columns=[c[0] for c in columns], dtype=object)
        for name, dtype, categories in columns:
            frame[name] = _restore(frame[name], dtype, categories)
        return frame

    # -- the daemon ------------------------------------------------------------------------

    def heartbeat(self, daemon: str, state: str = "running") -> None:
        """Record that `daemon` (this process) is alive and what it is doing."""
        when = stamp(now())
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO heartbeat VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET "
                "pid = excluded.pid, host = excluded.host, beat = excluded.beat, "
                "state = excluded.state, started = CASE WHEN heartbeat.pid = excluded.pid "
                "THEN heartbeat.started ELSE excluded.started END",
                (daemon, os.getpid(), socket.gethostname(), when, when, state),
            )

    def read_heartbeat(self, daemon: str | None = None) -> Heartbeat | None:
        """The latest beat of `daemon` (of any daemon when None), or None."""
        sql = "SELECT daemon, pid, host, started, beat, state FROM heartbeat"
        args: tuple[str, ...] = ()
        if daemon is not None:
            sql, args = sql + " WHERE daemon = ?", (daemon,)
        found = self.conn.execute(sql + " ORDER BY beat DESC LIMIT 1", args).fetchone()
        if not found:
            return None
        name, pid, host, started, beat, state = found
        return Heartbeat(name, pid, host, parse(started), parse(beat), state)

    def check(self) -> list[str]:
        """What is wrong with the file and its invariants (empty: consistent): SQLite's
        integrity check, raw rows and record states agreeing, cursors naming good runs."""
        problems = [r[0] for r in self.conn.execute("PRAGMA integrity_check") if r[0] != "ok"]
        problems += [
            f"record without state: {r[0]}/{r[1]}"
            for r in self.conn.execute(
                "SELECT DISTINCT project, record FROM raw_row EXCEPT "
                "SELECT project, record FROM record_state"
            )
        ]
        problems += [
            f"state without rows: {r[0]}/{r[1]}"
            for r in self.conn.execute(
                "SELECT project, record FROM record_state EXCEPT "
                "SELECT DISTINCT project, record FROM raw_row"
            )
        ]
        problems += [
            f"row without template: {r[0]}/{r[1]}"
            for r in self.conn.execute(
                "SELECT project, record FROM raw_row r WHERE NOT EXISTS (SELECT 1 FROM "
                "raw_template t WHERE t.project = r.project AND t.template = r.template)"
            )
        ]
        problems += [
            f"cursor of {r[0]} names a run that did not succeed"
            for r in self.conn.execute(
                "SELECT s.project FROM sync_state s LEFT JOIN sync_run r ON r.id = s.run_id "
                "WHERE r.outcome IS NOT 'ok' OR r.project != s.project"
            )
        ]
        return problems


def _text(value: Any) -> str:
    """A key part of a problem as text ('' for blank or NA)."""
    if value is None or value != value:  # NaN and NA are not equal to themselves
        return ""
    return str(value)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _storable(series: pd.Series) -> list[Any]:
    """A column as SQLite stores it: numbers as numbers, booleans as 0/1, dates and times as
    ISO text, durations as seconds, categories and text as text, missing as NULL."""
    import pandas as pd

    kind = series.dtype
    if pd.api.types.is_datetime64_any_dtype(kind):
        series = series.map(lambda v: v.isoformat(), na_action="ignore")
    elif pd.api.types.is_timedelta64_dtype(kind):
        series = series.dt.total_seconds()
    elif pd.api.types.is_bool_dtype(kind):
        series = series.astype("Int64")
    return series.astype(object).where(series.notna(), None).tolist()


def _restore(values: pd.Series, dtype: str, categories: str | None) -> pd.Series:
    """A stored column back in its dtype."""
    import pandas as pd

    if categories is not None:
        return pd.Series(
            pd.Categorical(values, categories=orjson.loads(categories), ordered=True),
            index=values.index,
        )
    if dtype.startswith("datetime64"):
        return pd.to_datetime(values).astype(dtype)
    if dtype.startswith("timedelta64"):
        return pd.to_timedelta(values.astype("Float64"), unit="s").astype(dtype)
    if dtype == "boolean":
        return values.astype("Int64").astype("boolean")
    return values.astype(dtype)
