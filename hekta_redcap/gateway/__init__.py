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

from hekta_redcap.gateway.client import EXPORT, Gateway
from hekta_redcap.gateway.live import Live
from hekta_redcap.gateway.projects import create_project
from hekta_redcap.gateway.transport import TIMEOUT, TRANSIENT, Refused, Retry, Unavailable

__all__ = [
    "EXPORT",
    "TIMEOUT",
    "TRANSIENT",
    "Gateway",
    "Live",
    "Refused",
    "Retry",
    "Unavailable",
    "create_project",
]
