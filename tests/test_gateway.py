"""The gateway to REDCap at unit level: HTTP faults injected with `responses` on each kind of
call, the retry policy, the forms text replies must have, and one-line failures without the
token."""

from __future__ import annotations

import json
import logging

import pytest
import requests
import responses

from hekta_redcap.devtools.sandbox.faults import PHP_ERROR_PAGE, PROXY_ERROR_PAGE
from hekta_redcap.gateway import Gateway, Refused, Retry, Unavailable
from hekta_redcap.gateway.replies import is_survey_link

URL = "https://redcap.example.org/api/"
TOKEN = "0123456789ABCDEF0123456789ABCDEF"
LINK = "https://redcap.example.org/surveys/?s=HRHJ3RMKFM"
WAITS: list[float] = []
# Every way a survey-link reply goes wrong under a flaky server and its proxies.
BROKEN_LINKS = [
    {"body": PHP_ERROR_PAGE, "status": 500},  # PHP's error page
    {"body": PROXY_ERROR_PAGE, "status": 502},  # the proxy's
    {"body": PROXY_ERROR_PAGE, "status": 200},  # an error page passed on as a success
    {"body": LINK[: len(LINK) // 2], "status": 200},  # cut short
    {"body": LINK[:-3], "status": 200},  # the hash cut short
    {"body": "https://evil.example.com/surveys/?s=HRHJ3RMKFM", "status": 200},  # another host
    {"body": "https://redcap.example.org/surveys/?s=HRHJ3RMKFM&x=<script>", "status": 200},
    {"body": requests.ConnectionError("connection dropped")},
    {"body": requests.ReadTimeout("no answer")},
]


def gateway(attempts: int = 10) -> Gateway:
    WAITS.clear()
    return Gateway(URL, TOKEN, retry=Retry(attempts=attempts, jitter=None, sleep=WAITS.append))


def calls(content: str) -> int:
    return sum(f"content={content}" in str(c.request.body) for c in responses.calls)


@responses.activate
def test_a_survey_link_is_retried_until_it_is_one(caplog: pytest.LogCaptureFixture) -> None:
    for reply in [*BROKEN_LINKS, {"body": LINK, "status": 200}]:
        responses.add(responses.POST, URL, **reply)
    with caplog.at_level(logging.INFO, logger="hekta_redcap.gateway"):
        assert gateway().survey_link("1", "swls", "followup_6m_arm_1") == LINK
    assert calls("surveyLink") == len(BROKEN_LINKS) + 1
    retries = [r.getMessage() for r in caplog.records]
    assert len(retries) == len(BROKEN_LINKS)
    assert all("\n" not in r and "event=retry call=export_survey_link" in r for r in retries)
    assert "error=ServerFault" in retries[0] and "error=BadReply" in retries[2]
    assert WAITS == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]  # doubling, capped


@pytest.mark.parametrize("reply", BROKEN_LINKS, ids=range(len(BROKEN_LINKS)))
@responses.activate
def test_a_link_that_stays_broken_is_a_failed_call_never_a_value(reply: dict) -> None:
    for _ in range(3):
        responses.add(responses.POST, URL, **reply)
    with pytest.raises(Unavailable) as failed:
        gateway(attempts=3).survey_link("1", "swls", "followup_6m_arm_1")
    message = str(failed.value)
    assert message.startswith(f"REDCap at {URL}: export_survey_link failed 3 times (last: ")
    assert "\n" not in message and TOKEN not in message and "<" not in message


REFUSAL = 'The instrument "swls" is not enabled as a survey'


@pytest.mark.parametrize(
    ("body", "detail"),
    [  # REDCap answers in the request's returnFormat (XML when none is given)
        (f'<?xml version="1.0" encoding="UTF-8" ?><hash><error>{REFUSAL}</error></hash>', REFUSAL),
        (json.dumps({"error": REFUSAL}), REFUSAL),
        (f"ERROR: {REFUSAL}", REFUSAL),
        ("<html><head><title>403 Forbidden</title></head></html>", "403 Forbidden"),  # a proxy
    ],
)
@responses.activate
def test_a_refusal_is_not_retried(body: str, detail: str) -> None:
    responses.add(responses.POST, URL, body=body, status=400 if "swls" in body else 403)
    with pytest.raises(Refused) as refused:
        gateway().survey_link("1", "swls", "followup_6m_arm_1")
    assert calls("surveyLink") == 1
    assert str(refused.value) == f"REDCap at {URL}: export_survey_link: {detail}"
    assert refused.value.detail == detail


@responses.activate
def test_json_calls_retry_cut_bodies_error_pages_and_dropped_connections() -> None:
    rows = [{"record_id": "1", "fu_status": "2"}]
    metadata = [{"field_name": "record_id", "form_name": "tracking"}]
    responses.add(responses.POST, URL, json=metadata, status=200)  # PyCap asks first, once
    for reply in (
        {"body": json.dumps(rows)[:10], "status": 200},  # cut short
        {"body": PHP_ERROR_PAGE, "status": 500},
        {"body": PROXY_ERROR_PAGE, "status": 200},
        {"body": requests.ConnectionError("reset")},
        {"json": rows, "status": 200},
    ):
        responses.add(responses.POST, URL, **reply)
    api = gateway()
    assert api.export_records(format_type="json") == rows
    assert calls("record") == 5 and calls("metadata") == 1
    responses.add(responses.POST, URL, body=requests.ConnectionError("dropped after the work"))
    responses.add(responses.POST, URL, body="1", status=200)  # the same rows again: no change
    assert api.import_records(rows) == 1


@pytest.mark.parametrize(
    ("call", "good", "bad"),
    [
        ("export_version", "15.2.1", "<html><title>502 Bad Gateway</title></html>"),
        ("generate_next_record_name", "3-12", "<!DOCTYPE html>"),
        ("survey_queue_link", "https://redcap.example.org/surveys/?sq=K4PA9AMRD8", LINK),
        ("survey_access_code", "A1B2C3D4E", "A1B2"),
        ("survey_return_code", "X9Y8Z7W6", "X9Y8Z7W6<br>"),
    ],
)
@responses.activate
def test_text_replies_are_checked_for_their_form(call: str, good: str, bad: str) -> None:
    responses.add(responses.POST, URL, body=bad, status=200)
    responses.add(responses.POST, URL, body=good, status=200)
    api = gateway()
    args = {
        "survey_queue_link": ("1",),
        "survey_access_code": ("1", "swls", "followup_6m_arm_1"),
        "survey_return_code": ("1", "swls", "followup_6m_arm_1"),
    }.get(call, ())
    assert getattr(api, call)(*args) == good
    assert len(responses.calls) == 2


def test_survey_links_may_point_at_a_public_host_of_their_own() -> None:
    inside = Gateway("http://10.0.0.5/redcap/api/", TOKEN, survey_base="https://redcap.hf.no/")
    assert inside.survey_host == "redcap.hf.no"
    assert is_survey_link("https://redcap.hf.no/surveys/?s=HRHJ3RMKFM", inside.survey_host)
    assert not is_survey_link("http://10.0.0.5/redcap/surveys/?s=HRHJ3RMKFM", inside.survey_host)
    plain = Gateway("https://redcap.hf.no/redcap/api/", TOKEN)
    assert is_survey_link("https://redcap.hf.no/redcap/surveys/?s=HRHJ3RMKFM", plain.survey_host)
    queue = "https://redcap.hf.no/redcap/surveys/?sq=HRHJ3RMKFM"
    assert not is_survey_link(queue, plain.survey_host)
    assert is_survey_link(queue, plain.survey_host, "sq")
