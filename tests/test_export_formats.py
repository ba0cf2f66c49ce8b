"""Every export shape written in every format and read back with pandas and pyreadstat: the
values (codes, booleans, dates, numbers, text), the types each format can hold, the variable and
value labels within the formats' limits, and no identifying field or value in any file."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pyreadstat
import pytest
from conftest import LIBRARY

from hekta_redcap.analysis.export import (
    FORMATS,
    SHAPES,
    Table,
    build_tables,
    fitted_names,
    integer_codes,
    write_tables,
)
from hekta_redcap.core.errors import HektaError
from hekta_redcap.definitions.study import Project, load_project
from hekta_redcap.devtools.cohort import generate

TODAY = dt.date(2026, 6, 1)
ELLIPSIS = "…"
# Label limits: (variable label, value label, counted in bytes).
LIMITS = {"dta": (80, 32000, False), "sav": (256, 120, True)}
DATE_FORMATS = {"dta": ("%td", "%tc"), "sav": ("DATE11", "DATETIME20")}


@pytest.fixture(scope="module")
def project() -> Project:
    return load_project("hekta", LIBRARY)


@pytest.fixture(scope="module")
def rows(project: Project) -> pd.DataFrame:
    """40 participants; the first has a missing data code in a number field (its code column is
    a categorical of codes that are not integers)."""
    frame = pd.DataFrame(generate(project, 40, seed=5, today=TODAY).rows).fillna("")
    frame.loc[0, "demo_work_years"] = "ASKU"
    return frame


@pytest.fixture(scope="module")
def identifying(project: Project, rows: pd.DataFrame) -> tuple[list[str], set[str]]:
    """The identifier fields, and their values in the cohort (names, phone numbers, e-mail
    addresses, national ids, employers; a date that confirms contact identifies nobody)."""
    names = [f.name for _, f in project.fields() if f.identifier]
    values = set()
    for _, f in project.fields():
        if f.identifier and not (f.validation or "").startswith("date"):
            values |= {v for v in rows[f.name] if len(v) > 4}
    assert len(values) > 100
    return names, values


@pytest.fixture(scope="module")
def exports(
    project: Project, rows: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> dict[tuple[str, str], tuple[list[Table], list[Path]]]:
    """(shape, format) -> the tables and the files written."""
    root = tmp_path_factory.mktemp("exports")
    written = {}
    for shape in SHAPES:
        tables = build_tables(project, rows, shape)  # type: ignore[arg-type]
        for fmt in FORMATS:
            written[shape, fmt] = tables, write_tables(tables, fmt, root / shape / fmt)  # type: ignore[arg-type]
    return written


# -- reading back ---------------------------------------------------------------------------------


def kind_of(table: Table, column: str) -> str:
    dtype = table.frame[column].dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return "code"
    if column in table.dates:
        return "date"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    return "number" if pd.api.types.is_numeric_dtype(dtype) else "text"


def blank(value: object) -> bool:
    if isinstance(value, str):
        return value == ""
    return value is None or bool(pd.isna(value))


def expected(table: Table, column: str) -> list[object]:
    kind = kind_of(table, column)
    convert = {
        "code": str,
        "date": lambda v: v.date(),
        "datetime": lambda v: v.to_pydatetime(),
        "bool": bool,
        "number": float,
        "text": str,
    }[kind]
    return [None if blank(v) else convert(v) for v in table.frame[column]]


def found(values: pd.Series, kind: str, fmt: str, numbered: dict[str, int] | None) -> list[object]:
    """A column read back, as `expected` gives the table's: codes as text, booleans, dates."""
    by_number = {n: code for code, n in (numbered or {}).items()}

    def one(value: object) -> object:
        if blank(value):
            return None
        if kind == "code":
            if fmt in ("sav", "dta"):
                return by_number[int(value)] if numbered else str(int(value))  # type: ignore[call-overload]
            return str(int(value)) if isinstance(value, (int, float)) else str(value)
        if kind == "bool":
            return value if isinstance(value, bool) else bool(int(float(value)))  # type: ignore[arg-type]
        if kind == "date":
            if isinstance(value, str):
                return dt.date.fromisoformat(value)
            return value.date() if isinstance(value, dt.datetime) else value
        if kind == "datetime":
            return pd.Timestamp(value).to_pydatetime()  # type: ignore[arg-type]
        return float(value) if kind == "number" else str(value)  # type: ignore[arg-type]

    return [one(v) for v in values]


def read_back(
    path: Path, fmt: str, table: Table
) -> tuple[pd.DataFrame, dict[str, str], dict[str, dict[str, str]]]:
    """A file's data (columns named as in the table), variable labels, and value labels keyed
    by the code as the table has it."""
    if fmt == "csv":
        data = pd.read_csv(path, dtype=str, keep_default_na=False)
        sidecar = json.loads(path.with_suffix(".labels.json").read_text(encoding="utf-8"))
        return data, sidecar["labels"], sidecar["value_labels"]
    if fmt == "parquet":
        schema = pq.read_schema(path)
        labels = {n: schema.field(n).metadata[b"label"].decode() for n in schema.names}
        values = {
            n: json.loads(schema.field(n).metadata[b"value_labels"])
            for n in schema.names
            if b"value_labels" in schema.field(n).metadata
        }
        assert json.loads(schema.metadata[b"hekta_redcap"])["labels"] == labels
        return pd.read_parquet(path), labels, values
    if fmt == "xlsx":
        sheets = pd.read_excel(path, sheet_name=None, dtype=object)  # no numbers from text
        variables = sheets["variables"].fillna("")
        labels = dict(zip(variables["variable"], variables["label"], strict=True))
        values = dict(zip(variables["variable"], variables["values"], strict=True))
        for column, labelled in table.value_labels.items():  # "code = label; ..." as shown
            shown = "; ".join(f"{json_key(k)} = {text}" for k, text in labelled.items())
            assert values.pop(column) == shown, column
            values[column] = {json_key(k): text for k, text in labelled.items()}
        return sheets["data"], labels, {k: v for k, v in values.items() if v}
    read = pyreadstat.read_sav if fmt == "sav" else pyreadstat.read_dta
    data, meta = read(path)
    original = {short: name for name, short in fitted_names(table, fmt).items()}  # type: ignore[arg-type]
    numbered = integer_codes(table)
    data = data.rename(columns=original)
    labels = {original.get(n, n): text for n, text in meta.column_names_to_labels.items()}
    values = {}
    for short, labelled in meta.variable_value_labels.items():
        name = original.get(short, short)
        by_number = {n: code for code, n in numbered.get(name, {}).items()}
        values[name] = {by_number.get(int(k), str(int(k))): text for k, text in labelled.items()}
    shown = {original.get(n, n): t for n, t in meta.original_variable_types.items()}
    stored = {original.get(n, n): t for n, t in meta.readstat_variable_types.items()}
    for column in table.frame:
        kind = kind_of(table, column)
        assert stored[column] == ("string" if kind == "text" else "double"), column
        if kind in ("date", "datetime"):
            assert shown[column] == DATE_FORMATS[fmt][kind == "datetime"], column
    return data, labels, values


def fits(text: str, written: str, limit: int, in_bytes: bool) -> bool:
    """Whether `written` is `text`, or `text` cut to the limit and ended with "…"."""
    size = len(written.encode()) if in_bytes else len(written)
    if written == text:
        return (len(text.encode()) if in_bytes else len(text)) <= limit
    return written.endswith(ELLIPSIS) and text.startswith(written[:-1]) and size <= limit


def json_key(key: object) -> str:
    """A value label's key as text: a boolean's True is "1"."""
    return str(int(key)) if isinstance(key, bool) else str(key)


# -- round trips ----------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("fmt", FORMATS)
def test_values_labels_and_no_identifiers_round_trip(
    shape: str,
    fmt: str,
    exports: dict[tuple[str, str], tuple[list[Table], list[Path]]],
    identifying: tuple[list[str], set[str]],
) -> None:
    identifiers, secrets = identifying
    tables, files = exports[shape, fmt]
    paths = {p.stem: p for p in files if not p.name.endswith(".labels.json")}
    assert list(paths) == [t.name for t in tables]
    for table in tables:
        data, labels, values = read_back(paths[table.name], fmt, table)
        assert list(data.columns) == list(table.frame.columns)
        assert len(data) == len(table.frame)
        for column in data.columns:  # a default export holds no identifier, by name or value
            assert not any(column == n or column.startswith(f"{n}_") for n in identifiers)
        assert not set(data.astype(str).to_numpy().ravel()) & secrets, table.name
        numbered = integer_codes(table)
        for column in table.frame:
            kind = kind_of(table, column)
            want = expected(table, column)
            if kind == "number" and fmt == "xlsx":  # Excel keeps 15 significant digits
                want = [None if v is None else pytest.approx(v, rel=1e-14) for v in want]
            assert found(data[column], kind, fmt, numbered.get(column)) == want, column
        limit, value_limit, in_bytes = LIMITS.get(fmt, (10**6, 10**6, False))
        assert labels.keys() == table.labels.keys()
        for column, text in table.labels.items():
            assert fits(text, labels[column], limit, in_bytes), (column, labels[column])
        assert values.keys() == table.value_labels.keys()
        for column, labelled in table.value_labels.items():
            written = values[column]
            assert set(written) == {json_key(k) for k in labelled}, column
            for key, text in labelled.items():
                assert fits(text, written[json_key(key)], value_limit, in_bytes), (column, key)


def test_parquet_keeps_the_pandas_types(
    exports: dict[tuple[str, str], tuple[list[Table], list[Path]]],
) -> None:
    tables, files = exports["long", "parquet"]
    table = tables[0]
    data = pd.read_parquet(files[0])
    for column in table.frame:
        if column in table.dates:
            assert data[column].dropna().map(type).eq(dt.date).all(), column
            continue
        if kind_of(table, column) == "datetime":  # Parquet has no second unit: milliseconds
            assert data[column].dtype == "datetime64[ms]", column
            continue
        assert data[column].dtype == table.frame[column].dtype, column
    events = data["redcap_event_name"].dtype
    assert list(events.categories) == [e for e in table.value_labels["redcap_event_name"]]
    assert events.ordered


def test_statistics_formats_number_codes_that_are_not_integers(
    exports: dict[tuple[str, str], tuple[list[Table], list[Path]]],
) -> None:
    tables, files = exports["long", "dta"]
    table = tables[0]
    assert integer_codes(table) == {
        "redcap_event_name": {
            "baseline_arm_1": 1,
            "followup_6m_arm_1": 2,
            "followup_12m_arm_1": 3,
            "register_18m_arm_1": 4,
        },
        **{c: {"UNK": 1, "ASKU": 2, "NASK": 3} for c in table.frame if c.endswith("_code")},
    }
    data, meta = pyreadstat.read_dta(files[0])
    assert set(data["redcap_event_name"]) <= {1, 2, 3, 4}
    assert meta.variable_value_labels["demo_work_years_missing_code"] == {
        1: "Ukjent",
        2: "Spurt men ville ikke svare",
        3: "Ikke spurt",
    }
    assert meta.variable_value_labels["rand_group"] == {
        1: "IPS (Individuell jobbstøtte)",
        2: "Selvhjelpspakke og kurs",
    }


@pytest.mark.parametrize(("rows", "columns"), [(1_048_576, 1), (1, 16_385)])
def test_a_table_larger_than_an_excel_sheet_stops_the_export_before_any_file(
    tmp_path: Path, rows: int, columns: int
) -> None:
    """A register panel of a population does not fit a sheet: the export says so and
    writes nothing, not a workbook Excel would cut short."""
    small = Table("participants", pd.DataFrame({"record_id": ["1", "2"]}), {}, {})
    frame = pd.DataFrame(np.zeros((rows, columns)), columns=[f"v{i}" for i in range(columns)])
    large = Table("register_panel", frame, {}, {})
    with pytest.raises(HektaError, match=f"table register_panel has {rows:,} rows and "):
        write_tables([small, large], "xlsx", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    fits = pd.DataFrame(np.zeros((3, 2)), columns=["a", "b"])
    assert [p.name for p in write_tables([Table("t", fits, {}, {})], "xlsx", tmp_path)] == [
        "t.xlsx"
    ]
