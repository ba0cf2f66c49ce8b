"""Randomizing one record from the toolkit (`hekta-redcap randomize`), the randomization's one
place that writes to REDCap.

The record is read from REDCap first and refused, with one line naming the record, event and
field, unless it can be randomized: it exists at the design's event, is not randomized yet
(nothing more is said about it), the study's consent logic holds, the forms named in
`complete` are complete and every stratum has a value. Then REDCap's module allocates (the
allocation table never leaves REDCap, so nothing here can reveal a future allocation), and the
date and who randomized go into the record with one import.

Randomizing is not idempotent. When the call failed transiently and its retry finds the record
already randomized, the first attempt did the work: the record is read again and its group
reported. Log lines hold the record id and the outcome, never a group.

    >>> allocation = randomize(settings, project, "5", by="AB")
    >>> allocation.text("en")
    'Record 5 randomized to: IPS (Individual Placement and Support) (rand_group = 1) on 2026-12-05'
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hekta_redcap import LANGUAGES
from hekta_redcap.core.clock import local, now, shown_date
from hekta_redcap.core.errors import ConfigError, HektaError
from hekta_redcap.core.logline import line
from hekta_redcap.core.settings import Settings, token_variable
from hekta_redcap.core.texts import catalog
from hekta_redcap.definitions.study import Project
from hekta_redcap.gateway import EXPORT, Gateway, Refused, Unavailable
from hekta_redcap.gateway.replies import ALREADY_RANDOMIZED
from hekta_redcap.randomization.design import Design, design_of
from hekta_redcap.redcap import logic
from hekta_redcap.redcap.names import EVENT, REPEAT_INSTRUMENT

logger = logging.getLogger("hekta_redcap.randomization")
_TEXTS = catalog("hekta_redcap.randomization", "allocate.yaml")

Row = Mapping[str, Any]


@dataclass(frozen=True)
class Allocation:
    """One record's allocation: its group's code and label (per language) and the day."""

    record: str
    target: str
    code: str
    labels: Mapping[str, str]
    day: dt.date

    def text(self, lang: str) -> str:
        return _TEXTS["randomized"][lang].format(
            record=self.record,
            group=self.labels[lang],
            target=self.target,
            code=self.code,
            date=shown_date(self.day, lang),
        )


def randomize(settings: Settings, project: Project, record: str, by: str | None) -> Allocation:
    """Randomize `record` through REDCap's module once it may be, then write the date and
    `by` (default: HEKTA_USER, else the login name, Settings.who). Raises
    HektaError (one line) when the record may not be randomized or REDCap refuses."""
    design = design_of(project)
    randomization_id = _randomization_id(settings, project.name)
    api = Gateway.open(settings, project.name)
    _check_may_randomize(design, record, _rows(api, project, record))
    try:
        reply = api.randomize(record, randomization_id)
        code = reply["target_value"]
        outcome = "randomized"
    except Refused as exc:
        if not (exc.retried and ALREADY_RANDOMIZED.search(exc.detail)):
            logger.info(line("randomize", record=record, outcome="refused"))
            message = f"record {record}: REDCap refused to randomize: {exc.detail}"
            raise HektaError(message) from None
        code, outcome = _reread(api, project, design, record), "randomized-after-retry"
    except Unavailable as exc:
        logger.info(line("randomize", record=record, outcome="unknown"))
        raise Unavailable(
            f"{exc}; record {record} may have been randomized: look at it in REDCap before "
            "trying again"
        ) from None
    logger.info(line("randomize", record=record, outcome=outcome))
    allocation = Allocation(record, design.target, code, _labels(project, design, code), _today())
    _write_back(api, project, design, allocation, by or settings.who())
    return allocation


def _rows(api: Gateway, project: Project, record: str) -> dict[str | None, Row]:
    """The record's non-repeating rows by unique event name (None in a classic project)."""
    rows = api.export_records(records=[record], **EXPORT)
    return {
        row.get(EVENT): row
        for row in rows
        if row.get(project.study.record_id) == record and not row.get(REPEAT_INSTRUMENT)
    }


def _check_may_randomize(design: Design, record: str, rows: dict[str | None, Row]) -> None:
    """Refuse, naming the record, event and field, unless the record may be randomized."""
    spec, event = design.spec, design.event
    at = f" at {event}" if event else ""
    row = rows.get(event)
    if row is None:
        raise HektaError(f"record {record}: no such record{at}")
    if row.get(design.target, "") != "":
        raise HektaError(f"record {record} is already randomized ({design.target}{at} is filled)")
    if not logic.is_true(logic.evaluate(logic.parse(spec.consent), _resolver(rows, event))):
        raise HektaError(f"record {record}: no consent{at}: {spec.consent} does not hold")
    for form in spec.complete:
        if row.get(f"{form}_complete") != "2":
            raise HektaError(
                f"record {record}: form {form} is not complete{at} ({form}_complete is not 2)"
            )
    for factor in design.factors:
        if row.get(factor, "") == "":
            raise HektaError(f"record {record}: stratum {factor} is blank{at}")


def _resolver(rows: dict[str | None, Row], event: str | None) -> Callable[[logic.Ref], str]:
    """Logic references read from the record's rows (the design's event unless named)."""

    def resolve(ref: logic.Ref) -> str:
        return logic.value_in(rows.get(ref.event or event, {}), ref)

    return resolve


def _randomization_id(settings: Settings, project: str) -> int | None:
    """REDCAP_RANDOMIZATION_ID_<PROJECT> (the token's suffix), needed only when the project
    has more than one randomization."""
    name = "REDCAP_RANDOMIZATION_ID_" + token_variable(project).removeprefix("REDCAP_TOKEN_")
    value = settings.get(name)
    if value is None:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"{name} must be a whole number of 1 or more (see .env.example)")
    return int(value)


def _reread(api: Gateway, project: Project, design: Design, record: str) -> str:
    """The group REDCap holds for `record` after a retried call found it randomized."""
    code = str(_rows(api, project, record).get(design.event, {}).get(design.target, ""))
    if not code:
        raise HektaError(
            f"record {record}: REDCap says it is randomized, but {design.target} is blank: "
            "look at the record in REDCap"
        )
    return code


def _labels(project: Project, design: Design, code: str) -> dict[str, str]:
    """The group's label in each language (the code when the definitions lack it)."""
    instrument, field = project.field_map()[design.target]
    choice = next((c for c in instrument.choices_of(field) if c.code == code), None)
    return {
        lang: instrument.choice_label(choice, lang) if choice is not None else code
        for lang in LANGUAGES
    }


def _today() -> dt.date:
    """Today where the trial runs (REDCap stores the date as YYYY-MM-DD)."""
    return local(now()).date()


def _write_back(
    api: Gateway, project: Project, design: Design, allocation: Allocation, by: str
) -> None:
    """Write the randomization's date and who randomized into the record, in one import."""
    spec = design.spec
    values = {
        name: value
        for name, value in ((spec.date_field, allocation.day.isoformat()), (spec.by_field, by))
        if name is not None
    }
    if not values:
        return
    keys = {project.study.record_id: allocation.record}
    if design.event is not None:
        keys[EVENT] = design.event
    try:
        api.import_records([{**keys, **values}])
    except HektaError as exc:
        raise HektaError(
            f"{allocation.text('en')}, but {' and '.join(values)} could not be written "
            f"({exc}): enter them in REDCap"
        ) from None
