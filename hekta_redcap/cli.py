"""The `hekta-redcap` command line.

Each command is a thin layer over a domain module. Errors a user can fix (a bad definition
file, a missing setting) are printed as one line naming the file, line or variable, with a
non-zero exit code and no traceback.

Each command imports the modules it uses when it runs, so that each pays only for its own:
`--help` loads neither PyCap, the lint rules, pandas nor the sandbox, and `sync` neither pandas,
pandera, the lint rules nor the follow-up engine (tests/test_cli.py checks it).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from hekta_redcap import LANGUAGES, __version__
from hekta_redcap.core.errors import HektaError, Origin
from hekta_redcap.core.settings import SANDBOX_ENV, Settings
from hekta_redcap.devtools.sandbox.faults import KINDS

if TYPE_CHECKING:
    from hekta_redcap.definitions.study import Project
    from hekta_redcap.deploy.plan import Plan
    from hekta_redcap.gateway import Gateway
    from hekta_redcap.lint import Finding


class _Group(click.Group):
    """Turns `HektaError` into a one-line message and its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HektaError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hekta-redcap")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """hekta-redcap: a REDCap trial's data side, from instrument definitions to exports."""
    ctx.obj = Settings.load()


def main() -> None:
    cli()


def _definition_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--definitions and --overlay-dir, defaulting to HEKTA_DEFINITIONS / HEKTA_OVERLAY_DIR."""

    @click.option(
        "--definitions",
        type=click.Path(file_okay=False, path_type=Path),
        help="Definitions directory (default: HEKTA_DEFINITIONS, else ./instruments).",
    )
    @click.option(
        "--overlay-dir",
        type=click.Path(file_okay=False, path_type=Path),
        help="Site-local licensed text (default: HEKTA_OVERLAY_DIR, else <definitions>/local).",
    )
    @functools.wraps(command)
    def wrapper(*args: Any, definitions: Path | None, overlay_dir: Path | None, **kw: Any) -> Any:
        from hekta_redcap.definitions.study import default_root

        settings: Settings = click.get_current_context().obj
        root = definitions or _path(settings.get("HEKTA_DEFINITIONS")) or default_root()
        overlay = overlay_dir or _path(settings.get("HEKTA_OVERLAY_DIR"))
        return command(*args, root=root, overlay_dir=overlay, **kw)

    return wrapper


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _load(project: str, root: Path, overlay_dir: Path | None) -> Project:
    """A project's definitions (study.py loads pydantic and YAML, so it is imported here)."""
    from hekta_redcap.definitions.study import load_project

    return load_project(project, root, overlay_dir)


project_option = click.option("--project", "-p", required=True, help="Project name, e.g. hekta.")
lang_option = click.option(
    "--lang", type=click.Choice(LANGUAGES), default="nb", show_default=True, help="Label language."
)


def _print_findings(findings: list[Finding], per_rule: int | None = None) -> int:
    """Print findings and a count; `per_rule` caps the warnings shown for each rule."""
    errors = sum(f.severity == "error" for f in findings)
    shown: dict[str, int] = {}
    for finding in findings:
        if finding.severity == "warning" and per_rule is not None:
            shown[finding.rule] = shown.get(finding.rule, 0) + 1
            if shown[finding.rule] > per_rule:
                continue
        click.echo(str(finding), err=finding.severity == "error")
    for rule, count in shown.items():
        if per_rule is not None and count > per_rule:
            click.echo(f"... and {count - per_rule} more {rule} warning(s)")
    warnings = len(findings) - errors
    click.echo(f"{errors} error(s), {warnings} warning(s)")
    return errors


@cli.command()
@click.option("--project", "-p", "projects", multiple=True, help="Lint only this project.")
@_definition_options
def lint(projects: tuple[str, ...], root: Path, overlay_dir: Path | None) -> None:
    """Check the definitions against REDCap's rules and the project's own."""
    from hekta_redcap.lint import lint_all

    findings = lint_all(root, projects or None, overlay_dir)
    if _print_findings(findings):
        raise SystemExit(1)


@cli.command()
@project_option
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="CSV file.")
@lang_option
@_definition_options
def dictionary(
    project: str, output: Path | None, lang: str, root: Path, overlay_dir: Path | None
) -> None:
    """Write the project's REDCap data dictionary (CSV, REDCap's 18 columns)."""
    from hekta_redcap.compile.dictionary import compile_project
    from hekta_redcap.redcap.dictionary import to_csv, write_csv

    rows = compile_project(_load(project, root, overlay_dir), lang)
    if output is None:
        click.echo(to_csv(rows), nl=False)
    else:
        write_csv(rows, output)
        click.echo(f"wrote {len(rows)} fields to {output}", err=True)


@cli.command()
@project_option
@click.option("--output", "-o", required=True, type=click.Path(file_okay=False, path_type=Path))
@lang_option
@_definition_options
def design(project: str, output: Path, lang: str, root: Path, overlay_dir: Path | None) -> None:
    """Write arms, events, instrument-event mapping and repeating setup (JSON and CSV)."""
    from hekta_redcap.compile.design import compile_design, write_design

    files = write_design(compile_design(_load(project, root, overlay_dir), lang), output)
    for file in files:
        click.echo(str(file))


@cli.command("plan")
@project_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_definition_options
@click.pass_context
def plan_command(
    ctx: click.Context, project: str, as_json: bool, root: Path, overlay_dir: Path | None
) -> None:
    """Show what push would change in the live project (exit 0: it matches, 2: changes,
    1: errors)."""
    try:
        found = _plan(ctx, project, root, overlay_dir)[1]
    except HektaError as exc:  # exit 2 means "changes" here, so every error is 1
        raise HektaError(exc.message, exc.origin) from None
    click.echo(
        json.dumps(found.to_json(), ensure_ascii=False, indent=1) if as_json else found.render()
    )
    ctx.exit(2 if found.changes else 0)


@cli.command("push")
@project_option
@click.option("--allow-data-loss", is_flag=True, help="Apply data-affecting changes too.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Show the plan; write nothing.")
@click.option(
    "--bundle",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where a production project's Draft Mode bundle goes (default: out/draft/<project>).",
)
@_definition_options
@click.pass_context
def push_command(
    ctx: click.Context,
    project: str,
    allow_data_loss: bool,
    yes: bool,
    dry_run: bool,
    bundle: Path | None,
    root: Path,
    overlay_dir: Path | None,
) -> None:
    """Apply the definitions to the live project, after showing the plan."""
    from hekta_redcap.deploy.push import apply_plan, refuse, write_bundle

    api, found = _plan(ctx, project, root, overlay_dir)
    click.echo(found.render())
    if not found.changes:
        return
    if found.in_production:
        target = bundle or Path("out/draft") / project
        write_bundle(found, target)
        click.echo(
            f"{project} is in production: REDCap takes dictionary changes only in Draft Mode, "
            f"so nothing was written to REDCap. The Draft Mode bundle is in {target} "
            "(the steps are in plan.txt)."
        )
        return
    refuse(found)
    if found.data_affecting and not allow_data_loss:
        raise HektaError(
            f"{len(found.data_affecting)} data-affecting change(s): nothing applied. Once they "
            "are approved, run push again with --allow-data-loss."
        )
    if dry_run:
        click.echo("Dry run: nothing written.")
        return
    if not yes and not _confirmed("Apply these changes to REDCap?"):
        raise HektaError("not confirmed: nothing applied")
    applied = apply_plan(api, found, click.echo)
    click.echo(f"Done: {', '.join(applied)} applied.")


def _confirmed(question: str) -> bool:
    """A yes/no prompt; no answer (no terminal, end of input) counts as no."""
    try:
        return click.confirm(question, default=False, err=True)
    except click.Abort:
        return False


def _plan(
    ctx: click.Context, project: str, root: Path, overlay_dir: Path | None
) -> tuple[Gateway, Plan]:
    from hekta_redcap.deploy.plan import make_plan
    from hekta_redcap.gateway import Gateway

    definitions = _load(project, root, overlay_dir)
    api = Gateway.open(ctx.obj, project)
    return api, make_plan(api, definitions)


@cli.command("import-dictionary")
@click.argument("csv_file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--output", "-o", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--project",
    "-p",
    help="Project name for the study file (default: from the file name); with --instrument, "
    "the study in DIR to add it to (default: the only one).",
)
@click.option(
    "--instrument",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Add one instrument (a Shared Library CSV or an instrument ZIP) to the definitions in "
    "DIR as a new form.",
)
@click.option("--form", help="With --instrument: the form name to give it.")
def import_dictionary(
    csv_file: Path | None,
    output: Path,
    project: str | None,
    instrument: Path | None,
    form: str | None,
) -> None:
    """Adopt a REDCap data dictionary (or one instrument) as definition files.

    Only what REDCap itself would refuse stops the import; the project's own advice is shown
    as warnings (docs/redcap-rules.md).
    """
    from hekta_redcap.compile.adopt import ImportRefused, import_dictionary, import_instrument

    source = instrument or csv_file
    if source is None or (instrument and csv_file):
        raise click.UsageError("give either a DICTIONARY.csv or --instrument FILE")
    if not source.is_file():
        raise HektaError("file not found", Origin(source))
    try:
        if instrument:
            done = import_instrument(instrument, output, project, form)
        else:
            done = import_dictionary(source, output, project)
    except ImportRefused as refused:
        _print_findings(refused.findings, per_rule=20)
        raise
    _print_findings(done.findings, per_rule=20)
    for note in done.notes:
        click.echo(f"note: {note}")
    what = (
        f"form '{done.forms[0]}' to study"
        if instrument
        else f"{len(done.forms)} instrument(s) and study"
    )
    click.echo(
        f"wrote {done.fields} field(s): {what} '{done.project}' in {output}; "
        f"check them with: hekta-redcap lint --definitions {output}"
    )


@cli.group(invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, type=int, help="Port (0: any free).")
@click.option(
    "--data",
    default=Path("var/sandbox"),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory holding the server's database and super token.",
)
@click.option("--allow-remote", is_flag=True, help="Listen on a non-loopback address.")
@click.option("--fault-rate", default=0.0, type=click.FloatRange(0, 1), help="Share of faults.")
@click.option(
    "--fault-kinds",
    default=",".join(KINDS),
    show_default=True,
    help="Comma-separated faults to inject: " + ", ".join(KINDS) + ".",
)
@click.option("--fault-seed", default=0, type=int, help="Seed for reproducible faults.")
@click.option("--public-url", help="Base URL that survey links start with (default: the server's).")
@click.pass_context
def sandbox(
    ctx: click.Context,
    host: str,
    port: int,
    data: Path,
    allow_remote: bool,
    fault_rate: float,
    fault_kinds: str,
    fault_seed: int,
    public_url: str | None,
) -> None:
    """Run the local REDCap-compatible server (Ctrl-C stops it); see also `sandbox init`."""
    from hekta_redcap.devtools.sandbox.faults import Faults
    from hekta_redcap.devtools.sandbox.server import LOOPBACK, SUPER_TOKEN_FILE, build, super_token

    if host not in LOOPBACK and not allow_remote:
        raise HektaError(f"--host {host} is not a loopback address; add --allow-remote to allow it")
    kinds = tuple(k.strip() for k in fault_kinds.split(",") if k.strip())
    if set(kinds) - set(KINDS):
        raise HektaError(f"--fault-kinds: choose from {', '.join(KINDS)}")
    ctx.meta["sandbox"] = (host, port, data)
    if ctx.invoked_subcommand is not None:
        return
    token, generated = super_token(data)
    server = build(data, host, port, Faults(fault_rate, kinds, fault_seed), public_url)
    click.echo(f"Local REDCap-compatible server at {server.url} (data in {data})")
    if generated:
        click.echo(f"Super token (shown once; also kept in {data / SUPER_TOKEN_FILE}): {token}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
        server.store.close()
        click.echo("Stopped.")


@sandbox.command("init")
@click.option("--project", "-p", "projects", multiple=True, help="Project (default: all).")
@click.option(
    "--env-file",
    default=SANDBOX_ENV,
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the server URL and project tokens.",
)
@_definition_options
@click.pass_context
def sandbox_init(
    ctx: click.Context,
    projects: tuple[str, ...],
    env_file: Path,
    root: Path,
    overlay_dir: Path | None,
) -> None:
    """Create the projects from the definitions on the local server (safe to repeat)."""
    from hekta_redcap.definitions.study import available_projects
    from hekta_redcap.devtools.provision import provision
    from hekta_redcap.devtools.sandbox.server import running

    host, port, data = ctx.meta["sandbox"]
    names = list(projects) or available_projects(root)
    loaded = [_load(name, root, overlay_dir) for name in names]
    with running(data, host, port) as server:
        outcome = provision(server, loaded, env_file)
    for name, what in outcome.items():
        click.echo(f"{name}: {what}")
    click.echo(f"URL and tokens written to {env_file}; serve with: hekta-redcap sandbox")


@cli.command("demo")
@click.option(
    "--output",
    "-o",
    default=Path("out/demo"),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
)
@_definition_options
def demo_command(output: Path, root: Path, overlay_dir: Path | None) -> None:
    """Run the main job end to end on the local REDCap-compatible server."""
    from hekta_redcap.devtools import demo

    demo.run(root, overlay_dir, output, click.echo)


@cli.command("score")
@click.argument("form")
@click.option(
    "--input",
    "-i",
    "input_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="CSV whose columns are the item field names (and sex where a cut-off needs it).",
)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="CSV file.")
@click.option("--project", "-p", help="Project of FORM (default: the one that collects it).")
@_definition_options
def score_command(
    form: str,
    input_file: Path,
    output: Path | None,
    project: str | None,
    root: Path,
    overlay_dir: Path | None,
) -> None:
    """Score FORM's items in a CSV: writes the input columns plus the score columns."""
    from hekta_redcap.definitions.scoring import SPEC_VERSIONS, find_project, score_csv

    loaded = _load(project, root, overlay_dir) if project else find_project(form, root, overlay_dir)
    result, violations = score_csv(loaded, form, input_file)
    for v in violations.itertuples():
        click.echo(
            f"warning: {Origin(input_file)}: line {v.row}, column {v.field}: '{v.value}' is "
            f"answered although the skip rule {v.rule} hides it; {v.scores} not computed",
            err=True,
        )
    if output is None:
        click.echo(result.to_csv(index=False), nl=False)
    else:
        result.to_csv(output, index=False)
    version = result.attrs[SPEC_VERSIONS][form]
    click.echo(f"scored {len(result)} row(s) of {form} (spec version {version})", err=True)


@cli.command("validate")
@project_option
@click.option(
    "--input",
    "-i",
    "input_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A CSV record export (default: export from the live project).",
)
@click.option(
    "--report",
    "-r",
    "report_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for problems.csv and report.html.",
)
@_definition_options
@click.pass_context
def validate_command(
    ctx: click.Context,
    project: str,
    input_file: Path | None,
    report_dir: Path,
    root: Path,
    overlay_dir: Path | None,
) -> None:
    """Validate records against the definitions and REDCap's data-quality rules; write a
    report. Exit 0 when no errors are found (advisory notes alone do not count), 1 when errors
    are found, 2 on usage or connection errors. Links to REDCap need the project's URL and
    token, also with --input."""
    from hekta_redcap import validation
    from hekta_redcap.data.store import Store
    from hekta_redcap.validation.report import summary

    settings: Settings = ctx.obj
    try:
        loaded = _load(project, root, overlay_dir)
        if input_file is None:
            rows, source = validation.export_records(settings, loaded), settings.api_url
        else:
            rows, source = validation.read_export(input_file), str(input_file)
        links = validation.entry_links(settings, loaded)
        with Store.open(settings) as store:  # the values people checked and accepted
            accepted = store.acceptances(project)
        result = validation.validate_records(
            loaded, rows, links=links, source=source, accepted=accepted
        )
    except HektaError as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(2)
    _, page = validation.write_report(result, report_dir)
    click.echo(f"{summary(result.problems)}; report: {page}")
    ctx.exit(1 if result.errors else 0)


def _log_lines() -> None:
    """Structured log lines on stderr (`ts=… key=value …`): counts and record ids only."""
    logging.basicConfig(
        level=logging.INFO, format="ts=%(asctime)s %(message)s", stream=sys.stderr, force=True
    )


@cli.command("sync")
@project_option
@click.option("--full", is_flag=True, help="Pull every record (default: only what changed).")
@click.pass_context
def sync_command(ctx: click.Context, project: str, full: bool) -> None:
    """Pull what changed in REDCap into the local store (HEKTA_STORE) and print one line."""
    from hekta_redcap.data import sync

    _log_lines()
    click.echo(sync.run(ctx.obj, project, full=full).summary())


@cli.command("daemon")
@project_option
@click.option(
    "--once",
    is_flag=True,
    help="Run one cycle (sync, validation, then the reminder pass) and stop.",
)
@click.option(
    "--reports",
    default=Path("var/reports"),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where validation writes its reports.",
)
@_definition_options
@click.pass_context
def daemon_command(
    ctx: click.Context,
    project: str,
    once: bool,
    reports: Path,
    root: Path,
    overlay_dir: Path | None,
) -> None:
    """Sync, validate and send reminders, each on its interval, until SIGTERM or Ctrl-C (one per
    project); a step that fails is logged and runs again at its next turn."""
    from hekta_redcap.ops.daemon import run_daemon

    _log_lines()
    run_daemon(ctx.obj, _load(project, root, overlay_dir), once=once, reports=reports)


@cli.group("problems")
def problems_group() -> None:
    """The data problems validation lists: accept a value that was checked and is right."""


@problems_group.command("accept")
@project_option
@click.argument("record", required=False)
@click.argument("event", required=False)
@click.argument("field", required=False)
@click.option("--reason", help="What was checked (required, kept with the acceptance).")
@click.option("--instance", default="", help="The repeat instance, when the form repeats.")
@click.option("--by", help="Who checked it (default: HEKTA_USER, else the login name).")
@click.option(
    "--file",
    "csv_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A CSV of acceptances: record,event,field,reason[,instance][,by] with a header.",
)
@click.pass_context
def accept_command(
    ctx: click.Context,
    project: str,
    record: str | None,
    event: str | None,
    field: str | None,
    reason: str | None,
    instance: str,
    by: str | None,
    csv_file: Path | None,
) -> None:
    """Accept RECORD EVENT FIELD's open problem (or every line of --file): it is not listed
    again while the value stays the one checked. EVENT is blank ('') in a classic project."""
    from hekta_redcap.data.store import Store
    from hekta_redcap.validation.acceptance import Acceptance, accept, read_csv, who

    person = by or who(ctx.obj)
    if csv_file is not None:
        if record is not None:
            raise click.UsageError("give RECORD EVENT FIELD or --file, not both")
        wanted = list(read_csv(csv_file, person))
    elif record is None or event is None or field is None:
        raise click.UsageError("give RECORD EVENT FIELD --reason TEXT, or --file CSV")
    else:
        wanted = [Acceptance(record, event, field, reason or "", person, instance)]
    with Store.open(ctx.obj) as store:
        for line in accept(store, project, wanted):
            click.echo(line)


@cli.command("status")
@project_option
@_definition_options
@click.pass_context
def status_command(ctx: click.Context, project: str, root: Path, overlay_dir: Path | None) -> None:
    """The last sync runs, the lag, the open problem count, whether the daemon is alive, and
    what stops the reminders as a whole."""
    from hekta_redcap.ops.daemon import status

    loaded = _load(project, root, overlay_dir)
    click.echo(status(ctx.obj, project, definitions=loaded).render(project))


def _moment(value: dt.datetime | None) -> dt.datetime:
    """A `--now` value (tests pin the clock with it) or the current time, aware."""
    from hekta_redcap.data.store import now

    if value is None:
        return now()
    return value if value.tzinfo else value.astimezone()


@cli.command("followups")
@project_option
@click.option(
    "--as-of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="The day the worklist is for (default: today in the study's time zone).",
)
@click.option("--csv", "csv_file", type=click.Path(dir_okay=False, path_type=Path), help="CSV.")
@click.option("--html", "html_file", type=click.Path(dir_okay=False, path_type=Path), help="HTML.")
@click.option("--all", "show_all", is_flag=True, help="List every follow-up on the terminal.")
@lang_option
@_definition_options
@click.pass_context
def followups_command(
    ctx: click.Context,
    project: str,
    as_of: dt.datetime | None,
    csv_file: Path | None,
    html_file: Path | None,
    show_all: bool,
    lang: str,
    root: Path,
    overlay_dir: Path | None,
) -> None:
    """The nurses' worklist from the local store: who is due, overdue or needs a call, with
    window dates (run `sync` or the daemon first)."""
    from hekta_redcap.data.store import Store
    from hekta_redcap.followup import worklist as lists
    from hekta_redcap.followup.outbox import Outbox
    from hekta_redcap.followup.schedule import policy_of, worklist
    from hekta_redcap.followup.sendtime import SendCalendar

    loaded = _load(project, root, overlay_dir)
    day = as_of.date() if as_of else SendCalendar.from_policy(policy_of(loaded)).day(_moment(None))
    with Store.open(ctx.obj) as store:
        rows = store.raw_rows(project)
        if not rows:
            raise HektaError(f"the store holds no records of {project}: run `hekta-redcap sync`")
        work = worklist(loaded, rows, Outbox(store, project).history(), day, lang)
        notes = lists.notices(loaded, store.project_info(project), lang)
    click.echo(lists.table(loaded, work, lang, day, everything=show_all, notes=notes))
    if csv_file:
        click.echo(f"CSV: {lists.write_csv(work, csv_file)}")
    if html_file:
        html_file.parent.mkdir(parents=True, exist_ok=True)
        html_file.write_text(lists.render_html(loaded, work, lang, day, notes), encoding="utf-8")
        click.echo(f"HTML: {html_file}")


@cli.command("remind")
@project_option
@click.option(
    "--dry-run",
    "dry_run",
    is_flag=True,
    help="Write the messages due now to a file outbox (--outbox-dir); record and send nothing.",
)
@click.option(
    "--outbox-dir",
    default=Path("var/outbox-dry-run"),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where --dry-run writes.",
)
@click.option(  # pins the clock (tests, replays): ISO 8601 with its UTC offset
    "--now", "at", type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z"]), hidden=True
)
@_definition_options
@click.pass_context
def remind_command(
    ctx: click.Context,
    project: str,
    dry_run: bool,
    outbox_dir: Path,
    at: dt.datetime | None,
    root: Path,
    overlay_dir: Path | None,
) -> None:
    """One reminder pass (the daemon runs one on its schedule): send what is due, write each
    follow-up's state back to REDCap, send the daily digests."""
    from hekta_redcap.data.store import Store
    from hekta_redcap.followup.reminders import remind
    from hekta_redcap.gateway import Gateway
    from hekta_redcap.ops.daemon import daemon_lock

    _log_lines()
    loaded = _load(project, root, overlay_dir)
    settings: Settings = ctx.obj
    with Store.open(settings) as store, daemon_lock(store, project):
        api = Gateway.open(settings, project)
        target = outbox_dir if dry_run else None
        for line in remind(settings, loaded, store, api, now=_moment(at), dry_run=target):
            click.echo(line)
    if dry_run:
        click.echo(f"Messages written to {outbox_dir / 'outbox.jsonl'} (nothing sent).")


@cli.command("outbox")
@project_option
@click.option("--resolve", "key", help="The key of a message a person has checked.")
@click.option("--sent/--not-sent", default=None, help="With --resolve: what the check found.")
@click.pass_context
def outbox_command(ctx: click.Context, project: str, key: str | None, sent: bool | None) -> None:
    """List the messages a person must check (maybe sent, or refused), or resolve one: --sent
    keeps it as sent, --not-sent lets the step go out again."""
    from hekta_redcap.data.store import Store
    from hekta_redcap.followup.outbox import Outbox

    with Store.open(ctx.obj) as store:
        box = Outbox(store, project)
        if key is not None:
            if sent is None:
                raise click.UsageError("--resolve needs --sent or --not-sent")
            box.resolve(key, sent, _moment(None))
            click.echo(f"{key}: {'kept as sent' if sent else 'removed; the step is due again'}")
            return
        waiting = box.needing_a_person()
        for entry in waiting:
            click.echo(f"{entry.key}  {entry.status}  {entry.at}  {entry.answer}")
        click.echo(f"{len(waiting)} message(s) need a person to check.")


@cli.command("export")
@project_option
@click.option(
    "--shape",
    type=click.Choice(["long", "wide", "instruments"]),
    default="long",
    show_default=True,
    help="long: a row per participant and event; wide: a row per participant; instruments: a "
    "table per instrument.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "parquet", "sav", "dta", "xlsx"]),
    default="csv",
    show_default=True,
    help="File format of the tables.",
)
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder.",
)
@click.option(
    "--pseudonyms",
    "key_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Replace record ids by stable pseudonyms kept in this key file (outside the folder).",
)
@click.option(
    "--include-identifiers",
    is_flag=True,
    help="Keep fields flagged identifier (names, phone, national id...); the manifest says so.",
)
@click.option(
    "--as-of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="The day the flow report counts follow-ups due by (default: today).",
)
@lang_option
@_definition_options
@click.pass_context
def export_command(
    ctx: click.Context,
    project: str,
    shape: str,
    fmt: str,
    output: Path,
    key_file: Path | None,
    include_identifiers: bool,
    as_of: dt.datetime | None,
    lang: str,
    root: Path,
    overlay_dir: Path | None,
) -> None:
    """Typed, labelled, scored and de-identified tables from the local store, with the
    codebook, the CONSORT flow and retention report and a manifest (docs/exports.md)."""
    from hekta_redcap.analysis.export.job import run_export

    exported = run_export(
        ctx.obj,
        _load(project, root, overlay_dir),
        shape,  # type: ignore[arg-type]
        fmt,  # type: ignore[arg-type]
        output,
        language=lang,  # type: ignore[arg-type]
        identifiers=include_identifiers,
        key_file=key_file,
        as_of=as_of.date() if as_of else None,
    )
    for line in exported.summary():
        click.echo(line)
    if include_identifiers:
        click.echo("This export holds identifying data: keep it where the study's key is kept.")
