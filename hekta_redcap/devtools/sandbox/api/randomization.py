"""Randomize a record (REDCap 14+): the API method of REDCap's randomization module.

The randomization and its allocation tables are set up outside the API, as on REDCap's setup
page (here `hekta-redcap sandbox allocation`). A call takes the next free slot of the record's
stratum in the table in use, writes the slot's value into the target field, logs it and
answers with the value; nothing else about the table ever leaves the server. Once randomized,
the record's target and strata fields are kept as they are by record import
(`records_import`). REDCap's documentation names the method both `content=record` and
`content=randomization` (action `randomize`); both are served. The refusals' wording is
inferred [I].
"""

from __future__ import annotations

from hekta_redcap.devtools.sandbox.api.files import require_record
from hekta_redcap.devtools.sandbox.endpoints import Call, endpoint
from hekta_redcap.devtools.sandbox.models import RANDOMIZE_RIGHT, Randomization, now
from hekta_redcap.devtools.sandbox.wire import (
    ApiError,
    Reply,
    invalid_parameter,
    render_object,
)
from hekta_redcap.redcap.names import DAG

NOT_ENABLED = "Randomization is not enabled in this project"  # [I]
ALREADY = "Record '{record}' has already been randomized"  # [I]
BLANK_STRATA = (
    "Record '{record}' cannot be randomized because these stratification fields have no "
    "value: {fields}"
)  # [I]
NO_SLOT = (
    "Record '{record}' cannot be randomized because no allocation is left in the allocation "
    "table for its strata ({strata})"
)  # [I]


@endpoint("record", "randomize", privilege=("api_import", RANDOMIZE_RIGHT))
@endpoint("randomization", "randomize", privilege=("api_import", RANDOMIZE_RIGHT))
def randomize(call: Call) -> Reply:
    """Randomize `record` in `randomization_id` (optional when the project has one) →
    `{"record", "target_field", "target_value"}` (`target_value_alt` with `returnAlt`)."""
    model, params = call.p, call.params
    if not model.randomization_enabled:
        raise ApiError(NOT_ENABLED)
    randomization = _randomization(call)
    record = params.require("record")
    require_record(call, record)
    if randomization in model.randomized([record]).get(record, []):
        raise ApiError(ALREADY.format(record=record))
    strata = _strata_values(call, randomization, record)
    named = [(name, value) for (name, _), value in zip(randomization.strata, strata, strict=True)]
    if blank := [name for name, value in named if not value]:
        raise ApiError(BLANK_STRATA.format(record=record, fields=", ".join(blank)))
    when = now()
    value = model.take_slot(randomization.rid, strata, record, call.u.username, when)
    if value is None:
        shown = ", ".join(f"{name} = '{code}'" for name, code in named)
        raise ApiError(NO_SLOT.format(record=record, strata=shown))
    target = randomization.target
    model.set_value(
        record, randomization.target_event, target, value, call.u.username, "Randomize record", when
    )
    reply = {"record": record, "target_field": target, "target_value": value}
    if params.flag("returnAlt"):
        reply["target_value_alt"] = ""  # the tables hold no alternative (blinded) values
    return render_object(reply, call.fmt)


def _randomization(call: Call) -> Randomization:
    """The randomization `randomization_id` names, or the project's only one."""
    found = call.p.randomizations
    wanted = call.params.get("randomization_id")
    if wanted is None:
        if len(found) != 1:
            raise ApiError('The parameter "randomization_id" is missing')
        return found[0]
    chosen = next((r for r in found if str(r.rid) == wanted.strip()), None)
    if chosen is None:
        raise invalid_parameter("randomization_id")
    return chosen


def _strata_values(call: Call, randomization: Randomization, record: str) -> list[str]:
    """The record's value of each stratum: the field at its event, or the unique name of the
    record's data access group ("" when blank)."""
    model = call.p
    info = model.record_info(record)
    dag = model.dag_names().get(info["dag_id"], "") if info is not None else ""
    return [
        dag if name == DAG else model.get_row((record, event_id, "", 0)).values.get(name, "")
        for name, event_id in randomization.strata
    ]
