"""REDCap logic: parse trees, errors with columns, and evaluation semantics."""

from __future__ import annotations

import pickle
from datetime import date, datetime

import pytest

from hekta_redcap.redcap.logic import (
    Binary,
    BoolOp,
    Call,
    Compare,
    Literal,
    LogicError,
    Node,
    Ref,
    Unary,
    evaluate,
    is_true,
    parse,
    references,
)

TODAY = date(2024, 3, 1)


def run(text: str, **values: str) -> object:
    """Evaluate with plain fields (and smart variables, by name) looked up in `values`."""
    return evaluate(
        parse(text), lambda ref: values.get(ref.field or ref.smart or "", ""), today=TODAY
    )


def eq(left: Node, right: Node) -> Compare:
    return Compare("=", left, right)


# -- parse trees --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        (
            "[audit_1] = '0' or ([audit_2] = '0' and [audit_3] = '0')",
            BoolOp(
                "or",
                (
                    eq(Ref("audit_1"), Literal("0")),
                    BoolOp(
                        "and", (eq(Ref("audit_2"), Literal("0")), eq(Ref("audit_3"), Literal("0")))
                    ),
                ),
            ),
        ),
        (
            "[baseline_arm_1][rand_date] <> ''",
            Compare("<>", Ref("rand_date", event="baseline_arm_1"), Literal("")),
        ),
        ("[cb(3)] = '1'", eq(Ref("cb", code="3"), Literal("1"))),
        (
            "datediff([a],[b],'d','dmy') >= 0",
            Compare(
                ">=",
                Call("datediff", (Ref("a"), Ref("b"), Literal("d"), Literal("dmy"))),
                Literal(0.0),
            ),
        ),
        (
            "IF([x] > 1, [x]*2, 0)",
            Call(
                "if",
                (
                    Compare(">", Ref("x"), Literal(1.0)),
                    Binary("*", Ref("x"), Literal(2.0)),
                    Literal(0.0),
                ),
            ),
        ),
        (
            '[a] == "x" AND [b] != .5',
            BoolOp("and", (eq(Ref("a"), Literal("x")), Compare("<>", Ref("b"), Literal(0.5)))),
        ),
        (
            "[a] && [b] and ([c] AND [d]) || [e] Or [f]",
            BoolOp(
                "or", (BoolOp("and", (Ref("a"), Ref("b"), Ref("c"), Ref("d"))), Ref("e"), Ref("f"))
            ),
        ),
        ("true or False", BoolOp("or", (Literal(True), Literal(False)))),
        ("[visit][weight][2]", Ref("weight", event="visit", instance="2")),
        ("[weight][current-instance]", Ref("weight", instance="current-instance")),
        ("[previous-event-name][weight]", Ref("weight", event="previous-event-name")),
        ("[sex:label]", Ref("sex", modifier="label")),
        ("[sx(-99):checked]", Ref("sx", code="-99", modifier="checked")),
        ("[record-dag-name]", Ref(None, smart="record-dag-name")),
        ("not_contain([a], 'x')", Call("not_contain", (Ref("a"), Literal("x")))),
        ("\n  [a]\n\t=\n1  ", eq(Ref("a"), Literal(1.0))),
    ],
)
def test_parse_tree(text: str, tree: Node) -> None:
    assert parse(text) == tree


def test_precedence_tree() -> None:
    # ^ binds tighter than unary minus, * tighter than +, comparison tighter than and/or.
    assert parse("-2 ^ 2") == Unary("-", Binary("^", Literal(2.0), Literal(2.0)))
    assert parse("2 ^ -1") == Binary("^", Literal(2.0), Unary("-", Literal(1.0)))
    assert parse("[a] = 1 or [b] = 1 and [c] = 1") == BoolOp(
        "or",
        (
            eq(Ref("a"), Literal(1.0)),
            BoolOp("and", (eq(Ref("b"), Literal(1.0)), eq(Ref("c"), Literal(1.0)))),
        ),
    )


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1 + 2 * 3 ^ 2", 19.0),
        ("-2 ^ 2", -4.0),
        ("2 ^ 3 ^ 2", 512.0),
        ("10 - 4 - 3", 3.0),
        ("8 / 4 / 2", 1.0),
        ("(1 + 2) * 3", 9.0),
        ("2 * -3", -6.0),
    ],
)
def test_precedence_and_associativity(text: str, value: float) -> None:
    assert run(text) == value


def test_parse_is_cached_and_tree_hashable() -> None:
    assert parse("[a] = 1") is parse("[a] = 1")
    assert len({parse("[a] = 1"), parse("[a]=1")}) == 1


def test_references_in_source_order() -> None:
    tree = parse("if([b] > sum([a], [e1][c(2)]), [record-name], [a][3]) = [b]")
    assert references(tree) == [
        Ref("b"),
        Ref("a"),
        Ref("c", event="e1", code="2"),
        Ref(None, smart="record-name"),
        Ref("a", instance="3"),
        Ref("b"),
    ]
    assert references(parse("1 + 2")) == []


# -- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "column", "message"),
    [
        ("[a] = 1)", 8, "unexpected ')'"),
        ("([a] = 1", 1, "unclosed '('"),
        ("sum(1, (2 + 3)", 4, "unclosed '('"),
        ("[a = 1", 1, "unclosed '['"),
        ("[a]] = 1", 4, "unmatched ']'"),
        ("[a] = 'x", 7, "unclosed quote"),
        ("[a] = foo(1)", 7, "unknown function foo()"),
        ("if([a], 1)", 1, "if() takes 3, got 2 arguments"),
        ("datediff([a], [b])", 1, "datediff() takes 3 to 5"),
        ("sum()", 1, "at least 1"),
        ("datediff([a], [b], 'w')", 1, "unit"),
        ("[a] = [foo-bar]", 7, "unknown smart variable [foo-bar]"),
        ("[Foo] = 1", 1, "invalid field name 'Foo'"),
        ("[e1][2x] = 1", 5, "invalid field name '2x'"),
        ("[a:wrong]", 1, "unknown modifier"),
        ("[record-name][a]", 1, "cannot stand for an event"),
        ("[a][0]", 4, "numbered from 1"),
        ("[a] = 1 and not [b] = 1", 13, "no 'not'"),
        ("NOT([a])", 1, "no 'not'"),
        ("[a] = 1 +", 10, "ends where a value is expected"),
        ("[a] = = 1", 7, "unexpected '=', expected a value"),
        ("[a] [b]", 5, "expected an operator"),
        ("[a] = yes", 7, "bare word 'yes'"),
        ("1 < 2 < 3", 7, "unexpected '<'"),
        ("[a] = #", 7, "unexpected character '#'"),
        ("[a]\n= 1)", 8, "unexpected ')'"),
        ("", None, "empty logic"),
        ("  \n ", None, "empty logic"),
    ],
)
def test_errors(text: str, column: int | None, message: str) -> None:
    with pytest.raises(LogicError) as caught:
        parse(text)
    assert caught.value.column == column
    assert message in caught.value.message
    assert caught.value.expression == text


def test_error_text_is_one_short_line() -> None:
    with pytest.raises(LogicError) as caught:
        parse("[a] = 1\n and [b] = 2)")
    assert str(caught.value) == "column 21: unexpected ')' in [a] = 1  and [b] = 2)"
    assert isinstance(caught.value, ValueError)
    assert str(pickle.loads(pickle.dumps(caught.value))) == str(caught.value)


# -- evaluation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Blanks: arithmetic and undefined results are blank, not errors.
        ("[x] + 1", ""),
        ("[x] * 2", ""),
        ("-[x]", ""),
        ("[x] ^ 2", ""),
        ("[t] + 1", ""),
        ("1 / 0", ""),
        ("[n] / [z]", ""),
        ("sqrt(-1)", ""),
        ("log(0)", ""),
        # Blanks in comparisons.
        ("[x] = 0", False),
        ("[x] <> 0", True),
        ("[x] = ''", True),
        ("[n] = ''", False),
        ("[x] <> ''", False),
        ("[x] < 5", False),
        ("[x] >= 0", False),
        ("5 > [x]", False),
        # Numeric when both sides look numeric, text otherwise.
        ("'10' > '9'", True),
        ("[n] = '4.0'", True),
        ("[n] = ' 4 '", True),
        ("'abc' < 'abd'", True),
        ("'2024-01-05' < '2024-01-10'", True),
        ("[t] = 'ABC'", False),
        ("[t] = 'abc'", True),
        ("[t] > 5", True),
        # Boolean operators give bools from REDCap truthiness.
        ("[n] and [t]", False),
        ("[n] or [t]", True),
        ("true && 1", True),
        # Functions.
        ("sum([x], 2, [n], '')", 6.0),
        ("mean([x], 2, 4)", 3.0),
        ("median(3, [x], 1, 2, 10)", 2.5),
        ("min([x], 3, -1)", -1.0),
        ("max([x], 3, -1)", 3.0),
        ("round(stdev(2, 4, 4, 4, 5, 5, 7, 9), 4)", 2.1381),
        ("stdev(4, [x])", ""),
        ("sum([x], '')", ""),
        ("sum([t], 1)", ""),
        ("round(2.5)", 3.0),
        ("round(-2.5)", -3.0),
        ("round(2.675, 2)", 2.68),
        ("round(1234.5, -2)", 1200.0),
        ("roundup(1.21, 1)", 1.3),
        ("roundup(-1.21, 1)", -1.3),
        ("rounddown(-1.29, 1)", -1.2),
        ("round([x], 1)", ""),
        ("sqrt(16) + abs(-2)", 6.0),
        ("round(exponential(1), 5)", 2.71828),
        ("log(100, 10)", 2.0),
        ("isnumber('1.5e3')", True),
        ("isnumber([t])", False),
        ("isinteger('12')", True),
        ("isinteger('12.5')", False),
        ("isblankormissingcode([x])", True),
        ("isblankormissingcode('0')", False),
        ("contains([t], 'B')", True),
        ("not_contain([t], 'z')", True),
        ("starts_with([t], 'AB')", True),
        ("ends_with([t], 'x')", False),
        ("left([t], 2)", "ab"),
        ("right([t], 2)", "bc"),
        ("mid('abcdef', 2, 3)", "bcd"),
        ("length([t])", 3.0),
        ("find('C', [t])", 3.0),
        ("find('z', [t])", 0.0),
        ("upper([t])", "ABC"),
        ("lower('AbC')", "abc"),
        ("trim('  a ')", "a"),
        ("concat([t], '-', [n], [x])", "abc-4"),
        ("replace_text('a-b-c', '-', '/')", "a/b/c"),
        ("year([d]) + month([d]) + day([d])", 2024 + 2 + 29.0),
        ("year([x])", ""),
    ],
)
def test_evaluate(text: str, expected: object) -> None:
    assert run(text, n="4", z="0", t="abc", d="2024-02-29") == expected


def test_checkbox_and_event_references() -> None:
    data = {Ref("cb", code="1"): "1", Ref("cb", code="2"): "0", Ref("w", event="base"): "70"}

    def resolve(ref: Ref) -> str:
        return data.get(ref, "")

    assert evaluate(parse("[cb(1)] = '1' and [cb(2)] = '0'"), resolve) is True
    assert evaluate(parse("[cb(2)] = 1 or [cb(3)] = 1"), resolve) is False
    assert evaluate(parse("[base][w] * 2"), resolve) == 140.0


def test_if_and_boolean_operators_are_lazy() -> None:
    seen: list[str] = []

    def resolve(ref: Ref) -> str:
        seen.append(ref.field or "")
        return {"yes": "1", "d": "0", "n": "5"}.get(ref.field or "", "")

    assert evaluate(parse("if([yes], [a], [b])"), resolve) == ""
    assert evaluate(parse("[yes] or [c]"), resolve) is True
    assert evaluate(parse("[no] and [e]"), resolve) is False
    assert evaluate(parse("if([d] = 0, 'none', [n] / [d])"), resolve) == "none"
    assert seen == ["yes", "a", "yes", "no", "d"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("datediff('2024-01-01', '2024-01-31', 'd')", 30.0),
        ("datediff('2024-01-31', '2024-01-01', 'd')", 30.0),
        ("datediff('2024-01-31', '2024-01-01', 'd', 'ymd', true)", -30.0),
        ("datediff('2024-01-31', '2024-01-01', 'd', true)", -30.0),
        ("datediff('2024-01-01', '2024-01-31', 'd', 'dmy', true)", 30.0),
        ("datediff('2024-01-01', '2024-01-01 18:00', 'd')", 0.75),
        ("datediff('2024-01-01 08:00', '2024-01-01 09:30:30', 'm')", 90.5),
        ("datediff('2024-01-01', '2024-01-02', 'h')", 24.0),
        ("datediff('2024-01-01', '2024-01-01 00:01', 's')", 60.0),
        ("datediff('2024-01-01', '2024-03-01', 'M')", 60 / 30.44),
        ("datediff('2000-03-01', '2024-03-01', 'y')", 8766 / 365.2425),
        ("datediff('2024-02-01', 'today', 'd')", 29.0),
        ("datediff([x], 'today', 'd')", ""),
        ("datediff('not a date', 'today', 'd')", ""),
        ("datediff('2024-01-01', 'today', [x])", ""),
    ],
)
def test_datediff(text: str, expected: object) -> None:
    assert run(text) == (pytest.approx(expected) if isinstance(expected, float) else expected)


def test_now_is_pinned_by_a_datetime() -> None:
    tree = parse("datediff('2024-03-01', 'now', 'h')")
    assert evaluate(tree, lambda ref: "", today=datetime(2024, 3, 1, 6, 30)) == 6.5


@pytest.mark.parametrize(
    ("value", "truth"),
    [
        (True, True),
        (False, False),
        (1.0, True),
        (-0.5, True),
        (0.0, False),
        (0, False),
        ("1", True),
        ("2.5", True),
        (" 1 ", True),
        ("0", False),
        ("0.0", False),
        ("", False),
        ("abc", False),
        ("true", False),
        (None, False),
    ],
)
def test_is_true(value: object, truth: bool) -> None:
    assert is_true(value) is truth


SMART_LOGIC = [
    ("[user-dag-name] = 'oslo'", Ref(None, smart="user-dag-name")),
    ("[record-dag-name] <> ''", Ref(None, smart="record-dag-name")),
    ("[project-id] > 0", Ref(None, smart="project-id")),
    ("[survey-date-completed:baseline] <> ''", Ref(None, smart="survey-date-completed:baseline")),
    ("[aggregate-mean:age] > 40", Ref(None, smart="aggregate-mean:age")),
    ("[previous-event-name][weight] > 2", Ref("weight", event="previous-event-name")),
    ("[w][last-instance] > 1", Ref("w", instance="last-instance")),
    ("[cb(LA4489-6)] = '1'", Ref("cb", code="LA4489-6")),
    ("[cb(-99):checked] = '1'", Ref("cb", code="-99", modifier="checked")),
    ("[visit:ampm] <> ''", Ref("visit", modifier="ampm")),
]


@pytest.mark.parametrize(("text", "ref"), SMART_LOGIC)
def test_smart_variables_checkbox_codes_and_modifiers(text: str, ref: Ref) -> None:
    assert references(parse(text)) == [ref]


def test_concat_ws_skips_blanks() -> None:
    values = {"a": "x", "b": "", "c": "z"}
    tree = parse("concat_ws(', ', [a], [b], [c])")
    assert evaluate(tree, lambda ref: values[ref.field or ""]) == "x, z"


def test_an_unknown_smart_variable_is_still_an_error() -> None:
    with pytest.raises(LogicError, match=r"unknown smart variable \[user-dag-nme\]"):
        parse("[user-dag-nme] = 'x'")
