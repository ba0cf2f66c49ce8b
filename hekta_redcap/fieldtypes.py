"""REDCap's field types and text validation types: which exist, what a stored value looks like,
and how a validation's min/max parse.

REDCap stores dates as Y-M-D whatever the display order (`date_dmy` only changes how a date is
shown and typed), so stored-value checks are the same for every date order. Lint uses this to
check definitions, the local REDCap-compatible server to validate imports, and the validator to
find wrong-type values in exports.

    >>> is_valid("number_1dp", "22")
    False
    >>> parse_bound("date_dmy", "2024-02-29")
    datetime.date(2024, 2, 29)
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Literal, get_args

FieldType = Literal[
    "text",
    "notes",
    "radio",
    "dropdown",
    "checkbox",
    "yesno",
    "truefalse",
    "calc",
    "slider",
    "file",
    "descriptive",
]
FIELD_TYPES = frozenset(get_args(FieldType))
CHOICE_TYPES = frozenset({"radio", "dropdown", "checkbox"})

_DATE = r"\d{4}-\d{2}-\d{2}"
_HM = r"(?:[01]\d|2[0-3]):[0-5]\d"
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def _decimals(places: int, sep: str) -> str:
    return rf"-?\d+{re.escape(sep)}\d{{{places}}}"


# Stored (API) format of each validation type. Types REDCap defines for other countries are
# approximations of REDCap's own patterns; none of them is used by this project's instruments.
PATTERNS: dict[str, str] = {
    **{f"date_{o}": _DATE for o in ("ymd", "mdy", "dmy")},
    **{f"datetime_{o}": rf"{_DATE} {_HM}" for o in ("ymd", "mdy", "dmy")},
    **{f"datetime_seconds_{o}": rf"{_DATE} {_HM}:[0-5]\d" for o in ("ymd", "mdy", "dmy")},
    "time": _HM,
    "time_hh_mm_ss": rf"{_HM}:[0-5]\d",
    "time_mm_ss": r"[0-5]\d:[0-5]\d",
    "integer": r"[-+]?\d+",
    "number": _NUM,
    **{f"number_{n}dp": _decimals(n, ".") for n in range(1, 5)},
    "number_comma_decimal": r"[-+]?\d+(?:,\d+)?",
    **{f"number_{n}dp_comma_decimal": _decimals(n, ",") for n in range(1, 5)},
    "email": r"[^@\s]+@[^@\s]+\.[^@\s]+",
    "phone": r"\(?[2-9]\d{2}\)?[-. ]?[2-9]\d{2}[-. ]?\d{4}(?:\s*(?:x|ext\.?)\s*\d+)?",
    "phone_australia": r"\(?0[2-8]\)?\s*\d{4}\s*\d{4}",
    "zipcode": r"\d{5}(?:-\d{4})?",
    "postalcode_australia": r"\d{4}",
    "postalcode_canada": r"[ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z] ?\d[ABCEGHJ-NPRSTV-Z]\d",
    "postalcode_french": r"\d{5}",
    "postalcode_germany": r"\d{5}",
    "ssn": r"\d{3}-\d{2}-\d{4}",
    "alpha_only": r"[A-Za-z]+",
    "mrn_10d": r"\d{10}",
    "mrn_generic": r"[A-Za-z0-9_-]+",
    "vmrn": r"\d{1,9}",
}
_COMPILED = {name: re.compile(pattern) for name, pattern in PATTERNS.items()}

# `signature` belongs to file fields and `autocomplete` to dropdowns; neither constrains text.
VALIDATION_TYPES = frozenset(PATTERNS) | {"signature", "autocomplete"}


def _date(value: str) -> dt.date:
    return dt.date.fromisoformat(value)


def _datetime(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def _mm_ss(value: str) -> dt.timedelta:
    minutes, seconds = value.split(":")
    return dt.timedelta(minutes=int(minutes), seconds=int(seconds))


def _comma_number(value: str) -> float:
    return float(value.replace(",", "."))


def _parser(validation: str) -> Callable[[str], object] | None:
    if validation.startswith("datetime"):
        return _datetime
    if validation.startswith("date"):
        return _date
    if validation == "time_mm_ss":
        return _mm_ss
    if validation.startswith("time"):
        return dt.time.fromisoformat
    if validation == "integer":
        return int
    if validation.startswith("number"):
        return _comma_number if "comma" in validation else float
    return None


def is_valid(validation: str, value: str) -> bool:
    """Whether a stored value has the format (and, for dates and times, a real calendar value)
    that REDCap requires for this validation type."""
    pattern = _COMPILED.get(validation)
    if pattern is None:
        return True
    if not pattern.fullmatch(value):
        return False
    parse = _parser(validation)
    if parse is None:
        return True
    try:
        parse(value)
    except ValueError:
        return False
    return True


def has_bounds(validation: str) -> bool:
    """Whether REDCap accepts a min/max for this validation type."""
    return _parser(validation) is not None


def parse_bound(validation: str, value: str, today: dt.date | None = None) -> object:
    """Parse a min or max under its validation type, so that bounds compare correctly.

    `today` and `now` are accepted for dates and datetimes, as REDCap does. Raises ValueError
    when the bound does not parse.
    """
    parse = _parser(validation)
    if parse is None:
        raise ValueError(f"validation '{validation}' takes no min/max")
    today = today or dt.date.today()
    if value in ("today", "now") and parse is _date:
        return today
    if value in ("today", "now") and parse is _datetime:
        return dt.datetime.combine(today, dt.time())
    if not is_valid(validation, value):
        raise ValueError(f"'{value}' is not a valid {validation} value")
    return parse(value)


def checkbox_column(field_name: str, code: str) -> str:
    """REDCap's export name for a checkbox option: codes lowercased, other characters '_'."""
    return f"{field_name}___{re.sub(r'[^a-z0-9_]', '_', code.lower())}"


def parse_choices(text: str) -> list[tuple[str, str]]:
    """`code, label | code, label` as REDCap splits it (on '|', then the first comma)."""
    choices = []
    for part in text.split("|"):
        if not part.strip():
            continue
        code, _, label = part.partition(",")
        choices.append((code.strip(), label.strip()))
    return choices
