"""Each lint rule catches a broken definition and names the file and line of the problem."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import edit, line_of

from hekta_redcap.definitions.study import load_project
from hekta_redcap.lint import Finding, lint_all

AUDIT = "forms/audit.yaml"
STUDY = "studies/hekta.yaml"
AUDIT_3 = "  - name: audit_3\n"
BRANCH_2 = "branching: \"[audit_1] <> '0'\"\n"
NEW_FIELD_AT = "  - name: audit_1\n"


def new_field(body: str) -> tuple[str, str, str]:
    """An edit that inserts a field before audit_1 (body: the field's YAML lines)."""
    return (AUDIT, NEW_FIELD_AT, body + NEW_FIELD_AT)


@dataclass
class Case:
    id: str
    edits: list[tuple[str, str, str]]
    rule: str
    message: str
    file: str = AUDIT
    anchor: str | None = None  # the finding must be on the line where this text starts
    severity: str = "error"


CASES = [
    Case(
        "name-pattern",
        [(AUDIT, AUDIT_3, "  - name: Audit_3\n")],
        "field-name",
        "must match",
        anchor="- name: Audit_3",
    ),
    Case(
        "name-reserved",
        [(AUDIT, AUDIT_3, "  - name: redcap_x\n")],
        "field-name",
        "reserved",
        anchor="- name: redcap_x",
    ),
    Case(
        "name-complete",
        [(AUDIT, AUDIT_3, "  - name: audit_complete\n")],
        "field-name",
        "reserved",
        anchor="- name: audit_complete",
    ),
    Case(
        "name-duplicate",
        [(AUDIT, "  - name: audit_4\n", AUDIT_3)],
        "field-name",
        "used twice",
        anchor="- name: audit_3\n    type: radio\n    concept: unable to stop",
    ),
    Case(
        "name-length",
        [(AUDIT, "  - name: audit_10\n", "  - name: audit_ten_and_a_long_name_x\n")],
        "field-name-length",
        "Stata",
        anchor="- name: audit_ten_and",
        severity="warning",
    ),
    Case(
        "choice-set-unknown",
        [(AUDIT, "choices: often_1_3\n", "choices: often_13\n")],
        "choices",
        "no choice set 'often_13'",
        anchor="choices: often_13",
    ),
    Case(
        "choice-code-duplicate",
        [(AUDIT, "{code: 1, label: {nb: Månedlig eller", "{code: 0, label: {nb: Månedlig eller")],
        "choices",
        "choice code '0' is used 2 times",
        anchor="- name: audit_1\n",
    ),
    Case(
        "choice-code-invalid",
        [(AUDIT, "{code: 1, label: {nb: Månedlig eller", "{code: 1 a, label: {nb: Månedlig eller")],
        "choices",
        "'1 a' is not a valid code",
        anchor="- name: audit_1\n",
    ),
    Case(
        "choices-on-yesno",
        [
            new_field(
                "  - name: audit_flag\n    type: yesno\n    label: X\n    choices: often_1_3\n"
            )
        ],
        "choices",
        "type yesno cannot have choices",
        anchor="    choices: often_1_3\n  - name: audit_1",
    ),
    Case(
        "radio-without-choices",
        [new_field("  - name: audit_x\n    type: radio\n    label: X\n")],
        "choices",
        "needs choices",
        anchor="- name: audit_x",
    ),
    Case(
        "validation-unknown",
        [new_field("  - name: audit_x\n    type: text\n    label: X\n    validation: date_xyz\n")],
        "validation",
        "unknown validation type 'date_xyz'",
        anchor="- name: audit_x",
    ),
    Case(
        "validation-min-max",
        [
            new_field(
                "  - name: audit_x\n    type: text\n    label: X\n    validation: integer\n"
                "    min: 10\n    max: 2\n"
            )
        ],
        "validation",
        "min 10 is greater than max 2",
        anchor="- name: audit_x",
    ),
    Case(
        "validation-bad-date",
        [
            new_field(
                "  - name: audit_x\n    type: text\n    label: X\n    validation: date_dmy\n"
                "    min: 2024-13-01\n"
            )
        ],
        "validation",
        "'2024-13-01' is not a valid date_dmy",
        anchor="- name: audit_x",
    ),
    Case(
        "validation-dates-compare-as-dates",
        [
            new_field(
                "  - name: audit_x\n    type: text\n    label: X\n    validation: date_dmy\n"
                "    min: 2024-02-10\n    max: 2024-01-31\n"
            )
        ],
        "validation",
        "greater than max",
        anchor="- name: audit_x",
    ),
    Case(
        "validation-on-radio",
        [(AUDIT, 'question_number: "1"\n', 'question_number: "1"\n    validation: integer\n')],
        "validation",
        "type radio cannot have a validation",
        anchor="- name: audit_1\n",
    ),
    Case(
        "bounds-without-validation",
        [new_field("  - name: audit_x\n    type: text\n    label: X\n    max: 4\n")],
        "validation",
        "min/max but no validation",
        anchor="- name: audit_x",
    ),
    Case(
        "logic-syntax",
        [(AUDIT, BRANCH_2, "branching: \"[audit_1] <> '0' and\"\n")],
        "logic",
        "field 'audit_2' branching logic",
        anchor="- name: audit_2",
    ),
    Case(
        "logic-unknown-field",
        [(AUDIT, BRANCH_2, "branching: \"[audit_0] <> '0'\"\n")],
        "logic",
        "unknown field 'audit_0'",
        anchor="- name: audit_2",
    ),
    Case(
        "logic-unknown-event",
        [(AUDIT, BRANCH_2, "branching: \"[baseline_arm_9][audit_1] <> '0'\"\n")],
        "logic",
        "unknown event 'baseline_arm_9'",
        anchor="- name: audit_2",
    ),
    Case(
        "logic-form-not-at-event",
        [(AUDIT, BRANCH_2, "branching: \"[register_18m_arm_1][audit_1] <> '0'\"\n")],
        "logic",
        "not collected at event 'register_18m_arm_1'",
        anchor="- name: audit_2",
    ),
    Case(
        "logic-code-unknown",
        [(AUDIT, BRANCH_2, "branching: \"[audit_1] <> '7'\"\n")],
        "logic",
        "'7' is not a code of 'audit_1' (0, 1, 2, 3, 4)",
        anchor="- name: audit_2",
    ),
    Case(
        "score-zero-code-unknown",
        [
            (
                AUDIT,
                "- when: \"[audit_2] = '0' and [audit_3] = '0'\"",
                "- when: \"[audit_2] = '0' and [audit_3] = '9'\"",
            )
        ],
        "logic",
        "'9' is not a code of 'audit_3'",
        anchor="- when: \"[audit_2] = '0' and",
    ),
    Case(
        "logic-checkbox-code",
        [(AUDIT, BRANCH_2, "branching: \"[audit_1(3)] = '1'\"\n")],
        "logic",
        "'audit_1' is not a checkbox",
        anchor="- name: audit_2",
    ),
    Case(
        "calc-without-formula",
        [new_field("  - name: audit_c\n    type: calc\n    label: C\n")],
        "calc",
        "has no calculation",
        anchor="- name: audit_c",
    ),
    Case(
        "calc-cycle",
        [
            new_field(
                "  - name: audit_c1\n    type: calc\n    label: C1\n    calc: '[audit_c2] + 1'\n"
                "  - name: audit_c2\n    type: calc\n    label: C2\n    calc: '[audit_c1] * 2'\n"
            )
        ],
        "calc-cycle",
        "audit_c1 -> audit_c2 -> audit_c1",
        anchor="- name: audit_c1",
    ),
    Case(
        "matrix-choices",
        [
            (AUDIT, "concept: blackout\n", "concept: blackout\n    matrix: m1\n"),
            (
                AUDIT,
                "concept: someone injured because of drinking\n",
                "concept: someone injured because of drinking\n    matrix: m1\n",
            ),
        ],
        "matrix",
        "differs from 'audit_8'",
        anchor="- name: audit_9",
    ),
    Case(
        "action-tag-unknown",
        [(AUDIT, 'question_number: "1"\n', 'question_number: "1"\n    annotation: "@HIDEN"\n')],
        "action-tag",
        "unknown action tag @HIDEN",
        anchor="- name: audit_1\n",
        severity="warning",
    ),
    Case(
        "action-tag-unclosed",
        [
            (
                AUDIT,
                'question_number: "1"\n',
                'question_number: "1"\n'
                "    annotation: \"@CALCTEXT(if([audit_2]='1', 'a', 'b')\"\n",
            )
        ],
        "action-tag",
        "parentheses do not close",
        anchor="- name: audit_1\n",
    ),
    Case(
        "action-tag-logic",
        [
            (
                AUDIT,
                'question_number: "1"\n',
                'question_number: "1"\n'
                "    annotation: \"@CALCTEXT(if([audit_99]='1', 'a', 'b'))\"\n",
            )
        ],
        "logic",
        "unknown field 'audit_99'",
        anchor="- name: audit_1\n",
    ),
    Case(
        "identifier-unflagged",
        [new_field("  - name: audit_phone\n    type: text\n    label: {nb: Telefon, en: Phone}\n")],
        "identifier",
        "looks identifying",
        anchor="- name: audit_phone",
        severity="warning",
    ),
    Case(
        "label-nb-missing",
        [(AUDIT, "label: {nb: Hvor ofte drikker du alkohol?, en:", "label: {en:")],
        "label",
        "no nb label for audit_1",
        anchor="fields:",
    ),
    Case(
        "label-en-missing",
        [
            (
                AUDIT,
                "label: {nb: Hvor ofte drikker du alkohol?, en: How often do you have a drink "
                "containing alcohol?}",
                "label: {nb: Hvor ofte drikker du alkohol?}",
            )
        ],
        "label",
        "no en label for audit_1",
        anchor="fields:",
        severity="warning",
    ),
    Case(
        "score-item-unknown",
        [(AUDIT, "audit_9, audit_10]", "audit_9, audit_11]")],
        "scoring",
        "item 'audit_11' is not a field of audit",
        anchor="- name: audit_total",
    ),
    Case(
        "score-reverse-not-item",
        [(AUDIT, "      aggregate: sum\n", "      aggregate: sum\n      reverse: [audit_intro]\n")],
        "scoring",
        "reversed item 'audit_intro' is not one of its items",
        anchor="- name: audit_total",
    ),
    Case(
        "score-descriptive-item",
        [(AUDIT, "items: [audit_1, audit_2, audit_3]", "items: [audit_intro, audit_2, audit_3]")],
        "scoring",
        "'audit_intro' does not hold numeric codes",
        anchor="- name: auditc_total",
    ),
    Case(
        "score-structural-zero-logic",
        [(AUDIT, "- when: \"[audit_1] = '0'\"", "- when: \"[audit_x] = '0'\"")],
        "logic",
        "unknown field 'audit_x'",
        anchor='- when: "[audit_x]',
    ),
    Case(
        "score-min-answered",
        [(AUDIT, "min_answered: 3", "min_answered: 4")],
        "scoring",
        "min_answered must be 1..3",
        anchor="- name: auditc_total",
    ),
    Case(
        "bands-order",
        [(AUDIT, "{code: 3, min: 16,", "{code: 3, min: 6,")],
        "scoring",
        "band minimums must increase",
        anchor="      bands:",
    ),
    Case(
        "derived-source-unknown",
        [(AUDIT, "from: audit_total\n      cutoff", "from: audit_totl\n      cutoff")],
        "scoring",
        "computed from 'audit_totl'",
        anchor="from: audit_totl",
    ),
    Case(
        "derived-logic",
        [(AUDIT, "or [audit_10] = '4'\"", "or [audit_10] = '4' or\"")],
        "logic",
        "'audit_escalate'",
        anchor='logic: "sum(',
    ),
    Case(
        "by-sex-without-coding",
        [(STUDY, "sex: {field: sex, male: 1, female: 2}\n", "")],
        "scoring",
        "the study file has no 'sex' coding",
        anchor="- name: auditc_positive",
    ),
    Case(
        "sex-code",
        [(STUDY, "female: 2}", "female: 3}")],
        "sex",
        "female code '3'",
        file=STUDY,
        anchor="sex: {field: sex",
    ),
    Case(
        "date-order-field",
        [
            (
                STUDY,
                "{earlier: consent_date, later: rand_date}",
                "{earlier: consent_dato, later: rand_date}",
            )
        ],
        "date-order",
        "'consent_dato' is not a date field",
        file=STUDY,
        anchor="{earlier: consent_dato",
    ),
    Case(
        "missing-code-clash",
        [(STUDY, "{code: UNK, label: Ukjent}", "{code: '0', label: Ukjent}")],
        "missing-codes",
        "missing data code '0' is also a choice code",
        file=STUDY,
        anchor="{code: '0', label: Ukjent}",
    ),
    Case(
        "event-unique-name",
        [(STUDY, "  - name: Followup 6m\n", "  - name: Follow-up 6 months\n")],
        "events",
        "REDCap will name it 'follow_up_6_months_arm_1'",
        file=STUDY,
        anchor="- name: Follow-up 6 months",
    ),
    Case(
        "mapping-unknown-event",
        [
            (
                STUDY,
                "{form: consent, events: [baseline_arm_1]}",
                "{form: consent, events: [baseline_arm_2]}",
            )
        ],
        "mapping",
        "unknown event 'baseline_arm_2'",
        file=STUDY,
        anchor="- {form: consent",
    ),
    Case(
        "mapping-missing",
        [(STUDY, "{form: consent, events: [baseline_arm_1]}", "{form: consent}")],
        "mapping",
        "'consent' is not mapped to any event",
        file=STUDY,
        anchor="- {form: consent",
    ),
    Case(
        "repeat-label-field",
        [(STUDY, "[job_start_date] [job_employer_name]", "[job_start] [job_employer_name]")],
        "logic",
        "unknown field 'job_start'",
        file=STUDY,
        anchor="- form: job_episode",
    ),
    Case(
        "schedule-anchor",
        [(STUDY, "anchor_field: rand_date", "anchor_field: rand_dato")],
        "schedule",
        "anchor field 'rand_dato' does not exist",
        file=STUDY,
        anchor="anchor_field: rand_dato",
    ),
    Case(
        "schedule-event",
        [(STUDY, "  - event: followup_12m_arm_1\n", "  - event: followup_24m_arm_1\n")],
        "schedule",
        "'followup_24m_arm_1' is not defined",
        file=STUDY,
        anchor="- event: followup_24m_arm_1",
    ),
    Case(
        "completion-form",
        [(STUDY, "registers: [aa, fd_trygd, inntekt]", "complete: [phq9]")],
        "schedule",
        "completion form 'phq9' is not collected at 'register_18m_arm_1'",
        file=STUDY,
        anchor="complete: [phq9]",
    ),
    Case(
        "register-source",
        [(STUDY, "registers: [aa, fd_trygd, inntekt]", "registers: [aa, fd_trygd, skatt]")],
        "schedule",
        "register 'skatt' has no layout under",
        file=STUDY,
        anchor="registers: [aa, fd_trygd, skatt]",
    ),
    Case(
        "tracking-field",
        [(STUDY, "status: fu_status", "status: fu_state")],
        "followup",
        "tracking status 'fu_state' is not a field of 'followup_tracking'",
        file=STUDY,
        anchor="status: fu_state",
    ),
    Case(
        "contact-field",
        [(STUDY, "mobile: contact_mobile", "mobile: contact_mobil")],
        "followup",
        "contact field 'contact_mobil' does not exist",
        file=STUDY,
        anchor="mobile: contact_mobil",
    ),
    Case(
        "stop-rule-field",
        [(STUDY, "when: \"[eos_status] = '4'\"", "when: \"[eos_stat] = '4'\"")],
        "followup",
        "stop rule 'deceased' reads 'eos_stat', which does not exist",
        file=STUDY,
        anchor="- {reason: deceased",
    ),
    Case(
        "reminder-template",
        [(STUDY, "template: reminder", "template: nudge")],
        "followup",
        "no template nb/nudge.sms.j2",
        file=STUDY,
        anchor="steps:",
    ),
    Case(
        "reminder-zone",
        [(STUDY, "timezone: Europe/Oslo", "timezone: Europe/Olso")],
        "followup",
        "Europe/Olso",
        file=STUDY,
        anchor="timezone: Europe/Olso",
    ),
    Case(
        "record-id-first",
        [(STUDY, "record_id: record_id", "record_id: study_id")],
        "record-id",
        "must be the record id 'study_id'",
        file="forms/consent.yaml",
        anchor="- name: record_id",
    ),
    # Malformed files: an error naming file and line, never a traceback.
    Case(
        "type-invalid",
        [(AUDIT, "    type: radio\n", "    type: Radio\n")],
        "load",
        "type (line",
        anchor="type: Radio",
    ),
    Case(
        "key-unknown",
        [(AUDIT, 'question_number: "1"\n', 'question_number: "1"\n    colour: red\n')],
        "load",
        "unknown key",
        anchor="colour: red",
    ),
    Case(
        "key-duplicate",
        [(AUDIT, "licence: ship_text\n", "licence: ship_text\nlicence: x\n")],
        "load",
        "duplicate key 'licence'",
        anchor="licence: x",
    ),
    Case(
        "yaml-syntax",
        [(AUDIT, "en: AUDIT – alcohol use}", "en: AUDIT – alcohol use")],
        "load",
        "invalid YAML",
    ),
    Case("yaml-not-mapping", [(AUDIT, "form: audit\n", "- form: audit\n")], "load", "invalid YAML"),
    Case(
        "form-file-missing",
        [(STUDY, "{form: consent,", "{form: consents,")],
        "load",
        "'consents' has no definition file",
        file=STUDY,
        anchor="- {form: consents",
    ),
    Case(
        "data-quality-unknown-rule",
        [(STUDY, "  disabled: []", "  disabled: [outliers]")],
        "data-quality",
        "data_quality.disabled: no rule 'outliers'",
        file=STUDY,
        anchor="  disabled: [outliers]",
    ),
    Case(
        "data-quality-check-field",
        [
            (
                STUDY,
                "      field: job_end_date\n      when: \"[job_ongoing] = '1'",
                "      field: job_end\n      when: \"[job_ongoing] = '1'",
            )
        ],
        "data-quality",
        "check 'ongoing-job-end-date': no field 'job_end'",
        file=STUDY,
        anchor="    - name: ongoing-job-end-date",
    ),
    Case(
        "data-quality-check-logic",
        [(STUDY, "[job_ongoing] = '0' and", "[job_ongoin] = '0' and")],
        "logic",
        "check 'finished-job-end-date': unknown field 'job_ongoin'",
        file=STUDY,
        anchor="    - name: finished-job-end-date",
    ),
    Case(
        "outlier-not-a-number",
        [
            (
                "forms/job_episode.yaml",
                "    validation: number\n    min: 0\n    max: 80\n",
                "    min: 0\n    max: 80\n",
            )
        ],
        "data-quality",
        "'job_hours_week': an outlier check needs numbers",
        file="forms/job_episode.yaml",
        anchor="    outlier: {method: mad}",
    ),
    Case(
        "randomization-target-type",
        [(STUDY, "  target: rand_group\n", "  target: rand_date\n")],
        "randomization",
        "target 'rand_date' must be a radio or dropdown field",
        file=STUDY,
        anchor="  target: rand_date",
    ),
    Case(
        "randomization-arms",
        [
            (
                STUDY,
                "    - {code: 2, ratio: 1}   # self-help",
                "    - {code: 3, ratio: 1}   # self-help",
            )
        ],
        "randomization",
        "arms ['1', '3'] must be the target's choice codes ['1', '2'], each once",
        file=STUDY,
        anchor="  arms:",
    ),
    Case(
        "randomization-block-size",
        [(STUDY, "  blocks: [2, 4, 6]", "  blocks: [2, 3, 6]")],
        "randomization",
        "block size 3 is not a multiple of the ratios' sum (2)",
        file=STUDY,
        anchor="  blocks: [2, 3, 6]",
    ),
    Case(
        "randomization-single-block-size",
        [(STUDY, "  blocks: [2, 4, 6]", "  blocks: [4]")],
        "randomization",
        "a single block size lets staff who know it foresee",
        file=STUDY,
        anchor="  blocks: [4]",
        severity="warning",
    ),
    Case(
        "randomization-stratum-unknown",
        [(STUDY, "    - {field: site}", "    - {field: clinic}")],
        "randomization",
        "field 'clinic' does not exist",
        file=STUDY,
        anchor="    - {field: clinic}",
    ),
    Case(
        "randomization-stratum-type",
        [(STUDY, "    - {field: site}", "    - {field: consent_date}")],
        "randomization",
        "stratum 'consent_date' must be a multiple-choice field",
        file=STUDY,
        anchor="    - {field: consent_date}",
    ),
    Case(
        "randomization-stratum-not-at-event",
        [(STUDY, "    - {field: site}", "    - {field: fu_status}")],
        "randomization",
        "field 'fu_status' (form followup_tracking) is not collected at 'baseline_arm_1'",
        file=STUDY,
        anchor="    - {field: fu_status}",
    ),
    Case(
        "randomization-stratum-both",
        [(STUDY, "    - {field: site}", "    - {field: site, dag: [oslo]}")],
        "randomization",
        "a stratum names either a field or data access groups",
        file=STUDY,
        anchor="    - {field: site, dag: [oslo]}",
    ),
    Case(
        "randomization-event",
        [(STUDY, "  event: baseline_arm_1\n  blocks", "  event: screening_arm_1\n  blocks")],
        "randomization",
        "event 'screening_arm_1' is not defined",
        file=STUDY,
        anchor="  event: screening_arm_1",
    ),
    Case(
        "randomization-consent-logic",
        [(STUDY, "  consent: \"[consent_given] = '1'\"", "  consent: \"[consent_gven] = '1'\"")],
        "randomization",
        "consent reads 'consent_gven', which does not exist",
        file=STUDY,
        anchor="  consent: ",
    ),
    Case(
        "randomization-complete-form",
        [(STUDY, "  complete: [consent, demographics]", "  complete: [consent, phq9, dudit2]")],
        "randomization",
        "form 'dudit2' in 'complete' does not exist",
        file=STUDY,
        anchor="  complete: [consent, phq9, dudit2]",
    ),
    Case(
        "randomization-date-field",
        [(STUDY, "  date_field: rand_date", "  date_field: rand_by")],
        "randomization",
        "date_field 'rand_by' must be a date or datetime field",
        file=STUDY,
        anchor="  date_field: rand_by",
    ),
    Case(
        "register-linkage-field",
        [(STUDY, "  national_id: national_id", "  national_id: fnr")],
        "register-linkage",
        "field 'fnr' does not exist",
        file=STUDY,
        anchor="  national_id: fnr",
    ),
    Case(
        "register-linkage-consent-type",
        [(STUDY, "  consent: consent_registers", "  consent: consent_date")],
        "register-linkage",
        "field 'consent_date' must be a yes/no field",
        file=STUDY,
        anchor="  consent: consent_date",
    ),
    Case(
        "register-linkage-stop-rule",
        [
            (
                STUDY,
                'consent_registers\n  stop:\n    - {reason: withdrawn, when: "[eos_status]',
                'consent_registers\n  stop:\n    - {reason: withdrawn, when: "[eos_stats]',
            )
        ],
        "register-linkage",
        "stop rule 'withdrawn' reads 'eos_stats', which does not exist",
        file=STUDY,
        anchor="[eos_stats]",
    ),
    Case(
        "form-name-mismatch",
        [(AUDIT, "form: audit\n", "form: audit2\n")],
        "load",
        "file defines form 'audit2', expected 'audit'",
        anchor="form: audit2",
    ),
]


def _matching(findings: list[Finding], case: Case, root: Path) -> list[Finding]:
    return [
        f
        for f in findings
        if f.rule == case.rule
        and case.message in f.message
        and f.severity == case.severity
        and f.origin is not None
        and f.origin.file == root / case.file
    ]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_rule_catches_broken_definition(library: Path, case: Case) -> None:
    for relative, old, new in case.edits:
        edit(library, relative, old, new)
    findings = lint_all(library)
    hits = _matching(findings, case, library)
    assert hits, "\n".join(str(f) for f in findings)
    lines = {f.origin.line for f in hits if f.origin}
    if case.anchor is not None:
        assert line_of(library / case.file, case.anchor) in lines, [str(f) for f in hits]
    else:
        assert all(isinstance(line, int) for line in lines)


def test_shipped_library_lints_clean(library: Path) -> None:
    findings = lint_all(library)
    assert [str(f) for f in findings if f.severity == "error"] == []
    # Without a site's overlay, the licensed instruments are the only warnings.
    warned = {f.origin.file.stem for f in findings if f.origin}
    assert {f.rule for f in findings} <= {"licensed-text"}
    assert warned == {"whoqol_bref", "eq5d5l", "ips25", "ips25_rater"}


def test_unused_form_is_reported(library: Path) -> None:
    extra = library / "forms" / "extra.yaml"
    extra.write_text((library / AUDIT).read_text().replace("form: audit", "form: extra"))
    findings = lint_all(library)
    assert [f.message for f in findings if f.rule == "unused"] == [
        "form 'extra' is not used by any study"
    ]


def test_one_project_can_be_linted_alone(library: Path) -> None:
    edit(library, "studies/ips_fidelity.yaml", "record_id: review_id", "record_id: site_id")
    assert [f for f in lint_all(library, ["hekta"]) if f.severity == "error"] == []
    assert [f.rule for f in lint_all(library, ["ips_fidelity"]) if f.severity == "error"] == [
        "record-id"
    ]


def test_project_loads_with_origins(library: Path) -> None:
    project = load_project("hekta", library)
    audit = project.instruments["audit"]
    field = next(f for f in audit.fields if f.name == "audit_3")
    assert field.origin() is not None
    assert field.origin().line == line_of(library / AUDIT, AUDIT_3.strip())


def test_several_findings_on_one_line_are_all_reported(library: Path) -> None:
    """A length warning must not hide a duplicate-name error on the same line (exit 1)."""
    long_name = "audit_consumption_frequency_x"  # 29 characters: over the Stata-friendly 26
    edit(library, AUDIT, "  - name: audit_2\n", f"  - name: {long_name}\n")
    file = edit(library, AUDIT, AUDIT_3, f"  - name: {long_name}\n")
    lines = file.read_text(encoding="utf-8").splitlines()
    line = [n for n, text in enumerate(lines, 1) if long_name in text][1]  # the duplicate
    on_line = {
        (f.severity, f.rule)
        for f in lint_all(library, ["hekta"])
        if f.origin and f.origin.file == file and f.origin.line == line
    }
    assert {("error", "field-name"), ("warning", "field-name-length")} <= on_line
