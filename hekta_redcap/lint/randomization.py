"""Study rules on the randomization block: the target, the arms, the strata, the blocks and
the prerequisites point at fields, forms and events that exist and fit REDCap's module."""

from __future__ import annotations

from collections.abc import Callable

from hekta_redcap.compile.checks import DictionaryContext
from hekta_redcap.core.findings import Report
from hekta_redcap.definitions.study import Project
from hekta_redcap.randomization.design import STRATUM_TYPES
from hekta_redcap.redcap import logic

RULE = "randomization"


def _randomization(report: Report, project: Project, ctx: DictionaryContext) -> None:
    spec = project.study.randomization
    if spec is None:
        return
    fields = project.field_map()
    events = {e.unique_name for e in project.study.events}

    def error(message: str, *keys: str | int) -> None:
        report.error(RULE, message, spec.origin(*keys))

    def at_event(name: str, *keys: str | int) -> bool:
        """`name` is a field on a non-repeating form collected at the design's event."""
        if name not in fields:
            error(f"field '{name}' does not exist", *keys)
            return False
        form = fields[name][0].form
        use = project.use_of(form)
        if project.study.longitudinal and spec.event not in use.events:
            error(f"field '{name}' (form {form}) is not collected at '{spec.event}'", *keys)
            return False
        if use.repeating or spec.event in project.study.repeating_events:
            error(f"field '{name}' is on a repeating form or event, which REDCap refuses", *keys)
            return False
        return True

    if project.study.longitudinal and spec.event not in events:
        error(f"event '{spec.event}' is not defined", "event")
        return
    if not project.study.longitudinal and spec.event is not None:
        error("a classic project has no events: leave out 'event'", "event")
    if at_event(spec.target, "target"):
        inst, target = fields[spec.target]
        if target.type not in ("radio", "dropdown"):
            error(f"target '{spec.target}' must be a radio or dropdown field", "target")
        else:
            codes = inst.codes_of(target) or []
            arms = [arm.code for arm in spec.arms]
            if sorted(arms) != sorted(codes) or len(set(arms)) != len(arms):
                error(f"arms {arms} must be the target's choice codes {codes}, each once", "arms")
    if len(spec.arms) < 2:
        error("at least two arms are needed", "arms")
    for i, arm in enumerate(spec.arms):
        if arm.ratio < 1:
            error(f"arm {arm.code}: the ratio must be a whole number of 1 or more", "arms", i)
    unit = sum(max(arm.ratio, 1) for arm in spec.arms)
    if not spec.blocks:
        error("at least one block size is needed", "blocks")
    for size in spec.blocks:
        if size < unit or size % unit:
            error(
                f"block size {size} is not a multiple of the ratios' sum ({unit}), so a block "
                "cannot keep the allocation ratio",
                "blocks",
            )
    if len(set(spec.blocks)) != len(spec.blocks):
        error("block sizes are listed twice", "blocks")
    if len(set(spec.blocks)) == 1:
        report.warn(
            RULE,
            "a single block size lets staff who know it foresee the last allocations of each "
            "block; list two or more sizes",
            spec.origin("blocks"),
        )
    seen: set[str] = set()
    for i, stratum in enumerate(spec.strata):
        if (stratum.field is None) == (stratum.dag is None):
            error("a stratum names either a field or data access groups ('dag')", "strata", i)
            continue
        name = stratum.field or "dag"
        if name in seen:
            error(f"stratum '{name}' is listed twice", "strata", i)
        seen.add(name)
        if stratum.dag is not None:
            if not stratum.dag or len(set(stratum.dag)) != len(stratum.dag):
                error("'dag' lists each data access group's unique name once", "strata", i)
            continue
        stratum_field = stratum.field
        if stratum_field == spec.target:
            error("the target cannot be a stratum", "strata", i)
        elif stratum_field is not None and at_event(stratum_field, "strata", i):
            inst, field = fields[stratum_field]
            if field.type not in STRATUM_TYPES or not inst.codes_of(field):
                error(
                    f"stratum '{stratum.field}' must be a multiple-choice field "
                    "(radio, dropdown, yes/no or true/false)",
                    "strata",
                    i,
                )
    if spec.planned.per_stratum < 1 or spec.planned.margin < 0:
        error("planned enrolment must be 1 or more and the margin 0 or more", "planned")
    try:
        refs = logic.references(logic.parse(spec.consent))
    except logic.LogicError as exc:
        error(f"consent: {exc}", "consent")
        refs = []
    for ref in refs:
        if ref.field and ref.field not in fields:
            error(f"consent reads '{ref.field}', which does not exist", "consent")
    for form in spec.complete:
        if form not in project.instruments:
            error(f"form '{form}' in 'complete' does not exist", "complete")
        elif project.study.longitudinal and spec.event not in project.events_of(form):
            error(f"form '{form}' in 'complete' is not collected at '{spec.event}'", "complete")
    if spec.date_field and at_event(spec.date_field, "date_field"):
        validation = fields[spec.date_field][1].validation or ""
        if not validation.startswith(("date", "datetime")):
            error(f"date_field '{spec.date_field}' must be a date or datetime field", "date_field")
    if spec.by_field:
        at_event(spec.by_field, "by_field")


RANDOMIZATION_RULES: list[Callable[[Report, Project, DictionaryContext], None]] = [_randomization]
