"""Study files: one per REDCap project, saying which instruments it collects, when, and how.

A study file names the project's arms and events, which instruments are collected at which
event, which repeat and which are surveys, the record-id field, and the follow-up schedule
(anchor date and windows), so that later steps compute schedules from data rather than code.
`load_project` reads a study file together with its instruments and any site-local overlays.

    >>> project = load_project("hekta")
    >>> project.study.record_id, project.forms[:2]
    ('record_id', ['consent', 'contact'])
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import field_validator

from hekta_redcap.core.errors import DefinitionError, Origin
from hekta_redcap.definitions import yamlfile
from hekta_redcap.definitions.generated import generate
from hekta_redcap.definitions.instruments import Field, Instrument, apply_overlay, load_instrument
from hekta_redcap.definitions.model import Node, Text

STUDIES_DIR = "studies"
FORMS_DIR = "forms"


class Arm(Node):
    num: int
    name: str


class Event(Node):
    """A REDCap event. REDCap derives the unique name from `name` and the arm; lint checks
    that `unique_name` is what REDCap will compute."""

    name: str
    unique_name: str
    arm: int = 1
    label: Text | None = None
    day_offset: int | None = None
    offset_min: int | None = None
    offset_max: int | None = None


class FormUse(Node):
    """An instrument in this project: where it is collected and how."""

    form: str
    events: list[str] = []
    repeating: bool = False
    repeat_label: str | None = None
    survey: bool = False


class Offset(Node):
    """A span of calendar months and/or days (months first; see docs/instruments.md)."""

    months: int = 0
    days: int = 0


class Followup(Node):
    """A follow-up event's window. `complete` lists the forms that make it complete (all of
    them complete, or their survey submitted); empty means the event's surveys, unless
    `registers` names register sources (instruments/registers/): then the follow-up is complete
    once each source's imported deliveries cover the months up to the target date (its day
    before, the end of month 18 for an 18-month target) of a participant in the linkage key,
    and the forms listed too."""

    event: str
    target: Offset
    open: Offset = Offset()
    close: Offset = Offset()
    contact: bool = True
    complete: list[str] = []
    registers: list[str] = []


class Tracking(Node):
    """The form the follow-up state is written back to, and its field for each value."""

    form: str
    due_date: str
    window_open: str
    window_close: str
    status: str
    reminders: str
    last_reminder: str
    next_action: str


class Schedule(Node):
    anchor_field: str
    anchor_event: str | None = None
    followups: list[Followup] = []
    tracking: Tracking | None = None


Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


class ReminderStep(Node):
    """One step of the reminder policy. `after` counts from the window's opening; a step is
    also never due sooner after the previous step was actually sent than the steps' planned
    gap (the catch-up rule). A participant step goes by the participant's channel; a nurse
    step is a task on the worklist and in the digest."""

    name: str
    label: Text | None = None
    after: Offset
    to: Literal["participant", "nurse"] = "participant"
    template: str | None = None


class Preferred(Node):
    """The field holding the participant's preferred reminder channel, and its codes."""

    field: str
    sms: str
    email: str

    _codes = field_validator("sms", "email", mode="before")(lambda v: str(v))


class ContactFields(Node):
    """Where the participant's contact details are (the latest filled value across events)."""

    mobile: str
    email: str | None = None
    preferred: Preferred | None = None


class StopRule(Node):
    """A reason to stop contacting a participant, as REDCap logic on the record's latest
    values (plain `[field]` references)."""

    reason: str
    when: str


class Digest(Node):
    """The daily e-mail to each nurse or data access group with their worklist."""

    at: dt.time
    template: str = "digest"


class ReminderPolicy(Node):
    """When and how participants and nurses are reminded (see docs/followup.md). Times are in
    `timezone`; sends happen only between `send_from` and `send_until`, never on `quiet_days`
    nor (when `public_holidays` names a country) its public holidays, and at most `daily_cap`
    messages a day per participant."""

    timezone: str = "Europe/Oslo"
    language: Literal["nb", "en"] = "nb"
    send_from: dt.time = dt.time(9, 0)
    send_until: dt.time = dt.time(20, 0)
    quiet_days: list[Weekday] = []
    public_holidays: str | None = None
    daily_cap: int = 1
    contact: ContactFields
    stop: list[StopRule] = []
    steps: list[ReminderStep]
    digest: Digest | None = None


class SexCoding(Node):
    """Which field holds sex and its codes, for sex-specific cut-offs."""

    field: str
    male: str
    female: str

    _codes = field_validator("male", "female", mode="before")(lambda v: str(v))


class DateOrder(Node):
    """Two date fields that must be in order where both are filled (validation checks it);
    `followups_only` limits the check to the schedule's follow-up events."""

    earlier: str
    later: str
    followups_only: bool = False


class Check(Node):
    """A cross-field data-quality rule in REDCap logic: a row of `field`'s form where `when`
    holds is a problem, reported on `field` with `message` (`{label}` and `{value}` are the
    field's label and answer)."""

    name: str
    field: str
    when: str
    severity: Literal["error", "advisory"] = "error"
    message: Text


class DataQuality(Node):
    """Which validation rules run: `disabled` names rules a study switches off; `checks` are
    its own cross-field rules."""

    disabled: list[str] = []
    checks: list[Check] = []


class AllocatedArm(Node):
    """An arm of the randomization: the target field's code and its share of each block."""

    code: str
    ratio: int = 1

    _code = field_validator("code", mode="before")(lambda v: str(v))


class Stratum(Node):
    """A stratification factor: a field's choice codes, or (`dag`) the data access groups
    named, by unique group name."""

    field: str | None = None
    dag: list[str] | None = None


class Planned(Node):
    """Planned enrolment per stratum, and the margin the allocation table adds to it (0.5:
    half as many slots again), so a stratum that recruits faster never runs out of slots."""

    per_stratum: int
    margin: float = 0.5


class Randomization(Node):
    """The trial's allocation on REDCap's randomization module (docs/randomization.md):
    stratified permuted blocks of randomly varying size. `event` holds the target and the
    strata fields; a record is randomized once `consent` (REDCap logic) holds and the forms
    in `complete` are complete at that event; `randomize` then writes `date_field` (and
    `by_field`, the person's initials)."""

    target: str
    arms: list[AllocatedArm]
    strata: list[Stratum] = []
    event: str | None = None
    blocks: list[int]
    planned: Planned
    consent: str
    complete: list[str] = []
    date_field: str | None = None
    by_field: str | None = None


class RegisterLinkage(Node):
    """The fields register linkage reads (the linkage list, and validation's national-id
    rule): the national identity number and the yes/no consent to linkage (1 = yes); `stop`:
    who is no longer linked whatever that answer (a withdrawal ends linkage from then on)."""

    national_id: str
    consent: str
    stop: list[StopRule] = []


class Site(Node):
    """A service whose IPS fidelity is reviewed: its code in the review's site dropdown (a
    code is never reused: a site that stops stays listed, `retired`), its label, health trust
    and unit."""

    code: str
    label: Text
    trust: str
    unit: str | None = None
    retired: bool = False

    _code = field_validator("code", mode="before")(lambda v: str(v))


class MissingCode(Node):
    code: str
    label: str


class Recruitment(Node):
    """The planned recruitment the trial report measures against (docs/report.md): people
    randomised from `start` to `end`, `target` in all, and per site (`per_site`: a target per
    code of the randomization's stratum field, when a site's share is planned)."""

    start: dt.date
    end: dt.date
    target: int
    per_site: dict[str, int] = {}

    _sites = field_validator("per_site", mode="before")(
        lambda v: {str(k): n for k, n in v.items()} if isinstance(v, dict) else v
    )


class BaselineSection(Node):
    """A section of the trial report's baseline table ("Table 1"): its heading and the fields
    or scores it shows, as the export names them, at the randomization event."""

    section: Text
    variables: list[str]


class Study(Node):
    project: str
    title: str
    purpose: int = 2
    record_id: str
    autonumber: bool = False
    arms: list[Arm] = []
    events: list[Event] = []
    instruments: list[FormUse]
    repeating_events: list[str] = []
    schedule: Schedule | None = None
    sex: SexCoding | None = None
    missing_data_codes: list[MissingCode] = []
    date_order: list[DateOrder] = []
    data_quality: DataQuality = DataQuality()
    reminders: ReminderPolicy | None = None
    randomization: Randomization | None = None
    register_linkage: RegisterLinkage | None = None
    recruitment: Recruitment | None = None
    baseline_table: list[BaselineSection] = []
    sites: list[Site] = []

    @property
    def longitudinal(self) -> bool:
        return bool(self.events)


@dataclass
class Project:
    """A study file with its instruments loaded, in the project's form order."""

    study: Study
    instruments: dict[str, Instrument]
    root: Path

    @property
    def name(self) -> str:
        return self.study.project

    @property
    def forms(self) -> list[str]:
        return list(self.instruments)

    def fields(self) -> list[tuple[Instrument, Field]]:
        """Every field of the project in dictionary order."""
        return [(inst, f) for inst in self.instruments.values() for f in inst.fields]

    def field_map(self) -> dict[str, tuple[Instrument, Field]]:
        return {f.name: (inst, f) for inst, f in self.fields()}

    def use_of(self, form: str) -> FormUse:
        return next(u for u in self.study.instruments if u.form == form)

    def events_of(self, form: str) -> list[str]:
        return self.use_of(form).events


def default_root() -> Path:
    """The definitions directory: `instruments/` here, else the one beside the package (the
    checkout's, two levels above this module)."""
    local = Path("instruments")
    if local.is_dir():
        return local
    return Path(__file__).resolve().parents[2] / "instruments"


def available_projects(root: Path) -> list[str]:
    return sorted(p.stem for p in (root / STUDIES_DIR).glob("*.yaml"))


def load_study(file: Path) -> Study:
    return Study.from_document(yamlfile.load(file))


def load_project(name: str, root: Path | None = None, overlay_dir: Path | None = None) -> Project:
    """Load a project's study file, its instruments and (where present) licensed text overlays.

    Raises `DefinitionError` naming file and line for the first file that cannot be loaded.
    """
    root = root or default_root()
    file = root / STUDIES_DIR / f"{name}.yaml"
    if not file.is_file():
        known = ", ".join(available_projects(root)) or "none"
        raise DefinitionError(
            f"no study file for project '{name}' (projects: {known})", Origin(file)
        )
    study = load_study(file)
    if study.project != name:
        raise DefinitionError(
            f"study file declares project '{study.project}', expected '{name}'",
            study.origin("project"),
        )
    overlay_dir = overlay_dir if overlay_dir is not None else root / "local"
    instruments: dict[str, Instrument] = {}
    for i, use in enumerate(study.instruments):
        form_file = root / FORMS_DIR / f"{use.form}.yaml"
        if not form_file.is_file():
            raise DefinitionError(
                f"instrument '{use.form}' has no definition file {form_file}",
                study.origin("instruments", i),
            )
        if use.form in instruments:
            raise DefinitionError(
                f"instrument '{use.form}' is listed twice", study.origin("instruments", i)
            )
        instrument = load_instrument(form_file)
        if instrument.form != use.form:
            raise DefinitionError(
                f"file defines form '{instrument.form}', expected '{use.form}'",
                instrument.origin("form"),
            )
        overlay = overlay_dir / f"{use.form}.yaml"
        if instrument.licence == "codes_only" and overlay.is_file():
            apply_overlay(instrument, overlay)
        instruments[use.form] = instrument
    generate(study, instruments)
    return Project(study, instruments, root)
