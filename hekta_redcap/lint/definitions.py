"""Definition rules: what only the YAML holds (translations, licensed text, choice sets,
scoring specifications), at the file and line of the definition."""

from __future__ import annotations

from collections.abc import Callable

from hekta_redcap.compile.checks import DictionaryContext, check_logic
from hekta_redcap.core.errors import Origin
from hekta_redcap.core.findings import Report
from hekta_redcap.definitions.instruments import Derived, Field, Instrument, Score
from hekta_redcap.definitions.model import LANGUAGES
from hekta_redcap.definitions.study import (
    Project,
)
from hekta_redcap.redcap.fieldtypes import CHOICE_TYPES


def _texts(report: Report, project: Project, ctx: DictionaryContext) -> None:
    """Every label has bokmål; English is expected; licensed text is installed or warned."""
    for inst in project.instruments.values():
        if inst.overlay_missing:
            owner = inst.items_from.form if inst.items_from else inst.form
            report.warn(
                "licensed-text",
                f"{inst.form} is codes_only and its licensed text is not installed: compiled "
                f"with placeholders (put the site's text in instruments/local/{owner}.yaml)",
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
