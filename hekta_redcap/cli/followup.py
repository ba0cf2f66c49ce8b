"""Commands of the follow-up: the worklist, a reminder pass, the outbox."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

import click

from hekta_redcap.core.errors import HektaError
from hekta_redcap.core.settings import Settings

if TYPE_CHECKING:
    pass

from hekta_redcap.cli.common import (
    definition_options,
    lang_option,
    load,
    log_lines,
    moment,
    project_option,
)


@click.command("followups")
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
@definition_options
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
    from hekta_redcap.registers.outcomes import coverage

    loaded = load(project, root, overlay_dir)
    day = as_of.date() if as_of else SendCalendar.from_policy(policy_of(loaded)).day(moment(None))
    with Store.open(ctx.obj) as store:
        rows = store.raw_rows(project)
        if not rows:
            raise HektaError(f"the store holds no records of {project}: run `hekta-redcap sync`")
        history = Outbox(store, project).history()
        work = worklist(loaded, rows, history, day, lang, coverage(ctx.obj, loaded))
        notes = lists.notices(loaded, store.project_info(project), lang)
    click.echo(lists.table(loaded, work, lang, day, everything=show_all, notes=notes))
    if csv_file:
        click.echo(f"CSV: {lists.write_csv(work, csv_file)}")
    if html_file:
        html_file.parent.mkdir(parents=True, exist_ok=True)
        html_file.write_text(lists.render_html(loaded, work, lang, day, notes), encoding="utf-8")
        click.echo(f"HTML: {html_file}")


@click.command("remind")
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
@definition_options
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

    log_lines()
    loaded = load(project, root, overlay_dir)
    settings: Settings = ctx.obj
    with Store.open(settings) as store, daemon_lock(store, project):
        api = Gateway.open(settings, project)
        target = outbox_dir if dry_run else None
        for line in remind(settings, loaded, store, api, now=moment(at), dry_run=target):
            click.echo(line)
    if dry_run:
        click.echo(f"Messages written to {outbox_dir / 'outbox.jsonl'} (nothing sent).")


@click.command("outbox")
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
            box.resolve(key, sent, moment(None))
            click.echo(f"{key}: {'kept as sent' if sent else 'removed; the step is due again'}")
            return
        waiting = box.needing_a_person()
        for entry in waiting:
            click.echo(f"{entry.key}  {entry.status}  {entry.at}  {entry.answer}")
        click.echo(f"{len(waiting)} message(s) need a person to check.")
