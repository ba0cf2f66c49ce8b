"""Analyst exports: typed, labelled, scored and de-identified tables in the formats statistics
work uses, with a manifest an analysis can cite (docs/exports.md).

    project = load_project("hekta")
    with Store.open(settings) as store:
        rows = store.raw_rows(project.name)
        synced = store.cursor(project.name)
    pseudonyms = Pseudonyms.load_or_create(Path("keys/hekta.json"), export_dir=out)
    tables = build_tables(project, rows, "long", language="en", pseudonyms=pseudonyms)
    files = write_tables(tables, "dta", out)
    write_manifest(out, project, tables, files, shape="long", fmt="dta", language="en",
                   identifiers=False, pseudonymised=True, last_sync=synced and synced[0])

`build_tables` gives the shape's tables (`long`, `wide`, or one per instrument) and always
`employment_outcomes`; fields flagged `identifier` are left out unless `identifiers=True`.
"""

from hekta_redcap.analysis.export.deid import Pseudonyms, check_outside, exported_forms, kept_fields
from hekta_redcap.analysis.export.formats import (
    FORMATS,
    Format,
    fitted_names,
    integer_codes,
    labels_document,
    statistics_frame,
    write_tables,
)
from hekta_redcap.analysis.export.frames import (
    LANGUAGES,
    OUTCOMES,
    SHAPES,
    Language,
    Shape,
    Table,
    assessment_date,
    build_tables,
    timepoints,
)
from hekta_redcap.analysis.export.manifest import MANIFEST, definitions_hash, write_manifest

__all__ = [
    "FORMATS",
    "LANGUAGES",
    "MANIFEST",
    "OUTCOMES",
    "SHAPES",
    "Format",
    "Language",
    "Pseudonyms",
    "Shape",
    "Table",
    "assessment_date",
    "build_tables",
    "check_outside",
    "definitions_hash",
    "exported_forms",
    "fitted_names",
    "integer_codes",
    "kept_fields",
    "labels_document",
    "statistics_frame",
    "timepoints",
    "write_manifest",
    "write_tables",
]
