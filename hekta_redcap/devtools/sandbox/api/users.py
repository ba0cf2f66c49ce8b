"""Users, user roles, role mappings, data access groups and user-DAG mappings.

Rights are one JSON object per user (`user.rights`) and per role (`role.rights`): REDCap's
privilege flags as ints and the `forms`/`forms_export` maps of form name to level. A user's
object also holds the profile (email, firstname, lastname, expiration). A user assigned to a
role works with the role's flags and form maps (`endpoints.load_user`), as in REDCap, and the
user export shows those effective rights.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import string
from collections.abc import Iterable
from typing import Any

from hekta_redcap.devtools.sandbox.endpoints import Call, endpoint
from hekta_redcap.devtools.sandbox.models import CREATOR_RIGHTS, ProjectModel, unique_group_name
from hekta_redcap.devtools.sandbox.wire import (
    ApiError,
    Reply,
    invalid_values,
    parse_data,
    render_count,
    render_rows,
    render_text,
)

USER_FLAGS = tuple(CREATOR_RIGHTS)
# A role lists the three locking flags in another order than a user (PyCap doctest).
ROLE_FLAGS = (
    *USER_FLAGS[:-3],
    "lock_records_customization",
    "lock_records",
    "lock_records_all_forms",
)
FORM_MAPS = ("forms", "forms_export")
PROFILE = ("email", "firstname", "lastname", "expiration")
USER_DAG = ("data_access_group", "data_access_group_id")
# Newer REDCap versions list `data_access_group_label` after `data_access_group_id`, but the
# installed PyCap's export_users doctest (run by test_sandbox_pycap_doctests) shows
# `'data_access_group_id': '', 'design': 1` with nothing between: the export leaves it out and
# the import accepts it (newer servers' exports carry it).
USER_COLUMNS = ("username", *PROFILE, *USER_DAG, *USER_FLAGS, *FORM_MAPS)
DAG_LABEL = "data_access_group_label"
ROLE_COLUMNS = ("unique_role_name", "role_label", *ROLE_FLAGS, *FORM_MAPS)
ROLE_MAPPING_COLUMNS = ("username", "unique_role_name", "data_access_group")
DAG_COLUMNS = ("data_access_group_name", "unique_group_name", "data_access_group_id")
DAG_MAPPING_COLUMNS = ("username", "redcap_data_access_group")
LEGACY_EXPORT = "data_export"  # pre-forms_export REDCap: one export level for every form

# Highest level of each multi-level right (REDCap's API help); every other flag is 0/1.
# forms: 0 none, 1 view & edit, 2 read-only, 3 also edit survey responses;
# forms_export: 0 none, 1 full, 2 de-identified, 3 without identifiers;
# user_rights: 2 read-only; lock_records: 2 with e-signature.
TOP_LEVEL = {"forms": 3, "forms_export": 3, LEGACY_EXPORT: 3, "user_rights": 2, "lock_records": 2}


def not_valid(what: str, values: Iterable[str]) -> ApiError:
    """One refusal naming every bad value ([U] wording, modelled on REDCap's `fields` error)."""
    listed = ", ".join(f"'{v}'" for v in values)
    return ApiError(f"The following {what} are not valid: {listed}")


def bad_value(name: str, value: str, owner: str) -> ApiError:
    return ApiError(f"The value '{value}' of '{name}' for '{owner}' is not valid")  # [U] wording


def data_rows(call: Call) -> list[dict[str, Any]]:
    return parse_data(call.params.require("data"), call.fmt, call.params.delimiter)


def text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def render(call: Call, rows: list[dict[str, Any]], columns: tuple[str, ...]) -> Reply:
    """Rows as REDCap sends them: JSON keeps the form maps as objects, CSV and XML write each
    map as one `form_a:1,form_b:0` cell."""
    if call.fmt != "json":
        rows = [
            {k: (flatten_levels(v) if isinstance(v, dict) else v) for k, v in row.items()}
            for row in rows
        ]
    return render_rows(rows, call.fmt, columns, delimiter=call.params.delimiter)


def flatten_levels(levels: dict[str, int]) -> str:
    return ",".join(f"{form}:{level}" for form, level in levels.items())


# -- rights -----------------------------------------------------------------------------------


def level(name: str, value: Any, owner: str) -> int:
    """A right's level as sent (int, or digits in CSV/XML/JSON strings), within its range."""
    raw = text(value)
    if not raw.isdigit() or int(raw) > TOP_LEVEL.get(name, 1):
        raise bad_value(name, raw, owner)
    return int(raw)


def form_levels(p: ProjectModel, name: str, value: Any, owner: str) -> dict[str, int]:
    """A form map sent as a JSON object or as a `form_a:1,form_b:0` cell."""
    pairs: list[tuple[str, Any]]
    if isinstance(value, dict):
        pairs = [(text(k), v) for k, v in value.items()]
    else:
        parts = [part.split(":", 1) for part in text(value).split(",") if part.strip()]
        if any(len(part) != 2 for part in parts):
            raise bad_value(name, text(value), owner)
        pairs = [(form, level) for form, level in parts]
    unknown = [form for form, _ in pairs if form.strip() not in p.forms]
    if unknown:
        raise not_valid(f"forms in \"{name}\" for '{owner}'", unknown)
    return {form.strip(): level(name, lvl, owner) for form, lvl in pairs}


def no_rights(p: ProjectModel) -> dict[str, Any]:
    """Where REDCap starts a user or role created through the API: no privilege at all.
    ([U] for form rights; no access is the choice that cannot leak data.)"""
    return {
        **dict.fromkeys(USER_FLAGS, 0),
        **{name: {form: 0 for form in p.forms} for name in FORM_MAPS},
    }


def update_rights(
    p: ProjectModel, rights: dict[str, Any], row: dict[str, Any], owner: str, allowed: set[str]
) -> None:
    """Apply the rights of one imported row; empty cells leave a right as it is. Unknown
    attribute names are refused, as REDCap does (redcapAPI #470)."""
    unknown = [key for key in row if key not in allowed]
    if unknown:
        raise not_valid("attribute names", unknown)
    if text(row.get(LEGACY_EXPORT)):
        every = level(LEGACY_EXPORT, row[LEGACY_EXPORT], owner)
        rights["forms_export"] = {form: every for form in p.forms}
    for key, value in row.items():
        if key in FORM_MAPS and (value if isinstance(value, dict) else text(value)):
            rights[key] = {**rights.get(key, {}), **form_levels(p, key, value, owner)}
        elif key in USER_FLAGS and text(value):
            rights[key] = level(key, value, owner)


def levels_of(p: ProjectModel, rights: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Form maps in form order, covering every current form (0 where nothing was set)."""
    return {
        name: {form: int(rights.get(name, {}).get(form, 0)) for form in p.forms}
        for name in FORM_MAPS
    }


# -- lookups ----------------------------------------------------------------------------------


def dags(call: Call) -> dict[str, tuple[int, str]]:
    """unique group name -> (dag id, label), in REDCap's listing order (by label) [I]."""
    rows = call.conn.execute(
        "SELECT unique_name, dag_id, name FROM dag WHERE project_id = ? "
        "ORDER BY name COLLATE NOCASE, dag_id",
        (call.p.project_id,),
    )
    return {r[0]: (r[1], r[2]) for r in rows}


def dag_names(call: Call) -> dict[int, str]:
    """dag id -> unique group name."""
    return {i: unique for unique, (i, _) in dags(call).items()}


def dag_id_of(call: Call, unique: str, what: str) -> int | None:
    """The id of a DAG named by its unique name (None for '', meaning no DAG)."""
    if not unique:
        return None
    found = dags(call).get(unique)
    if found is None:
        raise not_valid(what, [unique])
    return found[0]


def roles(call: Call) -> dict[str, tuple[int, str, dict[str, Any]]]:
    """unique role name -> (role id, label, rights), oldest first (a new role is listed last)."""
    rows = call.conn.execute(
        "SELECT unique_role_name, role_id, role_label, rights FROM role WHERE project_id = ? "
        "ORDER BY role_id",
        (call.p.project_id,),
    )
    return {r[0]: (r[1], r[2], json.loads(r[3])) for r in rows}


def users(call: Call) -> dict[str, dict[str, Any]]:
    """username -> own rights, by username."""
    rows = call.conn.execute(
        "SELECT username, rights FROM user WHERE project_id = ? ORDER BY username",
        (call.p.project_id,),
    )
    return {r[0]: json.loads(r[1]) for r in rows}


MEMBERSHIP = {"user_role": "role_id", "user_dag": "dag_id"}  # table -> what it assigns


def memberships(call: Call, table: str) -> dict[str, int]:
    """username -> role id (`user_role`) or dag id (`user_dag`)."""
    rows = call.conn.execute(
        f"SELECT username, {MEMBERSHIP[table]} FROM {table} WHERE project_id = ?",
        (call.p.project_id,),
    )
    return dict(rows.fetchall())


def known_users(call: Call, names: Iterable[str], what: str) -> None:
    known = users(call)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise not_valid(what, unknown)


def set_membership(call: Call, table: str, username: str, value: int | None) -> None:
    call.conn.execute(
        f"DELETE FROM {table} WHERE project_id = ? AND username = ?",
        (call.p.project_id, username),
    )
    if value is not None:
        call.conn.execute(
            f"INSERT INTO {table} (project_id, username, {MEMBERSHIP[table]}) VALUES (?, ?, ?)",
            (call.p.project_id, username, value),
        )


def save_user_rights(call: Call, username: str, rights: dict[str, Any]) -> None:
    call.conn.execute(
        "UPDATE user SET rights = ? WHERE project_id = ? AND username = ?",
        (json.dumps(rights), call.p.project_id, username),
    )


def leave_role(call: Call, username: str) -> None:
    """Take a user out of their role. The user keeps the role's rights as their own, as REDCap
    does when a user is removed from a role."""
    role_id = memberships(call, "user_role").get(username)
    if role_id is None:
        return
    role_rights = next(r for i, _, r in roles(call).values() if i == role_id)
    save_user_rights(call, username, {**users(call)[username], **role_rights})
    set_membership(call, "user_role", username, None)


# -- users ------------------------------------------------------------------------------------


@endpoint("user", "export", privilege=("api_export", "user_rights"))
def export_users(call: Call) -> Reply:
    p = call.p
    in_dag = memberships(call, "user_dag")
    in_role = memberships(call, "user_role")
    role_rights = {i: r for i, _, r in roles(call).values()}
    groups = dag_names(call)
    rows = []
    for username, own in users(call).items():
        # the same overlay as endpoints.load_user: a role's rights replace the user's own
        rights = {**own, **role_rights.get(in_role.get(username, -1), {})}
        dag_id = in_dag.get(username, -1)
        rows.append(
            {
                "username": username,
                **{key: rights.get(key, "") for key in PROFILE},
                "data_access_group": groups.get(dag_id, ""),
                "data_access_group_id": dag_id if dag_id in groups else "",
                **{flag: int(rights.get(flag, 0)) for flag in USER_FLAGS},
                **levels_of(p, rights),
            }
        )
    return render(call, rows, USER_COLUMNS)


@endpoint("user", "import", privilege=("api_import", "user_rights"))
def import_users(call: Call) -> Reply:
    """Add or update users from partial rows. New users get no rights and no token: REDCap
    issues tokens only when an administrator grants one. The rights of a user in a role are
    saved as the user's own but take effect only once the user leaves the role [U]."""
    p = call.p
    current = users(call)
    allowed = {*USER_COLUMNS, DAG_LABEL, LEGACY_EXPORT}
    rows = data_rows(call)
    for row in rows:
        username = text(row.get("username"))
        if not username:
            raise ApiError("The username is missing")  # [U] wording
        created = username not in current
        rights = no_rights(p) if created else current[username]
        update_rights(p, rights, row, username, allowed)
        for key in PROFILE:
            if key in row:
                rights[key] = text(row[key])
        expiration = rights.get("expiration", "")
        if expiration and not valid_date(expiration):
            raise bad_value("expiration", expiration, username)
        if created:
            call.conn.execute(
                "INSERT INTO user (project_id, username, token, rights) VALUES (?, ?, NULL, ?)",
                (p.project_id, username, json.dumps(rights)),
            )
        else:
            save_user_rights(call, username, rights)
        current[username] = rights
        if "data_access_group" in row:
            unique = text(row["data_access_group"])
            dag_id = dag_id_of(call, unique, 'values of "data_access_group"')
            set_membership(call, "user_dag", username, dag_id)
        action = "Add user" if created else "Edit user"
        p.log(call.u.username, f"{action} {username}", f"user = '{username}'", kind="user")
    return render_count(len(rows), call.return_format)


def valid_date(value: str) -> bool:
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) is not None


@endpoint("user", "delete", privilege=("api_import", "user_rights"))
def delete_users(call: Call) -> Reply:
    names = call.params.require_array("users")
    known_users(call, names, 'values in the parameter "users"')
    for username in names:
        for table in ("user", "user_role", "user_dag"):
            call.conn.execute(
                f"DELETE FROM {table} WHERE project_id = ? AND username = ?",
                (call.p.project_id, username),
            )
        call.p.log(call.u.username, f"Delete user {username}", f"user = '{username}'", kind="user")
    return render_count(len(names), call.return_format)


# -- roles ------------------------------------------------------------------------------------


def new_role_name(taken: Iterable[str]) -> str:
    """REDCap's unique role name: `U-` and 10 uppercase letters or digits (`U-942MC93HH8`)."""
    alphabet = string.ascii_uppercase + string.digits
    taken = set(taken)
    while True:
        name = "U-" + "".join(secrets.choice(alphabet) for _ in range(10))
        if name not in taken:
            return name


@endpoint("userRole", "export", privilege=("api_export", "user_rights"))
def export_user_roles(call: Call) -> Reply:
    """Roles with their flags as strings ('0'), unlike a user's, and form maps of ints."""
    rows = [
        {
            "unique_role_name": unique,
            "role_label": label,
            **{flag: str(int(rights.get(flag, 0))) for flag in ROLE_FLAGS},
            **levels_of(call.p, rights),
        }
        for unique, (_, label, rights) in roles(call).items()
    ]
    return render(call, rows, ROLE_COLUMNS)


@endpoint("userRole", "import", privilege=("api_import", "user_rights"))
def import_user_roles(call: Call) -> Reply:
    """Rows without a `unique_role_name` create roles; others update the role they name."""
    p = call.p
    current = roles(call)
    allowed = {*ROLE_COLUMNS, LEGACY_EXPORT}
    rows = data_rows(call)
    for row in rows:
        unique = text(row.get("unique_role_name"))
        label = text(row.get("role_label"))
        if unique and unique not in current:
            raise not_valid('values of "unique_role_name"', [unique])
        if not unique and not label:
            raise ApiError("The role_label is missing")  # [U] wording
        role_id, old_label, rights = current.get(unique, (None, "", no_rights(p)))
        created = role_id is None
        label = label or old_label
        update_rights(p, rights, row, label, allowed)
        if role_id is None:
            unique = new_role_name(current)
            cursor = call.conn.execute(
                "INSERT INTO role (project_id, unique_role_name, role_label, rights) "
                "VALUES (?, ?, ?, ?)",
                (p.project_id, unique, label, json.dumps(rights)),
            )
            role_id = int(cursor.lastrowid or 0)
        else:
            call.conn.execute(
                "UPDATE role SET role_label = ?, rights = ? WHERE role_id = ?",
                (label, json.dumps(rights), role_id),
            )
        current[unique] = (role_id, label, rights)
        action = "Add user role" if created else "Edit user role"
        p.log(call.u.username, action, f"role = '{label}'", kind="user")
    return render_count(len(rows), call.return_format)


@endpoint("userRole", "delete", privilege=("api_import", "user_rights"))
def delete_user_roles(call: Call) -> Reply:
    names = call.params.require_array("roles")
    current = roles(call)
    if unknown := [name for name in names if name not in current]:
        raise invalid_values("roles", unknown)
    for name in names:
        role_id, label, _ = current[name]
        for username, member_of in memberships(call, "user_role").items():
            if member_of == role_id:
                leave_role(call, username)
        call.conn.execute("DELETE FROM role WHERE role_id = ?", (role_id,))
        call.p.log(call.u.username, "Delete user role", f"role = '{label}'", kind="user")
    return render_count(len(names), call.return_format)


@endpoint("userRoleMapping", "export", privilege=("api_export", "user_rights"))
def export_user_role_mapping(call: Call) -> Reply:
    role_names = {i: unique for unique, (i, _, _) in roles(call).items()}
    groups = dag_names(call)
    in_role = memberships(call, "user_role")
    in_dag = memberships(call, "user_dag")
    rows = [
        {
            "username": username,
            "unique_role_name": role_names.get(in_role.get(username, -1), ""),
            "data_access_group": groups.get(in_dag.get(username, -1), ""),
        }
        for username in users(call)
    ]
    return render_rows(rows, call.fmt, ROLE_MAPPING_COLUMNS, delimiter=call.params.delimiter)


@endpoint("userRoleMapping", "import", privilege=("api_import", "user_rights"))
def import_user_role_mapping(call: Call) -> Reply:
    """Assign users to roles; an empty `unique_role_name` takes the user out of their role.
    Other columns (the export's `data_access_group`) are ignored."""
    rows = data_rows(call)
    current = roles(call)
    known_users(call, [text(r.get("username")) for r in rows], 'values of "username"')
    unknown = [text(r.get("unique_role_name")) for r in rows]
    unknown = [name for name in unknown if name and name not in current]
    if unknown:
        raise not_valid('values of "unique_role_name"', unknown)
    for row in rows:
        username, unique = text(row.get("username")), text(row.get("unique_role_name"))
        leave_role(call, username)
        if unique:
            role_id, label, _ = current[unique]
            set_membership(call, "user_role", username, role_id)
            details = f"user = '{username}', role = '{label}'"
            call.p.log(call.u.username, "Assign user to role", details, kind="user")
        else:
            details = f"user = '{username}'"
            call.p.log(call.u.username, "Remove user from role", details, kind="user")
    return render_count(len(rows), call.return_format)


# -- data access groups -----------------------------------------------------------------------


@endpoint("dag", "export", privilege=("api_export", "data_access_groups"))
def export_dags(call: Call) -> Reply:
    rows = [
        {"data_access_group_name": label, "unique_group_name": unique, "data_access_group_id": i}
        for unique, (i, label) in dags(call).items()
    ]
    return render_rows(rows, call.fmt, DAG_COLUMNS, delimiter=call.params.delimiter)


@endpoint("dag", "import", privilege=("api_import", "data_access_groups"))
def import_dags(call: Call) -> Reply:
    """An empty `unique_group_name` creates a group; an existing one renames it."""
    p = call.p
    rows = data_rows(call)
    for row in rows:
        label, unique = text(row.get("data_access_group_name")), text(row.get("unique_group_name"))
        if not label:
            raise ApiError("The data_access_group_name is missing")  # [U] wording
        current = dags(call)
        if unique:
            dag_id = dag_id_of(call, unique, 'values of "unique_group_name"')
            call.conn.execute("UPDATE dag SET name = ? WHERE dag_id = ?", (label, dag_id))
            details = f"group = '{current[unique][1]}' -> '{label}'"
            p.log(call.u.username, "Rename data access group", details, kind="manage")
        else:
            call.conn.execute(
                "INSERT INTO dag (project_id, name, unique_name) VALUES (?, ?, ?)",
                (p.project_id, label, unique_group_name(label, current)),
            )
            p.log(call.u.username, "Create data access group", f"group = '{label}'", kind="manage")
    return render_count(len(rows), call.return_format)


@endpoint("dag", "delete", privilege=("api_import", "data_access_groups"))
def delete_dags(call: Call) -> Reply:
    """Delete groups; their records and users are left without a group."""
    names = call.params.require_array("dags")
    current = dags(call)
    if unknown := [name for name in names if name not in current]:
        raise invalid_values("dags", unknown)
    for name in names:
        dag_id, label = current[name]
        call.conn.execute(
            "UPDATE record SET dag_id = NULL WHERE project_id = ? AND dag_id = ?",
            (call.p.project_id, dag_id),
        )
        call.conn.execute("DELETE FROM user_dag WHERE dag_id = ?", (dag_id,))
        call.conn.execute("DELETE FROM dag WHERE dag_id = ?", (dag_id,))
        call.p.log(call.u.username, "Delete data access group", f"group = '{label}'", kind="manage")
    return render_count(len(names), call.return_format)


@endpoint("dag", "switch", privilege=("api_import", "data_access_groups"))
def switch_dag(call: Call) -> Reply:
    """Move the calling user into a group. REDCap allows only groups granted on its DAG
    Switcher page; the sandbox has no switcher, so users with DAG rights may pick any group."""
    unique = call.params.require("dag")
    dag_id = dag_id_of(call, unique, 'values of the parameter "dag"')
    set_membership(call, "user_dag", call.u.username, dag_id)
    call.p.log(call.u.username, "Switch data access group", f"group = '{unique}'", kind="manage")
    return render_text("1")


@endpoint("userDagMapping", "export", privilege=("api_export", "data_access_groups"))
def export_user_dag_mapping(call: Call) -> Reply:
    groups = dag_names(call)
    in_dag = memberships(call, "user_dag")
    rows = [
        {"username": name, "redcap_data_access_group": groups.get(in_dag.get(name, -1), "")}
        for name in users(call)
    ]
    return render_rows(rows, call.fmt, DAG_MAPPING_COLUMNS, delimiter=call.params.delimiter)


@endpoint("userDagMapping", "import", privilege=("api_import", "data_access_groups"))
def import_user_dag_mapping(call: Call) -> Reply:
    """Put users into groups; an empty `redcap_data_access_group` takes them out."""
    rows = data_rows(call)
    known_users(call, [text(r.get("username")) for r in rows], 'values of "username"')
    for row in rows:
        username, unique = text(row.get("username")), text(row.get("redcap_data_access_group"))
        dag_id = dag_id_of(call, unique, 'values of "redcap_data_access_group"')
        set_membership(call, "user_dag", username, dag_id)
        details = f"user = '{username}', group = '{unique}'"
        action = "Assign user to data access group" if unique else "Remove user from group"
        call.p.log(call.u.username, action, details, kind="manage")
    return render_count(len(rows), call.return_format)
