"""De-identification: which fields an export may hold, and stable pseudonyms for record ids.

Fields flagged `identifier: true` in the definitions (names, contact details, national id,
employers) are left out of every export unless identifiers are asked for explicitly. Record ids
can be replaced by pseudonyms kept in a key file: each new record gets a random pseudonym (not
derived from its id, so it cannot be recomputed), and the key file keeps it for every later
export. The key file links pseudonyms to records, so it must live outside the export folder;
it is written with owner-only permissions.

    >>> pseudonyms = Pseudonyms.load_or_create(Path("keys/hekta.json"), export_dir=Path("out"))
    >>> pseudonyms.apply(pd.Series(["1", "2"])).str.len().tolist()
    [11, 11]
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from pathlib import Path

import pandas as pd

from hekta_redcap.core.errors import HektaError, Origin
from hekta_redcap.definitions.study import Project

KEY_FORMAT = "hekta-redcap pseudonym key 1"
PREFIX = "P"  # a pseudonym never reads as a number (CSV readers would make 0012 into 12)
RANDOM_BYTES = 5  # 10 hexadecimal digits: 10^12 pseudonyms, drawn again on a collision


def exported_forms(project: Project) -> list[str]:
    """The forms an export holds: all but the follow-up tracking form, which the reminder
    service writes for the nurses (operational state and their notes, not research data)."""
    rules = project.study.schedule
    tracking = rules.tracking.form if rules and rules.tracking else None
    return [form for form in project.forms if form != tracking]


def kept_fields(project: Project, identifiers: bool) -> set[str]:
    """The fields an export holds: all but descriptive ones and the record id (a key of every
    table), less those flagged `identifier` and free-text notes (which may name people, as
    REDCap's own de-identified exports assume) unless `identifiers`."""
    return {
        f.name
        for _, f in project.fields()
        if f.type != "descriptive"
        and f.name != project.study.record_id
        and (identifiers or not (f.identifier or f.type == "notes"))
    }


def check_outside(key_file: Path, export_dir: Path) -> None:
    """Refuse a key file inside the export folder: whoever gets the export would get the key."""
    key, folder = key_file.resolve(), export_dir.resolve()
    if key.is_relative_to(folder):
        raise HektaError(
            "the pseudonym key file must be kept outside the export folder "
            f"{export_dir}: choose another key file or folder",
            Origin(key_file),
        )


class Pseudonyms:
    """Record id -> pseudonym, from a key file that grows as records are added."""

    def __init__(self, key_file: Path, known: dict[str, str]) -> None:
        self.key_file = key_file
        self.known = known

    @classmethod
    def load_or_create(cls, key_file: Path, export_dir: Path | None = None) -> Pseudonyms:
        """The pseudonyms kept in `key_file` (none yet if it does not exist; it is written when
        the first record gets one). With `export_dir`, a key file inside it is refused."""
        if export_dir is not None:
            check_outside(key_file, export_dir)
        if not key_file.exists():
            return cls(key_file, {})
        try:
            document = json.loads(key_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise HektaError(
                f"cannot read the pseudonym key file ({type(exc).__name__})", Origin(key_file)
            ) from None
        if not isinstance(document, dict) or document.get("format") != KEY_FORMAT:
            raise HektaError(f"not a pseudonym key file ({KEY_FORMAT})", Origin(key_file))
        known = document.get("pseudonyms")
        if not isinstance(known, dict) or len(set(known.values())) != len(known):
            raise HektaError(
                "the pseudonym key file has no pseudonyms or gives two records the same one",
                Origin(key_file),
            )
        return cls(key_file, {str(k): str(v) for k, v in known.items()})

    def apply(self, records: pd.Series) -> pd.Series:
        """Each record's pseudonym; records new to the key file get a random one, and the key
        file is saved before they are used."""
        new = [r for r in dict.fromkeys(records.dropna().astype(str)) if r not in self.known]
        if new:
            taken = set(self.known.values())
            for record in new:
                pseudonym = _draw()
                while pseudonym in taken:
                    pseudonym = _draw()
                taken.add(pseudonym)
                self.known[record] = pseudonym
            self._save()
        return records.map(self.known).astype("string")

    def _save(self) -> None:
        """Write the whole key file atomically (a crash leaves the old one), owner-only."""
        self.key_file.parent.mkdir(parents=True, exist_ok=True)
        document = {"format": KEY_FORMAT, "pseudonyms": self.known}
        handle, name = tempfile.mkstemp(dir=self.key_file.parent, prefix=".pseudonyms-")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(document, out, indent=1, ensure_ascii=False)
            os.chmod(name, 0o600)
            os.replace(name, self.key_file)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise


def _draw() -> str:
    return PREFIX + secrets.token_hex(RANDOM_BYTES).upper()
