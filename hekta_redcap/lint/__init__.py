"""Lint: stop a broken definition before it reaches REDCap.

Rules in families, each a small function:

- dictionary rules (`compile.checks`) run on the compiled data dictionary (what REDCap would
  see): REDCap's own rules (`redcap.rules`), always errors, and the project's stricter ones
  (names, logic, matrices, action tags, identifiers), errors on the project's forms and
  warnings on forms adopted from another project's dictionary (`rules: redcap`). They work on
  any dictionary, so `import-dictionary` runs them on a CSV before adopting it.
- definition rules (`lint.definitions`) check what only the YAML holds: translations, licensed
  text, choice sets, scoring specifications;
- study rules check the project: its design (`lint.design`: events, mappings, repeating setup,
  codes), its follow-up and reminders (`lint.followup`), and validation's settings
  (`lint.data_quality`), its randomization (`lint.randomization`), what the trial report
  reads (`lint.report`: planned recruitment, the baseline table's variables) and its site list
  (`lint.sites`);
- register rules (`lint.registers`) check the register layouts under `registers/`, once per
  definitions directory, since every project shares them.

Each finding names the file and line it is about. Errors make `hekta-redcap lint` exit 1;
warnings do not.

    >>> findings = lint_project(load_project("hekta"))
    >>> [str(f) for f in findings if f.severity == "error"]
    []
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from hekta_redcap.compile.checks import DictionaryContext, lint_dictionary
from hekta_redcap.compile.dictionary import compile_project
from hekta_redcap.core.errors import DefinitionError, Origin
from hekta_redcap.core.findings import Finding, Report
from hekta_redcap.definitions.study import (
    FORMS_DIR,
    Project,
    available_projects,
    default_root,
    load_project,
)
from hekta_redcap.lint.data_quality import DATA_QUALITY_RULES
from hekta_redcap.lint.definitions import DEFINITION_RULES
from hekta_redcap.lint.design import DESIGN_RULES
from hekta_redcap.lint.followup import FOLLOWUP_RULES
from hekta_redcap.lint.randomization import RANDOMIZATION_RULES
from hekta_redcap.lint.registers import REGISTER_RULES, lint_layouts
from hekta_redcap.lint.report import REPORT_RULES
from hekta_redcap.lint.sites import SITE_RULES

__all__ = ["Finding", "lint_all", "lint_project", "project_context"]
RULES = [
    *DEFINITION_RULES,
    *DESIGN_RULES,
    *FOLLOWUP_RULES,
    *DATA_QUALITY_RULES,
    *RANDOMIZATION_RULES,
    *REGISTER_RULES,
    *REPORT_RULES,
    *SITE_RULES,
]


def project_context(project: Project) -> DictionaryContext:
    return DictionaryContext(
        rows=compile_project(project),
        record_id=project.study.record_id,
        events={e.unique_name for e in project.study.events},
        form_events={u.form: set(u.events) for u in project.study.instruments},
        adopted_forms={i.form for i in project.instruments.values() if i.rules == "redcap"},
    )


def lint_project(project: Project) -> list[Finding]:
    report = Report()
    ctx = project_context(project)
    lint_dictionary(ctx, report)
    for rule in RULES:
        rule(report, project, ctx)
    return sorted(set(report.findings), key=_order)


def _order(f: Finding) -> tuple[str, int, str, str, str]:
    return (
        str(f.origin.file) if f.origin else "",
        (f.origin.line or 0) if f.origin else 0,
        f.severity,
        f.message,
        f.rule,
    )


def lint_all(
    root: Path | None = None, projects: Iterable[str] | None = None, overlay_dir: Path | None = None
) -> list[Finding]:
    """Lint the named projects (default: every study file), the register layouts, and flag
    unused instrument files.

    A file that cannot be loaded becomes an error finding instead of stopping the run.
    """
    root = root or default_root()
    names = list(projects) if projects else available_projects(root)
    findings: list[Finding] = []
    used: set[str] = set()
    for name in names:
        try:
            project = load_project(name, root, overlay_dir)
        except DefinitionError as exc:
            findings.append(Finding(exc.origin, "error", "load", exc.message))
            continue
        used.update(project.forms)
        findings += lint_project(project)
    if not projects and not any(f.rule == "load" for f in findings):
        for file in sorted((root / FORMS_DIR).glob("*.yaml")):
            if file.stem not in used:
                message = f"form '{file.stem}' is not used by any study"
                findings.append(Finding(Origin(file), "warning", "unused", message))
    return findings + lint_layouts(root)
