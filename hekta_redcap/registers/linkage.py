"""The linkage list sent to the registers, and the key that turns their deliveries back into
records.

The list holds one row per participant who consented to register linkage, whom no stop rule
of the study's `register_linkage` holds for (a withdrawal), and who has a valid national
identity number: `fnr;lopenr`, sorted by `lopenr`, so that its order says nothing
about who enrolled when. `lopenr` is the project's serial number: drawn at random (`secrets`)
the first time a participant is listed, never derived from the record id or the number, and
kept in the linkage key (`record_id;lopenr`), which only ever grows, so that every list and
every delivery uses the same number for the same participant. Numbers to correct are listed by
record id, never written.

Both files are created readable by their owner alone, the list never over an existing file nor
inside an analyst export folder, and no identity number reaches a message, an exception or a
log line: only counts, record ids and reasons.

    >>> result = write_linkage_list(settings, project, Path("linkage.csv"), settings.linkage_key)
    >>> print(result.text())
    written 263 to linkage.csv (fnr;lopenr, readable by you alone): 259 fødselsnummer, 4 D-number
    ...
"""

from __future__ import annotations

import csv
import fcntl
import json
import logging
import os
import re
import secrets
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

from hekta_redcap.core.errors import DefinitionError, HektaError, Origin
from hekta_redcap.core.identity import REASONS, IdentityCheck, Reason, check_national_id
from hekta_redcap.core.logline import line
from hekta_redcap.core.settings import Settings
from hekta_redcap.data.store import Store
from hekta_redcap.definitions.study import Project, RegisterLinkage, StopRule
from hekta_redcap.redcap import logic
from hekta_redcap.redcap.names import EVENT

logger = logging.getLogger("hekta_redcap.registers")

LIST_HEADER = ("fnr", "lopenr")
KEY_HEADER = ("record_id", "lopenr")
# Eight digits without a leading zero (a spreadsheet would drop it): 90 million serial numbers.
SERIAL_LOW, SERIAL_COUNT = 10**7, 9 * 10**7
SERIAL = re.compile(r"\d+")
# What marks a folder as an analyst export (analysis/export/manifest.py writes it); the name
# is repeated here because registers sits below analysis.
EXPORT_MANIFEST, EXPORT_MARK = "manifest.json", "identifiers_included"


@dataclass(frozen=True)
class ToCorrect:
    """A consenting participant whose number cannot be sent: where to correct it, and why."""

    record: str
    event: str
    field: str
    reason: Reason | Literal["duplicate"]
    other: str = ""  # duplicate: the other records holding the same number

    def text(self) -> str:
        where = ", ".join(filter(None, (self.event, self.field)))
        if self.reason == "duplicate":
            return f"record {self.record} ({where}): the same number as record {self.other}"
        return f"record {self.record} ({where}): {REASONS[self.reason]}"


@dataclass(frozen=True)
class LinkageResult:
    """What a run wrote and left out, in counts and record ids."""

    output: Path
    key_file: Path
    kinds: dict[str, int]  # written, by kind of number
    new_serials: int
    without_consent: int
    not_answered: int  # of those without consent: the question left blank
    to_correct: list[ToCorrect] = field(default_factory=list)
    stopped: dict[str, int] = field(default_factory=dict)  # consented, left out: by stop rule

    @property
    def written(self) -> int:
        return sum(self.kinds.values())

    def text(self) -> str:
        kinds = ", ".join(f"{n} {kind}" for kind, n in self.kinds.items())
        lines = [
            f"written {self.written} to {self.output} (fnr;lopenr, readable by you alone)"
            + (f": {kinds}" if kinds else ""),
            f"linkage key {self.key_file}: {self.new_serials} new serial numbers",
            f"left out without consent to register linkage: {self.without_consent}"
            f" ({self.not_answered} not answered)",
            *(
                [
                    "left out, no longer linked: "
                    + ", ".join(f"{n} {r}" for r, n in self.stopped.items())
                ]
                if self.stopped
                else []
            ),
            f"to correct, not written: {len(self.to_correct)}",
            *(f"  {item.text()}" for item in self.to_correct),
        ]
        return "\n".join(lines)


def write_linkage_list(
    settings: Settings, project: Project, out: Path, key_file: Path
) -> LinkageResult:
    """Write the linkage list `out` from the synced store, giving participants listed for the
    first time a serial number in `key_file` (see the module docstring). Refuses an existing
    `out`, and `out` or `key_file` inside an export folder."""
    fields = linkage_fields(project)
    _check_places(out, key_file)
    with Store.open(settings) as store:
        rows = store.raw_rows(project.name)
    if not rows:
        raise HektaError(f"the store holds no records of {project.name}: run `hekta-redcap sync`")
    people = _participants(project, fields, rows)
    consenting = {r: p for r, p in people.items() if p.consent == "1"}
    stops = {record: _stopped(fields, p) for record, p in consenting.items()}
    stopped = Counter(reason for reason in stops.values() if reason)
    consenting = {r: p for r, p in consenting.items() if not stops[r]}
    valid, to_correct = _checked(consenting, fields.national_id, settings.allow_synthetic_ids)
    serial_of, new = _serials(key_file, list(valid))
    _write_list(out, sorted((serial_of[record], c.number) for record, c in valid.items()))
    order = {record: i for i, record in enumerate(people)}
    to_correct.sort(key=lambda item: order[item.record])
    result = LinkageResult(
        out,
        key_file,
        dict(Counter(str(c.kind) for c in valid.values())),
        new,
        len(people) - len(consenting) - stopped.total(),
        sum(1 for p in people.values() if not p.consent),
        to_correct,
        dict(stopped),
    )
    logger.info(
        line(
            "registers.linkage_list",
            written=result.written,
            new_serials=new,
            without_consent=result.without_consent,
            stopped=stopped.total(),
            to_correct=len(to_correct),
        )
    )
    return result


def linkage_fields(project: Project) -> RegisterLinkage:
    """The study file's `register_linkage` fields, which must exist."""
    study = project.study
    fields = study.register_linkage
    if fields is None:
        raise DefinitionError(
            "the study file has no register_linkage: add "
            "register_linkage: {national_id: FIELD, consent: FIELD}",
            study.origin(),
        )
    known = project.field_map()
    for key in ("national_id", "consent"):
        if getattr(fields, key) not in known:
            raise DefinitionError(
                f"register_linkage: '{getattr(fields, key)}' is not a field of {project.name}",
                study.origin("register_linkage", key),
            )
    for i, rule in enumerate(fields.stop):
        try:
            _rule(rule)
        except logic.LogicError as exc:
            raise DefinitionError(
                f"register_linkage stop rule '{rule.reason}': {exc}", fields.origin("stop", i)
            ) from None
    return fields


def read_key(path: Path) -> dict[str, str]:
    """The linkage key: lopenr -> record id. A key that cannot be read, or that is not one
    distinct serial number per record (`record_id;lopenr`), raises HektaError naming the file
    and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise HektaError(
            "no linkage key here: write it with `hekta-redcap registers linkage-list` or name "
            "it with --key (HEKTA_LINKAGE_KEY)",
            Origin(path),
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise HektaError(
            f"cannot read the linkage key ({type(exc).__name__})", Origin(path)
        ) from None
    return _parse_key(text, path)


# -- participants ---------------------------------------------------------------------------


@dataclass
class _Participant:
    consent: str = ""
    number: str = ""  # the latest non-blank national identity number, as stored
    event: str = ""  # where that number is, or where one belongs
    latest: dict[str, str] = field(default_factory=dict)  # what the stop rules read


def _participants(
    project: Project, fields: RegisterLinkage, rows: Sequence[Mapping[str, Any]]
) -> dict[str, _Participant]:
    """Each record's consent to linkage and latest identity number (rows in REDCap's order, so
    events in order), in the store's record order. A missing data code counts as blank."""
    codes = {m.code for m in project.study.missing_data_codes}
    form = project.field_map()[fields.national_id][0].form
    first = project.events_of(form)[0] if project.study.longitudinal else ""
    read = {
        logic.column_of(ref)
        for rule in fields.stop
        for ref in logic.references(_rule(rule))
        if ref.field is not None
    }
    people: dict[str, _Participant] = {}
    for row in rows:
        person = people.setdefault(str(row[project.study.record_id]), _Participant(event=first))
        consent = str(row.get(fields.consent) or "").strip()
        number = str(row.get(fields.national_id) or "").strip()
        if consent and consent not in codes:
            person.consent = consent
        if number and number not in codes:
            person.number, person.event = number, str(row.get(EVENT) or "")
        person.latest.update((c, str(row[c])) for c in read if str(row.get(c) or "").strip())
    return people


def _stopped(fields: RegisterLinkage, person: _Participant) -> str:
    """The first stop rule that holds on the participant's latest values, or ""."""
    for rule in fields.stop:
        held = logic.evaluate(_rule(rule), lambda ref: logic.value_in(person.latest, ref))
        if logic.is_true(held):
            return rule.reason
    return ""


def _rule(rule: StopRule) -> logic.Node:
    return logic.parse(rule.when)


def _checked(
    consenting: Mapping[str, _Participant], field: str, allow_synthetic: bool
) -> tuple[dict[str, IdentityCheck], list[ToCorrect]]:
    """The consenting participants' valid numbers, and those to correct: invalid or missing,
    or one number held by several records (which of them it belongs to is for a person to
    find out, so none of them is sent)."""
    valid: dict[str, IdentityCheck] = {}
    to_correct: list[ToCorrect] = []
    for record, person in consenting.items():
        check = check_national_id(person.number, allow_synthetic)
        if check.reason is None:
            valid[record] = check
        else:
            to_correct.append(ToCorrect(record, person.event, field, check.reason))
    holders: dict[str, list[str]] = {}
    for record, check in valid.items():
        holders.setdefault(check.number, []).append(record)
    for records in (rs for rs in holders.values() if len(rs) > 1):
        for record in records:
            others = ", ".join(r for r in records if r != record)
            to_correct.append(
                ToCorrect(record, consenting[record].event, field, "duplicate", others)
            )
            del valid[record]
    return valid, to_correct


# -- the key and the list -------------------------------------------------------------------


def _parse_key(text: str, path: Path) -> dict[str, str]:
    lines = text.removeprefix("\ufeff").splitlines()
    if not lines or lines[0].strip() != ";".join(KEY_HEADER):
        raise HektaError(
            f"not a linkage key: its first line must be {';'.join(KEY_HEADER)}", Origin(path, 1)
        )
    key: dict[str, str] = {}
    records: set[str] = set()
    for number, row in enumerate(csv.reader(lines[1:], delimiter=";"), start=2):
        if not row:
            continue
        if len(row) != 2 or not row[0].strip() or not SERIAL.fullmatch(row[1].strip()):
            raise HektaError(
                "malformed line: expected record_id;lopenr (digits)", Origin(path, number)
            )
        record, serial = row[0].strip(), row[1].strip()
        if serial in key or record in records:
            which = "serial number" if serial in key else "record"
            raise HektaError(
                f"this {which} is already in the key on an earlier line", Origin(path, number)
            )
        key[serial] = record
        records.add(record)
    return key


def _serials(key_file: Path, records: list[str]) -> tuple[dict[str, str], int]:
    """Each record's serial number (record -> lopenr), drawing and appending to the key those
    it lacks, under a lock so that two runs cannot give one record two numbers."""
    with _locked(key_file) as handle:
        text = handle.read()
        known = _parse_key(text, key_file) if text else {}
        serial_of = {record: serial for serial, record in known.items()}
        new: list[tuple[str, str]] = []
        for record in records:
            if record not in serial_of:
                serial = _draw(known)
                known[serial], serial_of[record] = record, serial
                new.append((record, serial))
        if new or not text:
            if not text:
                handle.write(";".join(KEY_HEADER) + "\n")
            elif not text.endswith("\n"):
                handle.write("\n")
            csv.writer(handle, delimiter=";", lineterminator="\n").writerows(new)
            handle.flush()
            os.fsync(handle.fileno())
    return serial_of, len(new)


def _draw(taken: Mapping[str, str]) -> str:
    while (serial := str(SERIAL_LOW + secrets.randbelow(SERIAL_COUNT))) in taken:
        pass
    return serial


@contextmanager
def _locked(key_file: Path) -> Iterator[TextIO]:
    """The key open for reading and appending, locked; created owner-only (its folder too)
    when new. An existing key others may read is refused."""
    key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        handle = os.open(key_file, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        os.fchmod(handle, 0o600)
    except FileExistsError:
        handle = os.open(key_file, os.O_RDWR | os.O_APPEND)
        if os.fstat(handle).st_mode & 0o077:
            os.close(handle)
            raise HektaError(
                "the linkage key is open to others: make it readable by you alone (chmod 600)",
                Origin(key_file),
            ) from None
    with os.fdopen(handle, "r+", encoding="utf-8", newline="") as opened:
        fcntl.flock(opened, fcntl.LOCK_EX)
        yield opened


def _write_list(out: Path, listed: list[tuple[str, str]]) -> None:
    """Create `out` owner-only (never over an existing file) and write `listed`, (lopenr, fnr)
    pairs in their order, as fnr;lopenr."""
    out.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        handle = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise _exists(out) from None
    try:
        os.fchmod(handle, 0o600)
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as opened:
            opened.write(";".join(LIST_HEADER) + "\n")
            opened.writelines(f"{number};{serial}\n" for serial, number in listed)
            opened.flush()
            os.fsync(opened.fileno())
    except BaseException:
        out.unlink(missing_ok=True)
        raise


def _check_places(out: Path, key_file: Path) -> None:
    """Refuse an existing list, one that would be the key, and either inside an export folder
    (whoever gets the export would get them)."""
    if out.exists() or out.is_symlink():
        raise _exists(out)
    if out.resolve() == key_file.resolve():
        raise HektaError(
            "the linkage list cannot be the linkage key: choose another file", Origin(out)
        )
    for path, what in ((out, "linkage list"), (key_file, "linkage key")):
        folder = _export_folder(path)
        if folder is not None:
            raise HektaError(
                f"the {what} must be kept outside the export folder {folder}: choose another place",
                Origin(path),
            )


def _exists(out: Path) -> HektaError:
    return HektaError(
        "already exists: a linkage list is never overwritten, choose another file", Origin(out)
    )


def _export_folder(path: Path) -> Path | None:
    """The nearest folder above `path` that holds an analyst export (its manifest), if any."""
    for folder in path.resolve().parents:
        manifest = folder / EXPORT_MANIFEST
        try:
            document = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        if isinstance(document, dict) and EXPORT_MARK in document:
            return folder
    return None
