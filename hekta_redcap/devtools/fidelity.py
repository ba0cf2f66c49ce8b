"""Synthetic IPS fidelity reviews: import rows for the ips_fidelity project that look like a
companion study's data, the same for the same seed and `today`.

Each of the study file's sites (the retired ones left out) has three to five reviews, 9 to 18
months apart, the last before `today`. A site has a fidelity level that mostly rises from review
to review (about one site in three slips back a little), and each item a difficulty of its own, so
totals spread across the bands and some items stay low. Each review agrees an improvement plan
on two or three of its lowest-rated items (sometimes on an area instead); a planned item tends to
be rated higher at the next review. Most reviews also hold both reviewers' own ratings before
consensus, each off the consensus by one point on about one item in five and by two on a few,
as independent raters are.

    >>> synthetic = generate_reviews(load_project("ips_fidelity"), seed=1)
    >>> synthetic.load(redcap.Project(url, token))
    19
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
from dataclasses import dataclass

import redcap

from hekta_redcap.definitions.generated import item_suffix
from hekta_redcap.definitions.study import Project
from hekta_redcap.fidelity.reviews import (
    DATE,
    PLAN_FORM,
    RATER,
    RATER_FORM,
    SCALE,
    SITE,
    TYPE,
    scale_of,
)
from hekta_redcap.redcap.names import REPEAT_INSTANCE, REPEAT_INSTRUMENT

REVIEWERS = ("Kari Testesen", "Ola Prøvesen", "Ingrid Eksempel", "Per Fiktiv")
SHARE_RATED_INDEPENDENTLY = 0.75


@dataclass
class SyntheticReviews:
    """Import rows (each review's row, then its raters' and plan points' instances) and, per
    site code, its reviews' record ids in date order."""

    rows: list[dict[str, str]]
    sites: dict[str, list[str]]
    record_id: str = "review_id"

    def load(self, client: redcap.Project) -> int:
        """Import every row; returns the number of reviews REDCap reports imported."""
        return int(client.import_records(self.rows)["count"])


def generate_reviews(
    project: Project, seed: int = 1, today: dt.date | None = None
) -> SyntheticReviews:
    today = today or dt.date.today()
    rng = random.Random(seed)
    scale = scale_of(project)
    difficulty = {item: rng.gauss(0, 0.6) for item in scale.items}
    record_id = project.study.record_id
    rows: list[dict[str, str]] = []
    sites: dict[str, list[str]] = {}
    numbers = itertools.count(1)
    for site in (s for s in project.study.sites if not s.retired):
        count = rng.randint(3, 5)
        gaps = [rng.randint(270, 540) for _ in range(count - 1)]
        last = today - dt.timedelta(days=rng.randint(20, 200))
        dates = [last - dt.timedelta(days=sum(gaps[i:])) for i in range(count)]
        level = rng.uniform(2.4, 3.7)
        slips = rng.random() < 0.3
        planned: set[str] = set()
        for number, day in enumerate(dates, start=1):
            review = str(next(numbers))
            sites.setdefault(site.code, []).append(review)
            ratings = {
                item: _rate(level + difficulty[item] + (0.5 if item in planned else 0), rng)
                for item in scale.items
            }
            rows.append(
                {
                    record_id: review,
                    REPEAT_INSTRUMENT: "",
                    REPEAT_INSTANCE: "",
                    SITE: site.code,
                    DATE: day.isoformat(),
                    TYPE: "1" if number == 1 else "2",
                    "review_reviewer_1": rng.choice(REVIEWERS[:2]),
                    "review_reviewer_2": rng.choice(REVIEWERS[2:]),
                    "site_review_complete": "2",
                    **{item: str(r) for item, r in ratings.items()},
                    f"{SCALE}_complete": "2",
                }
            )
            if rng.random() < SHARE_RATED_INDEPENDENTLY:
                rows += _raters(project, record_id, review, ratings, rng)
            planned = _plan(record_id, review, ratings, day, number == count, rows, rng)
            level += rng.uniform(-0.25, 0.0) if slips else rng.uniform(0.0, 0.35)
    return SyntheticReviews(rows, sites, record_id)


def _rate(level: float, rng: random.Random) -> int:
    return min(5, max(1, round(level + rng.gauss(0, 0.45))))


def _raters(
    project: Project, record_id: str, review: str, consensus: dict[str, int], rng: random.Random
) -> list[dict[str, str]]:
    """Both reviewers' own ratings: mostly the consensus, one point off on about one item in
    five, two points off on about one in forty."""
    spec = project.instruments[RATER_FORM].items_from
    assert spec is not None
    rows = []
    for rater in (1, 2):
        row = {
            record_id: review,
            REPEAT_INSTRUMENT: RATER_FORM,
            REPEAT_INSTANCE: str(rater),
            RATER: str(rater),
            f"{RATER_FORM}_complete": "2",
        }
        for item, rating in consensus.items():
            draw = rng.random()
            off = 2 if draw < 0.025 else 1 if draw < 0.2 else 0
            own = rating + off * rng.choice((-1, 1))
            row[spec.prefix + item_suffix(SCALE, item)] = str(min(5, max(1, own)))
        rows.append(row)
    return rows


def _plan(
    record_id: str,
    review: str,
    ratings: dict[str, int],
    day: dt.date,
    latest: bool,
    rows: list[dict[str, str]],
    rng: random.Random,
) -> set[str]:
    """Plan points on two or three of the lowest-rated items (at most 3), and now and then an
    area; their status is done or not by the next review, planned or in progress at the
    latest. Returns the items whose plan was done."""
    low = sorted((r, rng.random(), item) for item, r in ratings.items() if r <= 3)
    chosen = [item for _, _, item in low[: rng.randint(2, 3)]]
    points: list[tuple[str, str]] = [(item, "") for item in chosen]
    if rng.random() < 0.3:
        points.append(("", "Samarbeid med NAV-kontoret"))
    done: set[str] = set()
    for instance, (item, area) in enumerate(points, start=1):
        status = rng.choice("12") if latest else rng.choice("3334")
        if status == "3" and item:
            done.add(item)
        rows.append(
            {
                record_id: review,
                REPEAT_INSTRUMENT: PLAN_FORM,
                REPEAT_INSTANCE: str(instance),
                "plan_item": item_suffix(SCALE, item) if item else "",
                "plan_area": area,
                "plan_finding": "Praksis avviker fra modellen på dette punktet.",
                "plan_action": "Tiltak avtalt med ledelsen og jobbspesialistene.",
                "plan_responsible": "Enhetsleder",
                "plan_due": (day + dt.timedelta(days=182)).isoformat(),
                "plan_status": status,
                f"{PLAN_FORM}_complete": "2",
            }
        )
    return done
