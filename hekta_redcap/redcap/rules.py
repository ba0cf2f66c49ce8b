"""What REDCap itself refuses in a data dictionary: its Data Dictionary upload and API metadata
import. These are errors everywhere: lint, `import-dictionary`, and the local REDCap-compatible
server, which groups them into REDCap's messages. The project's own advice on dictionaries is
`compile.checks`; docs/redcap-rules.md lists both, with what is known about each of REDCap's.

    >>> refusals = redcap_refusals([DictRow("Record_ID", "a", field_type="text")])
    >>> [(r.kind, r.field) for r in refusals]
    [('field-name', 'Record_ID')]
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

from hekta_redcap.core.errors import Origin
from hekta_redcap.redcap.dictionary import DictRow
from hekta_redcap.redcap.fieldtypes import (
    CHOICE_CODE,
    CHOICE_TYPES,
    FIELD_TYPES,
    OTHER_VALIDATIONS,
    has_bounds,
    is_known_validation,
    is_piped,
    is_site_validation,
    parse_bound,
    parse_choices,
)

NAME = re.compile(r"[a-z][a-z0-9_]*")
MAX_NAME = 100
# Names REDCap gives its own columns and form variables.
RESERVED_NAMES = frozenset(
    """event_id hidden_edit_flag instance redcap_event_name redcap_repeat_instrument
    redcap_repeat_instance redcap_data_access_group redcap_survey_identifier
    redcap_csrf_token""".split()
)
MATRIX_NAME = re.compile(r"[a-z0-9_]+")
ALIGNMENTS = frozenset({"", "RV", "RH", "LV", "LH"})
FLAGS = ("identifier", "required_field", "matrix_ranking")


# REDCap's rules -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """One reason REDCap refuses a dictionary: `kind` groups refusals into one of REDCap's
    messages, `item` is what that message lists, `message` says it for one field."""

    kind: str
    field: str
    item: str
    message: str
    origin: Origin | None = None


def redcap_refusals(rows: list[DictRow]) -> list[Refusal]:
    """Every reason REDCap's Data Dictionary upload would refuse these rows."""
    if not rows:
        return [Refusal("no-fields", "", "", "the dictionary has no fields")]
    found: list[Refusal] = []
    forms = {row.form_name for row in rows if row.form_name}
    seen: dict[str, DictRow] = {}
    for row in rows:
        found += _row_refusals(row, forms)
        if (first := seen.get(row.field_name)) is not None:
            where = f" (first at {first.origin})" if first.origin else ""
            message = f"field name '{row.field_name}' is used twice{where}"
            found.append(_refuse(row, "duplicated", row.field_name, message))
        seen.setdefault(row.field_name, row)
    found += _form_order(rows)
    found += _matrix_refusals(rows)
    first = rows[0]
    if first.field_type != "text":
        found.append(
            _refuse(
                first,
                "record-id",
                f"{first.field_name} ({first.field_type})",
                f"the record-id field '{first.field_name}' (the first field) must be of type "
                f"text, not '{first.field_type}'",
            )
        )
    return found


def _refuse(row: DictRow, kind: str, item: str, message: str) -> Refusal:
    return Refusal(kind, row.field_name, item, message, row.origin)


def _row_refusals(row: DictRow, forms: set[str]) -> Iterator[Refusal]:
    """REDCap's rules on one row: its name, form, type and the cells the type reads."""
    name, ftype = row.field_name, row.field_type
    if not NAME.fullmatch(name) or len(name) > MAX_NAME:
        yield _refuse(
            row,
            "field-name",
            name,
            f"field name '{name}' must match ^[a-z][a-z0-9_]*$ (lowercase letters, digits and "
            f"underscores, starting with a letter) and have at most {MAX_NAME} characters",
        )
    elif name in RESERVED_NAMES or name.removesuffix("_complete") in forms - {name}:
        yield _refuse(row, "field-name", name, f"field name '{name}' is reserved by REDCap")
    if not row.form_name:
        yield _refuse(row, "no-form", name, f"field '{name}' has no form name")
    if ftype not in FIELD_TYPES:
        lower = " (field types are lower case)" if ftype.lower() in FIELD_TYPES else ""
        yield _refuse(
            row,
            "field-type",
            f"{name} ({ftype})",
            f"field '{name}' has type '{ftype}'{lower}; REDCap's types are "
            f"{', '.join(sorted(FIELD_TYPES))}",
        )
        return
    text = row.select_choices_or_calculations
    if ftype in CHOICE_TYPES:
        yield from _choice_refusals(row)
    elif ftype == "calc" and not text.strip():
        yield _refuse(row, "calc", name, f"calc field '{name}' has no calculation")
    elif ftype == "sql" and not text.strip():
        yield _refuse(row, "calc", name, f"sql field '{name}' has no query")
    yield from _validation_refusals(row)
    for column in FLAGS:
        if getattr(row, column) not in ("", "y"):
            value = getattr(row, column)
            message = f"field '{name}': {column} must be 'y' or blank, not {value!r}"
            yield _refuse(row, "flag", f"{name} ({column})", message)
    if row.custom_alignment not in ALIGNMENTS:
        yield _refuse(
            row,
            "alignment",
            f"{name} ({row.custom_alignment})",
            f"field '{name}': custom alignment must be RV, RH, LV or LH, not "
            f"{row.custom_alignment!r}",
        )


def _choice_refusals(row: DictRow) -> Iterator[Refusal]:
    """Choices as REDCap parses them: `code, label` parts split on '|', codes of letters,
    digits, `_`, `.` and `-`, each once."""
    text, name = row.select_choices_or_calculations, row.field_name
    parts = [part for part in text.split("|") if part.strip()]
    if not parts:
        message = f"{row.field_type} field '{name}' needs choices as 'code, label | code, label'"
        yield _refuse(row, "choices", name, message)
        return
    if bad := [part.strip() for part in parts if "," not in part]:
        message = f"field '{name}': choice {bad[0]!r} is not 'code, label'"
        yield _refuse(row, "choices", name, message)
        return
    codes = [code for code, _ in parse_choices(text)]
    for code in codes:
        if not CHOICE_CODE.fullmatch(code):
            yield _refuse(
                row,
                "choices",
                name,
                f"field '{name}': choice code '{code}' is not a valid code (letters, digits, "
                "'_', '.' and '-')",
            )
    for code, count in Counter(codes).items():
        if count > 1:
            message = f"field '{name}': choice code '{code}' is used {count} times"
            yield _refuse(row, "choices", name, message)


def _validation_refusals(row: DictRow) -> Iterator[Refusal]:
    """A validation type REDCap has, on a field type that takes it, with bounds it can read."""
    validation, name, ftype = (
        row.text_validation_type_or_show_slider_number,
        row.field_name,
        (row.field_type),
    )
    if not validation:
        return
    if ftype == "text":
        if not is_known_validation(validation) and not is_site_validation(validation):
            yield _refuse(
                row,
                "validation",
                f"{name} ({validation})",
                f"field '{name}': unknown validation type '{validation}'",
            )
            return
    elif validation not in OTHER_VALIDATIONS.get(ftype, ()):
        yield _refuse(
            row,
            "validation",
            f"{name} ({validation})",
            f"field '{name}' of type {ftype} cannot have a validation ('{validation}')",
        )
        return
    if not has_bounds(validation) or ftype == "slider":
        return
    for label in ("min", "max"):
        bound = getattr(row, f"text_validation_{label}")
        if not bound or is_piped(bound):
            continue
        try:
            parse_bound(validation, bound)
        except ValueError as exc:
            yield _refuse(
                row, "bounds", f"{name} ({label} {bound})", f"field '{name}': {label} {exc}"
            )


def _form_order(rows: list[DictRow]) -> Iterator[Refusal]:
    """Form names REDCap can take, each form's rows together."""
    finished: set[str] = set()
    previous = None
    for row in rows:
        form = row.form_name
        if not form or form == previous:
            continue
        if form in finished:
            yield Refusal(
                "not-sequential",
                row.field_name,
                form,
                f"form '{form}' continues after another form; a form's fields must be contiguous",
                row.origin,
            )
        elif not NAME.fullmatch(form) or len(form) > MAX_NAME:
            yield Refusal(
                "form-name",
                row.field_name,
                form,
                f"form name '{form}' is not valid: lowercase letters, digits and underscores, "
                f"starting with a letter, at most {MAX_NAME} characters",
                row.origin,
            )
        if previous:
            finished.add(previous)
        previous = form


def _matrix_refusals(rows: list[DictRow]) -> Iterator[Refusal]:
    """A matrix group: a valid name, radio or checkbox fields of one type with one choice
    list (compared as REDCap parses it)."""
    groups: dict[str, list[DictRow]] = defaultdict(list)
    for row in rows:
        if row.matrix_group_name:
            groups[row.matrix_group_name].append(row)
    for group, members in groups.items():
        first = members[0]
        if not MATRIX_NAME.fullmatch(group):
            yield _refuse(
                first,
                "matrix",
                group,
                f"matrix group name '{group}' must be lowercase letters, digits and underscores",
            )
        for row in members:
            if row.field_type not in ("radio", "checkbox"):
                message = f"matrix field '{row.field_name}' must be radio or checkbox"
                yield _refuse(row, "matrix", row.field_name, message)
            elif (row.field_type, _parsed(row)) != (first.field_type, _parsed(first)):
                yield _refuse(
                    row,
                    "matrix",
                    row.field_name,
                    f"matrix field '{row.field_name}' differs from '{first.field_name}' in type "
                    f"or choices (group '{group}')",
                )


def _parsed(row: DictRow) -> list[tuple[str, str]]:
    return parse_choices(row.select_choices_or_calculations)
