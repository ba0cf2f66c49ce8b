"""The live project as its API shows it: settings, metadata, arms, events, mapping and
repeating setup, read in one go (what sync hashes and plan compares)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hekta_redcap.gateway.transport import Refused

if TYPE_CHECKING:
    from hekta_redcap.gateway.client import Gateway

from dataclasses import dataclass
from typing import Any


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
