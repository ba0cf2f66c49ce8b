"""Structured log lines, one format for every daemon step: `event=<name> key=value ...`, with a
value quoted (as JSON) where it holds spaces, quotes or `=`, so a log shipper can split them.

Callers pass counts, kinds, steps and record ids only: never field values, addresses, texts or
tokens (health data and secrets stay out of logs).

    >>> line("reminder.skipped", record="17", reason="daily cap")
    'event=reminder.skipped record=17 reason="daily cap"'
"""

from __future__ import annotations

import json


def line(event: str, **fields: object) -> str:
    return " ".join([f"event={event}", *(f"{k}={_shown(v)}" for k, v in fields.items())])


def _shown(value: object) -> str:
    text = str(value)
    if text and not any(c.isspace() or c in '"=' for c in text):
        return text
    return json.dumps(text, ensure_ascii=False)
