"""What a valid delivery row is, derived from its layout: one pandera schema per source.

A variable's checks are stated once (`checks`: pandera's check names with their argument, from
the type, codes, pattern and range), and both sides are built from them: the pandera schema
that checks a typed frame (the store's `rows`, a test's frame), and the SQL the import runs in
DuckDB over deliveries too large for pandas (`delivery.py`). Nothing in code names a register
column. pandera is imported only when a schema is built, so an import does not pay for it.

    >>> schema = delivery_schema(load_layouts()["kpr"])
    >>> schema.columns["tjeneste"].checks
    [<Check isin: isin(['FL', 'LV', 'FYS', 'KHO'])>]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hekta_redcap.definitions.registers import RegisterLayout, RegisterVariable

if TYPE_CHECKING:
    import pandera.pandas as pa

# A variable's type in a typed frame, in the store's Parquet files (DuckDB's names) and so in
# what `RegisterStore.rows` returns: a month is the first day of the month.
PANDAS_TYPES = {
    "text": "string",
    "code": "string",
    "integer": "Int64",
    "number": "float64",
    "date": "datetime64[ms]",
    "month": "datetime64[ms]",
}
SQL_TYPES = {
    "text": "VARCHAR",
    "code": "VARCHAR",
    "integer": "BIGINT",
    "number": "DOUBLE",
    "date": "DATE",
    "month": "DATE",
}


def checks(variable: RegisterVariable) -> list[tuple[str, Any]]:
    """A variable's checks as (pandera check name, argument), in the order they are judged."""
    found: list[tuple[str, Any]] = []
    if variable.codes:
        found.append(("isin", [c.code for c in variable.codes]))
    if variable.pattern is not None:
        # str_matches anchors at the start only (re.match): the layout means the whole value.
        found.append(("str_matches", f"(?:{variable.pattern})$"))
    if variable.min is not None:
        found.append(("greater_than_or_equal_to", variable.min))
    if variable.max is not None:
        found.append(("less_than_or_equal_to", variable.max))
    return found


def delivery_schema(layout: RegisterLayout) -> pa.DataFrameSchema:
    """The schema of a source's typed rows; a duplicate by the unique columns is reported
    from its second occurrence, as the import rejects it."""
    import pandera.pandas as pa

    made: dict[str, Callable[[Any], pa.Check]] = {
        "isin": pa.Check.isin,
        "str_matches": pa.Check.str_matches,
        "greater_than_or_equal_to": pa.Check.ge,
        "less_than_or_equal_to": pa.Check.le,
    }
    return pa.DataFrameSchema(
        {
            v.name: pa.Column(
                PANDAS_TYPES[v.type],
                checks=[made[name](argument) for name, argument in checks(v)],
                nullable=not v.required,
            )
            for v in layout.variables
        },
        unique=layout.unique or None,
        report_duplicates="exclude_first",
        name=layout.source,
    )
