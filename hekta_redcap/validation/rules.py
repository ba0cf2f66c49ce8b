"""REDCap's data-quality rules and the study's cross-field rules, over a whole export at once.

REDCap's rules A-I: (A) blank values in fields not hidden by branching, (B) blank required
fields, (C) wrong type, (D) out of range, (E) outliers, (F) hidden fields holding values,
(G) invalid choice values, (H) stored calculations that differ from their formula, (I) fields
holding missing data codes. B, C, D and G are the pandera schemas' (`schemas`); the rest are here,
with branching logic and calculations evaluated by the vectorised REDCap logic evaluator.

A and E are narrowed to what can be wrong (a nurse who meets a thousand notes reads none):

* A field is checked only on rows that hold its form (instrument-event mapping, repeat rows of
  their own form only). A form never started (status blank or 0 and no value) is not checked
  for blanks; neither are fields a person does not enter (calculations, @HIDDEN, @READONLY).
* A lists a blank only where an answer is expected: a scale item (its absence changes a score)
  or a field the definitions mark `expected: true`; optional comments, alternatives and fields
  left blank on purpose are not. A required field is B's, listed once.
* A missing data code is an answer: it is neither blank nor a wrong value, and is listed (I).
* E runs only where a field asks for it (`outlier:`), by a robust rule (median and median
  absolute deviation, or quartiles) over every row that holds its form, once it has enough
  values; a declared range is D's.
* H compares numerically with a tolerance of 1e-6 (absolute and relative): REDCap stores
  calculations at a precision of its own. A blank result and a stored value (or the reverse)
  differ.
* F does not apply to calculations, which REDCap keeps computing whatever branching says.

The study's rules: dates in order (the study file's `date_order`, read with invalid dates and
missing data codes as blank, so that each wrong date is listed once, as a wrong type),
skip-rule violations (a non-zero answer to an item that a scoring block's `structural_zeros`
says the skip rule hides), the study's own cross-field checks (`data_quality.checks`, REDCap
logic over the rows of the field's form that were started), and national identity numbers (the
field the study's `register_linkage` names) that python-stdnum refuses, reported with the reason
and never the number.
"""

from __future__ import annotations

import datetime as dt
from functools import cached_property

import numpy as np
import pandas as pd

from hekta_redcap.core.identity import check_national_id
from hekta_redcap.redcap.logic_frame import truth
from hekta_redcap.validation.layout import Layout, Spec
from hekta_redcap.validation.schemas import HIT_COLUMNS, entered

TOLERANCE = 1e-6
THRESHOLDS = {"mad": 3.5, "iqr": 3.0}  # Iglewicz and Hoaglin's cut-off; Tukey's "far out"
MAD_SCALE = 0.6745  # the modified z-score's constant: the MAD of a normal distribution in SDs
MEAN_AD_SCALE = 1.253314  # when half the values are the median (MAD 0): the mean AD's in SDs


def hits(
    rule: str,
    mask: pd.Series,
    spec: Spec,
    value: pd.Series | str = "",
    *,
    detail: str = "",
    other: pd.Series | str = "",
) -> pd.DataFrame:
    """One hit per row of `mask` for a field (values and `other` as Series or one text)."""
    rows = mask.index[mask.to_numpy(dtype=bool)]

    def pick(v: pd.Series | str) -> object:
        return v.loc[rows].to_numpy() if isinstance(v, pd.Series) else v

    return pd.DataFrame(
        {
            "row": rows,
            "column": spec.field.name,
            "field": spec.field.name,
            "rule": rule,
            "value": pick(value),
            "detail": detail,
            "other": pick(other),
        },
        columns=HIT_COLUMNS,
    )


class Rules:
    """The rules over one export (`coded`: per field, the rows holding a missing data code;
    `allow_synthetic_ids`: numbers of the synthetic test population are valid)."""

    def __init__(
        self,
        layout: Layout,
        coded: pd.DataFrame,
        today: dt.date,
        allow_synthetic_ids: bool = False,
    ) -> None:
        self.layout, self.coded, self.today = layout, coded, today
        self.allow_synthetic_ids = allow_synthetic_ids
        self.raw = layout.raw
        self._visible: dict[tuple[str, str], pd.Series] = {}

    def all(self, typed: pd.DataFrame) -> list[pd.DataFrame]:
        """Every rule's hits; `typed` is the cast frame."""
        return [
            *self.blanks(),
            *self.hidden_values(),
            *self.calculations(),
            *self.missing_codes(),
            *self.outliers(typed),
            *self.date_order(typed),
            *self.skip_violations(),
            *self.checks(),
            *self.national_ids(),
        ]

    # -- what each field's rows look like ---------------------------------------------------

    @cached_property
    def fields(self) -> list[Spec]:
        """One spec per field (a checkbox's first option stands for the field)."""
        return [specs[0] for specs in self.layout.fields.values()]

    def shown(self, spec: Spec) -> pd.Series:
        """Rows holding the field's form where branching shows it."""
        applies = self.layout.applies(spec.form)
        logic = spec.field.branching
        if not logic:
            return applies
        key = (spec.form, logic)
        if key not in self._visible:
            result = self.layout.evaluate(spec.form, logic, applies, today=self.today)
            shown = truth(result).reindex(self.raw.index, fill_value=False)
            self._visible[key] = shown
        return self._visible[key]

    def coded_rows(self, spec: Spec) -> pd.Series:
        name = spec.field.name
        return self.coded[name] if name in self.coded else pd.Series(False, self.raw.index)

    def value(self, spec: Spec, missing_codes: bool = False) -> pd.Series:
        """The stored answer as text: a checkbox's ticked codes joined by commas (its ticked
        missing data codes with `missing_codes`)."""
        if not spec.option:
            return self.raw[spec.field.name]
        ticked = []
        for option in self.layout.fields[spec.field.name]:
            if option.missing_code == missing_codes:
                assert option.code is not None  # a checkbox column has its option's code
                ticked.append(np.where(self.raw[option.column] == "1", option.code, ""))
        joined = [",".join(filter(None, codes)) for codes in zip(*ticked, strict=True)]
        return pd.Series(joined, index=self.raw.index, dtype=str)

    def has_value(self, spec: Spec) -> pd.Series:
        return self.layout.filled(spec.field.name)

    def due(self, spec: Spec) -> pd.Series:
        """Rows where an answer is due: shown, on a started form, not a missing data code."""
        return self.shown(spec) & self.layout.started(spec.form) & ~self.coded_rows(spec)

    def answer(self, spec: Spec) -> pd.Series:
        """The answer where one is due (NA when blank), "" where none is: what the schemas'
        `answer:<field>` columns hold."""
        value = self.value(spec).mask(~self.has_value(spec))
        return value.where(self.due(spec), "")

    # -- REDCap's rules ---------------------------------------------------------------------

    @cached_property
    def expected(self) -> set[str]:
        """The fields whose blank is worth a note: scale items and `expected: true`."""
        names = {f.name for spec in self.fields for f in [spec.field] if f.expected}
        for instrument in self.layout.project.instruments.values():
            for score in instrument.scoring.scores if instrument.scoring else []:
                names.update(score.items)
        return names

    def blanks(self) -> list[pd.DataFrame]:
        """A: blank where an answer is expected, not required, shown, on a started form."""
        return [
            hits("blank", self.due(spec) & ~self.has_value(spec), spec)
            for spec in self.fields
            if spec.field.name in self.expected and entered(spec) and not spec.field.required
        ]

    def hidden_values(self) -> list[pd.DataFrame]:
        """F: a value in a field that branching hides."""
        found = []
        for spec in self.fields:
            if spec.field.branching and spec.field.type != "calc":
                hidden = self.layout.applies(spec.form) & ~self.shown(spec)
                mask = hidden & self.has_value(spec)
                found.append(hits("hidden-value", mask, spec, self.value(spec)))
        return found

    def calculations(self) -> list[pd.DataFrame]:
        """H: a stored calculation that is not what its formula gives."""
        found = []
        for spec in self.fields:
            if spec.field.type != "calc" or not spec.field.calc:
                continue
            rows = self.shown(spec) & self.layout.started(spec.form)
            result = self.layout.evaluate(spec.form, spec.field.calc, rows, today=self.today)
            expected = pd.to_numeric(result.mask(result.eq("")), errors="coerce").astype(float)
            stored = self.raw[spec.field.name].loc[result.index]
            blank = ~self.has_value(spec).loc[result.index]
            number = pd.to_numeric(stored.mask(blank), errors="coerce").astype(float)
            close = np.isclose(number, expected, rtol=TOLERANCE, atol=TOLERANCE)
            differs = (expected.isna() != blank) | (expected.notna() & ~close)
            other = expected[differs].map(lambda x: "" if np.isnan(x) else f"{x:.10g}")
            found.append(hits("calc-mismatch", differs, spec, stored, other=other))
        return found

    def missing_codes(self) -> list[pd.DataFrame]:
        """I: a field holding one of the project's missing data codes."""
        found = []
        for spec in self.fields:
            if spec.field.name in self.coded:
                mask = self.coded_rows(spec) & self.layout.applies(spec.form)
                value = self.value(spec, missing_codes=True)
                found.append(hits("missing-code", mask, spec, value))
        return found

    def outliers(self, typed: pd.DataFrame) -> list[pd.DataFrame]:
        """E: where a field asks for it, values far from its other values (advisory); the
        median of the values compared goes with the note."""
        found = []
        for spec in self.fields:
            rule, column = spec.field.outlier, typed.get(spec.field.name)
            if rule is None or column is None or column.dtype.kind not in "iuf":
                continue
            numbers = column.astype("Float64").where(self.layout.applies(spec.form))
            numbers = pd.Series(numbers.to_numpy(dtype=float, na_value=np.nan), self.raw.index)
            groups = self.raw[rule.by] if rule.by else pd.Series("", index=self.raw.index)
            for _, values in numbers.groupby(groups, sort=False):
                mask, middle = _far(values.dropna(), rule.method, rule.threshold, rule.min_values)
                if mask.any():
                    flagged = mask.reindex(self.raw.index, fill_value=False)
                    value = self.raw[spec.field.name]
                    found.append(hits("outlier", flagged, spec, value, other=f"{middle:.4g}"))
        return found

    # -- the study's rules ------------------------------------------------------------------

    def date_order(self, typed: pd.DataFrame) -> list[pd.DataFrame]:
        """Dates that should follow each other but do not (reported on the later one)."""
        layout, today, found = self.layout, self.today, []
        schedule = layout.study.schedule
        followups = [f.event for f in schedule.followups] if schedule else []
        for pair in layout.study.date_order:
            earlier, later, followups_only = pair.earlier, pair.later, pair.followups_only
            if earlier not in layout.fields or later not in layout.fields:
                continue
            spec = layout.field_spec(later)
            source = typed[[earlier, later]].notna()
            source = self.raw[[earlier, later]].where(source, "")
            rows = layout.applies(spec.form) & (source[later] != "")
            if followups_only:
                rows &= layout.event.isin(followups)
            for event in layout.event[rows].unique():
                reference = self._reference(earlier, spec.form, event)
                if reference is None:
                    continue
                at_event = rows & (layout.event == event)
                logic = f"{reference} > [{later}]"
                wrong = layout.evaluate(spec.form, logic, at_event, today=today, source=source)
                mask = truth(wrong).reindex(self.raw.index, fill_value=False)
                other = layout.evaluate(spec.form, reference, mask, today=today, source=source)
                value = self.raw[later]
                found.append(hits("date-order", mask, spec, value, detail=earlier, other=other))
        return found

    def _reference(self, field: str, form: str, event: str) -> str | None:
        """`[field]` when its form is at `event`, `[its event][field]` when it has one event."""
        layout = self.layout
        other = layout.field_spec(field).form
        events = layout.project.events_of(other) if layout.study.longitudinal else [""]
        if event in events and not (layout.repeating(other) and other != form):
            return f"[{field}]"
        return f"[{events[0]}][{field}]" if len(events) == 1 and events[0] else None

    def skip_violations(self) -> list[pd.DataFrame]:
        """A non-zero answer to an item that a skip rule (`structural_zeros`) hides."""
        layout, found = self.layout, []
        for form, instrument in layout.project.instruments.items():
            scores = instrument.scoring.scores if instrument.scoring else []
            hides: dict[str, dict[str, None]] = {}  # condition -> items (scores share some)
            for zero in (z for score in scores for z in score.structural_zeros):
                hides.setdefault(zero.when, {}).update(dict.fromkeys(zero.items))
            for when, items in hides.items():
                rows = layout.applies(form) & layout.started(form)
                hidden = truth(layout.evaluate(form, when, rows, today=self.today))
                hidden = hidden.reindex(self.raw.index, fill_value=False)
                for item in items:
                    spec = layout.field_spec(item)
                    value = self.raw[item]
                    mask = hidden & ~value.isin(["", "0"]) & ~self.coded_rows(spec)
                    found.append(hits("skip-violation", mask, spec, value, detail=when))
        return found

    def checks(self) -> list[pd.DataFrame]:
        """The study's cross-field checks: a started row of the field's form where `when`
        holds (reported with the check's name as detail)."""
        layout, found = self.layout, []
        for check in layout.study.data_quality.checks:
            spec = layout.field_spec(check.field)
            rows = layout.applies(spec.form) & layout.started(spec.form)
            result = layout.evaluate(spec.form, check.when, rows, today=self.today)
            mask = truth(result).reindex(self.raw.index, fill_value=False)
            value = self.value(spec)
            found.append(hits("check", mask, spec, value, detail=check.name))
        return found

    def national_ids(self) -> list[pd.DataFrame]:
        """A filled national identity number that is not valid, with the reason as detail
        (`core.identity`); the hit holds no value, as the problem list shows none."""
        linkage = self.layout.study.register_linkage
        if linkage is None or linkage.national_id not in self.layout.fields:
            return []
        spec = self.layout.field_spec(linkage.national_id)
        rows = self.layout.applies(spec.form) & self.has_value(spec) & ~self.coded_rows(spec)
        values = self.raw[spec.field.name][rows]
        allow = self.allow_synthetic_ids
        reason = values.map({v: check_national_id(v, allow).reason or "" for v in values.unique()})
        return [
            hits("national-id", reason == why, spec, detail=why) for why in reason.unique() if why
        ]


def _far(
    values: pd.Series, method: str, threshold: float | None, min_values: int
) -> tuple[pd.Series, float]:
    """Which values lie far from the rest by `method` (see `instruments.Outlier`), and the
    median they are compared with; nothing is far among fewer than `min_values` values or
    values that do not spread."""
    none = pd.Series(False, index=values.index)
    if len(values) < min_values:
        return none, float("nan")
    limit = THRESHOLDS[method] if threshold is None else threshold
    median = float(values.median())
    if method == "iqr":
        low, high = values.quantile([0.25, 0.75])
        spread = high - low
        if not spread > 0:
            return none, median
        return (values < low - limit * spread) | (values > high + limit * spread), median
    deviation = (values - median).abs()
    mad = float(deviation.median())
    scale = mad / MAD_SCALE if mad > 0 else MEAN_AD_SCALE * float(deviation.mean())
    if not scale > 0:
        return none, median
    return deviation / scale > limit, median
