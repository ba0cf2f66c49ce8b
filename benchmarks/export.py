"""Benchmark: export a synthetic cohort in every shape and format, next to pandas alone.

Generates the HEKTA cohort (`cohort.generate`, 10,000 participants by default), builds each
shape's tables once (typed reading, scores, employment outcomes: the "build" column), then
writes them in every format with `write_tables` ("write": labels, names and codes included) and
times what pandas alone needs to write the same final frames to the format ("pandas":
`to_csv`, `to_parquet`, `to_excel`; for SPSS and Stata, which pyreadstat cannot write from
categoricals and nullable types, pyreadstat on the frames `statistics_frame` prepares, without
labels). Each time is the best of `--repeat` runs (xlsx: one run).

    .venv/bin/python benchmarks/export.py [--participants 10000] [--formats csv,parquet,...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pandas as pd
import pyreadstat

from hekta_redcap.analysis.export import FORMATS, SHAPES, Table, build_tables, statistics_frame
from hekta_redcap.analysis.export import write_tables as export_tables
from hekta_redcap.definitions.study import load_project
from hekta_redcap.devtools.cohort import generate

TODAY = dt.date(2026, 6, 1)


def pandas_alone(fmt: str, tables: list[Table]) -> Callable[[Path], None]:
    """Write the tables' final frames with pandas (SPSS and Stata: bare pyreadstat on the
    frames `write_tables` hands it, prepared before the clock starts), no labels."""
    if fmt in ("sav", "dta"):
        frames = [(t.name, statistics_frame(t, fmt)[0]) for t in tables]  # type: ignore[arg-type]
    else:
        frames = [(t.name, t.frame) for t in tables]
    writers: dict[str, Callable[[pd.DataFrame, Path], object]] = {
        "csv": lambda frame, path: frame.to_csv(path, index=False),
        "parquet": lambda frame, path: frame.to_parquet(path, index=False),
        "sav": lambda frame, path: pyreadstat.write_sav(frame, str(path)),
        "dta": lambda frame, path: pyreadstat.write_dta(frame, str(path)),
        "xlsx": lambda frame, path: frame.to_excel(path, index=False),
    }

    def run(folder: Path) -> None:
        for name, frame in frames:
            writers[fmt](frame, folder / f"{name}.{fmt}")

    return run


def best(run: Callable[[Path], object], repeat: int) -> float:
    """The best wall time of `repeat` runs, each into a fresh directory."""
    times = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            run(Path(folder))
            times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--participants", type=int, default=10_000)
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    formats = args.formats.split(",")

    project = load_project("hekta")
    start = time.perf_counter()
    rows = pd.DataFrame(generate(project, args.participants, seed=1, today=TODAY).rows)
    print(
        f"cohort: {args.participants} participants, {len(rows)} rows x {len(rows.columns)} "
        f"columns, generated in {time.perf_counter() - start:.1f} s\n"
    )
    header = f"{'shape':<12}{'format':<9}{'cells':>12}{'build s':>9}{'write s':>9}"
    print(header + f"{'pandas s':>10}{'write/pandas':>14}")
    for shape in SHAPES:
        start = time.perf_counter()
        tables = build_tables(project, rows, shape)
        built = time.perf_counter() - start
        cells = sum(t.frame.size for t in tables)
        for fmt in formats:
            repeat = 1 if fmt == "xlsx" else args.repeat
            ours = best(partial(export_tables, tables, fmt), repeat)
            plain = best(pandas_alone(fmt, tables), repeat)
            print(
                f"{shape:<12}{fmt:<9}{cells:>12,}{built:>9.2f}{ours:>9.2f}{plain:>10.2f}"
                f"{ours / plain:>14.2f}"
            )


if __name__ == "__main__":
    main()
