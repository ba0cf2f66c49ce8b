"""Scoring: every shipped scored instrument, through the library and through `hekta-redcap score`.

Expected values are worked out by hand from the published rules (cited in each instrument's
`source:`) and the project conventions (docs/scoring.md): each case is an item vector with the
total, band and flags it must give. A vector is a string with one character per item
('.' = blank) or a list of stored values.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import LIBRARY, edit

from hekta_redcap.cli import cli
from hekta_redcap.core.errors import HektaError
from hekta_redcap.definitions.scoring import SPEC_VERSIONS, score_all, score_frame, skip_violations
from hekta_redcap.definitions.study import load_project

PROJECTS = {name: load_project(name, LIBRARY) for name in ("hekta", "ips_fidelity")}
OWNER = {"ips25": "ips_fidelity"}


def items(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(1, count + 1)]


AUDIT = items("audit_", 10)
DUDIT = items("dudit_", 11)
HSCL = items("hscl10_", 10)
PHQ9 = items("phq9_", 9)
GAD7 = items("gad7_", 7)
SWLS = items("swls_", 5)
WHOQOL = items("whoqol_", 26)
EQ5D = ["eq5d_mo", "eq5d_sc", "eq5d_ua", "eq5d_pd", "eq5d_ad"]
IPS25 = (
    [f"ips25_s{i}" for i in range(1, 4)]
    + [f"ips25_o{i}" for i in range(1, 9)]
    + [f"ips25_v{i}" for i in range(1, 15)]
)


def rows(columns: list[str], vectors: list[str | list[str]], **extra: list[str]) -> pd.DataFrame:
    """One row per vector ('.' = blank), plus extra columns such as sex."""
    data = [["" if v == "." else v for v in vector] for vector in vectors]
    assert all(len(row) == len(columns) for row in data)
    frame = pd.DataFrame(data, columns=columns)
    for name, values in extra.items():
        frame[name] = values
    return frame


def _cell(value: object) -> object:
    """A result cell as a plain value: None when missing, else a float, else text."""
    if value is None or value is pd.NA or value == "":
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except ValueError:
        return value


def plain(frame: pd.DataFrame) -> dict[str, list[object]]:
    return {c: [_cell(v) for v in frame[c].astype(object)] for c in frame.columns}


Score = Callable[[str, pd.DataFrame], dict[str, list[object]]]


def run_cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(params=["library", "cli"])
def score(request: pytest.FixtureRequest, tmp_path: Path) -> Score:
    """Scores a frame through `score_frame` or through the command line, as plain values."""

    def library(form: str, frame: pd.DataFrame) -> dict[str, list[object]]:
        return plain(score_frame(PROJECTS[OWNER.get(form, "hekta")], form, frame))

    def command(form: str, frame: pd.DataFrame) -> dict[str, list[object]]:
        source, target = tmp_path / "in.csv", tmp_path / "out.csv"
        frame.to_csv(source, index=False)
        code, _, err = run_cli("score", form, "--input", str(source), "-o", str(target))
        assert code == 0, err
        written = pd.read_csv(target, dtype=str, keep_default_na=False)
        assert written[list(frame.columns)].equals(frame), "input columns are written unchanged"
        return plain(written.drop(columns=list(frame.columns)))

    return library if request.param == "library" else command


def expect(got: dict[str, list[object]], **columns: list[object]) -> None:
    for name, values in columns.items():
        assert got[name] == pytest.approx(values), name


# -- AUDIT ---------------------------------------------------------------------------------------


def test_audit_zones_positive_screen_and_alert_at_every_cut_off(score: Score) -> None:
    cases = [  # vector, total, zone, positive (>= 8), zone IV alert (>= 20)
        ("0.......00", 0, 1, 0, 0),
        ("1111111000", 7, 1, 0, 0),
        ("1111111100", 8, 2, 1, 0),
        ("2222210022", 15, 2, 1, 0),
        ("2222220022", 16, 3, 1, 0),
        ("3332220022", 19, 3, 1, 0),
        ("3333220022", 20, 4, 1, 1),
        ("4444444444", 40, 4, 1, 1),
    ]
    got = score("audit", rows(AUDIT, [c[0] for c in cases], sex=["1"] * len(cases)))
    expect(
        got,
        audit_total=[c[1] for c in cases],
        audit_zone=[c[2] for c in cases],
        audit_positive=[c[3] for c in cases],
        audit_dependence_alert=[c[4] for c in cases],
        audit_total_n_answered=[10] * len(cases),
        audit_total_prorated=[0] * len(cases),
    )


def test_auditc_cut_offs_are_sex_specific_and_missing_sex_leaves_only_the_flag_missing(
    score: Score,
) -> None:
    cases = [  # vector, sex (1 male, 2 female), AUDIT-C total, positive (men >= 4, women >= 3)
        ("1110000000", "1", 3, 0),
        ("2110000000", "1", 4, 1),
        ("1100000000", "2", 2, 0),
        ("1110000000", "2", 3, 1),
        ("2110000000", "", 4, None),
        ("2110000000", "UNK", 4, None),
    ]
    got = score("audit", rows(AUDIT, [c[0] for c in cases], sex=[c[1] for c in cases]))
    expect(
        got,
        auditc_total=[c[2] for c in cases],
        auditc_positive=[c[3] for c in cases],
        audit_total=[c[2] for c in cases],
        audit_positive=[0] * len(cases),
    )


def test_audit_skip_rules_make_structural_zeros(score: Score) -> None:
    cases = [  # vector, total, n answered, AUDIT-C total
        ("0.......24", 6, 10, 0),  # item 1 = never: items 2-8 are structural zeros
        ("100.....02", 3, 10, 1),  # items 2 + 3 = 0: items 4-8 are structural zeros
        ("0000000000", 0, 10, 0),  # hidden items answered 0 are fine
        ("11.1111100", None, 9, None),  # an applicable item is missing: no total, no pro-rating
        ("0...1...00", None, 9, 0),  # a hidden item answered non-zero: not scored
        ("100..2..00", None, 9, 1),  # the same under the second skip rule
    ]
    got = score("audit", rows(AUDIT, [c[0] for c in cases], sex=["2"] * len(cases)))
    expect(
        got,
        audit_total=[c[1] for c in cases],
        audit_total_n_answered=[c[2] for c in cases],
        audit_total_prorated=[0, 0, 0, None, None, None],
        audit_zone=[1, 1, 1, None, None, None],
        auditc_total=[c[3] for c in cases],
    )


def test_a_hidden_non_zero_answer_is_reported_as_a_skip_violation(tmp_path: Path) -> None:
    frame = rows(AUDIT, ["1111111100", "0...1...00", "100..2..00"], sex=["1", "1", "1"])
    table = skip_violations(PROJECTS["hekta"], "audit", frame)
    assert table.to_dict("records") == [
        {
            "row": 1,
            "field": "audit_5",
            "value": "1",
            "rule": "[audit_1] = '0'",
            "scores": "audit_total",
        },
        {
            "row": 2,
            "field": "audit_6",
            "value": "2",
            "rule": "[audit_2] = '0' and [audit_3] = '0'",
            "scores": "audit_total",
        },
    ]
    source = tmp_path / "audit.csv"
    frame.to_csv(source, index=False)
    code, out, err = run_cli("score", "audit", "--input", str(source))
    assert code == 0
    assert "audit.csv: line 3, column audit_5: '1'" in err
    assert "audit.csv: line 4, column audit_6: '2'" in err
    assert "[audit_1] = '0'" in err and "audit_total not computed" in err
    written = pd.read_csv(io.StringIO(out), dtype=str, keep_default_na=False)
    assert written["audit_total"].tolist() == ["8.0", "", ""]


def test_audit_escalate_flag_reads_items_4_to_6_as_a_sum(score: Score) -> None:
    cases = [  # vector, escalate ([C]: items 4+5+6 >= 2, or item 9 = 4, or item 10 = 4)
        ("1111000000", 0),
        ("1111100000", 1),
        ("1100000040", 1),
        ("1100000004", 1),
        ("0.......40", 1),
        ("0.......00", 0),  # skipped items are known zeros
        ("11001000.0", None),  # false so far, but the missing item 9 could make it true
        ("11001000.4", 1),  # true whatever item 9 is
    ]
    got = score("audit", rows(AUDIT, [c[0] for c in cases], sex=["1"] * len(cases)))
    expect(got, audit_escalate=[c[1] for c in cases])


# -- DUDIT ---------------------------------------------------------------------------------------


def test_dudit_sex_specific_problem_flag_and_dependence_at_every_cut_off(score: Score) -> None:
    cases = [  # vector, sex, total, problem (men >= 6, women >= 2), dependence (>= 25)
        ("10000000000", "2", 1, 0, 0),
        ("11000000000", "2", 2, 1, 0),
        ("11111000000", "1", 5, 0, 0),
        ("11111100000", "1", 6, 1, 0),
        ("44444400000", "1", 24, 1, 0),
        ("44444410000", "1", 25, 1, 1),
        ("44444444444", "2", 44, 1, 1),
        ("11111100000", "", 6, None, 0),
        ("1111110000.", "1", None, None, None),  # no pro-rating: any missing item
    ]
    got = score("dudit", rows(DUDIT, [c[0] for c in cases], sex=[c[1] for c in cases]))
    expect(
        got,
        dudit_total=[c[2] for c in cases],
        dudit_problem=[c[3] for c in cases],
        dudit_dependence=[c[4] for c in cases],
        dudit_total_n_answered=[11] * 8 + [10],
    )


# -- HSCL-10 -------------------------------------------------------------------------------------


def test_hscl10_case_around_1_85_with_8_of_10_answered(score: Score) -> None:
    cases = [  # vector, mean, case (> 1.85), n answered, prorated, anxiety, depression
        ("2222222211", 1.8, 0, 10, 0, 2.0, 10 / 6),
        ("2222222221", 1.9, 1, 10, 0, 2.0, 11 / 6),
        ("1111111111", 1.0, 0, 10, 0, 1.0, 1.0),
        ("4444444444", 4.0, 1, 10, 0, 4.0, 4.0),
        ("22222221..", 15 / 8, 1, 8, 1, 2.0, None),  # depression: 4 of 6 < 5
        ("22222211..", 14 / 8, 0, 8, 1, 2.0, None),
        ("222.222221", 17 / 9, 1, 9, 1, None, 11 / 6),  # anxiety needs 4 of 4
        ("2222222...", None, None, 7, None, 2.0, None),
    ]
    got = score("hscl10", rows(HSCL, [c[0] for c in cases]))
    expect(
        got,
        hscl10_mean=[c[1] for c in cases],
        hscl10_case=[c[2] for c in cases],
        hscl10_mean_n_answered=[c[3] for c in cases],
        hscl10_mean_prorated=[c[4] for c in cases],
        hscl10_anxiety=[c[5] for c in cases],
        hscl10_depression=[c[6] for c in cases],
    )


# -- PHQ-9 ---------------------------------------------------------------------------------------


def test_phq9_bands_positive_screen_and_item9_alert_at_every_cut_off(score: Score) -> None:
    cases = [  # vector, total, band, positive (>= 10), item 9 alert (>= 1)
        ("000000000", 0, 1, 0, 0),
        ("111100000", 4, 1, 0, 0),
        ("111110000", 5, 2, 0, 0),
        ("111111111", 9, 2, 0, 1),
        ("211111111", 10, 3, 1, 1),
        ("222222110", 14, 3, 1, 0),
        ("222222210", 15, 4, 1, 0),
        ("333322210", 19, 4, 1, 0),
        ("333322220", 20, 5, 1, 0),
        ("333333333", 27, 5, 1, 1),
    ]
    got = score("phq9", rows(PHQ9, [c[0] for c in cases]))
    expect(
        got,
        phq9_total=[c[1] for c in cases],
        phq9_band=[c[2] for c in cases],
        phq9_positive=[c[3] for c in cases],
        phq9_item9_alert=[c[4] for c in cases],
    )


def test_phq9_prorates_up_to_2_missing_and_bands_the_unrounded_total(score: Score) -> None:
    unk = ["1", "1", "1", "1", "1", "1", "1", "UNK", "NASK"]
    cases = [  # vector, total, n answered, prorated, band, positive, item 9 alert
        ("1111112..", 8 * 9 / 7, 7, 1, 3, 1, None),  # 10.29: moderate, not rounded
        ("11110000.", 4 * 9 / 8, 8, 1, 1, 0, None),  # 4.5: still minimal
        ("111111..1", 9.0, 7, 1, 2, 0, 1),
        ("3333..3.1", None, 6, None, None, None, 1),  # 3 missing; the alert still fires
        (unk, 9.0, 7, 1, 2, 0, None),  # missing data codes are missing
    ]
    got = score("phq9", rows(PHQ9, [c[0] for c in cases]))
    expect(
        got,
        phq9_total=[c[1] for c in cases],
        phq9_total_n_answered=[c[2] for c in cases],
        phq9_total_prorated=[c[3] for c in cases],
        phq9_band=[c[4] for c in cases],
        phq9_positive=[c[5] for c in cases],
        phq9_item9_alert=[c[6] for c in cases],
    )


# -- GAD-7 ---------------------------------------------------------------------------------------


def test_gad7_bands_positive_screen_and_prorating(score: Score) -> None:
    cases = [  # vector, total, band, positive (>= 10), prorated
        ("1111000", 4, 1, 0, 0),
        ("1111100", 5, 2, 0, 0),
        ("2221110", 9, 2, 0, 0),
        ("2222110", 10, 3, 1, 0),
        ("2222222", 14, 3, 1, 0),
        ("3222222", 15, 4, 1, 0),
        ("3333333", 21, 4, 1, 0),
        ("221111.", 8 * 7 / 6, 2, 0, 1),  # 9.33
        ("222111.", 9 * 7 / 6, 3, 1, 1),  # 10.5
        ("22221..", None, None, None, None),
    ]
    got = score("gad7", rows(GAD7, [c[0] for c in cases]))
    expect(
        got,
        gad7_total=[c[1] for c in cases],
        gad7_band=[c[2] for c in cases],
        gad7_positive=[c[3] for c in cases],
        gad7_total_prorated=[c[4] for c in cases],
    )


# -- SWLS ----------------------------------------------------------------------------------------


def test_swls_bands_at_every_edge_and_prorating(score: Score) -> None:
    cases = [  # vector, total, band (Pavot & Diener, half-open), prorated
        ("11111", 5, 1, 0),
        ("11115", 9, 1, 0),
        ("22222", 10, 2, 0),
        ("23333", 14, 2, 0),
        ("33333", 15, 3, 0),
        ("34444", 19, 3, 0),
        ("44444", 20, 4, 0),
        ("44445", 21, 5, 0),
        ("55555", 25, 5, 0),
        ("55556", 26, 6, 0),
        ("66666", 30, 6, 0),
        ("66667", 31, 7, 0),
        ("77777", 35, 7, 0),
        ("4444.", 20.0, 4, 1),
        ("4445.", 21.25, 5, 1),
        ("3444.", 18.75, 3, 1),
        ("444..", None, None, None),
    ]
    got = score("swls", rows(SWLS, [c[0] for c in cases]))
    expect(
        got,
        swls_total=[c[1] for c in cases],
        swls_band=[c[2] for c in cases],
        swls_total_prorated=[c[3] for c in cases],
    )


# -- WHOQOL-BREF ---------------------------------------------------------------------------------


def whoqol(base: str, **items: str) -> list[str]:
    """All 26 items `base` except those named: whoqol("3", i3="1") sets item 3 to 1."""
    values = {i: base for i in range(1, 27)}
    values.update({int(k[1:]): v for k, v in items.items()})
    return [values[i] for i in range(1, 27)]


def test_whoqol_domains_reverse_items_gate_and_0_100_transform(score: Score) -> None:
    reversed_ = {"i3": "1", "i4": "2", "i26": "5"}  # recoded 5, 4, 1
    cases = [
        whoqol("3", **reversed_),
        whoqol("3", **reversed_, i10=".", i5=".", i6=".", i21=".", i8="."),  # 21 of 26
        whoqol("3", i1=".", i2=".", i10=".", i21=".", i8=".", i9="."),  # 20 of 26: discarded
        whoqol("5", i3="1", i4="1", i26="1"),
        whoqol("1", i3="5", i4="5", i26="5"),
    ]
    got = score("whoqol_bref", rows(WHOQOL, cases))
    expect(
        got,
        # physical: 4 x mean(5, 4, 3, 3, 3, 3, 3) = 96/7; second case 4 x 21/6 (6 of 7)
        whoqol_physical=[96 / 7, 14.0, None, 20.0, 4.0],
        whoqol_physical_100=[(96 / 7 - 4) * 6.25, 62.5, None, 100.0, 0.0],
        whoqol_physical_n_answered=[7, 6, 6, 7, 7],
        whoqol_physical_prorated=[0, 1, None, 0, 0],
        # psychological: 4 x mean(3, 3, 3, 3, 3, 1) = 32/3; 4 of 6 answered is too few
        whoqol_psychological=[32 / 3, None, None, 20.0, 4.0],
        whoqol_psychological_100=[(32 / 3 - 4) * 6.25, None, None, 100.0, 0.0],
        whoqol_psychological_n_answered=[6, 4, 6, 6, 6],
        whoqol_social=[12.0, 12.0, None, 20.0, 4.0],
        whoqol_social_100=[50.0, 50.0, None, 100.0, 0.0],
        whoqol_social_prorated=[0, 1, None, 0, 0],
        whoqol_environment=[12.0, 12.0, None, 20.0, 4.0],
        whoqol_environment_100=[50.0, 50.0, None, 100.0, 0.0],
        whoqol_environment_n_answered=[8, 7, 6, 8, 8],
    )


# -- EQ-5D-5L ------------------------------------------------------------------------------------


def test_eq5d_profile_is_the_five_digits_and_missing_when_a_dimension_is(score: Score) -> None:
    got = score("eq5d5l", rows(EQ5D, ["21143", "11111", "2114."]))
    expect(
        got,
        eq5d5l_profile=[21143.0, 11111.0, None],
        eq5d5l_profile_n_answered=[5, 5, 4],
        eq5d5l_profile_prorated=[0, 0, None],
    )


def test_eq5d_profile_is_text() -> None:
    result = score_frame(PROJECTS["hekta"], "eq5d5l", rows(EQ5D, ["11111", "54321"]))
    assert result["eq5d5l_profile"].tolist() == ["11111", "54321"]


# -- IPS-25 --------------------------------------------------------------------------------------


def test_ips25_categories_at_every_edge(score: Score) -> None:
    cases = [  # vector (25 items), total, category, mean item score
        ("1" * 25, 25, 1, 1.0),
        ("5" * 12 + "1" * 13, 73, 1, 2.92),
        ("5" * 12 + "2" + "1" * 12, 74, 2, 2.96),
        ("5" * 18 + "2211111", 99, 2, 3.96),
        ("5" * 18 + "2221111", 100, 3, 4.0),
        ("5" * 22 + "211", 114, 3, 4.56),
        ("5" * 22 + "311", 115, 4, 4.6),
        ("5" * 25, 125, 4, 5.0),
    ]
    got = score("ips25", rows(IPS25, [c[0] for c in cases]))
    expect(
        got,
        ips25_total=[c[1] for c in cases],
        ips25_category=[c[2] for c in cases],
        ips25_mean=[c[3] for c in cases],
        ips25_total_incomplete=[0] * len(cases),
        ips25_total_n_answered=[25] * len(cases),
        ips25_staffing=[3, 15, 15, 15, 15, 15, 15, 15],
        ips25_organisation=[8, 40, 40, 40, 40, 40, 40, 40],
        ips25_services=[14, 18, 19, 44, 45, 59, 60, 70],
    )


def test_ips25_incomplete_review_gives_a_flagged_partial_sum_without_category(
    score: Score,
) -> None:
    got = score("ips25", rows(IPS25, ["5" * 24 + ".", "." * 25]))
    expect(
        got,
        ips25_total=[120, None],
        ips25_total_incomplete=[1, None],
        ips25_total_n_answered=[24, 0],
        ips25_total_prorated=[0, None],
        ips25_category=[None, None],
        ips25_mean=[None, None],
        ips25_staffing=[15, None],
        ips25_staffing_incomplete=[0, None],
        ips25_services=[65, None],
        ips25_services_incomplete=[1, None],
    )


# -- invalid input -------------------------------------------------------------------------------

INVALID = [  # form, column, stored value, what the message says is allowed
    ("audit", "audit_9", "1", "one of its codes (0, 2, 4)"),
    ("audit", "audit_9", "3", "one of its codes (0, 2, 4)"),
    ("audit", "sex", "3", "one of its codes (1, 2)"),
    ("dudit", "dudit_11", "1", "one of its codes (0, 2, 4)"),
    ("phq9", "phq9_4", "1.0", "one of its codes (0, 1, 2, 3)"),
    ("phq9", "phq9_4", "Ikke", "one of its codes (0, 1, 2, 3)"),
    ("hscl10", "hscl10_1", "0", "one of its codes (1, 2, 3, 4)"),
    ("swls", "swls_5", "8", "one of its codes (1, 2, 3, 4, 5, 6, 7)"),
    ("whoqol_bref", "whoqol_26", "6", "one of its codes (1, 2, 3, 4, 5)"),
    ("eq5d5l", "eq5d_ad", "9", "one of its codes (1, 2, 3, 4, 5)"),
    ("ips25", "ips25_v3", "UNK", "one of its codes (1, 2, 3, 4, 5)"),  # no missing codes here
]
VALID = {  # one valid row per form, every column
    "audit": rows(AUDIT, ["1111111100"], sex=["1"]),
    "dudit": rows(DUDIT, ["11111100000"], sex=["2"]),
    "phq9": rows(PHQ9, ["111111111"]),
    "hscl10": rows(HSCL, ["2222222222"]),
    "gad7": rows(GAD7, ["1111111"]),
    "swls": rows(SWLS, ["44444"]),
    "whoqol_bref": rows(WHOQOL, [whoqol("3")]),
    "eq5d5l": rows(EQ5D, ["11111"]),
    "ips25": rows(IPS25, ["3" * 25]),
}


def with_bad_value(form: str, column: str, value: str) -> pd.DataFrame:
    """Three valid rows, the second holding the bad value."""
    frame = pd.concat([VALID[form]] * 3, ignore_index=True)
    frame.loc[1, column] = value
    return frame


@pytest.mark.parametrize(("form", "column", "value", "allowed"), INVALID)
def test_an_invalid_code_is_an_error_naming_row_and_column(
    form: str, column: str, value: str, allowed: str
) -> None:
    frame = with_bad_value(form, column, value)
    with pytest.raises(HektaError) as caught:
        score_frame(PROJECTS[OWNER.get(form, "hekta")], form, frame)
    assert str(caught.value) == f"row 1, column {column}: '{value}' is not {allowed}"


@pytest.mark.parametrize(("form", "column", "value", "allowed"), INVALID)
def test_the_cli_names_file_line_and_column_of_an_invalid_code(
    tmp_path: Path, form: str, column: str, value: str, allowed: str
) -> None:
    source, target = tmp_path / "data.csv", tmp_path / "out.csv"
    with_bad_value(form, column, value).to_csv(source, index=False)
    code, out, err = run_cli("score", form, "--input", str(source), "-o", str(target))
    assert code == 1
    assert err.strip().splitlines() == [
        f"error: {source}: line 3, column {column}: '{value}' is not {allowed}"
    ]
    assert not target.exists() and out == ""


def test_rows_are_named_by_the_index_and_every_invalid_value_is_counted() -> None:
    frame = pd.concat([VALID["phq9"]] * 3, ignore_index=True)
    frame.index = pd.Index([1001, 1002, 1003], name="record_id")
    frame.loc[1003, "phq9_1"] = "4"
    frame.loc[1002, "phq9_9"] = "x"
    frame.loc[1003, "phq9_2"] = "-1"
    with pytest.raises(HektaError, match=r"^record_id 1002, column phq9_9: 'x' is not one of its"):
        score_frame(PROJECTS["hekta"], "phq9", frame)
    with pytest.raises(HektaError, match=r"\(and 2 more invalid value\(s\)\)$"):
        score_frame(PROJECTS["hekta"], "phq9", frame)


def test_blank_and_whitespace_are_missing_not_invalid() -> None:
    frame = rows(PHQ9, [["1", "", " ", "1", "1", "1", "1", "1", "1"]])
    result = score_frame(PROJECTS["hekta"], "phq9", frame)
    assert result["phq9_total"].tolist() == [9.0]  # 7 answered ones, pro-rated: 7 x 9 / 7
    assert result["phq9_total_n_answered"].tolist() == [7]


def test_missing_columns_are_an_error_naming_them(tmp_path: Path) -> None:
    frame = VALID["audit"].drop(columns=["audit_10", "sex"])
    with pytest.raises(HektaError, match=r"^missing column\(s\) for audit: audit_10, sex$"):
        score_frame(PROJECTS["hekta"], "audit", frame)
    source = tmp_path / "audit.csv"
    frame.to_csv(source, index=False)
    code, _, err = run_cli("score", "audit", "--input", str(source))
    assert code == 1
    assert err.strip() == f"error: {source}: missing column(s) for audit: audit_10, sex"


# -- the command line ----------------------------------------------------------------------------


def test_score_writes_input_and_score_columns_to_stdout(tmp_path: Path) -> None:
    source = tmp_path / "phq9.csv"
    frame = rows(PHQ9, ["111111111", "1111112.."], record_id=["7", "8"])
    frame.to_csv(source, index=False)
    code, out, err = run_cli("score", "phq9", "--input", str(source))
    assert code == 0, err
    written = pd.read_csv(io.StringIO(out), dtype=str, keep_default_na=False)
    assert list(written.columns[: len(frame.columns)]) == list(frame.columns)
    assert written["record_id"].tolist() == ["7", "8"]
    assert written["phq9_total"].tolist() == ["9.0", repr(8 * 9 / 7)]  # full precision
    assert "phq9 (spec version 1)" in err


def test_score_replaces_score_columns_already_in_the_input(tmp_path: Path) -> None:
    source = tmp_path / "phq9.csv"
    rows(PHQ9, ["111111111"], phq9_total=["99"]).to_csv(source, index=False)
    code, out, _ = run_cli("score", "phq9", "--input", str(source))
    assert code == 0
    written = pd.read_csv(io.StringIO(out), dtype=str, keep_default_na=False)
    assert written.columns.tolist().count("phq9_total") == 1
    assert written["phq9_total"].tolist() == ["9.0"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "unknown form 'nope' (scored forms: audit, dudit, eq5d5l, gad7, hscl10,"),
        (["demographics"], "project hekta has no scoring for 'demographics' (scored: audit,"),
        (["ips25", "--project", "hekta"], "project hekta has no instrument 'ips25' (scored:"),
    ],
)
def test_score_rejects_unknown_forms_in_one_line(
    tmp_path: Path, args: list[str], message: str
) -> None:
    source = tmp_path / "x.csv"
    VALID["phq9"].to_csv(source, index=False)
    code, _, err = run_cli("score", *args, "--input", str(source))
    assert code == 1
    assert len(err.strip().splitlines()) == 1
    assert err.startswith(f"error: {message}")


def test_score_reports_a_missing_file_in_one_line(tmp_path: Path) -> None:
    code, _, err = run_cli("score", "phq9", "--input", str(tmp_path / "none.csv"))
    assert code == 1
    assert err.strip() == f"error: {tmp_path / 'none.csv'}: file not found"


# -- several instruments and versions ------------------------------------------------------------


def test_score_all_scores_every_instrument_present_and_records_their_versions() -> None:
    frame = pd.concat([VALID["phq9"], VALID["gad7"].assign(gad7_1="3")], axis=1)
    result = score_all(PROJECTS["hekta"], frame)
    assert result["phq9_total"].tolist() == [9.0]
    assert result["gad7_total"].tolist() == [9.0]
    assert "audit_total" not in result.columns
    assert result.attrs[SPEC_VERSIONS] == {"phq9": "1", "gad7": "1"}


def test_score_all_refuses_an_instrument_with_only_some_columns() -> None:
    frame = VALID["phq9"].drop(columns=["phq9_5"])
    with pytest.raises(HektaError, match=r"missing column\(s\) for phq9: phq9_5"):
        score_all(PROJECTS["hekta"], frame)


def test_the_spec_version_comes_from_the_definition(library: Path) -> None:
    edit(library, "forms/swls.yaml", 'version: "1"', 'version: "2026.2"')
    result = score_frame(load_project("hekta", library), "swls", VALID["swls"])
    assert result.attrs[SPEC_VERSIONS] == {"swls": "2026.2"}


def test_scores_follow_the_definition(library: Path) -> None:
    """No cut-off lives in code: moving PHQ-9's positive screen moves the flag."""
    positive = 'cutoff: {op: ">=", value: 10}'
    edit(library, "forms/phq9.yaml", positive, positive.replace(">=", ">"))
    frame = rows(PHQ9, ["211111111", "221111111"])
    result = score_frame(load_project("hekta", library), "phq9", frame)
    assert result["phq9_positive"].tolist() == [0, 1]


def test_a_numeric_text_item_scores_its_number_and_rejects_text(library: Path) -> None:
    """Items without codes (a text field with number validation) must hold a number."""
    edit(
        library,
        "forms/eq5d5l.yaml",
        "  scores:\n",
        "  scores:\n    - {name: vas_copy, label: VAS, items: [eq5d_vas], aggregate: sum}\n",
    )
    project = load_project("hekta", library)
    frame = rows(EQ5D, ["11111", "11111"], eq5d_vas=["55", ""])
    assert score_frame(project, "eq5d5l", frame)["vas_copy"].tolist() == [55.0, pd.NA]
    frame.loc[1, "eq5d_vas"] = "god"
    with pytest.raises(HektaError, match=r"^row 1, column eq5d_vas: 'god' is not a number$"):
        score_frame(project, "eq5d5l", frame)
