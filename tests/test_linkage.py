"""The linkage list: who is on it (consent, valid and distinct numbers), serial numbers that
stay the same and reveal nothing, files readable by their owner alone, refusals in one line,
and no identity number in any message, log line or output. The command end to end on the local
REDCap-compatible server.

Numbers are stdnum's documentation example, numbers of people born in 1854 (no one born then
was ever given one: numbers date from 1964) and of Skatteetaten's synthetic population."""

from __future__ import annotations

import datetime as dt
import json
import logging
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path

import orjson
import pytest
import redcap
from click.testing import CliRunner
from conftest import synced_trial

from hekta_redcap.cli import cli
from hekta_redcap.core.errors import HektaError
from hekta_redcap.core.settings import Settings
from hekta_redcap.data import sync
from hekta_redcap.data.store import Staged, Store, row_key
from hekta_redcap.definitions.study import Project, load_project
from hekta_redcap.devtools.sandbox.server import SandboxServer
from hekta_redcap.redcap.names import EVENT, REPEAT_INSTRUMENT
from hekta_redcap.registers.linkage import LinkageResult, read_key, write_linkage_list

BASELINE, FOLLOWUP = "baseline_arm_1", "followup_6m_arm_1"
VALID = "15108695088"
BORN_1854 = ["01015450068", "02025450178", "03035450288", "05055452085", "08085455029"]
D_NUMBER = "41015450051"
SYNTHETIC = "17859012310"
BAD_CHECK_DIGIT = "15108695077"
NUMBERS = [VALID, *BORN_1854, D_NUMBER, SYNTHETIC, BAD_CHECK_DIGIT, "1510869508"]

# record -> rows (event, consent to linkage, national identity number)
PEOPLE: dict[str, list[tuple[str, str, str]]] = {
    "1": [(BASELINE, "1", VALID)],
    "2": [(BASELINE, "1", D_NUMBER)],
    "3": [(BASELINE, "1", SYNTHETIC)],
    "4": [(BASELINE, "0", BORN_1854[0])],  # declined
    "5": [(BASELINE, "", BORN_1854[1])],  # not answered
    "6": [(BASELINE, "1", BAD_CHECK_DIGIT)],
    "7": [(BASELINE, "1", "")],  # missing
    "8": [(BASELINE, "1", BORN_1854[2])],  # the same number twice
    "9": [(BASELINE, "1", BORN_1854[2])],
    "10": [(BASELINE, "1", "1510869508"), (FOLLOWUP, "", BORN_1854[3])],  # corrected later
    "11": [(BASELINE, "1", "UNK")],  # a missing data code
}


def store_rows(settings: Settings, people: Mapping[str, Sequence[tuple[str, ...]]]) -> None:
    """Put rows in the store as a sync would (only the columns the linkage list reads): each
    (event, consent to linkage, national identity number[, end-of-study status])."""
    columns = ["record_id", EVENT, "consent_registers", "national_id", "eos_status"]
    template = orjson.dumps(columns).decode()
    with Store.open(settings) as store:
        store.begin_staging()
        staged = []
        for record, rows in people.items():
            keyed = []
            for values in rows:
                padded = [record, *values, *[""] * (4 - len(values))]
                row = dict(zip(columns, padded, strict=True))
                keyed.append((row_key(record, row), "t", orjson.dumps(list(row.values())).decode()))
            staged.append(Staged(record, f"digest-{record}-{len(rows)}", keyed))
        store.stage(staged, {"t": template})
        with store.transaction():
            store.apply_staged("hekta", dt.datetime.now(dt.UTC))


@pytest.fixture
def project() -> Project:
    return load_project("hekta")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    values = {"HEKTA_STORE": str(tmp_path / "store.sqlite3"), "HEKTA_ALLOW_SYNTHETIC_IDS": "1"}
    settings = Settings(values)
    store_rows(settings, PEOPLE)
    return settings


def listed(out: Path) -> list[tuple[str, str]]:
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "fnr;lopenr"
    return [(fnr, lopenr) for fnr, lopenr in (line.split(";") for line in lines[1:])]


def test_the_list_holds_consenting_participants_with_valid_distinct_numbers(
    settings: Settings, project: Project, tmp_path: Path
) -> None:
    out, key = tmp_path / "list" / "linkage.csv", tmp_path / "keys" / "key.csv"
    result = write_linkage_list(settings, project, out, key)
    rows = listed(out)
    assert {fnr for fnr, _ in rows} == {VALID, D_NUMBER, SYNTHETIC, BORN_1854[3]}
    serials = [lopenr for _, lopenr in rows]
    assert serials == sorted(serials) and len(set(serials)) == 4
    assert all(s.isdigit() and len(s) == 8 and s[0] != "0" for s in serials)
    by_record = {record: serial for serial, record in read_key(key).items()}
    assert set(by_record) == {"1", "2", "3", "10"}
    assert dict(rows)[VALID] == by_record["1"]
    assert (result.written, result.kinds) == (
        4,
        {"fødselsnummer": 2, "D-number": 1, "synthetic": 1},
    )
    assert (result.without_consent, result.not_answered, result.new_serials) == (2, 1, 4)
    assert result.text().splitlines() == [
        f"written 4 to {out} (fnr;lopenr, readable by you alone): 2 fødselsnummer, "
        "1 D-number, 1 synthetic",
        f"linkage key {key}: 4 new serial numbers",
        "left out without consent to register linkage: 2 (1 not answered)",
        "to correct, not written: 5",
        "  record 6 (baseline_arm_1, national_id): invalid check digits",
        "  record 7 (baseline_arm_1, national_id): missing",
        "  record 8 (baseline_arm_1, national_id): the same number as record 9",
        "  record 9 (baseline_arm_1, national_id): the same number as record 8",
        "  record 11 (baseline_arm_1, national_id): missing",
    ]


def test_a_withdrawal_ends_linkage_but_not_the_key(
    settings: Settings, project: Project, tmp_path: Path
) -> None:
    """A participant who withdrew is left out of every later list (counted, not listed as a
    number to correct), keeps the serial number the key gave them, and those lost to
    follow-up or deceased stay linked: registers are how they are still followed."""
    key = tmp_path / "keys" / "key.csv"
    write_linkage_list(settings, project, tmp_path / "first.csv", key)
    serials = read_key(key)
    store_rows(
        settings,
        {
            "1": [(BASELINE, "1", VALID, "2")],  # withdrawn
            "2": [(BASELINE, "1", D_NUMBER, "3")],  # lost to follow-up
            "3": [(BASELINE, "1", SYNTHETIC), (FOLLOWUP, "", "", "4")],  # deceased
            "6": [(BASELINE, "1", BAD_CHECK_DIGIT, "2")],  # withdrawn: nothing to correct
        },
    )
    result = write_linkage_list(settings, project, tmp_path / "second.csv", key)
    assert {fnr for fnr, _ in listed(tmp_path / "second.csv")} == {
        D_NUMBER,
        SYNTHETIC,
        BORN_1854[3],
    }
    assert read_key(key) == serials  # record 1 keeps its number, should it be needed again
    assert (result.written, result.stopped, result.without_consent) == (3, {"withdrawn": 2}, 2)
    assert "left out, no longer linked: 2 withdrawn" in result.text().splitlines()
    assert "record 6" not in result.text()


def test_files_are_readable_by_their_owner_alone(
    settings: Settings, project: Project, tmp_path: Path
) -> None:
    out, key = tmp_path / "list" / "linkage.csv", tmp_path / "keys" / "key.csv"
    write_linkage_list(settings, project, out, key)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    key.chmod(0o644)  # opened up by someone: refused, not used
    with pytest.raises(HektaError, match="open to others: make it readable by you alone"):
        write_linkage_list(settings, project, tmp_path / "again.csv", key)
    assert not (tmp_path / "again.csv").exists()


def test_no_number_reaches_logs_output_or_errors(
    settings: Settings,
    project: Project,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    out, key = tmp_path / "linkage.csv", tmp_path / "keys" / "key.csv"
    result = write_linkage_list(settings, project, out, key)
    print(result.text())
    print(result, result.to_correct)
    with pytest.raises(HektaError) as refused:
        write_linkage_list(settings, project, out, key)  # exists
    command = CliRunner().invoke(
        cli,
        ["registers", "linkage-list", "--project", "hekta", "-o", str(tmp_path / "cli.csv")],
        env={**settings.values, "HEKTA_LINKAGE_KEY": str(key)},
    )
    assert command.exit_code == 0, command.output
    captured = capsys.readouterr()
    shown = "\n".join([caplog.text, captured.out, captured.err, str(refused.value), command.output])
    assert "event=registers.linkage_list written=4" in caplog.text
    assert "record 6" in shown
    for number in NUMBERS:
        assert number not in shown


def test_serial_numbers_are_stable_and_new_participants_appended(
    settings: Settings, project: Project, tmp_path: Path
) -> None:
    key = tmp_path / "key.csv"
    write_linkage_list(settings, project, tmp_path / "first.csv", key)
    before = key.read_text(encoding="utf-8")
    first = dict(listed(tmp_path / "first.csv"))
    more = {"12": [(BASELINE, "1", BORN_1854[4])], "6": [(BASELINE, "1", BORN_1854[0])]}
    store_rows(settings, more)  # a new participant, and record 6 corrected
    result = write_linkage_list(settings, project, tmp_path / "second.csv", key)
    after = key.read_text(encoding="utf-8")
    assert after.startswith(before) and len(after.splitlines()) == len(before.splitlines()) + 2
    second = dict(listed(tmp_path / "second.csv"))
    assert {fnr: second[fnr] for fnr in first} == first  # the same serial numbers
    assert set(second) - set(first) == {BORN_1854[4], BORN_1854[0]}
    assert result.new_serials == 2 and result.written == 6
    third = write_linkage_list(settings, project, tmp_path / "third.csv", key)
    assert third.new_serials == 0 and key.read_text(encoding="utf-8") == after
    assert dict(listed(tmp_path / "third.csv")) == second


def test_synthetic_numbers_only_when_allowed(project: Project, tmp_path: Path) -> None:
    settings = Settings({"HEKTA_STORE": str(tmp_path / "store.sqlite3")})
    store_rows(settings, {"1": [(BASELINE, "1", SYNTHETIC)], "2": [(BASELINE, "1", VALID)]})
    result = write_linkage_list(settings, project, tmp_path / "list.csv", tmp_path / "key.csv")
    assert [fnr for fnr, _ in listed(tmp_path / "list.csv")] == [VALID]
    assert [item.text() for item in result.to_correct] == [
        "record 1 (baseline_arm_1, national_id): a synthetic test number "
        "(accepted only with HEKTA_ALLOW_SYNTHETIC_IDS=1)"
    ]


def test_refusals_leave_everything_as_it_was(
    settings: Settings, project: Project, tmp_path: Path
) -> None:
    out, key = tmp_path / "linkage.csv", tmp_path / "keys" / "key.csv"
    out.write_text("kept\n", encoding="utf-8")
    with pytest.raises(HektaError, match="already exists: a linkage list is never overwritten"):
        write_linkage_list(settings, project, out, key)
    assert out.read_text(encoding="utf-8") == "kept\n" and not key.exists()
    export = tmp_path / "export"
    (export / "flow").mkdir(parents=True)
    manifest = {"toolkit": {"name": "hekta-redcap"}, "identifiers_included": False}
    (export / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    for list_file, key_file, what in (
        (export / "flow" / "linkage.csv", key, "linkage list"),
        (tmp_path / "elsewhere.csv", export / "key.csv", "linkage key"),
    ):
        with pytest.raises(HektaError) as refused:
            write_linkage_list(settings, project, list_file, key_file)
        assert f"the {what} must be kept outside the export folder {export}" in str(refused.value)
        assert "\n" not in str(refused.value)
    with pytest.raises(HektaError, match="cannot be the linkage key"):
        write_linkage_list(settings, project, tmp_path / "same.csv", tmp_path / "same.csv")
    assert not key.exists() and not (tmp_path / "elsewhere.csv").exists()
    # another tool's manifest.json (an allocation table's) marks no export folder
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "manifest.json").write_text('{"tables": []}', encoding="utf-8")
    write_linkage_list(settings, project, tmp_path / "tables" / "linkage.csv", key)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("record;serial\n", 1, "not a linkage key: its first line must be record_id;lopenr"),
        ("", 1, "not a linkage key"),
        ("record_id;lopenr\n1;12345678\n2\n", 3, "malformed line"),
        ("record_id;lopenr\n1;12345678\n2;1234567x\n", 3, "malformed line"),
        ("record_id;lopenr\n1;12345678\n\n2;12345678\n", 4, "serial number is already"),
        ("record_id;lopenr\n1;12345678\n1;87654321\n", 3, "record is already"),
    ],
)
def test_a_malformed_key_is_one_line_naming_file_and_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    key = tmp_path / "key.csv"
    key.write_text(text, encoding="utf-8")
    with pytest.raises(HektaError, match=message) as refused:
        read_key(key)
    assert refused.value.origin is not None and refused.value.origin.line == line
    assert "\n" not in str(refused.value)


def test_reading_the_key(tmp_path: Path) -> None:
    key = tmp_path / "key.csv"
    key.write_text("\ufeffrecord_id;lopenr\r\n1;12345678\r\nA-2;87654321\r\n", encoding="utf-8")
    assert read_key(key) == {"12345678": "1", "87654321": "A-2"}
    with pytest.raises(HektaError, match="no linkage key here"):
        read_key(tmp_path / "absent.csv")


def test_an_empty_store_and_a_study_without_linkage(project: Project, tmp_path: Path) -> None:
    settings = Settings({"HEKTA_STORE": str(tmp_path / "store.sqlite3")})
    with pytest.raises(HektaError, match="the store holds no records of hekta"):
        write_linkage_list(settings, project, tmp_path / "list.csv", tmp_path / "key.csv")
    project.study.register_linkage = None
    with pytest.raises(HektaError, match="the study file has no register_linkage"):
        write_linkage_list(settings, project, tmp_path / "list.csv", tmp_path / "key.csv")


# -- the command end to end -----------------------------------------------------------------


VALID_1_TO_3 = {"1": VALID, "2": D_NUMBER, "3": BORN_1854[0]}


@pytest.fixture(scope="module")
def synced(sandbox: SandboxServer, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A trial of 12 synthetic participants on the local server (their numbers wrong on
    purpose), records 1-3 given valid numbers in REDCap at each event that holds one, synced
    into a store."""
    settings = synced_trial(sandbox, tmp_path_factory.mktemp("linkage"), 12, 5)
    with Store.open(settings) as store:
        rows = store.raw_rows("hekta")
    client = redcap.Project(sandbox.url, settings.token("hekta").reveal())
    client.import_records(
        [
            {
                "record_id": r["record_id"],
                EVENT: r[EVENT],
                "national_id": VALID_1_TO_3[r["record_id"]],
            }
            for r in rows
            if r["record_id"] in VALID_1_TO_3 and r["national_id"]
        ]
    )
    sync.run(settings, "hekta")
    return settings


def test_the_command_end_to_end(synced: Settings, tmp_path: Path) -> None:
    with Store.open(synced) as store:
        rows = store.raw_rows("hekta")
    baseline = [r for r in rows if r[EVENT] == BASELINE and not r.get(REPEAT_INSTRUMENT)]
    consent = {r["record_id"]: r["consent_registers"] for r in baseline}
    out, key = tmp_path / "linkage.csv", tmp_path / "keys" / "linkage-key.csv"
    env = {**synced.values, "HEKTA_LINKAGE_KEY": str(key)}
    args = ["registers", "linkage-list", "--project", "hekta", "-o", str(out)]
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 0, result.output
    written = {r for r in VALID_1_TO_3 if consent[r] == "1"}
    assert written, "the cohort's seed gives records 1-3 some consent to linkage"
    assert {fnr for fnr, _ in listed(out)} == {VALID_1_TO_3[r] for r in written}
    assert set(read_key(key).values()) == written
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    wrong = sorted(
        (r for r, c in consent.items() if c == "1" and r not in {"1", "2", "3"}), key=int
    )
    assert wrong, "the cohort's own numbers are invalid: some must be listed"
    corrections = [line for line in result.output.splitlines() if line.startswith("  record")]
    assert [line.split()[1] for line in corrections] == wrong
    assert all(line.endswith(", national_id): invalid check digits") for line in corrections)
    assert f"written {len(written)} to {out}" in result.output
    numbers = {r["national_id"] for r in rows if r.get("national_id")}
    assert not any(number in result.output for number in numbers)
    again = CliRunner().invoke(cli, args, env=env)
    assert again.exit_code != 0 and "already exists" in again.output
    assert not any(number in again.output for number in numbers)


def test_result_text_without_anything_to_correct(tmp_path: Path) -> None:
    result = LinkageResult(tmp_path / "l.csv", tmp_path / "k.csv", {}, 0, 0, 0)
    lines = result.text().splitlines()
    assert lines[0] == f"written 0 to {tmp_path / 'l.csv'} (fnr;lopenr, readable by you alone)"
    assert lines[-1] == "to correct, not written: 0"
