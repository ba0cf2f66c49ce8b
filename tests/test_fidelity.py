"""IPS fidelity over time: the sites and forms the definitions make, the reviews lined up per
site, plan carry-forward, the report's tables and the data behind each figure, masking, and
each statistic against values worked out by hand."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import LIBRARY, edit

from hekta_redcap.compile.dictionary import compile_project
from hekta_redcap.core.errors import DefinitionError, HektaError
from hekta_redcap.definitions.study import load_project
from hekta_redcap.fidelity import figures
from hekta_redcap.fidelity.plans import carry_forward
from hekta_redcap.fidelity.psychometrics import (
    agreement_table,
    alpha_table,
    change_table,
    cronbach_alpha,
    intraclass,
    item_table,
    weighted_kappa,
)
from hekta_redcap.fidelity.report import write_report
from hekta_redcap.fidelity.reviews import Scale, read_reviews, scale_of
from hekta_redcap.lint import lint_all

PROJECT = load_project("ips_fidelity", LIBRARY)
SCALE = scale_of(PROJECT)
ITEMS = SCALE.items  # ips25_s1 ... ips25_v14, from the definition


# -- the definitions ------------------------------------------------------------------------------


def test_the_site_dropdown_is_made_from_the_study_files_site_list() -> None:
    rows = {r.field_name: r for r in compile_project(PROJECT, "en")}
    site = rows["review_site"]
    assert site.field_type == "dropdown"
    assert site.select_choices_or_calculations == (
        "1, Bergen: Department of addiction medicine | 2, Oslo: Section for addiction treatment"
        " | 3, Trondheim: Addiction treatment Mid-Norway | 4, Stavanger: Addiction outpatient "
        "clinic | 5, Kristiansand: Addiction services"
    )


def test_the_rater_form_repeats_ips25s_items_under_its_prefix() -> None:
    rows = [r for r in compile_project(PROJECT, "en") if r.form_name == "ips25_rater"]
    consensus = {r.field_name: r for r in compile_project(PROJECT, "en") if r.form_name == "ips25"}
    assert [r.field_name for r in rows][:4] == [
        "rater_number",
        "ips25r_s1",
        "ips25r_s2",
        "ips25r_s3",
    ]
    assert len(rows) == 26 and rows[-1].field_name == "ips25r_v14"
    own = rows[1]
    assert own.field_label == consensus["ips25_s1"].field_label == "S1. Caseload size"
    assert own.select_choices_or_calculations == "1, 1 | 2, 2 | 3, 3 | 4, 4 | 5, 5"
    assert own.section_header == "Staffing"


def test_the_plan_item_choices_are_ips25s_items() -> None:
    rows = {r.field_name: r for r in compile_project(PROJECT, "en")}
    choices = rows["plan_item"].select_choices_or_calculations.split(" | ")
    assert len(choices) == 25
    assert choices[0] == "s1, S1. Caseload size"
    assert choices[-1] == "v14, V14. Assertive engagement and outreach by the integrated team"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("  - code: 2\n", "  - code: 1\n", "site code '1' is used twice"),
        (
            "  - code: 5\n",
            "  - code: 3\n",
            "site code '3' is used twice",
        ),
        (
            "  - code: 4\n",
            "  - code: 9\n",
            "site code '5' comes after code 9: add a new site at the end with the next code "
            "(a code is never reused)",
        ),
        ("  - code: 1\n", "  - code: B1\n", "site code 'B1' is not a positive whole number"),
        (
            'en: "Oslo: Section for addiction treatment"',
            'en: ""',
            "site 2 has no en label",
        ),
    ],
)
def test_lint_checks_the_site_list(library: Path, old: str, new: str, message: str) -> None:
    edit(library, "studies/ips_fidelity.yaml", old, new)
    errors = [f for f in lint_all(library, ["ips_fidelity"]) if f.severity == "error"]
    # (a repeated code is REDCap's error on the dropdown too; the site rule names the list)
    assert [f.message for f in errors if f.rule == "sites"] == [message]
    assert {f.rule for f in errors} <= {"sites", "choices"}


def test_a_site_dropdown_without_a_site_list_is_an_error(library: Path) -> None:
    file = library / "studies" / "ips_fidelity.yaml"
    file.write_text(file.read_text().split("\nsites:")[0] + "\n")
    errors = [f for f in lint_all(library, ["ips_fidelity"]) if f.severity == "error"]
    assert [f.message for f in errors if f.rule == "sites"] == [
        "site_review makes choices from the site list, but the study has none"
    ]


def test_items_from_an_unknown_form_is_a_definition_error(library: Path) -> None:
    edit(
        library, "forms/ips25_rater.yaml", "items_from: {form: ips25,", "items_from: {form: ips26,"
    )
    with pytest.raises(DefinitionError, match="form 'ips26' is not in this project") as caught:
        load_project("ips_fidelity", library)
    assert caught.value.origin is not None and caught.value.origin.line == 14


# -- reviews, built by hand -----------------------------------------------------------------------


def review(
    record: str, site: str, day: str, ratings: dict[str, int], default: int
) -> dict[str, str]:
    """A review's row as REDCap exports it: every item `default` except those in `ratings`
    (keys are the items' short names, s1 ... v14)."""
    row = {"review_id": record, "redcap_repeat_instrument": "", "redcap_repeat_instance": ""}
    row |= {"review_site": site, "review_date": day, "review_type": "1" if record == "1" else "2"}
    row |= {item: str(ratings.get(item.removeprefix("ips25_"), default)) for item in ITEMS}
    return row


def plan(
    record: str, instance: int, item: str, status: str = "3", area: str = ""
) -> dict[str, str]:
    return {
        "review_id": record,
        "redcap_repeat_instrument": "improvement_plan",
        "redcap_repeat_instance": str(instance),
        "plan_item": item,
        "plan_area": area,
        "plan_finding": "Finding",
        "plan_action": "Action",
        "plan_due": "2024-06-30",
        "plan_status": status,
    }


def rater(record: str, number: str, ratings: dict[str, int], default: int) -> dict[str, str]:
    row = {
        "review_id": record,
        "redcap_repeat_instrument": "ips25_rater",
        "redcap_repeat_instance": number,
        "rater_number": number,
    }
    row |= {
        f"ips25r_{i.removeprefix('ips25_')}": str(ratings.get(i.removeprefix("ips25_"), default))
        for i in ITEMS
    }
    return row


# Site 1 (Bergen): three reviews, exported out of date order. Review 1: every item 3 but s1 = 2
# and o1 = 2, v1 = 4 -> 22*3 + 2 + 2 + 4 = 74 (Fair: 74-99). Review 2: every item 4 but s1 = 4,
# o1 = 2, v1 = 3 -> 22*4 + 4 + 2 + 3 = 97 (Fair). Review 3: all 5 -> 125 (Exemplary).
# Site 3 (Trondheim): one review, every item 3 but v14 = 1 -> 24*3 + 1 = 73 (Not IPS: 25-73).
# Record 6: site 2, v14 not rated -> left out as incomplete.
ROWS: list[dict[str, Any]] = [
    review("2", "1", "2024-09-02", {"s1": 4, "o1": 2, "v1": 3}, 4),
    review("1", "1", "2023-03-01", {"s1": 2, "o1": 2, "v1": 4}, 3),
    review("5", "3", "2024-01-15", {"v14": 1}, 3),
    review("4", "1", "2025-10-20", {}, 5),
    {**review("6", "2", "2024-02-01", {}, 4), "ips25_v14": ""},
    plan("1", 1, "s1"),  # 2 -> 4: improved
    plan("1", 2, "o1", "4"),  # 2 -> 2: unchanged
    plan("1", 3, "v1"),  # 4 -> 3: worse
    plan("1", 4, "", area="NAV"),  # an area: no rating to compare
    plan("4", 1, "s2", "1"),  # the site's latest review: open
    plan("6", 1, "s1"),  # an incomplete review's plan: left out
    rater("1", "1", {"s1": 2, "s2": 4}, 3),
    rater("1", "2", {"s1": 3, "o1": 2}, 3),
    rater("2", "1", {}, 4),  # the other reviewer did not rate review 2 on their own
]


def test_reviews_line_up_per_site_in_date_order_with_scores_and_bands() -> None:
    data = read_reviews(PROJECT, ROWS, "en")
    got = data.reviews[["review", "site", "site_label", "number", "date", "ips25_total", "band"]]
    assert got.to_dict("list") == {
        "review": ["1", "2", "4", "5"],
        "site": ["1", "1", "1", "3"],
        "site_label": [
            "Bergen: Department of addiction medicine",
            "Bergen: Department of addiction medicine",
            "Bergen: Department of addiction medicine",
            "Trondheim: Addiction treatment Mid-Norway",
        ],
        "number": [1, 2, 3, 1],
        "date": [
            dt.date(2023, 3, 1),
            dt.date(2024, 9, 2),
            dt.date(2025, 10, 20),
            dt.date(2024, 1, 15),
        ],
        "ips25_total": [74, 97, 125, 73],
        "band": [2, 2, 4, 1],
    }
    # staffing s1-s3: review 1 is 2 + 3 + 3 = 8; organisation o1-o8: 2 + 7*3 = 23
    assert data.reviews.loc[0, ["ips25_staffing", "ips25_organisation"]].tolist() == [8, 23]
    assert data.incomplete == ["6"]
    assert data.sites() == ["1", "3"]


def test_each_plan_is_judged_at_the_sites_next_review() -> None:
    outcomes = carry_forward(read_reviews(PROJECT, ROWS))
    got = outcomes[["review", "item", "rating", "next_review", "next_rating", "change", "outcome"]]
    assert got.astype(object).where(got.notna(), None).to_dict("records") == [
        {
            "review": "1",
            "item": "ips25_s1",
            "rating": 2,
            "next_review": "2",
            "next_rating": 4,
            "change": 2,
            "outcome": "improved",
        },
        {
            "review": "1",
            "item": "ips25_o1",
            "rating": 2,
            "next_review": "2",
            "next_rating": 2,
            "change": 0,
            "outcome": "unchanged",
        },
        {
            "review": "1",
            "item": "ips25_v1",
            "rating": 4,
            "next_review": "2",
            "next_rating": 3,
            "change": -1,
            "outcome": "worse",
        },
        {
            "review": "1",
            "item": "",
            "rating": None,
            "next_review": "2",
            "next_rating": None,
            "change": None,
            "outcome": "area",
        },
        {
            "review": "4",
            "item": "ips25_s2",
            "rating": 5,
            "next_review": None,
            "next_rating": None,
            "change": None,
            "outcome": "open",
        },
    ]


def test_the_reviewers_own_ratings_come_under_ips25s_names() -> None:
    ratings = read_reviews(PROJECT, ROWS).ratings
    assert ratings[["review", "site", "rater", "ips25_s1", "ips25_s2", "ips25_o1"]].to_dict(
        "list"
    ) == {
        "review": ["1", "1", "2"],
        "site": ["1", "1", "1"],
        "rater": ["1", "2", "1"],
        "ips25_s1": [2, 3, 4],
        "ips25_s2": [4, 3, 4],
        "ips25_o1": [3, 2, 4],
    }
    agreement = agreement_table(read_reviews(PROJECT, ROWS).ratings, SCALE).set_index("item")
    # review 1 only has both: s1 2 vs 3, s2 4 vs 3, o1 3 vs 2 differ; the other 22 agree
    assert agreement.loc["ips25_s1", ["n", "exact", "within_one"]].tolist() == [1, 0.0, 1.0]
    assert agreement.loc["ips25_s3", ["n", "exact"]].tolist() == [1, 1.0]


# -- the report -----------------------------------------------------------------------------------


def test_the_report_tables_and_the_data_behind_each_figure(tmp_path: Path) -> None:
    report = write_report(PROJECT, ROWS, tmp_path, lang="en")
    reviews = pd.read_csv(tmp_path / "reviews.csv", dtype=str)
    assert reviews[
        ["site_name", "number", "date", "type", "ips25_total", "band_label"]
    ].values.tolist() == [
        [
            "Bergen: Department of addiction medicine",
            "1",
            "2023-03-01",
            "First review",
            "74",
            "Fair fidelity",
        ],
        [
            "Bergen: Department of addiction medicine",
            "2",
            "2024-09-02",
            "Follow-up review",
            "97",
            "Fair fidelity",
        ],
        [
            "Bergen: Department of addiction medicine",
            "3",
            "2025-10-20",
            "Follow-up review",
            "125",
            "Exemplary fidelity",
        ],
        [
            "Trondheim: Addiction treatment Mid-Norway",
            "1",
            "2024-01-15",
            "Follow-up review",
            "73",
            "Not supported employment",
        ],
    ]
    # Bergen's review 2 rates o1 2 (before: 2) and v1 3 (before: 4); the rest 4 or 5.
    low = report.tables["low_items"]
    bergen_2 = low[(low["site_name"].str.startswith("Bergen")) & (low["number"] == 2)]
    assert bergen_2[["item", "rating", "previous"]].values.tolist() == [["O1", 2, 2], ["V1", 3, 4]]
    assert len(low[low["site_name"].str.startswith("Trondheim")]) == 25  # all 3, V14 1
    plans = pd.read_csv(tmp_path / "plans.csv", dtype=str, keep_default_na=False)
    assert plans[["number", "item", "area", "status", "outcome"]].values.tolist() == [
        ["1", "S1", "", "Done", "improved"],
        ["1", "O1", "", "Not done", "unchanged"],
        ["1", "V1", "", "Done", "worse"],
        ["1", "", "NAV", "Done", "area"],
        ["3", "S2", "", "Planned", "open"],
    ]
    bergen = "Bergen: Department of addiction medicine"
    totals = report.figures[f"totals:{bergen}"]
    assert totals[["number", "ips25_total", "band"]].values.tolist() == [
        [1, 74, 2],
        [2, 97, 2],
        [3, 125, 4],
    ]
    heat = report.figures[f"heatmap:{bergen}"]
    assert list(heat.columns) == ["1 (01.03.2023)", "2 (02.09.2024)", "3 (20.10.2025)"]
    assert list(heat.index[:4]) == ["S1", "S2", "S3", "O1"] and len(heat) == 25
    assert heat.loc["S1"].tolist() == [2, 4, 5] and heat.loc["V1"].tolist() == [4, 3, 5]
    latest = report.figures["sites_heatmap"]
    assert list(latest.columns) == [bergen, "Trondheim: Addiction treatment Mid-Norway"]
    assert latest.loc["V14"].tolist() == [5, 1]
    assert report.figures["sites_totals"]["ips25_total"].tolist() == [74, 97, 125, 73]
    assert report.lines("en") == [
        f"{bergen}: Exemplary fidelity (125, 2025-10-20), up 28",
        "Trondheim: Addiction treatment Mid-Norway: Not supported employment (73, 2024-01-15), "
        "first review",
    ]
    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 6 and "<script" not in html
    assert "IPS fidelity over time" in html and "IPS-troskap over tid" in html
    assert sorted(p.name for p in tmp_path.glob("*.csv")) == [
        "items.csv",
        "latest_items.csv",
        "low_items.csv",
        "plans.csv",
        "reviews.csv",
    ]


def test_the_band_edges_on_the_figures_are_the_scales() -> None:
    assert figures.band_edges(SCALE) == [(1, 25, 73), (2, 74, 99), (3, 100, 114), (4, 115, 125)]


def test_masked_sites_leave_no_name_in_the_page_the_tables_or_the_figures(tmp_path: Path) -> None:
    report = write_report(PROJECT, ROWS, tmp_path, mask=True, lang="nb")
    names = [t for s in PROJECT.study.sites for t in (s.label.nb, s.label.en, s.trust)]
    names += ["Bergen", "Trondheim"]
    written = [p.read_text() for p in tmp_path.iterdir()]
    assert not [n for n in names for text in written if n in text]
    assert list(report.figures["sites_heatmap"].columns) == ["Site A", "Site C"]
    assert set(report.figures["sites_totals"]["site_label"]) == {"Site A", "Site C"}
    assert report.lines("nb")[0] == "Site A: Svært god troskap (125, 20.10.2025), opp 28"
    assert "Site C" in written[[p.name for p in tmp_path.iterdir()].index("reviews.csv")]


def test_one_site_and_an_unknown_site(tmp_path: Path) -> None:
    report = write_report(PROJECT, ROWS, tmp_path, site="3", lang="en")
    assert set(report.tables["reviews"]["site_name"]) == {
        "Trondheim: Addiction treatment Mid-Norway"
    }
    assert "sites_totals" not in report.figures and report.tables["plans"].empty
    with pytest.raises(HektaError, match=r"unknown site '9' \(site codes: 1, 2, 3, 4, 5\)"):
        write_report(PROJECT, ROWS, tmp_path, site="9")


# -- the statistics, on hand-worked values --------------------------------------------------------

# Four reviews (rows) by three items (columns).
MATRIX = pd.DataFrame({"a": [1, 2, 3, 4], "b": [2, 2, 4, 4], "c": [1, 3, 3, 5]})


def test_cronbachs_alpha_with_feldts_interval() -> None:
    # Item variances (n - 1): a 5/3, b 4/3, c 8/3, sum 17/3. Totals 4, 7, 10, 13: variance 15.
    # alpha = k/(k-1) * (1 - 17/3 / 15) = 3/2 * 0.62222 = 0.93333.
    # Feldt: df1 = n - 1 = 3, df2 = (n - 1)(k - 1) = 6; F(0.975; 3, 6) = 6.5988 and
    # F(0.025; 3, 6) = 1 / F(0.975; 6, 3) = 1 / 14.735 = 0.067865:
    # low = 1 - (1 - 0.93333) * 6.5988 = 0.560, high = 1 - 0.06667 * 0.067865 = 0.995.
    alpha, low, high = cronbach_alpha(MATRIX)
    assert alpha == pytest.approx(0.933333, abs=1e-6)
    assert (low, high) == pytest.approx((0.560, 0.995), abs=1e-3)


def test_alpha_per_section_and_too_few_reviews() -> None:
    reviews = read_reviews(PROJECT, ROWS).reviews
    table = alpha_table(reviews, SCALE)
    assert table["scale"].tolist() == [
        "ips25_total",
        "ips25_staffing",
        "ips25_organisation",
        "ips25_services",
    ]
    assert table["items"].tolist() == [25, 3, 8, 14] and table["n"].tolist() == [4] * 4
    assert all(pd.isna(v) for v in cronbach_alpha(MATRIX.iloc[:1]))


def test_item_distribution_floor_ceiling_and_item_total_correlation() -> None:
    scale = Scale(["a", "b", "c"], {}, SCALE.bands, SCALE.instrument)
    table = item_table(MATRIX.assign(c=[1, 3, 3, 5]), scale).set_index("item")
    # a: 1, 2, 3, 4 -> floor 1/4, ceiling 0; c: 1, 3, 3, 5 -> floor 1/4, ceiling 1/4.
    assert table.loc["a", ["floor", "ceiling"]].tolist() == [0.25, 0.0]
    assert table.loc["c", ["floor", "ceiling", "share_3"]].tolist() == [0.25, 0.25, 0.5]
    # a against b + c = 3, 5, 7, 9: exactly linear, r = 1.
    # b (2, 2, 4, 4; deviations -1 -1 1 1) against a + c = 2, 5, 6, 9 (deviations -3.5 -0.5
    # 0.5 3.5): cross products 3.5 + 0.5 + 0.5 + 3.5 = 8, squares 4 and 25: r = 8 / 10 = 0.8.
    assert table.loc["a", "item_total_r"] == pytest.approx(1.0)
    assert table.loc["b", "item_total_r"] == pytest.approx(0.8)
    assert table.loc["b", ["mean", "sd"]].tolist() == pytest.approx([3.0, (4 / 3) ** 0.5])


def test_quadratic_weighted_kappa() -> None:
    # Rater 1: 1, 2, 3, 3; rater 2: 1, 3, 3, 2 over codes 1-5, weights (i - j)^2 / 16.
    # Observed: (0 + 1 + 0 + 1) / 16 / 4 = 0.03125. Both raters' margins are 1/4, 1/4, 1/2 on
    # codes 1, 2, 3: expected sum of p_i p_j (i - j)^2 = 2 * (1/16 * 1 + 1/8 * 4 + 1/8 * 1) =
    # 1.375, / 16 = 0.0859375. kappa = 1 - 0.03125 / 0.0859375 = 1 - 4/11 = 0.636364.
    first, second = pd.Series([1, 2, 3, 3]), pd.Series([1, 3, 3, 2])
    assert weighted_kappa(first, second) == pytest.approx(7 / 11)
    # Agreement by chance alone is complete: kappa undefined, not an error.
    assert pd.isna(weighted_kappa(pd.Series([4, 4]), pd.Series([4, 4])))


def test_icc_2_1_absolute_agreement() -> None:
    # Totals of four reviews by two reviewers: (1, 2), (3, 3), (5, 4), (7, 8). Grand mean
    # 4.125; review means 1.5, 3, 4.5, 7.5 -> SS_reviews = 2 * 19.6875 = 39.375, MS_R = 13.125;
    # reviewer means 4 and 4.25 -> SS_raters = 4 * 0.03125 = 0.125, MS_C = 0.125; SS_total =
    # 40.875 -> SS_error = 1.375, MS_E = 1.375 / 3 = 0.458333. ICC(2,1) = (MS_R - MS_E) /
    # (MS_R + (k - 1) MS_E + k (MS_C - MS_E) / n) = 12.666667 / (13.583333 - 0.166667) = 0.944099.
    # (ICC(3,1) = (MS_R - MS_E) / (MS_R + MS_E) = 0.932515 would ignore the raters' offset.)
    totals = pd.DataFrame(
        {
            "review": ["1", "1", "2", "2", "3", "3", "4", "4"],
            "rater": ["1", "2"] * 4,
            "total": [1, 2, 3, 3, 5, 4, 7, 8],
        }
    )
    icc = intraclass(totals)
    assert icc["icc"].tolist() == pytest.approx([0.944099], abs=1e-6)
    assert icc["n"].tolist() == [4]
    assert intraclass(totals.iloc[:4]).empty  # two reviews: no ICC


def test_change_between_consecutive_reviews() -> None:
    change = change_table(read_reviews(PROJECT, ROWS).reviews, SCALE)
    # Bergen 74 -> 97 -> 125 (Trondheim has one review): 1 March 2023 to 2 September 2024 is
    # 551 days = 18.1 months of 30.4375 days. Review 1 -> 2: s1 2 -> 4, o1 2 -> 2, v1 4 -> 3,
    # the other 22 items 3 -> 4: 23 up, 1 down.
    assert change[
        ["from_number", "to_number", "months", "change", "items_up", "items_down"]
    ].values.tolist() == [
        [1, 2, 18.1, 23, 23, 1],
        [2, 3, 13.6, 28, 25, 0],
    ]


def test_an_export_without_the_rater_and_plan_forms_has_no_ratings_or_plans() -> None:
    """A project still on the earlier definitions exports neither form's columns."""
    data = read_reviews(PROJECT, [review("1", "2", "2024-05-01", {}, 4)])
    assert data.reviews["ips25_total"].tolist() == [100] and data.reviews["band"].tolist() == [3]
    assert data.ratings.empty and data.plans.empty
    assert carry_forward(data).empty


def test_validation_checks_each_repeating_instance_of_the_plans_and_ratings() -> None:
    """A plan instance with an impossible due date, a status and an item that are no codes and
    no finding, and a reviewer's rating of 6, each reported at its instance; the valid
    instances of the same review give nothing."""
    from hekta_redcap.validation import validate_records

    rows = [
        {
            **review("1", "1", "2023-03-01", {}, 3),
            "review_reviewer_1": "A",
            "review_reviewer_2": "B",
        },
        plan("1", 1, "s1"),
        {**plan("1", 2, "x9", status="7"), "plan_due": "2024-02-30", "plan_finding": ""},
        rater("1", "1", {}, 3),
        rater("1", "2", {"v14": 6}, 3),
    ]
    frame = pd.DataFrame(rows).fillna("")
    frame[["review_unit", "review_comments"]] = ""
    frame["plan_responsible"] = frame["redcap_repeat_instrument"].map(
        lambda form: "Leader" if form == "improvement_plan" else ""
    )
    result = validate_records(PROJECT, frame, today=dt.date(2026, 6, 1))
    problems = result.problems
    got = {(r.record, r.instrument, r.instance, r.field, r.rule) for r in problems.itertuples()}
    assert got == {
        ("1", "improvement_plan", "2", "plan_due", "type"),
        ("1", "improvement_plan", "2", "plan_item", "choice"),
        ("1", "improvement_plan", "2", "plan_status", "choice"),
        ("1", "improvement_plan", "2", "plan_finding", "required"),
        ("1", "ips25_rater", "2", "ips25r_v14", "choice"),
    }
