"""Project-level calls: project info, project creation, project settings, version."""

from __future__ import annotations

from typing import Any

from hekta_redcap.devtools.sandbox import models
from hekta_redcap.devtools.sandbox.api.metadata import import_rows
from hekta_redcap.devtools.sandbox.endpoints import REDCAP_VERSION, Call, endpoint
from hekta_redcap.devtools.sandbox.wire import (
    ApiError,
    Reply,
    render_count,
    render_object,
    render_text,
)

INFO_KEYS = tuple(models.PROJECT_INFO)  # the project export's keys, in REDCap's order
INTEGERS = frozenset(k for k, v in models.PROJECT_INFO.items() if isinstance(v, int))
PURPOSES = range(5)  # practice, other, research, quality improvement, operational support
# What project creation takes from `data` (REDCap's API documentation).
CREATE_KEYS = frozenset(
    {
        "project_title",
        "purpose",
        "purpose_other",
        "project_notes",
        "is_longitudinal",
        "surveys_enabled",
        "record_autonumbering_enabled",
    }
)
# What a project settings import may change; the other keys of an export are read-only and
# ignored, so an exported object can be sent back as it is.
SETTINGS_KEYS = CREATE_KEYS | {
    "project_language",
    "custom_record_label",
    "secondary_unique_field",
    "scheduling_enabled",
    "randomization_enabled",
    "project_irb_number",
    "project_grant_number",
    "project_pi_firstname",
    "project_pi_lastname",
    "project_pi_email",
    "display_today_now_button",
    "bypass_branching_erase_field_prompt",
}
# [U] REDCap's texts for these refusals are unconfirmed; the rules are REDCap's Project Setup.
SETTINGS_IN_PRODUCTION = (
    "The project settings cannot be modified because the project is in production status. "
    "They can only be modified while the project is in development status."
)
MANY_EVENTS = (
    "The project cannot be made classic while it has more than one event. Delete all events "
    "but one first."
)
REPEATING_EVENT = "The project cannot be made classic while its event repeats as a whole"
CREATOR = "site_admin"  # sorts after the PyCap doctest's other user, as REDCap lists users
FIRST_FORM = "my_first_instrument"


@endpoint("version", "export")
def version(call: Call) -> Reply:
    """`x.y.z` as plain text (PyCap parses it as semver and needs >= 12.0.1)."""
    return render_text(REDCAP_VERSION)


@endpoint("project", "export", privilege="api_export")
def export_project_info(call: Call) -> Reply:
    """The project's settings as one object, with REDCap's integer flags."""
    model = call.p
    info = {**model.info, "has_repeating_instruments_or_events": int(model.has_repeating)}
    typed = {
        key: int(info.get(key) or 0) if key in INTEGERS else str(info.get(key) or "")
        for key in INFO_KEYS
    }
    return render_object(typed, call.fmt)


@endpoint("project", "import", super_token=True)
def create_project(call: Call) -> Reply:
    """A new project from `data` (and a CDISC ODM project XML in `odm`), with the creator as its
    user; the reply is the creator's new API token."""
    settings = _settings(_one_row(call), CREATE_KEYS)
    for key in ("project_title", "purpose"):
        if settings.get(key, "") == "":
            raise ApiError(f'The project attribute "{key}" is missing')  # [U]
    if settings["purpose"] == 1 and not settings.get("purpose_other"):
        raise ApiError('The project attribute "purpose_other" is required when purpose is 1')
    model = models.create_project(call.conn, settings)
    if odm_text := call.params.get("odm"):
        from hekta_redcap.devtools.sandbox import (
            odm,  # another area's module, loaded only when needed
        )

        odm.ingest(model, odm_text, CREATOR)
    else:
        _first_instrument(model)
    token = models.new_token()
    rights = models.creator_rights(model.forms)
    models.add_user(call.conn, model.project_id, CREATOR, rights, token)
    # Logged last, so that it heads the (newest-first) log as in the PyCap doctest.
    model.log(CREATOR, "Manage/Design ", "Create project (API)", kind="manage")
    return render_text(token)


def _first_instrument(model: models.ProjectModel) -> None:
    """What REDCap gives a project created without XML: one form holding the record id, and
    `Arm 1`/`Event 1` collecting it when longitudinal."""
    model.replace_metadata(
        [
            {
                "field_name": "record_id",
                "form_name": FIRST_FORM,
                "field_type": "text",
                "field_label": "Record ID",
            }
        ]
    )
    if model.longitudinal:
        model.make_longitudinal()


@endpoint("project_settings", "import", privilege="api_import")
def import_project_settings(call: Call) -> Reply:
    """Change the settings sent (redcapAPI); the reply counts the settings accepted. Switching
    between classic and longitudinal reshapes the project as REDCap's Project Setup does, and
    nothing may change in production. Settings sent with their current values change nothing,
    so an exported object can be sent back as it is."""
    call.require("design")
    model = call.p
    settings = _settings(_one_row(call), SETTINGS_KEYS)
    changed = {key: value for key, value in settings.items() if model.info.get(key) != value}
    if changed and model.in_production:
        raise ApiError(SETTINGS_IN_PRODUCTION)
    secondary = settings.get("secondary_unique_field")
    if secondary and secondary not in model.fields:
        raise _bad_value("secondary_unique_field", secondary)
    if "is_longitudinal" in changed:
        _switch(model, bool(changed["is_longitudinal"]))
    model.info.update(settings)
    model.save_info()
    model.log(call.u.username, "Manage/Design", "Modify project settings (API)", kind="manage")
    return render_count(len(settings), call.return_format)


def _switch(model: models.ProjectModel, longitudinal: bool) -> None:
    """Classic to longitudinal always works (REDCap adds `Arm 1`/`Event 1` holding the data);
    back to classic only while a single event (in a single arm) is left."""
    if longitudinal:
        model.make_longitudinal()
        return
    if len(model.events) > 1:
        raise ApiError(MANY_EVENTS)
    if any(not form for _, form in model.repeating):
        raise ApiError(REPEATING_EVENT)
    model.make_classic()


def _one_row(call: Call) -> dict[str, str]:
    rows = import_rows(call)
    if len(rows) != 1:
        raise ApiError("The data must hold the attributes of exactly one project")  # [U]
    return rows[0]


def _settings(row: dict[str, str], allowed: frozenset[str]) -> dict[str, Any]:
    """The allowed attributes of `row`, typed; read-only export keys are skipped and unknown
    keys refused [U: REDCap's texts for these refusals are unknown]."""
    if unknown := [key for key in row if key not in allowed and key not in INFO_KEYS]:
        raise ApiError(f"The following project attributes are not valid: {', '.join(unknown)}")
    settings: dict[str, Any] = {}
    for key, value in row.items():
        if key not in allowed or (key in INTEGERS and value == ""):
            continue
        if key in INTEGERS:
            number = int(value) if value.isdigit() else -1
            if number not in (PURPOSES if key == "purpose" else (0, 1)):
                raise _bad_value(key, value)
            settings[key] = number
        else:
            settings[key] = value
    return settings


def _bad_value(key: str, value: str) -> ApiError:
    return ApiError(f"The value of the project attribute \"{key}\" is not valid: '{value}'")
