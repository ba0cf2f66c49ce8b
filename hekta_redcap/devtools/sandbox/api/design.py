"""Arms, events, the instrument-event mapping and repeating instruments/events.

Clients branch on the classic-project refusals, so their texts are REDCap's to the letter:
PyCap's `is_longitudinal` asks for the mapping and takes an error as "classic", and REDCapR
turns the three export refusals into empty results.
"""

from __future__ import annotations

from typing import Any

from hekta_redcap.devtools.sandbox.api.metadata import import_rows
from hekta_redcap.devtools.sandbox.endpoints import Call, endpoint
from hekta_redcap.devtools.sandbox.models import ProjectModel
from hekta_redcap.devtools.sandbox.wire import (
    ApiError,
    Reply,
    invalid_values,
    render_count,
    render_rows,
)

# [U] The import refusals are modelled on the export ones, which are verified.
CLASSIC = "You cannot {} for classic projects"
# [U] Deleting arms and events is documented as development-only; the text is unknown.
IN_PRODUCTION = (
    "You cannot {} because the project is in production status. This is only possible while "
    "the project is in development status."
)


def _longitudinal_only(call: Call, what: str) -> ProjectModel:
    if not call.p.longitudinal:
        raise ApiError(CLASSIC.format(what))
    return call.p


def _development_only(call: Call, what: str) -> None:
    if call.p.in_production:
        raise ApiError(IN_PRODUCTION.format(what))


def _design_rows(call: Call) -> list[dict[str, str]]:
    """The rows of a design import, for a user who may change the design."""
    call.require("design")
    return import_rows(call)


def _done(call: Call, details: str, count: int) -> Reply:
    """Log a design change and reply with its count."""
    call.p.log(call.u.username, "Manage/Design", f"{details} (API)", kind="manage")
    return render_count(count, call.return_format)


def _refuse(errors: list[str]) -> None:
    """One 400 listing every bad row, as REDCap reports import problems."""
    if errors:
        raise ApiError("\n".join(errors))


def _integer(value: str) -> int | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return int(number) if number.is_integer() else None


def _arm_filter(call: Call) -> set[int] | None:
    """The `arms` parameter as arm numbers (None when absent)."""
    arms = call.params.array("arms")
    if not arms:
        return None
    numbers = {arm: _integer(arm) for arm in arms}
    if bad := [arm for arm, num in numbers.items() if num is None]:
        raise invalid_values("arms", bad)
    return {num for num in numbers.values() if num is not None}


def _forget_orphans(model: ProjectModel) -> None:
    """Records left without any data (their arm or events were deleted) no longer exist."""
    for record in model.record_ids():
        model.forget_empty_record(record)


def _rows(call: Call, rows: list[dict[str, Any]], columns: tuple[str, ...]) -> Reply:
    return render_rows(rows, call.fmt, columns, delimiter=call.params.delimiter)


# -- arms -------------------------------------------------------------------------------------


@endpoint("arm", "export", privilege="api_export")
def export_arms(call: Call) -> Reply:
    """Arms that have at least one event (REDCap leaves out the others)."""
    model = _longitudinal_only(call, "export arms")
    wanted = _arm_filter(call)
    with_events = {e.arm_num for e in model.events}
    rows = [
        {"arm_num": num, "name": name}
        for num, name in model.arms
        if num in with_events and (wanted is None or num in wanted)
    ]
    return _rows(call, rows, ("arm_num", "name"))


@endpoint("arm", "import", privilege="api_import")
def import_arms(call: Call) -> Reply:
    """Add or rename arms; `override=1` first deletes every arm with its events and data."""
    model = _longitudinal_only(call, "import arms")
    rows = _design_rows(call)
    arms: list[tuple[int, str]] = []
    errors = []
    for i, row in enumerate(rows, 1):
        num = _integer(row.get("arm_num", ""))
        if num is None or num < 1:
            errors.append(f"Row {i}: arm_num '{row.get('arm_num', '')}' is not a positive number")
        elif not row.get("name"):
            errors.append(f"Row {i}: arm {num} has no name")
        else:
            arms.append((num, row["name"]))
    _refuse(errors)
    if call.params.flag("override"):
        _development_only(call, "replace all arms")
        for num, _ in model.arms:
            model.delete_arm(num)
        _forget_orphans(model)
    for num, name in arms:
        model.save_arm(num, name)
    return _done(call, "Import arms", len(rows))


@endpoint("arm", "delete", privilege="api_import")
def delete_arms(call: Call) -> Reply:
    """Delete arms with their events, mappings and the data collected in them."""
    call.require("design")
    model = _longitudinal_only(call, "delete arms")
    _development_only(call, "delete arms")
    wanted = {arm: _integer(arm) for arm in call.params.require_array("arms")}
    existing = {num for num, _ in model.arms}
    if unknown := [arm for arm, num in wanted.items() if num not in existing]:
        raise invalid_values("arms", unknown)
    for num in set(wanted.values()):
        assert num is not None
        model.delete_arm(num)
    _forget_orphans(model)
    return _done(call, "Delete arms", len(set(wanted.values())))


# -- events -----------------------------------------------------------------------------------

EVENT_COLUMNS = ("event_name", "arm_num", "unique_event_name", "custom_event_label", "event_id")
OFFSETS = ("day_offset", "offset_min", "offset_max")


def _number(value: float | None) -> int | float | str:
    """An offset as REDCap shows it: a whole number without decimals, blank when unset."""
    if value is None:
        return ""
    return int(value) if value.is_integer() else value


@endpoint("event", "export", privilege="api_export")
def export_events(call: Call) -> Reply:
    """Events in arm order, with ids; the scheduling offsets only when scheduling is on [I]."""
    model = _longitudinal_only(call, "export events")
    wanted = _arm_filter(call)
    scheduling = bool(model.info.get("scheduling_enabled"))
    columns = EVENT_COLUMNS[:2] + (OFFSETS if scheduling else ()) + EVENT_COLUMNS[2:]
    rows = [
        {
            "event_name": e.event_name,
            "arm_num": e.arm_num,
            "unique_event_name": e.unique_event_name,
            "custom_event_label": e.custom_event_label,
            "event_id": e.event_id,
            **{name: _number(getattr(e, name)) for name in OFFSETS},
        }
        for e in model.events
        if wanted is None or e.arm_num in wanted
    ]
    return _rows(call, [{c: row[c] for c in columns} for row in rows], columns)


@endpoint("event", "import", privilege="api_import")
def import_events(call: Call) -> Reply:
    """Update the event whose `unique_event_name` matches, else create one; other keys (such as
    `event_id` from an export) are ignored. `override=1` first deletes every event."""
    model = _longitudinal_only(call, "import events")
    rows = _design_rows(call)
    override = call.params.flag("override")
    existing = {} if override else {e.unique_event_name: e.event_id for e in model.events}
    arms = {num for num, _ in model.arms}
    saves: list[tuple[Any, ...]] = []
    errors = []
    for i, row in enumerate(rows, 1):
        num = _integer(row.get("arm_num", ""))
        try:
            offsets = [float(v) if (v := row.get(name, "")) else None for name in OFFSETS]
        except ValueError:
            errors.append(f"Row {i}: day_offset, offset_min and offset_max must be numbers")
            continue
        if not row.get("event_name"):
            errors.append(f"Row {i}: event_name is missing")
        elif num not in arms:
            arm = row.get("arm_num", "")
            errors.append(f"Row {i}: arm_num '{arm}' is not an arm of the project")
        else:
            event_id = existing.get(row.get("unique_event_name", ""))
            label = row.get("custom_event_label", "")
            saves.append((event_id, num, row["event_name"], label, *offsets))
    _refuse(errors)
    if override:
        _development_only(call, "replace all events")
        for event in model.events:
            model.delete_event(event.event_id)
        _forget_orphans(model)
    for save in saves:
        model.save_event(*save)
    return _done(call, "Import events", len(rows))


@endpoint("event", "delete", privilege="api_import")
def delete_events(call: Call) -> Reply:
    """Delete events (by unique name) with their mappings and the data collected in them."""
    call.require("design")
    model = _longitudinal_only(call, "delete events")
    _development_only(call, "delete events")
    wanted = {name: model.event(name) for name in call.params.require_array("events")}
    if unknown := [name for name, event in wanted.items() if event is None]:
        raise invalid_values("events", unknown)
    for event in wanted.values():
        assert event is not None
        model.delete_event(event.event_id)
    _forget_orphans(model)
    return _done(call, "Delete events", len(wanted))


# -- instrument-event mapping -------------------------------------------------------------------


@endpoint("formEventMapping", "export", privilege="api_export")
def export_mapping(call: Call) -> Reply:
    """(arm, event, form) in event order, then form order."""
    model = _longitudinal_only(call, "export form/event mappings")
    wanted = _arm_filter(call)
    rows = [
        {"arm_num": e.arm_num, "unique_event_name": e.unique_event_name, "form": form}
        for e in model.events
        if wanted is None or e.arm_num in wanted
        for form in model.mapping.get(e.event_id, [])
    ]
    return _rows(call, rows, ("arm_num", "unique_event_name", "form"))


@endpoint("formEventMapping", "import", privilege="api_import")
def import_mapping(call: Call) -> Reply:
    """Replace every mapping of the project with the rows sent (one row leaves one mapping)."""
    model = _longitudinal_only(call, "import form/event mappings")
    rows = _design_rows(call)
    pairs = []
    errors = []
    for i, row in enumerate(rows, 1):
        event = model.event(row.get("unique_event_name", ""))
        form = row.get("form", "")
        arm = row.get("arm_num", "")
        if event is None:
            name = row.get("unique_event_name", "")
            errors.append(f"Row {i}: '{name}' is not a unique event name")
        elif form not in model.forms:
            errors.append(f"Row {i}: '{form}' is not an instrument of the project")
        elif arm and _integer(arm) != event.arm_num:
            errors.append(f"Row {i}: event '{event.unique_event_name}' is not in arm {arm}")
        else:
            pairs.append((event.event_id, form))
    _refuse(errors)
    model.replace_mapping(pairs)
    return _done(call, "Import instrument-event mappings", len(rows))


# -- repeating instruments and events -----------------------------------------------------------


@endpoint("repeatingFormsEvents", "export", privilege="api_export")
def export_repeating(call: Call) -> Reply:
    """The repeating setup: per event (`form_name` "" when the whole event repeats) in a
    longitudinal project, per form in a classic one. With none, an empty list [U: old REDCap
    versions refused instead]."""
    model = call.p
    form_order = {form: i for i, form in enumerate(model.forms)}
    ordered = sorted(model.repeating.items(), key=lambda item: form_order.get(item[0][1], -1))
    if not model.longitudinal:
        rows = [{"form_name": form, "custom_form_label": label} for (_, form), label in ordered]
        return _rows(call, rows, ("form_name", "custom_form_label"))
    rows = [
        {"event_name": e.unique_event_name, "form_name": form, "custom_form_label": label}
        for e in model.events
        for (event_id, form), label in ordered
        if event_id == e.event_id
    ]
    return _rows(call, rows, ("event_name", "form_name", "custom_form_label"))


@endpoint("repeatingFormsEvents", "import", privilege="api_import")
def import_repeating(call: Call) -> Reply:
    """Replace the repeating setup with the rows sent. In a longitudinal project each row names
    an event, and `form_name` "" makes the whole event repeat."""
    model = call.p
    rows = _design_rows(call)
    settings: dict[tuple[int, str], str] = {}
    errors = []
    for i, row in enumerate(rows, 1):
        form, event_name = row.get("form_name", ""), row.get("event_name", "")
        event = model.event(event_name) if model.longitudinal else None
        if model.longitudinal and event is None:
            errors.append(f"Row {i}: '{event_name}' is not a unique event name")
        elif (form or not model.longitudinal) and form not in model.forms:
            errors.append(f"Row {i}: '{form}' is not an instrument of the project")
        else:
            settings[(event.event_id if event else 0, form)] = row.get("custom_form_label", "")
    whole = {event_id for event_id, form in settings if not form}
    names = {e.event_id: e.unique_event_name for e in model.events}
    errors += [
        f"'{form}' cannot repeat on its own in '{names[event_id]}', because the whole event repeats"
        for event_id, form in settings
        if form and event_id in whole
    ]
    _refuse(errors)
    model.replace_repeating((event_id, form, label) for (event_id, form), label in settings.items())
    return _done(call, "Set up repeating instruments and events", len(rows))
