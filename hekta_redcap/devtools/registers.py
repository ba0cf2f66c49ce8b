"""Synthetic register deliveries, made from a synthetic cohort (`devtools.cohort`).

Tests, the demo and the benchmark need deliveries like those the registers send back: one per
source, in its layout's columns, keyed by the project's serial number (`lopenr`) through a
linkage key. No register column or code is named here: columns come from the layout's concepts
(`layout.column`) and codes from their English labels, so a layout a data manager adapts is
followed. A delivery's kind comes from the layout's unit (relationship, month, spell, episode,
contact).

What a delivery holds follows each participant's story (`Cohort.stories`): an employment
relationship for every job they had, and for those no assessment asked about (before the
baseline's recall, after the last assessment, after dropping out: competitive work still more
often with IPS); A-ordningen's monthly wages from them and the benefits NAV pays; benefit spells
(work assessment allowance around randomization, ending sooner when an IPS participant finds
competitive work; social assistance; a wage subsidy over each non-competitive job; sickness and
unemployment benefit around competitive jobs; a few on disability benefit); specialist health
care (substance-use treatment mostly, with the participant's ICD-10 F1x diagnosis; some mental
health and somatic care); and primary-care contacts. Nothing after a death, nothing for anyone
not in the key (who declined linkage).

With `errors=True` each delivery holds one row of each kind in `ERROR_KINDS` (an unknown serial
number, a code not in the layout, a row wholly before the delivery's period, a duplicate row),
listed in `Delivery.errors` so that a test can check the import finds exactly them. The same
arguments give the same rows. `write_contacts` writes a population's worth of primary-care contacts
straight to CSV for the benchmark.

    >>> made = deliveries(cohort, key, until=dt.date(2026, 10, 31), seed=1)
    >>> made["npr"].write(folder / "npr.csv", encoding="latin-1")
"""

from __future__ import annotations

import csv
import datetime as dt
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyreadstat
from dateutil.relativedelta import relativedelta
from stdnum.no import orgnr as organisation_number

from hekta_redcap.definitions.registers import RegisterLayout, load_layouts
from hekta_redcap.devtools.cohort import (
    HOURS,
    JOBS_AFTER_RANDOMISATION,
    OCCUPATIONS,
    RECALL_DAYS,
    Cohort,
    Job,
    Story,
)

ERROR_KINDS = ("unknown-serial", "invalid-code", "outside-period", "duplicate")
MONTHS_BEFORE = 24  # the outcomes' panel starts 24 months before randomization
STATISTICS_FORMATS = (".dta", ".sav", ".xpt")  # what pyreadstat writes (not SAS's sas7bdat)

Value = str | float | dt.date | None
Row = dict[str, Value]

# Jobs before the baseline's recall window (no assessment asked about them): starts per year,
# mean length in days, share competitive.
JOBS_BEFORE = (0.4, 150, 0.55)
HOURLY_PAY = (175, 260)  # NOK, as the cohort's reported pay
WEEKS_PER_MONTH = 52 / 12
FULL_TIME = 37.5  # hours a week: a position of 100 %

# Benefits: how many receive them and the monthly amount (NOK).
AAP = (0.55, (16_000, 24_000))
UFOR = (0.04, (19_000, 23_000))
SOSH = (0.7, (5_000, 11_000))  # spells per year
DAGP = (0.25, (12_000, 16_000))  # after a competitive job ends
SYKP = 0.15  # during a competitive job
TILT = 0.1  # a work-training spell without an employment relationship
AAP_ENDS_WITH_WORK = 0.6  # an IPS participant's allowance ends soon after competitive work starts
NOT_IN_A_ORDNINGEN = ("Social assistance",)  # paid by the municipality, not reported there

# Specialist health care: the participant's substance-use diagnosis (ICD-10 F1x), others.
SUBSTANCE = (("F10.2", 35), ("F11.2", 15), ("F12.2", 15), ("F15.2", 15), ("F19.2", 20))
MENTAL = ("F32.1", "F33.1", "F41.1", "F43.1", "F60.3", "F90.0")
SOMATIC = ("T40.1", "S06.0", "S52.5", "J18.9", "K70.3", "B18.2", "L03.1")
TSB_DAYS = 14  # mean days between outpatient contacts in a course of treatment
INPATIENT = 0.3  # share of courses of treatment with an inpatient stay
MENTAL_HEALTH = 0.35  # share with mental health care
SOMATIC_PER_YEAR = 1.2
RELAPSES_PER_YEAR = 0.3

# Primary care: service (English label) -> contacts per person-year; types and ICPC-2 codes.
PRIMARY = (("General", 7.0), ("Out-of-hours", 0.8), ("Physio", 0.3), ("Municipal", 2.5))
CONTACT_TYPES = (("Attendance", 70), ("Telephone", 26), ("Home", 2), ("Other", 2))
ICPC = ("P15", "P19", "P19", "P76", "P74", "P29", "A97", "L03", "R74", "L84", "D73", "S18")
NO_DIAGNOSIS = 0.1
MUNICIPAL = 0.4  # share with municipal health and care services (substance-use follow-up)


@dataclass(frozen=True, order=True)
class DeliveryError:
    """A deliberate error: its data row (1-based; in a CSV file line `row + 1`, after the
    header), the column that holds it (a duplicate: the unique columns it repeats, joined by
    `+`), and its kind (`ERROR_KINDS`)."""

    row: int
    column: str
    what: str

    @property
    def line(self) -> int:
        return self.row + 1


@dataclass
class Delivery:
    """One source's delivery: rows in the layout's columns (dates as dates, months as their
    first day, numbers as floats, blanks as None), the period it covers, its errors."""

    layout: RegisterLayout
    period: tuple[dt.date, dt.date]
    rows: list[Row]
    errors: list[DeliveryError] = field(default_factory=list)

    @property
    def source(self) -> str:
        return self.layout.source

    @property
    def period_text(self) -> str:
        """The period as `registers import --period` takes it."""
        return f"{self.period[0].isoformat()}:{self.period[1].isoformat()}"

    def write(self, path: Path, *, encoding: str = "utf-8", delimiter: str = ";") -> Path:
        """Write as the registers deliver: CSV (dates DD.MM.YYYY, decimal commas, the given
        encoding and delimiter), or Stata, SPSS or SAS transport by the file's suffix."""
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix.lower() == ".csv":
            with path.open("w", encoding=encoding, newline="") as out:
                writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
                writer.writerow([v.name for v in self.layout.variables])
                for row in self.rows:
                    writer.writerow(_text(v.type, row[v.name]) for v in self.layout.variables)
        elif path.suffix.lower() in STATISTICS_FORMATS:
            _write_statistics(self, path)
        else:
            raise ValueError(f"{path}: write .csv or one of {', '.join(STATISTICS_FORMATS)}")
        return path


def deliveries(
    cohort: Cohort,
    key: Mapping[str, str],
    until: dt.date,
    *,
    seed: int = 1,
    errors: bool = True,
    layouts: Mapping[str, RegisterLayout] | None = None,
) -> dict[str, Delivery]:
    """One delivery per layout, for the participants in `key` (record id -> serial number),
    covering the first of the month 24 months before the first randomization to `until`."""
    layouts = layouts or load_layouts()
    first = min(cohort.stories[record].randomized for record in key)
    period = (first.replace(day=1) - relativedelta(months=MONTHS_BEFORE), until)
    rng = random.Random(seed)
    payer = _orgnr(rng)
    lives = [
        _Life(serial, cohort.stories[record], *period, payer).simulate(rng)
        for record, serial in key.items()
    ]
    made = {}
    for source, layout in layouts.items():
        rows = list(_rows(layout, lives))
        marked = _add_errors(layout, rows, period, set(key.values()), rng) if errors else []
        rows.sort(key=_order(layout))  # stable: a duplicate stays right after its original
        number = {id(row): n for n, row in enumerate(rows, start=1)}
        found = sorted(DeliveryError(number[id(r)], c, k) for r, c, k in marked)
        made[source] = Delivery(layout, period, rows, found)
    return made


def synthetic_key(cohort: Cohort, seed: int = 1) -> dict[str, str]:
    """A linkage key for the participants who consented (record id -> serial number), as the
    linkage list would give, for tests that run without a store."""
    consented = [s.record for s in cohort.stories.values() if s.consents_to_registers]
    return dict(zip(consented, serials(len(consented), seed), strict=True))


def serials(count: int, seed: int = 1) -> list[str]:
    """`count` distinct random serial numbers of eight digits."""
    drawn = random.Random(seed).sample(range(10**7, 10**8), count)
    return [str(n) for n in drawn]


def write_contacts(
    layout: RegisterLayout,
    people: Sequence[str],
    rows: int,
    period: tuple[dt.date, dt.date],
    path: Path,
    *,
    seed: int = 1,
    chunk: int = 1_000_000,
) -> Path:
    """A population's primary-care contacts (a layout of unit `contact`) as a CSV delivery:
    `rows` contacts of `people` (serial numbers), dated evenly over `period`, drawn with numpy
    and written by pyarrow a chunk at a time, so that ten million rows take seconds and little
    memory. No deliberate errors: the benchmark times a clean import."""
    columns = _Columns(layout)
    draw = np.random.default_rng(seed)
    serial = np.asarray(people)
    services = [(columns.code("service", s), rate) for s, rate in PRIMARY]
    kinds = [(columns.code("contact_type", k), weight) for k, weight in CONTACT_TYPES]
    days = (period[1] - period[0]).days + 1
    options = pacsv.WriteOptions(
        include_header=False, delimiter=";", quoting_style="none", eol="\r\n"
    )
    with path.open("wb") as out:
        out.write((";".join(columns.concept) + "\r\n").encode("ascii"))
        for first in range(0, rows, chunk):
            count = min(chunk, rows - first)
            day = np.datetime64(period[0]) + draw.integers(0, days, count)
            diagnosis = draw.choice(np.asarray(ICPC), count)
            values = {
                "serial": pa.array(serial[draw.integers(0, len(serial), count)]),
                "id": pa.array(np.arange(first, first + count) + 100_001).cast(pa.string()),
                "start": pc.strftime(pa.array(day).cast(pa.timestamp("s")), format="%d.%m.%Y"),
                "service": pa.array(_weighted(draw, services, count)),
                "contact_type": pa.array(_weighted(draw, kinds, count)),
                "diagnosis": pa.array(diagnosis, mask=draw.random(count) < NO_DIAGNOSIS),
            }
            blank = pa.nulls(count, pa.string())
            table = pa.table({n: values.get(c or "", blank) for n, c in columns.concept.items()})
            pacsv.write_csv(table, out, options)
    return path


def _weighted(
    draw: np.random.Generator, pairs: Sequence[tuple[str | None, float]], n: int
) -> np.ndarray:
    codes, weights = zip(*pairs, strict=True)
    share = np.asarray(weights, dtype=float)
    return draw.choice(np.asarray(codes, dtype=object), n, p=share / share.sum())


# -- each participant's life as the registers see it ---------------------------------------------


@dataclass(frozen=True)
class _Spell:
    benefit: str  # the English label its code is found by
    start: dt.date
    end: dt.date  # may lie after the period: the spell goes on
    monthly: float | None  # NOK; None for a measure that pays the participant nothing


@dataclass(frozen=True)
class _Episode:
    start: dt.date
    days: int  # 0 for an outpatient contact or day treatment
    level: str
    specialty: str
    diagnosis: str
    secondary: str | None


@dataclass(frozen=True)
class _Contact:
    day: dt.date
    service: str
    kind: str
    diagnosis: str | None


@dataclass
class _Life:
    """What the registers hold about one participant from the period's start to its end
    (`until`), nothing after a death (`end`)."""

    serial: str
    story: Story
    start: dt.date
    until: dt.date
    payer: str  # NAV's organisation number where it pays a benefit
    jobs: list[tuple[Job, float]] = field(default_factory=list)  # with the hourly pay
    spells: list[_Spell] = field(default_factory=list)
    episodes: list[_Episode] = field(default_factory=list)
    contacts: list[_Contact] = field(default_factory=list)

    @property
    def end(self) -> dt.date:
        died = self.story.fate_date if self.story.fate == "Deceased" else None
        return min(self.until, died or self.until)

    def simulate(self, rng: random.Random) -> _Life:
        self._work(rng)
        self._benefits(rng)
        self._specialist_care(rng)
        self._primary_care(rng)
        return self

    def _work(self, rng: random.Random) -> None:
        """The cohort's jobs, the jobs before the baseline's recall window and those after the
        last assessment (by arm, as the cohort's), each with an hourly pay."""
        story, jobs = self.story, list(self.story.jobs)
        recall = story.randomized - dt.timedelta(days=RECALL_DAYS)
        per_year, mean_days, competitive = JOBS_BEFORE
        for start in _events(rng, self.start, recall, per_year):
            job = _job(rng, start, rng.random() < competitive, mean_days)
            jobs.append(_ended(job, min(job.end, recall)))
        per_year, mean_days, competitive = JOBS_AFTER_RANDOMISATION[story.ips]
        begin = max([story.last_visit, *(j.end for j in story.jobs)])
        begin += dt.timedelta(days=rng.expovariate(per_year) * 365)
        while begin < self.end:
            job = _job(rng, begin, rng.random() < competitive, mean_days)
            jobs.append(job)
            begin = job.end + dt.timedelta(days=rng.expovariate(1 / 120))
        kept = sorted(
            (_ended(j, self._clip(j.end)) for j in jobs if j.start < self.end), key=_start
        )
        self.jobs = [(j, float(rng.randrange(*HOURLY_PAY))) for j in kept]

    def _benefits(self, rng: random.Random) -> None:
        """Spells of benefits and measures; IPS participants more often leave the work
        assessment allowance when they find competitive work."""
        story, spells = self.story, self.spells
        disabled = None
        if rng.random() < UFOR[0]:
            disabled = story.randomized + dt.timedelta(days=rng.randrange(200, 900))
            spells.append(_Spell("Disability", disabled, _FAR, _pay(rng, UFOR[1])))
        if rng.random() < AAP[0]:
            start = max(self.start, story.randomized - dt.timedelta(days=rng.randrange(30, 700)))
            end = start + dt.timedelta(days=60 + rng.expovariate(1 / 600))
            work = [j.start for j, _ in self.jobs if j.competitive and j.start > story.randomized]
            if story.ips and work and rng.random() < AAP_ENDS_WITH_WORK:
                end = min(end, work[0] + dt.timedelta(days=30))
            if disabled is not None:
                end = min(end, disabled - dt.timedelta(days=1))
            if start < end:
                spells.append(_Spell("Work assessment", start, end, _pay(rng, AAP[1])))
        for start in _events(rng, self.start, self.end, SOSH[0]):
            end = start + relativedelta(months=rng.randint(1, 4), days=-1)
            spells.append(_Spell("Social assistance", start, end, _pay(rng, SOSH[1])))
        for job, hourly in self.jobs:
            if not job.competitive:
                spells.append(_Spell("Wage subsidy", job.start, job.end, None))
                continue
            if rng.random() < SYKP:
                sick = job.start + dt.timedelta(days=rng.randrange((job.end - job.start).days + 1))
                end = min(job.end, sick + dt.timedelta(days=rng.randrange(14, 60)))
                spells.append(_Spell("Sickness", sick, end, _wages(job, hourly)))
            if job.end < self.end and rng.random() < DAGP[0]:
                end = job.end + dt.timedelta(days=rng.randrange(30, 120))
                spells.append(_Spell("Unemployment", job.end, end, _pay(rng, DAGP[1])))
        if rng.random() < TILT:
            start = story.randomized + dt.timedelta(days=rng.randrange(30, 500))
            end = start + relativedelta(months=rng.randint(2, 6), days=-1)
            spells.append(_Spell("Labour-market", start, end, None))
        unique = {
            (s.benefit, s.start): _Spell(s.benefit, s.start, self._clip(s.end), s.monthly)
            for s in spells
            if s.start < self.end
        }
        self.spells = sorted(unique.values(), key=_start)

    def _specialist_care(self, rng: random.Random) -> None:
        """A course of substance-use treatment around randomization (outpatient contacts, for
        some an inpatient stay) and shorter courses after relapses, all with the participant's
        F1x diagnosis; mental health care for some; somatic care now and then."""
        story, add = self.story, self.episodes.append
        main = _pick(rng, SUBSTANCE)
        begin = max(self.start, story.randomized - dt.timedelta(days=rng.randrange(300)))
        courses = [(begin, story.randomized + dt.timedelta(days=rng.randrange(60, 540)))]
        for start in _events(rng, courses[0][1], self.end, RELAPSES_PER_YEAR):
            courses.append((start, start + dt.timedelta(days=rng.randrange(30, 90))))
        for start, end in courses:
            for day in _events(rng, start, min(end, self.end), 365 / TSB_DAYS):
                add(_Episode(day, 0, "Outpatient", "Substance", main, None))
            admitted = start + dt.timedelta(days=rng.randrange((end - start).days))
            if rng.random() < INPATIENT and admitted < self.end:
                add(_Episode(admitted, rng.randrange(14, 90), "Inpatient", "Substance", main, None))
        if rng.random() < MENTAL_HEALTH:
            start = self.start + dt.timedelta(days=rng.randrange((self.end - self.start).days))
            end = start + dt.timedelta(days=rng.randrange(90, 365))
            mental = rng.choice(MENTAL)
            for day in _events(rng, start, min(end, self.end), 6):
                level = "Day" if rng.random() < 0.1 else "Outpatient"
                add(_Episode(day, 0, level, "Adult mental", mental, main))
        for day in _events(rng, self.start, self.end, SOMATIC_PER_YEAR):
            stay = rng.randrange(1, 8) if rng.random() < 0.15 else 0
            level = "Inpatient" if stay else "Outpatient"
            secondary = main if rng.random() < 0.4 else None
            add(_Episode(day, stay, level, "Somatic", rng.choice(SOMATIC), secondary))
        self.episodes.sort(key=lambda e: e.start)

    def _primary_care(self, rng: random.Random) -> None:
        """General practitioner, out-of-hours service and physiotherapy, each at its own rate;
        municipal services for some."""
        for service, per_year in PRIMARY:
            if service == "Municipal" and rng.random() >= MUNICIPAL:
                continue
            for day in _events(rng, self.start, self.end, per_year):
                kind = _pick(rng, CONTACT_TYPES)
                diagnosis = None if rng.random() < NO_DIAGNOSIS else rng.choice(ICPC)
                self.contacts.append(_Contact(day, service, kind, diagnosis))
        self.contacts.sort(key=lambda c: c.day)

    def _clip(self, end: dt.date) -> dt.date:
        """An end date, no later than a death."""
        return min(end, self.end) if self.end < self.until else end


_FAR = dt.date(2999, 12, 31)  # the end of a spell that goes on


def _events(rng: random.Random, start: dt.date, end: dt.date, per_year: float) -> Iterator[dt.date]:
    """The days of a Poisson process of `per_year` events from `start` to before `end`."""
    day = start + dt.timedelta(days=rng.expovariate(per_year) * 365)
    while day < end:
        yield day
        day += dt.timedelta(days=rng.expovariate(per_year) * 365)


def _pick(rng: random.Random, pairs: Sequence[tuple[str, float]]) -> str:
    values, weights = zip(*pairs, strict=True)
    return rng.choices(values, weights)[0]


def _job(rng: random.Random, start: dt.date, competitive: bool, mean_days: int) -> Job:
    """A job no assessment asked about."""
    occupation, styrk = rng.choice(OCCUPATIONS)
    end = start + dt.timedelta(days=7 + rng.expovariate(1 / mean_days))
    return Job(start, end, competitive, rng.choice(HOURS), _orgnr(rng), occupation, styrk)


def _orgnr(rng: random.Random) -> str:
    """A nine-digit organisation number that python-stdnum refuses: no employer's."""
    while True:
        number = str(rng.randrange(8 * 10**8, 10**9))
        if not organisation_number.is_valid(number):
            return number


def _ended(job: Job, end: dt.date) -> Job:
    return Job(job.start, end, job.competitive, job.hours, job.employer, job.occupation, job.styrk)


def _start(item: Job | _Spell) -> dt.date:
    return item.start


def _pay(rng: random.Random, bounds: tuple[int, int]) -> float:
    return float(rng.randrange(*bounds))


def _wages(job: Job, hourly: float) -> float:
    return round(job.hours * WEEKS_PER_MONTH * hourly, 2)


def _months(start: dt.date, end: dt.date) -> Iterator[tuple[dt.date, float]]:
    """Each month from `start` to `end` (both included) with the share of its days inside."""
    month = start.replace(day=1)
    while month <= end:
        following = month + relativedelta(months=1)
        days = (min(end, following - dt.timedelta(days=1)) - max(start, month)).days + 1
        yield month, days / (following - month).days
        month = following


# -- rows in a layout's columns -----------------------------------------------------------------


class _Columns:
    """A layout's columns by concept (a unique column without one is the register's own row id,
    a further column of the diagnosis's pattern a secondary diagnosis), and its codes by English
    label. A concept the layout lacks stays out of its rows."""

    def __init__(self, layout: RegisterLayout) -> None:
        self.layout = layout
        diagnosis = layout.column("diagnosis")
        pattern = layout.variable(diagnosis).pattern if diagnosis else None
        self.concept: dict[str, str | None] = {}
        for v in layout.variables:
            if v.concept is None and v.name in layout.unique:
                self.concept[v.name] = "id"
            elif v.concept is None and pattern is not None and v.pattern == pattern:
                self.concept[v.name] = "secondary"
            else:
                self.concept[v.name] = v.concept
        self.ids = iter(range(100_001, 10**12))
        self.codes: dict[tuple[str, str], str | None] = {}

    def code(self, concept: str, english: str) -> str | None:
        if (concept, english) not in self.codes:
            column = self.layout.column(concept)
            codes = self.layout.variable(column).codes if column else []
            found = [c.code for c in codes if (c.label.en or "").startswith(english)]
            if column and not found:
                raise LookupError(f"{self.layout.source}: {column} has no code '{english}...'")
            self.codes[concept, english] = found[0] if found else None
        return self.codes[concept, english]

    def row(self, values: Mapping[str, Value]) -> Row:
        return {
            name: str(next(self.ids)) if c == "id" else values.get(c) if c else None
            for name, c in self.concept.items()
        }


def _rows(layout: RegisterLayout, lives: Sequence[_Life]) -> Iterator[Row]:
    columns = _Columns(layout)
    makers: dict[str, Callable[[_Columns, _Life], Iterator[Row]]] = {
        "relationship": _relationships,
        "month": _income,
        "spell": _spells,
        "episode": _episodes,
        "contact": _contacts,
    }
    for life in lives:
        yield from makers[layout.unit](columns, life)


def _relationships(columns: _Columns, life: _Life) -> Iterator[Row]:
    ordinary = columns.code("relationship_type", "Ordinary")
    for job, _ in life.jobs:
        yield columns.row(
            {
                "serial": life.serial,
                "employer": job.employer,
                "relationship_type": ordinary,
                "start": job.start,
                "end": job.end if job.end <= life.until else None,
                "position_percent": round(job.hours / FULL_TIME * 100, 1),
                "hours_per_week": float(job.hours),
                "occupation": job.styrk,
            }
        )


def _income(columns: _Columns, life: _Life) -> Iterator[Row]:
    """Wages by employer and month, and the benefits NAV pays by month: one row per person,
    month, payer and kind of income."""
    wages, benefit = columns.code("income_type", "Wages"), columns.code("income_type", "Public")
    amounts: dict[tuple[dt.date, str, str | None], float] = {}
    for job, hourly in life.jobs:
        for month, share in _months(job.start, min(job.end, life.until)):
            key = (month, job.employer, wages)
            amounts[key] = amounts.get(key, 0.0) + _wages(job, hourly) * share
    for spell in life.spells:
        if spell.monthly is None or spell.benefit in NOT_IN_A_ORDNINGEN:
            continue
        for month, share in _months(spell.start, min(spell.end, life.until)):
            key = (month, life.payer, benefit)
            amounts[key] = amounts.get(key, 0.0) + spell.monthly * share
    for (month, payer, kind), amount in amounts.items():
        yield columns.row(
            {
                "serial": life.serial,
                "month": month,
                "employer": payer,
                "income_type": kind,
                "amount": round(amount, 2),
            }
        )


def _spells(columns: _Columns, life: _Life) -> Iterator[Row]:
    for spell in life.spells:
        amount = None
        if spell.monthly is not None:
            paid = _months(spell.start, min(spell.end, life.until))
            amount = round(sum(spell.monthly * share for _, share in paid), 2)
        yield columns.row(
            {
                "serial": life.serial,
                "benefit_type": columns.code("benefit_type", spell.benefit),
                "start": spell.start,
                "end": spell.end if spell.end <= life.until else None,
                "amount": amount,
            }
        )


def _episodes(columns: _Columns, life: _Life) -> Iterator[Row]:
    for e in life.episodes:
        end = e.start + dt.timedelta(days=e.days)
        yield columns.row(
            {
                "serial": life.serial,
                "start": e.start,
                "end": end if end <= life.until else None,
                "level_of_care": columns.code("level_of_care", e.level),
                "specialty": columns.code("specialty", e.specialty),
                "diagnosis": e.diagnosis,
                "secondary": e.secondary,
            }
        )


def _contacts(columns: _Columns, life: _Life) -> Iterator[Row]:
    for c in life.contacts:
        yield columns.row(
            {
                "serial": life.serial,
                "start": c.day,
                "service": columns.code("service", c.service),
                "contact_type": columns.code("contact_type", c.kind),
                "diagnosis": c.diagnosis,
            }
        )


def _order(layout: RegisterLayout) -> Callable[[Row], tuple[str, dt.date]]:
    """Rows by serial number, then by the first period date, as registers sort them."""
    dated = layout.period[0] if layout.period else None

    def order(row: Row) -> tuple[str, dt.date]:
        when = row[dated] if dated else None
        return str(row[layout.key]), when if isinstance(when, dt.date) else dt.date.min

    return order


# -- deliberate errors --------------------------------------------------------------------------


def _add_errors(
    layout: RegisterLayout,
    rows: list[Row],
    period: tuple[dt.date, dt.date],
    known: set[str],
    rng: random.Random,
) -> list[tuple[Row, str, str]]:
    """One row of each kind of error the layout allows, each in a row of its own: a serial
    number not in the key, a code not in the layout, a row wholly before the period (its
    period date, and its end where it has one), and a copy of a row right after it (the copy
    is the error). Returns each erroneous row with its
    column and kind. The rows are chosen in the order the participants' lives were simulated,
    not by serial number, so that a linkage key's random serial numbers change where the
    errors are, not which rows hold them."""
    coded = [v for v in layout.variables if v.type == "code" and v.codes]
    dated = [v for v in layout.variables if v.name in layout.period]
    kinds = [
        k
        for k in ERROR_KINDS
        if (k != "invalid-code" or coded) and (k != "outside-period" or dated)
    ]
    if len(rows) < len(kinds):
        raise ValueError(f"{layout.source}: {len(rows)} rows cannot hold {len(kinds)} errors")
    marked: list[tuple[Row, str, str]] = []
    for row, kind in zip(rng.sample(rows, len(kinds)), kinds, strict=True):
        match kind:
            case "unknown-serial":
                column = layout.key
                row[column] = _unknown(str(row[column]), known, rng)
            case "invalid-code":
                variable = rng.choice(coded)
                column = variable.name
                row[column] = _foreign(rng, {c.code for c in variable.codes})
            case "outside-period":
                variable = rng.choice(dated)
                column = variable.name
                before = period[0] - relativedelta(months=rng.randint(1, 12))
                row[column] = before.replace(day=1) if variable.type == "month" else before
                end = layout.column("end")
                if end is not None and column == layout.column("start"):
                    # a relationship, episode or spell is in the period when it overlaps it:
                    # this one ends before the period too
                    row[end] = before + dt.timedelta(days=rng.randint(0, 14))
            case _:
                column = "+".join(layout.unique)
                at = next(n for n, r in enumerate(rows) if r is row)
                row = dict(row)
                rows.insert(at + 1, row)
        marked.append((row, column, kind))
    return marked


def _unknown(serial: str, known: set[str], rng: random.Random) -> str:
    """A serial number like `serial` (its digits redrawn) that the key does not hold."""
    while True:
        drawn = "".join(str(rng.randrange(10)) if ch.isdigit() else ch for ch in serial)
        if drawn not in known and drawn != serial:
            return drawn if any(ch.isdigit() for ch in serial) else drawn + "0"


def _foreign(rng: random.Random, codes: set[str]) -> str:
    """A code of the same kind as `codes` (digits or letters) that the layout lacks."""
    numeric = all(c.isdigit() for c in codes)
    while True:
        drawn = str(rng.randrange(100)) if numeric else "".join(rng.choices("XYZQ", k=4))
        if drawn not in codes:
            return drawn


# -- writing -------------------------------------------------------------------------------------


def _text(kind: str, value: Value) -> str:
    """A value as a register's CSV file writes it."""
    if value is None:
        return ""
    if isinstance(value, dt.date):
        return f"{value:%Y-%m}" if kind == "month" else f"{value:%d.%m.%Y}"
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".").replace(".", ",")
    return value


def _write_statistics(delivery: Delivery, path: Path) -> None:
    """Stata, SPSS or SAS transport through pyreadstat: numbers as numbers, dates as dates,
    months and codes as text, the Norwegian labels as variable labels."""
    variables = delivery.layout.variables
    frame = pd.DataFrame(
        {
            v.name: pd.Series(
                [_typed(v.type, row[v.name]) for row in delivery.rows],
                dtype="float64" if v.type == "number" else "object",
            )
            for v in variables
        }
    )
    labels: list[str | None] = [v.label.nb for v in variables]
    match path.suffix.lower():
        case ".dta":
            pyreadstat.write_dta(frame, str(path), column_labels=labels)
        case ".sav":
            pyreadstat.write_sav(frame, str(path), column_labels=labels)
        case _:
            pyreadstat.write_xport(frame, str(path), column_labels=labels, file_format_version=8)


def _typed(kind: str, value: Value) -> Value:
    if kind == "number":
        return float("nan") if value is None else value
    if kind == "date":
        return value
    return "" if value is None else _text(kind, value)
