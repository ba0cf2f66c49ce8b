"""The register tables of the analyst export (docs/registers.md): `register_panel`, one row per
participant and month from 24 months before to 120 months after randomisation, and
`register_outcomes`, one row per participant and horizon, as `registers.outcomes` derives them.

Labels come from the register layouts (a code's column is labelled with the code's label), the
allocated group is a categorical of the randomisation target's codes, and the tables are
de-identified as the others are: record ids, or their pseudonyms from the same key file, and
never a serial number (`lopenr`) or an identity number, which the tables do not hold.

    >>> found = register_tables(settings, project, [18, 60, 120])
    >>> [t.name for t in register_export(project, found, "en", pseudonyms)]
    ['register_panel', 'register_outcomes']
"""

from __future__ import annotations

import pandas as pd

from hekta_redcap.analysis.export.deid import Pseudonyms
from hekta_redcap.analysis.export.frames import Language, Table, ValueLabels, words
from hekta_redcap.definitions.study import Project
from hekta_redcap.randomization.design import design_of
from hekta_redcap.registers import outcomes
from hekta_redcap.registers.outcomes import ARM, RECORD, Registered

PANEL, OUTCOMES = "register_panel", "register_outcomes"
DATES = frozenset({outcomes.MONTH_START, outcomes.MONTH_END})


def register_export(
    project: Project, found: Registered, language: Language, pseudonyms: Pseudonyms | None
) -> list[Table]:
    """`register_panel` and `register_outcomes`, labelled in `language`; with `pseudonyms`
    each record id is replaced by its pseudonym and the rows sorted by it (then month or
    horizon), so that their order does not give the record ids away."""
    said = words(language)
    instrument, field = project.field_map()[design_of(project).target]
    choices = instrument.choices_of(field)
    groups = [c.code for c in choices]
    yes_no: ValueLabels = {True: said["yes"], False: said["no"]}
    tables = []
    kinds: list[tuple[str, pd.DataFrame, outcomes.Table]] = [
        (PANEL, found.panel, "panel"),
        (OUTCOMES, found.endpoints, "outcomes"),
    ]
    for name, frame, table in kinds:
        measures = outcomes.measures(found.layouts, table)
        labels = {
            RECORD: said["pseudonym" if pseudonyms else "record"],
            ARM: instrument.label_of(field, language),
            **{c: text[language] for c, text in outcomes.fixed_labels(table).items()},
            **{m.name: m.label[language] for m in measures},
        }
        frame = frame.assign(**{ARM: pd.Categorical(frame[ARM], categories=groups)})
        if pseudonyms is not None:
            frame[RECORD] = pseudonyms.apply(frame[RECORD])
            frame = frame.sort_values(RECORD, kind="stable")  # months stay in order
        values: dict[str, ValueLabels] = {
            ARM: {c.code: instrument.choice_label(c, language) for c in choices},
            **{c: yes_no for c in frame.columns if pd.api.types.is_bool_dtype(frame[c].dtype)},
        }
        dates = DATES.intersection(frame.columns)
        tables.append(Table(name, frame.reset_index(drop=True), labels, values, dates))
    return tables
