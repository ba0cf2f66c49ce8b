"""REDCap's field types and text validation types: which exist, what a stored value looks like,
and how a validation's min/max parse.

REDCap stores dates as Y-M-D whatever the display order (`date_dmy` only changes how a date is
shown and typed), so stored-value checks are the same for every date order. Lint uses this to
check definitions, `import-dictionary` and the local REDCap-compatible server to decide what
REDCap would accept, and the validator to find wrong-type values in exports. The catalogue and
the sources of each format are in docs/redcap-rules.md.

    >>> is_valid("number_1dp", "22")
    False
    >>> parse_bound("date_dmy", "2024-02-29")
    datetime.date(2024, 2, 29)
    >>> canonical_validation("int")
    'integer'
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any, Literal, Protocol, get_args

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
    "sql",
]
FIELD_TYPES = frozenset(get_args(FieldType))
CHOICE_TYPES = frozenset({"radio", "dropdown", "checkbox"})
# `sql` is a dropdown whose choices a query fills; only a REDCap administrator may add one.
ADMIN_TYPES = frozenset({"sql"})

# A choice code as REDCap permits it: letters, digits, underscores, dots and hyphens (so `-99`,
# `1.5` and LOINC answer codes such as `LA4489-6`).
CHOICE_CODE = re.compile(r"[A-Za-z0-9_.\-]+")

_DATE = r"\d{4}-\d{2}-\d{2}"
_HM = r"(?:[01]\d|2[0-3]):[0-5]\d"
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_COMMA_NUM = r"[-+]?(?:\d+,?\d*|,\d+)(?:[eE][-+]?\d+)?"


def _decimals(places: int, sep: str) -> str:
    return rf"[-+]?\d+{re.escape(sep)}\d{{{places}}}"


# Stored (API) format of each validation type a REDCap installation ships. Types for other
# countries follow the formats REDCap documents for them (docs/redcap-rules.md says which are
# approximations); none of them is used by this project's instruments.
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
    "number_comma_decimal": _COMMA_NUM,
    **{f"number_{n}dp_comma_decimal": _decimals(n, ",") for n in range(1, 5)},
    "email": r"[^@\s]+@[^@\s]+\.[^@\s]+",
    "phone": r"\(?[2-9]\d{2}\)?[-. ]?[2-9]\d{2}[-. ]?\d{4}(?:\s*(?:x|ext\.?)\s*\d+)?",
    "phone_australia": r"\(?0[2-8]\)?\s*\d{4}\s*\d{4}",
    "phone_uk": r"(?:\+44\s?\(?0?\)?|\(?0)\d{2,4}\)?[\s-]?\d{3,4}[\s-]?\d{3,4}",
    "zipcode": r"\d{5}(?:-\d{4})?",
    "postalcode_australia": r"\d{4}",
    "postalcode_canada": r"[ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z] ?\d[ABCEGHJ-NPRSTV-Z]\d",
    "postalcode_french": r"\d{5}",
    "postalcode_germany": r"\d{5}",
    "postalcode_uk": r"(?i:[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2})",
    "ssn": r"\d{3}-\d{2}-\d{4}",
    "alpha_only": r"[A-Za-z]+",
    "mrn_10d": r"\d{10}",
    "mrn_generic": r"[A-Za-z0-9_-]+",
    "vmrn": r"\d{1,9}",
}
# Names older REDCap versions wrote, which REDCap still reads as the type on the right.
LEGACY_VALIDATIONS = {
    "date": "date_ymd",
    "datetime": "datetime_ymd",
    "datetime_seconds": "datetime_seconds_ymd",
    "int": "integer",
    "float": "number",
}
# Validations of other field types: a file field's signature pad, a dropdown's (or an sql
# field's) search box, and a slider's "show the number".
OTHER_VALIDATIONS = {
    "file": frozenset({"signature"}),
    "dropdown": frozenset({"autocomplete"}),
    "sql": frozenset({"autocomplete"}),
    "slider": frozenset({"number"}),
}
VALIDATION_TYPES = (
    frozenset(PATTERNS) | frozenset(LEGACY_VALIDATIONS) | {"signature", "autocomplete"}
)
# Families whose members an installation may add beyond those it ships (`mrn_8d`,
# `postalcode_brazil`): REDCap accepts them where the site defined them.
SITE_FAMILIES = re.compile(r"mrn_\d+d|postalcode_[a-z]+|phone_[a-z]+")
_COMPILED = {name: re.compile(pattern) for name, pattern in PATTERNS.items()}
_SITE_MRN = re.compile(r"mrn_(\d+)d")
# A min/max may pipe another field's value (`[visit_date]`), known only per record.
_PIPED = re.compile(r"(?:\[[^\[\]]+\])+")


def canonical_validation(validation: str) -> str:
    """The current name of a validation type (`int` is `integer`, `date` is `date_ymd`)."""
    return LEGACY_VALIDATIONS.get(validation, validation)


def is_known_validation(validation: str) -> bool:
    """Whether a standard REDCap installation ships this text validation type."""
    return validation in VALIDATION_TYPES


def is_site_validation(validation: str) -> bool:
    """A name in a family whose members installations define themselves (`mrn_8d`)."""
    return not is_known_validation(validation) and bool(SITE_FAMILIES.fullmatch(validation))


def pattern_of(validation: str) -> re.Pattern[str] | None:
    """The stored format of a validation type (None: any text, or a type we cannot check)."""
    name = canonical_validation(validation)
    if name in _COMPILED:
        return _COMPILED[name]
    if match := _SITE_MRN.fullmatch(name):
        return re.compile(rf"\d{{{int(match[1])}}}")
    return None


class Bound(Protocol):
    """A parsed min, max or value (a number, date, date-time, time or duration): it compares
    with the others parsed under the same validation type."""

    def __lt__(self, other: Any, /) -> bool: ...
    def __le__(self, other: Any, /) -> bool: ...
    def __gt__(self, other: Any, /) -> bool: ...
    def __ge__(self, other: Any, /) -> bool: ...


def _date(value: str) -> dt.date:
    return dt.date.fromisoformat(value)


def _datetime(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def _mm_ss(value: str) -> dt.timedelta:
    minutes, seconds = value.split(":")
    return dt.timedelta(minutes=int(minutes), seconds=int(seconds))


def _comma_number(value: str) -> float:
    return float(value.replace(",", "."))


def _parser(validation: str) -> Callable[[str], Bound] | None:
    validation = canonical_validation(validation)
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
    pattern = pattern_of(validation)
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


def is_piped(bound: str) -> bool:
    """A min/max that pipes another field's value (`[visit_date]`), known only per record."""
    return bool(_PIPED.fullmatch(bound.strip()))


def parse_bound(validation: str, value: str, today: dt.date | None = None) -> Bound:
    """Parse a min or max under its validation type, so that bounds compare correctly.

    REDCap writes bounds in the stored format, but reads them more loosely than values: a
    number type's bound is any number (`0` for `number_1dp`, `1.5` or `1,5` for the comma
    types), a datetime's may leave out the time or add seconds, and `today`/`now` stand for
    the day a record is checked. Raises ValueError when the bound does not parse, or pipes
    another field (its value is known only per record).
    """
    parse = _parser(validation)
    if parse is None:
        raise ValueError(f"validation '{validation}' takes no min/max")
    if is_piped(value):
        raise ValueError(f"'{value}' pipes a field's value, known only per record")
    today = today or dt.date.today()
    word = value.strip().lower()
    if word in ("today", "now") and parse is _date:
        return today
    if word in ("today", "now") and parse is _datetime:
        return dt.datetime.combine(today, dt.time())
    if word == "now" and parse is dt.time.fromisoformat:
        return dt.datetime.now().time().replace(microsecond=0)
    try:
        if parse in (int, float, _comma_number):
            number = float(value.strip().replace(",", "."))
            if number != number or number in (float("inf"), float("-inf")):
                raise ValueError
            return number
        if parse is _datetime:
            return _datetime(value.strip())
        if not is_valid(validation, value):
            raise ValueError
        return parse(value)
    except ValueError:
        raise ValueError(f"'{value}' is not a valid {validation} value") from None


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


def choices_text(choices: list[tuple[str, str]]) -> str:
    """The canonical `code, label | code, label` text REDCap writes for choices."""
    return " | ".join(f"{code}, {label}" for code, label in choices)


def slider_labels(text: str) -> tuple[str, str, str]:
    """A slider's left, middle and right labels from `left | middle | right`; two labels are
    the two ends, one label the left end."""
    parts = [part.strip() for part in text.split("|")] if text.strip() else []
    if len(parts) == 2:
        return parts[0], "", parts[1]
    parts += ["", "", ""]
    return parts[0], parts[1], parts[2]
