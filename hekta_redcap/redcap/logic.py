"""Parse and evaluate REDCap logic: branching logic, calculations, filterLogic, data-quality rules.

One parser serves every place logic appears, so that logic REDCap would reject fails at lint time
with a column, rather than on a live form. The evaluator never reads data: callers pass a
`resolve` function that turns each `Ref` into stored text, so the local REDCap-compatible server
(filterLogic per row) and the validator bring their own data.

Syntax decisions (`logic.lark` holds the grammar):

* Precedence, loosest first: `or`/`||`, `and`/`&&`, one comparison (no chaining), `+ -`, `* /`,
  unary minus, `^`. So `-2 ^ 2` is `-(2 ^ 2)` = -4, as in PHP's `**`, and `2 ^ 3 ^ 2` = 512.
* `==` is stored as `=` and `!=` as `<>`; chains of one boolean operator are flattened.
* `not` is not REDCap syntax and is rejected; function names and keywords are case-insensitive.

Evaluation mirrors REDCap:

* Values are strings; `resolve` gives "" for blank and "1"/"0" for `[field(code)]`. Results of
  arithmetic are floats, of comparisons and `and`/`or` bools; `true` reads as "1", `false` as "".
* A value is numeric when its stripped text looks like a number (`12`, `-1.5`, `.5`, `1e3`).
  Comparisons are numeric when both sides are numeric, otherwise on text: equality is
  case-sensitive and `<`/`>` are lexical, which orders Y-M-D dates. So `[x] = 0` is false and
  `[x] <> 0` true when x is blank, `[x] = ''` is true, and `'10' > '9'` is true.
* A blank on either side of `<`, `<=`, `>`, `>=` makes the comparison false.
* Arithmetic on a blank or non-numeric operand is blank (""), as is any undefined result
  (division by zero, `sqrt(-1)`, overflow).
* `sum`, `mean`, `median`, `min`, `max`, `stdev` skip blanks and are blank when nothing is left;
  other non-numeric text makes them blank. `stdev` is the sample deviation, blank for one value.
* `if` evaluates only the branch it takes; `and`/`or` short-circuit.
* `datediff(d1, d2, unit[, format][, signed])` is d2 - d1 in the unit: 'y' (days / 365.2425),
  'M' (days / 30.44), 'd', 'h', 'm', 's', with fractional days from datetimes. The format is
  ignored since stored dates are Y-M-D; a fourth argument that is not a format is the signed
  flag. Results are absolute unless signed. A blank or unreadable date gives blank.
* "today" is `evaluate`'s `today` argument; "now" is the clock time on that day, or `today`
  itself when a `datetime` is given, which pins both for reproducible runs.
* `round` rounds half away from zero (like PHP, on the shortest decimal form of the float, so
  `round(2.675, 2)` = 2.68); `roundup` rounds away from zero, `rounddown` toward zero.
* Text tests `contains`, `not_contain`, `starts_with`, `ends_with` and `find` ignore case;
  `find(needle, haystack)` is 1-based and 0 when absent. `replace_text` is case-sensitive.
* `isblankormissingcode` is true for blank only: missing-data codes are project settings that
  the evaluator does not know.
"""

from __future__ import annotations

import math
import operator
import re
import statistics
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Context, Decimal
from functools import lru_cache
from typing import cast

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedToken

from hekta_redcap.redcap.fieldtypes import checkbox_column


class LogicError(ValueError):
    """Logic text REDCap would reject, with the 1-based column (in the whole text) when known."""

    def __init__(self, message: str, expression: str, column: int | None = None) -> None:
        super().__init__(message, expression, column)  # all args, so that the error pickles
        self.message = message
        self.expression = expression
        self.column = column

    def __str__(self) -> str:
        shown = re.sub(r"\s", " ", self.expression)  # one space per character keeps the column
        where = f"column {self.column}: " if self.column else ""
        return f"{where}{self.message} in {shown}" if shown.strip() else f"{where}{self.message}"


@dataclass(frozen=True)
class Ref:
    """A bracketed reference such as `[baseline_arm_1][cb(3)][2]` or `[record-name]`."""

    field: str | None
    event: str | None = None
    code: str | None = None
    instance: str | None = None
    modifier: str | None = None
    smart: str | None = None


@dataclass(frozen=True)
class Literal:
    """A number (as float), a quoted string, or true/false."""

    value: str | float | bool


@dataclass(frozen=True)
class Unary:
    """Negation; kept apart from the literal so that `-2 ^ 2` keeps its documented meaning."""

    op: str
    operand: Node


@dataclass(frozen=True)
class Binary:
    """Arithmetic: `+ - * / ^`."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Compare:
    """A comparison; `==` is stored as `=` and `!=` as `<>`."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class BoolOp:
    """`and` or `or` over two or more operands (nested chains of the same operator merged)."""

    op: str
    operands: tuple[Node, ...]


@dataclass(frozen=True)
class Call:
    """A function call; `name` is lower-cased."""

    name: str
    args: tuple[Node, ...]


Node = Ref | Literal | Unary | Binary | Compare | BoolOp | Call

_EVENT_SMART = frozenset(
    ["event-name", "previous-event-name", "next-event-name", "first-event-name", "last-event-name"]
)
_INSTANCE_SMART = frozenset(
    ["current-instance", "previous-instance", "next-instance", "first-instance", "last-instance"]
)
# REDCap's smart variables (REDCap 14/15) that stand alone in logic.
_SMART = (
    _EVENT_SMART
    | _INSTANCE_SMART
    | frozenset(
        """event-label event-id event-number previous-event-label next-event-label
        first-event-label last-event-label arm-number arm-label record-name record-dag-name
        record-dag-id record-dag-label user-name user-fullname user-email user-dag-name
        user-dag-id user-dag-label user-role-id user-role-name user-role-label project-id
        redcap-base-url redcap-version redcap-version-url survey-base-url is-form is-survey
        is-download instrument-name instrument-label new-instance rand-number rand-group
        rand-time rand-utc-time survey-queue-url mycap-participant-code""".split()
    )
)
# Smart variables that take parameters after a colon (`[survey-date-completed:baseline]`).
_SMART_WITH_PARAMS = frozenset(
    """survey-date-completed survey-time-completed survey-date-started survey-time-started
    survey-duration survey-duration-completed survey-url survey-link survey-return-code
    survey-access-code survey-title survey-queue-link form-url form-link instrument-name
    instrument-label aggregate-min aggregate-max aggregate-mean aggregate-median aggregate-sum
    aggregate-count aggregate-stdev aggregate-unique calendar-url calendar-link
    event-name event-label record-name user-name is-form is-survey""".split()
)
_MODIFIERS = frozenset(
    ["value", "label", "checked", "unchecked", "ampm", "inline", "link", "hideunderscore"]
)
_DAY = 86400.0
UNIT_SECONDS = {
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": _DAY,
    "M": 30.44 * _DAY,
    "y": 365.2425 * _DAY,
}
_DATE_FORMATS = frozenset(["ymd", "mdy", "dmy"])

_PART = re.compile(r"\[([^\[\]]*)\]")
_FIELD_PART = re.compile(r"(?P<name>[^():]*)(?:\((?P<code>[^()]*)\))?(?::(?P<modifier>[^():]*))?")
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_CODE = re.compile(r"[A-Za-z0-9_.\-]+")
_INSTANCE = re.compile(r"[0-9]+")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", re.ASCII)
_INTEGER = re.compile(r"[+-]?\d+", re.ASCII)


# -- values -------------------------------------------------------------------------------------


def as_number(value: object) -> float | None:
    """The number a value stands for, or None when it is not numeric (blank included)."""
    if not isinstance(value, str | bool | int | float):
        return None
    if isinstance(value, str) and not _NUMBER.fullmatch(value.strip()):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def as_text(value: object) -> str:
    """The text of a value as PHP would print it: 2.0 as "2", true as "1", false as ""."""
    if isinstance(value, bool):
        return "1" if value else ""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def _blank(value: object) -> bool:
    return not as_text(value).strip()


def is_true(value: object) -> bool:
    """REDCap truthiness: a non-zero number or numeric text; blank and other text are false."""
    number = as_number(value)
    return number is not None and number != 0


# -- functions ----------------------------------------------------------------------------------


def _numeric(function: Callable[..., float]) -> Callable[..., object]:
    """Lift a float function to logic values: non-numeric input or no finite result is blank."""

    def lifted(*values: object) -> object:
        numbers = [as_number(value) for value in values]
        if None in numbers:
            return ""
        try:
            result = function(*numbers)
        except (ArithmeticError, ValueError):  # division by zero, sqrt(-1), log(0), overflow
            return ""
        return result if math.isfinite(result) else ""

    return lifted


def _aggregate(function: Callable[[list[float]], float], least: int = 1) -> Callable[..., object]:
    """Lift a list function: blanks are skipped, too few values or other text give blank."""

    def lifted(*values: object) -> object:
        numbers = [as_number(value) for value in values if not _blank(value)]
        present = [number for number in numbers if number is not None]
        return function(present) if len(present) == len(numbers) >= least else ""

    return lifted


_WIDE = Context(prec=1000)  # room for any float at any sensible number of places


def _rounding(mode: str) -> Callable[..., object]:
    """Round on the shortest decimal form of the float, as PHP does, not on its binary value."""

    def rounded(number: float, places: float = 0.0) -> float:
        step = Decimal(1).scaleb(-int(places))
        return float(Decimal(repr(number)).quantize(step, rounding=mode, context=_WIDE))

    return _numeric(rounded)


def _count(value: object) -> int | None:
    number = as_number(value)
    return None if number is None or number < 0 else int(number)


def _left(text: object, count: object) -> str:
    n = _count(count)
    return "" if n is None else as_text(text)[:n]


def _right(text: object, count: object) -> str:
    n, whole = _count(count), as_text(text)
    return "" if n is None else whole[max(len(whole) - n, 0) :]


def _mid(text: object, start: object, count: object) -> str:
    first, n = _count(start), _count(count)
    if first is None or n is None or first < 1:
        return ""
    return as_text(text)[first - 1 : first - 1 + n]


def _replace(text: object, search: object, replacement: object) -> str:
    whole, needle = as_text(text), as_text(search)
    return whole.replace(needle, as_text(replacement)) if needle else whole


def stored_moment(value: object) -> datetime | None:
    try:
        return datetime.fromisoformat(as_text(value).strip()).replace(tzinfo=None)
    except ValueError:
        return None


def _date_part(part: str) -> Callable[[object], object]:
    def extract(value: object) -> object:
        moment = stored_moment(value)
        return "" if moment is None else float(getattr(moment, part))

    return extract


def _datediff(now: datetime, first: object, second: object, unit: object, *rest: object) -> object:
    def moment(value: object) -> datetime | None:
        word = as_text(value).strip().lower()
        if word == "today":
            return datetime.combine(now.date(), time())
        return now if word == "now" else stored_moment(value)

    start, end, seconds = moment(first), moment(second), UNIT_SECONDS.get(as_text(unit))
    if start is None or end is None or seconds is None:
        return ""
    flag = rest[-1] if rest else False  # the last extra argument, unless it is only the format
    word = as_text(flag).strip().lower()
    signed = word not in _DATE_FORMATS and (word == "true" or is_true(flag))
    difference = (end - start).total_seconds() / seconds
    return difference if signed else abs(difference)


def _folded(value: object) -> str:
    """Text as REDCap's text functions compare it: case-insensitively."""
    return as_text(value).lower()


FUNCTIONS: dict[str, tuple[int, int | None, Callable[..., object]]] = {
    "sum": (1, None, _aggregate(math.fsum)),
    "mean": (1, None, _aggregate(statistics.fmean)),
    "median": (1, None, _aggregate(statistics.median)),
    "min": (1, None, _aggregate(min)),
    "max": (1, None, _aggregate(max)),
    "stdev": (1, None, _aggregate(statistics.stdev, least=2)),
    "round": (1, 2, _rounding(ROUND_HALF_UP)),
    "roundup": (1, 2, _rounding(ROUND_UP)),
    "rounddown": (1, 2, _rounding(ROUND_DOWN)),
    "sqrt": (1, 1, _numeric(math.sqrt)),
    "abs": (1, 1, _numeric(abs)),
    "exponential": (1, 1, _numeric(math.exp)),
    "log": (1, 2, _numeric(math.log)),
    "isnumber": (1, 1, lambda value: as_number(value) is not None),
    "isinteger": (1, 1, lambda value: bool(_INTEGER.fullmatch(as_text(value).strip()))),
    "isblankormissingcode": (1, 1, _blank),
    "contains": (2, 2, lambda hay, needle: as_text(needle).lower() in as_text(hay).lower()),
    "not_contain": (2, 2, lambda hay, needle: as_text(needle).lower() not in as_text(hay).lower()),
    "starts_with": (
        2,
        2,
        lambda hay, needle: as_text(hay).lower().startswith(as_text(needle).lower()),
    ),
    "ends_with": (2, 2, lambda hay, needle: as_text(hay).lower().endswith(as_text(needle).lower())),
    "left": (2, 2, _left),
    "right": (2, 2, _right),
    "mid": (3, 3, _mid),
    "length": (1, 1, lambda value: float(len(as_text(value)))),
    "find": (
        2,
        2,
        lambda needle, hay: float(as_text(hay).lower().find(as_text(needle).lower()) + 1),
    ),
    "upper": (1, 1, lambda value: as_text(value).upper()),
    "lower": (1, 1, lambda value: as_text(value).lower()),
    "trim": (1, 1, lambda value: as_text(value).strip()),
    "concat": (1, None, lambda *values: "".join(map(as_text, values))),
    "concat_ws": (
        2,
        None,
        lambda sep, *values: as_text(sep).join(as_text(v) for v in values if not _blank(v)),
    ),
    "replace_text": (3, 3, _replace),
    "year": (1, 1, _date_part("year")),
    "month": (1, 1, _date_part("month")),
    "day": (1, 1, _date_part("day")),
}
# `if` and `datediff` need the evaluator itself (laziness, the clock), so only their arity is here.
_ARITY = {"if": (3, 3), "datediff": (3, 5)} | {
    name: (least, most) for name, (least, most, _) in FUNCTIONS.items()
}

_ARITHMETIC = {
    "+": _numeric(operator.add),
    "-": _numeric(operator.sub),
    "*": _numeric(operator.mul),
    "/": _numeric(operator.truediv),
    "^": _numeric(math.pow),
}
_NEGATE = _numeric(operator.neg)
_ORDER = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def _compare(op: str, left: object, right: object) -> bool:
    a, b = as_number(left), as_number(right)
    numeric = a is not None and b is not None
    if op in ("=", "<>"):
        equal = a == b if numeric else as_text(left) == as_text(right)
        return equal == (op == "=")
    if _blank(left) or _blank(right):
        return False
    if a is not None and b is not None:
        return _ORDER[op](a, b)
    return _ORDER[op](as_text(left), as_text(right))


def evaluate(node: Node, resolve: Callable[[Ref], str], *, today: date | None = None) -> object:
    """Evaluate a parsed expression to a str, float or bool; see the module docstring."""
    if today is None:
        now = datetime.now()
    elif isinstance(today, datetime):
        now = today
    else:
        now = datetime.combine(today, datetime.now().time())

    def value(node: Node) -> object:
        match node:
            case Ref():
                return resolve(node)
            case Literal():
                return node.value
            case Unary():
                return _NEGATE(value(node.operand))
            case Binary():
                return _ARITHMETIC[node.op](value(node.left), value(node.right))
            case Compare():
                return _compare(node.op, value(node.left), value(node.right))
            case BoolOp(op="and"):
                return all(is_true(value(operand)) for operand in node.operands)
            case BoolOp():
                return any(is_true(value(operand)) for operand in node.operands)
            case Call(name="if", args=(condition, then, otherwise)):
                return value(then) if is_true(value(condition)) else value(otherwise)
            case Call(name="datediff"):
                return _datediff(now, *map(value, node.args))
            case Call():
                return FUNCTIONS[node.name][2](*map(value, node.args))
        raise TypeError(f"not a logic node: {node!r}")

    return value(node)


def walk(node: Node) -> Iterator[Node]:
    """Every node of a tree, parents before children, in source order."""
    yield node
    match node:
        case Unary():
            children: tuple[Node, ...] = (node.operand,)
        case Binary() | Compare():
            children = (node.left, node.right)
        case BoolOp():
            children = node.operands
        case Call():
            children = node.args
        case _:
            children = ()
    for child in children:
        yield from walk(child)


def column_of(ref: Ref) -> str:
    """The export column a field reference reads: its field's, or a checkbox option's own
    (`[cb(2)]`: `cb___2`)."""
    assert ref.field is not None, "a smart variable has no column"
    return ref.field if ref.code is None else checkbox_column(ref.field, ref.code)


def value_in(row: Mapping[str, str], ref: Ref) -> str:
    """A plain reference's value in one export row (a checkbox option `[cb(2)]` is its
    column, "0" when unticked or absent; smart variables are blank)."""
    if ref.field is None:
        return ""
    if ref.code is not None:
        return "1" if row.get(column_of(ref)) == "1" else "0"
    return str(row.get(ref.field, ""))


def references(node: Node) -> list[Ref]:
    """Every reference in source order, repeats included."""
    return [n for n in walk(node) if isinstance(n, Ref)]


# -- parsing ------------------------------------------------------------------------------------


class _Invalid(Exception):
    """Raised while building the tree; `parse` adds the text, which the shared builder lacks."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


def _field_part(raw: str, position: int) -> Ref:
    """`field`, `field(code)`, `field:modifier` or a bare smart variable."""
    match = _FIELD_PART.fullmatch(raw)
    if not raw.strip() or match is None:
        raise _Invalid(f"malformed reference [{raw}]", position)
    name, code, modifier = match["name"], match["code"], match["modifier"]
    smart, _, params = raw.partition(":")
    if "-" in smart and params and smart in _SMART_WITH_PARAMS:
        return Ref(None, smart=raw)
    if "-" in name:
        if name not in _SMART:
            raise _Invalid(f"unknown smart variable [{name}]", position)
        if code is not None or modifier is not None:
            raise _Invalid(f"smart variable [{name}] takes no option or modifier", position)
        return Ref(None, smart=name)
    if not _NAME.fullmatch(name):
        raise _Invalid(
            f"invalid field name {name!r} (lower-case letters, digits and _, starting with a "
            "letter)",
            position,
        )
    if code is not None and not _CODE.fullmatch(code):
        raise _Invalid(f"invalid checkbox option ({code})", position)
    if modifier is not None and modifier not in _MODIFIERS:
        raise _Invalid(f"unknown modifier :{modifier}", position)
    return Ref(name, code=code, modifier=modifier)


def _event_part(raw: str, position: int) -> str:
    if raw in _EVENT_SMART or ("-" not in raw and _NAME.fullmatch(raw)):
        return raw
    if raw in _SMART:
        raise _Invalid(f"[{raw}] cannot stand for an event", position)
    if "-" in raw:
        raise _Invalid(f"unknown smart variable [{raw}]", position)
    raise _Invalid(f"invalid event name {raw!r}", position)


def _reference(token: Token) -> Ref:
    """Split `[event][field(code):modifier][instance]`; only the field part is required."""
    start = token.start_pos or 0
    parts = [(start + match.start(), match[1]) for match in _PART.finditer(token)]
    instance = None
    if len(parts) > 1 and (_INSTANCE.fullmatch(parts[-1][1]) or parts[-1][1] in _INSTANCE_SMART):
        position, raw = parts.pop()
        instance = raw if raw in _INSTANCE_SMART else str(int(raw))
        if instance == "0":
            raise _Invalid("repeat instances are numbered from 1", position)
    if len(parts) > 2:
        raise _Invalid("a reference is at most [event][field][instance]", parts[2][0])
    target = _field_part(parts[-1][1], parts[-1][0])
    event = _event_part(parts[0][1], parts[0][0]) if len(parts) == 2 else None
    if target.smart and (event or instance):
        raise _Invalid(f"smart variable [{target.smart}] takes no event or instance", start)
    return Ref(target.field, event, target.code, instance, target.modifier, target.smart)


def _operand(item: Node | Token) -> Node:
    """An operand among a chain rule's children: the transformer has already made it a node."""
    assert not isinstance(item, Token), item
    return item


def _fold(items: tuple[Node | Token, ...]) -> Node:
    """Left-associate `a op b op c`, the children of a chain rule."""
    result = _operand(items[0])
    for op, right in zip(items[1::2], items[2::2], strict=True):
        result = Binary(str(op), result, _operand(right))
    return result


def _boolean(op: str, items: tuple[Node | Token, ...]) -> BoolOp:
    operands: list[Node] = []
    for item in items[::2]:
        if isinstance(item, BoolOp) and item.op == op:
            operands.extend(item.operands)
        else:
            operands.append(_operand(item))
    return BoolOp(op, tuple(operands))


@v_args(inline=True)
class _Build(Transformer):
    """Builds the AST while LALR reduces, so no intermediate lark tree is made."""

    def reference(self, token: Token) -> Ref:
        return _reference(token)

    def number(self, token: Token) -> Literal:
        return Literal(float(token))

    def string(self, token: Token) -> Literal:
        return Literal(str(token[1:-1]))

    def true(self, _: Token) -> Literal:
        return Literal(True)

    def false(self, _: Token) -> Literal:
        return Literal(False)

    def negate(self, _: Token, operand: Node) -> Unary:
        return Unary("-", operand)

    def not_keyword(self, token: Token, _: Node) -> Node:
        raise _Invalid("REDCap has no 'not': use <>, = 0 or not_contain()", token.start_pos or 0)

    def power(self, left: Node, _: Token, right: Node) -> Binary:
        return Binary("^", left, right)

    def sum(self, *items: Node | Token) -> Node:
        return _fold(items)

    def product(self, *items: Node | Token) -> Node:
        return _fold(items)

    def comparison(self, left: Node, op: Token, right: Node) -> Compare:
        return Compare({"==": "=", "!=": "<>"}.get(str(op), str(op)), left, right)

    def and_expr(self, *items: Node | Token) -> BoolOp:
        return _boolean("and", items)

    def or_expr(self, *items: Node | Token) -> BoolOp:
        return _boolean("or", items)

    def args(self, *items: Node) -> tuple[Node, ...]:
        return items

    def call(self, name: Token, args: tuple[Node, ...] | None) -> Call:
        function, args, position = name.lower(), args or (), name.start_pos or 0
        if function not in _ARITY:
            raise _Invalid(f"unknown function {name}()", position)
        least, most = _ARITY[function]
        if len(args) < least or (most is not None and len(args) > most):
            wanted = f"at least {least}" if most is None else f"{least} to {most}"
            wanted = str(least) if least == most else wanted
            raise _Invalid(f"{function}() takes {wanted}, got {len(args)} arguments", position)
        unit = args[2] if function == "datediff" else None
        if isinstance(unit, Literal) and unit.value not in UNIT_SECONDS:
            raise _Invalid(
                f"datediff unit must be one of y M d h m s, not {unit.value!r}", position
            )
        return Call(function, args)

    def bare_word(self, token: Token) -> Node:
        raise _Invalid(
            f"bare word {str(token)!r}: quote text as '{token}' and bracket fields as [{token}]",
            token.start_pos or 0,
        )


_PARSER = Lark.open(
    "logic.lark", rel_to=__file__, parser="lalr", transformer=_Build(), maybe_placeholders=True
)
# Tokens that can only start a value (MINUS is also an operator), to tell which one was missing.
_VALUE_STARTS = frozenset(["REF", "NUMBER", "STRING", "TRUE", "FALSE", "NAME", "LPAR"])


def _syntax_error(error: UnexpectedCharacters | UnexpectedToken, text: str) -> LogicError:
    """Turn lark's error into a short message at the column a person would look at."""
    if isinstance(error, UnexpectedCharacters):
        assert error.pos_in_stream is not None  # lark always sets it for a character error
        char = text[error.pos_in_stream]
        known = {
            "[": "unclosed '['",
            "]": "unmatched ']'",
            "'": "unclosed quote",
            '"': "unclosed quote",
        }
        message = known.get(char, f"unexpected character {char!r}")
        return LogicError(message, text, error.pos_in_stream + 1)
    token = error.token
    if token.type == "$END":
        stack = error.interactive_parser.parser_state.value_stack
        opened = [item for item in stack if isinstance(item, Token) and item.type == "LPAR"]
        if opened:
            return LogicError("unclosed '('", text, (opened[-1].start_pos or 0) + 1)
        return LogicError("logic ends where a value is expected", text, len(text.rstrip()) + 1)
    message = f"unexpected {token.value!r}"
    wants_value = bool(error.expected & _VALUE_STARTS)
    if wants_value and token.type not in _VALUE_STARTS:
        message += ", expected a value"
    elif not wants_value and token.type in _VALUE_STARTS:
        message += ", expected an operator"
    return LogicError(message, text, (token.start_pos or 0) + 1)


@lru_cache(maxsize=4096)
def parse(text: str) -> Node:
    """Parse logic text into an immutable tree (cached: forms re-parse the same logic often)."""
    if not text.strip():
        raise LogicError("empty logic", text)
    try:
        # lark types parse() as returning a Tree; the inline transformer makes it our Node.
        return cast(Node, _PARSER.parse(text))
    except _Invalid as error:
        raise LogicError(error.message, text, error.position + 1) from None
    except (UnexpectedCharacters, UnexpectedToken) as error:
        raise _syntax_error(error, text) from None
