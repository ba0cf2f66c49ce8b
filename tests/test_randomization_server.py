"""REDCap's randomization module on the local REDCap-compatible server: the allocation table
loaded by `hekta-redcap sandbox allocation` (as on REDCap's setup and upload pages), the API
method that randomizes one record, its logging, the record import that then keeps the target
and strata as they are, and the unused slots that never leave the server."""

from __future__ import annotations

import csv
import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner, Result
from sandbox_support import CREATOR, LONGITUDINAL_DICTIONARY, Handle, dictionary_rows, seed_project

from hekta_redcap.cli import cli
from hekta_redcap.devtools.sandbox.server import SandboxServer

# The seeded longitudinal project, with a stratum `site` and a yes/no `smoker` on the
# enrollment form (baseline_arm_1 and baseline_arm_2); `group` (1 Drug, 2 Placebo) is the target.
STRATA_FIELDS = (
    'site,enrollment,,dropdown,Site,"1, Oslo | 2, Bergen | 3, Tromsø",,,,,,,,,,,,\n'
    "smoker,enrollment,,yesno,Smoker,,,,,,,,,,,,,\n"
    'booster,enrollment,,radio,Booster,"1, Yes | 2, No",,,,,,,,,,,,\n'
)
DICTIONARY = LONGITUDINAL_DICTIONARY.replace(
    '"1, Drug | 2, Placebo",,,,,,,,,,,,\n', '"1, Drug | 2, Placebo",,,,,,,,,,,,\n' + STRATA_FIELDS
)
BASELINE = "baseline_arm_1"
LOCKED = (
    "This field ('{}') is the randomization field or a stratification field, and the record "
    "has already been randomized, so its value cannot be changed."
)
# The development table: site 1 gets 2, 1, 2; site 2 gets 1, 2 (rows interleaved).
DEVELOPMENT = [["group", "site"], ["2", "1"], ["1", "2"], ["1", "1"], ["2", "2"], ["2", "1"]]
PRODUCTION = [["group", "site"], ["1", "1"], ["2", "1"], ["2", "2"], ["1", "2"]]


@pytest.fixture
def trial(sandbox: SandboxServer) -> Handle:
    """A longitudinal project with the strata fields, records 1-6 at baseline: 1, 3, 4 and 6
    at site 1, 2 and 5 at site 2; record 7 has no site."""
    handle = seed_project(sandbox, "longitudinal")
    with sandbox.store.transaction() as conn:
        handle.model(conn).replace_metadata(dictionary_rows(DICTIONARY))
    for record, site in (("1", "1"), ("2", "2"), ("3", "1"), ("4", "1"), ("5", "2"), ("6", "1")):
        handle.put(record, {"site": site, "smoker": "0"}, BASELINE)
    handle.put("7", {"smoker": "1"}, BASELINE)
    return handle


def write_table(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return path


def allocation(handle: Handle, table: Path, *options: str) -> Result:
    """`hekta-redcap sandbox allocation` on the session's server (the project by its token)."""
    command = ["sandbox", "--data", str(handle.server.data_dir), "allocation", "-p", "trial"]
    return CliRunner().invoke(
        cli, [*command, str(table), *options], env={"REDCAP_TOKEN_TRIAL": handle.token}
    )


def upload(handle: Handle, tmp_path: Path, rows: list[list[str]], *options: str) -> Result:
    name = "-".join(rows[0]) + "".join(options)
    result = allocation(handle, write_table(tmp_path / f"{name}.csv", rows), *options)
    assert result.exit_code == 0, result.output
    return result


def post(handle: Handle, token: str | None = None, **data: Any) -> requests.Response:
    data = {"token": token or handle.token, "format": "json", **data}
    return requests.post(handle.url, data=data, timeout=10)


def randomize(handle: Handle, record: str, **data: Any) -> requests.Response:
    return post(handle, content="record", action="randomize", record=record, **data)


def project_xml(handle: Handle) -> str:
    """The project XML with its data, without the moment it was written."""
    text = post(handle, content="project_xml", returnMetadataOnly="false").text
    return re.sub(r"\d{4}-\d{2}-\d{2}[T_]\d{2}:?\d{2}(:\d{2})?", "<moment>", text)


def groups(handle: Handle) -> dict[str, str]:
    """Each record's stored group at baseline (blank ones left out)."""
    rows = handle.pycap().export_records(fields=["record_id", "group"], events=[BASELINE])
    return {r["record_id"]: r["group"] for r in rows if r["group"]}


def test_the_allocation_command_sets_up_randomization_and_prints_its_id(
    trial: Handle, tmp_path: Path
) -> None:
    assert trial.pycap().export_project_info()["randomization_enabled"] == 0
    result = upload(trial, tmp_path, DEVELOPMENT)
    with trial.server.store.transaction() as conn:
        [randomization] = trial.model(conn).randomizations
    assert result.output == (
        f"trial: randomization id {randomization.rid} (group, site); development allocation "
        "table loaded with 5 slots\n"
    )
    assert trial.pycap().export_project_info()["randomization_enabled"] == 1


def test_each_record_gets_the_next_free_slot_of_its_stratum_in_table_order(
    trial: Handle, tmp_path: Path
) -> None:
    upload(trial, tmp_path, DEVELOPMENT)
    replies = {record: randomize(trial, record) for record in ("1", "2", "3", "5", "4")}
    assert {r: (reply.status_code, reply.json()) for r, reply in replies.items()} == {
        "1": (200, {"record": "1", "target_field": "group", "target_value": "2"}),
        "2": (200, {"record": "2", "target_field": "group", "target_value": "1"}),
        "3": (200, {"record": "3", "target_field": "group", "target_value": "1"}),
        "5": (200, {"record": "5", "target_field": "group", "target_value": "2"}),
        "4": (200, {"record": "4", "target_field": "group", "target_value": "2"}),
    }
    assert groups(trial) == {"1": "2", "2": "1", "3": "1", "4": "2", "5": "2"}


def test_both_forms_of_the_method_and_return_alt(trial: Handle, tmp_path: Path) -> None:
    upload(trial, tmp_path, DEVELOPMENT)
    reply = post(trial, content="randomization", action="randomize", record="1", returnAlt="true")
    assert reply.json() == {
        "record": "1",
        "target_field": "group",
        "target_value": "2",
        "target_value_alt": "",
    }
    reply = post(trial, content="record", action="randomize", record="2", format="csv")
    assert reply.text == "record,target_field,target_value\n2,group,1\n"


def test_a_randomization_is_logged_with_who_and_the_value(trial: Handle, tmp_path: Path) -> None:
    upload(trial, tmp_path, DEVELOPMENT)
    randomize(trial, "3")
    entries = trial.pycap().export_logging(log_type="record")
    [entry] = [e for e in entries if e["action"].startswith("Randomize")]
    assert {k: entry[k] for k in ("username", "action", "details", "record")} == {
        "username": CREATOR,
        "action": "Randomize record 3",
        "details": "group = '2'",
        "record": "3",
    }


def test_import_refuses_to_change_the_target_or_a_stratum_of_a_randomized_record(
    trial: Handle, tmp_path: Path
) -> None:
    upload(trial, tmp_path, DEVELOPMENT)
    randomize(trial, "1")  # group 2
    project = trial.pycap()
    for field, value in (("group", "1"), ("site", "2")):
        row = {"record_id": "1", "redcap_event_name": BASELINE, field: value}
        reply = post(trial, content="record", action="import", data=json.dumps([row]))
        assert (reply.status_code, reply.json()) == (
            400,
            {"error": f'"1","{field}","{value}","{LOCKED.format(field)}"'},
        )
    erased = {"record_id": "1", "redcap_event_name": BASELINE, "group": ""}
    reply = post(
        trial,
        content="record",
        action="import",
        overwriteBehavior="overwrite",
        data=json.dumps([erased]),
    )
    assert reply.status_code == 400 and LOCKED.format("group") in reply.text
    # the whole import is refused, the other record's row too
    rows = [
        {"record_id": "2", "redcap_event_name": BASELINE, "smoker": "1"},
        {"record_id": "1", "redcap_event_name": BASELINE, "site": "2"},
    ]
    assert post(trial, content="record", action="import", data=json.dumps(rows)).status_code == 400
    [row] = project.export_records(records=["2"], fields=["smoker"], events=[BASELINE])
    assert row["smoker"] == "0"
    assert groups(trial) == {"1": "2"}


def test_import_takes_the_same_values_again_and_other_fields(trial: Handle, tmp_path: Path) -> None:
    upload(trial, tmp_path, DEVELOPMENT)
    randomize(trial, "1")  # group 2, site 1
    same = {"record_id": "1", "redcap_event_name": BASELINE, "group": "2", "site": "1"}
    other = {"record_id": "1", "redcap_event_name": BASELINE, "smoker": "1", "site": ""}
    not_randomized = {"record_id": "3", "redcap_event_name": BASELINE, "site": "2"}
    assert trial.pycap().import_records([same, other, not_randomized]) == {"count": 2}
    [row] = trial.pycap().export_records(records=["1"], events=[BASELINE])
    assert (row["group"], row["site"], row["smoker"]) == ("2", "1", "1")


def test_unused_slots_never_leave_the_server(trial: Handle, tmp_path: Path) -> None:
    project = trial.pycap()
    before = project_xml(trial)
    upload(trial, tmp_path, DEVELOPMENT)
    upload(trial, tmp_path, PRODUCTION, "--production")
    after = project_xml(trial)
    enabled = "<redcap:RandomizationEnabled>1</redcap:RandomizationEnabled>"
    assert enabled in after
    assert after.replace(enabled, enabled.replace("1", "0")) == before
    randomize(trial, "1")
    assert groups(trial) == {"1": "2"}
    assert re.findall(r'<ItemData ItemOID="group" Value="(\d)"', project_xml(trial)) == ["2"]
    entries = project.export_logging()
    assert [e["details"] for e in entries if "group =" in e["details"]] == ["group = '2'"]


def test_no_slot_left_refuses_and_randomizes_nobody(trial: Handle, tmp_path: Path) -> None:
    upload(trial, tmp_path, DEVELOPMENT)
    for record in ("2", "5", "6", "1", "3"):  # site 2 has 2 slots, site 1 has 3
        assert randomize(trial, record).status_code == 200
    reply = randomize(trial, "4")
    assert (reply.status_code, reply.json()) == (
        400,
        {
            "error": "Record '4' cannot be randomized because no allocation is left in the "
            "allocation table for its strata (site = '1')"
        },
    )
    assert "4" not in groups(trial)


def test_refusals(trial: Handle, tmp_path: Path) -> None:
    reply = randomize(trial, "1")
    assert (reply.status_code, reply.json()) == (
        400,
        {"error": "Randomization is not enabled in this project"},
    )
    upload(trial, tmp_path, DEVELOPMENT)
    randomize(trial, "1")
    expected = {
        "1": "Record '1' has already been randomized",
        "7": "Record '7' cannot be randomized because these stratification fields have no "
        "value: site",
        "99": 'The record "99" does not exist',
    }
    for record, message in expected.items():
        reply = randomize(trial, record)
        assert (reply.status_code, reply.json()) == (400, {"error": message})
    reply = randomize(trial, "3", randomization_id="999")
    assert reply.json() == {"error": 'The value of the parameter "randomization_id" is not valid'}
    nurse = trial.add_user("nurse", random_perform=0)
    reply = randomize(trial, "3", token=nurse)
    assert (reply.status_code, reply.json()) == (
        403,
        {"error": "You do not have Randomize privileges"},
    )
    assert groups(trial) == {"1": "2"}


def test_the_production_table_is_used_once_the_project_is_in_production(
    trial: Handle, tmp_path: Path
) -> None:
    upload(trial, tmp_path, DEVELOPMENT)
    upload(trial, tmp_path, PRODUCTION, "--production")
    assert randomize(trial, "1").json()["target_value"] == "2"  # development: 2, 1, 2
    with trial.server.store.transaction() as conn:  # REDCap's "Move project to production"
        model = trial.model(conn)
        model.info["in_production"] = 1
        model.save_info()
    assert [randomize(trial, r).json()["target_value"] for r in ("3", "4")] == ["1", "2"]


def test_a_data_access_group_stratum(trial: Handle, tmp_path: Path) -> None:
    project = trial.pycap()
    project.import_dags([{"data_access_group_name": "Oslo", "unique_group_name": ""}])
    project.import_dags([{"data_access_group_name": "Bergen", "unique_group_name": ""}])
    rows = [{"record_id": r, "redcap_event_name": BASELINE, "redcap_data_access_group": dag}
            for r, dag in (("1", "oslo"), ("2", "bergen"), ("3", "oslo"))]  # fmt: skip
    project.import_records(rows)
    table = [["group", "redcap_data_access_group"], ["2", "oslo"], ["1", "bergen"], ["1", "oslo"]]
    upload(trial, tmp_path, table)
    assert [randomize(trial, r).json()["target_value"] for r in ("1", "2", "3")] == ["2", "1", "1"]
    reply = randomize(trial, "4")  # in no group
    assert reply.json()["error"].endswith("no value: redcap_data_access_group")
    moved = {"record_id": "1", "redcap_event_name": BASELINE, "redcap_data_access_group": "bergen"}
    reply = post(trial, content="record", action="import", data=json.dumps([moved]))
    assert reply.json() == {
        "error": f'"1","redcap_data_access_group","bergen","'
        f'{LOCKED.format("redcap_data_access_group")}"'
    }


def test_two_calls_at_once_never_get_the_same_slot(trial: Handle, tmp_path: Path) -> None:
    records = [str(n) for n in range(10, 40)]
    for record in records:
        trial.put(record, {"site": "3"}, BASELINE)
    table = [["group", "site"]] + [[str(1 + n % 2), "3"] for n in range(30)]
    upload(trial, tmp_path, table)
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda r: randomize(trial, r), records))
    assert all(reply.status_code == 200 for reply in replies)
    with trial.server.store.transaction() as conn:
        used = conn.execute(
            "SELECT record FROM allocation JOIN randomization USING (rid) "
            "WHERE project_id = ? AND record IS NOT NULL",
            (trial.project_id,),
        ).fetchall()
    assert sorted(r[0] for r in used) == sorted(records)  # 30 slots, each to one record
    assert sorted(groups(trial).values()) == ["1"] * 15 + ["2"] * 15


def test_a_renamed_record_stays_randomized(trial: Handle, tmp_path: Path) -> None:
    upload(trial, tmp_path, DEVELOPMENT)
    randomize(trial, "1")
    assert post(trial, content="record", action="rename", record="1", new_record_name="101").ok
    assert randomize(trial, "101").json() == {"error": "Record '101' has already been randomized"}


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [["group", "site"], ["2", "1"], ["3", "2"]],
            "table.csv:3: column 1 (group): '3' is not one of its codes (1, 2)",
        ),
        (
            [["group", "site"], ["2", "1"], ["1", "Oslo"]],
            "table.csv:3: column 2 (site): 'Oslo' is not one of its codes (1, 2, 3)",
        ),
        (
            [["group", "colour"], ["2", "1"]],
            "table.csv:1: column 2: 'colour' is not a field of the project",
        ),
        (
            [["weight", "site"], ["2", "1"]],
            "table.csv:1: column 1: 'weight' must be a radio or dropdown field collected at an "
            "event",
        ),
        (
            [["group", "redcap_data_access_group"], ["2", "oslo"]],
            "table.csv:2: column 2 (redcap_data_access_group): 'oslo' is not one of its codes ()",
        ),
        (
            [["group", "site"]],
            "table.csv: an allocation table needs a header and at least one slot",
        ),
    ],
)
def test_a_table_the_setup_page_would_refuse(
    trial: Handle, tmp_path: Path, rows: list[list[str]], message: str
) -> None:
    result = allocation(trial, write_table(tmp_path / "table.csv", rows))
    assert result.exit_code == 1
    assert result.output.splitlines() == [f"error: {tmp_path}/{message}"]
    assert trial.pycap().export_project_info()["randomization_enabled"] == 0


def test_a_table_in_use_stays_and_strata_stay_the_same(trial: Handle, tmp_path: Path) -> None:
    upload(trial, tmp_path, DEVELOPMENT)
    other = allocation(
        trial, write_table(tmp_path / "other.csv", [["group", "smoker"], ["1", "0"]])
    )
    assert other.exit_code == 1
    assert "randomization" in other.output and "has the columns group, site" in other.output
    randomize(trial, "1")
    again = allocation(trial, write_table(tmp_path / "again.csv", DEVELOPMENT))
    assert again.exit_code == 1 and "is in use" in again.output
    assert randomize(trial, "3").json()["target_value"] == "1"  # the table as it was


def test_two_randomizations_of_one_project(trial: Handle, tmp_path: Path) -> None:
    group, booster = (
        re.findall(r"randomization id (\d+)", upload(trial, tmp_path, rows).output)[0]
        for rows in (DEVELOPMENT, [["booster", "smoker"], ["2", "0"], ["1", "0"]])
    )
    reply = randomize(trial, "1")
    assert reply.json() == {"error": 'The parameter "randomization_id" is missing'}
    assert randomize(trial, "1", randomization_id=booster).json()["target_value"] == "2"
    assert randomize(trial, "1", randomization_id=group).json()["target_value"] == "2"
    reply = randomize(trial, "1", randomization_id=booster)
    assert reply.json() == {"error": "Record '1' has already been randomized"}
    assert randomize(trial, "3", randomization_id=booster).json()["target_value"] == "1"
