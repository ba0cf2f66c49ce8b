"""Access control and logging on the local REDCap-compatible server: tokens and privileges,
users, roles, data access groups and their mappings, and the logging export, driven through
PyCap (and `requests` for raw bodies and status codes)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
import redcap
import requests
from redcap import RedcapError
from sandbox_support import CREATOR, Handle

NO_PERMISSION = "You do not have permissions to use the API"
# REDCap's user export keys, less data_access_group_label (see USER_COLUMNS in api/users.py)
USER_KEYS = [
    "username",
    "email",
    "firstname",
    "lastname",
    "expiration",
    "data_access_group",
    "data_access_group_id",
    "design",
    "alerts",
    "user_rights",
    "data_access_groups",
    "reports",
    "stats_and_charts",
    "manage_survey_participants",
    "calendar",
    "data_import_tool",
    "data_comparison_tool",
    "logging",
    "email_logging",
    "file_repository",
    "data_quality_create",
    "data_quality_execute",
    "api_export",
    "api_import",
    "api_modules",
    "mobile_app",
    "mobile_app_download_data",
    "record_create",
    "record_rename",
    "record_delete",
    "lock_records_all_forms",
    "lock_records",
    "lock_records_customization",
    "forms",
    "forms_export",
]
USER_FLAG_KEYS = USER_KEYS[7:-2]
CREATOR_ZEROS = {"email_logging", "mobile_app_download_data", "lock_records_customization"}
# PyCap's export_user_roles doctest: the locking flags in another order than a user's
ROLE_KEYS = [
    "unique_role_name",
    "role_label",
    *USER_FLAG_KEYS[:-3],
    "lock_records_customization",
    "lock_records",
    "lock_records_all_forms",
    "forms",
    "forms_export",
]
FORMS = ["demographics", "followup"]


def post(handle: Handle, token: str | None = None, **data: Any) -> requests.Response:
    """A raw API call (for bodies and status codes PyCap does not show)."""
    return requests.post(handle.url, data={"token": token or handle.token, **data}, timeout=10)


def stored(handle: Handle, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with handle.server.store.transaction() as conn:
        return [tuple(r) for r in conn.execute(sql, args).fetchall()]


def refused(call: Callable[[], Any], message: str) -> None:
    """The call fails with exactly REDCap's message (PyCap raises on the error body)."""
    with pytest.raises(RedcapError) as caught:
        call()
    error = caught.value.args[0]
    assert (error["error"] if isinstance(error, dict) else error) in (message, f"ERROR: {message}")


def user(project: redcap.Project, username: str) -> dict[str, Any]:
    return next(u for u in project.export_users() if u["username"] == username)


def parse_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


# -- tokens and privileges ----------------------------------------------------------------------


@pytest.mark.parametrize("token", ["", "not-a-token", "0" * 32, "A" * 31])
def test_a_bad_or_unknown_token_is_refused_in_every_format(classic: Handle, token: str) -> None:
    data = {"token": token, "content": "user"}
    reply = requests.post(classic.url, data={**data, "format": "json"}, timeout=10)
    assert (reply.status_code, reply.json()) == (403, {"error": NO_PERMISSION})
    reply = requests.post(classic.url, data={**data, "format": "csv"}, timeout=10)
    assert (reply.status_code, reply.text) == (403, f"ERROR: {NO_PERMISSION}")
    reply = requests.post(classic.url, data={**data, "format": "xml"}, timeout=10)
    assert reply.status_code == 403
    assert re.search(rf"<hash>\s*<error>{NO_PERMISSION}</error>\s*</hash>", reply.text)


def test_a_token_is_32_uppercase_hex_and_works_in_any_case(classic: Handle) -> None:
    assert re.fullmatch(r"[0-9A-F]{32}", classic.token)
    reply = post(classic, token=classic.token.lower(), content="dag", format="json")
    assert (reply.status_code, reply.json()) == (200, [])


# method -> (call, the area's own right)
AREA_CALLS: dict[str, tuple[Callable[[redcap.Project], Any], str]] = {
    "export_users": (lambda p: p.export_users(), "user_rights"),
    "import_users": (lambda p: p.import_users([{"username": "x"}]), "user_rights"),
    "delete_users": (lambda p: p.delete_users([CREATOR]), "user_rights"),
    "export_user_roles": (lambda p: p.export_user_roles(), "user_rights"),
    "import_user_roles": (lambda p: p.import_user_roles([{"role_label": "R"}]), "user_rights"),
    "delete_user_roles": (lambda p: p.delete_user_roles(["U-AAAAAAAAAA"]), "user_rights"),
    "export_user_role_assignment": (lambda p: p.export_user_role_assignment(), "user_rights"),
    "import_user_role_assignment": (lambda p: p.import_user_role_assignment([]), "user_rights"),
    "export_dags": (lambda p: p.export_dags(), "data_access_groups"),
    "import_dags": (
        lambda p: p.import_dags([{"data_access_group_name": "D"}]),
        "data_access_groups",
    ),
    "delete_dags": (lambda p: p.delete_dags(["d"]), "data_access_groups"),
    "switch_dag": (lambda p: p.switch_dag("d"), "data_access_groups"),
    "export_user_dag_assignment": (lambda p: p.export_user_dag_assignment(), "data_access_groups"),
    "import_user_dag_assignment": (
        lambda p: p.import_user_dag_assignment([]),
        "data_access_groups",
    ),
    "export_logging": (lambda p: p.export_logging(), "logging"),
}
RIGHT_ERRORS = {
    "api_export": "You do not have API Export privileges",
    "api_import": "You do not have API Import/Update privileges",
    "user_rights": "You do not have User Rights privileges",
    "data_access_groups": "You do not have Data Access Groups privileges",
    "logging": "You do not have Logging privileges",
}


@pytest.mark.parametrize("method", list(AREA_CALLS))
def test_each_call_needs_its_api_privilege_then_its_area_privilege(
    classic: Handle, method: str
) -> None:
    call, right = AREA_CALLS[method]
    api = "api_export" if method.startswith("export") else "api_import"
    # without both, the API privilege is reported first
    neither = classic.add_user("nobody", **{api: 0, right: 0})
    refused(lambda: call(classic.pycap(neither)), RIGHT_ERRORS[api])
    only_api = classic.add_user("api_only", **{right: 0})
    refused(lambda: call(classic.pycap(only_api)), RIGHT_ERRORS[right])


def test_a_missing_privilege_is_http_403(classic: Handle) -> None:
    token = classic.add_user("reader", api_import=0)
    reply = post(classic, token, content="dag", action="import", format="json", data="[]")
    assert (reply.status_code, reply.json()) == (403, {"error": RIGHT_ERRORS["api_import"]})


# These go through the records area (written in parallel): they fail until it exists.
RECORD_CALLS = [
    ("api_export", lambda p: p.export_records(), RIGHT_ERRORS["api_export"]),
    ("api_export", lambda p: p.export_metadata(), RIGHT_ERRORS["api_export"]),
    ("api_import", lambda p: p.import_records([{"record_id": "9"}]), RIGHT_ERRORS["api_import"]),
    (
        "record_delete",
        lambda p: p.delete_records(["1"]),
        "You do not have Delete Record privileges",
    ),
]


@pytest.mark.parametrize(("right", "call", "message"), RECORD_CALLS)
def test_record_calls_need_their_privileges(
    classic: Handle, right: str, call: Callable[[redcap.Project], Any], message: str
) -> None:
    classic.put("1", {"first_name": "Ann"})
    token = classic.add_user("limited", **{right: 0})
    refused(lambda: call(classic.pycap(token)), message)
    assert stored(
        classic, "SELECT record FROM record WHERE project_id = ?", classic.project_id
    ) == [("1",)]


def test_an_expired_user_loses_api_access(classic: Handle) -> None:
    token = classic.add_user("temp")
    project = classic.pycap()
    assert project.import_users([{"username": "temp", "expiration": "2099-12-31"}]) == 1
    assert classic.pycap(token).export_dags() == []
    assert project.import_users([{"username": "temp", "expiration": "2020-01-31"}]) == 1
    reply = post(classic, token, content="dag", format="json")
    assert (reply.status_code, reply.json()) == (403, {"error": NO_PERMISSION})
    refused(
        lambda: project.import_users([{"username": "temp", "expiration": "31.01.2020"}]),
        "The value '31.01.2020' of 'expiration' for 'temp' is not valid",
    )


# -- users --------------------------------------------------------------------------------------


def test_export_users_json_has_redcaps_keys_and_int_flags(classic: Handle) -> None:
    (creator,) = classic.pycap().export_users()
    assert list(creator) == USER_KEYS
    assert creator["username"] == CREATOR
    assert {k: creator[k] for k in USER_KEYS[1:7]} == dict.fromkeys(USER_KEYS[1:7], "")
    assert {f: creator[f] for f in USER_FLAG_KEYS} == {
        f: 0 if f in CREATOR_ZEROS else 1 for f in USER_FLAG_KEYS
    }
    assert all(type(creator[f]) is int for f in USER_FLAG_KEYS)
    assert creator["forms"] == creator["forms_export"] == {"demographics": 1, "followup": 1}


def test_export_users_csv_and_df_write_form_maps_as_one_cell(classic: Handle) -> None:
    project = classic.pycap()
    text = project.export_users(format_type="csv")
    header, row, end = text.split("\n")
    assert (header, end) == (",".join(USER_KEYS), "")
    flags = ",".join("0" if f in CREATOR_ZEROS else "1" for f in USER_FLAG_KEYS)
    maps = '"demographics:1,followup:1"'
    assert row == f"{CREATOR},,,,,,,{flags},{maps},{maps}"
    frame = project.export_users(format_type="df")
    assert list(frame.columns) == USER_KEYS
    assert frame.shape == (1, len(USER_KEYS))
    assert frame.loc[0, "design"] == 1 and frame.loc[0, "email_logging"] == 0
    assert frame.loc[0, "forms_export"] == "demographics:1,followup:1"


def test_a_new_user_starts_with_no_rights_and_no_token(classic: Handle) -> None:
    project = classic.pycap()
    assert project.import_users([{"username": "new_user", "email": "n@example.org"}]) == 1
    first, second = project.export_users()
    assert (first["username"], second["username"]) == ("new_user", CREATOR)
    assert first["email"] == "n@example.org"
    assert {f: first[f] for f in USER_FLAG_KEYS} == dict.fromkeys(USER_FLAG_KEYS, 0)
    assert first["forms"] == first["forms_export"] == {"demographics": 0, "followup": 0}
    sql = "SELECT token FROM user WHERE project_id = ? AND username = ?"
    assert stored(classic, sql, classic.project_id, "new_user") == [(None,)]


def test_an_exported_user_imports_back_unchanged_in_every_format(classic: Handle) -> None:
    classic.add_user("second", design=0, forms={"demographics": 2, "followup": 0})
    project = classic.pycap()
    before = project.export_users()
    assert project.import_users(before) == 2
    assert project.import_users(project.export_users(format_type="csv"), import_format="csv") == 2
    assert project.import_users(project.export_users(format_type="df"), import_format="df") == 2
    assert project.import_users(project.export_users(format_type="xml"), import_format="xml") == 2
    assert project.export_users() == before
    assert user(project, "second")["forms"] == {"demographics": 2, "followup": 0}


def test_import_users_updates_only_what_is_sent(classic: Handle) -> None:
    project = classic.pycap()
    project.import_users([{"username": "u", "design": 1, "forms": {"demographics": 2}}])
    sent = "username,calendar,forms\nu,1,followup:3\n"
    assert project.import_users(sent, import_format="csv", return_format_type="csv") == "1"
    exported = user(project, "u")
    assert (exported["design"], exported["calendar"]) == (1, 1)
    assert exported["forms"] == {"demographics": 2, "followup": 3}


def test_import_users_accepts_the_legacy_data_export_key(classic: Handle) -> None:
    """The PyCap doctest's full user, with this project's forms."""
    project = classic.pycap()
    doctest_user = {
        "username": "pandeharris@gmail.com",
        "email": "pandeharris@gmail.com",
        "firstname": "REDCap Trial",
        "lastname": "User",
        "expiration": "",
        "data_access_group": "",
        "data_access_group_id": "",
        "design": 0,
        "user_rights": 0,
        "data_export": 2,
        "reports": 1,
        "stats_and_charts": 1,
        "manage_survey_participants": 1,
        "calendar": 1,
        "data_access_groups": 0,
        "data_import_tool": 0,
        "data_comparison_tool": 0,
        "logging": 0,
        "file_repository": 1,
        "data_quality_create": 0,
        "data_quality_execute": 0,
        "api_export": 0,
        "api_import": 0,
        "mobile_app": 0,
        "mobile_app_download_data": 0,
        "record_create": 1,
        "record_rename": 0,
        "record_delete": 0,
        "lock_records_all_forms": 0,
        "lock_records": 0,
        "lock_records_customization": 0,
        "forms": {"demographics": 3},
    }
    assert project.import_users([doctest_user]) == 1
    exported = user(project, "pandeharris@gmail.com")
    assert exported["forms_export"] == {"demographics": 2, "followup": 2}
    assert exported["forms"] == {"demographics": 3, "followup": 0}
    assert (exported["firstname"], exported["reports"], exported["design"]) == (
        "REDCap Trial",
        1,
        0,
    )


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            {"colour": "red", "shoe": 1},
            "The following attribute names are not valid: 'colour', 'shoe'",
        ),
        ({"design": 2}, "The value '2' of 'design' for 'bad' is not valid"),
        ({"lock_records": "yes"}, "The value 'yes' of 'lock_records' for 'bad' is not valid"),
        ({"forms": {"demographics": 4}}, "The value '4' of 'forms' for 'bad' is not valid"),
        (
            {"forms_export": "nowhere:1"},
            "The following forms in \"forms_export\" for 'bad' are not valid: 'nowhere'",
        ),
        (
            {"data_access_group": "nowhere"},
            "The following values of \"data_access_group\" are not valid: 'nowhere'",
        ),
    ],
)
def test_import_users_refuses_bad_rows_and_saves_nothing(
    classic: Handle, row: dict[str, Any], message: str
) -> None:
    project = classic.pycap()
    refused(
        lambda: project.import_users([{"username": "fine"}, {"username": "bad", **row}]), message
    )
    assert [u["username"] for u in project.export_users()] == [CREATOR]
    reply = post(classic, content="user", format="json", data='[{"username": ""}]')
    assert (reply.status_code, reply.json()) == (400, {"error": "The username is missing"})


def test_levels_above_one_are_accepted_where_redcap_has_them(classic: Handle) -> None:
    project = classic.pycap()
    row = {
        "username": "locker",
        "lock_records": 2,
        "user_rights": 2,
        "forms_export": {"followup": 3},
    }
    assert project.import_users([row]) == 1
    exported = user(project, "locker")
    assert (exported["lock_records"], exported["user_rights"]) == (2, 2)
    assert exported["forms_export"] == {"demographics": 0, "followup": 3}


def test_delete_users_removes_them_with_their_token_and_mappings(classic: Handle) -> None:
    token = classic.add_user("leaving")
    project = classic.pycap()
    project.import_dags([{"data_access_group_name": "Site", "unique_group_name": ""}])
    project.import_user_dag_assignment(
        [{"username": "leaving", "redcap_data_access_group": "site"}]
    )
    assert project.delete_users(["leaving"], return_format_type="xml") == "1"
    assert [u["username"] for u in project.export_users()] == [CREATOR]
    assert stored(classic, "SELECT * FROM user_dag WHERE project_id = ?", classic.project_id) == []
    reply = post(classic, token, content="user", format="json")
    assert (reply.status_code, reply.json()) == (403, {"error": NO_PERMISSION})
    assert project.import_users([{"username": "a"}, {"username": "b"}]) == 2
    assert project.delete_users(["a", "b"]) == 2
    refused(
        lambda: project.delete_users(["ghost", CREATOR]),
        "The following values in the parameter \"users\" are not valid: 'ghost'",
    )
    assert [u["username"] for u in project.export_users()] == [CREATOR]


# -- roles --------------------------------------------------------------------------------------


def test_a_project_without_roles_exports_none(classic: Handle) -> None:
    project = classic.pycap()
    assert project.export_user_roles() == []
    assert project.export_user_roles(format_type="csv") == ",".join(ROLE_KEYS) + "\n"


def test_import_user_roles_creates_a_role_listed_last_with_string_flags(classic: Handle) -> None:
    project = classic.pycap()
    assert project.import_user_roles([{"role_label": "New Role"}]) == 1
    monitor = {
        "unique_role_name": "",
        "role_label": "Monitor",
        "api_export": 1,
        "reports": "1",
        "forms": {"demographics": 2},
        "forms_export": {"demographics": 2},
    }
    assert project.import_user_roles([monitor]) == 1
    first, last = project.export_user_roles()
    assert (first["role_label"], last["role_label"]) == ("New Role", "Monitor")
    assert list(last) == ROLE_KEYS
    assert re.fullmatch(r"U-[A-Z0-9]{10}", last["unique_role_name"])
    assert first["unique_role_name"] != last["unique_role_name"]
    flags = {k: last[k] for k in ROLE_KEYS[2:-2]}
    assert flags == {k: "1" if k in ("api_export", "reports") else "0" for k in ROLE_KEYS[2:-2]}
    assert last["forms"] == {"demographics": 2, "followup": 0}
    assert last["forms_export"] == {"demographics": 2, "followup": 0}


def test_roles_import_back_unchanged_and_update_by_unique_name(classic: Handle) -> None:
    project = classic.pycap()
    project.import_user_roles([{"role_label": "A"}, {"role_label": "B", "design": 1}])
    before = project.export_user_roles()
    assert project.import_user_roles(before) == 2
    text = project.export_user_roles(format_type="csv")
    assert project.import_user_roles(text, import_format="csv") == 2
    assert project.export_user_roles() == before
    assert parse_csv(text)[1]["forms"] == "demographics:0,followup:0"
    unique = before[0]["unique_role_name"]
    change = [{"unique_role_name": unique, "role_label": "A2", "forms": "followup:1"}]
    assert project.import_user_roles(change) == 1
    renamed = project.export_user_roles()[0]
    assert (renamed["unique_role_name"], renamed["role_label"]) == (unique, "A2")
    assert renamed["forms"] == {"demographics": 0, "followup": 1}
    refused(
        lambda: project.import_user_roles([{"unique_role_name": "U-NOSUCHROLE"}]),
        "The following values of \"unique_role_name\" are not valid: 'U-NOSUCHROLE'",
    )
    refused(lambda: project.import_user_roles([{"design": 1}]), "The role_label is missing")


def test_a_user_in_a_role_works_with_the_roles_rights(classic: Handle) -> None:
    token = classic.add_user("bob")
    project = classic.pycap()
    project.import_user_roles(
        [{"role_label": "Readers", "user_rights": 1, "forms": "demographics:2"}]
    )
    role = project.export_user_roles()[-1]["unique_role_name"]
    mapping = [{"username": "bob", "unique_role_name": role}]
    assert project.import_user_role_assignment(mapping) == 1
    # the role has no API export: bob's own rights no longer count
    refused(lambda: classic.pycap(token).export_users(), RIGHT_ERRORS["api_export"])
    bob = user(project, "bob")
    assert (bob["api_export"], bob["user_rights"], bob["design"]) == (0, 1, 0)
    assert bob["forms"] == {"demographics": 2, "followup": 0}
    # out of the role, bob keeps the role's rights as his own (as REDCap does)
    out = [{"username": "bob", "unique_role_name": ""}]
    assert project.import_user_role_assignment(out) == 1
    assert user(project, "bob") == bob
    refused(lambda: classic.pycap(token).export_users(), RIGHT_ERRORS["api_export"])


def test_user_role_assignment_export_and_import(classic: Handle) -> None:
    classic.add_user("carol")
    project = classic.pycap()
    project.import_user_roles([{"role_label": "Staff"}])
    role = project.export_user_roles()[0]["unique_role_name"]
    project.import_dags([{"data_access_group_name": "North", "unique_group_name": ""}])
    project.import_user_dag_assignment([{"username": "carol", "redcap_data_access_group": "north"}])
    assert (
        project.import_user_role_assignment([{"username": "carol", "unique_role_name": role}]) == 1
    )
    expected = [
        {"username": "carol", "unique_role_name": role, "data_access_group": "north"},
        {"username": CREATOR, "unique_role_name": "", "data_access_group": ""},
    ]
    assert project.export_user_role_assignment() == expected
    text = project.export_user_role_assignment(format_type="csv")
    assert text == f"username,unique_role_name,data_access_group\ncarol,{role},north\n{CREATOR},,\n"
    frame = project.export_user_role_assignment(format_type="df")
    assert list(frame["username"]) == ["carol", CREATOR]
    assert project.import_user_role_assignment(expected) == 2
    assert project.import_user_role_assignment(text, import_format="csv") == 2
    assert project.export_user_role_assignment() == expected
    refused(
        lambda: project.import_user_role_assignment(
            [{"username": "carol", "unique_role_name": "U-X"}]
        ),
        "The following values of \"unique_role_name\" are not valid: 'U-X'",
    )
    refused(
        lambda: project.import_user_role_assignment(
            [{"username": "dan", "unique_role_name": role}]
        ),
        "The following values of \"username\" are not valid: 'dan'",
    )


def test_delete_user_roles_keeps_members_rights(classic: Handle) -> None:
    classic.add_user("erin")
    project = classic.pycap()
    project.import_user_roles([{"role_label": "Gone", "calendar": 1}, {"role_label": "Kept"}])
    gone, kept = (r["unique_role_name"] for r in project.export_user_roles())
    project.import_user_role_assignment([{"username": "erin", "unique_role_name": gone}])
    erin = user(project, "erin")
    assert project.delete_user_roles([gone]) == 1
    assert [r["unique_role_name"] for r in project.export_user_roles()] == [kept]
    assert user(project, "erin") == erin
    assert project.export_user_role_assignment()[0]["unique_role_name"] == ""
    assert project.delete_user_roles([kept], return_format_type="csv") == "1"
    refused(
        lambda: project.delete_user_roles([kept]),
        f"The following values in the parameter \"roles\" are not valid: '{kept}'",
    )


# -- data access groups -------------------------------------------------------------------------


def test_import_dags_names_groups_as_redcap_does(classic: Handle) -> None:
    project = classic.pycap()
    assert project.export_dags() == []
    new = [
        {"data_access_group_name": "Test DAG", "unique_group_name": ""},
        {"data_access_group_name": "Hospital of Northern Norway"},
        {"data_access_group_name": "test dag", "unique_group_name": ""},
    ]
    assert project.import_dags(new) == 3
    dags = project.export_dags()
    assert [list(d) for d in dags] == [
        ["data_access_group_name", "unique_group_name", "data_access_group_id"]
    ] * 3
    assert [(d["data_access_group_name"], d["unique_group_name"]) for d in dags] == [
        ("Hospital of Northern Norway", "hospital_of_northe"),
        ("Test DAG", "test_dag"),
        ("test dag", "test_dagb"),
    ]
    ids = [d["data_access_group_id"] for d in dags]
    assert all(type(i) is int for i in ids) and len(set(ids)) == 3
    text = project.export_dags(format_type="csv")
    assert text.split("\n")[0:3] == [
        "data_access_group_name,unique_group_name,data_access_group_id",
        f'"Hospital of Northern Norway",hospital_of_northe,{ids[0]}',
        f'"Test DAG",test_dag,{ids[1]}',
    ]
    assert list(project.export_dags(format_type="df")["unique_group_name"]) == [
        "hospital_of_northe",
        "test_dag",
        "test_dagb",
    ]


def test_import_dags_renames_by_unique_name(classic: Handle) -> None:
    project = classic.pycap()
    project.import_dags([{"data_access_group_name": "Site A", "unique_group_name": ""}])
    (site,) = project.export_dags()
    text = "data_access_group_name,unique_group_name\nRenamed,site_a\n"
    assert project.import_dags(text, import_format="csv", return_format_type="csv") == "1"
    assert project.export_dags() == [{**site, "data_access_group_name": "Renamed"}]
    refused(
        lambda: project.import_dags([{"data_access_group_name": "X", "unique_group_name": "nope"}]),
        "The following values of \"unique_group_name\" are not valid: 'nope'",
    )
    refused(
        lambda: project.import_dags([{"unique_group_name": ""}]),
        "The data_access_group_name is missing",
    )


def test_delete_dags_leaves_records_and_users_without_a_group(classic: Handle) -> None:
    project = classic.pycap()
    project.import_dags([{"data_access_group_name": "Old"}, {"data_access_group_name": "Other"}])
    old_id = project.export_dags()[0]["data_access_group_id"]
    classic.put("1", {"first_name": "Ann"}, dag_id=old_id)
    project.switch_dag("old")
    assert project.delete_dags(["old"]) == 1
    assert [d["unique_group_name"] for d in project.export_dags()] == ["other"]
    sql = "SELECT record, dag_id FROM record WHERE project_id = ?"
    assert stored(classic, sql, classic.project_id) == [("1", None)]
    assert project.export_user_dag_assignment() == [
        {"username": CREATOR, "redcap_data_access_group": ""}
    ]
    refused(
        lambda: project.delete_dags(["old", "other"]),
        "The following values in the parameter \"dags\" are not valid: 'old'",
    )
    assert project.delete_dags(["other"], return_format_type="xml") == "1"


def test_switch_dag_moves_the_calling_user(classic: Handle) -> None:
    project = classic.pycap()
    project.import_dags([{"data_access_group_name": "Test DAG", "unique_group_name": ""}])
    assert project.switch_dag("test_dag") == "1"
    creator = project.export_users()[0]
    dag_id = project.export_dags()[0]["data_access_group_id"]
    assert (creator["data_access_group"], creator["data_access_group_id"]) == ("test_dag", dag_id)
    refused(
        lambda: project.switch_dag("elsewhere"),
        "The following values of the parameter \"dag\" are not valid: 'elsewhere'",
    )


def test_user_dag_assignment_export_and_import(classic: Handle) -> None:
    """The PyCap doctest's sequence: the mapping is listed by username."""
    project = classic.pycap()
    project.import_dags([{"data_access_group_name": "Test DAG", "unique_group_name": ""}])
    new_user = "pandeharris@gmail.com"
    assert project.import_users([{"username": new_user}]) == 1
    mapping = [{"username": new_user, "redcap_data_access_group": "test_dag"}]
    assert project.import_user_dag_assignment(mapping) == 1
    expected = [
        {"username": new_user, "redcap_data_access_group": "test_dag"},
        {"username": CREATOR, "redcap_data_access_group": ""},
    ]
    assert project.export_user_dag_assignment() == expected
    text = project.export_user_dag_assignment(format_type="csv")
    assert text == f"username,redcap_data_access_group\n{new_user},test_dag\n{CREATOR},\n"
    assert list(project.export_user_dag_assignment(format_type="df").columns) == [
        "username",
        "redcap_data_access_group",
    ]
    out = f"username,redcap_data_access_group\n{new_user},\n"
    assert project.import_user_dag_assignment(out, import_format="csv") == 1
    assert project.export_user_dag_assignment()[0]["redcap_data_access_group"] == ""
    assert user(project, new_user)["data_access_group_id"] == ""
    refused(
        lambda: project.import_user_dag_assignment(
            [{"username": new_user, "redcap_data_access_group": "none"}]
        ),
        "The following values of \"redcap_data_access_group\" are not valid: 'none'",
    )
    assert project.delete_users([new_user]) == 1


# -- logging ------------------------------------------------------------------------------------

ENTRIES = [  # (username, action, kind, record, when)
    ("alice", "Create record (API) 1", "record_add", "1", "2020-03-01 09:00:10"),
    ("alice", "Update record (API) 1", "record_edit", "1", "2020-03-01 09:05:00"),
    ("bob", "Delete record (API) 2", "record_delete", "2", "2020-03-02 10:00:00"),
    ("bob", "Data export (API)", "export", None, "2020-03-02 11:00:30"),
    ("alice", "Lock/Unlock Record 1", "lock_record", "1", "2020-03-03 08:00:00"),
    ("carol", "Page view", "page_view", None, "2020-03-03 08:01:00"),
]


def with_log(handle: Handle) -> redcap.Project:
    with handle.server.store.transaction() as conn:
        model = handle.model(conn)
        for username, action, kind, record, when in ENTRIES:
            model.log(username, action, "details", kind=kind, record=record, when=when)
    return handle.pycap()


def actions(rows: list[dict[str, Any]]) -> list[str]:
    return [row["action"] for row in rows]


def test_export_logging_lists_entries_newest_first(classic: Handle) -> None:
    rows = with_log(classic).export_logging()
    assert [list(row) for row in rows] == [
        ["timestamp", "username", "action", "details", "record"]
    ] * 7
    creation = rows[0]  # logged now, after the seeded entries (2020)
    assert (creation["action"], creation["details"]) == ("Manage/Design ", "Create project (API)")
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", creation["timestamp"])
    assert actions(rows[1:]) == [e[1] for e in reversed(ENTRIES)]
    assert rows[-1]["timestamp"] == "2020-03-01 09:00"
    assert [row["record"] for row in rows[1:]] == ["", "1", "", "2", "1", "1"]


@pytest.mark.parametrize(
    ("logtype", "expected"),
    [
        (
            "record",
            ["Delete record (API) 2", "Update record (API) 1", "Create record (API) 1"],
        ),
        ("record_add", ["Create record (API) 1"]),
        ("record_edit", ["Update record (API) 1"]),
        ("record_delete", ["Delete record (API) 2"]),
        ("export", ["Data export (API)"]),
        ("lock_record", ["Lock/Unlock Record 1"]),
        ("page_view", ["Page view"]),
        ("manage", ["Manage/Design "]),
        ("user", []),
    ],
)
def test_export_logging_filters_by_logtype(
    classic: Handle, logtype: str, expected: list[str]
) -> None:
    assert actions(with_log(classic).export_logging(log_type=logtype)) == expected


def test_export_logging_filters_by_user_record_and_time(classic: Handle) -> None:
    project = with_log(classic)
    assert actions(project.export_logging(user="bob")) == [
        "Data export (API)",
        "Delete record (API) 2",
    ]
    assert actions(project.export_logging(record="1")) == [
        "Lock/Unlock Record 1",
        "Update record (API) 1",
        "Create record (API) 1",
    ]
    window = project.export_logging(
        begin_time=datetime(2020, 3, 1, 9, 5), end_time=datetime(2020, 3, 2, 11, 0)
    )
    assert actions(window) == ["Delete record (API) 2", "Update record (API) 1"]
    # REDCap's own YYYY-MM-DD HH:MM form covers the whole end minute
    reply = post(
        classic,
        content="log",
        format="json",
        beginTime="2020-03-02 10:00",
        endTime="2020-03-02 11:00",
        user="bob",
    )
    assert actions(reply.json()) == ["Data export (API)", "Delete record (API) 2"]


def test_export_logging_filters_by_dag_and_restricts_dag_users(classic: Handle) -> None:
    project = with_log(classic)
    project.import_dags([{"data_access_group_name": "East"}])
    dag_id = project.export_dags()[0]["data_access_group_id"]
    classic.put("2", {"first_name": "Bo"}, dag_id=dag_id)
    classic.add_user("carol")
    project.import_user_dag_assignment([{"username": "carol", "redcap_data_access_group": "east"}])
    east = ["Page view", "Delete record (API) 2"]  # by a member, and about a member record
    assert actions(project.export_logging(dag="east")) == east
    refused(
        lambda: project.export_logging(dag="west"),
        "The following values of the parameter \"dag\" are not valid: 'west'",
    )
    project.switch_dag("east")
    assert actions(project.export_logging(log_type="record")) == ["Delete record (API) 2"]


def test_export_logging_csv_df_and_its_own_entry(classic: Handle) -> None:
    project = with_log(classic)
    text = project.export_logging(format_type="csv", user="bob")
    assert text == (
        "timestamp,username,action,details,record\n"
        '"2020-03-02 11:00",bob,"Data export (API)",details,\n'
        '"2020-03-02 10:00",bob,"Delete record (API) 2",details,2\n'
    )
    frame = project.export_logging(format_type="df", user="alice")
    assert list(frame.columns) == ["timestamp", "username", "action", "details", "record"]
    assert list(frame["record"]) == [1, 1, 1]
    newest = project.export_logging(log_type="manage")[0]
    assert (newest["action"], newest["details"]) == ("Manage/Design", "Export Logging (API)")
    assert newest["username"] == CREATOR


def test_export_logging_refuses_bad_filters(classic: Handle) -> None:
    for params, message in (
        ({"logtype": "everything"}, 'The value of the parameter "logtype" is not valid'),
        ({"beginTime": "yesterday"}, 'The value of the parameter "beginTime" is not valid'),
    ):
        reply = post(classic, content="log", format="json", **params)
        assert (reply.status_code, reply.json()) == (400, {"error": message})


def test_user_role_and_dag_changes_are_logged(classic: Handle) -> None:
    project = classic.pycap()
    project.import_users([{"username": "frank"}])
    project.import_users([{"username": "frank", "design": 1}])
    project.import_user_roles([{"role_label": "Team"}])
    role = project.export_user_roles()[0]["unique_role_name"]
    project.import_user_role_assignment([{"username": "frank", "unique_role_name": role}])
    project.import_dags([{"data_access_group_name": "West"}])
    project.import_dags([{"data_access_group_name": "West 2", "unique_group_name": "west"}])
    project.import_user_dag_assignment([{"username": "frank", "redcap_data_access_group": "west"}])
    project.delete_dags(["west"])
    project.delete_user_roles([role])
    project.delete_users(["frank"])
    manage = [(r["action"], r["details"]) for r in project.export_logging(log_type="manage")]
    assert manage[:4] == [
        ("Delete data access group", "group = 'West 2'"),
        ("Assign user to data access group", "user = 'frank', group = 'west'"),
        ("Rename data access group", "group = 'West' -> 'West 2'"),
        ("Create data access group", "group = 'West'"),
    ]
    assert [(r["action"], r["details"]) for r in project.export_logging(log_type="user")] == [
        ("Delete user frank", "user = 'frank'"),
        ("Delete user role", "role = 'Team'"),
        ("Assign user to role", "user = 'frank', role = 'Team'"),
        ("Add user role", "role = 'Team'"),
        ("Edit user frank", "user = 'frank'"),
        ("Add user frank", "user = 'frank'"),
    ]
    assert {r["username"] for r in project.export_logging(log_type="user")} == {CREATOR}
