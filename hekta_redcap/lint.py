"""Lint: stop a broken definition before it reaches REDCap.

Three layers of rules, each a small function:

- dictionary rules (`dictrules`) run on the compiled data dictionary (what REDCap would see):
  REDCap's own rules, always errors, and the project's stricter ones (names, logic, matrices,
  action tags, identifiers), errors on the project's forms and warnings on forms adopted from
  another project's dictionary (`rules: redcap`). They work on any dictionary, so
  `import-dictionary` runs them on a CSV before adopting it.
- definition rules check what only the YAML holds: translations, licensed text, scoring specs.
- study rules check the project design: events, mappings, repeating setup, the schedule.

Each finding names the file and line it is about. Errors make `hekta-redcap lint` exit 1;
warnings do not.

    >>> findings = lint_project(load_project("hekta"))
    >>> [str(f) for f in findings if f.severity == "error"]
    []
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path

from hekta_redcap.compile.design import unique_event_name
from hekta_redcap.compile.dictionary import compile_project
from hekta_redcap.core.errors import DefinitionError, HektaError, Origin
from hekta_redcap.definitions.instruments import Derived, Field, Instrument, Score
from hekta_redcap.definitions.model import LANGUAGES
from hekta_redcap.definitions.study import (
    FORMS_DIR,
    Project,
    available_projects,
    default_root,
    load_project,
)
from hekta_redcap.followup.messages import CHANNELS, TEMPLATES_DIR, template_names
from hekta_redcap.followup.schedule import state_labels
from hekta_redcap.followup.sendtime import SendCalendar
from hekta_redcap.redcap import logic
from hekta_redcap.redcap.fieldtypes import CHOICE_TYPES
from hekta_redcap.redcap.rules import (
    DictionaryContext,
    Finding,
    Report,
    check_logic,
    lint_dictionary,
)

# Definition rules ------------------------------------------------------------------------------


def _texts(report: Report, project: Project, ctx: DictionaryContext) -> None:
    """Every label has bokmål; English is expected; licensed text is installed or warned."""
    for inst in project.instruments.values():
        if inst.overlay_missing:
            report.warn(
                "licensed-text",
                f"{inst.form} is codes_only and its licensed text is not installed: compiled "
                f"with placeholders (put the site's text in instruments/local/{inst.form}.yaml)",
                inst.origin("licence"),
            )
        if inst.licence == "codes_only" or inst.rules == "redcap":
            continue  # an adopted form's blank labels are REDCap's to allow
        for lang in LANGUAGES:
            missing = []
            for f in inst.fields:
                if f.label is None or not f.label.get(lang):
                    missing.append(f.name)
                missing += [
                    f"{f.name} code {c.code}"
                    for c in inst.choices_of(f)
                    if c.label is None or not c.label.get(lang)
                ]
            if not missing:
                continue
            shown = ", ".join(missing[:5]) + (
                f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            )
            message = f"{inst.form}: no {lang} label for {shown}"
            if lang == "nb":
                report.error("label", message, inst.origin("fields"))
            else:
                report.warn("label", message, inst.origin("fields"))


def _choice_sets(report: Report, project: Project, ctx: DictionaryContext) -> None:
    """Named choice sets exist, are used, and have unique codes."""
    for inst in project.instruments.values():
        used = {f.choices for f in inst.fields if isinstance(f.choices, str)}
        for i, f in enumerate(inst.fields):
            if isinstance(f.choices, str) and f.choices not in inst.choice_sets:
                report.error(
                    "choices",
                    f"field '{f.name}': no choice set '{f.choices}'",
                    inst.origin("fields", i, "choices"),
                )
            if f.choices is not None and f.type not in CHOICE_TYPES:
                report.error(
                    "choices",
                    f"field '{f.name}' of type {f.type} cannot have choices",
                    inst.origin("fields", i, "choices"),
                )
        for name in inst.choice_sets:
            if name not in used:
                report.warn(
                    "choices", f"choice set '{name}' is not used", inst.origin("choice_sets", name)
                )


def _scoring(report: Report, project: Project, ctx: DictionaryContext) -> None:
    """Scoring specs name this form's items, valid codes, and rules that can be computed."""
    fields = project.field_map()
    computed: set[str] = set()
    for inst in project.instruments.values():
        if inst.scoring is None:
            continue
        own = {f.name: f for f in inst.fields}
        for score in inst.scoring.scores:
            _check_score(report, ctx, inst, score, own, fields, computed)
        for derived in inst.scoring.derived:
            _check_derived(report, ctx, project, derived, fields, computed)


def _numeric_codes(inst: Instrument, name: str) -> list[float] | None:
    field = next(f for f in inst.fields if f.name == name)
    if field.type in ("radio", "dropdown"):
        try:
            return [float(c.code) for c in inst.choices_of(field)]
        except ValueError:
            return None
    if field.type in ("yesno", "truefalse"):
        return [0.0, 1.0]
    if field.type in ("text", "calc", "slider") and (
        field.type != "text" or (field.validation or "").startswith(("integer", "number"))
    ):
        return []
    return None


def _claim_name(
    report: Report,
    name: str,
    where: Origin | None,
    fields: dict[str, tuple[Instrument, Field]],
    computed: set[str],
) -> None:
    """Score and derived names share the namespace of fields: each name once."""
    if name in fields or name in computed:
        report.error("scoring", f"'{name}' is already a field or score", where)
    computed.add(name)


def _check_score(
    report: Report,
    ctx: DictionaryContext,
    inst: Instrument,
    score: Score,
    own: dict[str, Field],
    fields: dict[str, tuple[Instrument, Field]],
    computed: set[str],
) -> None:
    where = score.origin()
    _claim_name(report, score.name, where, fields, computed)
    for item in score.items:
        if item not in own:
            report.error(
                "scoring",
                f"score '{score.name}': item '{item}' is not a field of {inst.form}",
                where,
            )
        elif _numeric_codes(inst, item) is None:
            report.error(
                "scoring", f"score '{score.name}': item '{item}' does not hold numeric codes", where
            )
        elif score.aggregate == "profile" and any(
            c >= 10 or c < 0 for c in _numeric_codes(inst, item) or []
        ):
            report.error(
                "scoring",
                f"score '{score.name}': profile item '{item}' needs one-digit codes",
                where,
            )
    if len(set(score.items)) != len(score.items):
        report.error("scoring", f"score '{score.name}' lists an item twice", where)
    for item in score.reverse:
        if item not in score.items:
            report.error(
                "scoring",
                f"score '{score.name}': reversed item '{item}' is not one of its items",
                where,
            )
        elif item in own and not _numeric_codes(inst, item):
            report.error(
                "scoring", f"score '{score.name}': reversed item '{item}' has no code range", where
            )
    for i, zero in enumerate(score.structural_zeros):
        zorigin = score.origin("structural_zeros", i)
        for item in zero.items:
            if item not in score.items:
                report.error(
                    "scoring",
                    f"score '{score.name}': structural zero '{item}' is not one of its items",
                    zorigin,
                )
        _check_spec_logic(report, ctx, zero.when, f"score '{score.name}' structural zero", zorigin)
    if score.min_answered is not None and not 1 <= score.min_answered <= len(score.items):
        report.error(
            "scoring", f"score '{score.name}': min_answered must be 1..{len(score.items)}", where
        )
    if score.prorate and score.aggregate != "sum":
        report.error("scoring", f"score '{score.name}': prorate applies to sums only", where)
    if score.gate:
        for item in score.gate.items:
            if item not in own:
                report.error(
                    "scoring",
                    f"score '{score.name}': gate item '{item}' is not a field of {inst.form}",
                    where,
                )
        if not 1 <= score.gate.min_answered <= len(score.gate.items):
            report.error("scoring", f"score '{score.name}': gate min_answered out of range", where)


def _check_derived(
    report: Report,
    ctx: DictionaryContext,
    project: Project,
    derived: Derived,
    fields: dict[str, tuple[Instrument, Field]],
    computed: set[str],
) -> None:
    where = derived.origin()
    if (
        derived.source is not None
        and derived.source not in computed
        and derived.source not in fields
    ):
        report.error(
            "scoring",
            f"'{derived.name}' is computed from '{derived.source}', which is neither a score "
            "defined before it nor a field",
            derived.origin("from"),
        )
    _claim_name(report, derived.name, where, fields, computed)
    if derived.bands:
        mins = [b.min for b in derived.bands]
        if mins != sorted(mins) or len(set(mins)) != len(mins):
            report.error(
                "scoring", f"'{derived.name}': band minimums must increase", derived.origin("bands")
            )
        codes = [b.code for b in derived.bands]
        if len(set(codes)) != len(codes):
            report.error(
                "scoring", f"'{derived.name}': band codes must be unique", derived.origin("bands")
            )
    if derived.by_sex is not None:
        if project.study.sex is None:
            report.error(
                "scoring",
                f"'{derived.name}' is sex-specific but the study file has no 'sex' coding",
                where,
            )
        if set(derived.by_sex) != {"male", "female"}:
            report.error(
                "scoring",
                f"'{derived.name}': by_sex needs both male and female",
                derived.origin("by_sex"),
            )
    if derived.logic:
        _check_spec_logic(report, ctx, derived.logic, f"'{derived.name}'", derived.origin("logic"))


def _check_spec_logic(
    report: Report, ctx: DictionaryContext, text: str, what: str, origin: Origin | None
) -> None:
    check_logic(report, ctx, ctx.row_map(), text, what, origin)


DEFINITION_RULES: list[Callable[[Report, Project, DictionaryContext], None]] = [
    _texts,
    _choice_sets,
    _scoring,
]


# Study rules ----------------------------------------------------------------------------------


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
            _check_spec_logic(report, ctx, label, f"repeat label of '{use.form}'", origin)
    for i, event in enumerate(study.repeating_events):
        if event not in events:
            report.error(
                "repeating",
                f"repeating event '{event}' is not defined",
                study.origin("repeating_events", i),
            )


def _label_logic(label: str) -> str:
    """A custom label's piped fields as a logic expression, so their references get checked."""
    refs = re.findall(r"(?:\[[^\]]+\])+", label)
    return " + ".join(f"concat({r})" for r in refs) or "''"


def _schedule(report: Report, project: Project, ctx: DictionaryContext) -> None:
    """The anchor date field and follow-up events exist and fit together."""
    study, schedule = project.study, project.study.schedule
    if schedule is None:
        return
    fields = project.field_map()
    events = {e.unique_name for e in study.events}
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
    named = {"mobile": (contact.mobile, contact), "email": (contact.email, contact)}
    if contact.preferred:
        named["field"] = (contact.preferred.field, contact.preferred)
    for key, (name, node) in named.items():
        if name and name not in fields:
            report.error("followup", f"contact field '{name}' does not exist", node.origin(key))
    for i, rule in enumerate(policy.stop):
        try:
            refs = logic.references(logic.parse(rule.when))
        except logic.LogicError as exc:
            report.error("followup", f"stop rule '{rule.reason}': {exc}", policy.origin("stop", i))
            continue
        for ref in refs:
            if ref.field and ref.field not in fields:
                report.error(
                    "followup",
                    f"stop rule '{rule.reason}' reads '{ref.field}', which does not exist",
                    policy.origin("stop", i),
                )
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
            codes = {c.code for c in entry[0].choices_of(entry[1])}
            for label in ("male", "female"):
                code = getattr(study.sex, label)
                if code not in codes:
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


def _data_quality(report: Report, project: Project, ctx: DictionaryContext) -> None:
    """Validation's settings: fields asking for an outlier check are numbers (and compare by
    an existing field), `expected` blanks are on fields a person enters, switched-off rules
    exist, and the study's checks name a field and hold logic that reads existing fields."""
    from hekta_redcap.validation.problems import RULES

    fields, rows = project.field_map(), ctx.row_map()
    for _, f in project.fields():
        origin = f.origin("outlier")
        if f.outlier is not None:
            number = f.validation in ("integer", "number") or (f.validation or "").startswith(
                "number_"
            )
            if f.type not in ("text", "calc", "slider") or (f.type == "text" and not number):
                report.error("data-quality", f"'{f.name}': an outlier check needs numbers", origin)
            if f.outlier.by and f.outlier.by not in fields:
                report.error(
                    "data-quality",
                    f"'{f.name}': outlier by '{f.outlier.by}', which does not exist",
                    origin,
                )
        if f.expected and (f.type in ("calc", "descriptive") or f.required):
            kind = "required" if f.required else f.type
            report.warn(
                "data-quality",
                f"'{f.name}': expected has no effect on a {kind} field",
                f.origin("expected"),
            )
    quality = project.study.data_quality
    checks = [c.name for c in quality.checks]
    for i, name in enumerate(quality.disabled):
        if name not in RULES and name not in checks:
            known = ", ".join([*RULES, *checks])
            report.error(
                "data-quality",
                f"data_quality.disabled: no rule '{name}' (rules: {known})",
                project.study.origin("data_quality", "disabled", i),
            )
    for i, check in enumerate(quality.checks):
        origin = project.study.origin("data_quality", "checks", i)
        if checks.count(check.name) > 1 or check.name in RULES:
            report.error("data-quality", f"check name '{check.name}' is not unique", origin)
        if check.field not in fields:
            report.error("data-quality", f"check '{check.name}': no field '{check.field}'", origin)
        check_logic(report, ctx, rows, check.when, f"check '{check.name}'", origin)
        for lang in LANGUAGES:
            if not check.message.get(lang):
                report.error(
                    "data-quality", f"check '{check.name}': no message in '{lang}'", origin
                )


STUDY_RULES: list[Callable[[Report, Project, DictionaryContext], None]] = [
    _events,
    _mapping,
    _schedule,
    _reminders,
    _sex_and_codes,
    _data_quality,
]


# Entry points ----------------------------------------------------------------------------------


def project_context(project: Project) -> DictionaryContext:
    return DictionaryContext(
        rows=compile_project(project),
        record_id=project.study.record_id,
        events={e.unique_name for e in project.study.events},
        form_events={u.form: set(u.events) for u in project.study.instruments},
        adopted_forms={i.form for i in project.instruments.values() if i.rules == "redcap"},
    )


def lint_project(project: Project) -> list[Finding]:
    report = Report()
    ctx = project_context(project)
    lint_dictionary(ctx, report)
    for rule in (*DEFINITION_RULES, *STUDY_RULES):
        rule(report, project, ctx)
    return sorted(set(report.findings), key=_order)


def _order(f: Finding) -> tuple[str, int, str, str, str]:
    return (
        str(f.origin.file) if f.origin else "",
        (f.origin.line or 0) if f.origin else 0,
        f.severity,
        f.message,
        f.rule,
    )


def lint_all(
    root: Path | None = None, projects: Iterable[str] | None = None, overlay_dir: Path | None = None
) -> list[Finding]:
    """Lint the named projects (default: every study file) and flag unused instrument files.

    A file that cannot be loaded becomes an error finding instead of stopping the run.
    """
    root = root or default_root()
    names = list(projects) if projects else available_projects(root)
    findings: list[Finding] = []
    used: set[str] = set()
    for name in names:
        try:
            project = load_project(name, root, overlay_dir)
        except DefinitionError as exc:
            findings.append(Finding(exc.origin, "error", "load", exc.message))
            continue
        used.update(project.forms)
        findings += lint_project(project)
    if not projects and not any(f.rule == "load" for f in findings):
        for file in sorted((root / FORMS_DIR).glob("*.yaml")):
            if file.stem not in used:
                message = f"form '{file.stem}' is not used by any study"
                findings.append(Finding(Origin(file), "warning", "unused", message))
    return findings
