"""The command line: exit codes, one-line errors without tracebacks, and the demo."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import LIBRARY, REPO, edit, line_of

from hekta_redcap import __version__
from hekta_redcap.cli import cli
from hekta_redcap.compile.dictionary import compile_project
from hekta_redcap.definitions.study import load_project


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The real console entry point in a subprocess, as a user runs it (by default in the
    test's own working directory, never the checkout with its `.env`)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "hekta_redcap", *args],
        capture_output=True,
        text=True,
        cwd=cwd or Path.cwd(),
        env=env,
        check=False,
    )


def test_lint_exits_0_on_the_shipped_library() -> None:
    result = run("lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 error(s)" in result.stdout


def test_lint_exits_1_and_names_file_and_line(library: Path) -> None:
    line = line_of(library / "forms/phq9.yaml", "  - name: phq9_2\n")
    edit(library, "forms/phq9.yaml", "  - name: phq9_2\n", "  - name: phq9_1\n")
    result = run("lint", "--definitions", str(library))
    assert result.returncode == 1
    assert f"phq9.yaml:{line}: error: field name 'phq9_1' is used twice" in result.stderr


def test_malformed_yaml_is_an_error_not_a_traceback(library: Path) -> None:
    edit(library, "forms/gad7.yaml", "fields:\n", "fields:\n  - [unclosed\n")
    for command in (["lint"], ["dictionary", "-p", "hekta"]):
        result = run(*command, "--definitions", str(library))
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        assert "gad7.yaml:" in result.stderr and "invalid YAML" in result.stderr


def test_unknown_project_is_a_one_line_error() -> None:
    result = run("dictionary", "--project", "nope")
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "no study file for project 'nope' (projects: hekta, ips_fidelity)" in result.stderr


def test_dictionary_to_stdout() -> None:
    result = CliRunner().invoke(cli, ["dictionary", "-p", "ips_fidelity"])
    assert result.exit_code == 0
    assert result.output.startswith("field_name,form_name,section_header,")
    assert "\nreview_id,site_review," in result.output


def test_version() -> None:
    assert __version__ in CliRunner().invoke(cli, ["--version"]).output


def test_the_command_line_and_sync_load_lean() -> None:
    """`--help` and `sync` start fast because the command line and the sync path leave pandas,
    pandera, the lint rules and the follow-up engine (and, for `--help`, PyCap) unloaded."""
    heavy = ("pandas", "pandera", "hekta_redcap.lint", "hekta_redcap.followup.schedule", "redcap")
    probe = "import sys, {}; print(' '.join(m for m in {!r} if m in sys.modules))"
    for module, unwanted in (("hekta_redcap.cli", heavy), ("hekta_redcap.data.sync", heavy[:-1])):
        done = subprocess.run(
            [sys.executable, "-c", probe.format(module, unwanted)],
            capture_output=True,
            text=True,
            check=True,
        )
        assert done.stdout.split() == [], f"importing {module} loads {done.stdout}"


@pytest.mark.slow
def test_demo_runs_end_to_end_on_the_local_server(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["demo", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for project in ("hekta", "ips_fidelity"):
        assert (tmp_path / project / "data_dictionary.csv").is_file()
        assert (tmp_path / project / "design" / "events.json").is_file()
    assert "1. Definitions in " in result.output
    fields = len(compile_project(load_project("hekta", LIBRARY)))
    assert (
        f"4. hekta created on it through the API: 'HEKTA PÅ JOBB', {fields} fields" in result.output
    )
    assert "repeating: job_episode" in result.output
    assert "4. ips_fidelity created on it through the API" in result.output
    env = (tmp_path / ".env.sandbox").read_text()
    token = next(line.split("=", 1)[1] for line in env.splitlines() if "TOKEN_HEKTA" in line)
    assert token not in result.output
