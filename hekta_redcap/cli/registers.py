"""Commands of the registers: the linkage list and importing deliveries."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from hekta_redcap.cli.common import definition_options, load, log_lines, project_option


@click.group("registers")
def registers_group() -> None:
    """Register linkage: the list to send, and the deliveries that come back."""


@registers_group.command("linkage-list")
@project_option
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The linkage list to write (CSV fnr;lopenr, created readable by you alone).",
)
@click.option(
    "--key",
    "key_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The linkage key: record id <-> lopenr (default: HEKTA_LINKAGE_KEY).",
)
@definition_options
@click.pass_context
def linkage_list_command(
    ctx: click.Context,
    project: str,
    output: Path,
    key_file: Path | None,
    root: Path,
    overlay_dir: Path | None,
) -> None:
    """Write the linkage list from the store (run `sync` first): every participant who
    consented to register linkage, with a checked national identity number and the project's
    serial number; numbers to correct are listed by record id, not written."""
    from hekta_redcap.registers.linkage import write_linkage_list

    log_lines()
    loaded = load(project, root, overlay_dir)
    result = write_linkage_list(ctx.obj, loaded, output, key_file or ctx.obj.linkage_key)
    click.echo(result.text())


@registers_group.command("import")
@click.option("--source", required=True, help="The register: aa, inntekt, npr, kpr, fd_trygd.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--key",
    "key_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The linkage key the delivery's lopenr are checked against (default: HEKTA_LINKAGE_KEY).",
)
@click.option(
    "--period",
    help="The period the delivery covers, FROM:TO (YYYY-MM-DD or YYYY-MM); default: its dates.",
)
@click.option(
    "--delivered",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="The day the register delivered the file (default: today).",
)
@definition_options
@click.pass_context
def import_command(
    ctx: click.Context,
    source: str,
    file: Path,
    key_file: Path | None,
    period: str | None,
    delivered: dt.datetime | None,
    root: Path,
    overlay_dir: Path | None,
) -> None:
    """Read a delivery (CSV as registers deliver it, or SAS, Stata or SPSS), check every row
    against the source's layout and keep it with its provenance; rows that fail are listed by
    line and the command exits 1. Register data never go into REDCap."""
    from hekta_redcap.registers.delivery import import_delivery

    log_lines()
    result = import_delivery(
        ctx.obj, root, source, file, key_file or ctx.obj.linkage_key, period, delivered
    )
    click.echo(result.text())
    if result.rejected:
        ctx.exit(1)
