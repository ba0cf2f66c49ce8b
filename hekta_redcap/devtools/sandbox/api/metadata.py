"""Metadata (data dictionary) export and import, export field names, instruments.

A dictionary import replaces the whole dictionary, so it is checked as a whole first and every
problem is reported in one 400 (REDCap's way), before anything is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hekta_redcap.core.errors import DefinitionError
from hekta_redcap.devtools.sandbox.endpoints import Call, endpoint
from hekta_redcap.devtools.sandbox.models import METADATA_COLUMNS
from hekta_redcap.devtools.sandbox.wire import (
    ApiError,
    Reply,
    invalid_values,
    parse_data,
    render_count,
    render_rows,
)
from hekta_redcap.redcap.dictionary import (
    HEADER_NAMES,
    REQUIRED_COLUMNS,
    DictRow,
    header_key,
    parse_dictionary,
)
from hekta_redcap.redcap.rules import redcap_refusals

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
    "underscores, start with a letter, at most 100 characters, and not a name REDCap reserves "
    "such as a form's `_complete` name): {}"
)
BAD_FORM_NAME = (
    "The following form names are not valid (use lowercase letters, numbers and underscores, "
    "start with a letter, at most 100 characters): {}"
)
BAD_FIRST = "The first field is the record ID field and must be a text field: {}"
NO_FIELDS = "The data dictionary must contain at least one field"
BAD_CHOICES = (
    'The choices of these fields are not formatted as "code, label | code, label" with '
    "unique codes of letters, numbers, underscores, dots and hyphens: {}"
)
NO_CALCULATION = "These calculated (or SQL) fields have no calculation (or query): {}"
BAD_VALIDATION = "These fields have a validation type that is not valid for their field type: {}"
BAD_BOUNDS = "These fields have a Text Validation Min or Max not valid for their validation: {}"
BAD_FLAGS = "Identifier?, Required Field? and Matrix Ranking? must be 'y' or blank: {}"
BAD_ALIGNMENT = "Custom Alignment must be RV, RH, LV, LH or blank: {}"
BAD_MATRIX = (
    "Matrix groups must have a valid name and hold radio or checkbox fields of one type with "
    "the same choices: {}"
)
BAD_COLUMNS = "These columns are not data dictionary columns: {}"
# [U] REDCap refuses dictionary imports in production; the exact text is unknown.
IN_PRODUCTION = (
    "The data dictionary cannot be imported because the project is in production status. "
    "Metadata can only be imported while the project is in development status; in production, "
    "change the design in Draft Mode."
)
# Each kind of refusal (dictrules) as one of REDCap's messages, in the order REDCap lists them.
MESSAGES = {
    "duplicated": DUPLICATED,
    "field-name": BAD_NAME,
    "no-form": NO_FORM,
    "form-name": BAD_FORM_NAME,
    "not-sequential": NOT_SEQUENTIAL,
    "field-type": BAD_TYPE + ": {}",
    "choices": BAD_CHOICES,
    "calc": NO_CALCULATION,
    "validation": BAD_VALIDATION,
    "bounds": BAD_BOUNDS,
    "flag": BAD_FLAGS,
    "alignment": BAD_ALIGNMENT,
    "matrix": BAD_MATRIX,
    "record-id": BAD_FIRST,
    "no-fields": NO_FIELDS,
}


def import_rows(call: Call) -> list[dict[str, str]]:
    """The `data` of an import as rows of stripped strings (JSON may hold numbers)."""
    rows = parse_data(call.params.require("data"), call.fmt, call.params.delimiter)
    return [{str(k).strip(): _text(v).strip() for k, v in row.items()} for row in rows]


def dictionary_rows(call: Call) -> list[dict[str, str]]:
    """The `data` of a dictionary import as rows of REDCap's 18 keys, cells as sent: CSV with
    the API's or the download page's header (older 16- and 17-column files too), JSON or XML."""
    data = call.params.require("data")
    if call.fmt == "csv":
        try:
            read = parse_dictionary(data, Path("data"))
        except DefinitionError as exc:
            raise ApiError(f"The data being imported is not formatted correctly ({exc})") from None
        return [row.as_dict() for row in read.rows]
    rows = parse_data(data, call.fmt, call.params.delimiter)
    return [_dictionary_row(row) for row in rows]


def _dictionary_row(row: dict[str, Any]) -> dict[str, str]:
    named = {HEADER_NAMES.get(header_key(str(key)), str(key)): _text(v) for key, v in row.items()}
    if unknown := [key for key in named if key not in METADATA_COLUMNS]:
        raise ApiError(BAD_COLUMNS.format(", ".join(unknown)))
    cells = {column: named.get(column, "") for column in METADATA_COLUMNS}
    for column in REQUIRED_COLUMNS:
        cells[column] = cells[column].strip()
    return cells


def _text(value: Any) -> str:
    return "" if value is None else str(value)


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
    rows = dictionary_rows(call)
    if errors := dictionary_errors(rows):
        raise ApiError("\n".join(errors))
    model.replace_metadata(rows)
    model.log(call.u.username, "Manage/Design", "Upload data dictionary (API)", kind="manage")
    return render_count(len(rows), call.return_format)


def dictionary_errors(rows: list[dict[str, str]]) -> list[str]:
    """Every reason REDCap would refuse this dictionary (the rules in `dictrules`), one message
    per kind of problem."""
    found: dict[str, list[str]] = {kind: [] for kind in MESSAGES}
    for refusal in redcap_refusals([DictRow(**row, origin=None) for row in rows]):
        found.setdefault(refusal.kind, []).append(refusal.item)
    return [
        MESSAGES.get(kind, kind + ": {}").format(", ".join(dict.fromkeys(items)))
        for kind, items in found.items()
        if items
    ]


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
    header = ("original_field_name", "choice_value", "export_field_name")
    return render_rows(rows, call.fmt, header, delimiter=call.params.delimiter)


@endpoint("instrument", "export", privilege="api_export")
def export_instruments(call: Call) -> Reply:
    """Instrument names and labels in form order."""
    rows = [
        {"instrument_name": form, "instrument_label": label}
        for form, label in call.p.form_labels.items()
    ]
    columns = ("instrument_name", "instrument_label")
    return render_rows(rows, call.fmt, columns, delimiter=call.params.delimiter)
