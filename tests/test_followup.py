"""Follow-up windows: calendar-month arithmetic at month ends and in leap years, windows from
the study file, and anchors read from an export."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from conftest import LIBRARY

from hekta_redcap.followup import anchor_dates, schedule, shift
from hekta_redcap.study import Offset, load_project

D = dt.date


@pytest.mark.parametrize(
    ("start", "offset", "expected"),
    [
        (D(2025, 8, 31), Offset(months=6), D(2026, 2, 28)),  # clipped to February's end
        (D(2027, 8, 31), Offset(months=6), D(2028, 2, 29)),  # a leap year's end
        (D(2026, 3, 31), Offset(months=6), D(2026, 9, 30)),
        (D(2024, 2, 29), Offset(months=12), D(2025, 2, 28)),
        (D(2024, 2, 29), Offset(months=48), D(2028, 2, 29)),
        (D(2026, 1, 15), Offset(months=18), D(2027, 7, 15)),
        (D(2026, 3, 28), Offset(days=2), D(2026, 3, 30)),  # across the spring DST change
        (D(2026, 2, 28), Offset(months=1, days=1), D(2026, 3, 29)),  # months first, then days
        (D(2026, 3, 1), Offset(days=-28), D(2026, 2, 1)),
    ],
)
def test_calendar_month_arithmetic(start: dt.date, offset: Offset, expected: dt.date) -> None:
    assert shift(pd.Series([start]), offset).tolist() == [expected]


def test_schedule_follows_the_study_file() -> None:
    project = load_project("hekta", LIBRARY)
    rules = {f.event: f for f in project.study.schedule.followups}
    frame = schedule(project, pd.Series({"7": D(2025, 8, 31), "8": None}))
    assert frame["record_id"].tolist() == ["7"] * len(rules)  # no anchor, no schedule
    six = frame[frame["event"] == "followup_6m_arm_1"].iloc[0]
    assert six["target_date"] == D(2026, 2, 28)
    opens, closes = rules["followup_6m_arm_1"].open.days, rules["followup_6m_arm_1"].close.days
    assert six["window_open"] == D(2026, 2, 28) + dt.timedelta(days=opens)
    assert six["window_close"] == D(2026, 2, 28) + dt.timedelta(days=closes)
    assert frame["target_date"].is_monotonic_increasing


def test_anchor_dates_come_from_the_anchor_event() -> None:
    project = load_project("hekta", LIBRARY)
    rows = pd.DataFrame(
        {
            "record_id": ["1", "1", "2", "3"],
            "redcap_event_name": [
                "baseline_arm_1",
                "followup_6m_arm_1",
                "baseline_arm_1",
                "baseline_arm_1",
            ],
            "rand_date": ["2026-01-31", "2030-01-01", "", "not a date"],
        }
    )
    assert anchor_dates(project, rows).to_dict() == {"1": D(2026, 1, 31)}
