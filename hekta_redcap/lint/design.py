"""Study rules on the project's design: events, instrument-event mappings, repeating setup,
the sex coding, date-order pairs and missing data codes."""

from __future__ import annotations

import re
from collections.abc import Callable

from hekta_redcap.compile.checks import DictionaryContext, check_logic
from hekta_redcap.core.findings import Report
from hekta_redcap.definitions.study import (
    Project,
)
from hekta_redcap.redcap.names import unique_event_name


def _label_logic(label: str) -> str:
    """A custom label's piped fields as a logic expression, so their references get checked."""
    refs = re.findall(r"(?:\[[^\]]+\])+", label)
    return " + ".join(f"concat({r})" for r in refs) or "''"


def _events(report: Report, project: Project, ctx: DictionaryContext) -> None:
    """Arms and events exist once each; unique names are what REDCap will compute."""
    study = project.study
    arms = {a.num for a in study.arms}
    if study.longitudinal and not arms:
        report.error(
            "events", "a longitudinal project needs at least one arm", study.origin("events")
        )
    seen: set[str] = set()
    for i, event in enumerate(study.events):
        origin = study.origin("events", i)
        expected = unique_event_name(event.name, event.arm)
        if event.unique_name != expected:
            report.error(
                "events",
                f"event '{event.name}' in arm {event.arm}: REDCap will name it '{expected}', "
                f"not '{event.unique_name}'",
                origin,
            )
        if event.unique_name in seen:
            report.error("events", f"event '{event.unique_name}' is defined twice", origin)
        seen.add(event.unique_name)
        if arms and event.arm not in arms:
            report.error(
                "events",
                f"event '{event.unique_name}' is in arm {event.arm}, which is not defined",
                origin,
            )
    for arm in study.arms:
        if not any(e.arm == arm.num for e in study.events):
            report.warn(
                "events", f"arm {arm.num} has no events (REDCap will not export it)", arm.origin()
            )


def _mapping(report: Report, project: Project, ctx: DictionaryContext) -> None:
    """Every instrument is collected at an event that exists; repeating setup is consistent."""
    study = project.study
    events = {e.unique_name for e in study.events}
    for i, use in enumerate(study.instruments):
        origin = study.origin("instruments", i)
        if study.longitudinal and not use.events:
            report.error("mapping", f"instrument '{use.form}' is not mapped to any event", origin)
        if not study.longitudinal and use.events:
            report.error(
                "mapping", f"instrument '{use.form}' lists events in a classic project", origin
            )
        for event in use.events:
            if event not in events:
                report.error("mapping", f"instrument '{use.form}': unknown event '{event}'", origin)
        if use.repeat_label and not use.repeating:
            report.error(
                "repeating",
                f"instrument '{use.form}' has a repeat label but does not repeat",
                origin,
            )
        if use.repeating and set(use.events) & set(study.repeating_events):
            report.error(
                "repeating",
                f"instrument '{use.form}' repeats inside an event that repeats as a whole",
                origin,
            )
        if use.repeat_label:
            label = _label_logic(use.repeat_label)
            check_logic(report, ctx, ctx.row_map(), label, f"repeat label of '{use.form}'", origin)
    for i, event in enumerate(study.repeating_events):
        if event not in events:
            report.error(
                "repeating",
                f"repeating event '{event}' is not defined",
                study.origin("repeating_events", i),
            )


def _sex_and_codes(report: Report, project: Project, ctx: DictionaryContext) -> None:
    """The sex coding points at a field with those codes; date-order pairs name date fields;
    missing data codes are distinct."""
    study, fields = project.study, project.field_map()
    if study.sex is not None:
        entry = fields.get(study.sex.field)
        if entry is None:
            report.error(
                "sex", f"sex field '{study.sex.field}' does not exist", study.origin("sex")
            )
        else:
            sex_codes = {c.code for c in entry[0].choices_of(entry[1])}
            for label in ("male", "female"):
                code = getattr(study.sex, label)
                if code not in sex_codes:
                    report.error(
                        "sex",
                        f"{label} code '{code}' is not a code of '{study.sex.field}'",
                        study.origin("sex"),
                    )
    for i, pair in enumerate(study.date_order):
        for name in (pair.earlier, pair.later):
            entry = fields.get(name)
            if entry is None or not (entry[1].validation or "").startswith("date"):
                report.error(
                    "date-order",
                    f"date_order: '{name}' is not a date field",
                    study.origin("date_order", i),
                )
    codes = [m.code for m in study.missing_data_codes]
    for i, code in enumerate(codes):
        if codes.count(code) > 1:
            report.error(
                "missing-codes",
                f"missing data code '{code}' is listed twice",
                study.origin("missing_data_codes", i),
            )
        clashes = [
            f.name for inst, f in project.fields() if code in {c.code for c in inst.choices_of(f)}
        ]
        if clashes:
            report.error(
                "missing-codes",
                f"missing data code '{code}' is also a choice code of {', '.join(clashes[:3])}",
                study.origin("missing_data_codes", i),
            )


DESIGN_RULES: list[Callable[[Report, Project, DictionaryContext], None]] = [
    _events,
    _mapping,
    _sex_and_codes,
]
