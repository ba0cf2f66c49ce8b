"""Instrument definitions: one YAML file per REDCap form, the single source of truth.

A definition holds everything REDCap's data dictionary can (fields, types, choices, validation,
branching, matrices, action tags) plus what REDCap cannot: labels in bokmål and English, a
translation status, a licence class, and a declarative scoring block. The format is documented
in docs/instruments.md.

    >>> instrument = load_instrument(Path("instruments/forms/audit.yaml"))
    >>> [f.name for f in instrument.fields][:2]
    ['audit_1', 'audit_2']
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Literal

from pydantic import Field as PydanticField
from pydantic import PrivateAttr, field_validator, model_validator

from hekta_redcap.core.errors import DefinitionError
from hekta_redcap.definitions import yamlfile
from hekta_redcap.definitions.model import DEFAULT_LANGUAGE, Node, Text
from hekta_redcap.redcap.fieldtypes import CHOICE_TYPES, FieldType, parse_choices


def _scalar_to_str(value: Any) -> Any:
    """YAML turns `0` into an int and `2024-01-01` into a date; REDCap holds them as text."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


class Choice(Node):
    """One answer option. `label` may be left out only in a codes_only instrument."""

    code: str
    label: Text | None = None

    _code_to_str = field_validator("code", mode="before")(_scalar_to_str)


class Slider(Node):
    """A slider's labels at its left, middle and right; `show_number` shows the value."""

    left: Text | None = None
    mid: Text | None = None
    right: Text | None = None
    show_number: bool = False


class Outlier(Node):
    """An unusual-value check a field asks for (validation's `outlier` note): values far from
    the field's other values by a robust rule, `mad` (modified z-score from the median and the
    median absolute deviation, beyond `threshold`, default 3.5) or `iqr` (beyond `threshold`
    interquartile ranges outside the quartiles, default 3), once at least `min_values` values
    exist; `by` compares only values sharing another field's answer (pay per its unit)."""

    method: Literal["mad", "iqr"] = "mad"
    threshold: float | None = None
    min_values: int = PydanticField(default=20, ge=3)
    by: str | None = None


class Field(Node):
    """One REDCap field. Keys map onto the data dictionary's 18 columns (docs/instruments.md)."""

    name: str
    type: FieldType
    label: Text | None = None
    concept: str | None = None
    section: Text | None = None
    note: Text | None = None
    choices: str | list[Choice] | None = None
    calc: str | None = None
    slider: Slider | None = None
    validation: str | None = None
    min: str | None = None
    max: str | None = None
    identifier: bool = False
    required: bool = False
    branching: str | None = None
    align: Literal["RV", "RH", "LV", "LH"] | None = None
    question_number: str | None = None
    matrix: str | None = None
    matrix_ranking: bool = False
    annotation: str | None = None
    # The dictionary's choices cell exactly, where `choices` or `slider` cannot say it (spacing
    # REDCap keeps, two slider labels); an sql field's query; a text field's ontology search.
    choices_text: str | None = None
    sql: str | None = None
    ontology: str | None = None
    # Validation only (not REDCap's): a blank here is worth a note to the nurse (scale items
    # always are), and an unusual value is checked as `outlier` says.
    expected: bool = False
    outlier: Outlier | None = None

    _bounds_to_str = field_validator("min", "max", "question_number", mode="before")(_scalar_to_str)


class StructuralZero(Node):
    """Items a skip rule hides: when `when` is true they score 0 if left blank."""

    when: str
    items: list[str]


class Gate(Node):
    """A completeness rule over a wider item set (WHOQOL-BREF: at least 21 of 26 answered)."""

    items: list[str]
    min_answered: int


class Score(Node):
    """A numeric score aggregated from items (see docs/scoring.md for the engine's rules)."""

    name: str
    label: Text
    items: list[str]
    aggregate: Literal["sum", "mean", "profile"]
    reverse: list[str] = []
    multiply: float | None = None
    structural_zeros: list[StructuralZero] = []
    min_answered: int | None = None
    prorate: bool = False
    incomplete: Literal["missing", "partial"] = "missing"
    gate: Gate | None = None


class Cutoff(Node):
    op: Literal[">=", ">", "<=", "<"]
    value: float


class Band(Node):
    """One category: values from `min` (inclusive) up to the next band's `min` (exclusive)."""

    code: int
    min: float
    label: Text


class Linear(Node):
    multiply: float = 1.0
    add: float = 0.0


class Derived(Node):
    """A category, flag or transform computed from a score or an item (exactly one rule)."""

    name: str
    label: Text
    source: str | None = PydanticField(default=None, alias="from")
    bands: list[Band] | None = None
    cutoff: Cutoff | None = None
    by_sex: dict[Literal["male", "female"], Cutoff] | None = None
    linear: Linear | None = None
    logic: str | None = None
    safety: bool = False

    @model_validator(mode="after")
    def _one_rule(self) -> Derived:
        rules = [k for k in ("bands", "cutoff", "by_sex", "linear", "logic") if getattr(self, k)]
        if len(rules) != 1:
            raise ValueError(
                "give exactly one of bands, cutoff, by_sex, linear or logic"
                + (f" (found {', '.join(rules)})" if rules else "")
            )
        if self.logic is None and self.source is None:
            raise ValueError("'from' names the score or item this rule is computed from")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("bands", "cutoff", "by_sex", "linear", "logic") if getattr(self, k))


class Scoring(Node):
    scores: list[Score] = []
    derived: list[Derived] = []


class ItemsFrom(Node):
    """Another form's fields repeated after this form's own, each named with `prefix` in place
    of the other form's `<form>_` (each reviewer's own IPS-25 ratings without a second list of
    the 25 items); made when the project loads (definitions/generated.py)."""

    form: str
    prefix: str


class GeneratedChoices(Node):
    """A choice set made when the project loads from other definitions: the study's `sites`,
    or (`items_of`) a form's fields, each coded by its name without the `<form>_` prefix."""

    sites: bool = False
    items_of: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> GeneratedChoices:
        if self.sites == (self.items_of is not None):
            raise ValueError("give exactly one of sites: true or items_of")
        return self


class Instrument(Node):
    """One REDCap form with its fields, provenance and scoring."""

    form: str
    label: Text
    licence: Literal["ship_text", "codes_only"]
    translation: Literal["official", "verified", "draft"]
    source: str | None = None
    version: str = "1"
    recall: Text | None = None
    choice_sets: dict[str, list[Choice]] = {}
    fields: list[Field]
    scoring: Scoring | None = None
    items_from: ItemsFrom | None = None
    generated_choices: dict[str, GeneratedChoices] = {}
    # Which rules lint holds the form to: the project's (its own forms) or only REDCap's (a form
    # adopted from another project's dictionary, whose other findings are warnings).
    rules: Literal["project", "redcap"] = "project"

    _version_to_str = field_validator("version", mode="before")(_scalar_to_str)
    _overlay_applied: bool = PrivateAttr(default=False)

    def choices_of(self, field: Field) -> list[Choice]:
        """A field's choices, with a named choice set resolved (empty if it names none)."""
        if isinstance(field.choices, str):
            return self.choice_sets.get(field.choices, [])
        if field.choices is None and field.choices_text is not None and field.type in CHOICE_TYPES:
            return [
                Choice(code=code, label=Text.model_validate(label))
                for code, label in parse_choices(field.choices_text)
            ]
        return field.choices or []

    def codes_of(self, field: Field) -> list[str] | None:
        """The codes a single-choice field stores (yes/no and true/false: 0 and 1); None for
        other fields."""
        if field.type in ("yesno", "truefalse"):
            return ["0", "1"]
        if field.type in ("radio", "dropdown"):
            return [c.code for c in self.choices_of(field)]
        return None

    @property
    def overlay_missing(self) -> bool:
        """A codes_only instrument whose licensed text has not been installed at this site."""
        return self.licence == "codes_only" and not self._overlay_applied

    def label_of(self, field: Field, lang: str = DEFAULT_LANGUAGE) -> str:
        """The field label to show, or a placeholder where licensed text is not installed."""
        text = field.label.get(lang) if field.label else None
        if text:
            return text
        if self.licence == "codes_only":
            concept = f" ({field.concept})" if field.concept else ""
            return f"[{self.label.get(lang)}: {field.name}{concept}; licensed text not installed]"
        return ""

    def choice_label(self, choice: Choice, lang: str = DEFAULT_LANGUAGE) -> str:
        """A choice's label; licensed instruments without their text show the bare code."""
        text = choice.label.get(lang) if choice.label else None
        return choice.code if text is None else text


def load_instrument(file: Path) -> Instrument:
    return Instrument.from_document(yamlfile.load(file))


# Site-local licensed text ---------------------------------------------------------------------


class OverlayField(Node):
    label: Text | None = None
    section: Text | None = None
    note: Text | None = None
    choices: list[Choice] | None = None


class Overlay(Node):
    """Licensed item text for a codes_only instrument, kept out of the repository."""

    form: str
    source: str
    translation: Literal["official", "verified", "draft"] = "official"
    label: Text | None = None
    fields: dict[str, OverlayField] = {}
    choice_sets: dict[str, list[Choice]] = {}


def apply_overlay(instrument: Instrument, file: Path) -> None:
    """Fill a codes_only instrument's text from a site's overlay file.

    The overlay may only supply text: an unknown field, choice set or code is an error, so a
    mismatched overlay can never change what is stored.
    """
    overlay = Overlay.from_document(yamlfile.load(file))
    if overlay.form != instrument.form:
        raise DefinitionError(
            f"overlay is for form '{overlay.form}', not '{instrument.form}'", overlay.origin("form")
        )
    fields = {f.name: f for f in instrument.fields}
    for name, text in overlay.fields.items():
        field = fields.get(name)
        if field is None:
            raise DefinitionError(f"unknown field '{name}'", overlay.origin("fields", name))
        for attr in ("label", "section", "note"):
            if (value := getattr(text, attr)) is not None:
                setattr(field, attr, value)
        if text.choices is not None:
            _relabel(
                instrument.choices_of(field), text.choices, overlay, ("fields", name, "choices")
            )
    for set_name, choices in overlay.choice_sets.items():
        if set_name not in instrument.choice_sets:
            raise DefinitionError(
                f"unknown choice set '{set_name}'", overlay.origin("choice_sets", set_name)
            )
        _relabel(instrument.choice_sets[set_name], choices, overlay, ("choice_sets", set_name))
    if overlay.label is not None:
        instrument.label = overlay.label
    instrument.source = overlay.source
    instrument.translation = overlay.translation
    instrument._overlay_applied = True


def _relabel(
    target: list[Choice], texts: list[Choice], overlay: Overlay, path: tuple[str, ...]
) -> None:
    by_code = {c.code: c for c in target}
    for i, choice in enumerate(texts):
        if choice.code not in by_code:
            raise DefinitionError(
                f"code '{choice.code}' is not a code of this item", overlay.origin(*path, i)
            )
        by_code[choice.code].label = choice.label
