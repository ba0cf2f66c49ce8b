"""Settings from the environment or a `.env` file, in one typed model (`.env.example` documents
each setting).

The process environment wins over `.env`, which wins over `.env.sandbox` (written by
`hekta-redcap sandbox init` for the local REDCap-compatible server); a blank value counts as
unset. Every setting the toolkit reads by a fixed name is a typed field of `Settings`, checked
when the settings are loaded: a malformed one raises `ConfigError` with a one-line message
naming the variable, never its value. Settings named per project or group (`REDCAP_TOKEN_<P>`,
`HEKTA_DIGEST_TO_<GROUP>`) are read by name with `get`. Secrets (API tokens, passwords) are
`Token`s, secret strings whose `str()` and `repr()` are masked, so a secret cannot leak into
output, logs or exceptions by accident; only the code that hands it over calls `reveal()`.

    >>> settings = Settings.load()
    >>> settings.api_url                       # REDCAP_API_URL, checked when a command needs it
    'http://127.0.0.1:8765/api/'
    >>> settings.token("hekta")                # REDCAP_TOKEN_HEKTA
    Token('********')
    >>> settings.sync_workers                  # HEKTA_SYNC_WORKERS, a whole number of 1 or more
    2
"""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from dotenv import dotenv_values
from pydantic import Field, PrivateAttr, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from hekta_redcap.core.errors import ConfigError

# What `hekta-redcap sandbox init` writes for the local REDCap-compatible server.
SANDBOX_ENV = Path(".env.sandbox")
# Read in this order of precedence after the process environment: the user's own settings,
# then the local server's.
ENV_FILES = (Path(".env"), SANDBOX_ENV)
TOKEN_PATTERN = re.compile(r"[0-9A-Fa-f]{32}")


class Token(SecretStr):
    """A secret that never shows itself."""

    def reveal(self) -> str:
        return self.get_secret_value()

    def __repr__(self) -> str:
        return "Token('********')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)


def token_variable(project: str) -> str:
    """The setting that holds a project's token: `REDCAP_TOKEN_<PROJECT>`."""
    return "REDCAP_TOKEN_" + re.sub(r"[^A-Z0-9]", "_", project.upper())


# The one integer rule: a whole number, at least the minimum, or the setting's error.
AtLeast1 = Annotated[int, Field(ge=1)]
AtLeast0 = Annotated[int, Field(ge=0)]
Seconds = Annotated[float, Field(gt=0)]


def _setting(name: str, default: Any = None, **checks: Any) -> Any:
    return Field(default, alias=name, **checks)


class Settings(BaseSettings):
    """Every setting, typed; `.env.example` says what each is for."""

    model_config = SettingsConfigDict(extra="allow", frozen=True, populate_by_name=False)

    # REDCap
    redcap_api_url: str | None = _setting("REDCAP_API_URL")  # checked by `api_url`, on use
    redcap_survey_url: str | None = _setting("REDCAP_SURVEY_URL")
    redcap_attempts: AtLeast1 = _setting("HEKTA_REDCAP_ATTEMPTS", 6)
    redcap_backoff_seconds: AtLeast0 = _setting("HEKTA_REDCAP_BACKOFF_SECONDS", 1)
    # definitions, store, sync and the daemon
    definitions: Path | None = _setting("HEKTA_DEFINITIONS")
    overlay_dir: Path | None = _setting("HEKTA_OVERLAY_DIR")
    store: Path = _setting("HEKTA_STORE", Path("var/hekta.sqlite3"))
    sync_overlap_minutes: AtLeast0 = _setting("HEKTA_SYNC_OVERLAP_MINUTES", 10)
    sync_reconcile_hours: AtLeast0 = _setting("HEKTA_SYNC_RECONCILE_HOURS", 24)
    sync_batch_size: AtLeast1 = _setting("HEKTA_SYNC_BATCH_SIZE", 1000)
    sync_workers: AtLeast1 = _setting("HEKTA_SYNC_WORKERS", 2)
    sync_minutes: AtLeast1 = _setting("HEKTA_SYNC_MINUTES", 15)
    validate_minutes: AtLeast1 = _setting("HEKTA_VALIDATE_MINUTES", 60)
    remind_minutes: AtLeast1 = _setting("HEKTA_REMIND_MINUTES", 15)
    user: str | None = _setting("HEKTA_USER")
    allocation_table: Path | None = _setting("HEKTA_ALLOCATION_TABLE")
    # registers: deliveries on disk, the linkage key kept apart from them
    register_dir: Path = _setting("HEKTA_REGISTER_DIR", Path("var/registers"))
    linkage_key: Path = _setting("HEKTA_LINKAGE_KEY", Path("var/keys/linkage-key.csv"))
    allow_synthetic_ids: bool = _setting("HEKTA_ALLOW_SYNTHETIC_IDS", False)
    # reminders: channels, texts, digests
    outbox_dir: Path | None = _setting("HEKTA_OUTBOX_DIR")
    smtp_host: str | None = _setting("HEKTA_SMTP_HOST")
    smtp_port: int | None = _setting("HEKTA_SMTP_PORT", ge=1, le=65535)
    smtp_security: str = _setting("HEKTA_SMTP_SECURITY", "starttls")
    smtp_user: str | None = _setting("HEKTA_SMTP_USER")
    smtp_password: Token | None = _setting("HEKTA_SMTP_PASSWORD")
    smtp_from: str | None = _setting("HEKTA_SMTP_FROM")
    smtp_ca_file: Path | None = _setting("HEKTA_SMTP_CA_FILE")
    smtp_timeout: Seconds = _setting("HEKTA_SMTP_TIMEOUT", 30.0)
    sms_url: str | None = _setting("HEKTA_SMS_URL")
    sms_token: Token | None = _setting("HEKTA_SMS_TOKEN")
    sms_user: str | None = _setting("HEKTA_SMS_USER")
    sms_password: Token | None = _setting("HEKTA_SMS_PASSWORD")
    sms_sender: str = _setting("HEKTA_SMS_SENDER", "Studie")
    sms_body: str | None = _setting("HEKTA_SMS_BODY")
    sms_content_type: str = _setting("HEKTA_SMS_CONTENT_TYPE", "application/json")
    sms_timeout: Seconds = _setting("HEKTA_SMS_TIMEOUT", 30.0)
    study_phone: str | None = _setting("HEKTA_STUDY_PHONE")

    _values: dict[str, str] = PrivateAttr(default_factory=dict)

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        """The settings in `values` (blank ones count as unset)."""
        given = {k: v.strip() for k, v in (values or {}).items() if v is not None and v.strip()}
        fields: dict[str, Any] = given  # field values by alias (BaseSettings types its options)
        try:
            super().__init__(**fields)
        except ValidationError as exc:
            raise ConfigError(_first_error(exc)) from None
        self._values = given

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        *_: Any,
        **__: Any,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only the values given: `load` merges the environment and the files itself, in the
        precedence the toolkit documents, keeping the settings named per project."""
        return (init_settings,)

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

    @property
    def values(self) -> Mapping[str, str]:
        """Every setting as given (what a subprocess gets to see)."""
        return self._values

    def get(self, name: str) -> str | None:
        """A setting by name (for those named per project or group)."""
        return self._values.get(name)

    def require(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise ConfigError(f"{name} is not set (see .env.example)")
        return value

    @property
    def api_url(self) -> str:
        url = self.require("REDCAP_API_URL")
        if not re.fullmatch(r"https?://[^\s/]+(/[^\s]*)?/api/", url):
            raise ConfigError(
                "REDCAP_API_URL must be an http(s) URL ending in /api/ "
                "(for example https://redcap.example.org/api/)"
            )
        return url

    def who(self) -> str:
        """The person acting (who accepts a problem, who randomizes): HEKTA_USER, else the
        login name."""
        return self.user or getpass.getuser()

    def token(self, project: str) -> Token:
        name = token_variable(project)
        value = self.require(name)
        if not TOKEN_PATTERN.fullmatch(value):
            raise ConfigError(f"{name} must be 32 hexadecimal characters (value not shown)")
        return Token(value.upper())


_KINDS = {
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_parsing": "a number",
    "greater_than_equal": "at least {ge}",
    "greater_than": "more than {gt}",
    "less_than_equal": "at most {le}",
}


def _first_error(exc: ValidationError) -> str:
    """The first malformed setting in one line: its name and what it must be (never its
    value, which may be a secret)."""
    error = exc.errors(include_input=False, include_url=False)[0]
    name = str(error["loc"][0]) if error["loc"] else "a setting"
    context = error.get("ctx") or {}
    kind = "a positive number" if context.get("gt") == 0 else _KINDS.get(error["type"])
    what = kind.format(**context) if kind else error["msg"].lower()
    return f"{name} must be {what} (see .env.example)"
