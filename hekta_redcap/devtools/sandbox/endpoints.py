"""How API area modules plug into the server.

Each module under `sandbox/api/` registers its handlers with `@endpoint(content, actions…)`:

    @endpoint("version", "export")
    def version(call: Call) -> Reply:
        return render_text(REDCAP_VERSION)

A handler gets a `Call` (the parameters, the authenticated user and the project, bound to the
request's transaction) and returns a `Reply`, or raises `ApiError` with REDCap's message.
Authentication and privilege checks happen before the handler runs, from the endpoint's
declared `privilege`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hekta_redcap.devtools.sandbox.models import ProjectModel, now
from hekta_redcap.devtools.sandbox.store import Store
from hekta_redcap.devtools.sandbox.wire import ApiError, Params, Reply

REDCAP_VERSION = "15.2.1"

# REDCap's refusals for missing privileges, by the right that is missing.
PRIVILEGE_ERRORS = {
    "api_export": "You do not have API Export privileges",
    "api_import": "You do not have API Import/Update privileges",
    "record_delete": "You do not have Delete Record privileges",
    "design": "You do not have Project Setup/Design privileges",
    "user_rights": "You do not have User Rights privileges",
    "data_access_groups": "You do not have Data Access Groups privileges",
    "file_repository": "You do not have File Repository privileges",
    "logging": "You do not have Logging privileges",
    "reports": "You do not have Reports privileges",
    "record_rename": "You do not have Rename Record privileges",
    "random_perform": "You do not have Randomize privileges",  # [I] after the others
}


@dataclass
class User:
    """The user a project token belongs to, with REDCap's rights and data access group."""

    username: str
    rights: dict[str, Any]
    dag_id: int | None = None

    def can(self, right: str) -> bool:
        return bool(int(self.rights.get(right, 0) or 0))


@dataclass
class Call:
    """One API request as a handler sees it."""

    params: Params
    conn: sqlite3.Connection
    store: Store
    base_url: str  # the server's URL without `api/`, for survey links
    user: User | None = None
    project: ProjectModel | None = None

    @property
    def fmt(self) -> str:
        return self.params.format

    @property
    def return_format(self) -> str:
        return self.params.return_format

    @property
    def p(self) -> ProjectModel:
        """The project (every endpoint but project creation has one)."""
        assert self.project is not None
        return self.project

    @property
    def u(self) -> User:
        assert self.user is not None
        return self.user

    def require(self, right: str) -> None:
        """Refuse with REDCap's 403 text unless the user has `right`."""
        if not self.u.can(right):
            raise ApiError(PRIVILEGE_ERRORS.get(right, "You do not have permission"), 403)


Handler = Callable[[Call], Reply]


@dataclass(frozen=True)
class Endpoint:
    handler: Handler
    privileges: tuple[str, ...]  # checked in order before the handler runs
    super_token: bool = False  # project creation takes the server's super token


ENDPOINTS: dict[tuple[str, str], Endpoint] = {}


def endpoint(
    content: str,
    *actions: str,
    privilege: str | tuple[str, ...] = (),
    super_token: bool = False,
) -> Callable[[Handler], Handler]:
    """Register a handler for `content` with each of `actions` (default: export). REDCap checks
    the API right of the direction first, then the area's own: `("api_import", "design")`."""
    privileges = (privilege,) if isinstance(privilege, str) else privilege

    def register(handler: Handler) -> Handler:
        for action in actions or ("export",):
            key = (content, action)
            assert key not in ENDPOINTS, f"two handlers for {key}"
            ENDPOINTS[key] = Endpoint(handler, privileges, super_token)
        return handler

    return register


def load_user(conn: sqlite3.Connection, token: str) -> tuple[User, ProjectModel] | None:
    """The user and project a 32-hex token belongs to, or None (also once the user's expiration
    date has come). A user in a role works with the role's flags and form maps, as in REDCap."""
    row = conn.execute(
        "SELECT u.project_id, u.username, u.rights, r.rights, d.dag_id FROM user u "
        "LEFT JOIN user_role m ON m.project_id = u.project_id AND m.username = u.username "
        "LEFT JOIN role r ON r.role_id = m.role_id "
        "LEFT JOIN user_dag d ON d.project_id = u.project_id AND d.username = u.username "
        "WHERE u.token = ?",
        (token.upper(),),
    ).fetchone()
    if row is None:
        return None
    project_id, username, own, role, dag_id = row
    rights = {**json.loads(own), **json.loads(role or "{}")}
    expiration = rights.get("expiration") or ""
    if expiration and expiration <= now()[:10]:
        return None
    return User(username, rights, dag_id), ProjectModel(conn, project_id)
