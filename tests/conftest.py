from __future__ import annotations

import shutil
from pathlib import Path

import pytest

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
