"""The randomization design of a study, resolved against its definitions: the target field
and its arms, each stratification factor's levels, and the strata (every combination of
levels), in the order the allocation table lists them.

    >>> design = design_of(load_project("hekta"))
    >>> design.target, design.arms, design.factors
    ('rand_group', {'1': 1, '2': 1}, ['site'])
    >>> design.strata[:2]
    [('1',), ('2',)]
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from hekta_redcap.core.errors import DefinitionError
from hekta_redcap.definitions.study import Project, Randomization, Stratum
from hekta_redcap.redcap.names import DAG

STRATUM_TYPES = ("radio", "dropdown", "yesno", "truefalse")  # what REDCap stratifies by


def factor_name(stratum: Stratum) -> str:
    """The stratum's column in the allocation table and the export: the field, or REDCap's
    data access group column."""
    return stratum.field or DAG


@dataclass(frozen=True)
class Design:
    """A study's randomization with its factors' levels resolved from the definitions."""

    spec: Randomization
    levels: dict[str, list[str]]  # factor column -> its codes (unique group names for DAGs)
    event: str | None

    @property
    def target(self) -> str:
        return self.spec.target

    @property
    def arms(self) -> dict[str, int]:
        """Each arm's code and its ratio."""
        return {arm.code: arm.ratio for arm in self.spec.arms}

    @property
    def factors(self) -> list[str]:
        return list(self.levels)

    @property
    def columns(self) -> list[str]:
        """The allocation table's columns: the target, then each factor."""
        return [self.target, *self.factors]

    @property
    def strata(self) -> list[tuple[str, ...]]:
        """Every stratum, as its factors' codes, in the order of the factors' levels."""
        return list(itertools.product(*self.levels.values()))

    @property
    def slots_per_stratum(self) -> int:
        """Planned enrolment per stratum with the margin (the table fills whole blocks on
        top of this)."""
        planned = self.spec.planned
        return math.ceil(planned.per_stratum * (1 + planned.margin))


def design_of(project: Project) -> Design:
    """The project's randomization design. Raises `DefinitionError` when the study file has
    no `randomization:` block; lint checks the block itself."""
    spec = project.study.randomization
    if spec is None:
        raise DefinitionError(
            f"project '{project.name}' has no randomization block in its study file",
            project.study.origin(),
        )
    fields = project.field_map()
    levels: dict[str, list[str]] = {}
    for stratum in spec.strata:
        if stratum.field is not None and stratum.field in fields:
            instrument, field = fields[stratum.field]
            levels[stratum.field] = instrument.codes_of(field) or []
        elif stratum.dag is not None:
            levels[DAG] = list(stratum.dag)
    return Design(spec, levels, spec.event)
