"""Reports: a saved record export, run through the record exporter.

A report lives in table `report` as `{"title", "fields", "filter_logic", "events"}` (the shape
project XML's `ReportsGroup` is loaded into). Exporting it is a record export with the report's
fields, events and filter in place of the request's, so its rows, columns, labels and CSV options
are exactly those of `content=record`. REDCap puts the record id in every report, so it (and
with it the pseudo-columns) always comes first.
"""

from __future__ import annotations

import dataclasses
import json

from werkzeug.datastructures import MultiDict

from hekta_redcap.devtools.sandbox.api.files import as_id
from hekta_redcap.devtools.sandbox.api.records import RecordExport
from hekta_redcap.devtools.sandbox.endpoints import Call, endpoint
from hekta_redcap.devtools.sandbox.wire import Params, Reply, invalid_parameter

# The request parameters a report export takes from the client; the rest comes from the report.
PASSED = (
    "format",
    "returnFormat",
    "rawOrLabel",
    "rawOrLabelHeaders",
    "exportCheckboxLabel",
    "csvDelimiter",
    "decimalCharacter",
)


@endpoint("report", "export", privilege="api_export")
def export_report(call: Call) -> Reply:
    p = call.p
    found = call.conn.execute(
        "SELECT definition FROM report WHERE project_id = ? AND report_id = ?",
        (p.project_id, as_id(call.params.get("report_id"))),
    ).fetchone()
    if found is None:
        raise invalid_parameter("report_id")  # [U] REDCap's exact text is unverified
    report = json.loads(found[0])
    # fields and events deleted since the report was saved drop out of it, as in REDCap
    known = {*p.fields, *(f"{form}_complete" for form in p.forms)}
    fields = [name for name in report.get("fields", []) if name in known]
    events = {e.unique_event_name for e in p.events}
    form = MultiDict([(k, v) for k in PASSED for v in call.params.form.getlist(k)])
    form["fields"] = ",".join(dict.fromkeys([p.record_id_field, *fields]))
    form["events"] = ",".join(e for e in report.get("events", []) if e in events)
    form["filterLogic"] = report.get("filter_logic", "")
    return RecordExport(dataclasses.replace(call, params=Params(form))).reply()
