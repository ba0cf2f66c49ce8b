"""The main job end to end, as `./scripts/demo` runs it on a fresh machine.

Each step prints one line of what it did. The steps grow as the toolkit does: today the demo
lints the definitions, compiles both projects, starts the local REDCap-compatible server,
creates the projects on it through the API and reads them back with PyCap.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import redcap

from hekta_redcap.config import Settings
from hekta_redcap.design import compile_design, write_design
from hekta_redcap.dictionary import compile_project, write_csv
from hekta_redcap.errors import HektaError
from hekta_redcap.lint import lint_all
from hekta_redcap.sandbox.provision import provision
from hekta_redcap.sandbox.server import running
from hekta_redcap.study import Project, available_projects, load_project


def run(root: Path, overlay_dir: Path | None, output: Path, say: Callable[[str], None]) -> None:
    findings = lint_all(root, None, overlay_dir)
    errors = [f for f in findings if f.severity == "error"]
    for finding in findings:
        say(str(finding))
    if errors:
        raise HektaError(f"the definitions have {len(errors)} error(s); fix them first")
    say(f"1. Definitions in {root} lint clean ({len(findings)} warning(s)).")

    projects = [load_project(name, root, overlay_dir) for name in available_projects(root)]
    for project in projects:
        target = output / project.name
        rows = compile_project(project)
        write_csv(rows, target / "data_dictionary.csv")
        write_design(compile_design(project), target / "design")
        say(
            f"2. {project.name}: {len(rows)} fields in {len(project.forms)} instruments -> "
            f"{target / 'data_dictionary.csv'} (design files in {target / 'design'})"
        )

    data_dir = output / "sandbox"
    shutil.rmtree(data_dir, ignore_errors=True)
    env_file = output / ".env.sandbox"
    env_file.unlink(missing_ok=True)
    with running(data_dir) as server:
        say(f"3. Local REDCap-compatible server running at {server.url} (data in {data_dir}).")
        provision(server.url, server.super_token, projects, env_file)
        settings = Settings.load((env_file,), {})
        for project in projects:
            client = redcap.Project(server.url, settings.token(project.name).reveal())
            say(f"4. {project.name} created on it through the API: {_summary(client, project)}")
    say(f"   Project URL and tokens are in {env_file} (tokens are never printed).")


def _summary(client: redcap.Project, project: Project) -> str:
    """What REDCap itself now reports about the project, read back with PyCap."""
    info = client.export_project_info()
    fields = len(client.export_metadata())
    if fields != len(compile_project(project)):
        raise HektaError(f"{project.name}: the server holds {fields} fields, not the definitions'")
    parts = [
        f"'{info['project_title']}'",
        f"{fields} fields",
        f"{len(client.export_instruments())} instruments",
    ]
    if client.is_longitudinal:
        parts.append(f"{len(client.export_events())} events")
        repeating = {r["form_name"] for r in client.export_repeating_instruments_events()}
        parts.append("repeating: " + ", ".join(sorted(repeating)))
    return ", ".join(parts)
