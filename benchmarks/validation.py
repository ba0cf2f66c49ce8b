"""Benchmark: validate a 100,000-row × 150-column export, vectorised and row by row.

Builds a definitions-like project in memory (5 forms of 30 export columns: integers, numbers and
dates with ranges, radios, yes/no, a checkbox, free text, a calculation; branching on a yes/no
gate; 3 events, every form at every event) and a synthetic export with a sprinkling of every
kind of problem. It times `validate_records` (pandera schemas, vectorised logic, typed cast and
the problem list with its messages) next to a plain row-by-row Python loop doing the same checks
with the scalar logic evaluator, checks that both find the same problems, and prints rows per
second and their ratio.

    .venv/bin/python benchmarks/validation.py [--rows 100000] [--loop-rows N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path

import numpy as np
import pandas as pd

from hekta_redcap.definitions.instruments import Instrument
from hekta_redcap.definitions.study import Project, Study
from hekta_redcap.redcap import logic
from hekta_redcap.redcap.fieldtypes import checkbox_column, is_valid, parse_bound
from hekta_redcap.validation import validate_records
from hekta_redcap.validation.problems import RULES

FORMS = 5
EVENTS = ("baseline_arm_1", "followup_1_arm_1", "followup_2_arm_1")
CODES = ("UNK", "NASK")
TODAY = dt.date(2026, 6, 1)
CHOICES = [{"code": c, "label": f"Option {c}"} for c in range(5)]


def form(n: int) -> dict[str, object]:
    """One form of 30 export columns (the checkbox gives 4)."""
    p, gate = f"f{n}_", f"[f{n}_gate] = '1'"
    fields: list[dict[str, object]] = [{"name": f"{p}gate", "type": "yesno", "required": True}]
    fields += [
        {
            "name": f"{p}int{i}",
            "type": "text",
            "validation": "integer",
            "min": 0,
            "max": 100,
            "required": i <= 3,
        }
        for i in range(1, 7)
    ]
    fields += [
        {
            "name": f"{p}num{i}",
            "type": "text",
            "validation": "number_1dp",
            "min": "0.0",
            "max": "50.0",
        }
        for i in range(1, 5)
    ]
    fields += [
        {
            "name": f"{p}date{i}",
            "type": "text",
            "validation": "date_ymd",
            "min": "2020-01-01",
            "max": "today",
        }
        for i in range(1, 5)
    ]
    fields += [
        {"name": f"{p}radio{i}", "type": "radio", "choices": CHOICES, "required": True}
        | ({"branching": gate} if i > 4 else {})
        for i in range(1, 9)
    ]
    fields += [{"name": f"{p}text{i}", "type": "text", "branching": gate} for i in (1, 2)]
    fields += [{"name": f"{p}calc", "type": "calc", "calc": f"[{p}int1] + [{p}int2]"}]
    fields += [{"name": f"{p}cb", "type": "checkbox", "choices": CHOICES[:4]}]
    if n == 1:
        fields.insert(0, {"name": "record_id", "type": "text"})
    spec = {"form": f"form_{n}", "label": f"Form {n}", "licence": "ship_text"}
    return spec | {"translation": "draft", "fields": fields}


def project() -> Project:
    study = Study.model_validate(
        {
            "project": "bench",
            "title": "Benchmark",
            "record_id": "record_id",
            "events": [{"name": e, "unique_name": e} for e in EVENTS],
            "instruments": [{"form": f"form_{n}", "events": list(EVENTS)} for n in range(1, 6)],
            "missing_data_codes": [{"code": c, "label": c} for c in CODES],
        }
    )
    instruments = {f"form_{n}": Instrument.model_validate(form(n)) for n in range(1, FORMS + 1)}
    return Project(study, instruments, Path("."))


def export(proj: Project, rows: int, rate: float, seed: int = 1) -> pd.DataFrame:
    """A flat export with a share `rate` of cells wrong in each way (wrong type, out of range,
    not a choice, a missing data code, a wrong calculation), and ten times that blank or
    holding a value while hidden."""
    rng = np.random.default_rng(seed)
    records = -(-rows // len(EVENTS))
    columns: dict[str, np.ndarray] = {
        "record_id": np.repeat(np.arange(1, records + 1).astype(str), len(EVENTS))[:rows],
        "redcap_event_name": np.tile(np.array(EVENTS), records)[:rows],
    }

    def pick(share: float) -> np.ndarray:
        return rng.random(rows) < share

    for inst, field in proj.fields():
        name, validation = field.name, field.validation
        if name == "record_id":
            continue
        if field.type == "checkbox":
            for choice in inst.choices_of(field):
                column = rng.integers(0, 2, rows).astype(str).astype(object)
                column[pick(rate)] = "x"
                columns[checkbox_column(name, choice.code)] = column
            continue
        if validation == "integer":
            values = rng.integers(0, 101, rows).astype(str).astype(object)
            values[pick(rate)] = "150"
        elif validation == "number_1dp":
            values = np.char.mod("%.1f", rng.uniform(0, 50, rows)).astype(object)
            values[pick(rate)] = "12.34"
        elif validation == "date_ymd":
            days = rng.integers(0, 2000, rows)
            values = np.datetime_as_string(np.datetime64("2020-06-01") + days).astype(object)
            values[pick(rate)] = "2024-02-30"
        elif field.type in ("radio", "yesno"):
            top = 5 if field.type == "radio" else 2
            values = rng.integers(0, top, rows).astype(str).astype(object)
            values[pick(rate)] = "7"
        else:
            values = np.full(rows, "some text", dtype=object)
        if field.type != "calc":
            values[pick(10 * rate)] = ""
            values[pick(rate)] = CODES[0]
        columns[name] = values
    frame = pd.DataFrame(columns)
    for n in range(1, FORMS + 1):
        p = f"f{n}_"
        a = pd.to_numeric(frame[f"{p}int1"], errors="coerce")
        b = pd.to_numeric(frame[f"{p}int2"], errors="coerce")
        total = (a + b).map(lambda x: "" if np.isnan(x) else str(int(x)))
        total[pick(rate)] = "999"
        frame[f"{p}calc"] = total
        hidden = frame[f"{p}gate"] != "1"
        for field in [f"{p}radio{i}" for i in range(5, 9)] + [f"{p}text1", f"{p}text2"]:
            frame.loc[hidden & ~pick(10 * rate), field] = ""  # some keep a value while hidden
        frame[f"form_{n}_complete"] = "2"
    return frame


# -- the plain loop -----------------------------------------------------------------------------


def loop(proj: Project, frame: pd.DataFrame) -> set[tuple[str, str, str, str]]:
    """The same checks one row and one field at a time, with the scalar logic evaluator."""
    codes = {m.code for m in proj.study.missing_data_codes}
    fields = []
    for inst, field in proj.fields():
        if field.name == "record_id":
            continue
        codes_of = [c.code for c in inst.choices_of(field)]
        options = [checkbox_column(field.name, c) for c in codes_of if field.type == "checkbox"]
        choices = set(codes_of if field.type == "radio" else []) | (
            {"0", "1"} if field.type == "yesno" else set()
        )
        validation = "number" if field.type == "calc" else field.validation
        low = parse_bound(validation, field.min, TODAY) if field.min else None
        high = parse_bound(validation, field.max, TODAY) if field.max else None
        branching = logic.parse(field.branching) if field.branching else None
        calc = logic.parse(field.calc) if field.calc else None
        fields.append((field, options, choices, validation, low, high, branching, calc))
    found: dict[tuple[int, str], list[str]] = {}
    numbers: dict[str, list[tuple[int, float]]] = {}
    rows = frame.to_dict("records")
    for i, row in enumerate(rows):

        def resolve(ref: logic.Ref, row: dict[str, str] = row) -> str:
            if ref.code is not None:
                return row.get(checkbox_column(str(ref.field), ref.code)) or "0"
            return row.get(str(ref.field), "")

        for field, options, choices, validation, low, high, branching, calc in fields:
            name, hits = field.name, []
            shown = branching is None or logic.is_true(logic.evaluate(branching, resolve))
            if options:
                ticked = [row[c] for c in options]
                hits += ["choice" for v in ticked if v not in ("0", "1")]
                value = ",".join(c for c, v in zip(options, ticked, strict=True) if v == "1")
                has = any(v not in ("", "0") for v in ticked)
            else:
                value = row[name]
                has = value != ""
            if calc is not None:
                expected = logic.evaluate(calc, resolve)
                if shown and not _same(value, expected):
                    hits.append("calc-mismatch")
            elif has and not shown:
                hits.append("hidden-value")
            elif value in codes:
                hits.append("missing-code")
            elif not has and shown:
                hits.append("required" if field.required else "blank")
            if value and value not in codes and not options:
                if choices:
                    hits += [] if value in choices else ["choice"]
                elif validation and not is_valid(validation, value):
                    hits.append("type")
                elif validation:
                    number = parse_bound(validation, value, TODAY)
                    if (low is not None and number < low) or (high is not None and number > high):
                        hits.append("range")
                    if isinstance(number, int | float):
                        numbers.setdefault(name, []).append((i, float(number)))
            if hits:
                found[(i, name)] = hits
    for name, values in numbers.items():
        series = np.array([v for _, v in values])
        mean, sd = series.mean(), series.std(ddof=1)
        for i, number in values:
            if abs(number - mean) > 2 * sd:
                found.setdefault((i, name), []).append("outlier")
    order = list(RULES)
    return {
        (rows[i]["record_id"], rows[i]["redcap_event_name"], name, min(hits, key=order.index))
        for (i, name), hits in found.items()
    }


def _same(stored: str, expected: object) -> bool:
    if expected == "" or stored == "":
        return expected == stored
    try:
        return abs(float(stored) - float(expected)) <= 1e-6 * max(1.0, abs(float(expected)))
    except ValueError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--loop-rows", type=int, help="rows for the loop (default: all)")
    parser.add_argument("--error-rate", type=float, default=0.001, help="share of wrong cells")
    args = parser.parse_args()
    proj = project()
    frame = export(proj, args.rows, args.error_rate)
    columns = frame.shape[1] - 2 - FORMS  # without record id, event and form status
    print(f"export: {len(frame):,} rows x {columns} columns ({len(EVENTS)} events, {FORMS} forms)")
    start = time.perf_counter()
    result = validate_records(proj, frame, today=TODAY)
    vectorised = time.perf_counter() - start
    sample = frame.head(args.loop_rows or len(frame))
    start = time.perf_counter()
    looped = loop(proj, sample)
    plain = time.perf_counter() - start
    found = set(result.problems[["record", "event", "field", "rule"]].itertuples(index=False))
    fast, slow = len(frame) / vectorised, len(sample) / plain
    print(f"  validate_records (vectorised): {vectorised:8.2f} s {fast:>12,.0f} rows/s")
    print(f"  row-by-row Python loop:        {plain:8.2f} s {slow:>12,.0f} rows/s")
    print(f"  ratio:                         {fast / slow:8.1f} x")
    same = "yes" if found == looped else "NO"
    same = same if len(sample) == len(frame) else "not compared (the loop saw a sample)"
    print(f"  problems: {len(result.problems):,}; both find the same: {same}")


if __name__ == "__main__":
    main()
