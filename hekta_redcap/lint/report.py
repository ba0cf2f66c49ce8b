"""Study rules on what the trial report reads: the planned recruitment (`recruitment`) and the
baseline table's variables (`baseline_table`), each finding at its line."""

from __future__ import annotations

from collections.abc import Callable

from hekta_redcap.compile.checks import DictionaryContext
from hekta_redcap.core.findings import Report
from hekta_redcap.definitions.study import Project

RULE = "report"


def _recruitment(report: Report, project: Project, ctx: DictionaryContext) -> None:
    plan = project.study.recruitment
    if plan is None:
        return

    def error(message: str, *keys: str | int) -> None:
        report.error(RULE, message, plan.origin(*keys))

    if plan.end <= plan.start:
        error(f"recruitment ends ({plan.end}) before it starts ({plan.start})", "end")
    if plan.target < 1:
        error("the recruitment target must be 1 or more", "target")
    if not plan.per_site:
        return
    spec = project.study.randomization
    stratum = spec.strata[0] if spec and spec.strata else None
    if stratum is None:
        error("per_site needs a randomization stratum (the site) to count by", "per_site")
        return
    codes = stratum.dag
    if stratum.field is not None and stratum.field in project.field_map():
        instrument, field = project.field_map()[stratum.field]
        codes = instrument.codes_of(field)
    for code, target in plan.per_site.items():
        if codes is not None and code not in codes:
            error(
                f"per_site: '{code}' is not a site (codes of {stratum.field or 'dag'}: "
                f"{', '.join(codes)})",
                "per_site",
                code,
            )
        elif target < 0:
            error(f"per_site: site '{code}' has a negative target", "per_site", code)
        elif spec is not None and target > spec.planned.per_stratum:
            error(
                f"per_site: site '{code}' plans {target}, more than the allocation table's "
                f"planned enrolment per stratum ({spec.planned.per_stratum})",
                "per_site",
                code,
            )
    if sum(plan.per_site.values()) != plan.target:
        error(
            f"per_site adds up to {sum(plan.per_site.values())}, not the target {plan.target}",
            "per_site",
        )


def _baseline_table(report: Report, project: Project, ctx: DictionaryContext) -> None:
    spec = project.study.randomization
    event = spec.event if spec else None
    fields = project.field_map()
    scores = {
        name: instrument.form
        for instrument in project.instruments.values()
        if instrument.scoring
        for name in [
            *(s.name for s in instrument.scoring.scores),
            *(d.name for d in instrument.scoring.derived),
        ]
    }
    seen: set[str] = set()
    for section in project.study.baseline_table:
        for j, name in enumerate(section.variables):
            origin = section.origin("variables", j)
            form = fields[name][0].form if name in fields else scores.get(name)
            if form is None:
                report.error(RULE, f"baseline_table: '{name}' is no field or score", origin)
            elif event is not None and event not in project.events_of(form):
                report.error(
                    RULE,
                    f"baseline_table: '{name}' (form {form}) is not collected at '{event}'",
                    origin,
                )
            elif project.use_of(form).repeating:
                report.error(RULE, f"baseline_table: '{name}' is on a repeating form", origin)
            elif name in seen:
                report.error(RULE, f"baseline_table: '{name}' is listed twice", origin)
            seen.add(name)
        if not section.variables:
            report.error(RULE, "baseline_table: a section without variables", section.origin())


REPORT_RULES: list[Callable[[Report, Project, DictionaryContext], None]] = [
    _recruitment,
    _baseline_table,
]
