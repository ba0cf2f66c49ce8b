"""import-dictionary on files REDCap refuses, malformed files and random damage: one clear error
naming file, line and field, never a traceback; and what REDCap accepts but the project would not
write itself comes back as warnings."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from hekta_redcap.cli import cli
from hekta_redcap.redcap.dictionary import COLUMNS, read_dictionary

CORPUS = Path(__file__).parent / "fixtures" / "dictionaries"
HEADER = ",".join(COLUMNS)


def row(name: str, form: str = "a", ftype: str = "text", *cells: str) -> str:
    """One CSV line: name, form, (no section), type, label, then `cells` from the choices on."""
    values = [name, form, "", ftype, f"Label {name}", *cells]
    return ",".join(values + [""] * (18 - len(values)))


def run(tmp_path: Path, content: str | bytes) -> tuple[int, str, Path]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    file = tmp_path / "dd.csv"
    if isinstance(content, str):
        content = content.encode("utf-8")
    file.write_bytes(content)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["import-dictionary", str(file), "-o", str(out)])
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output, out


REFUSED = [
    ("field name 'Age' must match", [row("record_id"), row("Age")], 3),
    ("field name 'age' is used twice", [row("record_id"), row("age"), row("age")], 4),
    ("field 'x' has no form name", [row("record_id"), row("x", "")], 3),
    ("form 'a' continues after another form", [row("record_id"), row("x", "b"), row("y")], 4),
    ("form name 'My form' is not valid", [row("record_id", "My form")], 2),
    (
        "field 'x' has type 'Radio' (field types are lower case)",
        [row("record_id"), row("x", "a", "Radio", '"1, A"')],
        3,
    ),
    ("field 'x' has type 'matrix'", [row("record_id"), row("x", "a", "matrix")], 3),
    ("radio field 'x' needs choices", [row("record_id"), row("x", "a", "radio")], 3),
    (
        "field 'x': choice '1 Yes' is not 'code, label'",
        [row("record_id"), row("x", "a", "radio", '"1 Yes | 2, No"')],
        3,
    ),
    (
        "field 'x': choice code '1 a' is not a valid code",
        [row("record_id"), row("x", "a", "checkbox", '"1 a, A | 2, B"')],
        3,
    ),
    (
        "field 'x': choice code '1' is used 2 times",
        [row("record_id"), row("x", "a", "dropdown", '"1, A | 1, B"')],
        3,
    ),
    ("calc field 'x' has no calculation", [row("record_id"), row("x", "a", "calc")], 3),
    (
        "field 'x': unknown validation type 'date_xyz'",
        [row("record_id"), row("x", "a", "text", "", "", "date_xyz")],
        3,
    ),
    (
        "field 'x' of type notes cannot have a validation ('integer')",
        [row("record_id"), row("x", "a", "notes", "", "", "integer")],
        3,
    ),
    (
        "field 'x': min '2024-13-01' is not a valid date_dmy value",
        [row("record_id"), row("x", "a", "text", "", "", "date_dmy", "2024-13-01")],
        3,
    ),
    (
        "field 'x': identifier must be 'y' or blank, not 'Y'",
        [row("record_id"), row("x", "a", "text", "", "", "", "", "", "Y")],
        3,
    ),
    (
        "field 'x': custom alignment must be RV, RH, LV or LH, not 'XX'",
        [row("record_id"), row("x", "a", "radio", '"1, A"', "", "", "", "", "", "", "", "XX")],
        3,
    ),
    ("the record-id field 'x' (the first field) must be of type text", [row("x", "a", "yesno")], 2),
    (
        "matrix field 'y' differs from 'x'",
        [
            row("record_id"),
            row("x", "a", "radio", '"1, A"', *[""] * 9, "m"),
            row("y", "a", "radio", '"1, B"', *[""] * 9, "m"),
        ],
        4,
    ),
]


@pytest.mark.parametrize(("message", "rows", "line"), REFUSED, ids=[m for m, _, _ in REFUSED])
def test_refused_as_redcap_would_naming_file_line_and_field(
    tmp_path: Path, message: str, rows: list[str], line: int
) -> None:
    code, output, out = run(tmp_path, "\n".join([HEADER, *rows]) + "\n")
    assert code == 1
    assert f"dd.csv:{line}: error: {message}" in output
    assert "error: not imported: REDCap would refuse" in output
    assert not out.exists()


MALFORMED = [
    ("a,b\n1,2\n", ":1: not a REDCap data dictionary: unknown column 'a' in the header"),
    ("", ":1: empty file"),
    ("\n\n", ":1: empty file"),
    ("field_name,form_name\nx,a\n", ":1: not a REDCap data dictionary: no field_type column"),
    (HEADER + ",field_name\n", ":1: column 'field_name' appears twice in the header"),
    (HEADER + "\nrecord_id,a,,text\n", ":2: expected 18 columns, found 4 (field 'record_id')"),
    (
        HEADER + "\n" + row("record_id") + "\n" + row("x") + ",surplus\n",
        ":3: this row has 19 cells but the header has 18 columns (field 'x')",
    ),
    (
        HEADER + '\nrecord_id,a,,text,"Label\n',
        ":2: expected 18 columns, found 5",
    ),
]


@pytest.mark.parametrize(("content", "message"), MALFORMED)
def test_malformed_files_give_one_error_line(tmp_path: Path, content: str, message: str) -> None:
    code, output, _ = run(tmp_path, content)
    assert code == 1
    errors = [line for line in output.splitlines() if "error" in line]
    assert len(errors) == 1, output
    assert message in errors[0]


def test_a_missing_file_and_a_directory(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["import-dictionary", str(tmp_path / "no.csv"), "-o", "o"])
    assert result.exit_code == 1 and "no.csv: file not found" in result.output
    result = CliRunner().invoke(cli, ["import-dictionary", "-o", "o"])
    assert (
        result.exit_code == 2
        and "give either a DICTIONARY.csv or --instrument FILE" in result.output
    )


def test_what_redcap_accepts_but_the_project_would_not_write_is_a_warning(tmp_path: Path) -> None:
    rows = [
        row("record_id"),
        row("a_rather_long_field_name_for_stata_x"),
        row("email", "a", "text", "", "", "email"),
        row("lookup", "a", "sql", '"select 1, 2"'),
        row("shown", "a", "text", "", "", "", "", "", "", "[nowhere] = '1'"),
        row("total", "a", "calc", '"[total] + 1"', *[""] * 6, "y"),
        row("tagged", "a", "text", *[""] * 12, "@UNKNOWN-TAG"),
    ]
    code, output, out = run(tmp_path, "\n".join([HEADER, *rows]) + "\n")
    assert code == 0, output
    assert "0 error(s), 8 warning(s)" in output
    for expected in (
        "dd.csv:3: warning: field name 'a_rather_long_field_name_for_stata_x' has 36 characters",
        "dd.csv:4: warning: field 'email' looks identifying",
        "dd.csv:5: warning: field 'lookup' is of type sql, which only a REDCap administrator",
        "dd.csv:6: warning: field 'shown' branching logic: unknown field 'nowhere'",
        "dd.csv:7: warning: circular calculation: total -> total",
        "dd.csv:7: warning: calc field 'total' cannot be required",
        "dd.csv:8: warning: field 'tagged': unknown action tag @UNKNOWN-TAG (kept as written)",
    ):
        assert expected in output
    assert (out / "forms" / "a.yaml").is_file()


def test_many_warnings_of_one_rule_are_summed_up(tmp_path: Path) -> None:
    rows = [row("record_id")] + [
        row(f"field_with_a_name_of_thirty_chars_{i:03d}") for i in range(25)
    ]
    code, output, _ = run(tmp_path, "\n".join([HEADER, *rows]) + "\n")
    assert code == 0
    assert output.count("warning: field name") == 20
    assert "... and 5 more field-name-length warning(s)" in output


@pytest.mark.parametrize(
    ("data", "note"),
    [
        ((HEADER + "\n" + row("record_id", "a", "text") + "\n").encode("utf-16"), "read as UTF-16"),
        (
            (HEADER + "\n" + row("record_id") + ",\n").replace("Label", "Lébel").encode("cp1252"),
            "not UTF-8: read as Windows-1252",
        ),
    ],
)
def test_other_encodings_are_read_with_a_note(tmp_path: Path, data: bytes, note: str) -> None:
    file = tmp_path / "dd.csv"
    file.write_bytes(data)
    read = read_dictionary(file)
    assert read.notes == [note]
    assert read.rows[0].field_label in ("Label record_id", "Lébel record_id")


def test_a_spreadsheets_trailing_empty_columns_are_ignored(tmp_path: Path) -> None:
    file = tmp_path / "dd.csv"
    file.write_text(HEADER + ",,\n" + row("record_id") + ",,\n", encoding="utf-8")
    assert [r.field_name for r in read_dictionary(file).rows] == ["record_id"]


def test_an_instrument_csv_given_as_a_dictionary_points_at_instrument(tmp_path: Path) -> None:
    code, output, _ = run(tmp_path, (CORPUS / "16_instrument_wellbeing.csv").read_bytes())
    assert code == 1
    assert "add it with --instrument" in output


def _damaged(data: bytes, rng: random.Random) -> bytes:
    """The file with a few bytes cut, doubled or replaced, or cut short."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(data))
        kind = rng.randrange(4)
        if kind == 0:
            del data[at : at + rng.randint(1, 20)]
        elif kind == 1:
            data[at:at] = rng.choice([b",", b'"', b"\n", b"\r", b"|", b"\x00", b"\xff", b"[", b"("])
        elif kind == 2:
            data[at] = rng.randrange(256)
        else:
            del data[at:]
    return bytes(data)


@pytest.mark.parametrize("seed", range(6))
def test_damaged_files_never_give_a_traceback(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    sources = sorted(p for p in CORPUS.glob("*.csv") if not p.name.startswith("13_"))
    for i in range(25):
        source = rng.choice(sources)
        run(tmp_path / f"{i}", _damaged(source.read_bytes(), rng))
