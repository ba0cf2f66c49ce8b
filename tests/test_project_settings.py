"""Project settings on the local REDCap-compatible server: switching a development project
between classic and longitudinal as REDCap does (classic data under `Event 1`, back to classic
only with a single event), surveys on and off, and no changes in production."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from redcap import RedcapError
from sandbox_support import Handle, seed_project

from hekta_redcap.devtools.sandbox.server import SandboxServer

CLASSIC_FORMS = ["demographics", "followup"]


def settings(handle: Handle, **values: Any) -> requests.Response:
    """Import project settings through the API as JSON."""
    return requests.post(
        handle.url,
        data={
            "token": handle.token,
            "content": "project_settings",
            "format": "json",
            "data": json.dumps(values),
        },
        timeout=10,
    )


def created(sandbox: SandboxServer, longitudinal: int) -> Handle:
    """A project made through the API with only a title, purpose and the longitudinal flag."""
    data = (
        "<item><project_title>Made</project_title><purpose>0</purpose>"
        f"<is_longitudinal>{longitudinal}</is_longitudinal></item>"
    )
    reply = requests.post(
        sandbox.url,
        data={"token": sandbox.super_token, "content": "project", "format": "xml", "data": data},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    with sandbox.store.transaction() as conn:
        row = conn.execute("SELECT project_id FROM user WHERE token = ?", (reply.text,)).fetchone()
    return Handle(sandbox, row[0], reply.text)


def test_classic_to_longitudinal_without_records(classic: Handle) -> None:
    reply = settings(classic, is_longitudinal=1)
    assert (reply.status_code, reply.json()) == (200, 1)
    project = classic.pycap()
    assert project.export_project_info()["is_longitudinal"] == 1
    assert project.export_arms() == [{"arm_num": 1, "name": "Arm 1"}]
    events = project.export_events()
    assert events == [
        {
            "event_name": "Event 1",
            "arm_num": 1,
            "unique_event_name": "event_1_arm_1",
            "custom_event_label": "",
            "event_id": events[0]["event_id"],
        }
    ]
    assert project.export_instrument_event_mappings() == [
        {"arm_num": 1, "unique_event_name": "event_1_arm_1", "form": form} for form in CLASSIC_FORMS
    ]
    assert project.export_records() == []


def test_classic_to_longitudinal_keeps_records_under_event_1(sandbox: SandboxServer) -> None:
    handle = seed_project(sandbox, "classic", surveys=("followup",))
    project = handle.pycap()
    assert project.import_repeating_instruments_events(
        [{"form_name": "followup", "custom_form_label": "[fav]"}]
    )
    project.import_records(
        [
            {"record_id": "1", "first_name": "Kari", "sex": "2", "colors___2": "1"},
            {"record_id": "2", "age": "40"},
            {
                "record_id": "1",
                "redcap_repeat_instrument": "followup",
                "redcap_repeat_instance": "2",
                "fav": "b",
            },
        ]
    )
    link = project.export_survey_link("1", "followup", repeat_instance=2)
    assert settings(handle, is_longitudinal=1).status_code == 200

    rows = project.export_records(fields=["record_id", "first_name", "sex", "age", "fav"])
    assert [
        {k: v for k, v in row.items() if v != "" or k == "redcap_repeat_instrument"} for row in rows
    ] == [
        {
            "record_id": "1",
            "redcap_event_name": "event_1_arm_1",
            "redcap_repeat_instrument": "",
            "first_name": "Kari",
            "sex": "2",
        },
        {
            "record_id": "1",
            "redcap_event_name": "event_1_arm_1",
            "redcap_repeat_instrument": "followup",
            "redcap_repeat_instance": 2,
            "fav": "b",
        },
        {
            "record_id": "2",
            "redcap_event_name": "event_1_arm_1",
            "redcap_repeat_instrument": "",
            "age": "40",
        },
    ]
    assert project.export_records(records=["1"], fields=["colors"])[0]["colors___2"] == "1"
    assert project.export_repeating_instruments_events() == [
        {"event_name": "event_1_arm_1", "form_name": "followup", "custom_form_label": "[fav]"}
    ]
    # The survey's participant moved with its data: the same link for the same instance.
    assert project.export_survey_link("1", "followup", "event_1_arm_1", 2) == link
    # Records imported now without an event name land in the only event.
    project.import_records([{"record_id": "3", "age": "25"}])
    assert project.export_records(records=["3"], fields=["age"]) == [
        {
            "record_id": "3",
            "redcap_event_name": "event_1_arm_1",
            "redcap_repeat_instrument": "",
            "redcap_repeat_instance": "",
            "age": "25",
        }
    ]


def test_single_event_project_back_to_classic_keeps_records(sandbox: SandboxServer) -> None:
    handle = created(sandbox, longitudinal=1)
    project = handle.pycap()
    assert [e["unique_event_name"] for e in project.export_events()] == ["event_1_arm_1"]
    project.import_records([{"record_id": "7", "redcap_event_name": "event_1_arm_1"}])
    project.import_repeating_instruments_events(
        [{"event_name": "event_1_arm_1", "form_name": "my_first_instrument"}]
    )
    assert settings(handle, is_longitudinal=0).status_code == 200
    assert project.export_project_info()["is_longitudinal"] == 0
    for export, what in [
        (project.export_arms, "arms"),
        (project.export_events, "events"),
        (project.export_instrument_event_mappings, "form/event mappings"),
    ]:
        with pytest.raises(RedcapError, match=f"You cannot export {what} for classic projects"):
            export()
    assert project.export_repeating_instruments_events() == [
        {"form_name": "my_first_instrument", "custom_form_label": ""}
    ]
    assert [(r["record_id"], r.get("redcap_event_name")) for r in project.export_records()] == [
        ("7", None)
    ]
    # And forth again: the same record under a new Event 1.
    assert settings(handle, is_longitudinal=1).status_code == 200
    assert [(r["record_id"], r["redcap_event_name"]) for r in project.export_records()] == [
        ("7", "event_1_arm_1")
    ]


def test_back_to_classic_is_refused_with_more_than_one_event(longitudinal: Handle) -> None:
    project = longitudinal.pycap()
    longitudinal.put("1", {"record_id": "1", "weight": "70"}, "baseline_arm_1")
    before = project.export_events()
    reply = settings(longitudinal, is_longitudinal=0, project_title="Not this either")
    assert reply.status_code == 400
    assert reply.json()["error"] == (
        "The project cannot be made classic while it has more than one event. Delete all events "
        "but one first."
    )
    assert project.export_events() == before
    info = project.export_project_info()
    assert (info["is_longitudinal"], info["project_title"]) == (1, "Test project")


def test_back_to_classic_is_refused_while_the_event_repeats(sandbox: SandboxServer) -> None:
    handle = created(sandbox, longitudinal=1)
    handle.pycap().import_repeating_instruments_events(
        [{"event_name": "event_1_arm_1", "form_name": ""}]
    )
    reply = settings(handle, is_longitudinal=0)
    assert reply.status_code == 400
    assert reply.json()["error"] == (
        "The project cannot be made classic while its event repeats as a whole"
    )


def test_surveys_enabled_toggles(classic: Handle) -> None:
    project = classic.pycap()
    assert project.export_project_info()["surveys_enabled"] == 0
    assert settings(classic, surveys_enabled=1).json() == 1
    assert project.export_project_info()["surveys_enabled"] == 1
    assert settings(classic, surveys_enabled=0).json() == 1
    assert project.export_project_info()["surveys_enabled"] == 0


def test_production_refuses_changes_but_not_the_same_values(sandbox: SandboxServer) -> None:
    handle = seed_project(sandbox, "classic", production=True)
    for change in ({"is_longitudinal": 1}, {"surveys_enabled": 1}, {"project_title": "New"}):
        reply = settings(handle, **change)
        assert reply.status_code == 400
        assert reply.json()["error"].startswith(
            "The project settings cannot be modified because the project is in production status."
        )
    info = handle.pycap().export_project_info()
    assert (info["is_longitudinal"], info["surveys_enabled"], info["project_title"]) == (
        0,
        0,
        "Test project",
    )
    same = settings(handle, project_title="Test project", is_longitudinal=0)
    assert (same.status_code, same.json()) == (200, 2)
