"""REDCap's data dictionary as a file: its 18 columns, and reading and writing the CSV.

`read_dictionary` reads a dictionary as people bring it: the API's `field_name,…` header or the
download page's `Variable / Field Name,…`, the older 16- and 17-column files, UTF-8 with or
without a byte-order mark, any line ending, and cells of any size. `write_csv` writes rows as
REDCap's API does.

    >>> rows = read_csv(Path("dictionary.csv"))
    >>> rows[0].field_name, rows[0].origin.line
    ('record_id', 2)
"""

from __future__ import annotations

import csv
import io
import re
import sys
from dataclasses import astuple, dataclass, field, fields
from pathlib import Path

from hekta_redcap.core.errors import DefinitionError, Origin

# A dictionary cell may hold megabytes (a long HTML label); the csv module stops at 128 KiB.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


@dataclass
class DictRow:
    """One data dictionary row; the attribute order is REDCap's column order."""

    field_name: str
    form_name: str
    section_header: str = ""
    field_type: str = ""
    field_label: str = ""
    select_choices_or_calculations: str = ""
    field_note: str = ""
    text_validation_type_or_show_slider_number: str = ""
    text_validation_min: str = ""
    text_validation_max: str = ""
    identifier: str = ""
    branching_logic: str = ""
    required_field: str = ""
    custom_alignment: str = ""
    question_number: str = ""
    matrix_group_name: str = ""
    matrix_ranking: str = ""
    field_annotation: str = ""
    origin: Origin | None = field(default=None, compare=False, repr=False)

    def values(self) -> tuple[str, ...]:
        return astuple(self)[: len(COLUMNS)]

    def as_dict(self) -> dict[str, str]:
        return dict(zip(COLUMNS, self.values(), strict=True))


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(DictRow) if f.name != "origin")

# The header REDCap writes on its Data Dictionary download page; the API uses COLUMNS.
CSV_HEADER = (
    "Variable / Field Name",
    "Form Name",
    "Section Header",
    "Field Type",
    "Field Label",
    "Choices, Calculations, OR Slider Labels",
    "Field Note",
    "Text Validation Type OR Show Slider Number",
    "Text Validation Min",
    "Text Validation Max",
    "Identifier?",
    "Branching Logic (Show field only if...)",
    "Required Field?",
    "Custom Alignment",
    "Question Number (surveys only)",
    "Matrix Group Name",
    "Matrix Ranking?",
    "Field Annotation",
)
# Older REDCap versions named some columns differently (before sliders and surveys).
_OLD_NAMES = {
    "select_choices_or_calculations": ("Choices OR Calculations", "Choices, Calculations"),
    "text_validation_type_or_show_slider_number": ("Text Validation Type",),
    "branching_logic": ("Branching Logic",),
    "question_number": ("Question Number",),
    "identifier": ("Identifier",),
    "required_field": ("Required Field", "Required"),
    "matrix_ranking": ("Matrix Ranking",),
}
# The columns a dictionary cannot do without; the others are blank when a file leaves them out.
REQUIRED_COLUMNS = ("field_name", "form_name", "field_type")


def header_key(name: str) -> str:
    """A header cell as compared: letters and digits only, lower case, so that spacing,
    punctuation and case variants (`Variable/Field Name`, `FIELD_NAME`) match."""
    return re.sub(r"[\W_]+", "", name).lower()


HEADER_NAMES: dict[str, str] = {
    header_key(name): column
    for column, page, old in zip(
        COLUMNS, CSV_HEADER, (_OLD_NAMES.get(c, ()) for c in COLUMNS), strict=True
    )
    for name in (column, page, *old)
}


def to_csv(rows: list[DictRow], header: tuple[str, ...] = COLUMNS) -> str:
    """The dictionary as CSV text, quoted the way REDCap's own download is."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(header)
    writer.writerows(r.values() for r in rows)
    return out.getvalue()


def write_csv(rows: list[DictRow], file: Path) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(to_csv(rows), encoding="utf-8")


# Reading a dictionary ----------------------------------------------------------------------


@dataclass
class DictionaryFile:
    """A dictionary as read: its rows, the columns its header had, and notes on how it was
    read (an encoding other than UTF-8, a delimiter other than a comma)."""

    file: Path
    rows: list[DictRow]
    columns: tuple[str, ...]
    notes: list[str] = field(default_factory=list)


def decode(data: bytes, file: Path) -> tuple[str, str | None]:
    """Text of a dictionary file: UTF-8 (a byte-order mark is dropped), UTF-16 with its mark,
    else Windows-1252 as Excel writes it in Western Europe (with a note saying so)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "read as UTF-16"
        except UnicodeDecodeError as exc:
            raise DefinitionError(f"cannot read file: {exc}", Origin(file)) from None
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace"), "not UTF-8: read as Windows-1252"


def read_dictionary(file: Path) -> DictionaryFile:
    """Read a data dictionary CSV; every row remembers its line. A file that is not a
    dictionary raises `DefinitionError` naming the file and line."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise DefinitionError(f"cannot read file: {exc.strerror or exc}", Origin(file)) from None
    text, note = decode(data, file)
    read = parse_dictionary(text, file)
    if note:
        read.notes.insert(0, note)
    return read


def read_csv(file: Path) -> list[DictRow]:
    """The rows of a data dictionary CSV (see `read_dictionary`)."""
    return read_dictionary(file).rows


def _split_header(text: str) -> tuple[list[str], str]:
    """The header cells and the delimiter that makes them a dictionary header: a comma, as
    REDCap writes, else the semicolon or tab a spreadsheet may have saved."""
    first: list[str] | None = None
    for delimiter in (",", ";", "\t"):
        try:
            header = next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), None)
        except csv.Error:
            continue
        if header is None:
            return [], ","
        first = first if first is not None else header
        if {HEADER_NAMES.get(header_key(h)) for h in header} >= set(REQUIRED_COLUMNS):
            return header, delimiter
    return first or [], ","


def parse_dictionary(text: str, file: Path) -> DictionaryFile:
    """Parse dictionary text (see `read_dictionary`)."""
    text = text.removeprefix("\ufeff")
    header, delimiter = _split_header(text)
    if not any(h.strip() for h in header):
        raise DefinitionError("empty file: expected a data dictionary header", Origin(file, 1))
    columns = _columns(header, file)
    notes = [] if delimiter == "," else [f"cells separated by {delimiter!r}, not commas"]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows, line = [], 1
    try:
        next(reader)
        while True:
            line = reader.line_num + 1  # a quoted value may span lines: keep the row's first
            values = next(reader, None)
            if values is None:
                break
            if not any(v.strip() for v in values):
                continue
            rows.append(_row(values, columns, Origin(file, line)))
    except csv.Error as exc:
        raise DefinitionError(f"not a well-formed CSV: {exc}", Origin(file, line)) from None
    used = tuple(c for c in columns if c is not None)
    return DictionaryFile(file, rows, used, notes)


def _columns(header: list[str], file: Path) -> list[str | None]:
    """Each header cell's column (None for an empty trailing cell a spreadsheet added)."""
    origin = Origin(file, 1)
    columns: list[str | None] = []
    for i, name in enumerate(header):
        column = HEADER_NAMES.get(header_key(name))
        if column is None and not name.strip() and not any(h.strip() for h in header[i:]):
            columns.append(None)
            continue
        if column is None:
            raise DefinitionError(
                f"not a REDCap data dictionary: unknown column {name!r} in the header "
                f"(expected REDCap's columns {', '.join(COLUMNS)})",
                origin,
            )
        if column in columns:
            raise DefinitionError(f"column {name!r} appears twice in the header", origin)
        columns.append(column)
    if missing := [c for c in REQUIRED_COLUMNS if c not in columns]:
        raise DefinitionError(
            f"not a REDCap data dictionary: no {', '.join(missing)} column "
            f"(expected REDCap's columns {', '.join(COLUMNS)})",
            origin,
        )
    return columns


def _row(values: list[str], columns: list[str | None], origin: Origin) -> DictRow:
    width = sum(c is not None for c in columns)
    extra = values[len(columns) :]
    named = [values[i] if i < len(values) else "" for i, c in enumerate(columns) if c]
    where = f" (field '{values[0].strip()}')" if values and values[0].strip() else ""
    if any(v.strip() for v in extra) or any(
        values[i].strip() for i, c in enumerate(columns) if c is None and i < len(values)
    ):
        raise DefinitionError(
            f"this row has {len(values)} cells but the header has {width} columns{where}: "
            "an unquoted comma or quote in a cell?",
            origin,
        )
    if len(values) < width:
        raise DefinitionError(f"expected {width} columns, found {len(values)}{where}", origin)
    cells = dict(zip((c for c in columns if c), named, strict=True))
    for key in REQUIRED_COLUMNS:
        cells[key] = cells[key].strip()
    return DictRow(**cells, origin=origin)
