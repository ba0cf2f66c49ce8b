"""CDISC ODM project XML in and out: REDCap's way of carrying a whole project between servers.

`ingest` fills a freshly created project from a REDCap project XML (`content=project` with
`odm`); `export` writes the same kind of document (`content=project_xml`). Both follow the
layout of REDCap's own project XML exports (the test fixtures in tests/fixtures/redcap-odm/ are
written in it; their README lists what they exercise), so a project taken from a real REDCap
server loads here, and an exported one loads again (here or, as far as we can tell, in REDCap).

REDCap's extensions live in the `redcap:` namespace. On the way in every namespace is dropped
(`redcap:FieldType` is read as `FieldType`): ODM and REDCap never use the same local name for
different things, and hand-written files without namespaces then load as well.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import re
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import escape

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from hekta_redcap.devtools.sandbox.endpoints import REDCAP_VERSION
from hekta_redcap.devtools.sandbox.models import (
    COMPLETE_CHOICES,
    CREATOR_RIGHTS,
    DataRow,
    ProjectModel,
    now,
    unique_group_name,
)
from hekta_redcap.devtools.sandbox.wire import ApiError
from hekta_redcap.redcap.fieldtypes import parse_choices

VALIDATION = "text_validation_type_or_show_slider_number"
CHOICES = "select_choices_or_calculations"
DAG_ITEM = "redcap_data_access_group"
SURVEY_ITEM = "redcap_survey_identifier"
# A classic project's one hidden event, as REDCap names it in repeating-instrument entries [I].
CLASSIC_EVENT = "event_1_arm_1"

# ODM spells some field types and validations the old way.
FIELD_TYPES = {"textarea": "notes", "select": "dropdown"}
VALIDATIONS = {"int": "integer", "float": "number"}
ODM_FIELD_TYPES = {v: k for k, v in FIELD_TYPES.items()}
ODM_VALIDATIONS = {v: k for k, v in VALIDATIONS.items()}

# ItemDef attributes holding a dictionary column unchanged, in the order REDCap writes them.
ITEM_COLUMNS = (
    ("FieldNote", "field_note"),
    ("SectionHeader", "section_header"),
    ("Identifier", "identifier"),
    ("BranchingLogic", "branching_logic"),
    ("RequiredField", "required_field"),
    ("CustomAlignment", "custom_alignment"),
    ("QuestionNumber", "question_number"),
    ("MatrixGroupName", "matrix_group_name"),
    ("MatrixRanking", "matrix_ranking"),
    ("FieldAnnotation", "field_annotation"),
)

# GlobalVariables elements and the project-info keys they set, in REDCap's order.
INFO_TAGS = (
    ("RecordAutonumberingEnabled", "record_autonumbering_enabled"),
    ("CustomRecordLabel", "custom_record_label"),
    ("SecondaryUniqueField", "secondary_unique_field"),
    ("SchedulingEnabled", "scheduling_enabled"),
    ("SurveysEnabled", "surveys_enabled"),
    ("RandomizationEnabled", "randomization_enabled"),
    ("DisplayTodayNowButton", "display_today_now_button"),
    ("PreventBranchingEraseValues", "bypass_branching_erase_field_prompt"),  # [I]
    ("Purpose", "purpose"),
    ("PurposeOther", "purpose_other"),
    ("ProjectNotes", "project_notes"),
    ("MissingDataCodes", "missing_data_codes"),
)

# UserRoles attributes in REDCap 15's order, with the user-export flag each one is (None: a
# right the API does not expose; `forms`/`forms_export` are the `[form,level]` lists).
ROLE_ATTRIBUTES: tuple[tuple[str, str | None], ...] = (
    ("lock_record", "lock_records"),
    ("lock_record_multiform", "lock_records_all_forms"),
    ("lock_record_customize", "lock_records_customization"),
    ("data_export_tool", None),
    ("data_export_instruments", "forms_export"),
    ("data_import_tool", "data_import_tool"),
    ("data_comparison_tool", "data_comparison_tool"),
    ("data_logging", "logging"),
    ("email_logging", "email_logging"),
    ("file_repository", "file_repository"),
    ("double_data", None),
    ("user_rights", "user_rights"),
    ("data_access_groups", "data_access_groups"),
    ("graphical", "stats_and_charts"),
    ("reports", "reports"),
    ("design", "design"),
    ("alerts", "alerts"),
    ("calendar", "calendar"),
    ("data_entry", "forms"),
    ("api_export", "api_export"),
    ("api_import", "api_import"),
    ("api_modules", "api_modules"),
    ("mobile_app", "mobile_app"),
    ("mobile_app_download_data", "mobile_app_download_data"),
    ("record_create", "record_create"),
    ("record_rename", "record_rename"),
    ("record_delete", "record_delete"),
    ("dts", None),
    ("participants", "manage_survey_participants"),
    ("data_quality_design", "data_quality_create"),
    ("data_quality_execute", "data_quality_execute"),
    ("data_quality_resolution", None),
    ("random_setup", None),
    ("random_dashboard", None),
    ("random_perform", None),
    ("realtime_webservice_mapping", None),
    ("realtime_webservice_adjudicate", None),
    ("mycap_participants", None),
    ("mycap_configure_app", None),
    ("external_module_config", None),
)
ROLE_ATTRIBUTE_OF = {flag: attr for attr, flag in ROLE_ATTRIBUTES if flag}
FORM_LEVEL = re.compile(r"\[([^,\]]+),(\d+)\]")


def _local(name: str) -> str:
    return name.rpartition("}")[2]


def _int(text: str | None) -> int:
    text = (text or "").strip()
    return int(text) if re.fullmatch(r"-?\d+", text) else 0


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


# -- in -------------------------------------------------------------------------------------


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
            info[key] = _int(text) if isinstance(info.get(key), int) else text
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
        arm = _int(event_def.get("ArmNum")) or 1
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
    # Imported here: the api package imports this module (project creation, XML export).

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
        flag: _int(role.get(ROLE_ATTRIBUTE_OF[flag])) for flag in CREATOR_RIGHTS
    }
    for flag in ("forms", "forms_export"):
        levels = dict(FORM_LEVEL.findall(role.get(ROLE_ATTRIBUTE_OF[flag]) or ""))
        default = _int(role.get("data_export_tool")) if flag == "forms_export" else 0
        rights[flag] = {form: _int(levels.get(form, str(default))) for form in model.forms}
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
    return max(_int(value), 1)


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


# -- out ------------------------------------------------------------------------------------

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
        (model.project_id, _int(doc_id)),
    ).fetchone()
    return (found[0], found[1], bytes(found[2])) if found else None
