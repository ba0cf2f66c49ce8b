"""Synthetic register deliveries: deterministic, made from the cohort's stories, valid for
their layouts except the deliberate errors they list (which the import finds, and nothing
else), and written as registers deliver them; the cohort's synthetic identity numbers valid
only as synthetic."""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pyreadstat
import pytest
from conftest import LIBRARY
from stdnum.no import fodselsnummer

from hekta_redcap.core.identity import check_national_id
from hekta_redcap.core.settings import Settings
from hekta_redcap.definitions.registers import RegisterLayout, load_layouts
from hekta_redcap.definitions.study import Project, load_project
from hekta_redcap.devtools.cohort import Cohort, generate
from hekta_redcap.devtools.registers import (
    ERROR_KINDS,
    Delivery,
    deliveries,
    serials,
    synthetic_key,
    write_contacts,
)
from hekta_redcap.registers.delivery import (
    CHECKS,
    DUPLICATE,
    OUTSIDE,
    UNKNOWN_SERIAL,
    import_delivery,
)

TODAY = dt.date(2026, 11, 20)
UNTIL = dt.date(2026, 10, 31)
Cell = tuple[int, str, str]  # row, column, kind


@pytest.fixture(scope="module")
def project() -> Project:
    return load_project("hekta", LIBRARY)


@pytest.fixture(scope="module")
def layouts() -> dict[str, RegisterLayout]:
    return load_layouts(LIBRARY)


@pytest.fixture(scope="module")
def cohort(project: Project) -> Cohort:
    return generate(project, 200, seed=3, today=TODAY, synthetic_ids=True)


@pytest.fixture(scope="module")
def key(cohort: Cohort) -> dict[str, str]:
    return synthetic_key(cohort, seed=4)


@pytest.fixture(scope="module")
def made(
    cohort: Cohort, key: dict[str, str], layouts: dict[str, RegisterLayout]
) -> dict[str, Delivery]:
    return deliveries(cohort, key, UNTIL, seed=5, layouts=layouts)


def defects(delivery: Delivery, known: set[str]) -> Iterator[Cell]:
    """An independent reading of the rows against the layout: every cell that breaks it, by
    kind (the deliberate kinds, or what no delivery should hold)."""
    layout, (start, end) = delivery.layout, delivery.period
    seen: set[tuple[object, ...]] = set()
    for number, row in enumerate(delivery.rows, start=1):
        assert list(row) == [v.name for v in layout.variables]
        unique = tuple(row[c] for c in layout.unique)
        if unique in seen:
            yield number, "+".join(layout.unique), "duplicate"
        seen.add(unique)
        if row[layout.key] not in known:
            yield number, layout.key, "unknown-serial"
        for v in layout.variables:
            value = row[v.name]
            if value is None:
                if v.required:
                    yield number, v.name, "required"
                continue
            if v.type in ("date", "month"):
                assert isinstance(value, dt.date)
                low = start.replace(day=1) if v.type == "month" else start
                if v.name in layout.period and not low <= value <= end:
                    yield number, v.name, "outside-period"
            elif v.type == "code":
                if value not in {c.code for c in v.codes}:
                    yield number, v.name, "invalid-code"
            elif v.type == "number":
                assert isinstance(value, float)
                if (v.min is not None and value < v.min) or (v.max is not None and value > v.max):
                    yield number, v.name, "range"
            elif v.pattern is not None and not re.fullmatch(v.pattern, str(value)):
                yield number, v.name, "pattern"


def listed(delivery: Delivery) -> set[Cell]:
    return {(e.row, e.column, e.what) for e in delivery.errors}


def test_the_same_seed_gives_the_same_deliveries(
    cohort: Cohort, key: dict[str, str], made: dict[str, Delivery]
) -> None:
    again = deliveries(cohort, key, UNTIL, seed=5)
    assert all(again[s].rows == d.rows and again[s].errors == d.errors for s, d in made.items())
    other = deliveries(cohort, key, UNTIL, seed=6)
    assert all(other[s].rows != d.rows for s, d in made.items())


def test_one_delivery_per_layout_covering_the_panel(
    cohort: Cohort, key: dict[str, str], made: dict[str, Delivery], layouts: dict
) -> None:
    assert sorted(made) == sorted(layouts) == ["aa", "fd_trygd", "inntekt", "kpr", "npr"]
    first = min(cohort.stories[r].randomized for r in key)
    for delivery in made.values():
        start, end = delivery.period
        assert start.day == 1 and (first.year - start.year) * 12 + first.month - start.month == 24
        assert end == UNTIL
        assert delivery.period_text == f"{start.isoformat()}:{UNTIL.isoformat()}"


def test_rows_are_valid_except_the_listed_errors(
    made: dict[str, Delivery], key: dict[str, str]
) -> None:
    for delivery in made.values():
        found = list(defects(delivery, set(key.values())))
        assert len(found) == len(set(found))
        assert set(found) == listed(delivery), delivery.source
        assert sorted(e.what for e in delivery.errors) == sorted(ERROR_KINDS)
        assert len({e.row for e in delivery.errors}) == len(ERROR_KINDS)
        duplicate = next(e.row for e in delivery.errors if e.what == "duplicate")
        assert delivery.rows[duplicate - 1] == delivery.rows[duplicate - 2]


def test_without_errors_every_row_is_valid(cohort: Cohort, key: dict[str, str]) -> None:
    for delivery in deliveries(cohort, key, UNTIL, seed=5, errors=False).values():
        assert delivery.errors == []
        assert list(defects(delivery, set(key.values()))) == []


def test_only_those_who_consented_are_delivered(
    cohort: Cohort, key: dict[str, str], made: dict[str, Delivery]
) -> None:
    consented = {s.record for s in cohort.stories.values() if s.consents_to_registers}
    assert set(key) == consented and 0 < len(consented) < len(cohort.participants)
    assert len(set(key.values())) == len(key)
    for delivery in made.values():
        unknown = {e.row for e in delivery.errors if e.what == "unknown-serial"}
        serial_of = [r[delivery.layout.key] for n, r in enumerate(delivery.rows, 1)]
        kept = {s for n, s in enumerate(serial_of, 1) if n not in unknown}
        assert kept <= set(key.values())
    everyone = {r["lopenr"] for r in made["kpr"].rows} | {r["lopenr"] for r in made["npr"].rows}
    assert len(everyone & set(key.values())) > 0.9 * len(key)


def test_every_job_of_the_cohort_is_an_employment_relationship(
    cohort: Cohort, key: dict[str, str], made: dict[str, Delivery], layouts: dict
) -> None:
    aa = layouts["aa"]
    serial, employer, start = (aa.column(c) for c in ("serial", "employer", "start"))
    assert serial and employer and start
    relationships = {(r[serial], r[employer], r[start]) for r in made["aa"].rows}
    erroneous = {made["aa"].rows[e.row - 1][employer] for e in made["aa"].errors}
    missing = [
        job
        for record, lopenr in key.items()
        for job in cohort.stories[record].jobs
        if (lopenr, job.employer, job.start) not in relationships
    ]
    assert all(job.employer in erroneous for job in missing)  # a deliberate error changed it
    reported = sum(len(cohort.stories[r].jobs) for r in key)
    assert len(relationships) > reported  # and jobs no assessment asked about


def test_competitive_work_after_randomization_is_more_frequent_with_ips(
    cohort: Cohort, key: dict[str, str], made: dict[str, Delivery], layouts: dict
) -> None:
    """A relationship without a wage subsidy over it is competitive work (as the outcomes
    count it): more IPS participants than others have one after randomization."""
    aa, trygd = layouts["aa"], layouts["fd_trygd"]
    subsidy = next(
        c.code
        for c in trygd.variable(trygd.column("benefit_type") or "").codes
        if (c.label.en or "").startswith("Wage subsidy")
    )
    subsidised = {
        (r[trygd.key], r[trygd.column("start") or ""])
        for r in made["fd_trygd"].rows
        if r[trygd.column("benefit_type") or ""] == subsidy
    }
    start = aa.column("start") or ""
    working = Counter()
    arms = Counter(cohort.stories[r].ips for r in key)
    record_of = {lopenr: r for r, lopenr in key.items()}
    for row in made["aa"].rows:
        record = record_of.get(str(row[aa.key]))
        if record is None or (row[aa.key], row[start]) in subsidised:
            continue
        story = cohort.stories[record]
        if isinstance(row[start], dt.date) and row[start] > story.randomized:
            working[story.ips, record] += 1
    share = {ips: sum(1 for i, _ in working if i == ips) / arms[ips] for ips in (True, False)}
    assert share[True] > 1.25 * share[False]


def test_nothing_after_a_death(cohort: Cohort, key: dict[str, str]) -> None:
    """Five participants die 200 days after randomization: no register holds anything of
    theirs after that day, and a job they had then ends on it."""
    dead = {r: cohort.stories[r].randomized + dt.timedelta(days=200) for r in list(key)[:5]}
    stories = {
        r: replace(s, fate="Deceased", fate_date=dead[r]) if r in dead else s
        for r, s in cohort.stories.items()
    }
    made = deliveries(replace(cohort, stories=stories), key, UNTIL, seed=5, errors=False)
    died = {key[r]: day for r, day in dead.items()}
    for delivery in made.values():
        layout = delivery.layout
        for row in delivery.rows:
            day = died.get(str(row[layout.key]))
            if day is not None:
                dates = [row[v.name] for v in layout.variables if v.type in ("date", "month")]
                assert all(d is None or (isinstance(d, dt.date) and d <= day) for d in dates)
    assert sum(str(r[made["kpr"].layout.key]) in died for r in made["kpr"].rows) > 5
    aa = made["aa"].layout
    ends = [r[aa.column("end") or ""] for r in made["aa"].rows if r[aa.key] in died]
    assert None not in ends


def test_specialist_care_is_mostly_substance_use_treatment(
    made: dict[str, Delivery], layouts: dict
) -> None:
    npr = layouts["npr"]
    specialty, diagnosis = npr.column("specialty") or "", npr.column("diagnosis") or ""
    by_label = {c.code: c.label.en or "" for c in npr.variable(specialty).codes}
    rows = made["npr"].rows
    labels = Counter(by_label.get(str(r[specialty]), "") for r in rows)
    assert labels.most_common(1)[0][0].startswith("Substance")
    assert sum(n for label, n in labels.items() if label.startswith(("Adult", "Somatic"))) > 0
    treated = [r for r in rows if by_label.get(str(r[specialty]), "").startswith("Substance")]
    assert all(re.fullmatch(r"F1\d\.\d", str(r[diagnosis])) for r in treated)


def test_synthetic_identity_numbers_are_valid_only_as_synthetic(cohort: Cohort) -> None:
    """Check digits valid (python-stdnum's), 80 added to the month, so that stdnum refuses
    them as anyone's; the same number with the month taken back is not valid either."""
    for story in cohort.stories.values():
        number = story.national_id
        assert not fodselsnummer.is_valid(number)
        assert fodselsnummer.calc_check_digit1(number[:9]) == number[9]
        assert fodselsnummer.calc_check_digit2(number[:10]) == number[10]
        month = int(number[2:4]) - 80
        assert 1 <= month <= 12
        real = f"{number[:2]}{month:02d}{number[4:9]}"
        birth = fodselsnummer.get_birth_date(real + "00")
        assert dt.date(1950, 1, 1) < birth < TODAY
        assert not fodselsnummer.is_valid(number[:2] + f"{month:02d}" + number[4:])


def test_the_toolkit_accepts_them_only_when_synthetic_numbers_are_allowed(cohort: Cohort) -> None:
    for story in cohort.stories.values():
        allowed = check_national_id(story.national_id, allow_synthetic=True)
        assert allowed.valid and allowed.kind == "synthetic"
        assert check_national_id(story.national_id).reason == "synthetic"


def test_the_default_cohort_keeps_its_invalid_identity_numbers(project: Project) -> None:
    plain = generate(project, 20, seed=3, today=TODAY, errors=False)
    for story in plain.stories.values():
        assert fodselsnummer.calc_check_digit1(story.national_id[:9]) != story.national_id[9]


def test_csv_is_written_as_registers_deliver_it(made: dict[str, Delivery], tmp_path: Path) -> None:
    delivery = made["inntekt"]
    path = delivery.write(tmp_path / "inntekt.csv", encoding="latin-1")
    raw = path.read_bytes()
    assert b"\r\n" in raw
    with path.open(encoding="latin-1", newline="") as file:
        lines = list(csv.reader(file, delimiter=";"))
    layout = delivery.layout
    assert lines[0] == [v.name for v in layout.variables]
    assert len(lines) == len(delivery.rows) + 1
    month, amount = layout.column("month") or "", layout.column("amount") or ""
    header = lines[0]
    values = [dict(zip(header, line, strict=True)) for line in lines[1:]]
    assert all(re.fullmatch(r"\d{4}-\d{2}", v[month]) for v in values)
    assert any("," in v[amount] for v in values) and not any("." in v[amount] for v in values)
    for error in delivery.errors:  # the line a reader reports is the row after the header
        row = delivery.rows[error.row - 1]
        assert lines[error.line - 1][0] == row[layout.key]
    npr = made["npr"].write(tmp_path / "npr.csv", delimiter=",")
    text = npr.read_text(encoding="utf-8")
    assert re.search(r"\d{2}\.\d{2}\.\d{4}", text) and text.startswith("lopenr,")


@pytest.mark.parametrize("suffix", [".dta", ".sav", ".xpt"])
def test_statistics_files_through_pyreadstat(
    made: dict[str, Delivery], tmp_path: Path, suffix: str
) -> None:
    delivery = made["aa"]
    layout = delivery.layout
    path = delivery.write(tmp_path / f"aa{suffix}")
    readers = {
        ".dta": pyreadstat.read_dta,
        ".sav": pyreadstat.read_sav,
        ".xpt": pyreadstat.read_xport,
    }
    frame, meta = readers[suffix](str(path))
    assert list(frame.columns) == [v.name for v in layout.variables]
    assert len(frame) == len(delivery.rows)
    assert meta.column_labels[0] == layout.variables[0].label.nb
    start = layout.column("start") or ""
    assert frame[start].tolist() == [r[start] for r in delivery.rows]


def test_a_write_of_another_format_is_refused(made: dict[str, Delivery], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="or one of"):
        made["kpr"].write(tmp_path / "kpr.sas7bdat")


def test_deliveries_follow_a_layout_a_data_manager_adapted(
    cohort: Cohort, key: dict[str, str], layouts: dict[str, RegisterLayout]
) -> None:
    """A renamed column: the rows, the order and the errors follow the layout."""
    npr = layouts["npr"]
    old = npr.column("start") or ""
    renamed = [
        v.model_copy(update={"name": "innskrdato"}) if v.name == old else v for v in npr.variables
    ]
    adapted = npr.model_copy(update={"variables": renamed, "period": ["innskrdato"]})
    delivery = deliveries(cohort, key, UNTIL, seed=5, layouts={"npr": adapted})["npr"]
    assert "innskrdato" in delivery.rows[0] and old not in delivery.rows[0]
    assert {(e.column, e.what) for e in delivery.errors} >= {("innskrdato", "outside-period")}
    assert set(defects(delivery, set(key.values()))) == listed(delivery)


@pytest.mark.parametrize(
    ("source", "file", "encoding"),
    [
        ("aa", "aa.csv", "utf-8"),
        ("inntekt", "inntekt.csv", "utf-8-sig"),
        ("fd_trygd", "fd_trygd.dta", ""),
        ("npr", "npr.csv", "latin-1"),
        ("kpr", "kpr.sav", ""),
    ],
)
def test_the_import_finds_exactly_the_deliberate_errors(
    made: dict[str, Delivery],
    key: dict[str, str],
    tmp_path: Path,
    source: str,
    file: str,
    encoding: str,
) -> None:
    """Each listed error is a row the import refuses, at its line (a CSV file's) or row, for
    the reason of its kind; every other row is kept."""
    reasons = {
        "unknown-serial": UNKNOWN_SERIAL,
        "invalid-code": CHECKS["isin"][0],
        "outside-period": OUTSIDE,
        "duplicate": DUPLICATE,
    }
    key_file = tmp_path / "linkage-key.csv"
    with key_file.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, delimiter=";")
        writer.writerows([("record_id", "lopenr"), *key.items()])
    delivery = made[source]
    path = delivery.write(tmp_path / file, encoding=encoding or "utf-8")
    settings = Settings.load((), {"HEKTA_REGISTER_DIR": str(tmp_path / "store")})
    imported = import_delivery(
        settings, LIBRARY, source, path, key_file, delivery.period_text, None
    )
    expected = {
        (e.line if path.suffix == ".csv" else e.row, e.column, reasons[e.what])
        for e in delivery.errors
    }
    assert {(p.line, p.column, p.reason) for p in imported.problems} == expected
    assert imported.rejected == len(ERROR_KINDS)
    assert imported.kept == len(delivery.rows) - len(ERROR_KINDS)


def test_a_population_of_contacts_for_the_benchmark(
    layouts: dict[str, RegisterLayout], tmp_path: Path
) -> None:
    kpr = layouts["kpr"]
    people = serials(50, seed=2)
    period = (dt.date(2020, 1, 1), dt.date(2024, 12, 31))
    path = write_contacts(kpr, people, 2_500, period, tmp_path / "kpr.csv", seed=3, chunk=1_000)
    with path.open(encoding="utf-8", newline="") as file:
        lines = list(csv.reader(file, delimiter=";"))
    assert lines[0] == [v.name for v in kpr.variables]
    rows = [dict(zip(lines[0], line, strict=True)) for line in lines[1:]]
    assert len(rows) == 2_500
    assert {r[kpr.key] for r in rows} <= set(people)
    ids = [r[c] for r in rows for c in kpr.unique if c != kpr.key]
    assert len(set(ids)) == len(ids)
    start = kpr.column("start") or ""
    days = {dt.datetime.strptime(r[start], "%d.%m.%Y").date() for r in rows}
    assert min(days) >= period[0] and max(days) <= period[1]
    for v in kpr.variables:
        if v.type == "code":
            assert {r[v.name] for r in rows} <= {c.code for c in v.codes}
    diagnosis = kpr.column("diagnosis") or ""
    assert "" in {r[diagnosis] for r in rows}
    again = write_contacts(kpr, people, 2_500, period, tmp_path / "again.csv", seed=3, chunk=1_000)
    assert again.read_bytes() == path.read_bytes()
