"""One module per REDCap API area; importing this package registers every endpoint."""

from hekta_redcap.devtools.sandbox.api import (  # noqa: F401
    design,
    files,
    logs,
    metadata,
    pdf,
    project,
    project_xml,
    randomization,
    records,
    reports,
    surveys,
    users,
)
