"""The register store: deliveries on disk as Parquet, with their provenance in a catalog.

Ten years of linkage for a trial with population comparison groups does not fit rows in the
sync store, so each delivery is one Parquet file, `<dir>/<source>/<delivery_id>.parquet`, typed
by its layout (`schema.SQL_TYPES`), compressed with zstd, named by its delivery id and queried
with DuckDB. The catalog, `<dir>/deliveries.json`, says where each came from (file name,
SHA-256, delivery date, period) and whether it is active or superseded by a later delivery for
the same period; a superseded delivery's file stays on record. The directory holds health
data: it is created readable by its owner alone, and DuckDB's spill files go inside it.

A write takes the store's lock, works in a scratch folder inside the store and ends in renames:
the delivery's files first, then the catalog (written to a temporary file and renamed over the
old one). A write killed anywhere leaves the catalog as it was; files it left behind are not in
the catalog, so no reader sees them, and the next write sweeps them away.

    >>> store = RegisterStore.open(settings)
    >>> store.covered("kpr")
    ((datetime.date(2020, 1, 1), datetime.date(2025, 12, 31)),)
    >>> store.query("SELECT tjeneste, count(*) AS n FROM kpr GROUP BY tjeneste")
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from hekta_redcap.core.errors import HektaError, Origin
from hekta_redcap.core.settings import Settings
from hekta_redcap.definitions.registers import RegisterLayout, load_layouts
from hekta_redcap.registers.schema import PANDAS_TYPES, SQL_TYPES

Period = tuple[dt.date, dt.date]
"""A period from its first day to its last."""
Covered = tuple[Period, ...]
"""The periods a register's deliveries cover, in order, apart from each other."""

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

CATALOG = "deliveries.json"
CATALOG_FORMAT = 1
SCRATCH_PREFIX = ".import-"
CATALOG_TEMPORARY = ".deliveries-"
REJECTS_SUFFIX = ".rejects.csv"
DELIVERY_COLUMN = "delivery_id"
Status = Literal["active", "superseded"]


@dataclass(frozen=True)
class Delivery:
    """One imported delivery and where it came from."""

    source: str
    delivery_id: str
    file: str  # the delivered file's name
    sha256: str
    delivered: dt.date
    period_start: dt.date | None
    period_end: dt.date | None
    rows_kept: int
    rows_rejected: int
    imported_at: dt.datetime  # UTC
    status: Status = "active"
    superseded_by: str | None = None

    @property
    def period(self) -> tuple[dt.date | None, dt.date | None]:
        return (self.period_start, self.period_end)

    def known_period(self) -> Period | None:
        """The period, when both its ends are known."""
        start, end = self.period
        return (start, end) if start is not None and end is not None else None

    def period_text(self) -> str:
        start, end = self.period
        return f"{start} to {end}" if start and end else "no period"

    def to_json(self) -> dict[str, Any]:
        return {
            k: v.isoformat() if isinstance(v, dt.date) else v
            for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Delivery:
        def day(key: str) -> dt.date | None:
            return dt.date.fromisoformat(data[key]) if data.get(key) else None

        return cls(
            **{
                **data,
                "delivered": dt.date.fromisoformat(data["delivered"]),
                "period_start": day("period_start"),
                "period_end": day("period_end"),
                "imported_at": dt.datetime.fromisoformat(data["imported_at"]),
            }
        )


def private_dir(path: Path) -> Path:
    """A directory only its owner can enter (created so; an existing one is left as set up)."""
    if not path.is_dir():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.chmod(0o700)  # mkdir's mode is narrowed by the umask, not widened: be sure
    return path


class RegisterStore:
    """The deliveries of every source under one directory (`HEKTA_REGISTER_DIR`)."""

    def __init__(self, directory: Path, layouts: dict[str, RegisterLayout] | None = None) -> None:
        self.directory = private_dir(directory)
        self.layouts = layouts if layouts is not None else load_layouts()
        self._con: duckdb.DuckDBPyConnection | None = None

    @classmethod
    def open(cls, settings: Settings, root: Path | None = None) -> RegisterStore:
        """The store at `settings.register_dir`, with the layouts under `root` (default:
        HEKTA_DEFINITIONS, else ./instruments)."""
        return cls(settings.register_dir, load_layouts(root or settings.definitions))

    def layout(self, source: str) -> RegisterLayout:
        if source not in self.layouts:
            known = ", ".join(sorted(self.layouts)) or "none"
            raise HektaError(f"unknown register source '{source}' (sources: {known})")
        return self.layouts[source]

    # --- reading -------------------------------------------------------------------------

    @property
    def catalog(self) -> Path:
        return self.directory / CATALOG

    def deliveries(self, source: str | None = None) -> list[Delivery]:
        """Every delivery on record (active and superseded), in the order imported."""
        if not self.catalog.is_file():
            return []
        try:
            document = json.loads(self.catalog.read_text(encoding="utf-8"))
            every = [Delivery.from_json(d) for d in document["deliveries"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise HektaError(
                f"the register catalog cannot be read ({type(exc).__name__})", Origin(self.catalog)
            ) from None
        return [d for d in every if source is None or d.source == source]

    def active(self, source: str) -> list[Delivery]:
        return [d for d in self.deliveries(source) if d.status == "active"]

    def find(self, source: str, sha256: str) -> Delivery | None:
        """The delivery of this source imported from a file with these bytes, if any."""
        return next((d for d in self.deliveries(source) if d.sha256 == sha256), None)

    def covered(self, source: str) -> Covered:
        """The days the source's active deliveries cover, as periods in order: overlapping
        and adjacent periods joined, a gap between deliveries left a gap (the months in it are
        unknown, not months without events)."""
        spans = sorted(p for d in self.active(source) if (p := d.known_period()) is not None)
        joined: list[Period] = []
        for start, end in spans:
            if joined and start <= joined[-1][1] + dt.timedelta(days=1):
                joined[-1] = (joined[-1][0], max(joined[-1][1], end))
            else:
                joined.append((start, end))
        return tuple(joined)

    def covered_until(self, source: str) -> dt.date | None:
        """The last day the source's active deliveries cover."""
        covered = self.covered(source)
        return covered[-1][1] if covered else None

    def parquet_file(self, delivery: Delivery) -> Path:
        return self.directory / delivery.source / f"{delivery.delivery_id}.parquet"

    def rejects_file(self, delivery: Delivery) -> Path:
        return self.directory / delivery.source / f"{delivery.delivery_id}{REJECTS_SUFFIX}"

    def parquet_files(self, source: str) -> list[Path]:
        """The active deliveries' files, for DuckDB or pyarrow over data too big for pandas
        (typed by the layout when written; the file's name is its delivery id)."""
        return [self.parquet_file(d) for d in self.active(source)]

    def _connection(self) -> duckdb.DuckDBPyConnection:
        import duckdb

        if self._con is None:
            scratch = private_dir(self.directory / ".duckdb")
            self._con = duckdb.connect(config={"temp_directory": str(scratch)})
        return self._con

    def _select(self, source: str) -> str:
        """SQL for the source's active rows: the layout's columns, typed, and each row's
        `delivery_id` (the file's name; a column the layout gained since a file was written
        is NULL there, one it dropped is left out)."""
        layout = self.layout(source)
        con = self._connection()
        parts = []
        for delivery in self.active(source):
            file = literal(str(self.parquet_file(delivery)))
            present = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {file}").fetchall()}
            columns = [
                f"CAST({quoted(v.name) if v.name in present else 'NULL'} AS {SQL_TYPES[v.type]}) "
                f"AS {quoted(v.name)}"
                for v in layout.variables
            ]
            columns.append(f"{literal(delivery.delivery_id)} AS {DELIVERY_COLUMN}")
            parts.append(f"SELECT {', '.join(columns)} FROM {file}")
        if parts:
            return " UNION ALL ".join(parts)
        columns = [f"NULL::{SQL_TYPES[v.type]} AS {quoted(v.name)}" for v in layout.variables]
        return f"SELECT {', '.join(columns)}, NULL::VARCHAR AS {DELIVERY_COLUMN} WHERE false"

    def relation(self, source: str) -> duckdb.DuckDBPyRelation:
        """The source's active rows as a DuckDB relation (lazy: nothing is read until used)."""
        return self._connection().sql(self._select(source))

    def query(self, sql: str) -> pd.DataFrame:
        """Run SQL in which each source's name is a view of its active rows."""
        con = self._connection()
        for source in self.layouts:
            con.execute(f"CREATE OR REPLACE TEMP VIEW {quoted(source)} AS {self._select(source)}")
        frame: pd.DataFrame = con.sql(sql).df()
        return frame

    def rows(self, source: str) -> pd.DataFrame:
        """The source's active rows, typed as the schema says (dates as datetime64[ms], whole
        numbers as Int64, text as string), with `delivery_id`."""
        import pandas as pd

        table = self.relation(source).to_arrow_table()
        frame = table.to_pandas(date_as_object=False)
        types = {v.name: PANDAS_TYPES[v.type] for v in self.layout(source).variables}
        return frame.astype({**types, DELIVERY_COLUMN: pd.StringDtype()})

    # --- writing -------------------------------------------------------------------------

    @contextmanager
    def writing(self) -> Iterator[Path]:
        """Hold the store's lock for one write and give it a scratch folder inside the store
        (owner-only, on the same disk as the final rename), removed afterwards."""
        descriptor = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        with os.fdopen(descriptor) as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self._sweep()
                scratch = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=self.directory))
                try:
                    yield scratch
                finally:
                    shutil.rmtree(scratch, ignore_errors=True)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _sweep(self) -> None:
        """Remove what a killed write left: scratch folders and files not in the catalog."""
        for scratch in self.directory.glob(SCRATCH_PREFIX + "*"):
            shutil.rmtree(scratch, ignore_errors=True)
        for temporary in self.directory.glob(CATALOG_TEMPORARY + "*"):
            temporary.unlink()
        recorded = {
            p for d in self.deliveries() for p in (self.parquet_file(d), self.rejects_file(d))
        }
        for source in self.layouts:
            for file in (self.directory / source).glob("*"):
                if file.is_file() and file not in recorded:
                    file.unlink()

    def commit(self, delivery: Delivery, parquet: Path, rejects: Path | None) -> list[Delivery]:
        """Put a delivery on record (inside `writing`): its files, then the catalog, where any
        active delivery of the same source and period becomes superseded by it. Returns those
        it supersedes. A failure before the catalog is written takes the files away again."""
        target = self.parquet_file(delivery)
        private_dir(target.parent)
        moved: list[Path] = []
        try:
            for file, destination in ((parquet, target), (rejects, self.rejects_file(delivery))):
                if file is not None:
                    file.chmod(0o600)
                    os.replace(file, destination)
                    moved.append(destination)
            every = self.deliveries()
            replaced = [
                d
                for d in every
                if d.source == delivery.source
                and d.status == "active"
                and d.period == delivery.period
            ]
            superseded = {d.delivery_id for d in replaced}
            every = [
                dataclasses.replace(d, status="superseded", superseded_by=delivery.delivery_id)
                if d.delivery_id in superseded
                else d
                for d in every
            ]
            self._write_catalog([*every, delivery])
        except BaseException:
            for file in moved:
                file.unlink(missing_ok=True)
            raise
        return replaced

    def _write_catalog(self, deliveries: list[Delivery]) -> None:
        document = {"format": CATALOG_FORMAT, "deliveries": [d.to_json() for d in deliveries]}
        handle, name = tempfile.mkstemp(prefix=CATALOG_TEMPORARY, dir=self.directory)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(document, out, indent=1, ensure_ascii=False)
                out.flush()
                os.fsync(out.fileno())
            os.replace(name, self.catalog)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise


def quoted(name: str) -> str:
    """An SQL identifier (layout names are a data manager's, so always quoted)."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """An SQL string literal."""
    return "'" + text.replace("'", "''") + "'"
