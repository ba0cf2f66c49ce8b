"""Opening a REDCap project through PyCap with the settings' URL and token.

The token is revealed only here, to the client; a network failure becomes a one-line error
that names the URL (never the token).
"""

from __future__ import annotations

import redcap
import requests

from hekta_redcap.config import Settings
from hekta_redcap.errors import HektaError

TIMEOUT = 120  # seconds per API call: large exports and metadata imports are slow on real servers


class ConnectionFailed(HektaError):
    exit_code = 2


def connect(settings: Settings, project: str) -> redcap.Project:
    """A PyCap client for `project` (REDCAP_API_URL and REDCAP_TOKEN_<PROJECT>). PyCap calls
    nothing until asked, so failures surface as `redcap.RedcapError` on the first call."""
    return redcap.Project(settings.api_url, settings.token(project).reveal(), timeout=TIMEOUT)


def failure(settings: Settings, exc: Exception) -> ConnectionFailed:
    """A REDCap or network failure as a one-line error naming the URL."""
    first = exc.args[0] if exc.args else None
    text = first["error"] if isinstance(first, dict) and "error" in first else str(exc)
    detail = " ".join(str(text).split())[:300] if text else type(exc).__name__
    if isinstance(exc, requests.ConnectionError | requests.Timeout):
        detail = f"cannot connect ({type(exc).__name__})"
    return ConnectionFailed(f"REDCap at {settings.api_url}: {detail}")
