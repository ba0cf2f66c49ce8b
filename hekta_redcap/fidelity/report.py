"""The site reports: per site, the total over time on the bands, the 25 items across reviews,
the items rated 3 or lower at the latest review and the improvement plan points with their
outcome at the next review; across sites the same side by side. One self-contained HTML page
(figures embedded, headings in the chosen language with the other beside them) and a CSV per
table and figure. With `mask`, every site is "Site A", "Site B" ... in the page, the CSV files
and the figures alike; no site code or record id is written.

    >>> report = write_report(project, store.raw_rows("ips_fidelity"), Path("out/fidelity"))
    >>> report.lines("en")[0]
    'Bergen: Department of addiction medicine: Good fidelity (100, 2026-07-22), up 5'
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from hekta_redcap import LANGUAGES, __version__
from hekta_redcap.core.clock import now, shown_date, shown_time
from hekta_redcap.core.errors import HektaError
from hekta_redcap.core.texts import catalog
from hekta_redcap.definitions.study import Project
from hekta_redcap.fidelity import figures
from hekta_redcap.fidelity.plans import carry_forward
from hekta_redcap.fidelity.reviews import (
    PLAN_FORM,
    TOTAL,
    TYPE,
    Reviews,
    Scale,
    read_reviews,
)

TEMPLATE = "templates/report.html.j2"
TEXTS = catalog(__package__, "texts.yaml")
LOW = 3


@dataclass
class SiteLine:
    """A site's latest review: what the demo and the report's overview show."""

    label: str
    date: dt.date
    total: int
    band: int
    change: int | None

    def text(self, data: Reviews, lang: str) -> str:
        return TEXTS["lines.site"][lang].format(
            site=self.label,
            band=data.scale.band_label(self.band, lang),
            total=self.total,
            date=shown_date(self.date, lang),
            trend=trend(self.change, lang),
        )


@dataclass
class SiteReport:
    """What the report wrote: the HTML page, each CSV table by name (the frames as written) and
    the frame behind each figure (`totals`, `heatmap` per site label; `sites_totals`,
    `sites_heatmap` across sites)."""

    data: Reviews
    html: Path
    tables: dict[str, pd.DataFrame]
    figures: dict[str, pd.DataFrame] = field(default_factory=dict)
    sites: list[SiteLine] = field(default_factory=list)

    def lines(self, lang: str) -> list[str]:
        return [s.text(self.data, lang) for s in self.sites]


def trend(change: int | None, lang: str) -> str:
    if change is None:
        return TEXTS["trend.first"][lang]
    if change == 0:
        return TEXTS["trend.same"][lang]
    key = "trend.up" if change > 0 else "trend.down"
    return TEXTS[key][lang].format(points=abs(change))


def write_report(
    project: Project,
    rows: Iterable[Mapping[str, Any]],
    output: Path,
    *,
    site: str | None = None,
    mask: bool = False,
    lang: str = "nb",
) -> SiteReport:
    """Write report.html and the CSV tables into `output`; `site` (a site code) limits the
    report to that site's section."""
    data = read_reviews(project, rows, lang, mask)
    if site is not None and site not in data.labels:
        known = ", ".join(data.labels) or "none"
        raise HektaError(f"unknown site '{site}' (site codes: {known})")
    reviews = data.reviews if site is None else data.reviews[data.reviews["site"] == site]
    plans = carry_forward(data)
    plans = plans if site is None else plans[plans["site"] == site]
    output.mkdir(parents=True, exist_ok=True)
    report = SiteReport(data, output / "report.html", {})
    report.tables = _tables(project, data, reviews, plans, lang)
    report.sites = [_site_line(group) for _, group in _by_site(reviews)]
    page = _render(project, data, reviews, plans, report, lang, mask, across=site is None)
    for name, frame in report.tables.items():
        frame.to_csv(output / f"{name}.csv", index=False)
    report.html.write_text(page, encoding="utf-8")
    return report


def _by_site(reviews: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    return [(str(code), group) for code, group in reviews.groupby("site", sort=False)]


def _site_line(group: pd.DataFrame) -> SiteLine:
    latest = group.iloc[-1]
    change = int(latest[TOTAL]) - int(group.iloc[-2][TOTAL]) if len(group) > 1 else None
    return SiteLine(
        str(latest["site_label"]), latest["date"], int(latest[TOTAL]), int(latest["band"]), change
    )


def _tables(
    project: Project, data: Reviews, reviews: pd.DataFrame, plans: pd.DataFrame, lang: str
) -> dict[str, pd.DataFrame]:
    """The CSV tables: sites by label only (no code, no record id), dates ISO."""
    scale = data.scale
    types = _choice_labels(project, "site_review", TYPE, lang)
    table = reviews.rename(columns={"site_label": "site_name"})
    table = table.assign(
        type=table["type"].map(types),
        band_label=[scale.band_label(b, lang) for b in table["band"]],
    )
    review_table = table[
        ["site_name", "number", "date", "type", TOTAL, *scale.sections, "band", "band_label"]
    ]
    items = (
        table.set_index(["site_name", "number", "date"])[scale.items]
        .rename(columns=scale.item_label)
        .stack()
        .rename("rating")
        .rename_axis(["site_name", "number", "date", "item"])
        .reset_index()
    )
    previous = _previous_ratings(reviews, scale)
    low = items[items["rating"] <= LOW].copy()
    low["previous"] = [
        previous.get((site, number, item))
        for site, number, item in zip(low["site_name"], low["number"], low["item"], strict=True)
    ]
    low["previous"] = low["previous"].astype("Int64")
    statuses = _choice_labels(project, PLAN_FORM, "plan_status", lang)
    plan_table = plans.assign(
        site_name=plans["site"].map(data.labels),
        item=[scale.item_label(i) if i else "" for i in plans["item"]],
        status=plans["status"].map(statuses),
    )[
        [
            "site_name",
            "number",
            "date",
            "item",
            "area",
            "finding",
            "action",
            "due",
            "status",
            "rating",
            "next_rating",
            "change",
            "outcome",
        ]
    ]
    tables = {
        "reviews": review_table.reset_index(drop=True),
        "items": items,
        "low_items": low.reset_index(drop=True),
        "plans": plan_table.reset_index(drop=True),
    }
    return tables


def _previous_ratings(reviews: pd.DataFrame, scale: Scale) -> dict[tuple[str, int, str], int]:
    """(site label, review number, item's short name) -> the item's rating at the site's
    review before that one."""
    found: dict[tuple[str, int, str], int] = {}
    for _, group in reviews.groupby("site", sort=False):
        ordered = group.sort_values("number")
        for (_, before), (_, after) in zip(
            ordered.iloc[:-1].iterrows(), ordered.iloc[1:].iterrows(), strict=True
        ):
            for item in scale.items:
                key = (str(after["site_label"]), int(after["number"]), scale.item_label(item))
                found[key] = int(before[item])
    return found


def _choice_labels(project: Project, form: str, name: str, lang: str) -> dict[str, str]:
    instrument = project.instruments[form]
    field_ = next(f for f in instrument.fields if f.name == name)
    return {c.code: instrument.choice_label(c, lang) for c in instrument.choices_of(field_)}


def _render(
    project: Project,
    data: Reviews,
    reviews: pd.DataFrame,
    plans: pd.DataFrame,
    report: SiteReport,
    lang: str,
    mask: bool,
    across: bool,
) -> str:
    scale = data.scale
    other = next(code for code in LANGUAGES if code != lang)
    words = {
        key.removeprefix("html."): (text[lang], text[other])
        for key, text in TEXTS.items()
        if key.startswith("html.")
    }
    items = {f.name: scale.instrument.label_of(f, lang) for f in scale.instrument.fields}
    types = _choice_labels(project, "site_review", TYPE, lang)
    statuses = _choice_labels(project, PLAN_FORM, "plan_status", lang)
    sites = []
    for (_, group), line in zip(_by_site(reviews), report.sites, strict=True):
        label = line.label
        totals_figure, report.figures[f"totals:{label}"] = figures.site_totals(group, scale, lang)
        heat_figure, report.figures[f"heatmap:{label}"] = figures.item_heatmap(group, scale)
        latest = group.iloc[-1]
        before = group.iloc[-2] if len(group) > 1 else None
        site_plans = plans[plans["site"] == latest["site"]]
        sites.append(
            {
                "label": label,
                "latest_total": line.total,
                "latest_band": scale.band_label(line.band, lang),
                "trend": trend(line.change, lang),
                "reviews": [
                    {
                        "number": r["number"],
                        "date": shown_date(r["date"], lang),
                        "type": types.get(r["type"], r["type"]),
                        "total": r[TOTAL],
                        "sections": [r[s] for s in scale.sections],
                        "band": scale.band_label(int(r["band"]), lang),
                    }
                    for _, r in group.iterrows()
                ],
                "totals": figures.embed(totals_figure),
                "heatmap": figures.embed(heat_figure),
                "low": [
                    {
                        "item": items[i],
                        "rating": latest[i],
                        "previous": "" if before is None else before[i],
                    }
                    for i in scale.items
                    if latest[i] <= LOW
                ],
                "plans": [
                    {
                        "number": p["number"],
                        "item": items[p["item"]] if p["item"] else p["area"],
                        "finding": p["finding"],
                        "action": p["action"],
                        "due": shown_date(dt.date.fromisoformat(p["due"]), lang)
                        if p["due"]
                        else "",
                        "status": statuses.get(p["status"], p["status"]),
                        "rating": "" if pd.isna(p["rating"]) else p["rating"],
                        "next_rating": "" if pd.isna(p["next_rating"]) else p["next_rating"],
                        "outcome": TEXTS[f"outcome.{p['outcome']}"][lang],
                    }
                    for _, p in site_plans.iterrows()
                ],
            }
        )
    overview = None
    if across and len(reviews):
        totals_figure, report.figures["sites_totals"] = figures.sites_totals(reviews, scale, lang)
        heat_figure, report.figures["sites_heatmap"] = figures.sites_heatmap(reviews, scale)
        report.tables["latest_items"] = (
            report.figures["sites_heatmap"].rename_axis("item").reset_index()
        )
        overview = {"totals": figures.embed(totals_figure), "heatmap": figures.embed(heat_figure)}
    bands = ", ".join(
        f"{scale.band_label(code, lang)} {low:g}–{high:g}"
        for code, low, high in figures.band_edges(scale)
    )
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = environment.from_string(files(__package__).joinpath(TEMPLATE).read_text("utf-8"))
    return template.render(
        lang=lang,
        h=words,
        study=project.study,
        made=shown_time(now()),
        version=__version__,
        bands=TEXTS["html.bands"][lang].format(bands=bands),
        masked=TEXTS["html.masked"][lang] if mask else "",
        incomplete=TEXTS["html.incomplete"][lang].format(count=len(data.incomplete))
        if data.incomplete
        else "",
        across=overview,
        sites=sites,
        section_names=[scale.section_label(name, lang) for name in scale.sections],
    )
