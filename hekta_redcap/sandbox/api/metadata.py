"""Metadata (data dictionary) export and import, export field names, instruments.

A dictionary import replaces the whole dictionary, so it is checked as a whole first and every
problem is reported in one 400 (REDCap's way), before anything is written.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from hekta_redcap.dictionary import CSV_HEADER
from hekta_redcap.fieldtypes import CHOICE_TYPES, FIELD_TYPES, PATTERNS, parse_choices
from hekta_redcap.sandbox.endpoints import Call, endpoint
from hekta_redcap.sandbox.models import METADATA_COLUMNS
from hekta_redcap.sandbox.wire import (
    ApiError,
    Reply,
    invalid_values,
    parse_data,
    render_count,
    render_rows,
)

# REDCap's texts for dictionary errors (PyCap #190). Only the field-type text is known in full;
# the other three are known up to the first sentence and completed here with the names at fault.
DUPLICATED = "The following variable/field names were duplicated: {}"
NO_FORM = "Each row MUST have a form name. The following fields have no form name: {}"
NOT_SEQUENTIAL = (
    "Form names must be sequential and cannot repeat again after being used for another form. "
    "The following forms repeat: {}"
)
BAD_TYPE = (
    "The only valid field types are text, notes, radio, dropdown, calc, file, checkbox, yesno, "
    "truefalse, descriptive, slider and must all be in lower case"
)
# [U] REDCap's wording for these is unknown.
BAD_NAME = (
    "The following variable/field names are not valid (use lowercase letters, numbers and "
    "underscores, start with a letter, do not end with or double an underscore, at most 100 "
    "characters, and not a form's `_complete` name): {}"
)
BAD_FORM_NAME = (
    "The following form names are not valid (use lowercase letters, numbers and underscores, "
    "start with a letter, do not end with or double an underscore, at most 100 characters): {}"
)
BAD_FIRST = "The first field is the record ID field and must be a text field: {}"
NO_FIELDS = "The data dictionary must contain at least one field"
BAD_CHOICES = (
    'The choices of these fields are not formatted as "code, label | code, label" with '
    "unique, non-empty codes: {}"
)
NO_CALCULATION = "These calculated fields have no calculation: {}"
BAD_VALIDATION = "These fields have a validation type that is not valid for their field type: {}"
BAD_COLUMNS = "These columns are not data dictionary columns: {}"
# [U] REDCap refuses dictionary imports in production; the exact text is unknown.
IN_PRODUCTION = (
    "The data dictionary cannot be imported because the project is in production status. "
    "Metadata can only be imported while the project is in development status; in production, "
    "change the design in Draft Mode."
)

NAME = re.compile(r"[a-z](?:[a-z0-9]|_(?!_))*(?<!_)")
MAX_NAME = 100
# The validations each field type accepts in `text_validation_type_or_show_slider_number`.
VALIDATIONS = {
    "text": frozenset(PATTERNS),
    "file": frozenset({"signature"}),
    "dropdown": frozenset({"autocomplete"}),
    "slider": frozenset({"number"}),
}
# The Data Dictionary page's CSV header is accepted as an alias of the API's column names.
ALIASES = dict(zip(CSV_HEADER, METADATA_COLUMNS, strict=True))


def import_rows(call: Call) -> list[dict[str, str]]:
    """The `data` of an import as rows of stripped strings (JSON may hold numbers)."""
    rows = parse_data(call.params.require("data"), call.fmt, call.params.delimiter)
    return [{str(k).strip(): _text(v) for k, v in row.items()} for row in rows]


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


@endpoint("metadata", "export", privilege="api_export")
def export_metadata(call: Call) -> Reply:
    """The dictionary rows (no `_complete` rows), limited to `fields` and `forms` if given."""
    model = call.p
    fields, forms = call.params.array("fields"), call.params.array("forms")
    if unknown := [f for f in fields if f not in model.fields]:
        raise invalid_values("fields", unknown)
    if unknown := [f for f in forms if f not in model.forms]:
        raise invalid_values("forms", unknown)
    rows = [
        row
        for row in model.metadata
        if not (fields or forms) or row["field_name"] in fields or row["form_name"] in forms
    ]
    return render_rows(rows, call.fmt, METADATA_COLUMNS, delimiter=call.params.delimiter)


@endpoint("metadata", "import", privilege="api_import")
def import_metadata(call: Call) -> Reply:
    """Replace the dictionary; fields left out lose their data. Development status only."""
    call.require("design")
    model = call.p
    if model.in_production:
        raise ApiError(IN_PRODUCTION)
    rows = [_dictionary_row(row) for row in import_rows(call)]
    if errors := dictionary_errors(rows):
        raise ApiError("\n".join(errors))
    model.replace_metadata(rows)
    model.log(call.u.username, "Manage/Design", "Upload data dictionary (API)", kind="manage")
    return render_count(len(rows), call.return_format)


def _dictionary_row(row: dict[str, str]) -> dict[str, str]:
    named = {ALIASES.get(key, key): value for key, value in row.items()}
    if unknown := [key for key in named if key not in METADATA_COLUMNS]:
        raise ApiError(BAD_COLUMNS.format(", ".join(unknown)))
    return {column: named.get(column, "") for column in METADATA_COLUMNS}


def dictionary_errors(rows: list[dict[str, str]]) -> list[str]:
    """Every reason REDCap would refuse this dictionary, one message per kind of problem."""
    if not rows:
        return [NO_FIELDS]
    names = [row["field_name"] for row in rows]
    forms = [row["form_name"] for row in rows if row["form_name"]]
    completes = {f"{form}_complete" for form in forms}
    problems: dict[str, list[str]] = {
        DUPLICATED: [n for n, count in Counter(names).items() if count > 1],
        BAD_NAME: [n for n in dict.fromkeys(names) if not _valid_name(n) or n in completes],
        NO_FORM: [row["field_name"] for row in rows if not row["form_name"]],
        BAD_FORM_NAME: [f for f in dict.fromkeys(forms) if not _valid_name(f)],
        NOT_SEQUENTIAL: _repeated_forms(forms),
        BAD_TYPE + ": {}": [
            f"{row['field_name']} ({row['field_type']})"
            for row in rows
            if row["field_type"] not in FIELD_TYPES
        ],
        BAD_CHOICES: [
            row["field_name"]
            for row in rows
            if row["field_type"] in CHOICE_TYPES
            and not _valid_choices(row["select_choices_or_calculations"])
        ],
        NO_CALCULATION: [
            row["field_name"]
            for row in rows
            if row["field_type"] == "calc" and not row["select_choices_or_calculations"]
        ],
        BAD_VALIDATION: [
            f"{row['field_name']} ({validation})"
            for row in rows
            if (validation := row["text_validation_type_or_show_slider_number"])
            and row["field_type"] in VALIDATIONS
            and validation not in VALIDATIONS[row["field_type"]]
        ],
    }
    if rows[0]["field_type"] != "text":
        problems[BAD_FIRST] = [f"{names[0]} ({rows[0]['field_type']})"]
    return [template.format(", ".join(found)) for template, found in problems.items() if found]


def _valid_name(name: str) -> bool:
    return len(name) <= MAX_NAME and NAME.fullmatch(name) is not None


def _repeated_forms(forms: list[str]) -> list[str]:
    """Forms whose rows are not contiguous."""
    starts = [form for i, form in enumerate(forms) if i == 0 or forms[i - 1] != form]
    return [form for form, count in Counter(starts).items() if count > 1]


def _valid_choices(text: str) -> bool:
    parts = [part for part in text.split("|") if part.strip()]
    codes = [code for code, _ in parse_choices(text)]
    return (
        bool(parts)
        and all("," in part for part in parts)
        and all(codes)
        and len(set(codes)) == len(codes)
    )


@endpoint("exportFieldNames", "export", privilege="api_export")
def export_field_names(call: Call) -> Reply:
    """Export column names per field: file and descriptive fields have none, a checkbox has one
    per option, and each form's `_complete` follows its fields."""
    model = call.p
    rows = []
    for form in model.forms:
        for meta in model.fields_of(form):
            if meta["field_type"] == "file":
                continue
            columns = model.export_columns(meta)
            codes = (
                [code for code, _ in model.choices(meta["field_name"])]
                if meta["field_type"] == "checkbox"
                else [""] * len(columns)
            )
            rows += [
                {
                    "original_field_name": meta["field_name"],
                    "choice_value": code,
                    "export_field_name": column,
                }
                for code, column in zip(codes, columns, strict=True)
            ]
        complete = f"{form}_complete"
        rows.append(
            {"original_field_name": complete, "choice_value": "", "export_field_name": complete}
        )
    if wanted := call.params.get("field"):
        if model.form_of(wanted) is None or "___" in wanted:
            raise invalid_values("field", [wanted])
        rows = [row for row in rows if row["original_field_name"] == wanted]
    columns = ("original_field_name", "choice_value", "export_field_name")
    return render_rows(rows, call.fmt, columns, delimiter=call.params.delimiter)


@endpoint("instrument", "export", privilege="api_export")
def export_instruments(call: Call) -> Reply:
    """Instrument names and labels in form order."""
    rows = [
        {"instrument_name": form, "instrument_label": label}
        for form, label in call.p.form_labels.items()
    ]
    columns = ("instrument_name", "instrument_label")
    return render_rows(rows, call.fmt, columns, delimiter=call.params.delimiter)
