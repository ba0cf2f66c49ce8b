"""Records on the local REDCap-compatible server: export, import, delete, rename and
generateNextRecordName, driven through PyCap (and `requests` for status codes, raw bodies and
REDCapR's comma-joined arrays), on the classic and the longitudinal test projects.

Expected values come from REDCap's observed behaviour (written out here) and the test dictionaries
in sandbox_support, never from the server's own output."""

from __future__ import annotations

import datetime as dt
import io
import json
from typing import Any

import pandas as pd
import pytest
import requests
from redcap import RedcapError
from sandbox_support import Handle, seed_project

from hekta_redcap.devtools.sandbox.server import SandboxServer

CLASSIC_COLUMNS = [
    "record_id",
    "first_name",
    "dob",
    "age",
    "weight",
    "email",
    "sex",
    "colors___1",
    "colors___2",
    "colors____99",  # code -99, sanitised
    "consent",
    "notes",
    "bmi",
    "upload",
    "demographics_complete",
    "fav",
    "visit_date",
    "followup_complete",
]
LONGITUDINAL_COLUMNS = [
    "record_id",
    "redcap_event_name",
    "redcap_repeat_instrument",
    "redcap_repeat_instance",
    "enroll_date",
    "group",
    "enrollment_complete",
    "weight",
    "bp",
    "vitals_complete",
    "med_name",
    "med_dose",
    "medications_complete",
]
FIRST_EVENT = {"classic": None, "longitudinal": "baseline_arm_1"}  # where `weight` is in both
FORMAT_ERROR = (
    "The value you provided could not be validated because it does not follow the expected "
    "format. Please try again."
)


def post(handle: Handle, token: str | None = None, **data: Any) -> requests.Response:
    """A raw API call (for bodies and status codes PyCap does not show)."""
    return requests.post(handle.url, data={"token": token or handle.token, **data}, timeout=30)


def export(handle: Handle, **data: Any) -> requests.Response:
    return post(handle, content="record", action="export", **data)


def act(handle: Handle, action: str, **data: Any) -> requests.Response:
    """A record delete or rename answered in JSON."""
    return post(handle, content="record", action=action, returnFormat="json", **data)


def at(event: str, instrument: str = "", instance: str = "", **values: str) -> dict[str, str]:
    """A longitudinal import row of record 1 (repeat columns only when given)."""
    row = {"record_id": "1", "redcap_event_name": event}
    row |= {"redcap_repeat_instrument": instrument} if instrument else {}
    row |= {"redcap_repeat_instance": instance} if instance else {}
    return row | values


def sql(handle: Handle, statement: str, *args: Any) -> list[tuple[Any, ...]]:
    with handle.server.store.transaction() as conn:
        return [tuple(r) for r in conn.execute(statement, args).fetchall()]


def add_dag(handle: Handle, unique_name: str, name: str) -> int:
    with handle.server.store.transaction() as conn:
        cursor = conn.execute(
            "INSERT INTO dag (project_id, name, unique_name) VALUES (?, ?, ?)",
            (handle.project_id, name, unique_name),
        )
        return int(cursor.lastrowid or 0)


def dag_user(handle: Handle, username: str, dag_id: int) -> str:
    """A second user of the project, in a data access group."""
    token = handle.add_user(username)
    sql(handle, "INSERT INTO user_dag VALUES (?, ?, ?)", handle.project_id, username, dag_id)
    return token


def record_dag(handle: Handle, record: str) -> int | None:
    return sql(
        handle,
        "SELECT dag_id FROM record WHERE project_id = ? AND record = ?",
        handle.project_id,
        record,
    )[0][0]


def places(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """(record, event, repeat instrument, instance) of exported longitudinal rows."""
    return [tuple(r[c] for c in LONGITUDINAL_COLUMNS[:4]) for r in rows]


def seed_longitudinal(h: Handle) -> None:
    """Two records in arm 1 (one with medication instances and visit-2 instances) and one in
    arm 2, put in an order unlike REDCap's export order."""
    h.put("10", {"weight": "80"}, event="visit_2_arm_1", instance=2)
    h.put("10", {"med_name": "B", "medications_complete": "2"}, "visit_1_arm_1", "medications", 2)
    h.put(
        "10", {"med_name": "A"}, event="visit_1_arm_1", repeat_instrument="medications", instance=1
    )
    h.put("10", {"bp": "120"}, event="visit_1_arm_1")
    h.put("10", {"enroll_date": "2024-01-05", "group": "1"}, event="baseline_arm_1")
    h.put("2", {"enroll_date": "2024-02-01", "group": "2"}, event="baseline_arm_1")
    h.put("2", {"weight": "70"}, event="visit_2_arm_1", instance=1)
    h.put("3", {"group": "1"}, event="baseline_arm_2")


# -- export: columns, rows, types ---------------------------------------------------------------


def test_classic_export_follows_project_order_and_fills_checkboxes_and_status(
    classic: Handle,
) -> None:
    classic.put(
        "1", {"first_name": "Ann", "sex": "2", "colors___2": "1", "demographics_complete": "2"}
    )
    classic.put("2", {"fav": "b"})
    rows = classic.pycap().export_records()
    assert [list(r) for r in rows] == [CLASSIC_COLUMNS, CLASSIC_COLUMNS]
    ann, second = rows
    assert (ann["record_id"], ann["first_name"], ann["sex"]) == ("1", "Ann", "2")
    assert (ann["colors___1"], ann["colors___2"], ann["colors____99"]) == ("0", "1", "0")
    assert (ann["demographics_complete"], ann["followup_complete"]) == ("2", "0")
    assert (second["fav"], second["first_name"], second["consent"]) == ("b", "", "")
    assert all(isinstance(v, str) for row in rows for v in row.values())


def test_longitudinal_rows_sorted_sparse_and_typed(longitudinal: Handle) -> None:
    seed_longitudinal(longitudinal)
    rows = longitudinal.pycap().export_records()
    assert list(rows[0]) == LONGITUDINAL_COLUMNS
    assert places(rows) == [
        ("2", "baseline_arm_1", "", ""),
        ("2", "visit_2_arm_1", "", 1),
        ("3", "baseline_arm_2", "", ""),
        ("10", "baseline_arm_1", "", ""),
        ("10", "visit_1_arm_1", "", ""),
        ("10", "visit_1_arm_1", "medications", 1),
        ("10", "visit_1_arm_1", "medications", 2),
        ("10", "visit_2_arm_1", "", 2),
    ]
    by_place = dict(zip(places(rows), rows, strict=True))
    med = by_place[("10", "visit_1_arm_1", "medications", 2)]
    # a repeat row holds only its instrument's columns; other forms (and their status) blank
    assert (med["med_name"], med["medications_complete"]) == ("B", "2")
    assert (med["bp"], med["vitals_complete"], med["enrollment_complete"]) == ("", "", "")
    visit1 = by_place[("10", "visit_1_arm_1", "", "")]
    # the base row of visit 1 has vitals only: medications repeat there, enrollment is absent
    assert (visit1["bp"], visit1["vitals_complete"]) == ("120", "0")
    assert (visit1["medications_complete"], visit1["enrollment_complete"]) == ("", "")
    repeat_event = by_place[("10", "visit_2_arm_1", "", 2)]
    assert (repeat_event["weight"], repeat_event["vitals_complete"]) == ("80", "0")
    types = {type(v) for r in rows for k, v in r.items() if k != "redcap_repeat_instance"}
    assert types == {str}


def test_columns_follow_the_project_not_the_request(classic: Handle) -> None:
    classic.put("1", {"visit_date": "2024-03-01", "colors___1": "1", "dob": "2000-01-01"})
    indexed = export(
        classic,
        format="json",
        **{"fields[0]": "visit_date", "fields[1]": "colors", "fields[2]": "record_id"},
    )
    comma_joined = export(classic, format="json", fields="visit_date,colors,record_id")
    expected = ["record_id", "colors___1", "colors___2", "colors____99", "visit_date"]
    assert list(indexed.json()[0]) == list(comma_joined.json()[0]) == expected


def test_fields_and_forms_are_a_union(classic: Handle) -> None:
    classic.put("1", {"first_name": "Ann", "fav": "a"})
    rows = classic.pycap().export_records(fields=["first_name"], forms=["followup"])
    assert list(rows[0]) == ["record_id", "first_name", "fav", "visit_date", "followup_complete"]


def test_pseudo_columns_only_with_the_record_id(longitudinal: Handle) -> None:
    seed_longitudinal(longitudinal)
    reply = export(longitudinal, format="json", fields="weight")
    rows = reply.json()
    # rows without a weight are not exported when only data columns are asked for
    assert rows == [{"weight": "70"}, {"weight": "80"}]
    csv = export(longitudinal, format="csv", fields="bp,record_id").text
    assert csv.splitlines()[0] == (
        "record_id,redcap_event_name,redcap_repeat_instrument,redcap_repeat_instance,bp"
    )


def test_record_id_only_row_exists_in_its_event(longitudinal: Handle) -> None:
    project = longitudinal.pycap()
    rows = [
        {"record_id": "1", "redcap_event_name": "baseline_arm_1"},
        {"record_id": "1", "redcap_event_name": "visit_1_arm_1"},
    ]
    assert project.import_records(rows) == {"count": 1}
    exported = project.export_records()
    assert places(exported) == [("1", "baseline_arm_1", "", ""), ("1", "visit_1_arm_1", "", "")]
    assert exported[1]["vitals_complete"] == "0"


@pytest.mark.parametrize("kind", ["classic", "longitudinal"])
def test_empty_export_in_each_format(sandbox: SandboxServer, kind: str) -> None:
    h = seed_project(sandbox, kind)
    project = h.pycap()
    assert project.export_records() == []
    assert project.export_records(format_type="csv") == ""
    assert project.export_records(format_type="df").empty
    reply = export(h, format="csv")
    assert (reply.status_code, reply.text) == (200, "")
    xml = export(h, format="xml").text
    assert "<records>" in xml and "<item>" not in xml


def test_records_filter_accepts_both_array_styles(classic: Handle) -> None:
    for record in ("1", "2", "10"):
        classic.put(record, {"first_name": f"N{record}"})
    pycap_rows = classic.pycap().export_records(records=["10", "2", "404"])
    comma_rows = export(classic, format="json", records="10,2").json()
    assert [r["record_id"] for r in pycap_rows] == ["2", "10"]
    assert [r["record_id"] for r in comma_rows] == ["2", "10"]


def test_events_filter(longitudinal: Handle) -> None:
    seed_longitudinal(longitudinal)
    rows = longitudinal.pycap().export_records(events=["visit_2_arm_1", "baseline_arm_2"])
    assert places(rows) == [
        ("2", "visit_2_arm_1", "", 1),
        ("3", "baseline_arm_2", "", ""),
        ("10", "visit_2_arm_1", "", 2),
    ]


@pytest.mark.parametrize(
    ("parameter", "value", "message"),
    [
        (
            "fields",
            "weight,nope",
            "The following values in the parameter \"fields\" are not valid: 'nope'",
        ),
        ("forms", "nope", "The following values in the parameter \"forms\" are not valid: 'nope'"),
        (
            "events",
            "visit_9_arm_1",
            "The following values in the parameter \"events\" are not valid: 'visit_9_arm_1'",
        ),
    ],
)
def test_unknown_fields_forms_events_are_refused(
    longitudinal: Handle, parameter: str, value: str, message: str
) -> None:
    reply = export(longitudinal, format="json", **{parameter: value})
    assert (reply.status_code, reply.json()) == (400, {"error": message})
    with pytest.raises(RedcapError, match="are not valid"):
        longitudinal.pycap().export_records(**{parameter: value.split(",")})


def test_odm_and_bad_options_are_refused(classic: Handle) -> None:
    odm = export(classic, format="odm", returnFormat="json")
    assert odm.status_code == 400 and "project_xml" in odm.json()["error"]
    combined = export(classic, format="json", combineCheckboxOptions="true")
    assert combined.status_code == 400
    bad_type = export(classic, format="csv", type="wide")
    assert (bad_type.status_code, bad_type.text) == (
        400,
        'ERROR: The value of the parameter "type" is not valid',
    )


# -- export: labels, headers, options -----------------------------------------------------------


def test_labels_and_label_headers_in_classic_csv(classic: Handle) -> None:
    checked = {"colors___1": "1", "colors____99": "1"}
    classic.put("1", {"sex": "2", "consent": "1", "fav": "b", "demographics_complete": "2"})
    classic.put("1", checked)
    project = classic.pycap()
    text = project.export_records(
        format_type="csv",
        fields=["record_id", "sex", "colors", "consent", "fav"],
        raw_or_label="label",
        raw_or_label_headers="label",
    )
    assert text == (
        '"Study ID",Sex,"Colours (choice=Red)","Colours (choice=Green)",'
        '"Colours (choice=Unknown)","Consent given","Favourite fruit"\n'
        "1,Female,Checked,Unchecked,Checked,Yes,Banana\n"
    )
    checkbox_labels = project.export_records(
        forms=["demographics"], raw_or_label="label", export_checkbox_labels=True
    )[0]
    assert [checkbox_labels[c] for c in ("colors___1", "colors___2", "colors____99")] == [
        "Red",
        "",
        "Unknown",
    ]
    assert checkbox_labels["demographics_complete"] == "Complete"
    header = project.export_records(
        format_type="csv", forms=["followup"], raw_or_label_headers="label"
    ).splitlines()[0]
    assert header == '"Study ID","Favourite fruit","Visit date",Complete?'


def test_event_and_instrument_labels(longitudinal: Handle) -> None:
    seed_longitudinal(longitudinal)
    df = longitudinal.pycap().export_records(
        format_type="df",
        records=["10"],
        raw_or_label="label",
        df_kwargs={"index_col": None, "dtype": str, "keep_default_na": False},
    )
    labelled = list(
        zip(df["redcap_event_name"], df["redcap_repeat_instrument"], df["group"], strict=True)
    )
    assert labelled == [
        ("Baseline (Arm 1: Drug A)", "", "Drug"),
        ("Visit 1 (Arm 1: Drug A)", "", ""),
        ("Visit 1 (Arm 1: Drug A)", "Medications", ""),
        ("Visit 1 (Arm 1: Drug A)", "Medications", ""),
        ("Visit 2 (Arm 1: Drug A)", "", ""),
    ]
    assert list(df["medications_complete"]) == ["", "", "Incomplete", "Complete", ""]


def test_blank_for_gray_form_status(classic: Handle) -> None:
    classic.put("1", {"first_name": "Ann", "demographics_complete": "0"})
    project = classic.pycap()
    default = project.export_records()[0]
    blank = project.export_records(export_blank_for_gray_form_status=True)[0]
    assert (default["demographics_complete"], default["followup_complete"]) == ("0", "0")
    # a saved "Incomplete" stays 0; only the never-saved form is blank
    assert (blank["demographics_complete"], blank["followup_complete"]) == ("0", "")


def test_csv_delimiter_and_decimal_character(classic: Handle) -> None:
    classic.put("1", {"first_name": "Ann Lee", "weight": "70.5"})
    options = {"csvDelimiter": ";", "decimalCharacter": ","}
    text = export(classic, format="csv", fields="record_id,first_name,weight", **options).text
    assert text == 'record_id;first_name;weight\n1;"Ann Lee";70,5\n'
    tabbed = export(classic, format="csv", fields="record_id,weight", csvDelimiter="tab").text
    assert tabbed == "record_id\tweight\n1\t70.5\n"


def test_xml_export(classic: Handle) -> None:
    classic.put("1", {"first_name": "A&B"})
    body = export(classic, format="xml", fields="record_id,first_name").text
    assert body.startswith('<?xml version="1.0" encoding="UTF-8" ?>')
    assert (
        "<item><record_id><![CDATA[1]]></record_id><first_name><![CDATA[A&B]]></first_name>"
        "</item>" in body
    )


def test_file_field_exports_name_flat_and_doc_id_in_eav(classic: Handle) -> None:
    with classic.server.store.transaction() as conn:
        doc_id = conn.execute(
            "INSERT INTO document (project_id, name, mime, content, created) "
            "VALUES (?, 'scan.pdf', 'application/pdf', x'25504446', '2026-01-01 12:00:00')",
            (classic.project_id,),
        ).lastrowid
    classic.put("1", {"upload": str(doc_id)})
    project = classic.pycap()
    assert project.export_records(fields=["upload"])[0]["upload"] == "scan.pdf"
    eav = project.export_records(record_type="eav", fields=["upload"])
    assert eav == [
        {"record": "1", "field_name": "record_id", "value": "1"},
        {"record": "1", "field_name": "upload", "value": str(doc_id)},
    ]


def test_classic_eav(classic: Handle) -> None:
    classic.put("1", {"first_name": "Ann", "colors___2": "1", "colors____99": "1", "sex": "1"})
    classic.put("2", {"fav": "a", "followup_complete": "1"})
    project = classic.pycap()
    assert project.export_records(record_type="eav") == [
        {"record": "1", "field_name": "record_id", "value": "1"},
        {"record": "1", "field_name": "first_name", "value": "Ann"},
        {"record": "1", "field_name": "sex", "value": "1"},
        {"record": "1", "field_name": "colors", "value": "2"},
        {"record": "1", "field_name": "colors", "value": "-99"},
        {"record": "2", "field_name": "record_id", "value": "2"},
        {"record": "2", "field_name": "fav", "value": "a"},
        {"record": "2", "field_name": "followup_complete", "value": "1"},
    ]
    csv = project.export_records(record_type="eav", format_type="csv", records=["2"])
    assert csv == "record,field_name,value\n2,record_id,2\n2,fav,a\n2,followup_complete,1\n"


def test_longitudinal_eav_carries_event_and_repeat_columns(longitudinal: Handle) -> None:
    seed_longitudinal(longitudinal)
    rows = longitudinal.pycap().export_records(record_type="eav", records=["2"])
    stored = [
        ("record_id", "2", "baseline_arm_1", ""),
        ("enroll_date", "2024-02-01", "baseline_arm_1", ""),
        ("group", "2", "baseline_arm_1", ""),
        ("record_id", "2", "visit_2_arm_1", 1),
        ("weight", "70", "visit_2_arm_1", 1),
    ]
    assert rows == [
        {
            "record": "2",
            "field_name": name,
            "value": value,
            "redcap_event_name": event,
            "redcap_repeat_instrument": "",
            "redcap_repeat_instance": instance,
        }
        for name, value, event, instance in stored
    ]


@pytest.mark.parametrize("kind", ["classic", "longitudinal"])
def test_data_access_group_column(sandbox: SandboxServer, kind: str) -> None:
    h = seed_project(sandbox, kind)
    dag_id = add_dag(h, "site_a", "Site A")
    h.put("1", {"weight": "70.1"}, event=FIRST_EVENT[kind], dag_id=dag_id)
    h.put("2", {"weight": "70.2"}, event=FIRST_EVENT[kind])
    project = h.pycap()
    rows = project.export_records(fields=["weight"], export_data_access_groups=True)
    place = LONGITUDINAL_COLUMNS[1:4] if kind == "longitudinal" else []
    assert list(rows[0]) == ["record_id", *place, "redcap_data_access_group", "weight"]
    assert [r["redcap_data_access_group"] for r in rows] == ["site_a", ""]
    labelled = project.export_records(
        fields=["weight"], export_data_access_groups=True, raw_or_label="label"
    )
    assert labelled[0]["redcap_data_access_group"] == "Site A"
    assert "redcap_data_access_group" not in project.export_records()[0]


def test_survey_fields(sandbox: SandboxServer) -> None:
    h = seed_project(sandbox, "classic", surveys=("demographics",))
    h.put("1", {"first_name": "Ann", "demographics_timestamp": "2026-01-02 10:00:00"})
    rows = h.pycap().export_records(export_survey_fields=True)
    assert list(rows[0])[:4] == [
        "record_id",
        "redcap_survey_identifier",
        "demographics_timestamp",
        "first_name",
    ]
    assert rows[0]["demographics_timestamp"] == "2026-01-02 10:00:00"
    assert "followup_timestamp" not in rows[0]  # not a survey
    only_data = export(h, format="json", fields="first_name", exportSurveyFields="true").json()
    assert only_data == [{"first_name": "Ann"}]


# -- export: filterLogic and date range ---------------------------------------------------------


def test_filter_logic_classic(classic: Handle) -> None:
    classic.put("1", {"sex": "2", "age": "40", "colors____99": "1"})
    classic.put("2", {"sex": "1", "age": "9"})
    classic.put("3", {"sex": "2", "age": "35"})
    project = classic.pycap()

    def ids(logic: str) -> list[str]:
        return [r["record_id"] for r in project.export_records(filter_logic=logic)]

    assert ids("[sex] = '2'") == ["1", "3"]
    assert ids("[age] > 10 and [sex] = 2") == ["1", "3"]
    assert ids("[age] >= 35 and [age] < 40 or [record-name] = '2'") == ["2", "3"]
    assert ids("[colors(-99)] = '1'") == ["1"]
    assert ids("[email] = ''") == ["1", "2", "3"]


def test_filter_logic_longitudinal(longitudinal: Handle) -> None:
    seed_longitudinal(longitudinal)
    project = longitudinal.pycap()
    # a cross-event reference holds on every row of the record
    rows = project.export_records(filter_logic="[baseline_arm_1][group] = '1'")
    assert {r["record_id"] for r in rows} == {"10"} and len(rows) == 5
    rows = project.export_records(filter_logic="[med_name] = 'B'")
    assert places(rows) == [("10", "visit_1_arm_1", "medications", 2)]
    # a repeat row sees the non-repeating fields of its event
    rows = project.export_records(filter_logic="[med_name][2] = 'B' and [bp] = 120")
    assert places(rows) == [
        ("10", "visit_1_arm_1", "", ""),
        ("10", "visit_1_arm_1", "medications", 1),
        ("10", "visit_1_arm_1", "medications", 2),
    ]
    rows = project.export_records(filter_logic="[current-instance] = 2")
    assert places(rows) == [
        ("10", "visit_1_arm_1", "medications", 2),
        ("10", "visit_2_arm_1", "", 2),
    ]
    rows = project.export_records(filter_logic="[event-name] = 'baseline_arm_2'")
    assert places(rows) == [("3", "baseline_arm_2", "", "")]


@pytest.mark.parametrize(
    ("logic", "detail"),
    [("[sex] = ", "logic ends where a value is expected"), ("[nope] = 1", "[nope]")],
)
def test_bad_filter_logic_is_refused(classic: Handle, logic: str, detail: str) -> None:
    reply = export(classic, format="json", filterLogic=logic)
    assert reply.status_code == 400
    assert reply.json()["error"].startswith("The filterLogic parameter is not valid: ")
    assert detail in reply.json()["error"]


@pytest.mark.parametrize("kind", ["classic", "longitudinal"])
def test_date_range_uses_the_last_change(sandbox: SandboxServer, kind: str) -> None:
    h = seed_project(sandbox, kind)
    h.put("1", {"weight": "70.1"}, event=FIRST_EVENT[kind])
    h.put("2", {"weight": "70.2"}, event=FIRST_EVENT[kind])
    sql(
        h,
        "UPDATE record SET modified = CASE record WHEN '1' THEN '2020-06-01 10:00:00' "
        "ELSE '2019-01-01 00:00:00' END WHERE project_id = ?",
        h.project_id,
    )
    project = h.pycap()
    project.import_records([{"record_id": "3", "weight": "70.3"}])

    def ids(**kwargs: Any) -> list[str]:
        return [r["record_id"] for r in project.export_records(**kwargs)]

    assert ids(date_begin=dt.datetime(2020, 1, 1)) == ["1", "3"]
    assert ids(date_end=dt.datetime(2020, 6, 1, 10, 0, 0)) == ["1", "2"]
    assert ids(date_begin=dt.datetime(2019, 6, 1), date_end=dt.datetime(2021, 1, 1)) == ["1"]
    reply = export(h, format="json", dateRangeBegin="last week")
    assert reply.status_code == 400


# -- import ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "csv", "xml"])
def test_import_count_reply_in_each_format(classic: Handle, fmt: str) -> None:
    data = {
        "json": '[{"record_id": "1", "first_name": "Ann"}, {"record_id": "1", "age": 41},'
        ' {"record_id": "2"}]',
        "csv": "record_id,first_name,age\n1,Ann,\n1,,41\n2,,\n",
        "xml": '<?xml version="1.0" encoding="UTF-8" ?><records><item><record_id>1</record_id>'
        "<first_name>Ann</first_name></item><item><record_id>1</record_id><age>41</age></item>"
        "<item><record_id>2</record_id></item></records>",
    }[fmt]
    reply = post(classic, content="record", format=fmt, data=data, returnFormat=fmt)
    expected = {
        "json": '{"count": 2}',
        "csv": "2",
        "xml": '<?xml version="1.0" encoding="UTF-8" ?><count>2</count>',
    }[fmt]
    assert (reply.status_code, reply.text) == (200, expected)
    ann = classic.pycap().export_records(records=["1"])[0]
    assert (ann["first_name"], ann["age"]) == ("Ann", "41")


@pytest.mark.parametrize("kind", ["classic", "longitudinal"])
def test_import_return_contents(sandbox: SandboxServer, kind: str) -> None:
    h = seed_project(sandbox, kind)
    project = h.pycap()
    rows = [{"record_id": "7"}, {"record_id": "5"}, {"record_id": "7"}]
    assert project.import_records(rows, return_content="ids") == ["7", "5"]
    assert project.import_records(rows, return_content="count") == {"count": 2}
    assert project.import_records(rows, return_content="auto_ids") == ["7,7", "5,5"]
    assert project.import_records(rows, return_content="nothing") == [{}]
    csv = "record_id\n8\n9\n"
    ids = post(h, content="record", format="csv", data=csv, returnContent="ids", returnFormat="csv")
    assert ids.text == "id\n8\n9\n"
    nothing = post(h, content="record", format="csv", data=csv, returnContent="nothing")
    assert (nothing.status_code, nothing.text) == (200, "")


def test_import_csv_with_another_delimiter(classic: Handle) -> None:
    data = "record_id\tfirst_name\tweight\n1\tAnn Lee\t70.5\n"
    reply = post(classic, content="record", format="csv", csvDelimiter="tab", data=data)
    assert reply.text == "1"  # returnFormat follows format (csv)
    row = classic.pycap().export_records()[0]
    assert (row["first_name"], row["weight"]) == ("Ann Lee", "70.5")


def test_import_csv_and_dataframe_round_trip(longitudinal: Handle) -> None:
    seed_longitudinal(longitudinal)
    project = longitudinal.pycap()
    before = project.export_records()
    csv = project.export_records(format_type="csv")
    # PyCap writes a DataFrame's index only when it has one name, so reset the two-level one
    df = project.export_records(format_type="df", df_kwargs={"dtype": str}).reset_index()
    assert project.import_records(csv, import_format="csv", overwrite="overwrite") == {"count": 3}
    assert project.export_records() == before
    # the grey statuses exported as 0 are now saved as Incomplete; nothing else changed
    logged = project.export_logging(log_type="record")
    changes = {c for e in logged for c in e["details"].split("], ")[-1].split(", ")}
    assert changes == {f"{form}_complete = '0'" for form in ("enrollment", "vitals", "medications")}
    assert project.import_records(df, import_format="df") == {"count": 3}
    assert project.export_records() == before
    assert project.export_logging(log_type="record") == logged  # no change, no entry


def test_classic_dataframe_import(classic: Handle) -> None:
    project = classic.pycap()
    df = pd.DataFrame({"record_id": ["2", "1"], "first_name": ["Bob", "Ann"], "sex": ["1", "2"]})
    imported = project.import_records(
        df.set_index("record_id"), import_format="df", return_content="ids"
    )
    assert imported == ["2", "1"]
    back = project.export_records(format_type="df", df_kwargs={"index_col": 0, "dtype": str})
    assert back.index.name == "record_id"
    assert list(back["first_name"]) == ["Ann", "Bob"] and list(back["sex"]) == ["2", "1"]


def test_overwrite_behavior(classic: Handle) -> None:
    classic.put("1", {"first_name": "Ann", "age": "41", "colors___1": "1", "colors___2": "1"})
    project = classic.pycap()
    project.import_records([{"record_id": "1", "first_name": "", "age": "42", "colors___1": ""}])
    normal = project.export_records()[0]
    assert (normal["first_name"], normal["age"], normal["colors___1"]) == ("Ann", "42", "1")
    project.import_records([{"record_id": "1", "colors___2": "0"}])
    assert project.export_records()[0]["colors___2"] == "0"  # 0 unchecks in either mode
    project.import_records(
        [{"record_id": "1", "first_name": "", "colors___1": ""}], overwrite="overwrite"
    )
    erased = project.export_records()[0]
    assert (erased["first_name"], erased["age"], erased["colors___1"]) == ("", "42", "0")


def test_json_numbers_calc_and_survey_columns(sandbox: SandboxServer) -> None:
    h = seed_project(sandbox, "classic", surveys=("demographics",))
    project = h.pycap()
    row = {
        "record_id": 3,
        "age": 41,
        "weight": 70.5,
        "bmi": "999",
        "redcap_survey_identifier": "x",
        "demographics_timestamp": "[not completed]",
    }
    assert project.import_records([row]) == {"count": 1}
    exported = project.export_records()[0]
    assert (exported["record_id"], exported["age"], exported["weight"]) == ("3", "41", "70.5")
    assert exported["bmi"] == ""  # calculations are accepted, not stored


def test_date_formats(classic: Handle) -> None:
    project = classic.pycap()
    project.import_records([{"record_id": "1", "dob": "12/31/1999"}], date_format="MDY")
    project.import_records([{"record_id": "2", "dob": "31/12/1998"}], date_format="DMY")
    assert [r["dob"] for r in project.export_records()] == ["1999-12-31", "1998-12-31"]
    with pytest.raises(RedcapError, match=FORMAT_ERROR):
        project.import_records([{"record_id": "3", "dob": "31/12/1998"}], date_format="MDY")


def test_every_bad_cell_is_reported_and_nothing_saved(classic: Handle) -> None:
    rows = [
        {"record_id": "1", "first_name": "Ann", "weight": "22"},  # number_1dp needs 1 decimal
        {"record_id": "2", "sex": "3", "dob": "2024-02-30", "email": "nope"},
        {"record_id": "3", "colors___1": "2", "consent": "yes", "demographics_complete": "3"},
    ]
    reply = post(classic, content="record", format="json", data=json.dumps(rows))
    assert reply.status_code == 400
    assert reply.json()["error"] == "\n".join(
        [
            f'"1","weight","22","{FORMAT_ERROR}"',
            '"2","sex","3","The value is not a valid category for sex"',
            f'"2","dob","2024-02-30","{FORMAT_ERROR}"',
            f'"2","email","nope","{FORMAT_ERROR}"',
            '"3","colors___1","2","The value is not a valid category for colors"',
            '"3","consent","yes","The value is not a valid category for consent"',
            '"3","demographics_complete","3","The value is not a valid category for '
            'demographics_complete"',
        ]
    )
    assert classic.pycap().export_records() == []


def test_unknown_columns_and_missing_record_id(classic: Handle) -> None:
    rows = [{"record_id": "1", "shoe_size": "44", "colors": "1", "info": "x"}]
    reply = post(classic, content="record", format="json", data=json.dumps(rows))
    assert (reply.status_code, reply.json()["error"]) == (
        400,
        "The following fields were not found in the project as real data fields: "
        "shoe_size, colors, info",
    )
    missing = post(classic, content="record", format="csv", data="first_name\nAnn\n")
    assert missing.status_code == 400 and "record_id" in missing.text
    event = post(classic, content="record", format="csv", data="record_id,redcap_event_name\n1,\n")
    assert event.text == (
        "ERROR: The following fields were not found in the project as real data fields: "
        "redcap_event_name"
    )


def test_longitudinal_placement_errors(longitudinal: Handle) -> None:
    rows = [
        at("visit_2_arm_1", instance="1", med_name="X"),
        at("visit_1_arm_1", med_name="Y"),
        at("visit_1_arm_1", "vitals", "1"),
        at("baseline_arm_1", instance="2"),
        at("visit_9_arm_1"),
        at("visit_1_arm_1", "medications", "1", bp="120"),
    ]
    reply = post(longitudinal, content="record", format="json", data=json.dumps(rows))
    assert reply.status_code == 400
    lines = reply.json()["error"].split("\n")
    assert lines[0] == (
        '"1","med_name","X","This field (\'med_name\') exists on an instrument that is not '
        "designated for the event named 'Visit 2 (Arm 1: Drug A)'. You are not allowed to import "
        'data for this field into this event."'
    )
    assert lines[1] == (
        '"1","med_name","Y","This field (\'med_name\') exists on a Repeating Instrument named '
        "'medications'. However, the fields 'redcap_repeat_instance' and/or "
        "'redcap_repeat_instrument' for this row of data have no value, which are both required "
        "for importing data into a Repeating Instrument.  You are not allowed to import data for "
        'this field into a non-repeating instrument."'
    )
    assert lines[2] == (
        '"1","redcap_repeat_instrument","vitals","redcap_repeat_instrument must be the unique '
        "form name of a Repeating Instrument. It currently does not match the unique form name "
        'of any Repeating Instruments.  Please fix this in the data import file and try again."'
    )
    assert lines[3] == (
        '"1","redcap_repeat_instance","2","redcap_repeat_instance cannot have a value since this '
        "instrument or event is not a repeating instrument or repeating event, respectively.  "
        'The redcap_repeat_instance field must be left blank for this row of data."'
    )
    assert lines[4].startswith('"1","redcap_event_name","visit_9_arm_1",')
    assert lines[5].startswith('"1","bp","120",')
    assert len(lines) == 6
    assert longitudinal.pycap().export_records() == []


def test_longitudinal_import_defaults_and_new_instances(longitudinal: Handle) -> None:
    project = longitudinal.pycap()
    rows = [
        {"record_id": "1", "group": "2"},  # no event: the first event
        at("visit_1_arm_1", "medications", "new", med_name="A"),
        at("visit_1_arm_1", "medications", "new", med_name="B"),
        at("visit_2_arm_1", instance="3", weight="71.5"),
    ]
    assert project.import_records(rows) == {"count": 1}
    exported = project.export_records()
    assert places(exported) == [
        ("1", "baseline_arm_1", "", ""),
        ("1", "visit_1_arm_1", "medications", 1),
        ("1", "visit_1_arm_1", "medications", 2),
        ("1", "visit_2_arm_1", "", 3),
    ]
    assert exported[0]["group"] == "2"
    assert [r["med_name"] for r in exported][1:3] == ["A", "B"]


def test_force_auto_number(sandbox: SandboxServer) -> None:
    h = seed_project(sandbox, "classic", autonumber=True)
    h.put("9", {"first_name": "Old"})
    h.put("8b", {"first_name": "Named"})
    project = h.pycap()
    rows = [
        {"record_id": "x", "first_name": "Ann"},
        {"record_id": "y", "first_name": "Bob"},
        {"record_id": "x", "age": "30"},
    ]
    assert project.import_records(rows, return_content="auto_ids", force_auto_number=True) == [
        "10,x",
        "11,y",
    ]
    new = {r["record_id"]: r for r in project.export_records(records=["10", "11"])}
    assert (new["10"]["first_name"], new["10"]["age"], new["11"]["first_name"]) == (
        "Ann",
        "30",
        "Bob",
    )
    assert project.generate_next_record_name() == "12"


def test_import_is_logged_without_unchanged_rows(longitudinal: Handle) -> None:
    project = longitudinal.pycap()
    project.import_records([{"record_id": "1", "group": "1", "enroll_date": "2024-01-02"}])
    same_and_new = [
        {"record_id": "1", "group": "2", "enroll_date": "2024-01-02"},
        at("visit_1_arm_1", "medications", "2", med_name="X"),
    ]
    project.import_records(same_and_new)
    entries = [
        (e["action"], e["details"], e["record"])
        for e in reversed(project.export_logging(log_type="record"))
    ]
    assert entries == [
        ("Create record (API) 1", "record_id = '1', enroll_date = '2024-01-02', group = '1'", "1"),
        ("Update record (API) 1", "group = '2'", "1"),
        ("Update record (API) 1", "[instance = 2], med_name = 'X'", "1"),
    ]
    added = project.export_logging(log_type="record_add")
    assert [e["action"] for e in added] == ["Create record (API) 1"]


def test_eav_import(longitudinal: Handle) -> None:
    seed_longitudinal(longitudinal)
    project = longitudinal.pycap()
    before = project.export_records(records=["10"])
    eav = project.export_records(record_type="eav", records=["10"])
    project.delete_records(["10"])
    rows = [dict(r, record="11") for r in eav]
    reply = post(longitudinal, content="record", format="json", type="eav", data=json.dumps(rows))
    assert reply.json() == {"count": 1}
    copied = project.export_records(records=["11"])
    assert [dict(r, record_id="10") for r in copied] == before


def test_flat_import_of_eav_rows_without_type_is_refused(classic: Handle) -> None:
    rows = [{"record": "1", "field_name": "first_name", "value": "Ann"}]
    reply = post(classic, content="record", format="json", data=json.dumps(rows), type="eav")
    assert reply.json() == {"count": 1}
    flat = post(classic, content="record", format="json", data=json.dumps(rows))
    assert flat.status_code == 400 and "record, field_name, value" in flat.json()["error"]


# -- delete ------------------------------------------------------------------------------------


def test_delete_whole_records(classic: Handle) -> None:
    for record in ("1", "2", "3"):
        classic.put(record, {"first_name": record})
    project = classic.pycap()
    assert project.delete_records(["1", "3"]) == 2
    assert [r["record_id"] for r in project.export_records()] == ["2"]
    xml = post(
        classic, content="record", action="delete", returnFormat="xml", **{"records[0]": "2"}
    )
    assert (xml.status_code, xml.text) == (200, "1")
    deleted = project.export_logging(log_type="record_delete")
    assert [e["action"] for e in deleted] == [f"Delete record (API) {r}" for r in "231"]


def test_delete_unknown_record_is_refused(classic: Handle) -> None:
    classic.put("1", {"first_name": "Ann"})
    reply = post(classic, content="record", action="delete", returnFormat="csv", records="1,7,8")
    assert (reply.status_code, reply.text) == (
        400,
        "ERROR: One or more of the records provided cannot be deleted because they do not exist "
        "in the project. The following records do not exist: 7, 8",
    )
    assert [r["record_id"] for r in classic.pycap().export_records()] == ["1"]
    missing = act(classic, "delete")
    assert missing.status_code == 400


def test_delete_instrument_and_instance(longitudinal: Handle) -> None:
    seed_longitudinal(longitudinal)
    project = longitudinal.pycap()
    medication = {"event": "visit_1_arm_1", "instrument": "medications"}
    assert project.delete_records(["10"], repeat_instance=1, **medication) == 1
    assert [p[3] for p in places(project.export_records(records=["10"]))] == ["", "", 2, 2]
    assert project.delete_records(["10"], event="baseline_arm_1", instrument="enrollment") == 1
    baseline = project.export_records(records=["10"], events=["baseline_arm_1"])
    assert len(baseline) == 1 and (baseline[0]["group"], baseline[0]["enroll_date"]) == ("", "")
    reply = act(longitudinal, "delete", records="10", instrument="vitals")
    assert reply.status_code == 400 and "event" in reply.json()["error"]


def test_delete_repeating_event_instance_and_event(longitudinal: Handle) -> None:
    seed_longitudinal(longitudinal)
    longitudinal.put("10", {"weight": "81"}, event="visit_2_arm_1", instance=3)
    project = longitudinal.pycap()
    assert project.delete_records(["10"], event="visit_2_arm_1", repeat_instance=2) == 1
    assert places(project.export_records(records=["10"], events=["visit_2_arm_1"])) == [
        ("10", "visit_2_arm_1", "", 3)
    ]
    assert project.delete_records(["10", "2"], event="visit_1_arm_1") == 2
    remaining = places(project.export_records())
    assert [p for p in remaining if p[1] == "visit_1_arm_1"] == []
    assert ("10", "baseline_arm_1", "", "") in remaining


def test_delete_in_an_arm_and_last_rows_end_the_record(longitudinal: Handle) -> None:
    seed_longitudinal(longitudinal)
    longitudinal.put("2", {"group": "1"}, event="baseline_arm_2")
    project = longitudinal.pycap()
    assert project.delete_records(["2", "3"], arm="2") == 2
    assert {p[0] for p in places(project.export_records())} == {"2", "10"}
    reply = act(longitudinal, "delete", records="3")
    assert reply.status_code == 400  # record 3 had rows only in arm 2, so it is gone


def test_delete_classic_repeat_instance(sandbox: SandboxServer) -> None:
    h = seed_project(sandbox, "classic")
    with h.server.store.transaction() as conn:
        h.model(conn).replace_repeating([(0, "followup", "")])
    h.put("1", {"first_name": "Ann"})
    for instance, fruit in ((1, "a"), (2, "b")):
        h.put("1", {"fav": fruit}, repeat_instrument="followup", instance=instance)
    project = h.pycap()
    assert project.delete_records(["1"], instrument="followup", repeat_instance=1) == 1
    rows = project.export_records()
    kept = [(r["redcap_repeat_instrument"], r["redcap_repeat_instance"], r["fav"]) for r in rows]
    assert kept == [("", "", ""), ("followup", 2, "b")]


# -- rename and next record name ---------------------------------------------------------------


def test_rename_record(longitudinal: Handle) -> None:
    seed_longitudinal(longitudinal)
    reply = act(longitudinal, "rename", record="10", new_record_name="20")
    assert (reply.status_code, reply.text) == (200, "1")
    project = longitudinal.pycap()
    assert [p[0] for p in places(project.export_records())] == ["2", "2", "3"] + ["20"] * 5
    taken = act(longitudinal, "rename", record="20", new_record_name="2")
    assert (taken.status_code, taken.json()) == (400, {"error": 'The record "2" already exists'})
    gone = act(longitudinal, "rename", record="10", new_record_name="30")
    assert (gone.status_code, gone.json()) == (400, {"error": 'The record "10" does not exist'})


def test_rename_within_an_arm(longitudinal: Handle) -> None:
    seed_longitudinal(longitudinal)
    longitudinal.put("2", {"group": "2"}, event="baseline_arm_2")
    reply = act(longitudinal, "rename", record="2", new_record_name="2b", arm="2")
    assert reply.text == "1"
    rows = places(longitudinal.pycap().export_records(records=["2", "2b"]))
    assert rows == [
        ("2", "baseline_arm_1", "", ""),
        ("2", "visit_2_arm_1", "", 1),
        ("2b", "baseline_arm_2", "", ""),
    ]
    nothing_there = act(longitudinal, "rename", record="3", new_record_name="3b", arm="1")
    assert nothing_there.status_code == 400
    no_arm = act(longitudinal, "rename", record="3", new_record_name="3b", arm="7")
    assert no_arm.json() == {
        "error": "The following values in the parameter \"arm\" are not valid: '7'"
    }


@pytest.mark.parametrize("kind", ["classic", "longitudinal"])
def test_generate_next_record_name(sandbox: SandboxServer, kind: str) -> None:
    h = seed_project(sandbox, kind)
    project = h.pycap()
    assert project.generate_next_record_name() == "1"
    event = {"event": "baseline_arm_1"} if kind == "longitudinal" else {}
    for record in ("9", "10", "10b", "2-99"):
        h.put(record, {"weight": "1"} if kind == "classic" else {"group": "1"}, **event)
    assert project.generate_next_record_name() == "11"
    reply = post(h, content="generateNextRecordName", format="csv")
    assert (reply.status_code, reply.text) == (200, "11")


# -- privileges and data access groups ---------------------------------------------------------


@pytest.mark.parametrize(
    ("rights", "data", "message"),
    [
        ({"api_export": 0}, {"action": "export"}, "API Export"),
        ({"api_import": 0}, {"data": '[{"record_id": "1"}]'}, "API Import/Update"),
        ({"record_delete": 0}, {"action": "delete", "records": "1"}, "Delete Record"),
        ({"api_import": 0}, {"action": "delete", "records": "1"}, "API Import/Update"),
        ({"record_rename": 0}, {"action": "rename", "record": "1", "new_record_name": "2"},
         "Rename Record"),
    ],
)  # fmt: skip
def test_privileges(
    classic: Handle, rights: dict[str, int], data: dict[str, str], message: str
) -> None:
    classic.put("1", {"first_name": "Ann"})
    token = classic.add_user("limited", **rights)
    reply = post(classic, token, content="record", format="json", **data)
    assert (reply.status_code, reply.json()) == (
        403,
        {"error": f"You do not have {message} privileges"},
    )
    assert [r["first_name"] for r in classic.pycap().export_records()] == ["Ann"]


def test_data_access_group_user_sees_and_changes_only_their_records(classic: Handle) -> None:
    site_a, site_b = add_dag(classic, "site_a", "Site A"), add_dag(classic, "site_b", "Site B")
    classic.put("1", {"first_name": "Ann"}, dag_id=site_a)
    classic.put("2", {"first_name": "Bob"}, dag_id=site_b)
    classic.put("3", {"first_name": "Cy"})
    user = classic.pycap(dag_user(classic, "site_a_user", site_a))
    rows = user.export_records(export_data_access_groups=True)
    assert [r["record_id"] for r in rows] == ["1"]
    assert "redcap_data_access_group" not in rows[0]  # a DAG user cannot export the group
    assert user.import_records([{"record_id": "4", "first_name": "Di"}]) == {"count": 1}
    assert record_dag(classic, "4") == site_a
    with pytest.raises(RedcapError, match="Data Access Group"):
        user.import_records([{"record_id": "2", "first_name": "Mallory"}])
    with pytest.raises(RedcapError, match="Data Access Group"):
        user.import_records([{"record_id": "5", "redcap_data_access_group": "site_b"}])
    with pytest.raises(RedcapError, match="The following records do not exist: 2"):
        user.delete_records(["2"])
    assert user.generate_next_record_name() == f"{site_a}-1"
    everyone = classic.pycap().export_records()
    assert [(r["record_id"], r["first_name"]) for r in everyone] == [
        ("1", "Ann"),
        ("2", "Bob"),
        ("3", "Cy"),
        ("4", "Di"),
    ]


def test_user_without_group_assigns_groups_on_import(classic: Handle) -> None:
    site_a = add_dag(classic, "site_a", "Site A")
    project = classic.pycap()
    rows = [
        {"record_id": "1", "redcap_data_access_group": "site_a"},
        {"record_id": "2", "redcap_data_access_group": ""},
    ]
    assert project.import_records(rows) == {"count": 2}
    assert (record_dag(classic, "1"), record_dag(classic, "2")) == (site_a, None)
    with pytest.raises(RedcapError, match="site_z"):
        project.import_records([{"record_id": "2", "redcap_data_access_group": "site_z"}])
    project.import_records([{"record_id": "2", "redcap_data_access_group": "site_a"}])
    assert record_dag(classic, "2") == site_a
    exported = project.export_records(export_data_access_groups=True)
    assert [r["redcap_data_access_group"] for r in exported] == ["site_a", "site_a"]


def test_pandas_can_read_every_csv_export(longitudinal: Handle) -> None:
    seed_longitudinal(longitudinal)
    text = longitudinal.pycap().export_records(format_type="csv", raw_or_label="label")
    df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    assert list(df.columns) == LONGITUDINAL_COLUMNS
    assert len(df) == 8


def test_numeric_and_other_record_names_sort_together(classic: Handle) -> None:
    for record in ("abc", "10", "9"):
        classic.put(record, {"first_name": record})
    assert [r["record_id"] for r in classic.pycap().export_records()] == ["9", "10", "abc"]
