"""The validation report: `problems.csv` and a self-contained `report.html`.

The CSV has one row per problem (`problems.PROBLEM_COLUMNS`), written with a byte order mark so
that Excel reads æ, ø and å. The HTML page needs nothing outside itself (inline CSS, no scripts,
no fonts or images to fetch): problems grouped by data access group, then record, each linking
to the record's data entry page, with counts per rule and the run it comes from.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import pandas as pd

from hekta_redcap import __version__
from hekta_redcap.validation.problems import ADVISORY, ERROR, RULES

if TYPE_CHECKING:
    from hekta_redcap.validation import Result

TEMPLATE = "report.html.j2"


def write_report(result: Result, directory: Path) -> tuple[Path, Path]:
    """Write `problems.csv` and `report.html` into `directory` (created if needed)."""
    directory.mkdir(parents=True, exist_ok=True)
    table, page = directory / "problems.csv", directory / "report.html"
    result.problems.to_csv(table, index=False, encoding="utf-8-sig")
    page.write_text(render_html(result), encoding="utf-8")
    return table, page


def render_html(result: Result) -> str:
    """The self-contained HTML page of a result."""
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = environment.from_string(
        files(__package__).joinpath(TEMPLATE).read_text(encoding="utf-8")
    )
    problems = result.problems
    counts = problems["rule"].value_counts()
    return template.render(
        run=result.run,
        version=__version__,
        errors=result.count(ERROR),
        advisories=result.count(ADVISORY),
        rules=[
            {
                "id": rule,
                "severity": r.severity,
                "nb": r.finds[0],
                "en": r.finds[1],
                "count": int(counts.get(rule, 0)),
            }
            for rule, r in RULES.items()
        ],
        groups=_groups(result),
    )


def _groups(result: Result) -> list[dict[str, Any]]:
    """Problems by data access group, then record, in the problem list's order."""
    study, instruments = result.project.study, result.project.instruments
    events = {e.unique_name: e for e in study.events}
    groups: list[dict[str, Any]] = []
    frame = result.problems.fillna("")
    for dag, in_group in frame.groupby("dag", sort=False):
        records = []
        for record, rows in in_group.groupby("record", sort=False):
            problems = []
            for problem in rows.to_dict("records"):
                event = events.get(problem["event"])
                label = event.label if event and event.label else None
                problem["event_label"] = label.get("nb") if label else problem["event"]
                problem["form_label"] = instruments[problem["instrument"]].label.get("nb")
                problems.append(problem)
            records.append({"id": record, "problems": problems})
        groups.append({"name": dag, "count": len(in_group), "records": records})
    return groups


def summary(problems: pd.DataFrame) -> str:
    """One line for the terminal: how many errors and advisories, in how many records."""
    errors = int((problems["severity"] == ERROR).sum())
    advisories = int((problems["severity"] == ADVISORY).sum())
    records = problems["record"].nunique()
    return f"{errors} error(s), {advisories} advisory note(s) in {records} record(s)"
