"""What the commands share: the options naming a project and its definitions, loading them,
printing findings, log lines and the pinned clock."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from hekta_redcap import LANGUAGES
from hekta_redcap.core.settings import Settings

if TYPE_CHECKING:
    from hekta_redcap.definitions.study import Project
    from hekta_redcap.lint import Finding


def definition_options(command: Callable[..., Any]) -> Callable[..., Any]:
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
        from hekta_redcap.definitions.study import default_root

        settings: Settings = click.get_current_context().obj
        root = definitions or settings.definitions or default_root()
        overlay = overlay_dir or settings.overlay_dir
        return command(*args, root=root, overlay_dir=overlay, **kw)

    return wrapper


def load(project: str, root: Path, overlay_dir: Path | None) -> Project:
    """A project's definitions (study.py loads pydantic and YAML, so it is imported here)."""
    from hekta_redcap.definitions.study import load_project

    return load_project(project, root, overlay_dir)


project_option = click.option("--project", "-p", required=True, help="Project name, e.g. hekta.")


def output_folder(help: str = "Folder to write into.") -> Callable[..., Any]:
    """`--output`/`-o`, the folder a command writes its files into (required)."""
    return click.option(
        "--output",
        "-o",
        required=True,
        type=click.Path(file_okay=False, path_type=Path),
        help=help,
    )


lang_option = click.option(
    "--lang", type=click.Choice(LANGUAGES), default="nb", show_default=True, help="Label language."
)


def print_findings(findings: list[Finding], per_rule: int | None = None) -> int:
    """Print findings and a count; `per_rule` caps the warnings shown for each rule."""
    errors = sum(f.severity == "error" for f in findings)
    shown: dict[str, int] = {}
    for finding in findings:
        if finding.severity == "warning" and per_rule is not None:
            shown[finding.rule] = shown.get(finding.rule, 0) + 1
            if shown[finding.rule] > per_rule:
                continue
        click.echo(str(finding), err=finding.severity == "error")
    for rule, count in shown.items():
        if per_rule is not None and count > per_rule:
            click.echo(f"... and {count - per_rule} more {rule} warning(s)")
    warnings = len(findings) - errors
    click.echo(f"{errors} error(s), {warnings} warning(s)")
    return errors


def confirmed(question: str) -> bool:
    """A yes/no prompt; no answer (no terminal, end of input) counts as no."""
    try:
        return click.confirm(question, default=False, err=True)
    except click.Abort:
        return False


def log_lines() -> None:
    """Structured log lines on stderr (`ts=… key=value …`): counts and record ids only."""
    logging.basicConfig(
        level=logging.INFO, format="ts=%(asctime)s %(message)s", stream=sys.stderr, force=True
    )


def moment(value: dt.datetime | None) -> dt.datetime:
    """A `--now` value (tests pin the clock with it) or the current time, aware."""
    from hekta_redcap.core.clock import now

    if value is None:
        return now()
    return value if value.tzinfo else value.astimezone()
