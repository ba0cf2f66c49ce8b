"""REDCap's names: the columns it adds to a flat record export, the order it lists records in,
and how it names events. Shared by the local store (which keys and orders exported rows by
them), the compiler and the local REDCap-compatible server, so that none imports another."""

from __future__ import annotations

import re

EVENT = "redcap_event_name"
REPEAT_INSTRUMENT = "redcap_repeat_instrument"
REPEAT_INSTANCE = "redcap_repeat_instance"
DAG = "redcap_data_access_group"
SURVEY_ID = "redcap_survey_identifier"


def natural_key(record: str) -> tuple[tuple[int, int, str], ...]:
    """REDCap lists records numerically where they are numbers: 2 before 10, and numbers
    before text. Each part is (kind, number, text) so that parts always compare."""
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in re.split(r"(\d+)", record)
        if part != ""
    )


def unique_event_name(name: str, arm: int) -> str:
    """REDCap's unique event name: lowercase, non-alphanumerics to '_', 18 chars, `_arm_N`."""
    stem = re.sub(r"[^a-z0-9]", "_", name.lower())[:18]
    return f"{stem}_arm_{arm}"
