"""Message texts: every template renders, stays neutral, fits two SMS, and the digest shows
record ids only."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import LIBRARY

from hekta_redcap.core.clock import format_date
from hekta_redcap.core.errors import HektaError
from hekta_redcap.followup.messages import (
    FORBIDDEN_WORDS,
    Rendered,
    check_text,
    render,
    template_names,
)

LANGUAGES = ("nb", "en")
PARTICIPANT = {(lang, name, channel) for lang in LANGUAGES for name in ("invite", "reminder")
               for channel in ("sms", "email")}  # fmt: skip
DIGEST = {(lang, "digest", "email") for lang in LANGUAGES}
BASE = "https://redcap.example.no/surveys/?s="
LINK = (BASE + "K7XW" * 10)[:70]  # a 70-character survey link
PHONE = "+47 22 00 00 00"
ITEM_KEYS = ("record_id", "event", "event_label", "state", "state_label", "window_open",
             "window_close", "target_date", "reminders_sent", "next_action")  # fmt: skip

# GSM 03.38: the basic set (one character each) and its extension (two: escape + character).
GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = set("^{}\\[~]|€\f")


def gsm7_length(text: str) -> int:
    unknown = set(text) - GSM7_BASIC - GSM7_EXTENDED
    assert not unknown, f"not GSM-7 (the SMS would go as UCS-2): {sorted(unknown)}"
    return sum(2 if char in GSM7_EXTENDED else 1 for char in text)


def item(record_id: str, close: dt.date, **extra: Any) -> dict[str, Any]:
    return {
        "record_id": record_id,
        "event": "fu6_arm_1",
        "event_label": "6 months",
        "state": "reminded",
        "state_label": "Reminded",
        "window_open": close - dt.timedelta(days=42),
        "window_close": close,
        "target_date": close - dt.timedelta(days=14),
        "reminders_sent": 1,
        "next_action": "Call",
        **extra,
    }


DIGEST_ITEMS = [item("12", dt.date(2026, 6, 12)), item("3", dt.date(2026, 5, 20))]


def sample(name: str, phone: str | None = PHONE) -> dict[str, Any]:
    if name == "digest":
        counts = {"Reminded": len(DIGEST_ITEMS)}
        return {"recipient": "oslo", "day": dt.date(2026, 5, 18), "items": DIGEST_ITEMS,
                "counts": counts}  # fmt: skip
    return {"link": LINK, "window_close": dt.date(2026, 6, 5), "phone": phone}


def render_sample(key: tuple[str, str, str], phone: str | None = PHONE) -> Rendered:
    language, name, channel = key
    return render(LIBRARY, name, channel, language, **sample(name, phone))


def test_the_shipped_templates() -> None:
    assert template_names(LIBRARY) == PARTICIPANT | DIGEST


@pytest.mark.parametrize("key", sorted(PARTICIPANT | DIGEST), ids="-".join)
@pytest.mark.parametrize("phone", [PHONE, None])
def test_every_template_renders_neutral_text(key: tuple[str, str, str], phone: str | None) -> None:
    text = render_sample(key, phone)
    language, name, channel = key
    assert (text.subject is not None) == (channel == "email")
    assert text.body and text.body == text.body.strip()
    assert check_text(f"{text.subject or ''}\n{text.body}", language) == []
    if name != "digest":
        assert LINK in text.body  # no HTML escaping of the link's characters
        assert "05.06.2026" in text.body
        assert (PHONE in text.body) == (phone is not None)
        assert "None" not in text.body


@pytest.mark.parametrize("key", sorted(k for k in PARTICIPANT if k[2] == "sms"), ids="-".join)
def test_sms_fits_two_segments(key: tuple[str, str, str]) -> None:
    assert len(LINK) == 70
    assert gsm7_length(render_sample(key).body) <= 2 * 153


def test_gsm7_length_counts_extension_characters_twice() -> None:
    assert gsm7_length("æøå ÆØÅ") == 7
    assert gsm7_length("{€}") == 6
    with pytest.raises(AssertionError, match="not GSM-7"):
        gsm7_length("«svar»")


@pytest.mark.parametrize(
    ("text", "language", "found"),
    [
        ("Hilsen HEKTA PÅ JOBB-teamet", "nb", ["HEKTA", "JOBB"]),
        ("Ta med NAV-papirene og navnet ditt", "nb", ["NAV"]),
        ("Vi har fått navn og navnet ditt", "nb", []),
        ("Rusbehandling ved poliklinikken", "nb", ["Rusbehandling", "poliklinikken"]),
        ("Timen hos legen er flyttet", "nb", ["legen"]),
        ("Your workplace health check", "en", ["workplace", "health"]),
        ("The IPS team and the hospital", "en", ["IPS", "hospital"]),
        ("Thank you for your answers", "en", []),
    ],
)
def test_check_text_catches_planted_words(text: str, language: str, found: list[str]) -> None:
    assert check_text(text, language) == found


def test_forbidden_word_lists_cover_the_brief() -> None:
    for language, word in [("nb", "alkohol"), ("nb", "helsestasjon"), ("nb", "sykehuset"),
                           ("en", "drugs"), ("en", "addiction"), ("en", "psychiatry")]:  # fmt: skip
        assert check_text(f"Om {word} i dag", language) == [word]
    assert set(FORBIDDEN_WORDS) == set(LANGUAGES)
    with pytest.raises(ValueError, match="'de'"):
        check_text("Hallo", "de")


@pytest.mark.parametrize("key", sorted(PARTICIPANT | DIGEST), ids="-".join)
def test_a_planted_word_in_a_template_is_caught(key: tuple[str, str, str], tmp_path: Path) -> None:
    language, name, channel = key
    source = (LIBRARY / "templates" / language / f"{name}.{channel}.j2").read_text("utf-8")
    planted = tmp_path / "templates" / language / f"{name}.{channel}.j2"
    planted.parent.mkdir(parents=True)
    planted.write_text(source.rstrip("\n") + "\nHEKTA PÅ JOBB\n", "utf-8")
    text = render(tmp_path, name, channel, language, **sample(name))
    assert check_text(text.body, language) == ["HEKTA", "JOBB"]


def test_a_missing_variable_names_the_template_and_line() -> None:
    with pytest.raises(HektaError, match="'link' is undefined") as caught:
        render(LIBRARY, "invite", "sms", "nb", window_close=dt.date(2026, 6, 5), phone=None)
    origin = caught.value.origin
    assert origin is not None
    assert origin.file == LIBRARY / "templates" / "nb" / "invite.sms.j2"
    assert origin.line == 2  # "Svar her: {{ link }}"
    with pytest.raises(HektaError, match=r"digest\.email\.j2.*'counts' is undefined"):
        render(
            LIBRARY,
            "digest",
            "email",
            "en",
            recipient="alle",
            day=dt.date.today(),
            items=DIGEST_ITEMS,
        )


def test_a_missing_template_names_the_expected_path() -> None:
    with pytest.raises(HektaError, match=r"templates/en/call\.sms\.j2: no sms template 'call'"):
        render(LIBRARY, "call", "sms", "en", **sample("invite"))


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("Hello {{ link }}\n", "starts with a 'Subject: ...' line"),
        ("Subject: Hello\nBody {{ link }}\n", "starts with a 'Subject: ...' line"),
        ("Subject: Hello\n\n{% if link %}\n", "template syntax"),
    ],
)
def test_broken_email_templates(tmp_path: Path, source: str, message: str) -> None:
    file = tmp_path / "templates" / "en" / "note.email.j2"
    file.parent.mkdir(parents=True)
    file.write_text(source, "utf-8")
    with pytest.raises(HektaError, match=re.escape(message)) as caught:
        render(tmp_path, "note", "email", "en", link=LINK)
    assert caught.value.origin is not None and caught.value.origin.file == file


def test_subject_and_body_are_split() -> None:
    text = render_sample(("en", "invite", "email"))
    assert text.subject == "A new questionnaire in the research project"
    assert not text.body.startswith("Subject")


def test_template_names_ignore_other_files(tmp_path: Path) -> None:
    (tmp_path / "templates" / "nb").mkdir(parents=True)
    for name in ("invite.sms.j2", "invite.fax.j2", "notes.txt", "plain.j2"):
        (tmp_path / "templates" / "nb" / name).write_text("x", "utf-8")
    assert template_names(tmp_path) == {("nb", "invite", "sms")}


def test_dates_are_day_month_year() -> None:
    assert format_date(dt.date(2026, 3, 5)) == "05.03.2026"
    assert format_date(dt.datetime(2026, 12, 31, 23, 59)) == "31.12.2026"
    assert format_date("2027-01-09") == "09.01.2027"
    with pytest.raises(TypeError, match="needs a date"):
        format_date(20260305)  # type: ignore[arg-type]


@pytest.mark.parametrize("language", LANGUAGES)
def test_digest_lists_record_ids_by_deadline(language: str) -> None:
    text = render_sample((language, "digest", "email"))
    ids = re.findall(r"^ID (\d+)", text.body, flags=re.MULTILINE)
    assert ids == ["3", "12"]  # nearest window close first
    assert "20.05.2026" in text.body and "08.04.2026" in text.body  # window_open of record 3
    assert "REDCap" in text.body and "followups" in text.body
    assert "18.05.2026" in (text.subject or "") and "oslo" in (text.subject or "")
    assert "Reminded: 2" in text.body


@pytest.mark.parametrize("language", LANGUAGES)
def test_digest_has_no_personal_data(language: str) -> None:
    personal = {"name": "Kari Nordmann", "mobile": "+4791234567", "email": "kari@example.no",
                "contact_mobile": "+4799999999", "first_name": "Kari"}  # fmt: skip
    items = [item("7", dt.date(2026, 6, 1), **personal)]
    text = render(LIBRARY, "digest", "email", language, recipient="alle",
                  day=dt.date(2026, 5, 18), items=items, counts={"Reminded": 1})  # fmt: skip
    for value in personal.values():
        assert value not in f"{text.subject}\n{text.body}"
    source = (LIBRARY / "templates" / language / "digest.email.j2").read_text("utf-8")
    assert set(re.findall(r"\bitem\.(\w+)", source)) <= set(ITEM_KEYS)


@pytest.mark.parametrize(("language", "nothing"), [("nb", "Ingenting å gjøre"),
                                                   ("en", "Nothing to do")])  # fmt: skip
def test_empty_digest_says_nothing_to_do(language: str, nothing: str) -> None:
    text = render(LIBRARY, "digest", "email", language, recipient="alle",
                  day=dt.date(2026, 5, 18), items=[], counts={})  # fmt: skip
    assert nothing in text.body and nothing.lower() in (text.subject or "").lower()
    assert not re.search(r"^ID ", text.body, flags=re.MULTILINE)
