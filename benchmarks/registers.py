"""Benchmark: import a KPR delivery of 10 million rows, next to DuckDB's own CSV reader, and
build the register panel from it.

Writes a population's primary-care contacts (`devtools.registers.write_contacts`: by default 10
million rows for 50,000 serial numbers, a population comparison group's size, over five
years) as a CSV delivery as registers send it, with a linkage key holding every serial number,
then times:

- DuckDB's own CSV reader on the same file, with the layout's column types and date format:
  into a table, and straight to Parquet without keeping the row order (the floor: the import
  ends in Parquet too, written the same way);
- `import_delivery`: reading, checking every row against the layout and the key, and keeping
  the delivery in the register store with its provenance; for the clean delivery (one
  streaming pass) and for a copy with ten rejected rows at its end (the worst case: the
  streaming pass stops at the first, then the full check reads the file again, in order);
- the panel (`outcomes.panel`) of the 50,000 over months -24..120 from the stored delivery.

It prints rows, seconds, the import's ratio to DuckDB's reader (target: at most 1.5x) and each
step's peak memory. Every step, writing the delivery too, runs in a fresh process, and this one
imports only the standard library: a process's peak resident set (`ru_maxrss`) survives into
the processes it starts, so each step's figure is its own. Each process imports DuckDB and the
toolkit before the clock starts (the first row: what that alone holds). `--rows` keeps a run small;
`--repeat` runs every step but the writing that many times, interleaved, and prints each
one's median (a shared machine's load comes and goes); the figures are printed, nothing is
asserted.

    .venv/bin/python benchmarks/registers.py [--rows 10000000] [--people 50000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import multiprocessing
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SOURCE = "kpr"
PERIOD = (dt.date(2020, 1, 1), dt.date(2024, 12, 31))
DUCKDB_TYPES = {"text": "VARCHAR", "code": "VARCHAR", "month": "VARCHAR", "number": "DOUBLE",
                "integer": "BIGINT", "date": "DATE"}  # fmt: skip


def in_child(step: Callable[..., Any], *args: Any) -> tuple[float, float, Any]:
    """Seconds, peak memory (MB) and result of `step(*args)`, run in a fresh process."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_timed, (step, *args))


def _timed(step: Callable[..., Any], *args: Any) -> tuple[float, float, Any]:
    toolkit_imported()  # before the clock: every step's peak includes the imports
    os.sync()  # the files an earlier step wrote go to disk now, not during this step
    start = time.perf_counter()
    result = step(*args)
    return time.perf_counter() - start, peak_mb(), result


def peak_mb() -> float:
    """The process's maximum resident set (ru_maxrss: kilobytes on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1e6 if sys.platform == "darwin" else 1e3)


def toolkit_imported() -> int:
    import duckdb  # noqa: F401

    import hekta_redcap.devtools.registers
    import hekta_redcap.registers.delivery
    import hekta_redcap.registers.outcomes  # noqa: F401

    return 0


def write_delivery(root: Path, rows: int, people: int) -> tuple[Path, Path, list[str]]:
    """The delivery and a linkage key (record_id;lopenr, owner-only) holding its people."""
    from hekta_redcap.definitions.registers import load_layouts
    from hekta_redcap.devtools.registers import serials, write_contacts

    drawn = serials(people, seed=1)
    path = write_contacts(load_layouts()[SOURCE], drawn, rows, PERIOD, root / "kpr.csv", seed=1)
    key = root / "linkage-key.csv"
    with key.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, delimiter=";", lineterminator="\n")
        writer.writerow(["record_id", "lopenr"])
        writer.writerows([str(n), serial] for n, serial in enumerate(drawn, start=1))
    key.chmod(0o600)
    return path, key, drawn


def duckdb_read(path: Path, target: Path | None) -> int:
    """DuckDB's CSV reader with the layout's types: into a table, or into Parquet."""
    import duckdb

    from hekta_redcap.definitions.registers import load_layouts

    layout = load_layouts()[SOURCE]
    types = {v.name: DUCKDB_TYPES[v.type] for v in layout.variables}
    reader = (
        "read_csv(?, delim = ';', header = true, dateformat = '%d.%m.%Y', "
        f"decimal_separator = ',', columns = {types!r})"
    )
    with duckdb.connect() as con:
        con.execute("SET enable_progress_bar = false")
        if target is None:
            con.execute(f"CREATE TABLE delivery AS SELECT * FROM {reader}", [str(path)])
            return int(con.execute("SELECT count(*) FROM delivery").fetchall()[0][0])
        con.execute("SET preserve_insertion_order = false")
        con.execute(f"COPY (SELECT * FROM {reader}) TO '{target}' (FORMAT parquet)", [str(path)])
        return int(con.execute(f"SELECT count(*) FROM '{target}'").fetchall()[0][0])


def with_errors(path: Path, target: Path, serials: list[str]) -> Path:
    """A copy of the delivery with ten rows it rejects at its end: unknown serial numbers."""
    shutil.copyfile(path, target)
    with target.open("a", encoding="ascii", newline="") as out:
        out.writelines(f"99{n:06d};X{n};01.01.2021;FL;1;A01\r\n" for n in range(10))
    assert not {f"99{n:06d}" for n in range(10)} & set(serials)
    return target


def run_import(root: Path, path: Path, key: Path) -> str:
    from hekta_redcap.core.settings import Settings
    from hekta_redcap.registers.delivery import import_delivery

    store = root / "store"
    shutil.rmtree(store, ignore_errors=True)  # each run imports into an empty store
    settings = Settings.load((), {"HEKTA_REGISTER_DIR": str(store)})
    period = f"{PERIOD[0].isoformat()}:{PERIOD[1].isoformat()}"
    imported = import_delivery(settings, None, SOURCE, path, key, period, None)
    return imported.text().splitlines()[0]


def build_panel(root: Path, people: list[str]) -> int:
    """The panel of every person in the key, randomized evenly over the delivery's last three
    years (two groups)."""
    import pandas as pd

    from hekta_redcap.core.settings import Settings
    from hekta_redcap.definitions.registers import load_layouts
    from hekta_redcap.registers.outcomes import panel
    from hekta_redcap.registers.store import RegisterStore

    settings = Settings.load((), {"HEKTA_REGISTER_DIR": str(root / "store")})
    files = RegisterStore.open(settings).parquet_files(SOURCE)
    participants = pd.DataFrame(
        {
            "record_id": [str(n) for n in range(1, len(people) + 1)],
            "lopenr": people,
            "rand_date": [
                PERIOD[0] + dt.timedelta(days=730 + n % 1095) for n in range(len(people))
            ],
            "arm": [str(1 + n % 2) for n in range(len(people))],
        }
    )
    layouts = {SOURCE: load_layouts()[SOURCE]}
    return len(panel(layouts, {SOURCE: files}, participants, {SOURCE: (PERIOD,)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--people", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        seconds, _, (path, key, people) = in_child(write_delivery, root, args.rows, args.people)
        size = path.stat().st_size / 1e6
        print(f"KPR delivery: {args.rows:,} rows for {args.people:,} serial numbers, "
              f"{size:,.0f} MB of CSV (written in {seconds:.1f} s)")  # fmt: skip
        faulty = with_errors(path, root / "kpr-with-errors.csv", people)
        baseline = in_child(toolkit_imported)
        steps: dict[str, Callable[[], tuple[float, float, Any]]] = {
            "table": lambda: in_child(duckdb_read, path, None),
            "parquet": lambda: in_child(duckdb_read, path, root / "floor.parquet"),
            "faulty": lambda: in_child(run_import, root / "faulty", faulty, key),
            "imported": lambda: in_child(run_import, root, path, key),
            "panel": lambda: in_child(build_panel, root, people),  # from the store just made
        }
        runs: dict[str, list[tuple[float, float, Any]]] = {name: [] for name in steps}
        for _ in range(args.repeat):
            for name, step in steps.items():
                runs[name].append(step())
        table, parquet, faulty_run, imported, built = (median(runs[name]) for name in steps)
    print(f"  {'step':<44} {'rows':>12} {'seconds':>8} {'peak MB':>8}")
    for name, (seconds, peak, rows) in (
        ("a fresh process, the toolkit imported", (*baseline[:2], 0)),
        ("DuckDB read_csv into a table", table),
        ("DuckDB read_csv to Parquet (the floor)", parquet),
        ("import_delivery (checked, stored)", (*imported[:2], args.rows)),
        ("import_delivery, 10 rejected rows at the end", (*faulty_run[:2], args.rows + 10)),
        ("outcomes.panel, months -24..120", built),
    ):
        counted = f"{rows:,}" if rows else ""
        print(f"  {name:<44} {counted:>12} {seconds:>8.1f} {peak:>8.0f}")
    print(f"  import: {imported[2]}")
    each = "; ".join(f"{n} " + ", ".join(f"{r[0]:.1f}" for r in rs) for n, rs in runs.items())
    print(f"  seconds of each run: {each}")
    print(
        f"  import / DuckDB to Parquet: {imported[0] / parquet[0]:.2f}x; "
        f"/ DuckDB into a table: {imported[0] / table[0]:.2f}x (target: at most 1.5x); "
        f"with rejected rows: {faulty_run[0] / parquet[0]:.2f}x"
    )


def median(runs: list[tuple[float, float, Any]]) -> tuple[float, float, Any]:
    """The run of median seconds (of an even number, the faster middle one)."""
    ranked = sorted(runs, key=lambda r: r[0])
    return ranked[(len(ranked) - 1) // 2]


if __name__ == "__main__":
    main()
