"""`hekta-redcap export`: one export folder an analysis can cite, from the local store.

The folder holds the shape's tables in the chosen format (and `employment_outcomes`; once a
register delivery has been imported, `register_panel` and `register_outcomes` at the horizons
asked for), the codebook (HTML and Markdown), the CONSORT flow and retention report (`flow/`)
and `manifest.json` with the checksum of every file. Data come from the store the daemon keeps
and the register store, so the export is as of the last sync and the deliveries imported (both
named in the manifest).

    >>> files = run_export(settings, project, "long", "dta", Path("out/export"), language="en",
    ...                    months=[18, 60, 120])
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hekta_redcap.analysis.codebook import build_codebook, write_codebook
from hekta_redcap.analysis.consort import flow, write_flow
from hekta_redcap.analysis.export.deid import Pseudonyms
from hekta_redcap.analysis.export.formats import Format, write_tables
from hekta_redcap.analysis.export.frames import Language, Shape, build_tables
from hekta_redcap.analysis.export.manifest import write_manifest
from hekta_redcap.analysis.export.registers import register_export
from hekta_redcap.core.errors import HektaError
from hekta_redcap.core.settings import Settings
from hekta_redcap.data.store import Store
from hekta_redcap.definitions.study import Project
from hekta_redcap.registers.outcomes import Registered, register_tables

FLOW_DIR = "flow"


@dataclass(frozen=True)
class Exported:
    tables: list[str]  # name (rows)
    data: list[Path]
    codebook: tuple[Path, Path]
    flow: list[Path]
    manifest: Path
    registers: str = ""  # what the register tables hold ("" without them)

    def summary(self) -> list[str]:
        return [
            f"tables: {', '.join(self.tables)}",
            f"data files: {', '.join(str(p) for p in self.data)}",
            f"codebook: {self.codebook[0]} and {self.codebook[1].name}",
            f"flow report: {self.flow[0].parent}/ ({', '.join(p.name for p in self.flow)})",
            *([f"register tables: {self.registers}"] if self.registers else []),
            f"manifest: {self.manifest}",
        ]


def run_export(
    settings: Settings,
    project: Project,
    shape: Shape,
    fmt: Format,
    directory: Path,
    *,
    language: Language = "nb",
    identifiers: bool = False,
    key_file: Path | None = None,
    as_of: dt.date | None = None,
    months: Sequence[int] = (18,),
) -> Exported:
    """Write the export folder; `key_file` (outside `directory`) turns on pseudonyms, `months`
    are the register outcomes' horizons."""
    with Store.open(settings) as store:
        rows = store.raw_rows(project.name)
        cursor = store.cursor(project.name)
    if not rows:
        raise HektaError(f"the store holds no records of {project.name}: run `hekta-redcap sync`")
    registered = register_tables(settings, project, months, rows)
    pseudonyms = Pseudonyms.load_or_create(key_file, export_dir=directory) if key_file else None
    directory.mkdir(parents=True, exist_ok=True)
    tables = build_tables(project, rows, shape, language, identifiers, pseudonyms)
    if registered is not None:
        tables += register_export(project, registered, language, pseudonyms)
    data = write_tables(tables, fmt, directory)
    codebook = write_codebook(build_codebook(project, rows, language, registered), directory)
    report = write_flow(
        flow(project, rows, as_of or dt.date.today(), language), directory / FLOW_DIR
    )
    manifest = write_manifest(
        directory,
        project,
        tables,
        [*data, *codebook, *report],
        shape=shape,
        fmt=fmt,
        language=language,
        identifiers=identifiers,
        pseudonymised=pseudonyms is not None,
        last_sync=cursor[0] if cursor else None,
        registered=registered,
    )
    names = [f"{t.name} ({len(t.frame)} rows)" for t in tables]
    return Exported(names, data, codebook, report, manifest, _registers(registered))


def _registers(registered: Registered | None) -> str:
    """The horizons and how far each register's deliveries reach."""
    if registered is None:
        return ""
    reach = ", ".join(
        f"{source} " + (" and ".join(f"{a:%d.%m.%Y}-{b:%d.%m.%Y}" for a, b in periods) or "none")
        for source, periods in registered.covered.items()
    )
    horizons = ", ".join(map(str, registered.horizons))
    return f"outcomes at {horizons} months; deliveries cover {reach}"
