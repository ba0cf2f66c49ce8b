"""CDISC ODM project XML in and out: REDCap's way of carrying a whole project between servers.

`ingest` (in `reader`) fills a freshly created project from a REDCap project XML
(`content=project` with `odm`); `export` (in `writer`) writes the same kind of document
(`content=project_xml`). Both follow the layout of REDCap's own project XML exports (the test
fixtures in tests/fixtures/redcap-odm/ are written in it; their README lists what they
exercise), so a project taken from a real REDCap server loads here, and an exported one loads
again (here or, as far as we can tell, in REDCap). What both directions must agree on (the
names of columns, settings and rights) lives in `common`.

REDCap's extensions live in the `redcap:` namespace; the reader drops every namespace, the
writer writes REDCap's.
"""

from hekta_redcap.devtools.sandbox.odm.common import VALIDATION
from hekta_redcap.devtools.sandbox.odm.reader import ingest, parse
from hekta_redcap.devtools.sandbox.odm.writer import Export, export

__all__ = ["VALIDATION", "Export", "export", "ingest", "parse"]
