"""Settings from the environment or a `.env` file (documented in `.env.example`).

The process environment wins over `.env`, which wins over `.env.sandbox` (written by
`hekta-redcap sandbox init` for the local REDCap-compatible server). A missing or malformed
setting raises `ConfigError` with a one-line message naming the variable, never its value.
API tokens are wrapped in `Token`, whose `str()` and `repr()` are masked, so a token cannot
leak into output, logs or exceptions by accident; only the API client calls `reveal()`.

    >>> settings = Settings.load()
    >>> settings.api_url                       # REDCAP_API_URL
    'http://127.0.0.1:8765/api/'
    >>> settings.token("hekta")                # REDCAP_TOKEN_HEKTA
    Token('********')
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

from hekta_redcap.core.errors import ConfigError

# What `hekta-redcap sandbox init` writes for the local REDCap-compatible server.
SANDBOX_ENV = Path(".env.sandbox")
# Read in this order of precedence after the process environment: the user's own settings,
# then the local server's.
ENV_FILES = (Path(".env"), SANDBOX_ENV)
TOKEN_PATTERN = re.compile(r"[0-9A-Fa-f]{32}")


class Token:
    """A secret that never shows itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Token('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Token) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def token_variable(project: str) -> str:
    """The setting that holds a project's token: `REDCAP_TOKEN_<PROJECT>`."""
    return "REDCAP_TOKEN_" + re.sub(r"[^A-Z0-9]", "_", project.upper())


@dataclass(frozen=True)
class Settings:
    values: Mapping[str, str]

    @classmethod
    def load(
        cls, env_files: tuple[Path, ...] = ENV_FILES, environ: Mapping[str, str] | None = None
    ) -> Settings:
        """Merge the env files that exist (earlier ones win), then the process environment."""
        values: dict[str, str] = {}
        for env_file in reversed(env_files):
            if env_file.is_file():
                values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
        values.update(os.environ if environ is None else environ)
        return cls(values)

    def get(self, name: str) -> str | None:
        value = self.values.get(name, "").strip()
        return value or None

    def require(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise ConfigError(f"{name} is not set (see .env.example)")
        return value

    def number(self, name: str, default: int, minimum: int = 0) -> int:
        """A whole-number setting, `default` when unset; anything else is refused by name."""
        value = self.get(name)
        if value is None:
            return default
        if not value.isdigit() or int(value) < minimum:
            raise ConfigError(f"{name} must be a whole number, {minimum} or more")
        return int(value)

    @property
    def api_url(self) -> str:
        url = self.require("REDCAP_API_URL")
        if not re.fullmatch(r"https?://[^\s/]+(/[^\s]*)?/api/", url):
            raise ConfigError(
                "REDCAP_API_URL must be an http(s) URL ending in /api/ "
                "(for example https://redcap.example.org/api/)"
            )
        return url

    def token(self, project: str) -> Token:
        name = token_variable(project)
        value = self.require(name)
        if not TOKEN_PATTERN.fullmatch(value):
            raise ConfigError(f"{name} must be 32 hexadecimal characters (value not shown)")
        return Token(value.upper())
