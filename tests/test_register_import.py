"""Importing register deliveries: each problem at its line, the forms registers deliver in,
provenance, idempotence, replacement, atomic writes, and the command end to end."""

from __future__ import annotations

import datetime as dt
import gzip
import logging
import stat
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pyreadstat
import pytest
from click.testing import CliRunner
from conftest import edit

from hekta_redcap.cli import cli
from hekta_redcap.core.clock import local
from hekta_redcap.core.errors import HektaError
from hekta_redcap.core.settings import Settings
from hekta_redcap.registers import delivery as delivery_module
from hekta_redcap.registers import store as store_module
from hekta_redcap.registers.delivery import Imported, Problem, import_delivery, parse_period
from hekta_redcap.registers.store import RegisterStore

KPR_HEADER = "lopenr;kontakt_id;dato;tjeneste;kontakttype;diagnose"
SERIALS = ("10000001", "10000002", "10000003")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.load(
        (),
        {
            "HEKTA_REGISTER_DIR": str(tmp_path / "registers"),
            "HEKTA_LINKAGE_KEY": str(tmp_path / "keys" / "linkage-key.csv"),
        },
    )


@pytest.fixture
def key(settings: Settings) -> Path:
    """The linkage key as the linkage list writes it: record_id;lopenr."""
    settings.linkage_key.parent.mkdir()
    lines = ["record_id;lopenr", *(f"{n};{s}" for n, s in enumerate(SERIALS, start=1))]
    settings.linkage_key.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return settings.linkage_key


def delivery(folder: Path, name: str, lines: list[str], encoding: str = "utf-8") -> Path:
    file = folder / name
    file.write_bytes("\r\n".join(lines).encode(encoding) + b"\r\n")
    return file


def run(
    settings: Settings,
    key: Path,
    file: Path,
    source: str = "kpr",
    period: str | None = "2024-01:2024-12",
    delivered: dt.datetime | None = dt.datetime(2025, 2, 3),
) -> Imported:
    return import_delivery(settings, None, source, file, key, period, delivered)


def problems(result: Imported) -> list[tuple[int, str, str, str]]:
    return [(p.line, p.column, p.reason, p.detail) for p in result.problems]


# --- each problem at its line ----------------------------------------------------------------


def test_each_rejected_row_is_listed_at_its_line(
    settings: Settings, key: Path, tmp_path: Path
) -> None:
    file = delivery(
        tmp_path,
        "kpr.csv",
        [
            KPR_HEADER,
            "10000001;K1;02.01.2024;FL;1;A01",  # 2 kept
            "99999999;K2;2024-01-03;FL;1;A01",  # 3 a serial number not in the key
            "10000002;K3;20240104;XX;1;A01",  # 4 a code not in the layout
            "10000002;K4;2024-13-01;FL;1;A01",  # 5 not a date
            "10000003;K5;2024-01-05;FL;1;A1",  # 6 the pattern
            "10000003;K5;2024-01-05;FL;2;A02",  # 7 kept: line 6, with the same key, was bad
            "10000001;K6;2023-12-31;FL;1;",  # 8 before the period
            ";K7;2024-01-02;FL;1;",  # 9 no serial number
            "10000001;K8;2024-01-02;FL;1",  # 10 a field short
            "10000001;K1;2024-02-02;LV;2;",  # 11 the unique columns of line 2 again
        ],
    )
    result = run(settings, key, file)
    assert problems(result) == [
        (3, "lopenr", "unknown serial number", ""),
        (4, "tjeneste", "unknown code", ""),
        (5, "dato", "not a date", ""),
        (6, "diagnose", "does not match the pattern", ""),
        (8, "dato", "outside the period", ""),
        (9, "lopenr", "missing", ""),
        (10, "", "malformed line", "too few fields"),
        (11, "lopenr+kontakt_id", "duplicate", "of line 2"),
    ]
    assert (result.read, result.kept, result.rejected) == (10, 2, 8)
    assert result.status == "new"
    rows = RegisterStore.open(settings).rows("kpr")
    assert rows[["lopenr", "kontakt_id", "kontakttype"]].values.tolist() == [
        ["10000001", "K1", "1"],
        ["10000003", "K5", "2"],
    ]
    assert result.rejects_file is not None
    assert result.rejects_file.read_text(encoding="utf-8").splitlines() == [
        "line;reason;column;detail;lopenr;kontakt_id;dato;tjeneste;kontakttype;diagnose",
        "3;unknown serial number;lopenr;;99999999;K2;2024-01-03;FL;1;A01",
        "4;unknown code;tjeneste;;10000002;K3;2024-01-04;XX;1;A01",
        "5;not a date;dato;;10000002;K4;2024-13-01;FL;1;A01",
        "6;does not match the pattern;diagnose;;10000003;K5;2024-01-05;FL;1;A1",
        "8;outside the period;dato;;10000001;K6;2023-12-31;FL;1;",
        "9;missing;lopenr;;;K7;2024-01-02;FL;1;",
        "10;malformed line;;too few fields;;;;;;",
        "11;duplicate;lopenr+kontakt_id;of line 2;10000001;K1;2024-02-02;LV;2;",
    ]
    assert result.delivery is not None
    assert result.text().splitlines() == [
        f"kpr: kpr.csv imported as delivery {result.delivery.delivery_id}, period 2024-01-01 "
        "to 2024-12-31 (new)",
        "rows read 10: kept 2, rejected 8",
        "  does not match the pattern: 1",
        "  duplicate: 1",
        "  malformed line: 1",
        "  missing: 1",
        "  not a date: 1",
        "  outside the period: 1",
        "  unknown code: 1",
        "  unknown serial number: 1",
        "line 3, lopenr: unknown serial number",
        "line 4, tjeneste: unknown code",
        "line 5, dato: not a date",
        "line 6, diagnose: does not match the pattern",
        "line 8, dato: outside the period",
        "line 9, lopenr: missing",
        "line 10: malformed line (too few fields)",
        "line 11, lopenr+kontakt_id: duplicate (of line 2)",
        f"rejected rows with their values: {result.rejects_file}",
    ]


@pytest.mark.parametrize(
    ("last", "expected"),
    [
        ("10000003;K9;2024-03-01;FL;1;A09", []),
        ("10000002;K1;2024-03-01;FL;1;A09", []),  # K1 again, for another person: not a repeat
        ("10000001;K1;2024-03-01;FL;1;A09", [(5, "lopenr+kontakt_id", "duplicate", "of line 2")]),
        ("10000001;K9;2024-03-01", [(5, "", "malformed line", "too few fields")]),
        ("10000001;K9;2024-03-01;FL;1;a09", [(5, "diagnose", "does not match the pattern", "")]),
        ("10000001;K9;2024-03-01;XX;1;A09", [(5, "tjeneste", "unknown code", "")]),
        ("10000001;K9;2024-13-01;FL;1;A09", [(5, "dato", "not a date", "")]),
        ("10000009;K9;2024-03-01;FL;1;A09", [(5, "lopenr", "unknown serial number", "")]),
    ],
    ids=[
        "clean",
        "same id other person",
        "repeat",
        "malformed",
        "bad pattern",
        "unknown code",
        "bad date",
        "unknown serial",
    ],
)
def test_a_clean_delivery_in_one_pass_and_any_problem_at_its_line(
    settings: Settings,
    key: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    last: str,
    expected: list[tuple[int, str, str, str]],
) -> None:
    """A delivery without a problem is kept in one streaming pass; a problem in its last row
    sends it to the full check, which keeps and lists the same as the full check alone
    (codes and patterns, which the first pass checks on distinct values, included)."""
    from hekta_redcap.registers import delivery as module

    rows = [
        KPR_HEADER,
        "10000001;K1;02.01.2024;FL;1;A01",
        "10000002;K2;2024-01-03;LV;2;",
        " 10000003 ;K3;20240104;KHO;9;P19",
        last,
    ]
    checked: list[str] = []  # the files that took the full check
    full = module._check

    def spied(*args: Any) -> Imported:
        checked.append(args[2].file.name)
        return full(*args)

    monkeypatch.setattr(module, "_check", spied)
    results = []
    for name in ("one.csv", "two.csv"):
        if name == "two.csv":
            monkeypatch.setattr(module, "_clean", lambda *_: False)
        store = Settings.load((), {"HEKTA_REGISTER_DIR": str(tmp_path / f"store-{name}")})
        result = run(store, key, delivery(tmp_path, name, rows))
        kept = RegisterStore.open(store).rows("kpr").sort_values("kontakt_id")
        results.append((problems(result), result.read, result.kept, kept.values.tolist()))
    assert checked == (["one.csv"] if expected else []) + ["two.csv"]
    assert results[0] == results[1]
    assert results[0][:3] == (expected, 4, 4 - len(expected))
    assert len(results[0][3]) == 4 - len(expected)  # the store holds only the rows kept


def test_numbers_and_ranges_are_checked(settings: Settings, key: Path, tmp_path: Path) -> None:
    header = "lopenr;arbeidsforhold_id;orgnr;arbeidsforholdtype;startdato;sluttdato;"
    header += "stillingsprosent;avtalte_timer;yrkeskode"
    file = delivery(
        tmp_path,
        "aa.csv",
        [
            header,
            "10000001;A1;123456789;ordinaertArbeidsforhold;2024-01-01;;50,5;18,75;5223",
            "10000001;A2;123456789;ordinaertArbeidsforhold;2024-01-01;;250;;",  # 3 over 200
            "10000001;A3;123456789;ordinaertArbeidsforhold;2024-01-01;;-1;;",  # 4 under 0
            "10000001;A4;123456789;ordinaertArbeidsforhold;2024-01-01;;halv;;",  # 5
            "10000001;A5;12345678;ordinaertArbeidsforhold;2024-01-01;;;;",  # 6 orgnr short
        ],
    )
    result = run(settings, key, file, "aa")
    assert problems(result) == [
        (3, "stillingsprosent", "above the maximum", ""),
        (4, "stillingsprosent", "below the minimum", ""),
        (5, "stillingsprosent", "not a number", ""),
        (6, "orgnr", "does not match the pattern", ""),
    ]
    row = RegisterStore.open(settings).rows("aa").iloc[0]
    assert (row["stillingsprosent"], row["avtalte_timer"]) == (50.5, 18.75)
    assert pd.isna(row["sluttdato"])


def test_dates_and_months_in_each_format_and_only_those(
    settings: Settings, key: Path, tmp_path: Path
) -> None:
    """A date is DD.MM.YYYY, YYYY-MM-DD, YYYYMMDD or SAS's DDMONYYYY, with or without a time
    of day (as SAS and databases export dates), and a month YYYY-MM or YYYYMM, each whole: a
    two-digit year or a digit short is not read as some other day."""
    dates = ["02.01.2024", "2024-01-03", "20240104", "01.02.24", "2024011", "1.2.2024"]
    dates += ["31.02.2024", "2024/01/05", "29.02.2024", "05JAN2024", "2024-01-06 13:45:00"]
    dates += ["2024-01-07T00:00:00", "08.01.2024 23:59", "09jan2024:08:30:00"]
    dates += ["2024-01-10 25:00:00", "31FEB2024", "2JAN2024"]
    lines = [KPR_HEADER] + [f"10000001;K{n};{d};FL;1;A01" for n, d in enumerate(dates)]
    result = run(settings, key, delivery(tmp_path, "kpr.csv", lines))
    assert [(p.line, p.reason) for p in result.problems] == [
        (line, "not a date") for line in (5, 6, 7, 8, 9, 16, 17, 18)
    ]
    kept = RegisterStore.open(settings).rows("kpr")["dato"].dt.date.tolist()
    days = [(1, 2), (1, 3), (1, 4), (2, 29), (1, 5), (1, 6), (1, 7), (1, 8), (1, 9)]
    assert kept == [dt.date(2024, month, day) for month, day in days]
    header = "lopenr;maaned;orgnr;inntektstype;beloep"
    months = ["2024-01", "202402", "24-03", "2024-4", "20245", "2024-13"]
    lines = [header] + [f"10000001;{m};123456789;loennsinntekt;1" for m in months]
    result = run(settings, key, delivery(tmp_path, "inntekt.csv", lines), "inntekt", None)
    assert [(p.line, p.reason) for p in result.problems] == [
        (line, "not a month") for line in (4, 5, 6, 7)
    ]


def test_a_relationship_overlapping_the_period_belongs_to_it(
    settings: Settings, key: Path, tmp_path: Path
) -> None:
    """Aa delivers the relationships active in the period: one that began before it and goes
    on, or ended inside it, is the period's; one that ended before it or begins after is not."""
    header = "lopenr;arbeidsforhold_id;orgnr;arbeidsforholdtype;startdato;sluttdato;"
    header += "stillingsprosent;avtalte_timer;yrkeskode"
    job = "10000001;{id};123456789;ordinaertArbeidsforhold;{start};{end};100;37,5;"
    file = delivery(
        tmp_path,
        "aa.csv",
        [
            header,
            job.format(id="B1", start="2019-05-01", end=""),  # ongoing since before
            job.format(id="B2", start="2023-06-01", end="2024-02-29"),  # ends inside
            job.format(id="B3", start="2022-01-01", end="2023-12-31"),  # 4: ended before
            job.format(id="B4", start="2025-01-01", end=""),  # 5: begins after
        ],
    )
    result = run(settings, key, file, "aa")
    assert problems(result) == [
        (4, "startdato", "outside the period", ""),
        (5, "startdato", "outside the period", ""),
    ]
    kept = RegisterStore.open(settings).rows("aa")
    assert sorted(kept["arbeidsforhold_id"]) == ["B1", "B2"]


def test_whole_numbers_in_an_adapted_layout(
    settings: Settings, key: Path, tmp_path: Path, library: Path
) -> None:
    """A data manager adds a column to a layout: the import checks it without code changes."""
    edit(
        library,
        "registers/kpr.yaml",
        "  - name: diagnose\n",
        "  - name: takster\n    type: integer\n    min: 1\n    max: 20\n"
        "    label: {nb: Antall takster, en: Number of fee codes}\n  - name: diagnose\n",
    )
    file = delivery(
        tmp_path,
        "kpr.csv",
        [
            f"{KPR_HEADER};takster",
            "10000001;K1;2024-01-02;FL;1;A01;3",
            "10000001;K2;2024-01-02;FL;1;A01;2,5",
            "10000001;K3;2024-01-02;FL;1;A01;0",
            "10000001;K4;2024-01-02;FL;1;A01;",
            "10000001;K5;2024-01-02;FL;1;A01;12,0",
        ],
    )
    result = import_delivery(settings, library, "kpr", file, key, None, None)
    assert problems(result) == [
        (3, "takster", "not a whole number", ""),
        (4, "takster", "below the minimum", ""),
        (5, "takster", "missing", ""),
    ]
    rows = RegisterStore.open(settings, library).rows("kpr")
    assert str(rows["takster"].dtype) == "Int64"
    assert rows["takster"].tolist() == [3, 12]


def test_a_missing_required_column_stops_the_import(
    settings: Settings, key: Path, tmp_path: Path
) -> None:
    file = delivery(tmp_path, "kpr.csv", ["lopenr;kontakt_id;tjeneste;kontakttype", "1;2;3;4"])
    with pytest.raises(HektaError) as caught:
        run(settings, key, file)
    assert str(caught.value) == f"{file}:1: required column 'dato' is missing"
    assert RegisterStore.open(settings).deliveries() == []


def test_a_file_of_another_register_is_refused(
    settings: Settings, key: Path, tmp_path: Path
) -> None:
    file = delivery(tmp_path, "npr.csv", ["a;b;c", "1;2;3"])
    with pytest.raises(HektaError) as caught:
        run(settings, key, file)
    assert caught.value.message == (
        "the header names none of kpr's columns "
        "(lopenr, kontakt_id, dato, tjeneste, kontakttype, diagnose)"
    )


def test_missing_optional_and_extra_columns_are_noted(
    settings: Settings, key: Path, tmp_path: Path
) -> None:
    file = delivery(
        tmp_path,
        "kpr.csv",
        ["LOPENR;Kontakt_Id;DATO;tjeneste;kontakttype;kommune", "10000001;K1;2024-01-02;FL;1;0301"],
    )
    result = run(settings, key, file)
    assert result.notes == [
        "column 'diagnose' is not in the file: left blank",
        "column(s) kommune not in the layout: dropped",
    ]
    rows = RegisterStore.open(settings).rows("kpr")
    assert list(rows.columns) == [*KPR_HEADER.split(";"), "delivery_id"]
    assert pd.isna(rows["diagnose"][0])


def test_a_delimiter_at_the_end_of_each_line_is_no_column(
    settings: Settings, key: Path, tmp_path: Path
) -> None:
    """Some exports end every line with the delimiter (or two): columns without a name, not
    a header naming a column twice, and nothing to note."""
    lines = [
        f"{KPR_HEADER};;",
        "10000001;K1;2024-01-02;FL;1;A01;;",
        "10000002;K2;2024-01-03;FL;1;;;",
    ]
    result = run(settings, key, delivery(tmp_path, "kpr.csv", lines))
    assert (result.kept, result.rejected, result.notes) == (2, 0, [])
    assert RegisterStore.open(settings).rows("kpr")["diagnose"].tolist()[0] == "A01"


def test_a_delivery_without_rows_is_refused(settings: Settings, key: Path, tmp_path: Path) -> None:
    file = delivery(tmp_path, "kpr.csv", [KPR_HEADER])
    with pytest.raises(HektaError) as caught:
        run(settings, key, file)
    assert str(caught.value) == f"{file}: the delivery holds no rows"
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(HektaError, match="the file is empty: a delivery starts with a header"):
        run(settings, key, tmp_path / "empty.csv")


def test_a_delivery_without_a_valid_row_is_not_kept(
    settings: Settings, key: Path, tmp_path: Path
) -> None:
    file = delivery(tmp_path, "kpr.csv", [KPR_HEADER, "99999999;K1;2024-01-02;FL;1;A01"])
    result = run(settings, key, file)
    assert (result.status, result.read, result.rejected) == ("not imported", 1, 1)
    assert result.text().splitlines()[0] == "kpr: kpr.csv not imported: no row is valid"
    assert RegisterStore.open(settings).deliveries() == []


# --- as registers deliver ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "delimiter", "text"),
    [
        ("utf-8", ";", "Bø"),
        ("utf-8-sig", ";", "Bø"),
        ("latin-1", ";", "Bø"),
        ("cp1252", ";", "B€"),  # € is 0x80 in Windows-1252, undefined in Latin-1
        ("utf-8", ",", "Bø"),
        ("utf-8", "\t", "Bø"),
    ],
    ids=["utf-8", "utf-8-bom", "latin-1", "windows-1252", "comma", "tab"],
)
def test_encodings_and_delimiters(
    settings: Settings, key: Path, tmp_path: Path, encoding: str, delimiter: str, text: str
) -> None:
    lines = [
        KPR_HEADER,
        f"10000001;{text}1;02.01.2024;FL;1;A01",
        f"10000002;{text}2;20240103;LV;2;",
    ]
    file = delivery(tmp_path, "kpr.csv", [li.replace(";", delimiter) for li in lines], encoding)
    result = run(settings, key, file)
    assert (result.kept, result.rejected) == (2, 0)
    utf8 = encoding.startswith("utf-8")
    assert result.notes == (
        [] if utf8 else ["read as Windows-1252 (Latin-1): the file is not UTF-8"]
    )
    rows = RegisterStore.open(settings).rows("kpr")
    assert rows["kontakt_id"].tolist() == [f"{text}1", f"{text}2"]
    assert rows["dato"].tolist() == [pd.Timestamp("2024-01-02"), pd.Timestamp("2024-01-03")]


def test_decimal_commas_months_and_padding(settings: Settings, key: Path, tmp_path: Path) -> None:
    file = delivery(
        tmp_path,
        "inntekt.csv",
        [
            "lopenr,maaned,orgnr,inntektstype,beloep",
            '10000001,2024-01,123456789,loennsinntekt,"12 345,50"',
            "10000001 ,202402, 123456789 ,loennsinntekt,100",
            "10000001,2024-3,123456789,loennsinntekt,1",  # not a month
        ],
    )
    result = run(settings, key, file, "inntekt", period=None)
    assert problems(result) == [(4, "maaned", "not a month", "")]
    rows = RegisterStore.open(settings).rows("inntekt")
    assert rows[["lopenr", "orgnr", "beloep"]].values.tolist() == [
        ["10000001", "123456789", 12345.5],
        ["10000001", "123456789", 100.0],
    ]
    assert rows["maaned"].tolist() == [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-02-01")]
    # the period of a delivery that names none: its own months, to the last day
    assert result.delivery is not None
    assert result.delivery.period == (dt.date(2024, 1, 1), dt.date(2024, 2, 29))


@pytest.mark.parametrize("block", [1, 2, 3, 5, 1 << 23])
@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("K 1", "K 1"),  # a space inside a value is kept
        (" K1", "K1"),
        ("K1 ", "K1"),
        ('" K1 "', "K1"),  # quoted too
        ("K1", "K1"),
    ],
)
def test_values_are_trimmed_wherever_the_file_is_read_apart(
    settings: Settings,
    key: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    block: int,
    value: str,
    kept: str,
) -> None:
    """Trimming is skipped only when no space in the file touches a delimiter, a quote or a
    line break: the bytes are surveyed a block at a time, so a space at a block's edge must
    be seen with its neighbour in the next block."""
    monkeypatch.setattr(delivery_module, "BLOCK", block)
    last = f"10000002;K2;2024-01-03;FL;1;{'A01 ' if value == 'K1' else 'A01'}"
    file = delivery(
        tmp_path, "kpr.csv", [KPR_HEADER, f"10000001;{value};2024-01-02;FL;1;A01", last]
    )
    result = run(settings, key, file)
    assert (result.kept, result.rejected) == (2, 0)
    rows = RegisterStore.open(settings).rows("kpr")
    assert rows["kontakt_id"].tolist() == [kept, "K2"]
    assert rows["diagnose"].tolist() == ["A01", "A01"]  # the last byte's space seen at the end


@pytest.mark.parametrize("block", [1, 4, 1 << 23])
def test_lines_are_counted_to_the_last_that_is_not_blank(
    settings: Settings,
    key: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    block: int,
) -> None:
    """A clean file is kept in one pass only when its rows match its lines: trailing blank
    lines do not count, a missing last line break does not lose a line, and a Norwegian
    letter split between two blocks is still UTF-8. A last line holding only a space is
    not blank but a line of too few fields, listed as such."""
    monkeypatch.setattr(delivery_module, "BLOCK", block)
    file = tmp_path / "kpr.csv"
    body = f"{KPR_HEADER}\n10000001;Kø1;2024-01-02;FL;1;A01\n10000002;K2;2024-01-03;FL;1;A01"
    crlf = body.replace("\n", "\r\n")
    for text in (body, body + "\n", body + "\n\n\n", crlf + "\r\n\r\n", body + "\n \n"):
        file.write_bytes(text.encode("utf-8"))
        result = run(settings, key, file)
        spaced = text.endswith(" \n")
        assert (result.read, result.kept, result.notes) == (2 + spaced, 2, [])
        assert problems(result) == ([(4, "", "malformed line", "too few fields")] if spaced else [])
        assert RegisterStore.open(settings).rows("kpr")["kontakt_id"].tolist() == ["Kø1", "K2"]
    file.write_bytes((body + "\n10000003;K3;2024-01-04;XX;1;A01\n\n").encode("cp1252"))
    result = run(settings, key, file)
    assert problems(result) == [(4, "tjeneste", "unknown code", "")]
    assert result.notes == ["read as Windows-1252 (Latin-1): the file is not UTF-8"]


@pytest.mark.parametrize("encoding", ["utf-8", "cp1252"])
@pytest.mark.parametrize(
    "endings",
    [["\n", "\n", "\r\n", "\r\n"], ["\r\n", "\n", "\r\n", "\n"]],
    ids=["lf-then-crlf", "crlf-and-lf"],
)
def test_mixed_line_endings_are_read_as_one_kind(
    settings: Settings, key: Path, tmp_path: Path, encoding: str, endings: list[str]
) -> None:
    """A file whose lines end in both CRLF and LF (lines added in another editor), which
    DuckDB's reader cannot take, is read from a copy with one kind: every row kept or listed
    at its line, no carriage return left in a value."""
    lines = [
        KPR_HEADER,
        "10000001;Kø1;02.01.2024;FL;1;A01",
        "10000002;K2;2024-01-03;XX;2;A02",
        "10000003;K3;2024-01-04;LV;9;A03",
    ]
    file = tmp_path / "kpr.csv"
    file.write_bytes("".join(a + b for a, b in zip(lines, endings, strict=True)).encode(encoding))
    result = run(settings, key, file)
    assert problems(result) == [(3, "tjeneste", "unknown code", "")]
    latin = ["read as Windows-1252 (Latin-1): the file is not UTF-8"]
    assert result.notes == [
        *(latin if encoding == "cp1252" else []),
        "read with one kind of line ending: the file mixes CRLF and LF",
    ]
    rows = RegisterStore.open(settings).rows("kpr")
    assert rows[["kontakt_id", "diagnose"]].values.tolist() == [["Kø1", "A01"], ["K3", "A03"]]


@pytest.mark.parametrize("encoding", ["utf-8", "latin-1", "cp1252"])
def test_lines_stay_right_after_blank_lines_and_line_breaks_in_values(
    settings: Settings, key: Path, tmp_path: Path, encoding: str
) -> None:
    """Read as it is (UTF-8, Latin-1) or from a UTF-8 copy (Windows-1252: € is 0x80), a
    line is still the line an editor shows, and an extra column's Norwegian name is kept."""
    file = tmp_path / "kpr.csv"
    file.write_text(
        f"{KPR_HEADER};fødested\n10000001;K1;2024-01-02;FL;1;A01;Bø\n\n"
        '10000002;"K\n2";2024-01-03;FL;1;A01;Ås\n10000002;K€3;2024-01-03;XX;1;A01;Å\n'.replace(
            "€", "€" if encoding != "latin-1" else "e"
        ),
        encoding=encoding,
    )
    result = run(settings, key, file)
    assert problems(result) == [(6, "tjeneste", "unknown code", "")]
    assert result.notes[-1] == "column(s) fødested not in the layout: dropped"
    kept = RegisterStore.open(settings).rows("kpr")["kontakt_id"].tolist()
    assert kept == ["K1", "K\n2"]


@pytest.mark.parametrize("suffix", [".dta", ".sav"])
def test_stata_and_spss(settings: Settings, key: Path, tmp_path: Path, suffix: str) -> None:
    frame = pd.DataFrame(
        {
            "LOPENR": ["10000001", "10000002", "99999999"],
            "inn_dato": [dt.date(2024, 1, 2), dt.date(2024, 2, 3), dt.date(2024, 3, 4)],
            "ut_dato": [dt.date(2024, 1, 5), None, None],
            "episode_id": ["E1", "E2", "E3"],
            "omsorgsniva": [1.0, 7.0, 3.0],  # numeric codes, as Stata and SPSS hold them
            "fagomrade": ["TSB", "PHV", "SOM"],
            "hovedtilstand": ["F10.2", "F32", ""],
            "bitilstand": ["", "", ""],  # blank text, as Stata and SPSS hold it
        }
    )
    file = tmp_path / f"npr{suffix}"
    writer = pyreadstat.write_dta if suffix == ".dta" else pyreadstat.write_sav
    writer(frame, str(file))
    result = run(settings, key, file, "npr")
    assert result.unit == "row"
    assert problems(result) == [
        (2, "omsorgsniva", "unknown code", ""),
        (3, "lopenr", "unknown serial number", ""),
    ]
    rows = RegisterStore.open(settings).rows("npr")
    assert rows[["lopenr", "episode_id", "omsorgsniva", "hovedtilstand"]].values.tolist() == [
        ["10000001", "E1", "1", "F10.2"]
    ]
    assert rows["ut_dato"].tolist() == [pd.Timestamp("2024-01-05")]
    assert pd.isna(rows["bitilstand"][0])
    assert "row 2, omsorgsniva: unknown code" in result.text().splitlines()


# --- provenance, idempotence, replacement --------------------------------------------------


def test_provenance_and_privacy(settings: Settings, key: Path, tmp_path: Path) -> None:
    file = delivery(tmp_path, "kpr_2024.csv", [KPR_HEADER, "10000001;K1;2024-01-02;FL;1;A01"])
    result = run(settings, key, file, period="2024-01-01:2024-06-30")
    store = RegisterStore.open(settings)
    [recorded] = store.deliveries("kpr")
    assert recorded == result.delivery
    assert recorded.delivery_id == "kpr-" + recorded.sha256[:12]
    assert (recorded.file, recorded.delivered, recorded.period) == (
        "kpr_2024.csv",
        dt.date(2025, 2, 3),
        (dt.date(2024, 1, 1), dt.date(2024, 6, 30)),
    )
    assert (recorded.rows_kept, recorded.rows_rejected, recorded.status) == (1, 0, "active")
    assert recorded.imported_at.tzinfo == dt.UTC
    assert store.covered_until("kpr") == dt.date(2024, 6, 30)
    assert store.covered_until("npr") is None
    assert store.parquet_files("kpr") == [
        settings.register_dir / "kpr" / f"{recorded.delivery_id}.parquet"
    ]
    assert stat.S_IMODE(settings.register_dir.stat().st_mode) == 0o700
    for path in (store.catalog, *store.parquet_files("kpr")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert store.query("SELECT count(*) AS n FROM kpr")["n"].tolist() == [1]
    assert store.relation("kpr").fetchall()[0][:2] == ("10000001", "K1")
    [parquet] = store.parquet_files("kpr")  # zstd: ten years of deliveries at half the size
    assert pq.ParquetFile(parquet).metadata.row_group(0).column(0).compression == "ZSTD"


def test_the_same_file_again_changes_nothing(settings: Settings, key: Path, tmp_path: Path) -> None:
    file = delivery(tmp_path, "kpr.csv", [KPR_HEADER, "10000001;K1;2024-01-02;FL;1;A01"])
    first = run(settings, key, file)
    store = RegisterStore.open(settings)
    catalog = store.catalog.read_bytes()
    files = sorted(p.name for p in (settings.register_dir / "kpr").iterdir())
    again = run(settings, key, file, period="2024-01:2024-06", delivered=None)
    assert again.status == "unchanged"
    assert again.delivery == first.delivery
    assert not again.rejected
    assert store.catalog.read_bytes() == catalog
    assert sorted(p.name for p in (settings.register_dir / "kpr").iterdir()) == files
    assert first.delivery is not None
    assert again.text() == (
        f"kpr: kpr.csv is unchanged: imported on {local(first.delivery.imported_at).date()} "
        "as delivery "
        f"{first.delivery.delivery_id} (active, period 2024-01-01 to 2024-12-31, 1 rows kept, "
        "0 rejected); nothing changed"
    )


def test_a_new_delivery_for_the_same_period_replaces_the_old(
    settings: Settings, key: Path, tmp_path: Path
) -> None:
    old = run(
        settings, key, delivery(tmp_path, "a.csv", [KPR_HEADER, "10000001;K1;2024-01-02;FL;1;"])
    )
    new = run(
        settings, key, delivery(tmp_path, "b.csv", [KPR_HEADER, "10000002;K9;2024-03-02;LV;2;"])
    )
    assert old.delivery is not None and new.delivery is not None
    assert new.status == "replacing"
    assert new.replaced == [old.delivery]
    store = RegisterStore.open(settings)
    before, after = store.deliveries("kpr")
    assert (before.delivery_id, before.status, before.superseded_by) == (
        old.delivery.delivery_id,
        "superseded",
        new.delivery.delivery_id,
    )
    assert (after.delivery_id, after.status) == (new.delivery.delivery_id, "active")
    assert store.parquet_file(before).is_file()  # still on record
    assert store.rows("kpr")[["kontakt_id", "delivery_id"]].values.tolist() == [
        ["K9", new.delivery.delivery_id]
    ]
    assert new.text().splitlines()[1] == (
        f"  replaces delivery {old.delivery.delivery_id} (a.csv, imported "
        f"{local(old.delivery.imported_at).date()}), kept on record as superseded"
    )
    # a delivery for another period is added beside it, and an overlap is noted
    other = run(
        settings,
        key,
        delivery(tmp_path, "c.csv", [KPR_HEADER, "10000003;K5;2024-12-02;FL;1;"]),
        period="2024-07:2025-06",
    )
    assert other.status == "new"
    assert other.notes == [
        f"period overlaps active delivery {new.delivery.delivery_id} (2024-01-01 to "
        "2024-12-31), which stays active: only a delivery for the same period replaces one"
    ]
    assert sorted(store.rows("kpr")["kontakt_id"]) == ["K5", "K9"]
    assert store.covered_until("kpr") == dt.date(2025, 6, 30)
    assert store.covered("kpr") == ((dt.date(2024, 1, 1), dt.date(2025, 6, 30)),)


def test_coverage_joins_deliveries_that_meet_and_keeps_gaps(
    settings: Settings, key: Path, tmp_path: Path
) -> None:
    """Deliveries for 2023, then January-June 2024 (meeting it), then 2025: the second half of
    2024 is a gap, whose months are unknown rather than months without contacts."""
    for n, period in enumerate(("2023-01:2023-12", "2024-01:2024-06", "2025-01:2025-12")):
        line = f"10000001;K{n};{period[:4]}-03-01;FL;1;"
        run(settings, key, delivery(tmp_path, f"{n}.csv", [KPR_HEADER, line]), period=period)
    store = RegisterStore.open(settings)
    assert store.covered("kpr") == (
        (dt.date(2023, 1, 1), dt.date(2024, 6, 30)),
        (dt.date(2025, 1, 1), dt.date(2025, 12, 31)),
    )
    assert store.covered_until("kpr") == dt.date(2025, 12, 31)
    assert store.covered("npr") == ()


# --- atomic writes -------------------------------------------------------------------------


def test_a_failure_mid_write_leaves_the_store_as_it_was(
    settings: Settings, key: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(settings, key, delivery(tmp_path, "a.csv", [KPR_HEADER, "10000001;K1;2024-01-02;FL;1;"]))
    store = RegisterStore.open(settings)
    catalog = store.catalog.read_bytes()
    files = sorted(p.name for p in settings.register_dir.rglob("*"))

    def killed(*_: object) -> None:
        raise KeyboardInterrupt  # as a kill between the delivery's files and the catalog

    monkeypatch.setattr(store_module.RegisterStore, "_write_catalog", killed)
    newer = delivery(
        tmp_path,
        "b.csv",
        [KPR_HEADER, "99999999;K2;2024-01-02;FL;1;", "10000002;K9;2024-03-02;LV;2;"],
    )
    with pytest.raises(KeyboardInterrupt):
        run(settings, key, newer)
    assert store.catalog.read_bytes() == catalog
    assert sorted(p.name for p in settings.register_dir.rglob("*")) == files
    assert store.rows("kpr")["kontakt_id"].tolist() == ["K1"]
    monkeypatch.undo()
    assert run(settings, key, newer).status == "replacing"


def test_what_a_killed_import_left_is_swept_away(
    settings: Settings, key: Path, tmp_path: Path
) -> None:
    run(settings, key, delivery(tmp_path, "a.csv", [KPR_HEADER, "10000001;K1;2024-01-02;FL;1;"]))
    left = [
        settings.register_dir / ".import-x1" / "delivery.parquet",
        settings.register_dir / "kpr" / "kpr-000000000000.parquet",  # renamed, not recorded
        settings.register_dir / ".deliveries-x2",
    ]
    for file in left:
        file.parent.mkdir(exist_ok=True)
        file.write_bytes(b"half")
    assert len(RegisterStore.open(settings).rows("kpr")) == 1  # readers see the catalog only
    run(settings, key, delivery(tmp_path, "b.csv", [KPR_HEADER, "10000002;K2;2024-01-02;FL;1;"]))
    assert not any(file.exists() for file in left)
    assert not (settings.register_dir / ".import-x1").exists()


# --- the command line ----------------------------------------------------------------------


def test_the_command_end_to_end(settings: Settings, key: Path, tmp_path: Path) -> None:
    env = {"HEKTA_REGISTER_DIR": str(settings.register_dir), "HEKTA_LINKAGE_KEY": str(key)}
    good = delivery(tmp_path, "kpr.csv", [KPR_HEADER, "10000001;K1;2024-01-02;FL;1;A01"])
    args = ["registers", "import", "--source", "kpr", "--period", "2024-01:2024-12"]
    result = CliRunner().invoke(cli, [*args, "--delivered", "2025-02-03", str(good)], env=env)
    assert result.exit_code == 0, result.output
    [recorded] = RegisterStore.open(settings).deliveries()
    assert recorded.delivered == dt.date(2025, 2, 3)
    assert result.stdout.splitlines() == [
        f"kpr: kpr.csv imported as delivery {recorded.delivery_id}, period 2024-01-01 to "
        "2024-12-31 (new)",
        "rows read 1: kept 1, rejected 0",
    ]
    again = CliRunner().invoke(cli, [*args, str(good)], env=env)
    assert again.exit_code == 0
    assert "is unchanged" in again.stdout

    bad = delivery(
        tmp_path,
        "kpr2.csv",
        [KPR_HEADER, "10000001;K1;2024-01-02;FL;1;A01", "1;K2;2024-01-02;FL;1;"],
    )
    rejected = CliRunner().invoke(cli, [*args, str(bad)], env=env)
    assert rejected.exit_code == 1
    assert "line 3, lopenr: unknown serial number" in rejected.stdout.splitlines()

    missing = delivery(tmp_path, "kpr3.csv", ["lopenr;kontakt_id", "1;2"])
    refused = CliRunner().invoke(cli, [*args, str(missing)], env=env)
    assert refused.exit_code == 1
    assert refused.stderr == (
        f"error: {missing}:1: required columns 'dato', 'tjeneste', 'kontakttype' are missing\n"
    )
    assert "Traceback" not in refused.output


def test_the_log_holds_counts_not_values(
    settings: Settings, key: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    file = delivery(
        tmp_path,
        "kpr.csv",
        [KPR_HEADER, "10000001;K1;2024-01-02;FL;1;Z99", "99999999;K2;2024-01-02;FL;1;"],
    )
    with caplog.at_level(logging.INFO):
        result = run(settings, key, file)
    assert result.delivery is not None
    assert caplog.messages == [
        f"event=registers.import source=kpr delivery={result.delivery.delivery_id} "
        "status=new read=2 kept=1 rejected=1"
    ]


def test_a_file_that_is_not_what_it_says(settings: Settings, key: Path, tmp_path: Path) -> None:
    file = tmp_path / "npr.dta"
    file.write_text("not a Stata file", encoding="utf-8")
    with pytest.raises(HektaError) as caught:
        run(settings, key, file, "npr")
    assert str(caught.value) == (
        f"{file}: cannot read the file (Invalid file, or file has unsupported features)"
    )


@pytest.mark.parametrize("name", ["kpr.csv.gz", "kpr.zip"])
def test_a_compressed_file_is_named_as_such(
    settings: Settings, key: Path, tmp_path: Path, name: str
) -> None:
    """Not read as text that holds no known column: the import says what the file is."""
    file, text = tmp_path / name, f"{KPR_HEADER}\n10000001;K1;2024-01-02;FL;1;A01\n"
    if name.endswith(".gz"):
        file.write_bytes(gzip.compress(text.encode()))
    else:
        with zipfile.ZipFile(file, "w") as packed:
            packed.writestr("kpr.csv", text)
    with pytest.raises(HektaError) as caught:
        run(settings, key, file)
    assert str(caught.value) == (
        f"{file}: a compressed file: unpack it and import the file inside (its checksum is "
        "then the unpacked file's)"
    )


def test_no_linkage_key(settings: Settings, tmp_path: Path) -> None:
    file = delivery(tmp_path, "kpr.csv", [KPR_HEADER, "10000001;K1;2024-01-02;FL;1;A01"])
    with pytest.raises(HektaError) as caught:
        run(settings, settings.linkage_key, file)
    assert caught.value.message.startswith("no linkage key here")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01:2024-12", (dt.date(2024, 1, 1), dt.date(2024, 12, 31))),
        ("2024-02-10:2024-02", (dt.date(2024, 2, 10), dt.date(2024, 2, 29))),
        (None, None),
    ],
)
def test_period(text: str | None, expected: object) -> None:
    assert parse_period(text) == expected


@pytest.mark.parametrize("text", ["2024", "2024-01-01", "2024-13:2024-12", "2024-12:2024-01"])
def test_period_refused(text: str) -> None:
    with pytest.raises(HektaError, match="--period"):
        parse_period(text)


def test_problem_text() -> None:
    assert Problem(4, "dato", "not a date").text("line") == "line 4, dato: not a date"
    assert Problem(7, "", "malformed line", "too many fields").text("line") == (
        "line 7: malformed line (too many fields)"
    )
