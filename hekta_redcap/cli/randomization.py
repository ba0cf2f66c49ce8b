"""Commands of the randomization: the allocation tables, randomizing one record, the audit."""

from __future__ import annotations

from pathlib import Path

import click

from hekta_redcap.cli.common import (
    definition_options,
    lang_option,
    load,
    log_lines,
    output_folder,
    project_option,
)


@click.group("randomization")
def randomization_group() -> None:
    """Allocation tables for REDCap's randomization module, and their audit."""


@randomization_group.command("table")
@project_option
@output_folder("Directory for the two allocation tables, the manifest and the summary.")
@click.option(
    "--seed-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The seeds: read when the file exists, else drawn and written there (owner-only). "
    "Without it the seeds are drawn and kept nowhere.",
)
@definition_options
def table_command(
    project: str, output: Path, seed_file: Path | None, root: Path, overlay_dir: Path | None
) -> None:
    """Write the development and production allocation tables (stratified permuted blocks of
    randomly varying size) in the format of REDCap's upload, with a manifest and a summary."""
    from hekta_redcap.cli.common import print_findings
    from hekta_redcap.lint import lint_project
    from hekta_redcap.randomization.tables import write_tables

    loaded = load(project, root, overlay_dir)
    errors = [f for f in lint_project(loaded) if f.severity == "error"]
    if errors:  # tables from a design lint refuses would allocate wrongly: none are written
        print_findings(errors)
        raise SystemExit(1)
    written = write_tables(loaded, output, seed_file)
    click.echo(written.text())


@randomization_group.command("audit")
@project_option
@click.option(
    "--table",
    "table",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The allocation table in use (as uploaded to REDCap).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for audit.csv, balance.csv and audit.html (default: out/<project>/audit).",
)
@lang_option
@definition_options
@click.pass_context
def audit_command(
    ctx: click.Context,
    project: str,
    table: Path,
    output: Path | None,
    lang: str,
    root: Path,
    overlay_dir: Path | None,
) -> None:
    """Check every randomization against the table, REDCap's logging and the data (the
    project is synced into the store first); exit 1 on any finding."""
    from hekta_redcap.randomization.audit import run_audit

    log_lines()
    loaded = load(project, root, overlay_dir)
    result = run_audit(ctx.obj, loaded, table, output or Path("out") / project / "audit", lang)
    click.echo(result.text())
    if result.findings:
        ctx.exit(1)


@click.command("randomize")
@project_option
@click.argument("record")
@click.option("--by", help="Who randomizes (initials; default: HEKTA_USER, else the login name).")
@lang_option
@definition_options
@click.pass_context
def randomize_command(
    ctx: click.Context,
    project: str,
    record: str,
    by: str | None,
    lang: str,
    root: Path,
    overlay_dir: Path | None,
) -> None:
    """Randomize RECORD through REDCap's randomization module once consent is given and the
    baseline forms are complete; writes the randomization date and prints the group."""
    from hekta_redcap.randomization.allocate import randomize

    log_lines()
    allocation = randomize(ctx.obj, load(project, root, overlay_dir), record, by)
    click.echo(allocation.text(lang))
