"""The project design REDCap keeps outside the data dictionary: arms, events, the
instrument-event mapping and the repeating setup, in the shapes REDCap's API imports.

    >>> design = compile_design(load_project("hekta"))
    >>> design.events[0]["unique_event_name"]
    'baseline_arm_1'
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hekta_redcap.definitions.model import DEFAULT_LANGUAGE
from hekta_redcap.definitions.study import Project

Rows = list[dict[str, Any]]


@dataclass
class Design:
    """Rows for `import_arms`, `import_events`, `import_instrument_event_mappings` and
    `import_repeating_instruments_events` (empty lists for a classic project)."""

    arms: Rows
    events: Rows
    mapping: Rows
    repeating: Rows

    def files(self) -> dict[str, Rows]:
        return {
            "arms": self.arms,
            "events": self.events,
            "instrument_event_mapping": self.mapping,
            "repeating_instruments_events": self.repeating,
        }


def compile_design(project: Project, lang: str = DEFAULT_LANGUAGE) -> Design:
    study = project.study
    arms: Rows = [{"arm_num": a.num, "name": a.name} for a in study.arms]
    events: Rows = [
        {
            "event_name": e.name,
            "arm_num": e.arm,
            "unique_event_name": e.unique_name,
            "custom_event_label": (e.label.get(lang) or "") if e.label else "",
            **({"day_offset": e.day_offset} if e.day_offset is not None else {}),
            **({"offset_min": e.offset_min} if e.offset_min is not None else {}),
            **({"offset_max": e.offset_max} if e.offset_max is not None else {}),
        }
        for e in study.events
    ]
    mapping: Rows = [
        {"arm_num": e.arm, "unique_event_name": e.unique_name, "form": use.form}
        for e in study.events
        for use in study.instruments
        if e.unique_name in use.events
    ]
    repeating: Rows = []
    for use in study.instruments:
        if not use.repeating:
            continue
        label = use.repeat_label or ""
        if study.longitudinal:
            repeating += [
                {"event_name": e, "form_name": use.form, "custom_form_label": label}
                for e in use.events
            ]
        else:
            repeating.append({"form_name": use.form, "custom_form_label": label})
    repeating += [
        {"event_name": e, "form_name": "", "custom_form_label": ""} for e in study.repeating_events
    ]
    return Design(arms, events, mapping, repeating)


def write_design(design: Design, directory: Path) -> list[Path]:
    """Write each part as JSON (for the API) and CSV (for REDCap's upload pages)."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, rows in design.files().items():
        json_file = directory / f"{name}.json"
        json_file.write_text(json.dumps(rows, ensure_ascii=False, indent=1) + "\n", "utf-8")
        csv_file = directory / f"{name}.csv"
        with csv_file.open("w", newline="", encoding="utf-8") as out:
            columns = list(dict.fromkeys(k for row in rows for k in row))
            writer = csv.DictWriter(out, columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        written += [json_file, csv_file]
    return written
