"""The trial report: built from the report's inputs cut to the as-of day, then written as one
self-contained HTML file (figures inline as SVG), each table as CSV, each figure as PNG and
SVG, the flow report's own files under `flow/`, and a PDF where WeasyPrint is installed.

Every number comes from the computation the other outputs use: the flow report
(`analysis.consort.flow`), the worklist (`followup.schedule.worklist`), the export's tables
(`analysis.export.build_tables`), validation's problem list and the outbox, run on the same rows
(docs/report.md says which number comes from where).

    >>> report = build_report(project, read_inputs(settings, project), dt.date(2026, 6, 1))
    >>> [p.name for p in write_report(report, Path("out/report"))][:2]
    ['report.html', 'recruitment_monthly.csv']
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from hekta_redcap.analysis.consort import TOTAL, Flow, flow, write_flow
from hekta_redcap.analysis.export.frames import Language, assessment_date
from hekta_redcap.core.clock import local, shown_date
from hekta_redcap.core.errors import HektaError
from hekta_redcap.core.texts import in_language
from hekta_redcap.definitions.model import LANGUAGES
from hekta_redcap.definitions.study import Project
from hekta_redcap.randomization.design import design_of
from hekta_redcap.report import figures, quality
from hekta_redcap.report.baseline import baseline_table
from hekta_redcap.report.blinding import TEXTS, Arms, arms_of
from hekta_redcap.report.inputs import Inputs, as_of
from hekta_redcap.report.recruitment import Recruitment, plan_text, recruitment
from hekta_redcap.report.retention import Retention, measured_events, retention

TEMPLATE = "report.html.j2"
HTML, PDF, FLOW_DIR = "report.html", "report.pdf", "flow"


@dataclass(frozen=True)
class Report:
    """The report's content, before it is laid out."""

    project: Project
    as_of: dt.date
    language: Language
    arms: Arms
    synced: dt.datetime | None
    flow: Flow  # with the arms' labels as the report shows them
    recruitment: Recruitment
    baseline: pd.DataFrame
    retention: Retention
    problems: pd.DataFrame
    reminders: pd.DataFrame
    audit: pd.DataFrame
    balance: pd.DataFrame
    deliveries: pd.DataFrame


def build_report(
    project: Project,
    inputs: Inputs,
    day: dt.date,
    language: Language = "nb",
    unblinded: bool = False,
) -> Report:
    """The report on `day` from `inputs` (cut to that day here)."""
    if language not in LANGUAGES:
        raise HektaError(f"report: unknown language '{language}' (use {', '.join(LANGUAGES)})")
    if inputs.rows.empty:
        raise HektaError(f"the store holds no records of {project.name}: run `hekta-redcap sync`")
    cut = as_of(project, inputs, day)
    arms = arms_of(project, language, unblinded)
    counted = flow(project, cut.rows, day, language)
    counted = dataclasses.replace(counted, labels={**counted.labels, **arms.shown})
    recruited = recruitment(project, cut.rows, counted, day, language)
    kept = retention(project, cut.rows, counted, cut.history, day, arms)
    return Report(
        project=project,
        as_of=day,
        language=language,
        arms=arms,
        synced=inputs.synced,
        flow=counted,
        recruitment=recruited,
        baseline=baseline_table(project, cut.rows, arms, language),
        retention=kept,
        problems=quality.problems(project, cut.rows, cut.problems, recruited, day),
        reminders=quality.reminders(cut.history, kept.work),
        audit=quality.audit_findings(cut.problems),
        balance=quality.balance(project, cut.rows, counted, recruited, arms),
        deliveries=quality.deliveries(cut.deliveries),
    )


# -- laying it out ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    key: str
    heading: str
    notes: list[str]
    tables: list[tuple[str, pd.DataFrame]]  # (CSV file stem, table as shown)
    figures: list[str] = dataclasses.field(default_factory=list)  # figure names


def sections(report: Report) -> list[Section]:
    """The report's sections in order, each table labelled in the report's language."""
    lang, arms, project = report.language, report.arms, report.project
    words = in_language(TEXTS, lang, "columns")
    notes = in_language(TEXTS, lang, "notes")
    heads = in_language(TEXTS, lang, "sections")
    events = _event_labels(project, lang)
    forms = {f: i.label.get(lang) or f for f, i in project.instruments.items()}

    def column(code: str) -> str:
        return words["total"] if code == TOTAL else arms.name(code)

    def named(frame: pd.DataFrame, **renamed: Callable[[Any], Any]) -> pd.DataFrame:
        out = frame.copy()
        for key, how in renamed.items():
            out[key] = out[key].map(how)
        return out.rename(columns={c: words.get(c, c) for c in out.columns})

    recruited = report.recruitment
    monthly = recruited.monthly.rename(columns=lambda c: recruited.sites["label"].get(c, c))
    monthly.index.name = words["month"]
    sites = recruited.sites.set_index("label")
    sites.index.name = words["site"]
    screening = recruited.screening.rename(index=report.flow.labels)
    screening.index.name = "stage"
    kept = report.retention
    shares = {"share": lambda v: "" if pd.isna(v) else f"{v:.0%}"}
    flow_table = report.flow.labelled()
    balance = report.balance.rename(columns=arms.name)
    balance.index.name = words["site"]
    return [
        Section(
            "recruitment",
            heads["recruitment"],
            [plan_text(project, recruited, report.as_of, notes["recruitment"], lang)],
            [
                ("recruitment_monthly", monthly.rename(columns=words).reset_index()),
                ("recruitment_sites", sites.rename(columns=words).reset_index()),
            ],
            ["recruitment"],
        ),
        Section(
            "screening",
            heads["screening"],
            [],
            [("screening", screening.reset_index().rename(columns=words))],
        ),
        Section("flow", heads["flow"], [], [("flow", flow_table)], ["consort"]),
        Section(
            "baseline",
            heads["baseline"],
            [notes["baseline"].format(event=events.get(design_of(project).event or "", ""))],
            [("baseline", report.baseline.rename(columns=words))],
        ),
        Section(
            "retention",
            heads["retention"],
            [notes["retention"], notes["completeness"]],
            [
                (
                    "retention",
                    named(kept.retention, event=events.get, column=column, **shares),
                ),
                (
                    "completeness",
                    named(
                        kept.completeness, event=events.get, form=forms.get, column=column, **shares
                    ),
                ),
            ],
            ["retention", "completeness"],
        ),
        Section(
            "windows",
            heads["windows"],
            [notes["windows"].format(field=assessment_date(project))],
            [("windows", named(kept.windows, event=events.get, column=column))],
        ),
        Section(
            "problems",
            heads["problems"],
            [notes["problems"]],
            [("problems", named(report.problems))],
        ),
        Section(
            "reminders",
            heads["reminders"],
            [notes["reminders"]],
            [("reminders", named(report.reminders))],
        ),
        Section(
            "randomization",
            heads["randomization"],
            [
                notes["randomization"],
                *([notes["audit_clean"]] if not report.audit["findings"].any() else []),
            ],
            [
                ("randomization_audit", named(report.audit)),
                ("randomization_balance", balance.reset_index()),
            ],
        ),
        Section(
            "registers",
            heads["registers"],
            [notes["registers"]],
            [("register_deliveries", named(report.deliveries))],
        ),
    ]


def completeness_grid(report: Report) -> pd.DataFrame:
    """Percent complete, a row per instrument (label) and a column per timepoint and arm: the
    heat map's data, from the completeness table."""
    lang, arms = report.language, report.arms
    events = _event_labels(report.project, lang)
    table = report.retention.completeness
    table = table[table["column"].isin(arms.codes)]
    order = measured_events(report.project, report.flow)
    columns = [(e, c) for e in order for c in arms.codes]
    grid = table.pivot_table(index="form", columns=["event", "column"], values="share", sort=False)
    grid = grid.reindex(columns=pd.MultiIndex.from_tuples(columns)) * 100
    forms = list(dict.fromkeys(table["form"]))
    grid = grid.reindex(forms)
    grid.index = [report.project.instruments[f].label.get(lang) or f for f in grid.index]
    grid.columns = [f"{events.get(e, e)}: {arms.name(c)}" for e, c in grid.columns]
    return grid


def write_report(report: Report, directory: Path) -> list[Path]:
    """report.html, each table as CSV, the figures as PNG and SVG, `flow/` (the flow report's
    files), and report.pdf where WeasyPrint is installed; the paths written."""
    import matplotlib

    directory.mkdir(parents=True, exist_ok=True)
    words = in_language(TEXTS, report.language, "figures")
    total = in_language(TEXTS, report.language, "columns")["total"]
    with matplotlib.rc_context({"font.size": figures.FONT}):
        drawn = {
            "recruitment": figures.recruitment_figure(report.recruitment, words, report.arms),
            "retention": figures.retention_figure(
                report.retention.retention, words, report.arms, total
            ),
            "completeness": figures.completeness_figure(
                completeness_grid(report), words, report.arms
            ),
        }
    paths: list[Path] = [directory / HTML]
    parts = sections(report)
    for section in parts:
        for stem, table in section.tables:
            file = directory / f"{stem}.csv"
            table.to_csv(file, index=False, encoding="utf-8")
            paths.append(file)
    svgs = {}
    for name, figure in drawn.items():
        written, svgs[name] = figures.write_figure(figure, directory, name)
        paths += written
    flow_files = write_flow(report.flow, directory / FLOW_DIR)
    paths += flow_files
    consort = next(p for p in flow_files if p.name == "consort.svg").read_text(encoding="utf-8")
    svgs["consort"] = consort[consort.index("<svg") :]
    html = render_html(report, parts, svgs)
    (directory / HTML).write_text(html, encoding="utf-8")
    pdf = _pdf(html, directory / PDF)
    return [*paths, *([pdf] if pdf else [])]


def pdf_available() -> bool:
    """Whether WeasyPrint (an optional dependency: it needs Pango) is installed."""
    return importlib.util.find_spec("weasyprint") is not None


def _pdf(html: str, file: Path) -> Path | None:
    if not pdf_available():
        return None
    from weasyprint import HTML as Document

    Document(string=html).write_pdf(file)
    return file


def render_html(report: Report, parts: list[Section], svgs: dict[str, str]) -> str:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("hekta_redcap.report", "."),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    page = in_language(TEXTS, report.language, "page")
    lang = report.language
    synced = "—"
    if report.synced is not None:
        moment = local(report.synced)
        synced = f"{shown_date(moment.date(), lang)} {moment:%H:%M}"
    return environment.get_template(TEMPLATE).render(
        lang=lang,
        title=page["title"].format(study=report.project.study.title),
        as_of=page["as_of"].format(date=shown_date(report.as_of, lang), synced=synced),
        banner=report.arms.banner,
        arms_note=report.arms.note,
        blinded=page["blinded"] if not report.arms.unblinded else "",
        files=page["files"],
        pdf_note="" if pdf_available() else page["pdf_missing"],
        empty=page["not_yet"],
        sections=[
            {
                "key": s.key,
                "heading": s.heading,
                "notes": [n for n in s.notes if n],
                "tables": [_cells(t) for _, t in s.tables],
                "figures": [svgs[f] for f in s.figures],
            }
            for s in parts
        ],
    )


def _cells(table: pd.DataFrame) -> dict[str, Any]:
    """A table as the template shows it: header and rows of text (NA blank)."""
    return {
        "header": [str(c) for c in table.columns],
        "rows": [
            ["" if pd.isna(v) else str(v) for v in row] for row in table.itertuples(index=False)
        ],
    }


def _event_labels(project: Project, language: str) -> dict[str, str]:
    return {
        e.unique_name: (e.label.get(language) if e.label else None) or e.name
        for e in project.study.events
    }
