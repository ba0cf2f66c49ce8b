"""Adopting an existing REDCap project: its data dictionary, or one instrument, as definitions.

`import_dictionary` turns a dictionary REDCap accepts into a study file and one instrument file
per form; `import_instrument` adds one instrument (a Shared Library CSV or an instrument ZIP) to
an existing definitions directory. Only what REDCap itself would refuse stops an import
(`dictrules.redcap_refusals`); the project's own rules come back as warnings, and the adopted
forms say `rules: redcap` so that lint keeps treating them so.

An import is lossless: every cell compiles back exactly, HTML, line breaks, spacing and unknown
action tags included. Where the structured keys cannot say a choices cell exactly (REDCap keeps
`1,Yes|2,No` as written; a slider may have two labels) the field keeps the cell as
`choices_text`. Each import compiles what it wrote and compares it with the file, so a loss
would stop it rather than pass unnoticed.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hekta_redcap.compile.checks import DictionaryContext, lint_dictionary
from hekta_redcap.compile.dictionary import compile_field, compile_project
from hekta_redcap.core.errors import DefinitionError, HektaError, Origin
from hekta_redcap.core.findings import Finding, Report
from hekta_redcap.definitions import yamlfile
from hekta_redcap.definitions.instruments import Instrument
from hekta_redcap.definitions.study import FORMS_DIR, STUDIES_DIR, available_projects, load_project
from hekta_redcap.redcap.dictionary import (
    COLUMNS,
    DictionaryFile,
    DictRow,
    decode,
    parse_dictionary,
    read_dictionary,
)
from hekta_redcap.redcap.fieldtypes import CHOICE_TYPES, parse_choices, slider_labels

try:  # libyaml's emitter is much faster on large dictionaries
    from yaml import CSafeDumper as _BaseDumper
except ImportError:  # pragma: no cover
    from yaml import SafeDumper as _BaseDumper  # type: ignore[assignment]


class ImportRefused(HektaError):
    """REDCap would refuse this dictionary: the findings say where and why."""

    def __init__(self, message: str, findings: list[Finding]) -> None:
        super().__init__(message)
        self.findings = findings


@dataclass
class Imported:
    """What an import wrote, and the warnings and notes to show."""

    project: str
    forms: list[str]
    fields: int
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# One row as a definition field ---------------------------------------------------------------


def _plain(value: str) -> str | None:
    return value if value else None


def row_to_field(row: DictRow) -> dict[str, object]:
    """A dictionary row as a definition-file field (the inverse of `compile_field`); the
    choices cell is structured here, and kept exactly by `_exact` where that loses anything."""
    spec: dict[str, object] = {"name": row.field_name, "type": row.field_type}
    validation = row.text_validation_type_or_show_slider_number
    text = row.select_choices_or_calculations
    optional: dict[str, object] = {
        "label": _plain(row.field_label),
        "section": _plain(row.section_header),
        "note": _plain(row.field_note),
    }
    if row.field_type in CHOICE_TYPES:
        optional["choices"] = [{"code": c, "label": label} for c, label in parse_choices(text)]
    elif row.field_type == "slider":
        left, mid, right = slider_labels(text)
        slider = {"left": left, "mid": mid, "right": right, "show_number": validation == "number"}
        optional["slider"] = {k: v for k, v in slider.items() if v}
        validation = "" if validation == "number" else validation
    else:
        key = {"calc": "calc", "sql": "sql", "text": "ontology"}.get(row.field_type, "choices_text")
        optional[key] = _plain(text)
    optional |= {
        "validation": _plain(validation),
        "min": _plain(row.text_validation_min),
        "max": _plain(row.text_validation_max),
        "identifier": row.identifier == "y" or None,
        "required": row.required_field == "y" or None,
        "branching": _plain(row.branching_logic),
        "align": _plain(row.custom_alignment),
        "question_number": _plain(row.question_number),
        "matrix": _plain(row.matrix_group_name),
        "matrix_ranking": row.matrix_ranking == "y" or None,
        "annotation": _plain(row.field_annotation),
    }
    spec.update({k: v for k, v in optional.items() if v not in (None, {}, [])})
    return spec


def form_label(form: str) -> str:
    """The label REDCap gives a form a dictionary creates: `my_form` -> `My Form`."""
    return form.replace("_", " ").title()


def form_spec(form: str, rows: list[DictRow], source: str) -> dict[str, object]:
    """One adopted instrument file: its fields, exact where structure would lose a cell."""
    spec: dict[str, object] = {
        "form": form,
        "label": form_label(form),
        "licence": "ship_text",
        "translation": "draft",
        "source": source,
        "rules": "redcap",
        "fields": [row_to_field(row) for row in rows],
    }
    _exact(spec, rows)
    _share_choices(spec)
    return spec


def _share_choices(spec: dict[str, Any]) -> None:
    """Choice lists that several fields of the form repeat become one named choice set (named
    after its matrix group, or its first field), so a scale is written once."""
    users: dict[str, list[dict[str, Any]]] = {}
    for fspec in spec["fields"]:
        if isinstance(fspec.get("choices"), list):
            key = repr([(c["code"], c["label"]) for c in fspec["choices"]])
            users.setdefault(key, []).append(fspec)
    sets: dict[str, list[dict[str, str]]] = {}
    for fields in users.values():
        if len(fields) < 2:
            continue
        groups = {f.get("matrix") for f in fields}
        base = groups.pop() if len(groups) == 1 and None not in groups else fields[0]["name"]
        name, n = f"{base}_choices", 1
        while name in sets:
            n += 1
            name = f"{base}_choices_{n}"
        sets[name] = fields[0]["choices"]
        for fspec in fields:
            fspec["choices"] = name
    if sets:
        fields = spec.pop("fields")
        spec["choice_sets"] = sets
        spec["fields"] = fields


def _exact(spec: dict[str, Any], rows: list[DictRow]) -> None:
    """Keep the choices cell as written wherever the structured form compiles differently."""
    instrument = _instrument(spec)
    for i, (f, row) in enumerate(zip(instrument.fields, rows, strict=True)):
        compiled = compile_field(instrument, f)
        text = row.select_choices_or_calculations
        if compiled.select_choices_or_calculations != text:
            fspec = spec["fields"][i]
            fspec.pop("choices", None)
            if isinstance(fspec.get("slider"), dict):
                fspec["slider"] = {k: v for k, v in fspec["slider"].items() if k == "show_number"}
                if not fspec["slider"]:
                    del fspec["slider"]
            fspec["choices_text"] = text
            _reorder(fspec)


def _reorder(fspec: dict[str, Any]) -> None:
    """Put `choices_text` where `choices` would stand, so files read in dictionary order."""
    keys = list(fspec)
    keys.remove("choices_text")
    at = next(
        (
            i
            for i, k in enumerate(keys)
            if k not in ("name", "type", "label", "section", "note", "slider")
        ),
        len(keys),
    )
    ordered = [*keys[:at], "choices_text", *keys[at:]]
    items = {k: fspec[k] for k in ordered}
    fspec.clear()
    fspec.update(items)


def _instrument(spec: dict[str, Any]) -> Instrument:
    try:
        return Instrument.model_validate(spec)
    except Exception as exc:  # a bug in row_to_field, not the user's input
        raise HektaError(f"internal error: an imported form does not validate: {exc}") from None


# Whole dictionaries ---------------------------------------------------------------------------


def check_rows(rows: list[DictRow], context: DictionaryContext | None = None) -> list[Finding]:
    """REDCap's rules as errors and the project's as warnings, in file order."""
    ctx = context or DictionaryContext(rows, adopting=True)
    report: Report = lint_dictionary(ctx)
    return sorted(
        set(report.findings),
        key=lambda f: ((f.origin.line or 0) if f.origin else 0, f.severity != "error", f.message),
    )


def project_name(file: Path) -> str:
    """A project name from a file name: lowercase letters, digits and '_'."""
    name = re.sub(r"[^a-z0-9]+", "_", file.stem.lower()).strip("_")
    return name if re.match(r"[a-z]", name) else f"project_{name}".rstrip("_")


def rows_to_definitions(
    rows: list[DictRow], project: str, source: str
) -> tuple[dict[str, object], dict[str, dict[str, object]]]:
    """A classic study file and one instrument file per form from dictionary rows."""
    by_form: dict[str, list[DictRow]] = {}
    for row in rows:
        by_form.setdefault(row.form_name, []).append(row)
    forms = {form: form_spec(form, members, source) for form, members in by_form.items()}
    study: dict[str, object] = {
        "project": project,
        "title": project,
        "record_id": rows[0].field_name,
        "instruments": [{"form": name} for name in forms],
    }
    return study, forms


def import_dictionary(file: Path, output: Path, project: str | None = None) -> Imported:
    """Adopt a whole data dictionary into `output` (a new definitions directory).

    Raises `ImportRefused` with REDCap's reasons when REDCap would refuse the dictionary.
    """
    read = read_dictionary(file)
    findings = check_rows(read.rows)
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        hint = (
            " (one instrument without a record-id field? add it with --instrument)"
            if any(f.rule == "record-id" for f in errors)
            else ""
        )
        raise ImportRefused(f"not imported: REDCap would refuse {file}{hint}", findings)
    name = project or project_name(file)
    study, forms = rows_to_definitions(read.rows, name, f"Imported from {file.name}")
    targets = [output / STUDIES_DIR / f"{name}.yaml"] + [
        output / FORMS_DIR / f"{form}.yaml" for form in forms
    ]
    if existing := [t for t in targets if t.exists()]:
        raise HektaError(
            f"not imported: {existing[0]} already exists (import into a new directory)",
        )
    for form, spec in forms.items():
        write_yaml(output / FORMS_DIR / f"{form}.yaml", spec)
    write_yaml(output / STUDIES_DIR / f"{name}.yaml", study)
    verify(read.rows, output, name)
    return Imported(name, list(forms), len(read.rows), findings, read.notes)


def verify(
    rows: list[DictRow], root: Path, project: str, forms: Iterable[str] | None = None
) -> None:
    """Compile what was written and compare it with the dictionary, cell by cell."""
    loaded = load_project(project, root, overlay_dir=root / ".no-overlays")
    wanted = set(forms) if forms is not None else None
    compiled = [r for r in compile_project(loaded) if wanted is None or r.form_name in wanted]
    for before, after in zip(rows, compiled, strict=False):
        for column, a, b in zip(COLUMNS, before.values(), after.values(), strict=True):
            if a != b:
                raise HektaError(
                    f"internal error: field '{before.field_name}' {column} compiles to {b!r}, "
                    f"not {a!r} as imported; please report this",
                    before.origin,
                )
    if len(rows) != len(compiled):
        raise HektaError(f"internal error: {len(rows)} fields imported, {len(compiled)} compiled")


# One instrument -------------------------------------------------------------------------------


def read_instrument_file(file: Path) -> DictionaryFile:
    """An instrument's dictionary from its CSV, or from the CSV inside an instrument ZIP (as
    REDCap and its Shared Library make them); attachments are listed in the notes."""
    if file.suffix.lower() != ".zip":
        return read_dictionary(file)
    try:
        with zipfile.ZipFile(file) as archive:
            names = [n for n in archive.namelist() if not n.endswith("/")]
            csvs = [n for n in names if n.lower().endswith(".csv")]
            if not csvs:
                raise DefinitionError("the ZIP holds no instrument CSV", Origin(file))
            member = next((n for n in csvs if Path(n).name == "instrument.csv"), csvs[0])
            data = archive.read(member)
    except (zipfile.BadZipFile, OSError, RuntimeError) as exc:
        raise DefinitionError(f"not a readable ZIP file: {exc}", Origin(file)) from None
    text, note = decode(data, file)
    read = parse_dictionary(text, Path(f"{file}!{member}"))
    if note:
        read.notes.append(note)
    skipped = [n for n in names if n != member and not n.lower().endswith(".txt")]
    if skipped:
        read.notes.append(
            f"{len(skipped)} attachment(s) not imported (the definitions hold no files): "
            + ", ".join(skipped[:5])
            + (" …" if len(skipped) > 5 else "")
        )
    return read


def import_instrument(
    file: Path, root: Path, project: str | None = None, form: str | None = None
) -> Imported:
    """Add one instrument to an existing definitions directory as a form of `project` (the
    only study there when not given). `form` renames the instrument's form."""
    name = project or _only_project(root)
    loaded = load_project(name, root, overlay_dir=root / ".no-overlays")
    read = read_instrument_file(file)
    rows = read.rows
    if not rows:
        raise DefinitionError("the instrument has no fields", Origin(read.file, 1))
    names = list(dict.fromkeys(r.form_name for r in rows))
    if len(names) > 1:
        raise DefinitionError(
            f"an instrument file holds one form, this one has {len(names)}: {', '.join(names)}",
            rows[[r.form_name for r in rows].index(names[1])].origin,
        )
    existing = compile_project(loaded)
    if rows[0].field_name == existing[0].field_name:
        read.notes.append(
            f"its record-id field '{rows[0].field_name}' is the project's own: left out"
        )
        rows = rows[1:]
        if not rows:
            raise DefinitionError(
                "the instrument has no fields but the record id", read.rows[0].origin
            )
    target = form or names[0]
    if target in loaded.forms:
        raise DefinitionError(
            f"form '{target}' is already in project '{name}' (give another name with --form)",
            rows[0].origin,
        )
    rows = [_renamed(r, target) for r in rows]
    ctx = DictionaryContext(
        [*existing, *rows],
        record_id=loaded.study.record_id,
        events={e.unique_name for e in loaded.study.events},
        form_events={u.form: set(u.events) for u in loaded.study.instruments},
        adopted_forms={target},
    )
    findings = [f for f in check_rows(ctx.rows, ctx) if f.origin and f.origin.file == read.file]
    if [f for f in findings if f.severity == "error"]:
        raise ImportRefused(f"not imported: REDCap would refuse {file} in '{name}'", findings)
    form_file = root / FORMS_DIR / f"{target}.yaml"
    if form_file.exists():
        raise HektaError(f"not imported: {form_file} already exists")
    write_yaml(form_file, form_spec(target, rows, f"Imported from {file.name}"))
    study_file = root / STUDIES_DIR / f"{name}.yaml"
    if not _add_to_study(study_file, target):
        read.notes.append(f"add '- {{form: {target}}}' to the instruments of {study_file} by hand")
    elif loaded.study.longitudinal:
        read.notes.append(f"map '{target}' to its events in {study_file}")
    verify(rows, root, name, [target])
    return Imported(name, [target], len(rows), findings, read.notes)


def _renamed(row: DictRow, form: str) -> DictRow:
    values = row.as_dict() | {"form_name": form}
    return DictRow(**values, origin=row.origin)


def _only_project(root: Path) -> str:
    projects = available_projects(root)
    if len(projects) != 1:
        found = ", ".join(projects) or "none"
        raise HektaError(
            f"name the study to add the instrument to with --project (studies in {root}: {found})"
        )
    return projects[0]


def _add_to_study(file: Path, form: str) -> bool:
    """Append `- {form: FORM}` to the study file's block list of instruments, keeping the rest
    of the file (comments included) as it is. False when the list is not a block list."""
    doc = yamlfile.load(file)
    uses = doc.data.get("instruments") if isinstance(doc.data, dict) else None
    if not isinstance(uses, list) or not uses:
        return False
    lines = file.read_text(encoding="utf-8").splitlines(keepends=True)
    key_line = doc.lines[("instruments",)]
    first = doc.lines[("instruments", 0)]
    if first == key_line:
        return False  # a flow list on the key's line
    item = lines[first - 1]
    indent = item[: len(item) - len(item.lstrip())]
    later = [line for path, line in doc.lines.items() if len(path) == 1 and line > key_line]
    end = min(later) - 1 if later else len(lines)
    while end > first and (not lines[end - 1].strip() or lines[end - 1].lstrip().startswith("#")):
        end -= 1
    if lines and not lines[end - 1].endswith("\n"):
        lines[end - 1] += "\n"
    lines.insert(end, f"{indent}- {{form: {form}}}\n")
    file.write_text("".join(lines), encoding="utf-8")
    return True


# Writing YAML ----------------------------------------------------------------------------------


class _Dumper(_BaseDumper):
    """Choices (`{code, label}`) on one line, as the shipped definitions write them; text with
    line breaks as a literal block where YAML can hold it exactly (else double-quoted)."""


def _represent_dict(dumper: _Dumper, data: dict[str, Any]) -> yaml.Node:
    flow = (
        set(data) == {"code", "label"}
        and isinstance(data["label"], str)
        and "\n" not in data["label"]
    )
    return dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=flow)


def _represent_str(dumper: _Dumper, data: str) -> yaml.Node:
    style = "|" if "\n" in data and _block_safe(data) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_UNSAFE_IN_BLOCK = re.compile(r"[\r\x85\u2028\u2029\ufeff\t]| \n|[^\S\n]$|^\s")


def _block_safe(text: str) -> bool:
    """Whether a literal block reads back exactly: no other line breaks, no trailing spaces
    on a line, no leading space (which would need an indentation indicator)."""
    return not _UNSAFE_IN_BLOCK.search(text) and all(
        line.isprintable() for line in text.split("\n")
    )


_Dumper.add_representer(dict, _represent_dict)
_Dumper.add_representer(str, _represent_str)


def dump_yaml(data: object) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def write_yaml(file: Path, data: object) -> None:
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(dump_yaml(data), encoding="utf-8")
    except OSError as exc:
        raise HektaError(f"cannot write: {exc.strerror or exc}", Origin(file)) from None
