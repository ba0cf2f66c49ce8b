"""The trial report for the steering and data monitoring committees."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # only for annotations: importing the report loads pandas
    from hekta_redcap.analysis.export import Language

from hekta_redcap.cli.common import (
    definition_options,
    lang_option,
    load,
    output_folder,
    project_option,
)
from hekta_redcap.core.errors import HektaError


@click.command("report")
@project_option
@output_folder()
@click.option(
    "--as-of",
    "as_of",
    metavar="YYYY-MM-DD",
    help="The day the report is as of: later records, randomisations, assessments, messages "
    "and problems left out, follow-ups judged on it (default: today).",
)
@click.option(
    "--unblinded",
    is_flag=True,
    help="Show the arms by name (for the data monitoring committee's closed session); every "
    "section says UNBLINDED.",
)
@lang_option
@definition_options
@click.pass_context
def report_command(
    ctx: click.Context,
    project: str,
    output: Path,
    as_of: str | None,
    unblinded: bool,
    lang: Language,
    root: Path,
    overlay_dir: Path | None,
) -> None:
    """Recruitment, flow, baseline table, retention, data quality, reminders, randomization and
    registers in one HTML file with its tables as CSV and its figures, from the local store;
    blinded unless --unblinded (docs/report.md)."""
    day = _day(as_of)
    loaded = load(project, root, overlay_dir)
    from hekta_redcap.core.clock import local, now
    from hekta_redcap.report.build import HTML, build_report, pdf_available, write_report
    from hekta_redcap.report.inputs import read_inputs

    report = build_report(
        loaded,
        read_inputs(ctx.obj, loaded),
        day or local(now()).date(),
        lang,
        unblinded=unblinded,
    )
    files = write_report(report, output)
    click.echo(f"report: {output / HTML} ({len(files)} files in {output})")
    if not pdf_available():
        click.echo("no PDF: WeasyPrint is not installed (pip install 'hekta-redcap[pdf]')")
    if unblinded:
        click.echo("UNBLINDED: the arms are shown by name; for the closed session only.")


def _day(text: str | None) -> dt.date | None:
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise HektaError(f"--as-of: '{text}' is not a date (YYYY-MM-DD)") from None
