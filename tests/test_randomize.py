"""`hekta-redcap randomize` against the local REDCap-compatible server: each refusal is one line
and exit 1, success prints the record's group and writes rand_date and rand_by, and a call
that fails transiently never randomizes twice. Then the gateway's randomize call at unit level
(`responses`): the older form of the method, and replies that cannot be an allocation."""

from __future__ import annotations

import csv
import datetime as dt
import getpass
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import responses
from click.testing import CliRunner, Result
from conftest import LIBRARY

from hekta_redcap.cli import cli
from hekta_redcap.core.settings import Settings
from hekta_redcap.definitions.study import load_project
from hekta_redcap.devtools.provision import provision
from hekta_redcap.devtools.sandbox.server import SandboxServer
from hekta_redcap.gateway import Gateway, Retry, Unavailable

BASELINE = "baseline_arm_1"
# Site 1 gets 1, 2, 2, 1; site 2 gets 2, 1; site 3 has no slot.
TABLE = [
    ["rand_group", "site"],
    ["1", "1"],
    ["2", "2"],
    ["2", "1"],
    ["1", "2"],
    ["2", "1"],
    ["1", "1"],
]
IPS = "IPS (Individual Placement and Support)"
SELF_HELP = "Self-help package and course"


def consented(record: str, site: str = "1", **changes: str) -> dict[str, str]:
    """A baseline row with eligibility, consent and both baseline forms complete."""
    row = {
        "record_id": record,
        "redcap_event_name": BASELINE,
        "site": site,
        "consent_elig_adult": "1",
        "consent_elig_sud_tx": "1",
        "consent_elig_wants_work": "1",
        "consent_elig_capacity": "1",
        "consent_given": "1",
        "consent_date": "2026-11-30",
        "consent_obtained_by": "KN",
        "consent_version": "2.0",
        "consent_complete": "2",
        "demographics_complete": "2",
    }
    return {**row, **changes}


@pytest.fixture
def trial(sandbox: SandboxServer, tmp_path: Path) -> Iterator[Settings]:
    """The trial project on the local server with the development table loaded and records
    1-4 consented at site 1, 5 at site 2, 6 at site 3; 7 without consent, 8 with demographics
    incomplete, 9 with no site. The server's faults are off again afterwards."""
    provision(sandbox, [load_project("hekta", LIBRARY)], tmp_path / "env")
    settings = Settings.load((tmp_path / "env",), {"HEKTA_REDCAP_BACKOFF_SECONDS": "0"})
    table = tmp_path / "allocation.csv"
    with table.open("w", newline="") as handle:
        csv.writer(handle).writerows(TABLE)
    loaded = CliRunner().invoke(
        cli,
        ["sandbox", "--data", str(sandbox.data_dir), "allocation", "-p", "hekta", str(table)],
        env=dict(settings.values),
    )
    assert loaded.exit_code == 0, loaded.output
    rows = [consented(r) for r in "1234"] + [consented("5", "2"), consented("6", "3")]
    rows += [
        consented("7", consent_given="0"),
        consented("8", demographics_complete="1"),
        consented("9", site=""),
    ]
    Gateway.open(settings, "hekta").import_records(rows)
    try:
        yield settings
    finally:
        sandbox.faults.configure(0.0)


def run(settings: Settings, record: str, *options: str) -> Result:
    return CliRunner().invoke(
        cli, ["randomize", "-p", "hekta", record, *options], env=dict(settings.values)
    )


def stored(settings: Settings, record: str) -> dict[str, str]:
    fields = ["record_id", "rand_group", "rand_date", "rand_by"]
    api = Gateway.open(settings, "hekta")
    [row] = api.export_records(records=[record], fields=fields, events=[BASELINE])
    return {k: row[k] for k in fields[1:]}


def randomize_entries(settings: Settings) -> list[str]:
    """The logged randomizations, as `record: details`."""
    entries = Gateway.open(settings, "hekta").export_logging(log_type="record")
    return [f"{e['record']}: {e['details']}" for e in entries if e["action"].startswith("Random")]


def today() -> dt.date:
    return dt.datetime.now(ZoneInfo("Europe/Oslo")).date()


def test_success_prints_the_group_and_writes_the_date_and_who(trial: Settings) -> None:
    result = run(trial, "1", "--by", "AB", "--lang", "en")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"Record 1 randomized to: {IPS} (rand_group = 1) on {today()}\n"
    [logged] = result.stderr.splitlines()  # the record and the outcome, never the group
    assert logged.startswith("ts=") and logged.endswith(
        "event=randomize record=1 outcome=randomized"
    )
    assert stored(trial, "1") == {"rand_group": "1", "rand_date": str(today()), "rand_by": "AB"}
    result = run(trial, "5")  # site 2, in bokmål, by the login name
    assert result.exit_code == 0, result.output
    shown = today().strftime("%d.%m.%Y")
    assert result.stdout == (
        f"Deltaker 5 er randomisert til: Selvhjelpspakke og kurs (rand_group = 2) den {shown}\n"
    )
    assert stored(trial, "5")["rand_by"] == getpass.getuser()
    result = CliRunner().invoke(
        cli, ["randomize", "-p", "hekta", "2"], env={**trial.values, "HEKTA_USER": "CD"}
    )
    assert result.exit_code == 0, result.output
    assert stored(trial, "2") == {"rand_group": "2", "rand_date": str(today()), "rand_by": "CD"}
    assert randomize_entries(trial) == ["2: rand_group = '2'", "5: rand_group = '2'",
                                        "1: rand_group = '1'"]  # fmt: skip


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ("7", "record 7: no consent at baseline_arm_1: [consent_given] = '1' does not hold"),
        (
            "8",
            "record 8: form demographics is not complete at baseline_arm_1 "
            "(demographics_complete is not 2)",
        ),
        ("9", "record 9: stratum site is blank at baseline_arm_1"),
        ("99", "record 99: no such record at baseline_arm_1"),
        (
            "6",
            "record 6: REDCap refused to randomize: Record '6' cannot be randomized because no "
            "allocation is left in the allocation table for its strata (site = '3')",
        ),
    ],
)
def test_a_refusal_is_one_line_and_exit_1(trial: Settings, record: str, message: str) -> None:
    result = run(trial, record)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert [line for line in result.stderr.splitlines() if not line.startswith("ts=")] == [
        f"error: {message}"
    ]
    assert "Traceback" not in result.output
    if record != "99":
        assert stored(trial, record) == {"rand_group": "", "rand_date": "", "rand_by": ""}
    assert randomize_entries(trial) == []


def test_a_randomized_record_is_refused_without_its_group(trial: Settings) -> None:
    assert run(trial, "1").exit_code == 0
    result = run(trial, "1")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: record 1 is already randomized (rand_group at baseline_arm_1 is filled)"
    ]
    assert randomize_entries(trial) == ["1: rand_group = '1'"]


def test_the_randomization_id_setting(trial: Settings) -> None:
    result = CliRunner().invoke(
        cli,
        ["randomize", "-p", "hekta", "1"],
        env={**trial.values, "REDCAP_RANDOMIZATION_ID_HEKTA": "999"},
    )
    assert (result.exit_code, result.stderr.splitlines()[-1]) == (
        1,
        "error: record 1: REDCap refused to randomize: The value of the parameter "
        '"randomization_id" is not valid',
    )
    result = CliRunner().invoke(
        cli,
        ["randomize", "-p", "hekta", "1"],
        env={**trial.values, "REDCAP_RANDOMIZATION_ID_HEKTA": "first"},
    )
    assert (result.exit_code, result.stderr) == (
        2,
        "error: REDCAP_RANDOMIZATION_ID_HEKTA must be a whole number of 1 or more "
        "(see .env.example)\n",
    )


@pytest.mark.parametrize("kind", ["drop", "truncate", "error", "html"])
def test_a_transient_fault_never_randomizes_twice(
    sandbox: SandboxServer, trial: Settings, kind: str
) -> None:
    """The first randomize call fails (`drop` and `truncate` after the server did the work);
    faults go off when the gateway logs its retry."""

    class FaultsOffOnRetry(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "call=randomize" in record.getMessage():
                sandbox.faults.configure(0.0)

    handler = FaultsOffOnRetry()
    logging.getLogger("hekta_redcap.gateway").addHandler(handler)
    sandbox.faults.configure(1.0, [kind], contents=["record:randomize"])
    try:
        result = run(trial, "3", "--lang", "en", "--by", "EF")
    finally:
        logging.getLogger("hekta_redcap.gateway").removeHandler(handler)
    assert result.exit_code == 0, result.output
    assert sandbox.faults.injected[-1:] == [kind]
    assert result.stdout == f"Record 3 randomized to: {IPS} (rand_group = 1) on {today()}\n"
    outcome = "randomized-after-retry" if kind in ("drop", "truncate") else "randomized"
    assert f"event=randomize record=3 outcome={outcome}" in result.stderr
    assert randomize_entries(trial) == ["3: rand_group = '1'"]
    assert stored(trial, "3") == {"rand_group": "1", "rand_date": str(today()), "rand_by": "EF"}
    assert run(trial, "4", "--lang", "en").stdout.startswith("Record 4 randomized to: Self-help")


# -- the gateway's call at unit level ---------------------------------------------------------

URL = "https://redcap.example.org/api/"
TOKEN = "0123456789ABCDEF0123456789ABCDEF"
REPLY = {"record": "5", "target_field": "rand_group", "target_value": "1"}


def gateway(attempts: int = 3) -> Gateway:
    return Gateway(URL, TOKEN, retry=Retry(attempts=attempts, jitter=None, sleep=lambda _: None))


@responses.activate
def test_the_older_form_of_the_method_is_tried_once_when_refused() -> None:
    refusal = {"error": 'The value of the parameter "action" is not valid'}
    responses.add(responses.POST, URL, json=refusal, status=400)
    responses.add(responses.POST, URL, json=REPLY)
    assert gateway().randomize("5", 2) == REPLY
    sent = [str(call.request.body) for call in responses.calls]
    assert [("content=record" in s, "content=randomization" in s) for s in sent] == [
        (True, False),
        (False, True),
    ]
    assert all("action=randomize" in s and "randomization_id=2" in s for s in sent)


@pytest.mark.parametrize(
    "body",
    [
        json.dumps([REPLY]),  # a list
        json.dumps({**REPLY, "record": "6"}),  # another record's
        json.dumps({"record": "5", "target_field": "rand_group"}),  # no value
        json.dumps({**REPLY, "target_value": 1}),  # not text
        json.dumps(REPLY)[:20],  # cut short
    ],
)
@responses.activate
def test_a_reply_that_is_not_the_records_allocation_is_never_taken(body: str) -> None:
    for _ in range(3):
        responses.add(responses.POST, URL, body=body, status=200)
    with pytest.raises(Unavailable) as failed:
        gateway().randomize("5", None)
    assert str(failed.value).startswith(f"REDCap at {URL}: randomize failed 3 times")
    assert all("randomization_id" not in str(c.request.body) for c in responses.calls)
