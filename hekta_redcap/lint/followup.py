"""Study rules on the follow-up: the schedule's events and fields, the tracking form, and the
reminder policy (contact fields, stop rules, send calendar, templates)."""

from __future__ import annotations

from collections.abc import Callable, Collection

from hekta_redcap.compile.checks import DictionaryContext
from hekta_redcap.core.errors import HektaError
from hekta_redcap.core.findings import Report
from hekta_redcap.definitions.model import LANGUAGES, Node
from hekta_redcap.definitions.registers import REGISTERS_DIR
from hekta_redcap.definitions.study import Project, StopRule
from hekta_redcap.followup.messages import CHANNELS, TEMPLATES_DIR, template_names
from hekta_redcap.followup.schedule import state_labels
from hekta_redcap.followup.sendtime import SendCalendar
from hekta_redcap.redcap import logic


def check_stop_rules(
    report: Report, rule: str, owner: Node, stops: list[StopRule], fields: Collection[str]
) -> None:
    """Each stop rule (`owner.stop`) parses as REDCap logic and reads fields that exist."""
    for i, stop in enumerate(stops):
        try:
            refs = logic.references(logic.parse(stop.when))
        except logic.LogicError as exc:
            report.error(rule, f"stop rule '{stop.reason}': {exc}", owner.origin("stop", i))
            continue
        for ref in refs:
            if ref.field and ref.field not in fields:
                report.error(
                    rule,
                    f"stop rule '{stop.reason}' reads '{ref.field}', which does not exist",
                    owner.origin("stop", i),
                )


def _schedule(report: Report, project: Project, ctx: DictionaryContext) -> None:
    """The anchor date field, follow-up events, completion forms and registers exist and fit
    together."""
    study, schedule = project.study, project.study.schedule
    if schedule is None:
        return
    fields = project.field_map()
    events = {e.unique_name for e in study.events}
    sources = sorted(f.stem for f in (project.root / REGISTERS_DIR).glob("*.yaml"))
    anchor = fields.get(schedule.anchor_field)
    if anchor is None:
        report.error(
            "schedule",
            f"anchor field '{schedule.anchor_field}' does not exist",
            schedule.origin("anchor_field"),
        )
    elif not (anchor[1].validation or "").startswith("date"):
        report.error(
            "schedule",
            f"anchor field '{schedule.anchor_field}' must be a date field",
            schedule.origin("anchor_field"),
        )
    if study.longitudinal:
        if schedule.anchor_event not in events:
            report.error(
                "schedule",
                f"anchor event '{schedule.anchor_event}' is not defined",
                schedule.origin("anchor_event"),
            )
        elif anchor and schedule.anchor_event not in project.events_of(anchor[0].form):
            report.error(
                "schedule",
                f"anchor field '{schedule.anchor_field}' is not collected at "
                f"'{schedule.anchor_event}'",
                schedule.origin("anchor_event"),
            )
    for i, followup in enumerate(schedule.followups):
        if followup.event not in events:
            report.error(
                "schedule",
                f"follow-up event '{followup.event}' is not defined",
                schedule.origin("followups", i),
            )
        for form in followup.complete:
            if form not in project.instruments or followup.event not in project.events_of(form):
                report.error(
                    "schedule",
                    f"completion form '{form}' is not collected at '{followup.event}'",
                    schedule.origin("followups", i, "complete"),
                )
        for n, source in enumerate(followup.registers):
            if source not in sources:
                report.error(
                    "schedule",
                    f"register '{source}' has no layout under "
                    f"{project.root / REGISTERS_DIR} (registers: {', '.join(sources) or 'none'})",
                    schedule.origin("followups", i, "registers", n),
                )


def _reminders(report: Report, project: Project, ctx: DictionaryContext) -> None:
    """The reminder policy and tracking form point at fields, events and templates that exist:
    a reminder that cannot be rendered or addressed would fail at 9 o'clock on a weekday."""
    study, fields = project.study, project.field_map()
    schedule, policy = study.schedule, study.reminders
    tracking = schedule.tracking if schedule else None
    if tracking is not None:
        for name in type(tracking).model_fields:
            value = getattr(tracking, name)
            if name != "form" and (value not in fields or fields[value][0].form != tracking.form):
                report.error(
                    "followup",
                    f"tracking {name} '{value}' is not a field of '{tracking.form}'",
                    tracking.origin(name),
                )
        try:
            state_labels(project, "en")
        except HektaError as exc:
            report.error("followup", str(exc), tracking.origin("status"))
    if policy is None:
        return
    if schedule is None:
        report.error("followup", "a reminder policy needs a schedule", policy.origin())
    try:
        SendCalendar.from_policy(policy)
    except HektaError as exc:
        report.error("followup", exc.message, exc.origin or policy.origin())
    contact = policy.contact
    named: dict[str, tuple[str | None, Node]] = {
        "mobile": (contact.mobile, contact),
        "email": (contact.email, contact),
    }
    if contact.preferred:
        named["field"] = (contact.preferred.field, contact.preferred)
    for key, (field_name, node) in named.items():
        if field_name and field_name not in fields:
            message = f"contact field '{field_name}' does not exist"
            report.error("followup", message, node.origin(key))
    check_stop_rules(report, "followup", policy, policy.stop, fields)
    present = template_names(project.root)
    wanted = [
        (s.template or s.name, c) for s in policy.steps if s.to == "participant" for c in CHANNELS
    ]
    if policy.digest is not None:
        wanted.append((policy.digest.template, "email"))
    for name, channel in wanted:
        for language in LANGUAGES:
            if (language, name, channel) not in present:
                report.error(
                    "followup",
                    f"no template {language}/{name}.{channel}.j2 under "
                    f"{project.root / TEMPLATES_DIR}",
                    policy.origin("steps"),
                )


FOLLOWUP_RULES: list[Callable[[Report, Project, DictionaryContext], None]] = [
    _schedule,
    _reminders,
]
