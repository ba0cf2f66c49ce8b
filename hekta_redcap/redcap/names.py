"""REDCap's names for the columns it adds to a flat record export, and the order it lists
records in: shared by the local store (which keys and orders exported rows by them) and the
local REDCap-compatible server (which writes them), so that neither imports the other."""

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
