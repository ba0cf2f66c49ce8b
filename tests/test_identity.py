"""National identity numbers: what python-stdnum says of fødselsnummer, D-, H- and FH-numbers,
what the toolkit makes of Skatteetaten's synthetic test population (month + 80), and
validation's national-id rule, which names the reason and never the number.

The valid numbers are stdnum's own documentation example and numbers of people born in 1854,
whom no identity number was ever issued to (numbers date from 1964)."""

from __future__ import annotations

import pandas as pd
import pytest

from hekta_redcap.core.identity import REASONS, check_national_id
from hekta_redcap.definitions.study import load_project
from hekta_redcap.redcap.names import EVENT
from hekta_redcap.validation import validate_records
from hekta_redcap.validation.layout import Layout

VALID = "15108695088"  # stdnum's example: 15 October 1986
BORN_1854 = "01015450068"  # 1 January 1854 (individual number 500: the 1800s)
D_NUMBER = "41015450051"  # the same day + 40
H_NUMBER = "01415450040"  # the month + 40: stdnum accepts it
FH_NUMBER = "81015450045"  # first digit 8: a help number without a birth date
SYNTHETIC = "17859012310"  # 17 May 1990, month + 80 (check digits over the number as written)
SYNTHETIC_D = "57859012304"  # the same, day + 40 too
SYNTHETIC_BAD_DIGIT = "17859012311"
SYNTHETIC_MONTH_13 = "01935450051"  # month 93: 13 once 80 is taken off
NO_DATE = "31025450151"  # 31 February, check digits right
NOT_BORN = "01013950187"  # 1 January 2039
BAD_CHECK_DIGIT = "15108695077"


@pytest.mark.parametrize(
    ("value", "kind", "reason"),
    [
        (VALID, "fødselsnummer", None),
        (BORN_1854, "fødselsnummer", None),
        ("151086 95088", "fødselsnummer", None),  # spaces and hyphens between digits are ignored
        (" 151086-95088 ", "fødselsnummer", None),
        (D_NUMBER, "D-number", None),
        (BAD_CHECK_DIGIT, None, "check-digits"),
        ("15108695087", None, "check-digits"),  # the second check digit alone
        (H_NUMBER, None, "help-number"),
        (FH_NUMBER, None, "help-number"),
        (NO_DATE, None, "date"),
        (NOT_BORN, None, "date"),
        ("1510869508", None, "length"),
        ("151086950880", None, "length"),
        ("1510869508x", None, "digits"),
        ("", None, "missing"),
        ("   ", None, "missing"),
        (None, None, "missing"),
        (SYNTHETIC, None, "synthetic"),  # refused by default
        (SYNTHETIC_D, None, "synthetic"),
    ],
)
def test_numbers_by_default(value: str | None, kind: str | None, reason: str | None) -> None:
    check = check_national_id(value)
    assert (check.kind, check.reason, check.valid) == (kind, reason, reason is None)
    assert check.number == ("".join(c for c in value if c.isdigit()) if kind else "")


@pytest.mark.parametrize(
    ("value", "kind", "reason"),
    [
        (SYNTHETIC, "synthetic", None),
        (SYNTHETIC_D, "synthetic", None),
        (SYNTHETIC_BAD_DIGIT, None, "check-digits"),
        (SYNTHETIC_MONTH_13, None, "date"),
        (VALID, "fødselsnummer", None),  # real numbers stay valid
        (H_NUMBER, None, "help-number"),
    ],
)
def test_synthetic_numbers_when_allowed(value: str, kind: str | None, reason: str | None) -> None:
    check = check_national_id(value, allow_synthetic=True)
    assert (check.kind, check.reason) == (kind, reason)


def test_a_check_never_shows_its_number() -> None:
    check = check_national_id(VALID)
    assert check.number == VALID
    assert VALID not in repr(check) and VALID not in str(check) and VALID not in f"{check}"


def test_every_reason_has_words() -> None:
    assert set(REASONS) == {
        "missing",
        "length",
        "digits",
        "check-digits",
        "date",
        "help-number",
        "synthetic",
    }


# -- validation's national-id rule ----------------------------------------------------------

NUMBERS = {
    "1": VALID,
    "2": D_NUMBER,
    "3": BAD_CHECK_DIGIT,
    "4": H_NUMBER,
    "5": "1510869508",
    "6": SYNTHETIC,
    "7": "",
    "8": "UNK",  # a missing data code: rule I's, not this rule's
}


def _validate(allow_synthetic: bool) -> pd.DataFrame:
    """The baseline rows of eight records holding only a national identity number."""
    project = load_project("hekta")
    columns = Layout(project, pd.DataFrame()).raw.columns
    rows = pd.DataFrame(
        [{"record_id": r, EVENT: "baseline_arm_1", "national_id": n} for r, n in NUMBERS.items()]
    ).reindex(columns=columns, fill_value="")
    result = validate_records(project, rows, allow_synthetic_ids=allow_synthetic)
    return result.problems


def test_validation_lists_invalid_numbers_with_the_reason_not_the_value() -> None:
    problems = _validate(allow_synthetic=False)
    found = problems[problems["rule"] == "national-id"]
    assert dict(zip(found["record"], found["severity"], strict=True)) == dict.fromkeys(
        ["3", "4", "5", "6"], "error"
    )
    assert (found["field"] == "national_id").all() and (found["value"] == "").all()
    messages = dict(zip(found["record"], found["message_en"], strict=True))
    assert messages["3"] == (
        "“National identity number (fødselsnummer)” is not a valid national identity number or "
        "D number: the check digits do not match, so a digit is probably wrong."
    )
    assert "help number" in messages["4"] and "11 digits" in messages["5"]
    assert "synthetic test number" in messages["6"]
    nb = dict(zip(found["record"], found["message_nb"], strict=True))
    assert nb["3"].startswith("«Fødselsnummer» er ikke et gyldig fødselsnummer eller D-nummer")
    coded = problems[(problems["record"] == "8") & (problems["field"] == "national_id")]
    assert coded["rule"].tolist() == ["missing-code"]
    shown = problems.drop(columns="digest").to_csv()
    assert not any(number in shown for number in NUMBERS.values() if len(number) > 4)


def test_validation_accepts_synthetic_numbers_when_allowed() -> None:
    problems = _validate(allow_synthetic=True)
    found = problems[problems["rule"] == "national-id"]
    assert sorted(found["record"]) == ["3", "4", "5"]
