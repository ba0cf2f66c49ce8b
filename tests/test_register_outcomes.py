"""Register outcomes on hand-worked cases: the person-month panel (months counted from the
randomisation date, clipped calendar months, no month 0) and the endpoints at 18, 60 and 120
months, with every expected value worked out by hand in the comments."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import pytest
from conftest import LIBRARY

from hekta_redcap.core.errors import HektaError
from hekta_redcap.core.settings import Settings
from hekta_redcap.definitions.registers import RegisterLayout, load_layouts
from hekta_redcap.definitions.study import load_project
from hekta_redcap.registers.outcomes import (
    Coverage,
    coverage,
    endpoints,
    measures,
    panel,
    participants,
    register_tables,
)

LAYOUTS = load_layouts()
FAR = ((dt.date(2000, 1, 1), dt.date(2040, 12, 31)),)  # every month of the panel covered
EVERYWHERE = dict.fromkeys(LAYOUTS, FAR)


def rows(source: str, *given: Mapping[str, object]) -> pd.DataFrame:
    """A register's rows as the store types them, given by concept (`start`, `end`, ...) or by
    column name; the layout names the columns, other columns are blank."""
    layout: RegisterLayout = LAYOUTS[source]
    frame = pd.DataFrame(
        [{(layout.column(k) or k): v for k, v in {"serial": "", **row}.items()} for row in given],
        columns=[v.name for v in layout.variables],
    )
    for variable in layout.variables:
        if variable.type in ("date", "month"):
            frame[variable.name] = pd.to_datetime(frame[variable.name])
        elif variable.type == "number":
            frame[variable.name] = frame[variable.name].astype(float)
    return frame


def people(*given: tuple[str, str | None, str]) -> pd.DataFrame:
    """Participants (record id, serial number, randomisation date), arm 1 for odd records."""
    return pd.DataFrame(
        {
            "record_id": [r for r, _, _ in given],
            "lopenr": [s for _, s, _ in given],
            "rand_date": [dt.date.fromisoformat(d) for _, _, d in given],
            "arm": ["1" if int(r) % 2 else "2" for r, _, _ in given],
        }
    )


def month(frame: pd.DataFrame, record: str, m: int) -> pd.Series:
    found = frame[(frame["record_id"] == record) & (frame["month"] == m)]
    assert len(found) == 1
    return found.iloc[0]


def days(row: pd.Series) -> tuple[str, str]:
    return row["month_start"].date().isoformat(), row["month_end"].date().isoformat()


# -- months ---------------------------------------------------------------------------------------


def test_months_are_clipped_calendar_months_from_the_31st() -> None:
    frame = panel(LAYOUTS, {}, people(("1", "L1", "2025-01-31")), EVERYWHERE)
    assert frame["month"].tolist() == [*range(-24, 0), *range(1, 121)]  # no month 0
    assert days(month(frame, "1", 1)) == ("2025-01-31", "2025-02-27")
    assert days(month(frame, "1", 2)) == ("2025-02-28", "2025-03-30")
    assert days(month(frame, "1", 3)) == ("2025-03-31", "2025-04-29")
    assert days(month(frame, "1", 18)) == ("2026-06-30", "2026-07-30")  # the day before 31.07
    assert days(month(frame, "1", -1)) == ("2024-12-31", "2025-01-30")
    assert days(month(frame, "1", -24)) == ("2023-01-31", "2023-02-27")
    assert days(month(frame, "1", 120)) == ("2034-12-31", "2035-01-30")
    starts = frame["month_start"]
    assert (
        starts.iloc[1:].to_numpy() == (frame["month_end"].iloc[:-1] + pd.Timedelta(days=1))
    ).all()


def test_months_from_29_february() -> None:
    frame = panel(LAYOUTS, {}, people(("1", "L1", "2024-02-29")), EVERYWHERE)
    assert days(month(frame, "1", 1)) == ("2024-02-29", "2024-03-28")
    assert days(month(frame, "1", 12)) == ("2025-01-29", "2025-02-27")
    assert days(month(frame, "1", 13)) == ("2025-02-28", "2025-03-28")
    assert days(month(frame, "1", -1)) == ("2024-01-29", "2024-02-28")
    assert days(month(frame, "1", -12)) == ("2023-02-28", "2023-03-28")


def test_a_contact_falls_in_the_month_holding_its_day() -> None:
    kpr = rows(
        "kpr",
        {"serial": "L1", "kontakt_id": "a", "start": "2025-02-27", "service": "FL"},  # month 1
        {"serial": "L1", "kontakt_id": "b", "start": "2025-02-28", "service": "FL"},  # month 2
        {"serial": "L1", "kontakt_id": "c", "start": "2025-02-28", "service": "LV"},  # month 2
        {"serial": "L1", "kontakt_id": "d", "start": "2025-01-30", "service": "FYS"},  # month -1
        {"serial": "L2", "kontakt_id": "e", "start": "2024-02-28", "service": "FL"},  # month -1
        {"serial": "L2", "kontakt_id": "f", "start": "2024-02-29", "service": "KHO"},  # month 1
        {"serial": "L1", "kontakt_id": "g", "start": "2023-01-30", "service": "FL"},  # before
    )
    npr = rows(
        "npr",
        {
            "serial": "L1",
            "episode_id": "1",
            "start": "2025-03-30",
            "end": "2025-04-20",
            "level_of_care": "1",
            "specialty": "TSB",
        },
    )
    group = people(("1", "L1", "2025-01-31"), ("2", "L2", "2024-02-29"))
    frame = panel(LAYOUTS, {"kpr": kpr, "npr": npr}, group, EVERYWHERE)
    one, two = month(frame, "1", 1), month(frame, "1", 2)
    assert (one["kpr_FL"], one["kpr_contacts"]) == (1, 1)
    assert (two["kpr_FL"], two["kpr_LV"], two["kpr_contacts"]) == (1, 1, 2)
    assert month(frame, "1", -1)["kpr_FYS"] == 1
    assert month(frame, "2", -1)["kpr_FL"] == 1 and month(frame, "2", 1)["kpr_KHO"] == 1
    assert frame["kpr_contacts"].sum() == 6  # the contact before month -24 is not counted
    assert (two["npr_TSB"], two["npr_episodes"]) == (1, 1)  # counted where it starts only
    assert month(frame, "1", 3)["npr_episodes"] == 0


# -- employment -----------------------------------------------------------------------------------


JOBS = rows(
    "aa",
    # 20.02-10.03.2025, 100 % without hours: 37.5 h a week in 19 of month 2's 28 days
    {"serial": "L1", "arbeidsforhold_id": "a", "start": "2025-02-20", "end": "2025-03-10",
     "position_percent": 100.0},
    # ongoing from 01.03.2025 at 10 h a week, besides a 20 h job 20.03-20.04.2025
    {"serial": "L2", "arbeidsforhold_id": "b", "start": "2025-03-01", "hours_per_week": 10.0},
    {"serial": "L2", "arbeidsforhold_id": "c", "start": "2025-03-20", "end": "2025-04-20",
     "hours_per_week": 20.0, "position_percent": 50.0},
    # a job on wage subsidy 01.05-31.07.2025, and the same person's job without hours
    {"serial": "L3", "arbeidsforhold_id": "d", "start": "2025-03-01", "end": "2025-12-31",
     "hours_per_week": 30.0},
    {"serial": "L3", "arbeidsforhold_id": "e", "start": "2025-11-01", "end": "2025-11-05"},
    # ends before it starts: left out
    {"serial": "L1", "arbeidsforhold_id": "f", "start": "2025-06-01", "end": "2025-05-01",
     "hours_per_week": 40.0},
)  # fmt: skip
SPELLS = rows(
    "fd_trygd",
    {"serial": "L3", "benefit_type": "LTIL", "start": "2025-05-01", "end": "2025-07-31"},
    # two AAP spells overlapping in June, social assistance within two months
    {"serial": "L1", "benefit_type": "AAP", "start": "2025-03-01", "end": "2025-05-31",
     "amount": 60000.0},
    {"serial": "L1", "benefit_type": "AAP", "start": "2025-05-15", "end": "2025-07-15"},
    {"serial": "L1", "benefit_type": "SOSH", "start": "2025-04-10", "end": "2025-04-20"},
)  # fmt: skip
# All randomised on 15.01.2025: month 1 is 15.01-14.02, month 2 15.02-14.03 (28 days), month 3
# 15.03-14.04 (31 days), month 4 15.04-14.05 (30 days) and so on.
TRIO = people(("1", "L1", "2025-01-15"), ("2", "L2", "2025-01-15"), ("3", "L3", "2025-01-15"))


@pytest.fixture(scope="module")
def jobs() -> pd.DataFrame:
    return panel(LAYOUTS, {"aa": JOBS, "fd_trygd": SPELLS}, TRIO, EVERYWHERE)


def test_a_job_starting_and_ending_mid_month(jobs: pd.DataFrame) -> None:
    employed = jobs[(jobs["record_id"] == "1") & jobs["employed"]]["month"].tolist()
    assert employed == [2]
    two = month(jobs, "1", 2)
    assert two["contracted_hours"] == pytest.approx(37.5 * 19 / 28)  # 25.446...
    assert two["employed_competitive"]


def test_rows_ending_before_they_start_are_left_out_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level("INFO", logger="hekta_redcap.registers.outcomes"):
        frame = panel(LAYOUTS, {"aa": JOBS}, TRIO, EVERYWHERE)
    assert "rows left out source=aa end_before_start=1" in caplog.text
    assert not frame[frame["record_id"] == "1"]["employed"].iloc[24 + 4 :].any()


def test_concurrent_jobs_add_their_hours_and_an_ongoing_one_lasts(jobs: pd.DataFrame) -> None:
    # month 2 (15.02-14.03, 28 d): b 01.03-14.03 = 14 d -> 10 x 14/28 = 5
    assert month(jobs, "2", 2)["contracted_hours"] == pytest.approx(5.0)
    # month 3 (15.03-14.04, 31 d): b all month -> 10; c 20.03-14.04 = 26 d -> 20 x 26/31
    assert month(jobs, "2", 3)["contracted_hours"] == pytest.approx(10 + 20 * 26 / 31)
    # month 4 (15.04-14.05, 30 d): c 15.04-20.04 = 6 d -> 20 x 6/30 = 4, b 10
    assert month(jobs, "2", 4)["contracted_hours"] == pytest.approx(14.0)
    assert month(jobs, "2", 120)["employed"]  # no end date: ongoing to the panel's end
    assert month(jobs, "2", 120)["contracted_hours"] == pytest.approx(10.0)


def test_a_wage_subsidy_spell_makes_the_job_non_competitive(jobs: pd.DataFrame) -> None:
    # d runs 01.03-31.12.2025; the subsidy 01.05-31.07 touches months 4 (15.04-14.05) to 7
    flags = {m: month(jobs, "3", m)["employed_competitive"] for m in range(2, 13)}
    assert [m for m, competitive in flags.items() if not competitive] == [4, 5, 6, 7]
    assert all(month(jobs, "3", m)["employed"] for m in range(2, 13))
    assert month(jobs, "3", 5)["benefit_LTIL"]


def test_hours_are_missing_when_a_job_has_none(jobs: pd.DataFrame) -> None:
    # month 10 (15.10-14.11): e (no hours, no percentage) is active: missing, never 0
    assert pd.isna(month(jobs, "3", 10)["contracted_hours"])
    assert month(jobs, "3", 9)["contracted_hours"] == pytest.approx(30.0)
    assert month(jobs, "3", 13)["contracted_hours"] == 0  # no job: 0


def test_overlapping_benefit_spells_count_a_month_once(jobs: pd.DataFrame) -> None:
    received = jobs[(jobs["record_id"] == "1") & jobs["benefit_AAP"]]["month"].tolist()
    assert received == [2, 3, 4, 5, 6, 7]  # 01.03-31.05 and 15.05-15.07: months 2 to 7
    social = jobs[(jobs["record_id"] == "1") & jobs["benefit_SOSH"]]["month"].tolist()
    assert social == [3, 4]  # 10.04-20.04 straddles 14/15 April


def test_income_is_spread_over_the_days_of_its_calendar_month() -> None:
    income = rows(
        "inntekt",
        {"serial": "L1", "month": "2025-03-01", "employer": "123456789",
         "income_type": "loennsinntekt", "amount": 31000.0},
        {"serial": "L1", "month": "2025-03-01", "employer": "987654321",
         "income_type": "ytelseFraOffentlige", "amount": 6200.0},
    )  # fmt: skip
    frame = panel(LAYOUTS, {"inntekt": income}, people(("1", "L1", "2025-01-31")), EVERYWHERE)
    two, three = month(frame, "1", 2), month(frame, "1", 3)  # 28.02-30.03 and 31.03-29.04
    assert two["income_loennsinntekt"] == pytest.approx(30000.0)  # 30 of March's 31 days
    assert three["income_loennsinntekt"] == pytest.approx(1000.0)
    assert two["income_ytelseFraOffentlige"] == pytest.approx(6000.0)
    assert two["income_total"] == pytest.approx(36000.0)
    assert frame["income_total"].sum() == pytest.approx(37200.0)


# -- coverage and endpoints -----------------------------------------------------------------------


def test_months_outside_coverage_are_missing_not_zero() -> None:
    covered = {**EVERYWHERE, "aa": ((dt.date(2000, 1, 1), dt.date(2025, 4, 13)),), "kpr": ()}
    group = people(("1", "L1", "2025-01-15"), ("5", None, "2025-01-15"))
    frame = panel(LAYOUTS, {"aa": JOBS, "fd_trygd": SPELLS}, group, covered)
    # month 3 ends 14.04.2025, a day after the AA delivery ends
    assert month(frame, "1", 2)["employed"] and pd.isna(month(frame, "1", 3)["employed"])
    assert pd.isna(month(frame, "1", 3)["employed_competitive"])
    assert month(frame, "1", 3)["benefit_AAP"]  # FD-Trygd covers it
    assert frame["kpr_contacts"].isna().all() and not frame["covered"].any()
    unlinked = frame[frame["record_id"] == "5"]  # no serial number: nothing is known
    assert unlinked["benefit_AAP"].isna().all() and unlinked["income_total"].isna().all()


def test_months_before_the_first_delivery_and_in_a_gap_are_missing() -> None:
    """KPR delivered for 01.01.2024-31.05.2025 and 01.07.2025-30.06.2026, June 2025 a gap;
    randomised 15.03.2025. Month -15 (15.12.2023-14.01.2024) starts before the first delivery;
    months -14 and -1 lie inside it; month 3 (15.05-14.06.2025) and 4 (15.06-14.07.2025)
    reach into the gap; 5 (15.07-14.08.2025) and 15 (15.05-14.06.2026) lie inside the second;
    16 (15.06-14.07.2026) ends after it."""
    kpr = ((dt.date(2024, 1, 1), dt.date(2025, 5, 31)), (dt.date(2025, 7, 1), dt.date(2026, 6, 30)))
    frame = panel(LAYOUTS, {}, people(("1", "L1", "2025-03-15")), {**EVERYWHERE, "kpr": kpr})
    known = {
        m: not pd.isna(month(frame, "1", m)["kpr_contacts"])
        for m in (-15, -14, -1, 3, 4, 5, 15, 16)
    }
    assert known == {
        -15: False, -14: True, -1: True, 3: False, 4: False, 5: True, 15: True, 16: False
    }  # fmt: skip
    assert month(frame, "1", 5)["kpr_contacts"] == 0 and not month(frame, "1", 4)["covered"]


def test_endpoints_at_18_60_and_120_months() -> None:
    covered = {**EVERYWHERE, "aa": ((dt.date(2000, 1, 1), dt.date(2030, 1, 14)),)}  # to month 60
    months = panel(LAYOUTS, {"aa": JOBS, "fd_trygd": SPELLS}, TRIO, covered)
    result = endpoints(months, [120, 18, 60])
    assert list(result.columns[:4]) == ["record_id", "arm", "horizon", "complete"]
    assert list(result.columns[4:]) == [m.name for m in measures(LAYOUTS, "outcomes")]
    at = result.set_index(["record_id", "horizon"])
    assert at["complete"].tolist() == [True, True, False] * 3
    one, two, three = at.loc[("1", 18)], at.loc[("2", 18)], at.loc[("3", 18)]
    assert (one["any_competitive"], one["months_employed"], one["months_competitive"]) == (
        True, 1, 1)  # fmt: skip
    assert one["contracted_hours"] == pytest.approx(37.5 * 19 / 28 / 18)
    assert (one["benefit_AAP"], one["benefit_SOSH"], one["kpr_contacts"]) == (6, 2, 0)
    # record 2: employed from month 2 (b is ongoing): 17 months of 18, then 59 of 60
    assert (two["months_employed"], at.loc[("2", 60)]["months_employed"]) == (17, 59)
    hours = 5 + (10 + 20 * 26 / 31) + 14 + 10 * 14  # months 2, 3, 4, then 5-18 at 10
    assert two["contracted_hours"] == pytest.approx(hours / 18)
    # record 3: d in months 2-12 (31.12.2025 is in month 12), 4 of them subsidised
    assert (three["months_employed"], three["months_competitive"]) == (11, 7)
    assert pd.isna(three["contracted_hours"])  # month 10 has a job without hours
    assert three["benefit_LTIL"] == 4
    censored = at.loc[("2", 120)]
    assert pd.isna(censored["months_employed"]) and pd.isna(censored["any_competitive"])
    assert censored["benefit_AAP"] == 0  # FD-Trygd reaches month 120: known
    assert result["arm"].tolist() == ["1"] * 3 + ["2"] * 3 + ["1"] * 3


def test_parquet_files_give_the_same_panel(tmp_path: Path) -> None:
    files = {}
    for source, frame in {"aa": JOBS, "fd_trygd": SPELLS}.items():
        half = len(frame) // 2
        files[source] = [tmp_path / f"{source}-1.parquet", tmp_path / f"{source}-2.parquet"]
        frame.iloc[:half].to_parquet(files[source][0])
        frame.iloc[half:].to_parquet(files[source][1])
    from_files = panel(LAYOUTS, files, TRIO, EVERYWHERE)
    in_memory = panel(LAYOUTS, {"aa": JOBS, "fd_trygd": SPELLS}, TRIO, EVERYWHERE)
    pd.testing.assert_frame_equal(from_files, in_memory)


def test_a_later_delivery_wins_for_a_row_in_two(tmp_path: Path) -> None:
    ongoing = rows("aa", {"serial": "L1", "arbeidsforhold_id": "a", "start": "2025-02-20"})
    ended = rows(
        "aa",
        {"serial": "L1", "arbeidsforhold_id": "a", "start": "2025-02-20", "end": "2025-03-10"},
        {"serial": "L1", "arbeidsforhold_id": "b", "start": "2025-06-01", "end": "2025-06-01"},
    )
    files = [tmp_path / "old.parquet", tmp_path / "new.parquet"]
    ongoing.to_parquet(files[0])
    ended.drop(columns=["yrkeskode"]).to_parquet(files[1])  # a column one file lacks
    frame = panel(LAYOUTS, {"aa": files}, TRIO[:1], EVERYWHERE)
    employed = frame[frame["employed"]]["month"].tolist()
    assert employed == [2, 5]  # a: 20.02-10.03 (month 2) as the later delivery says; b: 01.06


def test_columns_follow_the_layouts() -> None:
    names = [m.name for m in measures(LAYOUTS)]
    assert names[:3] == ["employed", "employed_competitive", "contracted_hours"]
    assert {"benefit_AAP", "benefit_LTIL", "npr_TSB", "npr_episodes", "kpr_FL", "kpr_contacts",
            "income_loennsinntekt", "income_total"} <= set(names)  # fmt: skip
    only_aa = {"aa": LAYOUTS["aa"]}
    assert [m.name for m in measures(only_aa)] == ["employed", "contracted_hours"]
    labels = {m.name: m.label for m in measures(LAYOUTS, "outcomes")}
    assert labels["benefit_AAP"]["en"] == "Work assessment allowance: months received (1 to H)"
    assert labels["npr_TSB"]["nb"].startswith("Spesialisthelsetjenesten (NPR), Tverrfaglig")


def test_bad_input_is_an_error() -> None:
    frame = panel({"aa": LAYOUTS["aa"]}, {}, people(("1", "L1", "2025-01-15")), {})
    for horizons in ([0], [121], []):
        with pytest.raises(HektaError, match="horizons must be 1 to 120"):
            endpoints(frame, horizons)
    twice = people(("1", "L1", "2025-01-15"), ("1", "L2", "2025-01-15"))
    with pytest.raises(HektaError, match="listed twice"):
        panel(LAYOUTS, {}, twice, {})
    shared = people(("1", "L1", "2025-01-15"), ("2", "L1", "2025-01-15"))
    with pytest.raises(HektaError, match="share a serial number"):
        panel(LAYOUTS, {}, shared, {})


def test_participants_come_from_the_synced_rows_and_the_key() -> None:
    base = "baseline_arm_1"
    project = load_project("hekta", LIBRARY)
    rows = pd.DataFrame(
        {
            "record_id": ["3", "3", "1", "2", "4"],
            "redcap_event_name": [base, "followup_6m_arm_1", base, base, base],
            "rand_date": ["2025-01-31", "2030-01-01", "2024-02-29", "", "not a date"],
            "rand_group": ["2", "", "1", "1", "2"],
        }
    )
    found = participants(project, rows, {"20000003": "3", "20000009": "9"})
    assert found["record_id"].tolist() == ["3", "1"]  # randomised, in the rows' order
    assert found["lopenr"].tolist() == ["20000003", pd.NA]  # record 1 is not linked
    assert found["rand_date"].dt.date.tolist() == [dt.date(2025, 1, 31), dt.date(2024, 2, 29)]
    assert found["arm"].tolist() == ["2", "1"]


def test_coverage_before_any_import_creates_nothing(tmp_path: Path) -> None:
    settings = Settings({"HEKTA_REGISTER_DIR": str(tmp_path / "registers")})
    project = load_project("hekta", LIBRARY)
    assert coverage(settings, project) == Coverage()
    assert register_tables(settings, project, [18]) is None
    assert not (tmp_path / "registers").exists()
