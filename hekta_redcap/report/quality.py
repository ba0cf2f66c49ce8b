"""Data quality and the machinery around the data, as of the report's day: the open data
problems by site and rule and how long they have been open (validation's list in the store),
the reminders sent and their outcome (the outbox, and the worklist's state of each follow-up a
message was about), the randomization audit (its findings are validation problems of the
audit's rules; the allocation's balance per stratum from the flow report's groups) and the
register deliveries imported.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from hekta_redcap.analysis.consort import GROUP, Flow
from hekta_redcap.core.clock import local, parse
from hekta_redcap.definitions.study import Project
from hekta_redcap.randomization.audit import RULES
from hekta_redcap.randomization.design import design_of
from hekta_redcap.registers.store import Delivery
from hekta_redcap.report.blinding import Arms
from hekta_redcap.report.recruitment import Recruitment, site_of

PROBLEMS = ("site", "rule", "severity", "open", "median_days", "max_days")
REMINDERS = ("step", "channel", "status", "messages", "completed_after")
DELIVERIES = ("source", "period", "delivered", "rows", "rejected", "status")


def problems(
    project: Project,
    rows: pd.DataFrame,
    found: pd.DataFrame,
    recruited: Recruitment,
    as_of: dt.date,
) -> pd.DataFrame:
    """Open problems per site, rule and severity: how many, and the median and longest days
    since each was first seen (to `as_of`)."""
    if found.empty:
        return pd.DataFrame(columns=list(PROBLEMS))
    site = site_of(project, rows, design_of(project).factors[0])
    labels = recruited.sites["label"].to_dict()
    days = found["first_seen"].map(lambda v: (as_of - local(parse(v)).date()).days)
    frame = pd.DataFrame(
        {
            "site": found["record"]
            .astype(str)
            .map(site)
            .fillna("")
            .map(lambda c: labels.get(c, c)),
            "rule": found["rule"],
            "severity": found["severity"],
            "days": days,
        }
    )
    grouped = frame.groupby(["site", "rule", "severity"], sort=True)["days"]
    out = grouped.agg(open="count", median_days="median", max_days="max").reset_index()
    return out.astype({"median_days": float, "max_days": int})[list(PROBLEMS)]


def reminders(history: pd.DataFrame, work: pd.DataFrame) -> pd.DataFrame:
    """Messages by step, channel and status, and how many of the follow-ups they were about
    are completed."""
    if history.empty:
        return pd.DataFrame(columns=list(REMINDERS))
    state = dict(
        zip(zip(work["record_id"], work["event"], strict=True), work["state"], strict=True)
    )
    frame = history.assign(
        done=[
            state.get((str(r), e)) == "completed"
            for r, e in zip(history["record_id"], history["event"], strict=True)
        ]
    )
    grouped = frame.groupby(["step", "channel", "status"], sort=True)["done"]
    out = grouped.agg(messages="count", completed_after="sum").reset_index()
    return out.astype({"completed_after": int})[list(REMINDERS)]


def audit_findings(found: pd.DataFrame) -> pd.DataFrame:
    """The randomization audit's open findings per rule (every rule listed, 0 when none)."""
    rules = found["rule"] if "rule" in found else pd.Series(dtype=object)
    counts = rules.value_counts()
    return pd.DataFrame({"rule": list(RULES), "findings": [int(counts.get(r, 0)) for r in RULES]})


def balance(
    project: Project, rows: pd.DataFrame, report: Flow, recruited: Recruitment, arms: Arms
) -> pd.DataFrame:
    """The randomised per stratum (site) and arm."""
    site = site_of(project, rows, design_of(project).factors[0])
    group = report.states[GROUP] if GROUP in report.states else pd.Series(dtype=object)
    table = pd.crosstab(site.reindex(group.index).fillna(""), group)
    table = table.reindex(index=recruited.sites.index, columns=list(arms.codes), fill_value=0)
    table.index = recruited.sites["label"].reindex(table.index).to_numpy()
    return table.astype(int)


def deliveries(found: tuple[Delivery, ...]) -> pd.DataFrame:
    """The register deliveries imported, one row each."""
    return pd.DataFrame(
        [
            (
                d.source,
                d.period_text(),
                d.delivered.isoformat(),
                d.rows_kept,
                d.rows_rejected,
                d.status,
            )
            for d in sorted(found, key=lambda d: (d.source, d.delivered))
        ],
        columns=list(DELIVERIES),
    )
