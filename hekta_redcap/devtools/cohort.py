"""A synthetic HEKTA PÅ JOBB cohort: REDCap import rows that look like the trial's data.

Tests, benchmarks and the demo need a trial's worth of data that REDCap accepts, the same every
time. What a field may hold comes from the definitions: its type, choice codes, validation type
and min/max, and its branching logic, evaluated with `logic.evaluate` on the answers before it
so that hidden fields stay blank (AUDIT's skip rules are branching too). What the definitions
cannot say comes from a small simulation of the trial: consent, then 1:1 block randomisation (IPS
or self-help) over two years of recruitment ending before `today`; baseline and the schedule's
contact follow-ups on their events, inside their windows (some missed, some not yet due); a few
withdrawals, losses to follow-up and deaths in `end_of_study`; and jobs, each a repeat instance
of `job_episode` at the first assessment after it started (more and longer competitive jobs in
the IPS group). A questionnaire's answers follow one latent level per participant and
assessment, which improves over follow-up, so that scores spread as they would.

Identifiers are obviously fake: placeholder names, phone numbers in the Norwegian
9xxxxxxx/4xxxxxxx pattern, addresses at example.com, and identity and organisation numbers whose
mod-11 check digit is wrong, so that none can be a real person's or employer's. With
`synthetic_ids=True` the identity numbers are instead valid in Skatteetaten's synthetic test
population (80 added to the month: no one's, yet accepted where `HEKTA_ALLOW_SYNTHETIC_IDS` is
set), for the register linkage list. Most participants consent to register linkage.

What the rows tell only in part (jobs never reported, exact dates, how participation ended) is
kept in `Cohort.stories`, from which `devtools.registers` makes the register deliveries.

With `errors=True` a handful of deliberate data errors that REDCap still accepts on import are
added, each listed in `Cohort.errors` under the name of the validation rule that should find it
(`ERROR_KINDS`). The same arguments (`today` included) give the same rows.

    >>> cohort = generate(load_project("hekta"), 300, seed=1)
    >>> cohort.load(redcap.Project(url, token))
    300
"""

from __future__ import annotations

import datetime as dt
import random
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import cast

import redcap
from stdnum.no import fodselsnummer

from hekta_redcap.definitions.instruments import Field, Instrument
from hekta_redcap.definitions.study import Project
from hekta_redcap.followup.schedule import add
from hekta_redcap.redcap import logic
from hekta_redcap.redcap.fieldtypes import checkbox_column, parse_bound
from hekta_redcap.redcap.names import EVENT, REPEAT_INSTANCE, REPEAT_INSTRUMENT

# The validation rule (hekta_redcap.validation) that finds each kind of deliberate error.
ERROR_KINDS = ("date-order", "required", "skip-violation", "range", "missing-code")

# Forms the simulation treats apart: consent is given (the cohort holds participants only),
# jobs and the end of study follow each participant's story, and answers on the count forms
# (days of use, service contacts) are mostly zero.
CONSENT, JOBS, END = "consent", "job_episode", "end_of_study"
REGISTERS_CONSENT = "consent_registers"
COUNT_FORMS = ("substance_days", "service_use")

RECRUITMENT_DAYS = 730  # two years of randomisation, ending a week before `today`
RECALL_DAYS = 182  # baseline asks about work and benefits in the last 6 months
NOT_ENTERED = ("@READONLY", "@HIDDEN", "@CALC")  # written by software, not by a person
OPTIONAL_ANSWERED = 0.9  # how often an optional question is answered (free-text notes: never)

# How participation ends other than by completing follow-up (end_of_study labels), and how often.
FATES = (("Withdrawn", 0.04), ("Deceased", 0.007), ("Lost", 0.015))
MISSED_FOLLOWUP = 0.09
REGISTERS_DECLINED = 0.08  # how often a participant declines register linkage
# Jobs from randomisation on, by arm (IPS or not): starts per year, mean length in days and the
# share of competitive jobs (the register deliveries go on where the assessments stop).
JOBS_AFTER_RANDOMISATION = {True: (0.9, 210, 0.8), False: (0.5, 110, 0.45)}
SYNTHETIC_MONTH = 80  # Skatteetaten's synthetic population: 80 added to the month
# How unevenly the sites (a stratification field's codes) recruit: the first half again what
# the second does, twice what the third does, and so on.
SITE_WEIGHTS = tuple(2 / (k + 1) for k in range(1, 100))

# Obviously fake identifiers and job details.
FIRST_NAMES = "Ola Kari Per Lise Nils Anne Ali Maria Jonas Ingrid Test Demo".split()
LAST_NAMES = "Nordmann Testesen Eksempelsen Fiktivsen Demosen Provesen Dummysen Prototyp".split()
EMPLOYERS = "Eksempel Fiktiv Prove Demo Testhus Plassholder".split()
TRADES = "Bygg Lager Kafe Transport Renhold Butikk".split()
OCCUPATIONS = (  # (occupation, STYRK-08 code)
    ("Lagermedarbeider", "4321"),
    ("Butikkmedarbeider", "5223"),
    ("Renholder", "9112"),
    ("Kokk", "5120"),
    ("Servitør", "5131"),
    ("Sjåfør", "8322"),
    ("Tømrer", "7115"),
    ("Hjelpearbeider bygg", "9313"),
    ("Kundeservicemedarbeider", "4222"),
    ("Vaktmester", "5153"),
)
STAFF_INITIALS = ("AB", "KN", "TS", "MH", "EL")
CONSENT_VERSIONS = ((dt.date(2025, 3, 1), "2.0 av 01.03.2025"), (dt.date.min, "1.0 av 15.01.2024"))
PHRASES = ("Annet", "Varierende", "Midlertidig ordning", "Se merknad")
HOURS = (7.5, 10, 15, 20, 22.5, 30, 37.5)
ID_WEIGHTS = (3, 7, 6, 1, 8, 9, 4, 5, 2)  # first check digit of an 11-digit identity number
ORG_WEIGHTS = (3, 2, 7, 6, 5, 4, 3, 2)  # check digit of a 9-digit organisation number


@dataclass(frozen=True)
class Job:
    """A job as it happened (the rows hold only the jobs reported at an assessment, some with a
    vague start date)."""

    start: dt.date
    end: dt.date  # may lie after today: the job goes on
    competitive: bool
    hours: float
    employer: str  # organisation number (wrong check digit)
    occupation: str
    styrk: str  # STYRK-08 occupation code


@dataclass(frozen=True)
class Story:
    """A participant as the simulation knows them: what register deliveries are made from."""

    record: str
    ips: bool
    randomized: dt.date
    last_visit: dt.date  # jobs are simulated up to here
    jobs: tuple[Job, ...]
    fate: str  # an end_of_study status label ("Completed", "Withdrawn", ...), "" in follow-up
    fate_date: dt.date | None
    national_id: str
    consents_to_registers: bool


@dataclass(frozen=True)
class DataError:
    """A deliberate data error: its cell, and the validation rule that should find it."""

    record: str
    event: str
    instance: int | None
    field: str
    what: str


# Randomizes one record through REDCap's module and returns the group it was given.
Randomize = Callable[[str], str]
# Gives the group the module will allocate next to a participant with these strata values.
Allocate = Callable[[Mapping[str, str]], str]


@dataclass
class Cohort:
    """Flat import rows (grouped by record), the deliberate errors in them, the record ids of
    the participants in enrolment order, and each one's allocated group."""

    rows: list[dict[str, str]]
    errors: list[DataError]
    participants: list[str]
    record_id: str = "record_id"
    target: str = "rand_group"
    groups: dict[str, str] = field(default_factory=dict)
    stories: dict[str, Story] = field(default_factory=dict)

    def load(
        self, client: redcap.Project, batch: int = 500, randomize: Randomize | None = None
    ) -> int:
        """Import the rows `batch` records at a time, so that no record is split across two
        imports; returns the number of records REDCap reports imported. With `randomize`, the
        allocation is REDCap's module's: the rows go in without the target field, then each
        participant is randomized in enrolment order, and the module's group must be the one
        the cohort was simulated with (`generate(allocate=...)`)."""
        rows = self.rows
        if randomize is not None:
            rows = [{k: v for k, v in row.items() if k != self.target} for row in rows]
        by_record: dict[str, list[dict[str, str]]] = {}
        for row in rows:
            by_record.setdefault(row[self.record_id], []).append(row)
        records = list(by_record.values())
        count = 0
        for start in range(0, len(records), batch):
            chunk = [row for rows in records[start : start + batch] for row in rows]
            count += int(client.import_records(chunk)["count"])
        if randomize is not None:
            self._randomize(randomize)
        return count

    def _randomize(self, randomize: Randomize) -> None:
        """Each participant randomized in enrolment order, checked against the simulation."""
        for record in self.participants:
            group = randomize(record)
            if group != self.groups[record]:
                raise RuntimeError(
                    f"record {record}: the module allocated {group}, the cohort was simulated "
                    f"with {self.groups[record]} (another allocation table?)"
                )


def generate(
    project: Project,
    participants: int,
    *,
    seed: int = 1,
    errors: bool = True,
    today: dt.date | None = None,
    first: int = 1,
    allocate: Allocate | None = None,
    synthetic_ids: bool = False,
) -> Cohort:
    """A cohort of `participants` with record ids `first`, `first + 1`, ... (the project must
    have a schedule: its anchor and follow-ups drive the dates). Groups come from `allocate`
    (asked in enrolment order with each participant's strata values, as REDCap's module will
    be), else from the cohort's own permuted blocks. `synthetic_ids`: identity numbers valid in
    Skatteetaten's synthetic population, for the register linkage list."""
    builder = _Builder(project, random.Random(seed), today or dt.date.today(), synthetic_ids)
    people = builder.people(participants, first, allocate)
    rows = [row for person in people for row in builder.rows(person)]
    found = builder.add_errors(rows) if errors else []
    groups = {p.record: p.answers[builder.target] for p in people}
    stories = {p.record: builder.story(p) for p in people}
    return Cohort(
        rows,
        found,
        [p.record for p in people],
        project.study.record_id,
        builder.target,
        groups,
        stories,
    )


# -- what a field may hold, from the definitions ------------------------------------------------


class _Item:
    """One field a person enters, with what answering it needs worked out once (a benchmark
    cohort answers millions of fields)."""

    __slots__ = (
        "answer",
        "branching",
        "codes",
        "columns",
        "exclusive",
        "field",
        "form",
        "high",
        "kind",
        "low",
        "name",
        "rate",
        "refs",
    )

    def __init__(
        self,
        instrument: Instrument,
        f: Field,
        today: dt.date,
        rng: random.Random,
    ) -> None:
        self.field, self.name, self.form = f, f.name, instrument.form
        if f.type in ("yesno", "truefalse"):
            self.codes: tuple[str, ...] = ("0", "1")
        else:
            self.codes = tuple(c.code for c in instrument.choices_of(f))
        checkbox = f.type == "checkbox"
        self.columns = tuple(checkbox_column(f.name, c) for c in self.codes) if checkbox else ()
        self.branching = logic.parse(f.branching) if f.branching else None
        self.refs = tuple(dict.fromkeys(logic.references(self.branching))) if self.branching else ()
        exclusive = re.search(r"@NONEOFTHEABOVE='?([^'\s]+)", f.annotation or "")
        self.exclusive = exclusive.group(1) if exclusive else None
        self.low, self.high = _bounds(f, today)
        self.kind = _kind(f, self)
        self.rate = 1.0 if f.required else 0.0 if f.type == "notes" else OPTIONAL_ANSWERED
        self.answer = _answerer(self, rng)

    @property
    def numeric(self) -> bool:
        return self.kind in ("count", "scale")


def _kind(f: Field, item: _Item) -> str:
    """How an answer is made up: a code, ticks, a date, an e-mail address, a count (mostly
    small), a number on a scale, or text."""
    validation = f.validation or ""
    if item.columns:
        return "ticks"
    if item.codes:
        return "code"
    if validation.startswith(("date", "email")):
        return validation.split("_")[0]
    if f.type == "slider" or validation == "integer" or validation.startswith("number"):
        return "count" if item.high is None or item.form in COUNT_FORMS else "scale"
    return "text"


def _bounds(f: Field, today: dt.date) -> tuple[float | None, float | None]:
    """A numeric field's min and max (a slider runs from 0 to 100, as in REDCap)."""
    if f.type == "slider":
        return 0.0, 100.0
    validation = f.validation or ""
    if validation != "integer" and not validation.startswith("number"):
        return None, None
    low, high = (
        None if bound is None else float(cast(float, parse_bound(validation, bound, today)))
        for bound in (f.min, f.max)
    )
    return low, high


Answer = Callable[[float, dt.date], str]


def _answerer(item: _Item, rng: random.Random) -> Answer:
    """How to answer a field from the definitions alone, given the latent level (0-1) and the
    assessment's date: codes and numbers around the level, counts mostly zero, dates on the
    assessment's day. (A checkbox's ticks are the builder's.)"""
    random_, codes, top = rng.random, item.codes, len(item.codes) - 1
    low, high = item.low or 0.0, item.high
    validation = item.field.validation or "integer"

    def code(latent: float, _: dt.date) -> str:
        share = latent + (random_() + random_() - 1.0) * 0.35
        return codes[round(top * (0.0 if share < 0.0 else 1.0 if share > 1.0 else share))]

    def count(latent: float, _: dt.date) -> str:
        if random_() > 0.15 + 0.5 * latent:
            return "0"
        if high is None:
            return str(round(rng.expovariate(1 / (1 + 5 * latent))))
        return str(round(high * latent * random_() ** 2))

    def scale(latent: float, _: dt.date) -> str:
        share = _clip(latent + rng.gauss(0, 0.15))
        return _number(low + ((high or 0.0) - low) * share, validation)

    answers: dict[str, Answer] = {
        "code": code,
        "count": count,
        "scale": scale,
        "date": lambda _, visit: visit.isoformat(),
        "datetime": lambda _, visit: f"{visit.isoformat()} 12:00",
        "email": lambda _, __: f"kontakt{rng.randrange(10**4)}@example.com",
    }
    return answers.get(item.kind, lambda _, __: rng.choice(PHRASES))


def _clip(value: float) -> float:
    return min(1.0, max(0.0, value))


def _number(value: float, validation: str) -> str:
    if validation == "integer":
        return str(round(value))
    return f"{value:.1f}".removesuffix(".0")


def _wrong_check_digit(rng: random.Random, digits: str, weights: tuple[int, ...]) -> str:
    """A digit that is not the mod-11 check digit of `digits`, so the number is invalid."""
    check = (11 - sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11) % 11
    return rng.choice([str(d) for d in range(10) if d != check])


def synthetic_national_id(rng: random.Random, born: dt.date) -> str:
    """An identity number of Skatteetaten's synthetic test population: the birth date with 80
    added to the month (no real person's month), an individual number of the birth year's
    century and both check digits valid (python-stdnum's; an individual number whose check
    digit would be 10 has none, so another is drawn)."""
    low = 0 if born.year < 2000 else 500  # individual numbers 000-499: the 1900s
    while True:
        month = born.month + SYNTHETIC_MONTH
        digits = f"{born:%d}{month:02d}{born:%y}{rng.randrange(low, low + 500):03d}"
        first = fodselsnummer.calc_check_digit1(digits)
        second = fodselsnummer.calc_check_digit2(digits + first)
        if first != "10" and second != "10":
            return digits + first + second


# -- the trial over time ------------------------------------------------------------------------


@dataclass
class _Person:
    record: str
    ips: bool
    rand: dt.date
    consent: dt.date
    severity: float  # the latent level of the questionnaire answers at baseline
    visits: dict[str, dt.date] = field(default_factory=dict)  # event -> assessment date
    jobs: list[Job] = field(default_factory=list)
    fate: str = ""  # an end_of_study status label, or "" while in follow-up
    fate_date: dt.date | None = None
    answers: dict[str, str] = field(default_factory=dict)  # the same at every assessment


class _Builder:
    def __init__(
        self, project: Project, rng: random.Random, today: dt.date, synthetic_ids: bool
    ) -> None:
        self.project, self.rng, self.today = project, rng, today
        self.synthetic_ids = synthetic_ids
        self.shown: dict[tuple[object, ...], bool] = {}  # see _shown
        self.codes: dict[tuple[str, str], str] = {}  # see code
        study = project.study
        schedule = study.schedule
        if schedule is None or schedule.anchor_event is None:
            raise ValueError(f"project '{project.name}' has no schedule to date a cohort by")
        self.record_id, self.sex = study.record_id, study.sex
        self.anchor, self.baseline = schedule.anchor_field, schedule.anchor_event
        self.followups = [f for f in schedule.followups if f.contact]
        self.missing_codes = [m.code for m in study.missing_data_codes]
        # Fields some branching logic reads: answering them changes what else a form shows.
        self.referenced = {
            ref.field
            for _, f in project.fields()
            if f.branching
            for ref in logic.references(logic.parse(f.branching))
            if ref.field
        }
        self.items = {
            form: [
                _Item(instrument, f, today, rng)
                for f in instrument.fields
                if f.type not in ("descriptive", "calc", "file")
                and not any(tag in (f.annotation or "") for tag in NOT_ENTERED)
            ]
            for form, instrument in project.instruments.items()
        }
        self.fields = {i.name: i for items in self.items.values() for i in items}
        repeating = {u.form for u in study.instruments if u.repeating}
        self.event_forms = {  # the forms filled once per event (end_of_study only at the end)
            event.unique_name: [
                form
                for form in project.forms
                if event.unique_name in project.events_of(form) and form not in repeating
            ]
            for event in study.events
        }
        design = study.randomization
        self.target = design.target if design else "rand_group"
        self.ips = self.code(self.target, "IPS")
        self.control = next(c for c in self.fields[self.target].codes if c != self.ips)
        # The stratification fields, each recruiting unevenly across its codes, as sites do.
        self.strata = [self.fields[s.field] for s in design.strata if s.field] if design else []

    def code(self, name: str, english: str) -> str:
        """The code of the choice whose English label starts with `english` (the simulation
        names answers by meaning, so it never repeats a code from the definitions)."""
        key = (name, english)
        if key not in self.codes:
            item = self.fields[name]
            instrument = self.project.instruments[item.form]
            matches = [
                choice.code
                for choice in instrument.choices_of(item.field)
                if instrument.choice_label(choice, "en").startswith(english)
            ]
            if not matches:
                raise LookupError(f"{name} has no choice labelled '{english}...'")
            self.codes[key] = matches[0]
        return self.codes[key]

    # -- people -------------------------------------------------------------------------------

    def people(self, count: int, first: int, allocate: Allocate | None) -> list[_Person]:
        rng = self.rng
        start = self.today - dt.timedelta(days=RECRUITMENT_DAYS + 7)
        days = sorted(rng.randrange(RECRUITMENT_DAYS) for _ in range(count))
        blocks = self._allocation(count) if allocate is None else []
        people = []
        for n, day in enumerate(days):
            strata = {
                item.name: rng.choices(item.codes, SITE_WEIGHTS[: len(item.codes)])[0]
                for item in self.strata
            }
            group = allocate(strata) if allocate is not None else blocks[n]
            rand = start + dt.timedelta(days=day)
            consent = rand - dt.timedelta(days=rng.randrange(15))
            person = _Person(
                str(first + n), group == self.ips, rand, consent, rng.betavariate(2.2, 2.2)
            )
            self._follow(person)
            self._work(person)
            self._identify(person, group)
            person.answers.update(strata)
            people.append(person)
        return people

    def _allocation(self, count: int) -> list[str]:
        """Permuted blocks of 4 or 6, as in a trial's randomisation list: close to 1:1 at any
        point of recruitment."""
        groups: list[str] = []
        while len(groups) < count:
            block = [self.ips, self.control] * self.rng.choice((2, 3))
            self.rng.shuffle(block)
            groups += block
        return groups[:count]

    def _follow(self, person: _Person) -> None:
        """The assessments a participant attends, and how their participation ends."""
        rng, today = self.rng, self.today
        baseline = person.rand - dt.timedelta(days=rng.randrange(4))
        person.visits[self.baseline] = max(person.consent, baseline)
        windows = []  # (follow-up, target date, window opens, window closes)
        for followup in self.followups:
            target = add(person.rand, followup.target)
            windows.append(
                (followup, target, add(target, followup.open), add(target, followup.close))
            )
        over = windows[-1][3] if windows else person.rand  # the last window's close
        fate, stop = "", None
        draw = rng.random()
        for label, chance in FATES:
            if draw < chance:
                fate = label
                stop = person.rand + dt.timedelta(days=rng.randrange(14, 330))
                break
            draw -= chance
        if stop is not None and (stop >= today or (fate == "Lost" and over >= today)):
            fate, stop = "", None
        for followup, target, opens, closes in windows:
            low, high = (opens - target).days, (closes - target).days
            visit = target + dt.timedelta(days=round(rng.triangular(low, high, min(high, 10))))
            missed = rng.random() < MISSED_FOLLOWUP
            if visit < today and not missed and (stop is None or visit < stop):
                person.visits[followup.event] = visit
        if fate == "Lost":
            person.fate, person.fate_date = fate, over
        elif fate:
            person.fate, person.fate_date = fate, stop
        elif over < today:  # on the last follow-up's date, else when its window closed
            attended = [v for e, v in person.visits.items() if e != self.baseline]
            person.fate, person.fate_date = "Completed", max(attended, default=over)

    def _work(self, person: _Person) -> None:
        """Jobs from 6 months before baseline to the last assessment: after randomisation
        more, longer and more often competitive in the IPS group."""
        rng = self.rng
        baseline, last = person.visits[self.baseline], max(person.visits.values())
        if rng.random() < 0.3:
            begin = baseline - dt.timedelta(days=rng.randrange(14, RECALL_DAYS))
            self._job(person, begin, rng.random() < 0.5, 90)
        per_year, mean_days, competitive = JOBS_AFTER_RANDOMISATION[person.ips]
        begin = person.rand + dt.timedelta(days=rng.expovariate(per_year) * 365)
        while begin < last and len(person.jobs) < 5:
            job = self._job(person, begin, rng.random() < competitive, mean_days)
            begin = job.end + dt.timedelta(days=rng.expovariate(1 / 120))

    def _job(self, person: _Person, start: dt.date, competitive: bool, mean_days: int) -> Job:
        rng = self.rng
        length = dt.timedelta(days=7 + rng.expovariate(1 / mean_days))
        occupation, styrk = rng.choice(OCCUPATIONS)
        orgnr = f"{rng.randrange(8, 10)}{rng.randrange(10**7):07d}"
        orgnr += _wrong_check_digit(rng, orgnr, ORG_WEIGHTS)
        job = Job(start, start + length, competitive, rng.choice(HOURS), orgnr, occupation, styrk)
        person.jobs.append(job)
        return job

    def story(self, person: _Person) -> Story:
        return Story(
            person.record,
            person.ips,
            person.rand,
            max(person.visits.values()),
            tuple(person.jobs),
            person.fate,
            person.fate_date,
            person.answers["national_id"],
            person.answers.get(REGISTERS_CONSENT) == "1",
        )

    def _identify(self, person: _Person, group: str) -> None:
        """The answers that stay the same at every assessment: identity and background."""
        rng = self.rng
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        year = person.rand.year - rng.randrange(19, 62)
        born = dt.date(year, 1, 1) + dt.timedelta(days=rng.randrange(365))
        if self.synthetic_ids:
            national_id = synthetic_national_id(rng, born)
        else:
            digits = born.strftime("%d%m%y") + f"{rng.randrange(1000):03d}"
            wrong = _wrong_check_digit(rng, digits, ID_WEIGHTS)
            national_id = digits + wrong + str(rng.randrange(10))
        email = f"{first}.{last}{person.record}@example.com".lower()
        alternative = f"{rng.choice(FIRST_NAMES)} {last} (familie), {self._phone()}"
        person.answers = {
            self.record_id: person.record,
            "contact_first_name": first,
            "contact_last_name": last,
            "national_id": national_id,
            "contact_mobile": self._phone(),
            "contact_email": email if rng.random() < 0.6 else "",
            "contact_alternative": alternative if rng.random() < 0.4 else "",
            "do_not_contact": "1" if rng.random() < 0.03 else "0",
            self.anchor: person.rand.isoformat(),
            self.target: group,
            "rand_by": rng.choice(STAFF_INITIALS),
            "consent_date": person.consent.isoformat(),
            "consent_obtained_by": rng.choice(STAFF_INITIALS),
            "consent_version": next(v for d, v in CONSENT_VERSIONS if person.consent >= d),
            "demo_birth_year": str(year),
            "demo_ever_worked": "1" if rng.random() < 0.85 else "0",
            "demo_work_years": str(rng.randrange(max(1, person.rand.year - year - 17))),
            "demo_last_job_year": str(rng.randrange(year + 17, person.rand.year + 1)),
        }
        if self.sex is not None:
            male = rng.random() < 0.65
            person.answers[self.sex.field] = self.sex.male if male else self.sex.female
        eligible = (i.name for i in self.items[CONSENT] if i.field.type == "yesno")
        person.answers.update(dict.fromkeys(eligible, "1"))
        if REGISTERS_CONSENT in self.fields and rng.random() < REGISTERS_DECLINED:
            person.answers[REGISTERS_CONSENT] = "0"

    def _phone(self) -> str:
        return self.rng.choice("94") + f"{self.rng.randrange(10**7):07d}"

    # -- rows ---------------------------------------------------------------------------------

    def rows(self, person: _Person) -> Iterator[dict[str, str]]:
        """The participant's rows: one per attended event, each followed by the job episodes
        reported there."""
        previous = person.visits[self.baseline] - dt.timedelta(days=RECALL_DAYS)
        for number, (event, visit) in enumerate(person.visits.items()):
            answers = {**person.answers, **self._assessment(person, previous, visit)}
            if event == self.baseline:
                answers.update(self._end(person))
            improved = number * (0.08 if person.ips else 0.05)
            latent = max(0.0, person.severity - improved)
            forms = [f for f in self.event_forms[event] if f != END or person.fate]
            yield self._row(person.record, event, "", forms, answers, visit, latent)
            reported = [j for j in person.jobs if previous < j.start <= visit]
            for instance, job in enumerate(reported, start=1):
                answers = self._job_answers(person, job, visit)
                yield self._row(person.record, event, str(instance), [JOBS], answers, visit, latent)
            previous = visit

    def _row(
        self,
        record: str,
        event: str,
        instance: str,
        forms: list[str],
        answers: Mapping[str, str],
        visit: dt.date,
        latent: float,
    ) -> dict[str, str]:
        row = {
            self.record_id: record,
            EVENT: event,
            REPEAT_INSTRUMENT: forms[0] if instance else "",
            REPEAT_INSTANCE: instance,
        }
        for form in forms:
            level = _clip(latent + (self.rng.random() - 0.5) * 0.2)
            if self._fill(row, self.items[form], answers, visit, level):
                row[f"{form}_complete"] = "2"
        return row

    def _fill(
        self,
        row: dict[str, str],
        items: list[_Item],
        answers: Mapping[str, str],
        visit: dt.date,
        latent: float,
    ) -> bool:
        """Fill one form's shown fields in order (a field's branching sees the answers before
        it): the simulation's answer where it has one, else one from the definitions. Returns
        whether anything was entered."""
        before, get, shown = len(row), answers.get, self._shown
        resolve, random_ = self._resolver(row), self.rng.random
        for item in items:
            if item.branching is not None and not shown(item, resolve):
                continue
            value = get(item.name)
            if value is None:
                if item.rate < 1.0 and random_() >= item.rate:
                    continue
                if item.columns:
                    row.update(self._ticks(item))
                    continue
                value = item.answer(latent, visit)
            if value:
                row[item.name] = value
        return len(row) > before

    def _shown(self, item: _Item, resolve: Callable[[logic.Ref], str]) -> bool:
        """Whether branching shows a field. Logic depends only on the values it reads (and on
        `today`, fixed for the cohort), so each combination is evaluated once."""
        assert item.branching is not None
        key = (id(item.branching), *map(resolve, item.refs))
        shown = self.shown.get(key)
        if shown is None:
            result = logic.evaluate(item.branching, resolve, today=self.today)
            shown = self.shown[key] = logic.is_true(result)
        return shown

    @staticmethod
    def _resolver(row: dict[str, str]) -> Callable[[logic.Ref], str]:
        return lambda ref: logic.value_in(row, ref)

    def _ticks(self, item: _Item) -> dict[str, str]:
        """A checkbox's option columns: one to three options, or the exclusive one alone."""
        if item.exclusive is not None and self.rng.random() < 0.15:
            ticked = {item.exclusive}
        else:
            options = [c for c in item.codes if c != item.exclusive]
            ticked = set(self.rng.sample(options, min(len(options), self.rng.randint(1, 3))))
        return {col: str(int(c in ticked)) for c, col in zip(item.codes, item.columns, strict=True)}

    # -- what the simulation answers ------------------------------------------------------------

    def _assessment(self, person: _Person, previous: dt.date, visit: dt.date) -> dict[str, str]:
        """Work since the last assessment and now, and the dates of one assessment."""
        rng = self.rng
        worked = [j for j in person.jobs if j.start <= visit and j.end > previous]
        current = [j for j in worked if j.end > visit]
        if any(j.competitive for j in current):
            status = "In ordinary paid work"
        elif current:
            status = "On a NAV"
        else:
            labels = ("Unemployed", "Not working", "On sick", "Student", "Other")
            status = rng.choices(labels, (0.45, 0.25, 0.15, 0.08, 0.07))[0]
        answers = {
            "emp_date": visit.isoformat(),
            "contact_confirmed_date": visit.isoformat(),
            "emp_status": self.code("emp_status", status),
            "emp_hours_week": _number(min(80.0, sum(j.hours for j in current)), "number"),
            "emp_any_work_since": "1" if worked else "0",
            "emp_n_jobs": str(len(worked)),
            "emp_in_education": "1" if status == "Student" or rng.random() < 0.04 else "0",
        }
        if current:
            answers["benefit_main_income"] = self.code("benefit_main_income", "Wages")
        return answers

    def _end(self, person: _Person) -> dict[str, str]:
        if not person.fate or person.fate_date is None:
            return {}
        when = person.fate_date.isoformat()
        answers = {"eos_status": self.code("eos_status", person.fate), "eos_date": when}
        if person.fate == "Withdrawn":
            answers["eos_withdraw_date"] = when
            answers["eos_data_use"] = "0" if self.rng.random() < 0.1 else "1"
        if person.fate == "Deceased":
            answers["eos_death_date"] = when
        return answers

    def _job_answers(self, person: _Person, job: Job, visit: dt.date) -> dict[str, str]:
        """One job as reported at `visit`: no end date while it goes on; a vague start date
        entered as the 1st of its month or of January."""
        rng, code = self.rng, self.code
        precision = rng.choices(("Day", "Month", "Year"), (0.75, 0.18, 0.07))[0]
        start = job.start
        if precision != "Day":
            start = start.replace(day=1) if precision == "Month" else start.replace(month=1, day=1)
        ended = job.end <= visit
        hourly = rng.random() < 0.6
        pay = rng.randrange(175, 260) if hourly else rng.randrange(26, 46) * 1000
        found = "Yes" if person.ips and rng.random() < 0.7 else "No"
        source = "Job specialist" if person.ips and rng.random() < 0.3 else "Participant"
        if job.competitive:
            kind = rng.choices(("Permanent", "Temporary", "On call"), (0.4, 0.4, 0.2))[0]
            measure = "Wage subsidy" if rng.random() < 0.15 else "None"
        else:
            kind = rng.choice(("Temporary", "Other"))
            measure = rng.choice(("Work training", "Sheltered", "Other measure"))
        return {
            "job_start_date": start.isoformat(),
            "job_start_precision": code("job_start_precision", precision),
            "job_end_date": job.end.isoformat() if ended else "",
            "job_ongoing": "0" if ended else "1",
            "job_employer_name": f"{rng.choice(EMPLOYERS)} {rng.choice(TRADES)} AS",
            "job_employer_orgnr": job.employer,
            "job_occupation": job.occupation,
            "job_styrk": job.styrk,
            "job_type": code("job_type", kind),
            "job_competitive": "1" if job.competitive else "0",
            "job_nav_measure": code("job_nav_measure", measure),
            "job_hours_week": _number(job.hours, "number"),
            "job_pay": str(pay) if rng.random() < 0.85 else "",
            "job_pay_unit": code("job_pay_unit", "Per hour" if hourly else "Per month"),
            "job_found_with_ips": code("job_found_with_ips", found),
            "job_data_source": code("job_data_source", source),
        }

    # -- deliberate errors --------------------------------------------------------------------

    def add_errors(self, rows: list[dict[str, str]]) -> list[DataError]:
        """A handful of errors REDCap accepts on import, each on its own participant: one of
        each kind per 500 participants (at least one, where the rows allow it)."""
        participants = len({row[self.record_id] for row in rows})
        used: set[str] = set()
        found: list[DataError] = []
        for kind in ERROR_KINDS:
            order = list(range(len(rows)))
            self.rng.shuffle(order)
            wanted = 1 + participants // 500
            for index in order:
                row = rows[index]
                targets = [] if row[self.record_id] in used else self._targets(kind, row)
                if not targets:
                    continue
                name = self.rng.choice(targets)
                self._break(kind, row, name)
                used.add(row[self.record_id])
                instance = int(row[REPEAT_INSTANCE]) if row[REPEAT_INSTANCE] else None
                found.append(DataError(row[self.record_id], row[EVENT], instance, name, kind))
                wanted -= 1
                if not wanted:
                    break
        return found

    def _targets(self, kind: str, row: dict[str, str]) -> list[str]:
        """The fields of a row that can take an error of `kind` without changing what else the
        form shows (no field that branching reads)."""
        repeat = row[REPEAT_INSTRUMENT]

        def filled() -> Iterator[_Item]:
            for form, items in self.items.items():
                if f"{form}_complete" in row and (form == repeat or not repeat):
                    yield from (i for i in items if i.name in row and i.name not in self.referenced)

        match kind:
            case "date-order":
                return ["job_end_date"] if repeat == JOBS and "job_end_date" in row else []
            case "required":
                protected = {self.record_id, self.anchor, self.sex.field if self.sex else ""}
                return [
                    i.name
                    for i in filled()
                    if i.field.required
                    and i.branching is None
                    and not i.field.identifier
                    and i.name not in protected
                    and not repeat
                ]
            case "skip-violation":
                return self._hidden_by_skip_rules(row)
            case "range":
                return [i.name for i in filled() if i.numeric and i.high is not None]
            case "missing-code":
                return [
                    i.name
                    for i in filled()
                    if self.missing_codes
                    and i.field.type == "text"
                    and not i.field.validation
                    and i.field.required
                    and not i.field.identifier
                    and i.name != self.record_id
                ]
        raise ValueError(f"unknown kind of error: {kind}")

    def _hidden_by_skip_rules(self, row: dict[str, str]) -> list[str]:
        """Items that a scoring block's skip rule applies to in this row and that branching
        hides (so they are blank here)."""
        hidden = []
        resolve = self._resolver(row)
        for form, instrument in self.project.instruments.items():
            if instrument.scoring is None or f"{form}_complete" not in row:
                continue
            for score in instrument.scoring.scores:
                for rule in score.structural_zeros:
                    when = logic.evaluate(logic.parse(rule.when), resolve, today=self.today)
                    if logic.is_true(when):
                        hidden += [
                            name
                            for name in rule.items
                            if name not in row and not self._shown(self.fields[name], resolve)
                        ]
        return hidden

    def _break(self, kind: str, row: dict[str, str], name: str) -> None:
        item = self.fields[name]
        match kind:
            case "date-order":
                start = dt.date.fromisoformat(row["job_start_date"])
                row[name] = (start - dt.timedelta(days=self.rng.randint(10, 60))).isoformat()
            case "required":
                del row[name]
            case "skip-violation":
                row[name] = max(item.codes, key=float)
            case "range":
                low, high = item.low or 0.0, item.high or 0.0
                beyond = high + max(1.0, (high - low) / 2)
                row[name] = _number(beyond, item.field.validation or "integer")
            case "missing-code":
                row[name] = self.rng.choice(self.missing_codes)
