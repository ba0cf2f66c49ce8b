"""Record import, and the record-level facts export shares with it.

REDCap's import is all-or-nothing and reports every bad cell at once, as lines of
`"record","field","value","message"`; so the whole upload is checked before anything is
written. The message texts are REDCap's as observed; where REDCap's wording is
unknown the text says what is wrong in REDCap's style, marked [U] below.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from hekta_redcap.devtools.sandbox.endpoints import Call, endpoint
from hekta_redcap.devtools.sandbox.models import DataRow, Event, ProjectModel, now
from hekta_redcap.devtools.sandbox.wire import (
    CONTENT_TYPES,
    ApiError,
    Params,
    Reply,
    invalid_parameter,
    parse_data,
    php_csv,
    render_count,
)
from hekta_redcap.redcap.fieldtypes import checkbox_column, is_valid
from hekta_redcap.redcap.names import DAG, EVENT, REPEAT_INSTANCE, REPEAT_INSTRUMENT, SURVEY_ID

PLACE_COLUMNS = (EVENT, REPEAT_INSTRUMENT, REPEAT_INSTANCE)

BAD_FORMAT = (
    "The value you provided could not be validated because it does not follow the expected "
    "format. Please try again."
)
NOT_IN_EVENT = (
    "This field ('{field}') exists on an instrument that is not designated for the event named "
    "'{event}'. You are not allowed to import data for this field into this event."
)
NOT_REPEATING_ROW = (
    "This field ('{field}') exists on a Repeating Instrument named '{form}'. However, the fields "
    "'redcap_repeat_instance' and/or 'redcap_repeat_instrument' for this row of data have no "
    "value, which are both required for importing data into a Repeating Instrument.  You are "
    "not allowed to import data for this field into a non-repeating instrument."
)
BAD_REPEAT_INSTRUMENT = (
    "redcap_repeat_instrument must be the unique form name of a Repeating Instrument. It "
    "currently does not match the unique form name of any Repeating Instruments.  Please fix "
    "this in the data import file and try again."
)
INSTANCE_NOT_ALLOWED = (
    "redcap_repeat_instance cannot have a value since this instrument or event is not a "
    "repeating instrument or repeating event, respectively.  The redcap_repeat_instance field "
    "must be left blank for this row of data."
)
UNKNOWN_FIELDS = "The following fields were not found in the project as real data fields: "
# [U] REDCap's texts for these are not known.
NOT_A_CHOICE = "The value is not a valid category for {field}"
OTHER_INSTRUMENT = (
    "This field ('{field}') exists on the instrument '{form}', not on the Repeating Instrument "
    "'{repeat}' named in redcap_repeat_instrument. You are not allowed to import data for this "
    "field into this row."
)
BAD_INSTANCE = "redcap_repeat_instance must be a whole number of 1 or more, or 'new'."
BAD_EVENT = "The value '{value}' is not a valid unique event name in this project."
BLANK_RECORD = "The record ID cannot be blank."
BAD_DAG = "The value '{value}' is not the unique name of a Data Access Group in this project."
OTHER_DAG = "You may only assign records to your own Data Access Group."
FOREIGN_RECORD = (
    "This record belongs to a Data Access Group that you are not in, so you cannot modify it."
)
# [I] REDCap refuses to change a randomized record's allocation or strata; its text is unknown.
RANDOMIZED = (
    "This field ('{field}') is the randomization field or a stratification field, and the record "
    "has already been randomized, so its value cannot be changed."
)

XML_HEAD = '<?xml version="1.0" encoding="UTF-8" ?>'
DATE_ORDERS = {"MDY": (3, 1, 2), "DMY": (3, 2, 1)}  # the groups holding year, month, day
_SLASHED = re.compile(r"(\d{1,2})[/-](\d{1,2})[/-](\d{4})(.*)")


@dataclass(frozen=True)
class Column:
    """One export column of the project: a field, a checkbox option or `<form>_complete`."""

    name: str
    field: str  # the metadata field name (`<form>_complete` for the form status)
    form: str
    kind: str  # the field type, or "complete"
    code: str = ""  # a checkbox option's code as the dictionary writes it
    validation: str = ""


def project_columns(model: ProjectModel) -> dict[str, Column]:
    """Every export column in project order (record id first, each form's status last)."""
    columns: dict[str, Column] = {}
    for form in model.forms:
        for row in model.fields_of(form):
            name, kind = row["field_name"], row["field_type"]
            if kind == "checkbox":
                for code, _ in model.choices(name):
                    column = checkbox_column(name, code)
                    columns[column] = Column(column, name, form, kind, code)
            elif kind != "descriptive":
                validation = row["text_validation_type_or_show_slider_number"]
                columns[name] = Column(name, name, form, kind, validation=validation)
        complete = f"{form}_complete"
        columns[complete] = Column(complete, complete, form, "complete")
    return columns


def event_label(model: ProjectModel, event: Event, with_arm: bool = True) -> str:
    """`Baseline (Arm 1: Drug A)`, as REDCap names an event to people."""
    if not with_arm:
        return event.event_name
    arm = dict(model.arms).get(event.arm_num, "")
    return f"{event.event_name} (Arm {event.arm_num}: {arm})"


def row_forms(
    model: ProjectModel, event_id: int, repeat_instrument: str, instance: int
) -> set[str]:
    """The forms whose fields belong in one stored row: the repeating instrument's own, every
    form of a repeating event, else the event's non-repeating forms."""
    if repeat_instrument:
        return {repeat_instrument}
    forms = model.forms_at(event_id)
    if instance and model.repeats_event(event_id):
        return set(forms)
    return {form for form in forms if not model.repeats_form(event_id, form)}


@dataclass(frozen=True)
class Dag:
    dag_id: int
    name: str
    unique_name: str


def project_dags(call: Call) -> dict[int, Dag]:
    """The project's data access groups by id (table `dag`, kept by the users area)."""
    rows = call.conn.execute(
        "SELECT dag_id, name, unique_name FROM dag WHERE project_id = ?", (call.p.project_id,)
    )
    return {r[0]: Dag(r[0], r[1], r[2]) for r in rows}


def record_names(model: ProjectModel, dag_id: int | None) -> Iterator[str]:
    """New record names, as REDCap's autonumbering gives them: the highest numeric name plus
    one, or `<dag id>-<n>` for a user in a data access group [I]."""
    prefix = "" if dag_id is None else f"{dag_id}-"
    numbers = [
        int(name[len(prefix) :])
        for name in model.record_ids()
        if name.startswith(prefix) and name[len(prefix) :].isdigit()
    ]
    for n in itertools.count(max(numbers, default=0) + 1):
        yield f"{prefix}{n}"


@dataclass
class Incoming:
    """One valid row of an import, addressed to a stored row."""

    sent: str  # the record name as sent
    record: str  # the name it is stored under (a new one with forceAutoNumber)
    event_id: int
    repeat_instrument: str
    instance: int | None  # None for `new`: the next free instance
    values: dict[str, str] = field(default_factory=dict)  # export column -> value, blanks kept
    dag_id: int | None = None  # the DAG the row assigns its record to


def php_text(value: Any) -> str:
    """A JSON value as PHP turns it into text (REDCap accepts numbers in JSON imports)."""
    if value is None or value is False:
        return ""
    if value is True:
        return "1"
    return str(value)


def _ymd(value: str, order: str) -> str:
    """A date(time) sent as M/D/Y or D/M/Y (dateFormat) in the Y-M-D form REDCap stores."""
    match = _SLASHED.fullmatch(value)
    if order not in DATE_ORDERS or match is None:
        return value
    year, month, day = (match.group(i) for i in DATE_ORDERS[order])
    return f"{year}-{int(month):02d}-{int(day):02d}{match.group(4)}"


def _value_error(model: ProjectModel, column: Column, value: str) -> str | None:
    """Why REDCap would refuse this (non-blank, already Y-M-D) value, or None."""
    if column.kind == "checkbox":
        codes: list[str] = ["0", "1"]
    elif column.kind in ("complete", "radio", "dropdown", "yesno", "truefalse"):
        codes = [code for code, _ in model.choices(column.field)]
    elif column.kind == "slider":
        return None if is_valid("integer", value) else BAD_FORMAT
    else:
        return None if is_valid(column.validation, value) else BAD_FORMAT
    return None if value in codes else NOT_A_CHOICE.format(field=column.field)


def choice(params: Params, name: str, allowed: Sequence[str]) -> str:
    """A parameter with a fixed set of values (the first is the default)."""
    value = params.get(name) or allowed[0]
    if value not in allowed:
        raise invalid_parameter(name)
    return value


class ImportReader:
    """Turns `data` into validated `Incoming` rows, or raises REDCap's error listing every
    bad cell."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.model = call.p
        self.columns = project_columns(self.model)
        self.errors: list[tuple[str, str, str, str]] = []
        self.dags = project_dags(call)
        self.dag_ids = {dag.unique_name: dag.dag_id for dag in self.dags.values()}

    def read(self) -> list[Incoming]:
        params = self.call.params
        if params.format == "odm":
            raise ApiError("The local server imports records as json, csv or xml, not odm")
        kind = choice(params, "type", ("flat", "eav"))
        date_format = choice(params, "dateFormat", ("YMD", "MDY", "DMY"))
        text = params.require("data").lstrip("\ufeff")
        rows = [
            {str(k).strip(): php_text(v) for k, v in row.items()}
            for row in parse_data(text, params.format, params.delimiter)
        ]
        if kind == "eav":
            rows = self._flatten_eav(rows)
        self._check_columns(rows)
        incoming = [row for raw in rows if (row := self._row(raw, date_format)) is not None]
        self._fail_on_errors()
        if params.flag("forceAutoNumber") and self.model.autonumbering:
            names = record_names(self.model, self.call.u.dag_id)
            renamed = {sent: next(names) for sent in dict.fromkeys(r.sent for r in incoming)}
            for row in incoming:
                row.record = renamed[row.sent]
        else:
            self._check_record_dags(incoming)
        return incoming

    def _flatten_eav(self, rows: list[dict[str, str]]) -> list[dict[str, str]]:
        """EAV rows (`record, field_name, value[, redcap_event_name, repeat columns]`) as flat
        rows, one per record × event × instance. A checkbox comes as `field___code` = 0/1, or
        (as EAV exports write it) as the base name with the checked code as value."""
        missing = {"record", "field_name", "value"} - {key for row in rows for key in row}
        if rows and missing:
            raise ApiError(
                "EAV data must have the columns record, field_name and value; missing: "
                + ", ".join(sorted(missing))
            )  # [U]
        flat: dict[tuple[str, ...], dict[str, str]] = {}
        rid = self.model.record_id_field
        for row in rows:
            place = {k: row[k] for k in PLACE_COLUMNS if k in row}
            key = (row["record"], *(place.get(k, "") for k in PLACE_COLUMNS))
            target = flat.setdefault(key, {rid: row["record"], **place})
            name, value = row["field_name"], row["value"]
            if name == rid:
                continue  # the `record` column names the record
            meta = self.model.fields.get(name)
            if meta is not None and meta["field_type"] == "checkbox" and value != "":
                name, value = checkbox_column(name, value), "1"
            target[name] = value
        return list(flat.values())

    def _check_columns(self, rows: list[dict[str, str]]) -> None:
        names = list(dict.fromkeys(name for row in rows for name in row))
        rid = self.model.record_id_field
        allowed = {rid, REPEAT_INSTRUMENT, REPEAT_INSTANCE, DAG, SURVEY_ID}
        allowed |= {f"{form}_timestamp" for form in self.model.forms}
        if self.model.longitudinal:
            allowed.add(EVENT)
        unknown = [n for n in names if n not in allowed and n not in self.columns]
        if unknown:
            raise ApiError(UNKNOWN_FIELDS + ", ".join(unknown))
        if rows and rid not in names:
            raise ApiError(f"The record ID field ({rid}) is missing from the data")  # [U]

    def _row(self, raw: dict[str, str], date_format: str) -> Incoming | None:
        """Check one row; record its errors and return None when it has any."""
        model, rid = self.model, self.model.record_id_field
        sent = raw.get(rid, "").strip()
        if not sent:
            self.errors.append(("", rid, "", BLANK_RECORD))
            return None
        before = len(self.errors)
        event = self._event(sent, raw.get(EVENT, "").strip())
        if event is None and model.longitudinal:
            return None
        event_id = event.event_id if event else 0
        repeat, instance = self._repeat(sent, event_id, raw)
        dag_id = self._dag(sent, raw.get(DAG, "").strip())
        row = Incoming(sent, sent, event_id, repeat, instance, dag_id=dag_id)
        for name, value in raw.items():
            column = self.columns.get(name)
            if column is None or column.kind in ("calc", "file") or name == rid:
                continue  # pseudo-columns; calculations and files are not imported
            if column.kind != "notes":
                value = value.strip()
            if column.validation.startswith(("date_", "datetime_")):
                value = _ymd(value, date_format)
            row.values[name] = value
            if value != "":
                self._check_cell(sent, column, value, event, repeat, instance)
        if repeat and instance == 0:  # the fields' errors say why; the row itself is not placed
            row.repeat_instrument = ""
        return row if len(self.errors) == before else None

    def _event(self, sent: str, name: str) -> Event | None:
        """The row's event; a longitudinal import without one goes to the first event."""
        model = self.model
        if not model.longitudinal:
            return None
        if not name:
            if not model.events:
                self.errors.append((sent, EVENT, "", "The project has no events."))  # [U]
            return model.events[0] if model.events else None
        event = model.event(name)
        if event is None:
            self.errors.append((sent, EVENT, name, BAD_EVENT.format(value=name)))
        return event

    def _repeat(self, sent: str, event_id: int, raw: dict[str, str]) -> tuple[str, int | None]:
        """The row's repeat instrument and instance (0: not a repeat row; None: `new`).
        A repeating event's row without an instance is its instance 1 [U]."""
        model = self.model
        repeat = raw.get(REPEAT_INSTRUMENT, "").strip()
        text = raw.get(REPEAT_INSTANCE, "").strip()
        if repeat and (model.repeats_event(event_id) or not model.repeats_form(event_id, repeat)):
            self.errors.append((sent, REPEAT_INSTRUMENT, repeat, BAD_REPEAT_INSTRUMENT))
            return "", 0
        if not text:
            return repeat, 1 if model.repeats_event(event_id) else 0
        if not repeat and not model.repeats_event(event_id):
            self.errors.append((sent, REPEAT_INSTANCE, text, INSTANCE_NOT_ALLOWED))
            return "", 0
        if text.lower() == "new":
            return repeat, None
        if not text.isdigit() or int(text) < 1:
            self.errors.append((sent, REPEAT_INSTANCE, text, BAD_INSTANCE))
            return repeat, 0
        return repeat, int(text)

    def _dag(self, sent: str, unique_name: str) -> int | None:
        """The DAG a row assigns: only users outside any DAG may name one (others may name
        only their own)."""
        if not unique_name:
            return None
        dag_id = self.dag_ids.get(unique_name)
        own = self.call.u.dag_id
        if dag_id is None:
            self.errors.append((sent, DAG, unique_name, BAD_DAG.format(value=unique_name)))
        elif own is not None and dag_id != own:
            self.errors.append((sent, DAG, unique_name, OTHER_DAG))
        return dag_id

    def _check_cell(
        self,
        sent: str,
        column: Column,
        value: str,
        event: Event | None,
        repeat: str,
        instance: int | None,
    ) -> None:
        message = self._placement_error(column, event, repeat, instance)
        message = message or _value_error(self.model, column, value)
        if message:
            self.errors.append((sent, column.name, value, message))

    def _placement_error(
        self, column: Column, event: Event | None, repeat: str, instance: int | None
    ) -> str | None:
        """Why a value cannot go into this row's event and repeat instance, or None."""
        model, form = self.model, column.form
        event_id = event.event_id if event else 0
        if event is not None and form not in model.forms_at(event_id):
            return NOT_IN_EVENT.format(field=column.field, event=event_label(model, event))
        if model.repeats_event(event_id):
            return None
        if model.repeats_form(event_id, form):
            if repeat != form or instance == 0:
                return NOT_REPEATING_ROW.format(field=column.field, form=form)
            return None
        if repeat:
            return OTHER_INSTRUMENT.format(field=column.field, form=form, repeat=repeat)
        return None

    def _check_record_dags(self, incoming: list[Incoming]) -> None:
        """A user in a DAG cannot touch records of other groups (REDCap hides them)."""
        own = self.call.u.dag_id
        if own is None:
            return
        rid = self.model.record_id_field
        for sent in dict.fromkeys(row.record for row in incoming):
            info = self.model.record_info(sent)
            if info is not None and info["dag_id"] != own:
                self.errors.append((sent, rid, sent, FOREIGN_RECORD))
        self._fail_on_errors()

    def keep_allocations(self, incoming: list[Incoming], overwrite: bool) -> None:
        """REDCap's rule: once a record is randomized, its target and strata fields (and its
        data access group, when that is a stratum) keep their values; sending the same value
        again is no change. Any change refuses the whole import."""
        randomized = self.model.randomized(row.record for row in incoming)
        for row in incoming:
            for randomization in randomized.get(row.record, []):
                target = (randomization.target, randomization.target_event)
                for name, event_id in (target, *randomization.strata):
                    value = self._change(row, name, event_id, overwrite)
                    if value is not None:
                        self.errors.append((row.sent, name, value, RANDOMIZED.format(field=name)))
        self._fail_on_errors()

    def _change(self, row: Incoming, name: str, event_id: int, overwrite: bool) -> str | None:
        """The value `row` would change a field (at its event) or the DAG to, or None."""
        if name == DAG:
            info = self.model.record_info(row.record)
            if row.dag_id is None or (info is not None and row.dag_id == info["dag_id"]):
                return None
            return self.dags[row.dag_id].unique_name
        place = (row.event_id, row.repeat_instrument, row.instance)
        if place != (event_id, "", 0) or name not in row.values:
            return None
        value = row.values[name]
        stored = self.model.get_row((row.record, event_id, "", 0)).values.get(name, "")
        return value if value != stored and (value != "" or overwrite) else None

    def _fail_on_errors(self) -> None:
        """REDCap's data-error reply: one CSV-quoted line per bad cell."""
        if self.errors:
            lines = (",".join(f'"{cell}"' for cell in error) for error in self.errors)
            raise ApiError("\n".join(lines))


# -- import ----------------------------------------------------------------------------------


@endpoint("record", "import", privilege="api_import")
def import_records(call: Call) -> Reply:
    """Validate everything, then write; reply with the count, the ids or nothing."""
    params = call.params
    overwrite = choice(params, "overwriteBehavior", ("normal", "overwrite")) == "overwrite"
    content = choice(params, "returnContent", ("count", "ids", "auto_ids", "nothing"))
    reader = ImportReader(call)
    incoming = reader.read()
    reader.keep_allocations(incoming, overwrite)
    save_rows(call, incoming, overwrite)
    fmt = call.return_format
    records = list(dict.fromkeys(row.record for row in incoming))
    if content == "nothing":
        return Reply(b"", CONTENT_TYPES[fmt])
    if content == "count":
        if fmt == "json":
            return Reply(json.dumps({"count": len(records)}).encode(), CONTENT_TYPES[fmt])
        if fmt == "xml":
            body = f"{XML_HEAD}<count>{len(records)}</count>"
            return Reply(body.encode(), CONTENT_TYPES[fmt])
        return render_count(len(records), fmt)
    if content == "auto_ids":
        sent = {row.record: row.sent for row in incoming}
        records = [f"{record},{sent[record]}" for record in records]
    if fmt == "json":
        return Reply(json.dumps(records).encode(), CONTENT_TYPES[fmt])
    if fmt == "xml":  # [U]
        body = XML_HEAD + "<ids>" + "".join(f"<id>{r}</id>" for r in records) + "</ids>"
        return Reply(body.encode(), CONTENT_TYPES[fmt])
    return Reply(php_csv([["id"], *([r] for r in records)]).encode(), CONTENT_TYPES[fmt])


def save_rows(call: Call, incoming: list[Incoming], overwrite: bool) -> None:
    """Apply validated rows: later rows for the same place update earlier ones; `normal`
    ignores blanks, `overwrite` erases with them; a checkbox option sent as 0 is unchecked.
    Only rows that change are written and logged."""
    model = call.p
    columns = project_columns(model)
    records = list(dict.fromkeys(row.record for row in incoming))
    created = {record for record in records if not model.record_exists(record)}
    stored = {row.key: row for row in model.data_rows(records)}
    last: dict[tuple[str, int, str], int] = {}
    for key in stored:
        last[key[:3]] = max(last.get(key[:3], 0), key[3])
    work: dict[tuple[str, int, str, int], dict[str, str]] = {}
    dags: dict[str, int] = {}
    for row in incoming:
        group = (row.record, row.event_id, row.repeat_instrument)
        instance = last.get(group, 0) + 1 if row.instance is None else row.instance
        last[group] = max(last.get(group, 0), instance)
        key = (*group, instance)
        values = work.setdefault(key, dict(stored[key].values) if key in stored else {})
        forms = row_forms(model, row.event_id, row.repeat_instrument, instance)
        for name, value in row.values.items():
            column = columns[name]
            if value == "":
                if overwrite and column.form in forms:
                    values.pop(name, None)
            elif column.kind == "checkbox" and value == "0":
                values.pop(name, None)
            else:
                values[name] = value
        if row.dag_id is not None:
            dags[row.record] = row.dag_id
    when, user = now(), call.u.username
    order = {name: i for i, name in enumerate(columns)}
    logged: set[str] = set()
    for key, values in work.items():
        old = stored[key].values if key in stored else None
        if old == values:
            continue
        record = key[0]
        model.save_row(DataRow(*key, values))
        if model.touch_record(record, when, dags.get(record, call.u.dag_id)):
            dags.pop(record, None)
        details = [f"[instance = {key[3]}]"] if key[3] else []
        if record in created and record not in logged:
            details.append(f"{model.record_id_field} = '{record}'")
        for name in sorted(set(values) | set(old or {}), key=lambda n: order.get(n, len(order))):
            if values.get(name, "") != (old or {}).get(name, ""):
                details.append(_change(columns.get(name), name, values.get(name, "")))
        event = model.event_by_id(key[1])
        action = "Create" if record in created and record not in logged else "Update"
        model.log(
            user,
            f"{action} record (API) {record}",
            ", ".join(details),
            kind="record_add" if action == "Create" else "record_edit",
            record=record,
            event=event.unique_event_name if event else None,
            when=when,
        )
        logged.add(record)
    for record, dag_id in dags.items():
        info = model.record_info(record)
        if info is not None and info["dag_id"] != dag_id:
            model.set_record_dag(record, dag_id)
            model.touch_record(record, when)
            unique = project_dags(call)[dag_id].unique_name
            model.log(
                user,
                f"Update record (API) {record}",
                f"{DAG} = '{unique}'",
                kind="record_edit",
                record=record,
                when=when,
            )


def _change(column: Column | None, name: str, value: str) -> str:
    """One change as REDCap's logging writes it: `field = 'value'`, `cb(2) = checked`."""
    if column is not None and column.kind == "checkbox":
        return f"{column.field}({column.code}) = {'checked' if value == '1' else 'unchecked'}"
    return f"{name} = '{value}'"
