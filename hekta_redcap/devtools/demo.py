"""The main job end to end, as `./scripts/demo` runs it on a fresh machine.

Each step prints one line of what it did: lint the definitions, compile both projects, start
the local REDCap-compatible server, create the projects on it through the API (plan and push),
write the trial's allocation tables and load the development table as a person does in REDCap,
load a synthetic cohort into the trial project (each participant randomized through REDCap's
randomization module), audit every randomization (clean, then after a deliberate tampering
that the audit finds), run one daemon cycle (sync, validation and a
reminder pass into a file outbox) and summarise what it found: records pulled, data problems
(with the HTML report), scores, the nurses' follow-up worklist and the reminders it sends; link
the cohort to the registers (the linkage list, one synthetic delivery per register imported with
its deliberate errors reported, the 18-month register endpoint by arm); then write the analysts'
long export with its codebook, CONSORT flow diagram and manifest, and the committees' blinded
trial report. Before the export, the companion study: synthetic IPS fidelity reviews loaded into
ips_fidelity and synced, each site's latest band and trend, and the site report.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import redcap

from hekta_redcap.analysis.job import run_export
from hekta_redcap.compile.design import compile_design, write_design
from hekta_redcap.compile.dictionary import compile_project
from hekta_redcap.core.clock import local, now
from hekta_redcap.core.errors import HektaError
from hekta_redcap.core.settings import Settings, token_variable
from hekta_redcap.data import sync
from hekta_redcap.data.store import Store
from hekta_redcap.definitions.scoring import score_all
from hekta_redcap.definitions.study import Project, available_projects, load_project
from hekta_redcap.devtools.cohort import Allocate, Cohort, generate
from hekta_redcap.devtools.fidelity import generate_reviews
from hekta_redcap.devtools.provision import provision
from hekta_redcap.devtools.registers import deliveries
from hekta_redcap.devtools.sandbox.allocation import backdate, edit_in_form, project_of, upload
from hekta_redcap.devtools.sandbox.models import ProjectModel
from hekta_redcap.devtools.sandbox.server import SandboxServer, running
from hekta_redcap.fidelity import report as fidelity_report
from hekta_redcap.followup import worklist as lists
from hekta_redcap.followup.channels import FileOutbox
from hekta_redcap.followup.outbox import Outbox
from hekta_redcap.followup.reminders import run_pass
from hekta_redcap.followup.schedule import policy_of, worklist
from hekta_redcap.followup.sendtime import SendCalendar
from hekta_redcap.gateway import Gateway
from hekta_redcap.lint import lint_all
from hekta_redcap.ops.daemon import run_daemon
from hekta_redcap.randomization.audit import run_audit
from hekta_redcap.randomization.design import design_of
from hekta_redcap.randomization.seeds import Seeds, write_seed_file
from hekta_redcap.randomization.tables import TABLES, read_table, summary_table, write_tables
from hekta_redcap.redcap.dictionary import write_csv
from hekta_redcap.redcap.names import EVENT, REPEAT_INSTRUMENT
from hekta_redcap.registers.delivery import import_delivery
from hekta_redcap.registers.linkage import read_key, write_linkage_list
from hekta_redcap.registers.outcomes import (
    ANY_COMPETITIVE,
    ARM,
    COMPLETE,
    MONTHS_EMPLOYED,
    register_tables,
)
from hekta_redcap.report.build import HTML, build_report, write_report
from hekta_redcap.report.inputs import read_inputs
from hekta_redcap.validation.report import overview, overview_line

TRIAL = "hekta"
FIDELITY = "ips_fidelity"
COHORT_SIZE = 300
# The demo's allocation seeds, fixed so that it prints the same every run; not for a trial.
DEMO_SEEDS = Seeds(
    hashlib.sha256(b"hekta-redcap demo: development").digest(),
    hashlib.sha256(b"hekta-redcap demo: production").digest(),
)
SUMMARY_SCORES = ("audit_total", "dudit_total", "hscl10_mean", "phq9_total", "swls_total")
# How the demo's deliveries come: CSV, in Latin-1 where older systems write it, or Stata.
DELIVERY_SUFFIX = {"fd_trygd": ".dta"}
LATIN_1 = ("npr", "kpr")
ENDPOINT_MONTHS = 18


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
        outbox = output / "outbox"
        shutil.rmtree(outbox, ignore_errors=True)
        registers = output / "registers"
        shutil.rmtree(registers, ignore_errors=True)
        settings = Settings.load(
            (env_file,),
            {  # every message goes to a file: nothing leaves the machine
                "HEKTA_STORE": str(store),
                "HEKTA_OUTBOX_DIR": str(outbox),
                "HEKTA_DIGEST_TO": "studiesykepleier@example.org",
                # the register store and the linkage key apart, outside the export folder;
                # the cohort's identity numbers are synthetic ones (month + 80)
                "HEKTA_REGISTER_DIR": str(registers / "store"),
                "HEKTA_LINKAGE_KEY": str(registers / "keys" / "linkage-key.csv"),
                "HEKTA_ALLOW_SYNTHETIC_IDS": "1",
            },
        )
        for project in projects:
            client = redcap.Project(server.url, settings.token(project.name).reveal())
            say(f"4. {project.name} created on it through the API: {_summary(client, project)}")
        say(f"   Project URL and tokens are in {env_file} (tokens are never printed).")
        trial = next(p for p in projects if p.name == TRIAL)
        table = _allocation_tables(server, settings, trial, output, say)
        cohort = generate(
            trial, COHORT_SIZE, seed=1, allocate=_module(trial, table), synthetic_ids=True
        )
        api = Gateway.open(settings, TRIAL)
        loaded = cohort.load(
            redcap.Project(server.url, settings.token(TRIAL).reveal()),
            randomize=lambda record: str(api.randomize(record)["target_value"]),
        )
        _backdate(server, settings, trial, cohort)
        say(
            f"   Synthetic cohort loaded into {TRIAL}: {loaded} participants, {len(cohort.rows)} "
            f"rows, with {len(cohort.errors)} deliberate data errors; each participant "
            "randomized through REDCap's randomization module."
        )
        _audit(server, settings, trial, table, cohort, output, say)
        for line in run_daemon(settings, trial, once=True, reports=output / "reports"):
            say(f"6. Daemon cycle: {line}")
        _problems(settings, cohort, say)
        _scores(settings, trial, say)
        _followups(settings, trial, output, say)
        _registers(settings, trial, cohort, root, registers, say)
        _fidelity(server, settings, projects, output, say)
    _export(settings, trial, output, say)
    _report(settings, trial, output, say)


def _allocation_tables(
    server: SandboxServer,
    settings: Settings,
    project: Project,
    output: Path,
    say: Callable[[str], None],
) -> Path:
    """The trial's allocation tables from the demo's fixed seeds (so the demo is the same every
    run; a real trial's seeds come from `secrets`), the development table loaded into the
    local server as a person uploads it in REDCap."""
    target = output / "allocation"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    seed_file = target / "demo-seeds.txt"
    write_seed_file(seed_file, DEMO_SEEDS)
    written = write_tables(project, target / "tables", seed_file)
    table = target / "tables" / TABLES["development"]
    with _on_server(server, settings, project.name) as model:
        randomization, slots = upload(model, table, production=False)
    say(
        f"5. Allocation tables for {project.name} in {target / 'tables'} (stratified permuted "
        f"blocks; randomization {randomization.rid} on the server, {slots} development slots):"
    )
    for line in summary_table(written.design, written.runs):
        say(f"   | {line}")
    return table


@contextmanager
def _on_server(server: SandboxServer, settings: Settings, project: str) -> Iterator[ProjectModel]:
    """The project on the local server, in one transaction: what a person does on REDCap's
    own pages (setup, upload, the data entry form), which the API cannot."""
    with server.store.transaction() as conn:
        token = settings.token(project).reveal()
        yield project_of(conn, token, token_variable(project), server.data_dir)


def _module(project: Project, table: Path) -> Allocate:
    """What REDCap's module will allocate: the next unused slot of the participant's stratum
    in the table, so the cohort is simulated with the groups the module then gives."""
    design = design_of(project)
    free: dict[tuple[str, ...], list[str]] = {}
    for slot in read_table(table, design):
        free.setdefault(slot.stratum, []).append(slot.arm)

    def allocate(strata: Mapping[str, str]) -> str:
        stratum = tuple(strata[f] for f in design.factors)
        if not free.get(stratum):
            raise HektaError(f"{table}: no allocation left for stratum {stratum}")
        return free[stratum].pop(0)

    return allocate


def _backdate(server: SandboxServer, settings: Settings, project: Project, cohort: Cohort) -> None:
    """Each randomization moved to its participant's randomization date (the cohort was
    randomized in one go; its participants over two years)."""
    date_field = design_of(project).spec.date_field or ""
    days = {
        row[cohort.record_id]: row[date_field]
        for row in cohort.rows
        if row.get(date_field) and not row[REPEAT_INSTRUMENT]
    }
    with _on_server(server, settings, project.name) as model:
        for record, day in days.items():
            backdate(model, record, day)


def _audit(
    server: SandboxServer,
    settings: Settings,
    project: Project,
    table: Path,
    cohort: Cohort,
    output: Path,
    say: Callable[[str], None],
) -> None:
    """The monitor's audit of every randomization: clean, then after a deliberate tampering
    (one participant's group changed in REDCap's data entry form after randomization)."""
    clean = run_audit(settings, project, table, output / "audit" / "clean", "en")
    say(f"   Randomization audit: {clean.text().splitlines()[0]}")
    record = cohort.participants[len(cohort.participants) // 2]
    design = design_of(project)
    other = next(code for code in design.arms if code != cohort.groups[record])
    with _on_server(server, settings, project.name) as model:
        edit_in_form(model, record, design.event or "", design.target, other, "admin")
    say(
        f"   Deliberate tampering: record {record}'s {design.target} changed from "
        f"{cohort.groups[record]} to {other} in the data entry form after randomization."
    )
    found = run_audit(settings, project, table, output / "audit" / "tampered", "en")
    for line in found.text().splitlines()[:2]:
        say(f"   Randomization audit: {line}")


def _registers(
    settings: Settings,
    project: Project,
    cohort: Cohort,
    root: Path,
    folder: Path,
    say: Callable[[str], None],
) -> None:
    """Register linkage as a data manager does it: sync, the linkage list of those who
    consented (its key apart), one synthetic delivery per register back, each imported with
    its deliberate errors reported by line; then the 18-month register endpoint by arm."""
    say(f"   Register linkage: sync first: {sync.run(settings, project.name).summary()}")
    linkage = write_linkage_list(
        settings, project, folder / "linkage-list.csv", settings.linkage_key
    )
    for line in linkage.text().splitlines():
        say(f"   Register linkage: {line}")
    key = {record: lopenr for lopenr, record in read_key(settings.linkage_key).items()}
    until = local(now()).date().replace(day=1) - dt.timedelta(days=1)
    found = listed = 0
    for source, delivery in deliveries(cohort, key, until, seed=1).items():
        suffix = DELIVERY_SUFFIX.get(source, ".csv")
        encoding = "latin-1" if source in LATIN_1 else "utf-8"
        path = delivery.write(folder / "deliveries" / f"{source}{suffix}", encoding=encoding)
        start, end = delivery.period
        say(
            f"   Register delivery {source}: {len(delivery.rows)} rows for {len(key)} serial "
            f"numbers, {start} to {end}, with {len(delivery.errors)} deliberate errors -> {path}"
        )
        imported = import_delivery(
            settings, root, source, path, settings.linkage_key, delivery.period_text, None
        )
        shown = imported.text().splitlines()[:2] + [
            p.text(imported.unit) for p in imported.problems
        ]
        for line in shown:  # the summary, then each refused row (the counts by reason left out)
            say(f"   Register import: {line}")
        where = {(p.line, p.column) for p in imported.problems}
        wanted = {(e.line if suffix == ".csv" else e.row, e.column) for e in delivery.errors}
        found, listed = found + len(where & wanted), listed + len(wanted)
    say(f"   The import found {found} of the {listed} deliberate delivery errors.")
    _endpoint(settings, project, say)


def _endpoint(settings: Settings, project: Project, say: Callable[[str], None]) -> None:
    """The 18-month register endpoint by arm, from the register tables the export carries:
    for those whose registers cover months 1-18 (the others are censored: randomized less
    than 18 months before the deliveries end)."""
    registered = register_tables(settings, project, [ENDPOINT_MONTHS])
    if registered is None:
        raise HektaError("the demo imported no register delivery")
    outcomes = registered.endpoints
    complete = outcomes[outcomes[COMPLETE]]
    say(
        f"   Register endpoint at {ENDPOINT_MONTHS} months, by arm ({len(complete)} of "
        f"{len(outcomes)} randomized participants have registers covering months "
        f"1-{ENDPOINT_MONTHS}; the others are censored):"
    )
    design = design_of(project)
    instrument, target = project.field_map()[design.target]
    labels = {c.code: instrument.choice_label(c, "en") for c in instrument.choices_of(target)}
    for arm, group in complete.groupby(ARM, sort=True):
        competitive = int(group[ANY_COMPETITIVE].sum())
        say(
            f"   | {labels.get(str(arm), arm)}: {len(group)} participants; competitive "
            f"employment in months 1-{ENDPOINT_MONTHS}: {competitive} "
            f"({competitive / len(group):.0%}); months employed: mean "
            f"{group[MONTHS_EMPLOYED].mean():.1f}; income in months 1-{ENDPOINT_MONTHS}: mean NOK "
            f"{group['income_total'].mean():,.0f}"
        )


def _fidelity(
    server: SandboxServer,
    settings: Settings,
    projects: list[Project],
    output: Path,
    say: Callable[[str], None],
) -> None:
    """The companion study: synthetic IPS-25 reviews of every site over the years (plans and
    both reviewers' own ratings among them) loaded into ips_fidelity, synced, each site's
    latest band and trend, and the site report."""
    project = next(p for p in projects if p.name == FIDELITY)
    reviews = generate_reviews(project, seed=1, today=local(now()).date())
    loaded = reviews.load(redcap.Project(server.url, settings.token(FIDELITY).reveal()))
    say(
        f"   IPS fidelity: {loaded} synthetic reviews of {len(reviews.sites)} sites loaded into "
        f"{FIDELITY}; sync: {sync.run(settings, FIDELITY).summary()}"
    )
    with Store.open(settings) as store:
        rows = store.raw_rows(FIDELITY)
    report = fidelity_report.write_report(project, rows, output / "fidelity", lang="en")
    for line in report.lines("en"):
        say(f"   | {line}")
    say(f"   IPS fidelity report (HTML and CSV tables): {report.html}")


def _export(settings: Settings, project: Project, output: Path, say: Callable[[str], None]) -> None:
    """The analysts' long export with its codebook, flow report and manifest."""
    target = output / "export"
    shutil.rmtree(target, ignore_errors=True)
    exported = run_export(settings, project, "long", "csv", target, language="nb")
    say(f"11. Analyst export (long, CSV, de-identified) in {target}:")
    for line in exported.summary():
        say(f"   {line}")


def _report(settings: Settings, project: Project, output: Path, say: Callable[[str], None]) -> None:
    """The committees' trial report, blinded (arms as A and B), as of today."""
    target = output / "report"
    shutil.rmtree(target, ignore_errors=True)
    report = build_report(project, read_inputs(settings, project), local(now()).date(), "nb")
    files = write_report(report, target)
    say(f"12. Trial report (blinded) for the committees: {target / HTML} ({len(files)} files)")


def _followups(
    settings: Settings, project: Project, output: Path, say: Callable[[str], None]
) -> None:
    """The nurses' worklist and the reminders: those the daemon's pass wrote to the file outbox,
    or, when it ran outside sending times, those a pass at the next sending time would send."""
    policy = policy_of(project)
    calendar = SendCalendar.from_policy(policy)
    moment = now()
    with Store.open(settings) as store:
        rows = store.raw_rows(project.name)
        history = Outbox(store, project.name).history()
        work = worklist(project, rows, history, calendar.day(moment))
        target = output / "followup"
        lists.write_csv(work, target / "worklist.csv")
        html = target / "worklist.html"
        html.write_text(
            lists.render_html(project, work, "nb", calendar.day(moment)), encoding="utf-8"
        )
        lines = lists.table(project, work, "nb", calendar.day(moment)).splitlines()
        say(f"9. Follow-up worklist ({len(lines) - 4} to act on; {html}, worklist.csv):")
        for line in [*lines[:12], *(["   ..."] if len(lines) > 14 else []), lines[-1]]:
            say(f"   {line}")
        sent = FileOutbox(settings.outbox_dir or output / "outbox")
        messages, when = sent.read() if sent.path.exists() else [], "by the daemon's pass"
        if not any(m["channel"] == "sms" for m in messages):
            at = calendar.next_allowed(moment)
            dry = output / "outbox-dry-run"
            shutil.rmtree(dry, ignore_errors=True)
            api = Gateway.open(settings, project.name)
            run_pass(settings, project, store, api, rows, now=at, dry_run=dry)
            messages, when = FileOutbox(dry).read(), f"by a pass at {local(at):%d.%m.%Y %H:%M}"
    kinds = Counter(f"{m['key'].split('/')[3]} by {m['channel']}" for m in messages)
    say(
        f"10. Reminders written to the file outbox {when}: "
        + (", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "none")
    )
    sample = next((m for m in messages if m["channel"] == "sms"), None)
    if sample is not None:
        say(f"   For example, {sample['key']} says:")
        for line in sample["body"].splitlines():
            say(f"   | {line}")


def _problems(settings: Settings, cohort: Cohort, say: Callable[[str], None]) -> None:
    """What the nurses' report holds: errors first (the deliberate ones among them), then the
    advisory notes by rule."""
    with Store.open(settings) as store:
        problems = store.open_problems(TRIAL)
    view = overview(pd.DataFrame(problems), pd.DataFrame())
    say(f"7. Data problems for the study nurses: {overview_line(view)}")
    errors = [p for p in problems if p["severity"] == "error"]
    for p in errors:
        say(f"   error: record {p['record']}, {p['event']}, {p['field']}: {p['message_en']}")
    listed = {(p["record"], p["field"]) for p in problems}
    found = [e for e in cohort.errors if (e.record, e.field) in listed]
    say(f"   The validator found {len(found)} of the {len(cohort.errors)} deliberate errors.")


def _scores(settings: Settings, project: Project, say: Callable[[str], None]) -> None:
    """Mean scores per event from the synced store, with how many could be scored."""
    with Store.open(settings) as store:
        rows = pd.DataFrame(store.raw_rows(TRIAL), dtype=str).fillna("")
    scores = score_all(project, rows)
    events = rows[EVENT]
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
