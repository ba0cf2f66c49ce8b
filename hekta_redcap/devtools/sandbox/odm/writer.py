"""Writing a project as REDCap's project XML (`content=project_xml`), laid out, ordered and
indented as REDCap's own exports are, so that an exported project loads again here or in REDCap.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

from hekta_redcap.devtools.sandbox.endpoints import REDCAP_VERSION
from hekta_redcap.devtools.sandbox.models import COMPLETE_CHOICES, DataRow, ProjectModel
from hekta_redcap.devtools.sandbox.odm.common import (
    CHOICES,
    DAG_ITEM,
    FIELD_TYPES,
    INFO_TAGS,
    ITEM_COLUMNS,
    ROLE_ATTRIBUTES,
    VALIDATION,
    VALIDATIONS,
    as_int,
)

SURVEY_ITEM = "redcap_survey_identifier"
# A classic project's one hidden event, as REDCap names it in repeating-instrument entries [I].
CLASSIC_EVENT = "event_1_arm_1"
# The old spellings, for writing.
ODM_FIELD_TYPES = {v: k for k, v in FIELD_TYPES.items()}
ODM_VALIDATIONS = {v: k for k, v in VALIDATIONS.items()}

PSEUDO_LABELS = {DAG_ITEM: "Data Access Group", SURVEY_ITEM: "Survey Identifier"}
CHOICE_TYPES = ("radio", "dropdown", "checkbox", "yesno", "truefalse")
BOOLEAN_TYPES = ("checkbox", "yesno", "truefalse")
RANGE_MESSAGE = (
    "The value you provided is outside the suggested range ({} - {}). This value is admissible, "
    "but you may wish to double check it."
)
NAMESPACES = {
    "xmlns": "http://www.cdisc.org/ns/odm/v1.3",
    "xmlns:ds": "http://www.w3.org/2000/09/xmldsig#",
    "xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance",
    "xmlns:redcap": "https://projectredcap.org",
    "xsi:schemaLocation": "http://www.cdisc.org/ns/odm/v1.3 schema/odm/ODM1-3-1.xsd",
}
Attrs = dict[str, Any]


@dataclass
class Item:
    """One ItemRef: the ItemOID (an export column or pseudo-field) and the field it is part of.
    `row` is the dictionary row of a real field, None for pseudo-fields and `_complete`."""

    oid: str
    variable: str
    row: dict[str, str] | None = None

    @property
    def pseudo(self) -> bool:
        return self.row is None and not self.oid.endswith("_complete")

    @property
    def field_type(self) -> str:
        return self.row["field_type"] if self.row else ""


@dataclass
class Group:
    oid: str
    name: str
    items: list[Item]


class Writer:
    """An XML document written line by line, indented with tabs as REDCap writes it."""

    def __init__(self) -> None:
        self.lines = ['<?xml version="1.0" encoding="UTF-8" ?>']
        self.depth = 0

    def empty(self, name: str, attrs: Attrs) -> None:
        self.lines.append("\t" * self.depth + _tag(name, attrs, "/>"))

    def text(self, name: str, text: str, attrs: Attrs | None = None) -> None:
        """An element holding text; TranslatedText-style wrappers go in `name` as `A/B`."""
        names = name.split("/")
        opening = "".join(_tag(n, (attrs or {}) if i == 0 else {}) for i, n in enumerate(names))
        closing = "".join(f"</{n}>" for n in reversed(names))
        self.lines.append("\t" * self.depth + opening + escape(text) + closing)

    @contextmanager
    def element(self, name: str, attrs: Attrs | None = None, indent: bool = True) -> Iterator[None]:
        """An element around what the block writes (not indented inside, as REDCap writes ODM,
        Study and ClinicalData, with `indent=False`)."""
        self.lines.append("\t" * self.depth + _tag(name, attrs or {}))
        self.depth += indent
        yield
        self.depth -= indent
        self.lines.append("\t" * self.depth + f"</{name}>")

    def document(self) -> str:
        return "\n".join(self.lines) + "\n"


def _tag(name: str, attrs: Attrs, end: str = ">") -> str:
    """An opening tag. Newlines in values become character references, so they survive."""
    entities = {'"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}
    text = "".join(
        f' {k}="{escape("" if v is None else str(v), entities)}"' for k, v in attrs.items()
    )
    return f"<{name}{text}{end}"


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclass
class Export:
    """What one `content=project_xml` call asks for. `records` None means metadata only;
    `columns` and `event_ids` (None: all) limit the data; `dags` adds
    `redcap_data_access_group`, `survey_fields` the survey pseudo-fields and `files` the
    uploaded files (base64) of file fields."""

    records: Collection[str] | None
    columns: Collection[str] | None = None
    event_ids: Collection[int] | None = None
    survey_fields: bool = False
    dags: bool = False
    files: bool = False


def export(model: ProjectModel, request: Export) -> str:
    """The project as REDCap's project XML (ODM 1.3.1)."""
    title = str(model.info.get("project_title", ""))
    study = "Project." + (
        "".join(w[:1].upper() + w[1:] for w in re.findall(r"[A-Za-z0-9]+", title)) or "Project"
    )
    stamp = dt.datetime.now()
    version = f"Metadata.{study.removeprefix('Project.')}_{stamp:%Y-%m-%d_%H%M}"
    surveys = _surveys(model)
    has_dags = model.conn.execute(
        "SELECT 1 FROM dag WHERE project_id = ? LIMIT 1", (model.project_id,)
    ).fetchone()
    pseudo = [DAG_ITEM] if request.dags and has_dags else []
    pseudo += [SURVEY_ITEM] if request.survey_fields and surveys else []
    groups = {
        form: _groups(model, form, pseudo, request.survey_fields and form in surveys)
        for form in model.forms
    }
    moment = stamp.isoformat(timespec="seconds")
    xml = Writer()
    root = {
        **NAMESPACES,
        "ODMVersion": "1.3.1",
        "FileOID": "000-00-0000",
        "FileType": "Snapshot",
        "Description": title,
        "AsOfDateTime": moment,
        "CreationDateTime": moment,
        "SourceSystem": "REDCap",
        "SourceSystemVersion": REDCAP_VERSION,
    }
    with xml.element("ODM", root, indent=False):
        with xml.element("Study", {"OID": study}, indent=False):
            _write_globals(xml, model, title, surveys)
            mdv = {"OID": version, "Name": title, "redcap:RecordIdField": model.record_id_field}
            with xml.element("MetaDataVersion", mdv):
                _write_metadata(xml, model, groups)
        if request.records is not None:
            clinical = {"StudyOID": study, "MetaDataVersionOID": version}
            with xml.element("ClinicalData", clinical, indent=False):
                _write_records(xml, model, groups, request)
    return xml.document()


def _surveys(model: ProjectModel) -> dict[str, dict[str, Any]]:
    """Survey settings by form, in form order."""
    rows = dict(
        model.conn.execute(
            "SELECT form_name, settings FROM survey WHERE project_id = ?", (model.project_id,)
        ).fetchall()
    )
    return {form: json.loads(rows[form]) for form in model.forms if form in rows}


def _unique_event(model: ProjectModel, event_id: int) -> str:
    event = model.event_by_id(event_id)
    return event.unique_event_name if event else CLASSIC_EVENT


def _write_globals(
    xml: Writer, model: ProjectModel, title: str, surveys: dict[str, dict[str, Any]]
) -> None:
    conn, pid = model.conn, model.project_id
    with xml.element("GlobalVariables"):
        xml.text("StudyName", title)
        xml.text(
            "StudyDescription",
            f'This file contains the metadata, events, and data for REDCap project "{title}".',
        )
        xml.text("ProtocolName", title)
        for tag, key in INFO_TAGS:
            xml.text(f"redcap:{tag}", str(model.info.get(key, "")))
        _write_repeating(xml, model)
        dags = conn.execute("SELECT name FROM dag WHERE project_id = ? ORDER BY dag_id", (pid,))
        _write_list(xml, "DataAccessGroups", [{"group_name": name} for (name,) in dags])
        surveys_rows = [{"form_name": form, **settings} for form, settings in surveys.items()]
        _write_list(xml, "Surveys", surveys_rows)
        roles = conn.execute(
            "SELECT unique_role_name, role_label, rights FROM role WHERE project_id = ? "
            "ORDER BY role_id",
            (pid,),
        )
        _write_list(xml, "UserRoles", [_role_attributes(*role) for role in roles])
        reports = conn.execute(
            "SELECT report_id, definition FROM report WHERE project_id = ? ORDER BY report_id",
            (pid,),
        )
        _write_list(
            xml,
            "Reports",
            [_report_attributes(model, i, *report) for i, report in enumerate(reports, 1)],
        )


def _write_list(xml: Writer, name: str, rows: list[Attrs]) -> None:
    """`<redcap:NameGroup>` with one `<redcap:Name …/>` per row, or nothing without rows."""
    if rows:
        with xml.element(f"redcap:{name}Group"):
            for row in rows:
                xml.empty(f"redcap:{name}", row)


def _write_repeating(xml: Writer, model: ProjectModel) -> None:
    """Repeating events directly in the group, instruments in their own list (as REDCap 15)."""
    if not model.repeating:
        return
    order = {e.event_id: i for i, e in enumerate(model.events)}
    forms = {f: i for i, f in enumerate(model.forms)}
    setup = sorted(
        model.repeating.items(), key=lambda r: (order.get(r[0][0], 0), forms.get(r[0][1], -1))
    )
    with xml.element("redcap:RepeatingInstrumentsAndEvents"):
        for (event_id, form), _ in setup:
            if not form:
                unique = _unique_event(model, event_id)
                xml.empty("redcap:RepeatingEvent", {"redcap:UniqueEventName": unique})
        instruments = [(event_id, form, label) for (event_id, form), label in setup if form]
        if instruments:
            with xml.element("redcap:RepeatingInstruments"):
                for event_id, form, label in instruments:
                    attrs = {
                        "redcap:UniqueEventName": _unique_event(model, event_id),
                        "redcap:RepeatInstrument": form,
                        "redcap:CustomLabel": label,
                    }
                    xml.empty("redcap:RepeatingInstrument", attrs)


def _role_attributes(unique: str, label: str, rights_json: str) -> Attrs:
    rights = json.loads(rights_json)
    attrs: Attrs = {"role_name": label, "unique_role_name": unique}
    for attr, flag in ROLE_ATTRIBUTES:
        if flag in ("forms", "forms_export"):
            levels = rights.get(flag) or {}
            attrs[attr] = "".join(f"[{form},{level}]" for form, level in levels.items())
        else:
            attrs[attr] = str(int(rights.get(flag, 0) or 0)) if flag else ""
    return attrs


def _report_attributes(model: ProjectModel, order: int, report_id: int, stored: str) -> Attrs:
    """A report as REDCap lists it; what the store does not keep gets REDCap's defaults. The
    unique name is derived from the report id, so it is stable across exports [I]."""
    definition = json.loads(stored)
    digest = hashlib.sha1(f"{model.project_id}:{report_id}".encode()).hexdigest()
    return {
        "title": definition.get("title", ""),
        "unique_report_name": f"R-{digest[:10].upper()}",
        "report_order": order,
        "user_access": "ALL",
        "user_edit_access": "ALL",
        "description": "",
        "combine_checkbox_values": "0",
        "output_dags": "0",
        "output_survey_fields": "0",
        "orderby_field1": model.record_id_field,
        "orderby_sort1": "ASC",
        "advanced_logic": definition.get("filter_logic", ""),
        "filter_type": "RECORD",
        "redcap_reports_fields": ",".join(definition.get("fields", [])),
        "redcap_reports_filter_dags": "",
        "redcap_reports_filter_events": ",".join(definition.get("events", [])),
    }


def _groups(model: ProjectModel, form: str, pseudo: list[str], timestamp: bool) -> list[Group]:
    """A form's ItemGroupDefs as REDCap cuts them [I, from its exports]: a field with a section
    header gets a group of its own (named by the header), the next field starts a new one (named
    by the form, or unnamed when it is a checkbox); pseudo-fields follow the record id; a
    survey's timestamp opens the form's fields (in the record id's form REDCap lists it with the
    pseudo-fields too); `_complete` closes the form in "Form Status"."""
    label = model.form_labels[form]
    lead = [f"{form}_timestamp"] if timestamp else []
    groups: list[Group] = []
    new_group, after_header = True, False
    for row in model.fields_of(form):
        name = row["field_name"]
        items = [Item(c, name, row) for c in (model.export_columns(row) or [name])]
        restart = False
        if name == model.record_id_field:
            items += [Item(p, p) for p in (*pseudo, *lead)]
            restart = bool(lead)  # the timestamp opens the next group again
        else:
            items = [Item(p, p) for p in lead] + items
            lead = []
        header = row["section_header"]
        if header or new_group:
            unnamed = after_header and row["field_type"] == "checkbox"
            groups.append(Group(f"{form}.{items[0].oid}", header or ("" if unnamed else label), []))
        groups[-1].items += items
        new_group, after_header = bool(header) or restart, bool(header)
    complete = f"{form}_complete"
    groups.append(Group(f"{form}.{complete}", "Form Status", [Item(complete, complete)]))
    return groups


def _write_metadata(xml: Writer, model: ProjectModel, groups: dict[str, list[Group]]) -> None:
    if model.longitudinal:
        _write_events(xml, model)
    for form in model.forms:
        attrs = {
            "OID": f"Form.{form}",
            "Name": model.form_labels[form],
            "Repeating": "No",
            "redcap:FormName": form,
        }
        with xml.element("FormDef", attrs):
            for group in groups[form]:
                xml.empty("ItemGroupRef", {"ItemGroupOID": group.oid, "Mandatory": "No"})
    refs: list[Item] = []  # one ItemDef per ItemRef, repeats included, as REDCap writes them
    for form in model.forms:
        for group in groups[form]:
            with xml.element(
                "ItemGroupDef", {"OID": group.oid, "Name": group.name, "Repeating": "No"}
            ):
                for item in group.items:
                    required = item.row is not None and item.row["required_field"] == "y"
                    attrs = {
                        "ItemOID": item.oid,
                        "Mandatory": "Yes" if required else "No",
                        "redcap:Variable": item.variable,
                    }
                    xml.empty("ItemRef", attrs)
                    refs.append(item)
    for item in refs:
        _write_item_def(xml, item)
    for item in {item.oid: item for item in refs}.values():
        _write_code_list(xml, model, item)


def _write_events(xml: Writer, model: ProjectModel) -> None:
    """Protocol and StudyEventDefs; an event's FormRefs are the instrument-event mapping."""
    arms = dict(model.arms)
    with xml.element("Protocol"):
        for i, event in enumerate(model.events, 1):
            ref = {"StudyEventOID": f"Event.{event.unique_event_name}", "OrderNumber": i}
            xml.empty("StudyEventRef", {**ref, "Mandatory": "No"})
    for event in model.events:
        name = event.event_name
        if len(arms) > 1:
            name += f" (Arm {event.arm_num}: {arms.get(event.arm_num, '')})"
        attrs = {
            "OID": f"Event.{event.unique_event_name}",
            "Name": name,
            "Type": "Common",
            "Repeating": "Yes" if model.repeats_event(event.event_id) else "No",
            "redcap:EventName": event.event_name,
            "redcap:CustomEventLabel": event.custom_event_label,
            "redcap:UniqueEventName": event.unique_event_name,
            "redcap:ArmNum": event.arm_num,
            "redcap:ArmName": arms.get(event.arm_num, ""),
            "redcap:DayOffset": _number(event.day_offset),
            "redcap:OffsetMin": _number(event.offset_min),
            "redcap:OffsetMax": _number(event.offset_max),
        }
        with xml.element("StudyEventDef", attrs):
            for i, form in enumerate(model.mapping.get(event.event_id, []), 1):
                ref = {"FormOID": f"Form.{form}", "OrderNumber": i, "Mandatory": "No"}
                xml.empty("FormRef", {**ref, "redcap:FormName": form})


def _data_type(row: dict[str, str]) -> str:
    field_type, validation = row["field_type"], row[VALIDATION]
    if field_type in BOOLEAN_TYPES:
        return "boolean"
    if field_type == "calc" or validation.startswith("number"):
        return "float"
    if field_type == "slider" or validation == "integer":
        return "integer"
    return next((p for p in ("datetime", "date", "time") if validation.startswith(p)), "text")


def _write_item_def(xml: Writer, item: Item) -> None:
    attrs: Attrs = {"OID": item.oid, "Name": item.oid}
    row = item.row
    if item.pseudo:
        timestamp = item.oid not in PSEUDO_LABELS
        attrs |= {"DataType": "datetime" if timestamp else "text", "Length": "999"}
        attrs["redcap:Variable"] = item.oid
        with xml.element("ItemDef", attrs):
            label = "Survey Timestamp" if timestamp else PSEUDO_LABELS[item.oid]
            xml.text("Question/TranslatedText", label)
        return
    if row is None:  # <form>_complete
        attrs |= {"DataType": "text", "Length": "1", "redcap:Variable": item.oid}
        attrs |= {"redcap:FieldType": "select", "redcap:SectionHeader": "Form Status"}
        with xml.element("ItemDef", attrs):
            xml.text("Question/TranslatedText", "Complete?")
            xml.empty("CodeListRef", {"CodeListOID": f"{item.oid}.choices"})
        return
    field_type, validation = row["field_type"], row[VALIDATION]
    attrs |= {
        "DataType": _data_type(row),
        "Length": "1" if field_type in CHOICE_TYPES else "999",
        "redcap:Variable": item.variable,
        "redcap:FieldType": ODM_FIELD_TYPES.get(field_type, field_type),
    }
    if validation:
        attrs["redcap:TextValidationType"] = ODM_VALIDATIONS.get(validation, validation)
    if field_type == "calc":
        attrs["redcap:Calculation"] = row[CHOICES]
    if field_type == "slider" and row[CHOICES]:
        attrs["redcap:SliderLabels"] = row[CHOICES]
    attrs |= {f"redcap:{attr}": row[column] for attr, column in ITEM_COLUMNS if row[column]}
    with xml.element("ItemDef", attrs):
        xml.text("Question/TranslatedText", row["field_label"])
        if field_type in CHOICE_TYPES:
            xml.empty("CodeListRef", {"CodeListOID": f"{_code_list_name(item)}.choices"})
        low, high = row["text_validation_min"], row["text_validation_max"]
        message = RANGE_MESSAGE.format(low or "no limit", high or "no limit")
        for comparator, value in (("GE", low), ("LE", high)):
            if value:
                with xml.element("RangeCheck", {"Comparator": comparator, "SoftHard": "Soft"}):
                    xml.text("CheckValue", value)
                    xml.text("ErrorMessage/TranslatedText", message)


def _code_list_name(item: Item) -> str:
    """A checkbox has one code list per option (named by the option's column), others one."""
    return item.oid if item.field_type == "checkbox" else item.variable


def _write_code_list(xml: Writer, model: ProjectModel, item: Item) -> None:
    if item.pseudo or (item.row is not None and item.field_type not in CHOICE_TYPES):
        return
    name = _code_list_name(item)
    attrs: Attrs = {
        "OID": f"{name}.choices",
        "Name": name,
        "DataType": "boolean" if item.field_type in BOOLEAN_TYPES else "text",
        "redcap:Variable": item.variable,
    }
    if item.row is None:
        choices = list(COMPLETE_CHOICES)
    elif item.field_type == "checkbox":
        options = model.choices(item.variable)
        attrs["redcap:CheckboxChoices"] = "|".join(f"{code}, {label}" for code, label in options)
        choices = [("1", "Checked"), ("0", "Unchecked")]
    else:
        choices = model.choices(item.variable)
    with xml.element("CodeList", attrs):
        for code, label in choices:
            xml.text("CodeListItem/Decode/TranslatedText", label, {"CodedValue": code})


def _row_forms(model: ProjectModel, row: DataRow) -> list[str]:
    """The forms whose data a stored row holds."""
    if row.repeat_instrument:
        return [row.repeat_instrument]
    forms = model.forms_at(row.event_id)
    if model.repeats_event(row.event_id):
        return forms
    return [form for form in forms if not model.repeats_form(row.event_id, form)]


# One form's data in one row: (ItemGroupOID, [(ItemOID, ItemData attributes or file)]).
FormItems = list[tuple[str, list[tuple[str, Attrs | tuple[str, str, bytes]]]]]


def _write_records(
    xml: Writer, model: ProjectModel, groups: dict[str, list[Group]], request: Export
) -> None:
    """SubjectData per record, one StudyEventData per stored row (longitudinal), FormData per
    form with data there. The record's DAG goes next to the record id in its first form."""
    assert request.records is not None
    record_id = model.record_id_field
    dag_names = dict(
        model.conn.execute(
            "SELECT dag_id, unique_name FROM dag WHERE project_id = ?", (model.project_id,)
        ).fetchall()
    )
    by_record: dict[str, list[tuple[DataRow, list[tuple[str, FormItems]]]]] = {}
    for row in model.data_rows(request.records):
        if request.event_ids is not None and row.event_id not in request.event_ids:
            continue
        forms = [
            (form, _form_items(model, groups[form], row, request))
            for form in _row_forms(model, row)
        ]
        forms = [(form, items) for form, items in forms if items]
        if forms:
            by_record.setdefault(row.record, []).append((row, forms))
    for record, rows in by_record.items():
        info = model.record_info(record)
        dag = dag_names.get(info["dag_id"]) if request.dags and info is not None else None
        if dag:
            _, forms = rows[0]
            _, form_items = forms[0]
            _, first = form_items[0]
            first.insert(1 if first[0][0] == record_id else 0, (DAG_ITEM, {"Value": dag}))
        with xml.element("SubjectData", {"SubjectKey": record, "redcap:RecordIdField": record_id}):
            for row, forms in rows:
                if model.longitudinal:
                    unique = _unique_event(model, row.event_id)
                    repeat = row.instance if model.repeats_event(row.event_id) else 1
                    attrs = {
                        "StudyEventOID": f"Event.{unique}",
                        "StudyEventRepeatKey": repeat,
                        "redcap:UniqueEventName": unique,
                    }
                    with xml.element("StudyEventData", attrs):
                        _write_forms(xml, row, forms)
                else:
                    _write_forms(xml, row, forms)


def _write_forms(xml: Writer, row: DataRow, forms: list[tuple[str, FormItems]]) -> None:
    repeat = row.instance if row.repeat_instrument else 1
    for form, form_items in forms:
        with xml.element("FormData", {"FormOID": f"Form.{form}", "FormRepeatKey": repeat}):
            for group_oid, items in form_items:
                attrs = {"ItemGroupOID": group_oid, "ItemGroupRepeatKey": 1}
                with xml.element("ItemGroupData", attrs):
                    for oid, data in items:
                        if isinstance(data, tuple):
                            name, mime, content = data
                            file = {"ItemOID": oid, "redcap:DocName": name, "redcap:MimeType": mime}
                            xml.text(
                                "ItemDataBase64Binary", base64.b64encode(content).decode(), file
                            )
                        else:
                            xml.empty("ItemData", {"ItemOID": oid, **data})


def _form_items(
    model: ProjectModel, form_groups: list[Group], row: DataRow, request: Export
) -> FormItems:
    """One form's data in one row; empty when the form holds no data there (the record id's
    form is kept for a row without values: the record exists in that event). Unchecked options
    are written as 0, as REDCap does; files only with `files`."""
    record_id = model.record_id_field
    values = {**row.values, record_id: row.record}
    items = [
        item
        for group in form_groups
        for item in group.items
        if not item.pseudo and (request.columns is None or item.oid in request.columns)
    ]
    wanted = {item.oid for item in items}
    if not any(row.values.get(oid) for oid in wanted) and (row.values or record_id not in wanted):
        return []
    result: FormItems = []
    for group in form_groups:
        data: list[tuple[str, Attrs | tuple[str, str, bytes]]] = []
        for item in group.items:
            value = values.get(item.oid, "") or ("0" if item.field_type == "checkbox" else "")
            if item.oid not in wanted or not value:
                continue
            if item.field_type != "file":
                data.append((item.oid, {"Value": value}))
            elif request.files and (document := _document(model, value)):
                data.append((item.oid, document))
        if data:
            result.append((group.oid, data))
    return result


def _document(model: ProjectModel, doc_id: str) -> tuple[str, str, bytes] | None:
    found = model.conn.execute(
        "SELECT name, mime, content FROM document WHERE project_id = ? AND doc_id = ?",
        (model.project_id, as_int(doc_id)),
    ).fetchone()
    return (found[0], found[1], bytes(found[2])) if found else None
