"""Follow-up windows: calendar-month arithmetic at month ends and in leap years, windows from
the study file, and anchors read from an export."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from conftest import LIBRARY

from hekta_redcap.definitions.study import Offset, load_project
from hekta_redcap.followup.schedule import (
    HISTORY,
    MAX_ATTEMPTS,
    STATES,
    add,
    anchor_dates,
    schedule,
    shift,
    state_labels,
    worklist,
)
from hekta_redcap.followup.worklist import needing_action
from hekta_redcap.registers.outcomes import Coverage
from hekta_redcap.registers.store import Covered

D = dt.date
OSLO = ZoneInfo("Europe/Oslo")


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
    """hekta.yaml: three follow-ups; the 6-month window opens 28 days before the target and
    closes 56 days after it."""
    project = load_project("hekta", LIBRARY)
    frame = schedule(project, pd.Series({"7": D(2025, 8, 31), "8": None}))
    assert frame["record_id"].tolist() == ["7"] * 3  # no anchor, no schedule
    six = frame[frame["event"] == "followup_6m_arm_1"].iloc[0]
    assert six["target_date"] == D(2026, 2, 28)
    assert six["window_open"] == D(2026, 1, 31)
    assert six["window_close"] == D(2026, 4, 25)
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


# -- states, next steps and the catch-up rule, on a pinned day --------------------------------

RAND = D(2026, 1, 15)  # 6-month target 15 July 2026, window 17 June .. 9 September
OPENS, TARGET, CLOSES = D(2026, 6, 17), D(2026, 7, 15), D(2026, 9, 9)
SIX = "followup_6m_arm_1"
SURVEYS = ("audit", "dudit", "substance_days", "hscl10", "phq9", "gad7", "life_satisfaction")


def _rows(**baseline: str) -> list[dict[str, str]]:
    """One participant: a baseline row (contact details, randomisation) and, where given, a
    6-month row whose surveys are complete."""
    complete = baseline.pop("complete", "")
    base = {
        "record_id": "1",
        "redcap_event_name": "baseline_arm_1",
        "redcap_repeat_instrument": "",
        "rand_date": RAND.isoformat(),
        "contact_mobile": "912 34 567",
        "contact_email": "kari@example.org",
        "contact_channel": "1",
        "do_not_contact": "0",
        "eos_status": "",
        **baseline,
    }
    rows = [base]
    if complete:
        project = load_project("hekta", LIBRARY)
        forms = [u.form for u in project.study.instruments if u.survey and SIX in u.events]
        rows.append(
            {
                "record_id": "1",
                "redcap_event_name": SIX,
                "redcap_repeat_instrument": "",
                **{f"{form}_complete": complete for form in forms},
            }
        )
    return rows


def _history(*taken: tuple[str, str, str, int, dt.datetime]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            ("1", SIX, step, channel, status, attempts, at)
            for step, channel, status, attempts, at in taken
        ],
        columns=list(HISTORY),
    )


def _six(rows: list[dict[str, str]], as_of: dt.date, history: pd.DataFrame | None = None):
    work = worklist(load_project("hekta", LIBRARY), rows, history, as_of, "en")
    return work[work["event"] == SIX].iloc[0]


def _at(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(10), tzinfo=OSLO)


def test_the_window_comes_from_the_study_file() -> None:
    row = _six(_rows(), D(2026, 6, 1))
    assert (row["target_date"], row["window_open"], row["window_close"]) == (TARGET, OPENS, CLOSES)


@pytest.mark.parametrize(
    ("as_of", "history", "state"),
    [
        (OPENS - dt.timedelta(days=1), None, "not_due"),
        (OPENS, None, "window_open"),
        (OPENS + dt.timedelta(days=3), (("invite", "sms", "sent", 1, OPENS),), "reminded"),
        (OPENS + dt.timedelta(days=3), (("invite", "sms", "maybe_sent", 1, OPENS),), "reminded"),
        (OPENS + dt.timedelta(days=3), (("invite", "sms", "failed", 1, OPENS),), "window_open"),
        (TARGET, None, "window_open"),  # the target day itself is not overdue
        (TARGET + dt.timedelta(days=1), None, "overdue"),
        (CLOSES, None, "overdue"),
        (CLOSES + dt.timedelta(days=1), None, "missed"),
    ],
)
def test_states_follow_the_clock(as_of: dt.date, history: tuple | None, state: str) -> None:
    taken = _history(*[(*t[:4], _at(t[4])) for t in history]) if history else None
    assert _six(_rows(), as_of, taken)["state"] == state


@pytest.mark.parametrize(
    ("baseline", "state", "reason"),
    [
        ({"complete": "2"}, "completed", ""),
        ({"complete": "1"}, "window_open", ""),  # started is not complete
        ({"eos_status": "2"}, "stopped", "withdrawn"),
        ({"eos_status": "4"}, "stopped", "deceased"),
        ({"do_not_contact": "1"}, "stopped", "do_not_contact"),
        ({"complete": "2", "eos_status": "2"}, "completed", ""),  # completed before withdrawing
    ],
)
def test_completion_and_stop_rules(baseline: dict[str, str], state: str, reason: str) -> None:
    row = _six(_rows(**baseline), OPENS + dt.timedelta(days=2))
    assert (row["state"], row["stop_reason"]) == (state, reason)


NO_ADDRESS = {"contact_mobile": "12", "contact_email": "not-an-address"}  # neither is valid


@pytest.mark.parametrize(
    ("as_of", "baseline", "state", "action"),
    [
        (OPENS - dt.timedelta(days=90), NO_ADDRESS, "not_due", "Add contact details"),
        (OPENS - dt.timedelta(days=1), NO_ADDRESS, "not_due", "Add contact details"),
        (OPENS, NO_ADDRESS, "window_open", "Call via the clinic"),
        (OPENS + dt.timedelta(days=20), NO_ADDRESS, "window_open", "Call via the clinic"),
        (TARGET + dt.timedelta(days=1), NO_ADDRESS, "overdue", "Call via the clinic"),
        (CLOSES, NO_ADDRESS, "overdue", "Call via the clinic"),
        (CLOSES + dt.timedelta(days=1), NO_ADDRESS, "missed", ""),
        (CLOSES + dt.timedelta(days=30), NO_ADDRESS, "missed", ""),
        (OPENS + dt.timedelta(days=2), {**NO_ADDRESS, "complete": "2"}, "completed", ""),
        (
            OPENS - dt.timedelta(days=1),
            {"contact_mobile": "", "contact_email": ""},
            "not_due",
            "Add contact details",
        ),
        # a stop rule still wins over the missing address
        (
            OPENS + dt.timedelta(days=2),
            {**NO_ADDRESS, "eos_status": "2"},
            "stopped",
            "None (stopped: withdrawn)",
        ),
    ],
)
def test_without_contact_details_a_follow_up_keeps_its_state_in_time(
    as_of: dt.date, baseline: dict[str, str], state: str, action: str
) -> None:
    row = _six(_rows(**baseline), as_of)
    assert (row["state"], row["next_action"]) == (state, action)
    assert row["stop_reason"] == ("withdrawn" if state == "stopped" else "")
    assert row["contact_missing"] and row["channel"] == ""
    if state in ("window_open", "overdue"):  # no message to the participant, the nurse's call
        assert row["next_step"] in ("", "call")


def test_the_worklist_asks_for_contact_details_once_per_participant() -> None:
    as_of = OPENS - dt.timedelta(days=60)  # both follow-ups months away
    work = worklist(load_project("hekta", LIBRARY), _rows(**NO_ADDRESS), None, as_of, "en")
    shown = needing_action(work, as_of)
    assert shown[["event", "next_action"]].values.tolist() == [[SIX, "Add contact details"]]
    reachable = worklist(load_project("hekta", LIBRARY), _rows(), None, as_of, "en")
    assert needing_action(reachable, as_of).empty


def test_the_survey_timestamp_also_completes_a_form() -> None:
    rows = _rows(complete="0")
    rows[1] |= {f"{form}_timestamp": "2026-06-20 10:01:02" for form in SURVEYS}
    rows[1] |= {f"{form}_complete": "2" for form in ("swls", "whoqol_bref", "eq5d5l")}
    assert _six(rows, OPENS + dt.timedelta(days=5))["state"] == "completed"


def test_next_steps_follow_the_policy() -> None:
    first = _six(_rows(), OPENS - dt.timedelta(days=3))
    assert (first["next_step"], first["next_due"], first["channel"]) == ("invite", OPENS, "sms")
    sent = _history(("invite", "sms", "sent", 1, _at(OPENS)))
    second = _six(_rows(), OPENS + dt.timedelta(days=1), sent)
    assert (second["next_step"], second["next_due"]) == ("reminder", OPENS + dt.timedelta(days=7))
    both = _history(
        ("invite", "sms", "sent", 1, _at(OPENS)),
        ("reminder", "sms", "sent", 1, _at(OPENS + dt.timedelta(days=7))),
    )
    third = _six(_rows(), OPENS + dt.timedelta(days=8), both)
    assert (third["next_step"], third["next_due"]) == ("call", OPENS + dt.timedelta(days=14))
    assert third["reminders_sent"] == 2


def test_catch_up_shifts_later_steps_instead_of_a_burst() -> None:
    """After downtime every step is past its planned day; only the first is due, and the next
    keeps its planned gap after the day the first actually went out."""
    late = OPENS + dt.timedelta(days=20)
    row = _six(_rows(), late)
    assert (row["next_step"], row["next_due"]) == ("invite", OPENS)
    sent = _history(("invite", "sms", "sent", 1, _at(late)))
    after = _six(_rows(), late + dt.timedelta(days=1), sent)
    assert (after["next_step"], after["next_due"]) == ("reminder", late + dt.timedelta(days=7))


def test_no_step_after_the_window_closes() -> None:
    near_close = CLOSES - dt.timedelta(days=3)
    sent = _history(("invite", "sms", "sent", 1, _at(near_close)))
    row = _six(_rows(), near_close + dt.timedelta(days=1), sent)
    assert row["next_step"] == "" and row["next_due"] is None
    assert row["next_action"] == "Call the participant"  # overdue, nothing more to send


def test_preferred_channel_and_fallback() -> None:
    email = _six(_rows(contact_channel="2"), OPENS)
    assert email["channel"] == "email"
    fallback = _six(_rows(contact_channel="2", contact_email=""), OPENS)
    assert fallback["channel"] == "sms"
    call = _six(_rows(contact_channel="3"), OPENS)  # prefers a call: only the nurse's step
    assert (call["channel"], call["next_step"]) == ("", "call")
    assert call["next_due"] == OPENS + dt.timedelta(days=14)


def test_refused_messages_are_retried_then_left_to_a_person() -> None:
    once = _history(("invite", "sms", "failed", 1, _at(OPENS)))
    assert _six(_rows(), OPENS + dt.timedelta(days=1), once)["next_step"] == "invite"
    spent = _history(("invite", "sms", "failed", MAX_ATTEMPTS, _at(OPENS)))
    row = _six(_rows(), OPENS + dt.timedelta(days=1), spent)
    assert row["next_step"] == "call"  # no reminder of an invite that never arrived
    assert row["next_action"] == "The message was refused: check the contact details"


def test_a_maybe_sent_message_is_for_a_person_to_check() -> None:
    maybe = _history(("invite", "sms", "maybe_sent", 1, _at(OPENS)))
    row = _six(_rows(), OPENS + dt.timedelta(days=8), maybe)
    assert row["maybe_sent"] == 1
    assert row["next_action"] == "Check whether the message was sent"


def test_register_follow_ups_need_no_contact() -> None:
    work = worklist(
        load_project("hekta", LIBRARY), _rows(do_not_contact="1"), None, D(2027, 7, 20), "en"
    )
    register = work[work["event"] == "register_18m_arm_1"].iloc[0]
    assert register["state"] == "overdue" and register["stop_reason"] == ""
    assert register["next_action"] == "Awaiting register data (aa, fd_trygd, inntekt)"
    assert register["next_step"] == ""


def test_the_register_follow_up_completes_when_deliveries_cover_month_18() -> None:
    """Randomised 15.01.2026: month 18 ends 14.07.2027, the day before the target date; the
    study file names aa, fd_trygd and inntekt, so all three must reach it, and only for a
    participant in the linkage key."""
    project = load_project("hekta", LIBRARY)
    year_end = D(2027, 12, 31)

    def state(linked: frozenset[str] = frozenset({"1"}), **given: Covered) -> str:
        covered = dict.fromkeys(("aa", "fd_trygd", "inntekt"), ((D(2020, 1, 1), year_end),))
        work = worklist(
            project, _rows(), None, D(2027, 7, 20), "en", Coverage({**covered, **given}, linked)
        )
        return str(work[work["event"] == "register_18m_arm_1"].iloc[0]["state"])

    assert state() == "completed"
    assert state(inntekt=((D(2020, 1, 1), D(2027, 7, 14)),)) == "completed"
    assert state(inntekt=((D(2020, 1, 1), D(2027, 7, 13)),)) == "overdue"  # a day short
    assert state(aa=((D(2026, 1, 16), year_end),)) == "overdue"  # starts a day after month 1
    # a month between two deliveries is unknown (the store joins deliveries that meet)
    assert state(aa=((D(2020, 1, 1), D(2026, 11, 30)), (D(2027, 1, 1), year_end))) == "overdue"
    assert state(fd_trygd=()) == "overdue"  # nothing imported from FD-Trygd yet
    assert state(kpr=()) == "completed"  # a register the follow-up does not name
    assert state(linked=frozenset({"2"})) == "overdue"  # declined linkage: no data come back
    before = worklist(project, _rows(), None, D(2027, 7, 20), "en")  # no coverage given
    assert before[before["event"] == "register_18m_arm_1"].iloc[0]["state"] == "overdue"


def test_every_state_has_a_code_and_label_in_the_tracking_form() -> None:
    labels = state_labels(load_project("hekta", LIBRARY), "nb")
    assert set(labels) == set(STATES)
    assert len({code for code, _ in labels.values()}) == len(STATES)
    assert labels["overdue"][1] == "Forfalt"


@pytest.mark.parametrize(
    ("start", "span", "expected"),
    [
        (D(2025, 8, 31), Offset(months=6), D(2026, 2, 28)),
        (D(2024, 2, 29), Offset(months=6), D(2024, 8, 29)),
        (D(2026, 3, 28), Offset(months=6), D(2026, 9, 28)),
        (D(2025, 8, 31), Offset(months=18, days=-28), D(2027, 1, 31)),  # 28 Feb 2027 - 28
        (D(2024, 2, 29), Offset(months=18, days=-28), D(2025, 8, 1)),  # 29 Aug 2025 - 28
        (D(2026, 3, 28), Offset(months=18, days=-28), D(2027, 8, 31)),  # 28 Sep 2027 - 28
        (D(2025, 8, 31), Offset(days=400), D(2026, 10, 5)),  # 365 to 31 Aug 2026, then 35
        (D(2024, 2, 29), Offset(days=400), D(2025, 4, 4)),  # 365 to 28 Feb 2025, then 35
        (D(2026, 3, 28), Offset(days=400), D(2027, 5, 2)),  # 365 to 28 Mar 2027, then 35
    ],
)
def test_add_matches_shift(start: dt.date, span: Offset, expected: dt.date) -> None:
    """The scalar and the vectorised form agree, on dates worked out by hand."""
    assert add(start, span) == expected
    assert shift(pd.Series([start]), span).tolist() == [expected]


def test_a_steps_day_is_the_local_day_it_went_out() -> None:
    """Sent at 23:30 UTC on 19 June = 01:30 in Oslo on the 20th: the reminder's gap counts from
    the 20th."""
    late = dt.datetime(2026, 6, 19, 23, 30, tzinfo=dt.UTC)
    row = _six(_rows(), D(2026, 6, 21), _history(("invite", "sms", "sent", 1, late)))
    assert (row["next_step"], row["next_due"]) == ("reminder", D(2026, 6, 27))
