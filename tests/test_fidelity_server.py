"""The fidelity study on the local REDCap-compatible server: the synthetic reviews, the
`fidelity` commands on a synced store, and deploying the changed ips_fidelity project over one
that holds reviews made with the old definitions."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pandas as pd
import pytest
import redcap
from click.testing import CliRunner
from conftest import LIBRARY, edit
from test_deploy import changes, find, new_project, run

from hekta_redcap.cli import cli
from hekta_redcap.compile.dictionary import compile_project
from hekta_redcap.core.settings import Settings
from hekta_redcap.data import sync
from hekta_redcap.definitions.study import load_project
from hekta_redcap.devtools.fidelity import generate_reviews
from hekta_redcap.devtools.provision import provision
from hekta_redcap.devtools.sandbox.server import SandboxServer
from hekta_redcap.fidelity.reviews import read_reviews
from hekta_redcap.redcap.dictionary import COLUMNS

PROJECT = load_project("ips_fidelity", LIBRARY)
TODAY = dt.date(2026, 6, 1)


def test_synthetic_reviews_are_the_same_for_a_seed_and_look_like_a_study() -> None:
    first = generate_reviews(PROJECT, seed=3, today=TODAY)
    assert first.rows == generate_reviews(PROJECT, seed=3, today=TODAY).rows
    assert first.rows != generate_reviews(PROJECT, seed=4, today=TODAY).rows
    data = read_reviews(PROJECT, first.rows)
    assert data.incomplete == []
    per_site = data.reviews.groupby("site")["number"].max()
    assert list(per_site.index) == ["1", "2", "3", "4", "5"]
    assert all(3 <= n <= 5 for n in per_site)
    assert data.reviews["date"].max() < TODAY
    gaps = data.reviews.groupby("site")["date"].diff().dropna().map(lambda d: d.days)
    assert gaps.between(270, 540).all()
    assert set(data.reviews["type"]) == {"1", "2"}
    # plans on most reviews, each on an item rated 3 or lower or an area
    assert data.plans["review"].nunique() == len(data.reviews)
    rated = data.reviews.set_index("review")
    on_items = data.plans[data.plans["item"] != ""]
    assert all(
        rated.at[r, i] <= 3 for r, i in zip(on_items["review"], on_items["item"], strict=True)
    )
    # both reviewers on most reviews, agreeing on most items but not all
    rated_twice = data.ratings.groupby("review")["rater"].nunique()
    assert (rated_twice == 2).all() and len(rated_twice) >= len(data.reviews) // 2
    one = data.ratings[data.ratings["rater"] == "1"].set_index("review")[data.scale.items]
    two = data.ratings[data.ratings["rater"] == "2"].set_index("review")[data.scale.items]
    exact = float((one == two).to_numpy().mean())
    assert 0.6 < exact < 0.9


@pytest.fixture(scope="module")
def synced(sandbox: SandboxServer, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """ips_fidelity on the local server with the synthetic reviews, synced into a store."""
    where = tmp_path_factory.mktemp("fidelity")
    provision(sandbox, [PROJECT], where / "env")
    settings = Settings.load((where / "env",), {"HEKTA_STORE": str(where / "store.sqlite3")})
    client = redcap.Project(sandbox.url, settings.token("ips_fidelity").reveal())
    synthetic = generate_reviews(PROJECT, seed=1, today=TODAY)
    assert synthetic.load(client) == sum(len(v) for v in synthetic.sites.values())
    sync.run(settings, "ips_fidelity")
    return settings


def test_the_report_command_on_the_synced_store(synced: Settings, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        ["fidelity", "report", "-o", str(tmp_path), "--mask-sites", "--lang", "en"],
        env=dict(synced.values),
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split(":")[0] for line in lines[:5]] == [f"Site {c}" for c in "ABCDE"]
    assert lines[-1] == f"Report written to {tmp_path / 'report.html'}"
    plans = pd.read_csv(tmp_path / "plans.csv", keep_default_na=False)
    assert set(plans["outcome"]) <= {"improved", "unchanged", "worse", "area", "open"}
    assert "open" in set(plans["outcome"]) and "improved" in set(plans["outcome"])
    assert set(plans["site_name"]) == {f"Site {c}" for c in "ABCDE"}


def test_the_psychometrics_command_on_the_synced_store(synced: Settings, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        ["fidelity", "psychometrics", "-o", str(tmp_path), "--lang", "en"],
        env=dict(synced.values),
    )
    assert result.exit_code == 0, result.output
    assert "Cronbach's alpha, IPS-25 total score (25–125): " in result.output
    assert "ICC(2,1) of the total: " in result.output
    assert result.output.splitlines()[-1] == f"Tables written to {tmp_path}"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "agreement.csv",
        "alpha.csv",
        "change.csv",
        "icc.csv",
        "items.csv",
    ]
    agreement = pd.read_csv(tmp_path / "agreement.csv")
    assert len(agreement) == 25 and agreement["kappa_quadratic"].between(-1, 1).all()


def test_a_store_never_synced_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        ["fidelity", "report", "-o", str(tmp_path / "out")],
        env={"HEKTA_STORE": str(tmp_path / "store.sqlite3")},
    )
    assert result.exit_code == 1
    assert "ips_fidelity was never synced into" in result.output
    assert "Traceback" not in result.output


def _old_definitions(library: Path) -> None:
    """The definitions before the site list, the reviewers' own ratings and the plans."""
    study = library / "studies" / "ips_fidelity.yaml"
    study.write_text(study.read_text().split("  - form: ips25_rater")[0], encoding="utf-8")
    form = "forms/site_review.yaml"
    edit(
        library,
        form,
        "    type: dropdown\n    label: {nb: Tjenestested,",
        "    type: text\n    label: {nb: Tjenestested,",
    )
    edit(library, form, "    choices: review_sites\n", "")
    edit(
        library, "forms/site_review.yaml", "generated_choices:\n  review_sites: {sites: true}\n", ""
    )


def test_deploying_the_fidelity_changes_over_a_project_with_reviews(
    sandbox: SandboxServer, tmp_path: Path, library: Path
) -> None:
    old = tmp_path / "old" / "instruments"
    old.parent.mkdir()
    shutil.copytree(library, old)
    _old_definitions(old)
    assert load_project("ips_fidelity", old).forms == ["site_review", "ips25"]
    token = new_project(sandbox, "ips_fidelity", old)
    assert run(sandbox, token, "push", "-p", "ips_fidelity", "--yes", root=old).exit_code == 0
    reviews = [
        r
        for r in generate_reviews(PROJECT, seed=2, today=TODAY).rows[:40]
        if not r["redcap_repeat_instrument"]
    ]
    client = redcap.Project(sandbox.url, token)
    free_text = [{**r, "review_site": "Helse Bergen, rusmedisin"} for r in reviews]
    client.import_records(
        [{k: v for k, v in r.items() if not k.startswith("redcap_")} for r in free_text]
    )

    found = changes(run(sandbox, token, "plan", "-p", "ips_fidelity", "--json", root=library))
    site = find(found, "review_site", "change")
    assert (site["severity"], site["affected"]) == ("data-affecting", len(reviews))
    instruments = [c for c in found if c["step"] == "metadata" and c["detail"] == "new instrument"]
    assert [(c["target"], c["severity"]) for c in instruments] == [
        ("ips25_rater", "safe"),
        ("improvement_plan", "safe"),
    ]
    added = [c for c in found if c["action"] == "add" and c["step"] == "metadata"]
    assert {c["severity"] for c in added} == {"safe"}
    assert {"rater_number", "ips25r_s1", "ips25r_v14", "plan_item", "plan_status"} <= {
        c["target"] for c in added
    }
    repeating = [c for c in found if c["step"] == "repeating"]
    assert [(c["target"], c["severity"]) for c in repeating] == [
        ("ips25_rater", "safe"),
        ("improvement_plan", "safe"),
    ]

    # The data manager recodes the free text to the sites' codes first: then the site's
    # change is for a person to confirm, and the push needs no --allow-data-loss.
    client.import_records(
        [{"review_id": r["review_id"], "review_site": r["review_site"]} for r in reviews]
    )
    found = changes(run(sandbox, token, "plan", "-p", "ips_fidelity", "--json", root=library))
    assert find(found, "review_site", "change")["severity"] == "review"
    assert not [c for c in found if c["severity"] == "data-affecting"]
    pushed = run(sandbox, token, "push", "-p", "ips_fidelity", "--yes", root=library)
    assert pushed.exit_code == 0, pushed.output
    assert client.export_metadata() == [
        {c: getattr(r, c) for c in COLUMNS}
        for r in compile_project(load_project("ips_fidelity", library))
    ]
    assert {r["form_name"] for r in client.export_repeating_instruments_events()} == {
        "ips25_rater",
        "improvement_plan",
    }
    kept = client.export_records(fields=["review_id", "review_site", "ips25_s1"])
    assert len(kept) == len(reviews) and {r["review_site"] for r in kept} <= set("12345")
    assert run(sandbox, token, "plan", "-p", "ips_fidelity", root=library).exit_code == 0
