"""A local REDCap-compatible server: the embedded default that commands, tests and the demo run
on, so that nobody needs a REDCap account to run the toolkit, and every test speaks real HTTP
through PyCap.

Layout (state apart from HTTP, as moto does it):

- `store.py`: the SQLite file (WAL) that holds every project; one transaction per request.
- `models.py`: a project's state and REDCap's rules about it (metadata, events, records, log).
- `wire.py`: request parameters in, REDCap's JSON/CSV/XML and error bodies out.
- `endpoints.py`: the registry the area modules plug into, and the request context.
- `api/`: one module per API area (records, metadata, design, project, users, logs, files,
  surveys, reports, pdf, project XML).
- `odm/`: CDISC ODM project XML: `reader` (project creation), `writer` (project XML export).
- `app.py`: the WSGI app; `faults.py`: fault injection; `server.py`: running it.

Behaviour follows REDCap's API as its clients (PyCap, REDCapR) use it. The tests pin it down,
among them PyCap's own documentation examples (`tests/test_sandbox_pycap_doctests.py`) and
projects created from project XML in REDCap's export format (`tests/fixtures/redcap-odm/`,
described in the README there). Where the server cannot do what REDCap does, it refuses with a
clear error rather than answer wrongly.
"""
