"""Commands on the data: sync into the store, validate, accept a checked value."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from hekta_redcap.core.errors import HektaError
from hekta_redcap.core.settings import Settings

if TYPE_CHECKING:
    pass

from hekta_redcap.cli.common import (
    definition_options,
    load,
    log_lines,
    project_option,
)


@click.command("validate")
@project_option
@click.option(
    "--input",
    "-i",
    "input_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A CSV record export (default: the live project, synced into the store first).",
)
@click.option(
    "--report",
    "-r",
    "report_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for problems.csv and report.html.",
)
@definition_options
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
    report. Without --input, the project is synced into the store first and the store's copy
    validated, as the daemon does (its open problems and when each was first seen are kept).
    Exit 0 when no errors are found (advisory notes alone do not count), 1 when errors are
    found, 2 on usage or connection errors. Links to REDCap need the project's URL and token,
    also with --input."""
    from hekta_redcap import validation
    from hekta_redcap.data import sync
    from hekta_redcap.data.store import Store
    from hekta_redcap.validation.report import summary

    settings: Settings = ctx.obj
    try:
        loaded = load(project, root, overlay_dir)
        with Store.open(settings) as store:
            if input_file is None:
                sync.run(settings, project, store=store)
                result = validation.validate_store(settings, loaded, store)
                if result is None:
                    raise HektaError(f"REDCap holds no records of {project} yet")
            else:
                rows = validation.read_export(input_file)
                result = validation.validate_records(
                    loaded,
                    rows,
                    links=validation.entry_links(settings, loaded),
                    source=str(input_file),
                    accepted=store.acceptances(project),  # the values people checked
                    allow_synthetic_ids=settings.allow_synthetic_ids,
                )
    except HektaError as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(2)
    _, page = validation.write_report(result, report_dir)
    click.echo(f"{summary(result.problems)}; report: {page}")
    ctx.exit(1 if result.errors else 0)


@click.command("sync")
@project_option
@click.option("--full", is_flag=True, help="Pull every record (default: only what changed).")
@click.pass_context
def sync_command(ctx: click.Context, project: str, full: bool) -> None:
    """Pull what changed in REDCap into the local store (HEKTA_STORE) and print one line."""
    from hekta_redcap.data import sync

    log_lines()
    click.echo(sync.run(ctx.obj, project, full=full).summary())


@click.group("problems")
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
    from hekta_redcap.validation.acceptance import Acceptance, accept, read_csv

    person = by or ctx.obj.who()
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
