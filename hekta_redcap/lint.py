"""Lint: stop a broken definition before it reaches REDCap.

Three layers of rules, each a small function:

- dictionary rules run on the compiled data dictionary (what REDCap would see) and check what
  REDCap enforces and what it should: names, types, choices, validation, logic, matrices,
  action tags, identifiers. They work on any dictionary, so `import-dictionary` runs them on a
  CSV before adopting it.
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
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from hekta_redcap import logic
from hekta_redcap.design import unique_event_name
from hekta_redcap.dictionary import DictRow, compile_project
from hekta_redcap.errors import DefinitionError, HektaError, Origin
from hekta_redcap.fieldtypes import (
    CHOICE_TYPES,
    FIELD_TYPES,
    VALIDATION_TYPES,
    parse_bound,
    parse_choices,
)
from hekta_redcap.followup import state_labels
from hekta_redcap.instruments import Derived, Field, Instrument, Score
from hekta_redcap.messages import CHANNELS, TEMPLATES_DIR, template_names
from hekta_redcap.model import LANGUAGES
from hekta_redcap.sendtime import SendCalendar
from hekta_redcap.study import (
    FORMS_DIR,
    Project,
    available_projects,
    default_root,
    load_project,
)

Severity = Literal["error", "warning"]

NAME = re.compile(r"[a-z][a-z0-9_]*")
MAX_NAME = 100
STATS_NAME = 26  # Stata/SPSS-friendly length, as REDCap recommends
RESERVED_NAMES = frozenset({"event_id", "hidden_edit_flag", "instance"})
CHOICE_CODE = re.compile(r"-?[A-Za-z0-9_.]+")
CHECKBOX_CODE = re.compile(r"-?[A-Za-z0-9_]+")
ALIGNMENTS = frozenset({"", "RV", "RH", "LV", "LH"})

# Action tags REDCap documents (REDCap 14/15). An unknown tag is usually a typo.
ACTION_TAGS = frozenset(
    """APPUSERNAME-APP BARCODE-APP CALCDATE CALCTEXT CHARLIMIT DEFAULT DOWNLOAD-COUNT
    FORCE-MINMAX HIDDEN HIDDEN-APP HIDDEN-FORM HIDDEN-PDF HIDDEN-SURVEY HIDEBUTTON HIDECHOICE
    HIDETEXT IF INLINE INLINE-PREVIEW LANGUAGE-CURRENT-FORM LANGUAGE-CURRENT-SURVEY
    LANGUAGE-FORCE LANGUAGE-FORCE-FORM LANGUAGE-FORCE-SURVEY LANGUAGE-SET LATITUDE LONGITUDE
    MAXCHECKED MAXCHOICE MAXCHOICE-SURVEY-COMPLETE NOMISSING NONEOFTHEABOVE NOW NOW-SERVER
    NOW-UTC PASSWORDMASK PLACEHOLDER PREFILL RANDOMORDER READONLY READONLY-APP READONLY-FORM
    READONLY-SURVEY RICHTEXT SETVALUE SHOWCHOICE SYNC-APP TODAY TODAY-SERVER TODAY-UTC
    USERNAME WORDLIMIT""".split()
)
ACTION_TAG = re.compile(r"@([A-Z][A-Z0-9-]*[A-Z0-9])")

# Words in a field's name or label that suggest it identifies a person (nb and en).
IDENTIFYING = re.compile(
    r"(?<![a-z])(first_?name|last_?name|surname|fornavn|etternavn|full_?name|navn|name|"
    r"f(ø|o)dselsnummer|f(ø|o)dselsdato|birth_?date|date_of_birth|dob|personnummer|"
    r"national_?id|fnr|ssn|phone|telefon|mobil|mobile|e-?mail|e-?post|adresse|address|"
    r"postnummer|zip)(?![a-z])",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Finding:
    """One finding; equal only when every part is equal, so two findings on one line both stay."""

    origin: Origin | None
    severity: Severity
    rule: str
    message: str

    def __str__(self) -> str:
        where = f"{self.origin}: " if self.origin else ""
        return f"{where}{self.severity}: {self.message} [{self.rule}]"


class Report:
    """Collects findings; rules call `error` and `warn`."""

    def __init__(self) -> None:
        self.findings: list[Finding] = []

    def error(self, rule: str, message: str, origin: Origin | None) -> None:
        self.findings.append(Finding(origin, "error", rule, message))

    def warn(self, rule: str, message: str, origin: Origin | None) -> None:
        self.findings.append(Finding(origin, "warning", rule, message))

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]


# Dictionary rules ------------------------------------------------------------------------------


@dataclass
class DictionaryContext:
    """What the dictionary rules need to know about the project around the rows."""

    rows: list[DictRow]
    record_id: str | None = None
    events: set[str] = field(default_factory=set)
    form_events: dict[str, set[str]] = field(default_factory=dict)

    @property
    def longitudinal(self) -> bool:
        return bool(self.events)

    def row_map(self) -> dict[str, DictRow]:
        return {r.field_name: r for r in self.rows}


def _names(report: Report, ctx: DictionaryContext) -> None:
    """Field names: REDCap's pattern, reserved names, length, uniqueness."""
    seen: dict[str, DictRow] = {}
    for row in ctx.rows:
        name = row.field_name
        if not NAME.fullmatch(name):
            report.error(
                "field-name", f"field name '{name}' must match ^[a-z][a-z0-9_]*$", row.origin
            )
        elif name.startswith("redcap_") or name.endswith("_complete") or "___" in name:
            report.error(
                "field-name",
                f"field name '{name}' is reserved by REDCap "
                "(redcap_*, *_complete and names containing ___)",
                row.origin,
            )
        elif name in RESERVED_NAMES or name == f"{row.form_name}_timestamp":
            report.error("field-name", f"field name '{name}' is reserved by REDCap", row.origin)
        elif name.endswith("_") or "__" in name:
            report.warn(
                "field-name",
                f"field name '{name}' ends in or doubles '_' (confusable with checkbox columns)",
                row.origin,
            )
        if len(name) > MAX_NAME:
            report.error(
                "field-name", f"field name '{name}' is over {MAX_NAME} characters", row.origin
            )
        elif len(name) > STATS_NAME:
            report.warn(
                "field-name-length",
                f"field name '{name}' has {len(name)} characters; Stata and SPSS exports "
                f"work best with {STATS_NAME} or fewer",
                row.origin,
            )
        if name in seen:
            report.error(
                "field-name",
                f"field name '{name}' is used twice (first at {seen[name].origin})",
                row.origin,
            )
        seen.setdefault(name, row)


def _forms(report: Report, ctx: DictionaryContext) -> None:
    """Form names: pattern, and each form's rows contiguous."""
    finished: set[str] = set()
    previous = None
    for row in ctx.rows:
        form = row.form_name
        if not form:
            report.error("form-name", f"field '{row.field_name}' has no form name", row.origin)
            continue
        if form != previous:
            if form in finished:
                report.error(
                    "form-contiguous",
                    f"form '{form}' continues after another form; a form's fields must be "
                    "contiguous",
                    row.origin,
                )
            if previous:
                finished.add(previous)
            previous = form
            if not NAME.fullmatch(form) or len(form) > MAX_NAME:
                report.error(
                    "form-name", f"form name '{form}' must match ^[a-z][a-z0-9_]*$", row.origin
                )


def _record_id(report: Report, ctx: DictionaryContext) -> None:
    """The record-id field comes first and is a text field."""
    if not ctx.rows:
        report.error("record-id", "the dictionary has no fields", None)
        return
    first = ctx.rows[0]
    if ctx.record_id and first.field_name != ctx.record_id:
        report.error(
            "record-id",
            f"the first field must be the record id '{ctx.record_id}', not '{first.field_name}'",
            first.origin,
        )
    if first.field_type != "text":
        report.error(
            "record-id",
            f"the record-id field '{first.field_name}' must be of type text",
            first.origin,
        )


def _types_and_choices(report: Report, ctx: DictionaryContext) -> None:
    """Field types, and choices only where they belong, well formed with unique codes."""
    for row in ctx.rows:
        ftype, text, origin, name = (
            row.field_type,
            row.select_choices_or_calculations,
            row.origin,
            row.field_name,
        )
        if ftype not in FIELD_TYPES:
            report.error(
                "field-type",
                f"field '{name}' has type '{ftype}'; REDCap's types are "
                f"{', '.join(sorted(FIELD_TYPES))} (sql is not supported)",
                origin,
            )
            continue
        if ftype in CHOICE_TYPES:
            _check_choices(report, row)
        elif ftype == "calc":
            if not text.strip():
                report.error("calc", f"calc field '{name}' has no calculation", origin)
        elif ftype == "slider":
            if text and len(text.split("|")) > 3:
                report.error("choices", f"slider '{name}' has more than three labels", origin)
        elif text.strip():
            report.error(
                "choices",
                f"field '{name}' of type {ftype} cannot have choices or a calculation",
                origin,
            )
        if ftype in ("descriptive", "calc") and row.required_field:
            report.warn("required", f"{ftype} field '{name}' cannot be required", origin)
        for column in ("identifier", "required_field", "matrix_ranking"):
            if getattr(row, column) not in ("", "y"):
                report.error("flag", f"field '{name}': {column} must be 'y' or blank", origin)
        if row.custom_alignment not in ALIGNMENTS:
            report.error(
                "alignment", f"field '{name}': custom alignment must be RV, RH, LV or LH", origin
            )


def _check_choices(report: Report, row: DictRow) -> None:
    name, origin = row.field_name, row.origin
    choices = parse_choices(row.select_choices_or_calculations)
    if not choices:
        report.error(
            "choices",
            f"{row.field_type} field '{name}' needs choices as 'code, label | code, label'",
            origin,
        )
        return
    pattern = CHECKBOX_CODE if row.field_type == "checkbox" else CHOICE_CODE
    codes = Counter(code for code, _ in choices)
    labels = Counter(label for _, label in choices)
    for code, _ in choices:
        if not pattern.fullmatch(code):
            report.error(
                "choices", f"field '{name}': choice code '{code}' is not a valid code", origin
            )
    for code, count in codes.items():
        if count > 1:
            report.error(
                "choices", f"field '{name}': choice code '{code}' is used {count} times", origin
            )
    for label, count in labels.items():
        if count > 1 and label:
            report.warn(
                "choices", f"field '{name}': choice label '{label}' is used {count} times", origin
            )
    if any(not label for _, label in choices):
        report.error("choices", f"field '{name}': every choice needs a label", origin)


def _validation(report: Report, ctx: DictionaryContext) -> None:
    """Validation types from REDCap's list, on text fields, with min/max that parse and order."""
    for row in ctx.rows:
        name, origin = row.field_name, row.origin
        validation = row.text_validation_type_or_show_slider_number
        bounds = [b for b in (row.text_validation_min, row.text_validation_max) if b]
        if not validation:
            if bounds:
                report.error(
                    "validation", f"field '{name}' has a min/max but no validation type", origin
                )
            continue
        if row.field_type == "slider":
            if validation != "number":
                report.error(
                    "validation",
                    f"slider '{name}': only 'number' (show the value) is allowed",
                    origin,
                )
            continue
        allowed = {"text": None, "file": {"signature"}, "dropdown": {"autocomplete"}}
        if row.field_type not in allowed:
            report.error(
                "validation",
                f"field '{name}' of type {row.field_type} cannot have a validation",
                origin,
            )
            continue
        only = allowed[row.field_type]
        if validation not in VALIDATION_TYPES or (only is not None and validation not in only):
            report.error(
                "validation", f"field '{name}': unknown validation type '{validation}'", origin
            )
            continue
        parsed = []
        for label, bound in (("min", row.text_validation_min), ("max", row.text_validation_max)):
            if not bound:
                continue
            try:
                parsed.append(parse_bound(validation, bound))
            except (ValueError, TypeError) as exc:
                report.error("validation", f"field '{name}': {label} {exc}", origin)
        if len(parsed) == 2 and parsed[0] > parsed[1]:  # type: ignore[operator]
            report.error(
                "validation",
                f"field '{name}': min {row.text_validation_min} is greater than max "
                f"{row.text_validation_max}",
                origin,
            )


def _logic(report: Report, ctx: DictionaryContext) -> None:
    """Branching logic and calculations parse and name fields, codes and events that exist."""
    rows = ctx.row_map()
    for row in ctx.rows:
        if row.branching_logic.strip():
            check_logic(
                report,
                ctx,
                rows,
                row.branching_logic,
                f"field '{row.field_name}' branching logic",
                row.origin,
            )
        if row.field_type == "calc" and row.select_choices_or_calculations.strip():
            check_logic(
                report,
                ctx,
                rows,
                row.select_choices_or_calculations,
                f"calc field '{row.field_name}'",
                row.origin,
            )
        for tag, argument in _function_tags(row.field_annotation):
            what = f"field '{row.field_name}' @{tag}"
            if argument is None:
                report.error("action-tag", f"{what}: parentheses do not close", row.origin)
            else:
                check_logic(report, ctx, rows, argument, what, row.origin)


def _function_tags(annotation: str) -> Iterator[tuple[str, str | None]]:
    """The logic inside @CALCTEXT(...), @CALCDATE(...) and @IF(...) action tags (None when the
    parentheses do not close). Only @CALCDATE's first argument and @IF's condition are logic."""
    for match in re.finditer(r"@(CALCTEXT|CALCDATE|IF)\(", annotation):
        depth, parts, start = 1, [], match.end()
        for i in range(start, len(annotation)):
            char = annotation[i]
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
) -> list[logic.Ref]:
    """Parse one logic expression and check every reference in it; returns the references."""
    try:
        tree = logic.parse(text)
    except logic.LogicError as exc:
        report.error("logic", f"{what}: {exc}", origin)
        return []
    refs = logic.references(tree)
    _check_compared_codes(report, rows, tree, what, origin)
    for ref in refs:
        if ref.event and not _is_smart(ref.event):
            if not ctx.longitudinal:
                report.error("logic", f"{what}: event '{ref.event}' in a classic project", origin)
            elif ref.event not in ctx.events:
                report.error("logic", f"{what}: unknown event '{ref.event}'", origin)
        if ref.field is None:
            continue
        target = rows.get(ref.field)
        if target is None:
            complete = ref.field.removesuffix("_complete")
            if ref.field.endswith("_complete") and complete in {r.form_name for r in rows.values()}:
                continue
            report.error("logic", f"{what}: unknown field '{ref.field}'", origin)
            continue
        if ref.code is not None:
            codes = [c for c, _ in parse_choices(target.select_choices_or_calculations)]
            if target.field_type != "checkbox":
                report.error(
                    "logic",
                    f"{what}: '{ref.field}({ref.code})' but '{ref.field}' is not a checkbox",
                    origin,
                )
            elif ref.code not in codes:
                report.error(
                    "logic", f"{what}: checkbox '{ref.field}' has no code '{ref.code}'", origin
                )
        if ref.event and ref.event in ctx.events:
            mapped = ctx.form_events.get(target.form_name, set())
            if ref.event not in mapped:
                report.error(
                    "logic",
                    f"{what}: '{ref.field}' is on form '{target.form_name}', which is not "
                    f"collected at event '{ref.event}'",
                    origin,
                )
    return refs


def _check_compared_codes(
    report: Report, rows: dict[str, DictRow], tree: logic.Node, what: str, origin: Origin | None
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
                report.error(
                    "logic",
                    f"{what}: '{text}' is not a code of '{ref.field}' ({', '.join(codes)})",
                    origin,
                )


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
            report.error(
                "calc-cycle",
                "circular calculation: " + " -> ".join([*path, path[0]]),
                calcs[start].origin,
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
    """Fields of one matrix group are radio or checkbox, contiguous, with the same choices."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(ctx.rows):
        if row.matrix_group_name:
            groups[row.matrix_group_name].append(i)
        elif row.matrix_ranking:
            report.error(
                "matrix",
                f"field '{row.field_name}' has matrix ranking but no matrix group",
                row.origin,
            )
    for group, indexes in groups.items():
        members = [ctx.rows[i] for i in indexes]
        first = members[0]
        if indexes != list(range(indexes[0], indexes[0] + len(indexes))):
            report.error("matrix", f"matrix group '{group}' is not contiguous", first.origin)
        for row in members:
            if row.field_type not in ("radio", "checkbox"):
                report.error(
                    "matrix",
                    f"matrix field '{row.field_name}' must be radio or checkbox",
                    row.origin,
                )
            elif (row.field_type, row.select_choices_or_calculations) != (
                first.field_type,
                first.select_choices_or_calculations,
            ):
                report.error(
                    "matrix",
                    f"matrix field '{row.field_name}' differs from '{first.field_name}' in type or "
                    f"choices (group '{group}')",
                    row.origin,
                )


def _annotations(report: Report, ctx: DictionaryContext) -> None:
    """Action tags must be ones REDCap knows."""
    for row in ctx.rows:
        for tag in ACTION_TAG.findall(row.field_annotation):
            if tag not in ACTION_TAGS:
                report.warn(
                    "action-tag", f"field '{row.field_name}': unknown action tag @{tag}", row.origin
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
    _names,
    _forms,
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
        if inst.licence == "codes_only":
            continue
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


STUDY_RULES: list[Callable[[Report, Project, DictionaryContext], None]] = [
    _events,
    _mapping,
    _schedule,
    _reminders,
    _sex_and_codes,
]


# Entry points ----------------------------------------------------------------------------------


def project_context(project: Project) -> DictionaryContext:
    return DictionaryContext(
        rows=compile_project(project),
        record_id=project.study.record_id,
        events={e.unique_name for e in project.study.events},
        form_events={u.form: set(u.events) for u in project.study.instruments},
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
