"""The REDCap data dictionary: compiled from the definitions, and read back from a CSV.

`compile_project` turns a loaded project into dictionary rows (REDCap's 18 columns, in order),
each remembering the definition line it came from. `write_csv` and `read_csv` move rows to and
from the CSV that REDCap's Data Dictionary page and `import_metadata` take.

    >>> rows = compile_project(load_project("hekta"))
    >>> rows[0].field_name, rows[0].form_name
    ('record_id', 'consent')
"""

from __future__ import annotations

import csv
import io
from dataclasses import astuple, dataclass, field, fields
from pathlib import Path

from hekta_redcap.errors import DefinitionError, Origin
from hekta_redcap.fieldtypes import CHOICE_TYPES
from hekta_redcap.instruments import Field, Instrument
from hekta_redcap.model import DEFAULT_LANGUAGE, Text
from hekta_redcap.study import Project


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


def _text(text: Text | None, lang: str) -> str:
    return (text.get(lang) or "") if text else ""


def _flag(value: bool) -> str:
    return "y" if value else ""


def choices_string(instrument: Instrument, field: Field, lang: str = DEFAULT_LANGUAGE) -> str:
    """REDCap's `code, label | code, label` form of a field's choices."""
    return " | ".join(
        f"{c.code}, {instrument.choice_label(c, lang)}" for c in instrument.choices_of(field)
    )


def compile_field(instrument: Instrument, f: Field, lang: str = DEFAULT_LANGUAGE) -> DictRow:
    if f.type in CHOICE_TYPES:
        choices = choices_string(instrument, f, lang)
    elif f.type == "calc":
        choices = f.calc or ""
    elif f.type == "slider" and f.slider:
        choices = " | ".join(_text(t, lang) for t in (f.slider.left, f.slider.mid, f.slider.right))
    else:
        choices = ""
    validation = f.validation or ""
    if f.type == "slider" and f.slider and f.slider.show_number:
        validation = "number"
    return DictRow(
        field_name=f.name,
        form_name=instrument.form,
        section_header=_text(f.section, lang),
        field_type=f.type,
        field_label=instrument.label_of(f, lang),
        select_choices_or_calculations=choices,
        field_note=_text(f.note, lang),
        text_validation_type_or_show_slider_number=validation,
        text_validation_min=f.min or "",
        text_validation_max=f.max or "",
        identifier=_flag(f.identifier),
        branching_logic=f.branching or "",
        required_field=_flag(f.required),
        custom_alignment=f.align or "",
        question_number=f.question_number or "",
        matrix_group_name=f.matrix or "",
        matrix_ranking=_flag(f.matrix_ranking),
        field_annotation=f.annotation or "",
        origin=f.origin(),
    )


def compile_project(project: Project, lang: str = DEFAULT_LANGUAGE) -> list[DictRow]:
    """The project's data dictionary rows in form order (labels in `lang`)."""
    return [compile_field(inst, f, lang) for inst, f in project.fields()]


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


def read_csv(file: Path) -> list[DictRow]:
    """Read a data dictionary CSV (API or download-page header); rows remember their line."""
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DefinitionError(f"cannot read file: {exc}", Origin(file)) from None
    return parse_csv(text, file)


def parse_csv(text: str, file: Path) -> list[DictRow]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        raise DefinitionError("empty file: expected a data dictionary header", Origin(file, 1))
    header = [h.strip() for h in header]
    if header not in (list(COLUMNS), list(CSV_HEADER)):
        raise DefinitionError(
            f"not a REDCap data dictionary: expected the 18 columns {', '.join(COLUMNS)}",
            Origin(file, 1),
        )
    rows = []
    while True:
        line = reader.line_num + 1  # a quoted value may span lines: keep the row's first
        values = next(reader, None)
        if values is None:
            break
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(COLUMNS):
            raise DefinitionError(
                f"expected {len(COLUMNS)} columns, found {len(values)}", Origin(file, line)
            )
        rows.append(DictRow(*values, origin=Origin(file, line)))
    return rows


# Reading a dictionary back into definitions (import-dictionary) -------------------------------


def _plain(value: str) -> str | None:
    return value if value else None


def row_to_field(row: DictRow) -> dict[str, object]:
    """A dictionary row as a definition-file field (the inverse of `compile_field`)."""
    spec: dict[str, object] = {"name": row.field_name, "type": row.field_type}
    validation = row.text_validation_type_or_show_slider_number
    text = row.select_choices_or_calculations
    optional = {
        "label": _plain(row.field_label),
        "section": _plain(row.section_header),
        "note": _plain(row.field_note),
    }
    if row.field_type in CHOICE_TYPES:
        optional["choices"] = [
            {"code": code.strip(), "label": label.strip()}
            for code, label in (part.split(",", 1) for part in text.split("|"))
        ]
    elif row.field_type == "calc":
        optional["calc"] = text
    elif row.field_type == "slider":
        left, mid, right = (
            ([p.strip() for p in text.split("|")] + ["", "", ""])[:3] if text else ("", "", "")
        )
        slider = {"left": left, "mid": mid, "right": right, "show_number": validation == "number"}
        optional["slider"] = {k: v for k, v in slider.items() if v}
        validation = ""
    optional |= {
        "validation": _plain(validation),
        "min": _plain(row.text_validation_min),
        "max": _plain(row.text_validation_max),
        "identifier": row.identifier == "y" or None,
        "required": row.required_field == "y" or None,
        "branching": _plain(row.branching_logic),
        "align": _plain(row.custom_alignment),
        "question_number": _plain(row.question_number),
        "matrix": _plain(row.matrix_group_name),
        "matrix_ranking": row.matrix_ranking == "y" or None,
        "annotation": _plain(row.field_annotation),
    }
    spec.update({k: v for k, v in optional.items() if v not in (None, {}, [])})
    return spec


def rows_to_definitions(
    rows: list[DictRow], project: str, source: str
) -> tuple[dict[str, object], dict[str, dict[str, object]]]:
    """A classic study file and one instrument file per form from dictionary rows."""
    forms: dict[str, dict[str, object]] = {}
    for row in rows:
        form = forms.setdefault(
            row.form_name,
            {
                "form": row.form_name,
                "label": row.form_name.replace("_", " ").capitalize(),
                "licence": "ship_text",
                "translation": "draft",
                "source": source,
                "fields": [],
            },
        )
        form["fields"].append(row_to_field(row))  # type: ignore[attr-defined]
    study = {
        "project": project,
        "title": project,
        "record_id": rows[0].field_name,
        "instruments": [{"form": name} for name in forms],
    }
    return study, forms
