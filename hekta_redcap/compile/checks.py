"""The data dictionary's checks: REDCap's own rules (`redcap.rules`) and this project's advice
on dictionary rows, whether compiled from the definitions or read from a CSV being imported.

The project's rules are advice REDCap does not enforce (a name Stata cannot take, a field that
looks identifying, logic naming a field that does not exist, a calculation that depends on
itself). On the project's own forms most are errors (`Report.project_error`); on a dictionary
being adopted, or a form adopted from one (`rules: redcap`), they are warnings. docs/redcap-rules.md
lists both kinds.

    >>> report = lint_dictionary(DictionaryContext(rows=compile_project(project)))
    >>> report.errors
    []
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from hekta_redcap.core.errors import Origin
from hekta_redcap.core.findings import Report
from hekta_redcap.redcap import logic
from hekta_redcap.redcap.dictionary import DictRow
from hekta_redcap.redcap.fieldtypes import (
    ADMIN_TYPES,
    CHOICE_TYPES,
    LEGACY_VALIDATIONS,
    checkbox_column,
    has_bounds,
    is_site_validation,
    parse_bound,
    parse_choices,
)
from hekta_redcap.redcap.rules import MAX_NAME, NAME, RESERVED_NAMES, redcap_refusals

STATS_NAME = 26  # Stata/SPSS-friendly length, as REDCap recommends
# Action tags REDCap documents (REDCap 14/15). An unknown tag is usually a typo, or an external
# module's tag; either way REDCap keeps it as text.
ACTION_TAGS = frozenset(
    """APPUSERNAME-APP BARCODE-APP CALCDATE CALCTEXT CHARLIMIT DEFAULT DOWNLOAD-COUNT
    FORCE-MINMAX HIDDEN HIDDEN-APP HIDDEN-FORM HIDDEN-PDF HIDDEN-SURVEY HIDEBUTTON HIDECHOICE
    HIDETEXT IF INLINE INLINE-PREVIEW LANGUAGE-CURRENT-FORM LANGUAGE-CURRENT-SURVEY
    LANGUAGE-FORCE LANGUAGE-FORCE-FORM LANGUAGE-FORCE-SURVEY LANGUAGE-SET LATITUDE LONGITUDE
    MAXCHECKED MAXCHOICE MAXCHOICE-SURVEY-COMPLETE NOMISSING NONEOFTHEABOVE NOW NOW-SERVER
    NOW-UTC PASSWORDMASK PLACEHOLDER PREFILL RANDOMORDER READONLY READONLY-APP READONLY-FORM
    READONLY-SURVEY RICHTEXT SETVALUE SHOWCHOICE SYNC-APP TODAY TODAY-SERVER TODAY-UTC
    USERNAME WORDLIMIT CONSENT-VERSION""".split()
)
ACTION_TAG = re.compile(r"(?<![\w.])@([A-Z][A-Z0-9-]*[A-Z0-9])")

# Words in a field's name or label that suggest it identifies a person (nb and en).
IDENTIFYING = re.compile(
    r"(?<![a-z])(first_?name|last_?name|surname|fornavn|etternavn|full_?name|navn|name|"
    r"f(ø|o)dselsnummer|f(ø|o)dselsdato|birth_?date|date_of_birth|dob|personnummer|"
    r"national_?id|fnr|ssn|phone|telefon|mobil|mobile|e-?mail|e-?post|adresse|address|"
    r"postnummer|zip)(?![a-z])",
    re.IGNORECASE,
)


@dataclass
class DictionaryContext:
    """What the dictionary rules need to know about the project around the rows."""

    rows: list[DictRow]
    record_id: str | None = None
    events: set[str] = field(default_factory=set)
    form_events: dict[str, set[str]] = field(default_factory=dict)
    adopting: bool = False  # a dictionary being imported: the project's rules are advice
    adopted_forms: set[str] = field(default_factory=set)  # forms held to REDCap's rules only

    @property
    def longitudinal(self) -> bool:
        return bool(self.events)

    def row_map(self) -> dict[str, DictRow]:
        return {r.field_name: r for r in self.rows}

    def advisory(self, row: DictRow) -> bool:
        """Whether the project's rules are only advice for this row."""
        return self.adopting or row.form_name in self.adopted_forms


# The lint rule each kind of refusal reports under.
RULE_OF_KIND = {
    "duplicated": "field-name",
    "no-form": "form-name",
    "not-sequential": "form-contiguous",
    "bounds": "validation",
    "no-fields": "record-id",
}


def _redcap(report: Report, ctx: DictionaryContext) -> None:
    for refusal in redcap_refusals(ctx.rows):
        report.error(RULE_OF_KIND.get(refusal.kind, refusal.kind), refusal.message, refusal.origin)


# The project's rules --------------------------------------------------------------------------


def _names(report: Report, ctx: DictionaryContext) -> None:
    """Names that REDCap takes but that trouble exports: length, underscores, suffixes."""
    for row in ctx.rows:
        name, advisory = row.field_name, ctx.advisory(row)
        if not NAME.fullmatch(name):
            continue
        if "___" in name:
            report.project_error(
                "field-name",
                f"field name '{name}' contains ___, which REDCap's checkbox columns use",
                row.origin,
                advisory,
            )
        elif name.endswith("_") or "__" in name:
            report.warn(
                "field-name",
                f"field name '{name}' ends in or doubles '_' (confusable with checkbox columns)",
                row.origin,
            )
        if name.startswith("redcap_") and name not in RESERVED_NAMES:
            report.project_error(
                "field-name",
                f"field name '{name}' is reserved by REDCap's prefix redcap_ for its own columns",
                row.origin,
                advisory,
            )
        if name.endswith(("_complete", "_timestamp")) and not name.startswith("redcap_"):
            form = name.rsplit("_", 1)[0]
            if form not in {r.form_name for r in ctx.rows}:
                report.project_error(
                    "field-name",
                    f"field name '{name}' looks like a form's status or survey timestamp column",
                    row.origin,
                    advisory,
                )
        if STATS_NAME < len(name) <= MAX_NAME:
            report.warn(
                "field-name-length",
                f"field name '{name}' has {len(name)} characters; Stata and SPSS exports "
                f"work best with {STATS_NAME} or fewer",
                row.origin,
            )


def _record_id(report: Report, ctx: DictionaryContext) -> None:
    """The record-id field is the one the study file names."""
    if ctx.rows and ctx.record_id and ctx.rows[0].field_name != ctx.record_id:
        first = ctx.rows[0]
        report.error(
            "record-id",
            f"the first field must be the record id '{ctx.record_id}', not '{first.field_name}'",
            first.origin,
        )


def _types_and_choices(report: Report, ctx: DictionaryContext) -> None:
    """Choices only where REDCap reads them, labelled once each; admin-only types."""
    for row in ctx.rows:
        ftype, text, origin, name = (
            row.field_type,
            row.select_choices_or_calculations,
            row.origin,
            row.field_name,
        )
        advisory = ctx.advisory(row)
        if ftype in ADMIN_TYPES:
            report.project_error(
                "field-type",
                f"field '{name}' is of type {ftype}, which only a REDCap administrator can add "
                "or change",
                origin,
                advisory,
            )
        if ftype in CHOICE_TYPES:
            _check_choices(report, row, advisory)
        elif ftype == "slider":
            if text and len(text.split("|")) > 3:
                report.project_error(
                    "choices", f"slider '{name}' has more than three labels", origin, advisory
                )
        elif text.strip() and ftype not in ("calc", "sql", "text"):
            report.project_error(
                "choices",
                f"field '{name}' of type {ftype} cannot have choices or a calculation "
                "(REDCap ignores them)",
                origin,
                advisory,
            )
        if ftype in ("descriptive", "calc") and row.required_field:
            report.warn("required", f"{ftype} field '{name}' cannot be required", origin)


def _check_choices(report: Report, row: DictRow, advisory: bool) -> None:
    name, origin = row.field_name, row.origin
    choices = parse_choices(row.select_choices_or_calculations)
    labels = Counter(label for _, label in choices)
    for label, count in labels.items():
        if count > 1 and label:
            report.warn(
                "choices", f"field '{name}': choice label '{label}' is used {count} times", origin
            )
    if any(not label for _, label in choices):
        report.project_error(
            "choices", f"field '{name}': every choice needs a label", origin, advisory
        )
    if row.field_type == "checkbox":
        columns = Counter(checkbox_column(name, code) for code, _ in choices)
        for column, count in columns.items():
            if count > 1:
                report.project_error(
                    "choices",
                    f"field '{name}': {count} codes share the export column '{column}'",
                    origin,
                    advisory,
                )


def _validation(report: Report, ctx: DictionaryContext) -> None:
    """Bounds that order and that REDCap reads; validation names REDCap keeps for old files."""
    for row in ctx.rows:
        name, origin, advisory = row.field_name, row.origin, ctx.advisory(row)
        validation = row.text_validation_type_or_show_slider_number
        low, high = row.text_validation_min, row.text_validation_max
        if validation in LEGACY_VALIDATIONS and row.field_type == "text":
            report.warn(
                "validation",
                f"field '{name}': validation '{validation}' is an old name REDCap reads as "
                f"'{LEGACY_VALIDATIONS[validation]}'",
                origin,
            )
        elif is_site_validation(validation) and row.field_type == "text":
            report.warn(
                "validation",
                f"field '{name}': validation '{validation}' is not one REDCap ships (a site may "
                "define it); its values are not checked",
                origin,
            )
        if row.field_type == "slider":
            for bound in (b for b in (low, high) if b):
                if not re.fullmatch(r"-?\d+", bound.strip()):
                    report.project_error(
                        "validation",
                        f"slider '{name}': min and max are whole numbers, not {bound!r}",
                        origin,
                        advisory,
                    )
            continue
        if (low or high) and not has_bounds(validation):
            report.project_error(
                "validation",
                f"field '{name}' has a min/max but no validation that takes one (date, time or "
                "number; REDCap ignores it)",
                origin,
                advisory,
            )
            continue
        try:
            parsed = [parse_bound(validation, b) for b in (low, high) if b]
        except ValueError:
            continue  # piped, or refused as REDCap's rule
        if len(parsed) == 2 and parsed[0] > parsed[1]:
            report.project_error(
                "validation",
                f"field '{name}': min {low} is greater than max {high}",
                origin,
                advisory,
            )


def _logic(report: Report, ctx: DictionaryContext) -> None:
    """Branching logic and calculations parse and name fields, codes and events that exist."""
    rows = ctx.row_map()
    for row in ctx.rows:
        advisory = ctx.advisory(row)
        if row.branching_logic.strip():
            what = f"field '{row.field_name}' branching logic"
            check_logic(report, ctx, rows, row.branching_logic, what, row.origin, advisory)
        if row.field_type == "calc" and row.select_choices_or_calculations.strip():
            what = f"calc field '{row.field_name}'"
            text = row.select_choices_or_calculations
            check_logic(report, ctx, rows, text, what, row.origin, advisory)
        for tag, argument in _function_tags(row.field_annotation):
            what = f"field '{row.field_name}' @{tag}"
            if argument is None:
                report.project_error(
                    "action-tag", f"{what}: parentheses do not close", row.origin, advisory
                )
            else:
                check_logic(report, ctx, rows, argument, what, row.origin, advisory)


def _function_tags(annotation: str) -> Iterator[tuple[str, str | None]]:
    """The logic inside @CALCTEXT(...), @CALCDATE(...) and @IF(...) action tags (None when the
    parentheses do not close). Only @CALCDATE's first argument and @IF's condition are logic."""
    for match in re.finditer(r"@(CALCTEXT|CALCDATE|IF)\s*\(", annotation):
        depth, parts, start, quote = 1, [], match.end(), ""
        for i in range(start, len(annotation)):
            char = annotation[i]
            if quote:
                quote = "" if char == quote else quote
                continue
            if char in "'\"":
                quote = char
                continue
            depth += {"(": 1, ")": -1}.get(char, 0)
            if depth == 1 and char == ",":
                parts.append(annotation[start:i])
                start = i + 1
            if depth == 0:
                parts.append(annotation[start:i])
                break
        if depth:
            yield match.group(1), None
            continue
        yield match.group(1), parts[0] if match.group(1) != "CALCTEXT" else ",".join(parts)


def check_logic(
    report: Report,
    ctx: DictionaryContext,
    rows: dict[str, DictRow],
    text: str,
    what: str,
    origin: Origin | None,
    advisory: bool = False,
) -> list[logic.Ref]:
    """Parse one logic expression and check every reference in it; returns the references."""

    def problem(message: str) -> None:
        report.project_error("logic", f"{what}: {message}", origin, advisory)

    try:
        tree = logic.parse(text)
    except logic.LogicError as exc:
        problem(str(exc))
        return []
    refs = logic.references(tree)
    _check_compared_codes(rows, tree, problem)
    for ref in refs:
        if ref.event and not _is_smart(ref.event):
            if not ctx.longitudinal:
                problem(f"event '{ref.event}' in a classic project")
            elif ref.event not in ctx.events:
                problem(f"unknown event '{ref.event}'")
        if ref.field is None:
            continue
        target = rows.get(ref.field)
        if target is None:
            complete = ref.field.removesuffix("_complete")
            if ref.field.endswith("_complete") and complete in {r.form_name for r in rows.values()}:
                continue
            problem(f"unknown field '{ref.field}'")
            continue
        if ref.code is not None:
            codes = [c for c, _ in parse_choices(target.select_choices_or_calculations)]
            if target.field_type != "checkbox":
                problem(f"'{ref.field}({ref.code})' but '{ref.field}' is not a checkbox")
            elif ref.code not in codes:
                problem(f"checkbox '{ref.field}' has no code '{ref.code}'")
        if ref.event and ref.event in ctx.events:
            mapped = ctx.form_events.get(target.form_name, set())
            if ref.event not in mapped:
                problem(
                    f"'{ref.field}' is on form '{target.form_name}', which is not collected at "
                    f"event '{ref.event}'"
                )
    return refs


def _check_compared_codes(
    rows: dict[str, DictRow], tree: logic.Node, problem: Callable[[str], None]
) -> None:
    """`[field] = 'x'` on a choice field must name one of its codes (a typo hides a field)."""
    for node in logic.walk(tree):
        if not isinstance(node, logic.Compare) or node.op not in ("=", "<>"):
            continue
        for ref, other in ((node.left, node.right), (node.right, node.left)):
            if not (isinstance(ref, logic.Ref) and isinstance(other, logic.Literal)):
                continue
            row = rows.get(ref.field or "")
            if row is None or ref.code is not None or ref.modifier in ("label",):
                continue
            codes = _codes_of(row)
            value = other.value
            text = f"{value:g}" if isinstance(value, float) else str(value)
            if codes is not None and text != "" and text not in codes:
                problem(f"'{text}' is not a code of '{ref.field}' ({', '.join(codes)})")


def _codes_of(row: DictRow) -> list[str] | None:
    if row.field_type in ("yesno", "truefalse"):
        return ["1", "0"]
    if row.field_type in ("radio", "dropdown"):
        return [code for code, _ in parse_choices(row.select_choices_or_calculations)]
    return None


def _is_smart(name: str) -> bool:
    """Smart variables ([previous-event-name], [current-instance]…) are the names with '-'."""
    return "-" in name


def _calc_cycles(report: Report, ctx: DictionaryContext) -> None:
    """Calculated fields must not depend on themselves, directly or through other calcs."""
    calcs = {r.field_name: r for r in ctx.rows if r.field_type == "calc"}
    depends: dict[str, set[str]] = {}
    for name, row in calcs.items():
        try:
            refs = logic.references(logic.parse(row.select_choices_or_calculations))
        except logic.LogicError:
            continue  # reported by _logic
        depends[name] = {r.field for r in refs if r.field in calcs}
    reported: set[frozenset[str]] = set()
    for start in depends:
        path = _find_cycle(start, depends)
        if path and frozenset(path) not in reported:
            reported.add(frozenset(path))
            row = calcs[start]
            report.project_error(
                "calc-cycle",
                "circular calculation: " + " -> ".join([*path, path[0]]),
                row.origin,
                ctx.advisory(row),
            )


def _find_cycle(start: str, depends: dict[str, set[str]]) -> list[str] | None:
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    while stack:
        node, path = stack.pop()
        for nxt in sorted(depends.get(node, ())):
            if nxt == start:
                return path
            if nxt not in path:
                stack.append((nxt, [*path, nxt]))
    return None


def _matrices(report: Report, ctx: DictionaryContext) -> None:
    """A matrix group's fields sit together; ranking belongs to a matrix group."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(ctx.rows):
        if row.matrix_group_name:
            groups[row.matrix_group_name].append(i)
        elif row.matrix_ranking:
            report.project_error(
                "matrix",
                f"field '{row.field_name}' has matrix ranking but no matrix group",
                row.origin,
                ctx.advisory(row),
            )
    for group, indexes in groups.items():
        first = ctx.rows[indexes[0]]
        if indexes != list(range(indexes[0], indexes[0] + len(indexes))):
            report.project_error(
                "matrix",
                f"matrix group '{group}' is not contiguous",
                first.origin,
                ctx.advisory(first),
            )


def _annotations(report: Report, ctx: DictionaryContext) -> None:
    """Action tags REDCap documents; others are kept as text."""
    for row in ctx.rows:
        for tag in dict.fromkeys(ACTION_TAG.findall(row.field_annotation)):
            if tag not in ACTION_TAGS:
                report.warn(
                    "action-tag",
                    f"field '{row.field_name}': unknown action tag @{tag} (kept as written)",
                    row.origin,
                )


def _identifiers(report: Report, ctx: DictionaryContext) -> None:
    """Fields that look identifying (name, ID number, phone, e-mail…) should be flagged."""
    for row in ctx.rows[1:]:
        if row.identifier or row.field_type in ("descriptive", "calc"):
            continue
        validation = row.text_validation_type_or_show_slider_number
        hit = IDENTIFYING.search(row.field_name.replace("_", " ")) or IDENTIFYING.search(
            row.field_label
        )
        if hit or validation in ("email", "phone", "ssn"):
            reason = f"'{hit.group(0)}'" if hit else f"validation {validation}"
            report.warn(
                "identifier",
                f"field '{row.field_name}' looks identifying ({reason}) but is not flagged "
                "identifier",
                row.origin,
            )


DICTIONARY_RULES: list[Callable[[Report, DictionaryContext], None]] = [
    _redcap,
    _names,
    _record_id,
    _types_and_choices,
    _validation,
    _logic,
    _calc_cycles,
    _matrices,
    _annotations,
    _identifiers,
]


def lint_dictionary(ctx: DictionaryContext, report: Report | None = None) -> Report:
    report = report or Report()
    for rule in DICTIONARY_RULES:
        rule(report, ctx)
    return report
