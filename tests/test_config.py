"""Settings: one-line errors naming the variable, and tokens that never show themselves."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from hekta_redcap.core.errors import ConfigError
from hekta_redcap.core.settings import Settings, Token, token_variable

TOKEN = "0123456789ABCDEF0123456789ABCDEF"


def test_environment_overrides_env_file(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("REDCAP_API_URL=https://file.example/api/\nREDCAP_TOKEN_HEKTA=" + TOKEN + "\n")
    sandbox = tmp_path / ".env.sandbox"
    sandbox.write_text("REDCAP_API_URL=http://127.0.0.1:1/api/\nREDCAP_TOKEN_IPS_FIDELITY=" + TOKEN)
    settings = Settings.load((env, sandbox), {"REDCAP_API_URL": "https://env.example/redcap/api/"})
    assert settings.api_url == "https://env.example/redcap/api/"
    assert settings.token("hekta").reveal() == TOKEN
    assert settings.token("ips_fidelity").reveal() == TOKEN
    assert Settings.load((env, sandbox), {}).api_url == "https://file.example/api/"
    assert Settings.load((sandbox,), {}).api_url == "http://127.0.0.1:1/api/"


def test_token_variable_per_project() -> None:
    assert token_variable("hekta") == "REDCAP_TOKEN_HEKTA"
    assert token_variable("ips_fidelity") == "REDCAP_TOKEN_IPS_FIDELITY"


@pytest.mark.parametrize(
    ("environ", "call", "message"),
    [
        ({}, lambda s: s.api_url, "REDCAP_API_URL is not set (see .env.example)"),
        ({"REDCAP_API_URL": "  "}, lambda s: s.api_url, "REDCAP_API_URL is not set"),
        ({"REDCAP_API_URL": "https://x.org/api"}, lambda s: s.api_url, "must be an http(s) URL"),
        ({"REDCAP_API_URL": "ftp://x.org/api/"}, lambda s: s.api_url, "must be an http(s) URL"),
        ({}, lambda s: s.token("ips_fidelity"), "REDCAP_TOKEN_IPS_FIDELITY is not set"),
        (
            {"REDCAP_TOKEN_HEKTA": "secret-value-123"},
            lambda s: s.token("hekta"),
            "REDCAP_TOKEN_HEKTA must be 32 hexadecimal characters (value not shown)",
        ),
    ],
)
def test_bad_settings_name_the_variable(
    tmp_path: Path, environ: dict[str, str], call: Callable[[Settings], object], message: str
) -> None:
    settings = Settings.load((tmp_path / "absent.env",), environ)
    with pytest.raises(ConfigError) as caught:
        call(settings)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert "secret-value-123" not in str(caught.value)


def test_token_never_shows_its_value() -> None:
    token = Token(TOKEN)
    shown = [str(token), repr(token), f"{token}", str([token]), str({"t": token})]
    assert all(TOKEN not in text for text in shown)
    assert token == Token(TOKEN) and token.reveal() == TOKEN
    with pytest.raises(ValueError) as caught:
        raise ValueError(f"request failed for {token}")
    assert TOKEN not in str(caught.value)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"HEKTA_SYNC_WORKERS": "0"}, "HEKTA_SYNC_WORKERS must be at least 1"),
        (
            {"HEKTA_SYNC_OVERLAP_MINUTES": "ten"},
            "HEKTA_SYNC_OVERLAP_MINUTES must be a whole number",
        ),
        ({"HEKTA_REMIND_MINUTES": "1.5"}, "HEKTA_REMIND_MINUTES must be a whole number"),
        ({"HEKTA_REDCAP_BACKOFF_SECONDS": "-1"}, "HEKTA_REDCAP_BACKOFF_SECONDS must be at least 0"),
        ({"HEKTA_SMTP_PORT": "70000"}, "HEKTA_SMTP_PORT must be at most 65535"),
        ({"HEKTA_SMS_TIMEOUT": "0"}, "HEKTA_SMS_TIMEOUT must be a positive number"),
    ],
)
def test_malformed_settings_are_refused_on_loading_by_name(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.load((), environ)
    assert str(caught.value) == f"{message} (see .env.example)"


def test_settings_are_typed_with_their_defaults_and_blanks_unset() -> None:
    settings = Settings.load((), {"HEKTA_SYNC_WORKERS": "4", "HEKTA_SMTP_USER": "  "})
    assert (settings.sync_workers, settings.sync_batch_size, settings.remind_minutes) == (
        4,
        1000,
        15,
    )
    assert settings.smtp_user is None and settings.get("HEKTA_SMTP_USER") is None
    assert settings.store == Path("var/hekta.sqlite3")
    secret = Settings.load((), {"HEKTA_SMS_PASSWORD": "pa55word"}).sms_password
    assert secret is not None and secret.reveal() == "pa55word" and "pa55word" not in repr(secret)


def test_definitions_default_to_the_checkout_s_outside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run from a directory without ./instruments, the shipped definitions are found (the
    package moved a level down once and looked inside itself)."""
    from hekta_redcap.definitions.study import default_root

    monkeypatch.chdir(tmp_path)
    root = default_root()
    assert (root / "studies" / "hekta.yaml").is_file()
    assert root == Path(__file__).resolve().parent.parent / "instruments"
