"""Project structure on the local REDCap-compatible server: metadata, field names, instruments,
arms, events, mappings, repeating setup, project info, creation and settings, through PyCap
(and `requests` where the status code or a raw body matters)."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
from redcap import RedcapError
from sandbox_support import (
    CLASSIC_DICTIONARY,
    LONGITUDINAL_ARMS,
    LONGITUDINAL_EVENTS,
    LONGITUDINAL_MAPPING,
    LONGITUDINAL_REPEATING,
    Handle,
    dictionary_rows,
    seed_project,
)

from hekta_redcap.devtools.sandbox.models import METADATA_COLUMNS, ProjectModel
from hekta_redcap.devtools.sandbox.server import SandboxServer

ODM_FIXTURE = Path(__file__).resolve().parent / "fixtures" / "redcap-odm"
CLASSIC_ROWS = dictionary_rows(CLASSIC_DICTIONARY)
NO_PERMISSION = "You do not have permissions to use the API"


def post(handle: Handle, **params: Any) -> requests.Response:
    return requests.post(handle.url, data={"token": handle.token, **params}, timeout=10)


def stored(handle: Handle) -> tuple[dict[tuple[str, str, str, int], dict[str, str]], list[str]]:
    """The project's data rows (keyed by record, unique event name, repeat instrument and
    instance) and its records, read from the store rather than through another API area."""
    with handle.server.store.transaction() as conn:
        model = ProjectModel(conn, handle.project_id)
        names = {e.event_id: e.unique_event_name for e in model.events}
        rows = {
            (r.record, names.get(r.event_id, ""), r.repeat_instrument, r.instance): r.values
            for r in model.data_rows()
        }
        return rows, model.record_ids()


def manage_log(handle: Handle) -> list[tuple[str, str, str]]:
    with handle.server.store.transaction() as conn:
        rows = conn.execute(
            "SELECT username, action, details FROM log WHERE project_id = ? AND kind = 'manage' "
            "ORDER BY log_id",
            (handle.project_id,),
        )
        return [tuple(r) for r in rows]


# -- metadata ---------------------------------------------------------------------------------


def test_metadata_export_json_is_the_dictionary_without_complete_rows(classic: Handle) -> None:
    metadata = classic.pycap().export_metadata()
    assert [list(row) for row in metadata] == [list(METADATA_COLUMNS)] * len(CLASSIC_ROWS)
    assert metadata == CLASSIC_ROWS
    assert not any(row["field_name"].endswith("_complete") for row in metadata)


def test_metadata_export_filters_are_a_union_in_field_order(classic: Handle) -> None:
    rows = classic.pycap().export_metadata(fields=["visit_date", "dob"], forms=["followup"])
    assert [r["field_name"] for r in rows] == ["dob", "fav", "visit_date"]
    by_comma = post(classic, content="metadata", format="json", fields="sex,record_id").json()
    assert [r["field_name"] for r in by_comma] == ["record_id", "sex"]


def test_metadata_export_csv_xml_and_df(classic: Handle) -> None:
    project = classic.pycap()
    text = project.export_metadata(format_type="csv")
    assert text.startswith("field_name,form_name,section_header,field_type,")
    assert list(csv.DictReader(io.StringIO(text))) == CLASSIC_ROWS
    assert 'sex,demographics,,radio,Sex,"1, Male | 2, Female",' in text
    xml = project.export_metadata(format_type="xml")
    assert xml.count("<item>") == len(CLASSIC_ROWS)
    assert "<field_name><![CDATA[record_id]]></field_name>" in xml
    frame = project.export_metadata(format_type="df")
    assert frame.index.name == "field_name"
    assert list(frame.index) == [r["field_name"] for r in CLASSIC_ROWS]
    assert list(frame.columns) == list(METADATA_COLUMNS[1:])


def test_metadata_export_refuses_unknown_fields_and_forms(classic: Handle) -> None:
    reply = post(classic, content="metadata", format="csv", **{"fields[0]": "nope"})
    assert reply.status_code == 400
    assert (
        reply.text
        == "ERROR: The following values in the parameter \"fields\" are not valid: 'nope'"
    )
    reply = post(classic, content="metadata", format="json", forms="demographics,extra")
    assert reply.status_code == 400
    assert reply.json() == {
        "error": "The following values in the parameter \"forms\" are not valid: 'extra'"
    }


@pytest.mark.parametrize("fmt", ["json", "csv", "xml", "df"])
def test_metadata_round_trip_in_every_format(classic: Handle, fmt: str) -> None:
    project = classic.pycap()
    kwargs = {"df_kwargs": {"index_col": "field_name", "dtype": str}} if fmt == "df" else {}
    exported = project.export_metadata(format_type=fmt, **kwargs)
    assert project.import_metadata(exported, import_format=fmt) == len(CLASSIC_ROWS)
    assert project.export_metadata() == CLASSIC_ROWS
    assert manage_log(classic)[-1] == (
        "test_admin",
        "Manage/Design",
        "Upload data dictionary (API)",
    )


def test_metadata_import_counts_rows_and_labels_new_forms(classic: Handle) -> None:
    project = classic.pycap()
    new = {**CLASSIC_ROWS[-1], "field_name": "extra", "form_name": "my_new_form"}
    assert project.import_metadata([*CLASSIC_ROWS, new]) == len(CLASSIC_ROWS) + 1
    assert project.export_instruments() == [
        {"instrument_name": "demographics", "instrument_label": "Demographics"},
        {"instrument_name": "followup", "instrument_label": "Followup"},
        {"instrument_name": "my_new_form", "instrument_label": "My New Form"},
    ]
    reply = post(
        classic, content="metadata", format="csv", returnFormat="csv", data=CLASSIC_DICTIONARY
    )
    assert (reply.status_code, reply.text) == (200, str(len(CLASSIC_ROWS)))


def test_metadata_import_accepts_the_data_dictionary_page_header(classic: Handle) -> None:
    from hekta_redcap.redcap.dictionary import CSV_HEADER

    lines = CLASSIC_DICTIONARY.splitlines()
    page = "\n".join([",".join(f'"{h}"' for h in CSV_HEADER), *lines[1:3]]) + "\n"
    assert classic.pycap().import_metadata(page, import_format="csv") == 2
    assert [r["field_name"] for r in classic.pycap().export_metadata()] == [
        "record_id",
        "first_name",
    ]


def test_metadata_import_drops_the_data_of_dropped_fields_and_forms(classic: Handle) -> None:
    classic.put("1", {"first_name": "Ada", "dob": "1990-01-02", "colors___1": "1"})
    classic.put("1", {"demographics_complete": "2", "fav": "a", "followup_complete": "1"})
    project = classic.pycap()
    kept = [r for r in CLASSIC_ROWS if r["field_name"] not in ("first_name", "colors")]
    kept = [r for r in kept if r["form_name"] == "demographics"]
    assert project.import_metadata(kept) == len(kept)
    assert project.import_metadata(CLASSIC_ROWS) == len(CLASSIC_ROWS)
    rows, records = stored(classic)
    assert rows[("1", "", "", 0)] == {"dob": "1990-01-02", "demographics_complete": "2"}
    assert records == ["1"]


def test_metadata_import_drops_mapping_and_repeating_of_dropped_forms(longitudinal: Handle) -> None:
    project = longitudinal.pycap()
    kept = [r for r in project.export_metadata() if r["form_name"] != "medications"]
    assert project.import_metadata(kept) == len(kept)
    assert all(m["form"] != "medications" for m in project.export_instrument_event_mappings())
    assert project.export_repeating_instruments_events() == [
        {"event_name": "visit_2_arm_1", "form_name": "", "custom_form_label": ""}
    ]


def test_metadata_import_drops_removed_checkbox_options_and_repeat_rows(
    longitudinal: Handle,
) -> None:
    longitudinal.put("1", {"med_name": "x"}, "visit_1_arm_1", "medications", 1)
    project = longitudinal.pycap()
    kept = [r for r in project.export_metadata() if r["form_name"] != "medications"]
    project.import_metadata(kept)
    rows, _ = stored(longitudinal)
    assert not [key for key in rows if key[2] == "medications"]


def test_metadata_import_keeps_other_checkbox_options(classic: Handle) -> None:
    classic.put("1", {"colors___1": "1", "colors____99": "1"})
    rows = [dict(r) for r in CLASSIC_ROWS]
    colors = next(r for r in rows if r["field_name"] == "colors")
    colors["select_choices_or_calculations"] = "1, Red | 2, Green"
    classic.pycap().import_metadata(rows)
    assert stored(classic)[0][("1", "", "", 0)] == {"colors___1": "1"}


def test_new_forms_are_granted_to_existing_users(classic: Handle) -> None:
    other = classic.add_user("nurse")
    rows = [*CLASSIC_ROWS, {**CLASSIC_ROWS[-1], "field_name": "extra", "form_name": "extra_form"}]
    classic.pycap().import_metadata(rows)
    users = {u["username"]: u for u in classic.pycap().export_users()}
    assert users["nurse"]["forms"]["extra_form"] == 1
    assert classic.pycap(other).export_records(forms=["extra_form"]) == []


def test_metadata_import_reports_every_problem_in_one_error(classic: Handle) -> None:
    rows = [dict(r) for r in CLASSIC_ROWS]
    rows[1]["field_name"] = "dob"  # duplicated
    rows[2]["form_name"] = ""  # no form name
    rows[5]["form_name"] = "followup"  # followup before demographics ends: not sequential
    rows[6]["field_type"] = "Radio"  # not lower case
    reply = post(classic, content="metadata", format="json", data=json.dumps(rows))
    assert reply.status_code == 400
    messages = reply.json()["error"].split("\n")
    assert messages == [
        "The following variable/field names were duplicated: dob",
        "Each row MUST have a form name. The following fields have no form name: dob",
        "Form names must be sequential and cannot repeat again after being used for another "
        "form. The following forms repeat: demographics, followup",
        "The only valid field types are text, notes, radio, dropdown, calc, file, checkbox, "
        "yesno, truefalse, descriptive, slider and must all be in lower case: sex (Radio)",
    ]
    assert classic.pycap().export_metadata() == CLASSIC_ROWS


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({0: {"field_type": "checkbox", "select_choices_or_calculations": "1, A"}}, "first field"),
        ({6: {"select_choices_or_calculations": "1 Male | 2, Female"}}, "code, label"),
        ({6: {"select_choices_or_calculations": "1, Male | 1, Female"}}, "code, label"),
        ({8: {"field_type": "dropdown", "select_choices_or_calculations": ""}}, "code, label"),
        ({1: {"field_name": "1st_name"}}, "1st_name"),
        ({1: {"field_name": "First_name"}}, "First_name"),
        ({1: {"field_name": "followup_complete"}}, "followup_complete"),
        ({13: {"form_name": "Follow-up"}, 14: {"form_name": "Follow-up"}}, "Follow-up"),
        ({3: {"text_validation_type_or_show_slider_number": "integr"}}, "age (integr)"),
        ({10: {"select_choices_or_calculations": ""}}, "bmi"),
    ],
)
def test_metadata_import_refuses_bad_dictionaries(
    classic: Handle, change: dict[int, dict[str, str]], message: str
) -> None:
    rows = [{**row, **change.get(i, {})} for i, row in enumerate(CLASSIC_ROWS)]
    with pytest.raises(RedcapError, match=re.escape(message)):
        classic.pycap().import_metadata(rows)
    assert classic.pycap().export_metadata() == CLASSIC_ROWS


def test_metadata_import_refuses_unknown_columns_and_empty_dictionaries(classic: Handle) -> None:
    reply = post(classic, content="metadata", format="json", data='[{"field_name": "x", "y": 1}]')
    assert reply.json() == {"error": "These columns are not data dictionary columns: y"}
    reply = post(classic, content="metadata", format="json", data="[]")
    assert reply.json() == {"error": "The data dictionary must contain at least one field"}


def test_metadata_import_only_in_development(sandbox: SandboxServer) -> None:
    production = seed_project(sandbox, "classic", production=True)
    reply = post(production, content="metadata", format="csv", data=CLASSIC_DICTIONARY)
    assert reply.status_code == 400
    assert reply.text.startswith("ERROR: The data dictionary cannot be imported because the ")
    assert "Draft Mode" in reply.text


def test_metadata_import_needs_design_and_import_rights(classic: Handle) -> None:
    designer = classic.add_user("no_design", design=0)
    reply = post(classic, token=designer, content="metadata", format="json", data="[]")
    assert (reply.status_code, reply.json()) == (
        403,
        {"error": "You do not have Project Setup/Design privileges"},
    )
    importer = classic.add_user("no_import", api_import=0)
    reply = post(classic, token=importer, content="metadata", format="csv", data="x")
    assert (reply.status_code, reply.text) == (
        403,
        "ERROR: You do not have API Import/Update privileges",
    )
    exporter = classic.add_user("no_export", api_export=0)
    with pytest.raises(RedcapError, match="You do not have API Export privileges"):
        classic.pycap(exporter).export_metadata()


# -- export field names, instruments, PyCap's derived attributes -------------------------------


def test_export_field_names_lists_export_columns(classic: Handle) -> None:
    names = classic.pycap().export_field_names()
    assert names[0] == {
        "original_field_name": "record_id",
        "choice_value": "",
        "export_field_name": "record_id",
    }
    assert [
        (n["original_field_name"], n["choice_value"], n["export_field_name"]) for n in names
    ] == [
        ("record_id", "", "record_id"),
        ("first_name", "", "first_name"),
        ("dob", "", "dob"),
        ("age", "", "age"),
        ("weight", "", "weight"),
        ("email", "", "email"),
        ("sex", "", "sex"),
        ("colors", "1", "colors___1"),
        ("colors", "2", "colors___2"),
        ("colors", "-99", "colors____99"),
        ("consent", "", "consent"),
        ("notes", "", "notes"),
        ("bmi", "", "bmi"),
        ("demographics_complete", "", "demographics_complete"),
        ("fav", "", "fav"),
        ("visit_date", "", "visit_date"),
        ("followup_complete", "", "followup_complete"),
    ]


def test_export_field_names_for_one_field(classic: Handle) -> None:
    project = classic.pycap()
    assert [n["export_field_name"] for n in project.export_field_names(field="colors")] == [
        "colors___1",
        "colors___2",
        "colors____99",
    ]
    assert project.export_field_names(field="followup_complete") == [
        {
            "original_field_name": "followup_complete",
            "choice_value": "",
            "export_field_name": "followup_complete",
        }
    ]
    frame = project.export_field_names(format_type="df")
    assert frame.index.name == "original_field_name"
    assert len(frame) == len(project.export_field_names())
    reply = post(classic, content="exportFieldNames", format="csv", field="nope")
    assert (reply.status_code, reply.text) == (
        400,
        "ERROR: The following values in the parameter \"field\" are not valid: 'nope'",
    )


def test_export_instruments(classic: Handle, longitudinal: Handle) -> None:
    assert classic.pycap().export_instruments() == [
        {"instrument_name": "demographics", "instrument_label": "Demographics"},
        {"instrument_name": "followup", "instrument_label": "Followup"},
    ]
    text = longitudinal.pycap().export_instruments(format_type="csv")
    assert text == (
        "instrument_name,instrument_label\nenrollment,Enrollment\nvitals,Vitals\n"
        "medications,Medications\n"
    )


def test_pycap_project_attributes(classic: Handle, longitudinal: Handle) -> None:
    project = classic.pycap()
    assert project.is_longitudinal is False
    assert project.def_field == "record_id"
    assert sorted(project.forms) == ["demographics", "followup"]
    assert project.field_names == [r["field_name"] for r in CLASSIC_ROWS]
    long = longitudinal.pycap()
    assert long.is_longitudinal is True
    assert sorted(long.forms) == ["enrollment", "medications", "vitals"]
    assert str(long.export_version()) == "15.2.1"
    assert long.redcap_version is not None and long.redcap_version.major == 15


# -- arms -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "what"),
    [("arm", "arms"), ("event", "events"), ("formEventMapping", "form/event mappings")],
)
def test_classic_projects_refuse_longitudinal_exports(
    classic: Handle, content: str, what: str
) -> None:
    message = f"You cannot export {what} for classic projects"
    reply = post(classic, content=content, format="csv")
    assert (reply.status_code, reply.text) == (400, f"ERROR: {message}")
    reply = post(classic, content=content, format="json")
    assert (reply.status_code, reply.json()) == (400, {"error": message})
    reply = post(classic, content=content, format="xml")
    assert reply.status_code == 400 and f"<error>{message}</error>" in reply.text


def test_classic_projects_refuse_design_imports(classic: Handle) -> None:
    project = classic.pycap()
    with pytest.raises(RedcapError, match="You cannot import arms for classic projects"):
        project.import_arms([{"arm_num": 1, "name": "Arm 1"}])
    with pytest.raises(RedcapError, match="You cannot import events for classic projects"):
        project.import_events([{"event_name": "E", "arm_num": 1}])
    with pytest.raises(RedcapError, match="You cannot delete events for classic projects"):
        project.delete_events(["e_arm_1"])


def test_export_arms(longitudinal: Handle) -> None:
    project = longitudinal.pycap()
    assert project.export_arms() == [{"arm_num": n, "name": name} for n, name in LONGITUDINAL_ARMS]
    assert project.export_arms(arms=["2"]) == [{"arm_num": 2, "name": "Drug B"}]
    assert project.export_arms(format_type="csv") == 'arm_num,name\n1,"Drug A"\n2,"Drug B"\n'
    reply = post(longitudinal, content="arm", format="json", arms="x")
    assert reply.json() == {
        "error": "The following values in the parameter \"arms\" are not valid: 'x'"
    }


def test_import_arms_adds_and_renames_and_hides_arms_without_events(longitudinal: Handle) -> None:
    project = longitudinal.pycap()
    assert project.import_arms([{"arm_num": 3, "name": "Drug C"}, {"arm_num": 1, "name": "A"}]) == 2
    assert project.export_arms() == [{"arm_num": 1, "name": "A"}, {"arm_num": 2, "name": "Drug B"}]
    assert project.import_events([{"event_name": "Start", "arm_num": "3"}]) == 1
    assert project.export_arms(arms=["3"]) == [{"arm_num": 3, "name": "Drug C"}]
    assert manage_log(longitudinal)[-2:] == [
        ("test_admin", "Manage/Design", "Import arms (API)"),
        ("test_admin", "Manage/Design", "Import events (API)"),
    ]


def test_import_arms_csv_and_bad_rows(longitudinal: Handle) -> None:
    project = longitudinal.pycap()
    assert project.import_arms("arm_num,name\n4,Four\n", import_format="csv") == 1
    reply = post(
        longitudinal,
        content="arm",
        action="import",
        format="json",
        data='[{"arm_num": "x", "name": "X"}, {"arm_num": 5}]',
    )
    assert reply.status_code == 400
    assert reply.json()["error"] == (
        "Row 1: arm_num 'x' is not a positive number\nRow 2: arm 5 has no name"
    )


def test_import_arms_override_wipes_arms_events_and_data(longitudinal: Handle) -> None:
    longitudinal.put("1", {"enroll_date": "2024-01-01"}, event="baseline_arm_1")
    project = longitudinal.pycap()
    assert project.import_arms([{"arm_num": 1, "name": "Only"}], override=1) == 1
    assert project.export_arms() == []
    assert project.export_events() == []
    assert project.export_instrument_event_mappings() == []
    assert stored(longitudinal) == ({}, [])


def test_delete_arms_removes_events_and_data(longitudinal: Handle) -> None:
    longitudinal.put("1", {"weight": "70"}, event="baseline_arm_1")
    longitudinal.put("1", {"weight": "71"}, event="baseline_arm_2")
    longitudinal.put("2", {"weight": "72"}, event="baseline_arm_2")
    project = longitudinal.pycap()
    assert project.delete_arms(["2"]) == 1
    assert project.export_arms() == [{"arm_num": 1, "name": "Drug A"}]
    assert {e["arm_num"] for e in project.export_events()} == {1}
    rows, records = stored(longitudinal)
    assert rows == {("1", "baseline_arm_1", "", 0): {"weight": "70"}}
    assert records == ["1"]
    reply = post(longitudinal, content="arm", action="delete", returnFormat="json", arms="7")
    assert (reply.status_code, reply.json()) == (
        400,
        {"error": "The following values in the parameter \"arms\" are not valid: '7'"},
    )


def test_deleting_design_only_in_development(sandbox: SandboxServer) -> None:
    production = seed_project(sandbox, "longitudinal", production=True)
    project = production.pycap()
    with pytest.raises(RedcapError, match="You cannot delete arms because the project is in"):
        project.delete_arms(["1"])
    with pytest.raises(RedcapError, match="You cannot delete events because the project is in"):
        project.delete_events(["baseline_arm_1"])
    assert len(project.export_events()) == len(LONGITUDINAL_EVENTS)


# -- events -----------------------------------------------------------------------------------


def test_export_events(longitudinal: Handle) -> None:
    events = longitudinal.pycap().export_events()
    with longitudinal.server.store.transaction() as conn:
        ids = {e.unique_event_name: e.event_id for e in longitudinal.model(conn).events}
    assert [list(e) for e in events] == [
        ["event_name", "arm_num", "unique_event_name", "custom_event_label", "event_id"]
    ] * len(LONGITUDINAL_EVENTS)
    assert [(e["arm_num"], e["event_name"]) for e in events] == LONGITUDINAL_EVENTS
    assert [e["unique_event_name"] for e in events] == [
        "baseline_arm_1",
        "visit_1_arm_1",
        "visit_2_arm_1",
        "baseline_arm_2",
    ]
    assert all(isinstance(e["event_id"], int) for e in events)
    assert {e["unique_event_name"]: e["event_id"] for e in events} == ids
    second = longitudinal.pycap().export_events(arms=["2"])
    assert [e["unique_event_name"] for e in second] == ["baseline_arm_2"]
    text = longitudinal.pycap().export_events(format_type="csv")
    first_id = ids["baseline_arm_1"]
    assert text.splitlines()[:2] == [
        "event_name,arm_num,unique_event_name,custom_event_label,event_id",
        f"Baseline,1,baseline_arm_1,,{first_id}",
    ]


def test_reimporting_exported_events_updates_them(longitudinal: Handle) -> None:
    project = longitudinal.pycap()
    before = project.export_events()
    assert project.import_events(before) == len(before)
    assert project.export_events() == before
    csv_text = project.export_events(format_type="csv")
    assert project.import_events(csv_text, import_format="csv") == len(before)
    renamed = [{**before[0], "custom_event_label": "[enroll_date]", "event_id": 0}]
    assert project.import_events(renamed) == 1
    after = project.export_events()
    assert after[0] == {**before[0], "custom_event_label": "[enroll_date]"}
    assert after[1:] == before[1:]


def test_import_events_creates_events_and_duplicate_names_get_a_letter(
    longitudinal: Handle,
) -> None:
    project = longitudinal.pycap()
    assert project.import_events([{"event_name": "Visit 1", "arm_num": "1"}]) == 1
    uniques = [e["unique_event_name"] for e in project.export_events(arms=["1"])]
    assert uniques == ["baseline_arm_1", "visit_1_arm_1", "visit_2_arm_1", "visit_1_arm_1b"]
    new = {"event_name": "Deadline to opt out of study", "arm_num": 2, "unique_event_name": "x"}
    assert project.import_events([new]) == 1
    assert project.export_events(arms=["2"])[-1]["unique_event_name"] == "deadline_to_opt_ou_arm_2"


def test_import_events_refuses_bad_rows(longitudinal: Handle) -> None:
    reply = post(
        longitudinal,
        content="event",
        action="import",
        format="json",
        data='[{"event_name": "X", "arm_num": 9}, {"arm_num": 1}, '
        '{"event_name": "Y", "arm_num": 1, "day_offset": "soon"}]',
    )
    assert reply.status_code == 400
    assert reply.json()["error"].split("\n") == [
        "Row 1: arm_num '9' is not an arm of the project",
        "Row 2: event_name is missing",
        "Row 3: day_offset, offset_min and offset_max must be numbers",
    ]


def test_import_events_override_replaces_every_event(longitudinal: Handle) -> None:
    longitudinal.put("1", {"weight": "70"}, event="visit_2_arm_1", instance=1)
    project = longitudinal.pycap()
    assert project.import_events([{"event_name": "Only", "arm_num": 1}], override=1) == 1
    assert [e["unique_event_name"] for e in project.export_events()] == ["only_arm_1"]
    assert project.export_arms() == [{"arm_num": 1, "name": "Drug A"}]
    assert stored(longitudinal) == ({}, [])


def test_events_show_offsets_when_scheduling_is_enabled(longitudinal: Handle) -> None:
    project = longitudinal.pycap()
    assert project.import_events([{"event_name": "Week 4", "arm_num": 1, "day_offset": 28}]) == 1
    reply = post(
        longitudinal,
        content="project_settings",
        format="json",
        data='{"scheduling_enabled": 1}',
    )
    assert reply.json() == 1
    last = project.export_events()[3]
    assert list(last) == [
        "event_name",
        "arm_num",
        "day_offset",
        "offset_min",
        "offset_max",
        "unique_event_name",
        "custom_event_label",
        "event_id",
    ]
    assert (last["unique_event_name"], last["day_offset"], last["offset_min"]) == (
        "week_4_arm_1",
        28,
        "",
    )


def test_delete_events(longitudinal: Handle) -> None:
    longitudinal.put("1", {"weight": "70"}, event="baseline_arm_1")
    longitudinal.put("1", {"weight": "80"}, event="visit_2_arm_1", instance=1)
    project = longitudinal.pycap()
    assert project.delete_events(["visit_2_arm_1"]) == 1
    assert "visit_2_arm_1" not in [e["unique_event_name"] for e in project.export_events()]
    assert "visit_2_arm_1" not in [
        m["unique_event_name"] for m in project.export_instrument_event_mappings()
    ]
    assert stored(longitudinal)[0] == {("1", "baseline_arm_1", "", 0): {"weight": "70"}}
    assert manage_log(longitudinal)[-1] == ("test_admin", "Manage/Design", "Delete events (API)")
    with pytest.raises(RedcapError) as refused:
        project.delete_events(["visit_2_arm_1", "nope_arm_1"])
    assert refused.value.args[0] == {
        "error": 'The following values in the parameter "events" are not valid: '
        "'visit_2_arm_1', 'nope_arm_1'"
    }
    reply = post(longitudinal, content="event", action="delete", returnFormat="csv")
    assert (reply.status_code, reply.text) == (400, 'ERROR: The parameter "events" is missing')


# -- instrument-event mapping -----------------------------------------------------------------


def test_export_mapping(longitudinal: Handle) -> None:
    project = longitudinal.pycap()
    assert project.export_instrument_event_mappings() == [
        {"arm_num": 1, "unique_event_name": "baseline_arm_1", "form": "enrollment"},
        {"arm_num": 1, "unique_event_name": "baseline_arm_1", "form": "vitals"},
        {"arm_num": 1, "unique_event_name": "visit_1_arm_1", "form": "vitals"},
        {"arm_num": 1, "unique_event_name": "visit_1_arm_1", "form": "medications"},
        {"arm_num": 1, "unique_event_name": "visit_2_arm_1", "form": "vitals"},
        {"arm_num": 2, "unique_event_name": "baseline_arm_2", "form": "enrollment"},
        {"arm_num": 2, "unique_event_name": "baseline_arm_2", "form": "vitals"},
    ]
    assert project.export_instrument_event_mappings(arms=["2"]) == [
        {"arm_num": 2, "unique_event_name": "baseline_arm_2", "form": form}
        for form in LONGITUDINAL_MAPPING["baseline_arm_2"]
    ]
    frame = project.export_instrument_event_mappings(format_type="df")
    assert list(frame.columns) == ["arm_num", "unique_event_name", "form"]


def test_import_mapping_replaces_every_mapping(longitudinal: Handle) -> None:
    project = longitudinal.pycap()
    one = [{"arm_num": "1", "unique_event_name": "visit_1_arm_1", "form": "enrollment"}]
    assert project.import_instrument_event_mappings(one) == 1
    assert project.export_instrument_event_mappings() == [{**one[0], "arm_num": 1}]
    frame = pd.DataFrame(
        [
            {"arm_num": 2, "unique_event_name": "baseline_arm_2", "form": f}
            for f in ("vitals", "enrollment")
        ]
    )
    assert project.import_instrument_event_mappings(frame, import_format="df") == 2
    assert [m["form"] for m in project.export_instrument_event_mappings()] == [
        "enrollment",
        "vitals",
    ]


def test_import_mapping_refuses_bad_rows(longitudinal: Handle) -> None:
    bad = [
        {"unique_event_name": "nope_arm_1", "form": "vitals"},
        {"unique_event_name": "baseline_arm_1", "form": "nope"},
        {"arm_num": 2, "unique_event_name": "baseline_arm_1", "form": "vitals"},
    ]
    with pytest.raises(RedcapError) as refused:
        longitudinal.pycap().import_instrument_event_mappings(bad)
    assert refused.value.args[0]["error"].split("\n") == [
        "Row 1: 'nope_arm_1' is not a unique event name",
        "Row 2: 'nope' is not an instrument of the project",
        "Row 3: event 'baseline_arm_1' is not in arm 2",
    ]
    assert len(longitudinal.pycap().export_instrument_event_mappings()) == sum(
        len(forms) for forms in LONGITUDINAL_MAPPING.values()
    )


# -- repeating instruments and events ---------------------------------------------------------


def test_export_repeating_longitudinal(longitudinal: Handle) -> None:
    project = longitudinal.pycap()
    assert project.export_repeating_instruments_events() == [
        {"event_name": event, "form_name": form, "custom_form_label": label}
        for event, form, label in LONGITUDINAL_REPEATING
    ]
    assert project.export_repeating_instruments_events(format_type="csv") == (
        "event_name,form_name,custom_form_label\nvisit_1_arm_1,medications,[med_name]\n"
        "visit_2_arm_1,,\n"
    )


@pytest.mark.parametrize("fmt", ["json", "csv", "xml", "df"])
def test_repeating_round_trip(longitudinal: Handle, fmt: str) -> None:
    project = longitudinal.pycap()
    before = project.export_repeating_instruments_events()
    exported = project.export_repeating_instruments_events(format_type=fmt)
    if fmt == "df":
        exported = exported.fillna("")
    assert project.import_repeating_instruments_events(exported, import_format=fmt) == len(before)
    assert project.export_repeating_instruments_events() == before


def test_repeating_in_a_classic_project(classic: Handle) -> None:
    project = classic.pycap()
    assert project.export_repeating_instruments_events() == []
    assert project.export_repeating_instruments_events(format_type="csv") == (
        "form_name,custom_form_label\n"
    )
    assert project.export_project_info()["has_repeating_instruments_or_events"] == 0
    rows = [{"form_name": "followup", "custom_form_label": "[visit_date]"}]
    assert project.import_repeating_instruments_events(rows) == 1
    assert project.export_repeating_instruments_events() == rows
    assert project.export_project_info()["has_repeating_instruments_or_events"] == 1
    assert project.import_repeating_instruments_events([]) == 0
    assert project.export_repeating_instruments_events() == []


def test_import_repeating_refuses_bad_rows(longitudinal: Handle, classic: Handle) -> None:
    bad = [
        {"event_name": "nope_arm_1", "form_name": "vitals", "custom_form_label": ""},
        {"event_name": "visit_1_arm_1", "form_name": "nope", "custom_form_label": ""},
        {"event_name": "visit_2_arm_1", "form_name": "vitals", "custom_form_label": ""},
        {"event_name": "visit_2_arm_1", "form_name": "", "custom_form_label": ""},
    ]
    with pytest.raises(RedcapError) as refused:
        longitudinal.pycap().import_repeating_instruments_events(bad)
    assert refused.value.args[0]["error"].split("\n") == [
        "Row 1: 'nope_arm_1' is not a unique event name",
        "Row 2: 'nope' is not an instrument of the project",
        "'vitals' cannot repeat on its own in 'visit_2_arm_1', because the whole event repeats",
    ]
    with pytest.raises(RedcapError, match="Row 1: '' is not an instrument of the project"):
        classic.pycap().import_repeating_instruments_events([{"form_name": ""}])


# -- project info, settings and creation ------------------------------------------------------

INFO_KEYS = [
    "project_id",
    "project_title",
    "creation_time",
    "production_time",
    "in_production",
    "project_language",
    "purpose",
    "purpose_other",
    "project_notes",
    "custom_record_label",
    "secondary_unique_field",
    "is_longitudinal",
    "has_repeating_instruments_or_events",
    "surveys_enabled",
    "scheduling_enabled",
    "record_autonumbering_enabled",
    "randomization_enabled",
    "ddp_enabled",
    "project_irb_number",
    "project_grant_number",
    "project_pi_firstname",
    "project_pi_lastname",
    "project_pi_email",
    "display_today_now_button",
    "missing_data_codes",
    "external_modules",
    "bypass_branching_erase_field_prompt",
]


def test_export_project_info(classic: Handle, longitudinal: Handle) -> None:
    info = classic.pycap().export_project_info()
    assert list(info) == INFO_KEYS
    assert info["project_id"] == classic.project_id
    assert (info["is_longitudinal"], info["purpose"], info["in_production"]) == (0, 0, 0)
    assert info["project_title"] == "Test project"
    assert info["project_language"] == "English"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", info["creation_time"])
    assert info["bypass_branching_erase_field_prompt"] == 0
    long = longitudinal.pycap().export_project_info()
    assert (long["is_longitudinal"], long["has_repeating_instruments_or_events"]) == (1, 1)
    text = longitudinal.pycap().export_project_info(format_type="csv")
    header, values = list(csv.reader(io.StringIO(text)))
    assert header == INFO_KEYS and values[0] == str(longitudinal.project_id)
    frame = longitudinal.pycap().export_project_info(format_type="df")
    assert frame.loc[0, "project_title"] == "Test project"


def test_import_project_settings(classic: Handle) -> None:
    exported = classic.pycap().export_project_info()
    changed = {**exported, "project_title": "Renamed", "project_id": 999, "purpose": 2}
    reply = post(classic, content="project_settings", format="json", data=json.dumps(changed))
    # REDCap's documented settable attributes: every exported key but these read-only ones.
    read_only = {
        "project_id",
        "creation_time",
        "production_time",
        "in_production",
        "has_repeating_instruments_or_events",
        "ddp_enabled",
        "missing_data_codes",
        "external_modules",
    }
    assert (reply.status_code, reply.json()) == (200, len(INFO_KEYS) - len(read_only))
    info = classic.pycap().export_project_info()
    assert (info["project_title"], info["project_id"], info["purpose"]) == (
        "Renamed",
        classic.project_id,
        2,
    )
    for data, message in [
        ('{"purpose": 7}', "The value of the project attribute \"purpose\" is not valid: '7'"),
        ('{"colour": "red"}', "The following project attributes are not valid: colour"),
        ('{"secondary_unique_field": "nope"}', '"secondary_unique_field" is not valid'),
    ]:
        reply = post(classic, content="project_settings", format="json", data=data)
        assert reply.status_code == 400 and message in reply.json()["error"]


def create(server: SandboxServer, data: str, fmt: str = "xml", **extra: str) -> requests.Response:
    params = {"token": server.super_token, "content": "project", "format": fmt, "data": data}
    return requests.post(server.url, data={**params, **extra}, timeout=30)


def handle_for(server: SandboxServer, token: str) -> Handle:
    with server.store.transaction() as conn:
        row = conn.execute("SELECT project_id FROM user WHERE token = ?", (token,)).fetchone()
    return Handle(server, row[0], token)


def test_create_classic_project(sandbox: SandboxServer) -> None:
    data = "<item><project_title>Created</project_title><purpose>0</purpose></item>"
    reply = create(sandbox, data)
    assert reply.status_code == 200 and re.fullmatch(r"[0-9A-F]{32}", reply.text)
    project = handle_for(sandbox, reply.text).pycap()
    assert [
        (m["field_name"], m["form_name"], m["field_type"]) for m in project.export_metadata()
    ] == [("record_id", "my_first_instrument", "text")]
    assert project.export_instruments() == [
        {"instrument_name": "my_first_instrument", "instrument_label": "My First Instrument"}
    ]
    assert project.is_longitudinal is False
    info = project.export_project_info()
    assert (info["project_title"], info["purpose"], info["is_longitudinal"]) == ("Created", 0, 0)
    entries = manage_log(handle_for(sandbox, reply.text))
    assert entries[-1][:2] == ("site_admin", "Manage/Design ")
    assert entries[-1][2].startswith("Create project")
    with sandbox.store.transaction() as conn:
        rights = json.loads(
            conn.execute("SELECT rights FROM user WHERE token = ?", (reply.text,)).fetchone()[0]
        )
    assert rights["design"] == 1 and rights["email_logging"] == 0
    assert rights["forms"] == {"my_first_instrument": 1}


def test_create_longitudinal_project_from_json(sandbox: SandboxServer) -> None:
    data = json.dumps(
        [
            {
                "project_title": "Long",
                "purpose": 1,
                "purpose_other": "Testing",
                "is_longitudinal": 1,
                "record_autonumbering_enabled": 1,
            }
        ]
    )
    token = create(sandbox, data, "json").text
    project = handle_for(sandbox, token).pycap()
    assert project.is_longitudinal is True
    assert project.export_arms() == [{"arm_num": 1, "name": "Arm 1"}]
    assert [e["unique_event_name"] for e in project.export_events()] == ["event_1_arm_1"]
    assert project.export_instrument_event_mappings() == [
        {"arm_num": 1, "unique_event_name": "event_1_arm_1", "form": "my_first_instrument"}
    ]
    info = project.export_project_info()
    assert (info["purpose"], info["purpose_other"], info["record_autonumbering_enabled"]) == (
        1,
        "Testing",
        1,
    )


def test_create_project_refusals(sandbox: SandboxServer) -> None:
    data = "<item><project_title>X</project_title><purpose>0</purpose></item>"
    reply = create(sandbox, data, token="0" * 64)
    assert reply.status_code == 403 and f"<error>{NO_PERMISSION}</error>" in reply.text
    reply = create(sandbox, data, token="")
    assert reply.status_code == 403
    for bad, message in [
        ("project_title,purpose\n,0\n", 'The project attribute "project_title" is missing'),
        (
            "project_title,purpose\nX,9\n",
            "The value of the project attribute \"purpose\" is not valid: '9'",
        ),
        (
            "project_title,purpose\nX,1\n",
            'The project attribute "purpose_other" is required when purpose is 1',
        ),
        (
            "project_title,purpose,owner\nX,0,me\n",
            "The following project attributes are not valid: owner",
        ),
        (
            "project_title,purpose\nX,0\nY,0\n",
            "The data must hold the attributes of exactly one project",
        ),
    ]:
        reply = create(sandbox, bad, "csv")
        assert (reply.status_code, reply.text) == (400, f"ERROR: {message}")


def test_create_project_from_odm(sandbox: SandboxServer) -> None:
    xml = (ODM_FIXTURE / "classic_project.xml").read_text(encoding="utf-8")
    data = "<item><project_title>From ODM</project_title><purpose>0</purpose></item>"
    reply = create(sandbox, data, odm=xml)
    assert reply.status_code == 200, reply.text
    project = handle_for(sandbox, reply.text).pycap()
    metadata = project.export_metadata()
    assert len(metadata) == 16
    assert metadata[0]["field_name"] == "participant_id"
    assert {m["form_name"] for m in metadata} == {"screening"}
    assert len(project.export_field_names()) == 17  # 16 fields and screening_complete
