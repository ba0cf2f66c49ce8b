"""The main job end to end, as `./scripts/demo` runs it on a fresh machine.

Each step prints one line of what it did: lint the definitions, compile both projects, start
the local REDCap-compatible server, create the projects on it through the API (plan and push),
load a synthetic cohort into the trial project, run one daemon cycle (sync, then validation)
and summarise what it found: records pulled, data problems (with the HTML report) and scores.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import redcap

from hekta_redcap.cohort import Cohort, generate
from hekta_redcap.config import Settings
from hekta_redcap.daemon import run_daemon
from hekta_redcap.design import compile_design, write_design
from hekta_redcap.dictionary import compile_project, write_csv
from hekta_redcap.errors import HektaError
from hekta_redcap.lint import lint_all
from hekta_redcap.sandbox.provision import provision
from hekta_redcap.sandbox.server import running
from hekta_redcap.scoring import score_all
from hekta_redcap.store import Store
from hekta_redcap.study import Project, available_projects, load_project

TRIAL = "hekta"
COHORT_SIZE = 300
SUMMARY_SCORES = ("audit_total", "dudit_total", "hscl10_mean", "phq9_total", "swls_total")


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
    store = output / "store.sqlite3"
    store.unlink(missing_ok=True)
    with running(data_dir) as server:
        say(f"3. Local REDCap-compatible server running at {server.url} (data in {data_dir}).")
        provision(server, projects, env_file)
        settings = Settings.load((env_file,), {"HEKTA_STORE": str(store)})
        for project in projects:
            client = redcap.Project(server.url, settings.token(project.name).reveal())
            say(f"4. {project.name} created on it through the API: {_summary(client, project)}")
        say(f"   Project URL and tokens are in {env_file} (tokens are never printed).")
        trial = next(p for p in projects if p.name == TRIAL)
        cohort = generate(trial, COHORT_SIZE, seed=1)
        loaded = cohort.load(redcap.Project(server.url, settings.token(TRIAL).reveal()))
        say(
            f"5. Synthetic cohort loaded into {TRIAL}: {loaded} participants, {len(cohort.rows)} "
            f"rows, with {len(cohort.errors)} deliberate data errors."
        )
        for line in run_daemon(settings, trial, once=True, reports=output / "reports"):
            say(f"6. Daemon cycle: {line}")
    _problems(settings, cohort, say)
    _scores(settings, trial, say)


def _problems(settings: Settings, cohort: Cohort, say: Callable[[str], None]) -> None:
    with Store.open(settings) as store:
        problems = store.open_problems(TRIAL)
    by_rule = Counter(f"{p['rule']} ({p['severity']})" for p in problems)
    say(
        "7. Open data problems by rule: " + ", ".join(f"{r}: {n}" for r, n in by_rule.most_common())
    )
    listed = {(p["record"], p["field"]) for p in problems}
    found = [e for e in cohort.errors if (e.record, e.field) in listed]
    say(f"   The validator found {len(found)} of the {len(cohort.errors)} deliberate errors.")


def _scores(settings: Settings, project: Project, say: Callable[[str], None]) -> None:
    """Mean scores per event from the synced store, with how many could be scored."""
    with Store.open(settings) as store:
        rows = pd.DataFrame(store.raw_rows(TRIAL), dtype=str).fillna("")
    scores = score_all(project, rows)
    events = rows["redcap_event_name"]
    say("8. Scores from the synced data (mean, n scored):")
    for name in SUMMARY_SCORES:
        cells = []
        for event in dict.fromkeys(events):
            values = scores.loc[events == event, name].dropna()
            if len(values):
                cells.append(f"{event} {values.mean():.1f} (n={len(values)})")
        say(f"   {name}: " + "; ".join(cells))


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
