"""`hekta-redcap export` end to end: from a store synced from the local REDCap-compatible server
to a folder with tables, codebook, flow report and a manifest whose checksums hold."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pandas as pd
import pyreadstat
import pytest
from click.testing import CliRunner
from conftest import LIBRARY, synced_trial

from hekta_redcap.cli import cli
from hekta_redcap.core.settings import Settings
from hekta_redcap.definitions.study import load_project
from hekta_redcap.devtools.cohort import generate
from hekta_redcap.devtools.registers import deliveries, synthetic_key
from hekta_redcap.devtools.sandbox.server import SandboxServer
from hekta_redcap.registers.delivery import import_delivery


@pytest.fixture(scope="module")
def synced(sandbox: SandboxServer, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A provisioned trial with 40 synthetic participants, synced into a store."""
    return synced_trial(sandbox, tmp_path_factory.mktemp("export"), 40, 21)


def _export(settings: Settings, *args: str) -> CliRunner:
    return CliRunner().invoke(
        cli, ["export", "--project", "hekta", *args], env=dict(settings.values)
    )


@pytest.fixture(scope="module")
def linked(synced: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The synced trial with one synthetic delivery per register imported (the cohort's own:
    the same participants and seed), covering up to 31 October 2026."""
    where = tmp_path_factory.mktemp("registers")
    settings = Settings(
        {
            **synced.values,
            "HEKTA_REGISTER_DIR": str(where / "store"),
            "HEKTA_LINKAGE_KEY": str(where / "keys" / "linkage-key.csv"),
        }
    )
    cohort = generate(load_project("hekta", LIBRARY), 40, seed=21)
    key = synthetic_key(cohort)
    settings.linkage_key.parent.mkdir()
    lines = ["record_id;lopenr", *(f"{record};{serial}" for record, serial in key.items())]
    settings.linkage_key.write_text("\n".join(lines) + "\n", encoding="utf-8")
    made = deliveries(cohort, key, until=dt.date(2026, 10, 31), errors=False)
    for source, delivery in made.items():
        file = delivery.write(where / f"{source}.csv")
        imported = import_delivery(
            settings, LIBRARY, source, file, settings.linkage_key, delivery.period_text, None
        )
        assert not imported.rejected
    return settings


def test_register_tables_join_the_export_de_identified(linked: Settings, tmp_path: Path) -> None:
    out, key = tmp_path / "export", tmp_path / "keys" / "hekta.json"
    result = _export(
        linked, "--format", "csv", "-o", str(out), "--pseudonyms", str(key), "--months", "18,60"
    )
    assert result.exit_code == 0, result.output
    assert (
        "register tables: outcomes at 18, 60 months; deliveries cover aa 01.12.2022-31.10.2026"
        in result.output
    )
    panel = pd.read_csv(out / "register_panel.csv", dtype=str)
    outcomes = pd.read_csv(out / "register_outcomes.csv", dtype=str)
    employment = pd.read_csv(out / "employment_outcomes.csv", dtype=str)
    assert len(panel) == 144 * panel["record_id"].nunique()
    assert set(outcomes["horizon"]) == {"18", "60"}
    assert set(panel["record_id"]) == set(outcomes["record_id"]) == set(employment["record_id"])
    assert panel["record_id"].str.match(r"P[0-9A-F]{10}$").all()
    assert {"employed_competitive", "benefit_AAP", "npr_TSB", "kpr_contacts"} <= set(panel)
    serials = set(pd.read_csv(linked.linkage_key, sep=";", dtype=str)["lopenr"])
    for file in out.rglob("*"):  # no serial number anywhere in the folder
        if file.suffix in (".csv", ".json", ".md", ".html"):
            text = file.read_text(encoding="utf-8")
            assert "lopenr" not in text and not any(s in text for s in serials), file
    manifest = json.loads((out / "manifest.json").read_text())
    names = {t["name"] for t in manifest["tables"]}
    assert {"register_panel", "register_outcomes"} <= names
    assert {"register_panel.csv", "register_outcomes.labels.json"} <= {
        f["file"] for f in manifest["files"]
    }
    registers = manifest["registers"]
    assert registers["horizons"] == [18, 60]
    assert registers["covered_until"]["kpr"] == "2026-10-31"
    assert registers["covered"]["kpr"] == [["2022-12-01", "2026-10-31"]]
    assert all(len(ids) == 1 for ids in registers["deliveries"].values())
    labels = json.loads((out / "register_outcomes.labels.json").read_text())
    assert labels["labels"]["any_competitive"] == "Ordinært arbeid i minst én av månedene 1 til H"
    assert labels["value_labels"]["complete"] == {"1": "Ja", "0": "Nei"}
    codebook = (out / "codebook.md").read_text(encoding="utf-8")
    assert "## Registerdata per måned (`register_panel`)" in codebook
    assert "`fd_trygd.ytelse = AAP`" in codebook
    stata = _export(linked, "--format", "dta", "-o", str(tmp_path / "dta"), "--months", "120")
    assert stata.exit_code == 0, stata.output
    frame, meta = pyreadstat.read_dta(tmp_path / "dta" / "register_outcomes.dta")
    assert set(frame["horizon"]) == {120} and not frame["complete"].any()
    assert meta.variable_value_labels["arm"] == {1: "IPS (Individuell jobbstøtte)",
                                                 2: "Selvhjelpspakke og kurs"}  # fmt: skip


def test_register_horizons_are_checked(linked: Settings, tmp_path: Path) -> None:
    for months, message in (("18,abc", "expected whole months"), ("0,18", "1 to 120 months")):
        result = _export(linked, "-o", str(tmp_path / months), "--months", months)
        assert result.exit_code != 0 and message in result.output, result.output
        assert not (tmp_path / months / "manifest.json").exists()


def test_an_export_folder_an_analysis_can_cite(synced: Settings, tmp_path: Path) -> None:
    out, key = tmp_path / "export", tmp_path / "keys" / "hekta.json"
    result = _export(synced, "--format", "dta", "-o", str(out), "--pseudonyms", str(key))
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    listed = {f["file"]: f["sha256"] for f in manifest["files"]}
    expected = {
        "long.dta",
        "employment_outcomes.dta",
        "codebook.html",
        "codebook.md",
        "flow/consort.png",
        "flow/consort.svg",
        "flow/flow.csv",
        "flow/retention.png",
    }
    assert expected <= set(listed)
    for name, digest in listed.items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest
    assert manifest["pseudonymised"] and not manifest["identifiers_included"]
    assert manifest["last_sync"] is not None and manifest["shape"] == "long"
    frame, meta = pyreadstat.read_dta(out / "long.dta")
    assert frame["record_id"].str.match(r"P[0-9A-F]{10}$").all()
    assert "contact_mobile" not in frame.columns and "national_id" not in frame.columns
    assert meta.column_names_to_labels["rand_group"]
    assert key.is_file()  # the key stays outside the folder
    again = _export(synced, "--format", "csv", "-o", str(tmp_path / "again"), "--pseudonyms",
                    str(key))  # fmt: skip
    assert again.exit_code == 0, again.output
    ids = pd.read_csv(tmp_path / "again" / "employment_outcomes.csv", dtype=str)["record_id"]
    assert set(ids) == set(frame["record_id"])  # the same pseudonyms in every export


def test_identifiers_need_the_flag_and_the_manifest_says_so(
    synced: Settings, tmp_path: Path
) -> None:
    result = _export(synced, "--shape", "wide", "-o", str(tmp_path), "--include-identifiers")
    assert result.exit_code == 0, result.output
    assert "holds identifying data" in result.output
    wide = pd.read_csv(tmp_path / "wide.csv", dtype=str)
    assert any(c.startswith("contact_mobile") for c in wide.columns)
    assert json.loads((tmp_path / "manifest.json").read_text())["identifiers_included"]


def test_a_key_file_inside_the_folder_is_refused(synced: Settings, tmp_path: Path) -> None:
    result = _export(synced, "-o", str(tmp_path), "--pseudonyms", str(tmp_path / "key.json"))
    assert result.exit_code != 0
    assert "must be kept outside the export folder" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "manifest.json").exists()


def test_followups_complete_the_register_step_from_the_deliveries(
    linked: Settings, tmp_path: Path
) -> None:
    """The deliveries cover up to 31.10.2026: the 18-month register step is complete exactly for
    those linked whose month 18 ends by then (target date 1 November 2026 or sooner)."""
    out = tmp_path / "work.csv"
    result = CliRunner().invoke(
        cli,
        ["followups", "--project", "hekta", "--as-of", "2026-11-01", "--csv", str(out)],
        env=dict(linked.values),
    )
    assert result.exit_code == 0, result.output
    work = pd.read_csv(out, dtype=str)
    register = work[work["event"] == "register_18m_arm_1"]
    linked_records = set(pd.read_csv(linked.linkage_key, sep=";", dtype=str)["record_id"])
    due = pd.to_datetime(register["target_date"]) <= pd.Timestamp("2026-11-01")
    due &= register["record_id"].isin(linked_records)
    assert due.any() and (~due).any()
    assert (register["state"] == "completed").tolist() == due.tolist()
