"""The `hekta-redcap` command line: one module per stage of the data flow (`definitions`,
`deploy`, `data`, `randomization`, `registers`, `followup`, `analysis`, `report`, `fidelity`,
`ops`), each command a thin layer over its stage.

Errors a user can fix (a bad definition file, a missing setting, REDCap refusing or out of
reach) are printed as one line naming the file, line, variable or URL, with a non-zero exit
code and no traceback.

Each command imports the modules it uses when it runs, so that each pays only for its own:
`--help` loads neither PyCap, the lint rules, pandas nor the local server, and `sync` neither
pandas, pandera, the lint rules nor the follow-up engine (tests/test_cli.py checks it). The
developer commands (`sandbox`, `demo`) live with the dev tools and are loaded by name, only
when asked for, so no other command ever imports the emulator.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from hekta_redcap import __version__
from hekta_redcap.cli import (
    analysis,
    data,
    definitions,
    deploy,
    fidelity,
    followup,
    ops,
    randomization,
    registers,
    report,
)
from hekta_redcap.core.errors import HektaError
from hekta_redcap.core.settings import Settings

COMMANDS: list[click.Command] = [
    definitions.lint,
    definitions.dictionary,
    definitions.design,
    definitions.score_command,
    definitions.import_dictionary,
    deploy.plan_command,
    deploy.push_command,
    data.sync_command,
    data.validate_command,
    data.problems_group,
    randomization.randomization_group,
    randomization.randomize_command,
    registers.registers_group,
    followup.followups_command,
    followup.remind_command,
    followup.outbox_command,
    analysis.export_command,
    report.report_command,
    fidelity.fidelity_group,
    ops.daemon_command,
    ops.status_command,
]
# Commands loaded by name when asked for: "module:attribute".
LAZY = {
    "sandbox": "hekta_redcap.devtools.cli:sandbox",
    "demo": "hekta_redcap.devtools.cli:demo_command",
}


class _Group(click.Group):
    """Turns `HektaError` into a one-line message and its exit code, and loads the developer
    commands only when one of them is run or listed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in LAZY:
            module, attribute = LAZY[name].split(":")
            command = getattr(importlib.import_module(module), attribute)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HektaError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hekta-redcap")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """hekta-redcap: a REDCap trial's data side, from instrument definitions to exports."""
    ctx.obj = Settings.load()


for _command in COMMANDS:
    cli.add_command(_command)


def main() -> None:
    cli()
