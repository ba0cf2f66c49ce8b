"""Benchmark: branching logic over 100,000 rows, vectorised next to the scalar evaluator.

Takes every distinct branching expression of one instrument from the definitions (AUDIT by
default: the skip logic over items 1-3), fills a frame with random choice codes for the fields
they read (10% blank), and times `logic_frame.evaluate_frame` + `truth` against
`logic.evaluate` + `is_true` called row by row, checking that both give the same answers.

    .venv/bin/python benchmarks/logic_frame.py [--form audit] [--rows 100000]
"""

from __future__ import annotations

import argparse
import random
import time

import pandas as pd

from hekta_redcap.definitions.study import load_project
from hekta_redcap.redcap import logic
from hekta_redcap.redcap.logic_frame import evaluate_frame, truth


def frame_for(expressions: list[str], rows: int, rng: random.Random) -> pd.DataFrame:
    """Random stored values (choice codes or blank) for every field the expressions read."""
    fields = load_project("hekta").field_map()
    data = {}
    for name in sorted({r.field for e in expressions for r in logic.references(logic.parse(e))}):
        instrument, field = fields[name]
        codes = [choice.code for choice in instrument.choices_of(field)] or ["1"]
        data[name] = [rng.choice(codes) if rng.random() > 0.1 else "" for _ in range(rows)]
    return pd.DataFrame(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--form", default="audit")
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    instrument = load_project("hekta").instruments[args.form]
    expressions = sorted({f.branching for f in instrument.fields if f.branching})
    frame = frame_for(expressions, args.rows, random.Random(5))
    records = frame.to_dict("records")
    print(f"{args.rows:,} rows; rows per second")
    print(f"{'vectorised':>12} {'scalar':>10} {'ratio':>7}  branching logic")
    for text in expressions:
        node = logic.parse(text)
        start = time.perf_counter()
        vector = truth(evaluate_frame(node, frame))
        vector_time = time.perf_counter() - start
        start = time.perf_counter()
        scalar = [
            logic.is_true(logic.evaluate(node, lambda ref, row=row: row[ref.field]))
            for row in records
        ]
        scalar_time = time.perf_counter() - start
        assert vector.tolist() == scalar, text
        print(
            f"{args.rows / vector_time:>12,.0f} {args.rows / scalar_time:>10,.0f} "
            f"{scalar_time / vector_time:>6,.0f}x  {text}"
        )


if __name__ == "__main__":
    main()
