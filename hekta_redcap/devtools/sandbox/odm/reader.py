"""Reading a REDCap project XML into a freshly created project (`content=project` with `odm`).

Every namespace is dropped on the way in (`redcap:FieldType` is read as `FieldType`): ODM and
REDCap never use the same local name for different things, and hand-written files without
namespaces then load as well.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from hekta_redcap.devtools.sandbox.models import (
    CREATOR_RIGHTS,
    DataRow,
    ProjectModel,
    now,
    unique_group_name,
)
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
from hekta_redcap.devtools.sandbox.wire import ApiError
from hekta_redcap.redcap.fieldtypes import parse_choices

ROLE_ATTRIBUTE_OF = {flag: attr for attr, flag in ROLE_ATTRIBUTES if flag}
FORM_LEVEL = re.compile(r"\[([^,\]]+),(\d+)\]")


def _local(name: str) -> str:
    return name.rpartition("}")[2]


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _choice_text(choices: Iterable[tuple[str, str]]) -> str:
    """Choices as REDCap's dictionary writes them: `1, Yes | 0, No`."""
    return " | ".join(f"{code}, {label}" for code, label in choices)


def parse(xml: str) -> Element:
    """The document with namespaces dropped from tags and attribute names; 400 if it is not
    XML (or tries entity tricks, which defusedxml refuses)."""
    try:
        root = fromstring(xml.lstrip("\ufeff").strip())
    except (ParseError, DefusedXmlException) as exc:
        raise ApiError(f"The ODM project XML could not be parsed ({exc})") from None  # [U]
    for element in root.iter():
        element.tag = _local(element.tag)
        element.attrib = {_local(k): v for k, v in element.attrib.items()}
    if root.tag != "ODM" or root.find("Study/MetaDataVersion") is None:
        raise ApiError("The ODM project XML has no Study/MetaDataVersion")  # [U]
    return root


def ingest(model: ProjectModel, xml: str, username: str) -> None:
    """Fill an empty, just-created project with everything in a REDCap project XML: settings,
    metadata, arms and events, mapping, repeating setup, surveys, DAGs, roles, reports and
    records (with files). The caller's transaction makes it all-or-nothing."""
    root = parse(xml)
    study = root.find("Study")
    assert study is not None  # parse() checked
    globals_ = study.find("GlobalVariables")
    if globals_ is None:
        globals_ = Element("GlobalVariables")
    mdv = study.find("MetaDataVersion")
    assert mdv is not None
    event_defs = mdv.findall("StudyEventDef")
    _ingest_info(model, globals_, longitudinal=bool(event_defs))
    _ingest_metadata(model, mdv)
    event_ids = _ingest_events(model, event_defs)
    _ingest_repeating(model, globals_, event_ids)
    _ingest_design_extras(model, globals_)
    when = now()
    for clinical in root.findall("ClinicalData"):
        _ingest_records(model, clinical, event_ids, username, when)


def _ingest_info(model: ProjectModel, globals_: Element, longitudinal: bool) -> None:
    """Project settings. The title given when the project was created wins over the file's
    StudyName, as REDCap's create-project call names the new project [I]."""
    info = model.info
    for tag, key in INFO_TAGS:
        node = globals_.find(tag)
        if node is not None:
            text = (node.text or "").strip()
            info[key] = as_int(text) if isinstance(info.get(key), int) else text
    if not info.get("project_title"):
        info["project_title"] = (globals_.findtext("StudyName") or "").strip()
    info["is_longitudinal"] = int(longitudinal)
    model.save_info()


def _ingest_metadata(model: ProjectModel, mdv: Element) -> None:
    """Dictionary rows in FormDef → ItemGroupRef → ItemRef order. Checkbox options (one ItemDef
    each) collapse into their field; pseudo-fields (no FieldType) and `_complete` are skipped."""
    items = {item.get("OID"): item for item in mdv.findall("ItemDef")}
    groups = {group.get("OID"): group for group in mdv.findall("ItemGroupDef")}
    code_lists = {cl.get("OID"): cl for cl in mdv.findall("CodeList")}
    rows: list[dict[str, str]] = []
    labels: dict[str, str] = {}
    seen: set[str] = set()
    for form_def in mdv.findall("FormDef"):
        form = form_def.get("FormName") or (form_def.get("OID") or "").removeprefix("Form.")
        labels[form] = form_def.get("Name") or form
        for group_ref in form_def.findall("ItemGroupRef"):
            group = groups.get(group_ref.get("ItemGroupOID"))
            for ref in group.findall("ItemRef") if group is not None else []:
                item = items.get(ref.get("ItemOID"))
                if item is None or not item.get("FieldType"):
                    continue
                name = item.get("Variable") or item.get("Name") or ""
                if name in seen or name == f"{form}_complete":
                    continue
                seen.add(name)
                rows.append(_metadata_row(item, name, form, ref, code_lists))
    record_id = mdv.get("RecordIdField")
    rows.sort(key=lambda row: row["field_name"] != record_id)  # stable: only moves it first
    if not rows:
        raise ApiError("The ODM project XML defines no fields")  # [U]
    model.replace_metadata(rows)
    for form, label in labels.items():
        if form in model.forms:
            model.set_form_label(form, label)


def _metadata_row(
    item: Element, name: str, form: str, ref: Element, code_lists: dict[str | None, Element]
) -> dict[str, str]:
    field_type = item.get("FieldType", "")
    field_type = FIELD_TYPES.get(field_type, field_type)
    validation = item.get("TextValidationType", "")
    code_list_ref = item.find("CodeListRef")
    code_list = (
        code_lists.get(code_list_ref.get("CodeListOID")) if code_list_ref is not None else None
    )
    if field_type == "checkbox" and code_list is not None:
        choices = _choice_text(parse_choices(code_list.get("CheckboxChoices", "")))
    elif item.get("Calculation") is not None:
        choices = item.get("Calculation", "")
    elif item.get("SliderLabels") is not None:
        choices = item.get("SliderLabels", "")
    elif code_list is not None and field_type not in ("yesno", "truefalse"):
        choices = _choice_text(
            (option.get("CodedValue", ""), (option.findtext("Decode/TranslatedText") or ""))
            for option in code_list.findall("CodeListItem")
        )
    else:
        choices = ""
    ranges = {
        check.get("Comparator"): check.findtext("CheckValue") or ""
        for check in item.findall("RangeCheck")
    }
    row = {
        "field_name": name,
        "form_name": form,
        "field_type": field_type,
        "field_label": item.findtext("Question/TranslatedText") or "",
        CHOICES: choices,
        VALIDATION: VALIDATIONS.get(validation, validation),
        "text_validation_min": ranges.get("GE", ""),
        "text_validation_max": ranges.get("LE", ""),
    }
    row.update({column: item.get(attr, "") for attr, column in ITEM_COLUMNS})
    if ref.get("Mandatory") == "Yes":
        row["required_field"] = "y"
    return row


def _ingest_events(model: ProjectModel, event_defs: list[Element]) -> dict[str, int]:
    """Arms, events and the mapping; returns the file's unique event names -> event ids (the
    file's names are kept as keys even if REDCap computed them differently)."""
    event_ids: dict[str, int] = {}
    pairs: list[tuple[int, str]] = []
    arms: dict[int, str] = {}
    for event_def in event_defs:
        arm = as_int(event_def.get("ArmNum")) or 1
        if arm not in arms:
            arms[arm] = event_def.get("ArmName") or f"Arm {arm}"
            model.save_arm(arm, arms[arm])
        event_id = model.save_event(
            None,
            arm,
            event_def.get("EventName") or event_def.get("Name") or "",
            event_def.get("CustomEventLabel") or "",
            _float(event_def.get("DayOffset")),
            _float(event_def.get("OffsetMin")),
            _float(event_def.get("OffsetMax")),
        )
        unique = event_def.get("UniqueEventName") or (event_def.get("OID") or "")
        event_ids[unique.removeprefix("Event.")] = event_id
        pairs += [
            (event_id, ref.get("FormName") or (ref.get("FormOID") or "").removeprefix("Form."))
            for ref in event_def.findall("FormRef")
        ]
    unknown = sorted({form for _, form in pairs if form not in model.forms})
    if unknown:
        raise ApiError(f"The ODM project XML maps unknown forms to events: {', '.join(unknown)}")
    if pairs:
        model.replace_mapping(pairs)
    return event_ids


def _event_id(model: ProjectModel, event_ids: dict[str, int], unique: str | None) -> int:
    """The event a unique name in the file means (0 in a classic project, whatever it says)."""
    if not model.longitudinal:
        return 0
    name = (unique or "").removeprefix("Event.")
    if name not in event_ids:
        raise ApiError(f"The ODM project XML refers to an unknown event '{name}'")  # [U]
    return event_ids[name]


def _ingest_repeating(model: ProjectModel, globals_: Element, event_ids: dict[str, int]) -> None:
    rows = [
        (_event_id(model, event_ids, node.get("UniqueEventName")), "", "")
        for node in globals_.iter("RepeatingEvent")
    ] + [
        (
            _event_id(model, event_ids, node.get("UniqueEventName")),
            node.get("RepeatInstrument", ""),
            node.get("CustomLabel", ""),
        )
        for node in globals_.iter("RepeatingInstrument")
    ]
    if rows:
        model.replace_repeating(rows)


def _ingest_design_extras(model: ProjectModel, globals_: Element) -> None:
    """Surveys, DAGs, user roles and reports, kept in their own tables."""
    conn, pid = model.conn, model.project_id
    for survey in globals_.iter("Surveys"):
        form = survey.get("form_name", "")
        if form in model.forms:
            settings = {k: v for k, v in survey.attrib.items() if k != "form_name"}
            conn.execute(
                "INSERT OR REPLACE INTO survey VALUES (?, ?, ?)", (pid, form, json.dumps(settings))
            )
    taken: list[str] = []
    for group in globals_.iter("DataAccessGroups"):
        name = group.get("group_name", "").strip()
        if name:
            taken.append(unique_group_name(name, taken))
            conn.execute(
                "INSERT INTO dag (project_id, name, unique_name) VALUES (?, ?, ?)",
                (pid, name, taken[-1]),
            )
    for role in globals_.iter("UserRoles"):
        conn.execute(
            "INSERT INTO role (project_id, unique_role_name, role_label, rights) "
            "VALUES (?, ?, ?, ?)",
            (
                pid,
                role.get("unique_role_name", ""),
                role.get("role_name", ""),
                json.dumps(_role_rights(model, role)),
            ),
        )
    for report in globals_.iter("Reports"):
        definition = {
            "title": report.get("title", ""),
            "fields": _split(report.get("redcap_reports_fields")),
            "filter_logic": (report.get("advanced_logic") or "").strip(),
            "events": _split(report.get("redcap_reports_filter_events")),
        }
        conn.execute(
            "INSERT INTO report (project_id, definition) VALUES (?, ?)",
            (pid, json.dumps(definition)),
        )


def _role_rights(model: ProjectModel, role: Element) -> dict[str, Any]:
    """A role's rights in the user-export flag names. Forms a role does not list get no access;
    REDCap 11's single `data_export_tool` level applies to every form when the per-form
    `data_export_instruments` is absent."""
    rights: dict[str, Any] = {
        flag: as_int(role.get(ROLE_ATTRIBUTE_OF[flag])) for flag in CREATOR_RIGHTS
    }
    for flag in ("forms", "forms_export"):
        levels = dict(FORM_LEVEL.findall(role.get(ROLE_ATTRIBUTE_OF[flag]) or ""))
        default = as_int(role.get("data_export_tool")) if flag == "forms_export" else 0
        rights[flag] = {form: as_int(levels.get(form, str(default))) for form in model.forms}
    return rights


def _ingest_records(
    model: ProjectModel,
    clinical: Element,
    event_ids: dict[str, int],
    username: str,
    when: str,
) -> None:
    """SubjectData → (StudyEventData →) FormData → ItemData into `data` rows. Checkbox options
    are kept only when checked, calc values are dropped (REDCap computes them), files become
    documents. A FormData holding only the record id still makes the record exist there."""
    columns = {column: row for row in model.metadata for column in model.export_columns(row)}
    columns.pop(model.record_id_field, None)  # the row's key holds it, as record imports do
    completes = {f"{form}_complete" for form in model.forms}
    dag_ids = dict(
        model.conn.execute(
            "SELECT unique_name, dag_id FROM dag WHERE project_id = ?", (model.project_id,)
        ).fetchall()
    )
    for subject in clinical.findall("SubjectData"):
        record = (subject.get("SubjectKey") or "").strip()
        if not record:
            raise ApiError("The ODM project XML has a SubjectData without SubjectKey")  # [U]
        rows: dict[tuple[str, int, str, int], dict[str, str]] = {}
        dag: str | None = None
        for event_data, form_data in _form_data(subject):
            event_id = _event_id(
                model,
                event_ids,
                event_data.get("UniqueEventName") or event_data.get("StudyEventOID"),
            )
            form = (form_data.get("FormOID") or "").removeprefix("Form.")
            key = _row_key(model, record, event_id, form, event_data, form_data)
            values = rows.setdefault(key, {})
            for item in form_data.iter():
                oid = item.get("ItemOID") or ""
                if item.tag == "ItemData" and oid == DAG_ITEM:
                    dag = item.get("Value") or None
                elif item.tag == "ItemData" and (oid in columns or oid in completes):
                    value = item.get("Value", "")
                    row = columns.get(oid)
                    kind = row["field_type"] if row else ""
                    if value != "" and kind != "calc" and (kind != "checkbox" or value == "1"):
                        values[oid] = value
                elif item.tag == "ItemDataBase64Binary" and oid in columns:
                    values[oid] = str(_store_document(model, item, when))
        if not rows:
            continue
        if dag is not None and dag not in dag_ids:
            raise ApiError(
                f"The ODM project XML assigns record '{record}' to an unknown DAG '{dag}'"
            )
        for key, values in rows.items():
            model.save_row(DataRow(*key, values))
        model.touch_record(record, when, dag_ids.get(dag) if dag else None)
        details = [f"{model.record_id_field} = '{record}'"]
        details += [f"{k} = '{v}'" for values in rows.values() for k, v in values.items()]
        action = f"Create record (API) {record}"  # as a record import logs it
        model.log(username, action, ", ".join(details), kind="record_add", record=record)


def _form_data(subject: Element) -> Iterator[tuple[Element, Element]]:
    """(StudyEventData, FormData) pairs; a classic project's FormData sits in SubjectData."""
    for child in subject:
        if child.tag == "StudyEventData":
            for form_data in child.findall("FormData"):
                yield child, form_data
        elif child.tag == "FormData":
            yield Element("StudyEventData"), child


def _repeat_key(value: str | None) -> int:
    return max(as_int(value), 1)


def _row_key(
    model: ProjectModel,
    record: str,
    event_id: int,
    form: str,
    event_data: Element,
    form_data: Element,
) -> tuple[str, int, str, int]:
    if model.repeats_event(event_id):
        return (record, event_id, "", _repeat_key(event_data.get("StudyEventRepeatKey")))
    if model.repeats_form(event_id, form):
        return (record, event_id, form, _repeat_key(form_data.get("FormRepeatKey")))
    return (record, event_id, "", 0)


def _store_document(model: ProjectModel, item: Element, when: str) -> int:
    try:
        content = base64.b64decode("".join((item.text or "").split()), validate=True)
    except binascii.Error:
        raise ApiError(f"The file of '{item.get('ItemOID')}' is not valid base64") from None
    cursor = model.conn.execute(
        "INSERT INTO document (project_id, name, mime, content, created) VALUES (?, ?, ?, ?, ?)",
        (
            model.project_id,
            item.get("DocName") or "file",
            item.get("MimeType") or "application/octet-stream",
            content,
            when,
        ),
    )
    return int(cursor.lastrowid or 0)
