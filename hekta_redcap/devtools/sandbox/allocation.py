"""What REDCap's randomization setup and allocation table upload pages do, for the local
server (`hekta-redcap sandbox allocation`): the API cannot set up randomization, so a person
does it in REDCap's web interface, and a developer does it here. For the demo's synthetic
history, a randomization can be moved to the day it stands for (`backdate`), and a value
changed as REDCap's data entry form would (`edit_in_form`).

The table is REDCap's upload format: CSV, a header naming the target field and then each
stratum (a field, or `redcap_data_access_group` for the record's data access group), one row
per slot with the fields' codes (unique group names for the DAG), slots in allocation order
within each stratum. The first upload of a target sets up its randomization (and enables the
module); later uploads (the other table, or a table not yet used) must name the same strata.
"""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

from hekta_redcap.core.errors import HektaError, Origin
from hekta_redcap.devtools.sandbox.models import ProjectModel, Randomization, now
from hekta_redcap.redcap.names import DAG

TARGET_TYPES = ("radio", "dropdown")  # what REDCap randomizes into
STRATUM_TYPES = ("radio", "dropdown", "yesno", "truefalse")  # what REDCap stratifies by


def upload(model: ProjectModel, file: Path, production: bool) -> tuple[Randomization, int]:
    """Load `file` as the project's development (or production) allocation table; returns
    its randomization and the number of slots. Raises HektaError naming the file, line and
    column of the first problem; nothing is loaded then."""
    header, rows = _read(file)
    codes = [_codes(model, name, i, file) for i, name in enumerate(header)]
    slots = []
    for line, row in rows:
        if len(row) != len(header):
            raise HektaError(
                f"{len(row)} values where the header names {len(header)}", Origin(file, line)
            )
        for i, (name, value) in enumerate(zip(header, row, strict=True)):
            if value not in codes[i]:
                raise HektaError(
                    f"column {i + 1} ({name}): '{value}' is not one of its codes "
                    f"({', '.join(codes[i])})",
                    Origin(file, line),
                )
        slots.append((row[0], row[1:]))
    randomization = _randomization(model, header, file)
    if model.allocation_in_use(randomization.rid, production):
        kind = "production" if production else "development"
        raise HektaError(
            f"the {kind} table of randomization {randomization.rid} is in use (records have "
            "been randomized with it), so it stays as it is",
            Origin(file),
        )
    model.replace_allocation(randomization.rid, production, slots)
    return randomization, len(slots)


def _read(file: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and the rows with their line numbers (blank lines skipped)."""
    with file.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        lines = [(reader.line_num, [v.strip() for v in row]) for row in reader if row]
    if len(lines) < 2:
        raise HektaError("an allocation table needs a header and at least one slot", Origin(file))
    (_, header), *rows = lines
    if len(set(header)) != len(header):
        raise HektaError(f"the header names a column twice: {', '.join(header)}", Origin(file, 1))
    return header, rows


def _codes(model: ProjectModel, name: str, index: int, file: Path) -> list[str]:
    """The codes a column may hold: the field's choice codes, or the unique group names."""
    where = Origin(file, 1)
    if name == DAG:
        if index == 0:
            raise HektaError(f"column 1: the target cannot be {DAG}", where)
        return sorted(model.dag_names().values())
    kinds = TARGET_TYPES if index == 0 else STRATUM_TYPES
    meta = model.fields.get(name)
    if meta is None:
        raise HektaError(f"column {index + 1}: '{name}' is not a field of the project", where)
    if meta["field_type"] not in kinds or model.event_holding(name) is None:
        raise HektaError(
            f"column {index + 1}: '{name}' must be a {' or '.join(kinds)} field collected at "
            "an event",
            where,
        )
    return [code for code, _ in model.choices(name)]


def _randomization(model: ProjectModel, header: list[str], file: Path) -> Randomization:
    """The randomization of the header's target, set up now when new."""
    target, strata = header[0], header[1:]
    found = next((r for r in model.randomizations if r.target == target), None)
    if found is None:
        return model.add_randomization(target, strata)
    if found.fields != header:
        raise HektaError(
            f"randomization {found.rid} of {target} has the columns {', '.join(found.fields)}, "
            f"not {', '.join(header)}",
            Origin(file, 1),
        )
    return found


def project_of(conn: sqlite3.Connection, token: str, variable: str, data: Path) -> ProjectModel:
    """The project a token opens on the local server whose data directory is `data`."""
    found = conn.execute("SELECT project_id FROM user WHERE token = ?", (token,)).fetchone()
    if found is None:
        raise HektaError(
            f"{variable} opens no project of the local server in {data}: "
            "run `hekta-redcap sandbox init` first"
        )
    return ProjectModel(conn, found[0])


# -- a synthetic history, for the demo ---------------------------------------------------------


def backdate(model: ProjectModel, record: str, day: str) -> None:
    """Move a record's randomization to `day` (YYYY-MM-DD): a synthetic cohort is entered and
    randomized in one go, but its participants were randomized over two years, on their
    randomization date. The randomization is logged at 10:00 that day and its slot taken
    then; what was logged for the record before it (the data entry it needed) at 09:00."""
    found = model.conn.execute(
        "SELECT log_id FROM log WHERE project_id = ? AND record = ? "
        "AND action LIKE 'Randomize record %'",
        (model.project_id, record),
    ).fetchone()
    if found is None:
        return
    model.conn.execute(
        "UPDATE log SET ts = CASE WHEN log_id = ? THEN ? ELSE ? END "
        "WHERE project_id = ? AND record = ? AND log_id <= ?",
        (found[0], f"{day} 10:00:00", f"{day} 09:00:00", model.project_id, record, found[0]),
    )
    model.conn.execute(
        "UPDATE allocation SET allocated = ? WHERE record = ? AND rid IN "
        "(SELECT rid FROM randomization WHERE project_id = ?)",
        (f"{day} 10:00:00", record, model.project_id),
    )


def edit_in_form(
    model: ProjectModel, record: str, event: str, field: str, value: str, user: str
) -> None:
    """Change a value as REDCap's data entry form does for someone allowed to (the API
    refuses to change a randomized record's group; an administrator's form does not), with
    the form's log entry."""
    found = model.event(event)
    event_id = found.event_id if found else 0
    model.set_value(record, event_id, field, value, user, "Update record", now())
