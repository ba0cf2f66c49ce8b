"""The validation report: `problems.csv` and self-contained HTML pages for study nurses.

The CSV has one row per open problem (`problems.PROBLEM_COLUMNS`, and `first_seen` when the
store keeps the problems), written with a byte order mark so that Excel reads æ, ø and å.

A page needs nothing outside itself (inline CSS, no scripts, no fonts or images to fetch) and
reads in the order a nurse works: a summary (errors, notes, accepted values and by whom, the
oldest open error), then the errors by data access group and record, each linking to the
record's form in REDCap, then the advisory notes grouped by rule and folded. When a project
has more problems than fit one page (`PAGE_PROBLEMS`), `report.html` is an index with the
summary and a page per data access group (split further by records when one group is large),
so that no page grows past a few hundred kilobytes.
"""

from __future__ import annotations

import re
from collections import Counter
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import pandas as pd

from hekta_redcap import __version__
from hekta_redcap.validation.problems import ADVISORY, ERROR, PROBLEM_COLUMNS, RULES

if TYPE_CHECKING:
    from hekta_redcap.validation import Result

TEMPLATE = "report.html.j2"
PAGE_PROBLEMS = 300  # problems per page: about 250 kB of HTML


def write_report(result: Result, directory: Path) -> tuple[Path, Path]:
    """Write `problems.csv` and `report.html` (with its pages, if split) into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    table, index = directory / "problems.csv", directory / "report.html"
    problems = result.problems
    columns = [*PROBLEM_COLUMNS, *(["first_seen"] if "first_seen" in problems else [])]
    problems[columns].to_csv(table, index=False, encoding="utf-8-sig")
    for old in directory.glob("report-*.html"):  # the pages of an earlier run
        old.unlink()
    pages = _pages(problems)
    if len(pages) == 1:
        index.write_text(render_html(result), encoding="utf-8")
        return table, index
    for page in pages:
        html = render_html(result, page["rows"], title=page["label"])
        (directory / page["file"]).write_text(html, encoding="utf-8")
    index.write_text(render_html(result, problems.iloc[0:0], pages=pages), encoding="utf-8")
    return table, index


def render_html(
    result: Result,
    shown: pd.DataFrame | None = None,
    *,
    title: str = "",
    pages: list[dict[str, Any]] | None = None,
) -> str:
    """A page: the summary of the whole result, then the `shown` problems (default: all), or
    with `pages` the index of the pages that hold them."""
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = environment.from_string(
        files(__package__).joinpath(TEMPLATE).read_text(encoding="utf-8")
    )
    shown = result.problems if shown is None else shown
    return template.render(
        run=result.run,
        version=__version__,
        part=title,
        summary=summarise(result),
        rules=_rule_counts(result.problems),
        errors=_errors(result, shown[shown["severity"] == ERROR]),
        notes=_notes(result, shown[shown["severity"] == ADVISORY]),
        pages=[{k: v for k, v in p.items() if k != "rows"} for p in pages or []],
    )


def summarise(result: Result) -> dict[str, Any]:
    """The counts at the top of the report."""
    return overview(result.problems, result.accepted)


def overview(problems: pd.DataFrame, accepted: pd.DataFrame) -> dict[str, Any]:
    """Open errors (in how many records, the oldest by `first_seen` when known), advisory
    notes per rule, and the values accepted and by whom: the report's summary, `status` and
    the digest read the same."""
    if problems.empty:
        problems = pd.DataFrame(columns=["record", "field", "rule", "severity"])
    errors = problems[problems["severity"] == ERROR]
    oldest = None
    if "first_seen" in errors and len(errors):
        first = errors.sort_values("first_seen", kind="stable").iloc[0]
        oldest = {"since": str(first["first_seen"])[:10], "record": first["record"]}
        oldest["field"] = first["field"]
    notes = problems[problems["severity"] == ADVISORY]["rule"].value_counts()
    by = Counter(accepted["by"]) if len(accepted) else Counter()
    return {
        "errors": len(errors),
        "error_records": errors["record"].nunique(),
        "advisories": len(problems) - len(errors),
        "notes_by_rule": [(rule, int(notes[rule])) for rule in RULES if rule in notes],
        "accepted": len(accepted),
        "accepted_by": sorted(by.items()),
        "oldest": oldest,
    }


def overview_line(view: dict[str, Any]) -> str:
    """An `overview` in one line, for `status`."""
    text = f"{view['errors']} error(s) in {view['error_records']} record(s)"
    if view["oldest"]:
        oldest = view["oldest"]
        text += f", oldest open since {oldest['since']} (record {oldest['record']}, "
        text += f"{oldest['field']})"
    rules = ", ".join(f"{rule} {n}" for rule, n in view["notes_by_rule"])
    text += f"; {view['advisories']} advisory note(s)" + (f" ({rules})" if rules else "")
    if view["accepted"]:
        people = ", ".join(f"{who} {n}" for who, n in view["accepted_by"])
        text += f"; {view['accepted']} accepted ({people})"
    return text


def _rule_counts(problems: pd.DataFrame) -> list[dict[str, Any]]:
    counts = problems["rule"].value_counts()
    return [
        {"id": rule, "severity": r.severity, "nb": r.finds[0], "en": r.finds[1], "count": n}
        for rule, r in RULES.items()
        if (n := int(counts.get(rule, 0)))
    ]


def _labelled(result: Result, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Problem rows with their event's and form's labels (bokmål) for the page."""
    study, instruments = result.project.study, result.project.instruments
    events = {e.unique_name: e for e in study.events}
    rows = []
    for problem in frame.fillna("").to_dict("records"):
        event = events.get(problem["event"])
        label = event.label if event and event.label else None
        problem["event_label"] = label.get("nb") if label else problem["event"]
        problem["form_label"] = instruments[problem["instrument"]].label.get("nb")
        rows.append(problem)
    return rows


def _errors(result: Result, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Errors by data access group, then record, in the problem list's order."""
    groups = []
    for dag, in_group in frame.groupby("dag", sort=False):
        records = [
            {"id": record, "problems": _labelled(result, rows)}
            for record, rows in in_group.groupby("record", sort=False)
        ]
        groups.append({"name": dag, "count": len(in_group), "records": records})
    return groups


def _notes(result: Result, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Advisory notes by rule, in the rules' order."""
    order = {rule: i for i, rule in enumerate(RULES)}
    ranked = frame.assign(_rank=frame["rule"].map(order)).sort_values("_rank", kind="stable")
    return [
        {
            "rule": rule,
            "nb": RULES[rule].finds[0],
            "en": RULES[rule].finds[1],
            "problems": _labelled(result, rows.drop(columns="_rank")),
        }
        for rule, rows in ranked.groupby("rule", sort=False)
    ]


def _pages(problems: pd.DataFrame) -> list[dict[str, Any]]:
    """The pages the problems go on: one when they fit, else per data access group, a large
    group split between records."""
    if len(problems) <= PAGE_PROBLEMS:
        return [{"rows": problems}]
    pages = []
    for dag, in_group in problems.groupby("dag", sort=False):
        chunk: list[pd.DataFrame] = []
        parts: list[pd.DataFrame] = []
        for _, rows in in_group.groupby("record", sort=False):
            if chunk and sum(map(len, chunk)) + len(rows) > PAGE_PROBLEMS:
                parts.append(pd.concat(chunk))
                chunk = []
            chunk.append(rows)
        parts.append(pd.concat(chunk))
        slug = re.sub(r"[^a-z0-9_-]+", "-", str(dag).lower()).strip("-") or "none"
        for n, part in enumerate(parts, 1):
            suffix = f"-{n}" if len(parts) > 1 else ""
            pages.append(
                {
                    "rows": part,
                    "file": f"report-{slug}{suffix}.html",
                    "label": f"{dag or '(ingen / none)'}{f' ({n}/{len(parts)})' if suffix else ''}",
                    "errors": int((part["severity"] == ERROR).sum()),
                    "advisories": int((part["severity"] == ADVISORY).sum()),
                    "records": part["record"].nunique(),
                }
            )
    return pages


def summary(problems: pd.DataFrame) -> str:
    """One line for the terminal: how many errors and advisories, in how many records."""
    errors = int((problems["severity"] == ERROR).sum())
    advisories = int((problems["severity"] == ADVISORY).sum())
    records = problems["record"].nunique()
    return f"{errors} error(s), {advisories} advisory note(s) in {records} record(s)"
