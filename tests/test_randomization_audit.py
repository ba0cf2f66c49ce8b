"""The allocation audit (randomization/audit.py) and its validation rule: each finding from
crafted logging and store rows, the files for the monitor, the rule in the problem list, and
the command end to end on the local server.

The crafted trial: four records, three at site 1 and one at site 2, randomized in the order
1, 2, 4, 3 against a table whose site 1 column is 1, 2, 2, 1 and site 2 column 2, 1. Each test
breaks one thing and lists exactly what the audit must find.
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from click.testing import Result as CliResult
from conftest import LIBRARY
from sandbox_support import Handle

from hekta_redcap.cli import cli
from hekta_redcap.core.settings import Settings
from hekta_redcap.data.store import Store
from hekta_redcap.definitions.study import load_project
from hekta_redcap.devtools.provision import provision
from hekta_redcap.devtools.sandbox.server import SandboxServer
from hekta_redcap.gateway import Gateway, Unavailable
from hekta_redcap.randomization.audit import RULES, Audit, AuditResult, check, write_audit
from hekta_redcap.randomization.design import design_of
from hekta_redcap.randomization.tables import Slot
from hekta_redcap.validation import randomization as rule
from hekta_redcap.validation import validate_store

PROJECT = load_project("hekta", LIBRARY)
DESIGN = design_of(PROJECT)
BASELINE = "baseline_arm_1"
DAY = "2026-03-02"
TABLE = [
    *(Slot(arm, ("1",), n) for n, arm in enumerate("1221", 2)),
    *(Slot(arm, ("2",), n) for n, arm in enumerate("21", 6)),
    *(Slot(arm, ("3",), n) for n, arm in enumerate("12", 8)),
]
SITES = {"1": "1", "2": "1", "3": "1", "4": "2"}
GROUPS = {"1": "1", "2": "2", "4": "2", "3": "2"}  # in the order randomized
IPS, SELF_HELP = "1 “IPS (Individual Placement and Support)”", "2 “Self-help package and course”"


def row(record: str, **values: str) -> dict[str, str]:
    """A baseline row as the store holds it: consent given, randomized on DAY."""
    return {
        "record_id": record,
        "redcap_event_name": BASELINE,
        "redcap_repeat_instrument": "",
        "redcap_repeat_instance": "",
        "redcap_data_access_group": "",
        "site": SITES.get(record, "1"),
        "consent_given": "1",
        "consent_date": "2026-03-01",
        "rand_date": DAY,
        "rand_group": GROUPS.get(record, ""),
        "rand_by": "AB",
    } | values


def entry(at: str, action: str, details: str, record: str = "") -> dict[str, str]:
    """A logging row as REDCap exports it."""
    fields = ("timestamp", "username", "action", "details", "record")
    return dict(zip(fields, (at, "nurse1", action, details, record), strict=True))


def created(record: str, at: str = "2026-03-01 09:00") -> dict[str, str]:
    details = f"record_id = '{record}', site = '{SITES[record]}', consent_given = '1'"
    return entry(at, f"Create record (API) {record}", details, record)


def randomized(record: str, at: str, group: str | None = None) -> dict[str, str]:
    code = GROUPS[record] if group is None else group
    return entry(at, f"Randomize record {record}", f"rand_group = '{code}'", record)


def newest_first(*entries: dict[str, str]) -> list[dict[str, str]]:
    """Entries written in the order they happened, listed as REDCap's log lists them."""
    return list(reversed(entries))


def clean_log(*more: dict[str, str]) -> list[dict[str, str]]:
    return newest_first(
        *(created(r) for r in SITES),
        randomized("1", f"{DAY} 10:00"),
        randomized("2", f"{DAY} 10:00"),
        randomized("4", f"{DAY} 10:05"),
        randomized("3", f"{DAY} 10:07"),
        *more,
    )


def audited(
    rows: list[dict[str, str]] | None = None,
    log: list[dict[str, str]] | None = None,
    table: list[Slot] | None = TABLE,
    synced: str | None = None,
) -> Audit:
    rows = [row(r) for r in SITES] if rows is None else rows
    return check(PROJECT, DESIGN, rows, clean_log() if log is None else log, table, synced=synced)


def found(audit: Audit) -> list[tuple[str, str, str, str, str]]:
    return [(f.record, f.rule, f.stratum, f.logged, f.text("en")) for f in audit.findings]


def test_a_clean_trial_has_no_findings_and_its_balance() -> None:
    audit = audited()
    assert found(audit) == []
    assert [(a.record, a.stratum, a.position, a.group) for a in audit.allocations] == [
        ("1", ("1",), 1, "1"),
        ("2", ("1",), 2, "2"),
        ("4", ("2",), 1, "2"),
        ("3", ("1",), 3, "2"),
    ]
    balance = [(b.stratum, dict(b.counts), b.total, b.used, b.slots) for b in audit.balance]
    assert balance == [
        (("1",), {"1": 1, "2": 2}, 3, 3, 4),
        (("2",), {"1": 0, "2": 1}, 1, 1, 2),
        (("3",), {"1": 0, "2": 0}, 0, 0, 2),
        (None, {"1": 1, "2": 3}, 4, 4, 8),
    ]


def test_a_group_other_than_the_tables_next_slot_is_an_allocation_mismatch() -> None:
    log = newest_first(
        *(created(r) for r in SITES),
        randomized("1", f"{DAY} 10:00"),
        randomized("2", f"{DAY} 10:00"),
        randomized("4", f"{DAY} 10:05", group="1"),  # slot 1 of site 2 is 2
        randomized("3", f"{DAY} 10:07"),
    )
    rows = [row(r, rand_group="1") if r == "4" else row(r) for r in SITES]
    assert found(audited(rows, log)) == [
        (
            "4",
            "allocation-mismatch",
            "site=2",
            f"{DAY} 10:05",
            f"Randomization no. 1 in stratum site=2 got group {IPS}, but slot 1 of the table "
            f"is group {SELF_HELP}.",
        )
    ]


def test_randomizations_in_one_minute_are_ordered_by_the_log_not_the_record() -> None:
    # 2 was randomized before 1 in the same minute: REDCap lists 1 above 2 (newest first)
    log = newest_first(
        *(created(r) for r in SITES),
        randomized("2", f"{DAY} 10:00", group="1"),
        randomized("1", f"{DAY} 10:00", group="2"),
        randomized("4", f"{DAY} 10:05"),
        randomized("3", f"{DAY} 10:07"),
    )
    rows = [row(r, rand_group={"1": "2", "2": "1"}.get(r, GROUPS[r])) for r in SITES]
    audit = audited(rows, log)
    assert found(audit) == []
    assert [(a.record, a.position) for a in audit.allocations[:2]] == [("2", 1), ("1", 2)]


def test_more_randomizations_than_slots_have_none() -> None:
    short = [s for s in TABLE if not (s.stratum == ("1",) and s.line >= 4)]  # site 1: 1, 2
    assert found(audited(table=short)) == [
        (
            "3",
            "allocation-mismatch",
            "site=1",
            f"{DAY} 10:07",
            "Randomization no. 3 in stratum site=1 has no slot in the table (the stratum has "
            "2 slots there).",
        )
    ]


def test_a_group_set_after_randomization_is_found_in_the_log() -> None:
    # changed on the data entry form, as REDCap's web form logs it
    log = clean_log(entry(f"{DAY} 14:30", "Update record 2", "rand_group = '1'", "2"))
    rows = [row(r, rand_group="1") if r == "2" else row(r) for r in SITES]
    assert found(audited(rows, log)) == [
        (
            "2",
            "group-changed",
            "site=1",
            f"{DAY} 14:30",
            f"“Allocated group” was set to {IPS} after the randomization (allocated: {SELF_HELP}).",
        )
    ]


def test_a_group_changed_outside_the_log_is_found_in_the_data() -> None:
    rows = [row(r, rand_group="1") if r == "3" else row(r) for r in SITES]
    assert found(audited(rows)) == [
        (
            "3",
            "group-changed",
            "site=1",
            f"{DAY} 10:07",
            f"“Allocated group” is now {IPS} but the module allocated {SELF_HELP}, and the "
            "change is not in the log.",
        )
    ]


def test_a_stratum_changed_later_keeps_the_others_slots() -> None:
    # record 1 moves to site 2 after its randomization: 2, 4 and 3 keep their slots
    log = clean_log(entry(f"{DAY} 15:00", "Update record 1", "site = '2'", "1"))
    rows = [row(r, site="2") if r == "1" else row(r) for r in SITES]
    audit = audited(rows, log)
    assert found(audit) == [
        (
            "1",
            "stratum-changed",
            "site=1",
            f"{DAY} 15:00",
            "Randomized in stratum site=1, but the stratum is now site=2.",
        )
    ]
    assert audit.balance[0].counts == {"1": 1, "2": 2}  # balance by the stratum randomized in


def test_strata_blank_at_randomization_or_now_are_incomplete() -> None:
    log = newest_first(
        *(created(r) for r in ("1", "2", "4")),
        entry("2026-03-01 09:00", "Create record (API) 3", "record_id = '3'", "3"),  # no site
        randomized("1", f"{DAY} 10:00"),
        randomized("2", f"{DAY} 10:00"),
        randomized("4", f"{DAY} 10:05"),
        randomized("3", f"{DAY} 10:07"),
        entry(f"{DAY} 11:00", "Update record 3", "site = '1'", "3"),
    )
    rows = [row(r, site="") if r == "2" else row(r) for r in SITES]
    assert found(audited(rows, log)) == [
        (
            "2",
            "strata-incomplete",
            "site=1",
            f"{DAY} 10:00",
            "“Treatment site” is blank now (randomized in stratum site=1).",
        ),
        (
            "3",
            "strata-incomplete",
            "",
            f"{DAY} 10:07",
            "Randomized without “Treatment site” filled in.",
        ),
    ]


def test_randomized_without_consent_now_or_before_the_consent_date() -> None:
    rows = [
        row("1", consent_given="0"),
        row("2", consent_date="2026-03-03"),
        *(row(r) for r in ("3", "4")),
    ]
    assert found(audited(rows)) == [
        (
            "1",
            "before-consent",
            "site=1",
            f"{DAY} 10:00",
            "Consent does not hold now ([consent_given] = '1').",
        ),
        (
            "2",
            "before-consent",
            "site=1",
            f"{DAY} 10:00",
            "“Date of consent” is 2026-03-03, after the randomization on 2026-03-02.",
        ),
    ]


def test_a_randomization_date_other_than_the_logged_one() -> None:
    rows = [row("1", rand_date="2026-03-01"), row("2", rand_date=""), row("3"), row("4")]
    assert found(audited(rows)) == [
        (
            "1",
            "date-mismatch",
            "site=1",
            f"{DAY} 10:00",
            "“Date of randomisation” is 2026-03-01 but REDCap logged the randomization on "
            "2026-03-02.",
        ),
        (
            "2",
            "date-mismatch",
            "site=1",
            f"{DAY} 10:00",
            "“Date of randomisation” is blank; REDCap logged the randomization on 2026-03-02.",
        ),
    ]


def test_a_group_without_a_randomization_was_not_randomized_by_the_module() -> None:
    details = "record_id = '5', site = '1', consent_given = '1', rand_group = '2'"
    log = clean_log(entry("2026-03-04 08:15", "Create record (API) 5", details, "5"))
    rows = [*(row(r) for r in SITES), row("5", rand_group="2", rand_date="2026-03-04")]
    assert found(audited(rows, log)) == [
        (
            "5",
            "not-randomized-by-module",
            "",
            "2026-03-04 08:15",
            f"“Allocated group” is {SELF_HELP} but REDCap's log holds no randomization of the "
            "record.",
        )
    ]


def test_the_record_column_may_be_missing_from_the_log() -> None:
    # older REDCap versions: the record only in the action
    bare = [{k: v for k, v in e.items() if k != "record"} for e in clean_log()]
    assert found(audited(log=bare)) == []
    assert [a.record for a in audited(log=bare).allocations] == ["1", "2", "4", "3"]


def test_a_deleted_record_keeps_its_slot() -> None:
    log = clean_log(entry("2026-03-05 09:00", "Delete record (API) 2", "record_id = '2'", "2"))
    rows = [row(r) for r in ("1", "3", "4")]
    audit = audited(rows, log)
    assert found(audit) == []
    assert (audit.deleted, audit.records) == (1, 4)
    assert audit.balance[0].counts == {"1": 1, "2": 1}  # 2 no longer counts, its slot does
    assert audit.balance[0].used == 3


def test_records_changed_after_the_sync_began_are_checked_against_the_log_only() -> None:
    # 3 was randomized after the store's sync began: the store does not have its group yet
    rows = [row(r, rand_group="", rand_date="") if r == "3" else row(r) for r in SITES]
    audit = audited(rows, synced=f"{DAY} 10:06")
    assert found(audit) == [] and audit.in_flux == ["3"]
    assert audited(synced=f"{DAY} 10:06").in_flux == []  # the store agrees: nothing to defer
    assert [(f.record, f.rule) for f in audited(rows).findings] == [
        ("3", "group-changed"),
        ("3", "date-mismatch"),
    ]


def test_without_a_table_only_the_table_free_checks_run() -> None:
    log = newest_first(
        *(created(r) for r in SITES),
        randomized("1", f"{DAY} 10:00", group="2"),
        randomized("2", f"{DAY} 10:00"),
        randomized("4", f"{DAY} 10:05"),
        randomized("3", f"{DAY} 10:07"),
    )
    rows = [row(r, rand_group="2") if r == "1" else row(r) for r in SITES]
    audit = audited(rows, log, table=None)
    assert found(audit) == []
    assert audit.balance[-1].slots is None


# -- the files for the monitor -------------------------------------------------------------------


def changed_group() -> Audit:
    """Record 3's group changed outside the log."""
    return audited([row(r, rand_group="1") if r == "3" else row(r) for r in SITES])


def read_csv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.reader(handle))


def test_the_files_and_the_summary(tmp_path: Path) -> None:
    table = tmp_path / "allocation_production.csv"
    table.write_text("rand_group,site\n1,1\n", encoding="utf-8")
    result = AuditResult(PROJECT, changed_group(), "en", table, "ab" * 32, "2026-03-06 12:00")
    result.files = write_audit(result, tmp_path / "audit")
    assert read_csv(tmp_path / "audit" / "audit.csv") == [
        ["record", "stratum", "rule", "detail", "logged"],
        [
            "3",
            "site=1",
            "group-changed",
            f"“Allocated group” is now {IPS} but the module allocated {SELF_HELP}, and the "
            "change is not in the log.",
            f"{DAY} 10:07",
        ],
    ]
    assert read_csv(tmp_path / "audit" / "balance.csv") == [
        ["stratum", "site", "rand_group=1", "rand_group=2", "total", "slots_used", "slots"],
        ["site=1", "1", "1", "2", "3", "3", "4"],
        ["site=2", "2", "0", "1", "1", "1", "2"],
        ["site=3", "3", "0", "0", "0", "0", "2"],
        ["all", "", "1", "3", "4", "4", "8"],
    ]
    out = tmp_path / "audit"
    assert result.text() == (
        "hekta: 4 randomization(s) audited, 1 finding(s) in 1 record(s)\n"
        "  group-changed: 1 (3)\n"
        "balance (1/2): site=1 1/2, site=2 0/1, site=3 0/0, all 1/3\n"
        f"report: {out / 'audit.html'} (findings: {out / 'audit.csv'})"
    )


def test_the_html_report_is_self_contained_with_headings_in_the_language(tmp_path: Path) -> None:
    table = tmp_path / "allocation_production.csv"
    table.write_text("rand_group,site\n1,1\n", encoding="utf-8")
    result = AuditResult(PROJECT, changed_group(), "nb", table, "ab" * 32, "2026-03-06 12:00")
    page = (write_audit(result, tmp_path)["html"]).read_text(encoding="utf-8")
    for fetching in ("<script", "<link", "src=", "@import", "url(", "href="):
        assert fetching not in page
    assert '<html lang="nb">' in page
    assert (
        '<h1>Revisjon av randomiseringen <span class="other">Randomization audit</span></h1>'
        in page
    )
    assert '<h3>Gruppe endret etter randomisering <span class="other">Group changed after' in page
    assert (
        "<td>3</td><td><code>site=1</code></td><td>«Tildelt gruppe» er nå 1 «IPS (Individuell "
        "jobbstøtte)», men modulen tildelte 2 «Selvhjelpspakke og kurs», og endringen står ikke "
        "i loggen.</td><td>2026-03-02 10:07</td>" in page
    )
    assert f"<code>allocation_production.csv</code>, SHA-256 <code>{'ab' * 32}</code>" in page
    clean = AuditResult(PROJECT, audited(), "en", table, "ab" * 32, "2026-03-06 12:00")
    page = (write_audit(clean, tmp_path / "clean")["html"]).read_text(encoding="utf-8")
    assert (
        '<p class="clean">No findings. Every randomization agrees with the table, the log and '
        "the data.</p>" in page
    )


# -- the validation rule -------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(Settings({"HEKTA_STORE": str(tmp_path / "store.sqlite3")})) as opened:
        yield opened


def test_the_rule_lists_each_finding_as_a_problem_on_the_target(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    moved = {"rand_group": "1", "redcap_data_access_group": "oslo"}
    rows = [row(r, **moved) if r == "3" else row(r) for r in SITES]
    monkeypatch.setattr(rule, "audit_store", lambda *_: audited(rows, table=None))
    problems = rule.randomization_problems(Settings({}), PROJECT, store, None)
    assert problems.drop(columns="digest").to_dict("records") == [
        {
            "record": "3",
            "event": BASELINE,
            "instance": "",
            "instrument": "randomization",
            "field": "rand_group",
            "value": "1",
            "rule": "group-changed",
            "severity": "error",
            "message_nb": "«Tildelt gruppe» er nå 1 «IPS (Individuell jobbstøtte)», men modulen "
            "tildelte 2 «Selvhjelpspakke og kurs», og endringen står ikke i loggen.",
            "message_en": f"“Allocated group” is now {IPS} but the module allocated "
            f"{SELF_HELP}, and the change is not in the log.",
            "dag": "oslo",
            "link": "",
        }
    ]
    assert problems["digest"].str.fullmatch("[0-9a-f]{32}").all()


def test_a_log_that_cannot_be_read_is_one_line_and_keeps_the_last_passs_problems(
    store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    earlier = {
        "record": "3",
        "event": BASELINE,
        "instance": "",
        "instrument": "randomization",
        "field": "rand_group",
        "value": "1",
        "rule": "group-changed",
        "severity": "error",
        "message_nb": "nb",
        "message_en": "en",
        "dag": "",
        "link": "",
        "digest": "d" * 32,
    }
    other = earlier | {"field": "audit_5", "rule": "skip-violation"}
    store.set_problems("hekta", [earlier, other])

    def unreadable(*_: object) -> Audit:
        raise Unavailable("REDCap at http://127.0.0.1:1/api/: export_logging failed 6 times")

    monkeypatch.setattr(rule, "audit_store", unreadable)
    with caplog.at_level(logging.INFO):
        problems = rule.randomization_problems(Settings({}), PROJECT, store, None)
    assert problems.to_dict("records") == [earlier]
    assert [r.getMessage() for r in caplog.records] == [
        'event=validate.randomization project=hekta outcome=kept reason="REDCap at '
        'http://127.0.0.1:1/api/: export_logging failed 6 times"'
    ]


# -- end to end on the local server ---------------------------------------------------------------

# site 1: 1, 2, 2, 1; site 2: 2, 1
E2E_TABLE = [["rand_group", "site"], ["1", "1"], ["2", "1"], ["2", "1"], ["1", "1"]]
E2E_TABLE += [["2", "2"], ["1", "2"]]
E2E_SITES = {"1": "1", "2": "1", "3": "2", "4": "1", "5": "2"}  # randomized in this order
E2E_GROUPS = {"1": "1", "2": "2", "3": "2", "4": "2", "5": "1"}  # the table's slots for them


@pytest.fixture
def trial(sandbox: SandboxServer, tmp_path: Path) -> tuple[Settings, Path, Handle]:
    """The trial project on the local server, the table loaded, records 1-5 consented and
    randomized through the module in order yesterday, with that day as their rand_date."""
    provision(sandbox, [PROJECT], tmp_path / "env")
    settings = Settings.load((tmp_path / "env",), {"HEKTA_STORE": str(tmp_path / "store.sqlite3")})
    table = tmp_path / "allocation_development.csv"
    with table.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(E2E_TABLE)
    loaded = CliRunner().invoke(
        cli,
        ["sandbox", "--data", str(sandbox.data_dir), "allocation", "-p", "hekta", str(table)],
        env=dict(settings.values),
    )
    assert loaded.exit_code == 0, loaded.output
    api = Gateway.open(settings, "hekta")
    consent = {"consent_given": "1", "consent_date": "2025-01-05", "consent_complete": "2"}
    api.import_records(
        [
            {"record_id": r, "redcap_event_name": BASELINE, "site": site, **consent}
            for r, site in E2E_SITES.items()
        ]
    )
    for record in E2E_SITES:
        assert api.randomize(record)["target_value"] == E2E_GROUPS[record]
    logged = api.export_logging(log_type="record")
    yesterday = {
        e["record"]: str(dt.date.fromisoformat(e["timestamp"][:10]) - dt.timedelta(days=1))
        for e in logged
        if e["action"].startswith("Randomize record")
    }
    api.import_records(
        [
            {"record_id": r, "redcap_event_name": BASELINE, "rand_date": day, "rand_by": "AB"}
            for r, day in yesterday.items()
        ]
    )
    # All this happened yesterday: REDCap logs to the minute, and what it logs in the minute a
    # sync begins may not be in the store yet, so the audit would check it against the log only.
    project_id = int(api.export_project_info()["project_id"])
    with sandbox.store.transaction() as conn:
        conn.execute(
            "UPDATE log SET ts = datetime(ts, '-1 day') WHERE project_id = ?", (project_id,)
        )
    return settings, table, Handle(sandbox, project_id, settings.token("hekta").reveal())


def audit_command(settings: Settings, table: Path, out: Path) -> CliResult:
    return CliRunner().invoke(
        cli,
        [
            "randomization",
            "audit",
            "-p",
            "hekta",
            "--table",
            str(table),
            "-o",
            str(out),
            "--lang",
            "en",
            "--definitions",
            str(LIBRARY),
        ],
        env=dict(settings.values),
    )


def test_the_command_passes_a_clean_trial_and_finds_a_tampered_group(
    trial: tuple[Settings, Path, Handle], tmp_path: Path
) -> None:
    settings, table, handle = trial
    clean = audit_command(settings, table, tmp_path / "clean")
    assert clean.exit_code == 0, clean.output
    assert clean.stdout.splitlines()[:2] == [
        "hekta: 5 randomization(s) audited, 0 finding(s) in 0 record(s)",
        "balance (1/2): site=1 1/2, site=2 1/1, site=3 0/0, all 2/3",
    ]
    # record 3's group changed straight in REDCap's database (as an administrator could)
    handle.put("3", {"rand_group": "1"}, BASELINE)
    tampered = audit_command(settings, table, tmp_path / "tampered")
    assert tampered.exit_code == 1, tampered.output
    assert tampered.stdout.splitlines()[:2] == [
        "hekta: 5 randomization(s) audited, 1 finding(s) in 1 record(s)",
        "  group-changed: 1 (3)",
    ]
    [[record, stratum, rule, detail, _]] = read_csv(tmp_path / "tampered" / "audit.csv")[1:]
    assert (record, stratum, rule, detail) == (
        "3",
        "site=2",
        "group-changed",
        f"“Allocated group” is now {IPS} but the module allocated {SELF_HELP}, and the change "
        "is not in the log.",
    )
    with Store.open(settings) as store:
        result = validate_store(settings, PROJECT, store)
        assert result is not None
        randomization = result.problems[result.problems["rule"].isin(RULES)]
        assert randomization[["record", "field", "rule"]].values.tolist() == [
            ["3", "rand_group", "group-changed"]
        ]
        opened = [p["record"] for p in store.open_problems("hekta") if p["rule"] in RULES]
        assert opened == ["3"]
