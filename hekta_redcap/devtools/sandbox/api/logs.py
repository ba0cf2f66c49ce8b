"""The logging export: the entries every area writes through `ProjectModel.log`, newest
first, filtered as REDCap's Logging page filters them."""

from __future__ import annotations

import re
from typing import Any

from hekta_redcap.devtools.sandbox.api.users import dag_id_of
from hekta_redcap.devtools.sandbox.endpoints import Call, endpoint
from hekta_redcap.devtools.sandbox.wire import Reply, invalid_parameter, render_rows

LOG_COLUMNS = ("timestamp", "username", "action", "details", "record")
RECORD_KINDS = ("record_add", "record_edit", "record_delete")
# logtype -> the kinds of entry it returns (`record` covers the three record kinds)
LOGTYPES = {
    **{kind: (kind,) for kind in ("export", "manage", "user", "lock_record", "page_view")},
    **{kind: (kind,) for kind in RECORD_KINDS},
    "record": RECORD_KINDS,
}
TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}(:\d{2})?")


def time_bound(call: Call, name: str, seconds: str) -> str | None:
    """`beginTime`/`endTime` as stored times: `YYYY-MM-DD HH:MM` (REDCap's form) covers the
    whole minute; PyCap sends `:SS` too."""
    value = call.params.get(name)
    if value is None:
        return None
    if not TIME.fullmatch(value.strip()):
        raise invalid_parameter(name)
    value = value.strip()
    return value if len(value) > 16 else value + seconds


@endpoint("log", "export", privilege=("api_export", "logging"))
def export_logging(call: Call) -> Reply:
    """Entries newest first. A user in a data access group sees only their group's entries,
    as REDCap restricts logging for DAG users."""
    sql = "SELECT ts, username, action, details, record FROM log WHERE project_id = ?"
    args: list[Any] = [call.p.project_id]
    logtype = call.params.get("logtype")
    if logtype is not None:
        if logtype not in LOGTYPES:
            raise invalid_parameter("logtype")
        sql += f" AND kind IN ({','.join('?' * len(LOGTYPES[logtype]))})"
        args += LOGTYPES[logtype]
    for column, param in (("username", "user"), ("record", "record")):
        if (value := call.params.get(param)) is not None:
            sql += f" AND {column} = ?"
            args.append(value)
    dag = call.params.get("dag")
    dag_id = call.u.dag_id or dag_id_of(call, dag or "", 'values of the parameter "dag"')
    if dag_id is not None:
        # [U] whose entries a DAG filter keeps: those about its records and by its users
        sql += (
            " AND (record IN (SELECT record FROM record WHERE project_id = log.project_id AND "
            "dag_id = ?) OR username IN (SELECT username FROM user_dag WHERE "
            "project_id = log.project_id AND dag_id = ?))"
        )
        args += [dag_id, dag_id]
    for op, param, seconds in ((">=", "beginTime", ":00"), ("<=", "endTime", ":59")):
        if (bound := time_bound(call, param, seconds)) is not None:
            sql += f" AND ts {op} ?"
            args.append(bound)
    rows = [
        dict(zip(LOG_COLUMNS, (r[0][:16], r[1], r[2], r[3], r[4] or ""), strict=True))
        for r in call.conn.execute(sql + " ORDER BY ts DESC, log_id DESC", args)
    ]
    call.p.log(call.u.username, "Manage/Design", "Export Logging (API)", kind="manage")
    return render_rows(rows, call.fmt, LOG_COLUMNS, delimiter=call.params.delimiter)
