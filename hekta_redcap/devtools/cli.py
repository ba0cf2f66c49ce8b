"""Developer commands: the local REDCap-compatible server and the demo. The main command
loads this module by name, only when one of its commands is asked for."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import click

from hekta_redcap.cli.common import definition_options, load, project_option
from hekta_redcap.core.errors import HektaError
from hekta_redcap.core.settings import SANDBOX_ENV, Settings, token_variable
from hekta_redcap.devtools.sandbox.faults import KINDS


@click.group(invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, type=int, help="Port (0: any free).")
@click.option(
    "--data",
    default=Path("var/sandbox"),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory holding the server's database and super token.",
)
@click.option("--allow-remote", is_flag=True, help="Listen on a non-loopback address.")
@click.option("--fault-rate", default=0.0, type=click.FloatRange(0, 1), help="Share of faults.")
@click.option(
    "--fault-kinds",
    default=",".join(KINDS),
    show_default=True,
    help="Comma-separated faults to inject: " + ", ".join(KINDS) + ".",
)
@click.option("--fault-seed", default=0, type=int, help="Seed for reproducible faults.")
@click.option("--public-url", help="Base URL that survey links start with (default: the server's).")
@click.pass_context
def sandbox(
    ctx: click.Context,
    host: str,
    port: int,
    data: Path,
    allow_remote: bool,
    fault_rate: float,
    fault_kinds: str,
    fault_seed: int,
    public_url: str | None,
) -> None:
    """Run the local REDCap-compatible server (Ctrl-C stops it); see also `sandbox init`."""
    from hekta_redcap.devtools.sandbox.faults import Faults
    from hekta_redcap.devtools.sandbox.server import LOOPBACK, SUPER_TOKEN_FILE, build, super_token

    if host not in LOOPBACK and not allow_remote:
        raise HektaError(f"--host {host} is not a loopback address; add --allow-remote to allow it")
    kinds = tuple(k.strip() for k in fault_kinds.split(",") if k.strip())
    if set(kinds) - set(KINDS):
        raise HektaError(f"--fault-kinds: choose from {', '.join(KINDS)}")
    ctx.meta["sandbox"] = (host, port, data)
    if ctx.invoked_subcommand is not None:
        return
    token, generated = super_token(data)
    server = build(data, host, port, Faults(fault_rate, kinds, fault_seed), public_url)
    click.echo(f"Local REDCap-compatible server at {server.url} (data in {data})")
    if generated:
        click.echo(f"Super token (shown once; also kept in {data / SUPER_TOKEN_FILE}): {token}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
        server.store.close()
        click.echo("Stopped.")


@sandbox.command("init")
@click.option("--project", "-p", "projects", multiple=True, help="Project (default: all).")
@click.option(
    "--env-file",
    default=SANDBOX_ENV,
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the server URL and project tokens.",
)
@definition_options
@click.pass_context
def sandbox_init(
    ctx: click.Context,
    projects: tuple[str, ...],
    env_file: Path,
    root: Path,
    overlay_dir: Path | None,
) -> None:
    """Create the projects from the definitions on the local server (safe to repeat)."""
    from hekta_redcap.definitions.study import available_projects
    from hekta_redcap.devtools.provision import provision
    from hekta_redcap.devtools.sandbox.server import running

    host, port, data = ctx.meta["sandbox"]
    names = list(projects) or available_projects(root)
    loaded = [load(name, root, overlay_dir) for name in names]
    with running(data, host, port) as server:
        outcome = provision(server, loaded, env_file)
    for name, what in outcome.items():
        click.echo(f"{name}: {what}")
    click.echo(f"URL and tokens written to {env_file}; serve with: hekta-redcap sandbox")


@sandbox.command("allocation")
@project_option
@click.argument("table", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--production", is_flag=True, help="The production table (default: development).")
@click.pass_context
def sandbox_allocation(ctx: click.Context, project: str, table: Path, production: bool) -> None:
    """Set up randomization and load an allocation TABLE (CSV: the target field, then the
    strata), as a person does on REDCap's randomization pages; the project is the one its
    token (REDCAP_TOKEN_<PROJECT>, from `sandbox init`) opens on the local server."""
    from hekta_redcap.devtools.sandbox.allocation import project_of, upload
    from hekta_redcap.devtools.sandbox.server import DATABASE
    from hekta_redcap.devtools.sandbox.store import Store

    _, _, data = ctx.meta["sandbox"]
    settings: Settings = ctx.obj
    store = Store(data / DATABASE)
    try:
        with store.transaction() as conn:
            model = project_of(
                conn, settings.token(project).reveal(), token_variable(project), data
            )
            randomization, slots = upload(model, table, production)
    finally:
        store.close()
    kind = "production" if production else "development"
    click.echo(
        f"{project}: randomization id {randomization.rid} ({', '.join(randomization.fields)}); "
        f"{kind} allocation table loaded with {slots} slots"
    )


@click.command("demo")
@click.option(
    "--output",
    "-o",
    default=Path("out/demo"),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
)
@definition_options
def demo_command(output: Path, root: Path, overlay_dir: Path | None) -> None:
    """Run the main job end to end on the local REDCap-compatible server."""
    from hekta_redcap.devtools import demo

    demo.run(root, overlay_dir, output, click.echo)
