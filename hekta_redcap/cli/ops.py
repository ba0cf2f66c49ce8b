"""Commands that run unattended, and what they report: daemon, status."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    pass

from hekta_redcap.cli.common import (
    definition_options,
    load,
    log_lines,
    project_option,
)


@click.command("daemon")
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
@definition_options
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

    log_lines()
    run_daemon(ctx.obj, load(project, root, overlay_dir), once=once, reports=reports)


@click.command("status")
@project_option
@definition_options
@click.pass_context
def status_command(ctx: click.Context, project: str, root: Path, overlay_dir: Path | None) -> None:
    """The last sync runs, the lag, the open problem count, whether the daemon is alive, and
    what stops the reminders as a whole."""
    from hekta_redcap.ops.daemon import status

    loaded = load(project, root, overlay_dir)
    click.echo(status(ctx.obj, project, definitions=loaded).render(project))
