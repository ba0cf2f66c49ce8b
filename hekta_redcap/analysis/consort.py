"""CONSORT-style flow and retention report: how many participants reached each stage of the
trial, per allocated group, as a table (CSV and Markdown), a flow diagram and a retention plot
(PNG and SVG).

The stages, counted from a flat export (each record's latest non-repeating values):

- screened: records with any data in the consent form (the form holding `consent_given`);
- excluded: screened but not randomised, split into not eligible (every criterion in
  `consent_given`'s branching logic answered, and the logic false: consent is asked only of the
  eligible), declined (`consent_given` No) and other reasons (screening incomplete, or
  consented but not randomised);
- consented: `consent_given` Yes;
- randomised: a readable anchor date (the schedule's `anchor_field`), per group (`rand_group`;
  a randomised record without a valid group code gets a column of its own);
- at each follow-up of the schedule, every randomised participant is in one state, the first
  that holds: assessed (`followup.completed`), withdrawn / lost to follow-up / deceased
  (`eos_status`, with `eos_date` blank or not after the window's close), not yet due (the
  window has not closed on `as_of`, so not being assessed yet is not a loss), or missed;
- withdrawn, lost to follow-up, deceased: the end-of-study status, whenever it was reached;
- analysed (intention to treat): randomised, less those whose data may not be used
  (`eos_data_use` No).

Retention at a follow-up is assessed / due, where due = randomised - not yet due.

    >>> report = flow(load_project("hekta"), rows, as_of=dt.date(2026, 6, 1), language="en")
    >>> int(report.table.loc["randomised", "total"])
    150
    >>> [p.name for p in write_flow(report, Path("out"))]
    ['flow.csv', 'flow.md', 'consort.png', 'consort.svg', 'retention.png', 'retention.svg']
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import textwrap
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from hekta_redcap.core.clock import shown_date
from hekta_redcap.core.errors import HektaError
from hekta_redcap.core.texts import catalog, in_language
from hekta_redcap.definitions.instruments import Field, Instrument
from hekta_redcap.definitions.model import LANGUAGES
from hekta_redcap.definitions.study import Followup, Project, Schedule
from hekta_redcap.followup.schedule import (
    anchor_dates,
    completed,
    frame_of,
    latest_values,
    schedule,
)
from hekta_redcap.redcap import logic
from hekta_redcap.redcap.fieldtypes import checkbox_column
from hekta_redcap.redcap.logic_frame import evaluate_frame, truth

# The fields the study file has no pointer to (instruments/forms/consent.yaml, randomization.yaml
# and end_of_study.yaml): the one place this module names them.
CONSENT_GIVEN = "consent_given"  # yesno; its branching logic is the eligibility rule
GROUP = "rand_group"  # the allocated group (choices in definition order)
EOS_STATUS = "eos_status"  # how participation ended
EOS_DATE = "eos_date"  # when it ended
DATA_USE = "eos_data_use"  # yesno: may a withdrawn participant's data still be used
YES, NO = "1", "0"  # REDCap's fixed yesno coding
# eos_status choices by their English label: the one place that names the codes' meanings.
ENDINGS = {"withdrawn": "Withdrawn", "lost": "Lost to follow-up", "deceased": "Deceased"}

TOTAL = "total"
UNKNOWN = "unknown"  # the column of randomised records without a valid group code
STATES = ("assessed", *ENDINGS, "missed", "not_yet_due")  # at each follow-up, first wins
ENROLMENT = ("screened", "excluded", "not_eligible", "declined", "other_reasons", "consented")
ANALYSIS = (*ENDINGS, "data_withdrawn", "analysed")
RETENTION = ("event", "months", "column", "due", "assessed", "share")
FILES = ("flow.csv", "flow.md", "consort.png", "consort.svg", "retention.png", "retention.svg")

# The words the files show are in consort.yaml: the labels of the stage, state and column keys
# (`labels.<key>`: the end-of-study statuses' and the groups' come from the definitions), the
# diagram's phases in order (`phases.<id>`) and the other phrases (`phrases.<id>`).
_TEXTS = catalog("hekta_redcap.analysis", "consort.yaml")
_PHASES = ("enrolment", "allocation", "follow_up", "analysis")


def _phrases(language: str) -> dict[str, str]:
    return in_language(_TEXTS, language, "phrases")


@dataclass(frozen=True)
class Flow:
    """The report. `table` is indexed by stage key (ENROLMENT, "randomised", then
    "<event>.<state>" per follow-up and STATES, then ANALYSIS) with one Int64 column per group
    code (plus UNKNOWN when needed) and TOTAL; stages before randomisation are NA by group.
    `retention` has the RETENTION columns per follow-up and column (share NaN when none is
    due). `labels` gives the text in `language` of every stage, state, column and event key."""

    table: pd.DataFrame
    retention: pd.DataFrame
    labels: dict[str, str]
    followups: tuple[str, ...]
    as_of: dt.date
    language: str
    # per randomised record: its column (group code or UNKNOWN), and its state at each
    # follow-up (a column per event): what the counts above count, for reports that go on
    states: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)

    @property
    def groups(self) -> list[str]:
        return [c for c in self.table.columns if c != TOTAL]

    def labelled(self) -> pd.DataFrame:
        """The table as people read it: a label column, and columns named by their labels."""
        shown = self.table.rename(columns=self.labels)
        shown.insert(
            0, _phrases(self.language)["stage"], [self.labels[s] for s in self.table.index]
        )
        return shown

    def count(self, stage: str, column: str = TOTAL) -> int:
        return int(self.table.loc[stage, column])


def flow(
    project: Project,
    rows: pd.DataFrame | list[dict],
    as_of: dt.date,
    language: str = "nb",
) -> Flow:
    """The flow of the records in `rows` (a flat export as text) on `as_of` (see the module
    docstring for what each stage counts)."""
    if language not in LANGUAGES:
        raise HektaError(f"flow report: unknown language '{language}' (use {', '.join(LANGUAGES)})")
    rules = project.study.schedule
    if rules is None:
        raise HektaError(f"the study file of {project.name} has no schedule (no anchor date)")
    frame = frame_of(rows, project)
    consent, consent_given = _field(project, CONSENT_GIVEN)
    eligibility = logic.parse(consent_given.branching) if consent_given.branching else None
    references = logic.references(eligibility) if eligibility else []
    criteria = [r.field for r in references if r.field is not None]  # not smart variables
    needed = list(dict.fromkeys([rules.anchor_field, GROUP, EOS_STATUS, EOS_DATE, DATA_USE]))
    missing = [c for c in [*needed, CONSENT_GIVEN, *criteria] if c not in frame.columns]
    if missing and len(frame):
        raise HektaError(f"flow report: the export has no column {', '.join(missing)}")
    for column in missing:  # an empty export
        frame[column] = ""
    answered, ticked = _consent_columns(project, consent)
    records = pd.Index(frame[project.study.record_id].unique(), dtype=object)
    latest = latest_values(
        project, frame, list(dict.fromkeys([*needed, *criteria, *answered, *ticked]))
    ).reindex(records, fill_value="")

    anchors = anchor_dates(project, frame)
    randomised = records.isin(anchors.index)
    screened = (latest[answered] != "").any(axis=1) | (latest[ticked] == YES).any(axis=1)
    excluded = screened & ~randomised
    not_eligible = excluded & _ineligible(eligibility, criteria, latest)
    declined = excluded & ~not_eligible & (latest[CONSENT_GIVEN] == NO)

    group_of, codes = _groups(project, latest[GROUP])
    group = group_of.where(randomised, "")
    columns = [*codes, *([UNKNOWN] if (group == UNKNOWN).any() else [])]
    ending = _endings(project, latest[EOS_STATUS])
    ended_on = pd.to_datetime(latest[EOS_DATE], format="%Y-%m-%d", errors="coerce")

    def by_group(mask: pd.Series) -> dict[str, int]:
        counts = group[mask.to_numpy() & randomised].value_counts()
        found = {c: int(counts.get(c, 0)) for c in columns}
        return {**found, TOTAL: sum(found.values())}

    counts: dict[str, dict[str, int]] = {
        "screened": {TOTAL: int(screened.sum())},
        "excluded": {TOTAL: int(excluded.sum())},
        "not_eligible": {TOTAL: int(not_eligible.sum())},
        "declined": {TOTAL: int(declined.sum())},
        "other_reasons": {TOTAL: int((excluded & ~not_eligible & ~declined).sum())},
        "consented": {TOTAL: int((latest[CONSENT_GIVEN] == YES).sum())},
        "randomised": by_group(pd.Series(True, index=records)),
    }
    plan = schedule(project, anchors[~anchors.index.duplicated()])
    states = pd.DataFrame({GROUP: group[randomised]}, index=records[randomised])
    for followup in _assessments(rules):
        closes = plan[plan["event"] == followup.event].set_index("record_id")["window_close"]
        state = _states(
            records.isin(completed(project, frame, followup)),
            ending,
            ended_on,
            pd.to_datetime(closes.reindex(records)),
            pd.Timestamp(as_of),
        )
        for name in STATES:
            counts[f"{followup.event}.{name}"] = by_group(state == name)
        states[followup.event] = state[randomised]
    for name in ENDINGS:
        counts[name] = by_group(ending == name)
    data_withdrawn = latest[DATA_USE] == NO
    counts["data_withdrawn"] = by_group(data_withdrawn)
    counts["analysed"] = by_group(~data_withdrawn)

    table = pd.DataFrame.from_dict(counts, orient="index", columns=[*columns, TOTAL])
    labels = _labels(project, rules, language)
    return Flow(
        table=table.astype("Int64"),
        retention=_retention(table, rules, columns),
        labels=labels,
        followups=tuple(f.event for f in _assessments(rules)),
        as_of=as_of,
        language=language,
        states=states,
    )


def _field(project: Project, name: str) -> tuple[Instrument, Field]:
    found = project.field_map().get(name)
    if found is None:
        raise HektaError(f"flow report: project {project.name} has no field {name}")
    return found


def _consent_columns(project: Project, consent: Instrument) -> tuple[list[str], list[str]]:
    """The consent form's export columns that hold answers: plain ones (any value counts) and
    checkbox ones (only a tick counts: unticked boxes export as 0 for every record)."""
    answered, ticked = [], []
    for f in consent.fields:
        if f.name == project.study.record_id or f.type == "descriptive":
            continue
        if f.type == "checkbox":
            ticked += [checkbox_column(f.name, c.code) for c in consent.choices_of(f)]
        else:
            answered.append(f.name)
    return answered, ticked


def _ineligible(
    eligibility: logic.Node | None, criteria: list[str], latest: pd.DataFrame
) -> pd.Series:
    """Records whose criteria are all answered and fail the eligibility rule (one with a
    criterion unanswered is still being screened)."""
    if eligibility is None:
        return pd.Series(False, index=latest.index)
    answered = (latest[criteria] != "").all(axis=1)
    return answered & ~truth(evaluate_frame(eligibility, latest))


def _groups(project: Project, values: pd.Series) -> tuple[pd.Series, list[str]]:
    """Each record's group code (UNKNOWN when blank or not a choice) and the codes in
    definition order."""
    instrument, field = _field(project, GROUP)
    codes = [c.code for c in instrument.choices_of(field)]
    return values.where(values.isin(codes), UNKNOWN), codes


def _endings(project: Project, status: pd.Series) -> pd.Series:
    """Each record's ENDINGS key, or "" (still taking part, or completed)."""
    ending = pd.Series("", index=status.index, dtype=object)
    for key, code in _ending_codes(project).items():
        ending[status == code] = key
    return ending


def _ending_codes(project: Project) -> dict[str, str]:
    instrument, field = _field(project, EOS_STATUS)
    codes = {}
    for key, english in ENDINGS.items():
        found = [
            c.code
            for c in instrument.choices_of(field)
            if instrument.choice_label(c, "en").casefold() == english.casefold()
        ]
        if len(found) != 1:
            raise HektaError(
                f"flow report: {EOS_STATUS} in form {instrument.form} needs exactly one choice "
                f"labelled '{english}' in English, found {len(found)}"
            )
        codes[key] = found[0]
    return codes


def _states(
    assessed: np.ndarray,
    ending: pd.Series,
    ended_on: pd.Series,
    closes: pd.Series,
    as_of: pd.Timestamp,
) -> pd.Series:
    """Each record's state at one follow-up (STATES; "" for a record without a window, that
    is one not randomised)."""
    ended = (ending != "").to_numpy() & (ended_on.isna() | (ended_on <= closes)).to_numpy()
    return pd.Series(
        np.select(
            [closes.isna().to_numpy(), assessed, ended, (as_of <= closes).to_numpy()],
            ["", "assessed", ending.to_numpy(), "not_yet_due"],
            "missed",
        ),
        index=ending.index,
    )


def _assessments(rules: Schedule) -> list[Followup]:
    """The follow-ups where participants are assessed (register steps, `contact: false`, are
    not: their data come from the registers whether or not anyone is reached)."""
    return [f for f in rules.followups if f.contact]


def _labels(project: Project, rules: Schedule, language: str) -> dict[str, str]:
    instrument, field = _field(project, GROUP)
    labels = in_language(_TEXTS, language, "labels")
    labels |= {c.code: instrument.choice_label(c, language) for c in instrument.choices_of(field)}
    eos, status = _field(project, EOS_STATUS)
    by_code = {c.code: eos.choice_label(c, language) for c in eos.choices_of(status)}
    labels |= {key: by_code[code] for key, code in _ending_codes(project).items()}
    events = {e.unique_name: e for e in project.study.events}
    for followup in _assessments(rules):
        event = events.get(followup.event)
        text = event.label.get(language) if event and event.label else None
        labels[followup.event] = text or (event.name if event else followup.event)
        for state in STATES:
            labels[f"{followup.event}.{state}"] = f"{labels[followup.event]}: {labels[state]}"
    return labels


def _retention(table: pd.DataFrame, rules: Schedule, columns: list[str]) -> pd.DataFrame:
    rows = []
    for followup in _assessments(rules):
        months = followup.target.months + followup.target.days * 12 / 365.25
        for column in [*columns, TOTAL]:
            due = (
                table.loc["randomised", column] - table.loc[f"{followup.event}.not_yet_due", column]
            )
            assessed = table.loc[f"{followup.event}.assessed", column]
            share = assessed / due if due else np.nan
            rows.append((followup.event, months, column, int(due), int(assessed), share))
    return pd.DataFrame(rows, columns=list(RETENTION))


# -- files ------------------------------------------------------------------------------------


def write_flow(flow: Flow, directory: Path) -> list[Path]:
    """Write FILES into `directory` (created if needed); the same flow gives the same bytes."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / name for name in FILES]
    csv, markdown, consort_png, consort_svg, retention_png, retention_svg = paths
    labelled = flow.labelled()
    labelled.index.name = "stage"
    labelled.to_csv(csv, encoding="utf-8")
    markdown.write_text(_markdown(flow, labelled), encoding="utf-8")
    with matplotlib.rc_context({"svg.hashsalt": "hekta-redcap", "svg.fonttype": "none"}):
        for figure, png, svg in (
            (_diagram(flow), consort_png, consort_svg),
            (_retention_plot(flow), retention_png, retention_svg),
        ):
            figure.savefig(png, format="png", dpi=150)
            figure.savefig(svg, format="svg", metadata={"Date": None})
    return paths


def _markdown(flow: Flow, labelled: pd.DataFrame) -> str:
    title = _phrases(flow.language)["flow_title"].format(date=shown_date(flow.as_of, flow.language))

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    header = list(labelled.columns)
    lines = [
        f"# {title}",
        "",
        line(header),
        "|" + "|".join([":---", *["---:"] * (len(header) - 1)]) + "|",
    ]
    for row in labelled.itertuples(index=False):
        lines.append(line([str(row[0]), *("" if pd.isna(v) else str(v) for v in row[1:])]))
    return "\n".join(lines) + "\n"


# The diagram is laid out in inches: boxes of fixed width, as tall as their wrapped text.
FONT = 8.0  # points
LINE = 0.155  # inches per line of text at FONT
PAD = 0.09  # inside a box
BOX = 2.8  # box width
WRAP = 44  # characters per line in a box
GAP_X, GAP_Y = 0.35, 0.38  # between boxes
LEFT, RIGHT, TOP, BOTTOM = 0.55, 0.2, 0.55, 0.2  # margins (LEFT holds the phase labels)
LOW_LABEL = 12  # percent: a point this low is labelled above it, inside the axes


@dataclass(frozen=True)
class _Box:
    x: float  # left edge
    lines: tuple[str, ...]
    centred: bool = True

    @property
    def height(self) -> float:
        return len(self.lines) * LINE + 2 * PAD


def _text(*parts: str) -> tuple[str, ...]:
    return tuple(line for part in parts for line in textwrap.wrap(part, WRAP))


def _diagram(flow: Flow) -> Figure:
    """The CONSORT boxes: assessed for eligibility, excluded beside the way down, randomised,
    then one column per group: allocated, each follow-up, analysed."""
    words, n = _phrases(flow.language), flow.labels
    groups = flow.groups

    def counted(key: str, column: str = TOTAL, label: str | None = None) -> str:
        return f"{label or n[key]} (n={flow.count(key, column)})"

    width = len(groups) * BOX + (len(groups) - 1) * GAP_X
    centre = LEFT + width / 2
    columns = [LEFT + i * (BOX + GAP_X) for i in range(len(groups))]
    reasons = ("not_eligible", "declined", "other_reasons")
    tiers: list[list[_Box]] = [
        [_Box(centre - BOX / 2, _text(counted("screened")))],
        [
            _Box(
                centre + GAP_X,
                _text(counted("excluded"), *(f"• {counted(r)}" for r in reasons)),
                centred=False,
            )
        ],
        [_Box(centre - BOX / 2, _text(counted("randomised")))],
        [
            _Box(x, _text(n[g], counted("randomised", g, words["allocated"])))
            for x, g in zip(columns, groups, strict=True)
        ],
    ]
    for event in flow.followups:
        tiers.append(
            [
                _Box(
                    x,
                    _text(n[event], *(counted(f"{event}.{s}", g, n[s]) for s in STATES)),
                    centred=False,
                )
                for x, g in zip(columns, groups, strict=True)
            ]
        )
    tiers.append(
        [
            _Box(x, _text(*(counted(k, g) for k in ("analysed", "data_withdrawn"))))
            for x, g in zip(columns, groups, strict=True)
        ]
    )
    heights = [max(b.height for b in tier) for tier in tiers]
    fig_width = max(LEFT + width, centre + GAP_X + BOX) + RIGHT
    fig_height = TOP + sum(heights) + GAP_Y * (len(tiers) - 1) + BOTTOM
    figure = Figure(figsize=(fig_width, fig_height))
    ax = figure.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, fig_width)
    ax.set_ylim(0, fig_height)
    ax.axis("off")
    ax.text(
        fig_width / 2,
        fig_height - TOP / 2,
        words["flow_title"].format(date=shown_date(flow.as_of, flow.language)),
        ha="center",
        va="center",
        fontsize=FONT + 3,
        weight="bold",
    )

    tops, y = [], fig_height - TOP
    for tier, height in zip(tiers, heights, strict=True):
        tops.append(y)
        for box in tier:
            _draw(ax, box, y)
        y -= height + GAP_Y
    bottoms = [top - h for top, h in zip(tops, heights, strict=True)]

    def arrow(x0: float, y0: float, x1: float, y1: float, head: bool = True) -> None:
        ax.annotate(
            "",
            xy=(x1, y1),
            xytext=(x0, y0),
            arrowprops={
                "arrowstyle": "-|>" if head else "-",
                "color": "black",
                "lw": 0.8,
                "shrinkA": 0,
                "shrinkB": 0,
            },
        )

    excluded = tiers[1][0]
    arrow(centre, bottoms[0], centre, tops[2])
    arrow(centre, tops[1] - excluded.height / 2, excluded.x, tops[1] - excluded.height / 2)
    split = bottoms[2] - GAP_Y / 2
    arrow(centre, bottoms[2], centre, split, head=False)
    arrow(columns[0] + BOX / 2, split, columns[-1] + BOX / 2, split, head=False)
    for i, x in enumerate(columns):
        arrow(x + BOX / 2, split, x + BOX / 2, tops[3])
        for row in range(3, len(tiers) - 1):
            arrow(x + BOX / 2, tops[row] - tiers[row][i].height, x + BOX / 2, tops[row + 1])

    phases = [_TEXTS[f"phases.{phase}"][flow.language] for phase in _PHASES]
    spans = [(0, 2), (3, 3), (4, len(tiers) - 2), (len(tiers) - 1, len(tiers) - 1)]
    for phase, (first, last) in zip(phases, spans, strict=True):
        if first > last:  # a schedule without follow-ups
            continue
        middle = (tops[first] + bottoms[last]) / 2
        ax.text(LEFT / 2, middle, phase, rotation=90, ha="center", va="center", weight="bold")
    return figure


def _draw(ax: Axes, box: _Box, top: float) -> None:
    ax.add_patch(Rectangle((box.x, top - box.height), BOX, box.height, fill=False, lw=0.8))
    x = box.x + BOX / 2 if box.centred else box.x + PAD
    ax.text(
        x,
        top - PAD,
        "\n".join(box.lines),
        ha="center" if box.centred else "left",
        va="top",
        multialignment="center" if box.centred else "left",
        fontsize=FONT,
        linespacing=1.35,
    )


def _retention_plot(flow: Flow) -> Figure:
    """Share of each group assessed at each follow-up, of those due, labelled with the percent
    and the counts (above the point where it is the highest of the follow-up's, else below)."""
    words = _phrases(flow.language)
    figure = Figure(figsize=(6.4, 4.4))
    ax = figure.add_subplot()
    retention = flow.retention.assign(percent=flow.retention["share"] * 100)
    highest = retention[retention["column"] != TOTAL].groupby("event")["percent"].transform("max")
    for group in flow.groups:
        mine = retention[retention["column"] == group]
        (line,) = ax.plot(mine["months"], mine["percent"], marker="o", label=flow.labels[group])
        for row in mine[mine["percent"].notna()].itertuples():
            above = row.percent >= highest[row.Index] or row.percent < LOW_LABEL
            ax.annotate(
                words["percent"].format(share=row.percent, assessed=row.assessed, due=row.due),
                (row.months, row.percent),
                xytext=(0, 7 if above else -13),
                textcoords="offset points",
                ha="center",
                fontsize=FONT - 0.5,
                color=line.get_color(),
                bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8},
            )
    ticks = retention.drop_duplicates("event")
    ax.set_xticks(ticks["months"], [f"{m:g}" for m in ticks["months"].round(1)])
    ax.set_xlim(0, max(ticks["months"], default=12) + 2)
    ax.set_ylim(0, 110)
    ax.set_xlabel(words["months"])
    ax.set_ylabel(words["share"])
    ax.set_title(
        words["retention_title"].format(date=shown_date(flow.as_of, flow.language)),
        fontsize=FONT + 2,
    )
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncols=2, fontsize=FONT)
    figure.tight_layout()
    return figure
