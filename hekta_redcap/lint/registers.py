"""Register layout rules: a layout under `instruments/registers/` is what the import checks a
delivery against and what the outcomes read, so a mistake in it would reject good rows, keep
bad ones or stop an import halfway; lint finds it first, at its line.

Layouts belong to the definitions directory, not to a project (one set serves every study), so
these rules take a layout rather than a project and `lint_all` runs them once per directory.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from hekta_redcap.compile.checks import DictionaryContext
from hekta_redcap.core.errors import DefinitionError, Origin
from hekta_redcap.core.findings import Finding, Report
from hekta_redcap.definitions.registers import REGISTERS_DIR, RegisterLayout, load_layout
from hekta_redcap.definitions.study import Project
from hekta_redcap.lint.followup import check_stop_rules

# A name is a Parquet column, a DuckDB identifier and a Stata variable; names the store adds
# itself, or that begin with an underscore (the import's own columns), cannot be used.
NAME = re.compile(r"[a-z][a-z0-9_]*")
RESERVED = {"delivery_id"}
PERIOD_TYPES = ("date", "month")
RANGE_TYPES = ("integer", "number")


def _names(report: Report, layout: RegisterLayout) -> None:
    first: dict[str, int] = {}
    for i, variable in enumerate(layout.variables):
        where = layout.origin("variables", i, "name")
        if not NAME.fullmatch(variable.name):
            report.error(
                "register-name",
                f"variable name '{variable.name}' must be lower-case letters, digits and "
                "underscores, starting with a letter",
                where,
            )
        if variable.name in RESERVED:
            report.error("register-name", f"'{variable.name}' is the store's own column", where)
        if variable.name in first:
            line = layout.origin("variables", first[variable.name], "name")
            shown = f" (first at line {line.line})" if line and line.line else ""
            report.error(
                "register-name", f"variable '{variable.name}' is defined twice{shown}", where
            )
        first.setdefault(variable.name, i)


def _columns(report: Report, layout: RegisterLayout) -> None:
    """key, unique and period name variables; the key is required text; periods are dates."""
    types = {v.name: v.type for v in layout.variables}

    def exists(name: str, *keys: str | int) -> bool:
        if name not in types:
            report.error("register-column", f"'{name}' is not a variable", layout.origin(*keys))
        return name in types

    if exists(layout.key, "key"):
        key = layout.variable(layout.key)
        if key.type != "text" or not key.required:
            report.error(
                "register-key",
                f"the key '{layout.key}' must be a required text variable",
                layout.origin("key"),
            )
    for i, name in enumerate(layout.unique):
        exists(name, "unique", i)
    for i, name in enumerate(layout.period):
        if exists(name, "period", i) and types[name] not in PERIOD_TYPES:
            report.error(
                "register-column",
                f"period column '{name}' must be a date or month, not {types[name]}",
                layout.origin("period", i),
            )


def _variables(report: Report, layout: RegisterLayout) -> None:
    concepts: dict[str, str] = {}
    for i, variable in enumerate(layout.variables):

        def error(rule: str, message: str, *keys: str | int, i: int = i) -> None:
            report.error(rule, message, layout.origin("variables", i, *keys))

        name = variable.name
        if variable.type == "code" and not variable.codes:
            error("register-codes", f"code variable '{name}' has no codes", "type")
        if variable.type != "code" and variable.codes:
            error("register-codes", f"'{name}' is {variable.type}: only codes have codes", "codes")
        seen: set[str] = set()
        for j, code in enumerate(variable.codes):
            if code.code in seen:
                error("register-codes", f"code '{code.code}' is listed twice", "codes", j)
            seen.add(code.code)
        if variable.pattern is not None:
            if variable.type != "text":
                error("register-pattern", f"'{name}': a pattern applies to text only", "pattern")
            problem = _pattern_problem(variable.pattern)
            if problem:
                error("register-pattern", f"pattern of '{name}' {problem}", "pattern")
        bounds = [b for b in ("min", "max") if getattr(variable, b) is not None]
        if bounds and variable.type not in RANGE_TYPES:
            error("register-range", f"'{name}': min and max apply to numbers only", bounds[0])
        if variable.min is not None and variable.max is not None and variable.min > variable.max:
            error("register-range", f"'{name}': min {variable.min} is above max", "min")
        if variable.concept is not None:
            if variable.concept in concepts:
                error(
                    "register-concept",
                    f"concept '{variable.concept}' is already '{concepts[variable.concept]}'",
                    "concept",
                )
            concepts.setdefault(variable.concept, name)


def _pattern_problem(pattern: str) -> str | None:
    """Why a pattern cannot be used: the schemas match it with Python and the import with
    DuckDB (RE2, which lacks look-arounds and back references), so both must accept it."""
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"does not compile: {exc}"
    import duckdb

    try:
        with duckdb.connect() as con:
            con.execute("SELECT regexp_matches('', $1)", [pattern]).fetchall()
    except duckdb.Error:
        return "is not a pattern DuckDB (RE2) accepts"
    return None


LAYOUT_RULES: list[Callable[[Report, RegisterLayout], None]] = [_names, _columns, _variables]


def lint_layouts(root: Path) -> list[Finding]:
    """Every layout under `<root>/registers/`; a file that cannot be loaded is an error
    finding, and the others are still checked."""
    report = Report()
    for file in sorted((root / REGISTERS_DIR).glob("*.yaml")):
        try:
            layout = load_layout(file)
        except DefinitionError as exc:
            report.error("load", exc.message, exc.origin or Origin(file))
            continue
        for rule in LAYOUT_RULES:
            rule(report, layout)
    return report.findings


def _linkage(report: Report, project: Project, ctx: DictionaryContext) -> None:
    """The study's register_linkage names a text field marked as an identifier (the national
    identity number) and a yes/no consent, and its stop rules read fields that exist."""
    linkage = project.study.register_linkage
    if linkage is None:
        return
    fields = project.field_map()
    wanted = (("national_id", ("text",), True), ("consent", ("yesno",), False))
    for key, types, identifier in wanted:
        name = getattr(linkage, key)
        found = fields.get(name)
        if found is None:
            report.error("register-linkage", f"field '{name}' does not exist", linkage.origin(key))
        elif found[1].type not in types or (identifier and not found[1].identifier):
            kind = "a text field marked identifier: true" if identifier else "a yes/no field"
            report.error("register-linkage", f"field '{name}' must be {kind}", linkage.origin(key))
    check_stop_rules(report, "register-linkage", linkage, linkage.stop, fields)


REGISTER_RULES: list[Callable[[Report, Project, DictionaryContext], None]] = [_linkage]
