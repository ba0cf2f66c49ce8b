"""The one door to a REDCap project: every API call the toolkit makes goes through a `Gateway`,
with one retry policy, replies checked for what they must be, and failures as one line.

    >>> api = Gateway.open(settings, "hekta")
    >>> rows = api.export_records(records=["1"], **EXPORT)
    >>> link = api.survey_link("1", "swls", "followup_6m_arm_1")   # a checked survey URL

Transient, and retried with exponential backoff and jitter (tenacity): an HTTP 5xx (PHP's error
page, a proxy's 502), a body that fails to decode or arrives cut short, a dropped connection, a
timeout, and a text reply that is not what its call returns (a survey link that is not a link to
a survey on the project's REDCap host, a version that is not one). PyCap hands text replies over
without looking at the HTTP status, so the status is checked on every response and each text
reply by its form. REDCap's own refusals (its error message, with a 4xx) are not retried: they
raise `Refused`. When the attempts run out, `Unavailable` names the call and the URL. Both are
`HektaError`s, shown as one line; neither ever holds the token.

Each retry is logged as one structured line (the call, the attempt, the kind of fault).
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

import redcap
import requests
import tenacity

from hekta_redcap.core.errors import HektaError
from hekta_redcap.core.logline import line
from hekta_redcap.core.settings import TOKEN_PATTERN, Settings, Token

logger = logging.getLogger("hekta_redcap.gateway")

TIMEOUT = 120  # seconds per API call: large exports and metadata imports are slow on real servers
# The export every stored row comes from: raw codes, unique event names, each record's data
# access group, and the survey timestamps the follow-up reads.
EXPORT: dict[str, Any] = {
    "format_type": "json",
    "event_name": "unique",
    "export_data_access_groups": True,
    "export_survey_fields": True,
}
SURVEY_BASE = "REDCAP_SURVEY_URL"  # the survey links' base, when not the API URL's
ATTEMPTS = "HEKTA_REDCAP_ATTEMPTS"  # attempts per call (default 6)
BACKOFF = "HEKTA_REDCAP_BACKOFF_SECONDS"  # the first wait between attempts (default 1; doubles)


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
    """REDCap refused the call with an error message of its own."""

    exit_code = 2

    def __init__(self, message: str, detail: str) -> None:
        super().__init__(message)
        self.detail = detail  # REDCap's own words


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


def _check_status(response: requests.Response, *_: Any, **__: Any) -> None:
    """A response hook, since PyCap reads a body whatever its status: a 5xx comes from PHP or
    a proxy (as do 408 and 429: try later), another 4xx is a refusal in REDCap's words."""
    status = response.status_code
    if status >= 500 or status in (408, 429):
        raise ServerFault(f"HTTP {status}", response=response)
    if status >= 400:
        raise RefusalReply(_error_text(response.text) or f"HTTP {status}", response=response)


def _error_text(body: str) -> str:
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


T = TypeVar("T")


class Gateway:
    """A REDCap project's API, as the toolkit calls it (see the module docstring). The token
    goes to PyCap and nowhere else; `survey_base` is where survey links point (default: the
    API URL without `api/`)."""

    def __init__(
        self, url: str, token: str, *, retry: Retry | None = None, survey_base: str | None = None
    ) -> None:
        self.client = redcap.Project(
            url, token, timeout=TIMEOUT, hooks={"response": [_check_status]}
        )
        self.url = url
        self.retry = retry or Retry()
        self.survey_host = urlsplit(survey_base or url.removesuffix("api/")).netloc.lower()

    @classmethod
    def open(cls, settings: Settings, project: str, retry: Retry | None = None) -> Gateway:
        """The gateway to `project` (REDCAP_API_URL, REDCAP_TOKEN_<PROJECT> and, when survey
        links point elsewhere than the API's host, REDCAP_SURVEY_URL)."""
        if retry is None:
            attempts = settings.number(ATTEMPTS, Retry.attempts, minimum=1)
            retry = Retry(attempts=attempts, base=settings.number(BACKOFF, int(Retry.base)))
        return cls(
            settings.api_url,
            settings.token(project).reveal(),
            retry=retry,
            survey_base=settings.get(SURVEY_BASE),
        )

    def call(
        self, name: str, action: Callable[[], T], check: Callable[[T], bool] | None = None
    ) -> T:
        """`action` (named `name` in messages), retried on transient faults; `check` tells
        whether a reply is what the call returns."""

        def attempt() -> T:
            reply = action()
            if check is not None and not check(reply):
                raise BadReply(f"not a {name} reply")
            return reply

        def logged(state: tenacity.RetryCallState) -> None:
            fault = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0.0
            logger.info(
                line(
                    "retry",
                    call=name,
                    attempt=state.attempt_number,
                    error=type(fault).__name__,
                    wait=f"{wait:.2f}",
                )
            )

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.retry.attempts),
            wait=lambda state: self.retry.delay(state.attempt_number),
            retry=tenacity.retry_if_exception_type(TRANSIENT),
            sleep=self.retry.sleep,
            before_sleep=logged,
        )
        try:
            return retrying(attempt)
        except tenacity.RetryError as exc:
            last = exc.last_attempt.exception()
            raise Unavailable(
                f"REDCap at {self.url}: {name} failed {self.retry.attempts} times "
                f"(last: {_fault(last)})"
            ) from None
        except requests.RequestException as exc:  # PyCap's RedcapError: REDCap said no
            detail = _detail(exc)
            raise Refused(f"REDCap at {self.url}: {name}: {detail}", detail) from None

    def _pycap(self, method: str, *args: Any, **kwargs: Any) -> Any:
        bound = getattr(self.client, method)
        return self.call(method, lambda: bound(*args, **kwargs))

    # -- the project and its design --------------------------------------------------------

    def export_project_info(self) -> dict[str, Any]:
        return self._pycap("export_project_info")

    def export_metadata(self, **kwargs: Any) -> list[dict[str, str]]:
        return self._pycap("export_metadata", **kwargs)

    def export_instruments(self) -> list[dict[str, str]]:
        return self._pycap("export_instruments")

    def export_arms(self) -> list[dict[str, Any]]:
        return self._pycap("export_arms")

    def export_events(self) -> list[dict[str, Any]]:
        return self._pycap("export_events")

    def export_instrument_event_mappings(self) -> list[dict[str, Any]]:
        return self._pycap("export_instrument_event_mappings")

    def export_repeating_instruments_events(self) -> list[dict[str, Any]]:
        return self._pycap("export_repeating_instruments_events")

    def export_version(self) -> str:
        bound = self.client.export_version
        return self.call("export_version", lambda: str(bound()), VERSION.fullmatch)  # type: ignore[arg-type]

    def export_project_xml(self, **params: Any) -> str:
        """The project XML (CDISC ODM); PyCap has no call for it."""
        payload = {"content": "project_xml", "format": "xml", "returnFormat": "xml", **params}
        return self.call("export_project_xml", lambda: str(self._raw(payload, "str")))

    # -- deploy's writes -------------------------------------------------------------------

    def import_project_settings(self, settings: dict[str, Any]) -> int:
        """Import Project Information (`project_settings`); PyCap has no call for it. PyCap's
        cached answer to "longitudinal?" is dropped, since the import may change it."""
        payload = {
            "content": "project_settings",
            "format": "json",
            "returnFormat": "json",
            "data": json.dumps(settings, ensure_ascii=False),
        }
        count = int(self.call("import_project_settings", lambda: self._raw(payload, "int")))
        self.client._is_longitudinal = None
        return count

    def import_metadata(self, rows: list[dict[str, str]]) -> int:
        return self._pycap("import_metadata", rows)

    def import_arms(self, rows: list[dict[str, Any]]) -> int:
        return self._pycap("import_arms", rows)

    def delete_arms(self, arms: list[int]) -> int:
        return self._pycap("delete_arms", arms)

    def import_events(self, rows: list[dict[str, Any]]) -> int:
        return self._pycap("import_events", rows)

    def delete_events(self, events: list[str]) -> int:
        return self._pycap("delete_events", events)

    def import_instrument_event_mappings(self, rows: list[dict[str, Any]]) -> int:
        return self._pycap("import_instrument_event_mappings", rows)

    def import_repeating_instruments_events(self, rows: list[dict[str, Any]]) -> int:
        return self._pycap("import_repeating_instruments_events", rows)

    # -- records ---------------------------------------------------------------------------

    def export_records(self, **kwargs: Any) -> Any:
        return self._pycap("export_records", **kwargs)

    def import_records(self, rows: list[dict[str, Any]], **kwargs: Any) -> Any:
        """Rows written with REDCap's overwrite rules; importing the same rows again changes
        nothing, so a retry after a dropped answer is safe."""
        return self._pycap("import_records", rows, **kwargs)

    def export_logging(self, **kwargs: Any) -> list[dict[str, Any]]:
        return self._pycap("export_logging", **kwargs)

    def generate_next_record_name(self) -> str:
        bound = self.client.generate_next_record_name
        return self.call("generate_next_record_name", lambda: str(bound()), RECORD_NAME.fullmatch)  # type: ignore[arg-type]

    # -- surveys ---------------------------------------------------------------------------

    def survey_link(
        self, record: str, instrument: str, event: str | None = None, repeat_instance: int = 1
    ) -> str:
        """The participant's link to a survey: an http(s) URL on the project's REDCap host,
        its path ending in `surveys/`, its query one survey hash."""
        bound = self.client.export_survey_link
        return self.call(
            "export_survey_link",
            lambda: str(bound(record, instrument, event, repeat_instance)).strip(),
            lambda link: self._survey_url(link, "s"),
        )

    def survey_queue_link(self, record: str) -> str:
        bound = self.client.export_survey_queue_link
        return self.call(
            "export_survey_queue_link",
            lambda: str(bound(record)).strip(),
            lambda link: self._survey_url(link, "sq"),
        )

    def survey_access_code(
        self, record: str, instrument: str, event: str | None = None, repeat_instance: int = 1
    ) -> str:
        bound = self.client.export_survey_access_code
        return self.call(
            "export_survey_access_code",
            lambda: str(bound(record, instrument, event, repeat_instance)).strip(),
            ACCESS_CODE.fullmatch,  # type: ignore[arg-type]
        )

    def survey_return_code(
        self, record: str, instrument: str, event: str | None = None, repeat_instance: int = 1
    ) -> str:
        bound = self.client.export_survey_return_code
        return self.call(
            "export_survey_return_code",
            lambda: str(bound(record, instrument, event, repeat_instance)).strip(),
            RETURN_CODE.fullmatch,  # type: ignore[arg-type]
        )

    def _survey_url(self, link: str, key: str) -> bool:
        parts = urlsplit(link)
        query = parse_qs(parts.query, keep_blank_values=True)
        return (
            parts.scheme in ("http", "https")
            and parts.netloc.lower() == self.survey_host
            and parts.path.endswith("/surveys/")
            and list(query) == [key]
            and len(query[key]) == 1
            and SURVEY_HASH.fullmatch(query[key][0]) is not None
            and not parts.fragment
        )

    def _raw(self, payload: dict[str, Any], kind: str) -> Any:
        """A call PyCap has no method for, through PyCap's own request (its error handling,
        its session and this gateway's hooks)."""
        return self.client._call_api({"token": self.client.token, **payload}, kind)  # type: ignore[arg-type]


@dataclass
class Live:
    """The live project as its API shows it."""

    info: dict[str, Any]
    metadata: list[dict[str, str]]
    arms: list[dict[str, Any]]
    events: list[dict[str, Any]]
    mapping: list[dict[str, Any]]
    repeating: list[dict[str, Any]]

    @classmethod
    def read(cls, api: Gateway) -> Live:
        info = api.export_project_info()
        longitudinal = bool(int(info.get("is_longitudinal") or 0))
        return cls(
            info=info,
            metadata=api.export_metadata(),
            arms=api.export_arms() if longitudinal else [],
            events=api.export_events() if longitudinal else [],
            mapping=api.export_instrument_event_mappings() if longitudinal else [],
            repeating=_repeating(api),
        )

    @property
    def in_production(self) -> bool:
        return bool(int(self.info.get("in_production") or 0))

    @property
    def longitudinal(self) -> bool:
        return bool(int(self.info.get("is_longitudinal") or 0))


def _repeating(api: Gateway) -> list[dict[str, Any]]:
    try:
        return api.export_repeating_instruments_events()
    except Refused:  # older REDCap: an error when nothing repeats
        return []


# The forms of REDCap's text replies.
VERSION = re.compile(r"\d+\.\d+\.\d+")
SURVEY_HASH = re.compile(r"[A-Za-z0-9]{10,32}")  # REDCap makes 10; fewer is a cut link
ACCESS_CODE = re.compile(r"[A-Za-z0-9]{6,10}")  # 9 characters (numeral codes: 6 digits)
RETURN_CODE = re.compile(r"[A-Za-z0-9]{6,10}")  # 8 characters
RECORD_NAME = re.compile(r"[A-Za-z0-9_\-]{1,100}")  # `<n>`, or `<dag id>-<n>` with DAGs


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


def _fault(exc: BaseException | None) -> str:
    """A transient fault in words, without anything the reply held."""
    kind = type(exc).__name__
    if isinstance(exc, ServerFault):
        return str(exc)
    if isinstance(exc, requests.Timeout):
        return f"no answer in time ({kind})"
    if isinstance(exc, requests.ConnectionError):
        return f"cannot connect ({kind})"
    return kind


def _detail(exc: requests.RequestException) -> str:
    """REDCap's error message in one line (PyCap raises it with the decoded reply)."""
    first = exc.args[0] if exc.args else None
    text = first["error"] if isinstance(first, dict) and "error" in first else str(first or "")
    return _error_text(text) or type(exc).__name__
