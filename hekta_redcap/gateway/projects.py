"""Creating a project with a super token (the one call outside a project's token)."""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

import requests

from hekta_redcap.core.settings import TOKEN_PATTERN, Token
from hekta_redcap.gateway.transport import TIMEOUT, Refused, Unavailable


def create_project(url: str, super_token: Token, fields: dict[str, Any], name: str) -> Token:
    """Create an empty project with a super token; returns its API token. Tried once: after a
    dropped answer the project may exist, and a second attempt would make another."""
    item = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in fields.items())
    payload = {
        "token": super_token.reveal(),
        "content": "project",
        "format": "xml",
        "data": f"<item>{item}</item>",
    }
    try:
        response = requests.post(url, data=payload, timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise Unavailable(
            f"REDCap at {url}: creating project '{name}' failed ({type(exc).__name__}); check in "
            "REDCap whether it was created before trying again"
        ) from None
    token = response.text.strip()[-32:]
    if response.status_code != 200 or not TOKEN_PATTERN.fullmatch(token):
        text = " ".join(response.text.split())[:300] or f"HTTP {response.status_code}"
        raise Refused(f"REDCap at {url} refused to create project '{name}': {text}", text)
    return Token(token)
