"""Commands that compare the definitions with a live project and push them: plan, push."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from hekta_redcap.core.errors import HektaError

if TYPE_CHECKING:
    from hekta_redcap.deploy.plan import Plan
    from hekta_redcap.gateway import Gateway

from hekta_redcap.cli.common import (
    confirmed,
    definition_options,
    load,
    project_option,
)


@click.command("plan")
@project_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@definition_options
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


@click.command("push")
@project_option
@click.option("--allow-data-loss", is_flag=True, help="Apply data-affecting changes too.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Show the plan; write nothing.")
@click.option(
    "--bundle",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where a production project's Draft Mode bundle goes (default: out/draft/<project>).",
)
@definition_options
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
    if not yes and not confirmed("Apply these changes to REDCap?"):
        raise HektaError("not confirmed: nothing applied")
    applied = apply_plan(api, found, click.echo)
    click.echo(f"Done: {', '.join(applied)} applied.")


def _plan(
    ctx: click.Context, project: str, root: Path, overlay_dir: Path | None
) -> tuple[Gateway, Plan]:
    from hekta_redcap.deploy.plan import make_plan
    from hekta_redcap.gateway import Gateway

    definitions = load(project, root, overlay_dir)
    api = Gateway.open(ctx.obj, project)
    return api, make_plan(api, definitions)
