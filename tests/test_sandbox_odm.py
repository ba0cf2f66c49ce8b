"""CDISC ODM project XML on the local REDCap-compatible server: projects created from project
XML in REDCap's export format (the three files in tests/fixtures/redcap-odm, described in the
README there), and `content=project_xml` exports that load back into an identical project."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import astuple
from pathlib import Path
from typing import Any

import pytest
import requests
from sandbox_support import Handle, seed_project

from hekta_redcap.devtools.sandbox import odm
from hekta_redcap.devtools.sandbox.models import (
    CREATOR_RIGHTS,
    ProjectModel,
    add_user,
    create_project,
    creator_rights,
    new_token,
)
from hekta_redcap.devtools.sandbox.server import SandboxServer
from hekta_redcap.devtools.sandbox.wire import ApiError

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "redcap-odm"
OWNER = "odm_owner"
CONSENT_PDF = b"%PDF-1.4\n% Hekta consent, participant 1, signed 2024-03-04\n%%EOF\n"
CREATE_DATA = "<item><project_title>T</project_title><purpose>0</purpose></item>"


def fixture(name: str) -> str:
    return (FIXTURES / f"{name}.xml").read_text(encoding="utf-8")


def ingest(sandbox: SandboxServer, xml: str, title: str = "T") -> Handle:
    """A project made as the brief for project creation has it: the row, its owner (who has no
    forms yet), then the XML."""
    token = new_token()
    with sandbox.store.transaction() as conn:
        model = create_project(conn, {"project_title": title})
        add_user(conn, model.project_id, OWNER, creator_rights([]), token)
        odm.ingest(model, xml, OWNER)
    return Handle(sandbox, model.project_id, token)


def create(sandbox: SandboxServer, xml: str) -> requests.Response:
    data = {"token": sandbox.super_token, "content": "project", "format": "xml"}
    return requests.post(sandbox.url, data={**data, "data": CREATE_DATA, "odm": xml}, timeout=60)


def created(sandbox: SandboxServer, xml: str) -> Handle:
    reply = create(sandbox, xml)
    assert reply.status_code == 200, reply.text
    token = reply.text[-32:]  # as PyCap's own tests take it
    with sandbox.store.transaction() as conn:
        (project_id,) = conn.execute(
            "SELECT project_id FROM user WHERE token = ?", (token,)
        ).fetchone()
    return Handle(sandbox, project_id, token)


def export_xml(handle: Handle, token: str | None = None, **params: str) -> requests.Response:
    data = {"token": token or handle.token, "content": "project_xml", "format": "xml", **params}
    return requests.post(handle.url, data=data, timeout=60)


@contextmanager
def model_of(handle: Handle) -> Iterator[ProjectModel]:
    with handle.server.store.transaction() as conn:
        yield handle.model(conn)


def query(model: ProjectModel, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in model.conn.execute(sql, (model.project_id,))]


def documents(model: ProjectModel) -> dict[str, tuple[str, str, bytes]]:
    rows = query(model, "SELECT doc_id, name, mime, content FROM document WHERE project_id = ?")
    return {str(doc_id): (name, mime, bytes(content)) for doc_id, name, mime, content in rows}


def snapshot(handle: Handle) -> dict[str, Any]:
    """Everything a project XML carries, with ids replaced by names (event ids by unique event
    names, doc ids by the documents, DAG ids by unique group names)."""
    with model_of(handle) as m:
        events = {e.event_id: e.unique_event_name for e in m.events}
        docs = documents(m)
        files = {r["field_name"] for r in m.metadata if r["field_type"] == "file"}
        rows = [
            (
                row.record,
                events.get(row.event_id, ""),
                row.repeat_instrument,
                row.instance,
                {k: docs[v] if k in files else v for k, v in row.values.items()},
            )
            for row in m.data_rows()
        ]
        return {
            "info": {k: v for k, v in m.info.items() if k not in ("project_id", "creation_time")},
            "metadata": m.metadata,
            "form_labels": m.form_labels,
            "arms": m.arms,
            "events": [astuple(e)[1:] for e in m.events],  # all but the event id
            "mapping": {events[k]: v for k, v in m.mapping.items()},
            "repeating": {(events.get(e, ""), f): label for (e, f), label in m.repeating.items()},
            "rows": rows,
            "record_dags": query(
                m,
                "SELECT record, (SELECT unique_name FROM dag WHERE dag.dag_id = record.dag_id) "
                "FROM record WHERE project_id = ? ORDER BY record",
            ),
            "dags": query(m, "SELECT name, unique_name FROM dag WHERE project_id = ? ORDER BY 2"),
            "roles": [
                (unique, label, json.loads(rights))
                for unique, label, rights in query(
                    m, "SELECT unique_role_name, role_label, rights FROM role WHERE project_id = ?"
                )
            ],
            "surveys": {
                form: json.loads(settings)
                for form, settings in query(
                    m, "SELECT form_name, settings FROM survey WHERE project_id = ?"
                )
            },
            "reports": [
                json.loads(d)
                for (d,) in query(m, "SELECT definition FROM report WHERE project_id = ?")
            ],
        }


def rights_of(model: ProjectModel, username: str) -> dict[str, Any]:
    (rights,) = model.conn.execute(
        "SELECT rights FROM user WHERE project_id = ? AND username = ?",
        (model.project_id, username),
    ).fetchone()
    return json.loads(rights)


# -- ingest ---------------------------------------------------------------------------------


def test_classic_project_xml_gives_fields_data_dags_and_role(sandbox: SandboxServer) -> None:
    handle = ingest(sandbox, fixture("classic_project"))
    with model_of(handle) as m:
        assert [r["field_name"] for r in m.metadata] == (
            "participant_id screen_date initials home_address phone email birth_date age_years "
            "sex smoking referral height_cm weight_kg bmi eligible screening_notes"
        ).split()
        assert m.record_id_field == "participant_id"
        assert m.form_labels == {"screening": "Screening Visit"}
        assert not m.longitudinal and m.events == [] and m.repeating == {}
        f = m.fields
        assert (f["home_address"]["field_type"], f["referral"]["field_type"]) == (
            "notes",
            "dropdown",
        )
        assert f["referral"]["select_choices_or_calculations"] == (
            "1, General practitioner | 2, Outpatient clinic | 3, Emergency department | "
            "4, Self-referral | 5, Other"
        )
        assert f["sex"]["select_choices_or_calculations"] == "1, Female | 2, Male"
        assert f["smoking"]["custom_alignment"] == "LH"
        assert (f["eligible"]["field_type"], f["eligible"]["select_choices_or_calculations"]) == (
            "yesno",
            "",
        )
        limits = ("text_validation_type_or_show_slider_number", "text_validation_min")
        assert [f["weight_kg"][k] for k in (*limits, "text_validation_max")] == [
            "integer",
            "30",
            "250",
        ]
        assert [f["height_cm"][k] for k in (*limits, "text_validation_max")] == [
            "number",
            "120",
            "220",
        ]
        phone = f["phone"]
        assert (phone["field_note"], phone["identifier"], phone[limits[0]]) == (
            "Include the country code (+47)",
            "y",
            "phone",
        )
        assert f["initials"]["section_header"] == "Participant details"
        screen_date = f["screen_date"]
        assert (screen_date["required_field"], screen_date["field_annotation"]) == ("y", "@TODAY")
        assert f["age_years"]["field_type"] == "calc"
        assert (
            f["age_years"]["select_choices_or_calculations"]
            == "rounddown(datediff([birth_date],[screen_date],'y'))"
        )

        rows = list(m.data_rows())
        assert [(r.record, r.event_id, r.repeat_instrument, r.instance) for r in rows] == [
            ("1001", 0, "", 0),
            ("1002", 0, "", 0),
            ("1003", 0, "", 0),
        ]
        assert rows[0].values["home_address"] == "Strandgata 5, 9008 Tromsø"
        assert rows[1].values["screening_notes"] == (
            'Declined: lives > 100 km from the site & said "not now".'
        )
        assert rows[2].values == {
            "screen_date": "2024-02-09",
            "initials": "TS",
            "referral": "UNK",  # a missing-data code
            "screening_complete": "0",
        }
        assert not {"age_years", "bmi"} & {k for r in rows for k in r.values}  # calcs not kept
        assert sum(1 + len(r.values) for r in rows) == 34  # REDCap's EAV count, with record ids

        assert query(
            m, "SELECT name, unique_name FROM dag WHERE project_id = ? ORDER BY dag_id"
        ) == [
            ("Site Oslo", "site_oslo"),
            ("Site Bergen", "site_bergen"),
        ]
        dags = query(
            m,
            "SELECT record, unique_name FROM record LEFT JOIN dag USING (dag_id) "
            "WHERE record.project_id = ? ORDER BY record",
        )
        assert dags == [("1001", None), ("1002", "site_bergen"), ("1003", "site_oslo")]
        [(unique, label, rights)] = query(
            m, "SELECT unique_role_name, role_label, rights FROM role WHERE project_id = ?"
        )
        rights = json.loads(rights)
        assert (unique, label) == ("U-7HK2QW4LMP", "Research nurse")
        assert set(rights) == {*CREATOR_RIGHTS, "forms", "forms_export"}
        assert rights["forms"] == {"screening": 1}
        assert rights["forms_export"] == {"screening": 2}  # REDCap 11's data_export_tool
        granted = ("stats_and_charts", "logging", "data_import_tool", "mobile_app", "record_create")
        assert [rights[k] for k in granted] == [1, 1, 1, 1, 1]
        refused = ("design", "api_export", "record_delete", "manage_survey_participants", "alerts")
        assert [rights[k] for k in refused] == [0, 0, 0, 0, 0]  # alerts: not in REDCap 11
        info = m.info
        assert info["project_title"] == "T"  # the creation call names the project
        assert (info["purpose"], info["record_autonumbering_enabled"], info["surveys_enabled"]) == (
            0,
            0,
            0,
        )
        assert info["project_notes"] == (
            "Screening log for the two pilot sites; one row per person screened."
        )
        assert info["missing_data_codes"] == "UNK, Unknown | NASK, Not asked"
        assert rights_of(m, OWNER)["forms"] == {"screening": 1}


def test_longitudinal_project_xml_gives_arms_events_mapping_repeating_and_survey(
    sandbox: SandboxServer,
) -> None:
    xml = fixture("longitudinal_project")
    handle = ingest(sandbox, xml, title="")
    with model_of(handle) as m:
        info = m.info
        assert info["project_title"] == "Hekta Dose Titration Study"  # StudyName when none given
        assert (info["is_longitudinal"], info["surveys_enabled"]) == (1, 1)
        assert info["custom_record_label"] == "[initials]"
        assert info["bypass_branching_erase_field_prompt"] == 1  # PreventBranchingEraseValues
        assert m.arms == [(1, "Standard titration"), (2, "Rapid titration")]
        unique = re.findall(r'<StudyEventDef [^>]*redcap:UniqueEventName="([^"]+)"', xml)
        assert len(unique) == 12
        assert [e.unique_event_name for e in m.events] == unique
        assert sum(len(forms) for forms in m.mapping.values()) == 25
        assert m.forms == [
            "enrolment",
            "contact_details",
            "vital_signs",
            "lab_results",
            "symptom_diary",
            "adverse_event",
            "study_completion",
        ]
        assert m.form_labels["contact_details"] == "Contact details"
        baseline, unscheduled = m.event("baseline_arm_1"), m.event("unscheduled_visit_arm_1")
        assert baseline is not None and unscheduled is not None
        assert m.repeating == {
            (unscheduled.event_id, ""): "",
            (baseline.event_id, "vital_signs"): "[vs_time]",
        }
        week_2 = m.event("week_2_arm_1")
        assert week_2 is not None
        assert (week_2.event_name, week_2.day_offset, week_2.offset_min, week_2.offset_max) == (
            "Week 2",
            21,
            2,
            3,
        )
        call = m.event("telephone_follow_u_arm_2")  # the name cut to 18 characters
        assert call is not None
        assert (call.event_name, call.custom_event_label, call.arm_num) == (
            "Telephone follow-up call",
            "Call on [diary_date]",
            2,
        )
        f = m.fields
        walk = f["routine_walk"]
        assert walk["field_type"] == "checkbox"
        assert walk["select_choices_or_calculations"] == (
            "1, Mon | 2, Tue | 3, Wed | 4, Thu | 5, Fri | 6, Sat | 7, Sun"
        )
        assert walk["section_header"] == "On which days of a usual week do you do the following?"
        matrix = [f[k]["matrix_group_name"] for k in ("routine_walk", "routine_alcohol")]
        assert matrix == ["weekly_routine", "weekly_routine"]
        assert "routine_walk___1" not in f  # one field per checkbox, not one per option
        assert f["comorbid"]["select_choices_or_calculations"] == (
            "1, Hypertension | 2, Diabetes | 3, Heart failure | 99, Other"
        )
        slider = f["mood_today"]
        assert (slider["field_type"], slider["select_choices_or_calculations"]) == (
            "slider",
            "Very low | Neutral | Very good",
        )
        assert f["pregnant"]["branching_logic"] == '[sex] = "1"'
        assert f["comorbid_other"]["branching_logic"] == "[comorbid(99)] = '1'"
        assert f["sbp"]["field_note"] == "Seated, after 5 minutes' rest"
        validation = "text_validation_type_or_show_slider_number"
        assert [f[k][validation] for k in ("vs_time", "lab_date", "ae_start", "potassium")] == [
            "time",
            "date_dmy",
            "datetime_ymd",
            "number_1dp",
        ]
        assert (f["creatinine"]["text_validation_min"], f["creatinine"]["text_validation_max"]) == (
            "20",
            "",
        )
        assert [f[k]["field_type"] for k in ("consent_form", "consent_info", "sms_ok")] == [
            "file",
            "descriptive",
            "truefalse",
        ]
        assert (f["vs_time"]["field_annotation"], f["enrol_date"]["required_field"]) == (
            "@NOW",
            "y",
        )
        [(form, settings)] = query(m, "SELECT form_name, settings FROM survey WHERE project_id = ?")
        assert form == "contact_details"
        settings = json.loads(settings)
        assert (settings["title"], settings["save_and_return"]) == ("Contact details", "1")
        assert (
            settings["instructions"] == "<p>Please check your phone number and e-mail address.</p>"
        )
        [(definition,)] = query(m, "SELECT definition FROM report WHERE project_id = ?")
        assert json.loads(definition) == {
            "title": "Raised blood pressure at week 6",
            "fields": ["study_no", "sbp", "dbp"],
            "filter_logic": "[sbp] > 140",
            "events": ["week_6_arm_1"],
        }

        rows = list(m.data_rows())
        assert m.record_ids() == ["1", "2", "3"]
        repeats = [r for r in rows if r.repeat_instrument]
        assert [(r.record, r.event_id, r.repeat_instrument, r.instance) for r in repeats] == [
            ("1", baseline.event_id, "vital_signs", 1),
            ("1", baseline.event_id, "vital_signs", 2),
        ]
        assert repeats[0].values == {
            "vs_time": "08:40",
            "sbp": "148",
            "dbp": "92",
            "pulse": "71",
            "weight_kg": "82.4",
            "vital_signs_complete": "2",
        }
        visits = [r for r in rows if r.event_id == unscheduled.event_id]
        assert [(r.record, r.repeat_instrument, r.instance) for r in visits] == [
            ("1", "", 1),
            ("1", "", 2),
        ]
        assert visits[0].values == {  # both forms of the event in one instance
            "vs_time": "07:55",
            "sbp": "118",
            "dbp": "70",
            "pulse": "88",
            "vital_signs_complete": "2",
            "ae_term": "Dizziness on standing",
            "ae_start": "2024-03-20 07:30",
            "ae_serious": "0",
            "ae_grade": "2",
            "adverse_event_complete": "2",
        }
        assert visits[1].values["ae_term"] == "Fall at home"
        baseline_2 = m.event("baseline_arm_2")
        assert baseline_2 is not None
        [start_2] = [r for r in rows if r.record == "2" and r.event_id == baseline_2.event_id]
        assert start_2.key == ("2", baseline_2.event_id, "", 0)  # vital_signs repeats in arm 1 only
        assert (start_2.values["weight_kg"], start_2.values["potassium"]) == ("97.0", "4.6")
        checked = {(r.record, k) for r in rows for k in r.values if "___" in k}
        assert checked == {  # only checked options are kept
            ("1", "routine_walk___1"),
            ("1", "routine_walk___3"),
            ("1", "routine_walk___5"),
            ("1", "routine_alcohol___6"),
            ("1", "comorbid___1"),
            ("2", "routine_walk___6"),
            ("2", "routine_walk___7"),
            ("2", "comorbid___2"),
            ("2", "comorbid___99"),
        }
        kept = {k for r in rows for k in r.values}
        assert not {"egfr", "contact_details_timestamp"} & kept  # calc, survey pseudo-field
        [screening_1] = [r for r in rows if r.record == "1" and r.event_id == m.events[0].event_id]
        assert documents(m)[screening_1.values["consent_form"]] == (
            "consent_0001.pdf",
            "application/pdf",
            CONSENT_PDF,
        )


def test_doctest_project_xml_gives_repeating_event_file_report_and_role(
    sandbox: SandboxServer,
) -> None:
    handle = ingest(sandbox, fixture("doctest_project"))
    with model_of(handle) as m:
        first, second = m.events
        assert (first.unique_event_name, second.unique_event_name) == (
            "event_1_arm_1",
            "event_2_arm_1",
        )
        assert m.repeats_event(first.event_id) and not m.repeats_event(second.event_id)
        assert m.mapping == {first.event_id: ["form_1"], second.event_id: []}
        assert m.autonumbering
        assert m.fields["checkbox_field"]["select_choices_or_calculations"] == "1, SMS | 2, E-mail"
        rows = {r.record: r for r in m.data_rows()}
        assert [r.key for r in rows.values()] == [(rec, first.event_id, "", 1) for rec in "123"]
        assert rows["1"].values["checkbox_field___2"] == "1"
        assert "checkbox_field___1" not in rows["1"].values
        assert rows["3"].values == {
            "field_1": "1",
            "checkbox_field___1": "1",
            "form_1_complete": "1",
        }
        assert documents(m)[rows["1"].values["upload_field"]] == (
            "test_upload.txt",
            "text/plain",
            b"test upload\n",
        )
        dag = "SELECT dag_id FROM record WHERE project_id = ? AND record = '1'"
        assert query(m, dag) == query(m, "SELECT dag_id FROM dag WHERE project_id = ?")
        [(definition,)] = query(m, "SELECT definition FROM report WHERE project_id = ?")
        assert json.loads(definition) == {
            "title": "Eligible, reminded by e-mail",
            "fields": ["record_id", "field_1", "checkbox_field"],
            "filter_logic": "[field_1] = '1' and [checkbox_field(2)] = '1'",
            "events": ["event_1_arm_1"],
        }
        [(label, rights)] = query(m, "SELECT role_label, rights FROM role WHERE project_id = ?")
        assert label == "Test role"
        assert json.loads(rights)["forms"] == {"form_1": 2}
        assert json.loads(rights)["forms_export"] == {"form_1": 0}


def test_ingest_refuses_data_it_cannot_place(sandbox: SandboxServer) -> None:
    xml = fixture("doctest_project")
    unknown_event = xml.replace(
        'StudyEventRepeatKey="1" redcap:UniqueEventName="event_1_arm_1"',
        'StudyEventRepeatKey="1" redcap:UniqueEventName="event_9_arm_1"',
    )
    with pytest.raises(ApiError, match="unknown event 'event_9_arm_1'"):
        ingest(sandbox, unknown_event)
    unknown_dag = xml.replace('Value="test_dag"', 'Value="other_dag"')
    with pytest.raises(ApiError, match="unknown DAG 'other_dag'"):
        ingest(sandbox, unknown_dag)


# -- project creation through the API --------------------------------------------------------


def test_create_project_from_classic_xml(sandbox: SandboxServer) -> None:
    project = created(sandbox, fixture("classic_project")).pycap()
    metadata = project.export_metadata()
    assert len(metadata) == 16 and metadata[0]["field_name"] == "participant_id"
    assert len(project.export_records(record_type="eav")) == 34
    info = project.export_project_info()
    assert (info["project_title"], info["purpose"], info["is_longitudinal"]) == ("T", 0, 0)
    assert [
        (d["data_access_group_name"], d["unique_group_name"]) for d in project.export_dags()
    ] == [("Site Bergen", "site_bergen"), ("Site Oslo", "site_oslo")]  # by label, as REDCap
    records = project.export_records(export_data_access_groups=True)
    assert [(r["participant_id"], r["redcap_data_access_group"]) for r in records] == [
        ("1001", ""),
        ("1002", "site_bergen"),
        ("1003", "site_oslo"),
    ]


def test_create_project_from_longitudinal_xml(sandbox: SandboxServer) -> None:
    project = created(sandbox, fixture("longitudinal_project")).pycap()
    assert [a["name"] for a in project.export_arms()] == ["Standard titration", "Rapid titration"]
    events = project.export_events()
    assert len(events) == 12 and events[10]["unique_event_name"] == "telephone_follow_u_arm_2"
    assert len(project.export_instrument_event_mappings()) == 25
    assert project.export_repeating_instruments_events() == [
        {
            "event_name": "baseline_arm_1",
            "form_name": "vital_signs",
            "custom_form_label": "[vs_time]",
        },
        {"event_name": "unscheduled_visit_arm_1", "form_name": "", "custom_form_label": ""},
    ]
    records = project.export_records()
    assert {r["study_no"] for r in records} == {"1", "2", "3"}
    repeats = [r for r in records if r["redcap_repeat_instance"]]
    assert [
        (
            r["redcap_event_name"],
            r["redcap_repeat_instrument"],
            r["redcap_repeat_instance"],
            r["sbp"],
            r["ae_term"],
        )
        for r in repeats
    ] == [
        ("baseline_arm_1", "vital_signs", 1, "148", ""),
        ("baseline_arm_1", "vital_signs", 2, "141", ""),
        ("unscheduled_visit_arm_1", "", 1, "118", "Dizziness on standing"),
        ("unscheduled_visit_arm_1", "", 2, "", "Fall at home"),
    ]
    content, headers = project.export_file("1", "consent_form", event="screening_arm_1")
    assert (content, headers["name"]) == (CONSENT_PDF, "consent_0001.pdf")


def test_create_project_from_doctest_xml_keeps_the_uploaded_file(sandbox: SandboxServer) -> None:
    project = created(sandbox, fixture("doctest_project")).pycap()
    assert project.export_instruments() == [
        {"instrument_name": "form_1", "instrument_label": "Form 1"}
    ]
    content, headers = project.export_file(
        "1", "upload_field", event="event_1_arm_1", repeat_instance=1
    )
    assert (content, headers["name"]) == (b"test upload\n", "test_upload.txt")
    assert project.export_project_info()["record_autonumbering_enabled"] == 1


def test_create_project_from_broken_xml_creates_nothing(sandbox: SandboxServer) -> None:
    def projects() -> int:
        with sandbox.store.transaction() as conn:
            return conn.execute("SELECT COUNT(*) FROM project").fetchone()[0]

    before = projects()
    reply = create(sandbox, "<ODM><Study>")
    assert reply.status_code == 400
    assert "<error>The ODM project XML could not be parsed" in reply.text
    assert projects() == before


# -- project XML export -----------------------------------------------------------------------


def classic_with_data(sandbox: SandboxServer) -> Handle:
    """The seeded classic project with a repeating form, a DAG, a file, a survey, a role, a
    report and values that need escaping."""
    handle = seed_project(sandbox, "classic", surveys=("followup",))
    with sandbox.store.transaction() as conn:
        m = handle.model(conn)
        m.replace_repeating([(0, "followup", "[fav]")])
        pid = m.project_id
        doc = conn.execute(
            "INSERT INTO document (project_id, name, mime, content, created) "
            "VALUES (?, ?, ?, ?, ?)",
            (pid, "scan.pdf", "application/pdf", b"%PDF-1.3\n\x00\xff", "2026-01-01 12:00:00"),
        ).lastrowid
        dag = conn.execute(
            "INSERT INTO dag (project_id, name, unique_name) VALUES (?, 'Site Oslo', 'site_oslo')",
            (pid,),
        ).lastrowid
        role = {**CREATOR_RIGHTS, "design": 0, "forms": {"demographics": 2, "followup": 0}}
        conn.execute(
            "INSERT INTO role (project_id, unique_role_name, role_label, rights) "
            "VALUES (?, ?, ?, ?)",
            (
                pid,
                "U-ABCDE12345",
                "Monitor",
                json.dumps({**role, "forms_export": {"demographics": 3, "followup": 0}}),
            ),
        )
        report = {"title": "Adults", "fields": ["record_id", "age"], "filter_logic": "[age] >= 18"}
        conn.execute(
            "INSERT INTO report (project_id, definition) VALUES (?, ?)",
            (pid, json.dumps({**report, "events": []})),
        )
    values = {
        "first_name": 'Ann "A" <Lee>',
        "dob": "1990-02-03",
        "colors___2": "1",
        "colors____99": "1",
        "notes": "two\nlines & a\ttab",
        "upload": str(doc),
        "demographics_complete": "2",
    }
    handle.put("1", values, dag_id=dag)
    handle.put(
        "1", {"fav": "b", "visit_date": "2026-01-02", "followup_complete": "1"}, "", "followup", 1
    )
    handle.put("1", {"fav": "a"}, repeat_instrument="followup", instance=2)
    handle.put("2", {})  # a record with nothing but its id
    handle.put("10", {"age": "41", "consent": "0"})
    return handle


def longitudinal_with_data(sandbox: SandboxServer) -> Handle:
    """The seeded longitudinal project with data in a repeating instrument, a repeating event
    and both arms, and an event with offsets and a custom label."""
    handle = seed_project(sandbox, "longitudinal")
    with sandbox.store.transaction() as conn:
        m = handle.model(conn)
        visit = m.event("visit_1_arm_1")
        assert visit is not None
        m.save_event(visit.event_id, 1, "Visit 1", "Day [enroll_date]", 7, 1.5, 2)
    handle.put("1", {"enroll_date": "2026-01-01", "group": "1", "weight": "80"}, "baseline_arm_1")
    handle.put("1", {"weight": "81"}, "visit_1_arm_1")
    for instance, dose in ((1, "5"), (2, "7.5")):
        handle.put(
            "1", {"med_name": "X", "med_dose": dose}, "visit_1_arm_1", "medications", instance
        )
    for instance, weight in ((1, "82"), (3, "84")):
        handle.put("1", {"weight": weight, "bp": "120"}, "visit_2_arm_1", instance=instance)
    handle.put("2", {"group": "2"}, "baseline_arm_2")
    return handle


SOURCES = {
    "classic_xml": lambda sandbox: ingest(sandbox, fixture("classic_project")),
    "longitudinal_xml": lambda sandbox: ingest(sandbox, fixture("longitudinal_project")),
    "doctest_xml": lambda sandbox: ingest(sandbox, fixture("doctest_project")),
    "classic": classic_with_data,
    "longitudinal": longitudinal_with_data,
}


@pytest.mark.parametrize("source", list(SOURCES))
def test_exported_project_xml_loads_back_identically(sandbox: SandboxServer, source: str) -> None:
    original = SOURCES[source](sandbox)
    flags = {"exportFiles": "true", "exportDataAccessGroups": "true", "exportSurveyFields": "true"}
    reply = export_xml(original, **flags)
    assert reply.status_code == 200, reply.text
    assert reply.headers["Content-Type"].startswith("text/xml")
    assert reply.text.startswith('<?xml version="1.0" encoding="UTF-8" ?>\n<ODM xmlns=')
    copy = ingest(sandbox, reply.text, title="")
    assert snapshot(copy) == snapshot(original)


def item_oids(root: Any, tag: str = "ItemData") -> set[str]:
    return {item.get("ItemOID") for item in root.iter(tag)}


def subjects(root: Any) -> list[str]:
    return [s.get("SubjectKey") for s in root.iter("SubjectData")]


def test_export_writes_redcaps_structure(sandbox: SandboxServer) -> None:
    handle = ingest(sandbox, fixture("doctest_project"))
    reply = export_xml(handle, exportFiles="true", exportDataAccessGroups="true")
    root = odm.parse(reply.text)
    assert root.get("ODMVersion") == "1.3.1" and root.get("SourceSystem") == "REDCap"
    mdv = root.find("Study/MetaDataVersion")
    assert mdv is not None and mdv.get("RecordIdField") == "record_id"
    assert root.findtext("Study/GlobalVariables/StudyName") == "T"
    assert [e.get("UniqueEventName") for e in mdv.iter("StudyEventDef")] == [
        "event_1_arm_1",
        "event_2_arm_1",
    ]
    [checkbox_list] = [
        c for c in mdv.iter("CodeList") if c.get("OID") == "checkbox_field___1.choices"
    ]
    assert checkbox_list.get("CheckboxChoices") == "1, SMS|2, E-mail"
    [subject] = [s for s in root.iter("SubjectData") if s.get("SubjectKey") == "1"]
    values = {i.get("ItemOID"): i.get("Value") for i in subject.iter("ItemData")}
    assert values == {
        "record_id": "1",
        "redcap_data_access_group": "test_dag",
        "field_1": "1",
        "checkbox_field___1": "0",  # unchecked options are written, as REDCap does
        "checkbox_field___2": "1",
        "form_1_complete": "2",
    }
    [upload] = subject.iter("ItemDataBase64Binary")
    assert (upload.get("DocName"), upload.get("MimeType"), upload.text) == (
        "test_upload.txt",
        "text/plain",
        "dGVzdCB1cGxvYWQK",
    )


def layout(element: Any) -> tuple[Any, ...]:
    """An element with its attributes, text and children, for comparing documents."""
    text = (element.text or "").strip()
    return (element.tag, sorted(element.attrib.items()), text, [layout(c) for c in element])


@pytest.mark.parametrize("name", ["doctest_project", "longitudinal_project"])
def test_export_lays_out_metadata_as_redcap_does(sandbox: SandboxServer, name: str) -> None:
    """Arms and events, forms cut into item groups, one ItemDef per ItemRef (REDCap repeats a
    survey's timestamp), range checks and code lists: element for element as in the fixture,
    which is written in REDCap 15's layout."""
    xml = fixture(name)
    handle = ingest(sandbox, xml)
    flags = {"exportDataAccessGroups": "true", "exportSurveyFields": "true"}
    exported = odm.parse(export_xml(handle, **flags).text).find("Study/MetaDataVersion")
    original = odm.parse(xml).find("Study/MetaDataVersion")
    assert exported is not None and original is not None
    assert [layout(e) for e in exported] == [layout(e) for e in original]


def test_export_leaves_out_what_was_not_asked_for(sandbox: SandboxServer) -> None:
    handle = ingest(sandbox, fixture("doctest_project"))
    root = odm.parse(export_xml(handle).text)
    assert {"redcap_data_access_group", "upload_field"}.isdisjoint(item_oids(root))
    assert not list(root.iter("ItemDataBase64Binary"))
    assert {"redcap_data_access_group", "redcap_survey_identifier", "form_1_timestamp"}.isdisjoint(
        {item.get("OID") for item in root.iter("ItemDef")}
    )
    assert [g.get("group_name") for g in root.iter("DataAccessGroups")] == ["Test DAG"]
    metadata_only = odm.parse(export_xml(handle, returnMetadataOnly="true").text)
    assert metadata_only.find("ClinicalData") is None
    assert len(list(metadata_only.iter("ItemDef"))) == len(list(root.iter("ItemDef")))


def test_export_limits_records_fields_and_events(sandbox: SandboxServer) -> None:
    handle = ingest(sandbox, fixture("doctest_project"))
    root = odm.parse(export_xml(handle, **{"records[0]": "3", "records[1]": "1"}).text)
    assert subjects(root) == ["1", "3"]
    root = odm.parse(export_xml(handle, records="2,3", fields="field_1,form_1_complete").text)
    assert subjects(root) == ["2", "3"]
    assert item_oids(root) == {"field_1", "form_1_complete"}
    root = odm.parse(export_xml(handle, fields="checkbox_field").text)
    assert item_oids(root) == {"checkbox_field___1", "checkbox_field___2"}
    assert subjects(odm.parse(export_xml(handle, events="event_2_arm_1").text)) == []


def test_export_refusals(sandbox: SandboxServer) -> None:
    handle = ingest(sandbox, fixture("doctest_project"))
    reply = export_xml(handle, returnFormat="json", fields="record_id,nope")
    assert (reply.status_code, reply.json()) == (
        400,
        {"error": "The following values in the parameter \"fields\" are not valid: 'nope'"},
    )
    reply = export_xml(handle, returnFormat="json", events="event_9_arm_1")
    assert reply.json() == {
        "error": "The following values in the parameter \"events\" are not valid: 'event_9_arm_1'"
    }
    reply = export_xml(handle, returnFormat="json", filterLogic="[field_1] = 1")
    assert reply.status_code == 400 and "filterLogic" in reply.json()["error"]
    reader = handle.add_user("reader", api_export=0)
    reply = export_xml(handle, token=reader, returnFormat="json")
    assert (reply.status_code, reply.json()) == (
        403,
        {"error": "You do not have API Export privileges"},
    )


def test_export_follows_the_users_dag_and_export_rights(sandbox: SandboxServer) -> None:
    handle = ingest(sandbox, fixture("doctest_project"))
    site = handle.add_user("site_user")
    with sandbox.store.transaction() as conn:
        conn.execute(
            "INSERT INTO user_dag SELECT project_id, 'site_user', dag_id FROM dag "
            "WHERE project_id = ?",
            (handle.project_id,),
        )
    assert subjects(odm.parse(export_xml(handle, token=site).text)) == ["1"]

    classic = classic_with_data(sandbox)
    levels = {"demographics": 1, "followup": 1}
    full, no_ids, deidentified, hidden = (
        classic.add_user(f"export_{level}", forms_export={**levels, "demographics": level})
        for level in (1, 3, 2, 0)
    )
    oids = {
        token: item_oids(odm.parse(export_xml(classic, token=token).text))
        for token in (full, no_ids, deidentified, hidden)
    }
    assert {"first_name", "dob", "notes", "age", "record_id"} <= oids[full]
    assert oids[no_ids] == oids[full] - {"first_name", "dob", "email"}
    assert oids[deidentified] == oids[no_ids] - {"notes"}  # free text and dates go too
    assert "record_id" not in oids[hidden] and {"fav", "visit_date"} <= oids[hidden]
