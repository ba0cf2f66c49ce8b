"""What a check finds: a message at a file and line, an error or a warning.

>>> report = Report()
>>> report.error("field-name", "field name 'Age' must be lower case", Origin(path, 12))
>>> [str(f) for f in report.errors]
["forms/demo.yaml:12: error: field name 'Age' must be lower case [field-name]"]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hekta_redcap.core.errors import Origin

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    """One finding; equal only when every part is equal, so two findings on one line both stay."""

    origin: Origin | None
    severity: Severity
    rule: str
    message: str

    def __str__(self) -> str:
        where = f"{self.origin}: " if self.origin else ""
        return f"{where}{self.severity}: {self.message} [{self.rule}]"


class Report:
    """Collects findings; rules call `error`, `warn` and `project_error`."""

    def __init__(self) -> None:
        self.findings: list[Finding] = []

    def error(self, rule: str, message: str, origin: Origin | None) -> None:
        self.findings.append(Finding(origin, "error", rule, message))

    def warn(self, rule: str, message: str, origin: Origin | None) -> None:
        self.findings.append(Finding(origin, "warning", rule, message))

    def project_error(
        self, rule: str, message: str, origin: Origin | None, advisory: bool = False
    ) -> None:
        """A breach of the project's own rules: an error, or a warning where the rules are
        advice (a dictionary or form adopted from elsewhere, which REDCap accepts)."""
        (self.warn if advisory else self.error)(rule, message, origin)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]
