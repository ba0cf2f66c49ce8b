"""Register outcomes: a person-month panel from 24 months before to 120 months after
randomisation, and the endpoints at chosen horizons (18, 60, 120 months), from the deliveries of
the registers (docs/registers.md). [C] marks a project choice the SAP may revise.

Months. Month boundaries are the randomisation date r plus whole calendar months, each computed
from r itself and clipped to the end of a shorter month (as the follow-up schedule adds months:
31 January + 1 month = 28/29 February, + 2 months = 31 March). There is no month 0:

- month m >= 1 covers [r + (m-1) months, r + m months): month 1 starts on the randomisation
  day, and months 1..18 are the 18 months the questionnaire outcomes count; the 18-month
  register follow-up's target date, r + 18 months, is the day after month 18;
- month m <= -1 covers [r + m months, r + (m+1) months): month -1 ends the day before
  randomisation.

A month lasts 28 to 31 days. Randomised on 31 January 2025: month 1 is 31 January to 27
February, month 2 28 February to 30 March, month 3 31 March to 29 April, month -1 31 December
to 30 January.

The panel's columns, one row per participant and month -24..-1, 1..120:

- `employed`: an AA employment relationship (of any type) active on a day of the month; a
  blank end date is an ongoing relationship.
- `employed_competitive`: the same, counting a relationship in a month only when no wage
  subsidy or labour-market measure spell (FD-Trygd; the codes whose English labels start
  `NOT_COMPETITIVE`) overlaps its days in that month [C]. FD-Trygd does not name the employer,
  so every job held during such a spell counts as subsidised. (The questionnaire outcomes count
  wage-subsidised jobs as competitive; this one does not.)
- `contracted_hours`: the sum over active relationships of hours per week times the share of
  the month's days each is active: the month's mean weekly hours, concurrent jobs adding up.
  Hours are the layout's `hours_per_week`, else its `position_percent` x 37.5 / 100 (a Norwegian
  full-time week) [C]; missing when an active relationship has neither, never counted as 0.
- `income_<type>` and `income_total`: A-ordningen amounts by calendar month, each calendar
  month's amount spread evenly over its days, so a person-month gets the share of the days it
  has in common with each calendar month [C] (person-months do not follow calendar months).
- `benefit_<code>`: a spell of that benefit or measure overlapping the month (start and end
  days inclusive; a blank end is ongoing).
- `npr_<specialty>` and `npr_episodes`: NPR episodes starting in the month; `kpr_<service>`
  and `kpr_contacts`: KPR contacts in the month.
- `covered`: every register covers the month: the month lies inside the days its active
  deliveries cover (`RegisterStore.covered`: a month before the first delivery's period, in a
  gap between two deliveries' periods or after the last is not covered). A value read from a
  register that does not cover the month is missing, not 0, and so is every value of a
  participant without a serial number (not linked).

Rows with an end date before their start date are left out (their number is logged). Names of
code columns are the layouts' codes (`benefit_AAP`, `npr_TSB`, `kpr_FL`), the registers'
roles their file names (`aa`, `inntekt`, `fd_trygd`, `npr`, `kpr`); a layout that is absent
drops its columns.

Endpoints at horizon H, over months 1..H, one row per participant and horizon:
`any_competitive`, `months_employed`, `months_competitive`, `contracted_hours` (the mean over
the months), the income and count columns summed and the benefit columns as months received. A
value is missing when any of its months is (its register does not reach month H: censored), and
`complete` says whether every register covers all of months 1..H.

The aggregation is DuckDB SQL over pandas frames or the register store's Parquet files alike,
so ten million KPR contacts are one scan (docs/registers.md has the figures).

    >>> people = pd.DataFrame({"record_id": ["1"], "lopenr": ["L1"],
    ...                        "rand_date": [dt.date(2025, 1, 31)], "arm": ["1"]})
    >>> months = panel(load_layouts(), {"aa": jobs}, people, {"aa": dt.date(2027, 12, 31)})
    >>> endpoints(months, [18, 60, 120])
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from hekta_redcap import LANGUAGES
from hekta_redcap.core.errors import HektaError
from hekta_redcap.core.settings import Settings
from hekta_redcap.core.texts import catalog
from hekta_redcap.data.store import Store
from hekta_redcap.definitions.registers import RegisterLayout
from hekta_redcap.definitions.study import Project
from hekta_redcap.randomization.design import design_of
from hekta_redcap.redcap.names import EVENT
from hekta_redcap.registers.linkage import read_key
from hekta_redcap.registers.store import Covered, RegisterStore

logger = logging.getLogger("hekta_redcap.registers.outcomes")

# The registers by role (their layouts' file names).
AA, INNTEKT, FD_TRYGD, NPR, KPR = "aa", "inntekt", "fd_trygd", "npr", "kpr"
COUNTED = {NPR: "specialty", KPR: "service"}  # events counted per code of this concept
FIRST_MONTH, LAST_MONTH = -24, 120
FULL_TIME_HOURS = 37.5  # hours per week of a 100 % position [C]
# FD-Trygd codes that make a job non-competitive, by the start of their English label.
NOT_COMPETITIVE = ("Wage subsidy", "Labour-market measure")

# The participants' columns (input) and the panel's fixed columns.
RECORD, LOPENR, RAND_DATE, ARM = "record_id", "lopenr", "rand_date", "arm"
MONTH, MONTH_START, MONTH_END, COVERED = "month", "month_start", "month_end", "covered"
EMPLOYED, COMPETITIVE, HOURS = "employed", "employed_competitive", "contracted_hours"
# The endpoints' fixed columns.
HORIZON, COMPLETE = "horizon", "complete"
ANY_COMPETITIVE, MONTHS_EMPLOYED, MONTHS_COMPETITIVE = (
    "any_competitive",
    "months_employed",
    "months_competitive",
)

Kind = Literal["flag", "hours", "amount", "count"]
Table = Literal["panel", "outcomes"]
Text = Mapping[str, str]  # language -> text
Data: TypeAlias = pd.DataFrame | Sequence[Path]
"""A register's rows: a typed frame (`RegisterStore.rows`) or the Parquet files holding them."""

DTYPES: dict[Kind, str] = {"flag": "boolean", "hours": "Float64", "amount": "Float64",
                           "count": "Int64"}  # fmt: skip
_TEXTS = catalog("hekta_redcap.registers", "outcomes.yaml")
# An endpoint's columns from a panel column that is not summed under its own name.
_ENDPOINTS: dict[str, tuple[tuple[str, Kind], ...]] = {
    EMPLOYED: ((MONTHS_EMPLOYED, "count"),),
    COMPETITIVE: ((ANY_COMPETITIVE, "flag"), (MONTHS_COMPETITIVE, "count")),
}


@dataclass(frozen=True)
class Measure:
    """A column of the panel or the endpoints: what it holds, the registers it reads (missing
    where one of them does not cover the month), its label in each language and, for a code's
    column, the layout's column and code it counts (`fd_trygd.ytelse = AAP`)."""

    name: str
    kind: Kind
    sources: tuple[str, ...]
    label: Text
    code: str = ""


def measures(layouts: Mapping[str, RegisterLayout], table: Table = "panel") -> list[Measure]:
    """The outcome columns of the panel or the endpoints for these layouts, in table order."""
    found: list[Measure] = []

    def add(
        name: str, kind: Kind, sources: tuple[str, ...], text: str, code: str = "", **fill: Text
    ) -> None:
        if table == "outcomes" and name in _ENDPOINTS:
            for column, summary in _ENDPOINTS[name]:
                found.append(Measure(column, summary, sources, _label(table, column, {})))
            return
        if table == "outcomes" and kind == "flag":
            kind = "count"  # months with the flag
        found.append(Measure(name, kind, sources, _label(table, text, fill), code))

    def coded(layout: RegisterLayout, concept: str, code: str) -> str:
        return f"{layout.source}.{layout.column(concept)} = {code}"

    if AA in layouts:
        add(EMPLOYED, "flag", (AA,), EMPLOYED)
        if FD_TRYGD in layouts:
            add(COMPETITIVE, "flag", (AA, FD_TRYGD), COMPETITIVE)
        add(HOURS, "hours", (AA,), HOURS)
    if INNTEKT in layouts:
        for code, label in codes(layouts[INNTEKT], "income_type").items():
            origin = coded(layouts[INNTEKT], "income_type", code)
            add(f"income_{code}", "amount", (INNTEKT,), "income", origin, label=label)
        add("income_total", "amount", (INNTEKT,), "income_total")
    if FD_TRYGD in layouts:
        for code, label in codes(layouts[FD_TRYGD], "benefit_type").items():
            origin = coded(layouts[FD_TRYGD], "benefit_type", code)
            add(f"benefit_{code}", "flag", (FD_TRYGD,), "benefit", origin, label=label)
    for source, concept in COUNTED.items():
        if source in layouts:
            layout = layouts[source]
            register = {lang: layout.label.get(lang) or source for lang in LANGUAGES}
            for code, label in codes(layout, concept).items():
                origin = coded(layout, concept, code)
                add(f"{source}_{code}", "count", (source,), "count", origin, source=register,
                    label=label)  # fmt: skip
            add(f"{source}_{layout.unit}s", "count", (source,), "count_total", source=register)
    return found


def fixed_labels(table: Table) -> dict[str, Text]:
    """The labels of a table's columns other than the record, arm and measures."""
    names = (MONTH, MONTH_START, MONTH_END, COVERED) if table == "panel" else (HORIZON, COMPLETE)
    return {name: _label(table, name, {}) for name in names}


def _label(table: Table, text: str, fill: Mapping[str, Text]) -> Text:
    entry = _TEXTS[f"{table}.{text}"]
    return {lang: entry[lang].format(**{k: v[lang] for k, v in fill.items()}) for lang in LANGUAGES}


def codes(layout: RegisterLayout, concept: str) -> dict[str, Text]:
    """A coded concept's codes with their labels (none when the layout lacks the concept)."""
    column = layout.column(concept)
    if column is None:
        return {}
    return {
        c.code: {lang: c.label.get(lang) or c.code for lang in LANGUAGES}
        for c in layout.variable(column).codes
    }


@dataclass(frozen=True)
class Registered:
    """What the analyst export carries from the registers: the panel and the endpoints, the
    layouts they follow, the horizons, and what they were read from (each register's coverage
    and the ids of its active deliveries, so that an analysis can cite them)."""

    panel: pd.DataFrame
    endpoints: pd.DataFrame
    horizons: list[int]
    layouts: dict[str, RegisterLayout]
    covered: dict[str, Covered]
    deliveries: dict[str, list[str]]


def register_tables(
    settings: Settings,
    project: Project,
    months: Sequence[int] = (18,),
    rows: pd.DataFrame | Sequence[Mapping[str, Any]] | None = None,
) -> Registered | None:
    """The panel and the endpoints at `months` of every randomised participant, from the
    register store, the linkage key and the synced trial data (`rows`: a flat export as text,
    by default the sync store's); None before any delivery has been imported."""
    horizons = check_horizons(months)
    if not settings.register_dir.is_dir():
        return None
    store = RegisterStore.open(settings, project.root)
    deliveries = {s: [d.delivery_id for d in store.active(s)] for s in store.layouts}
    if not any(deliveries.values()):
        return None
    if rows is None:
        with Store.open(settings) as synced:
            rows = synced.raw_rows(project.name)
    people = participants(project, rows, read_key(settings.linkage_key))
    covered = {s: store.covered(s) for s in store.layouts}
    files: dict[str, Data] = {s: store.parquet_files(s) for s in store.layouts}
    months_panel = panel(store.layouts, files, people, covered)
    outcomes = endpoints(months_panel, horizons)
    return Registered(months_panel, outcomes, horizons, store.layouts, covered, deliveries)


def participants(
    project: Project,
    rows: pd.DataFrame | Sequence[Mapping[str, Any]],
    key: Mapping[str, str],
) -> pd.DataFrame:
    """Every randomised record (a readable date in the schedule's anchor field at its event)
    in the order of `rows`, with its serial number from the linkage key (`key`: lopenr ->
    record id; blank when not linked), randomisation date and arm (the randomisation target
    at its event)."""
    schedule, design = project.study.schedule, design_of(project)
    if schedule is None:
        raise HektaError(f"the study file of {project.name} has no schedule (no anchor date)")
    frame = pd.DataFrame(rows)
    record_id = project.study.record_id
    for column in (record_id, EVENT, schedule.anchor_field, design.target):
        if column not in frame.columns:
            frame[column] = ""
    frame = frame.fillna("").astype(str)

    def at(event: str | None, field: str) -> pd.Series:
        found = frame[frame[EVENT] == event] if event else frame
        found = found[found[field] != ""].drop_duplicates(record_id)
        return found.set_index(record_id)[field]

    dates = pd.to_datetime(at(schedule.anchor_event, schedule.anchor_field), errors="coerce",
                           format="%Y-%m-%d").dropna()  # fmt: skip
    records = pd.Index(frame[record_id].drop_duplicates())
    records = records[records.isin(dates.index)]
    serial = {record: lopenr for lopenr, record in key.items()}
    return pd.DataFrame(
        {
            RECORD: records,
            LOPENR: pd.array([serial.get(r) for r in records], dtype="string"),
            RAND_DATE: dates.reindex(records).to_numpy(),
            ARM: at(design.event, design.target).reindex(records).to_numpy(),
        }
    )


@dataclass(frozen=True)
class Coverage:
    """What the register follow-ups complete by: the days each register's active deliveries
    cover, and the records in the linkage key (only their data come back: one who declined
    linkage never completes)."""

    covered: Mapping[str, Covered] = field(default_factory=dict)
    linked: frozenset[str] = frozenset()


def coverage(settings: Settings, project: Project) -> Coverage:
    """The registers' coverage (none before the first import: asking creates no store)."""
    if not settings.register_dir.is_dir():
        return Coverage()
    store = RegisterStore.open(settings, project.root)
    covered = {source: store.covered(source) for source in store.layouts}
    if not any(covered.values()):
        return Coverage(covered)
    return Coverage(covered, frozenset(read_key(settings.linkage_key).values()))


# -- the panel ----------------------------------------------------------------------------------


def panel(
    layouts: Mapping[str, RegisterLayout],
    data: Mapping[str, Data],
    participants: pd.DataFrame,
    covered: Mapping[str, Covered],
) -> pd.DataFrame:
    """One row per participant (in the order given) and month -24..-1, 1..120: `record_id`,
    `arm`, `month`, `month_start`, `month_end` (dates), `covered`, then `measures(layouts)`.

    `participants` has `record_id`, `lopenr` (blank: not linked), `rand_date` and `arm`;
    `data` each register's rows by source (a register without rows has none);
    `covered` the days each register's deliveries cover (empty or absent: none)."""
    people = _people(participants)
    found = measures(layouts)
    with duckdb.connect() as con:
        con.execute("SET enable_progress_bar = false")  # not on a nurse's or analyst's terminal
        con.execute(_MONTH_INDEX)
        con.register("participants", people[["ord", RECORD, LOPENR, RAND_DATE]])
        con.execute(_PEOPLE)
        con.execute(_MONTHS)
        for source, layout in layouts.items():
            _source(con, source, layout, data.get(source))
        parts = [
            part
            for role, build in _PARTS.items()
            if role in layouts and (part := build(con, layouts)) is not None
        ]
        coverage = {s: _covers(covered.get(s, ())) for s in layouts}
        columns = [
            f"m.ord, m.{RECORD}, m.month AS {MONTH}, m.first_day AS {MONTH_START}",
            f"m.last_day AS {MONTH_END}, {' AND '.join(coverage.values()) or 'FALSE'} AS {COVERED}",
        ]
        joins, values = [], {}
        for n, (table, made) in enumerate(parts):
            joins.append(f"LEFT JOIN {table} t{n} ON t{n}.ord = m.ord AND t{n}.k = m.k")
            values.update({name: value.format(t=f"t{n}") for name, value in made.items()})
        for measure in found:
            when = " AND ".join(coverage[s] for s in measure.sources)
            columns.append(
                f"CASE WHEN {when} THEN {values[measure.name]} END AS {_name(measure.name)}"
            )
        result = con.sql(
            f"SELECT {', '.join(columns)} FROM months m {' '.join(joins)} ORDER BY m.ord, m.k"
        ).to_arrow_table()
    frame = result.to_pandas(types_mapper=_NULLABLE.get, date_as_object=False)
    frame.insert(1, ARM, people[ARM].array.take(frame.pop("ord").to_numpy()))
    return frame


# Arrow's types as the panel's pandas types (nullable; dates stay datetime64).
_NULLABLE = {
    pa.bool_(): pd.BooleanDtype(),
    pa.int64(): pd.Int64Dtype(),
    pa.float64(): pd.Float64Dtype(),
    pa.string(): pd.StringDtype(),
    pa.large_string(): pd.StringDtype(),
}


def _people(participants: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in (RECORD, LOPENR, RAND_DATE, ARM) if c not in participants.columns]
    if missing:
        raise HektaError(f"register panel: the participants have no column {', '.join(missing)}")
    people = participants.reset_index(drop=True)
    people = people.assign(
        ord=range(len(people)),
        record_id=people[RECORD].astype(str),
        lopenr=people[LOPENR].astype("string").str.strip().replace("", pd.NA),
        rand_date=pd.to_datetime(people[RAND_DATE]).dt.normalize(),
    )
    if people[RECORD].duplicated().any():
        raise HektaError("register panel: a record id is listed twice among the participants")
    if people[RAND_DATE].isna().any():
        raise HektaError("register panel: a participant has no randomisation date")
    linked = people[LOPENR].dropna()
    if linked.duplicated().any():
        raise HektaError("register panel: two participants share a serial number (lopenr)")
    return people


_MONTH_INDEX = """
CREATE MACRO month_index(d, r) AS
    (year(d) - year(r)) * 12 + month(d) - month(r)
    - CAST(day(d) < least(day(r), day(last_day(d))) AS INTEGER)
"""
"""The 0-based k of the month [r + k months, r + (k+1) months) holding day d: the calendar
months between them, less one when d falls before r + that many months, which lies in d's
calendar month on r's day clipped to the month's length."""

_PEOPLE = f"""
CREATE TABLE people AS
SELECT ord, {RECORD}, {LOPENR}, CAST({RAND_DATE} AS DATE) AS rand,
       CAST(CAST({RAND_DATE} AS DATE) + to_months({FIRST_MONTH}) AS DATE) AS first_day,
       CAST(CAST({RAND_DATE} AS DATE) + to_months({LAST_MONTH}) AS DATE) - 1 AS last_day
FROM participants
"""

_MONTHS = f"""
CREATE TABLE months AS
SELECT p.ord, p.{RECORD}, p.{LOPENR}, r.k,
       CASE WHEN r.k >= 0 THEN r.k + 1 ELSE r.k END AS month,
       CAST(p.rand + to_months(CAST(r.k AS INTEGER)) AS DATE) AS first_day,
       CAST(p.rand + to_months(CAST(r.k + 1 AS INTEGER)) AS DATE) - 1 AS last_day
FROM people p CROSS JOIN range({FIRST_MONTH}, {LAST_MONTH}) r(k)
"""


def _source(
    con: duckdb.DuckDBPyConnection, source: str, layout: RegisterLayout, data: Data | None
) -> None:
    """The register's rows as the view `src_<source>`: a frame as it is, the rows of Parquet
    files (deliveries, oldest first: of rows with the same `unique` key in several, the last
    file's wins, so an overlapping later delivery's end date replaces an ongoing one), or no
    rows; a layout column the rows lack is NULL."""
    latest = ""
    if isinstance(data, pd.DataFrame):
        con.register(f"frame_{source}", data)
        scan = f"frame_{source}"
    elif data:
        files = f"[{', '.join(_literal(str(f)) for f in data)}]"
        scan = f"read_parquet({files}, union_by_name = true, filename = true)"
        if len(data) > 1 and layout.unique:
            key = ", ".join(map(_name, layout.unique))
            latest = (
                f"QUALIFY row_number() OVER (PARTITION BY {key} "
                f"ORDER BY list_position({files}, filename) DESC) = 1"
            )
    else:
        scan = "(SELECT 1 AS no_rows WHERE FALSE)"
    present = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()}
    absent = "".join(
        f", NULL AS {_name(v.name)}" for v in layout.variables if v.name not in present
    )
    con.execute(f"CREATE VIEW src_{source} AS SELECT *{absent} FROM {scan} {latest}")


def _covers(covered: Covered) -> str:
    """SQL: the month `m` of a linked participant lies inside a period a register's
    deliveries cover."""
    if not covered:
        return "FALSE"
    inside = " OR ".join(
        f"(m.first_day >= DATE '{start.isoformat()}' AND m.last_day <= DATE '{end.isoformat()}')"
        for start, end in covered
    )
    return f"(m.{LOPENR} IS NOT NULL AND ({inside}))"


Part: TypeAlias = tuple[str, dict[str, str]]
"""A table of per-month values keyed by participant (`ord`) and k, and each measure's value
in the final select (`{t}` is the table's alias; a month without a row there has no events)."""


def _column(layout: RegisterLayout, concept: str, cast: str) -> str:
    """SQL: the column holding a concept, cast; NULL when the layout lacks the concept."""
    column = layout.column(concept)
    return f"CAST({_name(column)} AS {cast})" if column else f"CAST(NULL AS {cast})"


def _intervals(layout: RegisterLayout, *extra: str, where: str = "TRUE") -> str:
    """SQL: the register's rows where `where` holds as intervals (lopenr, s, e: first and last
    day, e NULL when ongoing) with `extra` columns; rows ending before they start are left out
    (`_left_out` logs them)."""
    start, end = _column(layout, "start", "DATE"), _column(layout, "end", "DATE")
    columns = ", ".join([f"{_name(layout.key)} AS lopenr", f"{start} AS s", f"{end} AS e", *extra])
    return (
        f"SELECT {columns} FROM src_{layout.source} "
        f"WHERE ({end} IS NULL OR {end} >= {start}) AND ({where})"
    )


def _spread(rows: str, *extra: str) -> str:
    """SQL: each interval of `rows` once per panel month it overlaps, with the overlap's first
    and last day (a, b), the month's days and the `extra` columns."""
    carried = "".join(f", x.{c}" for c in extra)
    return f"""
    SELECT m.ord, m.k, m.{LOPENR}, greatest(x.s, m.first_day) AS a,
           least(x.e, m.last_day) AS b, m.last_day - m.first_day + 1 AS days{carried}
    FROM (
        SELECT p.ord, x.s, coalesce(x.e, p.last_day) AS e{carried},
               unnest(range(month_index(greatest(x.s, p.first_day), p.rand),
                            month_index(least(coalesce(x.e, p.last_day), p.last_day), p.rand) + 1))
               AS k
        FROM ({rows}) x JOIN people p ON p.{LOPENR} = x.lopenr
        WHERE x.s <= p.last_day AND coalesce(x.e, p.last_day) >= p.first_day
    ) x JOIN months m ON m.ord = x.ord AND m.k = x.k
    """


def _left_out(con: duckdb.DuckDBPyConnection, layout: RegisterLayout) -> None:
    """Log how many rows `_intervals` leaves out for ending before they start."""
    start, end = _column(layout, "start", "DATE"), _column(layout, "end", "DATE")
    row = con.execute(f"SELECT count(*) FROM src_{layout.source} WHERE {end} < {start}").fetchone()
    if row and row[0]:
        logger.info(
            "register panel: rows left out source=%s end_before_start=%d", layout.source, row[0]
        )


def _employment(con: duckdb.DuckDBPyConnection, layouts: Mapping[str, RegisterLayout]) -> Part:
    aa = layouts[AA]
    _left_out(con, aa)
    hours = [_column(aa, "hours_per_week", "DOUBLE")]
    if aa.column("position_percent"):
        hours.append(f"{_column(aa, 'position_percent', 'DOUBLE')} * {FULL_TIME_HOURS} / 100")
    con.execute(
        "CREATE TABLE jobs AS "
        + _spread(_intervals(aa, f"coalesce({', '.join(hours)}) AS hours"), "hours")
    )
    subsidised = "FALSE"
    if FD_TRYGD in layouts:
        fd = layouts[FD_TRYGD]
        wanted = [
            code
            for code, label in codes(fd, "benefit_type").items()
            if label["en"].startswith(NOT_COMPETITIVE)
        ]
        kind = _column(fd, "benefit_type", "VARCHAR")
        listed = ", ".join(map(_literal, wanted)) or "NULL"
        con.execute(f"CREATE TABLE subsidy AS {_intervals(fd, where=f'{kind} IN ({listed})')}")
        subsidised = (
            "EXISTS (SELECT 1 FROM subsidy z WHERE z.lopenr = j.lopenr "
            "AND z.s <= j.b AND coalesce(z.e, j.b) >= j.a)"
        )
    con.execute(f"""
        CREATE TABLE employment AS
        SELECT ord, k, bool_or(NOT subsidised) AS competitive,
               CASE WHEN count(hours) = count(*) THEN sum(hours * (b - a + 1) / days) END AS hours
        FROM (SELECT j.*, {subsidised} AS subsidised FROM jobs j)
        GROUP BY ord, k
    """)
    return "employment", {
        EMPLOYED: "{t}.k IS NOT NULL",
        COMPETITIVE: "coalesce({t}.competitive, FALSE)",
        HOURS: "CASE WHEN {t}.k IS NULL THEN 0 ELSE {t}.hours END",
    }


def _income(con: duckdb.DuckDBPyConnection, layouts: Mapping[str, RegisterLayout]) -> Part:
    """Each calendar month's amounts spread over its days onto the person-months."""
    layout = layouts[INNTEKT]
    month = layout.column("month")
    if month is None:
        raise HektaError(f"register layout {INNTEKT} has no column with concept 'month'")
    first = f"CAST(date_trunc('month', CAST({_name(month)} AS DATE)) AS DATE)"
    rows = f"""
        SELECT {_name(layout.key)} AS lopenr, first AS s,
               CAST(first + INTERVAL 1 MONTH AS DATE) - 1 AS e,
               {_column(layout, "income_type", "VARCHAR")} AS kind,
               {_column(layout, "amount", "DOUBLE")} AS amount
        FROM (SELECT *, {first} AS first FROM src_{layout.source})
    """
    share = "amount * (b - a + 1) / (e - s + 1)"
    by_kind = [
        f"sum({share}) FILTER (WHERE kind = {_literal(code)}) AS {_name(f'income_{code}')}"
        for code in codes(layout, "income_type")
    ]
    con.execute(f"""
        CREATE TABLE income AS
        SELECT ord, k, {", ".join([*by_kind, f"sum({share}) AS income_total"])}
        FROM ({_spread(rows, "s", "e", "kind", "amount")}) GROUP BY ord, k
    """)
    names = [f"income_{code}" for code in codes(layout, "income_type")] + ["income_total"]
    return "income", {n: f"coalesce({{t}}.{_name(n)}, 0)" for n in names}


def _benefits(con: duckdb.DuckDBPyConnection, layouts: Mapping[str, RegisterLayout]) -> Part | None:
    layout = layouts[FD_TRYGD]
    _left_out(con, layout)
    kind = _column(layout, "benefit_type", "VARCHAR")
    names = {code: f"benefit_{code}" for code in codes(layout, "benefit_type")}
    received = [
        f"bool_or(kind = {_literal(code)}) AS {_name(name)}" for code, name in names.items()
    ]
    if not received:
        return None
    con.execute(f"""
        CREATE TABLE benefits AS
        SELECT ord, k, {", ".join(received)}
        FROM ({_spread(_intervals(layout, f"{kind} AS kind"), "kind")}) GROUP BY ord, k
    """)
    return "benefits", {n: f"coalesce({{t}}.{_name(n)}, FALSE)" for n in names.values()}


def _counts(
    source: str,
) -> Callable[[duckdb.DuckDBPyConnection, Mapping[str, RegisterLayout]], Part]:
    """The events of `source` (NPR episodes, KPR contacts) starting in each month: all, and
    per code of its counted concept."""

    def build(con: duckdb.DuckDBPyConnection, layouts: Mapping[str, RegisterLayout]) -> Part:
        layout = layouts[source]
        concept = COUNTED[source]
        names = {code: f"{source}_{code}" for code in codes(layout, concept)}
        total = f"{source}_{layout.unit}s"
        counted = [
            f"count(*) FILTER (WHERE x.code = {_literal(code)}) AS {_name(name)}"
            for code, name in names.items()
        ]
        con.execute(f"""
            CREATE TABLE counted_{source} AS
            SELECT p.ord, month_index(x.d, p.rand) AS k,
                   {", ".join([*counted, f"count(*) AS {_name(total)}"])}
            FROM (SELECT {_name(layout.key)} AS lopenr, {_column(layout, "start", "DATE")} AS d,
                         {_column(layout, concept, "VARCHAR")} AS code
                  FROM src_{source}) x
            JOIN people p ON p.{LOPENR} = x.lopenr
            WHERE x.d BETWEEN p.first_day AND p.last_day
            GROUP BY ALL
        """)
        return f"counted_{source}", {
            n: f"coalesce({{t}}.{_name(n)}, 0)" for n in [*names.values(), total]
        }

    return build


_PARTS = {
    AA: _employment,
    INNTEKT: _income,
    FD_TRYGD: _benefits,
    NPR: _counts(NPR),
    KPR: _counts(KPR),
}


def _name(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    """A quoted SQL string."""
    return "'" + text.replace("'", "''") + "'"


# -- the endpoints ------------------------------------------------------------------------------


def check_horizons(months: Sequence[int]) -> list[int]:
    """The horizons ascending; HektaError unless there is one and each is 1 to 120 months."""
    horizons = sorted(set(months))
    if not horizons or not all(1 <= h <= LAST_MONTH for h in horizons):
        raise HektaError(
            f"register outcomes: horizons must be 1 to {LAST_MONTH} months, not "
            f"{', '.join(map(str, months)) or 'none'}"
        )
    return horizons


def endpoints(panel: pd.DataFrame, months: Sequence[int]) -> pd.DataFrame:
    """One row per participant (panel order) and horizon H in `months` (ascending): `record_id`,
    `arm`, `horizon`, `complete`, then the panel's measures over months 1..H (see the module
    docstring; `measures(layouts, "outcomes")` names and labels them). Sums per participant are
    numpy's bincount over the panel's rows, so that a population's panel takes seconds."""
    horizons = check_horizons(months)
    fixed = (RECORD, ARM, MONTH, MONTH_START, MONTH_END, COVERED)
    columns = [c for c in panel.columns if c not in fixed]
    owner, records = pd.factorize(panel[RECORD], sort=False)  # numbered in panel order
    first = np.unique(owner, return_index=True)[1]  # each participant's first row
    people = panel[[RECORD, ARM]].iloc[first].reset_index(drop=True)
    month = panel[MONTH].to_numpy(dtype=float, na_value=np.nan)
    numbers = {c: panel[c].to_numpy(dtype=float, na_value=np.nan) for c in columns}
    uncovered = ~panel[COVERED].to_numpy(dtype=bool, na_value=False)

    def total(rows: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(owner[rows], weights, minlength=len(records))

    parts = []
    for horizon in horizons:
        inside = (month >= 1) & (month <= horizon)
        size = total(inside)
        out = people.assign(
            **{
                HORIZON: horizon,
                COMPLETE: (size == horizon) & (total(inside, uncovered[inside]) == 0),
            }
        )
        for column in columns:
            values = numbers[column][inside]
            unknown = total(inside, np.isnan(values).astype(float)) > 0
            summed = total(inside, np.nan_to_num(values))
            if column == HOURS:
                summed = summed / np.maximum(size, 1)
            summed = pd.array(np.where(unknown, np.nan, summed), dtype="Float64")
            for name, kind in _ENDPOINTS.get(column, ((column, _kind(panel[column])),)):
                result = summed > 0 if name == ANY_COMPETITIVE else summed
                out[name] = pd.array(result, dtype=DTYPES[kind])
        parts.append(out.assign(ord=range(len(out))))
    frame = pd.concat(parts).sort_values(["ord", HORIZON], kind="stable").drop(columns="ord")
    frame[HORIZON] = frame[HORIZON].astype("Int64")
    return frame.reset_index(drop=True)


def _kind(series: pd.Series) -> Kind:
    """A summed panel column's kind: flags become months counted."""
    if pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_integer_dtype(series.dtype):
        return "count"
    return "amount"
