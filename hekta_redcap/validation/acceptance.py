"""Values a person checked and found right: `hekta-redcap problems accept`.

A note such as an unusual value may be right (a participant who works 70 hours a week). Once a
nurse has checked it, it is accepted: the store remembers the record, event, instance and field
with a digest of the value, who accepted it, when and why, and validation no longer lists it
while the value stays the same. A changed value is listed again. The report counts what was
accepted and by whom.

    >>> accept(store, "hekta", [Acceptance("17", "followup_6m_arm_1", "job_hours_week",
    ...        reason="checked with the participant", by="kari")])
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hekta_redcap.core.errors import HektaError, Origin
from hekta_redcap.data.store import Store

CSV_COLUMNS = ("record", "event", "field", "reason", "instance", "by")


@dataclass(frozen=True)
class Acceptance:
    record: str
    event: str
    field: str
    reason: str
    by: str
    instance: str = ""
    origin: Origin | None = None  # the CSV line it came from

    def describe(self) -> str:
        instance = f" instance {self.instance}" if self.instance else ""
        return f"record {self.record}, {self.event or 'no event'}{instance}, {self.field}"


def accept(store: Store, project: str, acceptances: list[Acceptance]) -> list[str]:
    """Accept the open problems the acceptances name, all or none; returns a line for each.
    Raises HektaError naming the problem (and the CSV line) when one has no open problem, or
    needs its instance to tell several apart."""
    problems = store.open_problems(project)
    chosen = [(a, _problem(problems, a)) for a in acceptances]
    store.accept(project, [(problem, a.reason.strip(), a.by) for a, problem in chosen])
    return [
        f"accepted: {replace(a, instance=str(p['instance'])).describe()} ({p['rule']}), by {a.by}"
        for a, p in chosen
    ]


def _problem(problems: list[dict[str, Any]], acceptance: Acceptance) -> dict[str, Any]:
    if not acceptance.reason.strip():
        raise HektaError("a reason is needed: say what was checked", acceptance.origin)
    wanted = (acceptance.record, acceptance.event, acceptance.field)
    matching = [
        p
        for p in problems
        if (str(p["record"]), str(p["event"]), str(p["field"])) == wanted
        and (not acceptance.instance or str(p["instance"]) == acceptance.instance)
    ]
    if not matching:
        raise HektaError(
            f"no open problem for {acceptance.describe()} (the latest validation lists what is "
            "open)",
            acceptance.origin,
        )
    instances = sorted({str(p["instance"]) for p in matching})
    if len(instances) > 1:
        raise HektaError(
            f"{acceptance.describe()} has problems in instances {', '.join(instances)}: "
            "name one with --instance (or an instance column)",
            acceptance.origin,
        )
    return matching[0]


def read_csv(file: Path, by: str) -> Iterator[Acceptance]:
    """Acceptances from a CSV with the columns record, event, field, reason and optionally
    instance and by (header required); a bad line is an error naming the file and line."""
    try:
        with file.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in CSV_COLUMNS[:4] if c not in (reader.fieldnames or [])]
            if missing:
                raise HektaError(f"the header lacks {', '.join(missing)}", Origin(file, 1))
            for row in reader:
                origin = Origin(file, reader.line_num)
                if None in row or any(v is None for v in row.values()):
                    raise HektaError("the line's cells do not match the header", origin)
                yield Acceptance(
                    record=row["record"].strip(),
                    event=row["event"].strip(),
                    field=row["field"].strip(),
                    reason=row["reason"],
                    by=(row.get("by") or "").strip() or by,
                    instance=(row.get("instance") or "").strip(),
                    origin=origin,
                )
    except FileNotFoundError:
        raise HektaError("file not found", Origin(file)) from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise HektaError(f"cannot read the file: {exc}", Origin(file)) from None
