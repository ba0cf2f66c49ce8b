"""The `hekta-redcap` command line.

Each command is a thin layer over a domain module. Errors a user can fix (a bad definition
file, a missing setting) are printed as one line naming the file, line or variable, with a
non-zero exit code and no traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import yaml

from hekta_redcap import __version__
from hekta_redcap.config import Settings
from hekta_redcap.design import compile_design, write_design
from hekta_redcap.dictionary import (
    compile_project,
    read_csv,
    rows_to_definitions,
    to_csv,
    write_csv,
)
from hekta_redcap.errors import HektaError, Origin
from hekta_redcap.lint import DictionaryContext, Finding, lint_all, lint_dictionary
from hekta_redcap.model import LANGUAGES
from hekta_redcap.study import FORMS_DIR, STUDIES_DIR, Project, default_root, load_project


class _Group(click.Group):
    """Turns `HektaError` into a one-line message and its exit code."""

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


def main() -> None:
    cli()


def _definition_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--definitions and --overlay-dir, defaulting to HEKTA_DEFINITIONS / HEKTA_OVERLAY_DIR."""

    @click.option(
        "--definitions",
        type=click.Path(file_okay=False, path_type=Path),
        help="Definitions directory (default: HEKTA_DEFINITIONS, else ./instruments).",
    )
    @click.option(
        "--overlay-dir",
        type=click.Path(file_okay=False, path_type=Path),
        help="Site-local licensed text (default: HEKTA_OVERLAY_DIR, else <definitions>/local).",
    )
    @functools.wraps(command)
    def wrapper(*args: Any, definitions: Path | None, overlay_dir: Path | None, **kw: Any) -> Any:
        settings: Settings = click.get_current_context().obj
        root = definitions or _path(settings.get("HEKTA_DEFINITIONS")) or default_root()
        overlay = overlay_dir or _path(settings.get("HEKTA_OVERLAY_DIR"))
        return command(*args, root=root, overlay_dir=overlay, **kw)

    return wrapper


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


project_option = click.option("--project", "-p", required=True, help="Project name, e.g. hekta.")
lang_option = click.option(
    "--lang", type=click.Choice(LANGUAGES), default="nb", show_default=True, help="Label language."
)


def _print_findings(findings: list[Finding]) -> int:
    errors = sum(f.severity == "error" for f in findings)
    for finding in findings:
        click.echo(str(finding), err=finding.severity == "error")
    warnings = len(findings) - errors
    click.echo(f"{errors} error(s), {warnings} warning(s)")
    return errors


@cli.command()
@click.option("--project", "-p", "projects", multiple=True, help="Lint only this project.")
@_definition_options
def lint(projects: tuple[str, ...], root: Path, overlay_dir: Path | None) -> None:
    """Check the definitions against REDCap's rules and the project's own."""
    findings = lint_all(root, projects or None, overlay_dir)
    if _print_findings(findings):
        raise SystemExit(1)


@cli.command()
@project_option
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="CSV file.")
@lang_option
@_definition_options
def dictionary(
    project: str, output: Path | None, lang: str, root: Path, overlay_dir: Path | None
) -> None:
    """Write the project's REDCap data dictionary (CSV, REDCap's 18 columns)."""
    rows = compile_project(load_project(project, root, overlay_dir), lang)
    if output is None:
        click.echo(to_csv(rows), nl=False)
    else:
        write_csv(rows, output)
        click.echo(f"wrote {len(rows)} fields to {output}", err=True)


@cli.command()
@project_option
@click.option("--output", "-o", required=True, type=click.Path(file_okay=False, path_type=Path))
@lang_option
@_definition_options
def design(project: str, output: Path, lang: str, root: Path, overlay_dir: Path | None) -> None:
    """Write arms, events, instrument-event mapping and repeating setup (JSON and CSV)."""
    files = write_design(compile_design(load_project(project, root, overlay_dir), lang), output)
    for file in files:
        click.echo(str(file))


@cli.command("import-dictionary")
@click.argument("csv_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--output", "-o", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--project", "-p", help="Project name for the study file (default: from CSV name).")
def import_dictionary(csv_file: Path, output: Path, project: str | None) -> None:
    """Turn an existing REDCap data dictionary into definition files."""
    if not csv_file.is_file():
        raise HektaError("file not found", Origin(csv_file))
    rows = read_csv(csv_file)
    report = lint_dictionary(DictionaryContext(rows))
    if report.errors:
        _print_findings(report.findings)
        raise HektaError(f"not imported: fix the errors in {csv_file} first")
    name = project or "".join(c if c.isalnum() else "_" for c in csv_file.stem.lower()).strip("_")
    study, forms = rows_to_definitions(rows, name, f"Imported from {csv_file.name}")
    _write_yaml(output / STUDIES_DIR / f"{name}.yaml", study)
    for form, spec in forms.items():
        _write_yaml(output / FORMS_DIR / f"{form}.yaml", spec)
    click.echo(
        f"wrote {len(forms)} instrument(s) and study '{name}' to {output}; "
        f"check them with: hekta-redcap lint --definitions {output}"
    )


class _Dumper(yaml.SafeDumper):
    """Writes each choice (`{code, label}`) on one line, as the shipped definitions do."""


_Dumper.add_representer(
    dict,
    lambda dumper, data: dumper.represent_mapping(
        "tag:yaml.org,2002:map", data, flow_style=set(data) == {"code", "label"}
    ),
)


def _write_yaml(file: Path, data: object) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    file.write_text(text, encoding="utf-8")


@cli.command()
@click.option(
    "--output",
    "-o",
    default=Path("out/demo"),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
)
@_definition_options
def demo(output: Path, root: Path, overlay_dir: Path | None) -> None:
    """Run the main job end to end: lint the definitions and compile every project."""
    click.echo(f"Linting the definitions in {root}")
    if _print_findings(lint_all(root, None, overlay_dir)):
        raise SystemExit(1)
    for name in ("hekta", "ips_fidelity"):
        project: Project = load_project(name, root, overlay_dir)
        target = output / name
        rows = compile_project(project)
        write_csv(rows, target / "data_dictionary.csv")
        files = write_design(compile_design(project), target / "design")
        click.echo(
            f"{name}: {len(rows)} fields in {len(project.forms)} instruments -> "
            f"{target / 'data_dictionary.csv'}; design files in {files[0].parent}"
        )
