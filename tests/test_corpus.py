"""The project's corpus of data dictionaries (tests/fixtures/dictionaries): each imports, compiles
back to exactly what it says, lints without errors, and goes through the local server's
metadata import and export unchanged. Expected cells come from the rows `build.py` wrote the
files from, not from the toolkit's own reader."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
from pathlib import Path

import pandas as pd
import pytest
import requests
from click.testing import CliRunner
from sandbox_support import Handle, seed_project

from hekta_redcap.analysis.codebook import build_codebook
from hekta_redcap.cli import cli
from hekta_redcap.definitions.study import Project, load_project
from hekta_redcap.devtools.sandbox.server import SandboxServer
from hekta_redcap.lint import lint_all
from hekta_redcap.redcap.fieldtypes import checkbox_column
from hekta_redcap.validation import validate_records

CORPUS = Path(__file__).parent / "fixtures" / "dictionaries"
_spec = importlib.util.spec_from_file_location("corpus_build", CORPUS / "build.py")
assert _spec and _spec.loader
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)

# Each whole dictionary and the rows it was written from.
DICTIONARIES = {
    "01_minimal_en.csv": build.MINIMAL,
    "02_klinik_aufnahme_de.csv": build.KLINIK,
    "03_encuesta_es.csv": build.ENCUESTA,
    "04_oppfolging_nb.csv": build.OPPFOLGING,
    "05_action_tags.csv": build.TAGS,
    "06_validation_types.csv": build.VALIDATION_ROWS,
    "07_loinc_codes.csv": build.LOINC,
    "08_sql_ontology.csv": build.SQL,
    "09_legacy_16col.csv": build.LEGACY16,
    "10_legacy_17col.csv": build.LEGACY17,
    "11_matrix_survey.csv": build.MATRIX,
    "12_whitespace_odd.csv": build.ODD,
    "13_large_generated.csv": build.generated(),
    "15_semicolon_excel.csv": build.SEMICOLON,
}


def post(handle: Handle, **params: str) -> requests.Response:
    return requests.post(handle.url, data={"token": handle.token, **params}, timeout=60)


def expected(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """The 18 cells of each row (columns a file leaves out are blank)."""
    return [{column: row.get(column, "") for column in build.API} for row in rows]


def compiled(definitions: Path, project: str, tmp_path: Path) -> list[dict[str, str]]:
    out = tmp_path / "compiled.csv"
    args = ["dictionary", "-p", project, "--definitions", str(definitions), "-o", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    with out.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def imported(file: Path, tmp_path: Path) -> Path:
    out = tmp_path / "definitions"
    result = CliRunner().invoke(cli, ["import-dictionary", str(file), "-o", str(out), "-p", "x"])
    assert result.exit_code == 0, result.output
    assert "error" not in result.output.replace("0 error(s)", "")
    assert "Traceback" not in result.output
    return out


def test_the_corpus_is_what_build_writes(tmp_path: Path) -> None:
    files = {p.name for p in CORPUS.iterdir() if p.suffix in (".csv", ".zip")}
    assert len(DICTIONARIES) + 1 >= 15  # and the generated file with megabyte cells
    assert (
        set(DICTIONARIES) | {"16_instrument_wellbeing.csv", "17_instrument_wellbeing.zip"} == files
    )
    assert (CORPUS / "02_klinik_aufnahme_de.csv").read_bytes().startswith(b"\xef\xbb\xbfVariable")
    assert b"\r\n" in (CORPUS / "04_oppfolging_nb.csv").read_bytes()
    legacy = (CORPUS / "09_legacy_16col.csv").read_bytes()
    assert b"\n" not in legacy and legacy.count(b"\r") >= 9
    assert len(next(csv.reader(io.StringIO(legacy.decode(), newline="")))) == 16


@pytest.mark.parametrize("name", DICTIONARIES)
def test_import_then_compile_gives_every_cell_back(name: str, tmp_path: Path) -> None:
    definitions = imported(CORPUS / name, tmp_path)
    assert compiled(definitions, "x", tmp_path) == expected(DICTIONARIES[name])
    errors = [f for f in lint_all(definitions) if f.severity == "error"]
    assert not errors, [str(e) for e in errors]


def test_megabyte_cells(tmp_path: Path) -> None:
    file = tmp_path / "14_big_cells.csv"
    file.write_text(build.big_cells(), encoding="utf-8")
    assert file.stat().st_size > 3_000_000
    definitions = imported(file, tmp_path)
    rows = compiled(definitions, "x", tmp_path)
    original = list(csv.DictReader(io.StringIO(build.big_cells())))
    assert rows == original
    assert len(rows[1]["field_label"]) > 2_500_000


def test_adopted_forms_say_so_and_keep_odd_cells_exactly(tmp_path: Path) -> None:
    definitions = imported(CORPUS / "12_whitespace_odd.csv", tmp_path)
    text = (definitions / "forms" / "odd.yaml").read_text(encoding="utf-8")
    assert "rules: redcap" in text
    assert "choices_text: 1,Yes|2,No" in text
    assert "choices_text: Low|High" in text
    assert "- {code: '1', label: One}" not in text  # ' 1 , One' is kept as written


def test_lint_holds_adopted_forms_to_redcaps_rules_only(tmp_path: Path) -> None:
    definitions = imported(CORPUS / "04_oppfolging_nb.csv", tmp_path)
    findings = lint_all(definitions)
    logic = [f for f in findings if f.rule == "logic"]
    assert [f.severity for f in logic] == ["warning", "warning"]
    assert "event 'baseline_arm_1' in a classic project" in logic[0].message
    form = definitions / "forms" / "maaling.yaml"
    form.write_text(form.read_text(encoding="utf-8").replace("rules: redcap\n", ""), "utf-8")
    logic = [f for f in lint_all(definitions) if f.rule == "logic"]
    assert [f.severity for f in logic] == ["error", "error"]


@pytest.fixture(scope="module")
def blank(sandbox: SandboxServer) -> Handle:
    return seed_project(sandbox, "classic")


@pytest.mark.parametrize("name", DICTIONARIES)
def test_local_server_takes_each_dictionary_and_exports_it_unchanged(
    blank: Handle, name: str
) -> None:
    data = (CORPUS / name).read_bytes().decode("utf-8-sig")
    reply = post(blank, content="metadata", format="csv", returnFormat="json", data=data)
    assert reply.status_code == 200, reply.text[:500]
    assert reply.json() == len(DICTIONARIES[name])
    exported = post(blank, content="metadata", format="json").json()
    assert exported == expected(DICTIONARIES[name])
    again = post(blank, content="metadata", format="json", data=json.dumps(exported))
    assert again.status_code == 200, again.text[:500]
    assert post(blank, content="metadata", format="json").json() == exported


def test_local_server_takes_an_import_of_the_compiled_dictionary(
    blank: Handle, tmp_path: Path
) -> None:
    definitions = imported(CORPUS / "13_large_generated.csv", tmp_path)
    out = tmp_path / "dd.csv"
    result = CliRunner().invoke(
        cli, ["dictionary", "-p", "x", "--definitions", str(definitions), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    reply = post(blank, content="metadata", format="csv", data=out.read_text(encoding="utf-8"))
    assert reply.status_code == 200, reply.text[:500]
    assert reply.text == "3000"


# One instrument into an existing definitions directory ----------------------------------------


@pytest.mark.parametrize("name", ["16_instrument_wellbeing.csv", "17_instrument_wellbeing.zip"])
def test_instrument_is_added_as_one_form(library: Path, name: str) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "import-dictionary",
            "--instrument",
            str(CORPUS / name),
            "-o",
            str(library),
            "-p",
            "ips_fidelity",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "wrote 5 field(s): form 'wellbeing_check' to study 'ips_fidelity'" in result.output
    if name.endswith(".zip"):
        assert "1 attachment(s) not imported" in result.output
    study = (library / "studies" / "ips_fidelity.yaml").read_text(encoding="utf-8")
    # appended to the instruments list, before the site list that follows it
    instruments = study.split("\n# The services reviewed")[0]
    assert instruments.rstrip().endswith("- {form: wellbeing_check}")
    assert "# Companion study" in study  # the rest of the file as it was
    rows = compiled(library, "ips_fidelity", library.parent)
    added = [r for r in rows if r["form_name"] == "wellbeing_check"]
    assert added == expected(build.INSTRUMENT)
    assert not [f for f in lint_all(library, ["ips_fidelity"]) if f.severity == "error"]


def test_instrument_clashing_with_the_project_is_refused(library: Path) -> None:
    file = library.parent / "clash.csv"
    file.write_text(
        build.text([build.f("review_site", "new_form", "text", "Site")]), encoding="utf-8"
    )
    args = [
        "import-dictionary",
        "--instrument",
        str(file),
        "-o",
        str(library),
        "-p",
        "ips_fidelity",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert f"{file.name}:2: error: field name 'review_site' is used twice" in result.output
    args = [*args[:2], str(CORPUS / "16_instrument_wellbeing.csv"), *args[3:], "--form", "ips25"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert (
        "form 'ips25' is already in project 'ips_fidelity' (give another name with --form)"
        in result.output
    )


def _export(project: Project, form: str, *values: dict[str, str]) -> pd.DataFrame:
    """A flat export of one classic form: every column blank but `values`."""
    names = [c for _, f in project.fields() for c in _columns(project, f.name)]
    blank = dict.fromkeys(names, "") | {f"{form}_complete": "2"}
    return pd.DataFrame([blank | v for v in values], dtype=object)


def _columns(project: Project, name: str) -> list[str]:
    instrument, field = project.field_map()[name]
    if field.type == "checkbox":
        return [checkbox_column(name, c.code) for c in instrument.choices_of(field)]
    return [] if field.type == "descriptive" else [name]


def test_adopted_validation_types_and_exact_choices_reach_the_validator(tmp_path: Path) -> None:
    definitions = imported(CORPUS / "06_validation_types.csv", tmp_path / "v")
    project = load_project("x", definitions)
    good = {"rec_id": "1", "v_time_mm_ss": "05:30", "v_int": "3", "v_phone_uk": "020 7946 0958"}
    bad = {"rec_id": "2", "v_time_mm_ss": "61:00", "v_int": "3.5", "v_phone_uk": "12345"}
    bad |= {"v_number_1dp_comma_decimal": "7.5", "v_date": "2000-01-01", "v_mrn_10d": "12"}
    problems = validate_records(project, _export(project, "validated", good, bad)).problems
    assert sorted(zip(problems["record"], problems["field"], problems["rule"], strict=True)) == [
        ("2", "v_date", "range"),
        ("2", "v_int", "type"),
        ("2", "v_mrn_10d", "type"),
        ("2", "v_number_1dp_comma_decimal", "type"),
        ("2", "v_phone_uk", "type"),
        ("2", "v_time_mm_ss", "type"),
    ]
    definitions = imported(CORPUS / "12_whitespace_odd.csv", tmp_path / "o")
    project = load_project("x", definitions)
    rows = [{"id": "1", "tight": "2", "loose": "3"}, {"id": "2", "tight": "3", "loose": " 1 "}]
    rows = [row | {"calc_lines": "0"} for row in rows]
    problems = validate_records(project, _export(project, "odd", *rows)).problems
    assert sorted(zip(problems["record"], problems["field"], problems["rule"], strict=True)) == [
        ("2", "loose", "choice"),
        ("2", "tight", "choice"),
    ]


def test_the_codebook_of_an_adopted_dictionary_with_sql_fields(tmp_path: Path) -> None:
    project = load_project("x", imported(CORPUS / "08_sql_ontology.csv", tmp_path))
    codebook = build_codebook(project, [{"record": "1"}], "en")
    types = {v.name: v.type for section in codebook.sections for v in section.variables}
    assert types["site"] == "choice (from an SQL query in REDCap)"
    assert types["diagnosis"] == "text"


def test_a_scale_several_fields_share_is_written_once(tmp_path: Path) -> None:
    definitions = imported(CORPUS / "02_klinik_aufnahme_de.csv", tmp_path)
    text = (definitions / "forms" / "beschwerden.yaml").read_text(encoding="utf-8")
    assert text.count("label: selten}") == 1
    assert text.count("choices: beschwerden_choices") == 3
