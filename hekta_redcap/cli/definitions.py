"""Commands on the definitions: lint, the data dictionary and design, scoring, importing an
existing dictionary."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from hekta_redcap.core.errors import HektaError, Origin

if TYPE_CHECKING:
    pass

from hekta_redcap.cli.common import (
    definition_options,
    lang_option,
    load,
    output_folder,
    print_findings,
    project_option,
)


@click.command()
@click.option("--project", "-p", "projects", multiple=True, help="Lint only this project.")
@definition_options
def lint(projects: tuple[str, ...], root: Path, overlay_dir: Path | None) -> None:
    """Check the definitions against REDCap's rules and the project's own."""
    from hekta_redcap.lint import lint_all

    findings = lint_all(root, projects or None, overlay_dir)
    if print_findings(findings):
        raise SystemExit(1)


@click.command()
@project_option
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="CSV file.")
@lang_option
@definition_options
def dictionary(
    project: str, output: Path | None, lang: str, root: Path, overlay_dir: Path | None
) -> None:
    """Write the project's REDCap data dictionary (CSV, REDCap's 18 columns)."""
    from hekta_redcap.compile.dictionary import compile_project
    from hekta_redcap.redcap.dictionary import to_csv, write_csv

    rows = compile_project(load(project, root, overlay_dir), lang)
    if output is None:
        click.echo(to_csv(rows), nl=False)
    else:
        write_csv(rows, output)
        click.echo(f"wrote {len(rows)} fields to {output}", err=True)


@click.command()
@project_option
@output_folder()
@lang_option
@definition_options
def design(project: str, output: Path, lang: str, root: Path, overlay_dir: Path | None) -> None:
    """Write arms, events, instrument-event mapping and repeating setup (JSON and CSV)."""
    from hekta_redcap.compile.design import compile_design, write_design

    files = write_design(compile_design(load(project, root, overlay_dir), lang), output)
    for file in files:
        click.echo(str(file))


@click.command("import-dictionary")
@click.argument("csv_file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@output_folder()
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
        print_findings(refused.findings, per_rule=20)
        raise
    print_findings(done.findings, per_rule=20)
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


@click.command("score")
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
@definition_options
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

    loaded = load(project, root, overlay_dir) if project else find_project(form, root, overlay_dir)
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
