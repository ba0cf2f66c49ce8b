"""What a message says: SMS and e-mail texts from jinja2 templates kept beside the instruments.

Templates live in `<root>/templates/<language>/<name>.<channel>.j2` (channel `sms` or
`email`). An e-mail template starts with a `Subject: ...` line and a blank line. Participant
texts must stay neutral, since a phone or inbox is often seen by others: `check_text` finds
words that would hint at what the study is about (see `FORBIDDEN_WORDS`).

    >>> text = render(project.root, "invite", "sms", "nb", link=url, window_close=close, phone=None)
    >>> text.body.splitlines()[0]
    'Hei! Det er tid for et nytt spørreskjema i forskningsprosjektet du er med i.'
    >>> check_text(text.body, "nb")
    []
"""

from __future__ import annotations

import functools
import re
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from hekta_redcap.core.clock import format_date
from hekta_redcap.core.errors import HektaError, Origin

TEMPLATES_DIR = "templates"
CHANNELS = ("sms", "email")
SUBJECT = "Subject:"

# Word starts (case-insensitive) that must not appear in participant texts or digests. A stem
# ending in `*` matches any word beginning with it; one without matches only the whole word
# (so `nav` catches "NAV" and "NAV-kontor" but not "navn").
FORBIDDEN_WORDS: dict[str, tuple[str, ...]] = {
    "nb": tuple(
        "rus* alkohol* narkotik* avhengig* behandl* klinikk* poliklinikk* hekta* ips jobb* "
        "arbeid* nav lege* psyk* sykehus* helse* terapi* rehab* edru* ansett*".split()
    ),
    "en": tuple(
        "substance* alcohol* drug* addict* treat* clinic* hekta* ips job* work* health* "
        "hospital* psych* therap* rehab* sober* employ* nav".split()
    ),
}


@dataclass(frozen=True)
class Rendered:
    subject: str | None
    body: str


def render(root: Path, template: str, channel: str, language: str, **context: Any) -> Rendered:
    """Render `<root>/templates/<language>/<template>.<channel>.j2`. A missing template or
    variable is a `HektaError` naming the template file."""
    path = root / TEMPLATES_DIR / language / f"{template}.{channel}.j2"
    try:
        compiled = _environment(root).get_template(f"{language}/{template}.{channel}.j2")
    except jinja2.TemplateNotFound:
        raise HektaError(
            f"no {channel} template '{template}' in language '{language}'", Origin(path)
        ) from None
    except jinja2.TemplateSyntaxError as exc:
        raise HektaError(f"template syntax: {exc.message}", Origin(path, exc.lineno)) from None
    try:
        text = compiled.render(**context).strip()
    except jinja2.TemplateError as exc:
        line = _template_line(exc, compiled.filename)
        raise HektaError(f"template: {exc.message}", Origin(path, line)) from None
    if channel != "email":
        return Rendered(None, text)
    first, _, rest = text.partition("\n")
    if not first.startswith(SUBJECT) or (rest and not rest.startswith("\n")):
        raise HektaError(
            f"an e-mail template starts with a '{SUBJECT} ...' line and a blank line",
            Origin(path, 1),
        )
    return Rendered(first.removeprefix(SUBJECT).strip(), rest.strip())


def template_names(root: Path) -> set[tuple[str, str, str]]:
    """The (language, name, channel) of every template present."""
    found = set()
    for file in (root / TEMPLATES_DIR).glob("*/*.j2"):
        name, _, channel = file.name.removesuffix(".j2").rpartition(".")
        if name and channel in CHANNELS:
            found.add((file.parent.name, name, channel))
    return found


def check_text(text: str, language: str) -> list[str]:
    """The forbidden words in `text`, as written there, in order of appearance."""
    return [match.group(0) for match in _forbidden(language).finditer(text)]


@functools.cache
def _environment(root: Path) -> jinja2.Environment:
    """Plain text: no HTML escaping (a link's `&` stays as it is)."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(root / TEMPLATES_DIR),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["date"] = format_date
    return environment


def _template_line(exc: Exception, filename: str | None) -> int | None:
    """The template line being rendered when `exc` was raised (jinja2 maps its frames back to
    template lines)."""
    lines = [n for f, n in traceback.walk_tb(exc.__traceback__) if f.f_code.co_filename == filename]
    return lines[-1] if lines else None


@functools.cache
def _forbidden(language: str) -> re.Pattern[str]:
    if language not in FORBIDDEN_WORDS:
        raise ValueError(f"no forbidden-word list for language '{language}'")
    words = [
        re.escape(word[:-1]) + r"\w*" if word.endswith("*") else re.escape(word) + r"\b"
        for word in FORBIDDEN_WORDS[language]
    ]
    return re.compile(r"\b(?:" + "|".join(words) + ")", re.IGNORECASE)
