"""The forms of REDCap's text replies: PyCap hands them over as they came, error pages and cut
bodies included, so each is checked before it is used."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

# The forms of REDCap's text replies.
VERSION = re.compile(r"\d+\.\d+\.\d+")
SURVEY_HASH = re.compile(r"[A-Za-z0-9]{10,32}")  # REDCap makes 10; fewer is a cut link
ACCESS_CODE = re.compile(r"[A-Za-z0-9]{6,10}")  # 9 characters (numeral codes: 6 digits)
RETURN_CODE = re.compile(r"[A-Za-z0-9]{6,10}")  # 8 characters
RECORD_NAME = re.compile(r"[A-Za-z0-9_\-]{1,100}")  # `<n>`, or `<dag id>-<n>` with DAGs
# REDCap's refusal of a content or action it does not know (its verified text for content).
NOT_VALID_CALL = re.compile(r'The value of the parameter "(content|action)" is not valid')
# REDCap's refusal to randomize a record twice (wording inferred: any "already ... randomized").
ALREADY_RANDOMIZED = re.compile(r"already\b.*\brandomi[sz]ed", re.IGNORECASE)
ALLOCATION_KEYS = ("record", "target_field", "target_value")


def is_allocation(reply: object, record: str) -> bool:
    """Whether `reply` is the randomize method's answer for `record`: a JSON object with
    the record, the target field and the value it was given, each text."""
    return (
        isinstance(reply, dict)
        and all(isinstance(reply.get(key), str) for key in ALLOCATION_KEYS)
        and reply["record"] == record
        and reply["target_field"] != ""
        and reply["target_value"] != ""
    )


def is_survey_link(link: str, host: str, key: str = "s") -> bool:
    """Whether `link` is a link to a survey (`key` s) or the survey queue (`key` sq): an
    http(s) URL on `host`, its path ending in `surveys/`, its query one survey hash."""
    parts = urlsplit(link)
    query = parse_qs(parts.query, keep_blank_values=True)
    return (
        parts.scheme in ("http", "https")
        and parts.netloc.lower() == host
        and parts.path.endswith("/surveys/")
        and list(query) == [key]
        and len(query[key]) == 1
        and SURVEY_HASH.fullmatch(query[key][0]) is not None
        and not parts.fragment
    )
