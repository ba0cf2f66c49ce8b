"""The compiled data dictionary, the design files, licensed-text overlays and import-dictionary."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import LIBRARY, line_of

from hekta_redcap.cli import cli
from hekta_redcap.compile.design import compile_design
from hekta_redcap.compile.dictionary import compile_project
from hekta_redcap.core.errors import DefinitionError
from hekta_redcap.definitions.study import load_project
from hekta_redcap.lint import lint_all
from hekta_redcap.redcap.dictionary import to_csv
from hekta_redcap.redcap.fieldtypes import parse_choices

REDCAP_COLUMNS = [
    "field_name",
    "form_name",
    "section_header",
    "field_type",
    "field_label",
    "select_choices_or_calculations",
    "field_note",
    "text_validation_type_or_show_slider_number",
    "text_validation_min",
    "text_validation_max",
    "identifier",
    "branching_logic",
    "required_field",
    "custom_alignment",
    "question_number",
    "matrix_group_name",
    "matrix_ranking",
    "field_annotation",
]
HEKTA_FORMS = [
    "consent",
    "contact",
    "demographics",
    "randomization",
    "audit",
    "dudit",
    "substance_days",
    "hscl10",
    "phq9",
    "gad7",
    "life_satisfaction",
    "swls",
    "whoqol_bref",
    "eq5d5l",
    "employment",
    "job_episode",
    "benefits",
    "service_use",
    "followup_tracking",
    "end_of_study",
]
HEKTA_EVENTS = ["baseline_arm_1", "followup_6m_arm_1", "followup_12m_arm_1", "register_18m_arm_1"]


def compiled(project: str, lang: str = "nb", root: Path = LIBRARY) -> list[dict[str, str]]:
    text = to_csv(compile_project(load_project(project, root, overlay_dir=root / "none"), lang))
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture(scope="module")
def hekta() -> dict[str, dict[str, str]]:
    return {row["field_name"]: row for row in compiled("hekta")}


@pytest.mark.parametrize("project", ["hekta", "ips_fidelity"])
def test_dictionary_has_redcaps_18_columns_in_order(project: str) -> None:
    text = to_csv(compile_project(load_project(project, LIBRARY)))
    assert next(csv.reader(io.StringIO(text))) == REDCAP_COLUMNS
    assert all(len(row) == 18 for row in csv.reader(io.StringIO(text)))


def test_fixed_form_names_in_order() -> None:
    assert load_project("hekta", LIBRARY).forms == HEKTA_FORMS
    assert load_project("ips_fidelity", LIBRARY).forms == [
        "site_review",
        "ips25",
        "ips25_rater",
        "improvement_plan",
    ]


def test_record_id_is_first() -> None:
    assert compiled("hekta")[0]["field_name"] == "record_id"
    assert compiled("ips_fidelity")[0]["field_name"] == "review_id"


CODES = {
    "audit_1": ["0", "1", "2", "3", "4"],
    "audit_8": ["0", "1", "2", "3", "4"],
    "audit_9": ["0", "2", "4"],
    "audit_10": ["0", "2", "4"],
    "dudit_1": ["0", "1", "2", "3", "4"],
    "dudit_9": ["0", "1", "2", "3", "4"],
    "dudit_10": ["0", "2", "4"],
    "dudit_11": ["0", "2", "4"],
    "hscl10_1": ["1", "2", "3", "4"],
    "hscl10_10": ["1", "2", "3", "4"],
    "phq9_1": ["0", "1", "2", "3"],
    "phq9_9": ["0", "1", "2", "3"],
    "gad7_7": ["0", "1", "2", "3"],
    "swls_1": ["1", "2", "3", "4", "5", "6", "7"],
    "lifesat": [str(i) for i in range(11)],
    "whoqol_1": ["1", "2", "3", "4", "5"],
    "whoqol_26": ["1", "2", "3", "4", "5"],
    "eq5d_mo": ["1", "2", "3", "4", "5"],
    "eq5d_ad": ["1", "2", "3", "4", "5"],
    "sex": ["1", "2"],
    "rand_group": ["1", "2"],
    "job_pay_unit": ["1", "2", "3"],
    "job_start_precision": ["1", "2", "3"],
}


@pytest.mark.parametrize(("field", "codes"), CODES.items())
def test_choice_codes_are_the_scoring_codes(
    hekta: dict[str, dict[str, str]], field: str, codes: list[str]
) -> None:
    choices = parse_choices(hekta[field]["select_choices_or_calculations"])
    assert [code for code, _ in choices] == codes


def test_ips25_items_rate_1_to_5() -> None:
    rows = [r for r in compiled("ips_fidelity") if r["form_name"] == "ips25"]
    items = [r["field_name"] for r in rows if r["field_type"] == "radio"]
    expected = (
        [f"ips25_s{i}" for i in range(1, 4)]
        + [f"ips25_o{i}" for i in range(1, 9)]
        + [f"ips25_v{i}" for i in range(1, 15)]
    )
    assert items == expected
    for row in rows:
        if row["field_type"] == "radio":
            assert [c for c, _ in parse_choices(row["select_choices_or_calculations"])] == list(
                "12345"
            )


def test_fixed_field_names(hekta: dict[str, dict[str, str]]) -> None:
    required = {
        "audit": [f"audit_{i}" for i in range(1, 11)],
        "dudit": [f"dudit_{i}" for i in range(1, 12)],
        "hscl10": [f"hscl10_{i}" for i in range(1, 11)],
        "demographics": ["sex"],
        "randomization": ["rand_date", "rand_group"],
        "job_episode": [
            "job_start_date",
            "job_end_date",
            "job_start_precision",
            "job_competitive",
            "job_nav_measure",
            "job_hours_week",
            "job_pay",
            "job_pay_unit",
            "job_employer_orgnr",
            "job_end_reason",
            "job_data_source",
        ],
    }
    for form, names in required.items():
        for name in names:
            assert hekta[name]["form_name"] == form
    assert hekta["job_competitive"]["field_type"] == "yesno"
    assert hekta["rand_date"]["text_validation_type_or_show_slider_number"] == "date_dmy"
    assert "IPS" in hekta["rand_group"]["select_choices_or_calculations"]


def test_contact_details_are_identifiers(hekta: dict[str, dict[str, str]]) -> None:
    contact = [r for r in hekta.values() if r["form_name"] == "contact"]
    personal = [r for r in contact if r["field_type"] in ("text", "notes")]
    assert len(personal) >= 4
    assert all(r["identifier"] == "y" for r in personal), [r["field_name"] for r in personal]
    assert {r["text_validation_type_or_show_slider_number"] for r in contact} >= {"email"}


def test_english_compilation_uses_english_labels() -> None:
    nb = {r["field_name"]: r for r in compiled("hekta", "nb")}
    en = {r["field_name"]: r for r in compiled("hekta", "en")}
    assert nb["audit_1"]["field_label"] == "Hvor ofte drikker du alkohol?"
    assert en["audit_1"]["field_label"] == "How often do you have a drink containing alcohol?"
    assert en["audit_1"]["select_choices_or_calculations"].startswith("0, Never | ")


def test_codes_only_without_overlay_compiles_placeholders(hekta: dict[str, dict[str, str]]) -> None:
    label = hekta["whoqol_3"]["field_label"]
    assert "licensed text not installed" in label and "whoqol_3" in label
    assert hekta["whoqol_3"]["select_choices_or_calculations"] == "1, 1 | 2, 2 | 3, 3 | 4, 4 | 5, 5"


def test_overlay_supplies_licensed_text(library: Path) -> None:
    local = library / "local"
    local.mkdir()
    (local / "whoqol_bref.yaml").write_text(
        "form: whoqol_bref\n"
        "source: Licensed test text\n"
        "fields:\n"
        "  whoqol_3:\n"
        "    label: {nb: Smerteledd, en: Pain item}\n"
        "    choices:\n"
        "      - {code: 1, label: {nb: Ikke i det hele tatt, en: Not at all}}\n",
        encoding="utf-8",
    )
    project = load_project("hekta", library)
    rows = {r.field_name: r for r in compile_project(project)}
    assert rows["whoqol_3"].field_label == "Smerteledd"
    assert rows["whoqol_3"].select_choices_or_calculations.startswith("1, Ikke i det hele tatt | ")
    assert project.instruments["whoqol_bref"].source == "Licensed test text"
    assert not [f for f in lint_all(library) if f.origin and f.origin.file.stem == "whoqol_bref"]


def test_overlay_cannot_add_fields_or_codes(library: Path) -> None:
    local = library / "local"
    local.mkdir()
    overlay = local / "whoqol_bref.yaml"
    overlay.write_text(
        "form: whoqol_bref\nsource: x\nfields:\n  whoqol_3:\n    choices:\n"
        "      - {code: 7, label: Seven}\n",
        encoding="utf-8",
    )
    with pytest.raises(DefinitionError) as caught:
        load_project("hekta", library)
    assert caught.value.origin.file == overlay
    assert caught.value.origin.line == line_of(overlay, "- {code: 7")
    assert "code '7' is not a code of this item" in str(caught.value)
    overlay.write_text("form: whoqol_bref\nsource: x\nfields:\n  whoqol_99: {label: X}\n")
    with pytest.raises(DefinitionError, match="unknown field 'whoqol_99'"):
        load_project("hekta", library)


def test_design_files_for_the_trial() -> None:
    design = compile_design(load_project("hekta", LIBRARY))
    assert design.arms == [{"arm_num": 1, "name": "Arm 1"}]
    # REDCap's rule: lowercase, non-alphanumerics to '_', 18 characters at most, then _arm_N.
    assert [(e["event_name"], e["unique_event_name"]) for e in design.events] == [
        ("Baseline", "baseline_arm_1"),
        ("Followup 6m", "followup_6m_arm_1"),
        ("Followup 12m", "followup_12m_arm_1"),
        ("Register 18m", "register_18m_arm_1"),
    ]
    pairs = {(m["unique_event_name"], m["form"]) for m in design.mapping}
    assert ("baseline_arm_1", "randomization") in pairs
    assert ("followup_6m_arm_1", "randomization") not in pairs
    assert {e for e, f in pairs if f == "job_episode"} == set(HEKTA_EVENTS)
    assert design.repeating == [
        {
            "event_name": e,
            "form_name": "job_episode",
            "custom_form_label": "[job_start_date] [job_employer_name]",
        }
        for e in HEKTA_EVENTS
    ]


def test_design_command_writes_json_and_csv(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["design", "-p", "hekta", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    events = json.loads((tmp_path / "events.json").read_text())
    assert [e["unique_event_name"] for e in events] == HEKTA_EVENTS
    header = (tmp_path / "instrument_event_mapping.csv").read_text().splitlines()[0]
    assert header == "arm_num,unique_event_name,form"


def test_classic_project_has_no_events() -> None:
    design = compile_design(load_project("ips_fidelity", LIBRARY))
    assert (design.arms, design.events, design.mapping) == ([], [], [])
    assert design.repeating == [  # a classic project's repeating instruments name no event
        {"form_name": "ips25_rater", "custom_form_label": "[rater_number]"},
        {
            "form_name": "improvement_plan",
            "custom_form_label": "[plan_item] [plan_area] [plan_due]",
        },
    ]


@pytest.mark.parametrize("project", ["hekta", "ips_fidelity"])
@pytest.mark.parametrize("lang", ["nb", "en"])
def test_import_dictionary_round_trips(tmp_path: Path, project: str, lang: str) -> None:
    runner = CliRunner()
    original = tmp_path / "original.csv"
    result = runner.invoke(cli, ["dictionary", "-p", project, "--lang", lang, "-o", str(original)])
    assert result.exit_code == 0, result.output
    imported = tmp_path / "imported"
    result = runner.invoke(
        cli, ["import-dictionary", str(original), "-o", str(imported), "-p", project]
    )
    assert result.exit_code == 0, result.output
    again = tmp_path / "again.csv"
    args = ["dictionary", "-p", project, "--definitions", str(imported), "-o", str(again)]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert again.read_text(encoding="utf-8") == original.read_text(encoding="utf-8")
    assert not [f for f in lint_all(imported) if f.severity == "error"]


def _write_csv(file: Path, rows: list[list[str]]) -> None:
    with file.open("w", newline="", encoding="utf-8") as out:
        csv.writer(out).writerows([REDCAP_COLUMNS, *rows])


def _row(name: str, form: str, ftype: str = "text", choices: str = "") -> list[str]:
    return [name, form, "", ftype, name.title(), choices] + [""] * 12


def test_import_refuses_a_broken_dictionary_naming_the_line(tmp_path: Path) -> None:
    file = tmp_path / "dd.csv"
    _write_csv(
        file,
        [
            _row("record_id", "a"),
            _row("x", "b", "radio", "1, Yes | 1, No"),
            _row("y", "a"),
        ],
    )
    result = CliRunner().invoke(cli, ["import-dictionary", str(file), "-o", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert f"{file.name}:3: error: field 'x': choice code '1' is used 2 times" in result.output
    assert f"{file.name}:4: error: form 'a' continues after another form" in result.output
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a,b\n1,2\n", ":1: not a REDCap data dictionary"),
        ("", ":1: empty file"),
        (",".join(REDCAP_COLUMNS) + "\nrecord_id,a,,text\n", ":2: expected 18 columns, found 4"),
    ],
)
def test_import_rejects_malformed_csv(tmp_path: Path, content: str, message: str) -> None:
    file = tmp_path / "dd.csv"
    file.write_text(content, encoding="utf-8")
    result = CliRunner().invoke(cli, ["import-dictionary", str(file), "-o", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output
