"""Typed reading of an export, driven by the definitions, in three steps (as the best R tools
for REDCap do): detect missing data codes, validate, then cast.

1. `detect_codes`: cells holding one of the study's missing data codes are answers that say why
   a value is missing, so they are neither blanks nor wrong values; they are set aside.
2. Validation (`convert`'s validity mask, used by the pandera schemas) finds text that does not
   fit the field's type, codes or range.
3. `cast`: dates become dates, integers nullable Int64, numbers Float64, radios and dropdowns
   ordered categoricals in codebook order, yes/no and checkbox options nullable booleans, record
   ids and other text strings. Invalid values become NA here; they are reported, never dropped
   silently. A checkbox option is NA, not False, where its form was never started.

Stored values follow REDCap's API format whatever the display format: Y-M-D dates, `.` or `,`
decimals as the validation says (see `fieldtypes`).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from hekta_redcap.core.errors import DefinitionError
from hekta_redcap.redcap.fieldtypes import canonical_validation, is_piped, parse_bound, pattern_of
from hekta_redcap.validation.layout import DAG, EVENT, INSTANCE, REPEAT, Layout, Spec

_FORMATS = {
    "date": "%Y-%m-%d",
    "datetime": "%Y-%m-%d %H:%M",
    "datetime_seconds": "%Y-%m-%d %H:%M:%S",
}
_TIME_PREFIX = {"time": ("", ":00"), "time_hh_mm_ss": ("", ""), "time_mm_ss": ("00:", "")}
_BIG = 2**53  # beyond this an integer has no exact float, so it cannot be checked or cast


def validation_of(spec: Spec) -> str | None:
    """The validation a column's text must pass: calc values are numbers, sliders integers;
    the old names (`int`, `date`) as the types REDCap reads them as."""
    if spec.field.type == "calc":
        return "number"
    if spec.field.type == "slider":
        return "integer"
    validation = spec.field.validation if spec.field.type == "text" else None
    return canonical_validation(validation) if validation else None


def codes_of(spec: Spec) -> list[str] | None:
    """The codes a column may hold, in codebook order (None: free text)."""
    field = spec.field
    if spec.option or field.type in ("yesno", "truefalse"):
        return ["0", "1"]
    if field.type in ("radio", "dropdown"):
        return [c.code for c in spec.instrument.choices_of(field)]
    return None


def _family(validation: str) -> str:
    for family in ("datetime_seconds", "datetime", "date"):
        if validation.startswith(family):
            return family
    if validation.startswith("time"):
        return "time"
    if validation == "integer":
        return "integer"
    return "number" if validation.startswith("number") else "text"


def convert(spec: Spec, text: pd.Series) -> tuple[pd.Series, pd.Series]:
    """The typed values of one column and where its text is valid (NA is blank, and valid).

    Stored values repeat heavily (codes, years, dates), so each distinct text is read once."""
    validation = validation_of(spec)
    codes = codes_of(spec)
    if codes is None and validation is None:
        return text.astype("string"), pd.Series(True, index=text.index)
    positions, distinct = pd.factorize(text)  # NA is -1: blank, which is valid
    if codes is None:
        typed, valid = _parse(str(validation), pd.Series(distinct, dtype=object))
        array = typed.array.take(positions, allow_fill=True)
        valid = valid.to_numpy(dtype=bool)
    else:
        found = pd.Index(codes).get_indexer(pd.Index(distinct, dtype=object))
        valid = found >= 0
        at = np.append(found, -1)[positions]
        if codes == ["0", "1"]:
            array = pd.arrays.BooleanArray(at == 1, at < 0)
        else:
            array = pd.Categorical.from_codes(at, dtype=pd.CategoricalDtype(codes, ordered=True))
    valid = pd.Series(np.append(valid, True)[positions], index=text.index)
    return pd.Series(array, index=text.index), valid


def _parse(validation: str, text: pd.Series) -> tuple[pd.Series, pd.Series]:
    """`convert` for distinct, non-blank texts of a validated text field."""
    pattern = pattern_of(validation)
    valid = text.str.fullmatch(pattern.pattern).astype(bool) if pattern else text.notna()
    candidate = text.where(valid)
    family = _family(validation)
    if family in _FORMATS:
        typed = pd.to_datetime(candidate, format=_FORMATS[family], errors="coerce")
        typed = typed.astype("datetime64[s]")
    elif family == "time":
        before, after = _TIME_PREFIX[validation]
        typed = pd.to_timedelta(before + candidate + after, errors="coerce")
    elif family in ("integer", "number"):
        if "comma" in validation:
            candidate = candidate.str.replace(",", ".", regex=False)
        numbers = pd.to_numeric(candidate, errors="coerce").astype(float)
        numbers = numbers.where(np.isfinite(numbers) & (numbers.abs() < _BIG))
        typed = numbers.astype("Int64" if family == "integer" else "Float64")
    else:
        return candidate.astype("string"), valid
    valid &= typed.notna()
    return typed.where(valid), valid


def bounds(spec: Spec, today: dt.date) -> tuple[object, object]:
    """The field's min and max as values comparable with `convert`'s (None where unset)."""
    validation = validation_of(spec)
    if validation is None:
        return None, None
    family = _family(validation)
    limits: list[object] = []
    for key in ("min", "max"):
        text = getattr(spec.field, key)
        if not text or is_piped(text):  # a piped bound is known per record only
            limits.append(None)
            continue
        try:
            bound = parse_bound(validation, text, today)
        except ValueError as exc:
            raise DefinitionError(str(exc), spec.field.origin(key)) from None
        if family == "time":
            bound = convert(spec, pd.Series([text]))[0].iloc[0]
        elif isinstance(bound, dt.date):
            bound = pd.Timestamp(bound)
        limits.append(bound)
    return limits[0], limits[1]


# -- the three steps ----------------------------------------------------------------------------


def detect_codes(layout: Layout) -> pd.DataFrame:
    """Step 1: per field, the rows where it holds a missing data code (a checkbox through the
    option column REDCap adds per code)."""
    codes = [m.code for m in layout.study.missing_data_codes]
    coded = {}
    for name, specs in layout.fields.items():
        if specs[0].option:
            columns = [s.column for s in specs if s.missing_code]
            if columns:
                coded[name] = layout.raw[columns].eq("1").any(axis=1)
        elif specs[0].field.type != "calc":
            coded[name] = layout.raw[name].isin(codes)
    return pd.DataFrame(coded, index=layout.raw.index)


def answers(layout: Layout, coded: pd.DataFrame) -> pd.DataFrame:
    """The text to validate: NA where blank or a missing data code; checkbox options as stored
    (a missing-code option is not an answer option)."""
    columns = {}
    for column, spec in layout.specs.items():
        if spec.missing_code:
            continue
        value = layout.raw[column]
        if spec.option:
            columns[column] = value.mask(value == "")
            continue
        blank = ~layout.filled(column)
        if column in coded:
            blank |= coded[column]
        columns[column] = value.mask(blank)
    return pd.DataFrame(columns, index=layout.raw.index)


def cast(layout: Layout, text: pd.DataFrame) -> pd.DataFrame:
    """Step 3: the typed frame (see the module docstring), one row per export row."""
    typed: dict[str, pd.Series] = {layout.record_id: layout.record.astype("string")}
    places = {EVENT: layout.event, REPEAT: layout.repeat, DAG: layout.dag}
    for column, values in places.items():
        if column in layout.raw:
            typed[column] = values.mask(values == "").astype("string")
    if INSTANCE in layout.raw:
        typed[INSTANCE] = pd.to_numeric(layout.instance, errors="coerce").astype("Int64")
    for column, spec in layout.specs.items():
        if spec.missing_code:
            continue
        values = convert(spec, text[column])[0]
        if spec.option:
            values = values.where(layout.started(spec.form))
        typed[column] = values
    for form in layout.project.forms:
        status = f"{form}_complete"
        if status in layout.raw:
            numbers = pd.to_numeric(layout.raw[status], errors="coerce")
            typed[status] = numbers.astype("Int64")
    return pd.DataFrame(typed, index=layout.raw.index)
