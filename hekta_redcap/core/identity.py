"""Norwegian national identity numbers: fødselsnummer, D-numbers and Skatteetaten's synthetic
test population, checked by python-stdnum (check digits and birth date), never by hand.

A number is personal data: `IdentityCheck` keeps it out of its repr, and nothing here puts it in
a message, an exception or a log line; callers report the reason, a short code (`REASONS`).

    >>> check_national_id("15108695088").kind
    'fødselsnummer'
    >>> check_national_id("15108695077").reason
    'check-digits'
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

from stdnum.exceptions import InvalidChecksum, InvalidFormat, InvalidLength, ValidationError
from stdnum.no import fodselsnummer

Kind = Literal["fødselsnummer", "D-number", "synthetic"]
Reason = Literal["missing", "length", "digits", "check-digits", "date", "help-number", "synthetic"]
# Each reason in English, for the command line (validation has its own words, in nb and en).
REASONS: dict[Reason, str] = {
    "missing": "missing",
    "length": "not 11 digits",
    "digits": "not digits only",
    "check-digits": "invalid check digits",
    "date": "no valid birth date",
    "help-number": "an H- or FH-number (a health service's help number), not an identity number",
    "synthetic": "a synthetic test number (accepted only with HEKTA_ALLOW_SYNTHETIC_IDS=1)",
}
# Skatteetaten's synthetic test population adds 80 to the month: no real person's number.
SYNTHETIC_MONTH = 80


@dataclass(frozen=True)
class IdentityCheck:
    """What a value is: a valid number of `kind` (its compact form in `number`), or not valid
    for `reason` (`number` blank)."""

    number: str = field(repr=False)
    kind: Kind | None = None
    reason: Reason | None = None

    @property
    def valid(self) -> bool:
        return self.reason is None


def check_national_id(value: str | None, allow_synthetic: bool = False) -> IdentityCheck:
    """Check an identity number as typed (spaces and hyphens between digits are ignored).
    Fødselsnummer and D-numbers (day + 40) are valid; numbers of the synthetic population
    (month + 80) only with `allow_synthetic`; H-numbers (month + 40) and FH-numbers (first
    digit 8 or 9) are help numbers that no register links on, and are refused."""
    number = fodselsnummer.compact(value or "")
    if not number:
        return IdentityCheck("", reason="missing")
    if len(number) == 11 and number.isascii() and number.isdigit() and number[2] in "89":
        return _synthetic(number, allow_synthetic)
    try:
        fodselsnummer.validate(number)
    except ValidationError as exc:
        return IdentityCheck("", reason=_reason(exc, number))
    if number[2] in "45":  # stdnum accepts H-numbers (month + 40)
        return IdentityCheck("", reason="help-number")
    return IdentityCheck(number, "D-number" if number[0] in "4567" else "fødselsnummer")


def _reason(exc: ValidationError, number: str) -> Reason:
    match exc:
        case InvalidLength():
            return "length"
        case InvalidFormat():
            return "digits"
        case InvalidChecksum():
            return "check-digits"
    # InvalidComponent: no birth date (FH-numbers have none by design), or one in the future
    return "help-number" if number[0] in "89" else "date"


def _synthetic(number: str, allow: bool) -> IdentityCheck:
    """A number of the synthetic population. stdnum knows D- and H-numbers but reads month + 80
    as no month at all, so it is asked twice: for the check digits of the number as written
    (the synthetic population computes them so) and for the birth date of the number with the
    month mapped back."""
    if not allow:
        return IdentityCheck("", reason="synthetic")
    first, second = fodselsnummer.calc_check_digit1(number), fodselsnummer.calc_check_digit2(number)
    if number[9:] != first + second:
        return IdentityCheck("", reason="check-digits")
    month = int(number[2:4]) - SYNTHETIC_MONTH
    try:
        born = fodselsnummer.get_birth_date(f"{number[:2]}{month:02d}{number[4:]}")
    except ValidationError:
        return IdentityCheck("", reason="date")
    if born > dt.date.today():
        return IdentityCheck("", reason="date")
    return IdentityCheck(number, "synthetic")
