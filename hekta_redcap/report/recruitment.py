"""Recruitment against the plan: randomisations per month and site, cumulative, against the
study file's `recruitment` (a straight line from 0 at its start to the target at its end), and
per site against the site's target; then screening and its exclusions from the flow report.

A record counts as recruited in the month of its anchor date (the randomisation date, read by
`followup.schedule.anchor_dates` as the flow report and the worklist read it), at the site of
its randomization stratum (the first stratification factor: a field's choice, or the data
access group).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

from hekta_redcap.analysis.consort import ENROLMENT, Flow
from hekta_redcap.core.clock import shown_date
from hekta_redcap.definitions.study import Project
from hekta_redcap.followup.schedule import anchor_dates, latest_values
from hekta_redcap.randomization.design import design_of
from hekta_redcap.redcap.names import DAG

TOTAL, CUMULATIVE, PLANNED = "total", "cumulative", "planned"


@dataclass(frozen=True)
class Recruitment:
    """`monthly`: one row per month (index YYYY-MM) with a column per site code, TOTAL,
    CUMULATIVE and PLANNED (cumulative, NA without a plan); `sites`: per site code its label,
    randomised, target and expected by the day (NA without a plan); `screening`: the flow's
    enrolment stages with their counts."""

    monthly: pd.DataFrame
    sites: pd.DataFrame
    screening: pd.DataFrame
    randomised: int
    expected: int | None


def planned_share(project: Project, day: dt.date) -> float | None:
    """The share of the target planned to be randomised by the end of `day`."""
    plan = project.study.recruitment
    if plan is None:
        return None
    days = (plan.end - plan.start).days + 1
    return min(max(((day - plan.start).days + 1) / days, 0.0), 1.0)


def recruitment(
    project: Project, rows: pd.DataFrame, report: Flow, as_of: dt.date, language: str
) -> Recruitment:
    """Recruitment from the rows (cut to `as_of`) and their flow report."""
    plan = project.study.recruitment
    anchors = anchor_dates(project, rows)
    anchors = anchors[~anchors.index.duplicated()]
    factor = design_of(project).factors[0]
    site = site_of(project, rows, factor).reindex(anchors.index, fill_value="")
    codes, labels = _sites(project, factor, site, language)
    months = pd.Series(pd.to_datetime(anchors.to_numpy()).to_period("M"), index=anchors.index)
    first = min([*months, *([pd.Period(plan.start, "M")] if plan else [])], default=None)
    span = pd.period_range(first or pd.Period(as_of, "M"), pd.Period(as_of, "M"), freq="M")
    counts = pd.crosstab(months, site).reindex(index=span, columns=codes, fill_value=0)
    monthly = counts.astype(int)
    monthly[TOTAL] = monthly[codes].sum(axis=1)
    monthly[CUMULATIVE] = monthly[TOTAL].cumsum()
    monthly[PLANNED] = pd.array(
        [_planned(project, min(p.end_time.date(), as_of)) for p in span], dtype="Int64"
    )
    monthly.index = monthly.index.astype(str)
    by_site = site.value_counts()
    targets = plan.per_site if plan else {}
    share = planned_share(project, as_of)
    sites = pd.DataFrame(
        {
            "label": [labels[c] for c in codes],
            "randomised": [int(by_site.get(c, 0)) for c in codes],
            "target": pd.array([targets.get(c) for c in codes], dtype="Int64"),
        },
        index=pd.Index(codes, name="site"),
    )
    sites["expected"] = pd.array(
        [None if pd.isna(t) or share is None else round(t * share) for t in sites["target"]],
        dtype="Int64",
    )
    screening = pd.DataFrame(
        {"count": [report.count(s) for s in (*ENROLMENT, "randomised")]},
        index=pd.Index([*ENROLMENT, "randomised"], name="stage"),
    )
    return Recruitment(
        monthly=monthly,
        sites=sites,
        screening=screening,
        randomised=len(anchors),
        expected=_planned(project, as_of),
    )


def site_of(project: Project, rows: pd.DataFrame, factor: str) -> pd.Series:
    """Each record's site code (its latest value of the stratification factor)."""
    if factor == DAG:
        column = rows[DAG] if DAG in rows.columns else pd.Series("", index=rows.index)
        named = rows.assign(_site=column)[[project.study.record_id, "_site"]]
        found = named[named["_site"] != ""].drop_duplicates(project.study.record_id)
        return found.set_index(project.study.record_id)["_site"]
    return latest_values(project, rows, [factor])[factor]


def plan_text(
    project: Project, recruited: Recruitment, as_of: dt.date, text: str, lang: str
) -> str:
    """The recruitment note (`notes.recruitment`) filled in, or "" without a plan."""
    plan = project.study.recruitment
    if plan is None or recruited.expected is None:
        return ""
    share = recruited.randomised / recruited.expected if recruited.expected else float("nan")
    return text.format(
        target=plan.target,
        start=shown_date(plan.start, lang),
        end=shown_date(plan.end, lang),
        date=shown_date(as_of, lang),
        randomised=recruited.randomised,
        expected=recruited.expected,
        share=f"{share:.0%}",
    )


def _planned(project: Project, day: dt.date) -> int | None:
    plan, share = project.study.recruitment, planned_share(project, day)
    return None if plan is None or share is None else round(plan.target * share)


def _sites(
    project: Project, factor: str, site: pd.Series, language: str
) -> tuple[list[str], dict[str, str]]:
    """The site codes (the factor's choices, then any other value seen) and their labels."""
    found = project.field_map().get(factor)
    labels: dict[str, str] = {}
    if found is not None:
        instrument, field = found
        labels = {
            c.code: instrument.choice_label(c, language) for c in instrument.choices_of(field)
        }
    codes = [*labels, *sorted(set(site) - set(labels))]
    return codes, {c: labels.get(c, c or "?") for c in codes}
