"""Project-level calls: project info, project creation, project settings, version."""

from __future__ import annotations

from hekta_redcap.sandbox.endpoints import REDCAP_VERSION, Call, endpoint
from hekta_redcap.sandbox.wire import Reply, render_text


@endpoint("version", "export")
def version(call: Call) -> Reply:
    """`x.y.z` as plain text (PyCap parses it as semver and needs >= 12.0.1)."""
    return render_text(REDCAP_VERSION)
