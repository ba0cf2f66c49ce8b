"""Validate a REDCap export against the definitions: typed reading, pandera schemas, REDCap's
data-quality rules and the study's own, and a problem list a study nurse can act on.

    project = load_project("hekta")
    rows = pd.DataFrame(client.export_records(export_data_access_groups=True))  # PyCap
    result = validate_records(project, rows)      # result.typed, result.problems
    write_report(result, Path("out/validation"))  # problems.csv, report.html

`rows` is REDCap's flat record export as text (PyCap's JSON rows, or a CSV read with
`read_export`). The steps: missing data codes are set aside, the text is validated by pandera
schemas generated per instrument and event (`schemas`), cast to types (`reading`), and checked by
REDCap's rules A-I and the study's cross-field rules (`rules`); `problems` turns the findings
into messages in bokmål and English, one per problem.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hekta_redcap.core.errors import HektaError, Origin
from hekta_redcap.core.settings import Settings, token_variable
from hekta_redcap.data.store import Store
from hekta_redcap.definitions.study import Project
from hekta_redcap.gateway import Gateway
from hekta_redcap.validation import randomization
from hekta_redcap.validation.layout import Layout
from hekta_redcap.validation.problems import ADVISORY, ERROR, RULES, EntryLinks, assemble
from hekta_redcap.validation.reading import answers, cast, detect_codes
from hekta_redcap.validation.report import write_report
from hekta_redcap.validation.rules import Rules
from hekta_redcap.validation.schemas import failure_hits, required

__all__ = [
    "RULES",
    "EntryLinks",
    "Result",
    "Run",
    "entry_links",
    "read_export",
    "validate_records",
    "validate_store",
    "write_report",
]


@dataclass(frozen=True)
class Run:
    """Which validation run a result comes from, for the report."""

    project: str
    title: str
    source: str
    started: dt.datetime
    today: dt.date
    rows: int
    records: int
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])


@dataclass
class Result:
    """A validated export: the typed frame (one row per export row), the problem list
    (`problems.PROBLEM_COLUMNS`), and the problems a person accepted earlier whose value is
    still the one they checked (with `reason`, `by`, `at`)."""

    project: Project
    run: Run
    typed: pd.DataFrame
    problems: pd.DataFrame
    accepted: pd.DataFrame = field(default_factory=pd.DataFrame)

    def count(self, severity: str) -> int:
        return int((self.problems["severity"] == severity).sum())

    @property
    def errors(self) -> int:
        return self.count(ERROR)

    @property
    def advisories(self) -> int:
        return self.count(ADVISORY)


def validate_records(
    project: Project,
    rows: pd.DataFrame,
    *,
    links: EntryLinks | None = None,
    today: dt.date | None = None,
    source: str = "export",
    accepted: Mapping[tuple[str, str, str, str], Mapping[str, str]] | None = None,
    allow_synthetic_ids: bool = False,
) -> Result:
    """Validate a flat export of `project` (see the module docstring). `today` is the date
    that `today` bounds and logic mean (default: the day of the run); `links` makes each
    problem link to the record's data entry page; `accepted` (`Store.acceptances`) holds the
    values people checked and found right; `allow_synthetic_ids` (HEKTA_ALLOW_SYNTHETIC_IDS)
    makes identity numbers of the synthetic test population valid. The study's
    `data_quality.disabled` rules do not run.
    Raises `HektaError` when the export does not fit the definitions (unknown or absent
    columns, duplicate rows)."""
    started = dt.datetime.now().replace(microsecond=0)
    today = today or started.date()
    layout = Layout(project, rows)
    coded = detect_codes(layout)
    text = answers(layout, coded)
    rules = Rules(layout, coded, today, allow_synthetic_ids)
    due = {
        spec.field.name: rules.answer(spec)
        for form in project.forms
        for spec in required(layout, form)
    }
    found = [failure_hits(layout, text, due, today)]
    typed = cast(layout, text)
    found += rules.all(typed)
    hits = pd.concat(found, ignore_index=True).astype({"row": "int64"})  # empty parts: object
    off = set(project.study.data_quality.disabled)
    hits = hits[~hits["rule"].isin(off) & ~((hits["rule"] == "check") & hits["detail"].isin(off))]
    problems, kept = _accepted(assemble(layout, hits, links), accepted or {})
    run = Run(
        project.name,
        project.study.title,
        source,
        started,
        today,
        len(layout.raw),
        layout.record.nunique(),
    )
    return Result(project, run, typed, problems, kept)


def _accepted(
    problems: pd.DataFrame, accepted: Mapping[tuple[str, str, str, str], Mapping[str, str]]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The problems still open, and those whose value a person accepted (unchanged since)."""
    keys = zip(
        *(problems[k].astype(str) for k in ("record", "event", "instance", "field")), strict=True
    )
    found = [accepted.get(key) for key in keys]
    still = np.array(
        [
            a is not None and a["digest"] == d
            for a, d in zip(found, problems["digest"], strict=True)
        ],
        dtype=bool,
    )
    details = pd.DataFrame(
        [found[i] for i in np.flatnonzero(still)], columns=["reason", "by", "at"]
    )
    kept = pd.concat([problems[still].reset_index(drop=True), details], axis=1)
    return problems[~still].reset_index(drop=True), kept


def read_export(file: Path) -> pd.DataFrame:
    """A CSV record export (REDCap's raw, flat format) as text, nothing guessed."""
    try:
        return pd.read_csv(file, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except FileNotFoundError:
        raise HektaError("file not found", Origin(file)) from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise HektaError(f"cannot read the export: {exc}", Origin(file)) from None


def validate_store(settings: Settings, project: Project, store: Store) -> Result | None:
    """Validate the store's copy of the project (what the last sync pulled), as the daemon does
    on its schedule and `validate` after a sync, with the randomization's rules where they
    apply (`randomization`: they read REDCap's logging): the values people accepted stay
    accepted, and the store keeps the open problems (with when each was first seen) and the
    typed data. None when the store holds no records of the project."""
    rows = pd.DataFrame(store.raw_rows(project.name), dtype=str).fillna("")
    if rows.empty:
        return None
    source = f"the local store, synced from {settings.redcap_api_url or 'REDCap'}"
    links, accepted = entry_links(settings, project), store.acceptances(project.name)
    result = validate_records(
        project,
        rows,
        links=links,
        accepted=accepted,
        source=source,
        allow_synthetic_ids=settings.allow_synthetic_ids,
    )
    if randomization.applies(project, store):
        found = randomization.randomization_problems(settings, project, store, links)
        still, kept = _accepted(found, accepted)
        if len(still):
            result.problems = pd.concat([result.problems, still], ignore_index=True)
        if len(kept):
            result.accepted = pd.concat([result.accepted, kept], ignore_index=True)
    first_seen = store.set_problems(project.name, result.problems.to_dict("records"))
    result.problems = result.problems.assign(first_seen=first_seen)
    store.set_typed(project.name, result.typed)
    return result


def entry_links(settings: Settings, project: Project) -> EntryLinks | None:
    """What links to the data entry pages need, from the live project; None when the
    project's URL and token are not configured."""
    if not settings.redcap_api_url or not settings.get(token_variable(project.name)):
        return None
    api = Gateway.open(settings, project.name)
    info = api.export_project_info()
    events = api.export_events() if project.study.longitudinal else []
    version = api.export_version()
    event_ids = {e["unique_event_name"]: int(e["event_id"]) for e in events if "event_id" in e}
    base = settings.api_url.removesuffix("api/")
    return EntryLinks(base, str(version or ""), int(info["project_id"]), event_ids)
