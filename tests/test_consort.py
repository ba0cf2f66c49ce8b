"""CONSORT flow and retention: hand-built records covering every stage (the expected state of each
worked out beside it), a synthetic cohort for the invariants, and the written files.

Windows (study file): follow-ups at 6 and 12 months close 56 days after the target, register
data at 18 months close 12 months after it. As of 2026-06-01:
- randomised 2025-01-10: 6 m closes 2025-09-04, 12 m closes 2026-03-07, 18 m opens 2026-07-10;
- randomised 2025-11-01: 6 m closes 2026-06-26 (open), 12 m closes 2026-12-27;
- randomised 2024-03-01: 6 m closes 2024-10-27, 12 m 2025-04-26, 18 m 2026-09-01.
Codes (instrument files): rand_group 1 IPS, 2 self-help; eos_status 2 withdrawn, 3 lost,
4 deceased."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest
from conftest import LIBRARY, edit

from hekta_redcap.analysis.consort import (
    ANALYSIS,
    ENROLMENT,
    FILES,
    STATES,
    TOTAL,
    UNKNOWN,
    flow,
    write_flow,
)
from hekta_redcap.core.errors import HektaError
from hekta_redcap.definitions.study import Project, load_project
from hekta_redcap.devtools.cohort import generate

AS_OF = dt.date(2026, 6, 1)
M6, M12, M18 = "followup_6m_arm_1", "followup_12m_arm_1", "register_18m_arm_1"
BASELINE = "baseline_arm_1"
CRITERIA = ("consent_elig_adult", "consent_elig_sud_tx", "consent_elig_wants_work")
CAPACITY = "consent_elig_capacity"


@pytest.fixture(scope="module")
def project() -> Project:
    return load_project("hekta", LIBRARY)


def row(record: str, event: str = BASELINE, **values: str) -> dict[str, str]:
    return {
        "record_id": record,
        "redcap_event_name": event,
        "redcap_repeat_instrument": "",
        "redcap_repeat_instance": "",
        **values,
    }


def eligible(**values: str) -> dict[str, str]:
    return {**dict.fromkeys((*CRITERIA, CAPACITY), "1"), **values}


def participant(record: str, rand: str, group: str, **values: str) -> dict[str, str]:
    """A consented, randomised participant's baseline row (still taking part unless `values`
    say otherwise)."""
    answers = {"eos_status": "", "eos_date": "", "eos_data_use": "", **values}
    return row(record, **eligible(consent_given="1", rand_date=rand, rand_group=group, **answers))


def forms_at(project: Project, event: str) -> list[str]:
    followup = next(f for f in project.study.schedule.followups if f.event == event)
    return followup.complete or [
        u.form for u in project.study.instruments if u.survey and event in u.events
    ]


def assessed(project: Project, record: str, event: str, **values: str) -> dict[str, str]:
    """A follow-up row with every form that makes the follow-up complete marked complete."""
    complete = {f"{form}_complete": "2" for form in forms_at(project, event)}
    return row(record, event, **complete, **values)


def hand_built(project: Project) -> list[dict[str, str]]:
    withdrawn, lost, deceased = "2", "3", "4"
    partly = {f"{forms_at(project, M6)[0]}_complete": "2"}  # one survey of several
    by_timestamp = {f"{form}_timestamp": "2026-01-20 10:00:00" for form in forms_at(project, M12)}
    return [
        # screened, not randomised
        row("s1", **eligible(consent_elig_adult="0")),  # not eligible
        row("s2", **eligible(consent_given="0")),  # declined
        row("s3", consent_elig_adult="1"),  # screening incomplete: other reasons
        row("s4", **eligible(consent_given="1")),  # consented, not randomised: other reasons
        row("x1", demo_birth_year="1980"),  # no consent data: not screened
        # IPS
        participant("r1", "2025-01-10", "1"),  # 6 m, 12 m assessed; 18 m not yet due
        assessed(project, "r1", M6),
        row("r1", M6, redcap_repeat_instrument="job_episode", redcap_repeat_instance="1"),
        assessed(project, "r1", M12),
        participant(  # withdrawn before 6 m (data may not be used): withdrawn everywhere
            "r3", "2025-01-10", "1", eos_status=withdrawn, eos_date="2025-05-01", eos_data_use="0"
        ),
        # missed 6 m (closed before death), deceased at 12 m and 18 m
        participant("r6", "2025-01-10", "1", eos_status=deceased, eos_date="2025-10-01"),
        # withdrawn while the 6 m window is open: withdrawn, not "not yet due"
        participant(
            "r8", "2025-11-01", "1", eos_status=withdrawn, eos_date="2026-02-01", eos_data_use="1"
        ),
        participant("r10", "2024-03-01", "1"),  # assessed at every follow-up
        assessed(project, "r10", M6),
        assessed(project, "r10", M12),
        assessed(project, "r10", M18),
        # self-help
        participant("r2", "2025-01-10", "2"),  # 6 m assessed, 12 m missed
        assessed(project, "r2", M6),
        # 6 m assessed; lost on the day the 12 m window closed: lost at 12 m and 18 m
        participant("r4", "2025-01-10", "2", eos_status=lost, eos_date="2026-03-07"),
        assessed(project, "r4", M6),
        participant("r5", "2025-11-01", "2"),  # 6 m window open: not yet due
        participant("r7", "2025-01-10", "2"),  # 6 m partly done: missed; 12 m by the surveys
        row("r7", M6, **partly),
        row("r7", M12, **by_timestamp),
    ]


# Every count of the hand-built table: {stage: (IPS, self-help)} or {stage: total}.
EXPECTED_ENROLMENT = {
    "screened": 13,
    "excluded": 4,
    "not_eligible": 1,
    "declined": 1,
    "other_reasons": 2,
    "consented": 10,
}
EXPECTED_BY_GROUP = {
    "randomised": (5, 4),
    f"{M6}.assessed": (2, 2),
    f"{M6}.withdrawn": (2, 0),
    f"{M6}.lost": (0, 0),
    f"{M6}.deceased": (0, 0),
    f"{M6}.missed": (1, 1),
    f"{M6}.not_yet_due": (0, 1),
    f"{M12}.assessed": (2, 1),
    f"{M12}.withdrawn": (2, 0),
    f"{M12}.lost": (0, 1),
    f"{M12}.deceased": (1, 0),
    f"{M12}.missed": (0, 1),
    f"{M12}.not_yet_due": (0, 1),
    "withdrawn": (2, 0),
    "lost": (0, 1),
    "deceased": (1, 0),
    "data_withdrawn": (1, 0),
    "analysed": (4, 4),
}


def test_every_count_of_the_hand_built_table(project: Project) -> None:
    report = flow(project, hand_built(project), AS_OF, language="en")
    table = report.table
    assert list(table.columns) == ["1", "2", TOTAL]
    followups = [f"{e}.{s}" for e in (M6, M12) for s in STATES]  # register steps: no one assessed
    assert list(table.index) == [*ENROLMENT, "randomised", *followups, *ANALYSIS]
    assert report.followups == (M6, M12)
    assert (table.dtypes == "Int64").all()
    for stage, total in EXPECTED_ENROLMENT.items():
        assert report.count(stage) == total, stage
        assert table.loc[stage, ["1", "2"]].isna().all(), stage  # not counted by group
    for stage, (ips, self_help) in EXPECTED_BY_GROUP.items():
        assert (report.count(stage, "1"), report.count(stage, "2")) == (ips, self_help), stage
        assert report.count(stage) == ips + self_help, stage


def test_retention_is_assessed_of_those_due(project: Project) -> None:
    retention = flow(project, hand_built(project), AS_OF).retention.set_index(["event", "column"])
    assert retention.loc[(M6, "1"), ["due", "assessed"]].tolist() == [5, 2]
    assert retention.loc[(M6, "2"), ["due", "assessed"]].tolist() == [3, 2]
    assert retention.loc[(M6, TOTAL), "share"] == pytest.approx(4 / 8)
    assert retention.loc[(M12, "2"), "share"] == pytest.approx(1 / 3)
    assert retention.loc[(M6, "1"), "months"] == 6
    assert retention.loc[(M12, "1"), "months"] == 12
    assert M18 not in retention.index.get_level_values("event")


def test_a_window_closes_at_the_end_of_its_last_day(project: Project) -> None:
    rows = hand_built(project)
    on_the_day = flow(project, rows, dt.date(2026, 3, 7))  # r2's 12 m window closes
    after = flow(project, rows, dt.date(2026, 3, 8))
    assert on_the_day.count(f"{M12}.not_yet_due", "2") == after.count(f"{M12}.not_yet_due", "2") + 1
    assert after.count(f"{M12}.missed", "2") == on_the_day.count(f"{M12}.missed", "2") + 1


def test_a_frame_counts_as_the_rows_do(project: Project) -> None:
    rows = hand_built(project)
    from_frame = flow(project, pd.DataFrame(rows), AS_OF)
    pd.testing.assert_frame_equal(from_frame.table, flow(project, rows, AS_OF).table)


def test_randomised_without_a_group_get_a_column_of_their_own(project: Project) -> None:
    rows = [participant("a", "2025-01-10", "1"), participant("b", "2025-01-10", "")]
    report = flow(project, rows, AS_OF, language="en")
    assert list(report.table.columns) == ["1", "2", UNKNOWN, TOTAL]
    assert report.count("randomised", UNKNOWN) == 1
    assert report.count("randomised") == 2
    assert report.labels[UNKNOWN] == "Group unknown"


def test_end_of_study_codes_come_from_the_definitions(library: Path) -> None:
    edit(
        library,
        "forms/end_of_study.yaml",
        "code: 2, label: {nb: Trukket seg",
        "code: 8, label: {nb: Trukket seg",
    )
    project = load_project("hekta", library)
    rows = [participant("a", "2025-01-10", "1", eos_status="8", eos_date="2025-03-01")]
    report = flow(project, rows, AS_OF)
    assert report.count("withdrawn") == 1
    assert report.count(f"{M6}.withdrawn") == 1


def test_a_missing_end_of_study_label_is_an_error(library: Path) -> None:
    edit(library, "forms/end_of_study.yaml", "en: Deceased", "en: Dead")
    with pytest.raises(HektaError, match=r"eos_status .* labelled 'Deceased'"):
        flow(load_project("hekta", library), [], AS_OF)


def test_bad_input_is_reported(project: Project) -> None:
    with pytest.raises(HektaError, match="unknown language 'de'"):
        flow(project, [], AS_OF, language="de")
    rows = [{"record_id": "1", "rand_date": "2025-01-10"}]
    with pytest.raises(HektaError, match="no column rand_group"):
        flow(project, rows, AS_OF)


def test_labels_in_both_languages(project: Project) -> None:
    nb = flow(project, hand_built(project), AS_OF).labelled()
    en = flow(project, hand_built(project), AS_OF, language="en").labelled()
    assert list(nb.columns) == [
        "Steg",
        "IPS (Individuell jobbstøtte)",
        "Selvhjelpspakke og kurs",
        "Totalt",
    ]
    assert en.columns[0] == "Stage"
    assert en.columns[-1] == "Total"
    assert "IPS (Individual Placement and Support)" in en.columns
    assert nb.loc["randomised", "Steg"] == "Randomisert"
    assert en.loc["randomised", "Stage"] == "Randomised"
    assert nb.loc[f"{M6}.withdrawn", "Steg"] == "Oppfølging 6 måneder: Trukket seg"
    assert en.loc[f"{M12}.lost", "Stage"] == "Follow-up 12 months: Lost to follow-up"
    assert en.loc["not_eligible", "Stage"] == "Not meeting inclusion criteria"


@pytest.fixture(scope="module")
def cohort_flow(project: Project):
    rows = generate(project, 150, seed=4, today=AS_OF).rows
    return flow(project, rows, AS_OF)


def test_cohort_invariants(cohort_flow) -> None:
    report = cohort_flow
    groups = report.groups
    assert groups == ["1", "2"]
    table = report.table
    randomised = table.loc["randomised"]
    assert randomised[TOTAL] == 150 == randomised[groups].sum()
    assert report.count("screened") >= report.count("consented") >= randomised[TOTAL]
    assert report.count("excluded") == sum(
        report.count(s) for s in ("not_eligible", "declined", "other_reasons")
    )
    for event in report.followups:
        states = table.loc[[f"{event}.{s}" for s in STATES]]
        assert (states.sum() == randomised).all(), event  # every participant in one state
        due = randomised - table.loc[f"{event}.not_yet_due"]
        assert (table.loc[f"{event}.assessed"] <= due).all(), event
        for ending in ("withdrawn", "lost", "deceased"):
            assert (table.loc[f"{event}.{ending}"] <= table.loc[ending]).all()
    assert (table.loc["analysed"] + table.loc["data_withdrawn"] == randomised).all()
    for stage in table.index:
        if not table.loc[stage, groups].isna().any():
            assert table.loc[stage, groups].sum() == table.loc[stage, TOTAL], stage
    assert report.count(f"{report.followups[0]}.assessed") > 0
    retention = report.retention
    assert retention["share"].dropna().between(0, 1).all()


def test_files_are_written_and_reproducible(cohort_flow, tmp_path: Path) -> None:
    paths = write_flow(cohort_flow, tmp_path / "a")
    assert [p.name for p in paths] == list(FILES)
    again = write_flow(cohort_flow, tmp_path / "b")
    for first, second in zip(paths, again, strict=True):
        assert first.read_bytes() == second.read_bytes(), first.name

    table = cohort_flow.table
    csv = pd.read_csv(paths[0], index_col="stage", keep_default_na=False)
    assert list(csv.index) == list(table.index)
    assert csv.loc["randomised", "Totalt"] == 150
    assert csv.loc["screened", "IPS (Individuell jobbstøtte)"] == ""
    markdown = paths[1].read_text(encoding="utf-8")
    assert "| Steg | IPS (Individuell jobbstøtte) | Selvhjelpspakke og kurs | Totalt |" in markdown
    assert "| Randomisert | 75 | 75 | 150 |" in markdown

    for png in (paths[2], paths[4]):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        image = matplotlib.image.imread(png)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    texts = {
        "".join(e.itertext())
        for svg in (paths[3], paths[5])
        for e in ET.parse(svg).getroot().iter("{http://www.w3.org/2000/svg}text")
    }
    m6 = cohort_flow.followups[0]
    assert "Vurdert for inklusjon (n=150)" in texts
    assert "Randomisert (n=150)" in texts
    assert "Tildelt (n=75)" in texts
    for group in cohort_flow.groups:
        assert f"Gjennomført (n={cohort_flow.count(f'{m6}.assessed', group)})" in texts
        assert f"Analysert (n={cohort_flow.count('analysed', group)})" in texts
    point = cohort_flow.retention.set_index(["event", "column"]).loc[(m6, "1")]
    assessed, due = int(point["assessed"]), int(point["due"])
    assert f"{assessed / due * 100:.0f} % ({assessed}/{due})" in texts


def test_english_diagram_and_an_empty_export(project: Project, tmp_path: Path) -> None:
    report = flow(project, [], AS_OF, language="en")
    assert report.count("screened") == 0
    assert report.count(f"{M6}.assessed", "1") == 0
    assert report.retention["share"].isna().all()
    paths = write_flow(report, tmp_path)
    svg = paths[3].read_text(encoding="utf-8")
    assert "Assessed for eligibility (n=0)" in svg
    assert "Participant flow as of 2026-06-01" in svg
