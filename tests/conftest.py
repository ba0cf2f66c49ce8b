from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sandbox_support import Handle, seed_project

from hekta_redcap.sandbox.server import SandboxServer, running

REPO = Path(__file__).resolve().parents[1]
LIBRARY = REPO / "instruments"


@pytest.fixture
def library(tmp_path: Path) -> Path:
    """A private copy of the shipped definitions (without any site-local overlay)."""
    root = tmp_path / "instruments"
    shutil.copytree(LIBRARY, root, ignore=shutil.ignore_patterns("local"))
    return root


def edit(root: Path, relative: str, old: str, new: str) -> Path:
    """Replace the first `old` in a definition file; fails loudly if `old` is not there."""
    file = root / relative
    text = file.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {relative}"
    file.write_text(text.replace(old, new, 1), encoding="utf-8")
    return file


def line_of(file: Path, snippet: str) -> int:
    """1-based line of the first occurrence of `snippet` in `file`."""
    text = file.read_text(encoding="utf-8")
    assert snippet in text, f"{snippet!r} not in {file}"
    return text[: text.index(snippet)].count("\n") + 1


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    """One local REDCap-compatible server on a free loopback port for the whole session."""
    with running(tmp_path_factory.mktemp("sandbox")) as server:
        yield server


@pytest.fixture
def classic(sandbox: SandboxServer) -> Handle:
    """A fresh classic project (every field type) on the session's server."""
    return seed_project(sandbox, "classic")


@pytest.fixture
def longitudinal(sandbox: SandboxServer) -> Handle:
    """A fresh longitudinal project (2 arms, a repeating instrument and a repeating event)."""
    return seed_project(sandbox, "longitudinal")
