"""The IPS-25 scale under study: does a scale made for services for people with serious mental
illness behave in addiction services? Item distributions, item-total correlations, internal
consistency, inter-rater agreement and change between a site's consecutive reviews.

The statistics come from maintained libraries: Cronbach's alpha with its confidence interval
and the intraclass correlation from pingouin, weighted kappa from scikit-learn. Choices
(docs/fidelity.md gives the sources):

- alpha's interval is Feldt's (1987), from the F distribution, as pingouin computes it;
- kappa is quadratic-weighted (Cohen 1968): a rating one point off is a smaller disagreement
  than one four points off, and quadratic weights make kappa close to an ICC (Fleiss & Cohen
  1973); the codes 1-5 are passed as the labels so that an unused code still counts;
- the total's ICC is ICC(2,1) of Shrout & Fleiss (1979), pingouin's ICC(A,1): two-way random
  effects, absolute agreement, one rater. The reviewers are a sample of the reviewers who could
  have rated (random), and a site's band depends on the total's value, so a reviewer who rates
  everything higher must count as disagreement (absolute, not consistency: ICC(3,1) would
  forgive it). Single rater, since the reviewers' own ratings are the question, not their mean.

Consensus ratings of all reviews enter the item and alpha statistics, so one site's reviews
count several times (they are not independent); the tables give n.

    >>> tables = psychometrics(read_reviews(project, rows))
    >>> tables.alpha
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pingouin
from sklearn.metrics import cohen_kappa_score

from hekta_redcap.core.texts import catalog
from hekta_redcap.fidelity.reviews import TOTAL, Reviews, Scale

CODES = [1, 2, 3, 4, 5]
CONFIDENCE = 0.95
FLOOR_CEILING = 0.15  # a floor or ceiling share above 15% is worth a note (Terwee et al. 2007)
TEXTS = catalog(__package__, "texts.yaml")


@dataclass
class Psychometrics:
    """The tables the `fidelity psychometrics` command writes (one CSV each)."""

    items: pd.DataFrame
    alpha: pd.DataFrame
    agreement: pd.DataFrame
    icc: pd.DataFrame
    change: pd.DataFrame

    def tables(self) -> dict[str, pd.DataFrame]:
        return {
            "items": self.items,
            "alpha": self.alpha,
            "agreement": self.agreement,
            "icc": self.icc,
            "change": self.change,
        }


def psychometrics(data: Reviews) -> Psychometrics:
    return Psychometrics(
        item_table(data.reviews, data.scale),
        alpha_table(data.reviews, data.scale),
        agreement_table(data.ratings, data.scale),
        total_icc(data.ratings, data.scale),
        change_table(data.reviews, data.scale),
    )


def item_table(reviews: pd.DataFrame, scale: Scale) -> pd.DataFrame:
    """Per item: n, mean, SD, the share of each rating, the floor (share rated 1) and ceiling
    (share rated 5) shares, and the corrected item-total correlation (Pearson's r of the item
    with the sum of the other 24 items)."""
    rows = []
    total = reviews[scale.items].sum(axis=1)
    for item in scale.items:
        values = reviews[item].astype(float)
        n = len(values)
        shares = {f"share_{c}": float((values == c).mean()) if n else np.nan for c in CODES}
        rest = total - values
        rows.append(
            {
                "item": item,
                "n": n,
                "mean": values.mean(),
                "sd": values.std(ddof=1),
                **shares,
                "floor": shares["share_1"],
                "ceiling": shares["share_5"],
                "item_total_r": _pearson(values, rest),
            }
        )
    return pd.DataFrame(rows)


def _pearson(x: pd.Series, y: pd.Series) -> float:
    if len(x) < 3 or x.nunique() < 2 or y.nunique() < 2:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def cronbach_alpha(items: pd.DataFrame) -> tuple[float, float, float]:
    """Cronbach's alpha of the columns with its 95% interval (Feldt's, by pingouin); NaN when
    fewer than two reviews or items."""
    if len(items) < 2 or items.shape[1] < 2:
        return float("nan"), float("nan"), float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        alpha, (low, high) = pingouin.cronbach_alpha(items.astype(float), ci=CONFIDENCE)
    return float(alpha), float(low), float(high)


def alpha_table(reviews: pd.DataFrame, scale: Scale) -> pd.DataFrame:
    """Alpha with its interval for the whole scale and for each section."""
    parts = {TOTAL: scale.items, **scale.sections}
    rows = []
    for name, items in parts.items():
        alpha, low, high = cronbach_alpha(reviews[items])
        rows.append(
            {
                "scale": name,
                "items": len(items),
                "n": len(reviews),
                "alpha": alpha,
                "ci_low": low,
                "ci_high": high,
            }
        )
    return pd.DataFrame(rows)


def weighted_kappa(first: pd.Series, second: pd.Series) -> float:
    """Quadratic-weighted kappa of two raters over the codes 1-5; NaN when agreement by
    chance is complete (both rated one and the same code throughout)."""
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore")  # scikit-learn warns where kappa is undefined: NaN
        return float(
            cohen_kappa_score(list(first), list(second), labels=CODES, weights="quadratic")
        )


def _pairs(ratings: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reviewer 1's and reviewer 2's rows of the reviews both rated, aligned by review."""
    first = ratings[ratings["rater"] == "1"].drop_duplicates("review").set_index("review")
    second = ratings[ratings["rater"] == "2"].drop_duplicates("review").set_index("review")
    both = first.index.intersection(second.index)
    return first.loc[both], second.loc[both]


def agreement_table(ratings: pd.DataFrame, scale: Scale) -> pd.DataFrame:
    """Per item over the reviews both reviewers rated: n, the exact agreement share, the
    share within one point and the quadratic-weighted kappa."""
    first, second = _pairs(ratings)
    rows = []
    for item in scale.items:
        a, b = first[item].astype(int), second[item].astype(int)
        gap = (a - b).abs()
        rows.append(
            {
                "item": item,
                "n": len(a),
                "exact": float((gap == 0).mean()) if len(a) else np.nan,
                "within_one": float((gap <= 1).mean()) if len(a) else np.nan,
                "kappa_quadratic": weighted_kappa(a, b) if len(a) else np.nan,
            }
        )
    return pd.DataFrame(rows)


def intraclass(totals: pd.DataFrame) -> pd.DataFrame:
    """ICC(2,1) (pingouin's ICC(A,1)) of `totals` (columns review, rater, total) with its 95%
    interval, F test and n; empty when fewer than three reviews have both ratings."""
    columns = ["icc", "type", "ci_low", "ci_high", "f", "p", "n"]
    if totals["review"].nunique() < 3:
        return pd.DataFrame(columns=columns)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pingouin's own use of pandas deprecations
        table = pingouin.intraclass_corr(totals, "review", "rater", "total")
    row = table.set_index("Type").loc["ICC(A,1)"]
    low, high = row["CI95"]
    return pd.DataFrame(
        [
            {
                "icc": float(row["ICC"]),
                "type": "ICC(2,1) absolute agreement, single rater",
                "ci_low": float(low),
                "ci_high": float(high),
                "f": float(row["F"]),
                "p": float(row["pval"]),
                "n": totals["review"].nunique(),
            }
        ],
        columns=columns,
    )


def total_icc(ratings: pd.DataFrame, scale: Scale) -> pd.DataFrame:
    """The ICC of the two reviewers' own totals over the reviews both rated."""
    first, second = _pairs(ratings)
    totals = pd.concat(
        [
            pd.DataFrame({"review": f.index, "rater": rater, "total": f[scale.items].sum(axis=1)})
            for rater, f in (("1", first), ("2", second))
        ],
        ignore_index=True,
    )
    return intraclass(totals)


def change_table(reviews: pd.DataFrame, scale: Scale) -> pd.DataFrame:
    """Each pair of a site's consecutive reviews: the months between them, the total before
    and after, its change, the band before and after, and how many items rose and fell."""
    rows = []
    for site, group in reviews.groupby("site", sort=False):
        ordered = group.sort_values("number")
        for (_, before), (_, after) in zip(
            ordered.iloc[:-1].iterrows(), ordered.iloc[1:].iterrows(), strict=True
        ):
            steps = after[scale.items].astype(int) - before[scale.items].astype(int)
            rows.append(
                {
                    "site": site,
                    "site_label": before["site_label"],
                    "from_number": int(before["number"]),
                    "to_number": int(after["number"]),
                    "months": round((after["date"] - before["date"]).days / 30.4375, 1),
                    "total_before": int(before[TOTAL]),
                    "total_after": int(after[TOTAL]),
                    "change": int(after[TOTAL]) - int(before[TOTAL]),
                    "band_before": int(before["band"]),
                    "band_after": int(after["band"]),
                    "items_up": int((steps > 0).sum()),
                    "items_down": int((steps < 0).sum()),
                }
            )
    columns = [
        "site",
        "site_label",
        "from_number",
        "to_number",
        "months",
        "total_before",
        "total_after",
        "change",
        "band_before",
        "band_after",
        "items_up",
        "items_down",
    ]
    return pd.DataFrame(rows, columns=columns)


def summary(data: Reviews, tables: Psychometrics, lang: str) -> list[str]:
    """The command's lines: the reviews, alpha overall and per section, floor and ceiling,
    weighted kappa, the total's ICC and the change between consecutive reviews."""
    text = {k.removeprefix("psychometrics."): v[lang] for k, v in TEXTS.items()}
    scale = data.scale
    first, _ = _pairs(data.ratings)
    lines = [
        text["reviews"].format(
            reviews=len(data.reviews), sites=data.reviews["site"].nunique(), rated=len(first)
        )
    ]
    for row in tables.alpha.itertuples():
        if not np.isnan(row.alpha):
            name = scale.section_label(str(row.scale), lang)
            lines.append(
                text["alpha"].format(
                    scale=name,
                    alpha=f"{row.alpha:.2f}",
                    low=f"{row.ci_low:.2f}",
                    high=f"{row.ci_high:.2f}",
                    items=row.items,
                )
            )
    items = tables.items
    for key in ("floor", "ceiling"):
        over = items[items[key] > FLOOR_CEILING]["item"].map(scale.item_label)
        lines.append(text[key].format(items=", ".join(over) or "-"))
    kappas = tables.agreement["kappa_quadratic"].dropna()
    if len(kappas):
        lines.append(
            text["kappa"].format(
                median=f"{kappas.median():.2f}",
                low=f"{kappas.min():.2f}",
                high=f"{kappas.max():.2f}",
            )
        )
    for row in tables.icc.itertuples():
        lines.append(
            text["icc"].format(
                icc=f"{row.icc:.2f}", low=f"{row.ci_low:.2f}", high=f"{row.ci_high:.2f}", n=row.n
            )
        )
    change = tables.change
    if len(change):
        lines.append(
            text["change"].format(
                mean=f"{change['change'].mean():+.1f}",
                pairs=len(change),
                up=int((change["change"] > 0).sum()),
                down=int((change["change"] < 0).sum()),
            )
        )
    if len(data.reviews) < 2:
        lines.append(text["too_few"])
    return lines
