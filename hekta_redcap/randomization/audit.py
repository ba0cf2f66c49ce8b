"""The audit of the allocation, for the trial's monitor: does every randomization agree with
the allocation table, REDCap's logging and the data?

    >>> result = run_audit(settings, load_project("hekta"), Path("allocation.csv"), out, "nb")
    >>> result.findings          # [] when every randomization is as it should be
    >>> print(result.text())     # audit.csv, balance.csv and audit.html are in `out`

The project is synced into the store first (in full); then REDCap's logging (record entries)
is read through the gateway and replayed in the order things happened. REDCap lists its log newest
first and times it to the minute, so entries are ordered by time and, within a minute, by their
place in the log. The replay knows each record's stratum when it was randomized (the strata
fields as last logged before the randomization), so a stratum changed later does not shift the
slots of the others. The checks (`RULES`, in the order the report lists them):

- `allocation-mismatch`: the k-th randomization in stratum S got slot k of S in the table;
- `group-changed`: the target was set after the randomization (a log entry), or differs now
  from what the log says without an entry that explains it (a change outside REDCap's forms
  and API);
- `stratum-changed`: the record's stratum now differs from the one it was randomized in;
- `strata-incomplete`: a strata field was blank at the randomization, or is blank now;
- `before-consent`: the study file's consent logic does not hold now, or a consent date (a
  field the study's `date_order` puts before the randomization date, on the consent logic's
  form) is after the logged randomization;
- `date-mismatch`: the randomization date field differs from the logged date;
- `not-randomized-by-module`: a record has a group but the log holds no randomization of it.

Balance per stratum and overall (randomized records not deleted since, per allocated group) is
information, not a finding. The table-free checks also run in every validation of a project
with a randomization block (`validation.randomization`). A record the log shows changed after
the store's sync began, whose data disagree with the log, is checked against the log only:
the store may not hold those changes yet (a later run checks it). Findings name record ids
only; log lines hold counts.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import jinja2

from hekta_redcap import LANGUAGES, __version__
from hekta_redcap.core.clock import now, shown_time
from hekta_redcap.core.logline import line
from hekta_redcap.core.settings import Settings
from hekta_redcap.core.texts import catalog, in_language
from hekta_redcap.data import sync
from hekta_redcap.data.store import Store
from hekta_redcap.definitions.study import Project
from hekta_redcap.gateway import Gateway
from hekta_redcap.randomization.design import Design, design_of
from hekta_redcap.randomization.tables import Slot, read_table, stratum_key
from hekta_redcap.redcap import logic
from hekta_redcap.redcap.names import EVENT, REPEAT_INSTRUMENT, natural_key

logger = logging.getLogger("hekta_redcap.randomization.audit")

RULES = (
    "allocation-mismatch",
    "group-changed",
    "stratum-changed",
    "strata-incomplete",
    "before-consent",
    "date-mismatch",
    "not-randomized-by-module",
)
TEXTS = catalog("hekta_redcap.randomization", "texts.yaml")
TEMPLATE = "audit.html.j2"

Stratum = tuple[str, ...]
Shown = str | Mapping[str, str]
"""A value in a message: the same in every language, or one text per language."""

# `field = 'value'` in a log entry's details (checkbox options, `cb(2) = checked`, are not
# followed); the record an action names where the log has no record column.
_ASSIGNMENT = re.compile(r"(?:^|, )([A-Za-z_][A-Za-z0-9_]*) = '([^']*)'")
_RECORD = re.compile(r"\b(?:record|response)(?: \([^)]*\))? ([^\s()]+)", re.IGNORECASE)


# -- REDCap's logging --------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """A logged change of one record: a randomization, a deletion, or data saved (the values
    it set of the fields the audit follows)."""

    at: str  # REDCap's time, "YYYY-MM-DD HH:MM"
    record: str
    kind: str  # "randomize", "delete" or "data"
    values: Mapping[str, str]


def read_log(rows: Iterable[Mapping[str, Any]], followed: Iterable[str]) -> list[Entry]:
    """REDCap's logging export (newest first) as the record entries in the order they
    happened: by time, and within a minute by their place in the log."""
    names = set(followed)
    found = []
    for place, row in enumerate(rows):
        action = str(row.get("action") or "")
        record = str(row.get("record") or "")
        if not record:
            named = _RECORD.search(action)
            if named is None:
                continue
            record = named.group(1)
        lowered = action.lower()
        kind = (
            "randomize"
            if lowered.startswith("randomize record")
            else "delete"
            if lowered.startswith("delete record")
            else "data"
        )
        details = str(row.get("details") or "")
        values = {k: v for k, v in _ASSIGNMENT.findall(details) if k in names}
        at = str(row.get("timestamp") or "")[:16]
        found.append((at, -place, Entry(at, record, kind, values)))
    return [entry for _, _, entry in sorted(found, key=lambda f: (f[0], f[1]))]


# -- the checks --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Allocation:
    """One randomization as the log tells it: the group the module logged and the stratum
    the record was in then (None when a strata field was blank), its `position` the
    randomization's number within that stratum (1 for the first; 0 when unknown)."""

    record: str
    at: str
    group: str
    stratum: Stratum | None
    position: int


@dataclass(frozen=True)
class Finding:
    """One thing the monitor must look at: a record, the rule, the stratum it was randomized
    in, when the log shows it (blank when it does not), and the message's catalog entry with
    what fills it."""

    record: str
    rule: str
    stratum: str
    logged: str
    message: str
    fill: Mapping[str, Shown] = field(default_factory=dict)

    def text(self, lang: str) -> str:
        values = {k: v if isinstance(v, str) else v[lang] for k, v in self.fill.items()}
        return TEXTS[self.message][lang].format_map(values)


@dataclass(frozen=True)
class Balance:
    """Randomized records (not deleted) per allocated group in a stratum (None: all of them),
    the slots its randomizations took (deleted records' too) and the table's slots (None
    without a table)."""

    stratum: Stratum | None
    counts: Mapping[str, int]
    used: int
    slots: int | None

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass
class Audit:
    """What `check` found: every randomization in the log, the findings (in `RULES` order,
    then by record), the balance, the records changed after the store's sync began whose data
    disagree with the log (checked against the log only), and how many randomized records were
    deleted since."""

    design: Design
    allocations: list[Allocation]
    findings: list[Finding]
    balance: list[Balance]
    in_flux: list[str]
    deleted: int
    current: Mapping[str, Mapping[str, str]]  # record -> its row at the design's event

    @property
    def records(self) -> int:
        """Randomized records, whether or not deleted since."""
        return len({a.record for a in self.allocations})


def stratum_text(design: Design, stratum: Stratum | None) -> str:
    """A stratum as the tables' summary names it (`site=1`); blank when unknown."""
    return "" if stratum is None else stratum_key(design, stratum)


def check(
    project: Project,
    design: Design,
    rows: Iterable[Mapping[str, Any]],
    log: Iterable[Mapping[str, Any]],
    slots: Sequence[Slot] | None = None,
    *,
    synced: str | None = None,
) -> Audit:
    """Audit the randomizations: `rows` are the project's flat export (the store's copy), `log`
    REDCap's logging export (record entries, newest first), `slots` the allocation table
    (`tables.read_table`; None: the table-free checks only). `synced` ("YYYY-MM-DD HH:MM",
    REDCap's clock) is when the sync that filled the store began: a record the log shows
    changed since, whose data disagree with the log, is checked against the log only."""
    return _Auditor(project, design, rows, slots).run(log, synced)


class _Auditor:
    def __init__(
        self,
        project: Project,
        design: Design,
        rows: Iterable[Mapping[str, Any]],
        slots: Sequence[Slot] | None,
    ) -> None:
        self.project, self.design = project, design
        self.slots: dict[Stratum, list[str]] | None = None
        if slots is not None:  # each stratum's arms in allocation order
            self.slots = defaultdict(list)
            for slot in slots:
                self.slots[slot.stratum].append(slot.arm)
        self.event = design.event or ""
        self.at: dict[tuple[str, str], Mapping[str, str]] = {}
        record_id = project.study.record_id
        for row in rows:
            if not row.get(REPEAT_INSTRUMENT):
                key = (str(row[record_id]), str(row.get(EVENT) or ""))
                self.at[key] = {k: "" if v is None else str(v) for k, v in row.items()}
        self.current = {r: values for (r, e), values in self.at.items() if e == self.event}
        self.fields = project.field_map()
        self.consent = logic.parse(design.spec.consent)
        self.findings: list[Finding] = []

    # -- the replay ----------------------------------------------------------------------------

    def run(self, log: Iterable[Mapping[str, Any]], synced: str | None) -> Audit:
        design, target = self.design, self.design.target
        entries = read_log(log, [target, *design.factors])
        self.ever: dict[str, set[str]] = defaultdict(set)  # record -> strata fields ever logged
        for entry in entries:
            self.ever[entry.record].update(f for f in entry.values if f != target)
        logged: dict[str, dict[str, str]] = defaultdict(dict)  # record -> values as last logged
        first: dict[str, Allocation] = {}  # each record's randomization (until deleted)
        later: dict[str, list[Entry]] = defaultdict(list)  # target set after it
        moved: dict[str, Entry] = {}  # the last entry setting a strata field after it
        set_by: dict[str, Entry] = {}  # the last entry setting the target
        used: Counter[Stratum] = Counter()
        allocations: list[Allocation] = []
        deleted = set()
        for entry in entries:
            record = entry.record
            if entry.kind == "delete":
                if record in first:
                    deleted.add(record)
                for kept in (logged, first, later, moved, set_by):
                    kept.pop(record, None)
                continue
            logged[record].update({k: v for k, v in entry.values.items() if k != target})
            if entry.kind == "randomize":
                allocation = self.allocation(entry, logged[record], used)
                allocations.append(allocation)
                if record in first:
                    later[record].append(entry)
                else:
                    first[record] = allocation
                    deleted.discard(record)
            elif record in first:
                if target in entry.values:
                    later[record].append(entry)
                if any(f in entry.values for f in design.factors):
                    moved[record] = entry
            if target in entry.values:
                set_by[record] = entry
        for allocation in allocations:
            self.against_table(allocation)
        for record, allocation in first.items():
            self.changes(allocation, later[record])
        recent = {e.record for e in entries if synced and e.at >= synced}
        in_flux = []
        for record, values in self.current.items():
            before = len(self.findings)
            if record in first:
                self.against_data(first[record], later[record], moved.get(record))
            elif values.get(target):
                self.found(
                    record,
                    "not-randomized-by-module",
                    None,
                    set_by[record].at if record in set_by else "",
                    field=self.label(target),
                    value=self.choice(values[target]),
                )
            if record in recent and len(self.findings) > before:
                del self.findings[before:]  # the store may not hold yet what the log shows
                in_flux.append(record)
        in_flux.sort(key=natural_key)
        order = {rule: i for i, rule in enumerate(RULES)}
        self.findings.sort(key=lambda f: (order[f.rule], natural_key(f.record), f.logged))
        balance = self.balanced(first.values(), used)
        return Audit(
            design, allocations, self.findings, balance, in_flux, len(deleted), self.current
        )

    def allocation(
        self, entry: Entry, logged: Mapping[str, str], used: Counter[Stratum]
    ) -> Allocation:
        """A randomization in the stratum the record was in: the strata fields as last logged
        (a field the log never sets for the record: its value now)."""
        now_values, ever = self.current.get(entry.record, {}), self.ever[entry.record]
        stratum = tuple(
            logged.get(f, "") if f in ever else now_values.get(f, "") for f in self.design.factors
        )
        group = entry.values.get(self.design.target, "")
        if not all(stratum):
            blank = [f for f, v in zip(self.design.factors, stratum, strict=True) if not v]
            self.found(
                entry.record, "strata-incomplete", None, entry.at, "then", fields=self.labels(blank)
            )
            return Allocation(entry.record, entry.at, group, None, 0)
        used[stratum] += 1
        return Allocation(entry.record, entry.at, group, stratum, used[stratum])

    def found(
        self,
        record: str,
        rule: str,
        stratum: Stratum | None,
        logged: str,
        variant: str = "message",
        **fill: Shown,
    ) -> None:
        self.findings.append(
            Finding(
                record,
                rule,
                stratum_text(self.design, stratum),
                logged,
                f"rules.{rule}.{variant}",
                {"stratum": stratum_text(self.design, stratum), **fill},
            )
        )

    # -- each rule ---------------------------------------------------------------------------

    def against_table(self, allocation: Allocation) -> None:
        """allocation-mismatch: slot k of the stratum for its k-th randomization."""
        if self.slots is None or allocation.stratum is None:
            return
        column = self.slots.get(allocation.stratum, ())
        position = allocation.position
        where = (allocation.record, "allocation-mismatch", allocation.stratum, allocation.at)
        if position > len(column):
            self.found(*where, "no-slot", position=str(position), slots=str(len(column)))
        elif column[position - 1] != allocation.group:
            expected = self.choice(column[position - 1])
            group = self.choice(allocation.group)
            self.found(*where, "differs", position=str(position), group=group, expected=expected)

    def changes(self, allocation: Allocation, later: list[Entry]) -> None:
        """group-changed in the log: the target set again after the randomization."""
        target = self.design.target
        for entry in later:
            self.found(
                allocation.record,
                "group-changed",
                allocation.stratum,
                entry.at,
                "logged",
                field=self.label(target),
                value=self.choice(entry.values.get(target, "")),
                group=self.choice(allocation.group),
            )

    def against_data(self, allocation: Allocation, later: list[Entry], moved: Entry | None) -> None:
        """What the store holds now against the log: the group, the strata, consent and the
        randomization date."""
        design, record, stratum = self.design, allocation.record, allocation.stratum
        values = self.current[record]
        target, at = design.target, allocation.at
        last = later[-1].values.get(target, "") if later else allocation.group
        if values.get(target, "") != last:
            self.found(
                record,
                "group-changed",
                stratum,
                at,
                "unlogged",
                field=self.label(target),
                value=self.choice(values.get(target, "")),
                group=self.choice(allocation.group),
            )
        now_stratum = tuple(values.get(f, "") for f in design.factors)
        blank = [f for f, v in zip(design.factors, now_stratum, strict=True) if not v]
        if blank and stratum is not None:
            self.found(record, "strata-incomplete", stratum, at, "now", fields=self.labels(blank))
        elif stratum is not None and now_stratum != stratum:
            when = moved.at if moved else at
            self.found(
                record, "stratum-changed", stratum, when, now=stratum_text(design, now_stratum)
            )
        if not logic.is_true(logic.evaluate(self.consent, lambda ref: self.value(record, ref))):
            self.found(record, "before-consent", stratum, at, "logic", logic=design.spec.consent)
        for name in self.consent_dates():
            given = values.get(name, "")
            if given and given[:10] > at[:10]:
                self.found(
                    record,
                    "before-consent",
                    stratum,
                    at,
                    "date",
                    field=self.label(name),
                    value=given,
                    day=at[:10],
                )
        date_field = design.spec.date_field
        if date_field is not None and values.get(date_field, "")[:10] != at[:10]:
            given = values.get(date_field, "")
            variant = "differs" if given else "blank"
            fill: dict[str, Shown] = {"field": self.label(date_field), "day": at[:10]}
            self.found(record, "date-mismatch", stratum, at, variant, **fill, value=given)

    def balanced(self, randomized: Iterable[Allocation], used: Counter[Stratum]) -> list[Balance]:
        """Per stratum (the design's, then any other the log shows) and overall."""
        arms = list(self.design.arms)
        counts: dict[Stratum, Counter[str]] = {s: Counter() for s in self.design.strata}
        for allocation in randomized:
            if allocation.stratum is not None:
                counts.setdefault(allocation.stratum, Counter())[allocation.group] += 1
        for stratum in used:
            counts.setdefault(stratum, Counter())
        rows = [
            Balance(
                stratum,
                {arm: n[arm] for arm in arms},
                used[stratum],
                None if self.slots is None else len(self.slots.get(stratum, ())),
            )
            for stratum, n in counts.items()
        ]
        overall = {arm: sum(r.counts[arm] for r in rows) for arm in arms}
        table = None if self.slots is None else sum(len(c) for c in self.slots.values())
        return [*rows, Balance(None, overall, sum(used.values()), table)]

    # -- what the checks read ----------------------------------------------------------------

    def value(self, record: str, ref: logic.Ref) -> str:
        """A logic reference's stored text in the record's row (of its event, or the
        design's)."""
        if ref.field is None:
            return ""
        row = self.at.get((record, ref.event or self.event), {})
        return row.get(logic.column_of(ref), "")

    def consent_dates(self) -> list[str]:
        """The date fields the study puts before the randomization date (`date_order`) that
        sit on the form the consent logic reads: consent_date for HEKTA."""
        forms = {
            self.fields[ref.field][0].form
            for ref in logic.references(self.consent)
            if ref.field in self.fields
        }
        later = self.design.spec.date_field
        return [
            pair.earlier
            for pair in self.project.study.date_order
            if pair.later == later
            and pair.earlier in self.fields
            and self.fields[pair.earlier][0].form in forms
        ]

    def label(self, name: str) -> Mapping[str, str]:
        """A field's label, quoted, per language (its name for a DAG or unknown field)."""
        if name not in self.fields:
            return {lang: name for lang in LANGUAGES}
        instrument, found = self.fields[name]
        return {
            lang: TEXTS["quoted"][lang].format(text=instrument.label_of(found, lang))
            for lang in LANGUAGES
        }

    def labels(self, names: Sequence[str]) -> Mapping[str, str]:
        labels = [self.label(name) for name in names]
        return {lang: ", ".join(label[lang] for label in labels) for lang in LANGUAGES}

    def choice(self, code: str) -> Mapping[str, str]:
        """A code of the target with its label per language (blank: the word for it)."""
        if not code:
            return TEXTS["words.blank"]
        instrument, target = self.fields[self.design.target]
        for option in instrument.choices_of(target):
            if option.code == code:
                return {
                    lang: TEXTS["choice"][lang].format(
                        code=code, label=instrument.choice_label(option, lang)
                    )
                    for lang in LANGUAGES
                }
        return {lang: code for lang in LANGUAGES}


# -- the run -----------------------------------------------------------------------------------


@dataclass
class AuditResult:
    """An audit run: what it found and the files it wrote."""

    project: Project
    audit: Audit
    lang: str
    table: Path
    table_sha256: str
    started: str
    files: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def findings(self) -> list[Finding]:
        return self.audit.findings

    def text(self) -> str:
        """A short summary for the terminal, in the run's language."""
        words = in_language(TEXTS, self.lang, "summary")
        audit, findings = self.audit, self.audit.findings
        lines = [
            words["head"].format(
                project=self.project.name,
                randomizations=len(audit.allocations),
                findings=len(findings),
                records=len({f.record for f in findings}),
            )
        ]
        for rule in RULES:
            records = list(dict.fromkeys(f.record for f in findings if f.rule == rule))
            if records:
                shown = ", ".join(records[:10]) + (
                    f", … (+{len(records) - 10})" if len(records) > 10 else ""
                )
                count = sum(f.rule == rule for f in findings)
                lines.append(words["rule"].format(rule=rule, count=count, records=shown))
        if audit.in_flux:
            lines.append(TEXTS["in_flux"][self.lang].format(records=", ".join(audit.in_flux)))
        strata = ", ".join(
            f"{stratum_text(audit.design, b.stratum) or words['all']} "
            + "/".join(str(n) for n in b.counts.values())
            for b in audit.balance
        )
        lines.append(words["balance"].format(arms="/".join(audit.design.arms), strata=strata))
        if self.files:
            lines.append(words["files"].format(html=self.files["html"], csv=self.files["csv"]))
        return "\n".join(lines)


def audit_store(
    settings: Settings, project: Project, store: Store, slots: Sequence[Slot] | None = None
) -> Audit:
    """The store's copy of the project against REDCap's logging, read now: `run_audit` after
    its sync, and validation on every pass."""
    cursor = store.cursor(project.name)
    log = Gateway.open(settings, project.name).export_logging(log_type="record")
    # the cursor is this machine's clock, which must be REDCap's time zone (as for the sync)
    synced = cursor[0].astimezone().strftime("%Y-%m-%d %H:%M") if cursor else None
    rows = store.raw_rows(project.name)
    return check(project, design_of(project), rows, log, slots, synced=synced)


def run_audit(
    settings: Settings, project: Project, table: Path, out: Path, lang: str
) -> AuditResult:
    """Sync the project into the store, read REDCap's logging, audit every randomization
    against `table` and write audit.csv, balance.csv and audit.html into `out`. The sync is a
    full one: a change made straight in REDCap's database leaves no change time for an
    incremental sync to find, and the audit is run seldom enough to pull every record."""
    slots = read_table(table, design_of(project))
    began, started = time.perf_counter(), shown_time(now())
    with Store.open(settings) as store:
        sync.run(settings, project.name, store=store, full=True)
        audit = audit_store(settings, project, store, slots)
    digest = hashlib.sha256(table.read_bytes()).hexdigest()
    result = AuditResult(project, audit, lang, table, digest, started)
    result.files = write_audit(result, out)
    result.seconds = time.perf_counter() - began
    logger.info(
        line(
            "randomization.audit",
            project=project.name,
            randomizations=len(audit.allocations),
            findings=len(audit.findings),
            in_flux=len(audit.in_flux),
            seconds=f"{result.seconds:.2f}",
        )
    )
    return result


# -- the files ---------------------------------------------------------------------------------


def write_audit(result: AuditResult, out: Path) -> dict[str, Path]:
    """audit.csv (one row per finding), balance.csv and audit.html, in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    audit, lang = result.audit, result.lang
    paths = {
        name: out / file
        for name, file in (("csv", "audit.csv"), ("balance", "balance.csv"), ("html", "audit.html"))
    }
    with paths["csv"].open("w", newline="", encoding="utf-8-sig") as handle:
        writer = csv.writer(handle)
        writer.writerow(["record", "stratum", "rule", "detail", "logged"])
        for f in audit.findings:
            writer.writerow([f.record, f.stratum, f.rule, f.text(lang), f.logged])
    design = audit.design
    with paths["balance"].open("w", newline="", encoding="utf-8-sig") as handle:
        writer = csv.writer(handle)
        arms = [f"{design.target}={arm}" for arm in design.arms]
        writer.writerow(["stratum", *design.factors, *arms, "total", "slots_used", "slots"])
        for b in audit.balance:
            levels = list(b.stratum) if b.stratum is not None else [""] * len(design.factors)
            name = stratum_text(design, b.stratum) or "all"
            slots = "" if b.slots is None else b.slots
            writer.writerow([name, *levels, *b.counts.values(), b.total, b.used, slots])
    paths["html"].write_text(render_html(result), encoding="utf-8")
    return paths


def render_html(result: AuditResult) -> str:
    """audit.html: self-contained (inline CSS, nothing fetched), headings in the run's
    language with the other beside them, the findings by rule and the balance."""
    audit, lang = result.audit, result.lang
    other = next(code for code in LANGUAGES if code != lang)
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = environment.from_string(
        files(__package__).joinpath(TEMPLATE).read_text(encoding="utf-8")
    )
    words = {key: (text[lang], text[other]) for key, text in _group("html").items()}
    rules = [
        {
            "id": rule,
            "finds": (TEXTS[f"rules.{rule}.finds"][lang], TEXTS[f"rules.{rule}.finds"][other]),
            "checks": TEXTS[f"rules.{rule}.checks"][lang],
            "findings": [f for f in audit.findings if f.rule == rule],
        }
        for rule in RULES
    ]
    instrument, target = result.project.field_map()[audit.design.target]
    labels = {o.code: instrument.choice_label(o, lang) for o in instrument.choices_of(target)}
    return template.render(
        lang=lang,
        h=words,
        study=result.project.study,
        started=result.started,
        version=__version__,
        table=result.table.name,
        table_sha256=result.table_sha256,
        log=TEXTS["html.log_counts"][lang].format(
            randomizations=len(audit.allocations), records=audit.records, deleted=audit.deleted
        ),
        count=TEXTS["html.count"][lang].format(
            findings=len(audit.findings), records=len({f.record for f in audit.findings})
        ),
        in_flux=TEXTS["in_flux"][lang].format(records=", ".join(audit.in_flux))
        if audit.in_flux
        else "",
        rules=[r for r in rules if r["findings"]],
        detail=lambda f: f.text(lang),
        design=audit.design,
        arms=[(arm, labels.get(arm, arm)) for arm in audit.design.arms],
        balance=[
            (stratum_text(audit.design, b.stratum) or words["all"][0], b) for b in audit.balance
        ],
    )


def _group(name: str) -> dict[str, Mapping[str, str]]:
    """A group of the catalog in both languages, by id within the group."""
    prefix = f"{name}."
    return {k.removeprefix(prefix): v for k, v in TEXTS.items() if k.startswith(prefix)}
