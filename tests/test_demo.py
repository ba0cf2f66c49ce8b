"""The main job end to end, as `./scripts/demo` runs it (in a temporary directory)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hekta_redcap.definitions.study import default_root
from hekta_redcap.devtools import demo

pytestmark = pytest.mark.slow


def test_the_demo_randomizes_through_the_module_and_its_audit_finds_the_tampering(
    tmp_path: Path,
) -> None:
    said: list[str] = []
    demo.run(default_root(), None, tmp_path / "out", said.append)
    text = "\n".join(said)
    assert any(s.startswith("1. Definitions in") and "lint clean" in s for s in said)
    assert "randomized through REDCap's randomization module" in text
    audits = [s for s in said if s.startswith("   Randomization audit:")]
    assert audits[0] == (
        "   Randomization audit: hekta: 300 randomization(s) audited, 0 finding(s) in 0 record(s)"
    )
    assert audits[1] == (
        "   Randomization audit: hekta: 300 randomization(s) audited, 1 finding(s) in 1 record(s)"
    )
    assert audits[2] == "   Randomization audit:   group-changed: 1 (151)"
    assert "   The validator found 5 of the 5 deliberate errors." in said
    assert any(s.startswith("   error: record 151, baseline_arm_1, rand_group:") for s in said)
    tables = tmp_path / "out" / "allocation" / "tables"
    assert sorted(p.name for p in tables.iterdir()) == [
        "allocation_development.csv",
        "allocation_production.csv",
        "manifest.json",
        "summary.csv",
    ]
    assert (tmp_path / "out" / "audit" / "tampered" / "audit.html").is_file()
    assert (tmp_path / "out" / "export" / "manifest.json").is_file()
