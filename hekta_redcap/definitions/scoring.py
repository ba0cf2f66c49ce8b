"""Scores from the definitions: one engine reads every instrument's `scoring:` block.

No instrument has its own code path. The block (docs/instruments.md) declares the items, the
aggregation, the skip rules, the missing-item rule and the categories; docs/scoring.md states how
the engine reads them and every project convention. So a published rule lives in one place, and
a changed definition changes the scores. Work is vectorised: loops run over items and rules,
never over data rows.

Input is stored text, as REDCap exports it: blank, one of the project's missing data codes, or
one of the item's codes. Anything else is an error naming the row and column, never a score.

    >>> project = load_project("hekta")
    >>> frame = pd.DataFrame({f"phq9_{i}": ["1"] for i in range(1, 10)})
    >>> score_frame(project, "phq9", frame)[["phq9_total", "phq9_band"]]
       phq9_total  phq9_band
    0         9.0          2
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from hekta_redcap.core.errors import DefinitionError, HektaError, Origin
from hekta_redcap.definitions.instruments import (
    Cutoff,
    Derived,
    Instrument,
    Score,
    StructuralZero,
)
from hekta_redcap.definitions.study import (
    Project,
    SexCoding,
    available_projects,
    default_root,
    load_project,
)
from hekta_redcap.redcap import logic
from hekta_redcap.redcap.logic_frame import evaluate_frame, truth

SPEC_VERSIONS = "spec_versions"
"""Key in a result's `attrs`: {form: the instrument's spec version}, to export with the scores."""

_OPS: dict[str, Callable[[pd.Series, float], pd.Series]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}


def scored_forms(project: Project) -> list[str]:
    """The project's instruments that have a scoring block, in form order."""
    return [form for form, inst in project.instruments.items() if inst.scoring is not None]


def required_columns(project: Project, form: str) -> list[str]:
    """Every column scoring `form` reads: items, gate items, fields named in logic, and the
    study's sex field when a cut-off is sex-specific."""
    instrument = _scored(project, form)
    assert instrument.scoring is not None
    columns: list[str] = []
    for score in instrument.scoring.scores:
        columns += score.items + (score.gate.items if score.gate else [])
        for zero in score.structural_zeros:
            columns += _fields_in(zero.when)
    computed = {s.name for s in instrument.scoring.scores}
    for derived in instrument.scoring.derived:
        if derived.logic is not None:
            columns += _fields_in(derived.logic)
        elif derived.source not in computed:
            columns.append(str(derived.source))
        if derived.by_sex is not None:
            columns.append(_sex_coding(project, derived).field)
        computed.add(derived.name)
    return list(dict.fromkeys(columns))


def score_frame(project: Project, form: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The score columns of one instrument, aligned with `frame`'s index.

    `frame` holds the columns of `required_columns` as stored text. Per score: the value (float,
    full precision; text for a profile), `<score>_n_answered`, `<score>_prorated` (missing when
    the score is), and for `incomplete: partial` scores `<score>_incomplete`; then each derived
    category, flag or transform. `attrs[SPEC_VERSIONS]` gives the instrument's spec version.
    Raises `HektaError` naming the row and column of a value that is not a valid code.
    """
    return _scores(project, *_read(project, form, frame))


def score_all(project: Project, frame: pd.DataFrame) -> pd.DataFrame:
    """The scores of every scored instrument with fields in `frame`, side by side.

    An instrument none of whose fields is present is left out; one with only some of its columns
    is an error (a partial export cannot be scored).
    """
    parts = [
        score_frame(project, form, frame)
        for form in scored_forms(project)
        if any(f.name in frame.columns for f in project.instruments[form].fields)
    ]
    result = pd.concat(parts, axis=1) if parts else pd.DataFrame(index=frame.index)
    result.attrs[SPEC_VERSIONS] = {
        k: v for part in parts for k, v in part.attrs[SPEC_VERSIONS].items()
    }
    return result


def skip_violations(project: Project, form: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Non-zero answers to items that a skip rule (`structural_zeros`) hides.

    One row per offending value and rule, in frame order: `row` (the frame's index label), `field`,
    `value`, `rule` (the skip rule's logic) and `scores` (the scores left missing because of it).
    """
    return _violations(*_read(project, form, frame))


def find_project(form: str, root: Path | None = None, overlay_dir: Path | None = None) -> Project:
    """The one project whose definitions collect `form` (IPS-25 lives in ips_fidelity)."""
    root = root or default_root()
    names = available_projects(root)
    projects = [load_project(name, root, overlay_dir) for name in names]
    owners = [p for p in projects if form in p.instruments]
    if not owners:
        scored = sorted(f for p in projects for f in scored_forms(p))
        raise HektaError(f"unknown form '{form}' (scored forms: {', '.join(scored)})")
    if len(owners) > 1:
        shared = ", ".join(p.name for p in owners)
        raise HektaError(f"form '{form}' is in projects {shared}: choose one with --project")
    return owners[0]


def score_csv(project: Project, form: str, file: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score a CSV of stored text: the input columns plus the score columns, and the skip-rule
    violations. Rows are named by their line in the file (the header is line 1), so that an
    error or warning points at the line a person opens."""
    _scored(project, form)  # a bad form is not the file's fault
    frame = read_text_csv(file)
    frame.index = pd.RangeIndex(2, len(frame) + 2, name="line")
    try:
        instrument, data = _read(project, form, frame)
    except HektaError as exc:
        raise HektaError(exc.message, Origin(file)) from None
    scores = _scores(project, instrument, data)
    kept = frame.drop(columns=[c for c in scores.columns if c in frame.columns])
    result = pd.concat([kept, scores], axis=1)
    result.attrs = scores.attrs
    return result, _violations(instrument, data)


def read_text_csv(file: Path) -> pd.DataFrame:
    """A CSV as REDCap stores values: every cell text, a blank cell "" (never NaN)."""
    if not file.is_file():
        raise HektaError("file not found", Origin(file))
    try:
        return pd.read_csv(file, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise HektaError(f"not a readable CSV file ({exc})", Origin(file)) from None


# -- reading -------------------------------------------------------------------------------------


def _read(project: Project, form: str, frame: pd.DataFrame) -> tuple[Instrument, _Data]:
    instrument = _scored(project, form)
    columns = required_columns(project, form)
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        raise HektaError(f"missing column(s) for {form}: {', '.join(absent)}")
    return instrument, _Data(project, frame, columns)


class _Data:
    """The columns scoring reads, checked against their codes and cleaned once per instrument.

    `text` holds the stored text with missing values (blank or a missing data code) as NA;
    `values` the same as Float64.
    """

    def __init__(self, project: Project, frame: pd.DataFrame, columns: list[str]) -> None:
        fields = project.field_map()
        missing_codes = [c.code for c in project.study.missing_data_codes]
        self.index = frame.index
        self.text: dict[str, pd.Series] = {}
        self.values: dict[str, pd.Series] = {}
        self.ranges: dict[str, tuple[float, float]] = {}
        self._hidden: dict[str, pd.Series] = {}
        invalid: list[tuple[int, int, str, str]] = []
        for order, name in enumerate(columns):
            instrument, field = fields[name]
            # Stored values repeat heavily: read each distinct value once, then spread it out.
            rows, distinct = pd.factorize(frame[name], use_na_sentinel=False)
            stored = pd.Series(distinct, dtype=object).astype("string").fillna("")
            blank = stored.str.strip().eq("") | stored.isin(missing_codes)
            codes = instrument.codes_of(field)  # None: numeric text, calc, slider
            unread = blank | ~stored.isin(codes) if codes is not None else blank
            numbers = pd.to_numeric(stored.mask(unread), errors="coerce").astype("Float64")
            wrong = (~blank & numbers.isna()).to_numpy()[rows]
            if wrong.any():
                positions = np.flatnonzero(wrong).tolist()
                invalid += [(p, order, name, _allowed(codes)) for p in positions]
            self.text[name] = pd.Series(stored.mask(blank).array.take(rows), index=frame.index)
            self.values[name] = pd.Series(numbers.array.take(rows), index=frame.index)
            if codes:
                numbers = pd.to_numeric(pd.Series(codes), errors="coerce")
                self.ranges[name] = (float(numbers.min()), float(numbers.max()))
        if invalid:
            position, _, name, allowed = min(invalid)
            more = f" (and {len(invalid) - 1} more invalid value(s))" if len(invalid) > 1 else ""
            raise HektaError(
                f"{_row(frame.index, position)}, column {name}: "
                f"'{frame[name].iloc[position]}' is not {allowed}{more}"
            )

    def hidden(self, when: str) -> pd.Series:
        """Rows where a skip rule's condition is true (evaluated once per condition)."""
        if when not in self._hidden:
            frame = pd.DataFrame({n: self.text[n] for n in _fields_in(when)}, index=self.index)
            self._hidden[when] = truth(evaluate_frame(logic.parse(when), frame))
        return self._hidden[when]

    def skipped(
        self, rules: Iterable[StructuralZero], names: Iterable[str]
    ) -> tuple[dict[str, pd.Series], dict[str, pd.Series], pd.Series]:
        """Values and text after the skip rules: a blank hidden item is an answered 0 and a
        non-zero hidden answer is set missing; plus the rows holding such an answer."""
        values = {n: self.values[n] for n in names}
        text = {n: self.text[n] for n in names}
        violated = pd.Series(False, index=self.index)
        for rule in rules:
            hidden = self.hidden(rule.when)
            for item in (i for i in rule.items if i in values):
                stored = self.values[item]
                zero = hidden & stored.isna()
                bad = hidden & stored.fillna(0).ne(0)
                violated |= bad
                values[item] = values[item].mask(zero, 0.0).mask(bad, pd.NA)
                text[item] = text[item].mask(zero, "0").mask(bad, pd.NA)
        return values, text, violated


def _allowed(codes: list[str] | None) -> str:
    return f"one of its codes ({', '.join(codes)})" if codes is not None else "a number"


def _row(index: pd.Index, position: int) -> str:
    """A row as a person finds it: by the index's name(s) and label(s)."""
    label = index[position]
    if isinstance(index, pd.MultiIndex) and all(index.names):
        return ", ".join(f"{name} {value}" for name, value in zip(index.names, label, strict=True))
    return f"{index.name or 'row'} {label}"


# -- scores --------------------------------------------------------------------------------------


def _scores(project: Project, instrument: Instrument, data: _Data) -> pd.DataFrame:
    assert instrument.scoring is not None
    out: dict[str, pd.Series] = {}
    partial: dict[str, pd.Series] = {}
    for score in instrument.scoring.scores:
        _score(score, data, out, partial)
    # Items read by derived rules pass through all of the form's skip rules.
    rules = [zero for score in instrument.scoring.scores for zero in score.structural_zeros]
    for derived in instrument.scoring.derived:
        out[derived.name] = _derive(project, derived, data, rules, out, partial)
    result = pd.DataFrame(out, index=data.index)
    result.attrs[SPEC_VERSIONS] = {instrument.form: instrument.version}
    return result


def _violations(instrument: Instrument, data: _Data) -> pd.DataFrame:
    assert instrument.scoring is not None
    found: list[pd.DataFrame] = []
    for (when, item), scores in _rules(instrument.scoring.scores).items():
        bad = (data.hidden(when) & data.values[item].fillna(0).ne(0)).to_numpy()
        found.append(
            pd.DataFrame(
                {
                    "position": np.flatnonzero(bad),
                    "row": data.index[bad],
                    "field": item,
                    "value": data.text[item].to_numpy()[bad],
                    "rule": when,
                    "scores": ", ".join(scores),
                }
            )
        )
    if not found:
        return pd.DataFrame(columns=["row", "field", "value", "rule", "scores"])
    table = pd.concat(found, ignore_index=True).sort_values("position", kind="stable")
    return table.drop(columns="position").reset_index(drop=True)


def _score(
    score: Score, data: _Data, out: dict[str, pd.Series], partial: dict[str, pd.Series]
) -> None:
    names = list(dict.fromkeys(score.items + (score.gate.items if score.gate else [])))
    values, _, violated = data.skipped(score.structural_zeros, names)
    for item in score.reverse:
        low, high = data.ranges[item]
        values[item] = low + high - values[item]
    items = pd.DataFrame({i: values[i] for i in score.items}, index=data.index)
    answered = items.notna().sum(axis=1)
    n_items = len(score.items)
    needed = score.min_answered or n_items
    usable = ~violated & (answered >= (1 if score.incomplete == "partial" else needed))
    if score.gate:
        gate = pd.DataFrame({i: values[i] for i in score.gate.items}, index=data.index)
        usable &= gate.notna().sum(axis=1) >= score.gate.min_answered
    value = _aggregate(score, items, answered).where(usable)
    prorates = score.prorate or score.aggregate == "mean"
    out[score.name] = value
    out[f"{score.name}_n_answered"] = answered.astype("Int64")
    out[f"{score.name}_prorated"] = (
        ((answered < n_items) & prorates).astype("Int64").where(value.notna())
    )
    if score.incomplete == "partial":
        partial[score.name] = answered < needed
        out[f"{score.name}_incomplete"] = partial[score.name].astype("Int64").where(value.notna())


def _aggregate(score: Score, items: pd.DataFrame, answered: pd.Series) -> pd.Series:
    """Sum (pro-rated if the spec says so), mean, or the profile of digits; then `multiply`."""
    if score.aggregate == "profile":
        digits = (items[c].astype("Int64").astype("string") for c in items.columns)
        return functools.reduce(operator.add, digits)
    if score.aggregate == "mean":
        total = items.mean(axis=1)
    else:
        total = items.sum(axis=1, min_count=1)
        if score.prorate:
            total = total.mask(answered < len(score.items), total * len(score.items) / answered)
    if score.multiply is not None:
        total = total * score.multiply
    return total.astype("Float64")


def _rules(scores: Iterable[Score]) -> dict[tuple[str, str], list[str]]:
    """Each (skip condition, hidden item) pair, with the scores it applies to."""
    rules: dict[tuple[str, str], list[str]] = {}
    for score in scores:
        for zero in score.structural_zeros:
            for item in zero.items:
                rules.setdefault((zero.when, item), []).append(score.name)
    return rules


# -- derived -------------------------------------------------------------------------------------


def _derive(
    project: Project,
    derived: Derived,
    data: _Data,
    rules: list[StructuralZero],
    computed: dict[str, pd.Series],
    partial: dict[str, pd.Series],
) -> pd.Series:
    """A derived rule's column; from a partial score it is missing while the score is partial."""
    if derived.logic is not None:
        return _logic_flag(derived.logic, data, rules)
    name = str(derived.source)
    source = computed[name] if name in computed else data.skipped(rules, [name])[0][name]
    if name in partial:
        source = source.mask(partial[name])
    if derived.bands is not None:
        return _band(source, derived)
    if derived.cutoff is not None:
        return _flag(source, derived.cutoff)
    if derived.by_sex is not None:
        coding = _sex_coding(project, derived)
        sex = data.text[coding.field]
        result = pd.Series(pd.NA, index=data.index, dtype="Int64")
        for which, cutoff in derived.by_sex.items():
            result = result.mask(
                sex.eq(getattr(coding, which)).fillna(False), _flag(source, cutoff)
            )
        return result
    assert derived.linear is not None
    return (source * derived.linear.multiply + derived.linear.add).astype("Float64")


def _band(source: pd.Series, derived: Derived) -> pd.Series:
    """Half-open bands: [min, next min); below the first band is missing."""
    assert derived.bands is not None
    mins = np.array([b.min for b in derived.bands])
    codes = np.array([b.code for b in derived.bands])
    number = source.astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    position = np.searchsorted(mins, number, side="right") - 1
    found = pd.Series(codes[position.clip(0)], index=source.index).astype("Int64")
    return found.where(source.notna() & (position >= 0))


def _flag(source: pd.Series, cutoff: Cutoff) -> pd.Series:
    return _OPS[cutoff.op](source.astype("Float64"), cutoff.value).astype("Int64")


def _logic_flag(text: str, data: _Data, rules: list[StructuralZero]) -> pd.Series:
    """1 when the logic is true; 0 when it is false and every field it names is known; else
    missing (a false that a missing answer could still turn true is not a "no")."""
    names = _fields_in(text)
    _, filled, _ = data.skipped(rules, names)
    frame = pd.DataFrame(filled, index=data.index)
    true = truth(evaluate_frame(logic.parse(text), frame))
    unknown = frame.isna().any(axis=1)
    return true.astype("Int64").mask(~true & unknown)


# -- definitions ---------------------------------------------------------------------------------


def _scored(project: Project, form: str) -> Instrument:
    instrument = project.instruments.get(form)
    if instrument is None or instrument.scoring is None:
        what = "has no instrument" if instrument is None else "has no scoring for"
        scored = ", ".join(scored_forms(project)) or "none"
        raise HektaError(f"project {project.name} {what} '{form}' (scored: {scored})")
    return instrument


def _sex_coding(project: Project, derived: Derived) -> SexCoding:
    if project.study.sex is None:
        raise DefinitionError(
            f"'{derived.name}' is sex-specific but the study file has no 'sex' coding",
            derived.origin(),
        )
    return project.study.sex


def _fields_in(text: str) -> list[str]:
    """The fields a piece of logic reads, each once, in order."""
    return list(dict.fromkeys(r.field for r in logic.references(logic.parse(text)) if r.field))
