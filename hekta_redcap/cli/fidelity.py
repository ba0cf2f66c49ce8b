"""Commands of the fidelity study: the site reports and the IPS-25 scale's psychometrics, from
the synced store (run `sync --project ips_fidelity` first)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from hekta_redcap.cli.common import definition_options, lang_option, load, log_lines, output_folder
from hekta_redcap.core.settings import Settings

if TYPE_CHECKING:
    from hekta_redcap.definitions.study import Project

fidelity_project = click.option(
    "--project", "-p", default="ips_fidelity", show_default=True, help="The fidelity project."
)


@click.group("fidelity")
def fidelity_group() -> None:
    """IPS fidelity over time: site reports and the scale under study (docs/fidelity.md)."""


def _synced_rows(settings: Settings, project: Project) -> list[dict[str, Any]]:
    """The project's rows from the store; refused when it was never synced."""
    from hekta_redcap.core.errors import HektaError
    from hekta_redcap.data.store import Store

    with Store.open(settings) as store:
        if not store.last_runs(project.name, 1):
            raise HektaError(
                f"{project.name} was never synced into {settings.store}: run "
                f"`hekta-redcap sync --project {project.name}` first"
            )
        return store.raw_rows(project.name)


@fidelity_group.command("report")
@fidelity_project
@output_folder()
@click.option("--site", help="Only this site (its code in the study file's site list).")
@click.option(
    "--mask-sites", is_flag=True, help='Show the sites as "Site A", "Site B" ... everywhere.'
)
@lang_option
@definition_options
@click.pass_context
def report_command(
    ctx: click.Context,
    project: str,
    output: Path,
    site: str | None,
    mask_sites: bool,
    lang: str,
    root: Path,
    overlay_dir: Path | None,
) -> None:
    """Write the site reports (report.html and CSV tables): each site's total over time with
    the bands, its items across reviews, the items rated 3 or lower and the improvement plan
    points with their outcome at the next review; all sites side by side."""
    from hekta_redcap.fidelity.report import TEXTS, write_report

    log_lines()
    loaded = load(project, root, overlay_dir)
    report = write_report(
        loaded, _synced_rows(ctx.obj, loaded), output, site=site, mask=mask_sites, lang=lang
    )
    for line in report.lines(lang):
        click.echo(line)
    click.echo(TEXTS["lines.written"][lang].format(path=report.html))


@fidelity_group.command("psychometrics")
@fidelity_project
@output_folder()
@lang_option
@definition_options
@click.pass_context
def psychometrics_command(
    ctx: click.Context, project: str, output: Path, lang: str, root: Path, overlay_dir: Path | None
) -> None:
    """Write the scale's statistics as CSV tables (items, alpha, agreement, icc, change) and
    print a summary: floor and ceiling, item-total correlations, Cronbach's alpha with its
    interval overall and per section, weighted kappa per item and the total's ICC between the
    reviewers' own ratings, and change between consecutive reviews."""
    from hekta_redcap.fidelity.psychometrics import TEXTS, psychometrics, summary
    from hekta_redcap.fidelity.reviews import read_reviews

    log_lines()
    loaded = load(project, root, overlay_dir)
    data = read_reviews(loaded, _synced_rows(ctx.obj, loaded), lang)
    tables = psychometrics(data)
    output.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.tables().items():
        frame.to_csv(output / f"{name}.csv", index=False)
    for line in summary(data, tables, lang):
        click.echo(line)
    click.echo(TEXTS["psychometrics.written"][lang].format(path=output))
