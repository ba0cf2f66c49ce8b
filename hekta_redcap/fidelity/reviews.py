"""The fidelity reviews as frames: each review's consensus IPS-25 ratings, scores and band, lined
up per site by date; each reviewer's own ratings; each improvement plan point.

Everything is read from the ips_fidelity project's rows as REDCap exports them (the synced
store's `raw_rows`): a review is a record, its consensus ratings are `ips25`, each reviewer's own
ratings an instance of `ips25_rater` (IPS-25's items under the rater form's prefix) and each plan
point an instance of `improvement_plan`. The items, the section scores and the bands come from
`ips25`'s scoring block, the site labels from the study file's `sites:`.

    >>> data = read_reviews(project, store.raw_rows("ips_fidelity"))
    >>> data.reviews[["site", "number", "date", "ips25_total", "band"]]
"""

from __future__ import annotations

import datetime as dt
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from hekta_redcap.core.errors import HektaError
from hekta_redcap.definitions.generated import item_suffix
from hekta_redcap.definitions.instruments import Band, Instrument
from hekta_redcap.definitions.scoring import score_frame
from hekta_redcap.definitions.study import Project
from hekta_redcap.redcap.names import REPEAT_INSTANCE, REPEAT_INSTRUMENT

SCALE = "ips25"
RATER_FORM = "ips25_rater"
PLAN_FORM = "improvement_plan"
TOTAL = "ips25_total"
CATEGORY = "ips25_category"
SITE, DATE, TYPE = "review_site", "review_date", "review_type"
RATER = "rater_number"
PLAN_FIELDS = {
    "plan_item": "item",
    "plan_area": "area",
    "plan_finding": "finding",
    "plan_action": "action",
    "plan_due": "due",
    "plan_status": "status",
}


@dataclass
class Scale:
    """IPS-25 as its definition says: the items in order, the sections (each section score's
    items) and the bands of the total."""

    items: list[str]
    sections: dict[str, list[str]]
    bands: list[Band]
    instrument: Instrument

    def band_of(self, total: float) -> int:
        """The band code of a complete total (the highest band whose minimum it reaches)."""
        return max(b.code for b in self.bands if total >= b.min)

    def band_label(self, code: int, lang: str) -> str:
        band = next(b for b in self.bands if b.code == code)
        return band.label.get(lang) or str(code)

    def section_label(self, name: str, lang: str) -> str:
        """A section score's label (`ips25_staffing` -> "IPS-25 staffing (3-15)")."""
        assert self.instrument.scoring is not None
        score = next(s for s in self.instrument.scoring.scores if s.name == name)
        return score.label.get(lang) or name

    def item_label(self, item: str) -> str:
        """The item's short name as the scale prints it (`ips25_v14` -> `V14`)."""
        return item_suffix(SCALE, item).upper()


def scale_of(project: Project) -> Scale:
    """IPS-25's items, sections and bands from its scoring block."""
    instrument = project.instruments.get(SCALE)
    if instrument is None or instrument.scoring is None:
        raise HektaError(f"project {project.name} has no scored {SCALE} form")
    scores = {s.name: s for s in instrument.scoring.scores}
    items = scores[TOTAL].items
    sections = {
        s.name: s.items
        for s in instrument.scoring.scores
        if s.name != TOTAL and s.aggregate == "sum"
    }
    category = next(d for d in instrument.scoring.derived if d.name == CATEGORY)
    return Scale(items, sections, list(category.bands or []), instrument)


@dataclass
class Reviews:
    """`reviews`: one row per review with every item rated, in site and date order: `review`
    (the record id), `site` (code), `site_label`, `number` (the site's 1st, 2nd ... review),
    `date`, `type`, the items (int), the total, the section scores and `band`. `ratings`: one
    row per reviewer's own ratings (`review`, `site`, `rater`, the items under IPS-25's names).
    `plans`: one row per plan point (`review`, `site`, `number`, `date`, `instance`, `item`
    (IPS-25's field name, blank for an area), `area`, `finding`, `action`, `due`, `status`).
    `incomplete`: the record ids of reviews left out because an item is not rated."""

    scale: Scale
    reviews: pd.DataFrame
    ratings: pd.DataFrame
    plans: pd.DataFrame
    incomplete: list[str]
    labels: dict[str, str]

    def sites(self) -> list[str]:
        """The site codes with a review, in the study file's order."""
        present = set(self.reviews["site"])
        return [code for code in self.labels if code in present]


def site_labels(project: Project, lang: str, mask: bool = False) -> dict[str, str]:
    """Each site's label by code in the study file's order; masked: "Site A", "Site B" ... in
    that order, in either language (the letters follow the list, not the reviews shown, so a
    site keeps its letter in every report)."""
    return {
        site.code: f"Site {_letters(i)}" if mask else (site.label.get(lang) or site.code)
        for i, site in enumerate(project.study.sites)
    }


def _letters(i: int) -> str:
    """A, B, ... Z, AA, AB ... for the i-th site (0-based)."""
    letters = string.ascii_uppercase
    return letters[i] if i < len(letters) else _letters(i // len(letters) - 1) + letters[i % 26]


def read_reviews(
    project: Project,
    rows: Iterable[Mapping[str, Any]],
    lang: str = "nb",
    mask: bool = False,
) -> Reviews:
    """The project's reviews, reviewers' ratings and plans from its export rows."""
    scale = scale_of(project)
    frame = pd.DataFrame(list(rows), dtype=str).fillna("")
    record_id = project.study.record_id
    if frame.empty:
        frame = pd.DataFrame(columns=[record_id, REPEAT_INSTRUMENT, REPEAT_INSTANCE, SITE, DATE])
    for column in (REPEAT_INSTRUMENT, REPEAT_INSTANCE):
        if column not in frame:
            frame[column] = ""
    labels = site_labels(project, lang, mask)
    base = frame[frame[REPEAT_INSTRUMENT] == ""].set_index(record_id, drop=False)
    reviews, incomplete = _reviews(project, scale, base, labels)
    return Reviews(
        scale,
        reviews,
        _ratings(project, scale, frame, reviews),
        _plans(frame, record_id, reviews),
        incomplete,
        labels,
    )


def _reviews(
    project: Project, scale: Scale, base: pd.DataFrame, labels: Mapping[str, str]
) -> tuple[pd.DataFrame, list[str]]:
    columns = ["review", "site", "site_label", "number", "date", "type"]
    if base.empty or any(c not in base for c in scale.items):
        return pd.DataFrame(columns=[*columns, *scale.items, TOTAL, "band"]), []
    scores = score_frame(project, SCALE, base)
    rated = (base[scale.items] != "").all(axis=1) & (base[SITE] != "") & (base[DATE] != "")
    incomplete = [str(r) for r in base.index[~rated]]
    kept = base[rated]
    out = pd.DataFrame(
        {
            "review": kept.index.astype(str),
            "site": kept[SITE].to_numpy(),
            "site_label": [labels.get(code, code) for code in kept[SITE]],
            "date": [dt.date.fromisoformat(d) for d in kept[DATE]],
            "type": kept.get(TYPE, pd.Series("", index=kept.index)).to_numpy(),
        }
    )
    for item in scale.items:
        out[item] = kept[item].astype(int).to_numpy()
    out[TOTAL] = scores.loc[kept.index, TOTAL].astype(int).to_numpy()
    for section in scale.sections:
        out[section] = scores.loc[kept.index, section].astype(int).to_numpy()
    out["band"] = [scale.band_of(t) for t in out[TOTAL]]
    out = out.sort_values(["site", "date", "review"], key=_site_order(labels)).reset_index(
        drop=True
    )
    out.insert(3, "number", out.groupby("site").cumcount() + 1)
    return out[[*columns, *scale.items, TOTAL, *scale.sections, "band"]], incomplete


def _site_order(labels: Mapping[str, str]) -> Any:
    """Sort key: sites in the study file's order, other columns as they are."""
    order = {code: i for i, code in enumerate(labels)}

    def key(column: pd.Series) -> pd.Series:
        if column.name == "site":
            return column.map(lambda c: order.get(c, len(order)))
        return column

    return key


def _ratings(
    project: Project, scale: Scale, frame: pd.DataFrame, reviews: pd.DataFrame
) -> pd.DataFrame:
    """Each reviewer's own ratings, under IPS-25's item names, for the complete reviews."""
    rater = project.instruments.get(RATER_FORM)
    columns = ["review", "site", "rater", *scale.items]
    if rater is None or rater.items_from is None:
        return pd.DataFrame(columns=columns)
    own = {item: rater.items_from.prefix + item_suffix(SCALE, item) for item in scale.items}
    if any(name not in frame for name in [RATER, *own.values()]):
        return pd.DataFrame(columns=columns)  # a project not yet pushed with the rater form
    rows = frame[frame[REPEAT_INSTRUMENT] == RATER_FORM]
    rows = rows[rows[project.study.record_id].isin(reviews["review"])]
    rows = rows[(rows[list(own.values())] != "").all(axis=1) & (rows[RATER] != "")]
    site = dict(zip(reviews["review"], reviews["site"], strict=True))
    out = pd.DataFrame(
        {
            "review": rows[project.study.record_id].to_numpy(),
            "site": rows[project.study.record_id].map(site).to_numpy(),
            "rater": rows[RATER].to_numpy(),
        }
    )
    for item, name in own.items():
        out[item] = rows[name].astype(int).to_numpy()
    return out[columns].reset_index(drop=True)


def _plans(frame: pd.DataFrame, record_id: str, reviews: pd.DataFrame) -> pd.DataFrame:
    """Each plan point of a complete review, with its review's site, number and date."""
    columns = ["review", "site", "number", "date", "instance", *PLAN_FIELDS.values()]
    rows = frame[frame[REPEAT_INSTRUMENT] == PLAN_FORM]
    rows = rows[rows[record_id].isin(reviews["review"])]
    if rows.empty or any(name not in rows for name in PLAN_FIELDS):
        return pd.DataFrame(columns=columns)
    out = rows[[record_id, REPEAT_INSTANCE, *PLAN_FIELDS]].rename(
        columns={record_id: "review", REPEAT_INSTANCE: "instance", **PLAN_FIELDS}
    )
    out["instance"] = out["instance"].astype(int)
    out["item"] = [f"{SCALE}_{code}" if code else "" for code in out["item"]]
    out = out.merge(reviews[["review", "site", "number", "date"]], on="review")
    out["order"] = out["review"].map({r: i for i, r in enumerate(reviews["review"])})
    return out.sort_values(["order", "instance"])[columns].reset_index(drop=True)
