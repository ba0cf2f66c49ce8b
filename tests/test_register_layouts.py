"""Lint catches a broken register layout at its file and line, and the shipped layouts, their
pandera schemas and the import's checks agree."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pandera.errors
import pytest
from conftest import edit

from hekta_redcap.definitions.registers import load_layouts
from hekta_redcap.lint import lint_all
from hekta_redcap.registers.schema import delivery_schema

NPR = "registers/npr.yaml"
AA = "registers/aa.yaml"
KPR = "registers/kpr.yaml"


@dataclass
class Case:
    id: str
    file: str
    old: str
    new: str
    rule: str
    message: str
    anchor: str  # the finding is on the line where this text starts (after the edit)


CASES = [
    Case(
        "name-twice",
        NPR,
        "  - name: bitilstand\n",
        "  - name: hovedtilstand\n",
        "register-name",
        "variable 'hovedtilstand' is defined twice (first at line 43)",
        "name: hovedtilstand",
    ),
    Case(
        "name-upper-case",
        NPR,
        "  - name: bitilstand\n",
        "  - name: Bitilstand\n",
        "register-name",
        "variable name 'Bitilstand' must be lower-case letters, digits and underscores, "
        "starting with a letter",
        "name: Bitilstand",
    ),
    Case(
        "name-reserved",
        NPR,
        "  - name: bitilstand\n",
        "  - name: delivery_id\n",
        "register-name",
        "'delivery_id' is the store's own column",
        "delivery_id",
    ),
    Case(
        "key-unknown",
        NPR,
        "key: lopenr\n",
        "key: lopnr\n",
        "register-column",
        "'lopnr' is not a variable",
        "key: lopnr",
    ),
    Case(
        "key-not-text",
        KPR,
        "key: lopenr\n",
        "key: kontakttype\n",
        "register-key",
        "the key 'kontakttype' must be a required text variable",
        "key: kontakttype",
    ),
    Case(
        "key-optional",
        NPR,
        "    label: {nb: Prosjektets løpenummer",
        "    required: false\n    label: {nb: Prosjektets løpenummer",
        "register-key",
        "the key 'lopenr' must be a required text variable",
        "key: lopenr",
    ),
    Case(
        "unique-unknown",
        NPR,
        "unique: [lopenr, episode_id]\n",
        "unique: [lopenr, episode]\n",
        "register-column",
        "'episode' is not a variable",
        "unique: [lopenr, episode]",
    ),
    Case(
        "period-unknown",
        NPR,
        "period: [inn_dato]\n",
        "period: [inndato]\n",
        "register-column",
        "'inndato' is not a variable",
        "period: [inndato]",
    ),
    Case(
        "period-not-a-date",
        NPR,
        "period: [inn_dato]\n",
        "period: [episode_id]\n",
        "register-column",
        "period column 'episode_id' must be a date or month, not text",
        "period: [episode_id]",
    ),
    Case(
        "code-without-codes",
        NPR,
        "  - name: hovedtilstand\n    type: text\n",
        "  - name: hovedtilstand\n    type: code\n",
        "register-codes",
        "code variable 'hovedtilstand' has no codes",
        "type: code\n    pattern",
    ),
    Case(
        "codes-on-text",
        KPR,
        "  - name: tjeneste\n    type: code\n",
        "  - name: tjeneste\n    type: text\n",
        "register-codes",
        "'tjeneste' is text: only codes have codes",
        "codes:\n      - {code: FL",
    ),
    Case(
        "code-twice",
        KPR,
        "      - {code: LV, label: {nb: Legevakt, en: Out-of-hours service}}\n",
        "      - {code: FL, label: {nb: Legevakt, en: Out-of-hours service}}\n",
        "register-codes",
        "code 'FL' is listed twice",
        "- {code: FL, label: {nb: Legevakt",
    ),
    Case(
        "pattern-does-not-compile",
        KPR,
        'pattern: "[A-Z][0-9]{2}"\n',
        'pattern: "[A-Z][0-9{2}"\n',
        "register-pattern",
        "pattern of 'diagnose' does not compile: unterminated character set at position 5",
        'pattern: "[A-Z][0-9{2}"',
    ),
    Case(
        "pattern-not-re2",
        KPR,
        'pattern: "[A-Z][0-9]{2}"\n',
        'pattern: "([A-Z])\\\\1[0-9]"\n',
        "register-pattern",
        "pattern of 'diagnose' is not a pattern DuckDB (RE2) accepts",
        'pattern: "([A-Z])',
    ),
    Case(
        "pattern-on-a-date",
        KPR,
        "  - name: dato\n    type: date\n",
        '  - name: dato\n    type: date\n    pattern: "[0-9]+"\n',
        "register-pattern",
        "'dato': a pattern applies to text only",
        'pattern: "[0-9]+"',
    ),
    Case(
        "min-above-max",
        AA,
        "    min: 0\n    max: 200\n",
        "    min: 300\n    max: 200\n",
        "register-range",
        "'stillingsprosent': min 300.0 is above max",
        "min: 300",
    ),
    Case(
        "range-on-text",
        AA,
        "  - name: arbeidsforhold_id\n    type: text\n",
        "  - name: arbeidsforhold_id\n    type: text\n    max: 3\n",
        "register-range",
        "'arbeidsforhold_id': min and max apply to numbers only",
        "max: 3",
    ),
    Case(
        "concept-twice",
        NPR,
        "    label: {nb: Bitilstand (ICD-10), en: Secondary condition (ICD-10)}\n",
        "    label: {nb: Bitilstand (ICD-10), en: Secondary condition (ICD-10)}\n"
        "    concept: diagnosis\n",
        "register-concept",
        "concept 'diagnosis' is already 'hovedtilstand'",
        "concept: diagnosis\n",
    ),
    Case(
        "load-unknown-type",
        KPR,
        "  - name: dato\n    type: date\n",
        "  - name: dato\n    type: datetime\n",
        "load",
        "variables.2.type (line 18): Input should be 'text', 'integer', 'number', 'date', "
        "'month' or 'code'",
        "type: datetime",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_rule_catches_broken_layout(library: Path, case: Case) -> None:
    file = edit(library, case.file, case.old, case.new)
    findings = [f for f in lint_all(library) if f.severity == "error"]
    text = file.read_text(encoding="utf-8")
    # the anchor's last occurrence: an edit that repeats a line puts the offending copy second
    anchor_line = text[: text.rindex(case.anchor)].count("\n") + 1
    hits = [
        (f.rule, f.message, f.origin.line)
        for f in findings
        if f.origin is not None and f.origin.file == file
    ]
    assert (case.rule, case.message, anchor_line) in hits, hits


def test_a_broken_layout_does_not_hide_the_others(library: Path) -> None:
    edit(library, KPR, "source: kpr\n", "source: kpr2\n")
    edit(library, NPR, "key: lopenr\n", "key: lopnr\n")
    findings = [(f.rule, f.origin.file.name) for f in lint_all(library) if f.origin]
    assert ("load", "kpr.yaml") in findings
    assert ("register-column", "npr.yaml") in findings


def test_shipped_layouts_lint_clean(library: Path) -> None:
    assert [str(f) for f in lint_all(library) if "registers" in str(f.origin)] == []


def test_schema_follows_the_layout(library: Path) -> None:
    layout = load_layouts(library)["aa"]
    schema = delivery_schema(layout)
    assert list(schema.columns) == [v.name for v in layout.variables]
    assert schema.unique == ["lopenr", "arbeidsforhold_id"]
    assert not schema.columns["startdato"].nullable
    assert schema.columns["sluttdato"].nullable
    assert str(schema.columns["stillingsprosent"].dtype) == "float64"
    assert [str(c) for c in schema.columns["stillingsprosent"].checks] == [
        "<Check greater_than_or_equal_to: greater_than_or_equal_to(0.0)>",
        "<Check less_than_or_equal_to: less_than_or_equal_to(200.0)>",
    ]
    assert schema.columns["orgnr"].checks[0].statistics == {"pattern": "(?:[0-9]{9})$"}


def test_schema_finds_what_the_import_rejects(library: Path) -> None:
    """The pandera schema flags the rows the import rejects, for the same reasons."""
    frame = pd.DataFrame(
        {
            "lopenr": pd.array(["L1", "L2", None, "L4", "L4"], dtype="string"),
            "kontakt_id": pd.array(["K1", "K2", "K3", "K4", "K4"], dtype="string"),
            "dato": pd.to_datetime(["2024-01-02"] * 5).astype("datetime64[ms]"),
            "tjeneste": pd.array(["FL", "XX", "FL", "FL", "FL"], dtype="string"),
            "kontakttype": pd.array(["1", "1", "1", "1", "1"], dtype="string"),
            "diagnose": pd.array(["A01", "A01", "A01", "A1", "A01"], dtype="string"),
        }
    )
    with pytest.raises(pandera.errors.SchemaErrors) as caught:
        delivery_schema(load_layouts(library)["kpr"]).validate(frame, lazy=True)
    found = sorted(
        (int(row.index), row.column, row.check) for row in caught.value.failure_cases.itertuples()
    )
    assert found == [
        (1, "tjeneste", "isin(['FL', 'LV', 'FYS', 'KHO'])"),
        (2, "lopenr", "not_nullable"),
        (3, "diagnose", "str_matches('(?:[A-Z][0-9]{2})$')"),
        (4, "kontakt_id", "multiple_fields_uniqueness"),
        (4, "lopenr", "multiple_fields_uniqueness"),
    ]
