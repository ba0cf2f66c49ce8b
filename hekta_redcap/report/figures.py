"""The report's figures, each drawn from one of the report's tables (so a test checks the
table, not pixels): the recruitment curve against the plan, retention by arm at each follow-up,
and completeness per instrument as a heat map. Written as PNG and SVG (text kept as text) and
embedded in the HTML as SVG; the same tables give the same bytes.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Literal

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from hekta_redcap.analysis.consort import TOTAL
from hekta_redcap.report.blinding import Arms
from hekta_redcap.report.recruitment import CUMULATIVE, PLANNED, Recruitment

FONT = 8.0
FIGURES = ("recruitment", "retention", "completeness")


def _titled(text: str, arms: Arms) -> str:
    return f"{arms.banner}: {text}" if arms.banner else text


def recruitment_figure(recruited: Recruitment, words: dict[str, str], arms: Arms) -> Figure:
    """Cumulative randomisations per month, in all and per site, and the plan's line."""
    monthly = recruited.monthly
    figure = Figure(figsize=(7.0, 3.8))
    ax = figure.add_subplot()
    x = np.arange(len(monthly))
    ax.plot(x, monthly[CUMULATIVE], marker="o", ms=3, label=words["actual"], color="black")
    for code, label in recruited.sites["label"].items():
        if code in monthly:
            ax.plot(x, monthly[code].cumsum(), lw=1, alpha=0.7, label=label)
    if monthly[PLANNED].notna().any():
        ax.plot(x, monthly[PLANNED].astype(float), ls="--", color="grey", label=words["plan"])
    step = max(1, len(monthly) // 12)
    ax.set_xticks(x[::step], list(monthly.index[::step]), rotation=45, ha="right")
    ax.set_ylabel(words["people"])
    return _lines_finished(figure, ax, _titled(words["recruitment"], arms), "upper left")


def retention_figure(
    retention: pd.DataFrame, words: dict[str, str], arms: Arms, total: str
) -> Figure:
    """Percent assessed of those due at each follow-up, per arm and in all."""
    figure = Figure(figsize=(6.0, 3.6))
    ax = figure.add_subplot()
    for column in [*arms.codes, TOTAL]:
        mine = retention[retention["column"] == column]
        name = total if column == TOTAL else arms.name(column)
        dashed = column == TOTAL
        ax.plot(
            mine["months"],
            mine["share"] * 100,
            marker="o",
            label=name,
            ls="--" if dashed else "-",
            color="grey" if dashed else None,
        )
    months = sorted(set(retention["months"]))
    ax.set_xticks(months, [f"{m:g}" for m in months])
    ax.set_xlim(0, max(months, default=12) + 2)
    ax.set_ylim(0, 105)
    ax.set_xlabel(words["months"])
    ax.set_ylabel(words["percent"])
    return _lines_finished(figure, ax, _titled(words["retention"], arms), "lower left")


def completeness_figure(grid: pd.DataFrame, words: dict[str, str], arms: Arms) -> Figure:
    """A heat map of `grid` (percent complete: a row per instrument, a column per timepoint
    and arm)."""
    height = 1.2 + 0.22 * len(grid)
    figure = Figure(figsize=(2.2 + 0.55 * len(grid.columns), height))
    ax = figure.add_subplot()
    values = grid.to_numpy(dtype=float)
    image = ax.imshow(values, cmap="RdYlGn", vmin=0, vmax=100, aspect="auto")
    ax.set_xticks(range(len(grid.columns)), list(grid.columns), rotation=45, ha="right")
    ax.set_yticks(range(len(grid.index)), list(grid.index))
    for (i, j), value in np.ndenumerate(values):
        if not np.isnan(value):
            ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=FONT - 2)
    figure.colorbar(image, ax=ax, label=words["percent"], fraction=0.04)
    ax.set_title(_titled(words["completeness"], arms), fontsize=FONT + 2)
    figure.tight_layout()
    return figure


def write_figure(figure: Figure, directory: Path, name: str) -> tuple[list[Path], str]:
    """`name`.png and `name`.svg in `directory`, and the SVG's markup to embed."""
    png, svg = directory / f"{name}.png", directory / f"{name}.svg"
    with matplotlib.rc_context({"svg.hashsalt": "hekta-redcap", "svg.fonttype": "none"}):
        figure.savefig(png, format="png", dpi=150, metadata={"Software": None})
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    markup = buffer.getvalue()
    svg.write_text(markup, encoding="utf-8")
    return [png, svg], markup[markup.index("<svg") :]


def _lines_finished(
    figure: Figure, ax: Axes, title: str, legend: Literal["upper left", "lower left"]
) -> Figure:
    """A line chart's title, grid and legend (at `legend`), laid out."""
    ax.set_title(title, fontsize=FONT + 2)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=FONT - 1, loc=legend)
    figure.tight_layout()
    return figure
