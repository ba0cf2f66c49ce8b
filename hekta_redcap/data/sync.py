"""The sync engine: bring the local store up to date with a REDCap project
(`hekta-redcap sync`, and the daemon's first step).

    >>> result = run(Settings.load(), "hekta")          # incremental unless a full pull is due
    >>> result.requested, result.changed, result.deleted

A run reads the data dictionary (metadata, arms, events, mapping, repeating setup) and hashes
it, then decides what to pull:

- **full** on the first run, when asked (`--full`), when the dictionary's hash differs from the
  one the last successful run saw (new columns, recoded choices: every row may change), or when
  the last full run is older than `reconcile_every` (setting `HEKTA_SYNC_RECONCILE_HOURS`,
  default 24): every record id is listed, every record pulled, and stored records REDCap no
  longer has are deleted;
- **incremental** otherwise: the ids of records changed since the cursor minus an overlap
  margin (`dateRangeBegin`; setting `HEKTA_SYNC_OVERLAP_MINUTES`, default 10, which covers
  saves still in flight and clock skew), plus the records the logging API shows deleted since
  then (REDCap's date range never reports deletions). A deleted record returns no rows and is
  removed; one recreated since returns its new rows.

Rows are exported by batches of record ids (`batch_size`, setting `HEKTA_SYNC_BATCH_SIZE`),
never by rows, so a record's events and repeat instances always arrive together and a record is
replaced whole. Batches are fetched by `workers` concurrent requests (`HEKTA_SYNC_WORKERS`,
default 2). A record whose rows hash to what is stored is not written again.

Each run's rows are staged outside the store; the records that changed, the deletions, the
cursor (the time taken just before the run's first call, so nothing saved during a run is
missed) and the run's row are committed in one transaction at the end. A run that fails
records only its failure, in its own small transaction; one that is killed leaves nothing.
Either way the store is as it was.

Every REDCap call goes through the gateway (`gateway.Gateway`): 5xx and proxy HTML pages,
truncated bodies, dropped connections and timeouts are retried with exponential backoff and
jitter; each call has a fixed timeout (`gateway.TIMEOUT`). REDCap's own refusals (an error
message) are not retried. The cursor is kept in this machine's clock, which must
be the REDCap server's time zone.

Progress is a bar on a terminal and a log line per batch otherwise. Log lines are `key=value`
pairs holding counts, kinds and record ids only: no field values, and never the token.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import sqlite3
import sys
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, NoReturn

import click
import orjson

from hekta_redcap.core.clock import now
from hekta_redcap.core.errors import HektaError
from hekta_redcap.core.logline import line
from hekta_redcap.core.settings import Settings
from hekta_redcap.data.store import Staged, Store, SyncRun, row_key
from hekta_redcap.gateway import EXPORT, Gateway, Live, Retry

logger = logging.getLogger("hekta_redcap.data.sync")


class SyncFailed(HektaError):
    """A run that could not finish; the store is as it was before it."""


class BadExport(Exception):
    """REDCap answered with rows that cannot be right (kept out of the store)."""


def log(event: str, **fields: object) -> None:
    """A structured log line (logline.py): counts, kinds and record ids only."""
    logger.info(line(event, **fields))


def dictionary_hash(live: Live) -> str:
    """What a full pull depends on: metadata, arms, events, mapping and repeating setup."""
    design = [live.metadata, live.arms, live.events, live.mapping, live.repeating]
    return hashlib.sha256(orjson.dumps(design, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _deleted_records(entries: list[dict[str, Any]]) -> set[str]:
    """Records the logging export shows deleted (wholly or partly): its `record` column where
    REDCap gives one, else the id that ends `Delete record (API) <id>`."""
    found = set()
    for entry in entries:
        action = str(entry.get("action", ""))
        if action.lower().startswith("delete record"):
            found.add(str(entry.get("record") or action.rsplit(" ", 1)[-1]))
    return found


# -- a run ---------------------------------------------------------------------------------------


# A successful run as the store keeps it (`summary()` is the CLI's line).
SyncResult = SyncRun


def run(
    settings: Settings,
    project: str,
    *,
    full: bool = False,
    store: Store | None = None,
    overlap: dt.timedelta | None = None,
    reconcile_every: dt.timedelta | None = None,
    batch_size: int | None = None,
    workers: int | None = None,
    retry: Retry | None = None,
    progress: bool | None = None,
) -> SyncResult:
    """Sync `project` into the store (default: `HEKTA_STORE`); the knobs left None come from
    the settings. `progress` None shows a bar when stderr is a terminal. Raises `SyncFailed`
    when the run cannot finish (after recording the failure)."""
    sync = _Sync(
        settings,
        project,
        overlap=dt.timedelta(minutes=settings.sync_overlap_minutes) if overlap is None else overlap,
        reconcile_every=(
            dt.timedelta(hours=settings.sync_reconcile_hours)
            if reconcile_every is None
            else reconcile_every
        ),
        batch_size=max(1, settings.sync_batch_size if batch_size is None else batch_size),
        workers=max(1, settings.sync_workers if workers is None else workers),
        retry=retry or Retry(),
        progress=sys.stderr.isatty() if progress is None else progress,
    )
    if store is not None:
        return sync.run(store, full)
    with Store.open(settings) as own:
        return sync.run(own, full)


@dataclass
class _Sync:
    settings: Settings
    project: str
    overlap: dt.timedelta
    reconcile_every: dt.timedelta
    batch_size: int
    workers: int
    retry: Retry
    progress: bool

    def run(self, store: Store, full: bool) -> SyncResult:
        api = Gateway.open(self.settings, self.project, self.retry)
        started = now()  # before the first call: the next run's cursor
        kind, reason = "full" if full else "incremental", "requested" if full else ""
        try:
            live = Live.read(api)
            digest = dictionary_hash(live)
            kind, reason = self._decide(store, full, digest, started)
            log("sync.start", project=self.project, kind=kind, reason=reason.replace(" ", "_"))
            requested, changed, deleted = self._pull(
                api, store, kind, live.metadata[0]["field_name"]
            )
            with store.transaction():
                store.apply_staged(self.project, started)
                store.delete_records(self.project, deleted)
                result = SyncRun(
                    self.project, kind, reason, started, now(), "ok",
                    len(requested), changed, len(deleted),
                )  # fmt: skip
                result = replace(result, id=store.finish_run(result, started, digest, live.info))
        except Exception as exc:
            self._fail(store, SyncRun(self.project, kind, reason, started, now(), "failed"), exc)
        log(
            "sync.done", project=self.project, kind=kind, requested=len(requested),
            changed=changed, deleted=len(deleted), seconds=f"{result.seconds:.1f}",
        )  # fmt: skip
        return result

    def _decide(
        self, store: Store, full: bool, digest: str, started: dt.datetime
    ) -> tuple[str, str]:
        """Full or incremental, and why."""
        state = store.cursor(self.project)
        last_full = store.last_full(self.project)
        if full:
            return "full", "requested"
        if state is None:
            return "full", "first run"
        if state[1] != digest:
            return "full", "dictionary changed"
        if last_full is None or started - last_full >= self.reconcile_every:
            return "full", "reconciliation due"
        return "incremental", "since last run"

    def _pull(
        self, api: Gateway, store: Store, kind: str, record_id: str
    ) -> tuple[list[str], int, set[str]]:
        """Stage the changed records; returns the ids requested, how many changed and the
        stored records to delete."""
        stored = store.record_digests(self.project)
        store.begin_staging()
        if kind == "full":
            wanted = self._ids(api, record_id)
            gone = set(stored).difference(wanted)
        else:
            cursor = store.cursor(self.project)
            assert cursor is not None
            since = (cursor[0] - self.overlap).astimezone().replace(tzinfo=None)
            wanted = self._ids(api, record_id, date_begin=since)
            entries = api.export_logging(log_type="record_delete", begin_time=since)
            logged = _deleted_records(entries) & stored.keys()
            wanted += sorted(logged.difference(wanted))
            gone = set()
        changed = 0
        with self._progress(len(wanted)) as advance:
            for batch, rows in self._batches(api, wanted):
                staged, templates, missing = _compare(batch, rows, record_id, stored)
                store.stage(staged, templates if staged else {})
                changed += len(staged)
                gone |= missing & stored.keys()
                advance(len(batch))
        return wanted, changed, gone

    def _ids(self, api: Gateway, record_id: str, **since: Any) -> list[str]:
        """Record ids in REDCap's order (one per record, though the export has a row per
        event and instance)."""
        rows = api.export_records(fields=[record_id], format_type="json", **since)
        return list(dict.fromkeys(str(r[record_id]) for r in rows))

    def _batches(
        self, api: Gateway, ids: list[str]
    ) -> Iterator[tuple[list[str], list[dict[str, Any]]]]:
        """Each batch of ids with its rows, in order, `workers` requests in flight."""
        batches = [ids[i : i + self.batch_size] for i in range(0, len(ids), self.batch_size)]
        with ThreadPoolExecutor(self.workers, thread_name_prefix="sync") as pool:
            pending: deque[tuple[list[str], Future[Any]]] = deque()
            for batch in batches:
                pending.append((batch, pool.submit(api.export_records, records=batch, **EXPORT)))
                if len(pending) > self.workers:
                    done, rows = pending.popleft()
                    yield done, rows.result()
            while pending:
                done, rows = pending.popleft()
                yield done, rows.result()

    @contextmanager
    def _progress(self, total: int) -> Iterator[Callable[[int], None]]:
        """Advance by n records: a bar on a terminal, else a log line per batch."""
        if self.progress:
            with click.progressbar(
                length=total, label=f"sync {self.project}", file=sys.stderr
            ) as bar:
                yield bar.update
            return
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            log("sync.batch", project=self.project, records=done, of=total)

        yield advance

    def _fail(self, store: Store, run: SyncRun, exc: Exception) -> NoReturn:
        """Record the failure (only that) and raise it as one line."""
        if isinstance(exc, HektaError):
            message = exc.message
        elif isinstance(exc, BadExport):
            message = f"REDCap at {self.settings.api_url}: {exc}"
        elif isinstance(exc, sqlite3.IntegrityError):
            message = "REDCap exported two rows for one record, event and repeat instance"
        else:  # a bug: recorded by kind only (its text could hold data), then raised whole
            message = f"unexpected {type(exc).__name__}"
        with store.transaction():
            store.finish_run(replace(run, error=message))
        log("sync.failed", project=self.project, kind=run.kind, error=type(exc).__name__)
        if message.startswith("unexpected "):
            raise exc
        raise SyncFailed(message) from None


def _compare(
    batch: list[str], rows: list[dict[str, Any]], record_id: str, stored: dict[str, str]
) -> tuple[list[Staged], dict[str, str], set[str]]:
    """A batch's records whose rows differ from what is stored, the templates (export
    columns) their rows name, and the records that came back without rows (deleted)."""
    grouped: dict[str, list[dict[str, Any]]] = {record: [] for record in batch}
    for row in rows:
        record = str(row.get(record_id, ""))
        if record not in grouped:
            raise BadExport(f"rows for a record not asked for ({record or 'no record id'})")
        grouped[record].append(row)
    staged, templates, missing = [], {}, set()
    columns: tuple[str, ...] = ()
    template = b""
    for record, found in grouped.items():
        if not found:
            missing.add(record)
            continue
        digest = hashlib.sha256()
        keyed = []
        for row in found:
            if tuple(row) != columns:  # a flat export's rows share their columns
                columns = tuple(row)
                names = orjson.dumps(columns)
                template = hashlib.sha256(names).hexdigest()[:32].encode()
                templates[template.decode()] = names.decode()
            values = orjson.dumps(list(row.values()))
            digest.update(template)
            digest.update(values)
            keyed.append((row_key(record, row), template.decode(), values.decode()))
        if stored.get(record) != digest.hexdigest()[:32]:
            staged.append(Staged(record, digest.hexdigest()[:32], keyed))
    return staged, templates, missing
