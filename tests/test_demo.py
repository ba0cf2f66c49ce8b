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
    report = tmp_path / "out" / "report" / "report.html"
    assert any(
        s.startswith(f"12. Trial report (blinded) for the committees: {report}") for s in said
    )
    assert "AVBLINDET" not in report.read_text(encoding="utf-8")
    _registers(said, tmp_path / "out")
    _fidelity(said, tmp_path / "out")


def _fidelity(said: list[str], out: Path) -> None:
    """The companion study: the synthetic reviews loaded and synced, one line per site (its
    latest band and trend), the report written."""
    start = next(i for i, s in enumerate(said) if s.startswith("   IPS fidelity: "))
    assert (
        "synthetic reviews of 5 sites loaded into ips_fidelity; sync: ips_fidelity:" in said[start]
    )
    sites = said[start + 1 : start + 6]
    assert all(s.startswith("   | ") and ", 20" in s for s in sites)
    assert any(s.startswith("   | Bergen: Department of addiction medicine: ") for s in sites)
    assert (
        f"   IPS fidelity report (HTML and CSV tables): {out / 'fidelity' / 'report.html'}" in said
    )
    assert (out / "fidelity" / "plans.csv").is_file()


def _registers(said: list[str], out: Path) -> None:
    """The register steps: the linkage list (owner-only, outside the export), one delivery per
    register imported with exactly its deliberate errors refused, the 18-month endpoint by arm
    from the register tables, which the export then carries."""
    linkage = [s for s in said if s.startswith("   Register linkage: ")]
    assert linkage[0].startswith("   Register linkage: sync first: hekta:")
    assert any("readable by you alone): " in s and " synthetic" in s for s in linkage)
    assert "   Register linkage: to correct, not written: 0" in linkage
    folder = out / "registers"
    for private in (folder / "linkage-list.csv", folder / "keys" / "linkage-key.csv"):
        assert private.stat().st_mode & 0o777 == 0o600
    assert not any(p.name == "linkage-list.csv" for p in (out / "export").rglob("*"))
    delivered = [s for s in said if s.startswith("   Register delivery ")]
    assert [s.split()[2].rstrip(":") for s in delivered] == [
        "aa",
        "fd_trygd",
        "inntekt",
        "kpr",
        "npr",
    ]
    assert all("with 4 deliberate errors" in s for s in delivered)
    assert "   The import found 20 of the 20 deliberate delivery errors." in said
    header = next(
        n for n, s in enumerate(said) if s.startswith("   Register endpoint at 18 months")
    )
    arms = said[header + 1 : header + 3]
    assert [s.split(":")[0] for s in arms] == [
        "   | IPS (Individual Placement and Support)",
        "   | Self-help package and course",
    ]
    assert all("competitive employment in months 1-18: " in s for s in arms)
    assert any(s.startswith("   tables: ") and "register_outcomes" in s for s in said)
