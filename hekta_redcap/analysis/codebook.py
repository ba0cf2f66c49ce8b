"""The analysts' codebook: every exported variable, generated from the definitions, with the
counts observed per event in a flat export.

Nothing here repeats a field, a choice list or a rule: labels, types, codes, events, identifier
flags and scoring rules come from the instrument and study files, the score column names from the
scoring engine itself, the employment outcomes' definitions from `outcomes`, and the register
tables' columns, labels and codes from the register layouts (`registers.outcomes.measures`).
The rows only add counts: per variable and event, how many rows hold a value, how many are
blank and how many hold each of the study's missing data codes (and, except for identifiers,
how many hold each code). An identifier's values never reach the codebook; its counts do.

    >>> project = load_project("hekta")
    >>> codebook = build_codebook(project, generate(project, 100, seed=2).rows, language="en")
    >>> write_codebook(codebook, Path("export"))
    (PosixPath('export/codebook.html'), PosixPath('export/codebook.md'))
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd

from hekta_redcap.analysis import outcomes
from hekta_redcap.analysis.export.deid import exported_forms, kept_fields
from hekta_redcap.analysis.export.registers import OUTCOMES, PANEL
from hekta_redcap.core.errors import HektaError
from hekta_redcap.core.texts import catalog, in_language
from hekta_redcap.definitions import scoring
from hekta_redcap.definitions.instruments import Derived, Field, Instrument, Score
from hekta_redcap.definitions.model import LANGUAGES, Text
from hekta_redcap.definitions.study import Project
from hekta_redcap.randomization.design import design_of
from hekta_redcap.redcap.fieldtypes import checkbox_column
from hekta_redcap.redcap.names import EVENT, REPEAT_INSTANCE, REPEAT_INSTRUMENT
from hekta_redcap.registers import outcomes as linked

LONG_COLUMNS = ("rand_group", "days_since_randomization")
"""Columns the long export adds to every row (their definitions are in codebook.yaml)."""
HTML_FILE, MARKDOWN_FILE = "codebook.html", "codebook.md"

# Every fixed word (headings and the sentences that explain the rules, `words.<id>`) and the
# display names of the variable types (`types.<kind>`, see `_type_of`) are in codebook.yaml.
_TEXTS = catalog("hekta_redcap.analysis", "codebook.yaml")
# REDCap's own codes for yes-no and true-false fields (not part of any definition).
_BUILT_IN = {"yesno": (("1", "yes"), ("0", "no")), "truefalse": (("1", "true"), ("0", "false"))}
# A text field's validation type by its prefix: the first that matches names the type.
_VALIDATION_TYPES = (
    ("datetime", "datetime"),
    ("date", "date"),
    ("time", "time"),
    ("integer", "integer"),
    ("number", "number"),
    ("email", "email"),
    ("phone", "phone"),
)
# Columns the scoring engine writes beside each score, by suffix.
_COMPANIONS = ("n_answered", "prorated", "incomplete")
# The employment outcomes' column types, by pandas dtype.
_DTYPE_TYPES = {"string": "text", "boolean": "boolean", "Int64": "integer", "Float64": "number"}
# The register tables' column types: their fixed columns', then by the kind of measure.
_REGISTER_TYPES = {
    linked.MONTH: "integer",
    linked.MONTH_START: "date",
    linked.MONTH_END: "date",
    linked.COVERED: "boolean",
    linked.HORIZON: "integer",
    linked.COMPLETE: "boolean",
    "flag": "boolean",
    "count": "integer",
    "amount": "number",
    "hours": "number",
}


@dataclass(frozen=True)
class Code:
    """A code and its label; for a checkbox option also its export column."""

    code: str
    label: str
    column: str | None = None


@dataclass(frozen=True)
class Detail:
    """One line about a variable or an instrument; `code` marks logic, formulas and names."""

    label: str
    text: str
    code: bool = False


@dataclass(frozen=True)
class Count:
    """One variable at one event: `rows` split into filled, blank and each missing data code
    (in the study's order); `by_code` holds (code, rows) for each of the variable's codes
    (empty: not shown)."""

    event: Code
    rows: int
    filled: int
    blank: int
    missing: tuple[int, ...]
    by_code: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class Variable:
    """One exported variable (or a descriptive field, which exports nothing)."""

    name: str
    label: str
    type: str
    codes: tuple[Code, ...] = ()
    details: tuple[Detail, ...] = ()
    events: tuple[Code, ...] = ()
    identifier: bool = False
    dropped: str = ""  # why a de-identified export leaves it out ("" when it keeps it)
    counts: tuple[Count, ...] = ()


@dataclass(frozen=True)
class Section:
    """One instrument: what it is, its fields, its scores and derived variables."""

    form: str
    label: str
    about: tuple[Detail, ...]
    variables: tuple[Variable, ...]
    scores: tuple[Variable, ...]


@dataclass(frozen=True)
class RegisterTable:
    """A register table of the export: what one row is, and its columns."""

    name: str
    label: str
    note: str
    variables: tuple[Variable, ...]


@dataclass(frozen=True)
class Codebook:
    """Everything the templates show, already in `language`."""

    project: str
    title: str
    language: str
    words: dict[str, str]
    records: int
    rows: int
    missing_codes: tuple[Code, ...]
    keys: tuple[Variable, ...]
    sections: tuple[Section, ...]
    outcomes: tuple[Variable, ...]
    long_columns: tuple[Variable, ...]
    registers: tuple[RegisterTable, ...] = ()


def build_codebook(
    project: Project,
    rows: pd.DataFrame | list[dict],
    language: str = "nb",
    registered: linked.Registered | None = None,
) -> Codebook:
    """The codebook of `project` in `language` (nb or en), with counts from `rows`, a flat
    export as REDCap gives it: text, blank as "" or NA, checkboxes as `field___code` columns;
    a column left out is blank throughout. With `registered`, the register tables too."""
    if language not in LANGUAGES:
        raise HektaError(f"codebook language must be one of {', '.join(LANGUAGES)}: '{language}'")
    words = in_language(_TEXTS, language, "words")
    frame = _text(pd.DataFrame(rows))
    record_id = project.study.record_id
    builder = _Builder(project, language, words, frame)
    return Codebook(
        project=project.name,
        title=project.study.title,
        language=language,
        words=words,
        records=frame[record_id].nunique() if record_id in frame else 0,
        rows=len(frame),
        missing_codes=tuple(Code(m.code, m.label) for m in project.study.missing_data_codes),
        keys=builder.keys(),
        sections=tuple(builder.section(form) for form in project.forms),
        outcomes=builder.outcomes(),
        long_columns=builder.long_columns(),
        registers=builder.register_tables(registered) if registered is not None else (),
    )


def write_codebook(codebook: Codebook, directory: Path) -> tuple[Path, Path]:
    """Write `codebook.html` (one self-contained page) and `codebook.md` into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader(__package__, "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["md"] = _markdown
    environment.filters["mdcode"] = _markdown_code
    written = []
    for name in (HTML_FILE, MARKDOWN_FILE):
        path = directory / name
        template = environment.get_template(f"{name}.j2")
        path.write_text(template.render(book=codebook, t=codebook.words), encoding="utf-8")
        written.append(path)
    return written[0], written[1]


@dataclass(frozen=True)
class _Held:
    """The rows holding one form, each row's position in the form's `events`."""

    frame: pd.DataFrame
    position: np.ndarray
    events: tuple[Code, ...]

    def tally(self, mask: pd.Series) -> list[int]:
        """How many rows of each event the mask holds."""
        weights = mask.to_numpy(dtype=float)
        return np.bincount(self.position, weights, len(self.events)).astype(int).tolist()


class _Builder:
    """Turns the definitions into the codebook's entries in one language."""

    def __init__(
        self, project: Project, language: str, words: dict[str, str], frame: pd.DataFrame
    ) -> None:
        self.project = project
        self.exported = set(exported_forms(project))
        self.kept = kept_fields(project, identifiers=False)
        self.language = language
        self.words = words
        self.frame = frame
        self.missing = [m.code for m in project.study.missing_data_codes]

    def text(self, text: Text | None) -> str:
        return (text.get(self.language) or "") if text else ""

    def type_name(self, kind: str) -> str:
        return _TEXTS[f"types.{kind}"][self.language]

    def events(self, form: str) -> tuple[Code, ...]:
        """The events a form is collected at (one pseudo-event for a classic project)."""
        if not self.project.study.longitudinal:
            return (Code("", self.words["all_rows"]),)
        labels = {e.unique_name: self.text(e.label) or e.name for e in self.project.study.events}
        return tuple(Code(name, labels[name]) for name in self.project.events_of(form))

    # -- instruments ----------------------------------------------------------------------------

    def section(self, form: str) -> Section:
        instrument = self.project.instruments[form]
        events = self.events(form)
        held = self.held(form, events)
        variables = tuple(self.field(instrument, field, held) for field in instrument.fields)
        return Section(
            form=form,
            label=self.text(instrument.label),
            about=self.about(instrument, events),
            variables=variables,
            scores=self.scores(instrument, events),
        )

    def about(self, instrument: Instrument, events: tuple[Code, ...]) -> tuple[Detail, ...]:
        w = self.words
        use = self.project.use_of(instrument.form)
        about = [Detail(w["form"], instrument.form, code=True)]
        if instrument.source:
            about.append(Detail(w["source"], instrument.source))
        licence = w[instrument.licence]
        if instrument.overlay_missing:
            licence += f"; {w['overlay_missing']}"
        about += [
            Detail(w["licence"], licence),
            Detail(w["translation"], w[instrument.translation]),
            Detail(w["version"], instrument.version),
        ]
        if instrument.recall:
            about.append(Detail(w["recall"], self.text(instrument.recall)))
        about.append(Detail(w["events"], _listed(events)))
        if use.repeating:
            repeating = w["repeating"].format(
                instance=REPEAT_INSTANCE, repeat=REPEAT_INSTRUMENT, form=use.form
            )
            about.append(Detail(w["rows"], repeating))
        if use.survey:
            about.append(Detail(w["collection"], w["survey"]))
        return tuple(about)

    def field(self, instrument: Instrument, field: Field, held: _Held) -> Variable:
        codes = self.codes(instrument, field)
        counts: tuple[Count, ...] = ()
        if field.type != "descriptive":
            counts = self.counts(field, codes, held)
        return Variable(
            name=field.name,
            label=instrument.label_of(field, self.language),
            type=self.type_name(_type_of(field)),
            codes=codes,
            details=self.field_details(field),
            events=held.events,
            identifier=field.identifier,
            dropped=self.dropped(instrument, field),
            counts=counts,
        )

    def dropped(self, instrument: Instrument, field: Field) -> str:
        """Why a de-identified export leaves the field out (the export's own rules), or ""."""
        if instrument.form not in self.exported:
            return self.words["form_dropped"]
        if field.name in self.kept or field.name == self.project.study.record_id:
            return ""
        return self.words["identifier_yes" if field.identifier else "notes_dropped"]

    def codes(self, instrument: Instrument, field: Field) -> tuple[Code, ...]:
        if field.type in _BUILT_IN:
            return tuple(Code(code, self.words[word]) for code, word in _BUILT_IN[field.type])
        checkbox = field.type == "checkbox"
        return tuple(
            Code(
                c.code,
                instrument.choice_label(c, self.language),
                checkbox_column(field.name, c.code) if checkbox else None,
            )
            for c in instrument.choices_of(field)
        )

    def field_details(self, field: Field) -> tuple[Detail, ...]:
        w = self.words
        details = []
        if field.type == "checkbox":
            details.append(Detail(w["codes"], w["option_columns"]))
        if field.validation:
            details.append(Detail(w["validation"], field.validation, code=True))
        if field.min or field.max:
            details.append(Detail(w["range"], f"{field.min or ''} – {field.max or ''}"))
        if field.calc:
            details.append(Detail(w["formula"], field.calc, code=True))
        if field.slider:
            ends = (self.text(t) for t in (field.slider.left, field.slider.mid, field.slider.right))
            details.append(Detail(w["slider"], " / ".join(ends)))
        if field.note:
            details.append(Detail(w["note"], self.text(field.note)))
        if field.branching:
            details.append(Detail(w["shown_when"], field.branching, code=True))
        if field.required:
            details.append(Detail(w["required"], w["yes"]))
        if field.annotation:
            details.append(Detail(w["annotation"], field.annotation, code=True))
        return tuple(details)

    # -- counts ---------------------------------------------------------------------------------

    def held(self, form: str, events: tuple[Code, ...]) -> _Held:
        """The rows that hold `form` (its repeat rows if it repeats, else the plain rows) at
        the events it is collected at."""
        use = self.project.use_of(form)
        frame = self.frame
        rows = _column(frame, REPEAT_INSTRUMENT) == (form if use.repeating else "")
        position = pd.Index([e.code for e in events]).get_indexer(_column(frame, EVENT))
        rows &= position >= 0
        return _Held(frame[rows], position[rows.to_numpy()], events)

    def counts(self, field: Field, codes: tuple[Code, ...], held: _Held) -> tuple[Count, ...]:
        """Per event: rows, filled, blank, each missing data code, and (for a field with codes
        that is not an identifier) each code. A missing data code wins over an answer, so the
        parts add up to the rows."""
        rows = held.frame
        if field.type == "checkbox":
            hits = {c.code: _column(rows, str(c.column)) == "1" for c in codes}
            stated = {m: _column(rows, checkbox_column(field.name, m)) == "1" for m in self.missing}
            answered = pd.DataFrame(hits, index=rows.index).any(axis=1)
        else:
            text = _column(rows, field.name)
            hits = {c.code: text == c.code for c in codes}
            stated = {m: text == m for m in self.missing}
            answered = text.str.strip() != ""
        coded = pd.Series(False, index=rows.index)
        missing = []
        for mask in stated.values():  # the first code stated wins
            missing.append(held.tally(mask & ~coded))
            coded |= mask
        total = held.tally(pd.Series(True, index=rows.index))
        filled = held.tally(answered & ~coded)
        shown = {} if field.identifier else {code: held.tally(mask) for code, mask in hits.items()}
        return tuple(
            Count(
                event=event,
                rows=total[at],
                filled=filled[at],
                blank=total[at] - filled[at] - sum(m[at] for m in missing),
                missing=tuple(m[at] for m in missing),
                by_code=tuple((code, n[at]) for code, n in shown.items()),
            )
            for at, event in enumerate(held.events)
        )

    # -- scores ---------------------------------------------------------------------------------

    def scores(self, instrument: Instrument, events: tuple[Code, ...]) -> tuple[Variable, ...]:
        """Each score with the columns the engine writes beside it, then each derived
        variable; the names are the engine's own (scored on an empty frame)."""
        if instrument.scoring is None:
            return ()
        columns = scoring.required_columns(self.project, instrument.form)
        empty = pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})
        written = set(scoring.score_frame(self.project, instrument.form, empty).columns)
        entries: list[Variable] = []
        for score in instrument.scoring.scores:
            entries.append(self.score(score, events))
            entries += self.companions(score, written, events)
        partial = {s.name for s in instrument.scoring.scores if s.incomplete == "partial"}
        skips = any(s.structural_zeros for s in instrument.scoring.scores)
        entries += [self.derived(d, events, partial, skips) for d in instrument.scoring.derived]
        return tuple(entries)

    def score(self, score: Score, events: tuple[Code, ...]) -> Variable:
        w = self.words
        n = len(score.items)
        k = score.min_answered or n
        aggregate = w[score.aggregate]
        if score.multiply is not None:
            aggregate += ", " + w["multiply"].format(factor=_number(score.multiply))
        details = [
            Detail(w["items"], ", ".join(score.items), code=True),
            Detail(w["aggregate"], aggregate),
        ]
        if score.reverse:
            rule = w["reverse_rule"].format(items=", ".join(score.reverse))
            details.append(Detail(w["reverse"], rule))
        for zero in score.structural_zeros:
            rule = w["skip_text"].format(when=zero.when, items=", ".join(zero.items))
            details.append(Detail(w["skip_rule"], rule))
        details.append(Detail(w["missing_rule"], self.missing_rule(score, n, k)))
        if score.gate:
            gate = score.gate
            text = w["gate_text"].format(
                k=gate.min_answered, n=len(gate.items), items=", ".join(gate.items)
            )
            details.append(Detail(w["gate"], text))
        kind = "profile" if score.aggregate == "profile" else "score"
        return Variable(
            name=score.name,
            label=self.text(score.label),
            type=self.type_name(kind),
            details=tuple(details),
            events=events,
        )

    def missing_rule(self, score: Score, n: int, k: int) -> str:
        w = self.words
        if score.incomplete == "partial":
            return w["rule_partial"].format(name=score.name, k=k, n=n)
        if score.aggregate == "mean":
            return w["rule_mean"].format(k=k, n=n)
        if score.prorate:
            return w["rule_prorate"].format(k=k, n=n)
        return w["rule_all" if k == n else "rule_sum_min"].format(k=k, n=n)

    def companions(
        self, score: Score, written: set[str], events: tuple[Code, ...]
    ) -> list[Variable]:
        label = self.text(score.label)
        k = score.min_answered or len(score.items)
        return [
            Variable(
                name=f"{score.name}_{suffix}",
                label=self.words[suffix].format(label=label, k=k),
                type=self.type_name("integer" if suffix == "n_answered" else "flag"),
                events=events,
            )
            for suffix in _COMPANIONS
            if f"{score.name}_{suffix}" in written
        ]

    def derived(
        self, derived: Derived, events: tuple[Code, ...], partial: set[str], skips: bool
    ) -> Variable:
        w = self.words
        source = str(derived.source)
        details = [] if derived.logic else [Detail(w["from"], source, code=True)]
        codes: tuple[Code, ...] = ()
        flag = tuple(Code(code, w[word]) for code, word in _BUILT_IN["yesno"])
        kind = "flag"
        if derived.bands is not None:
            kind, codes = "category", self.bands(derived)
            details.append(Detail(w["rule"], w["band_rule"].format(source=source)))
        elif derived.cutoff is not None:
            cutoff = derived.cutoff
            rule = w["cutoff_rule"].format(source=source, op=cutoff.op, value=_number(cutoff.value))
            codes = flag
            details.append(Detail(w["rule"], rule))
        elif derived.by_sex is not None:
            sexes = "; ".join(
                f"{c.op} {_number(c.value)} ({w[sex]})" for sex, c in derived.by_sex.items()
            )
            sex = self.project.study.sex
            assert sex is not None  # scoring.required_columns has refused a study without it
            codes = flag
            rule = w["by_sex_rule"].format(source=source, cutoffs=sexes, sex=sex.field)
            details.append(Detail(w["rule"], rule))
        elif derived.linear is not None:
            kind = "number"
            linear = derived.linear
            rule = w["linear_rule"].format(
                source=source, multiply=_number(linear.multiply), add=_number(linear.add)
            )
            details.append(Detail(w["rule"], rule))
        else:
            codes = flag
            details.append(Detail(w["logic"], str(derived.logic), code=True))
            details.append(Detail(w["rule"], w["logic_rule"]))
        if skips and (derived.logic or source in self.project.field_map()):
            details.append(Detail(w["rule"], w["after_skip"]))
        if source in partial:
            details.append(Detail(w["rule"], w["while_partial"].format(source=source)))
        if derived.safety:
            details.append(Detail(w["alert"], w["safety"]))
        return Variable(
            name=derived.name,
            label=self.text(derived.label),
            type=self.type_name(kind),
            codes=codes,
            details=tuple(details),
            events=events,
        )

    def bands(self, derived: Derived) -> tuple[Code, ...]:
        assert derived.bands is not None
        w, source = self.words, str(derived.source)
        bounds = [*(b.min for b in derived.bands[1:]), None]
        return tuple(
            Code(
                str(band.code),
                (w["band"] if high is not None else w["band_last"]).format(
                    label=self.text(band.label),
                    low=_number(band.min),
                    high=_number(high) if high is not None else "",
                    source=source,
                ),
            )
            for band, high in zip(derived.bands, bounds, strict=True)
        )

    # -- the rest of the exports ----------------------------------------------------------------

    def keys(self) -> tuple[Variable, ...]:
        """The columns that place a row: record, event, repeating form and instance."""
        study, w = self.project.study, self.words
        instrument, field = self.project.field_map()[study.record_id]
        label = w["record_id_key"].format(label=instrument.label_of(field, self.language))
        keys = [Variable(study.record_id, label, self.type_name("text"))]
        if study.longitudinal:
            events = tuple(Code(e.unique_name, self.text(e.label) or e.name) for e in study.events)
            keys.append(Variable(EVENT, w["event_key"], self.type_name("radio"), events))
        repeating = [u.form for u in study.instruments if u.repeating]
        if repeating:
            forms = tuple(Code(f, self.text(self.project.instruments[f].label)) for f in repeating)
            keys += [
                Variable(REPEAT_INSTRUMENT, w["repeat_key"], self.type_name("radio"), forms),
                Variable(REPEAT_INSTANCE, w["instance_key"], self.type_name("integer")),
            ]
        return tuple(keys)

    def derives_outcomes(self) -> bool:
        """Whether the project has what the outcomes and the long export's extras read."""
        study = self.project.study
        return study.schedule is not None and outcomes.GROUP in self.project.field_map()

    def outcomes(self) -> tuple[Variable, ...]:
        """The employment_outcomes table's columns with their definitions."""
        if not self.derives_outcomes():
            return ()
        definitions = outcomes.outcome_definitions()
        group = self.group_codes()
        every = (Code("", self.words["per_participant"]),)
        return tuple(
            Variable(
                name=column,
                label=definitions[column][self.language],
                type=self.type_name(
                    "radio" if column == "group" else _DTYPE_TYPES[outcomes.OUTCOME_DTYPES[column]]
                ),
                codes=group if column == "group" else (),
                events=every,
            )
            for column in outcomes.OUTCOME_COLUMNS
        )

    def long_columns(self) -> tuple[Variable, ...]:
        schedule = self.project.study.schedule
        if schedule is None or not self.derives_outcomes():
            return ()
        every = (Code("", self.words["every_row"]),)
        return (
            Variable(
                name=LONG_COLUMNS[0],
                label=self.words["rand_group"].format(field=outcomes.GROUP),
                type=self.type_name("radio"),
                codes=self.group_codes(),
                events=every,
            ),
            Variable(
                name=LONG_COLUMNS[1],
                label=self.words["days_since_randomization"].format(anchor=schedule.anchor_field),
                type=self.type_name("integer"),
                events=every,
            ),
        )

    def register_tables(self, registered: linked.Registered) -> tuple[RegisterTable, ...]:
        """`register_panel` and `register_outcomes`: the keys, the fixed columns and each
        measure with the registers it reads and, for a code's column, the code."""
        w, language = self.words, self.language
        target = design_of(self.project).target
        instrument, field = self.project.field_map()[target]
        record = self.project.field_map()[self.project.study.record_id]
        record_label = w["record_id_key"].format(label=record[0].label_of(record[1], language))
        horizons = ", ".join(map(str, registered.horizons))
        found = []
        kinds: list[tuple[str, linked.Table, str]] = [
            (PANEL, "panel", "per_month"),
            (OUTCOMES, "outcomes", "per_horizon"),
        ]
        for name, table, rows in kinds:
            every = (Code("", w[rows]),)
            columns = [
                Variable(linked.RECORD, record_label, self.type_name("text"), events=every),
                Variable(
                    linked.ARM,
                    w["rand_group"].format(field=target),
                    self.type_name("radio"),
                    codes=self.codes(instrument, field),
                    events=every,
                ),
            ]
            columns += [
                Variable(
                    column, label[language], self.type_name(_REGISTER_TYPES[column]), events=every
                )
                for column, label in linked.fixed_labels(table).items()
            ]
            for measure in linked.measures(registered.layouts, table):
                details = [Detail(w["registers"], ", ".join(measure.sources))]
                if measure.code:
                    details.append(Detail(w["from"], measure.code, code=True))
                columns.append(
                    Variable(
                        measure.name,
                        measure.label[language],
                        self.type_name(_REGISTER_TYPES[measure.kind]),
                        details=tuple(details),
                        events=every,
                    )
                )
            note = w[f"{name}_note"].format(horizons=horizons)
            found.append(RegisterTable(name, w[name], note, tuple(columns)))
        return tuple(found)

    def group_codes(self) -> tuple[Code, ...]:
        instrument, field = self.project.field_map()[outcomes.GROUP]
        return self.codes(instrument, field)


def _type_of(field: Field) -> str:
    """The type to show: the field type, or for text the validation's kind of value."""
    if field.type != "text":
        return field.type
    validation = field.validation or ""
    return next(
        (kind for prefix, kind in _VALIDATION_TYPES if validation.startswith(prefix)), "text"
    )


def _text(frame: pd.DataFrame) -> pd.DataFrame:
    """Every cell as REDCap's text, "" for blank, rows numbered from 0."""
    frame = frame.reset_index(drop=True)
    return frame.astype(object).where(frame.notna(), "").astype(str)


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    """A column of the rows, blank throughout if the export left it out."""
    if name in frame:
        return frame[name]
    return pd.Series("", index=frame.index, dtype=str)


def _number(value: float) -> str:
    return f"{value:g}"


def _listed(codes: Iterable[Code]) -> str:
    return ", ".join(f"{c.label} ({c.code})" if c.code else c.label for c in codes)


# -- Markdown --------------------------------------------------------------------------------------

_MARKDOWN_ESCAPES = {
    "\\": "\\\\",
    "|": "\\|",
    "*": "\\*",
    "_": "\\_",
    "`": "\\`",
    "[": "\\[",
    "]": "\\]",
    "<": "&lt;",
    ">": "&gt;",
}


def _markdown(value: object) -> str:
    """Text safe in a Markdown table cell: no formatting, no HTML, one line."""
    text = "".join(_MARKDOWN_ESCAPES.get(char, char) for char in str(value))
    return " ".join(text.split())


def _markdown_code(value: object) -> str:
    """A code span safe in a table cell (GitHub reads `\\|` as a pipe even in code)."""
    text = " ".join(str(value).split()).replace("|", "\\|")
    return f"`` {text} ``" if "`" in text else f"`{text}`"
