"""Deploying the definitions to REDCap: the one module that writes a project's design.

`hekta_redcap.deploy.plan` works out what differs; this module applies it in REDCap's required order
(project settings, arms, events, metadata, instrument-event mapping, repeating setup) through
the gateway, so the same code path serves a hospital's REDCap and the local REDCap-compatible
server.
The settings come first because a project made in REDCap's web interface is classic and without
surveys until they are changed. A production project gets a Draft Mode bundle instead, since
REDCap refuses metadata and settings changes there.

    >>> token = create_project(url, super_token, project)   # a new, empty REDCap project
    >>> api = Gateway(url, token.reveal())
    >>> apply_plan(api, make_plan(api, project))
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from hekta_redcap import gateway
from hekta_redcap.compile.design import write_design
from hekta_redcap.core.errors import HektaError
from hekta_redcap.core.settings import Token
from hekta_redcap.definitions.study import Project
from hekta_redcap.deploy.plan import Plan, study_settings
from hekta_redcap.gateway import Gateway
from hekta_redcap.redcap.dictionary import COLUMNS, write_csv


def create_project(url: str, super_token: Token, project: Project) -> Token:
    """Create an empty REDCap project for a study with a super token; returns its API token."""
    return gateway.create_project(url, super_token, study_settings(project), project.name)


class PushError(HektaError):
    """A push that stopped part-way; the message says what was and was not applied."""


def refuse(plan: Plan) -> None:
    """Raise `PushError` when the plan holds a change REDCap refuses: such a plan is not
    started at all, whatever flags were given."""
    if refused := plan.refused:
        raise PushError(
            "push refused, nothing applied: "
            + "; ".join(f"{c.target}: {c.detail}" for c in refused)
        )


def apply_plan(
    api: Gateway, plan: Plan, progress: Callable[[str], None] = lambda _: None
) -> list[str]:
    """Apply a plan's steps in REDCap's order (settings, arms, events, metadata, mapping,
    repeating); returns the steps applied. Only steps with changes write anything, so applying
    the plan of a project that already matches makes no write call.

    A step that fails raises `PushError` naming what was applied and what was not; planning
    and pushing again finishes the job, because each step writes the whole desired state of
    its part. A plan with a change REDCap refuses is not started at all.
    """
    refuse(plan)
    steps = plan.steps
    done: list[str] = []
    for i, step in enumerate(steps, 1):
        progress(f"[{i}/{len(steps)}] {step}: {_describe(plan, step)}")
        try:
            _APPLY[step](api, plan)
        except HektaError as exc:  # REDCap refused, or stayed unreachable through the retries
            left = ", ".join(steps[i - 1 :])
            raise PushError(
                f"push stopped at {step}: {exc}. Applied: {', '.join(done) or 'nothing'}; "
                f"not applied: {left}. Run push again to finish."
            ) from None
        done.append(step)
    return done


def _describe(plan: Plan, step: str) -> str:
    changes = [c for c in plan.changes if c.step == step]
    counts = Counter(c.action for c in changes)
    return ", ".join(f"{n} {action}" for action, n in counts.items())


def _settings(api: Gateway, plan: Plan) -> None:
    api.import_project_settings(plan.settings)


def _arms(api: Gateway, plan: Plan) -> None:
    gone = [c.target for c in plan.changes if c.step == "arms" and c.action == "remove"]
    if plan.design.arms:
        api.import_arms(plan.design.arms)
    if gone:
        api.delete_arms([int(target.removeprefix("arm ")) for target in gone])


def _events(api: Gateway, plan: Plan) -> None:
    """Add and update events; a carried event (REDCap's `Event 1` after the switch to
    longitudinal) is updated under its live name, which REDCap then recomputes."""
    events = [c for c in plan.changes if c.step == "events"]
    changed = {c.target.split(" -> ")[-1] for c in events if c.action != "remove"}
    gone = [c.target for c in events if c.action == "remove"]
    rows = [
        {**e, "unique_event_name": plan.carried.get(e["unique_event_name"], e["unique_event_name"])}
        for e in plan.design.events
        if e["unique_event_name"] in changed
    ]
    if rows:
        api.import_events(rows)
    if gone:
        api.delete_events(gone)


def _metadata(api: Gateway, plan: Plan) -> None:
    api.import_metadata([{c: getattr(r, c) for c in COLUMNS} for r in plan.rows])


def _mapping(api: Gateway, plan: Plan) -> None:
    api.import_instrument_event_mappings(plan.design.mapping)


def _repeating(api: Gateway, plan: Plan) -> None:
    api.import_repeating_instruments_events(plan.design.repeating)


_APPLY: dict[str, Callable[[Gateway, Plan], None]] = {
    "settings": _settings,
    "arms": _arms,
    "events": _events,
    "metadata": _metadata,
    "mapping": _mapping,
    "repeating": _repeating,
}


def write_bundle(plan: Plan, directory: Path) -> list[Path]:
    """What a person uploads through REDCap's Draft Mode when the project is in production:
    the data dictionary, the design files and the plan as a readable report."""
    directory.mkdir(parents=True, exist_ok=True)
    dictionary = directory / "data_dictionary.csv"
    write_csv(plan.rows, dictionary)
    files = [dictionary, *write_design(plan.design, directory)]
    report = directory / "plan.txt"
    report.write_text(
        plan.render() + "\n\n" + DRAFT_MODE_STEPS.format(project=plan.project), encoding="utf-8"
    )
    as_json = directory / "plan.json"
    as_json.write_text(json.dumps(plan.to_json(), ensure_ascii=False, indent=1), encoding="utf-8")
    return [*files, report, as_json]


DRAFT_MODE_STEPS = """\
The project {project} is in production, where REDCap accepts dictionary changes only through
Draft Mode. To apply this plan:
1. If the plan lists settings changes, make them first in Project Setup (the main project
   settings, and "Modify project title, purpose, etc."); in production REDCap may leave some of
   them to an administrator.
2. In REDCap, open the project's Online Designer and click "Enter Draft Mode".
3. Data Dictionary > Upload: choose data_dictionary.csv from this folder.
4. Review REDCap's list of changes against the plan above; submit the changes for review.
5. If the plan lists event or mapping changes, apply them in Project Setup > Define My Events
   and Designate Instruments for My Events (events.csv and instrument_event_mapping.csv).
Changes marked data-affecting lose collected data or change its meaning: have them approved.
"""
