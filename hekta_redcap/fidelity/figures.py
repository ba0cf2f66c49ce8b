"""The site reports' figures, drawn with matplotlib's object interface (no pyplot, so no
display and no global figure state; PNG by the Agg renderer). Each function
returns the figure and the frame it is drawn from, so that tests check the data, not pixels,
and the report writes the same frame as CSV.

    >>> figure, data = site_totals(site_reviews, scale, "en")
    >>> embed(figure)   # a data: URI of the PNG
"""

from __future__ import annotations

import base64
import io

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from hekta_redcap.fidelity.reviews import TOTAL, Scale

BAND_COLOURS = ("#f4d3cf", "#fbeccb", "#d9ecd4", "#b9dcb0")
MAX_RATING = 5


def band_edges(scale: Scale) -> list[tuple[int, float, float]]:
    """Each band's code with its lowest and highest total (the next band's minimum less one;
    the last band's highest is every item at 5)."""
    bands = sorted(scale.bands, key=lambda b: b.min)
    highs = [b.min - 1 for b in bands[1:]] + [float(MAX_RATING * len(scale.items))]
    return [(b.code, b.min, high) for b, high in zip(bands, highs, strict=True)]


def _shade(axes: Axes, scale: Scale, lang: str) -> None:
    for (code, low, high), colour in zip(band_edges(scale), BAND_COLOURS, strict=False):
        axes.axhspan(low - 0.5, high + 0.5, color=colour, zorder=0)
        axes.text(
            1.01,
            (low + high) / 2,
            scale.band_label(code, lang),
            transform=axes.get_yaxis_transform(),
            va="center",
            fontsize=7,
        )
    axes.set_ylim(band_edges(scale)[0][1] - 0.5, band_edges(scale)[-1][2] + 0.5)


def totals_data(reviews: pd.DataFrame) -> pd.DataFrame:
    """The totals over time: site label, review number, date, total and band."""
    return reviews[["site_label", "number", "date", TOTAL, "band"]].reset_index(drop=True)


def site_totals(reviews: pd.DataFrame, scale: Scale, lang: str) -> tuple[Figure, pd.DataFrame]:
    """One site's total at each review over time, on the bands."""
    data = totals_data(reviews)
    figure = Figure(figsize=(7, 3.2), layout="constrained")
    axes = figure.subplots()
    _totals(axes, data, scale, lang)
    return figure, data


def _totals(axes: Axes, data: pd.DataFrame, scale: Scale, lang: str) -> None:
    _shade(axes, scale, lang)
    axes.plot(pd.to_datetime(data["date"]), data[TOTAL], marker="o", color="#1f3b73", zorder=2)
    for date, total in zip(pd.to_datetime(data["date"]), data[TOTAL], strict=True):
        axes.annotate(
            str(total),
            (date, total),
            textcoords="offset points",
            xytext=(0, 6),
            ha="center",
            fontsize=7,
        )
    axes.set_ylabel("IPS-25")


def heatmap_data(reviews: pd.DataFrame, scale: Scale) -> pd.DataFrame:
    """Items (rows, S1 ... V14) by review (columns: number and date, dd.mm.yyyy)."""
    columns = [
        f"{n} ({d:%d.%m.%Y})" for n, d in zip(reviews["number"], reviews["date"], strict=True)
    ]
    data = pd.DataFrame(
        reviews[scale.items].to_numpy().T,
        index=[scale.item_label(i) for i in scale.items],
        columns=columns,
    )
    return data


def item_heatmap(reviews: pd.DataFrame, scale: Scale) -> tuple[Figure, pd.DataFrame]:
    """One site's 25 items across its reviews."""
    data = heatmap_data(reviews, scale)
    return _heatmap(data), data


def sites_heatmap_data(reviews: pd.DataFrame, scale: Scale) -> pd.DataFrame:
    """Items by site at each site's latest review (columns: the site's label)."""
    latest = reviews.loc[reviews.groupby("site", sort=False)["number"].idxmax()]
    return pd.DataFrame(
        latest[scale.items].to_numpy().T,
        index=[scale.item_label(i) for i in scale.items],
        columns=list(latest["site_label"]),
    )


def sites_heatmap(reviews: pd.DataFrame, scale: Scale) -> tuple[Figure, pd.DataFrame]:
    """Every site's items at its latest review, side by side."""
    data = sites_heatmap_data(reviews, scale)
    return _heatmap(data), data


def _heatmap(data: pd.DataFrame) -> Figure:
    width = max(3.5, 1.1 + 0.9 * data.shape[1])
    figure = Figure(figsize=(width, 6.5), layout="constrained")
    axes = figure.subplots()
    image = axes.imshow(
        data.to_numpy(dtype=float), cmap="RdYlGn", vmin=1, vmax=MAX_RATING, aspect="auto"
    )
    axes.set_yticks(range(len(data.index)), list(data.index), fontsize=7)
    axes.set_xticks(
        range(len(data.columns)), list(data.columns), fontsize=7, rotation=30, ha="right"
    )
    for (row, column), value in pd.DataFrame(data.to_numpy()).stack().items():
        axes.text(column, row, str(value), ha="center", va="center", fontsize=7)
    figure.colorbar(image, ax=axes, ticks=range(1, MAX_RATING + 1), shrink=0.5)
    return figure


def sites_totals(reviews: pd.DataFrame, scale: Scale, lang: str) -> tuple[Figure, pd.DataFrame]:
    """Every site's totals over time, one panel per site side by side on the same scales."""
    data = totals_data(reviews)
    sites = list(dict.fromkeys(data["site_label"]))
    columns = min(3, max(1, len(sites)))
    rows = -(-len(sites) // columns)
    figure = Figure(figsize=(4.2 * columns, 2.8 * rows), layout="constrained")
    grid = figure.subplots(
        rows,
        columns,
        sharey=True,
        sharex=True,
        squeeze=False,
    )
    for axes, site in zip(grid.flat, sites, strict=False):
        _totals(axes, data[data["site_label"] == site], scale, lang)
        axes.set_title(site, fontsize=9)
        axes.tick_params(axis="x", labelsize=7, labelrotation=30)
    for axes in list(grid.flat)[len(sites) :]:
        axes.set_visible(False)
    return figure, data


def embed(figure: Figure) -> str:
    """The figure as a PNG data URI, for a self-contained HTML page."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
