"""Commands for analysts: export."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # only for annotations: importing the export loads pandas
    from hekta_redcap.analysis.export import Format, Language, Shape

from hekta_redcap.cli.common import (
    definition_options,
    lang_option,
    load,
    output_folder,
    project_option,
)


@click.command("export")
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
@output_folder()
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
@click.option(
    "--months",
    default="18",
    show_default=True,
    callback=lambda _ctx, _param, value: _horizons(value),
    help="The register outcomes' horizons, months from randomisation, comma-separated "
    "(e.g. 18,60,120); used once a register delivery has been imported.",
)
@lang_option
@definition_options
@click.pass_context
def export_command(
    ctx: click.Context,
    project: str,
    shape: Shape,
    fmt: Format,
    output: Path,
    key_file: Path | None,
    include_identifiers: bool,
    as_of: dt.datetime | None,
    months: list[int],
    lang: Language,
    root: Path,
    overlay_dir: Path | None,
) -> None:
    """Typed, labelled, scored and de-identified tables from the local store (and from the
    register store once deliveries are imported), with the codebook, the CONSORT flow and
    retention report and a manifest (docs/exports.md, docs/registers.md)."""
    from hekta_redcap.analysis.job import run_export

    exported = run_export(
        ctx.obj,
        load(project, root, overlay_dir),
        shape,
        fmt,
        output,
        language=lang,
        identifiers=include_identifiers,
        key_file=key_file,
        as_of=as_of.date() if as_of else None,
        months=months,
    )
    for line in exported.summary():
        click.echo(line)
    if include_identifiers:
        click.echo("This export holds identifying data: keep it where the study's key is kept.")


def _horizons(value: str) -> list[int]:
    """`--months 18,60,120` as numbers (their range is the export's to check)."""
    try:
        return [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(
            f"expected whole months separated by commas, not {value!r}"
        ) from None
