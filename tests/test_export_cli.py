"""`hekta-redcap export` end to end: from a store synced from the local REDCap-compatible server
to a folder with tables, codebook, flow report and a manifest whose checksums hold."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pyreadstat
import pytest
from click.testing import CliRunner
from conftest import synced_trial

from hekta_redcap.cli import cli
from hekta_redcap.core.settings import Settings
from hekta_redcap.devtools.sandbox.server import SandboxServer


@pytest.fixture(scope="module")
def synced(sandbox: SandboxServer, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A provisioned trial with 40 synthetic participants, synced into a store."""
    return synced_trial(sandbox, tmp_path_factory.mktemp("export"), 40, 21)


def _export(settings: Settings, *args: str) -> CliRunner:
    return CliRunner().invoke(
        cli, ["export", "--project", "hekta", *args], env=dict(settings.values)
    )


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
