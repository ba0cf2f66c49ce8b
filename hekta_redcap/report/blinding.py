"""How the report shows the arms: blinded (the default) as "A", "B" ... by the order of the
arms' codes in the study file's randomization block, with no arm's name anywhere; unblinded
(`--unblinded`) by their labels in the report's language, every section header saying so.

The letters hide the arm from the report's readers, not from one who reads the definitions (the
codes' labels are there): docs/report.md says so. Outside the arm columns, nothing in the report
names an arm.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from hekta_redcap.core.texts import catalog
from hekta_redcap.definitions.study import Project
from hekta_redcap.randomization.design import design_of

TEXTS = catalog("hekta_redcap.report", "texts.yaml")


@dataclass(frozen=True)
class Arms:
    """The arms' codes in study-file order and what the report calls each."""

    codes: tuple[str, ...]
    shown: dict[str, str]
    unblinded: bool
    language: str

    def name(self, code: str) -> str:
        return self.shown.get(code, code)

    @property
    def banner(self) -> str:
        """What every section header carries: the unblinded word, or nothing."""
        return TEXTS["page.unblinded"][self.language] if self.unblinded else ""

    @property
    def note(self) -> str:
        key = "page.unblinded_note" if self.unblinded else "page.arms_note"
        return TEXTS[key][self.language]


def arms_of(project: Project, language: str, unblinded: bool = False) -> Arms:
    """The project's arms as the report shows them."""
    design = design_of(project)
    codes = tuple(sorted(design.arms, key=_order))
    if unblinded:
        instrument, target = project.field_map()[design.target]
        labels = {
            c.code: instrument.choice_label(c, language) for c in instrument.choices_of(target)
        }
        shown = {code: labels.get(code, code) for code in codes}
    else:
        shown = dict(zip(codes, string.ascii_uppercase, strict=False))
    return Arms(codes, shown, unblinded, language)


def _order(code: str) -> tuple[int, str]:
    """Codes in numeric order where they are numbers (REDCap's choice codes usually are)."""
    return (int(code), "") if code.isdigit() else (1 << 30, code)
