"""The manifest written with every export, so that an analysis can cite exactly what it used.

`manifest.json` names the toolkit version, the definitions (a hash of the study file and the
instrument files, in project order), the project, the time of the last sync the data come from,
the export's shape, format and language, whether identifiers are included and record ids
pseudonymised, each table's row and column counts, each file's size and SHA-256, for SPSS
and Stata files the names shortened and the codes numbered to fit the format, and with register
tables the horizons, each register's coverage and the ids of the deliveries they come from.

    >>> write_manifest(out, project, tables, files, shape="long", fmt="dta", language="nb",
    ...                identifiers=False, pseudonymised=True, last_sync=cursor)
    PosixPath('out/manifest.json')
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

from hekta_redcap import __version__
from hekta_redcap.analysis.export.formats import Format, fitted_names, integer_codes
from hekta_redcap.analysis.export.frames import Language, Shape, Table
from hekta_redcap.definitions.study import FORMS_DIR, STUDIES_DIR, Project
from hekta_redcap.registers.outcomes import Registered

MANIFEST = "manifest.json"
CHUNK = 1 << 20


def definitions_hash(project: Project) -> str:
    """SHA-256 over the study file and the instrument files (name and bytes of each, in
    project order). Site-local overlays only add licensed text, and are left out."""
    files = [Path(STUDIES_DIR) / f"{project.name}.yaml"]
    files += [Path(FORMS_DIR) / f"{form}.yaml" for form in project.forms]
    digest = hashlib.sha256()
    for relative in files:
        data = (project.root / relative).read_bytes()
        digest.update(f"{relative.as_posix()}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(
    directory: Path,
    project: Project,
    tables: list[Table],
    files: list[Path],
    *,
    shape: Shape,
    fmt: Format,
    language: Language,
    identifiers: bool,
    pseudonymised: bool,
    last_sync: dt.datetime | None,
    registered: Registered | None = None,
) -> Path:
    """Write `directory/manifest.json` for an export of `tables` written as `files` (paths in
    `directory`); `last_sync` is when the store last synced (None: never); `registered` what
    the register tables were read from."""
    manifest: dict[str, object] = {
        "toolkit": {"name": "hekta-redcap", "version": __version__},
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "project": {"name": project.name, "title": project.study.title},
        "definitions_sha256": definitions_hash(project),
        "last_sync": last_sync.isoformat(timespec="seconds") if last_sync else None,
        "shape": shape,
        "format": fmt,
        "language": language,
        "identifiers_included": identifiers,
        "pseudonymised": pseudonymised,
        "tables": [
            {"name": t.name, "rows": len(t.frame), "columns": len(t.frame.columns)} for t in tables
        ],
        "files": [
            {
                "file": path.relative_to(directory).as_posix(),
                "bytes": path.stat().st_size,
                "sha256": file_sha256(path),
            }
            for path in files
        ],
    }
    if registered is not None:
        manifest["registers"] = {
            "horizons": registered.horizons,
            "covered_until": {
                source: periods[-1][1].isoformat() if periods else None
                for source, periods in registered.covered.items()
            },
            "covered": {
                source: [[start.isoformat(), end.isoformat()] for start, end in periods]
                for source, periods in registered.covered.items()
            },
            "deliveries": registered.deliveries,
        }
    if fmt == "sav" or fmt == "dta":
        manifest["renamed"] = {t.name: n for t in tables if (n := fitted_names(t, fmt))}
        manifest["recoded"] = {t.name: c for t in tables if (c := integer_codes(t))}
    path = directory / MANIFEST
    path.write_text(json.dumps(manifest, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return path
