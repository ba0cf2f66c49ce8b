"""Record export, delete and rename, and generateNextRecordName (REDCap's record API);
the import is in `records_import.py`.

Exports are shaped from the stored rows (one per record × event × repeat instance) exactly as
REDCap shapes them: project column order whatever the request order, pseudo-columns only with
the record id, checkboxes and grey form status as "0" where the form applies, repeat rows sparse.
Every call sees only the records of the user's data access group, as REDCap hides the others.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from functools import cached_property

from hekta_redcap.devtools.sandbox.api.records_import import (
    DAG,
    EVENT,
    REPEAT_INSTANCE,
    REPEAT_INSTRUMENT,
    SURVEY_ID,
    Column,
    Dag,
    choice,
    event_label,
    project_columns,
    project_dags,
    record_names,
    row_forms,
)
from hekta_redcap.devtools.sandbox.endpoints import Call, endpoint
from hekta_redcap.devtools.sandbox.models import TIME_FORMAT, DataRow, Event, now
from hekta_redcap.devtools.sandbox.wire import (
    ApiError,
    Params,
    Reply,
    invalid_parameter,
    invalid_values,
    render_count,
    render_rows,
    render_text,
)
from hekta_redcap.redcap.fieldtypes import checkbox_column
from hekta_redcap.redcap.logic import LogicError, Ref, evaluate, is_true, parse, references

# [I] REDCap's headers for the pseudo-columns when rawOrLabelHeaders=label.
PSEUDO_HEADERS = {
    EVENT: "Event Name",
    REPEAT_INSTRUMENT: "Repeat Instrument",
    REPEAT_INSTANCE: "Repeat Instance",
    DAG: "Data Access Group",
    SURVEY_ID: "Survey Identifier",
}
LABELLED_KINDS = ("radio", "dropdown", "yesno", "truefalse", "complete")
NO_SUCH_RECORDS = (
    "One or more of the records provided cannot be deleted because they do not exist in the "
    "project. The following records do not exist: "
)
BAD_LOGIC = "The filterLogic parameter is not valid: "  # [U] with the parser's message


def _check_values(name: str, values: Iterable[str], known: Iterable[str]) -> None:
    """REDCap's refusal of unknown fields, forms or events, naming each."""
    allowed = set(known)
    if bad := [v for v in values if v not in allowed]:
        raise invalid_values(name, bad)


def _moment(params: Params, name: str) -> str | None:
    """`dateRangeBegin`/`End` (`YYYY-MM-DD HH:MM:SS`, shorter forms accepted) as stored."""
    value = params.get(name)
    if value is None:
        return None
    try:
        return dt.datetime.fromisoformat(value.strip()).strftime(TIME_FORMAT)
    except ValueError:
        raise invalid_parameter(name) from None


# -- export ----------------------------------------------------------------------------------


class RecordExport:
    """One `content=record` export: the parameters read once, then rows rendered."""

    def __init__(self, call: Call) -> None:
        params, model = call.params, call.p
        if params.format == "odm":
            raise ApiError(
                "The local server exports records as json, csv or xml; for ODM use "
                "content=project_xml"
            )
        if params.flag("combineCheckboxOptions"):
            raise ApiError("The local server does not combine checkbox options into one column")
        self.call, self.model, self.params = call, model, params
        self.eav = choice(params, "type", ("flat", "eav")) == "eav"
        self.label = choice(params, "rawOrLabel", ("raw", "label")) == "label"
        self.label_headers = choice(params, "rawOrLabelHeaders", ("raw", "label")) == "label"
        self.checkbox_labels = params.flag("exportCheckboxLabel")
        self.blank_gray = params.flag("exportBlankForGrayFormStatus")
        self.decimal = choice(params, "decimalCharacter", ("", ",", "."))
        self.columns = project_columns(model)
        self.labels = {c.field: dict(model.choices(c.field)) for c in self.columns.values()}
        self.several_arms = len({e.arm_num for e in model.events}) > 1
        self._select_columns()

    def _select_columns(self) -> None:
        """The data columns (union of `fields` and `forms`, in project order) and whether the
        record id, and so the pseudo-columns, are exported."""
        model, params = self.model, self.params
        fields, forms = params.array("fields"), params.array("forms")
        _check_values("fields", fields, [*model.fields, *(f"{f}_complete" for f in model.forms)])
        _check_values("forms", forms, model.forms)
        names = set(fields)
        for form in forms:
            names |= {row["field_name"] for row in model.fields_of(form)} | {f"{form}_complete"}
        rid = model.record_id_field
        everything = not fields and not forms
        self.with_id = everything or rid in names
        self.data = [
            c for c in self.columns.values() if c.name != rid and (everything or c.field in names)
        ]
        events = params.array("events")
        _check_values("events", events, [e.unique_event_name for e in model.events])
        self.events = (
            {e.event_id for e in model.events if e.unique_event_name in events} if events else None
        )
        survey_fields = params.flag("exportSurveyFields")
        surveys = {
            r[0] for r in call_rows(self.call, "SELECT form_name FROM survey WHERE project_id = ?")
        }
        self.timestamps = {
            form
            for form in surveys
            if survey_fields and self.with_id and (form == model.forms[0] or self._has(form))
        }
        self.pseudo: list[str] = []
        if self.with_id:
            self.pseudo += [EVENT] if model.longitudinal else []
            self.pseudo += [REPEAT_INSTRUMENT, REPEAT_INSTANCE] if model.has_repeating else []
            # a user in a DAG cannot export the DAG column (PyCap's docs)
            if params.flag("exportDataAccessGroups") and self.groups and self.call.u.dag_id is None:
                self.pseudo.append(DAG)
            self.pseudo += [SURVEY_ID] if survey_fields and surveys else []
        # [U] EAV rows carry the event and, in projects that repeat, the repeat columns, after
        # `value` (REDCap documents only redcap_event_name there)
        self.eav_place = [
            p for p in self.pseudo if p in (EVENT, REPEAT_INSTRUMENT, REPEAT_INSTANCE)
        ]

    def _has(self, form: str) -> bool:
        return any(c.form == form for c in self.data)

    @cached_property
    def groups(self) -> dict[int, Dag]:
        return project_dags(self.call)

    @cached_property
    def record_groups(self) -> dict[str, Dag]:
        """record -> its data access group (records in none are absent)."""
        rows = call_rows(self.call, "SELECT record, dag_id FROM record WHERE project_id = ?")
        return {r[0]: self.groups[r[1]] for r in rows if r[1] in self.groups}

    def flat_columns(self) -> list[str]:
        """Record id, pseudo-columns, then per form its survey timestamp and its columns."""
        columns = [self.model.record_id_field, *self.pseudo] if self.with_id else []
        for form in self.model.forms:
            columns += [f"{form}_timestamp"] if form in self.timestamps else []
            columns += [c.name for c in self.data if c.form == form]
        return columns

    def headers(self, columns: list[str]) -> list[str]:
        """Column labels for rawOrLabelHeaders=label: field labels, `<label> (choice=<option>)`
        for checkbox options, `Complete?` for form status."""
        by_name = {c.name: c for c in self.data}
        fields = self.model.fields
        rid = self.model.record_id_field
        headers = []
        for name in columns:
            column = by_name.get(name)
            if name in PSEUDO_HEADERS:
                headers.append(PSEUDO_HEADERS[name])
            elif name == rid:
                headers.append(fields[rid]["field_label"])
            elif column is None:
                headers.append("Survey Timestamp")  # [I]
            elif column.kind == "complete":
                headers.append("Complete?")
            elif column.kind == "checkbox":
                option = self.labels[column.field].get(column.code, column.code)
                headers.append(f"{fields[column.field]['field_label']} (choice={option})")
            else:
                headers.append(fields[name]["field_label"])
        return headers

    def records(self) -> list[str]:
        """The records to export, in REDCap's order: the user's DAG's, those asked for, those
        changed in the date range."""
        model, params = self.model, self.params
        names = model.record_ids(self.call.u.dag_id)
        wanted = set(params.array("records"))
        if wanted:
            names = [r for r in names if r in wanted]
        begin, end = _moment(params, "dateRangeBegin"), _moment(params, "dateRangeEnd")
        if begin or end:
            changed = model.records_modified(begin, end)
            names = [r for r in names if r in changed]
        return names

    def rows(self) -> list[DataRow]:
        """The stored rows that pass the event filter and filterLogic and hold exported data
        (every row does when the record id is exported: REDCap stores it in each)."""
        stored = list(self.model.data_rows(self.records()))
        logic = self.params.get("filterLogic")
        test = RowLogic(self, logic, stored) if logic else None
        return [
            row
            for row in stored
            if (self.events is None or row.event_id in self.events)
            and (self.with_id or any(row.values.get(c.name) for c in self.data))
            and (test is None or test(row))
        ]

    def reply(self) -> Reply:
        rows = self.rows()
        fmt, delimiter = self.call.fmt, self.params.delimiter
        names = self.flat_columns()
        self.docs = self._document_names(rows)
        self.identifiers = self._survey_identifiers() if SURVEY_ID in self.pseudo else {}
        self.call.p.log(self.call.u.username, "Data export (API)", ", ".join(names), kind="export")
        if self.eav:
            out = [item for row in rows for item in self.eav_rows(row)]
            columns = ["record", "field_name", "value", *self.eav_place]
            return render_rows(out, fmt, columns if out else [], delimiter=delimiter)
        out = [self.flat_row(row, names) for row in rows]
        header = self.headers(names) if self.label_headers and fmt == "csv" else None
        return render_rows(out, fmt, names if out else [], delimiter=delimiter, header=header)

    def _document_names(self, rows: list[DataRow]) -> dict[str, str]:
        files = [c.name for c in self.data if c.kind == "file"]
        wanted = {row.values[f] for row in rows for f in files if f in row.values}
        if not wanted or self.eav:
            return {}
        found = call_rows(self.call, "SELECT doc_id, name FROM document WHERE project_id = ?")
        return {str(r[0]): r[1] for r in found if str(r[0]) in wanted}

    def _survey_identifiers(self) -> dict[str, str]:
        found = call_rows(
            self.call,
            "SELECT record, identifier FROM participant WHERE project_id = ? AND "
            "record IS NOT NULL AND identifier != ''",
        )
        return {r[0]: r[1] for r in found}

    def place(self, row: DataRow) -> dict[str, str | int]:
        """The pseudo-column values of a row."""
        model = self.model
        values: dict[str, str | int] = {}
        if EVENT in self.pseudo:
            event = model.event_by_id(row.event_id)
            values[EVENT] = (
                ""
                if event is None
                else event_label(model, event, self.several_arms)
                if self.label
                else event.unique_event_name
            )
        if REPEAT_INSTRUMENT in self.pseudo:
            form = row.repeat_instrument
            values[REPEAT_INSTRUMENT] = model.form_labels.get(form, form) if self.label else form
            values[REPEAT_INSTANCE] = row.instance or ""
        if DAG in self.pseudo:
            dag = self.record_groups.get(row.record)
            values[DAG] = "" if dag is None else dag.name if self.label else dag.unique_name
        if SURVEY_ID in self.pseudo:
            values[SURVEY_ID] = self.identifiers.get(row.record, "")
        return values

    @cached_property
    def blank(self) -> dict[str, str]:
        """An empty row in column order, for `flat_row` to fill."""
        return dict.fromkeys(self.flat_columns(), "")

    @cached_property
    def special(self) -> list[Column]:
        """The columns whose stored value is not exported as is (see `value`)."""
        return [c for c in self.data if self._transforms(c)]

    def _transforms(self, column: Column) -> bool:
        return (
            column.kind in ("checkbox", "complete", "file")
            or (self.label and column.kind in LABELLED_KINDS)
            or (
                bool(self.decimal)
                and (column.kind == "calc" or column.validation.startswith("number"))
            )
        )

    def flat_row(self, row: DataRow, names: list[str]) -> dict[str, str | int]:
        """A row in `names` order: every cell as stored (one fast pass, which also keeps the
        order), then the pseudo-columns and the columns that need work filled in."""
        values = row.values
        if values.keys() <= self.blank.keys():  # every stored value is exported: merge in C
            cells: dict[str, str | int] = {**self.blank, **values}
        else:
            get = values.get
            cells = {name: get(name, "") for name in names}
        if self.with_id:
            cells[self.model.record_id_field] = row.record
            cells.update(self.place(row))
        if self.special:
            forms = row_forms(self.model, row.event_id, row.repeat_instrument, row.instance)
            for column in self.special:
                cells[column.name] = self.value(column, values, forms)
        return cells

    def value(self, column: Column, values: dict[str, str], forms: set[str]) -> str:
        """A cell as exported: checkbox options and grey status filled where the form applies,
        labels and decimal character as asked, a file field's document name."""
        stored = values.get(column.name, "")
        applies = column.form in forms
        if column.kind == "checkbox":
            if not applies and not stored:
                return ""
            checked = stored == "1"
            if not self.label:
                return "1" if checked else "0"
            if self.checkbox_labels:
                return self.labels[column.field].get(column.code, column.code) if checked else ""
            return "Checked" if checked else "Unchecked"
        if column.kind == "complete" and not stored:
            stored = "" if self.blank_gray or not applies else "0"
        if stored == "":
            return ""
        if column.kind == "file":
            return self.docs.get(stored, stored)
        if self.label and column.kind in LABELLED_KINDS:
            return self.labels[column.field].get(stored, stored)
        if self.decimal and (column.kind == "calc" or column.validation.startswith("number")):
            other = "." if self.decimal == "," else ","
            if re.fullmatch(rf"-?\d*{re.escape(other)}\d+", stored):
                return stored.replace(other, self.decimal)
        return stored

    def eav_rows(self, row: DataRow) -> list[dict[str, str | int]]:
        """One item per stored value: the record id, each other value (a checkbox's checked
        options under the base name, with the code as value; a file field's doc id)."""
        place = {k: v for k, v in self.place(row).items() if k in self.eav_place}
        items: list[tuple[str, str]] = []
        if self.with_id:
            items.append((self.model.record_id_field, row.record))
        for column in self.data:
            stored = row.values.get(column.name, "")
            if not stored:
                continue
            if column.kind == "checkbox":
                option = self.labels[column.field].get(column.code, column.code)
                items.append((column.field, option if self.label else column.code))
            elif column.kind == "file":
                items.append((column.name, stored))
            else:
                items.append((column.name, self.value(column, row.values, set())))
        return [{"record": row.record, "field_name": f, "value": v, **place} for f, v in items]


def call_rows(call: Call, sql: str) -> list[tuple]:
    """Rows of a per-project query on another area's table (documents, surveys)."""
    return [tuple(r) for r in call.conn.execute(sql, (call.p.project_id,))]


class RowLogic:
    """filterLogic, evaluated per exported row as REDCap evaluates it per record-event(-instance):
    `[field]` is this row's value (a non-repeating field seen from a repeat row: the event's
    base row), `[event][field]` that event's row of the record, `[field(code)]` a checkbox
    option, `[field][n]` an instance, and the smart variables about record, event and instance."""

    def __init__(self, export: RecordExport, text: str, rows: list[DataRow]) -> None:
        self.export, self.model = export, export.model
        try:
            self.tree = parse(text)
        except LogicError as exc:
            raise ApiError(f"{BAD_LOGIC}{exc}") from None
        for ref in references(self.tree):
            if ref.smart:
                continue
            if self.model.form_of(ref.field or "") is None:
                raise ApiError(f"{BAD_LOGIC}[{ref.field}] is not a field of this project")
            if ref.event and "-" not in ref.event and self.model.event(ref.event) is None:
                raise ApiError(f"{BAD_LOGIC}[{ref.event}] is not an event of this project")
        self.index = {row.key: row for row in rows}
        self.last: dict[tuple[str, int, str], int] = {}
        for row in rows:
            group = row.key[:3]
            self.last[group] = max(self.last.get(group, 0), row.instance)

    def __call__(self, row: DataRow) -> bool:
        return is_true(evaluate(self.tree, lambda ref: self.resolve(ref, row)))

    def resolve(self, ref: Ref, row: DataRow) -> str:
        if ref.smart:
            return self.smart(ref.smart, row)
        model, name = self.model, ref.field or ""
        event = self.event(ref.event, row) if ref.event else model.event_by_id(row.event_id)
        if ref.event and event is None:
            return ""
        event_id = event.event_id if event else 0
        form = model.form_of(name) or ""
        group = (row.record, event_id, form if model.repeats_form(event_id, form) else "")
        repeating = bool(group[2]) or model.repeats_event(event_id)
        key = (*group, self.instance(ref.instance, row, group) if repeating else 0)
        found = self.index.get(key)
        values = found.values if found else {}
        meta = model.fields.get(name)
        if meta is None or meta["field_type"] != "checkbox":
            value = values.get(name, "")
            labelled = ref.modifier == "label" and name in self.export.labels
            return self.export.labels[name].get(value, value) if labelled else value
        if ref.code is not None:
            return "1" if values.get(checkbox_column(name, ref.code)) == "1" else "0"
        checked = ref.modifier != "unchecked"
        picked = [
            (code, label)
            for code, label in model.choices(name)
            if (values.get(checkbox_column(name, code)) == "1") == checked
        ]
        labelled = ref.modifier in ("label", "checked", "unchecked")
        return ", ".join(label if labelled else code for code, label in picked)

    def instance(self, text: str | None, row: DataRow, group: tuple[str, int, str]) -> int:
        """An instance number: given, relative to the row's own instance, or the row's own
        (instance 1 when the row is not of that repeating group)."""
        current = row.instance if row.key[:3] == group else 0
        if text is None or text == "current-instance":
            return current or 1
        if text.isdigit():
            return int(text)
        return {
            "previous-instance": current - 1,
            "next-instance": current + 1,
            "first-instance": 1,
            "last-instance": self.last.get(group, 0),
        }[text]

    def event(self, name: str, row: DataRow) -> Event | None:
        """A unique event name, or an event smart variable relative to the row's event."""
        model = self.model
        if "-" not in name:
            return model.event(name)
        current = model.event_by_id(row.event_id)
        if current is None:
            return None
        arm = [e for e in model.events if e.arm_num == current.arm_num]
        at = arm.index(current)
        position = {
            "event-name": at,
            "previous-event-name": at - 1,
            "next-event-name": at + 1,
            "first-event-name": 0,
            "last-event-name": len(arm) - 1,
        }[name]
        return arm[position] if 0 <= position < len(arm) else None

    def smart(self, name: str, row: DataRow) -> str:
        """Smart variables about the row (`[current-instance]` is 1 on a non-repeating row)."""
        model = self.model
        if name.endswith("event-name"):
            event = self.event(name, row)
            return event.unique_event_name if event else ""
        if name.endswith("instance"):
            number = self.instance(name, row, row.key[:3])
            return str(number) if number >= 1 else ""
        event = model.event_by_id(row.event_id)
        dag = self.export.record_groups.get(row.record)
        return {
            "record-name": row.record,
            "event-label": event.event_name if event else "",
            "arm-number": str(event.arm_num) if event else "",
            "arm-label": dict(model.arms).get(event.arm_num, "") if event else "",
            "record-dag-name": dag.unique_name if dag else "",
            "record-dag-label": dag.name if dag else "",
            "user-name": self.export.call.u.username,
            "project-id": str(model.project_id),
        }.get(name, "")  # the others (user roles, surveys, aggregates) are not modelled


@endpoint("record", "export", privilege="api_export")
def export_records(call: Call) -> Reply:
    return RecordExport(call).reply()


# -- delete, rename, next name ------------------------------------------------------------------


@endpoint("record", "delete", privilege="api_import")
def delete_records(call: Call) -> Reply:
    """Whole records, or only their data in an arm, an event, an instrument or an instance.
    A record left without rows ceases to exist. The reply is the number of records, bare."""
    call.require("record_delete")
    model, params = call.p, call.params
    records = list(dict.fromkeys(params.require_array("records")))
    visible = set(model.record_ids(call.u.dag_id))
    missing = [r for r in records if r not in visible]
    if missing:
        raise ApiError(NO_SUCH_RECORDS + ", ".join(missing))
    events = _events_in_scope(call)
    instrument = params.get("instrument")
    if instrument is not None:
        _check_values("instrument", [instrument], model.forms)
        if model.longitudinal and params.get("event") is None:
            raise ApiError(  # [U]
                'The parameter "event" is required with "instrument" in a longitudinal project'
            )
    text = params.get("repeat_instance")
    if text is not None and (not text.isdigit() or int(text) < 1):
        raise invalid_parameter("repeat_instance")
    instance = int(text) if text else None
    partial = events is not None or instrument is not None or instance is not None
    when, rid = now(), model.record_id_field
    for record in records:
        if not partial:
            model.delete_record(record)
            model.log(
                call.u.username,
                f"Delete record (API) {record}",
                f"{rid} = '{record}'",
                kind="record_delete",
                record=record,
                when=when,
            )
            continue
        scope = []
        for row in model.data_rows([record]):
            if (events is None or row.event_id in events) and (
                instance is None or row.instance == instance
            ):
                _delete_from_row(call, row, instrument)
                scope.append(row)
        model.forget_empty_record(record)
        if model.record_exists(record):
            model.touch_record(record, when)
        details = [f"instrument = '{instrument}'"] if instrument else []
        details += [f"event = '{e}'" for e in _names(call, {r.event_id for r in scope})]
        details += [f"instance = {instance}"] if instance else []
        model.log(
            call.u.username,
            f"Delete record data (API) {record}",  # [U]
            ", ".join(details),
            kind="record_delete",
            record=record,
            when=when,
        )
    return render_count(len(records), call.return_format)


def _events_in_scope(call: Call) -> set[int] | None:
    """The event ids `arm` and `event` limit a delete to (None: every event)."""
    model, params = call.p, call.params
    arm, name = params.get("arm"), params.get("event")
    events = None
    if arm is not None:
        arms = {str(e.arm_num) for e in model.events}
        _check_values("arm", [arm], arms)
        events = {e.event_id for e in model.events if str(e.arm_num) == arm}
    if name is not None:
        _check_values("event", [name], [e.unique_event_name for e in model.events])
        named = {e.event_id for e in model.events if e.unique_event_name == name}
        events = named if events is None else events & named
    return events


def _names(call: Call, event_ids: set[int]) -> list[str]:
    return [e.unique_event_name for e in call.p.events if e.event_id in event_ids]


def _delete_from_row(call: Call, row: DataRow, instrument: str | None) -> None:
    """Remove a stored row, or only an instrument's values from it. An emptied repeat
    instance is removed; a base row stays (the record stays in that event)."""
    model = call.p
    if instrument is None or row.repeat_instrument == instrument:
        model.delete_row(row.key)
        return
    if row.repeat_instrument:
        return
    kept = {k: v for k, v in row.values.items() if model.form_of(k) != instrument}
    if kept == row.values:
        return
    model.release_documents({k: v for k, v in row.values.items() if k not in kept})
    if not kept and row.instance:
        model.delete_row(row.key)
    else:
        model.save_row(DataRow(*row.key, kept))


@endpoint("record", "rename", privilege="api_import")
def rename_record(call: Call) -> Reply:
    """`record` becomes `new_record_name` (only its rows in `arm` when given) → `1`."""
    call.require("record_rename")
    model, params = call.p, call.params
    old, new = params.require("record"), params.require("new_record_name")
    if old not in model.record_ids(call.u.dag_id):
        raise ApiError(f'The record "{old}" does not exist')  # [U]
    if model.record_exists(new):
        raise ApiError(f'The record "{new}" already exists')  # [U]
    events = _events_in_scope(call) if params.get("arm") is not None else None
    moved = [row for row in model.data_rows([old]) if events is None or row.event_id in events]
    if not moved:
        raise ApiError(f'The record "{old}" has no data in arm {params.get("arm")}')  # [U]
    when = now()
    model.rename_record(old, new, events)
    model.touch_record(new, when)
    rid = model.record_id_field
    model.log(
        call.u.username,
        f"Update record (API) {new}",
        f"{rid} = '{new}' (renamed from '{old}')",
        kind="record_edit",
        record=new,
        when=when,
    )
    return render_count(1, call.return_format)


@endpoint("generateNextRecordName", "export", privilege="api_export")
def generate_next_record_name(call: Call) -> Reply:
    """The name autonumbering would give next, as plain text (`<dag id>-<n>` in a DAG)."""
    return render_text(next(record_names(call.p, call.u.dag_id)))
