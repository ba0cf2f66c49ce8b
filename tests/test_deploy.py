"""Plan and push against the local REDCap-compatible server: pushing into empty projects and
into projects as REDCap makes them (settings first), a second push that writes nothing, each
change class, the data-loss guard, a push that fails part-way and is finished by a second run,
and the production Draft Mode bundle."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import redcap
import requests
from click.testing import CliRunner, Result
from conftest import LIBRARY, edit

from hekta_redcap.cli import cli
from hekta_redcap.compile.design import compile_design
from hekta_redcap.compile.dictionary import compile_project
from hekta_redcap.core.settings import Token
from hekta_redcap.definitions.study import load_project
from hekta_redcap.deploy.push import create_project
from hekta_redcap.devtools.sandbox.models import ProjectModel
from hekta_redcap.devtools.sandbox.server import SandboxServer
from hekta_redcap.redcap.dictionary import COLUMNS

WRITES = {"import", "delete"}


def new_project(sandbox: SandboxServer, name: str, root: Path = LIBRARY) -> str:
    """A new, empty REDCap project for the study `name`; returns its token."""
    token = create_project(sandbox.url, Token(sandbox.super_token), load_project(name, root))
    return token.reveal()


def run(sandbox: SandboxServer, token: str, *args: str, root: Path = LIBRARY) -> Result:
    env = {
        "REDCAP_API_URL": sandbox.url,
        "REDCAP_TOKEN_HEKTA": token,
        "REDCAP_TOKEN_IPS_FIDELITY": token,
    }
    return CliRunner().invoke(cli, [*args, "--definitions", str(root)], env=env)


@contextmanager
def counted_calls() -> Iterator[list[tuple[str, str]]]:
    """Every API call PyCap makes, as (content, action)."""
    calls: list[tuple[str, str]] = []
    session = redcap.request._session
    real = session.post

    def post(url: str, data: dict[str, Any], **kwargs: Any) -> Any:
        action = data.get("action") or ("import" if "data" in data else "export")
        calls.append((data.get("content", ""), action))
        return real(url, data=data, **kwargs)

    with mock.patch.object(session, "post", post):
        yield calls


def changes(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code in (0, 2), result.output
    return json.loads(result.output)["changes"]


def find(found: list[dict[str, Any]], target: str, action: str) -> dict[str, Any]:
    hits = [c for c in found if c["target"] == target and c["action"] == action]
    assert len(hits) == 1, found
    return hits[0]


@pytest.mark.parametrize("name", ["hekta", "ips_fidelity"])
def test_push_into_an_empty_project_then_nothing_to_do(sandbox: SandboxServer, name: str) -> None:
    token = new_project(sandbox, name)
    assert run(sandbox, token, "plan", "-p", name).exit_code == 2
    pushed = run(sandbox, token, "push", "-p", name, "--yes")
    assert pushed.exit_code == 0, pushed.output
    assert "Done: " in pushed.output and token not in pushed.output
    project = load_project(name, LIBRARY)
    client = redcap.Project(sandbox.url, token)
    assert client.export_metadata() == [
        {c: getattr(r, c) for c in COLUMNS} for r in compile_project(project)
    ]
    again = run(sandbox, token, "plan", "-p", name)
    assert again.exit_code == 0
    assert "already matches" in again.output
    with counted_calls() as calls:
        second = run(sandbox, token, "push", "-p", name, "--yes")
    assert second.exit_code == 0, second.output
    assert calls and not [c for c in calls if c[1] in WRITES]


def bare_project(sandbox: SandboxServer, longitudinal: bool = False) -> str:
    """A project as REDCap makes it from a title and purpose (classic, no surveys, development
    status, one instrument holding `record_id`); returns its token."""
    flag = "<is_longitudinal>1</is_longitudinal>" if longitudinal else ""
    data = f"<item><project_title>New</project_title><purpose>0</purpose>{flag}</item>"
    reply = requests.post(
        sandbox.url,
        data={"token": sandbox.super_token, "content": "project", "format": "xml", "data": data},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    return reply.text


def writes(calls: list[tuple[str, str]]) -> list[str]:
    return [content for content, action in calls if action in WRITES]


SURVEYS_NOTE = (
    "To do in REDCap: in the Online Designer, enable each of these instruments as a survey "
    "(REDCap's API cannot): "
)
HEKTA_SURVEYS = (
    "audit, dudit, substance_days, hscl10, phq9, gad7, life_satisfaction, swls, whoqol_bref, eq5d5l"
)
FRESH = {  # what plan says of a bare project's settings, and what push then writes
    "hekta": (
        {
            "project_title": ("safe", "title 'New' -> 'HEKTA PÅ JOBB'"),
            "purpose": ("safe", "purpose 0 -> 2 (research)"),
            "is_longitudinal": (
                "safe",
                "classic -> longitudinal: REDCap adds Arm 1 with Event 1 (event_1_arm_1); push "
                "then makes it baseline_arm_1",
            ),
            "surveys_enabled": ("safe", "surveys enabled"),
        },
        ["project_settings", "event", "metadata", "formEventMapping", "repeatingFormsEvents"],
    ),
    "ips_fidelity": (
        {
            "project_title": ("safe", "title 'New' -> 'IPS fidelity reviews (IPS-25)'"),
            "purpose": ("safe", "purpose 0 -> 2 (research)"),
            "record_autonumbering_enabled": ("safe", "record auto-numbering enabled"),
        },
        ["project_settings", "metadata", "repeatingFormsEvents"],
    ),
}

SETTINGS = {  # the project settings each study file implies, as REDCap exports them
    "hekta": {
        "project_title": "HEKTA PÅ JOBB",
        "purpose": 2,
        "is_longitudinal": 1,
        "surveys_enabled": 1,  # audit and nine more are surveys
        "record_autonumbering_enabled": 0,
    },
    "ips_fidelity": {
        "project_title": "IPS fidelity reviews (IPS-25)",
        "purpose": 2,
        "is_longitudinal": 0,
        "surveys_enabled": 0,
        "record_autonumbering_enabled": 1,
    },
}


@pytest.mark.parametrize("name", ["hekta", "ips_fidelity"])
def test_push_into_a_project_as_redcap_makes_it(sandbox: SandboxServer, name: str) -> None:
    token = bare_project(sandbox)
    planned = run(sandbox, token, "plan", "-p", name, "--json")
    assert planned.exit_code == 2
    settings = {
        c["target"]: (c["severity"], c["detail"])
        for c in json.loads(planned.output)["changes"]
        if c["step"] == "settings"
    }
    expected_settings, expected_writes = FRESH[name]
    assert settings == expected_settings
    with counted_calls() as calls:
        pushed = run(sandbox, token, "push", "-p", name, "--yes")
    assert pushed.exit_code == 0, pushed.output
    assert writes(calls) == expected_writes
    assert pushed.output.splitlines()[-1] == f"Done: {', '.join(_steps(expected_writes))} applied."
    project = load_project(name, LIBRARY)
    client = redcap.Project(sandbox.url, token)
    info = client.export_project_info()
    assert {k: info[k] for k in SETTINGS[name]} == SETTINGS[name]
    assert client.export_metadata() == [
        {c: getattr(r, c) for c in COLUMNS} for r in compile_project(project)
    ]
    design = compile_design(project)
    if project.study.longitudinal:
        assert client.export_arms() == [{"arm_num": 1, "name": "Arm 1"}]
        assert [(e["event_name"], e["unique_event_name"]) for e in client.export_events()] == [
            (e["event_name"], e["unique_event_name"]) for e in design.events
        ]
        assert client.export_instrument_event_mappings() == design.mapping
    again = run(sandbox, token, "plan", "-p", name)
    assert again.exit_code == 0, again.output
    assert again.output.startswith(f"{name}: the live project already matches the definitions.")
    with counted_calls() as calls:
        second = run(sandbox, token, "push", "-p", name, "--yes")
    assert second.exit_code == 0, second.output
    assert calls and writes(calls) == []
    surveys = [line for line in second.output.splitlines() if line.startswith("To do")]
    assert surveys == ([SURVEYS_NOTE + HEKTA_SURVEYS] if name == "hekta" else [])


def _steps(contents: list[str]) -> list[str]:
    names = {
        "project_settings": "settings",
        "arm": "arms",
        "event": "events",
        "metadata": "metadata",
        "formEventMapping": "mapping",
        "repeatingFormsEvents": "repeating",
    }
    return [names[c] for c in contents]


def test_classic_project_with_records_becomes_longitudinal_keeping_them(
    sandbox: SandboxServer,
) -> None:
    token = bare_project(sandbox)
    client = redcap.Project(sandbox.url, token)
    rows = compile_project(load_project("hekta", LIBRARY))
    client.import_metadata([{c: getattr(r, c) for c in COLUMNS} for r in rows])
    client.import_records(
        [
            {"record_id": "1", "sex": "2", "demo_birth_year": "1990"},
            {"record_id": "2", "sex": "1"},
        ]
    )
    found = changes(run(sandbox, token, "plan", "-p", "hekta", "--json"))
    switch = find(found, "is_longitudinal", "change")
    assert (switch["severity"], switch["affected"]) == ("review", 2)
    assert switch["detail"] == (
        "classic -> longitudinal: REDCap adds Arm 1 with Event 1 (event_1_arm_1) and puts the "
        "data of the 2 existing record(s) under it; push then makes it baseline_arm_1"
    )
    assert find(found, "surveys_enabled", "change")["severity"] == "safe"
    assert find(found, "event_1_arm_1 -> baseline_arm_1", "change")["severity"] == "safe"
    assert not [c for c in found if c["severity"] == "data-affecting"]
    pushed = run(sandbox, token, "push", "-p", "hekta", "--yes")
    assert pushed.exit_code == 0, pushed.output
    kept = client.export_records(fields=["record_id", "sex", "demo_birth_year"])
    assert [
        (r["record_id"], r["redcap_event_name"], r["sex"], r["demo_birth_year"]) for r in kept
    ] == [("1", "baseline_arm_1", "2", "1990"), ("2", "baseline_arm_1", "1", "")]
    assert run(sandbox, token, "plan", "-p", "hekta").exit_code == 0


def test_single_event_project_becomes_classic(sandbox: SandboxServer) -> None:
    token = bare_project(sandbox, longitudinal=True)
    redcap.Project(sandbox.url, token).import_records(
        [{"record_id": "1", "redcap_event_name": "event_1_arm_1"}]
    )
    found = changes(run(sandbox, token, "plan", "-p", "ips_fidelity", "--json"))
    switch = find(found, "is_longitudinal", "change")
    assert (switch["severity"], switch["affected"], switch["refused"]) == ("review", 1, False)
    assert switch["detail"] == (
        "longitudinal -> classic: REDCap removes the arm, the event and its designations; "
        "the data of the 1 record(s) stay"
    )
    pushed = run(sandbox, token, "push", "-p", "ips_fidelity", "--yes", "--allow-data-loss")
    assert pushed.exit_code == 0, pushed.output
    assert redcap.Project(sandbox.url, token).export_project_info()["is_longitudinal"] == 0
    assert run(sandbox, token, "plan", "-p", "ips_fidelity").exit_code == 0


def test_classic_study_into_a_project_with_data_in_two_events_is_refused(
    sandbox: SandboxServer, pushed: tuple[str, Path]
) -> None:
    token, library = pushed
    found = changes(run(sandbox, token, "plan", "-p", "ips_fidelity", "--json", root=library))
    switch = find(found, "is_longitudinal", "change")
    assert (switch["severity"], switch["affected"], switch["refused"]) == (
        "data-affecting",
        1,
        True,
    )
    assert switch["detail"] == (
        "longitudinal -> classic: REDCap refuses while the project has more than one event (4); "
        "delete all but one in Project Setup first: data is collected in 2 events, so at least "
        "1 record row(s) would be lost"
    )
    with counted_calls() as calls:
        refused = run(
            sandbox, token, "push", "-p", "ips_fidelity", "--yes", "--allow-data-loss", root=library
        )
    assert refused.exit_code == 1
    assert "push refused, nothing applied: is_longitudinal: " in refused.output
    assert writes(calls) == []
    # without the flag too: no advice to approve data loss for what REDCap refuses anyway
    plain = run(sandbox, token, "push", "-p", "ips_fidelity", "--yes", root=library)
    assert plain.exit_code == 1 and "push refused, nothing applied" in plain.output
    assert "--allow-data-loss" not in plain.output


def test_survey_note_follows_what_the_live_project_shows(sandbox: SandboxServer) -> None:
    token = bare_project(sandbox)
    sandbox.faults.configure(1.0, ["error"], contents=["project_xml"])
    try:  # the project XML cannot be read: advice, once, as surveys are enabled
        before = run(sandbox, token, "plan", "-p", "hekta")
        assert run(sandbox, token, "push", "-p", "hekta", "--yes").exit_code == 0
        after = run(sandbox, token, "plan", "-p", "hekta")
    finally:
        sandbox.faults.configure(0.0)
    assert before.output.splitlines()[-1] == (
        "To do in REDCap: REDCap's API cannot enable instruments as surveys: in the Online "
        f"Designer, enable each of these as a survey unless it already is: {HEKTA_SURVEYS}"
    )
    assert after.exit_code == 0 and "To do" not in after.output
    client = redcap.Project(sandbox.url, token)
    project_id = int(client.export_project_info()["project_id"])
    with sandbox.store.transaction() as conn:  # a person enables two of them in REDCap
        conn.executemany(
            "INSERT INTO survey VALUES (?, ?, '{}')", [(project_id, "audit"), (project_id, "dudit")]
        )
    remaining = HEKTA_SURVEYS.removeprefix("audit, dudit, ")
    assert run(sandbox, token, "plan", "-p", "hekta").output.splitlines()[-1] == (
        SURVEYS_NOTE + remaining
    )
    with sandbox.store.transaction() as conn:
        conn.executemany(
            "INSERT INTO survey VALUES (?, ?, '{}')",
            [(project_id, form) for form in remaining.split(", ")],
        )
    shown = run(sandbox, token, "plan", "-p", "hekta")
    assert shown.exit_code == 0 and "To do" not in shown.output


def test_production_settings_changes_go_to_the_bundle(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    token = bare_project(sandbox)
    client = redcap.Project(sandbox.url, token)
    project_id = int(client.export_project_info()["project_id"])
    with sandbox.store.transaction() as conn:
        model = ProjectModel(conn, project_id)
        model.info["in_production"] = 1
        model.save_info()
    bundle = tmp_path / "bundle"
    with counted_calls() as calls:
        result = run(sandbox, token, "push", "-p", "hekta", "--yes", "--bundle", str(bundle))
    assert result.exit_code == 0, result.output
    assert writes(calls) == []
    report = (bundle / "plan.txt").read_text(encoding="utf-8")
    assert "    ~ is_longitudinal: classic -> longitudinal: REDCap adds Arm 1" in report
    assert "1. If the plan lists settings changes, make them first in Project Setup" in report
    assert client.export_project_info()["is_longitudinal"] == 0


@pytest.fixture
def pushed(sandbox: SandboxServer, library: Path) -> tuple[str, Path]:
    """The trial project pushed from a private copy of the definitions, with some data."""
    token = new_project(sandbox, "hekta", library)
    assert run(sandbox, token, "push", "-p", "hekta", "--yes", root=library).exit_code == 0
    redcap.Project(sandbox.url, token).import_records(
        [
            {
                "record_id": "1",
                "redcap_event_name": "baseline_arm_1",
                "sex": "2",
                "demo_birth_year": "1990",
                "audit_1": "2",
            },
            {"record_id": "2", "redcap_event_name": "baseline_arm_1", "sex": "1"},
            {"record_id": "1", "redcap_event_name": "followup_6m_arm_1", "audit_1": "3"},
        ]
    )
    return token, library


def test_each_change_class_is_detected_and_classified(
    sandbox: SandboxServer, pushed: tuple[str, Path]
) -> None:
    token, library = pushed
    audit, demographics, study = "forms/audit.yaml", "forms/demographics.yaml", "studies/hekta.yaml"
    edit(
        library,
        audit,
        "  - name: audit_10\n",
        "  - name: audit_11\n    type: text\n    label: N\n  - name: audit_10\n",
    )  # new field
    birth_year = (library / demographics).read_text().split("  - name: demo_birth_year")[1]
    birth_year = "  - name: demo_birth_year" + birth_year.split("\n  - name: ")[0] + "\n"
    edit(library, demographics, birth_year, "")  # removed field with data
    edit(
        library,
        audit,
        "  - name: audit_intro\n    type: descriptive\n",
        "  - name: audit_intro\n    type: descriptive\n    identifier: false\n",
    )
    edit(
        library, "forms/substance_days.yaml", "  - name: subst_ghb\n", "  - name: subst_ghb_days\n"
    )
    edit(
        library,
        demographics,
        "{code: 2, label: {nb: Kvinne, en: Female}}",
        "{code: 2, label: {nb: Kvinner, en: Female}}",
    )  # relabelled choice
    edit(
        library,
        audit,
        "{code: 3, label: {nb: 2–3 ganger i uken, en: 2–3 times a week}}",
        "{code: 5, label: {nb: 2–3 ganger i uken, en: 2–3 times a week}}",
    )  # renumbered, data
    edit(
        library,
        study,
        "  - name: Register 18m\n",
        "  - name: Followup 24m\n    unique_name: followup_24m_arm_1\n  - name: Register 18m\n",
    )  # new event
    edit(
        library,
        study,
        "{form: audit, events: [baseline_arm_1, followup_6m_arm_1, followup_12m_arm_1]",
        "{form: audit, events: [baseline_arm_1, followup_12m_arm_1]",
    )
    found = changes(run(sandbox, token, "plan", "-p", "hekta", "--json", root=library))

    assert find(found, "audit_11", "add")["severity"] == "safe"
    removed = find(found, "demo_birth_year", "remove")
    assert (removed["severity"], removed["affected"]) == ("data-affecting", 1)
    without_data = find(found, "subst_ghb -> subst_ghb_days", "change")
    assert without_data["severity"] == "review"
    relabelled = find(found, "sex", "change")
    assert relabelled["severity"] == "review" and "Kvinner" in relabelled["detail"]
    renumbered = find(found, "audit_1", "change")
    assert (renumbered["severity"], renumbered["affected"]) == ("data-affecting", 1)
    assert "renumbered 3 -> 5" in renumbered["detail"]
    assert find(found, "followup_24m_arm_1", "add")["severity"] == "safe"
    mapping = find(found, "audit @ followup_6m_arm_1", "remove")
    assert (mapping["severity"], mapping["affected"]) == ("data-affecting", 1)


def test_removed_field_without_data_is_review(
    sandbox: SandboxServer, pushed: tuple[str, Path]
) -> None:
    token, library = pushed
    audit = library / "forms/audit.yaml"
    text = audit.read_text(encoding="utf-8")
    intro = text[text.index("  - name: audit_intro\n") : text.index("  - name: audit_1\n")]
    audit.write_text(text.replace(intro, ""), encoding="utf-8")
    found = changes(run(sandbox, token, "plan", "-p", "hekta", "--json", root=library))
    removed = find(found, "audit_intro", "remove")
    assert (removed["severity"], removed["affected"]) == ("review", 0)


def test_data_affecting_changes_need_allow_data_loss(
    sandbox: SandboxServer, pushed: tuple[str, Path]
) -> None:
    token, library = pushed
    edit(
        library,
        "studies/hekta.yaml",
        "{form: audit, events: [baseline_arm_1, followup_6m_arm_1, followup_12m_arm_1]",
        "{form: audit, events: [baseline_arm_1]",
    )
    client = redcap.Project(sandbox.url, token)
    before = client.export_instrument_event_mappings()
    refused = run(sandbox, token, "push", "-p", "hekta", "--yes", root=library)
    assert refused.exit_code == 1
    assert "data-affecting change(s): nothing applied" in refused.output
    assert client.export_instrument_event_mappings() == before
    allowed = run(sandbox, token, "push", "-p", "hekta", "--yes", "--allow-data-loss", root=library)
    assert allowed.exit_code == 0, allowed.output
    assert run(sandbox, token, "plan", "-p", "hekta", root=library).exit_code == 0


def test_dry_run_and_unconfirmed_push_write_nothing(
    sandbox: SandboxServer, pushed: tuple[str, Path]
) -> None:
    token, library = pushed
    edit(
        library,
        "forms/audit.yaml",
        "  - name: audit_10\n",
        "  - name: audit_new\n    type: text\n    label: N\n  - name: audit_10\n",
    )
    with counted_calls() as calls:
        assert run(sandbox, token, "push", "-p", "hekta", "--dry-run", root=library).exit_code == 0
        unconfirmed = run(sandbox, token, "push", "-p", "hekta", root=library)
    assert unconfirmed.exit_code == 1 and "nothing applied" in unconfirmed.output
    assert not [c for c in calls if c[1] in WRITES]


def test_failed_push_says_what_was_applied_and_a_rerun_finishes(
    sandbox: SandboxServer, library: Path
) -> None:
    token = new_project(sandbox, "hekta", library)
    sandbox.faults.configure(1.0, ["error"], contents=["formEventMapping:import"])
    try:
        failed = run(sandbox, token, "push", "-p", "hekta", "--yes", root=library)
    finally:
        sandbox.faults.configure(0.0)
    assert failed.exit_code == 1
    assert "push stopped at mapping" in failed.output
    assert "Applied: events, metadata; not applied: mapping, repeating" in failed.output
    rerun = run(sandbox, token, "push", "-p", "hekta", "--yes", root=library)
    assert rerun.exit_code == 0, rerun.output
    assert "mapping" in rerun.output and "metadata" not in rerun.output.split("Done:")[1]
    assert run(sandbox, token, "plan", "-p", "hekta", root=library).exit_code == 0


def test_production_project_gets_a_draft_mode_bundle(
    sandbox: SandboxServer, pushed: tuple[str, Path], tmp_path: Path
) -> None:
    token, library = pushed
    client = redcap.Project(sandbox.url, token)
    project_id = int(client.export_project_info()["project_id"])
    with sandbox.store.transaction() as conn:
        model = ProjectModel(conn, project_id)
        model.info["in_production"] = 1
        model.save_info()
    edit(
        library,
        "forms/audit.yaml",
        "  - name: audit_10\n",
        "  - name: audit_new\n    type: text\n    label: Ny\n  - name: audit_10\n",
    )
    before = client.export_metadata()
    bundle = tmp_path / "bundle"
    with counted_calls() as calls:
        result = run(
            sandbox, token, "push", "-p", "hekta", "--yes", "--bundle", str(bundle), root=library
        )
    assert result.exit_code == 0, result.output
    assert "in production" in result.output and str(bundle) in result.output
    assert not [c for c in calls if c[1] in WRITES]
    assert client.export_metadata() == before
    assert "audit_new" in (bundle / "plan.txt").read_text()
    assert {p.name for p in bundle.iterdir()} >= {
        "data_dictionary.csv",
        "events.csv",
        "instrument_event_mapping.csv",
        "plan.txt",
        "plan.json",
    }
    # REDCap (here the local server, in development) accepts the bundle's dictionary.
    development = redcap.Project(sandbox.url, new_project(sandbox, "hekta", library))
    text = (bundle / "data_dictionary.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(text.splitlines()))
    assert development.import_metadata(text, import_format="csv") == len(rows)
    assert "audit_new" in [m["field_name"] for m in development.export_metadata()]


def test_plan_errors_exit_1_not_2(sandbox: SandboxServer, tmp_path: Path) -> None:
    missing = CliRunner().invoke(
        cli, ["plan", "-p", "hekta"], env={"REDCAP_API_URL": sandbox.url, "REDCAP_TOKEN_HEKTA": ""}
    )
    assert missing.exit_code == 1 and "REDCAP_TOKEN_HEKTA is not set" in missing.output
    unknown = run(sandbox, "F" * 32, "plan", "-p", "hekta")
    assert unknown.exit_code == 1
    assert unknown.output.strip().endswith(": You do not have permissions to use the API")
