"""The vectorised evaluator means, row for row, exactly what the scalar `logic.evaluate` means."""

from __future__ import annotations

import math
import random
from datetime import date, datetime

import numpy as np
import pandas as pd
import pytest

from hekta_redcap.redcap import logic
from hekta_redcap.redcap.logic_frame import column_resolver, evaluate_frame, truth

TODAY = datetime(2024, 3, 1, 14, 30, 15)
FIELDS = ("a", "b", "c", "t", "d1", "d2")
VALUES = (
    *("", " ", "0", "1", "2", "-1", "2.5", "-0.5", " 3 ", "10", "1e2", ".5", "0.1", "0.2"),
    *("0.3", "007", "1,5", "+4", "3.", "abc", "ABC", "Abc def", "a-b", "true", "x"),
    *("2024-02-29", "2023-12-31 08:30", "2024-01-01T06:00:30.5", "2024-13-01", "today", "NOW"),
    *("y", "M", "d", "h", "m", "s", "ymd", "dmy"),
)
CHECKBOX = ("0", "1", "", None)
NUMBERS = ("0", "1", "2", "2.5", ".5", "10", "0.1", "3")
STRINGS = ("''", "'0'", "'1'", "'abc'", "'B'", "'2024-01-01'", "'today'", "'d'", "'y'", "'true'")
OPERATORS = {
    "arithmetic": ("+", "-", "*", "/", "^"),
    "comparison": ("=", "==", "<>", "!=", "<", "<=", ">", ">="),
    "boolean": ("and", "or", "&&", "||"),
}
FUNCTIONS = sorted(set(logic._ARITY))


def random_frame(rng: random.Random, rows: int, index: pd.Index | None = None) -> pd.DataFrame:
    data: dict[str, list[str | None]] = {
        field: [rng.choice((*VALUES, None)) for _ in range(rows)] for field in FIELDS
    }
    data |= {f"cb___{code}": [rng.choice(CHECKBOX) for _ in range(rows)] for code in "12"}
    return pd.DataFrame(data, index=index, dtype=object)


class Generator:
    """Random logic text, each part parenthesised so that any combination parses."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def leaf(self) -> str:
        kind = self.rng.randrange(6)
        if kind < 3:
            return f"[{self.rng.choice(FIELDS)}]"
        if kind == 3:
            return f"[cb({self.rng.choice('12')})]"
        if kind == 4:
            return self.rng.choice(NUMBERS)
        return self.rng.choice((*STRINGS, "true", "false"))

    def expression(self, depth: int) -> str:
        if depth <= 0 or self.rng.random() < 0.25:
            return self.leaf()
        roll = self.rng.random()
        if roll < 0.35:
            return self.call(self.rng.choice(FUNCTIONS), depth)
        if roll < 0.45:
            return f"(-{self.expression(depth - 1)})"
        group = self.rng.choice(list(OPERATORS))
        return self.operator(self.rng.choice(OPERATORS[group]), depth)

    def operator(self, op: str, depth: int) -> str:
        if op in OPERATORS["boolean"]:
            count = self.rng.randint(2, 3)
            return "(" + f" {op} ".join(self.expression(depth - 1) for _ in range(count)) + ")"
        return f"({self.expression(depth - 1)} {op} {self.expression(depth - 1)})"

    def call(self, name: str, depth: int) -> str:
        least, most = logic._ARITY[name]
        count = self.rng.randint(least, most if most is not None else least + 3)
        args = [self.expression(depth - 1) for _ in range(count)]
        if name == "datediff":
            args[:2] = [
                self.rng.choice(("[d1]", "[d2]", "'today'", "'now'", arg)) for arg in args[:2]
            ]
            unit = args[2] if not isinstance(logic.parse(args[2]), logic.Literal) else "'d'"
            args[2] = self.rng.choice(("'y'", "'M'", "'d'", "'h'", "'m'", "'s'", "[t]", unit))
            if count >= 4 and self.rng.random() < 0.5:
                args[3] = self.rng.choice(("'ymd'", "'dmy'", "true", "'true'"))
        return f"{name}({', '.join(args)})"


def row_value(row: dict[str, str | None], ref: logic.Ref) -> str:
    """The scalar evaluator's view of one row: NA is blank, an unticked option is "0"."""
    column = ref.field if ref.code is None else f"{ref.field}___{ref.code}"
    value = row[column]
    text = "" if pd.isna(value) else str(value)
    return (text or "0") if ref.code is not None else text


def scalar(node: logic.Node, frame: pd.DataFrame) -> list[object]:
    """`logic.evaluate` row by row; None where it overflows (fsum raises, median gives inf)."""
    results: list[object] = []
    for row in frame.to_dict("records"):
        try:
            value = logic.evaluate(node, lambda ref, row=row: row_value(row, ref), today=TODAY)
        except OverflowError:
            value = None
        results.append(None if isinstance(value, float) and not math.isfinite(value) else value)
    return results


def assert_same(text: str, frame: pd.DataFrame) -> int:
    """Compare every row (value, type and truth); return how many rows were comparable."""
    node = logic.parse(text)
    vector = evaluate_frame(node, frame, today=TODAY)
    assert vector.dtype == object and vector.index.equals(frame.index)
    flags = truth(vector)
    compared = 0
    for position, expected in enumerate(scalar(node, frame)):
        if expected is None:
            continue
        got = vector.iloc[position]
        assert type(got) is type(expected) and got == expected, (text, position, got, expected)
        assert bool(flags.iloc[position]) is logic.is_true(expected), (text, position)
        compared += 1
    return compared


@pytest.mark.parametrize(
    "root", FUNCTIONS + [op for group in OPERATORS.values() for op in group] + ["-"]
)
def test_random_expressions_match_the_scalar_evaluator(root: str) -> None:
    """Every function and operator at the root of random trees over random rows with blanks."""
    rng = random.Random(f"logic-frame-{root}")
    generator = Generator(rng)
    frame = random_frame(rng, 150, index=pd.Index(rng.sample(range(1000), 150)))
    compared = 0
    for _ in range(30):
        if root in FUNCTIONS:
            text = generator.call(root, 3)
        elif root == "-":
            text = f"-{generator.expression(3)}"
        else:
            text = generator.operator(root, 3)
        compared += assert_same(text, frame)
    assert compared >= 0.99 * 30 * len(frame)  # overflow rows are rare


@pytest.mark.parametrize(
    "text",
    [
        "[a] <> '0' and ([b] <> '0' or [c] <> '0')",
        "sum([a], [b], [c]) >= 2 or [t] = '4'",
        "sum(0.1, 0.2, 0.3, [a])",
        "mean([a], [b], 0.1, 0.7)",
        "median([a], [b], [c], 0.1)",
        "stdev([a], [b], [c], 0.1)",
        "round([a] * 1.005, 2) + roundup([b] / 3, 1) - rounddown([c], -1)",
        "[a] ^ [b]",
        "exponential([a]) + log([b], [c])",
        "if([cb(1)] = '1', [a], if([cb(2)], [t], [d1] > [d2]))",
        "datediff([d1], [d2], [t], [a])",
        "concat(upper([t]), left([a], [b]), mid([t], [a], [b]))",
        "year([d1]) + month([d1]) + day([d2])",
    ],
)
def test_typical_expressions_match_on_larger_frames(text: str) -> None:
    frame = random_frame(random.Random(text), 600)
    assert assert_same(text, frame) >= 0.99 * len(frame)


def test_string_dtype_and_na_read_as_blank() -> None:
    frame = pd.DataFrame({"a": ["1", None, "", " 2 "]}, dtype="str")
    result = evaluate_frame(logic.parse("[a] = ''"), frame)
    assert result.tolist() == [False, True, True, False]
    assert evaluate_frame(logic.parse("[a] + 1"), frame).tolist() == [2.0, "", "", 3.0]


def test_sums_are_exact_like_fsum() -> None:
    frame = pd.DataFrame({"a": ["0.1", "1e16", "3"]})
    result = evaluate_frame(logic.parse("sum([a], 0.2, 0.3)"), frame)
    assert result.tolist() == [math.fsum([0.1, 0.2, 0.3]), math.fsum([1e16, 0.2, 0.3]), 3.5]
    assert result[0] != 0.1 + 0.2 + 0.3  # plain float addition would differ
    big = pd.DataFrame({"a": [str(2**53)]})  # integers, but past where floats add exactly
    assert evaluate_frame(logic.parse("sum([a], 1, 1)"), big).tolist() == [float(2**53 + 2)]


def test_false_and_zero_stay_apart_in_text_functions() -> None:
    """False == 0.0 in Python, but false prints as "" and 0 as "0"."""
    frame = pd.DataFrame({"a": ["1", "3", "1", "3"]})
    text = "concat(if([a] = '1', [a] = '2', [a] - [a]), '|')"
    assert evaluate_frame(logic.parse(text), frame).tolist() == ["|", "0|", "|", "0|"]
    assert assert_same(text, frame) == len(frame)


def test_overflow_is_blank() -> None:
    frame = pd.DataFrame({"a": ["1e308", "1"]})
    result = evaluate_frame(logic.parse("sum([a], [a])"), frame)
    assert result.tolist() == ["", 2.0]
    assert evaluate_frame(logic.parse("median([a], [a] * 1.5)"), frame).tolist() == ["", 1.25]


# -- references ---------------------------------------------------------------------------------


def test_checkbox_references_read_redcaps_column_names() -> None:
    frame = pd.DataFrame({"sx____99": ["1", "0", ""], "sx___a": ["0", "1", None]})
    resolve = column_resolver(frame)
    assert resolve(logic.Ref("sx", code="-99")).tolist() == ["1", "0", "0"]
    result = evaluate_frame(logic.parse("[sx(-99)] = '1' or [sx(A)] = '1'"), frame)
    assert result.tolist() == [True, True, False]
    assert evaluate_frame(logic.parse("[sx(A)] = '0'"), frame).tolist() == [True, False, True]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[base][a] = 1", "[base][a] needs more than the row"),
        ("[a][2] = 1", "[a][2] needs more than the row"),
        ("[a][current-instance] = 1", "needs more than the row"),
        ("[record-name] = '1'", "[record-name] needs more than the row"),
        ("[a:label] = 'x'", "[a:label] needs more than the row"),
        ("[nope] = 1", "[nope]: no column 'nope' in the data"),
        ("[cb(9)] = 1", "[cb(9)]: no column 'cb___9' in the data"),
    ],
)
def test_the_default_resolver_refuses_what_a_row_cannot_answer(text: str, message: str) -> None:
    frame = pd.DataFrame({"a": ["1"], "cb___1": ["1"]})
    with pytest.raises(logic.LogicError) as caught:
        evaluate_frame(logic.parse(text), frame)
    assert message in str(caught.value)
    assert evaluate_frame(logic.parse("[a:value] = 1"), frame).tolist() == [True]


def test_a_caller_resolves_events_and_smart_variables() -> None:
    frame = pd.DataFrame({"w": ["70", "", "80"]}, index=["r1", "r2", "r3"])
    base = pd.Series({"r3": "60", "r1": "50", "r2": "55"})  # another order: aligned by index
    default = column_resolver(frame)

    def resolve(ref: logic.Ref) -> pd.Series:
        if ref.smart == "record-name":
            return pd.Series(frame.index, index=frame.index)
        if ref.event == "base":
            return base
        return default(ref)

    tree = logic.parse("if([w] <> '', [w] - [base][w], concat([record-name], ' blank'))")
    result = evaluate_frame(tree, frame, resolve)
    assert result.to_dict() == {"r1": 20.0, "r2": "r2 blank", "r3": 20.0}


def test_a_branch_no_row_takes_is_not_resolved() -> None:
    frame = pd.DataFrame({"yes": ["1", "1"], "a": ["x", "y"]})
    asked: list[str | None] = []
    default = column_resolver(frame)

    def resolve(ref: logic.Ref) -> pd.Series:
        asked.append(ref.field)
        return default(ref)

    assert evaluate_frame(logic.parse("if([yes], [a], [gone])"), frame, resolve).tolist() == [
        "x",
        "y",
    ]
    assert evaluate_frame(logic.parse("[yes] or [gone]"), frame, resolve).tolist() == [True] * 2
    assert "gone" not in asked


def test_today_and_now() -> None:
    frame = pd.DataFrame({"d": ["2024-02-29", "2024-03-01 06:00", ""]})
    days = evaluate_frame(logic.parse("datediff([d], 'today', 'd', true)"), frame, today=TODAY)
    assert days.tolist() == [1.0, -0.25, ""]
    hours = evaluate_frame(logic.parse("datediff([d], 'now', 'h')"), frame, today=TODAY)
    assert hours.tolist() == [24 + 14.5 + 15 / 3600, 8.5 + 15 / 3600, ""]
    on_date = evaluate_frame(
        logic.parse("datediff([d], 'today', 'd')"), frame, today=date(2024, 3, 2)
    )
    assert on_date.tolist() == [2.0, 0.75, ""]


def test_empty_frame() -> None:
    frame = pd.DataFrame({"a": pd.Series([], dtype=object)})
    for text in (
        "[a] = 1",
        "sum([a], 1)",
        "upper([a])",
        "if([a], 1, 2)",
        "datediff([a], 'today', 'd')",
    ):
        result = evaluate_frame(logic.parse(text), frame)
        assert len(result) == 0 and result.dtype == object


# -- truth --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (pd.Series([True, False]), [True, False]),
        (pd.Series([True, None, False], dtype="boolean"), [True, False, False]),
        (pd.Series([1.0, 0.0, np.nan, -0.5, np.inf]), [True, False, False, True, False]),
        (pd.Series([3, 0], dtype="Int64"), [True, False]),
        (pd.Series([1, 0, pd.NA], dtype="Int64"), [True, False, False]),
        (
            pd.Series(["1", " 2.5 ", "0", "0.0", "", "abc", "true", None]),
            [True, True] + [False] * 6,
        ),
        (pd.Series(["1", None, "0"], dtype="str"), [True, False, False]),
        (
            pd.Series([True, 1.0, "", 0.0, False, "x", "-1"], dtype=object),
            [True, True] + [False] * 4 + [True],
        ),
    ],
)
def test_truth(values: pd.Series, expected: list[bool]) -> None:
    result = truth(values)
    assert result.dtype == bool and result.tolist() == expected
    assert result.index.equals(values.index)
