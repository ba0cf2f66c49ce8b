"""Every validation type REDCap ships, with its stored format and how its bounds read; the
typed reading and the pandera schemas use the same formats."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from hekta_redcap.redcap.fieldtypes import (
    PATTERNS,
    canonical_validation,
    has_bounds,
    is_known_validation,
    is_site_validation,
    is_valid,
    parse_bound,
)
from hekta_redcap.validation.reading import _parse

VALID = [
    ("datetime_seconds_dmy", "2024-02-29 23:59:59", "2024-02-29 23:59"),
    ("time_mm_ss", "59:59", "60:00"),
    ("time_hh_mm_ss", "23:00:01", "24:00:00"),
    ("number_2dp", "-1.25", "1.2"),
    ("number_1dp_comma_decimal", "72,5", "72.5"),
    ("number_comma_decimal", "3,14", "3.14"),
    ("phone_uk", "020 7946 0958", "12345"),
    ("phone_uk", "+44 20 7946 0958", "+1 555 0100"),
    ("postalcode_uk", "SW1A 1AA", "SW1A"),
    ("postalcode_canada", "K1A 0B1", "K1A0B"),
    ("postalcode_germany", "10115", "1011"),
    ("postalcode_french", "75001", "7500A"),
    ("postalcode_australia", "2000", "20000"),
    ("ssn", "078-05-1120", "078051120"),
    ("alpha_only", "Oslo", "Oslo1"),
    ("mrn_10d", "0123456789", "123456789"),
    ("mrn_8d", "01234567", "0123456789"),
    ("mrn_generic", "AB-12_3", "AB 12"),
    ("vmrn", "123456789", "1234567890"),
    ("zipcode", "12345-6789", "1234"),
    ("int", "-7", "7.0"),
    ("float", "1e3", "1,5"),
    ("date", "2024-12-31", "31-12-2024"),
    ("datetime", "2024-12-31 08:00", "2024-12-31"),
]


@pytest.mark.parametrize(("validation", "good", "bad"), VALID)
def test_stored_formats(validation: str, good: str, bad: str) -> None:
    assert is_valid(validation, good)
    assert not is_valid(validation, bad)


@pytest.mark.parametrize(("validation", "good", "bad"), VALID)
def test_typed_reading_uses_the_same_formats(validation: str, good: str, bad: str) -> None:
    valid = _parse(canonical_validation(validation), pd.Series([good, bad], dtype=object))[1]
    assert list(valid) == [True, False]


def test_the_catalogue() -> None:
    assert len(PATTERNS) == 38
    assert all(is_known_validation(name) for name in ("date", "int", "float", "signature"))
    assert is_site_validation("mrn_8d") and is_site_validation("postalcode_brazil")
    assert not is_site_validation("phone_uk") and not is_site_validation("date_xyz")
    assert [canonical_validation(v) for v in ("int", "float", "date", "datetime_seconds")] == [
        "integer",
        "number",
        "date_ymd",
        "datetime_seconds_ymd",
    ]
    assert has_bounds("number_2dp_comma_decimal") and not has_bounds("phone_uk")


def test_bounds_read_as_redcap_reads_them() -> None:
    today = dt.date(2026, 1, 2)
    assert parse_bound("number_1dp", "0") == 0.0
    assert parse_bound("number_2dp_comma_decimal", "9,99") == 9.99
    assert parse_bound("integer", "1e3") == 1000.0
    assert parse_bound("datetime_ymd", "2024-01-01") == dt.datetime(2024, 1, 1)
    assert parse_bound("datetime_seconds_dmy", "NOW", today) == dt.datetime(2026, 1, 2)
    assert parse_bound("time_mm_ss", "05:30") == dt.timedelta(minutes=5, seconds=30)
    with pytest.raises(ValueError, match="pipes a field's value"):
        parse_bound("date_ymd", "[visit_date]")
    with pytest.raises(ValueError, match="'2024-02-30' is not a valid date_dmy value"):
        parse_bound("date_dmy", "2024-02-30")
    with pytest.raises(ValueError, match="takes no min/max"):
        parse_bound("email", "a")
