"""Benchmark: import a KPR delivery of 10 million rows, next to DuckDB's own CSV reader, and
build the register panel from it.

Writes a population's primary-care contacts (`devtools.registers.write_contacts`: by default 10
million rows for 50,000 serial numbers, a population comparison group's size, over five
years) as a CSV delivery as registers send it, with a linkage key holding every serial number,
then times, each in a fresh process so that each step's peak memory is its own:

- DuckDB's own CSV reader on the same file, with the layout's column types and date format:
  into a table, and straight to Parquet (the floor: the import ends in Parquet too);
- `import_delivery`: reading, checking every row against the layout and the key, and keeping
  the delivery in the register store with its provenance;
- the panel (`outcomes.panel`) of the 50,000 over months -24..120 from the stored delivery.

It prints rows, seconds, the import's ratio to the Parquet floor (target: at most 1.5x) and each
step's peak memory (the process's maximum resident set, `ru_maxrss`). `--rows` keeps a run
small; the figures are printed, nothing is asserted.

    .venv/bin/python benchmarks/registers.py [--rows 10000000] [--people 50000]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import multiprocessing
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

from hekta_redcap.definitions.registers import RegisterLayout, load_layouts
from hekta_redcap.devtools.registers import serials, write_contacts

SOURCE = "kpr"
PERIOD = (dt.date(2020, 1, 1), dt.date(2024, 12, 31))
DUCKDB_TYPES = {"text": "VARCHAR", "code": "VARCHAR", "month": "VARCHAR", "number": "DOUBLE",
                "integer": "BIGINT", "date": "DATE"}  # fmt: skip


def peak_mb() -> float:
    """The process's maximum resident set so far (ru_maxrss: kilobytes on Linux, bytes on
    macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1e6 if sys.platform == "darwin" else 1e3)


def in_child(step: Callable[..., Any], *args: Any) -> tuple[float, float, Any]:
    """Seconds, peak memory (MB) and result of `step(*args)`, run in a fresh process."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_timed, (step, *args))


def _timed(step: Callable[..., Any], *args: Any) -> tuple[float, float, Any]:
    start = time.perf_counter()
    result = step(*args)
    return time.perf_counter() - start, peak_mb(), result


def duckdb_read(path: Path, target: Path | None) -> int:
    """DuckDB's CSV reader with the layout's types: into a table, or into Parquet."""
    layout = load_layouts()[SOURCE]
    types = {v.name: DUCKDB_TYPES[v.type] for v in layout.variables}
    reader = (
        "read_csv(?, delim = ';', header = true, dateformat = '%d.%m.%Y', "
        f"decimal_separator = ',', columns = {types!r})"
    )
    with duckdb.connect() as con:
        if target is None:
            con.execute(f"CREATE TABLE delivery AS SELECT * FROM {reader}", [str(path)])
            return int(con.execute("SELECT count(*) FROM delivery").fetchone()[0])  # type: ignore[index]
        con.execute(f"COPY (SELECT * FROM {reader}) TO '{target}' (FORMAT parquet)", [str(path)])
        return int(con.execute(f"SELECT count(*) FROM '{target}'").fetchone()[0])  # type: ignore[index]


def run_import(root: Path, path: Path, key: Path) -> str:
    from hekta_redcap.core.settings import Settings
    from hekta_redcap.registers.delivery import import_delivery

    settings = Settings.load((), {"HEKTA_REGISTER_DIR": str(root / "store")})
    period = f"{PERIOD[0].isoformat()}:{PERIOD[1].isoformat()}"
    imported = import_delivery(settings, None, SOURCE, path, key, period, None)
    return imported.text().splitlines()[0]


def build_panel(root: Path, people: list[str]) -> int:
    import pandas as pd

    from hekta_redcap.core.settings import Settings
    from hekta_redcap.registers.outcomes import panel
    from hekta_redcap.registers.store import RegisterStore

    settings = Settings.load((), {"HEKTA_REGISTER_DIR": str(root / "store")})
    layouts = {SOURCE: load_layouts()[SOURCE]}
    files = RegisterStore.open(settings).parquet_files(SOURCE)
    randomized = [PERIOD[0] + dt.timedelta(days=730 + n % 730) for n in range(len(people))]
    participants = pd.DataFrame(
        {
            "record_id": [str(n) for n in range(1, len(people) + 1)],
            "lopenr": people,
            "rand_date": randomized,
            "arm": [str(1 + n % 2) for n in range(len(people))],
        }
    )
    return len(panel(layouts, {SOURCE: files}, participants, {SOURCE: PERIOD[1]}))


def write_key(path: Path, people: list[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, delimiter=";")
        writer.writerow(["record_id", "lopenr"])
        writer.writerows([str(n), serial] for n, serial in enumerate(people, start=1))
    path.chmod(0o600)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--people", type=int, default=50_000)
    args = parser.parse_args()
    layout: RegisterLayout = load_layouts()[SOURCE]
    people = serials(args.people, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path, key = root / "kpr.csv", root / "linkage-key.csv"
        start = time.perf_counter()
        write_contacts(layout, people, args.rows, PERIOD, path, seed=1)
        write_key(key, people)
        made = time.perf_counter() - start
        size = path.stat().st_size / 1e6
        print(f"KPR delivery: {args.rows:,} rows for {args.people:,} serial numbers, "
              f"{size:,.0f} MB of CSV (written in {made:.1f} s)")  # fmt: skip
        baseline = in_child(peak_mb)
        table = in_child(duckdb_read, path, None)
        parquet = in_child(duckdb_read, path, root / "floor.parquet")
        imported = in_child(run_import, root, path, key)
        built = in_child(build_panel, root, people)
    print(f"  {'step':<44} {'rows':>12} {'seconds':>8} {'peak MB':>8}")
    print(
        f"  {'(a fresh process with the imports alone)':<44} {'':>12} {'':>8} {baseline[1]:>8.0f}"
    )
    for name, (seconds, peak, rows) in (
        ("DuckDB read_csv into a table", table),
        ("DuckDB read_csv to Parquet (the floor)", parquet),
        ("import_delivery (checked, stored)", (*imported[:2], args.rows)),
        ("outcomes.panel, months -24..120", built),
    ):
        print(f"  {name:<44} {rows:>12,} {seconds:>8.1f} {peak:>8.0f}")
    print(f"  import: {imported[2]}")
    print(
        f"  import / DuckDB to Parquet: {imported[0] / parquet[0]:.2f}x, "
        f"/ DuckDB into a table: {imported[0] / table[0]:.2f}x (target: at most 1.5x)"
    )


if __name__ == "__main__":
    main()
