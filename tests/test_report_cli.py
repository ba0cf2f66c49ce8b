"""`hekta-redcap report` end to end: from a store synced from the local REDCap-compatible server
to a folder with the HTML report, its tables and figures; the numbers are the export's flow
report's for the same day; mistakes are one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner, Result
from conftest import synced_trial

from hekta_redcap.cli import cli
from hekta_redcap.core.settings import Settings
from hekta_redcap.devtools.sandbox.server import SandboxServer

AS_OF = "2026-06-01"


@pytest.fixture(scope="module")
def synced(sandbox: SandboxServer, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A provisioned trial with 40 synthetic participants, synced into a store."""
    return synced_trial(sandbox, tmp_path_factory.mktemp("report"), 40, 21)


def _run(settings: Settings, command: str, *args: str) -> Result:
    return CliRunner().invoke(
        cli, [command, "--project", "hekta", *args], env=dict(settings.values)
    )


def test_the_report_and_the_export_count_the_same(synced: Settings, tmp_path: Path) -> None:
    """On a day after all the data (here: today, both commands' default) the report cuts
    nothing, and its flow is the export's flow report's."""
    report = _run(synced, "report", "-o", str(tmp_path / "report"))
    assert report.exit_code == 0, report.output
    assert f"report: {tmp_path / 'report' / 'report.html'}" in report.output
    export = _run(synced, "export", "-o", str(tmp_path / "export"))
    assert export.exit_code == 0, export.output
    ours = pd.read_csv(tmp_path / "report" / "flow.csv", dtype=str, keep_default_na=False)
    theirs = pd.read_csv(
        tmp_path / "export" / "flow" / "flow.csv", dtype=str, keep_default_na=False
    )
    assert ours["Totalt"].tolist() == theirs["Totalt"].tolist()
    assert ours.loc[ours["Steg"] == "Randomisert", "Totalt"].tolist() == ["40"]
    assert list(ours.columns) == ["Steg", "A", "B", "Totalt"]
    # the export's flow report names the arms; the blinded report's columns are its columns
    assert ours[["A", "B"]].to_numpy().tolist() == theirs.iloc[:, 2:4].to_numpy().tolist()
    monthly = pd.read_csv(tmp_path / "report" / "recruitment_monthly.csv")
    assert monthly["Kumulativt"].iloc[-1] == 40
    html = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    assert "AVBLINDET" not in html


def test_as_of_cuts_the_later_records(synced: Settings, tmp_path: Path) -> None:
    result = _run(synced, "report", "-o", str(tmp_path), "--as-of", AS_OF)
    assert result.exit_code == 0, result.output
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "Per 01.06.2026" in html
    monthly = pd.read_csv(tmp_path / "recruitment_monthly.csv")
    assert monthly["Måned"].iloc[-1] == "2026-06"
    assert monthly["Kumulativt"].iloc[-1] < 40


def test_unblinded_says_so(synced: Settings, tmp_path: Path) -> None:
    result = _run(synced, "report", "-o", str(tmp_path), "--unblinded", "--lang", "en")
    assert result.exit_code == 0, result.output
    assert "UNBLINDED" in result.output
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert html.count("UNBLINDED") >= 11


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--as-of", "2026-13-01"], "error: --as-of: '2026-13-01' is not a date (YYYY-MM-DD)"),
        (["--as-of", "01.06.2026"], "error: --as-of: '01.06.2026' is not a date (YYYY-MM-DD)"),
    ],
)
def test_a_bad_date_is_one_line(
    synced: Settings, tmp_path: Path, args: list[str], message: str
) -> None:
    result = _run(synced, "report", "-o", str(tmp_path), *args)
    assert result.exit_code == 1
    assert result.output.strip() == message
    assert not tmp_path.joinpath("report.html").exists()


def test_an_unknown_project_is_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hekta_redcap", "report", "-p", "nope", "-o", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "no study file for project 'nope'" in result.stderr


def test_an_empty_store_is_one_line(tmp_path: Path) -> None:
    settings = Settings.load((), {"HEKTA_STORE": str(tmp_path / "store.sqlite3")})
    result = _run(settings, "report", "-o", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert (
        result.output.strip()
        == "error: the store holds no records of hekta: run `hekta-redcap sync`"
    )


def test_the_command_line_does_not_load_the_report() -> None:
    probe = (
        "import sys, hekta_redcap.cli; "
        "print([m for m in ('tableone', 'hekta_redcap.report.build') if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
