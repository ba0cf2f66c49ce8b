"""Evaluate REDCap logic over a whole data frame at once, with the semantics of `logic.evaluate`.

Scoring and validation run branching logic, calculations and data-quality rules over exports of
100,000 rows, where the scalar evaluator (one Python call per node and row) is far too slow. This
module evaluates each node once per column instead, and its result means, row for row, exactly
what `logic.evaluate` returns: `truth(evaluate_frame(node, frame))` equals
`[logic.is_true(logic.evaluate(node, row_resolver)) for row]`.

How it stays exact:

* Every value carries cached views: the text PHP would print, the number (NaN when not numeric),
  blankness and its kind (text, number or boolean), so each operator reads the view the scalar
  evaluator's helpers read. The result is an object Series of str, float and bool, as
  `logic.evaluate` returns them.
* Comparisons, arithmetic (`+ - * /`, unary minus), `and`/`or`, `if`, `sum`, `mean`, `median`,
  `min`, `max`, `sqrt`, `abs`, `isnumber`, `isblankormissingcode` and `datediff` are numpy
  operations. `sum` and `mean` add integers directly and use `math.fsum` (per distinct row) only
  where float addition could round differently from it.
* Conversions (text to number, number to text, text to date) and the functions whose exact
  result comes from Python's own libm, decimal or string routines (`^`, `round`, `roundup`,
  `rounddown`, `exponential`, `log`, `stdev`, `year`/`month`/`day` and the text functions
  `isinteger`, `contains`, `not_contain`, `starts_with`, `ends_with`, `find`, `length`, `left`,
  `right`, `mid`, `upper`, `lower`, `trim`, `concat`, `concat_ws`, `replace_text`) call
  `logic.py`'s own implementation once per DISTINCT argument tuple: numpy's SIMD exp/log/pow
  can differ from `math` in the last bit, and stored REDCap values repeat heavily, so this is
  both exact and fast. With all-distinct arguments (free text) it degrades to one call per row.
* Unlike the scalar evaluator, both branches of an `if` and every operand of `and`/`or` are
  evaluated when some rows need them, so `resolve` sees their references; results are the same
  because evaluating never has side effects.
* Overflow is blank, as documented in `logic.py`, also inside `sum`, `mean` and `median` (where
  the scalar evaluator raises OverflowError or returns inf).
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from functools import cached_property

import numpy as np
import pandas as pd

from hekta_redcap.redcap import logic
from hekta_redcap.redcap.logic import FUNCTIONS, UNIT_SECONDS, as_number, as_text, stored_moment

_TEXT, _NUMBER, _BOOLEAN = 0, 1, 2  # the kinds of `logic.evaluate`'s results: str, float, bool
_EXACT_INTEGERS = 2.0**53  # integer-valued floats add exactly while their sum stays below this
_EPOCH = dt.datetime(1970, 1, 1)
_MICROSECOND = dt.timedelta(microseconds=1)
# Functions lifted by `logic._numeric`: their result depends only on the numbers of the arguments.
_ON_NUMBERS = frozenset(["round", "roundup", "rounddown", "exponential", "log"])
_AGGREGATES = frozenset(["sum", "mean", "median", "min", "max", "stdev"])

Resolve = Callable[[logic.Ref], pd.Series]


# -- memoising scalar functions over distinct argument tuples -----------------------------------


def _memo(
    function: Callable[..., object], columns: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """`function` called once per distinct tuple of arguments: (its results, each row's tuple).

    Arguments reach `function` as Python objects (never numpy scalars, whose repr differs)."""
    key, uniques = pd.factorize(columns[0], use_na_sentinel=False)
    if len(columns) == 1:
        arguments = [uniques.tolist()]
    else:
        for column in columns[1:]:
            codes, values = pd.factorize(column, use_na_sentinel=False)
            key = pd.factorize(key * len(values) + codes)[0]  # renumbered: stays below the rows
        first = np.unique(key, return_index=True)[1]
        arguments = [column[first].tolist() for column in columns]
    results = np.empty(len(arguments[0]), dtype=object)
    results[:] = [function(*row) for row in zip(*arguments, strict=True)]
    return results, key


def _distinct(function: Callable[..., object], columns: Sequence[np.ndarray]) -> np.ndarray:
    """`function` applied row by row, computed once per distinct tuple of arguments."""
    results, key = _memo(function, columns)
    return results[key]


def _floats(results: np.ndarray) -> np.ndarray:
    """Scalar results that are floats or "" (blank) as a float array with NaN for blank."""
    return np.where(results == "", np.nan, results).astype(float)


# -- values -------------------------------------------------------------------------------------


class _Value(ABC):
    """One logic value per row, seen the ways `logic.py`'s helpers see a value. Subclasses
    compute each view on first use and then keep it."""

    n: int

    @property
    @abstractmethod
    def kind(self) -> np.ndarray:
        """_TEXT, _NUMBER or _BOOLEAN: the type `logic.evaluate` would return."""

    @property
    @abstractmethod
    def text(self) -> np.ndarray:
        """`logic.as_text` (object array of str)."""

    @property
    @abstractmethod
    def num(self) -> np.ndarray:
        """`logic.as_number`, NaN where it is None."""

    @property
    @abstractmethod
    def blank(self) -> np.ndarray:
        """`logic._blank`."""

    @property
    @abstractmethod
    def output(self) -> np.ndarray:
        """The values as `logic.evaluate` returns them (str, float, bool)."""

    @property
    def true(self) -> np.ndarray:
        """`logic.is_true` of each value."""
        number = self.num
        return ~np.isnan(number) & (number != 0)

    def key(self) -> list[np.ndarray]:
        """Columns that tell values apart exactly (kind first: True == 1.0 but prints as "1")."""
        return [self.kind, self.output]


class _Text(_Value):
    """Stored text, or text a function returned."""

    def __init__(self, text: np.ndarray) -> None:
        self.n = len(text)
        self._text = text

    @property
    def text(self) -> np.ndarray:
        return self._text

    @property
    def output(self) -> np.ndarray:
        return self._text

    @cached_property
    def kind(self) -> np.ndarray:
        return np.full(self.n, _TEXT, dtype=np.int8)

    @cached_property
    def _factors(self) -> tuple[np.ndarray, np.ndarray]:
        codes, uniques = pd.factorize(self.text)
        return codes, np.asarray(uniques, dtype=object)

    @cached_property
    def num(self) -> np.ndarray:
        codes, uniques = self._factors
        return np.array([as_number(u) for u in uniques], dtype=float)[codes]  # None becomes NaN

    @cached_property
    def blank(self) -> np.ndarray:
        codes, uniques = self._factors
        return np.array([not u.strip() for u in uniques], dtype=bool)[codes]

    def key(self) -> list[np.ndarray]:
        return [self.text]


class _Number(_Value):
    """Floats, NaN standing for the blank ("") that undefined arithmetic gives."""

    def __init__(self, num: np.ndarray) -> None:
        self.n = len(num)
        num = num.astype(float)
        num[~np.isfinite(num)] = np.nan
        self._num = num

    @property
    def num(self) -> np.ndarray:
        return self._num

    @cached_property
    def kind(self) -> np.ndarray:
        return np.where(self.blank, _TEXT, _NUMBER).astype(np.int8)

    @cached_property
    def blank(self) -> np.ndarray:
        return np.isnan(self.num)

    @cached_property
    def text(self) -> np.ndarray:
        return _distinct(lambda x: "" if math.isnan(x) else as_text(x), [self.num])

    @cached_property
    def output(self) -> np.ndarray:
        out = self.num.astype(object)
        out[self.blank] = ""
        return out


class _Boolean(_Value):
    """Results of comparisons, `and`/`or` and the test functions."""

    def __init__(self, flag: np.ndarray) -> None:
        self.n = len(flag)
        self.flag = flag.astype(bool)

    @cached_property
    def kind(self) -> np.ndarray:
        return np.full(self.n, _BOOLEAN, dtype=np.int8)

    @cached_property
    def text(self) -> np.ndarray:
        return np.where(self.flag, "1", "").astype(object)

    @cached_property
    def num(self) -> np.ndarray:
        return self.flag.astype(float)

    @cached_property
    def blank(self) -> np.ndarray:
        return ~self.flag

    @cached_property
    def output(self) -> np.ndarray:
        return self.flag.astype(object)

    @property
    def true(self) -> np.ndarray:
        return self.flag


class _Constant(_Value):
    """A literal, the same in every row."""

    def __init__(self, value: str | float | bool, n: int) -> None:
        self.n, self.value = n, value

    def _full(self, item: object, dtype: type) -> np.ndarray:
        return np.full(self.n, item, dtype=dtype)

    @cached_property
    def kind(self) -> np.ndarray:
        kind = _BOOLEAN if isinstance(self.value, bool) else _TEXT
        kind = _NUMBER if isinstance(self.value, float) else kind
        return self._full(kind, np.int8)

    @cached_property
    def text(self) -> np.ndarray:
        return self._full(as_text(self.value), object)

    @cached_property
    def num(self) -> np.ndarray:
        number = as_number(self.value)
        return self._full(np.nan if number is None else number, float)

    @cached_property
    def blank(self) -> np.ndarray:
        return self._full(not as_text(self.value).strip(), bool)

    @cached_property
    def output(self) -> np.ndarray:
        return self._full(self.value, object)


class _Choice(_Value):
    """`if`: each row takes its view from the branch its condition chose."""

    def __init__(self, condition: np.ndarray, then: _Value, otherwise: _Value) -> None:
        self.n, self.condition = len(condition), condition
        self.then, self.otherwise = then, otherwise

    def _pick(self, view: str) -> np.ndarray:
        return np.where(self.condition, getattr(self.then, view), getattr(self.otherwise, view))

    @cached_property
    def kind(self) -> np.ndarray:
        return self._pick("kind")

    @cached_property
    def text(self) -> np.ndarray:
        return self._pick("text")

    @cached_property
    def num(self) -> np.ndarray:
        return self._pick("num")

    @cached_property
    def blank(self) -> np.ndarray:
        return self._pick("blank")

    @cached_property
    def output(self) -> np.ndarray:
        return self._pick("output")


def _from_results(results: np.ndarray, key: np.ndarray) -> _Value:
    """Wrap what a scalar function returned (bools, floats with "" for blank, or text) per row."""
    kinds = {type(item) for item in results}
    if kinds == {bool}:
        return _Boolean(results.astype(bool)[key])
    if float in kinds:
        return _Number(_floats(results)[key])
    return _Text(results[key])


def _stored_text(values: pd.Series) -> np.ndarray:
    """A resolved column as text: NA is blank, and non-text values print as `logic` prints them."""
    array = values.to_numpy(dtype=object, na_value="")
    if pd.api.types.infer_dtype(array, skipna=False) not in ("string", "empty"):
        array = np.array(
            [item if isinstance(item, str) else as_text(item) for item in array], object
        )
    return array


# -- functions ----------------------------------------------------------------------------------


def _fsum(*numbers: float) -> float:
    """`math.fsum` of the numbers present (NaN is absent); overflow is blank."""
    try:
        return math.fsum(x for x in numbers if not math.isnan(x))
    except OverflowError:
        return math.nan


def _stdev(*numbers: float) -> float:
    try:
        return statistics.stdev([x for x in numbers if not math.isnan(x)])
    except OverflowError:
        return math.nan


def _aggregate(name: str, values: list[_Value]) -> _Value:
    """`logic._aggregate`: blanks are skipped; other non-numeric text or too few values is blank."""
    num = np.column_stack([value.num for value in values])
    present = ~np.column_stack([value.blank for value in values])
    count = present.sum(axis=1)
    ok = ~(present & np.isnan(num)).any(axis=1) & (count >= (2 if name == "stdev" else 1))
    numbers = np.where(present, num, np.nan)[ok]
    count = count[ok]
    result = np.full(len(num), np.nan)
    with np.errstate(all="ignore"):
        match name:
            case "sum" | "mean":
                total = np.nansum(numbers, axis=1)
                inexact = ~np.all(np.isnan(numbers) | (numbers == np.round(numbers)), axis=1)
                inexact |= np.nansum(np.abs(numbers), axis=1) >= _EXACT_INTEGERS
                if inexact.any():
                    total[inexact] = _distinct(_fsum, list(numbers[inexact].T)).astype(float)
                result[ok] = total / count if name == "mean" else total
            case "min":
                result[ok] = np.nanmin(numbers, axis=1)
            case "max":
                result[ok] = np.nanmax(numbers, axis=1)
            case "median":
                ordered = np.sort(numbers, axis=1)  # NaN sorts last
                rows, middle = np.arange(len(ordered)), count // 2
                upper = ordered[rows, middle]
                lower = ordered[rows, np.maximum(middle - 1, 0)]
                result[ok] = np.where(count % 2 == 1, upper, (lower + upper) / 2)
            case "stdev":
                result[ok] = _distinct(_stdev, list(numbers.T)).astype(float)
    return _Number(result)


def _datediff(values: list[_Value], now: dt.datetime) -> _Value:
    """`logic._datediff`: moments are read once per distinct text, then subtracted as integers."""
    midnight = dt.datetime.combine(now.date(), dt.time())

    def microseconds(text: str) -> int | None:
        word = text.strip().lower()
        moment = {"today": midnight, "now": now}.get(word) or stored_moment(text)
        return None if moment is None else (moment - _EPOCH) // _MICROSECOND

    first, second, unit, *rest = values
    start, end = (_distinct(microseconds, [value.text]) for value in (first, second))
    known = (start != None) & (end != None)  # noqa: E711 (elementwise)
    elapsed = np.where(known, end, 0).astype(np.int64) - np.where(known, start, 0).astype(np.int64)
    seconds = _distinct(lambda u: UNIT_SECONDS.get(u, math.nan), [unit.text]).astype(float)
    # The integer µs count converts exactly (below 2**53, or for whole seconds), so dividing
    # rounds as `timedelta.total_seconds()` does.
    difference = np.where(known, elapsed / 1e6, np.nan) / seconds
    if not rest:
        return _Number(np.abs(difference))
    flag = rest[-1]  # the last extra argument: a format ('ymd') is neither "true" nor a number
    signed = (_distinct(lambda t: t.strip().lower(), [flag.text]) == "true") | flag.true
    return _Number(np.where(signed, difference, np.abs(difference)))


def _compare(op: str, left: _Value, right: _Value) -> _Value:
    """`logic._compare`: numeric where both sides are numbers, text otherwise."""
    a, b = left.num, right.num
    numeric = ~np.isnan(a) & ~np.isnan(b)
    words = ~numeric
    if op in ("=", "<>"):
        result = a == b
        if words.any():
            result[words] = left.text[words] == right.text[words]
        return _Boolean(result if op == "=" else ~result)
    order = logic._ORDER[op]
    filled = ~left.blank & ~right.blank
    result = order(a, b) & numeric & filled
    words &= filled
    if words.any():
        result[words] = order(left.text[words], right.text[words]).astype(bool)
    return _Boolean(result)


_ARITHMETIC = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide}


class _Evaluation:
    """One run of `evaluate_frame`: the rows, the resolver and the clock."""

    def __init__(self, n: int, resolve: Resolve, now: dt.datetime, index: pd.Index) -> None:
        self.n, self.resolve, self.now, self.index = n, resolve, now, index
        self.references: dict[logic.Ref, _Value] = {}

    def reference(self, ref: logic.Ref) -> _Value:
        if ref not in self.references:
            values = self.resolve(ref)
            if not values.index.equals(self.index):
                values = values.reindex(self.index)
            self.references[ref] = _Text(_stored_text(values))
        return self.references[ref]

    def value(self, node: logic.Node) -> _Value:
        match node:
            case logic.Ref():
                return self.reference(node)
            case logic.Literal():
                return _Constant(node.value, self.n)
            case logic.Unary():
                return _Number(-self.value(node.operand).num)
            case logic.Binary(op="^"):
                pair = [self.value(node.left).num, self.value(node.right).num]
                return _Number(_floats(_distinct(logic._ARITHMETIC["^"], pair)))
            case logic.Binary():
                with np.errstate(all="ignore"):
                    left, right = self.value(node.left).num, self.value(node.right).num
                    return _Number(_ARITHMETIC[node.op](left, right))
            case logic.Compare():
                return _compare(node.op, self.value(node.left), self.value(node.right))
            case logic.BoolOp():
                return _Boolean(self.boolean(node))
            case logic.Call(name="if", args=(condition, then, otherwise)):
                chosen = self.value(condition).true
                if chosen.all():
                    return self.value(then)
                if not chosen.any():
                    return self.value(otherwise)
                return _Choice(chosen, self.value(then), self.value(otherwise))
            case logic.Call():
                return self.call(node.name, [self.value(arg) for arg in node.args])
        raise TypeError(f"not a logic node: {node!r}")

    def boolean(self, node: logic.BoolOp) -> np.ndarray:
        """`and`/`or`, skipping the remaining operands once every row is decided."""
        conjunction = node.op == "and"
        result = self.value(node.operands[0]).true.copy()
        for operand in node.operands[1:]:
            if (not result.any()) if conjunction else result.all():
                break
            if conjunction:
                result &= self.value(operand).true
            else:
                result |= self.value(operand).true
        return result

    def call(self, name: str, values: list[_Value]) -> _Value:
        if name in _AGGREGATES:
            return _aggregate(name, values)
        with np.errstate(all="ignore"):
            match name:
                case "sqrt":
                    return _Number(np.sqrt(values[0].num))
                case "abs":
                    return _Number(np.abs(values[0].num))
                case "isnumber":
                    return _Boolean(~np.isnan(values[0].num))
                case "isblankormissingcode":
                    return _Boolean(values[0].blank)
                case "datediff":
                    return _datediff(values, self.now)
        function = FUNCTIONS[name][2]
        if name in _ON_NUMBERS:
            return _Number(_floats(_distinct(function, [value.num for value in values])))
        keys = [value.key() for value in values]
        outputs = np.cumsum([len(key) for key in keys]) - 1  # each key ends with the output

        def call(*columns: object) -> object:
            return function(*(columns[i] for i in outputs))

        return _from_results(*_memo(call, [column for key in keys for column in key]))


# -- public interface ---------------------------------------------------------------------------


def _shown(ref: logic.Ref) -> str:
    """A reference as written in logic, for messages."""
    if ref.smart:
        return f"[{ref.smart}]"
    code = f"({ref.code})" if ref.code is not None else ""
    modifier = f":{ref.modifier}" if ref.modifier else ""
    event = f"[{ref.event}]" if ref.event else ""
    instance = f"[{ref.instance}]" if ref.instance else ""
    return f"{event}[{ref.field}{code}{modifier}]{instance}"


def column_resolver(frame: pd.DataFrame) -> Resolve:
    """The default `resolve`: `[field]` is the column `field`, `[field(code)]` REDCap's checkbox
    column `field___code` (blank read as "0", since REDCap logic sees an unticked option as 0),
    and `[field:value]` the same as `[field]`.

    Anything needing more than the row itself (an event, an instance, a smart variable, a label)
    raises `logic.LogicError`: callers that have that context pass their own `resolve`."""

    def resolve(ref: logic.Ref) -> pd.Series:
        shown = _shown(ref)
        if ref.field is None or ref.event or ref.instance or ref.modifier not in (None, "value"):
            raise logic.LogicError(
                f"{shown} needs more than the row's own columns; pass a resolve that reads it", ""
            )
        column = logic.column_of(ref)
        if column not in frame.columns:
            raise logic.LogicError(f"{shown}: no column {column!r} in the data", "")
        values = frame[column]
        if ref.code is None:
            return values
        return values.where(values.notna() & (values != ""), "0")

    return resolve


def evaluate_frame(
    node: logic.Node,
    frame: pd.DataFrame,
    resolve: Resolve | None = None,
    *,
    today: dt.date | None = None,
) -> pd.Series:
    """`logic.evaluate` for every row of `frame` at once (see the module docstring).

    `frame` holds stored values as text ("" or NA for blank). `resolve` (default:
    `column_resolver(frame)`) returns a Series aligned with `frame.index` for a reference. The
    result is an object Series on `frame.index` of str, float and bool, as `logic.evaluate`
    returns them; `today` pins "today" and "now" as it does there."""
    if today is None:
        now = dt.datetime.now()
    elif isinstance(today, dt.datetime):
        now = today
    else:
        now = dt.datetime.combine(today, dt.datetime.now().time())
    run = _Evaluation(len(frame), resolve or column_resolver(frame), now, frame.index)
    return pd.Series(run.value(node).output, index=frame.index, dtype=object)


def truth(values: pd.Series) -> pd.Series:
    """`logic.is_true` of every value, as a bool Series that is never NA (NA is false).

    Numeric and boolean dtypes are read by value (non-zero is true); object and text columns
    exactly as `logic.is_true` reads each item."""
    if pd.api.types.is_bool_dtype(values.dtype):
        flags = values.fillna(False).to_numpy(dtype=bool)
    elif pd.api.types.is_numeric_dtype(values.dtype):
        number = values.to_numpy(dtype=float, na_value=np.nan)
        flags = np.isfinite(number) & (number != 0)
    else:
        array = values.to_numpy(dtype=object)
        if pd.api.types.infer_dtype(array, skipna=False) == "boolean":
            flags = array.astype(bool)
        else:
            flags = _distinct(logic.is_true, [array]).astype(bool)
    return pd.Series(flags, index=values.index, dtype=bool)
