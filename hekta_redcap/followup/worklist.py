"""The nurses' worklist as people read it: a terminal table, CSV and a self-contained HTML page,
and the items of each nurse's daily digest.

    >>> work = followup.worklist(project, rows, history, as_of=today)
    >>> write_csv(work, Path("worklist.csv"))            # every follow-up, dates YYYY-MM-DD
    >>> print(table(project, work, "nb"))               # what needs doing, most urgent first
    >>> Path("worklist.html").write_text(render_html(project, work, "nb", today))

Urgency: messages that may have been sent (a person must check), overdue, window open or
reminded (closing soonest first), a participant's next follow-up that lacks contact details,
then not yet due.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from hekta_redcap.core.clock import shown_date
from hekta_redcap.core.texts import catalog
from hekta_redcap.definitions.study import Project
from hekta_redcap.followup.schedule import COLUMNS, state_labels

CSV_COLUMNS = (*COLUMNS, "state", "reminders_sent", "next_action", "dag", "stop_reason")
DATES = ("anchor_date", "target_date", "window_open", "window_close")
URGENCY = {"overdue": 1, "window_open": 2, "reminded": 2, "not_due": 4}
ADD_CONTACT = 3  # the rank of a not-yet-due follow-up whose participant has no contact details
SOON = dt.timedelta(days=14)  # not-yet-due follow-ups opening within this are worth showing
# The words people read are in texts.yaml beside this module; the table's columns in order:
_HEADINGS = ("id", "event", "window", "state", "reminders", "next_action")
_TEXTS = catalog("hekta_redcap.followup", "texts.yaml")


def notices(project: Project, info: Mapping[str, Any], language: str) -> list[str]:
    """What stops the reminders as a whole, from REDCap's project information as the last sync
    read it (none before the first sync)."""
    policy = project.study.reminders
    messages = policy is not None and any(s.to == "participant" for s in policy.steps)
    off = messages and bool(info) and not int(info.get("surveys_enabled") or 0)
    return [_TEXTS["notices.surveys_off"][language]] if off else []


def write_csv(work: pd.DataFrame, file: Path) -> Path:
    """Every follow-up of the worklist, dates as YYYY-MM-DD, blank where unknown."""
    out = work.reindex(columns=list(CSV_COLUMNS)).copy()
    for column in DATES:
        out[column] = out[column].map(lambda d: d.isoformat() if d is not None else "")
    file.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(file, index=False)
    return file


def needing_action(work: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """The follow-ups a nurse should look at on `as_of`, most urgent first."""
    if work.empty:
        return work
    soon = work["window_open"].map(lambda d: d is not None and d - as_of <= SOON)
    not_due = work["state"] == "not_due"
    # Contact details are wanted before a participant's next window opens, however far off.
    wanting = work[not_due & work["contact_missing"].astype(bool)]
    first = wanting.sort_values("window_open", kind="stable").drop_duplicates("record_id")
    add_contact = pd.Series(work.index.isin(first.index), index=work.index)
    keep = (
        work["state"].isin(["overdue", "window_open", "reminded"])
        | (work["maybe_sent"] > 0)
        | add_contact
        | (not_due & soon)
    )
    chosen = work[keep]
    rank = chosen["state"].map(URGENCY).where(~add_contact[keep], ADD_CONTACT)
    rank = rank.where(chosen["maybe_sent"] == 0, 0)
    return (
        chosen.assign(_rank=rank)
        .sort_values(["_rank", "window_close", "record_id"], kind="stable")
        .drop(columns="_rank")
    )


def items(project: Project, work: pd.DataFrame, language: str) -> list[dict[str, object]]:
    """Rows with event and state labels, as the HTML page and the digest show them."""
    labels = {s: label for s, (_, label) in state_labels(project, language).items()}
    events = {
        e.unique_name: (getattr(e.label, language) if e.label else None) or e.name
        for e in project.study.events
    }
    return [
        {
            **row,
            "event_label": events.get(row["event"], row["event"]),
            "state_label": labels[row["state"]],
        }
        for row in work.to_dict("records")
    ]


def counts(project: Project, work: pd.DataFrame, language: str) -> dict[str, int]:
    """Follow-ups per state label, in the states' order, leaving out empty states."""
    found = work["state"].value_counts() if not work.empty else pd.Series(dtype=int)
    return {
        label: int(found[state])
        for state, (_, label) in state_labels(project, language).items()
        if found.get(state, 0)
    }


def table(
    project: Project,
    work: pd.DataFrame,
    language: str,
    as_of: dt.date,
    everything: bool = False,
    notes: list[str] | None = None,
) -> str:
    """A plain-text table of what needs doing (or of every follow-up), with a count per state
    under it and `notes` (see `notices`) above it."""
    chosen = (
        work.sort_values(["record_id", "target_date"])
        if everything
        else needing_action(work, as_of)
    )
    shown = items(project, chosen, language)
    rows = [
        (
            str(i["record_id"]),
            str(i["event_label"]),
            f"{_shown(i['window_open'], language)}-{_shown(i['window_close'], language)}",
            str(i["state_label"]) + (" (!)" if i["maybe_sent"] else ""),
            str(i["reminders_sent"]),
            str(i["next_action"]),
        )
        for i in shown
    ]
    heads = tuple(_TEXTS[f"headings.{h}"][language] for h in _HEADINGS)
    widths = [max(len(r[n]) for r in [heads, *rows]) for n in range(len(heads))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [heads, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines[:0] = [f"! {note}" for note in notes or []]
    total = ", ".join(f"{label}: {n}" for label, n in counts(project, work, language).items())
    lines.append("")
    lines.append(total or _TEXTS["no_followups"][language])
    return "\n".join(lines)


def render_html(
    project: Project,
    work: pd.DataFrame,
    language: str,
    as_of: dt.date,
    notes: list[str] | None = None,
) -> str:
    """A self-contained page: `notes` (see `notices`), what needs doing, then every follow-up."""
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader(__package__, "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters["shown"] = lambda d: _shown(d, language)
    everything = work.sort_values(["record_id", "target_date"], kind="stable")
    return environment.get_template("worklist.html.j2").render(
        title=project.study.title,
        language=language,
        as_of=as_of,
        urgent=items(project, needing_action(work, as_of), language),
        rows=items(project, everything, language),
        counts=counts(project, work, language),
        notes=notes or [],
    )


def _shown(day: object, language: str) -> str:
    return shown_date(day, language) if isinstance(day, dt.date) else ""
