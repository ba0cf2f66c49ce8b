"""The gateway's client: each API call the toolkit makes, retried by one policy, its reply
checked (see the package docstring)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import redcap
import requests
import tenacity

from hekta_redcap.core.logline import line
from hekta_redcap.core.settings import Settings
from hekta_redcap.gateway.replies import (
    ACCESS_CODE,
    NOT_VALID_CALL,
    RECORD_NAME,
    RETURN_CODE,
    VERSION,
    is_allocation,
    is_survey_link,
)
from hekta_redcap.gateway.transport import (
    TIMEOUT,
    TRANSIENT,
    BadReply,
    Refused,
    Retry,
    Unavailable,
    check_status,
    fault_in_words,
    logger,
    refusal_text,
)

# The export every stored row comes from: raw codes, unique event names, each record's data
# access group, and the survey timestamps the follow-up reads.
EXPORT: dict[str, Any] = {
    "format_type": "json",
    "event_name": "unique",
    "export_data_access_groups": True,
    "export_survey_fields": True,
}


T = TypeVar("T")


class Gateway:
    """A REDCap project's API, as the toolkit calls it (see the module docstring). The token
    goes to PyCap and nowhere else; `survey_base` is where survey links point (default: the
    API URL without `api/`)."""

    def __init__(
        self, url: str, token: str, *, retry: Retry | None = None, survey_base: str | None = None
    ) -> None:
        self.client = redcap.Project(
            url, token, timeout=TIMEOUT, hooks={"response": [check_status]}
        )
        self.url = url
        self.retry = retry or Retry()
        self.survey_host = urlsplit(survey_base or url.removesuffix("api/")).netloc.lower()

    @classmethod
    def open(cls, settings: Settings, project: str, retry: Retry | None = None) -> Gateway:
        """The gateway to `project` (REDCAP_API_URL, REDCAP_TOKEN_<PROJECT> and, when survey
        links point elsewhere than the API's host, REDCAP_SURVEY_URL)."""
        if retry is None:
            retry = Retry(attempts=settings.redcap_attempts, base=settings.redcap_backoff_seconds)
        return cls(
            settings.api_url,
            settings.token(project).reveal(),
            retry=retry,
            survey_base=settings.redcap_survey_url,
        )

    def call(
        self, name: str, action: Callable[[], T], check: Callable[[T], object] | None = None
    ) -> T:
        """`action` (named `name` in messages), retried on transient faults; `check` tells
        (by its truth: a `re.Pattern.fullmatch` will do) whether a reply is what the call
        returns."""

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
                f"(last: {fault_in_words(last)})"
            ) from None
        except requests.RequestException as exc:  # PyCap's RedcapError: REDCap said no
            detail = refusal_text(exc)
            retried = retrying.statistics.get("attempt_number", 1) > 1
            raise Refused(f"REDCap at {self.url}: {name}: {detail}", detail, retried) from None

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
        return self.call("export_version", lambda: str(bound()), VERSION.fullmatch)

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
        return self.call("generate_next_record_name", lambda: str(bound()), RECORD_NAME.fullmatch)

    # -- randomization ---------------------------------------------------------------------

    def randomize(self, record: str, randomization_id: int | None = None) -> dict[str, str]:
        """Randomize `record` with REDCap's randomization module (REDCap 14+; PyCap has no
        call for it): `{"record", "target_field", "target_value"}`, checked. Not idempotent:
        a retry after a dropped reply finds the record randomized, and REDCap says so
        (`Refused.retried` tells that case apart; randomization.allocate re-reads the
        record). A server that takes the method only as `content=randomization` (the form
        some of REDCap's documentation gives) gets it once more in that form."""
        payload = {
            "content": "record",
            "action": "randomize",
            "record": record,
            "format": "json",
            "returnFormat": "json",
        }
        if randomization_id is not None:
            payload["randomization_id"] = str(randomization_id)

        def send(content: str) -> dict[str, str]:
            return self.call(
                "randomize",
                lambda: self._raw({**payload, "content": content}, "json"),
                lambda reply: is_allocation(reply, record),
            )

        try:
            return send("record")
        except Refused as exc:
            if not NOT_VALID_CALL.search(exc.detail):
                raise
        return send("randomization")

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
            lambda link: is_survey_link(link, self.survey_host, "s"),
        )

    def survey_queue_link(self, record: str) -> str:
        bound = self.client.export_survey_queue_link
        return self.call(
            "export_survey_queue_link",
            lambda: str(bound(record)).strip(),
            lambda link: is_survey_link(link, self.survey_host, "sq"),
        )

    def survey_access_code(
        self, record: str, instrument: str, event: str | None = None, repeat_instance: int = 1
    ) -> str:
        bound = self.client.export_survey_access_code
        return self.call(
            "export_survey_access_code",
            lambda: str(bound(record, instrument, event, repeat_instance)).strip(),
            ACCESS_CODE.fullmatch,
        )

    def survey_return_code(
        self, record: str, instrument: str, event: str | None = None, repeat_instance: int = 1
    ) -> str:
        bound = self.client.export_survey_return_code
        return self.call(
            "export_survey_return_code",
            lambda: str(bound(record, instrument, event, repeat_instance)).strip(),
            RETURN_CODE.fullmatch,
        )

    def _raw(self, payload: dict[str, Any], kind: Literal["str", "int", "json"]) -> Any:
        """A call PyCap has no method for, through PyCap's own request (its error handling,
        its session and this gateway's hooks)."""
        return self.client._call_api({"token": self.client.token, **payload}, kind)
