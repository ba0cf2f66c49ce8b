"""Send calendar: send hours across daylight-saving changes, quiet days, Norwegian holidays."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from conftest import edit

from hekta_redcap.core.errors import HektaError
from hekta_redcap.definitions.study import ContactFields, ReminderPolicy, load_project
from hekta_redcap.followup.sendtime import SendCalendar

UTC = dt.UTC


def calendar(**settings: object) -> SendCalendar:
    policy = ReminderPolicy.model_validate(
        {"contact": ContactFields(mobile="contact_mobile"), "steps": [], **settings}
    )
    return SendCalendar.from_policy(policy)


NORWAY = calendar(quiet_days=["sunday"], public_holidays="NO")
EVERY_DAY = calendar()


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("day", "opens", "closes"),
    [
        (dt.date(2026, 1, 15), utc(2026, 1, 15, 8), utc(2026, 1, 15, 19)),  # winter, CET
        (dt.date(2026, 6, 15), utc(2026, 6, 15, 7), utc(2026, 6, 15, 18)),  # summer, CEST
        (dt.date(2026, 3, 29), utc(2026, 3, 29, 7), utc(2026, 3, 29, 18)),  # spring forward
        (dt.date(2026, 10, 25), utc(2026, 10, 25, 8), utc(2026, 10, 25, 19)),  # fall back
    ],
)
def test_send_window_in_utc(day: dt.date, opens: dt.datetime, closes: dt.datetime) -> None:
    assert EVERY_DAY.opening(day) == opens
    assert EVERY_DAY.opening(day).tzinfo == EVERY_DAY.zone
    assert not EVERY_DAY.allowed(opens - dt.timedelta(seconds=1))
    assert EVERY_DAY.allowed(opens)
    assert EVERY_DAY.allowed(closes - dt.timedelta(seconds=1))
    assert not EVERY_DAY.allowed(closes)  # send_until itself is closed


def test_every_opening_of_a_year_is_nine_local_on_its_day() -> None:
    day = dt.date(2026, 1, 1)
    while day.year == 2026:
        opening = EVERY_DAY.opening(day)
        assert (opening.date(), opening.time()) == (day, dt.time(9, 0))
        assert opening.astimezone(UTC).astimezone(EVERY_DAY.zone) == opening
        day += dt.timedelta(days=1)


def test_moment_in_the_nonexistent_hour() -> None:
    gap = dt.datetime(2026, 3, 29, 2, 30, tzinfo=EVERY_DAY.zone)  # clocks jump 02:00 -> 03:00
    assert EVERY_DAY.local(gap).time() == dt.time(3, 30)
    assert not EVERY_DAY.allowed(gap)
    assert EVERY_DAY.next_allowed(gap) == utc(2026, 3, 29, 7)


def test_send_hours_inside_the_changes_become_real_moments() -> None:
    night = calendar(send_from="02:30", send_until="05:00")
    spring = night.opening(dt.date(2026, 3, 29))  # 02:30 does not exist: moved on by the gap
    assert spring == utc(2026, 3, 29, 1, 30)
    assert spring.time() == dt.time(3, 30)
    autumn = night.opening(dt.date(2026, 10, 25))  # 02:30 happens twice: the first one
    # (an ambiguous local time is never == to another zone's datetime: PEP 495)
    assert autumn.astimezone(UTC) == utc(2026, 10, 25, 0, 30)
    assert autumn.time() == dt.time(2, 30) and autumn.fold == 0
    second = utc(2026, 10, 25, 1, 30)  # the second 02:30 is inside the hours
    assert night.allowed(second)
    assert night.next_allowed(second).astimezone(UTC) == second
    assert night.next_allowed(second).fold == 1
    assert night.allowed(utc(2026, 10, 25, 3, 59))  # 04:59 CET
    assert not night.allowed(utc(2026, 10, 25, 4, 0))


def test_the_repeated_autumn_hour_is_told_apart() -> None:
    early = calendar(send_from="01:00", send_until="02:45")
    first = dt.datetime(2026, 10, 25, 2, 40, tzinfo=early.zone)  # 00:40 UTC, summer time
    second = first.replace(fold=1)  # 01:40 UTC, after the clocks went back
    assert early.allowed(first)
    assert not early.allowed(second)
    assert early.next_allowed(second).astimezone(UTC) == utc(2026, 10, 26, 0)


def test_naive_datetimes_are_refused() -> None:
    naive = dt.datetime(2026, 5, 18, 10, 0)
    for method in (NORWAY.local, NORWAY.day, NORWAY.allowed, NORWAY.next_allowed):
        with pytest.raises(ValueError, match="timezone-aware"):
            method(naive)


def test_local_day_is_the_policy_zones_day() -> None:
    late = utc(2026, 6, 15, 22, 30)  # 00:30 on 16 June in Oslo
    assert NORWAY.day(late) == dt.date(2026, 6, 16)
    assert NORWAY.local(late).utcoffset() == dt.timedelta(hours=2)


def test_quiet_days() -> None:
    weekdays_only = calendar(quiet_days=["saturday", "sunday"])
    saturday, sunday, monday = (dt.date(2026, 1, d) for d in (17, 18, 19))
    assert not weekdays_only.is_send_day(saturday)
    assert not weekdays_only.is_send_day(sunday)
    assert weekdays_only.is_send_day(monday)
    assert not weekdays_only.allowed(utc(2026, 1, 17, 12))


HOLIDAYS = {
    2026: [(1, 1), (4, 2), (4, 3), (4, 5), (4, 6), (5, 1), (5, 14), (5, 17), (5, 24), (5, 25),
           (12, 25), (12, 26)],
    2027: [(1, 1), (3, 25), (3, 26), (3, 28), (3, 29), (5, 1), (5, 6), (5, 16), (5, 17),
           (12, 25), (12, 26)],
}  # fmt: skip


@pytest.mark.parametrize("year", sorted(HOLIDAYS))
def test_norwegian_public_holidays(year: int) -> None:
    public = calendar(public_holidays="NO")  # no quiet days: only holidays close a day
    expected = {dt.date(year, m, d) for m, d in HOLIDAYS[year]}
    day = dt.date(year, 1, 1)
    while day.year == year:
        assert (public.holiday_name(day) is not None) == (day in expected), day
        assert public.is_send_day(day) == (day not in expected), day
        day += dt.timedelta(days=1)


def test_holiday_names_and_ordinary_sundays() -> None:
    public = calendar(public_holidays="NO")
    assert public.holiday_name(dt.date(2027, 3, 25)) == "Maundy Thursday"
    assert public.holiday_name(dt.date(2027, 3, 26)) == "Good Friday"
    assert public.holiday_name(dt.date(2027, 3, 29)) == "Easter Monday"
    assert public.holiday_name(dt.date(2027, 5, 6)) == "Ascension Day"
    assert "Constitution Day" in (public.holiday_name(dt.date(2026, 5, 17)) or "")
    whit_monday = public.holiday_name(dt.date(2027, 5, 17)) or ""
    assert "Constitution Day" in whit_monday and "Pentecost Monday" in whit_monday
    ordinary_sunday = dt.date(2026, 1, 4)
    assert public.holiday_name(ordinary_sunday) is None
    assert public.is_send_day(ordinary_sunday)
    assert not NORWAY.is_send_day(ordinary_sunday)  # quiet_days decides Sundays
    assert EVERY_DAY.holiday_name(dt.date(2026, 12, 25)) is None  # no country, no holidays


def test_next_allowed_across_easter_and_a_weekend() -> None:
    weekdays = calendar(quiet_days=["saturday", "sunday"], public_holidays="NO")
    wednesday_evening = dt.datetime(2027, 3, 24, 21, 0, tzinfo=weekdays.zone)
    # Thu 25 and Fri 26 holidays, weekend, Mon 29 Easter Monday; summer time from 28 March.
    opening = weekdays.next_allowed(wednesday_evening)
    assert opening == dt.datetime(2027, 3, 30, 9, 0, tzinfo=weekdays.zone)
    assert opening == utc(2027, 3, 30, 7)
    assert opening.tzinfo == weekdays.zone


def test_next_allowed_over_17_may_2026() -> None:
    saturday_night = dt.datetime(2026, 5, 16, 21, 0, tzinfo=NORWAY.zone)
    assert NORWAY.next_allowed(saturday_night) == utc(2026, 5, 18, 7)


def test_next_allowed_before_during_and_after_send_hours() -> None:
    zone = NORWAY.zone
    early = dt.datetime(2026, 1, 15, 7, 15, tzinfo=zone)
    assert NORWAY.next_allowed(early) == dt.datetime(2026, 1, 15, 9, 0, tzinfo=zone)
    during = utc(2026, 1, 15, 12, 34, 56)
    assert NORWAY.next_allowed(during) == during
    assert NORWAY.next_allowed(during).tzinfo == zone
    closing = dt.datetime(2026, 1, 15, 20, 0, tzinfo=zone)
    assert not NORWAY.allowed(closing)
    assert NORWAY.next_allowed(closing) == dt.datetime(2026, 1, 16, 9, 0, tzinfo=zone)
    assert NORWAY.allowed(dt.datetime(2026, 1, 15, 19, 59, 59, tzinfo=zone))
    assert NORWAY.allowed(dt.datetime(2026, 1, 15, 9, 0, tzinfo=zone))


def test_every_day_quiet_is_a_clear_error(library: Path) -> None:
    every_day = "[monday, tuesday, wednesday, thursday, friday, saturday, sunday]"
    study = edit(library, "studies/hekta.yaml", "quiet_days: [sunday]", f"quiet_days: {every_day}")
    quiet = SendCalendar.from_policy(load_project("hekta", library).study.reminders)
    with pytest.raises(HektaError, match=r"no send day.*reminders\.quiet_days") as caught:
        quiet.next_allowed(utc(2026, 1, 15, 12))
    assert caught.value.origin is not None and caught.value.origin.file == study
    assert not quiet.allowed(utc(2026, 1, 15, 12))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"timezone": "Europe/Nowhere"}, "reminders.timezone: unknown time zone 'Europe/Nowhere'"),
        ({"public_holidays": "XX"}, "reminders.public_holidays: unknown country code 'XX'"),
        ({"send_from": "20:00", "send_until": "09:00"}, "must be before reminders.send_until"),
        ({"send_from": "09:00", "send_until": "09:00"}, "must be before reminders.send_until"),
    ],
)
def test_bad_policies(settings: dict[str, str], message: str) -> None:
    with pytest.raises(HektaError, match=message.replace(".", r"\.")):
        calendar(**settings)


def test_the_shipped_policy() -> None:
    shipped = SendCalendar.from_policy(load_project("hekta").study.reminders)
    assert str(shipped.zone) == "Europe/Oslo"
    assert not shipped.is_send_day(dt.date(2026, 5, 17))
    assert not shipped.is_send_day(dt.date(2026, 5, 10))  # an ordinary Sunday: quiet
    assert shipped.is_send_day(dt.date(2026, 5, 16))  # Saturdays are send days
