"""Plan: what applying the definitions to a live REDCap project would change.

Like an infrastructure tool's plan, it reads the live project (settings, metadata, arms,
events, instrument-event mapping, repeating setup, status) and lists every difference, each
classified:

- **safe**: nothing collected is touched (a new field, a reworded label);
- **review**: a person should confirm it (a removed field that holds no data, changed branching);
- **data-affecting**: collected data would be lost or change its meaning, judged against the
  live data (the affected values are exported and counted).

The settings come first: a project made in REDCap's web interface is classic, without
surveys, and the switch to longitudinal reshapes it (REDCap adds `Arm 1` with `Event 1` holding
every instrument and the data so far), so the other steps are planned against the project as
the switch leaves it. What REDCap's API cannot do (enabling instruments as surveys) is listed
as notes for a person.

The plan only reads. `hekta_redcap.deploy.push` applies it.

    >>> plan = make_plan(Gateway(url, token), load_project("hekta"))
    >>> print(plan.render())
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal
from xml.etree import ElementTree

from hekta_redcap.compile.design import Design, compile_design
from hekta_redcap.compile.dictionary import compile_project
from hekta_redcap.core.errors import HektaError
from hekta_redcap.definitions.study import Project
from hekta_redcap.gateway import Gateway, Live
from hekta_redcap.redcap.dictionary import COLUMNS, DictRow
from hekta_redcap.redcap.fieldtypes import (
    CHOICE_TYPES,
    checkbox_column,
    has_bounds,
    is_valid,
    parse_bound,
    parse_choices,
)
from hekta_redcap.redcap.names import EVENT

Severity = Literal["safe", "review", "data-affecting"]
SEVERITIES: tuple[Severity, ...] = ("safe", "review", "data-affecting")
# REDCap's required order: the settings make the project longitudinal before it gets arms.
STEPS = ("settings", "arms", "events", "metadata", "mapping", "repeating")
# What REDCap names the first arm and event of a project switched to longitudinal.
SWITCH_ARM = {"arm_num": 1, "name": "Arm 1"}
SWITCH_EVENT = "event_1_arm_1"
PURPOSES = dict(
    enumerate(("practice", "other", "research", "quality improvement", "operational support"))
)
SAME_KIND = ({"text", "notes"}, {"radio", "dropdown"}, {"yesno", "truefalse"})
COSMETIC = (
    "section_header",
    "field_label",
    "field_note",
    "required_field",
    "custom_alignment",
    "question_number",
    "matrix_group_name",
    "matrix_ranking",
    "field_annotation",
)


@dataclass
class Change:
    """One difference between the live project and the definitions."""

    step: str  # which push step applies it (STEPS)
    action: Literal["add", "remove", "change"]
    target: str
    severity: Severity
    detail: str
    affected: int = 0  # collected values (or rows) affected
    refused: bool = False  # REDCap refuses it as things stand; push stops before writing


@dataclass
class Plan:
    project: str
    in_production: bool
    changes: list[Change]
    rows: list[DictRow] = field(repr=False)
    design: Design = field(repr=False)
    settings: dict[str, Any] = field(default_factory=dict)  # the settings to import
    carried: dict[str, str] = field(default_factory=dict)  # design event -> its live name
    notes: list[str] = field(default_factory=list)  # what a person must do in REDCap

    @property
    def steps(self) -> list[str]:
        """The push steps that have something to apply, in REDCap's order."""
        wanted = {c.step for c in self.changes}
        return [s for s in STEPS if s in wanted]

    @property
    def data_affecting(self) -> list[Change]:
        return [c for c in self.changes if c.severity == "data-affecting"]

    @property
    def refused(self) -> list[Change]:
        return [c for c in self.changes if c.refused]

    def to_json(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "in_production": self.in_production,
            "summary": dict(Counter(c.severity for c in self.changes)),
            "changes": [asdict(c) for c in self.changes],
            "notes": self.notes,
        }

    def render(self) -> str:
        """The plan for a person: one line per change, grouped by step, a summary, and what
        must be done by hand in REDCap."""
        lines = [f"{self.project}: the live project already matches the definitions."]
        if self.changes:
            status = "production" if self.in_production else "development"
            lines = [f"Plan for {self.project} ({status} status):"]
        marks = {"add": "+", "remove": "-", "change": "~"}
        for step in self.steps:
            lines.append(f"  {step}:")
            for c in (c for c in self.changes if c.step == step):
                tag = c.severity + (", refused" if c.refused else "")
                lines.append(f"    {marks[c.action]} {c.target}: {c.detail}  [{tag}]")
        if self.changes:
            counts = Counter(c.severity for c in self.changes)
            summary = ", ".join(f"{counts[s]} {s}" for s in SEVERITIES if counts[s])
            lines.append(f"{len(self.changes)} change(s): {summary}.")
        lines += [f"To do in REDCap: {note}" for note in self.notes]
        return "\n".join(lines)


class _Data:
    """Counts of live data, exported once for every field a change asks about. `event` is where
    a classic project's rows will be once the settings step makes it longitudinal."""

    def __init__(
        self, api: Gateway, live: Live, fields: Iterable[str], event: str | None = None
    ) -> None:
        self.live = live
        known = {m["field_name"] for m in live.metadata}
        wanted = sorted(set(fields) & known)
        record_id = live.metadata[0]["field_name"] if live.metadata else None
        self.rows: list[dict[str, Any]] = []
        if wanted and record_id:
            self.rows = api.export_records(fields=[record_id, *wanted], format_type="json")
        if event:
            for row in self.rows:
                row.setdefault(EVENT, event)

    def _columns(self, field: str) -> list[str]:
        row = next((m for m in self.live.metadata if m["field_name"] == field), None)
        if row and row["field_type"] == "checkbox":
            choices = parse_choices(row["select_choices_or_calculations"])
            return [checkbox_column(field, code) for code, _ in choices]
        return [field]

    def values(self, field: str, events: set[str] | None = None) -> list[str]:
        """The non-empty stored values of a field (checked options for a checkbox)."""
        found = []
        for row in self.rows:
            if events is not None and row.get(EVENT) not in events:
                continue
            for column in self._columns(field):
                value = str(row.get(column, ""))
                if value and not (column != field and value == "0"):
                    found.append(value if column == field else column.split("___", 1)[1])
        return found


def study_settings(project: Project) -> dict[str, Any]:
    """The project settings a study file implies, typed as REDCap's project export types them:
    surveys are enabled when any instrument is a survey."""
    study = project.study
    return {
        "project_title": study.title,
        "purpose": study.purpose,
        "is_longitudinal": int(study.longitudinal),
        "surveys_enabled": int(any(use.survey for use in study.instruments)),
        "record_autonumbering_enabled": int(study.autonumber),
    }


def make_plan(api: Gateway, project: Project) -> Plan:
    """Compare the live project with the definitions; reads through the API, writes nothing."""
    live = Live.read(api)
    rows, design = compile_project(project), compile_design(project)
    wanted = study_settings(project)
    settings = {k: v for k, v in wanted.items() if str(live.info.get(k, "")) != str(v)}
    first = design.events[0]["unique_event_name"] if design.events else None
    # Where a classic project's data will be once made longitudinal: REDCap's Event 1, which
    # the events step carries over into the study's first event.
    moved_to = first if not live.longitudinal else None
    carried = {moved_to: SWITCH_EVENT} if moved_to and moved_to != SWITCH_EVENT else {}
    view = _switched(live, first)
    desired = {r.field_name: {c: getattr(r, c) for c in COLUMNS} for r in rows}
    current = {m["field_name"]: m for m in view.metadata}
    forms_of = _form_events(design.mapping)
    live_forms_of = _form_events(view.mapping)
    data = _Data(api, view, _fields_to_count(current, desired, view, design), moved_to)
    changes = [
        *_settings_changes(api, live, settings, moved_to),
        *_arm_changes(view, design),
        *_event_changes(api, view, design, carried),
        *_field_changes(current, desired, data),
        *_form_changes(current, desired, data),
        *_mapping_changes(current, live_forms_of, forms_of, data),
        *_repeating_changes(current, view, design, data),
    ]
    notes = _survey_notes(api, project, enabling="surveys_enabled" in settings)
    return Plan(project.name, live.in_production, changes, rows, design, settings, carried, notes)


def _switched(live: Live, first_event: str | None) -> Live:
    """The live project as the settings step leaves it. Made longitudinal, REDCap adds `Arm 1`
    with `Event 1` holding every instrument, the repeating setup and the data; here that event
    already bears the name of the study's first event, which the events step gives it. Made
    classic, the single event's instruments and repeating instruments stay the project's."""
    wanted = first_event is not None
    if live.longitudinal == wanted:
        return live
    info = {**live.info, "is_longitudinal": int(wanted)}
    if first_event is None:
        repeating = [
            {"form_name": r["form_name"], "custom_form_label": r.get("custom_form_label", "")}
            for r in live.repeating
            if r["form_name"]
        ]
        return replace(live, info=info, arms=[], events=[], mapping=[], repeating=repeating)
    forms = dict.fromkeys(m["form_name"] for m in live.metadata)
    event = {
        "event_name": "Event 1",
        "arm_num": 1,
        "unique_event_name": first_event,
        "custom_event_label": "",
    }
    return replace(
        live,
        info=info,
        arms=[dict(SWITCH_ARM)],
        events=[event],
        mapping=[{"arm_num": 1, "unique_event_name": first_event, "form": f} for f in forms],
        repeating=[{"event_name": first_event, **r} for r in live.repeating],
    )


def _settings_changes(
    api: Gateway, live: Live, settings: dict[str, Any], moved_to: str | None
) -> list[Change]:
    """One change per setting that differs. Renaming or re-purposing is always safe; the others
    are safe on a project without records and otherwise for a person to confirm, except that
    REDCap makes a project classic only while it has a single event."""
    if not settings:
        return []
    rows = _record_rows(api, live)
    records = len({r[live.metadata[0]["field_name"]] for r in rows}) if rows else 0
    held = f" ({records} record(s) exist)" if records else ""
    quiet: Severity = "review" if records else "safe"
    changes = []
    for key, value in settings.items():
        before = live.info.get(key, "")
        severity: Severity = quiet
        if key == "project_title":
            severity, detail = "safe", f"title '{before}' -> '{value}'"
        elif key == "purpose":
            severity, detail = "safe", f"purpose {before} -> {value} ({PURPOSES.get(value, '?')})"
        elif key == "surveys_enabled" and value:
            severity, detail = "safe", "surveys enabled"
        elif key == "surveys_enabled":
            detail = "surveys disabled: survey links and invitations stop working" + held
        elif key == "record_autonumbering_enabled":
            detail = "record auto-numbering " + ("enabled" if value else "disabled") + held
        elif value:
            changes.append(_to_longitudinal(records, moved_to or SWITCH_EVENT))
            continue
        else:
            changes.append(_to_classic(live, rows, records))
            continue
        changes.append(Change("settings", "change", key, severity, detail))
    return changes


def _record_rows(api: Gateway, live: Live) -> list[dict[str, Any]]:
    """Every record × event row, by its record id only."""
    if not live.metadata:
        return []
    record_id = live.metadata[0]["field_name"]
    return api.export_records(fields=[record_id], format_type="json")


def _to_longitudinal(records: int, first_event: str) -> Change:
    detail = "classic -> longitudinal: REDCap adds Arm 1 with Event 1 (event_1_arm_1)"
    if records:
        detail += f" and puts the data of the {records} existing record(s) under it"
    if first_event != SWITCH_EVENT:
        detail += f"; push then makes it {first_event}"
    severity: Severity = "review" if records else "safe"
    return Change("settings", "change", "is_longitudinal", severity, detail, records)


def _to_classic(live: Live, rows: list[dict[str, Any]], records: int) -> Change:
    """Allowed by REDCap with a single event, whose data stay; refused with more, and
    data-affecting when more than one event holds data (deleting the others loses it)."""
    if len(live.events) <= 1:
        detail = "longitudinal -> classic: REDCap removes the arm, the event and its designations"
        detail += f"; the data of the {records} record(s) stay" if records else ""
        severity: Severity = "review" if records else "safe"
        return Change("settings", "change", "is_longitudinal", severity, detail, records)
    per_event = Counter(r.get(EVENT, "") for r in rows).most_common()
    lost = sum(n for _, n in per_event[1:])  # keeping the event that holds the most
    detail = (
        "longitudinal -> classic: REDCap refuses while the project has more than one event "
        f"({len(live.events)}); delete all but one in Project Setup first"
    )
    if lost:
        detail += f": data is collected in {len(per_event)} events, so at least {lost} record "
        detail += "row(s) would be lost"
    severity = "data-affecting" if lost else "review"
    return Change("settings", "change", "is_longitudinal", severity, detail, lost, refused=True)


def _survey_notes(api: Gateway, project: Project, enabling: bool) -> list[str]:
    """REDCap's API cannot make an instrument a survey. Name the study's surveys that the live
    project's XML does not list as surveys; when it cannot be read, advise once, as surveys
    are being enabled."""
    wanted = [use.form for use in project.study.instruments if use.survey]
    if not wanted:
        return []
    enabled = _live_surveys(api)
    if enabled is None:
        if not enabling:
            return []
        return [
            "REDCap's API cannot enable instruments as surveys: in the Online Designer, enable "
            f"each of these as a survey unless it already is: {', '.join(wanted)}"
        ]
    missing = [form for form in wanted if form not in enabled]
    if not missing:
        return []
    return [
        "in the Online Designer, enable each of these instruments as a survey (REDCap's API "
        f"cannot): {', '.join(missing)}"
    ]


def _live_surveys(api: Gateway) -> set[str] | None:
    """The forms enabled as surveys, from the project XML's `Surveys` list; None when the
    project XML cannot be exported (rights, or a REDCap without it)."""
    try:
        root = ElementTree.fromstring(api.export_project_xml(returnMetadataOnly="true"))
    except (HektaError, ElementTree.ParseError):
        return None
    if root.tag.rsplit("}", 1)[-1] != "ODM":  # a proxy's or PHP's error page, say
        return None
    return {
        element.get("form_name", "")
        for element in root.iter()
        if element.tag.rsplit("}", 1)[-1] == "Surveys"
    }


def _form_events(mapping: list[dict[str, Any]]) -> dict[str, set[str]]:
    forms: dict[str, set[str]] = {}
    for m in mapping:
        forms.setdefault(m["form"], set()).add(m["unique_event_name"])
    return forms


def _fields_to_count(
    current: dict[str, dict[str, str]],
    desired: dict[str, dict[str, str]],
    live: Live,
    design: Design,
) -> set[str]:
    """Every live field whose data a change could touch: removed or retyped fields, changed
    choices or validation, and the fields of forms losing a mapping or repeat setting."""
    fields = set(current) - set(desired)
    for name in set(current) & set(desired):
        before, after = current[name], desired[name]
        if any(
            before[c] != after[c]
            for c in (
                "field_type",
                "select_choices_or_calculations",
                "text_validation_type_or_show_slider_number",
                "text_validation_min",
                "text_validation_max",
            )
        ):
            fields.add(name)
    pairs = {(m["unique_event_name"], m["form"]) for m in design.mapping}
    lost = {m["form"] for m in live.mapping if (m["unique_event_name"], m["form"]) not in pairs}
    lost |= {r["form_name"] for r in live.repeating if r["form_name"]}
    fields |= {n for n, m in current.items() if m["form_name"] in lost}
    return fields


def _count_severity(count: int, empty: Severity = "review") -> Severity:
    return "data-affecting" if count else empty


def _field_changes(
    current: dict[str, dict[str, str]], desired: dict[str, dict[str, str]], data: _Data
) -> list[Change]:
    changes: list[Change] = []
    removed = [n for n in current if n not in desired]
    added = [n for n in desired if n not in current]
    renamed = _renames(current, desired, removed, added)
    for old, new in renamed.items():
        count = len(data.values(old))
        changes.append(
            Change(
                "metadata",
                "change",
                f"{old} -> {new}",
                _count_severity(count),
                f"looks like a rename; REDCap would drop '{old}' ({count} value(s)) and add "
                f"'{new}' empty: rename it in REDCap's Online Designer to keep the data",
                count,
            )
        )
    for name in removed:
        if name in renamed:
            continue
        count = len(data.values(name))
        detail = f"field removed from {current[name]['form_name']}"
        detail += f": {count} collected value(s) would be lost" if count else " (holds no data)"
        changes.append(Change("metadata", "remove", name, _count_severity(count), detail, count))
    for name in added:
        if name not in renamed.values():
            detail = f"new {desired[name]['field_type']} field on {desired[name]['form_name']}"
            changes.append(Change("metadata", "add", name, "safe", detail))
    for name in (n for n in desired if n in current):
        changes += _changed_field(name, current[name], desired[name], data)
    return changes


def _renames(
    current: dict[str, dict[str, str]],
    desired: dict[str, dict[str, str]],
    removed: list[str],
    added: list[str],
) -> dict[str, str]:
    """Removed fields that reappear under a new name: same form, type, label and choices."""
    key = ("form_name", "field_type", "field_label", "select_choices_or_calculations")
    renames: dict[str, str] = {}
    for old in removed:
        match = [n for n in added if all(current[old][k] == desired[n][k] for k in key)]
        if len(match) == 1 and match[0] not in renames.values():
            renames[old] = match[0]
    return renames


def _changed_field(
    name: str, before: dict[str, str], after: dict[str, str], data: _Data
) -> list[Change]:
    changes = []

    def change(severity: Severity, detail: str, affected: int = 0) -> None:
        changes.append(Change("metadata", "change", name, severity, detail, affected))

    if before["form_name"] != after["form_name"]:
        change("review", f"moves from form {before['form_name']} to {after['form_name']}")
    types = (before["field_type"], after["field_type"])
    if types[0] != types[1]:
        compatible = any(set(types) <= kind for kind in SAME_KIND)
        stored = [] if compatible else data.values(name)
        severity: Severity = "safe" if compatible else _count_severity(len(stored))
        detail = f"type {types[0]} -> {types[1]}"
        if stored and _all_codes(stored, after):
            # free text recoded to the new choices' codes before the push keeps its meaning
            severity = "review"
            detail += f" (the {len(stored)} stored value(s) are all codes of the new choices)"
        change(severity, detail, len(stored))
    if types[1] in CHOICE_TYPES and types[0] in CHOICE_TYPES:
        changes += _choice_changes(name, before, after, data)
    elif (
        types[1] not in CHOICE_TYPES  # a field turned single-choice: its type change says so
        and before["select_choices_or_calculations"] != after["select_choices_or_calculations"]
    ):
        what = "calculation" if types[1] == "calc" else "slider labels"
        change("review", f"{what} changed (stored values are not recalculated)")
    changes += _validation_changes(name, before, after, data)
    if before["branching_logic"] != after["branching_logic"]:
        change(
            "review",
            f"branching logic: {before['branching_logic'] or '(none)'} -> "
            f"{after['branching_logic'] or '(none)'}",
        )
    if before["identifier"] != after["identifier"]:
        state = "flagged" if after["identifier"] else "no longer flagged"
        change("review", f"{state} as identifier (changes what de-identified exports hold)")
    cosmetic = [c for c in COSMETIC if before[c] != after[c]]
    if cosmetic:
        change("safe", "changed " + ", ".join(c.replace("_", " ") for c in cosmetic))
    return changes


def _all_codes(values: list[str], after: dict[str, str]) -> bool:
    """Every value is a code of a single-choice field's new choices."""
    if after["field_type"] not in ("radio", "dropdown"):
        return False
    codes = {code for code, _ in parse_choices(after["select_choices_or_calculations"])}
    return set(values) <= codes


def _choice_changes(
    name: str, before: dict[str, str], after: dict[str, str], data: _Data
) -> list[Change]:
    old = dict(parse_choices(before["select_choices_or_calculations"]))
    new = dict(parse_choices(after["select_choices_or_calculations"]))
    counts = Counter(data.values(name)) if old != new else Counter()
    changes = []
    new_code_of = {label: code for code, label in new.items()}
    for code, label in old.items():
        moved_to = new_code_of.get(label)
        if moved_to is not None and moved_to != code:
            count = counts[code]
            detail = f"choice '{label}' renumbered {code} -> {moved_to}"
            detail += f": {count} stored '{code}' would change meaning" if count else ""
            changes.append(
                Change("metadata", "change", name, _count_severity(count), detail, count)
            )
        elif code not in new:
            count = counts[code]
            detail = f"choice {code} '{label}' removed"
            detail += f": {count} stored value(s) would be orphaned" if count else ""
            changes.append(
                Change("metadata", "remove", name, _count_severity(count), detail, count)
            )
        elif new[code] != label:
            detail = f"choice {code} relabelled '{label}' -> '{new[code]}'"
            changes.append(Change("metadata", "change", name, "review", detail, counts[code]))
    for code, label in new.items():
        if code not in old and label not in old.values():
            changes.append(
                Change("metadata", "add", name, "safe", f"choice {code} '{label}' added")
            )
    return changes


def _validation_changes(
    name: str, before: dict[str, str], after: dict[str, str], data: _Data
) -> list[Change]:
    keys = (
        "text_validation_type_or_show_slider_number",
        "text_validation_min",
        "text_validation_max",
    )
    if all(before[k] == after[k] for k in keys) or after["field_type"] != "text":
        return []
    validation, low, high = (after[k] for k in keys)
    failing = [v for v in data.values(name) if not _passes(v, validation, low, high)]
    detail = "validation " + " ".join(
        f"{before[k] or '-'} -> {after[k] or '-'}" for k in keys if before[k] != after[k]
    )
    if failing:
        detail += f": {len(failing)} stored value(s) would fail it"
    severity: Severity = "review" if failing else "safe"
    return [Change("metadata", "change", name, severity, detail, len(failing))]


def _passes(value: str, validation: str, low: str, high: str) -> bool:
    if not validation:
        return True
    if not is_valid(validation, value):
        return False
    if not has_bounds(validation):
        return True
    parsed = parse_bound(validation, value)
    try:
        return (not low or parse_bound(validation, low) <= parsed) and (
            not high or parsed <= parse_bound(validation, high)
        )
    except ValueError:
        return True  # a bound that does not parse is lint's business, not data's


def _form_changes(
    current: dict[str, dict[str, str]], desired: dict[str, dict[str, str]], data: _Data
) -> list[Change]:
    before = list(dict.fromkeys(m["form_name"] for m in current.values()))
    after = list(dict.fromkeys(m["form_name"] for m in desired.values()))
    changes = [
        Change("metadata", "add", f, "safe", "new instrument") for f in after if f not in before
    ]
    for form in (f for f in before if f not in after):
        # Fields moving to another instrument keep their values; the others go with the form.
        fields = [n for n, m in current.items() if m["form_name"] == form and n not in desired]
        count = sum(len(data.values(n)) for n in fields)
        detail = f"instrument removed with its {len(fields)} field(s)"
        if not fields:
            detail = "instrument removed (its fields move to other instruments)"
        changes.append(Change("metadata", "remove", form, _count_severity(count), detail, count))
    return changes


def _arm_changes(live: Live, design: Design) -> list[Change]:
    before = {int(a["arm_num"]): a["name"] for a in live.arms}
    after = {int(a["arm_num"]): a["name"] for a in design.arms}
    changes = []
    for num, name in after.items():
        if num not in before:
            changes.append(Change("arms", "add", f"arm {num}", "safe", f"new arm '{name}'"))
        elif before[num] != name:
            changes.append(
                Change(
                    "arms", "change", f"arm {num}", "safe", f"renamed '{before[num]}' -> '{name}'"
                )
            )
    for num in (n for n in before if n not in after):
        changes.append(
            Change(
                "arms",
                "remove",
                f"arm {num}",
                "review",
                f"arm '{before[num]}' removed with its events",
            )
        )
    return changes


def _event_changes(
    api: Gateway, live: Live, design: Design, carried: dict[str, str]
) -> list[Change]:
    before = {e["unique_event_name"]: e for e in live.events}
    after = {e["unique_event_name"]: e for e in design.events}
    changes = []
    for unique, event in after.items():
        if unique in carried:
            detail = (
                f"renamed 'Event 1' -> '{event['event_name']}': the first event, made by the "
                "switch to longitudinal, keeps what it holds"
            )
            target = f"{carried[unique]} -> {unique}"
            changes.append(Change("events", "change", target, "safe", detail))
            continue
        if unique not in before:
            changes.append(
                Change("events", "add", unique, "safe", f"new event '{event['event_name']}'")
            )
            continue
        differs = [
            k
            for k in event
            if k in before[unique]
            and str(event[k]) != str(before[unique][k])
            and str(before[unique][k] or "") != str(event[k] or "")
        ]
        if differs:
            changes.append(
                Change("events", "change", unique, "safe", "changed " + ", ".join(differs))
            )
    for unique in (u for u in before if u not in after):
        rows = api.export_records(events=[unique], fields=[live.metadata[0]["field_name"]])
        count = len(rows)
        detail = (
            f"event removed: {count} record row(s) collected there would be deleted"
            if count
            else "event removed (no data collected there)"
        )
        changes.append(Change("events", "remove", unique, _count_severity(count), detail, count))
    return changes


def _mapping_changes(
    current: dict[str, dict[str, str]],
    live_forms_of: dict[str, set[str]],
    forms_of: dict[str, set[str]],
    data: _Data,
) -> list[Change]:
    changes = []
    for form in sorted(set(live_forms_of) | set(forms_of)):
        before, after = live_forms_of.get(form, set()), forms_of.get(form, set())
        for event in sorted(after - before):
            changes.append(
                Change(
                    "mapping",
                    "add",
                    f"{form} @ {event}",
                    "safe",
                    "instrument collected at a new event",
                )
            )
        for event in sorted(before - after):
            fields = [n for n, m in current.items() if m["form_name"] == form]
            count = sum(len(data.values(n, {event})) for n in fields)
            detail = "no longer collected there"
            detail += f": {count} collected value(s) would be hidden and lost" if count else ""
            changes.append(
                Change(
                    "mapping", "remove", f"{form} @ {event}", _count_severity(count), detail, count
                )
            )
    return changes


def _repeating_changes(
    current: dict[str, dict[str, str]], live: Live, design: Design, data: _Data
) -> list[Change]:
    def key(row: dict[str, Any]) -> tuple[str, str]:
        return (row.get("event_name", ""), row["form_name"])

    before = {key(r): r.get("custom_form_label", "") for r in live.repeating}
    after = {key(r): r.get("custom_form_label", "") for r in design.repeating}
    changes = []
    for (event, form), label in after.items():
        target = f"{form or '(whole event)'} @ {event}" if event else form
        if (event, form) not in before and not any(
            m["form_name"] == form for m in current.values()
        ):
            changes.append(Change("repeating", "add", target, "safe", "new repeating instrument"))
        elif (event, form) not in before:
            changes.append(Change("repeating", "add", target, "review", "starts repeating"))
        elif before[(event, form)] != label:
            changes.append(Change("repeating", "change", target, "safe", f"custom label '{label}'"))
    for event, form in (k for k in before if k not in after):
        target = f"{form or '(whole event)'} @ {event}" if event else form
        fields = [n for n, m in current.items() if m["form_name"] == form]
        count = sum(len(data.values(n, {event} if event else None)) for n in fields)
        changes.append(
            Change(
                "repeating",
                "remove",
                target,
                _count_severity(count),
                "stops repeating" + (f": {count} value(s) in repeat instances" if count else ""),
                count,
            )
        )
    return changes
