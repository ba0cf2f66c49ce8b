"""Register layouts: what a delivery from each national register holds (`instruments/registers/`).

One file per source says what one row is (`unit`), which column holds the project's serial
number (`key`), which columns make a row unique, which dates must fall inside the delivery's
period, and each variable: its type, code list, labels (nb/en) and, where the outcomes need
it, its `concept` (start, end, hours_per_week, amount, specialty, ...). Real deliveries differ
between orders, so a data manager adapts the layout (a renamed column, another code) and the
import's checks, the schemas and the outcomes follow; nothing in code names a register column.

    >>> layouts = load_layouts()
    >>> sorted(layouts), layouts["npr"].column("start")
    (['aa', 'fd_trygd', 'inntekt', 'kpr', 'npr'], 'inn_dato')
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import field_validator

from hekta_redcap.core.errors import DefinitionError
from hekta_redcap.definitions import yamlfile
from hekta_redcap.definitions.model import Node, Text
from hekta_redcap.definitions.study import default_root

REGISTERS_DIR = "registers"
VariableType = Literal["text", "integer", "number", "date", "month", "code"]


class RegisterCode(Node):
    code: str
    label: Text

    _code = field_validator("code", mode="before")(lambda v: str(v))


class RegisterVariable(Node):
    """A column of a delivery. `number` accepts a decimal comma; `date` is read as the
    register writes it (YYYY-MM-DD, DD.MM.YYYY or YYYYMMDD); `month` is YYYY-MM or YYYYMM."""

    name: str
    type: VariableType
    label: Text
    concept: str | None = None
    codes: list[RegisterCode] = []
    pattern: str | None = None
    required: bool = True
    min: float | None = None
    max: float | None = None


class RegisterLayout(Node):
    source: str
    label: Text
    unit: Literal["relationship", "month", "episode", "contact", "spell"]
    key: str
    unique: list[str]
    period: list[str] = []
    variables: list[RegisterVariable]

    def variable(self, name: str) -> RegisterVariable:
        return next(v for v in self.variables if v.name == name)

    def column(self, concept: str) -> str | None:
        """The column holding a concept (None when this layout has none)."""
        return next((v.name for v in self.variables if v.concept == concept), None)


def load_layout(file: Path) -> RegisterLayout:
    layout = RegisterLayout.from_document(yamlfile.load(file))
    if layout.source != file.stem:
        raise DefinitionError(
            f"file declares source '{layout.source}', expected '{file.stem}'",
            layout.origin("source"),
        )
    return layout


def load_layouts(root: Path | None = None) -> dict[str, RegisterLayout]:
    """Every register layout under `<root>/registers/`, by source."""
    folder = (root or default_root()) / REGISTERS_DIR
    return {f.stem: load_layout(f) for f in sorted(folder.glob("*.yaml"))}
