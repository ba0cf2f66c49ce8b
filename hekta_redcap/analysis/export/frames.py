"""Analysis-shaped tables from a flat export: typed by the definitions, labelled and scored.

The export is read once, the way validation reads it (`validation.layout` and `reading`): missing
data codes are set aside, the text is cast to the field's type (dates, nullable integers and
numbers, ordered categoricals in codebook order, nullable booleans with NA for a checkbox on a
form never started), and values that do not fit their field become NA (`hekta-redcap validate`
lists them). Every instrument's scores come from the scoring engine. From that one reading the
three shapes are cut (see docs/exports.md):

- `long`: one row per participant and event (rows where a non-repeating form was started);
- `wide`: one row per participant, each event's variables suffixed by the event's timepoint;
- `instruments`: one table per instrument, keyed by record, event and (repeating) instance;

and every shape gets the `employment_outcomes` table (`outcomes.employment_outcomes`).

    >>> project = load_project("hekta")
    >>> tables = build_tables(project, pd.DataFrame(generate(project, 60).rows), "wide")
    >>> [t.name for t in tables], "phq9_total_6m" in tables[0].frame
    (['wide', 'employment_outcomes'], True)
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

import pandas as pd

from hekta_redcap.analysis import outcomes
from hekta_redcap.analysis.export.deid import Pseudonyms, exported_forms, kept_fields
from hekta_redcap.core.errors import HektaError
from hekta_redcap.definitions.instruments import Field, Instrument
from hekta_redcap.definitions.scoring import required_columns, score_frame, scored_forms
from hekta_redcap.definitions.study import Event, Project
from hekta_redcap.validation.layout import DAG, EVENT, INSTANCE, REPEAT, Layout
from hekta_redcap.validation.reading import answers, cast, detect_codes, validation_of

logger = logging.getLogger("hekta_redcap.analysis.export")

Shape = Literal["long", "wide", "instruments"]
SHAPES: tuple[str, ...] = get_args(Shape)
Language = Literal["nb", "en"]
LANGUAGES: tuple[str, ...] = get_args(Language)

GROUP = outcomes.GROUP
DAYS = "days_since_randomization"
MISSING_CODE = "_missing_code"  # `<field>_missing_code`: the code where one was entered
OUTCOMES = "employment_outcomes"

ValueLabels = dict[str | int, str]  # by code: a categorical's (str), True/False, or an integer

_WORDS: dict[Language, dict[str, str]] = {
    "nb": {
        "yes": "Ja",
        "no": "Nei",
        "true": "Sant",
        "false": "Usant",
        "checked": "Krysset av",
        "unchecked": "Ikke krysset av",
        "record": "Deltakerens post-ID",
        "pseudonym": "Pseudonym for deltakeren",
        "event": "Tidspunkt (hendelse)",
        "instance": "Gjentakelse nr.",
        "dag": "Datatilgangsgruppe",
        "days": "Dager fra randomisering til kartleggingen ({field})",
        "form_status": "{form}: skjemastatus",
        "n_answered": "{score}: antall besvarte spørsmål",
        "prorated": "{score}: forholdsmessig justert",
        "incomplete": "{score}: ufullstendig (delsum)",
        "missing_code": "{field}: manglende-data-kode",
    },
    "en": {
        "yes": "Yes",
        "no": "No",
        "true": "True",
        "false": "False",
        "checked": "Checked",
        "unchecked": "Unchecked",
        "record": "The participant's record id",
        "pseudonym": "The participant's pseudonym",
        "event": "Timepoint (event)",
        "instance": "Repeat instance",
        "dag": "Data access group",
        "days": "Days from randomisation to the assessment ({field})",
        "form_status": "{form}: form status",
        "n_answered": "{score}: items answered",
        "prorated": "{score}: pro-rated",
        "incomplete": "{score}: incomplete (partial sum)",
        "missing_code": "{field}: missing data code",
    },
}
_FORM_STATUS: dict[Language, tuple[str, str, str]] = {  # the labels of codes 0, 1 and 2
    "nb": ("Ikke fullført", "Ikke verifisert", "Fullført"),
    "en": ("Incomplete", "Unverified", "Complete"),
}


@dataclass
class Table:
    """One output table: the typed frame, each column's variable label, the labels of each
    coded column's codes (keys as the frame holds them: a categorical's codes, True/False, or
    integers), and the columns holding calendar dates (datetime64 at midnight, written as
    dates)."""

    name: str
    frame: pd.DataFrame
    labels: dict[str, str]
    value_labels: dict[str, ValueLabels]
    dates: frozenset[str] = field(default_factory=frozenset)


def build_tables(
    project: Project,
    rows: pd.DataFrame | Sequence[Mapping[str, object]],
    shape: Shape,
    language: Language = "nb",
    identifiers: bool = False,
    pseudonyms: Pseudonyms | None = None,
) -> list[Table]:
    """The tables of one export shape, then `employment_outcomes`.

    `rows` is the flat export as text (`Store.raw_rows`, PyCap's JSON rows, or a CSV read as
    text); columns it leaves out are blank. Fields flagged `identifier` are left out unless
    `identifiers`; with `pseudonyms` every record id is replaced by its pseudonym and the rows
    are sorted by pseudonym, so that their order does not give the record ids away."""
    if shape not in SHAPES:
        raise HektaError(f"unknown export shape '{shape}' (shapes: {', '.join(SHAPES)})")
    if language not in LANGUAGES:
        raise HektaError(f"unknown label language '{language}' (languages: nb, en)")
    reading = _Reading(project, _frame(rows), language, identifiers)
    cut = {"long": reading.long, "wide": reading.wide, "instruments": reading.instruments}
    tables = [*cut[shape](), reading.outcomes()]
    if pseudonyms is not None:
        tables = [reading.pseudonymised(t, pseudonyms) for t in tables]
    return tables


def words(language: Language) -> Mapping[str, str]:
    """The fixed words of the export's labels in `language` (record, pseudonym, yes, no ...)."""
    return _WORDS[language]


def timepoints(project: Project) -> dict[str, str]:
    """Each event's suffix in the wide shape, from its name (not its unique name, so that the
    same event in two arms shares it): the words holding a digit ("Followup 6m" -> `6m`), else
    the initials of several words ("End of study" -> `eos`), else a word's first four letters
    ("Baseline" -> `base`). Raises `HektaError` when two differently named events would share
    a suffix."""
    suffixes: dict[str, str] = {}
    by_suffix: dict[str, str] = {}
    for event in project.study.events:
        words = re.findall(r"[a-z0-9]+", event.name.lower())
        numbered = [w for w in words if any(c.isdigit() for c in w)]
        if numbered:
            suffix = "".join(numbered)
        elif len(words) > 1:
            suffix = "".join(w[0] for w in words)
        else:
            suffix = "".join(words)[:4]
        other = by_suffix.setdefault(suffix, event.name)
        if other != event.name:
            raise HektaError(
                f"events '{other}' and '{event.name}' would both be suffixed '_{suffix}' in "
                "the wide export: rename one of them in the study file"
            )
        suffixes[event.unique_name] = suffix
    return suffixes


def assessment_date(project: Project) -> str:
    """The field `days_since_randomization` counts to: the required date field (not an
    identifier, not on a repeating form) collected at the most events, the first in dictionary
    order on a tie (HEKTA: `emp_date`, "Date of this assessment")."""
    candidates = [
        (len(project.events_of(inst.form)), -position, f.name)
        for position, (inst, f) in enumerate(project.fields())
        if f.required
        and not f.identifier
        and (f.validation or "").startswith("date_")
        and not project.use_of(inst.form).repeating
    ]
    if not candidates:
        raise HektaError(
            f"project {project.name} has no required date field on a non-repeating form to "
            "count days since randomisation to"
        )
    return max(candidates)[2]


def _frame(rows: pd.DataFrame | Sequence[Mapping[str, object]]) -> pd.DataFrame:
    return rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))


def _complete(project: Project, rows: pd.DataFrame) -> pd.DataFrame:
    """JSON rows (and the synthetic cohort's) leave blank columns out; a flat export has every
    field's column and every form's status."""
    expected = [
        *Layout(project, pd.DataFrame()).raw.columns,
        *(f"{form}_complete" for form in project.forms),
    ]
    absent = [c for c in expected if c not in rows.columns]
    return rows.reindex(columns=[*rows.columns, *absent], fill_value="") if absent else rows


def _column(typed: pd.DataFrame, name: str) -> pd.Series:
    """A place or form status column; an export without rows (or without repeat rows) has
    none, and gets it blank."""
    return typed.get(name, pd.Series(pd.NA, index=typed.index, dtype="Int64"))


def _broadcast(values: pd.Series, record: pd.Series) -> pd.Series:
    """Each record's first known value on all of the record's rows (dtype kept)."""
    known = values.notna().to_numpy()
    first = ~record[known].duplicated().to_numpy()
    source = values[known][first]
    position = pd.Index(record[known][first]).get_indexer(record)
    return pd.Series(source.array.take(position, allow_fill=True), index=values.index)


class _Reading:
    """The export read once: every output column's values (one per export row), labels, value
    labels, and which form each belongs to."""

    def __init__(self, project: Project, rows: pd.DataFrame, lang: Language, identifiers: bool):
        study = project.study
        if not study.longitudinal or study.schedule is None or GROUP not in project.field_map():
            raise HektaError(
                f"project {project.name}: analyst exports need a longitudinal project with a "
                f"schedule (the randomisation date) and the allocation field {GROUP}"
            )
        self.project, self.lang, self.words = project, lang, _WORDS[lang]
        self.record_id = study.record_id
        self.layout = layout = Layout(project, _complete(project, rows))
        coded = detect_codes(layout)
        text = answers(layout, coded)
        typed = cast(layout, text)
        invalid = self._count_invalid(text, typed)
        self.data: dict[str, pd.Series] = {}
        self.labels: dict[str, str] = {}
        self.values: dict[str, ValueLabels] = {}
        self.dates: set[str] = set()
        self.columns: dict[str, list[str]] = {}  # form -> its columns in dictionary order
        self._keys(typed)
        scores = self._scores(invalid)
        kept = kept_fields(project, identifiers)
        for form in exported_forms(project):
            instrument = project.instruments[form]
            names: list[str] = []
            for f in instrument.fields:
                if f.name in kept:
                    names += self._field(instrument, f, typed, coded)
            names += self._status(instrument, typed)
            if form in scores:
                names += self._scored(instrument, scores[form])
            self.columns[form] = names
        self._participant(typed)

    # -- reading ---------------------------------------------------------------------------

    def _count_invalid(self, text: pd.DataFrame, typed: pd.DataFrame) -> pd.DataFrame:
        """Where values do not fit their field (NA in the export; validate names them), with
        their number logged."""
        plain = [c for c, spec in self.layout.specs.items() if not spec.option and c in text]
        invalid = text[plain].notna() & typed[plain].isna()
        if count := int(invalid.to_numpy().sum()):
            logger.info("export: %d value(s) that do not fit their field left blank", count)
        return invalid

    def _keys(self, typed: pd.DataFrame) -> None:
        words, study = self.words, self.project.study
        self.data[self.record_id] = typed[self.record_id]
        self.labels[self.record_id] = words["record"]
        events = [e.unique_name for e in study.events]
        self.data[EVENT] = pd.Series(
            pd.Categorical(typed[EVENT], categories=events, ordered=True), index=typed.index
        )
        self.labels[EVENT] = words["event"]
        self.values[EVENT] = {e.unique_name: self._event_label(e) for e in study.events}
        self.data[INSTANCE] = _column(typed, INSTANCE)
        self.labels[INSTANCE] = words["instance"]
        if DAG in typed:
            self.data[DAG] = _broadcast(typed[DAG], typed[self.record_id])
            self.labels[DAG] = words["dag"]

    def _event_label(self, event: Event) -> str:
        return (event.label.get(self.lang) if event.label else None) or event.name

    def _field(
        self, instrument: Instrument, f: Field, typed: pd.DataFrame, coded: pd.DataFrame
    ) -> list[str]:
        """A field's columns: its value (a checkbox: one per option), then its missing data
        code where the export holds one."""
        layout, words = self.layout, self.words
        label = instrument.label_of(f, self.lang)
        choices: ValueLabels = {
            c.code: instrument.choice_label(c, self.lang) for c in instrument.choices_of(f)
        }
        names = []
        for column in layout.value_columns(f.name):
            spec = layout.specs[column]
            self.data[column] = typed[column]
            if spec.option:
                self.labels[column] = f"{label}: {choices[str(spec.code)]}"
                self.values[column] = {True: words["checked"], False: words["unchecked"]}
            else:
                self.labels[column] = label
                if f.type in ("radio", "dropdown"):
                    self.values[column] = choices
                elif f.type in ("yesno", "truefalse"):
                    yes, no = ("yes", "no") if f.type == "yesno" else ("true", "false")
                    self.values[column] = {True: words[yes], False: words[no]}
                elif (validation_of(spec) or "").startswith("date_"):
                    self.dates.add(column)
            names.append(column)
        if f.name in coded and coded[f.name].any():
            names.append(self._missing_code(f, label, coded[f.name]))
        return names

    def _missing_code(self, f: Field, label: str, coded: pd.Series) -> str:
        layout, codes = self.layout, self.project.study.missing_data_codes
        if f.type == "checkbox":
            found = pd.Series(pd.NA, index=coded.index, dtype="string")
            for spec in reversed(layout.fields[f.name]):  # the first ticked code wins
                if spec.missing_code:
                    found = found.mask(layout.raw[spec.column] == "1", str(spec.code))
        else:
            found = layout.raw[f.name].where(coded)
        column = f"{f.name}{MISSING_CODE}"
        if column in self.project.field_map():
            raise HektaError(
                f"field {column} clashes with the missing data code column of field {f.name}"
            )
        order = [m.code for m in codes]
        self.data[column] = pd.Series(
            pd.Categorical(found, categories=order, ordered=True), index=coded.index
        )
        self.labels[column] = self.words["missing_code"].format(field=label)
        self.values[column] = {m.code: m.label for m in codes}
        return column

    def _status(self, instrument: Instrument, typed: pd.DataFrame) -> list[str]:
        column = f"{instrument.form}_complete"
        codes = ["0", "1", "2"]
        status = _column(typed, column).astype("string")
        self.data[column] = pd.Series(
            pd.Categorical(status, categories=codes, ordered=True), index=typed.index
        )
        form = instrument.label.get(self.lang) or instrument.form
        self.labels[column] = self.words["form_status"].format(form=form)
        self.values[column] = dict(zip(codes, _FORM_STATUS[self.lang], strict=True))
        return [column]

    def _scores(self, invalid: pd.DataFrame) -> dict[str, pd.DataFrame]:
        """Each scored form's scores, on rows where the form was started. Scoring reads the
        stored text with values that do not fit their field blanked (so that an invalid code
        makes a score missing, as it makes the item missing, instead of stopping the export)
        and with the study's sex field on every row of the record (sex-specific cut-offs at
        follow-ups)."""
        layout, project = self.layout, self.project
        forms = scored_forms(project)
        columns = list(dict.fromkeys(c for f in forms for c in required_columns(project, f)))
        source = layout.raw[columns].mask(invalid[columns], "")
        sex = project.study.sex
        if sex is not None and sex.field in source:
            stored = source[sex.field]
            source[sex.field] = _broadcast(stored.mask(stored == ""), layout.record).fillna("")
        return {
            form: score_frame(project, form, source).where(layout.started(form), pd.NA)
            for form in forms
        }

    def _scored(self, instrument: Instrument, scores: pd.DataFrame) -> list[str]:
        assert instrument.scoring is not None
        words = self.words
        yes_no: ValueLabels = {1: words["yes"], 0: words["no"]}
        for score in instrument.scoring.scores:
            label = score.label.get(self.lang) or score.name
            self.labels[score.name] = label
            for part in ("n_answered", "prorated", "incomplete"):
                column = f"{score.name}_{part}"
                if column in scores:
                    self.labels[column] = words[part].format(score=label)
                    if part != "n_answered":
                        self.values[column] = yes_no
        for derived in instrument.scoring.derived:
            self.labels[derived.name] = derived.label.get(self.lang) or derived.name
            if derived.bands is not None:
                self.values[derived.name] = {
                    b.code: b.label.get(self.lang) or str(b.code) for b in derived.bands
                }
            elif derived.linear is None:
                self.values[derived.name] = yes_no
        for column in scores.columns:
            self.data[column] = scores[column]
        return list(scores.columns)

    def _participant(self, typed: pd.DataFrame) -> None:
        """The allocated group and the days from randomisation to each row's assessment."""
        record = typed[self.record_id]
        schedule = self.project.study.schedule
        assert schedule is not None
        self.group = _broadcast(typed[GROUP], record)
        anchor = typed[schedule.anchor_field]
        if schedule.anchor_event:
            anchor = anchor.where(typed[EVENT] == schedule.anchor_event)
        assessed = assessment_date(self.project)
        days = (typed[assessed] - _broadcast(anchor, record)).dt.days
        self.data[DAYS] = days.astype("Int64")
        self.labels[DAYS] = self.words["days"].format(field=assessed)

    # -- shapes ----------------------------------------------------------------------------

    def _table(
        self, name: str, frame: pd.DataFrame, labels: Mapping[str, str] | None = None
    ) -> Table:
        """A table of `frame`, labelled as read (`labels` add to and override the labels)."""
        columns, labels = list(frame.columns), labels or {}
        return Table(
            name,
            frame.reset_index(drop=True),
            {c: labels.get(c) or self.labels[c] for c in columns},
            {c: self.values[c] for c in columns if c in self.values},
            frozenset(c for c in columns if c in self.dates),
        )

    def _select(self, rows: pd.Series, columns: list[str]) -> pd.DataFrame:
        """`columns` on `rows` (a mask of export rows); the group is the record's on every row."""
        source = {**self.data, GROUP: self.group}
        return pd.DataFrame({c: source[c] for c in columns})[rows.to_numpy()]

    def _plain_forms(self) -> list[str]:
        return [f for f in exported_forms(self.project) if not self.layout.repeating(f)]

    def _head(self) -> list[str]:
        """The participant's columns: record id, data access group (if exported), group."""
        return [self.record_id, *([DAG] if DAG in self.data else []), GROUP]

    def _plain_columns(self, form: str) -> list[str]:
        return [c for c in self.columns[form] if c != GROUP]

    def long(self) -> list[Table]:
        """One row per participant and event where a non-repeating form was started."""
        forms = self._plain_forms()
        rows = pd.concat([self.layout.started(f) for f in forms], axis=1).any(axis=1)
        head = self._head()
        columns = [head[0], EVENT, *head[1:], DAYS]
        columns += [c for f in forms for c in self._plain_columns(f)]
        return [self._table("long", self._select(rows, columns))]

    def wide(self) -> list[Table]:
        """One row per record; each variable once per event its form is collected at, named
        `<variable>_<timepoint>` and labelled with the event."""
        layout = self.layout
        first = ~layout.record.duplicated()
        participants = layout.record[first]
        frame = self._select(first, self._head())
        suffix = timepoints(self.project)
        events = {e.unique_name: e for e in self.project.study.events}
        plain = layout.repeat == ""
        spread = [(DAYS, list(events))]
        spread += [
            (c, self.project.events_of(f))
            for f in self._plain_forms()
            for c in self._plain_columns(f)
        ]
        data: dict[str, pd.Series] = {}
        labels: dict[str, str] = {}
        for name, event in events.items():
            at = (plain & (layout.event == name)).to_numpy()
            found = pd.Index(layout.record[at]).get_indexer(participants)
            for column, names in spread:
                if name not in names:
                    continue
                wide = f"{column}_{suffix[name]}"
                values = self.data[column][at].array.take(found, allow_fill=True)
                data[wide] = pd.Series(values, index=frame.index)
                labels[wide] = f"{self.labels[column]} ({self._event_label(event)})"
                self._alias(wide, column)
        order = [f"{c}_{suffix[n]}" for c, names in spread for n in events if n in names]
        frame = pd.concat([frame, pd.DataFrame({c: data[c] for c in order})], axis=1)
        return [self._table("wide", frame, labels)]

    def _alias(self, wide: str, column: str) -> None:
        if column in self.values:
            self.values[wide] = self.values[column]
        if column in self.dates:
            self.dates.add(wide)

    def instruments(self) -> list[Table]:
        """One table per instrument, on the rows where it was started."""
        tables = []
        for form in exported_forms(self.project):
            keys = [self.record_id, EVENT] + ([INSTANCE] if self.layout.repeating(form) else [])
            columns = keys + self.columns[form]
            frame = pd.DataFrame({c: self.data[c] for c in columns})
            tables.append(self._table(form, frame[self.layout.started(form).to_numpy()]))
        return tables

    def outcomes(self) -> Table:
        layout = self.layout  # its places are blank where the export has no such column
        rows = layout.raw.assign(**{REPEAT: layout.repeat, INSTANCE: layout.instance})
        frame = outcomes.employment_outcomes(self.project, rows, outcomes.OUTCOME_MONTHS)
        nb_en = {
            c: texts[LANGUAGES.index(self.lang)] for c, texts in outcomes.OUTCOME_LABELS.items()
        }
        labels = {
            self.record_id: self.labels[self.record_id],
            "group": self.labels[GROUP],
            **{c: text.format(m=outcomes.OUTCOME_MONTHS) for c, text in nb_en.items()},
        }
        yes_no: ValueLabels = {True: self.words["yes"], False: self.words["no"]}
        values: dict[str, ValueLabels] = {
            "group": self.values[GROUP],
            "any_competitive_job": yes_no,
            "worked_20h_week": yes_no,
        }
        return Table(OUTCOMES, frame, labels, values)

    def pseudonymised(self, table: Table, pseudonyms: Pseudonyms) -> Table:
        """The table with pseudonyms for record ids, sorted by pseudonym (then event and
        instance), so that the row order does not reveal the record ids."""
        frame = table.frame.copy()
        frame[self.record_id] = pseudonyms.apply(frame[self.record_id])
        keys = [c for c in (self.record_id, EVENT, INSTANCE) if c in frame]
        frame = frame.sort_values(keys, kind="stable").reset_index(drop=True)
        labels = {**table.labels, self.record_id: self.words["pseudonym"]}
        return Table(table.name, frame, labels, table.value_labels, table.dates)
