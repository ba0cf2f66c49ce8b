"""The allocation tables a person uploads to REDCap's randomization module: stratified permuted
blocks of randomly varying size, one table for development (testing) and an independent one
for production, with a manifest and a balance summary.

Within each stratum, blocks are drawn until the stratum has its slots (`Design.
slots_per_stratum`): each block's size is drawn from the study file's sizes, and the block
holds each arm size × ratio / Σ ratios times in a random order. Balance is thus restored at
every block's end, while staff cannot tell where a block ends (docs/randomization.md).

    >>> written = write_tables(load_project("hekta"), Path("out/rand"), Path("seeds.txt"))
    >>> [f.name for f in written.files]
    ['allocation_development.csv', 'allocation_production.csv', 'summary.csv', 'manifest.json']
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from hekta_redcap import __version__
from hekta_redcap.core.clock import now, stamp
from hekta_redcap.core.errors import DefinitionError, HektaError, Origin
from hekta_redcap.definitions.study import Project
from hekta_redcap.randomization.design import Design, design_of
from hekta_redcap.randomization.seeds import (
    VERSION,
    Stream,
    draw,
    exposed,
    read_seed_file,
    write_seed_file,
)
from hekta_redcap.redcap.names import DAG

TABLES = {"development": "allocation_development.csv", "production": "allocation_production.csv"}
SUMMARY = "summary.csv"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Run:
    """One stratum's allocation sequence: the block sizes as drawn and the arms in order."""

    stratum: tuple[str, ...]
    sizes: list[int]
    arms: list[str]


@dataclass(frozen=True)
class Slot:
    """A row of an allocation table: the arm it allocates, its stratum (the factors' codes in
    the design's order) and its line in the file, for messages."""

    arm: str
    stratum: tuple[str, ...]
    line: int


def stratum_key(design: Design, stratum: tuple[str, ...]) -> str:
    """The stratum as `factor=code` pairs (`site=1`, `site=1,sex=2`; `all` unstratified): its
    name in the summary and its stream's key."""
    pairs = [f"{f}={c}" for f, c in zip(design.factors, stratum, strict=True)]
    return ",".join(pairs) or "all"


def _shares(design: Design) -> dict[int, list[str]]:
    """Each block size's arms before shuffling: each arm size × ratio / Σ ratios times. Lint
    refuses sizes that are not multiples of Σ ratios; this guards a design that skipped it."""
    unit = sum(design.arms.values())
    sizes = sorted(set(design.spec.blocks))
    bad = [size for size in sizes if size % unit]
    if not sizes or bad:
        raise DefinitionError(
            f"randomization: block sizes {sizes} must be multiples of the ratios' sum ({unit})",
            design.spec.origin("blocks"),
        )
    return {
        size: [code for code, ratio in design.arms.items() for _ in range(size // unit * ratio)]
        for size in sizes
    }


def allocate(design: Design, seed: bytes, stratum: tuple[str, ...]) -> Run:
    """One stratum's sequence from `seed`: whole blocks until there are at least
    `slots_per_stratum` slots. Block sizes are drawn from the sizes in ascending order, so the
    order they are listed in does not change the tables."""
    shares = _shares(design)
    sizes = list(shares)
    stream = Stream(seed, stratum_key(design, stratum))
    drawn: list[int] = []
    arms: list[str] = []
    while len(arms) < design.slots_per_stratum:
        size = sizes[stream.below(len(sizes))]
        block = list(shares[size])
        stream.shuffle(block)
        drawn.append(size)
        arms.extend(block)
    return Run(stratum, drawn, arms)


def imbalances(arms: Iterable[str], ratios: dict[str, int]) -> list[Fraction]:
    """The imbalance after each slot: the largest minus the smallest of count ÷ ratio over the
    arms (for 1:1, the difference between the two arms' counts). Zero at every block's end."""
    counts = dict.fromkeys(ratios, 0)
    out: list[Fraction] = []
    for arm in arms:
        counts[arm] += 1
        shares = [Fraction(counts[a], r) for a, r in ratios.items()]
        out.append(max(shares) - min(shares))
    return out


def shown(value: Fraction) -> str:
    """A whole number as such, else two decimals (a 2:1 design's halves and thirds)."""
    return str(value.numerator) if value.denominator == 1 else f"{float(value):.2f}"


def summary_rows(design: Design, runs: dict[str, list[Run]]) -> list[dict[str, str]]:
    """Per table and stratum: the blocks (and how many of each size), the slots, the slots per
    arm, the largest imbalance anywhere in the sequence and the imbalance at planned
    enrolment (after `planned.per_stratum` slots)."""
    sizes = sorted(set(design.spec.blocks))
    planned = design.spec.planned.per_stratum
    rows = []
    for table, table_runs in runs.items():
        for run in table_runs:
            row = {"table": table, **dict(zip(design.factors, run.stratum, strict=True))}
            row["blocks"] = str(len(run.sizes))
            row |= {f"blocks_of_{s}": str(run.sizes.count(s)) for s in sizes}
            row["slots"] = str(len(run.arms))
            row |= {f"arm_{a}": str(run.arms.count(a)) for a in design.arms}
            steps = imbalances(run.arms, design.arms)
            row["largest_imbalance"] = shown(max(steps))
            row["imbalance_at_planned"] = shown(steps[min(planned, len(steps)) - 1])
            rows.append(row)
    return rows


def _csv(header: list[str], rows: Iterable[Iterable[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def table_csv(design: Design, runs: list[Run]) -> str:
    """An allocation table as REDCap's upload takes it: the target's column, then each
    factor's, one row per slot, stratum by stratum in allocation order."""
    return _csv(design.columns, ([arm, *run.stratum] for run in runs for arm in run.arms))


def _create(path: Path, text: str) -> None:
    """Write a new file; one that appeared meanwhile is refused, never replaced."""
    try:
        with path.open("x", encoding="utf-8", newline="") as out:
            out.write(text)
    except FileExistsError:
        raise HektaError(
            "already exists: allocation tables are never replaced", Origin(path)
        ) from None


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Written:
    """What `write_tables` wrote, and how the seeds were handled (never the seeds)."""

    project: str
    directory: Path
    design: Design
    runs: dict[str, list[Run]]
    files: list[Path]
    seed_file: Path | None
    seeds_read: bool  # read from an existing seed file (else drawn now)
    seed_file_exposed: bool

    def text(self) -> str:
        """The summary as a table, what became of the seeds, and the steps in REDCap."""
        lines = [f"Wrote the allocation tables of {self.project} to {self.directory}:"]
        for table, runs in self.runs.items():
            rows = sum(len(run.arms) for run in runs)
            lines.append(f"  {TABLES[table]:<28} {rows} rows ({table})")
        lines += [
            f"  {SUMMARY:<28} the balance below",
            f"  {MANIFEST:<28} the parameters and each table's SHA-256",
            "",
            *summary_table(self.design, self.runs),
            "",
        ]
        lines += [_wrap(paragraph) for paragraph in self._seeds()]
        lines += ["", *_steps(self.design, self.project, self.directory)]
        return "\n".join(lines)

    def _seeds(self) -> list[str]:
        concealed = (
            "Give the tables to no one who enrols or randomizes participants: they show every "
            "allocation to come."
        )
        if self.seed_file is None:
            return [
                "The seeds were kept nowhere: these tables cannot be regenerated. Keep the "
                "files; manifest.json records their SHA-256.",
                concealed,
            ]
        if self.seeds_read:
            said = [f"Seeds: read from {self.seed_file}; these are the tables it gives."]
        else:
            said = [
                f"Seeds: written to {self.seed_file}, readable by you alone. With it the same "
                "tables can be rebuilt, and whoever holds it can foresee every allocation: keep "
                "it apart from the tables, out of version control and away from the staff who "
                "enrol."
            ]
        if self.seed_file_exposed:
            said.append(
                f"Warning: {self.seed_file} can be read by others than you; make it yours "
                f"alone:\nchmod 600 {self.seed_file}"
            )
        return [*said, concealed]


def _wrap(text: str, indent: str = "") -> str:
    """A paragraph wrapped for the terminal; lines after the first newline are commands,
    indented and left whole so that they can be copied."""
    prose, *commands = text.split("\n")
    wrapped = textwrap.fill(prose, WIDTH, subsequent_indent=indent, break_on_hyphens=False)
    return "\n".join([wrapped, *(f"{indent}  {command}" for command in commands)])


def summary_table(design: Design, runs: dict[str, list[Run]]) -> list[str]:
    """summary.csv for the terminal, one line per table and stratum."""
    sizes = sorted(set(design.spec.blocks))
    planned = design.spec.planned.per_stratum
    header = [
        "table",
        "stratum",
        "blocks",
        *(f"of {s}" for s in sizes),
        "slots",
        *(f"arm {a}" for a in design.arms),
        "largest imbalance",
        f"at {planned}",
    ]
    body = [
        [
            row["table"],
            stratum_key(design, tuple(row[f] for f in design.factors)),
            row["blocks"],
            *(row[f"blocks_of_{s}"] for s in sizes),
            row["slots"],
            *(row[f"arm_{a}"] for a in design.arms),
            row["largest_imbalance"],
            row["imbalance_at_planned"],
        ]
        for row in summary_rows(design, runs)
    ]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    return [
        "  ".join(
            cell.ljust(w) if i < 2 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()
        for r in [header, *body]
    ]


def _steps(design: Design, project: str, directory: Path) -> list[str]:
    """What a person does in REDCap, from the study file's design, each step wrapped."""
    at = f" (event {design.event})" if design.event else ""
    setup = []
    if fields := [f for f in design.factors if f != DAG]:
        setup.append(f"use stratified randomization by {', '.join(fields)}{at}")
    if DAG in design.factors:
        setup.append(
            "randomize by group/site: data access groups (the table's "
            f"{DAG} column holds unique group names; if REDCap's template in step 2 shows "
            "numeric group IDs, the column must hold those instead: not yet checked)"
        )
    setup.append(f"the randomization field is {design.target}{at}")
    table = directory / TABLES["development"]
    steps = [step.format(project=project, setup="; ".join(setup), table=table) for step in STEPS]
    return [_wrap(STEPS_INTRO.format(project=project))] + [
        _wrap(f"{n}. {step}", "   ") for n, step in enumerate(steps, start=1)
    ]


WIDTH = 96
STEPS_INTRO = (
    "In REDCap (docs/randomization.md; the page names are REDCap's as best known, not checked "
    "against your server), with the project {project} in development status:"
)
STEPS = [
    'Project Setup > "Enable optional modules and customizations": enable the Randomization '
    "module (some servers leave this to an administrator).",
    'User Rights: give yourself the randomization right "Setup"; "Randomize" only to the staff '
    'who randomize; "Dashboard" only to the statistician or monitor (it shows the allocations '
    "used and left).",
    "Applications > Randomization > Setup, step 1: {setup}. Save the randomization model.",
    "Step 3, development: upload allocation_development.csv. Randomize test records "
    "(hekta-redcap randomize) and check them with:\n"
    "hekta-redcap randomization audit --project {project} --table {table}",
    "Step 3, production: upload allocation_production.csv. REDCap takes it from a user with "
    "the Setup right while the project is in development; in production only an "
    "administrator can.",
    "Move the project to production: from then on REDCap allocates from the production table. "
    "Keep this folder with the trial's master file; monitors check an uploaded table against "
    "manifest.json.",
]


def write_tables(project: Project, out: Path, seed_file: Path | None) -> Written:
    """Write both allocation tables, `summary.csv` and `manifest.json` into `out`. The seeds
    come from `seed_file` when it exists; otherwise they are drawn and, when `seed_file` is
    given, written to it (owner-only) before any table, so no table exists whose seeds were
    lost. Existing tables in `out` are refused, never replaced."""
    design = design_of(project)
    _shares(design)  # a design whose blocks cannot keep the ratio is refused before any seed
    for name in [*TABLES.values(), SUMMARY, MANIFEST]:
        if (out / name).exists():
            raise HektaError(
                "already exists: allocation tables are never replaced (a table may already be "
                "uploaded to REDCap); choose another directory",
                Origin(out / name),
            )
    seeds_read = seed_file is not None and seed_file.exists()
    if seed_file is not None and seeds_read:
        seeds = read_seed_file(seed_file)
    else:
        seeds = draw()
        if seed_file is not None:
            write_seed_file(seed_file, seeds)
    runs = {
        table: [allocate(design, seeds.of(table), s) for s in design.strata] for table in TABLES
    }
    out.mkdir(parents=True, exist_ok=True)
    texts = {name: table_csv(design, runs[table]) for table, name in TABLES.items()}
    rows = summary_rows(design, runs)
    texts[SUMMARY] = _csv(list(rows[0]), (row.values() for row in rows))
    manifest = _manifest(project, design, runs, texts, reproducible=seed_file is not None)
    texts[MANIFEST] = json.dumps(manifest, ensure_ascii=False, indent=1) + "\n"
    for name, text in texts.items():
        _create(out / name, text)
    return Written(
        project.name,
        out,
        design,
        runs,
        [out / name for name in texts],
        seed_file,
        seeds_read,
        seed_file is not None and exposed(seed_file),
    )


def _manifest(
    project: Project,
    design: Design,
    runs: dict[str, list[Run]],
    texts: dict[str, str],
    *,
    reproducible: bool,
) -> dict[str, object]:
    """The parameters, the toolkit, the time and each file's rows and SHA-256: what a
    monitor checks an uploaded table against. Never the seeds."""
    planned = design.spec.planned
    return {
        "toolkit": {"name": "hekta-redcap", "version": __version__},
        "created": stamp(now()),
        "project": {"name": project.name, "title": project.study.title},
        "method": {
            "design": "stratified permuted blocks of randomly varying size",
            "algorithm": VERSION,
            "seeds": "in a seed file" if reproducible else "kept nowhere: not reproducible",
        },
        "parameters": {
            "target": design.target,
            "event": design.event,
            "arms": [{"code": code, "ratio": ratio} for code, ratio in design.arms.items()],
            "factors": [{"column": f, "levels": levels} for f, levels in design.levels.items()],
            "block_sizes": sorted(set(design.spec.blocks)),
            "planned_per_stratum": planned.per_stratum,
            "margin": planned.margin,
            "slots_per_stratum": design.slots_per_stratum,
            "strata": len(design.strata),
        },
        "tables": [
            {
                "table": table,
                "file": name,
                "rows": sum(len(run.arms) for run in runs[table]),
                "sha256": _sha256(texts[name]),
            }
            for table, name in TABLES.items()
        ],
        "summary": {"file": SUMMARY, "sha256": _sha256(texts[SUMMARY])},
    }


def read_table(path: Path, design: Design) -> list[Slot]:
    """An allocation table's slots in file order (REDCap's order of allocation within each
    stratum). The header must name the design's columns (in any order); every code must be
    an arm or a level of its factor. Errors name the file, line and column."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise HektaError(f"cannot read the allocation table: {exc}", Origin(path)) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [cell.strip() for cell in next(reader, [])]
    if sorted(header) != sorted(design.columns):
        raise HektaError(
            f"the header must be {','.join(design.columns)} (the study file's randomization), "
            f"not {','.join(header)}",
            Origin(path, 1),
        )
    where = [header.index(column) for column in design.columns]
    allowed = [list(design.arms), *design.levels.values()]
    slots = []
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise HektaError(
                f"{len(row)} values where the header has {len(header)}", Origin(path, line)
            )
        codes = [row[i].strip() for i in where]
        for column, code, codes_allowed in zip(design.columns, codes, allowed, strict=True):
            if code not in codes_allowed:
                raise HektaError(
                    f"column {column}: '{code}' is not one of {', '.join(codes_allowed)}",
                    Origin(path, line),
                )
        slots.append(Slot(codes[0], tuple(codes[1:]), line))
    return slots
