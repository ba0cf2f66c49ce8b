"""Writers: one file per table in the format statistics work uses, with the labels inside.

- `csv`: codes as REDCap stores them (choices by code, yes/no and checkboxes 1/0, dates
  YYYY-MM-DD, blank for missing), UTF-8; labels in a sidecar `<table>.labels.json`.
- `parquet` (pyarrow): the typed frame (categoricals as dictionaries, dates as date32, nullable
  integers and booleans); each column's label and value labels in its field metadata, and the
  whole sidecar document under the schema metadata key `hekta_redcap`.
- `sav` (SPSS) and `dta` (Stata) via pyreadstat: variable and value labels. Coded columns
  become numbers: choice codes that are integers stay themselves, other codes (an event's
  unique name, a missing data code) are numbered 1, 2, ... in codebook order (`integer_codes`,
  recorded in the manifest), booleans are 1/0. Text has no missing value in either format, so
  missing text is empty. Names over the format's limit (Stata 32 characters, SPSS 64 bytes)
  are shortened deterministically (`fitted_names`, recorded in the manifest); a name the format
  cannot hold at all is an error. Labels are cut to the format's limits (Stata: 80 characters;
  SPSS: 256 bytes, value labels 120 bytes), with "…" where cut.
- `xlsx` (openpyxl): sheet `data` (codes as in CSV, yes/no as TRUE/FALSE, dates as dates) and
  sheet `variables` (name, label, value labels). A table larger than a sheet holds (a register
  panel of a population) stops the export before any file is written.

    >>> files = write_tables(build_tables(project, rows, "long"), "dta", Path("out"))
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypedDict, get_args

import numpy as np
import openpyxl
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pyreadstat

from hekta_redcap.analysis.export.frames import Table
from hekta_redcap.core.errors import HektaError

Format = Literal["csv", "parquet", "sav", "dta", "xlsx"]
FORMATS: tuple[str, ...] = get_args(Format)
METADATA_KEY = b"hekta_redcap"
ELLIPSIS = "…"
XLSX_ROWS, XLSX_COLUMNS = 1_048_576, 16_384  # what an Excel sheet holds, its header row included


@dataclass(frozen=True)
class _Limits:
    """What a statistics format allows in names and labels (lengths in characters, or in
    UTF-8 bytes where `*_in_bytes`)."""

    name: int
    name_in_bytes: bool
    pattern: re.Pattern[str]
    reserved: frozenset[str]
    label: int
    value_label: int
    label_in_bytes: bool


_LIMITS = {
    "dta": _Limits(
        name=32,
        name_in_bytes=False,
        pattern=re.compile(r"[A-Za-z_][A-Za-z0-9_]*"),
        reserved=frozenset(
            "_all _b byte _coef _cons double float if in int long _n _N _pi _pred _rc _skip "
            "strL using with".split()
        ),
        label=80,
        value_label=32000,
        label_in_bytes=False,
    ),
    "sav": _Limits(
        name=64,
        name_in_bytes=True,
        pattern=re.compile(r"[A-Za-z@#$][A-Za-z0-9_.@#$]*"),
        reserved=frozenset("all and by eq ge gt le lt ne not or to with".split()),
        label=256,
        value_label=120,
        label_in_bytes=True,
    ),
}

# Dates and date-times in the statistics formats: (epoch, (seconds per unit, format) for dates,
# the same for date-times). Stata counts days or milliseconds from 1960, SPSS seconds from 1582.
_CLOCKS = {
    "dta": (pd.Timestamp("1960-01-01"), (86400.0, "%td"), (0.001, "%tc")),
    "sav": (pd.Timestamp("1582-10-14"), (1.0, "DATE11"), (1.0, "DATETIME20")),
}


def write_tables(tables: list[Table], fmt: Format, directory: Path) -> list[Path]:
    """Write each table to `directory` (created if need be) as `<table name>.<fmt>`, plus the
    CSV label sidecars; returns the files written, in order."""
    if fmt not in FORMATS:
        raise HektaError(f"unknown export format '{fmt}' (formats: {', '.join(FORMATS)})")
    if fmt == "xlsx":
        for table in tables:
            _fits_a_sheet(table)
    directory.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    for table in tables:
        files += _WRITERS[fmt](table, directory)
    return files


# -- codes and names ------------------------------------------------------------------------------


def integer_codes(table: Table) -> dict[str, dict[str, int]]:
    """Per categorical column whose codes are not all integers, each code's number (1, 2, ...
    in codebook order), as SPSS and Stata files hold it."""
    return {
        str(column): {str(c): i for i, c in enumerate(values.cat.categories, start=1)}
        for column, values in table.frame.items()
        if isinstance(values.dtype, pd.CategoricalDtype) and not _integer_coded(values)
    }


def _integer_coded(values: pd.Series) -> bool:
    """Whether a categorical's codes are all integers (as Stata's value labels need)."""
    return all(re.fullmatch(r"-?\d{1,9}", str(c)) for c in values.cat.categories)


def fitted_names(table: Table, fmt: Literal["sav", "dta"]) -> dict[str, str]:
    """The names changed to fit the format: column -> its name in the file. A name over the
    limit keeps its start and its last `_` part (a wide variable's timepoint) around a 4-digit
    hash of the whole name, so the same name is always shortened the same way. In Stata files
    pyreadstat names a variable's value label set after it plus a counter, so a variable with
    value labels has room for as many fewer characters as the counter has digits."""
    limits = _LIMITS[fmt]
    digits = len(str(len(table.value_labels))) if fmt == "dta" else 0
    renamed = {}
    for column in map(str, table.frame.columns):
        if not limits.pattern.fullmatch(column) or {column, column.lower()} & limits.reserved:
            raise HektaError(
                f"table {table.name}: variable '{column}' is not a valid {fmt} name "
                "(rename the field in the definitions)"
            )
        limit = limits.name - (digits if column in table.value_labels else 0)
        if _size(column, limits.name_in_bytes) > limit:
            renamed[column] = _shorten(column, limit)
    names = set(map(str, table.frame.columns)) - set(renamed)
    for column, short in renamed.items():
        if short in names:
            raise HektaError(
                f"table {table.name}: variable '{column}' shortened for {fmt} clashes with "
                f"'{short}'"
            )
        names.add(short)
    return renamed


def _shorten(name: str, limit: int) -> str:
    digest = hashlib.sha1(name.encode()).hexdigest()[:4]
    tail = name[name.rfind("_") :] if "_" in name else ""
    if len(tail) > limit // 3:
        tail = ""
    head = name[: limit - len(tail) - len(digest) - 1].rstrip("_")
    return f"{head}_{digest}{tail}"


def _size(text: str, in_bytes: bool) -> int:
    return len(text.encode()) if in_bytes else len(text)


def _cut(text: str, limit: int, in_bytes: bool) -> str:
    """`text` within `limit` characters (or UTF-8 bytes), ending in "…" where cut."""
    if _size(text, in_bytes) <= limit:
        return text
    while _size(text + ELLIPSIS, in_bytes) > limit:
        text = text[:-1]
    return text + ELLIPSIS


def _numbers(values: pd.Series, recode: dict[str, int] | None) -> np.ndarray:
    """A categorical's codes as numbers (the integer codes, or their numbers in `recode`);
    NaN where missing."""
    categories = values.cat.categories
    numbers = [recode[str(c)] for c in categories] if recode else [int(c) for c in categories]
    lookup = np.append(np.asarray(numbers, dtype=float), np.nan)  # code -1 (missing) -> NaN
    return lookup[values.cat.codes.to_numpy()]


def _label_key(key: str | int, recode: dict[str, int] | None) -> int:
    if recode is not None:
        return recode[str(key)]
    return int(key) if isinstance(key, (bool, str)) else key


# -- statistics formats ---------------------------------------------------------------------------


def statistics_frame(
    table: Table, fmt: Literal["sav", "dta"]
) -> tuple[pd.DataFrame, dict[str, str]]:
    """The table as pyreadstat writes it for `fmt`: names fitted, codes and booleans as numbers,
    dates and date-times counted as the format counts them, missing text empty; and the
    display format of each date and date-time column."""
    recoded = integer_codes(table)
    data, formats = {}, {}
    for column, values in table.frame.items():
        column = str(column)
        kind = values.dtype
        if isinstance(kind, pd.CategoricalDtype):
            data[column] = _numbers(values, recoded.get(column))
        elif pd.api.types.is_datetime64_any_dtype(kind):
            data[column], formats[column] = _clock(values, fmt, column in table.dates)
        elif pd.api.types.is_bool_dtype(kind) or pd.api.types.is_numeric_dtype(kind):
            data[column] = values.astype("Float64").to_numpy(float, na_value=np.nan)
        else:
            data[column] = values.astype(object).where(values.notna(), "")
    renamed = fitted_names(table, fmt)
    frame = pd.DataFrame(data, index=table.frame.index).rename(columns=renamed)
    return frame, {renamed.get(c, c): shown for c, shown in formats.items()}


def _statistical(table: Table, fmt: Literal["sav", "dta"], directory: Path) -> list[Path]:
    limits, recoded, renamed = _LIMITS[fmt], integer_codes(table), fitted_names(table, fmt)
    frame, formats = statistics_frame(table, fmt)
    # Typed as pyreadstat types its arguments (invariant lists and dicts).
    labels: list[str | None] = [
        _cut(table.labels.get(str(c), ""), limits.label, limits.label_in_bytes) for c in table.frame
    ]
    value_labels: dict[str, dict[int | float, str]] = {
        renamed.get(column, column): {
            _label_key(key, recoded.get(column)): _cut(
                text, limits.value_label, limits.label_in_bytes
            )
            for key, text in labelled.items()
        }
        for column, labelled in table.value_labels.items()
    }
    path = directory / f"{table.name}.{fmt}"
    write = pyreadstat.write_sav if fmt == "sav" else pyreadstat.write_dta
    try:
        write(
            frame,
            str(path),
            column_labels=labels,
            variable_value_labels=value_labels,
            variable_format=formats,
        )
    except pyreadstat.ReadstatError as exc:
        raise HektaError(f"table {table.name}: cannot write {fmt}: {exc}") from None
    return [path]


def _clock(values: pd.Series, fmt: Literal["sav", "dta"], date: bool) -> tuple[np.ndarray, str]:
    """Dates and date-times as the format counts them (pyreadstat's own conversion guesses a
    column's type from its first values and misreads some datetime64 units)."""
    epoch, by_date, by_time = _CLOCKS[fmt]
    unit, shown = by_date if date else by_time
    seconds = (values - epoch).dt.total_seconds()
    return (seconds / unit).to_numpy(float, na_value=np.nan), shown


def _dates(values: pd.Series) -> pd.Series:
    """Calendar dates as `datetime.date` (what pyreadstat, openpyxl and Arrow write as dates)."""
    return pd.Series(values.dt.date.to_numpy(), index=values.index).where(values.notna(), None)


# -- text and spreadsheet formats ---------------------------------------------------------------


class LabelsDocument(TypedDict):
    """A table's labels as JSON (`labels_document`)."""

    table: str
    labels: dict[str, str]
    value_labels: dict[str, dict[str, str]]
    dates: list[str]


def labels_document(table: Table) -> LabelsDocument:
    """The table's labels as JSON: variable labels and value labels by the code as CSV writes
    it (a boolean's True is "1")."""
    return {
        "table": table.name,
        "labels": table.labels,
        "value_labels": {
            column: {_json_key(k): text for k, text in labelled.items()}
            for column, labelled in table.value_labels.items()
        },
        "dates": sorted(table.dates),
    }


def _json_key(key: str | int) -> str:
    return str(int(key)) if isinstance(key, bool) else str(key)


def _as_codes(table: Table, booleans: Literal["numbers", "keep"]) -> pd.DataFrame:
    """The frame with categoricals as their codes (integers where all are), booleans as 1/0
    (or kept), dates as `datetime.date`."""
    data = {}
    for column, values in table.frame.items():
        if isinstance(values.dtype, pd.CategoricalDtype):
            if _integer_coded(values):
                data[column] = pd.Series(_numbers(values, None), index=values.index).astype("Int64")
            else:
                data[column] = values.astype("string")
        elif column in table.dates:
            data[column] = _dates(values)
        elif pd.api.types.is_bool_dtype(values.dtype) and booleans == "numbers":
            data[column] = values.astype("Int8")
        else:
            data[column] = values
    return pd.DataFrame(data, index=table.frame.index)


def _csv(table: Table, directory: Path) -> list[Path]:
    path = directory / f"{table.name}.csv"
    _as_codes(table, "numbers").to_csv(path, index=False, encoding="utf-8")
    sidecar = directory / f"{table.name}.labels.json"
    document = json.dumps(labels_document(table), ensure_ascii=False, indent=1)
    sidecar.write_text(document + "\n", encoding="utf-8")
    return [path, sidecar]


def _parquet(table: Table, directory: Path) -> list[Path]:
    arrow = pa.Table.from_pandas(table.frame, preserve_index=False)
    document = labels_document(table)
    value_labels = document["value_labels"]
    fields, columns = [], []
    for name in arrow.column_names:
        column = arrow.column(name)
        kind = pa.date32() if name in table.dates else column.type
        metadata = {"label": table.labels.get(name, "")}
        if name in value_labels:
            metadata["value_labels"] = json.dumps(value_labels[name], ensure_ascii=False)
        fields.append(pa.field(name, kind, metadata=metadata))
        columns.append(column.cast(kind) if kind != column.type else column)
    schema_metadata = {
        **(arrow.schema.metadata or {}),
        METADATA_KEY: json.dumps(document, ensure_ascii=False).encode(),
    }
    schema = pa.schema(fields, metadata=schema_metadata)
    path = directory / f"{table.name}.parquet"
    pq.write_table(pa.Table.from_arrays(columns, schema=schema), path)
    return [path]


def _fits_a_sheet(table: Table) -> None:
    rows, columns = table.frame.shape
    if rows + 1 > XLSX_ROWS or columns > XLSX_COLUMNS:
        raise HektaError(
            f"table {table.name} has {rows:,} rows and {columns:,} columns: an Excel sheet holds "
            f"{XLSX_ROWS - 1:,} rows below its header and {XLSX_COLUMNS:,} columns; export as "
            f"csv, parquet, sav or dta (nothing was written)"
        )


def _xlsx(table: Table, directory: Path) -> list[Path]:
    """Written row by row in openpyxl's write-only mode (pandas' `to_excel` builds every cell
    in memory first, and takes twice as long)."""
    data = _as_codes(table, "keep").astype(object)
    data = data.where(data.notna(), None)
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("data")
    sheet.append(list(map(str, data.columns)))
    for row in data.itertuples(index=False, name=None):
        sheet.append(row)
    sheet = book.create_sheet("variables")
    sheet.append(["variable", "label", "values"])
    for column, label in table.labels.items():
        labelled = table.value_labels.get(column, {})
        sheet.append(
            [column, label, "; ".join(f"{_json_key(k)} = {v}" for k, v in labelled.items())]
        )
    path = directory / f"{table.name}.xlsx"
    book.save(path)
    return [path]


_WRITERS: dict[str, Callable[[Table, Path], list[Path]]] = {
    "csv": _csv,
    "parquet": _parquet,
    "sav": lambda table, directory: _statistical(table, "sav", directory),
    "dta": lambda table, directory: _statistical(table, "dta", directory),
    "xlsx": _xlsx,
}
