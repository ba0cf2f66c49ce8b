"""When a reminder may go out: the study's send hours, quiet weekdays and public holidays.

A message may be sent on a local calendar day that is neither a quiet day nor a public holiday,
between `send_from` (inclusive) and `send_until` (exclusive) local time. Local times are built
from the local date and wall-clock time, then normalised through UTC, so the daylight-saving
changes can never produce a nonexistent or ambiguous moment (09:00 Europe/Oslo is 08:00 UTC in
winter and 07:00 UTC in summer). Compare the results in UTC: Python compares two datetimes of the
same zone by wall clock, and `==` with another zone is always false in the repeated autumn hour.

    >>> calendar = SendCalendar.from_policy(project.study.reminders)
    >>> calendar.next_allowed(dt.datetime(2026, 5, 16, 21, 0, tzinfo=calendar.zone))
    datetime.datetime(2026, 5, 18, 9, 0, tzinfo=zoneinfo.ZoneInfo(key='Europe/Oslo'))
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import TypedDict, get_args

import holidays

from hekta_redcap.core.errors import HektaError, Origin
from hekta_redcap.definitions.study import ReminderPolicy, Weekday

WEEKDAYS: tuple[Weekday, ...] = get_args(Weekday)  # monday first, as date.weekday()
SEARCH_DAYS = 400  # next_allowed gives up after this many days: the policy allows no day
HOLIDAY_LANGUAGE = "en_US"  # holiday names for logs, the same whatever the machine's locale


class SendCalendar:
    """The send days and hours of one reminder policy. Inputs are aware datetimes; outputs are
    aware datetimes in the policy's zone."""

    def __init__(
        self,
        zone: zoneinfo.ZoneInfo,
        send_from: dt.time,
        send_until: dt.time,
        quiet_days: frozenset[int] = frozenset(),
        country: str | None = None,
        origin: Origin | None = None,
    ) -> None:
        if send_from >= send_until:
            raise HektaError(
                f"reminders.send_from ({send_from:%H:%M}) must be before "
                f"reminders.send_until ({send_until:%H:%M})",
                origin,
            )
        self.zone = zone
        self.send_from = send_from
        self.send_until = send_until
        self.quiet_days = quiet_days
        self.country = country
        self.origin = origin
        self._holidays: dict[int, dict[dt.date, str]] = {}
        self._holiday_options: _HolidayOptions = {}
        if country is not None:
            self._holiday_options = _holiday_options(country, origin)

    @classmethod
    def from_policy(cls, policy: ReminderPolicy) -> SendCalendar:
        try:
            zone = zoneinfo.ZoneInfo(policy.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise HektaError(
                f"reminders.timezone: unknown time zone '{policy.timezone}'",
                policy.origin("timezone"),
            ) from None
        return cls(
            zone,
            policy.send_from,
            policy.send_until,
            frozenset(WEEKDAYS.index(day) for day in policy.quiet_days),
            policy.public_holidays,
            policy.origin(),
        )

    def local(self, moment: dt.datetime) -> dt.datetime:
        return _instant(moment).astimezone(self.zone)

    def day(self, moment: dt.datetime) -> dt.date:
        return self.local(moment).date()

    def is_send_day(self, day: dt.date) -> bool:
        return day.weekday() not in self.quiet_days and self.holiday_name(day) is None

    def allowed(self, moment: dt.datetime) -> bool:
        instant = _instant(moment)
        day = self.day(instant)
        return self.is_send_day(day) and (
            self._instant_at(day, self.send_from)
            <= instant
            < self._instant_at(day, self.send_until)
        )

    def next_allowed(self, moment: dt.datetime) -> dt.datetime:
        """`moment` itself (in the policy zone) if a message may go out then, else the next
        opening of the send hours."""
        instant = _instant(moment)
        start = self.day(instant)
        for offset in range(SEARCH_DAYS):
            day = start + dt.timedelta(days=offset)
            if self.is_send_day(day) and instant < self._instant_at(day, self.send_until):
                return max(self._instant_at(day, self.send_from), instant).astimezone(self.zone)
        raise HektaError(
            f"reminders: no send day in the {SEARCH_DAYS} days from {start.isoformat()}; "
            "check reminders.quiet_days and reminders.public_holidays",
            self.origin,
        )

    def opening(self, day: dt.date) -> dt.datetime:
        return self._instant_at(day, self.send_from).astimezone(self.zone)

    def holiday_name(self, day: dt.date) -> str | None:
        if self.country is None:
            return None
        if day.year not in self._holidays:
            found = holidays.country_holidays(self.country, years=day.year, **self._holiday_options)
            self._holidays[day.year] = dict(found.items())
        return self._holidays[day.year].get(day)

    def _instant_at(self, day: dt.date, time: dt.time) -> dt.datetime:
        """A wall-clock time on a local day as a UTC moment: a time in the spring-forward gap
        moves on by the gap, an ambiguous autumn time is its first occurrence."""
        return dt.datetime.combine(day, time, tzinfo=self.zone).astimezone(dt.UTC)


def _instant(moment: dt.datetime) -> dt.datetime:
    """An aware moment in UTC, where comparisons are by instant (Python compares two datetimes
    of one zone by wall clock, ignoring `fold`, which is wrong in the repeated autumn hour)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"a timezone-aware datetime is needed, got naive {moment}")
    return moment.astimezone(dt.UTC)


class _HolidayOptions(TypedDict, total=False):
    """Keyword options of `holidays.country_holidays`."""

    include_sundays: bool
    language: str


def _holiday_options(country: str, origin: Origin | None) -> _HolidayOptions:
    """Options that make a country's calendar list only its public holidays: some (Norway,
    Sweden) can count every Sunday as a holiday, and Sundays are for `quiet_days` to decide."""
    try:
        probe = holidays.country_holidays(country)
    except NotImplementedError:
        raise HektaError(
            f"reminders.public_holidays: unknown country code '{country}'", origin
        ) from None
    options: _HolidayOptions = {}
    if "include_sundays" in probe.get_supported_options():
        options["include_sundays"] = False
    if HOLIDAY_LANGUAGE in probe.supported_languages:
        options["language"] = HOLIDAY_LANGUAGE
    return options
