"""pandera schemas generated from the definitions, one per instrument and event.

A schema checks one form's rows at one event. Column checks: each field's type, its codes
(`isin`) and its range (min/max parsed by the validation type), on the answers' text (blanks and
missing data codes are NA, see `reading`). Required fields: whether an answer is due depends on
branching logic and on whether the form was started, which the text cannot show, so the frame
carries one column per required field, `answer:<field>`, holding the answer where one is due
and "" where none is; the schema declares those columns non-nullable. Dataframe-level checks:
a checkbox's exclusive option (`@NONEOFTHEABOVE`) ticked together with another option.

Validation is lazy, so every failure comes back; `failure_hits` maps pandera's failure cases
back to export rows and fields.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

import numpy as np
import pandas as pd
import pandera.pandas as pa

from hekta_redcap.validation.layout import Layout, Spec
from hekta_redcap.validation.reading import bounds, codes_of, convert, validation_of

ANSWER = "answer:"
HIT_COLUMNS = ("row", "column", "field", "rule", "value", "detail", "other")
_NONE_OF_THE_ABOVE = re.compile(r"@NONEOFTHEABOVE\s*=\s*(['\"]?)([^'\"\s]+)\1")


def entered(spec: Spec) -> bool:
    """Whether a person enters this field on the form (so a blank can be acted on): not a
    calculation, nor hidden or read-only by action tag."""
    annotation = spec.field.annotation or ""
    tags = ("@HIDDEN", "@READONLY", "@CALCDATE", "@CALCTEXT")
    return spec.field.type != "calc" and not any(tag in annotation for tag in tags)


def required(layout: Layout, form: str) -> list[Spec]:
    """The form's required fields that a person enters (one spec per field)."""
    return [
        specs[0]
        for specs in layout.fields.values()
        if specs[0].form == form and specs[0].field.required and entered(specs[0])
    ]


def exclusive_codes(spec: Spec) -> list[str]:
    """A checkbox's options that exclude every other (`@NONEOFTHEABOVE='0'`)."""
    match = _NONE_OF_THE_ABOVE.search(spec.field.annotation or "")
    return [c.strip() for c in match.group(2).split(",")] if match and spec.option else []


def _column(spec: Spec, today: dt.date) -> pa.Column:
    checks = []
    codes = codes_of(spec)
    if codes is not None:
        checks.append(pa.Check(lambda s, c=codes: s.isin(c), error="choice", ignore_na=True))
    elif validation_of(spec) is not None:
        typed = _Typed(spec)
        checks.append(pa.Check(lambda s: typed(s)[1], error="type", ignore_na=True))
        low, high = bounds(spec, today)
        if low is not None or high is not None:
            checks.append(pa.Check(typed.within(low, high), error="range", ignore_na=True))
    return pa.Column(nullable=True, required=True, checks=checks)


class _Typed:
    """A column's `convert`, shared by its type and range checks: pandera hands both the same
    values, so the second reuses the first's work."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.last: tuple[pd.Index, tuple[pd.Series, pd.Series]] | None = None

    def __call__(self, text: pd.Series) -> tuple[pd.Series, pd.Series]:
        if self.last is None or not self.last[0].equals(text.index):
            self.last = (text.index, convert(self.spec, text))
        return self.last[1]

    def within(self, low: object, high: object) -> Callable[[pd.Series], pd.Series]:
        def check(text: pd.Series) -> pd.Series:
            value = self(text)[0]
            inside = pd.Series(True, index=text.index)
            if low is not None:
                inside &= ~(value < low).fillna(False)
            if high is not None:
                inside &= ~(value > high).fillna(False)
            return inside

        return check


def _exclusive(layout: Layout, spec: Spec) -> pa.Check:
    options = layout.value_columns(spec.field.name)
    alone = [c for c in options if layout.specs[c].code in exclusive_codes(spec)]

    def check(frame: pd.DataFrame) -> pd.Series:
        ticked = frame[options].eq("1")
        return ~(ticked[alone].any(axis=1) & (ticked.sum(axis=1) > 1))

    return pa.Check(check, error=f"choice:{spec.field.name}", ignore_na=False)


def form_schema(layout: Layout, form: str, event: str, today: dt.date) -> pa.DataFrameSchema:
    """The schema of `form` at `event` (the event is "" in a classic project)."""
    specs = [s for s in layout.specs.values() if s.form == form and not s.missing_code]
    columns = {spec.column: _column(spec, today) for spec in specs}
    columns |= {ANSWER + s.field.name: pa.Column(nullable=False) for s in required(layout, form)}
    checks = [
        _exclusive(layout, specs[0])
        for specs in layout.fields.values()
        if specs[0].form == form and exclusive_codes(specs[0])
    ]
    return pa.DataFrameSchema(columns, checks=checks, name=f"{form} @ {event or 'classic'}")


def failure_hits(
    layout: Layout, text: pd.DataFrame, answers: dict[str, pd.Series], today: dt.date
) -> pd.DataFrame:
    """Validate every form at every event lazily; one hit per failing cell. `answers` holds,
    per required field, the answer where one is due (NA when blank) and "" elsewhere."""
    events = [e.unique_name for e in layout.study.events] or [""]
    found = []
    for form in layout.project.forms:
        for event in events:
            rows = layout.applies(form) & (layout.event == event)
            if not rows.any():
                continue
            schema = form_schema(layout, form, event, today)
            frame = text.loc[rows, [c for c in schema.columns if c in text]]
            for spec in required(layout, form):
                frame[ANSWER + spec.field.name] = answers[spec.field.name][rows]
            try:
                schema.validate(frame, lazy=True)
            except pa.errors.SchemaErrors as errors:
                found.append(errors.failure_cases)
    if not found:
        return pd.DataFrame(columns=HIT_COLUMNS)
    cases = pd.concat(found, ignore_index=True)
    check = cases["check"].str.partition(":")
    rule = check[0].replace("not_nullable", "required")
    unknown = set(rule) - {"choice", "type", "range", "required"}
    if unknown:  # a schema-level failure (a column or dtype): the schema itself is wrong
        raise AssertionError(f"unexpected pandera failures: {sorted(unknown)}")
    frame_level = cases["schema_context"] == "DataFrameSchema"
    column = cases["column"].str.removeprefix(ANSWER).where(~frame_level, check[2])
    hits = pd.DataFrame(
        {
            "row": cases["index"].astype(int),
            "column": column,
            "field": column.map(lambda c: layout.specs[c].field.name if c in layout.specs else c),
            "rule": rule,
            "value": cases["failure_case"].astype(str).where((rule != "required") & ~frame_level),
            "detail": np.where(frame_level, "exclusive", ""),
            "other": "",
        }
    )
    hits = hits.drop_duplicates(["row", "column", "rule"], ignore_index=True)
    hits["value"] = hits["value"].fillna("")
    for i in hits.index[hits["detail"] == "exclusive"]:
        options = layout.fields[hits.at[i, "field"]]
        ticked = [s.code for s in options if layout.raw[s.column].iat[hits.at[i, "row"]] == "1"]
        hits.at[i, "value"] = ",".join(str(code) for code in ticked)
    for column, group in hits[hits["rule"] == "range"].groupby("column"):
        spec = layout.specs[column]
        low = bounds(spec, today)[0]
        below = np.zeros(len(group), dtype=bool)
        if low is not None:
            below = (convert(spec, group["value"])[0] < low).to_numpy(dtype=bool, na_value=False)
        hits.loc[group.index, "detail"] = np.where(below, "min", "max")
    return hits
