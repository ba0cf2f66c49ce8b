"""Errors a user can act on. The CLI prints them as one line (no traceback) and exits non-zero.

Everything that comes from bad input (a definition file, a setting, a CSV) is raised as a
`HektaError` carrying where the problem is, so that the message names the file and line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, order=True)
class Origin:
    """Where a piece of input came from: a file and, when known, a 1-based line."""

    file: Path
    line: int | None = None

    def __str__(self) -> str:
        try:
            shown = os.path.relpath(self.file)
        except ValueError:  # another drive on Windows
            shown = str(self.file)
        if shown.startswith(".." + os.sep + ".."):
            shown = str(self.file)
        return f"{shown}:{self.line}" if self.line else shown


class HektaError(Exception):
    """An error caused by input or environment, reported to the user without a traceback."""

    exit_code = 1

    def __init__(self, message: str, origin: Origin | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.origin = origin

    def __str__(self) -> str:
        return f"{self.origin}: {self.message}" if self.origin else self.message


class DefinitionError(HektaError):
    """A definition file cannot be read or does not follow the format."""


class ConfigError(HektaError):
    """A setting is missing or malformed. The message names the variable, never its value."""

    exit_code = 2
