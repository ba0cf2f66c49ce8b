"""The clock: every time is stored in UTC and shown to people in Europe/Oslo, dates as
day.month.year in bokmål (ISO 8601 in English).

    >>> stamp(now())                                   # what the store and the outbox keep
    '2026-12-04T22:51:07+00:00'
    >>> shown_time(parse("2026-12-04T22:51:07+00:00"))
    '2026-12-04 23:51'
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

ZONE = ZoneInfo("Europe/Oslo")  # where the trial runs: the zone people read times in


def now() -> dt.datetime:
    """The current time in UTC, aware, to the second: the clock every stored time is read
    from."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def stamp(moment: dt.datetime) -> str:
    """A moment as stored: ISO 8601 in UTC, so that stored texts compare in time order."""
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds")


def parse(text: str) -> dt.datetime:
    """A stored moment, aware (a store written before times were kept in UTC holds local
    offsets, which read the same)."""
    return dt.datetime.fromisoformat(text)


def local(moment: dt.datetime) -> dt.datetime:
    """A moment as people here see it (Europe/Oslo)."""
    return moment.astimezone(ZONE)


def shown_time(moment: dt.datetime) -> str:
    """A moment for people: `YYYY-MM-DD HH:MM` in Europe/Oslo."""
    return f"{local(moment):%Y-%m-%d %H:%M}"


def format_date(value: dt.date | str) -> str:
    """A date as people read it here: day.month.year (`dd.mm.yyyy`)."""
    if isinstance(value, str):
        value = dt.date.fromisoformat(value)
    if not isinstance(value, dt.date):
        raise TypeError(f"the date filter needs a date, got {type(value).__name__}")
    return value.strftime("%d.%m.%Y")


def shown_date(day: dt.date, language: str) -> str:
    """A date for people in `language`: dd.mm.yyyy in bokmål, ISO 8601 in English."""
    return format_date(day) if language == "nb" else day.isoformat()
