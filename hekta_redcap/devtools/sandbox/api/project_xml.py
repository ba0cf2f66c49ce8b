"""Project XML (CDISC ODM) export: the whole project, design and data, as REDCap writes it.

The document itself is written by `sandbox.odm`; this module turns the request into what to
include: the records the user may see (their DAG's only), the fields and events asked for, and
no data of forms the user may not export (de-identified levels drop what REDCap drops).
"""

from __future__ import annotations

from typing import Any

from hekta_redcap.devtools.sandbox import odm
from hekta_redcap.devtools.sandbox.endpoints import Call, endpoint
from hekta_redcap.devtools.sandbox.models import ProjectModel
from hekta_redcap.devtools.sandbox.wire import CONTENT_TYPES, ApiError, Reply, invalid_values

# forms_export levels: 0 no access, 1 full, 2 de-identified, 3 without identifiers.
NO_EXPORT, DE_IDENTIFIED, NO_IDENTIFIERS = 0, 2, 3


@endpoint("project_xml", "export", privilege="api_export")
def export_project_xml(call: Call) -> Reply:
    p, params = call.p, call.params
    if params.get("filterLogic"):
        # Refused rather than ignored: a filter that is silently dropped exports too much.
        raise ApiError("This server does not support filterLogic for project XML exports")  # [U]
    metadata_only = params.flag("returnMetadataOnly")
    request = odm.Export(
        records=None if metadata_only else _records(p, params.array("records"), call.u.dag_id),
        columns=_columns(p, params.array("fields"), call.u.rights.get("forms_export") or {}),
        event_ids=_event_ids(p, params.array("events")),
        survey_fields=params.flag("exportSurveyFields"),
        dags=params.flag("exportDataAccessGroups"),
        files=params.flag("exportFiles"),
    )
    xml = odm.export(p, request)
    what = "metadata" if metadata_only else "metadata and data"
    p.log(call.u.username, "Data export", f"Export project XML ({what}) (API)", kind="export")
    return Reply(xml.encode(), CONTENT_TYPES["xml"])


def _records(p: ProjectModel, wanted: list[str], dag_id: int | None) -> list[str]:
    """The records asked for (all when none are named) that the user's DAG lets them see;
    names that do not exist are skipped, as REDCap's record export does [U]."""
    visible = p.record_ids(dag_id)
    if not wanted:
        return visible
    chosen = set(wanted)
    return [record for record in visible if record in chosen]


def _event_ids(p: ProjectModel, wanted: list[str]) -> set[int] | None:
    if not wanted:
        return None
    unknown = [name for name in wanted if p.event(name) is None]
    if unknown:
        raise invalid_values("events", unknown)
    return {event.event_id for name in wanted if (event := p.event(name))}


def _columns(p: ProjectModel, wanted: list[str], levels: dict[str, Any]) -> set[str]:
    """Export columns of the fields asked for (a checkbox by its base name, `<form>_complete`
    as a field; all when none are named), less what the user's export rights withhold."""
    completes = {f"{form}_complete": form for form in p.forms}
    unknown = [name for name in wanted if name not in p.fields and name not in completes]
    if unknown:
        raise invalid_values("fields", unknown)
    names = wanted or [*p.fields, *completes]
    columns: set[str] = set()
    for name in names:
        form = completes.get(name) or p.fields[name]["form_name"]
        level = int(levels.get(form, 1))  # no entry: full rights, as the sandbox's seeded users
        if level == NO_EXPORT:
            continue
        if name in completes:
            columns.add(name)
        elif name == p.record_id_field or not _withheld(p.fields[name], level):
            columns.update(p.export_columns(p.fields[name]))
    return columns


def _withheld(row: dict[str, str], level: int) -> bool:
    """Fields a de-identified export leaves out: identifiers, and with level 2 also free text
    and dates (REDCap's 'remove unvalidated text, notes and date fields')."""
    if row["identifier"] == "y":
        return level in (DE_IDENTIFIED, NO_IDENTIFIERS)
    if level != DE_IDENTIFIED:
        return False
    validation = row[odm.VALIDATION]
    free_text = row["field_type"] == "notes" or (row["field_type"] == "text" and not validation)
    return free_text or validation.startswith(("date", "time"))
