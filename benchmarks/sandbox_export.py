"""Benchmark: export a large longitudinal project from the local REDCap-compatible server.

Builds 10,000 records × 3 events × 150 fields (5 forms of 30 fields: text, integers, numbers,
dates, radios), then times PyCap's `export_records` over real HTTP next to the floor: producing
the same JSON with `json.dumps` of the rows. The server's overhead is their ratio.

    .venv/bin/python benchmarks/sandbox_export.py [--records 10000]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import redcap

from hekta_redcap.devtools.sandbox.models import (
    METADATA_COLUMNS,
    DataRow,
    add_user,
    create_project,
    creator_rights,
    new_token,
)
from hekta_redcap.devtools.sandbox.server import SandboxServer, running

FORMS = 5
FIELDS_PER_FORM = 30
EVENTS = ("baseline", "followup 6m", "followup 12m")
KINDS = ("text", "integer", "number", "date_ymd", "radio")


def dictionary() -> list[dict[str, str]]:
    rows = [{"field_name": "record_id", "form_name": "form_1", "field_type": "text"}]
    for form in range(1, FORMS + 1):
        for i in range(1, FIELDS_PER_FORM + (0 if form == 1 else 1)):
            kind = KINDS[i % len(KINDS)]
            row = {"field_name": f"f{form}_{i}", "form_name": f"form_{form}"}
            if kind == "radio":
                row |= {
                    "field_type": "radio",
                    "select_choices_or_calculations": "1, A | 2, B | 3, C",
                }
            else:
                row |= {"field_type": "text"}
                if kind != "text":
                    row["text_validation_type_or_show_slider_number"] = kind
            rows.append(row)
    return [{c: r.get(c, "") for c in METADATA_COLUMNS} for r in rows]


def value(kind: str, rng: random.Random) -> str:
    match kind:
        case "integer":
            return str(rng.randint(0, 100))
        case "number":
            return f"{rng.uniform(0, 100):.2f}"
        case "date_ymd":
            return f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        case "radio":
            return str(rng.randint(1, 3))
        case _:
            return rng.choice(("yes", "no", "maybe so", "ikke aktuelt"))


def build(server: SandboxServer, records: int) -> str:
    rng = random.Random(1)
    rows = dictionary()
    kinds = {
        r["field_name"]: r["text_validation_type_or_show_slider_number"]
        or ("radio" if r["field_type"] == "radio" else "text")
        for r in rows
    }
    token = new_token()
    with server.store.transaction() as conn:
        model = create_project(conn, {"project_title": "Benchmark", "is_longitudinal": 1})
        model.replace_metadata(rows)
        model.save_arm(1, "Arm 1")
        event_ids = [model.save_event(None, 1, name) for name in EVENTS]
        model.replace_mapping((e, f) for e in event_ids for f in model.forms)
        add_user(conn, model.project_id, "bench", creator_rights(model.forms), token)
        for record in range(1, records + 1):
            for event_id in event_ids:
                values = {name: value(kind, rng) for name, kind in kinds.items()}
                values["record_id"] = str(record)
                values |= {f"{form}_complete": "2" for form in model.forms}
                model.save_row(DataRow(str(record), event_id, "", 0, values))
            model.touch_record(str(record), "2026-01-01 00:00:00")
    return token


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, running(Path(tmp)) as server:
        start = time.perf_counter()
        token = build(server, args.records)
        built = time.perf_counter() - start
        project = redcap.Project(server.url, token)
        start = time.perf_counter()
        rows = project.export_records(format_type="json")
        exported = time.perf_counter() - start
        start = time.perf_counter()
        text = json.dumps(rows, ensure_ascii=False, separators=(",", ":"))
        floor = time.perf_counter() - start
        start = time.perf_counter()
        project.export_records(format_type="csv")
        csv_time = time.perf_counter() - start
    values = len(rows) * (len(rows[0]) if rows else 0)
    print(f"project: {args.records} records x {len(EVENTS)} events x {len(rows[0]) - 2} fields")
    size = len(text) / 1e6
    print(f"  rows exported:               {len(rows):>10,}  ({values:,} values, {size:.0f} MB)")
    print(f"  build (direct to store):     {built:>10.2f} s")
    print(f"  PyCap export_records (json): {exported:>10.2f} s")
    print(f"  floor: json.dumps of rows:   {floor:>10.2f} s")
    print(f"  overhead ratio (json):       {exported / floor:>10.1f} x")
    print(f"  PyCap export_records (csv):  {csv_time:>10.2f} s")


if __name__ == "__main__":
    main()
