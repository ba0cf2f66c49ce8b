"""Where each value of a REDCap flat export belongs: its field, form, event and repeat instance.

A flat export has one row per record × event × repeat instance, and one column per field
(per option for checkboxes) plus each form's `<form>_complete`. Which forms a row holds follows
from the definitions: a form is on a row when the form is mapped to the row's event and the row
is that form's kind of row (a repeat row of a repeating instrument names it in
`redcap_repeat_instrument`; every other form is on the event's plain row). Logic is resolved
here too, so that `[event][field]` and a repeat row's reference to its event's plain row read
the same record's other rows, as REDCap does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from hekta_redcap.core.errors import HektaError
from hekta_redcap.definitions.instruments import Field, Instrument
from hekta_redcap.definitions.study import Project
from hekta_redcap.redcap import logic
from hekta_redcap.redcap.fieldtypes import checkbox_column
from hekta_redcap.redcap.logic_frame import evaluate_frame
from hekta_redcap.redcap.names import DAG, EVENT, REPEAT_INSTANCE, REPEAT_INSTRUMENT, SURVEY_ID

REPEAT, INSTANCE = REPEAT_INSTRUMENT, REPEAT_INSTANCE
PLACE = (EVENT, REPEAT, INSTANCE, DAG)
# Columns REDCap adds to some exports that hold no field's value.
PSEUDO = frozenset([*PLACE, SURVEY_ID])

Resolve = Callable[[logic.Ref], pd.Series]


@dataclass(frozen=True)
class Spec:
    """One export column: a field, or one option of a checkbox (`code`), or the checkbox
    column REDCap adds for a missing data code (`missing_code`)."""

    column: str
    instrument: Instrument
    field: Field
    code: str | None = None
    missing_code: bool = False

    @property
    def form(self) -> str:
        return self.instrument.form

    @property
    def option(self) -> bool:
        return self.field.type == "checkbox"


class Layout:
    """An export read against the definitions: columns, places and which forms each row holds."""

    def __init__(self, project: Project, rows: pd.DataFrame) -> None:
        self.project = project
        self.study = project.study
        self.raw = _as_text(rows)
        self.record_id = self.study.record_id
        self.specs = self._specs()
        if self.raw.empty:  # a project without records exports no columns
            place = [EVENT] if self.study.longitudinal else []
            self.raw = self.raw.reindex(columns=[self.record_id, *place, *self.specs])
        if self.record_id not in self.raw:
            raise HektaError(f"the export has no record id column '{self.record_id}'")
        self._check_columns()
        self.record = self.raw[self.record_id]
        self.event = self._place(EVENT)
        self.repeat = self._place(REPEAT)
        self.instance = self._place(INSTANCE)
        self.dag = self._dags()
        self._check_places()
        self._check_unique()
        self._filled: dict[str, pd.Series] = {}

    # -- columns ----------------------------------------------------------------------------

    def _specs(self) -> dict[str, Spec]:
        codes = [m.code for m in self.study.missing_data_codes]
        specs: dict[str, Spec] = {}
        for instrument, field in self.project.fields():
            if field.type == "descriptive" or field.name == self.record_id:
                continue
            if field.type != "checkbox":
                specs[field.name] = Spec(field.name, instrument, field)
                continue
            for choice in instrument.choices_of(field):
                column = checkbox_column(field.name, choice.code)
                specs[column] = Spec(column, instrument, field, choice.code)
            for code in codes:  # REDCap exports these only when the project has missing codes
                column = checkbox_column(field.name, code)
                if column in self.raw:
                    specs[column] = Spec(column, instrument, field, code, missing_code=True)
        return specs

    def _check_columns(self) -> None:
        known = set(self.specs) | set(PSEUDO) | {self.record_id}
        known |= {f"{form}_{suffix}" for form in self.project.forms for suffix in _FORM_COLUMNS}
        unknown = [c for c in self.raw.columns if c not in known]
        if unknown:
            shown = ", ".join(unknown[:8]) + (
                f" and {len(unknown) - 8} more" if len(unknown) > 8 else ""
            )
            raise HektaError(
                f"the export has columns that project '{self.project.name}' does not define: "
                f"{shown} (do the definitions match the REDCap project?)"
            )
        absent = [
            c for c, spec in self.specs.items() if c not in self.raw and not spec.missing_code
        ]
        if absent:
            shown = ", ".join(absent[:8]) + (
                f" and {len(absent) - 8} more" if len(absent) > 8 else ""
            )
            raise HektaError(
                f"the export lacks columns of project '{self.project.name}': {shown} "
                "(validate a full export of every field)"
            )

    def _place(self, column: str) -> pd.Series:
        if column in self.raw:
            return self.raw[column]
        if column == EVENT and self.study.longitudinal:
            raise HektaError(f"the export of a longitudinal project has no '{EVENT}' column")
        return pd.Series("", index=self.raw.index, dtype=str)

    def _dags(self) -> pd.Series:
        """Each row's data access group: the record's (REDCap may fill it on one row only)."""
        dag = self._place(DAG)
        named = dag[dag != ""]
        by_record = named.groupby(self.record[named.index], sort=False).first()
        return self.record.map(by_record).astype(object).fillna("").astype(str)

    def _check_places(self) -> None:
        """Events and repeating instruments the definitions do not know would go unchecked."""
        events = {e.unique_name for e in self.study.events} if self.study.longitudinal else {""}
        repeats = {"", *(u.form for u in self.study.instruments if u.repeating)}
        for values, known, what in (
            (self.event, events, "event"),
            (self.repeat, repeats, "repeating instrument"),
        ):
            unknown = sorted(set(values.unique()) - known)
            if unknown:
                raise HektaError(
                    f"the export has rows of the {what} '{unknown[0]}', which project "
                    f"'{self.project.name}' does not define"
                )

    def _check_unique(self) -> None:
        keys = pd.MultiIndex.from_arrays([self.record, self.event, self.repeat, self.instance])
        duplicated = keys.duplicated()
        if duplicated.any():
            row = int(np.flatnonzero(duplicated)[0])
            raise HektaError(
                f"row {row + 1} of the export repeats record '{self.record.iloc[row]}' "
                f"at the same event and instance as an earlier row"
            )
        self._keys = keys

    # -- forms per row ----------------------------------------------------------------------

    @cached_property
    def fields(self) -> dict[str, list[Spec]]:
        """Each field's columns (one, or a checkbox's options), in export order."""
        grouped: dict[str, list[Spec]] = {}
        for spec in self.specs.values():
            grouped.setdefault(spec.field.name, []).append(spec)
        return grouped

    def repeating(self, form: str) -> bool:
        return self.project.use_of(form).repeating

    def applies(self, form: str) -> pd.Series:
        """Rows that hold `form`: mapped to the row's event, on the form's kind of row."""
        return self._applies[form]

    @cached_property
    def _applies(self) -> dict[str, pd.Series]:
        result = {}
        for form in self.project.forms:
            rows = self.repeat == form if self.repeating(form) else self.repeat == ""
            if self.study.longitudinal:
                rows &= self.event.isin(self.project.events_of(form))
            result[form] = rows
        return result

    def started(self, form: str) -> pd.Series:
        """Rows where `form` was started: a status other than 0, or any value on the form."""
        return self._started[form]

    @cached_property
    def _started(self) -> dict[str, pd.Series]:
        result = {}
        for form in self.project.forms:
            started = pd.Series(False, index=self.raw.index)
            status = self.raw.get(f"{form}_complete")
            if status is not None:
                started |= ~status.isin(["", "0"])
            for name, specs in self.fields.items():
                if specs[0].form == form:
                    started |= self.filled(name)
            result[form] = started & self.applies(form)
        return result

    def filled(self, name: str) -> pd.Series:
        """Rows where a field holds something: text, or a checkbox option not 0."""
        if name not in self._filled:
            specs = self.fields[name]
            if specs[0].option:
                columns = [s.column for s in specs]
                self._filled[name] = ~self.raw[columns].isin(["", "0"]).all(axis=1)
            else:
                self._filled[name] = self.raw[name] != ""
        return self._filled[name]

    def field_spec(self, name: str) -> Spec:
        return self.fields[name][0]

    def value_columns(self, name: str) -> list[str]:
        """The columns that hold a field's answer (a checkbox's options, not its code columns)."""
        return [s.column for s in self.fields[name] if not s.missing_code]

    # -- logic ------------------------------------------------------------------------------

    def evaluate(
        self,
        form: str,
        expression: str,
        rows: pd.Series,
        *,
        today: dt.date,
        source: pd.DataFrame | None = None,
    ) -> pd.Series:
        """REDCap logic of `form` on the `rows` (a mask) where it is evaluated, read from the
        stored text (or from `source`, text with the same columns and index)."""
        try:
            tree = logic.parse(expression)
        except logic.LogicError as exc:
            raise HektaError(f"form '{form}': {exc}") from None
        index = rows.index[rows.to_numpy(dtype=bool)]
        resolve = self.resolver(form, index, self.raw if source is None else source)
        return evaluate_frame(tree, pd.DataFrame(index=index), resolve, today=today)

    def resolver(self, form: str, rows: pd.Index, source: pd.DataFrame) -> Resolve:
        """Resolve references for `rows` of `form`: `[field]` on the same row when the field is
        on it, else the same record's row at the event (`[event][field]`) and instance asked.
        An unticked checkbox option reads as "0", as REDCap reads it."""

        def resolve(ref: logic.Ref) -> pd.Series:
            if ref.smart is not None:
                return self._smart(ref.smart, rows)
            assert ref.field is not None
            if ref.field == self.record_id:
                return self.record.loc[rows]
            column = logic.column_of(ref)
            if column not in self.specs:
                raise HektaError(f"logic of form '{form}' refers to unknown field [{ref.field}]")
            target = self.specs[column].form
            same_kind = target == form or not (self.repeating(form) or self.repeating(target))
            if ref.event is None and ref.instance is None and same_kind:
                values = source[column].loc[rows]
            else:
                values = self._lookup(source[column], target, ref, rows)
            return values.where(values != "", "0") if ref.code else values

        return resolve

    def _smart(self, name: str, rows: pd.Index) -> pd.Series:
        values = {"record-name": self.record, "event-name": self.event, "record-dag-name": self.dag}
        if name not in values:
            raise HektaError(f"the validator cannot resolve the smart variable [{name}]")
        return values[name].loc[rows]

    def _lookup(self, column: pd.Series, form: str, ref: logic.Ref, rows: pd.Index) -> pd.Series:
        """The value on the same record's row at another event or instance."""
        if ref.event in (None, "event-name"):
            event = self.event.loc[rows]
        elif "-" in ref.event:
            raise HektaError(f"the validator cannot resolve the smart variable [{ref.event}]")
        else:
            event = pd.Series(ref.event, index=rows)
        repeating = self.repeating(form)
        repeats = event.isin(self.study.repeating_events) | repeating
        asked = None if ref.instance == "current-instance" else ref.instance
        if asked is not None and "-" in asked:
            raise HektaError(f"the validator cannot resolve the smart variable [{asked}]")
        instance = self.instance.loc[rows] if asked is None else asked
        instance = pd.Series(instance, index=rows).where(repeats, "")
        repeat = pd.Series(form if repeating else "", index=rows)
        wanted = pd.MultiIndex.from_arrays([self.record.loc[rows], event, repeat, instance])
        found = self._keys.get_indexer(wanted)
        values = column.fillna("").to_numpy()[found]
        return pd.Series(np.where(found >= 0, values, ""), index=rows, dtype=str)


_FORM_COLUMNS = ("complete", "timestamp")


def _as_text(rows: pd.DataFrame) -> pd.DataFrame:
    """Every cell as the text REDCap stores, "" for blank (JSON exports hold strings already;
    a CSV read without type guessing does too)."""
    frame = rows.reset_index(drop=True)
    frame.columns = [str(c) for c in frame.columns]
    return frame.astype(object).where(frame.notna(), "").astype(str)
