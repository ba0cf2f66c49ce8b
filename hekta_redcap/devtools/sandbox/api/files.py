"""Files on file fields and the file repository.

Uploaded bytes live in table `document`: a file field holds the document's doc_id, a repository
file has a `repo_file` row. The helpers that find a record's form row from `record`, `event` and
`repeat_instance` (`locate` and its parts) and the download reply (`file_reply`) also serve
surveys and the PDF.
"""

from __future__ import annotations

import mimetypes
import re
import sqlite3

from werkzeug.datastructures import FileStorage

from hekta_redcap.devtools.sandbox.endpoints import Call, endpoint
from hekta_redcap.devtools.sandbox.models import DataRow, ProjectModel, now
from hekta_redcap.devtools.sandbox.wire import (
    CONTENT_TYPES,
    ApiError,
    Reply,
    invalid_parameter,
    render_rows,
)

REPOSITORY_COLUMNS = ("folder_id", "doc_id", "name", "role", "dag")
MAX_FOLDER_NAME = 150


def as_id(raw: str | None) -> int | None:
    """A positive id sent as text (small enough for SQLite), else None."""
    return int(raw) if raw and re.fullmatch(r"[0-9]{1,18}", raw) and int(raw) > 0 else None


def file_reply(name: str, mime: str, content: bytes) -> Reply:
    """Bytes with REDCap's `<mime>; name="<file>"` header. PHP appends the charset to text types
    after the name (PyCap reads both); REDCapR takes everything after `name="`."""
    content_type = f'{mime}; name="{name}"'
    if mime.startswith("text/"):
        content_type += ";charset=UTF-8"
    return Reply(content, content_type)


def empty_reply(call: Call) -> Reply:
    """The empty body REDCap answers file imports and deletes with."""
    return Reply(b"", CONTENT_TYPES[call.return_format])


# -- locating a record's form row -------------------------------------------------------------


def require_record(call: Call, record: str) -> None:
    """Refuse a record that is not there or, for a user in a DAG, not in the user's DAG."""
    info = call.p.record_info(record)
    if info is None or (call.u.dag_id is not None and info["dag_id"] != call.u.dag_id):
        raise ApiError(f'The record "{record}" does not exist')


def form_event(call: Call, form: str) -> int:
    """The event id the request's `event` names (0 in a classic project, where REDCap ignores
    it); the form must be designated for that event."""
    p = call.p
    if not p.longitudinal:
        return 0
    name = call.params.require("event")
    event = p.event(name)
    if event is None:
        raise invalid_parameter("event")
    if form not in p.forms_at(event.event_id):
        # [U] REDCap's exact text is unverified.
        raise ApiError(f'The instrument "{form}" is not designated for the event "{name}"')
    return event.event_id


def row_key(
    p: ProjectModel, record: str, event_id: int, form: str, instance: int | None
) -> tuple[str, int, str, int]:
    """The data row holding `form` for a record at an event: a repeating instrument's or
    event's instance (1 when none is given, as REDCap defaults), else the non-repeating row."""
    if p.repeats_form(event_id, form):
        return (record, event_id, form, instance or 1)
    if p.repeats_event(event_id):
        return (record, event_id, "", instance or 1)
    if (instance or 1) != 1:
        # [U] REDCap's text is unverified; modelled on its record-import refusal.
        raise ApiError(
            "repeat_instance cannot have a value since this instrument or event is not a "
            "repeating instrument or repeating event, respectively."
        )
    return (record, event_id, "", 0)


def repeat_instance(call: Call) -> int | None:
    raw = call.params.get("repeat_instance")
    if raw is not None and as_id(raw) is None:
        raise invalid_parameter("repeat_instance")
    return as_id(raw)


def locate(call: Call, record: str, form: str) -> tuple[str, int, str, int]:
    """The row of `record`'s `form` named by the request's `event` and `repeat_instance`."""
    require_record(call, record)
    return row_key(call.p, record, form_event(call, form), form, repeat_instance(call))


# -- documents ----------------------------------------------------------------------------------


def upload(call: Call) -> FileStorage:
    found = call.params.files.get("file")
    if found is None or not found.filename:
        # [U] REDCap's exact text is unverified.
        raise ApiError("No valid file was uploaded")
    return found


def save_document(call: Call, file: FileStorage) -> int:
    """Store an upload (0 bytes is fine, as in REDCap); the type comes from the extension."""
    name = re.sub(r'[\x00-\x1f"\\/]', "", (file.filename or "").rsplit("/", 1)[-1]) or "file"
    mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
    cursor = call.conn.execute(
        "INSERT INTO document (project_id, name, mime, content, created) VALUES (?, ?, ?, ?, ?)",
        (call.p.project_id, name, mime, file.read(), now()),
    )
    return int(cursor.lastrowid or 0)


def document(call: Call, doc_id: int | None) -> sqlite3.Row | None:
    return call.conn.execute(
        "SELECT doc_id, name, mime, content FROM document WHERE project_id = ? AND doc_id = ?",
        (call.p.project_id, doc_id),
    ).fetchone()


def delete_document(call: Call, doc_id: int | str | None) -> None:
    """Remove a document, given its id or a file field's stored value (which may be empty)."""
    call.conn.execute(
        "DELETE FROM document WHERE project_id = ? AND doc_id = ?",
        (call.p.project_id, as_id(str(doc_id or ""))),
    )


# -- file fields --------------------------------------------------------------------------------


def _field_row(call: Call) -> tuple[str, DataRow]:
    """The file field a request names and the data row it lives in."""
    name = call.params.require("field")
    meta = call.p.fields.get(name)
    if meta is None or meta["field_type"] != "file":
        raise ApiError(f"The field '{name}' does not exist or is not a 'file' field")
    key = locate(call, call.params.require("record"), meta["form_name"])
    return name, call.p.get_row(key)


def _changed(call: Call, row: DataRow, details: str) -> None:
    """Save a row changed by a file call, mark its record modified and log it."""
    p = call.p
    p.save_row(row)
    p.touch_record(row.record, now())
    event = p.event_by_id(row.event_id)
    p.log(
        call.u.username,
        f"Update record (API) {row.record}",
        details,
        kind="record_edit",
        record=row.record,
        event=event.unique_event_name if event else None,
    )


@endpoint("file", "export", privilege="api_export")
def export_file(call: Call) -> Reply:
    name, row = _field_row(call)
    found = document(call, as_id(row.values.get(name)))
    if found is None:
        # [U] REDCap's exact text is unverified.
        raise ApiError("There is no file to download for this record")
    return file_reply(found["name"], found["mime"], found["content"])


@endpoint("file", "import", privilege="api_import")
def import_file(call: Call) -> Reply:
    name, row = _field_row(call)
    doc_id = save_document(call, upload(call))
    replaced = row.values.get(name)
    row.values[name] = str(doc_id)
    _changed(call, row, f"{name} = '{doc_id}'")
    delete_document(call, replaced)
    return empty_reply(call)


@endpoint("file", "delete", privilege="api_import")
def delete_file(call: Call) -> Reply:
    name, row = _field_row(call)
    doc_id = row.values.pop(name, None)
    if doc_id is None:
        # [U] REDCap's exact text is unverified.
        raise ApiError("There is no file to delete for this record")
    _changed(call, row, f"{name} = ''")
    delete_document(call, doc_id)
    return empty_reply(call)


# -- file repository ----------------------------------------------------------------------------


def _user_role(call: Call) -> int | None:
    row = call.conn.execute(
        "SELECT role_id FROM user_role WHERE project_id = ? AND username = ?",
        (call.p.project_id, call.u.username),
    ).fetchone()
    return row[0] if row else None


def _folder_visible(call: Call, folder_id: int | None) -> bool:
    """Whether the folder exists for this user: a DAG- or role-restricted folder is hidden
    from users in another DAG or role (users in none see everything)."""
    if folder_id is None:
        return True
    row = call.conn.execute(
        "SELECT dag_id, role_id FROM repo_folder WHERE project_id = ? AND folder_id = ?",
        (call.p.project_id, folder_id),
    ).fetchone()
    if row is None:
        return False
    dag_ok = row["dag_id"] is None or call.u.dag_id in (None, row["dag_id"])
    return dag_ok and (row["role_id"] is None or _user_role(call) in (None, row["role_id"]))


def _folder(call: Call) -> int | None:
    """The request's `folder_id` (None for the top level), refused in REDCap's words."""
    raw = call.params.get("folder_id")
    if raw is None:
        return None
    folder_id = as_id(raw)
    if folder_id is None or not _folder_visible(call, folder_id):
        raise ApiError(
            f"The File Repository folder folder_id={raw} does not exist or else you do not have "
            "permission to that folder because it is DAG-restricted or Role-restricted."
        )
    return folder_id


def _repository_file(call: Call) -> sqlite3.Row:
    raw = call.params.require("doc_id")
    row = call.conn.execute(
        "SELECT d.doc_id, d.name, d.mime, d.content, f.folder_id FROM repo_file f "
        "JOIN document d ON d.doc_id = f.doc_id WHERE f.project_id = ? AND f.doc_id = ?",
        (call.p.project_id, as_id(raw)),
    ).fetchone()
    if row is None or not _folder_visible(call, row["folder_id"]):
        # [U] REDCap's text is unverified; worded like its folder refusal.
        raise ApiError(
            f"The File Repository file doc_id={raw} does not exist or else you do not have "
            "permission to that file because it is DAG-restricted or Role-restricted."
        )
    return row


def _restriction(call: Call, parameter: str, table: str, column: str) -> int | None:
    """An optional dag_id/role_id for a new folder; it must belong to the project."""
    raw = call.params.get(parameter)
    if raw is None:
        return None
    found = call.conn.execute(
        f"SELECT 1 FROM {table} WHERE project_id = ? AND {column} = ?",
        (call.p.project_id, as_id(raw)),
    ).fetchone()
    if not found:
        raise invalid_parameter(parameter)
    return as_id(raw)


@endpoint("fileRepository", "createFolder", privilege="file_repository")
def create_folder(call: Call) -> Reply:
    name = call.params.require("name")
    if len(name) > MAX_FOLDER_NAME:
        raise ApiError(f"The folder name cannot be longer than {MAX_FOLDER_NAME} characters")
    parent = _folder(call)
    dag_id = _restriction(call, "dag_id", "dag", "dag_id")
    role_id = _restriction(call, "role_id", "role", "role_id")
    cursor = call.conn.execute(
        "INSERT INTO repo_folder (project_id, parent_id, name, dag_id, role_id) "
        "VALUES (?, ?, ?, ?, ?)",
        (call.p.project_id, parent, name, dag_id, role_id),
    )
    call.p.log(call.u.username, "Manage/Design ", f"Create folder '{name}' (API)", kind="manage")
    return render_rows([{"folder_id": int(cursor.lastrowid or 0)}], call.fmt)


def _by_name(row: sqlite3.Row) -> tuple[str, str]:
    return (row["name"].casefold(), row["name"])


@endpoint("fileRepository", "list", privilege="file_repository")
def list_repository(call: Call) -> Reply:
    """Folders first, then files, each sorted by name. JSON rows are `{folder_id, name}` or
    `{doc_id, name}`; CSV and XML have every column, with the restricting role and DAG (their
    unique names: [U])."""
    parent = _folder(call)
    folders = call.conn.execute(
        "SELECT f.folder_id, f.name, r.unique_role_name AS role, d.unique_name AS dag "
        "FROM repo_folder f LEFT JOIN role r ON r.role_id = f.role_id "
        "LEFT JOIN dag d ON d.dag_id = f.dag_id WHERE f.project_id = ? AND f.parent_id IS ?",
        (call.p.project_id, parent),
    ).fetchall()
    files = call.conn.execute(
        "SELECT d.doc_id, d.name FROM repo_file f JOIN document d ON d.doc_id = f.doc_id "
        "WHERE f.project_id = ? AND f.folder_id IS ?",
        (call.p.project_id, parent),
    ).fetchall()
    visible = sorted((f for f in folders if _folder_visible(call, f["folder_id"])), key=_by_name)
    rows: list[dict[str, object]] = [
        {"folder_id": f["folder_id"], "name": f["name"]}
        | ({} if call.fmt == "json" else {"role": f["role"] or "", "dag": f["dag"] or ""})
        for f in visible
    ]
    rows += [{"doc_id": f["doc_id"], "name": f["name"]} for f in sorted(files, key=_by_name)]
    return render_rows(rows, call.fmt, REPOSITORY_COLUMNS, delimiter=call.params.delimiter)


@endpoint("fileRepository", "export", privilege="file_repository")
def export_repository_file(call: Call) -> Reply:
    found = _repository_file(call)
    return file_reply(found["name"], found["mime"], found["content"])


@endpoint("fileRepository", "import", privilege="file_repository")
def import_repository_file(call: Call) -> Reply:
    folder = _folder(call)
    doc_id = save_document(call, upload(call))
    call.conn.execute(
        "INSERT INTO repo_file (doc_id, project_id, folder_id) VALUES (?, ?, ?)",
        (doc_id, call.p.project_id, folder),
    )
    return empty_reply(call)


@endpoint("fileRepository", "delete", privilege="file_repository")
def delete_repository_file(call: Call) -> Reply:
    found = _repository_file(call)
    call.conn.execute("DELETE FROM repo_file WHERE doc_id = ?", (found["doc_id"],))
    delete_document(call, found["doc_id"])
    return empty_reply(call)
