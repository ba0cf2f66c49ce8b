"""What REDCap's randomization setup and allocation table upload pages do, for the local
server (`hekta-redcap sandbox allocation`): the API cannot set up randomization, so a person
does it in REDCap's web interface, and a developer does it here.

The table is REDCap's upload format: CSV, a header naming the target field and then each
stratum (a field, or `redcap_data_access_group` for the record's data access group), one row
per slot with the fields' codes (unique group names for the DAG), slots in allocation order
within each stratum. The first upload of a target sets up its randomization (and enables the
module); later uploads (the other table, or a table not yet used) must name the same strata.
"""

from __future__ import annotations

import csv
from pathlib import Path

from hekta_redcap.core.errors import HektaError, Origin
from hekta_redcap.devtools.sandbox.models import ProjectModel, Randomization
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
