"""Improvement plans carried forward: each plan point a review agrees with a site is judged at
that site's next review, by whether the item's consensus rating changed.

A plan point about one IPS-25 item is `improved`, `unchanged` or `worse` by the item's rating at
the next review against its rating at the review that made the plan; a point about an area (no
item) is `area` (no rating to compare); a point whose site has had no review since is `open`.

    >>> outcomes = carry_forward(read_reviews(project, rows))
    >>> outcomes[["site", "number", "item", "rating", "next_rating", "outcome"]]
"""

from __future__ import annotations

import pandas as pd

from hekta_redcap.fidelity.reviews import Reviews

OUTCOMES = ("improved", "unchanged", "worse", "area", "open")


def carry_forward(data: Reviews) -> pd.DataFrame:
    """The plan points with `rating` (the item's rating at the plan's review), `next_review`,
    `next_date`, `next_rating`, `change` (next minus this) and `outcome`, in plan order."""
    plans = data.plans.copy()
    reviews = data.reviews
    nxt = reviews[["site", "number", "review", "date"]].copy()
    nxt["number"] = nxt["number"] - 1
    plans = plans.merge(
        nxt.rename(columns={"review": "next_review", "date": "next_date"}),
        on=["site", "number"],
        how="left",
    )
    by_review = reviews.set_index("review")
    plans["rating"] = [
        by_review.at[review, item] if item else pd.NA
        for review, item in zip(plans["review"], plans["item"], strict=True)
    ]
    plans["next_rating"] = [
        by_review.at[after, item] if item and isinstance(after, str) else pd.NA
        for after, item in zip(plans["next_review"], plans["item"], strict=True)
    ]
    plans["rating"] = plans["rating"].astype("Int64")
    plans["next_rating"] = plans["next_rating"].astype("Int64")
    plans["change"] = plans["next_rating"] - plans["rating"]
    plans["outcome"] = [
        _outcome(item, after, change)
        for item, after, change in zip(
            plans["item"], plans["next_review"], plans["change"], strict=True
        )
    ]
    return plans


def _outcome(item: str, after: object, change: object) -> str:
    if not item:
        return "area"
    if not isinstance(after, str):
        return "open"
    step = int(change)  # type: ignore[call-overload]
    return "improved" if step > 0 else "worse" if step < 0 else "unchanged"
