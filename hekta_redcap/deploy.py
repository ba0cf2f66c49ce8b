"""Deploying the definitions to REDCap: the one module that writes a project's design.

REDCap needs the parts in a fixed order: arms, events, metadata, instrument-event mapping,
repeating setup. `apply_design` writes all of them through PyCap, so the same code path serves
a hospital's REDCap and the local REDCap-compatible server.

    >>> token = create_project(url, super_token, project)   # a new, empty REDCap project
    >>> apply_design(redcap.Project(url, token.reveal()), project)
"""

from __future__ import annotations

from xml.sax.saxutils import escape

import redcap
import requests

from hekta_redcap.config import Token
from hekta_redcap.design import compile_design
from hekta_redcap.dictionary import COLUMNS, compile_project
from hekta_redcap.errors import HektaError
from hekta_redcap.study import Project

TIMEOUT = 60  # seconds; project creation and metadata import are the slowest calls


def create_project(url: str, super_token: Token, project: Project) -> Token:
    """Create an empty REDCap project for a study with a super token; returns its API token."""
    study = project.study
    fields = {
        "project_title": study.title,
        "purpose": str(study.purpose),
        "is_longitudinal": str(int(study.longitudinal)),
        "surveys_enabled": str(int(any(u.survey for u in study.instruments))),
        "record_autonumbering_enabled": str(int(study.autonumber)),
    }
    item = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in fields.items())
    payload = {
        "token": super_token.reveal(),
        "content": "project",
        "format": "xml",
        "data": f"<item>{item}</item>",
    }
    try:
        response = requests.post(url, data=payload, timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise HektaError(f"cannot reach REDCap at {url}: {type(exc).__name__}") from None
    token = response.text.strip()[-32:]
    if response.status_code != 200 or len(token) != 32:
        raise HektaError(f"REDCap refused to create project '{project.name}': {_error(response)}")
    return Token(token)


def apply_design(client: redcap.Project, project: Project) -> None:
    """Write arms, events, metadata, mapping and repeating setup, in REDCap's order.

    Arms are imported with `override`, which replaces the arms and events a new project starts
    with; on a project holding data, use `hekta-redcap push` (plan first) instead.
    """
    design = compile_design(project)
    if design.arms:
        client.import_arms(design.arms, override=1)
        client.import_events(design.events)
    rows = compile_project(project)
    client.import_metadata([{c: getattr(r, c) for c in COLUMNS} for r in rows])
    if design.mapping:
        client.import_instrument_event_mappings(design.mapping)
    if design.repeating:
        client.import_repeating_instruments_events(design.repeating)


def _error(response: requests.Response) -> str:
    text = response.text.strip()
    return text[:300] if text else f"HTTP {response.status_code}"
