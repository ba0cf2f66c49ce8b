"""The randomization rule family: the allocation audit's checks (randomization/audit.py) as
problems in the list nurses and the monitor work from, so that the report, `status` and the
daemon's digest show a group changed after randomization the next time validation runs.

It runs where the store's copy is validated (`validate_store`: the daemon and `validate`
without --input) for a project whose study file has a randomization block and whose REDCap
project has the randomization module enabled (as the last sync read it): before the module is
on there is nothing to check against, and a project without a block pays nothing. It reads
REDCap's logging once per pass. The table's check (`allocation-mismatch`) runs only when
HEKTA_ALLOCATION_TABLE names the allocation table in use. Each problem is on the target field
at the design's event, an error, worded in both languages.

When REDCap's logging cannot be read (or the table named cannot), the pass goes on: one log
line says so and the rule's problems from the last pass stay open as they were.
"""

from __future__ import annotations

import hashlib
import logging

import pandas as pd

from hekta_redcap import LANGUAGES
from hekta_redcap.core.errors import HektaError
from hekta_redcap.core.logline import line
from hekta_redcap.core.settings import Settings
from hekta_redcap.data.store import Store
from hekta_redcap.definitions.study import Project
from hekta_redcap.randomization.audit import RULES, audit_store
from hekta_redcap.randomization.design import design_of
from hekta_redcap.randomization.tables import read_table
from hekta_redcap.redcap.names import DAG
from hekta_redcap.validation.problems import ERROR, PROBLEM_COLUMNS, EntryLinks

logger = logging.getLogger("hekta_redcap.validation.randomization")

COLUMNS = [*PROBLEM_COLUMNS, "digest"]


def applies(project: Project, store: Store) -> bool:
    """Whether the rule runs: a randomization block, and the module enabled in REDCap."""
    enabled = store.project_info(project.name).get("randomization_enabled")
    return project.study.randomization is not None and str(enabled) == "1"


def randomization_problems(
    settings: Settings, project: Project, store: Store, links: EntryLinks | None
) -> pd.DataFrame:
    """The rule's problems (`problems.PROBLEM_COLUMNS` and a digest), from the store and
    REDCap's logging read now; the last pass's when either cannot be read."""
    design = design_of(project)
    try:
        table = settings.allocation_table
        slots = read_table(table, design) if table is not None else None
        audit = audit_store(settings, project, store, slots)
    except HektaError as exc:
        logger.warning(
            line(
                "validate.randomization",
                project=project.name,
                outcome="kept",
                reason=str(exc).splitlines()[0][:200],
            )
        )
        kept = [p for p in store.open_problems(project.name) if p.get("rule") in RULES]
        return pd.DataFrame(kept, columns=COLUMNS)
    target, event = design.target, design.event or ""
    form = project.field_map()[target][0].form
    rows = []
    for finding in audit.findings:
        current = audit.current.get(finding.record, {})
        value = current.get(target, "")
        messages = [finding.text(lang) for lang in LANGUAGES]
        identity = "\x1e".join([target, value, finding.rule, messages[1]])
        rows.append(
            [
                finding.record,
                event,
                "",
                form,
                target,
                value,
                finding.rule,
                ERROR,
                *messages,
                current.get(DAG, ""),
                links.url(finding.record, event, form, "") if links else "",
                hashlib.sha256(identity.encode()).hexdigest()[:32],
            ]
        )
    return pd.DataFrame(rows, columns=COLUMNS)
