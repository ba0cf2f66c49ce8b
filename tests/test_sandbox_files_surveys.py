"""Files on file fields, the file repository, surveys, reports and PDFs on the local
REDCap-compatible server, driven through PyCap (and `requests` for raw bodies and headers)."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest
import requests
from redcap import RedcapError
from sandbox_support import (
    CLASSIC_DICTIONARY,
    LONGITUDINAL_DICTIONARY,
    Handle,
    dictionary_rows,
    seed_project,
)

from hekta_redcap.devtools.sandbox.models import METADATA_COLUMNS
from hekta_redcap.devtools.sandbox.server import SandboxServer


def post(handle: Handle, token: str | None = None, **data: Any) -> requests.Response:
    """A raw API call (for bodies, headers and status codes PyCap does not show)."""
    return requests.post(handle.url, data={"token": token or handle.token, **data}, timeout=10)


def error(reply: requests.Response) -> tuple[int, str]:
    return reply.status_code, reply.json()["error"]


def stored(handle: Handle, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with handle.server.store.transaction() as conn:
        return [tuple(r) for r in conn.execute(sql, args).fetchall()]


def with_file_fields(handle: Handle) -> Handle:
    """The longitudinal project with a file field on a form of every event (vitals) and one on
    a form of the baseline events only (enrollment)."""
    rows = dictionary_rows(LONGITUDINAL_DICTIONARY)
    extra = {c: "" for c in METADATA_COLUMNS}
    rows.insert(
        3,
        extra
        | {
            "field_name": "consent_doc",
            "form_name": "enrollment",
            "field_type": "file",
            "field_label": "Signed consent",
        },
    )
    rows.insert(
        6,
        extra
        | {
            "field_name": "scan",
            "form_name": "vitals",
            "field_type": "file",
            "field_label": "Scan",
        },
    )
    with handle.server.store.transaction() as conn:
        handle.model(conn).replace_metadata(rows)
    return handle


# -- files on file fields -------------------------------------------------------------------------


def test_file_import_export_delete_on_a_classic_record(classic: Handle) -> None:
    classic.put("1", {"first_name": "Ann"})
    project = classic.pycap()
    upload = io.BytesIO(b"test upload\n")
    assert project.import_file("1", "upload", "test_upload.txt", upload) == [{}]
    assert project.export_file("1", "upload") == (
        b"test upload\n",
        {"name": "test_upload.txt", "charset": "UTF-8"},
    )
    raw = post(classic, content="file", action="export", record="1", field="upload")
    assert raw.headers["content-type"] == 'text/plain; name="test_upload.txt";charset=UTF-8'
    [(vals,)] = stored(classic, "SELECT vals FROM data WHERE project_id = ?", classic.project_id)
    doc_id = json.loads(vals)["upload"]
    assert stored(classic, "SELECT name FROM document WHERE doc_id = ?", int(doc_id)) == [
        ("test_upload.txt",)
    ]

    # replacing the file keeps one document; deleting clears the field
    project.import_file("1", "upload", "second.txt", io.BytesIO(b"2"))
    docs = "SELECT name FROM document WHERE project_id = ?"
    assert stored(classic, docs, classic.project_id) == [("second.txt",)]
    assert project.delete_file("1", "upload") == [{}]
    assert stored(classic, docs, classic.project_id) == []
    [(vals,)] = stored(classic, "SELECT vals FROM data WHERE project_id = ?", classic.project_id)
    assert json.loads(vals) == {"first_name": "Ann"}
    with pytest.raises(RedcapError, match="There is no file to download for this record"):
        project.export_file("1", "upload")
    gone = post(
        classic, content="file", action="delete", record="1", field="upload", returnFormat="json"
    )
    assert error(gone) == (400, "There is no file to delete for this record")


def test_file_upload_of_zero_bytes_keeps_name_last_for_binary_types(classic: Handle) -> None:
    classic.put("1", {"first_name": "Ann"})
    project = classic.pycap()
    project.import_file("1", "upload", "mugshot-1.jpg", io.BytesIO(b""))
    assert project.export_file("1", "upload") == (b"", {"name": "mugshot-1.jpg"})
    raw = post(classic, content="file", action="export", record="1", field="upload")
    assert raw.headers["content-type"] == 'image/jpeg; name="mugshot-1.jpg"'
    modified = "SELECT modified FROM record WHERE project_id = ?"
    assert stored(classic, modified, classic.project_id) != [("2026-01-01 12:00:00",)]
    log = "SELECT action, kind FROM log WHERE project_id = ? AND record = '1' ORDER BY log_id"
    assert stored(classic, log, classic.project_id)[-1] == (
        "Update record (API) 1",
        "record_edit",
    )


@pytest.mark.parametrize(
    ("field", "record", "message"),
    [
        ("nope", "1", "The field 'nope' does not exist or is not a 'file' field"),
        ("first_name", "1", "The field 'first_name' does not exist or is not a 'file' field"),
        ("upload", "-1", 'The record "-1" does not exist'),
    ],
)
def test_file_calls_refuse_bad_fields_and_records(
    classic: Handle, field: str, record: str, message: str
) -> None:
    classic.put("1", {"first_name": "Ann"})
    for action in ("export", "import", "delete"):
        reply = requests.post(
            classic.url,
            data={
                "token": classic.token,
                "content": "file",
                "action": action,
                "field": field,
                "record": record,
                "returnFormat": "json",
            },
            files={"file": ("a.txt", b"x")},
            timeout=10,
        )
        assert error(reply) == (400, message)


def test_file_calls_need_privileges_and_a_file(classic: Handle) -> None:
    classic.put("1", {"first_name": "Ann"})
    reader = classic.add_user("reader", api_import=0)
    writer = classic.add_user("writer", api_export=0)
    common = {"content": "file", "field": "upload", "record": "1", "returnFormat": "json"}
    for action in ("import", "delete"):
        reply = post(classic, reader, action=action, **common)
        assert error(reply) == (403, "You do not have API Import/Update privileges")
    reply = post(classic, writer, action="export", **common)
    assert error(reply) == (403, "You do not have API Export privileges")
    assert error(post(classic, action="import", **common)) == (400, "No valid file was uploaded")


def test_files_in_longitudinal_events_and_repeating_instances(longitudinal: Handle) -> None:
    handle = with_file_fields(longitudinal)
    handle.put("1", {"enroll_date": "2026-01-02"}, event="baseline_arm_1")
    project = handle.pycap()

    # a repeating event defaults to instance 1
    project.import_file("1", "scan", "one.txt", io.BytesIO(b"1"), event="visit_2_arm_1")
    project.import_file(
        "1", "scan", "two.txt", io.BytesIO(b"2"), event="visit_2_arm_1", repeat_instance=2
    )
    rows = "SELECT instance, vals FROM data WHERE project_id = ? AND instance > 0 ORDER BY 1"
    instances = stored(handle, rows, handle.project_id)
    assert [(i, list(json.loads(v))) for i, v in instances] == [(1, ["scan"]), (2, ["scan"])]
    assert project.export_file("1", "scan", event="visit_2_arm_1")[0] == b"1"
    assert project.export_file("1", "scan", event="visit_2_arm_1", repeat_instance=2)[0] == b"2"
    project.import_file("1", "consent_doc", "c.pdf", io.BytesIO(b"%PDF"), event="baseline_arm_1")
    assert project.export_file("1", "consent_doc", event="baseline_arm_1") == (
        b"%PDF",
        {"name": "c.pdf"},
    )

    base = {"content": "file", "action": "export", "record": "1", "returnFormat": "json"}
    assert error(post(handle, field="scan", **base)) == (400, 'The parameter "event" is missing')
    assert error(post(handle, field="scan", event="nope_arm_1", **base)) == (
        400,
        'The value of the parameter "event" is not valid',
    )
    assert error(post(handle, field="consent_doc", event="visit_1_arm_1", **base)) == (
        400,
        'The instrument "enrollment" is not designated for the event "visit_1_arm_1"',
    )
    status, message = error(
        post(handle, field="consent_doc", event="baseline_arm_1", repeat_instance="2", **base)
    )
    assert status == 400 and message.startswith("repeat_instance cannot have a value")


# -- file repository ------------------------------------------------------------------------------


def test_file_repository_folders_and_files(classic: Handle) -> None:
    project = classic.pycap()
    [created] = project.create_folder_in_repository("test")
    test_id = created["folder_id"]
    assert isinstance(test_id, int) and test_id > 0
    [new] = project.create_folder_in_repository("New Folder")
    [sub] = project.create_folder_in_repository("Sub", folder_id=test_id)
    assert project.import_file_into_repository("test.txt", io.BytesIO(b"hello")) == [{}]
    project.import_file_into_repository("empty.txt", io.BytesIO(b""), folder_id=test_id)
    project.import_file_into_repository("test_in_folder.txt", io.BytesIO(b"x"), folder_id=test_id)

    top = project.export_file_repository()
    [text_doc] = [row["doc_id"] for row in top if row.get("name") == "test.txt"]
    assert top == [
        {"folder_id": new["folder_id"], "name": "New Folder"},
        {"folder_id": test_id, "name": "test"},
        {"doc_id": text_doc, "name": "test.txt"},
    ]
    assert isinstance(text_doc, int)
    inside = project.export_file_repository(folder_id=test_id)
    assert inside[0] == {"folder_id": sub["folder_id"], "name": "Sub"}
    assert [row["name"] for row in inside] == ["Sub", "empty.txt", "test_in_folder.txt"]
    assert project.export_file_from_repository(text_doc) == (
        b"hello",
        {"name": "test.txt", "charset": "UTF-8"},
    )
    empty = next(row["doc_id"] for row in inside if row["name"] == "empty.txt")
    assert project.export_file_from_repository(empty)[0] == b""

    assert project.export_file_repository(format_type="csv", return_format_type="csv") == (
        "folder_id,doc_id,name,role,dag\n"
        f'{new["folder_id"]},,"New Folder",,\n'
        f"{test_id},,test,,\n"
        f",{text_doc},test.txt,,\n"
    )
    xml = project.export_file_repository(format_type="xml", return_format_type="xml")
    assert f"<doc_id><![CDATA[{text_doc}]]></doc_id>" in xml

    assert project.delete_file_from_repository(text_doc) == [{}]
    assert [row["name"] for row in project.export_file_repository()] == ["New Folder", "test"]
    assert stored(classic, "SELECT 1 FROM document WHERE doc_id = ?", text_doc) == []


def test_file_repository_refusals(classic: Handle) -> None:
    project = classic.pycap()
    bad_folder = (
        "The File Repository folder folder_id=99999 does not exist or else you do not have "
        "permission to that folder because it is DAG-restricted or Role-restricted."
    )
    with pytest.raises(RedcapError, match="folder_id=99999 does not exist"):
        project.export_file_repository(folder_id=99999)
    reply = post(classic, content="fileRepository", action="list", folder_id="99999", format="json")
    assert error(reply) == (400, bad_folder)
    upload = requests.post(
        classic.url,
        data={
            "token": classic.token,
            "content": "fileRepository",
            "action": "import",
            "folder_id": "99999",
            "returnFormat": "json",
        },
        files={"file": ("a.txt", b"x")},
        timeout=10,
    )
    assert error(upload) == (400, bad_folder)
    reply = post(
        classic, content="fileRepository", action="export", doc_id="99999", returnFormat="json"
    )
    assert error(reply) == (
        400,
        "The File Repository file doc_id=99999 does not exist or else you do not have "
        "permission to that file because it is DAG-restricted or Role-restricted.",
    )
    reply = post(
        classic,
        content="fileRepository",
        action="createFolder",
        name="x",
        dag_id="4242",
        format="json",
    )
    assert error(reply) == (400, 'The value of the parameter "dag_id" is not valid')
    outsider = classic.add_user("outsider", file_repository=0)
    reply = post(classic, outsider, content="fileRepository", action="list", format="csv")
    assert (reply.status_code, reply.text) == (
        403,
        "ERROR: You do not have File Repository privileges",
    )


def test_dag_restricted_folders_are_hidden_from_other_dags(classic: Handle) -> None:
    with classic.server.store.transaction() as conn:
        dags = [
            conn.execute(
                "INSERT INTO dag (project_id, name, unique_name) VALUES (?, ?, ?)",
                (classic.project_id, name, name.lower()),
            ).lastrowid
            for name in ("North", "South")
        ]
    north_user = classic.add_user("north_user")
    with classic.server.store.transaction() as conn:
        conn.execute(
            "INSERT INTO user_dag VALUES (?, ?, ?)", (classic.project_id, "north_user", dags[0])
        )
    project = classic.pycap()
    [south] = project.create_folder_in_repository("South only", dag_id=dags[1])
    [north] = project.create_folder_in_repository("North only", dag_id=dags[0])
    csv_listing = project.export_file_repository(
        format_type="csv", return_format_type="csv"
    ).splitlines()
    assert csv_listing[1:] == [
        f'{north["folder_id"]},,"North only",,north',
        f'{south["folder_id"]},,"South only",,south',
    ]
    north_view = classic.pycap(north_user)
    assert [r["name"] for r in north_view.export_file_repository()] == ["North only"]
    with pytest.raises(RedcapError, match="DAG-restricted"):
        north_view.export_file_repository(folder_id=south["folder_id"])


# -- surveys --------------------------------------------------------------------------------------


@pytest.fixture
def survey_classic(sandbox: SandboxServer) -> Handle:
    return seed_project(sandbox, "classic", surveys=("demographics",))


def test_survey_links_and_codes_are_stable_per_record(survey_classic: Handle) -> None:
    for record in ("1", "2"):
        survey_classic.put(record, {"first_name": "x"})
    project = survey_classic.pycap()
    base = survey_classic.url.removesuffix("api/")
    link = project.export_survey_link("1", "demographics")
    assert re.fullmatch(re.escape(base) + r"surveys/\?s=[A-Z0-9]{10}", link)
    assert project.export_survey_link("1", "demographics") == link
    assert project.export_survey_link("2", "demographics") != link
    queue = project.export_survey_queue_link("1")
    assert re.fullmatch(re.escape(base) + r"surveys/\?sq=[A-Z0-9]{10}", queue)
    assert project.export_survey_queue_link("1") == queue
    access = project.export_survey_access_code("1", "demographics")
    assert len(access) == 9 and project.export_survey_access_code("1", "demographics") == access
    code = project.export_survey_return_code("1", "demographics")
    assert len(code) == 8 and project.export_survey_return_code("1", "demographics") == code


def test_survey_calls_refuse_unknown_records_and_non_surveys(survey_classic: Handle) -> None:
    survey_classic.put("1", {"first_name": "x"})
    project = survey_classic.pycap()
    with pytest.raises(RedcapError, match='The record "-1" does not exist'):
        project.export_survey_link("-1", "demographics")
    for content in ("surveyLink", "surveyAccessCode", "surveyReturnCode"):
        unknown = post(
            survey_classic,
            content=content,
            record="-1",
            instrument="demographics",
            returnFormat="csv",
        )
        assert (unknown.status_code, unknown.text) == (
            400,
            'ERROR: The record "-1" does not exist',
        )
        not_survey = post(
            survey_classic, content=content, record="1", instrument="followup", returnFormat="json"
        )
        assert error(not_survey) == (
            400,
            'The instrument "followup" has not been enabled as a survey',
        )
    reply = post(survey_classic, content="participantList", instrument="nope", format="json")
    assert error(reply) == (400, 'The value of the parameter "instrument" is not valid')
    reply = post(survey_classic, content="surveyQueueLink", record="-1", returnFormat="json")
    assert error(reply) == (400, 'The record "-1" does not exist')


def test_return_codes_need_save_and_return(survey_classic: Handle) -> None:
    survey_classic.put("1", {"first_name": "x"})
    with survey_classic.server.store.transaction() as conn:
        conn.execute(
            "UPDATE survey SET settings = ? WHERE project_id = ?",
            ('{"title": "Demographics", "save_and_return": "0"}', survey_classic.project_id),
        )
    common = {"record": "1", "instrument": "demographics", "returnFormat": "json"}
    assert error(post(survey_classic, content="surveyReturnCode", **common)) == (
        400,
        'Save & Return is not enabled for the survey "demographics", so it has no return codes',
    )
    assert len(post(survey_classic, content="surveyAccessCode", **common).text) == 9


def test_survey_queue_needs_a_survey(classic: Handle) -> None:
    classic.put("1", {"first_name": "x"})
    reply = post(classic, content="surveyQueueLink", record="1", returnFormat="json")
    assert error(reply) == (400, "The survey queue is not enabled for this project")


def test_participant_list_of_a_public_classic_survey(survey_classic: Handle) -> None:
    survey_classic.put("10", {"first_name": "a", "demographics_complete": "2"})
    survey_classic.put("2", {"first_name": "b", "demographics_complete": "0"})
    survey_classic.put("3", {"fav": "a"})
    project = survey_classic.pycap()
    rows = project.export_survey_participant_list("demographics")
    assert [list(row) for row in rows] == [
        [
            "email",
            "email_occurrence",
            "identifier",
            "record",
            "invitation_sent_status",
            "invitation_send_time",
            "response_status",
            "survey_access_code",
            "survey_link",
        ]
    ] * 3
    assert [(r["record"], r["response_status"]) for r in rows] == [("2", 1), ("3", 0), ("10", 2)]
    assert {(r["email"], r["email_occurrence"], r["invitation_sent_status"]) for r in rows} == {
        ("", 1, 0)
    }
    assert rows[0]["survey_link"] == project.export_survey_link("2", "demographics")
    assert rows[2]["survey_access_code"] == project.export_survey_access_code("10", "demographics")
    frame = project.export_survey_participant_list("demographics", format_type="df")
    assert list(frame["record"]) == [2, 3, 10]
    text = project.export_survey_participant_list("demographics", format_type="csv")
    assert text.splitlines()[0] == (
        "email,email_occurrence,identifier,record,invitation_sent_status,invitation_send_time,"
        "response_status,survey_access_code,survey_link"
    )
    assert text.splitlines()[1].startswith(",1,,2,0,,1,")


def test_longitudinal_survey_links_follow_events_and_instances(sandbox: SandboxServer) -> None:
    handle = seed_project(sandbox, "longitudinal", surveys=("vitals",))
    handle.put("1", {"weight": "70"}, event="baseline_arm_1")
    handle.put("1", {"weight": "71", "vitals_complete": "2"}, event="visit_2_arm_1", instance=1)
    handle.put("2", {"enroll_date": "2026-01-01"}, event="baseline_arm_2")
    project = handle.pycap()
    links = {
        (event, instance): project.export_survey_link("1", "vitals", event, instance)
        for event, instance in [("baseline_arm_1", 1), ("visit_2_arm_1", 1), ("visit_2_arm_1", 2)]
    }
    assert len(set(links.values())) == 3
    reply = post(handle, content="surveyLink", record="1", instrument="vitals", format="json")
    assert error(reply) == (400, 'The parameter "event" is missing')
    reply = post(
        handle,
        content="surveyLink",
        record="1",
        instrument="vitals",
        event="baseline_arm_1",
        repeat_instance="2",
        format="json",
    )
    status, message = error(reply)
    assert status == 400 and message.startswith("repeat_instance cannot have a value")

    arm_1 = project.export_survey_participant_list("vitals", event="baseline_arm_1")
    assert [(r["record"], r["response_status"]) for r in arm_1] == [("1", 1)]
    assert arm_1[0]["survey_link"] == links[("baseline_arm_1", 1)]
    visit = project.export_survey_participant_list("vitals", event="visit_2_arm_1")
    assert [(r["record"], r["response_status"]) for r in visit] == [("1", 2)]
    assert visit[0]["survey_link"] == links[("visit_2_arm_1", 1)]
    arm_2 = project.export_survey_participant_list("vitals", event="baseline_arm_2")
    assert [(r["record"], r["response_status"]) for r in arm_2] == [("2", 0)]


# -- PDF ------------------------------------------------------------------------------------------


def pdf_text(content: bytes) -> str:
    """The text of a PDF as a reader sees it (strict parsing: a malformed file fails)."""
    pypdf = pytest.importorskip("pypdf")
    reader = pypdf.PdfReader(io.BytesIO(content), strict=True)
    return "\n".join(page.extract_text() for page in reader.pages)


def test_pdf_has_fpdf_layout_and_a_valid_cross_reference(classic: Handle) -> None:
    content, meta = classic.pycap().export_pdf()
    assert content.startswith(b"%PDF-1.3\n3 0 obj\n")
    assert re.fullmatch(r"TestProject_\d{4}-\d\d-\d\d_\d{4}\.pdf", meta["name"])
    raw = post(classic, content="pdf", action="export", returnFormat="json")
    assert raw.headers["content-type"] == f'application/pdf; name="{meta["name"]}"'
    start = int(re.search(rb"startxref\n(\d+)\n%%EOF\n$", content)[1])
    table = re.match(rb"xref\n0 (\d+)\n0000000000 65535 f \n", content[start:])
    assert table is not None
    offsets = re.findall(rb"(\d{10}) 00000 n \n", content[start:])
    assert len(offsets) == int(table[1]) - 1
    for number, offset in enumerate(offsets, 1):
        assert content[int(offset) :].startswith(b"%d 0 obj\n" % number)
    pages = re.search(rb"/Count (\d+)", content)
    assert pages is not None and int(pages[1]) == content.count(b"/Type /Page\n")


def test_blank_pdf_lists_every_field_with_its_choices(classic: Handle) -> None:
    text = pdf_text(classic.pycap().export_pdf()[0])
    for row in dictionary_rows(CLASSIC_DICTIONARY):
        assert row["field_label"] in text
        for choice in row["select_choices_or_calculations"].split("|"):
            if row["field_type"] in ("radio", "checkbox", "dropdown"):
                assert f"[ ] {choice.partition(',')[2].strip()}" in text
    assert "[ ] Yes" in text and "[ ] Complete" in text
    only = pdf_text(classic.pycap().export_pdf(instrument="followup")[0])
    assert "Favourite fruit" in only and "First name" not in only


def test_record_pdfs_show_values(classic: Handle) -> None:
    classic.put("1", {"first_name": "Ann", "sex": "2", "colors___1": "1", "colors____99": "1"})
    classic.put("2", {"first_name": "Bob", "fav": "b", "followup_complete": "2"})
    project = classic.pycap()
    one = pdf_text(project.export_pdf(record="1")[0])
    assert "Ann" in one and "Bob" not in one and "Favourite fruit" not in one
    assert "[X] Female" in one and "[ ] Male" in one
    assert "[X] Red" in one and "[ ] Green" in one and "[X] Unknown" in one
    compact = pdf_text(project.export_pdf(record="1", compact_display=True)[0])
    assert "Ann" in compact and "Date of birth" not in compact
    blank_form = pdf_text(project.export_pdf(record="1", instrument="followup")[0])
    assert "Record ID 1" in blank_form and "Favourite fruit" in blank_form
    every = pdf_text(project.export_pdf(all_records=True)[0])
    assert "Ann" in every and "[X] Banana" in every and every.count("Record ID 2") == 2

    common = {"content": "pdf", "action": "export", "returnFormat": "json"}
    assert error(post(classic, record="-1", **common)) == (400, 'The record "-1" does not exist')
    assert error(post(classic, instrument="nope", **common)) == (
        400,
        'The value of the parameter "instrument" is not valid',
    )


def test_longitudinal_pdf_follows_events_and_instances(longitudinal: Handle) -> None:
    longitudinal.put("1", {"enroll_date": "2026-01-02", "group": "1"}, event="baseline_arm_1")
    for instance, name in ((1, "Aspirin"), (2, "Ibuprofen")):
        longitudinal.put(
            "1",
            {"med_name": name},
            event="visit_1_arm_1",
            repeat_instrument="medications",
            instance=instance,
        )
    project = longitudinal.pycap()
    visit = pdf_text(project.export_pdf(record="1", event="visit_1_arm_1")[0])
    assert "Visit 1 (Arm 1: Drug A) | Instance 2" in visit
    assert "Aspirin" in visit and "Ibuprofen" in visit and "Enrollment date" not in visit
    second = pdf_text(project.export_pdf(record="1", event="visit_1_arm_1", repeat_instance=2)[0])
    assert "Ibuprofen" in second and "Aspirin" not in second
    whole = pdf_text(project.export_pdf(record="1")[0])
    assert "2026-01-02" in whole and "[X] Drug" in whole and "Ibuprofen" in whole
    reply = post(
        longitudinal, content="pdf", action="export", record="1", event="nope", returnFormat="json"
    )
    assert error(reply) == (400, 'The value of the parameter "event" is not valid')


# -- reports --------------------------------------------------------------------------------------


def add_report(handle: Handle, **definition: Any) -> str:
    """A saved report, stored as the project-XML loader stores one."""
    with handle.server.store.transaction() as conn:
        cursor = conn.execute(
            "INSERT INTO report (project_id, definition) VALUES (?, ?)",
            (handle.project_id, json.dumps({"title": "Report", **definition})),
        )
    return str(cursor.lastrowid)


def test_classic_report_limits_fields_and_rows(classic: Handle) -> None:
    classic.put("1", {"first_name": "Ann", "sex": "2", "colors___2": "1", "weight": "70.5"})
    classic.put("2", {"first_name": "Bob", "sex": "1", "weight": "80.1"})
    classic.put("10", {"first_name": "Cid", "sex": "2", "fav": "a"})
    report_id = add_report(
        classic, fields=["weight", "sex", "colors", "first_name"], filter_logic="[sex] = '2'"
    )
    project = classic.pycap()
    raw = project.export_report(report_id)
    assert list(raw[0]) == [
        "record_id",
        "first_name",
        "weight",
        "sex",
        "colors___1",
        "colors___2",
        "colors____99",
    ]
    assert raw == [
        {
            "record_id": "1",
            "first_name": "Ann",
            "weight": "70.5",
            "sex": "2",
            "colors___1": "0",
            "colors___2": "1",
            "colors____99": "0",
        },
        {
            "record_id": "10",
            "first_name": "Cid",
            "weight": "",
            "sex": "2",
            "colors___1": "0",
            "colors___2": "0",
            "colors____99": "0",
        },
    ]
    labels = project.export_report(report_id, raw_or_label="label")
    assert [(r["sex"], r["colors___2"]) for r in labels] == [
        ("Female", "Checked"),
        ("Female", "Unchecked"),
    ]
    options = project.export_report(report_id, raw_or_label="label", export_checkbox_labels=True)
    assert [r["colors___2"] for r in options] == ["Green", ""]
    text = project.export_report(
        report_id, format_type="csv", raw_or_label_headers="label", csv_delimiter=";"
    )
    assert text == (
        '"Study ID";"First name";"Weight (kg)";Sex;"Colours (choice=Red)";'
        '"Colours (choice=Green)";"Colours (choice=Unknown)"\n'
        "1;Ann;70.5;2;0;1;0\n"
        "10;Cid;;2;0;0;0\n"
    )
    comma = post(
        classic, content="report", report_id=report_id, format="json", decimalCharacter=","
    )
    assert [r["weight"] for r in comma.json()] == ["70,5", ""]
    frame = project.export_report(report_id, format_type="df")
    assert list(frame.index) == [1, 10] and list(frame["first_name"]) == ["Ann", "Cid"]


def test_report_refusals(classic: Handle) -> None:
    for report_id in ("99999", "x"):
        reply = post(classic, content="report", report_id=report_id, format="json")
        assert error(reply) == (400, 'The value of the parameter "report_id" is not valid')
    with pytest.raises(RedcapError, match="report_id"):
        classic.pycap().export_report("99999")
    report_id = add_report(classic, fields=["first_name"])
    reader = classic.add_user("no_export", api_export=0)
    reply = post(classic, reader, content="report", report_id=report_id, format="json")
    assert error(reply) == (403, "You do not have API Export privileges")


def test_longitudinal_report_keeps_its_events_and_repeat_columns(longitudinal: Handle) -> None:
    longitudinal.put("1", {"weight": "75"}, event="baseline_arm_1")
    longitudinal.put("1", {"weight": "71"}, event="visit_1_arm_1")
    longitudinal.put("1", {"weight": "60"}, event="visit_2_arm_1", instance=1)
    longitudinal.put(
        "1",
        {"med_name": "Aspirin"},
        event="visit_1_arm_1",
        repeat_instrument="medications",
        instance=2,
    )
    longitudinal.put("2", {"weight": "90"}, event="baseline_arm_2")
    report_id = add_report(
        longitudinal,
        fields=["med_name", "weight", "gone_field"],
        events=["visit_1_arm_1", "baseline_arm_2"],
        filter_logic="[weight] > 70 or [med_name] <> ''",
    )
    rows = longitudinal.pycap().export_report(report_id)
    assert rows == [
        {
            "record_id": "1",
            "redcap_event_name": "visit_1_arm_1",
            "redcap_repeat_instrument": "",
            "redcap_repeat_instance": "",
            "weight": "71",
            "med_name": "",
        },
        {
            "record_id": "1",
            "redcap_event_name": "visit_1_arm_1",
            "redcap_repeat_instrument": "medications",
            "redcap_repeat_instance": 2,
            "weight": "",
            "med_name": "Aspirin",
        },
        {
            "record_id": "2",
            "redcap_event_name": "baseline_arm_2",
            "redcap_repeat_instrument": "",
            "redcap_repeat_instance": "",
            "weight": "90",
            "med_name": "",
        },
    ]


def test_deleting_a_record_deletes_its_files_and_survey_links(sandbox: SandboxServer) -> None:
    handle = seed_project(sandbox, "classic", surveys=("demographics",))
    project = handle.pycap()
    project.import_records([{"record_id": "1", "first_name": "Ada"}])
    project.import_file(
        record="1", field="upload", file_name="a.txt", file_object=io.BytesIO(b"secret")
    )
    link = project.export_survey_link(record="1", instrument="demographics")
    assert project.delete_records(["1"]) == 1
    with sandbox.store.transaction() as conn:
        documents = conn.execute(
            "SELECT COUNT(*) FROM document WHERE project_id = ?", (handle.project_id,)
        ).fetchone()[0]
    assert documents == 0
    project.import_records([{"record_id": "1", "first_name": "Bea"}])
    assert project.export_survey_link(record="1", instrument="demographics") != link
