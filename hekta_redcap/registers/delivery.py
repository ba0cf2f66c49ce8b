"""Importing a register delivery: read it as the registers deliver it, check every row against
the source's layout, keep the valid rows with the delivery's provenance and list the rest by
line, so that nothing valid is dropped silently and nothing invalid kept silently.

Reading. CSV as registers write it: the delimiter (semicolon, comma, tab, bar) found from the
header, UTF-8 with or without a byte-order mark, else Latin-1 (read as it is) or Windows-1252
(transcoded to UTF-8 first, as is a file whose line endings mix CRLF and LF, which DuckDB's
reader cannot take), values trimmed (when a space in the file touches a delimiter, quote or
line break), decimal commas, dates as `DATE_FORMATS` lists them (YYYY-MM-DD, DD.MM.YYYY,
YYYYMMDD, SAS's 02JAN2024, with or without a time of day) and months as YYYY-MM or YYYYMM.
SAS, SAS transport, Stata and SPSS files through pyreadstat, a chunk at a time. Header names
match the layout's whatever their case; a missing required column stops the import, a missing
optional one is blank, and columns the layout lacks are noted and dropped.

Checking. A delivery may hold ten million rows, so the checks run in DuckDB, vectorised. Each
row gets its first problem, column by column with the key first: a required value missing, a
value that does not parse, the schema's checks (`schema.checks`, the same the pandera schema
holds), a serial number the linkage key lacks, then a period date outside the delivery's
period. Among the rows left, a row repeating an earlier one's unique columns is rejected as
its duplicate (hashes find the few candidates). The first pass streams the valid rows straight
into Parquet, in parallel, as DuckDB converts a CSV (the file's checksum computed beside it),
leaving codes and patterns to the few distinct values it kept; when it kept a row for every
line, each distinct value holds and no two rows share a key, that is the whole import.
Otherwise a second pass reads the file into a table whose row ids keep the file's order, so
that a rejected row's line is known without numbering every row.

Keeping. The valid rows go to Parquet, the rejected ones with their line, column, reason and
values to a CSV beside it in the store (`store.py`). A file whose bytes were imported before
changes nothing; a delivery for the period of an active one supersedes it. The terminal gets
counts and line numbers, the log counts only: never a value.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from hekta_redcap.core.clock import local, now
from hekta_redcap.core.errors import HektaError, Origin
from hekta_redcap.core.logline import line
from hekta_redcap.core.settings import Settings
from hekta_redcap.definitions.registers import RegisterLayout, RegisterVariable
from hekta_redcap.registers.linkage import read_key
from hekta_redcap.registers.schema import checks
from hekta_redcap.registers.store import Delivery, Period, RegisterStore, literal, quoted

if TYPE_CHECKING:
    import duckdb
    import numpy as np
    import pandas as pd
    import pyarrow as pa

log = logging.getLogger(__name__)

SHOWN = 20  # problems listed in the summary; the rejects file holds them all
BLOCK = 1 << 23  # bytes read at a time for the checksum and transcoding
CHUNK_ROWS = 500_000  # rows of a SAS, Stata or SPSS file read at a time
DELIMITERS = (";", ",", "\t", "|")
PACKED = frozenset({".gz", ".zip", ".7z", ".bz2", ".xz", ".zst", ".rar", ".tar", ".tgz"})
STATISTICS = {
    ".sas7bdat": "read_sas7bdat",
    ".xpt": "read_xport",
    ".dta": "read_dta",
    ".sav": "read_sav",
    ".zsav": "read_sav",
}

MISSING = "missing"
UNKNOWN_SERIAL = "unknown serial number"
OUTSIDE = "outside the period"
DUPLICATE = "duplicate"
MALFORMED = "malformed line"
NOT_READ = {
    "date": "not a date",
    "month": "not a month",
    "number": "not a number",
    "integer": "not a whole number",
}
# Date and month formats by length, each read only at its own (strptime alone would read
# 01.02.24 as the year 24 and 2024011 as 2024-01-01); a time of day, as SAS and databases
# export dates, is dropped. The most common length first.
DATE_FORMATS = {
    10: ("%d.%m.%Y", "%Y-%m-%d"),
    8: ("%Y%m%d",),
    9: ("%d%b%Y",),  # SAS DATE9: 02JAN2024
    16: ("%Y-%m-%d %H:%M", "%d.%m.%Y %H:%M"),
    18: ("%d%b%Y:%H:%M:%S",),  # SAS DATETIME18: 02JAN2024:13:45:00
    19: ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%d.%m.%Y %H:%M:%S"),
}
MONTH_FORMATS = {7: ("%Y-%m",), 6: ("%Y%m",)}
# The schema's checks in SQL, by pandera check name: the reason a row fails it, and the
# condition a valid value meets.
CHECKS: dict[str, tuple[str, Callable[[str, Any], str]]] = {
    "isin": ("unknown code", lambda c, codes: f"{c} IN ({', '.join(map(literal, codes))})"),
    # pandera's str_matches anchors at the start (re.match): so does this
    "str_matches": (
        "does not match the pattern",
        lambda c, pattern: f"regexp_matches({c}, {literal('^' + pattern)})",
    ),
    "greater_than_or_equal_to": ("below the minimum", lambda c, low: f"{c} >= {low!r}"),
    "less_than_or_equal_to": ("above the maximum", lambda c, high: f"{c} <= {high!r}"),
}
# Checks of a value alone that registers repeat a great deal (a handful of codes in ten million
# rows): the first pass leaves them to the distinct values it kept (`_values_hold`).
ON_DISTINCT = frozenset({"isin", "str_matches"})
MALFORMED_KINDS = {
    "MISSING COLUMNS": "too few fields",
    "TOO MANY COLUMNS": "too many fields",
    "UNQUOTED VALUE": "a quote not closed",
    "LINE SIZE OVER MAXIMUM": "too long",
    "INVALID ENCODING": "not valid text",
}

Status = Literal["new", "unchanged", "replacing", "not imported"]


@dataclass(frozen=True)
class Problem:
    """A rejected row: where it is, which column and why (never its value)."""

    line: int
    column: str
    reason: str
    detail: str = ""

    def text(self, unit: str) -> str:
        where = f"{unit} {self.line}" + (f", {self.column}" if self.column else "")
        return f"{where}: {self.reason}" + (f" ({self.detail})" if self.detail else "")


@dataclass
class Imported:
    """What an import did, for the terminal (`text`) and the command's exit code."""

    source: str
    file: Path
    status: Status
    delivery: Delivery | None = None
    read: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    replaced: list[Delivery] = field(default_factory=list)
    rejects_file: Path | None = None
    unit: str = "line"  # "row" in a SAS, Stata or SPSS file

    @property
    def rejected(self) -> int:
        return sum(self.reasons.values())

    @property
    def kept(self) -> int:
        return self.read - self.rejected

    def text(self) -> str:
        d = self.delivery
        if self.status == "unchanged" and d is not None:
            return (
                f"{self.source}: {self.file.name} is unchanged: imported on "
                f"{local(d.imported_at):%Y-%m-%d} as delivery {d.delivery_id} ({d.status}, "
                f"period {d.period_text()}, {d.rows_kept} rows kept, {d.rows_rejected} "
                "rejected); nothing changed"
            )
        if d is None:
            out = [f"{self.source}: {self.file.name} not imported: no row is valid"]
        else:
            out = [
                f"{self.source}: {self.file.name} imported as delivery {d.delivery_id}, "
                f"period {d.period_text()} ({self.status})"
            ]
        out += [
            f"  replaces delivery {old.delivery_id} ({old.file}, imported "
            f"{local(old.imported_at):%Y-%m-%d}), kept on record as superseded"
            for old in self.replaced
        ]
        out.append(f"rows read {self.read}: kept {self.kept}, rejected {self.rejected}")
        out += [f"  {reason}: {n}" for reason, n in sorted(self.reasons.items())]
        out += [p.text(self.unit) for p in self.problems]
        if self.rejected > len(self.problems):
            out.append(f"... and {self.rejected - len(self.problems)} more")
        if self.rejects_file is not None:
            out.append(f"rejected rows with their values: {self.rejects_file}")
        out += [f"note: {n}" for n in self.notes]
        return "\n".join(out)


def import_delivery(
    settings: Settings,
    root: Path | None,
    source: str,
    file: Path,
    key_file: Path,
    period: str | None,
    delivered: dt.datetime | None,
) -> Imported:
    """Import one delivery of `source` into the register store (`settings.register_dir`),
    checking its serial numbers against the linkage key; `period` is FROM:TO (default: the
    delivery's own first and last period dates), `delivered` the day it came (default today)."""
    store = RegisterStore.open(settings, root)
    layout = store.layout(source)
    window = parse_period(period)
    with store.writing() as scratch, ThreadPoolExecutor(1) as pool:
        fingerprint = pool.submit(_fingerprint, file)  # beside DuckDB's first pass
        known = list(read_key(key_file))  # its serial numbers
        with _duckdb(scratch, file) as con:
            con.execute(
                "CREATE TEMP TABLE _keys AS SELECT unnest($1::VARCHAR[]) AS serial", [known]
            )
            parquet = scratch / "delivery.parquet"
            reader, written = _first_pass(con, layout, file, scratch, window, parquet)
            digest, lines = fingerprint.result()
            earlier = store.find(source, digest)
            if earlier is not None:
                log.info(line("registers.import", source=source, status="unchanged"))
                return Imported(source, file, "unchanged", earlier)
            if _clean(con, layout, reader, written, lines, parquet):
                result = Imported(source, file, "new", read=written, notes=reader.notes)
                kept = literal(str(parquet))
            else:
                rows = _checked_rows(layout, reader.scan, window)
                result = _check(con, layout, reader, rows, lines)
                kept = "(SELECT * FROM _checked WHERE _problem IS NULL)"
            if result.read == 0:
                raise HektaError("the delivery holds no rows", Origin(file))
            if result.kept == 0:
                result.status = "not imported"
                return _logged(result)
            start, end = window or _own_period(con, layout, kept)
            delivery = Delivery(
                source=source,
                delivery_id=f"{source}-{digest[:12]}",
                file=file.name,
                sha256=digest,
                delivered=delivered.date() if delivered else local(now()).date(),
                period_start=start,
                period_end=end,
                rows_kept=result.kept,
                rows_rejected=result.rejected,
                imported_at=now(),
            )
            if result.kept != written:  # the first pass kept rows the full check rejects
                _to_parquet(con, layout, "SELECT * FROM _checked", parquet)
            rejects = _rejects(con, layout, reader, scratch) if result.rejected else None
        result.notes += _overlaps(store, delivery)
        result.replaced = store.commit(delivery, parquet, rejects)
        result.delivery = delivery
        result.status = "replacing" if result.replaced else "new"
        result.rejects_file = store.rejects_file(delivery) if rejects else None
    return _logged(result)


def _logged(result: Imported) -> Imported:
    log.info(
        line(
            "registers.import",
            source=result.source,
            delivery=result.delivery.delivery_id if result.delivery else "-",
            status=result.status,
            read=result.read,
            kept=result.kept,
            rejected=result.rejected,
        )
    )
    return result


def parse_period(text: str | None) -> Period | None:
    """`FROM:TO`, each YYYY-MM-DD or YYYY-MM (a month from its first day to its last)."""
    if text is None:
        return None
    usage = "--period must be FROM:TO, each YYYY-MM-DD or YYYY-MM (for example 2024-01:2024-12)"
    parts = text.split(":")
    if len(parts) != 2:
        raise HektaError(usage)
    try:
        start, end = _day(parts[0].strip(), last=False), _day(parts[1].strip(), last=True)
    except ValueError:
        raise HektaError(usage) from None
    if start > end:
        raise HektaError(f"--period {text} ends before it starts")
    return start, end


def _day(text: str, last: bool) -> dt.date:
    if len(text) == 7:
        first = dt.date.fromisoformat(text + "-01")
        return _last_day(first) if last else first
    return dt.date.fromisoformat(text)


def _last_day(day: dt.date) -> dt.date:
    following = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return following - dt.timedelta(days=1)


# --- the file's bytes ----------------------------------------------------------------------


def _blocks(file: Path) -> Iterator[bytes]:
    """The file's bytes, `BLOCK` at a time (a delivery may be larger than memory allows)."""
    with file.open("rb") as handle:
        while block := handle.read(BLOCK):
            yield block


def _fingerprint(file: Path) -> tuple[str, int]:
    """The SHA-256 of the file's bytes and its number of lines (to the last that is not
    blank), computed beside DuckDB's pass (hashlib and numpy let go of Python's lock)."""
    import numpy as np

    digest = hashlib.sha256()
    newlines, lines = 0, 0
    for block in _blocks(file):
        digest.update(block)
        found = int(np.count_nonzero(np.frombuffer(block, np.uint8) == ord("\n")))
        content = len(block.rstrip(b"\r\n"))
        if content:  # the lines to this block's last one that is not blank
            lines = newlines + found - block[content:].count(b"\n") + 1
        newlines += found
    return digest.hexdigest(), lines


@dataclass(frozen=True)
class _Survey:
    """What a quick look at a CSV's bytes tells before DuckDB reads it."""

    utf8: bool
    beside_spaces: frozenset[int]  # the bytes next to a space (a line break at either end)

    def padded(self, delimiter: str) -> bool:
        """Whether a value may start or end with a space: a space beside the delimiter, a
        quote or a line break. Only then are values trimmed, which costs a tenth of the
        import."""
        return bool(self.beside_spaces & {ord(delimiter), ord('"'), ord("\n"), ord("\r")})


def _survey(file: Path) -> _Survey:
    """Whether the file is UTF-8 (only blocks that are not ASCII are decoded) and which bytes
    stand beside its spaces (found by numpy, in blocks that hold a space)."""
    import numpy as np

    decoder = codecs.getincrementaldecoder("utf-8")()
    utf8, beside = True, set()
    previous, open_space = ord("\n"), False  # the byte before a block; whether it was a space
    for block in _blocks(file):
        if utf8 and not block.isascii():
            try:
                decoder.decode(block)
            except UnicodeDecodeError:
                utf8 = False
        if open_space:
            beside.add(block[0])
        if b" " in block:
            data = np.frombuffer(block, np.uint8)
            spaces = np.flatnonzero(data == ord(" "))
            before = data[spaces[spaces > 0] - 1]
            after = data[spaces[spaces < len(data) - 1] + 1]
            counts = np.bincount(np.concatenate((before, after)), minlength=256)
            beside.update(np.flatnonzero(counts).tolist())
            if spaces[0] == 0:
                beside.add(previous)
        previous = block[-1]
        open_space = previous == ord(" ")  # the byte after it starts the next block
    if open_space:
        beside.add(ord("\n"))
    try:
        decoder.decode(b"", final=True)  # a sequence the last block left unfinished
    except UnicodeDecodeError:
        utf8 = False
    return _Survey(utf8, frozenset(beside))


def _windows_1252(error: UnicodeError) -> tuple[str, int]:
    """Bytes Windows-1252 leaves undefined are read as Latin-1 (both agree on æ, ø and å)."""
    assert isinstance(error, UnicodeDecodeError)
    return error.object[error.start : error.end].decode("latin-1"), error.end


codecs.register_error("hekta-latin-1", _windows_1252)


def _transcode(file: Path, target: Path, encoding: str) -> Path:
    """A copy of the file in UTF-8 with one kind of line ending (CRLF and a lone CR read as
    LF), for DuckDB's reader: of a Windows-1252 file, or of a UTF-8 or Latin-1 one whose line
    endings are mixed, which DuckDB's reader cannot take."""
    errors = "hekta-latin-1" if encoding == "cp1252" else "strict"
    with (
        file.open(encoding=encoding, errors=errors, newline=None) as source,
        target.open("w", encoding="utf-8", newline="") as out,
    ):
        while block := source.read(BLOCK):
            out.write(block)
    return target


def _latin_1(file: Path) -> bool:
    """Whether a file that is not UTF-8 reads the same as Latin-1 and as Windows-1252: no
    byte in 0x80-0x9F, where they differ (then DuckDB reads it as it is, in a fraction of the
    time a UTF-8 copy takes)."""
    import numpy as np

    for block in _blocks(file):
        data = np.frombuffer(block, np.uint8)
        if np.any((data >= 0x80) & (data <= 0x9F)):
            return False
    return True


def _holds_cr(file: Path) -> bool:
    """Whether the file holds a carriage return (without one, its line endings are LF)."""
    return any(b"\r" in block for block in _blocks(file))


# --- reading -------------------------------------------------------------------------------


@contextmanager
def _duckdb(scratch: Path, file: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB of the import's own, spilling into the store's scratch folder (owner-only).
    Its errors become one line without their text, which may quote a row."""
    import duckdb

    con = duckdb.connect(config={"temp_directory": str(scratch / "spill")})
    try:
        yield con
    except duckdb.Error as exc:
        kind = type(exc).__name__
        raise HektaError(f"the delivery could not be read ({kind})", Origin(file)) from exc
    finally:
        con.close()


@dataclass
class _Reader:
    """Where a delivery's rows come from (`scan`: SQL selecting each layout variable as
    text, trimmed, a blank as NULL, in the file's order) and how a row id maps to the line
    a person finds it on."""

    file: Path
    scan: str
    unit: str  # "line" or "row"
    offset: int  # the line (or row) of row id 0
    notes: list[str]
    text: Path | None = None  # the CSV DuckDB reads
    delimiter: str = ";"
    encoding: str = "utf-8-sig"  # the text's, as Python names it ("latin-1": DuckDB's too)
    malformed: list[Problem] = field(default_factory=list)
    exact: bool = True  # every record one line: a row's line is its row id plus the offset

    @classmethod
    def open(
        cls,
        con: duckdb.DuckDBPyConnection,
        layout: RegisterLayout,
        file: Path,
        scratch: Path,
        one_line_ending: bool = False,
    ) -> _Reader:
        function = STATISTICS.get(file.suffix.lower())
        if function is not None:
            return cls._statistics(con, layout, file, function)
        if file.suffix.lower() in PACKED:
            raise HektaError(
                "a compressed file: unpack it and import the file inside (its checksum is then "
                "the unpacked file's)",
                Origin(file),
            )
        survey = _survey(file)
        utf8 = survey.utf8
        notes = [] if utf8 else ["read as Windows-1252 (Latin-1): the file is not UTF-8"]
        if one_line_ending:
            notes.append("read with one kind of line ending: the file mixes CRLF and LF")
        text, encoding = file, "utf-8-sig"
        if not utf8 and not one_line_ending and _latin_1(file):
            encoding = "latin-1"  # DuckDB reads it as it is
        elif not utf8 or one_line_ending:
            text = _transcode(file, scratch / "delivery.csv", "utf-8-sig" if utf8 else "cp1252")
        with text.open(encoding=encoding, newline="") as handle:
            header = handle.readline()
        if not header.strip():
            raise HektaError("the file is empty: a delivery starts with a header", Origin(file))
        delimiter = max(DELIMITERS, key=lambda d: _known(layout, _fields(header, d)))
        names = _fields(header, delimiter)
        picked, more = _match(layout, names, Origin(file, 1))
        fields = ", ".join(f"{literal(f'c{i}')}: 'VARCHAR'" for i in range(len(names)))
        scan = (
            f"read_csv({literal(str(text))}, delim = {literal(delimiter)}, header = true, "
            f"auto_detect = false, columns = {{{fields}}}, quote = '\"', escape = '\"', "
            f"encoding = {literal('latin-1' if encoding == 'latin-1' else 'utf-8')}, "
            "store_rejects = true, rejects_table = '_malformed', rejects_scan = '_scan')"
        )
        columns = {v: None if i is None else f"c{i}" for v, i in picked.items()}
        scan = _trimmed(columns, scan, survey.padded(delimiter))
        return cls(file, scan, "line", 2, notes + more, text, delimiter, encoding)

    @classmethod
    def _statistics(
        cls, con: duckdb.DuckDBPyConnection, layout: RegisterLayout, file: Path, function: str
    ) -> _Reader:
        """Load a SAS, Stata or SPSS file into `_raw` as text, a chunk at a time."""
        import pyreadstat

        read = getattr(pyreadstat, function)
        try:
            _, meta = read(str(file), metadataonly=True)
            names = list(meta.column_names)
            picked, notes = _match(layout, names, Origin(file))
            columns = {v: None if i is None else names[i] for v, i in picked.items()}
            used = [c for c in columns.values() if c is not None]
            con.execute(
                "CREATE TEMP TABLE _raw (" + ", ".join(f"{quoted(c)} VARCHAR" for c in used) + ")"
            )
            for frame, _ in pyreadstat.read_file_in_chunks(
                read, str(file), chunksize=CHUNK_ROWS, usecols=used
            ):
                con.register("_chunk", _as_text(layout, columns, frame))
                con.execute("INSERT INTO _raw SELECT * FROM _chunk")
                con.unregister("_chunk")
        except (pyreadstat.ReadstatError, pyreadstat.PyreadstatError) as exc:
            raise HektaError(f"cannot read the file ({exc})", Origin(file)) from None
        return cls(file, _trimmed(columns, "_raw", padded=True), "row", 1, notes)

    def scanned(self, con: duckdb.DuckDBPyConnection, rows: int, lines: int) -> None:
        """After the scan: the lines DuckDB found malformed, and whether every record was one
        line (blank lines and line breaks inside quotes make lines and records differ)."""
        if self.text is None:
            return
        self.malformed = [
            Problem(n, "", MALFORMED, ", ".join(sorted(MALFORMED_KINDS.get(k, k) for k in kinds)))
            for n, kinds in con.execute(
                "SELECT line, list(DISTINCT error_type::VARCHAR) FROM _malformed "
                "GROUP BY line ORDER BY line"
            ).fetchall()
        ]
        self.exact = lines == 1 + rows + len(self.malformed)

    def line_of(self, con: duckdb.DuckDBPyConnection, row: str) -> str:
        """SQL for the line (or row) of a row id: arithmetic when every record is one line
        (counting the malformed lines DuckDB skipped before it), else looked up in `_lines`,
        counted once by Python's CSV reader."""
        if self.exact and not self.malformed:
            return f"({row} + {self.offset})"
        if self.exact:
            if "_skipped" not in _tables(con):
                # the i-th malformed line (0-based) comes before row id line - i - offset
                slots = [p.line - i - self.offset for i, p in enumerate(self.malformed)]
                con.register("_skipped", _column_table("slot", slots))
            return f"({row} + {self.offset} + (SELECT count(*) FROM _skipped WHERE slot <= {row}))"
        if "_lines" not in _tables(con):
            con.register("_lines", self._record_lines())
        return f"(SELECT line FROM _lines WHERE _row = {row})"

    def _record_lines(self) -> pa.Table:
        """Each record's first line, in the order DuckDB numbered them (it skips blank lines
        and the malformed ones)."""
        import pyarrow as pa

        assert self.text is not None
        skipped = {p.line for p in self.malformed}
        starts: list[int] = []
        with self.text.open(encoding=self.encoding, newline="") as handle:
            records = csv.reader(handle, delimiter=self.delimiter)
            next(records)
            end = records.line_num
            for record in records:
                start, end = end + 1, records.line_num
                if record and start not in skipped:
                    starts.append(start)
        return pa.table({"_row": range(len(starts)), "line": starts})


def _column_table(name: str, values: list[int]) -> pa.Table:
    import pyarrow as pa

    return pa.table({name: pa.array(values, pa.int64())})


def _fields(header: str, delimiter: str) -> list[str]:
    return next(csv.reader([header], delimiter=delimiter))


def _known(layout: RegisterLayout, names: list[str]) -> int:
    wanted = {v.name.lower() for v in layout.variables}
    return sum(n.strip().lower() in wanted for n in names)


def _match(
    layout: RegisterLayout, names: list[str], where: Origin
) -> tuple[dict[str, int | None], list[str]]:
    """Each layout variable's position among the file's columns (None: absent), matched by
    name whatever the case, and notes on what is absent or extra (a column without a name,
    as a delimiter at the end of each line makes, is dropped without one)."""
    position: dict[str, int] = {}
    for i, name in enumerate(names):
        key = name.strip().lower()
        if not key:
            continue
        if key in position:
            raise HektaError(f"column '{name.strip()}' appears twice in the header", where)
        position[key] = i
    if not any(v.name.lower() in position for v in layout.variables):
        expected = ", ".join(v.name for v in layout.variables)
        raise HektaError(f"the header names none of {layout.source}'s columns ({expected})", where)
    missing = [v.name for v in layout.variables if v.required and v.name.lower() not in position]
    if missing:
        shown = ", ".join(f"'{m}'" for m in missing)
        many = len(missing) > 1
        raise HektaError(
            f"required column{'s' if many else ''} {shown} {'are' if many else 'is'} missing", where
        )
    notes = [
        f"column '{v.name}' is not in the file: left blank"
        for v in layout.variables
        if v.name.lower() not in position
    ]
    wanted = {v.name.lower() for v in layout.variables}
    extra = [n.strip() for n in names if n.strip() and n.strip().lower() not in wanted]
    if extra:
        notes.append(f"column(s) {', '.join(extra)} not in the layout: dropped")
    return {v.name: position.get(v.name.lower()) for v in layout.variables}, notes


def _trimmed(columns: dict[str, str | None], scan: str, padded: bool) -> str:
    """SELECT each variable's column from `scan` without surrounding spaces, a blank as NULL.
    Values are trimmed only when some may be `padded` (DuckDB's CSV reader already reads an
    empty field as NULL), and then only those holding a space: trimming every value costs
    about as much as reading the file; looking at a value's first and last character, twice
    as much as searching it."""
    values = []
    for variable, column in columns.items():
        c = quoted(column) if column else None
        if c is None:
            values.append(f"NULL::VARCHAR AS {quoted(variable)}")
        elif padded:
            values.append(
                f"CASE WHEN contains({c}, ' ') OR {c} = '' THEN NULLIF(trim({c}), '') "
                f"ELSE {c} END AS {quoted(variable)}"
            )
        else:
            values.append(f"{c} AS {quoted(variable)}")
    return f"SELECT {', '.join(values)} FROM {scan}"


def _as_text(
    layout: RegisterLayout, columns: dict[str, str | None], frame: pd.DataFrame
) -> pa.Table:
    """A chunk of a SAS, Stata or SPSS file as text, as a CSV would hold it (whole numbers
    without decimals, dates ISO, months YYYY-MM), so the checks read every format alike."""
    import pyarrow as pa
    import pyarrow.compute as pc

    texts = {}
    for variable in layout.variables:
        name = columns[variable.name]
        if name is None:
            continue
        values = pa.array(frame[name], from_pandas=True)
        if pa.types.is_timestamp(values.type):
            values = pc.cast(values, pa.date32(), safe=False)  # the day of a date and time
        if pa.types.is_date(values.type) and variable.type == "month":
            values = pc.strftime(values, format="%Y-%m")
        texts[name] = values.cast(pa.string())
    return pa.table(texts)


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {row[0] for row in con.execute("SELECT name FROM (SHOW TABLES)").fetchall()}


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    return con.execute(sql).fetchall()[0][0]


# --- checking ------------------------------------------------------------------------------


def _parsed(variable: RegisterVariable, text: str) -> str:
    """SQL for a variable's typed value from its text (NULL when it does not parse)."""
    match variable.type:
        case "date" | "month":
            formats = DATE_FORMATS if variable.type == "date" else MONTH_FORMATS
            whens = " ".join(
                f"WHEN {length} THEN try_strptime({text}, [{', '.join(map(literal, these))}])"
                for length, these in formats.items()
            )
            return f"(CASE strlen({text}) {whens} END)::DATE"
        case "number" | "integer":
            number = f"try_cast(replace(replace({text}, ' ', ''), ',', '.') AS DOUBLE)"
            if variable.type == "number":
                return f"CASE WHEN isfinite({number}) THEN {number} END"
            return f"CASE WHEN {number} = round({number}) THEN try_cast({number} AS BIGINT) END"
        case _:
            return text


def _problem(reason: str, column: str) -> str:
    """A row's problem as one text, `reason|column` (reasons hold no bar)."""
    return literal(f"{reason}|{column}")


def _checked_rows(
    layout: RegisterLayout, scan: str, window: Period | None, on_distinct: bool = True
) -> str:
    """SQL for every row of `scan` typed, with the text of what did not parse, the hash of
    its unique columns and its first problem (`_problem`, NULL when valid); the serial
    numbers are checked against `_keys`. Without `on_distinct`, the checks `ON_DISTINCT`
    names are left out (the first pass proves them on distinct values)."""
    conditions: list[tuple[str, str, str]] = []  # (condition, reason, column)
    for v in sorted(layout.variables, key=lambda v: v.name != layout.key):
        value, text = quoted(v.name), quoted("_text_" + v.name)
        if v.required:
            conditions.append((f"{text} IS NULL", MISSING, v.name))
        if v.type in NOT_READ:
            conditions.append((f"{text} IS NOT NULL AND {value} IS NULL", NOT_READ[v.type], v.name))
        for name, argument in checks(v):
            if name in ON_DISTINCT and not on_distinct:
                continue
            reason, sql = CHECKS[name]
            conditions.append((f"NOT ({sql(value, argument)})", reason, v.name))
        if v.name == layout.key:
            conditions.append(
                (f"{value} NOT IN (SELECT serial FROM _keys)", UNKNOWN_SERIAL, v.name)
            )
    if window is not None:
        end = layout.column("end")
        for name in layout.period:
            since, until = window
            start = since if layout.variable(name).type == "date" else since.replace(day=1)
            inside = f"{quoted(name)} BETWEEN DATE '{start}' AND DATE '{until}'"
            if end is not None and name == layout.column("start"):
                # a relationship, episode or spell is in the period when it overlaps it: one
                # that began before and goes on (blank end) or ends inside belongs there too
                inside = (
                    f"{quoted(name)} <= DATE '{until}' "
                    f"AND ({quoted(end)} IS NULL OR {quoted(end)} >= DATE '{start}')"
                )
            conditions.append((f"NOT ({inside})", OUTSIDE, name))
    problem = " ".join(f"WHEN {c} THEN {_problem(r, n)}" for c, r, n in conditions)
    typed = ", ".join(
        f"{_parsed(v, quoted(v.name))} AS {quoted(v.name)}, "
        f"{quoted(v.name)} AS {quoted('_text_' + v.name)}"
        for v in layout.variables
    )
    kept = [quoted(v.name) for v in layout.variables] + [
        f"CASE WHEN {quoted(v.name)} IS NULL THEN {quoted('_text_' + v.name)} END "
        f"AS {quoted('_text_' + v.name)}"  # what did not parse, for the rejects file
        for v in layout.variables
        if v.type in NOT_READ
    ]
    if layout.unique:
        kept.append(f"hash({', '.join(quoted(u) for u in layout.unique)}) AS _hash")
    return (
        f"SELECT {', '.join(kept)}, CASE {problem} END AS _problem "
        f"FROM (SELECT {typed} FROM ({scan}))"
    )


def _first_pass(
    con: duckdb.DuckDBPyConnection,
    layout: RegisterLayout,
    file: Path,
    scratch: Path,
    window: Period | None,
    parquet: Path,
) -> tuple[_Reader, int]:
    """Open the delivery and stream the rows that pass the row checks into Parquet (codes and
    patterns are left to `_values_hold`); how many were written. A CSV DuckDB's reader trips
    over that holds a carriage return (CRLF and LF mixed) is read again from a copy with one
    kind of line ending."""
    import duckdb

    def stream(reader: _Reader) -> tuple[_Reader, int]:
        rows = _checked_rows(layout, reader.scan, window, on_distinct=False)
        return reader, _to_parquet(con, layout, rows, parquet)

    reader = _Reader.open(con, layout, file, scratch)
    try:
        return stream(reader)
    except duckdb.InvalidInputException:
        if reader.text != file or not _holds_cr(file):
            raise
    return stream(_Reader.open(con, layout, file, scratch, one_line_ending=True))


def _clean(
    con: duckdb.DuckDBPyConnection,
    layout: RegisterLayout,
    reader: _Reader,
    written: int,
    lines: int,
    parquet: Path,
) -> bool:
    """Whether the first pass, which wrote the valid rows straight into Parquet as DuckDB
    turns a CSV into Parquet, kept every row: as many rows as the file has lines below its
    header (or a SAS, Stata or SPSS file rows) and no two sharing the hash of their unique
    columns. Otherwise the full check (`_check`) reads the delivery again, in order, to number
    the lines it rejects; blank lines and line breaks inside values also take that way."""
    every = _one(con, "SELECT count(*) FROM _raw") if reader.text is None else lines - 1
    stored = literal(str(parquet))
    if written != every or not _values_hold(con, layout, stored):
        return False
    if layout.unique:
        unique = ", ".join(quoted(u) for u in layout.unique)
        return not len(_repeated(con, f"SELECT hash({unique}) FROM {stored}"))
    return True


def _values_hold(con: duckdb.DuckDBPyConnection, layout: RegisterLayout, stored: str) -> bool:
    """Whether each distinct value of the rows `stored` meets the checks the first pass
    left out (`ON_DISTINCT`): four service codes checked once each rather than in ten
    million rows spares the first pass a tenth of its time."""
    # one scan: each column's distinct values as a list, filtered by its checks (a filter
    # on a DISTINCT subquery would be pushed below it, onto every row)
    failing = [
        f"len(list_filter(list(DISTINCT {c}), lambda {c}: NOT ({CHECKS[name][1](c, argument)})))"
        for v in layout.variables
        for name, argument in checks(v)
        if name in ON_DISTINCT
        for c in [quoted(v.name)]
    ]
    return not failing or _one(con, f"SELECT {' + '.join(failing)} FROM {stored}") == 0


def _check(
    con: duckdb.DuckDBPyConnection,
    layout: RegisterLayout,
    reader: _Reader,
    checked: str,
    lines: int,
) -> Imported:
    """Read every row into `_checked`, in the file's order (its row ids number the lines),
    then mark duplicates; count what was read and rejected and list the first problems."""
    con.execute(f"CREATE TEMP TABLE _checked AS {checked}")
    rows = _one(con, "SELECT count(*) FROM _checked")
    reader.scanned(con, rows, lines)
    _mark_duplicates(con, layout)
    reasons = {MALFORMED: len(reader.malformed)} if reader.malformed else {}
    for problem_text, n in con.execute(
        "SELECT _problem, count(*) FROM _checked WHERE _problem IS NOT NULL GROUP BY 1"
    ).fetchall():
        reason = problem_text.partition("|")[0]
        reasons[reason] = reasons.get(reason, 0) + n
    shown = con.execute(
        f"SELECT {reader.line_of(con, '_checked.rowid')}, _problem, "
        f"{reader.line_of(con, '_first')} FROM _checked "
        f"LEFT JOIN _duplicates ON _checked.rowid = _row WHERE _problem IS NOT NULL "
        f"ORDER BY _checked.rowid LIMIT {SHOWN}"
    ).fetchall()
    found = [
        Problem(
            n,
            text.partition("|")[2],
            text.partition("|")[0],
            f"of {reader.unit} {of}" if of else "",
        )
        for n, text, of in shown
    ]
    return Imported(
        layout.source,
        reader.file,
        "new",
        read=rows + len(reader.malformed),
        reasons=reasons,
        problems=sorted(found + reader.malformed[:SHOWN], key=lambda p: p.line)[:SHOWN],
        notes=reader.notes,
        unit=reader.unit,
    )


def _mark_duplicates(con: duckdb.DuckDBPyConnection, layout: RegisterLayout) -> None:
    """Reject valid rows that repeat an earlier valid row's unique columns: equal hashes
    find the few candidates, which are then compared by value (`_duplicates`: each with the
    first row)."""
    if not layout.unique:
        con.execute("CREATE TEMP TABLE _duplicates (_row BIGINT, _first BIGINT)")
        return
    import pyarrow as pa

    unique = ", ".join(quoted(u) for u in layout.unique)
    repeated = _repeated(con, "SELECT _hash FROM _checked WHERE _problem IS NULL")
    con.register("_repeated", pa.table({"_hash": pa.array(repeated, pa.uint64())}))
    con.execute(
        f"CREATE TEMP TABLE _duplicates AS SELECT _row, _first FROM ("
        f"SELECT rowid AS _row, min(rowid) OVER (PARTITION BY {unique}) AS _first "
        f"FROM _checked WHERE _problem IS NULL AND _hash IN (SELECT _hash FROM _repeated)"
        f") WHERE _row <> _first"
    )
    con.execute(
        f"UPDATE _checked SET _problem = {_problem(DUPLICATE, '+'.join(layout.unique))} "
        "WHERE rowid IN (SELECT _row FROM _duplicates)"
    )


def _repeated(con: duckdb.DuckDBPyConnection, hashes: str) -> np.ndarray:
    """The values the query `hashes` (one column of hashes) gives more than once: sorted by
    numpy, which takes a tenth of the time DuckDB's grouping of ten million values takes."""
    import numpy as np

    values = next(iter(con.execute(hashes).fetchnumpy().values()))
    values.sort()
    return np.unique(values[1:][values[1:] == values[:-1]])


def _own_period(con: duckdb.DuckDBPyConnection, layout: RegisterLayout, kept: str) -> Period:
    """The period a delivery covers by its own dates (`kept`: its valid rows): its first and
    last period date (a month to its last day)."""
    if not layout.period:
        raise HektaError(
            f"{layout.source} has no period columns: give the delivery's period with --period"
        )
    bounds = ", ".join(f"min({quoted(p)}), max({quoted(p)})" for p in layout.period)
    values = con.execute(f"SELECT {bounds} FROM {kept}").fetchall()[0]
    starts = [s for s in values[0::2] if s is not None]
    ends = [
        _last_day(e) if layout.variable(p).type == "month" else e
        for p, e in zip(layout.period, values[1::2], strict=True)
        if e is not None
    ]
    return min(starts), max(ends)


# --- keeping -------------------------------------------------------------------------------


def _rejects(
    con: duckdb.DuckDBPyConnection, layout: RegisterLayout, reader: _Reader, scratch: Path
) -> Path:
    """The rejected rows as CSV with their line, column, reason and values (as read where
    they did not parse)."""
    rejects = scratch / "rejects.csv"
    values = ", ".join(
        f"COALESCE({quoted('_text_' + v.name)}, CAST({quoted(v.name)} AS VARCHAR)) "
        f"AS {quoted(v.name)}"
        if v.type in NOT_READ
        else quoted(v.name)
        for v in layout.variables
    )
    blanks = ", ".join("NULL" for _ in layout.variables)
    con.register("_malformed_lines", _malformed_table(reader.malformed))
    unit = reader.unit
    con.execute(
        f"COPY (SELECT * FROM (SELECT {reader.line_of(con, '_checked.rowid')} AS {unit}, "
        "split_part(_problem, '|', 1) AS reason, "
        "substr(_problem, strpos(_problem, '|') + 1) AS \"column\", "
        f"'of {unit} ' || {reader.line_of(con, '_first')} AS detail, {values} "
        "FROM _checked LEFT JOIN _duplicates ON _checked.rowid = _row "
        "WHERE _problem IS NOT NULL "
        f"UNION ALL SELECT line, reason, NULL, detail, {blanks} FROM _malformed_lines) "
        f"ORDER BY 1) TO {literal(str(rejects))} (HEADER, DELIMITER ';')"
    )
    return rejects


def _to_parquet(
    con: duckdb.DuckDBPyConnection, layout: RegisterLayout, rows: str, parquet: Path
) -> int:
    """The layout's columns of the valid rows of `rows` as Parquet; how many. The rows are a
    set, so DuckDB writes them in parallel, without their order; its scans number rows in
    order again afterwards. zstd at level 1 halves snappy's size (ten years of population
    deliveries) in the same time."""
    columns = ", ".join(quoted(v.name) for v in layout.variables)
    con.execute("SET preserve_insertion_order = false")
    try:
        return int(
            _one(
                con,
                f"COPY (SELECT {columns} FROM ({rows}) WHERE _problem IS NULL) "
                f"TO {literal(str(parquet))} "
                "(FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1)",
            )
        )
    finally:
        con.execute("SET preserve_insertion_order = true")


def _malformed_table(malformed: list[Problem]) -> pa.Table:
    import pyarrow as pa

    return pa.table(
        {
            "line": pa.array([p.line for p in malformed], pa.int64()),
            "reason": pa.array([p.reason for p in malformed], pa.string()),
            "detail": pa.array([p.detail for p in malformed], pa.string()),
        }
    )


def _overlaps(store: RegisterStore, new: Delivery) -> list[str]:
    """Active deliveries whose period overlaps the new one's without being the same: both
    stay active (only a delivery for the same period replaces one)."""
    notes, mine = [], new.known_period()
    for old in store.active(new.source):
        theirs = old.known_period()
        if mine is None or theirs is None or theirs == mine:
            continue
        if theirs[0] <= mine[1] and mine[0] <= theirs[1]:
            notes.append(
                f"period overlaps active delivery {old.delivery_id} ({old.period_text()}), "
                "which stays active: only a delivery for the same period replaces one"
            )
    return notes
