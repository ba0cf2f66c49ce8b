"""`hekta-redcap sandbox init`: create the study's projects on the local server through the
same API a client uses, and write their URL and tokens to a git-ignored env file that the
other commands read.

Running it again keeps projects whose token in the env file still works, so it is safe to
repeat.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from hekta_redcap.core.errors import HektaError
from hekta_redcap.core.settings import SANDBOX_ENV, Settings, Token, token_variable
from hekta_redcap.definitions.study import Project
from hekta_redcap.deploy.plan import make_plan
from hekta_redcap.deploy.push import apply_plan, create_project
from hekta_redcap.devtools.sandbox.server import SandboxServer
from hekta_redcap.devtools.sandbox.store import Store
from hekta_redcap.gateway import Gateway, Retry


def provision(
    server: SandboxServer, projects: list[Project], env_file: Path = SANDBOX_ENV
) -> dict[str, str]:
    """Create (or keep) each project; returns what happened per project, for the user."""
    url = server.url
    existing = Settings.load((env_file,), {}) if env_file.is_file() else Settings({})
    tokens: dict[str, Token] = {}
    outcome: dict[str, str] = {}
    for project in projects:
        kept = _working_token(url, existing, project.name)
        if kept is not None:
            tokens[project.name], outcome[project.name] = kept, "kept"
            continue
        token = create_project(url, Token(server.super_token), project)
        api = Gateway(url, token.reveal())
        apply_plan(api, make_plan(api, project))
        enable_surveys(server.store, token, project)
        tokens[project.name], outcome[project.name] = token, "created"
    write_env(env_file, url, tokens, existing)
    return outcome


def enable_surveys(store: Store, token: Token, project: Project) -> None:
    """Enable the study's surveys, as an administrator does in REDCap's web interface (the API
    cannot: neither can deploy, so on a real server a person enables them once)."""
    forms = [u.form for u in project.study.instruments if u.survey]
    with store.transaction() as conn:
        (project_id,) = conn.execute(
            "SELECT project_id FROM user WHERE token = ?", (token.reveal(),)
        ).fetchone()
        conn.executemany(
            "INSERT OR IGNORE INTO survey VALUES (?, ?, ?)",
            [(project_id, form, json.dumps({"title": form})) for form in forms],
        )


def _working_token(url: str, settings: Settings, project: str) -> Token | None:
    """The env file's token for `project` if it opens that project on this server."""
    if settings.get("REDCAP_API_URL") != url or settings.get(token_variable(project)) is None:
        return None
    token = settings.token(project)
    try:
        Gateway(url, token.reveal(), retry=Retry(attempts=1)).export_project_info()
    except HektaError:
        return None
    return token


def write_env(env_file: Path, url: str, tokens: dict[str, Token], previous: Settings) -> None:
    """Write the env file (owner-only: it holds tokens), keeping other projects' tokens."""
    lines = ["# Written by `hekta-redcap sandbox init`: the local REDCap-compatible server.", ""]
    values = {k: v for k, v in previous.values.items() if k.startswith("REDCAP_TOKEN_")}
    values["REDCAP_API_URL"] = url
    values.update({token_variable(name): token.reveal() for name, token in tokens.items()})
    lines += [f"{key}={values[key]}" for key in sorted(values)]
    env_file.touch(mode=0o600)
    os.chmod(env_file, 0o600)
    env_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
