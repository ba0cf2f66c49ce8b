"""How a REDCap call fails, and how often it is tried: the faults worth another attempt, the
one-line errors a command shows, the retry policy, and the response hook that reads the HTTP
status PyCap ignores."""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from hekta_redcap.core.errors import HektaError

logger = logging.getLogger("hekta_redcap.gateway")

TIMEOUT = 120  # seconds per API call: large exports and metadata imports are slow on real servers


class ServerFault(requests.HTTPError):
    """The server (or a proxy before it) answered with an HTTP 5xx: nothing REDCap said."""


class BadReply(requests.RequestException):
    """A reply that cannot be what the call returns (an error page, a cut body)."""


# What a flaky server or network does; each is worth another attempt.
TRANSIENT = (
    json.JSONDecodeError,
    requests.exceptions.JSONDecodeError,
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
    ServerFault,
    BadReply,
)


class Unavailable(HektaError):
    """REDCap kept failing transiently until the attempts ran out."""

    exit_code = 2


class Refused(HektaError):
    """REDCap refused the call with an error message of its own. `retried`: an earlier
    attempt of the same call failed transiently, so the server may have done the work then
    (what a call that is not idempotent, randomizing, must know)."""

    exit_code = 2

    def __init__(self, message: str, detail: str, retried: bool = False) -> None:
        super().__init__(message)
        self.detail = detail  # REDCap's own words
        self.retried = retried


@dataclass(frozen=True)
class Retry:
    """Exponential backoff: attempt n waits min(cap, base * factor^(n-1)) seconds, times a
    random share in [0.5, 1] when `jitter` is set (so many clients do not retry in step)."""

    attempts: int = 6
    base: float = 1.0
    factor: float = 2.0
    cap: float = 30.0
    jitter: random.Random | None = field(default_factory=random.Random)
    sleep: Callable[[float], None] = time.sleep

    def delay(self, attempt: int) -> float:
        wait = min(self.cap, self.base * self.factor ** (attempt - 1))
        return wait * self.jitter.uniform(0.5, 1.0) if self.jitter else wait


class RefusalReply(requests.RequestException):
    """A 4xx: REDCap (or a proxy before it) refused the request; its text says why."""


def check_status(response: requests.Response, *_: Any, **__: Any) -> None:
    """A response hook, since PyCap reads a body whatever its status: a 5xx comes from PHP or
    a proxy (as do 408 and 429: try later), another 4xx is a refusal in REDCap's words."""
    status = response.status_code
    if status >= 500 or status in (408, 429):
        raise ServerFault(f"HTTP {status}", response=response)
    if status >= 400:
        raise RefusalReply(error_text(response.text) or f"HTTP {status}", response=response)


def error_text(body: str) -> str:
    """REDCap's error message from a reply in JSON, XML or CSV (or a proxy's page), as text."""
    try:
        decoded = json.loads(body)
    except ValueError:
        decoded = None
    if isinstance(decoded, dict) and "error" in decoded:
        return str(decoded["error"])
    found = re.search(r"<error>(.*?)</error>", body, re.DOTALL | re.IGNORECASE)
    text = found.group(1) if found else re.sub(r"<[^>]*>", " ", body)
    return " ".join(text.removeprefix("ERROR:").split())[:300]


def fault_in_words(exc: BaseException | None) -> str:
    """A transient fault in words, without anything the reply held."""
    kind = type(exc).__name__
    if isinstance(exc, ServerFault):
        return str(exc)
    if isinstance(exc, requests.Timeout):
        return f"no answer in time ({kind})"
    if isinstance(exc, requests.ConnectionError):
        return f"cannot connect ({kind})"
    return kind


def refusal_text(exc: requests.RequestException) -> str:
    """REDCap's error message in one line (PyCap raises it with the decoded reply)."""
    first = exc.args[0] if exc.args else None
    text = first["error"] if isinstance(first, dict) and "error" in first else str(first or "")
    return error_text(text) or type(exc).__name__
