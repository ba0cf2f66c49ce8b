"""Study rules on validation's settings: outlier checks, expected blanks, disabled rules and
the study's own cross-field checks."""

from __future__ import annotations

from collections.abc import Callable

from hekta_redcap.compile.checks import DictionaryContext, check_logic
from hekta_redcap.core.findings import Report
from hekta_redcap.definitions.model import LANGUAGES
from hekta_redcap.definitions.study import (
    Project,
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


DATA_QUALITY_RULES: list[Callable[[Report, Project, DictionaryContext], None]] = [_data_quality]
