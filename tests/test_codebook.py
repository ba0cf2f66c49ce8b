"""The codebook: every field, code, score and outcome from the definitions; counts per event
checked against the rows; identifier values never written; both files well-formed."""

from __future__ import annotations

import datetime as dt
import html
import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from hekta_redcap.analysis import outcomes
from hekta_redcap.analysis.codebook import (
    LONG_COLUMNS,
    Codebook,
    Count,
    Variable,
    build_codebook,
    write_codebook,
)
from hekta_redcap.core.errors import HektaError
from hekta_redcap.definitions.model import Text
from hekta_redcap.definitions.scoring import required_columns, score_all, scored_forms
from hekta_redcap.definitions.study import Project, load_project
from hekta_redcap.devtools.cohort import generate

TODAY = dt.date(2026, 1, 15)
EVENT, REPEAT = "redcap_event_name", "redcap_repeat_instrument"
SIX, BASELINE = "followup_6m_arm_1", "baseline_arm_1"
MISSING = ("UNK", "ASKU", "NASK")


@pytest.fixture(scope="module")
def project() -> Project:
    return load_project("hekta")


@pytest.fixture(scope="module")
def rows(project: Project) -> list[dict[str, str]]:
    """The synthetic cohort with a few missing data codes planted: UNK in phq9_1 on the first
    three 6-month rows, ASKU in emp_hours_week on two baseline rows, and UNK ticked for the
    benefit_types checkbox on one baseline row (its options all unticked)."""
    rows = [dict(r) for r in generate(project, 100, seed=2, today=TODAY).rows]
    plain = [r for r in rows if not r.get(REPEAT)]
    for row in [r for r in plain if r[EVENT] == SIX][:3]:
        row["phq9_1"] = "UNK"
    baseline = [r for r in plain if r[EVENT] == BASELINE]
    for row in baseline[:2]:
        row["emp_hours_week"] = "ASKU"
    coded = baseline[5]
    for column in [c for c in coded if c.startswith("benefit_types___")]:
        coded[column] = "0"
    coded["benefit_types___unk"] = "1"  # REDCap lowercases the code in the column name
    return rows


@pytest.fixture(scope="module")
def books(project: Project, rows: list[dict[str, str]], tmp_path_factory) -> dict:
    """Each language's codebook and its two files' text."""
    result = {}
    for language in ("nb", "en"):
        book = build_codebook(project, rows, language)
        html_file, md_file = write_codebook(book, tmp_path_factory.mktemp(language))
        assert (html_file.name, md_file.name) == ("codebook.html", "codebook.md")
        result[language] = (book, html_file.read_text("utf-8"), md_file.read_text("utf-8"))
    return result


def variables(book: Codebook) -> dict[str, Variable]:
    every = [*book.keys, *book.outcomes, *book.long_columns]
    every += [v for s in book.sections for v in (*s.variables, *s.scores)]
    return {v.name: v for v in every if v not in book.keys}


def field_counts(book: Codebook, name: str) -> dict[str, Count]:
    return {c.event.code: c for c in variables(book)[name].counts}


def markdown_text(md: str) -> str:
    """The Markdown as a reader sees its text: escapes removed, entities decoded."""
    return html.unescape(re.sub(r"\\(.)", r"\1", md))


def test_every_field_of_every_instrument_appears(project: Project, books: dict) -> None:
    for book, page, md in books.values():
        listed = [v.name for s in book.sections for v in s.variables]
        assert listed == [f.name for _, f in project.fields()]
        for _, field in project.fields():
            assert f'id="var-{field.name}"' in page
            assert f"`{field.name}`" in md
        for section in book.sections:
            assert f'<a href="#form-{section.form}">' in page
            assert f"](#form-{section.form})" in md


def test_types_events_and_identifiers_come_from_the_definitions(
    project: Project, books: dict
) -> None:
    book = books["en"][0]
    found = variables(book)
    assert found["rand_date"].type == "date"
    assert found["emp_hours_week"].type == "number"
    assert found["audit_1"].type == "choice"
    assert found["consent_elig_adult"].type == "yes-no"
    assert found["benefit_types"].type.startswith("checkbox")
    assert found["contact_mobile"].identifier and not found["rand_group"].identifier
    assert [e.code for e in found["contact_mobile"].events] == project.events_of("contact")
    assert found["contact_mobile"].events[1].label == "Follow-up 6 months"
    identifiers = [f.name for _, f in project.fields() if f.identifier]
    page = books["en"][1]
    for name in identifiers:
        row = page[page.index(f'id="var-{name}"') :].split("</tr>")[0]
        assert "dropped (identifier)" in row
    notes = page[page.index('id="var-eos_comment"') :].split("</tr>")[0]
    assert "dropped (free text)" in notes
    tracking = page[page.index('id="var-fu_status"') :].split("</tr>")[0]
    assert "never exported (follow-up status)" in tracking
    kept = page[page.index('id="var-rand_group"') :].split("</tr>")[0]
    assert "dropped" not in kept and "kept" in kept


def test_choice_codes_and_labels_in_definition_order(project: Project, books: dict) -> None:
    for language, (book, page, md) in books.items():
        found = variables(book)
        plain = markdown_text(md)
        for instrument, field in project.fields():
            if field.type not in ("radio", "dropdown", "checkbox"):
                continue
            choices = instrument.choices_of(field)
            codes = [(c.code, instrument.choice_label(c, language)) for c in choices]
            assert [(c.code, c.label) for c in found[field.name].codes] == codes
            for _, label in codes:
                assert label in html.unescape(page)
                assert " ".join(label.split()) in plain
    benefit = variables(books["en"][0])["benefit_types"]
    assert [c.column for c in benefit.codes][:2] == ["benefit_types___1", "benefit_types___2"]


def test_scores_as_the_engine_names_them_with_their_rules(project: Project, books: dict) -> None:
    columns = {c for form in scored_forms(project) for c in required_columns(project, form)}
    engine = score_all(project, pd.DataFrame({c: pd.Series([], dtype=object) for c in columns}))
    assert any(c.endswith("_n_answered") for c in engine.columns)
    book, page, md = books["en"]
    found = variables(book)
    for column in engine.columns:
        assert column in found
        assert f'id="var-{column}"' in page and f"`{column}`" in md
    phq9 = {d.label: d.text for d in found["phq9_total"].details}
    assert phq9["Items"] == ", ".join(f"phq9_{i}" for i in range(1, 10))
    assert "pro-rated" in phq9["Missing items"] and "at least 7 of 9" in phq9["Missing items"]
    assert found["phq9_band"].codes[1].label == "Mild (5 ≤ phq9_total < 10)"
    assert "(lowest + highest code)" in str(found["whoqol_physical"].details)
    assert "at least 21 of these 26" in str(found["whoqol_physical"].details)
    assert found["audit_total_prorated"].type == "flag (0/1)"


def test_employment_outcomes_and_long_columns_are_defined(books: dict) -> None:
    for language, (book, page, md) in books.items():
        definitions = outcomes.outcome_definitions()
        assert [v.name for v in book.outcomes] == list(outcomes.OUTCOME_COLUMNS)
        plain = markdown_text(md)
        for column in outcomes.OUTCOME_COLUMNS:
            assert definitions[column][language] in html.unescape(page)
            assert definitions[column][language] in plain
        assert [v.name for v in book.long_columns] == list(LONG_COLUMNS)
        group = variables(book)["rand_group"]
        assert [c.code for c in group.codes] == ["1", "2"]
        assert [c.code for c in book.outcomes[1].codes] == ["1", "2"]


def expected(
    rows: list[dict[str, str]], field: str, event: str, repeat: str = ""
) -> tuple[int, int, int, dict[str, int]]:
    """(rows, filled, blank, {missing code: count}) straight from the rows."""
    frame = pd.DataFrame(rows).fillna("")
    held = frame[(frame[EVENT] == event) & (frame[REPEAT] == repeat)]
    values = held[field] if field in held else pd.Series("", index=held.index)
    coded = {m: int((values == m).sum()) for m in MISSING}
    blank = int((values == "").sum())
    return len(held), len(held) - blank - sum(coded.values()), blank, coded


@pytest.mark.parametrize(
    ("field", "event", "repeat"),
    [
        ("phq9_1", SIX, ""),
        ("phq9_1", BASELINE, ""),
        ("emp_hours_week", BASELINE, ""),
        ("audit_4", "followup_12m_arm_1", ""),
        ("job_hours_week", SIX, "job_episode"),
        ("job_pay", BASELINE, "job_episode"),
        ("eos_withdraw_date", BASELINE, ""),
    ],
)
def test_counts_per_event_match_the_rows(
    rows: list[dict[str, str]], books: dict, field: str, event: str, repeat: str
) -> None:
    count = field_counts(books["en"][0], field)[event]
    n, filled, blank, coded = expected(rows, field, event, repeat)
    assert n > 0
    assert (count.rows, count.filled, count.blank) == (n, filled, blank)
    assert dict(zip(MISSING, count.missing, strict=True)) == coded


def test_planted_missing_codes_are_counted(rows: list[dict[str, str]], books: dict) -> None:
    book, _, md = books["en"]
    phq9 = field_counts(book, "phq9_1")
    assert phq9[SIX].missing == (3, 0, 0) and phq9[BASELINE].missing == (0, 0, 0)
    assert field_counts(book, "emp_hours_week")[BASELINE].missing == (0, 2, 0)
    codes = dict(phq9[SIX].by_code)
    answered = sum(codes.values())
    assert answered == phq9[SIX].filled and list(codes) == ["0", "1", "2", "3"]
    benefit = field_counts(book, "benefit_types")[BASELINE]
    assert benefit.missing == (1, 0, 0)
    assert benefit.rows == benefit.filled + benefit.blank + 1
    n, filled, blank, _ = expected(rows, "phq9_1", SIX)
    line = f"| Follow-up 6 months | {n} | {filled} | {blank} | 3 | 0 | 0 |"
    assert line in md


def test_checkbox_counts_ticks_per_option(rows: list[dict[str, str]], books: dict) -> None:
    frame = pd.DataFrame(rows).fillna("")
    held = frame[(frame[EVENT] == SIX) & (frame[REPEAT] == "")]
    count = field_counts(books["en"][0], "benefit_types")[SIX]
    options = [c for c in frame.columns if c.startswith("benefit_types___")]
    assert [code for code, _ in count.by_code] == [*"123456789", "0"]  # definition order
    for code, ticked in count.by_code:
        assert ticked == int((held[f"benefit_types___{code}"] == "1").sum())
    assert count.filled == int(held[options].eq("1").any(axis=1).sum())


def test_no_identifier_value_is_written(
    project: Project, rows: list[dict[str, str]], books: dict
) -> None:
    """Values long enough to be told apart from ordinary words (a first name such as "Per"
    is also the start of "Per hour"): phone numbers, e-mail addresses, identity and
    organisation numbers, dates, employer names."""
    identifiers = [f.name for _, f in project.fields() if f.identifier]
    values = {r[name] for r in rows for name in identifiers if len(r.get(name, "")) >= 8}
    mobiles = {r["contact_mobile"] for r in rows if r.get("contact_mobile")}
    assert len(mobiles) > 50 and mobiles <= values
    for book, page, md in books.values():
        for value in values:
            assert value not in page and value not in md, "an identifier value was written"
        for name in identifiers:
            assert all(c.by_code == () for c in variables(book)[name].counts)


def test_languages_differ_in_labels_and_headings(project: Project, books: dict) -> None:
    instrument, field = project.field_map()["phq9_1"]
    nb_book, nb_page, nb_md = books["nb"]
    _, en_page, en_md = books["en"]
    assert '<html lang="nb">' in nb_page and '<html lang="en">' in en_page
    assert nb_md.startswith("# Kodebok: ") and en_md.startswith("# Codebook: ")
    assert instrument.label_of(field, "nb") in html.unescape(nb_page)
    assert instrument.label_of(field, "en") in html.unescape(en_page)
    assert variables(nb_book)["rand_date"].type == "dato"
    assert "Sysselsettingsutfall" in nb_page and "Employment outcomes" in en_page
    with pytest.raises(HektaError, match="language"):
        build_codebook(project, [], "de")


class _Checker(HTMLParser):
    """Every element closed in order (void elements excepted); ids and links collected."""

    VOID = frozenset({"meta", "br", "link", "img", "hr", "input"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.ids: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id"):
            self.ids.append(str(found["id"]))
        if (found.get("href") or "").startswith("#"):
            self.links.append(str(found["href"])[1:])
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes <{self.stack[-1] if self.stack else ''}>")
        else:
            self.stack.pop()


def check_html(page: str) -> None:
    checker = _Checker()
    checker.feed(page)
    checker.close()
    assert checker.problems == [] and checker.stack == []
    assert len(checker.ids) == len(set(checker.ids))
    assert set(checker.links) <= set(checker.ids)
    assert "<script" not in page and "http" not in page.split("<body>")[0]  # self-contained


def check_markdown(md: str) -> None:
    """Each table row has its header's number of cells; every link has its anchor."""
    cell = re.compile(r"(?<!\\)\|")
    header = None
    for line in md.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = len(cell.findall(line))
        header = header or cells
        assert cells == header, line
    anchors = set(re.findall(r'<a id="([^"]+)"></a>', md))
    assert set(re.findall(r"\]\(#([^)]+)\)", md)) <= anchors


def test_both_files_are_well_formed(books: dict) -> None:
    for _, page, md in books.values():
        check_html(page)
        check_markdown(md)


def test_labels_with_markup_are_escaped(tmp_path: Path) -> None:
    project = load_project("hekta")
    field = project.field_map()["phq9_1"][1]
    field.label = Text(nb="Ofte | sjelden <b>*fet*</b>", en="Often | rarely <b>*bold*</b>")
    rows = generate(project, 5, seed=4, today=TODAY).rows
    page_file, md_file = write_codebook(build_codebook(project, rows, "en"), tmp_path)
    page, md = page_file.read_text("utf-8"), md_file.read_text("utf-8")
    check_html(page)
    check_markdown(md)
    assert "Often | rarely &lt;b&gt;*bold*&lt;/b&gt;" in page
    assert "Often \\| rarely &lt;b&gt;\\*bold\\*&lt;/b&gt;" in md
