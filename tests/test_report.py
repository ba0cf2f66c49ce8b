"""The trial report from a synthetic cohort: its numbers are the flow report's, the worklist's
and the export's for the same rows and day; the as-of day cuts what was not yet known; the
blinded report names no arm anywhere (text, tables, figure files, file names); the language.
`hekta-redcap report` end to end is in test_report_cli.py."""

from __future__ import annotations

import datetime as dt
import io
import re
import zlib
from pathlib import Path

import pandas as pd
import pypdf
import pytest
from conftest import LIBRARY

from hekta_redcap.analysis.consort import TOTAL, flow
from hekta_redcap.analysis.export.frames import build_tables
from hekta_redcap.core.errors import HektaError
from hekta_redcap.definitions.study import Project, load_project
from hekta_redcap.devtools.cohort import generate
from hekta_redcap.followup.schedule import empty_history, frame_of, worklist
from hekta_redcap.report.build import (
    Report,
    build_report,
    completeness_grid,
    pdf_available,
    write_report,
)
from hekta_redcap.report.inputs import Inputs

TODAY = dt.date(2026, 6, 1)
BASE, SIX, TWELVE = "baseline_arm_1", "followup_6m_arm_1", "followup_12m_arm_1"
# Every way the definitions name an arm (randomization.yaml's rand_group choices), and the
# words they are made of.
ARM_NAMES = (
    "IPS (Individuell jobbstøtte)",
    "IPS (Individual Placement and Support)",
    "Selvhjelpspakke og kurs",
    "Self-help package and course",
    "IPS",
    "Individuell jobbstøtte",
    "Individual Placement",
    "Selvhjelp",
    "Self-help",
)


@pytest.fixture(scope="module")
def project() -> Project:
    return load_project("hekta", LIBRARY)


@pytest.fixture(scope="module")
def rows(project: Project) -> pd.DataFrame:
    """120 participants without deliberate errors, randomised over two years before TODAY.
    Edited by hand: record 1's 6-month assessment dated 3 days after its window closed, record
    2's dated 40 days before its window opened (6 months from randomisation, -28 to +56 days)."""
    frame = frame_of(generate(project, 120, seed=7, today=TODAY, errors=False).rows, project)
    for _, f in project.fields():  # a flat export has every field's column, blank or not
        if f.type not in ("checkbox", "descriptive") and f.name not in frame:
            frame[f.name] = ""
    for record, shift in (("1", dt.timedelta(days=56 + 3)), ("2", -dt.timedelta(days=28 + 40))):
        anchor = _value(frame, record, BASE, "rand_date")
        target = (pd.Timestamp(anchor) + pd.DateOffset(months=6)).date()
        at = _at(frame, record, SIX)
        assert frame.loc[at, "emp_date"].iloc[0] != ""
        frame.loc[at, "emp_date"] = (target + shift).isoformat()
    return frame


def _at(frame: pd.DataFrame, record: str, event: str) -> pd.Series:
    return (
        (frame["record_id"] == record)
        & (frame["redcap_event_name"] == event)
        & (frame["redcap_repeat_instrument"] == "")
    )


def _value(frame: pd.DataFrame, record: str, event: str, field: str) -> str:
    return str(frame.loc[_at(frame, record, event), field].iloc[0])


def _inputs(
    rows: pd.DataFrame, history: pd.DataFrame | None = None, problems: pd.DataFrame | None = None
) -> Inputs:
    return Inputs(
        rows,
        empty_history() if history is None else history,
        pd.DataFrame() if problems is None else problems,
    )


@pytest.fixture(scope="module")
def report(project: Project, rows: pd.DataFrame) -> Report:
    return build_report(project, _inputs(rows), TODAY, "en")


def test_recruitment_is_counted_from_the_randomisation_dates(
    report: Report, rows: pd.DataFrame, project: Project
) -> None:
    baseline = rows[(rows["redcap_event_name"] == BASE) & (rows["rand_date"] != "")]
    assert report.recruitment.randomised == 120 == len(baseline)
    assert report.recruitment.randomised == flow(project, rows, TODAY).count("randomised")
    monthly = report.recruitment.monthly
    assert int(monthly["cumulative"].iloc[-1]) == 120
    by_month = baseline["rand_date"].str[:7].value_counts()
    for month, count in by_month.items():
        assert int(monthly.loc[month, "total"]) == count, month
    sites = report.recruitment.sites
    assert sites["randomised"].to_dict() == baseline["site"].value_counts().to_dict()
    assert sites["target"].tolist() == [80, 70, 50]  # the study file's per_site
    # the plan: 200 from 1 January 2025 to 31 December 2026, by 1 June 2026 517 of its 730 days
    assert report.recruitment.expected == round(200 * 517 / 730) == 142
    assert int(monthly.loc["2025-01", "planned"]) == round(200 * 31 / 730)


def test_retention_is_the_flow_reports_and_the_worklists(
    report: Report, rows: pd.DataFrame, project: Project
) -> None:
    counted = flow(project, rows, TODAY)
    mine = report.retention.retention.set_index(["event", "column"])
    theirs = counted.retention.set_index(["event", "column"])
    for key in [(SIX, "1"), (SIX, "2"), (SIX, TOTAL), (TWELVE, TOTAL)]:
        assert mine.loc[key, "due"] == theirs.loc[key, "due"]
        assert mine.loc[key, "assessed"] == theirs.loc[key, "assessed"]
    work = worklist(project, rows, empty_history(), TODAY)
    for event in (SIX, TWELVE):
        completed = int(((work["event"] == event) & (work["state"] == "completed")).sum())
        assert mine.loc[(event, TOTAL), "assessed"] == completed


def test_completeness_by_instrument(report: Report) -> None:
    table = report.retention.completeness.set_index(["event", "form", "column"])
    assert table.loc[(BASE, "demographics", TOTAL), "due"] == 120
    assert table.loc[(BASE, "demographics", TOTAL), "complete"] == 120
    six = report.retention.retention.set_index(["event", "column"]).loc[(SIX, TOTAL)]
    assert table.loc[(SIX, "phq9", TOTAL), "due"] == six["due"]
    # the follow-up is assessed when all its surveys are in: no survey is complete less often
    assert table.loc[(SIX, "phq9", TOTAL), "complete"] >= six["assessed"]
    grid = completeness_grid(report)
    demographics = report.project.instruments["demographics"].label.get("en")
    assert grid.loc[demographics, "Baseline (inclusion): A"] == 100
    share = table.loc[(SIX, "phq9", "2"), "share"]
    assert grid.loc["PHQ-9 – depressive symptoms", "Follow-up 6 months: B"] == share * 100


def test_assessments_outside_their_window(report: Report) -> None:
    windows = report.retention.windows.set_index(["event", "column"])
    assert windows.loc[(SIX, TOTAL), "after"] == 1  # record 1
    assert windows.loc[(SIX, TOTAL), "before"] == 1  # record 2
    assert windows.loc[(SIX, TOTAL), "undated"] == 0
    assert windows.loc[(TWELVE, TOTAL), ["before", "after"]].sum() == 0
    assert (
        windows.loc[(SIX, "1"), "completed"] + windows.loc[(SIX, "2"), "completed"]
        == (windows.loc[(SIX, TOTAL), "completed"])
    )


def test_baseline_table_holds_the_exports_values(
    report: Report, rows: pd.DataFrame, project: Project
) -> None:
    long = build_tables(project, rows, "long", "en")[0].frame
    base = long[long["redcap_event_name"] == BASE]
    table = report.baseline.set_index(["variable", "level"])
    n = table.loc[("n", "")]
    assert int(n["overall"]) == 120
    assert int(n["A"]) == (base["rand_group"] == "1").sum()
    assert int(n["B"]) == (base["rand_group"] == "2").sum()
    phq9 = table.loc[("PHQ-9 total score", "")]
    for column, part in (("overall", base), ("A", base[base["rand_group"] == "1"])):
        values = part["phq9_total"].astype(float)
        assert phq9[column] == f"{values.mean():.1f} ({values.std():.1f})"
    assert phq9["statistic"] == "mean (SD)"
    assert phq9["missing"] == "0"
    women = (base[base["rand_group"] == "2"]["sex"] == "2").sum()
    share = women / (base["rand_group"] == "2").sum() * 100
    assert table.loc[("Sex", "Female"), "B"] == f"{women} ({share:.1f})"
    assert set(report.baseline["section"]) >= {"Demographics", "Substance use", "Mental health"}


def test_a_skewed_number_is_shown_as_median_and_iqr(project: Project, rows: pd.DataFrame) -> None:
    skewed = rows.copy()
    at = skewed["redcap_event_name"] == BASE
    skewed.loc[at & (skewed["phq9_1"] != ""), [f"phq9_{i}" for i in range(1, 10)]] = "0"
    first = skewed.index[at & (skewed["rand_date"] != "")][:3]
    skewed.loc[first, [f"phq9_{i}" for i in range(1, 10)]] = "3"  # three at 27, the rest 0
    table = build_report(project, _inputs(skewed), TODAY, "en").baseline
    phq9 = table.set_index("variable").loc["PHQ-9 total score"]
    assert phq9["statistic"] == "median [IQR]"
    assert phq9["overall"] == "0.0 [0.0,0.0]"


def test_as_of_leaves_out_what_was_not_yet_known(project: Project, rows: pd.DataFrame) -> None:
    day = dt.date(2025, 6, 30)
    history = pd.DataFrame(
        {
            "record_id": ["1", "1"],
            "event": [SIX, SIX],
            "step": ["invite", "reminder"],
            "channel": ["sms", "sms"],
            "status": ["sent", "sent"],
            "attempts": [1, 1],
            "at": [
                dt.datetime(2025, 6, 30, 21, 0, tzinfo=dt.UTC),  # 23:00 in Oslo: that day
                dt.datetime(2025, 6, 30, 22, 30, tzinfo=dt.UTC),  # 00:30 on 1 July in Oslo
            ],
        }
    )
    problems = pd.DataFrame(
        {
            "record": ["1", "2"],
            "rule": ["required", "range"],
            "severity": ["error", "advisory"],
            "first_seen": ["2025-06-01T08:00:00+00:00", "2025-07-02T08:00:00+00:00"],
        }
    )
    earlier = build_report(project, _inputs(rows, history=history, problems=problems), day, "en")
    baseline = rows[(rows["redcap_event_name"] == BASE) & (rows["rand_date"] != "")]
    randomised = (baseline["rand_date"] <= "2025-06-30").sum()
    consented = (baseline["consent_date"] <= "2025-06-30").sum()
    assert earlier.recruitment.randomised == randomised < 120
    assert earlier.flow.count("randomised") == randomised
    assert (
        earlier.flow.count("consented") == consented
    )  # consented by the day, some not yet randomised
    assert earlier.recruitment.monthly.index[-1] == "2025-06"
    assert int(earlier.baseline.set_index("variable").loc["n", "overall"]) == randomised
    assert earlier.reminders["messages"].sum() == 1
    assert earlier.problems["rule"].tolist() == ["required"]
    assert earlier.problems["max_days"].tolist() == [29]  # 1 June to 30 June
    later = build_report(project, _inputs(rows, history=history, problems=problems), TODAY, "en")
    assert later.reminders["messages"].sum() == 2
    assert later.problems["open"].sum() == 2
    # a follow-up assessed after the day is not yet assessed on it
    six = earlier.retention.retention.set_index(["event", "column"]).loc[(SIX, TOTAL)]
    dated = rows[(rows["redcap_event_name"] == SIX) & (rows["emp_date"] != "")]
    assert six["assessed"] <= (dated["emp_date"] <= "2025-06-30").sum()


def _png_text(data: bytes) -> str:
    """The text chunks of a PNG (its metadata): what a reader of the file's properties sees."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    texts, at = [], 8
    while at < len(data):
        length = int.from_bytes(data[at : at + 4], "big")
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        if kind == b"tEXt" or kind == b"iTXt":
            texts.append(body.decode("latin-1"))
        elif kind == b"zTXt":
            key, _, packed = body.partition(b"\0")
            texts.append(key.decode("latin-1") + zlib.decompress(packed[1:]).decode("latin-1"))
        at += 12 + length
    return "\n".join(texts)


def _pdf_text(data: bytes) -> str:
    """A PDF's text and metadata, as a reader of it sees them."""
    document = pypdf.PdfReader(io.BytesIO(data))
    return "\n".join([*(p.extract_text() for p in document.pages), str(document.metadata)])


def _every_byte(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


@pytest.mark.parametrize("language", ["nb", "en"])
def test_the_blinded_report_names_no_arm_anywhere(
    project: Project, rows: pd.DataFrame, tmp_path: Path, language: str
) -> None:
    built = build_report(project, _inputs(rows), TODAY, language)  # type: ignore[arg-type]
    paths = write_report(built, tmp_path)
    files = _every_byte(tmp_path)
    assert {"report.html", "baseline.csv", "recruitment.png", "completeness.svg"} <= set(files)
    assert {p.name for p in paths} <= {Path(f).name for f in files}
    for name, data in files.items():
        readable = {".png": _png_text, ".pdf": _pdf_text}.get(Path(name).suffix)
        text = readable(data) if readable else data.decode("utf-8")
        for arm in ARM_NAMES:
            assert arm.lower() not in name.lower(), name
            assert arm.lower() not in text.lower(), (name, arm)
            if name.endswith(".png") and len(arm) > 12:  # a short word may be in compressed bytes
                assert arm.encode() not in data, (name, arm)
    html = files["report.html"].decode()
    assert "AVBLINDET" not in html and "UNBLINDED" not in html
    baseline = pd.read_csv(tmp_path / "baseline.csv", dtype=str)
    assert list(baseline.columns[-2:]) == ["A", "B"]


@pytest.mark.parametrize(("language", "word"), [("nb", "AVBLINDET"), ("en", "UNBLINDED")])
def test_the_unblinded_report_says_so_on_every_section(
    project: Project, rows: pd.DataFrame, tmp_path: Path, language: str, word: str
) -> None:
    built = build_report(project, _inputs(rows), TODAY, language, unblinded=True)  # type: ignore[arg-type]
    write_report(built, tmp_path)
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    headers = re.findall(r"<h[12]>(.*?)</h[12]>", html, flags=re.S)
    assert len(headers) == 11  # the title and ten sections
    assert all(word in h for h in headers)
    label = "IPS (Individuell jobbstøtte)" if language == "nb" else "Self-help package and course"
    assert label in html
    assert label in (tmp_path / "baseline.csv").read_text(encoding="utf-8")


def test_language(project: Project, rows: pd.DataFrame, tmp_path: Path) -> None:
    for language, heading, stage in (
        ("nb", "Rekruttering", "Vurdert for inklusjon"),
        ("en", "Recruitment", "Assessed for eligibility"),
    ):
        built = build_report(project, _inputs(rows), TODAY, language)  # type: ignore[arg-type]
        write_report(built, tmp_path / language)
        html = (tmp_path / language / "report.html").read_text(encoding="utf-8")
        assert f"<h2>{heading}</h2>" in html
        assert stage in html
    assert "Per 01.06.2026" in (tmp_path / "nb" / "report.html").read_text(encoding="utf-8")
    with pytest.raises(HektaError, match="unknown language 'de'"):
        build_report(project, _inputs(rows), TODAY, "de")  # type: ignore[arg-type]


def test_the_same_report_gives_the_same_files(report: Report, tmp_path: Path) -> None:
    write_report(report, tmp_path / "a")
    write_report(report, tmp_path / "b")
    first, second = _every_byte(tmp_path / "a"), _every_byte(tmp_path / "b")
    first.pop("report.pdf", None), second.pop("report.pdf", None)  # WeasyPrint's ids are random
    assert first == second


def test_an_empty_store_is_an_error(project: Project) -> None:
    with pytest.raises(HektaError, match="holds no records of hekta"):
        build_report(project, _inputs(pd.DataFrame()), TODAY)


@pytest.mark.skipif(
    not pdf_available(), reason="WeasyPrint (the optional pdf extra) is not installed"
)
def test_the_pdf_says_unblinded_on_every_page(
    project: Project, rows: pd.DataFrame, tmp_path: Path
) -> None:
    built = build_report(project, _inputs(rows), TODAY, "nb", unblinded=True)
    paths = write_report(built, tmp_path)
    assert paths[-1] == tmp_path / "report.pdf"
    pages = pypdf.PdfReader(tmp_path / "report.pdf").pages
    assert len(pages) > 3
    assert all("AVBLINDET" in page.extract_text() for page in pages)
