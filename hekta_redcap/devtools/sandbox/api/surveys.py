"""Survey links, queue links, access and return codes, participant lists.

Only forms listed in table `survey` are surveys. Each (form, event, record, instance) gets one
`participant` row the first time it is asked for, so the same link and codes come back every
time; the survey queue of a record is the row with form '' (event 0, instance 0).
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import string

from hekta_redcap.devtools.sandbox.api.files import form_event, locate, require_record, row_key
from hekta_redcap.devtools.sandbox.endpoints import Call, endpoint
from hekta_redcap.devtools.sandbox.models import ProjectModel, natural_key
from hekta_redcap.devtools.sandbox.wire import (
    ApiError,
    Reply,
    invalid_parameter,
    render_rows,
    render_text,
)

PARTICIPANT_COLUMNS = (
    "email",
    "email_occurrence",
    "identifier",
    "record",
    "invitation_sent_status",
    "invitation_send_time",
    "response_status",
    "survey_access_code",
    "survey_link",
)
CODE_CHARACTERS = string.ascii_uppercase + string.digits
HASH_LENGTH = 10  # [U] REDCap's survey hashes look like `?s=HRHJ3RMKFM`
ACCESS_CODE_LENGTH = 9
RETURN_CODE_LENGTH = 8
QUEUE = ""  # the participant form name that stands for a record's survey queue


def _code(length: int) -> str:
    return "".join(secrets.choice(CODE_CHARACTERS) for _ in range(length))


def form_filled(p: ProjectModel, values: dict[str, str], form: str) -> bool:
    """Whether a data row holds anything of `form` (its status included, the record id not)."""
    return any(p.form_of(k) == form and k != p.record_id_field for k in values)


def _survey_settings(call: Call) -> tuple[str, dict[str, object]]:
    """The request's `instrument`, which must be one of the project's surveys, and the survey's
    settings (project XML's `Surveys` attributes)."""
    form = call.params.require("instrument")
    if form not in call.p.forms:
        raise invalid_parameter("instrument")
    row = call.conn.execute(
        "SELECT settings FROM survey WHERE project_id = ? AND form_name = ?",
        (call.p.project_id, form),
    ).fetchone()
    if row is None:
        # [U] REDCap's exact text is unverified.
        raise ApiError(f'The instrument "{form}" has not been enabled as a survey')
    return form, json.loads(row[0])


def _participant(call: Call, form: str, event_id: int, record: str, instance: int) -> sqlite3.Row:
    """The participant row of a record's survey, created on first use."""
    key = (call.p.project_id, form, event_id, record, instance)
    where = "project_id = ? AND form_name = ? AND event_id = ? AND record = ? AND instance = ?"
    row = call.conn.execute(f"SELECT * FROM participant WHERE {where}", key).fetchone()
    if row is None:
        call.conn.execute(
            "INSERT INTO participant (project_id, form_name, event_id, record, instance, hash, "
            "access_code, return_code) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (*key, _code(HASH_LENGTH), _code(ACCESS_CODE_LENGTH), _code(RETURN_CODE_LENGTH)),
        )
        row = call.conn.execute(f"SELECT * FROM participant WHERE {where}", key).fetchone()
    return row


def _record_participant(call: Call) -> tuple[sqlite3.Row, dict[str, object]]:
    """The participant row for the request's record, instrument, event and repeat_instance."""
    form, settings = _survey_settings(call)
    record, event_id, _, instance = locate(call, call.params.require("record"), form)
    return _participant(call, form, event_id, record, instance or 1), settings


def _link(call: Call, key: str, participant: sqlite3.Row) -> str:
    return f"{call.base_url}surveys/?{key}={participant['hash']}"


@endpoint("surveyLink", privilege="api_export")
def survey_link(call: Call) -> Reply:
    participant, _ = _record_participant(call)
    return render_text(_link(call, "s", participant))


@endpoint("surveyAccessCode", privilege="api_export")
def survey_access_code(call: Call) -> Reply:
    participant, _ = _record_participant(call)
    return render_text(participant["access_code"])


@endpoint("surveyReturnCode", privilege="api_export")
def survey_return_code(call: Call) -> Reply:
    participant, settings = _record_participant(call)
    if str(settings.get("save_and_return", "1")) in ("0", "", "False"):
        # [U] REDCap's exact text is unverified.
        raise ApiError(
            f'Save & Return is not enabled for the survey "{participant["form_name"]}", so it '
            "has no return codes"
        )
    return render_text(participant["return_code"])


@endpoint("surveyQueueLink", privilege="api_export")
def survey_queue_link(call: Call) -> Reply:
    record = call.params.require("record")
    require_record(call, record)
    has_survey = call.conn.execute(
        "SELECT 1 FROM survey WHERE project_id = ? LIMIT 1", (call.p.project_id,)
    ).fetchone()
    if not has_survey:
        # [U] REDCap's exact text is unverified.
        raise ApiError("The survey queue is not enabled for this project")
    return render_text(_link(call, "sq", _participant(call, QUEUE, 0, record, 0)))


@endpoint("participantList", privilege="api_export")
def participant_list(call: Call) -> Reply:
    """One row per record of the event's arm (every record in a classic project): the project's
    surveys are public, so nobody has an e-mail address or an invitation."""
    p = call.p
    form, _ = _survey_settings(call)
    event_id = form_event(call, form)
    event = p.event_by_id(event_id)
    arm_events = [e.event_id for e in p.events if event and e.arm_num == event.arm_num] or [0]
    records = {
        r[0]
        for r in call.conn.execute(
            f"SELECT DISTINCT record FROM data WHERE project_id = ? AND event_id IN "
            f"({','.join('?' * len(arm_events))})",
            (p.project_id, *arm_events),
        )
    }
    if call.u.dag_id is not None:
        records &= set(p.record_ids(call.u.dag_id))
    rows = []
    for record in sorted(records, key=natural_key):
        key = row_key(p, record, event_id, form, 1)
        participant = _participant(call, form, event_id, record, key[3] or 1)
        values = p.get_row(key).values
        status = 2 if values.get(f"{form}_complete") == "2" else int(form_filled(p, values, form))
        rows.append(
            {
                "email": participant["email"],
                "email_occurrence": 1,  # [U] for a blank address
                "identifier": participant["identifier"],
                "record": record,
                "invitation_sent_status": participant["invitation_sent"],
                "invitation_send_time": participant["invitation_time"],
                "response_status": status,
                "survey_access_code": participant["access_code"],
                "survey_link": _link(call, "s", participant),
            }
        )
    return render_rows(rows, call.fmt, PARTICIPANT_COLUMNS, delimiter=call.params.delimiter)
