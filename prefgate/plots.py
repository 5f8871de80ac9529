"""Small PNG charts for asset metadata (matplotlib, headless). Each ``*_figure`` builds the figure (tests inspect
it); the function of the same name without the suffix returns it as PNG bytes, which callers embed."""

from __future__ import annotations

import datetime as dt
import io
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


TITLE_SIZE = 11
LABEL_SIZE = 10
TICK_SIZE = 9
LEGEND_SIZE = 8


def _png(fig: Figure) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _figure(width: float = 6.4, height: float = 3.6) -> tuple[Figure, Axes]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height))
    return fig, ax


def _label(ax: Axes, title: str, xlabel: str, ylabel: str) -> None:
    """Title, axis labels and tick labels at readable sizes."""
    ax.set_title(title, fontsize=TITLE_SIZE)
    ax.set_xlabel(xlabel, fontsize=LABEL_SIZE)
    ax.set_ylabel(ylabel, fontsize=LABEL_SIZE)
    ax.tick_params(labelsize=TICK_SIZE)


def _legend_outside(ax: Axes, **kwargs: Any) -> None:
    """The legend to the right of the axes, where it cannot cover any data (``bbox_inches="tight"`` keeps it)."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=LEGEND_SIZE, **kwargs)


def agreement_histogram_figure(quality: pl.DataFrame) -> Figure:
    """Distribution of per-rater agreement with the leave-one-out consensus, flagged raters stacked in red."""
    fig, ax = _figure()
    scored = quality.filter(pl.col("agreement").is_not_null())
    flagged = pl.any_horizontal("spammer", "biased", "too_fast", "drifting")
    bins = [i / 20 for i in range(21)]
    ok = scored.filter(~flagged)["agreement"].to_numpy()
    bad = scored.filter(flagged)["agreement"].to_numpy()
    ax.hist([ok, bad], bins=bins, stacked=True, color=["#4c78a8", "#e45756"], label=["not flagged", "flagged"])
    ax.set_xlim(0, 1)
    _label(
        ax,
        f"Per-rater agreement ({scored.height} raters scored, {bad.size} flagged)",
        "agreement with leave-one-out consensus",
        "raters",
    )
    _legend_outside(ax)
    return fig


def agreement_histogram(quality: pl.DataFrame) -> bytes:
    """PNG of :func:`agreement_histogram_figure`."""
    return _png(agreement_histogram_figure(quality))


def _fit_days(ax: Axes, days: list[dt.date]) -> None:
    """Date axis on whole days: ticks at most ~8 labels apart by a whole number of days, "%m-%d", limits half a day
    beyond the first and last day."""
    import matplotlib.dates as mdates

    if not days:
        return
    lo, hi = min(days), max(days)
    span = (hi - lo).days + 1
    ax.set_xlim(
        mdates.date2num(lo) - 0.5,  # type: ignore[no-untyped-call]
        mdates.date2num(hi) + 0.5,  # type: ignore[no-untyped-call]
    )
    ax.xaxis.set_major_locator(mdates.DayLocator(interval=max(1, math.ceil(span / 8))))  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d"))  # type: ignore[no-untyped-call]


def drift_chart_figure(rater_daily: pl.DataFrame, raters: list[str], max_raters: int = 12) -> Figure:
    """Daily agreement of the given (flagged) raters, one line each, over the pooled agreement of all raters
    (grey), on daily ticks fitted to the days with labels."""
    fig, ax = _figure()
    pooled = (
        rater_daily.group_by("batch_date")
        .agg(pl.col("n_agree").sum(), pl.col("n_scored").sum())
        .filter(pl.col("n_scored") > 0)
        .sort("batch_date")
        .with_columns((pl.col("n_agree") / pl.col("n_scored")).alias("agreement"))
    )
    ax.plot(
        pooled["batch_date"].to_list(),
        pooled["agreement"].to_list(),
        color="#888888",
        linewidth=2.5,
        marker="s",
        label="all raters (pooled)",
    )
    values = pooled["agreement"].to_list()
    for rater in raters[:max_raters]:
        series = rater_daily.filter((pl.col("rater_id") == rater) & pl.col("agreement").is_not_null()).sort(
            "batch_date"
        )
        ax.plot(series["batch_date"].to_list(), series["agreement"].to_list(), marker="o", label=rater)
        values += series["agreement"].to_list()
    _fit_days(ax, rater_daily["batch_date"].unique().to_list())
    low = min(values, default=0.0)
    ax.set_ylim(max(0.0, math.floor((low - 0.05) * 10) / 10), 1.02)
    shown = min(len(raters), max_raters)
    title = (
        f"Daily agreement of {shown} flagged rater{'s' if shown != 1 else ''}"
        + (f" (of {len(raters)})" if len(raters) > max_raters else "")
        if raters
        else "Daily agreement: no flagged raters"
    )
    _label(ax, title, "day", "agreement with consensus")
    _legend_outside(ax, ncol=1 if shown < 7 else 2)
    return fig


def drift_chart(rater_daily: pl.DataFrame, raters: list[str]) -> bytes:
    """PNG of :func:`drift_chart_figure`."""
    return _png(drift_chart_figure(rater_daily, raters))


def rater_day_heatmap_figure(rater_daily: pl.DataFrame, max_raters: int = 40) -> Figure:
    """Rater x day heat map of agreement (the busiest raters), grey where a rater labelled nothing."""
    busiest = (rater_daily.group_by("rater_id").agg(pl.col("n_labels").sum()).sort("n_labels", descending=True))[
        "rater_id"
    ].head(max_raters)
    sub = rater_daily.filter(pl.col("rater_id").is_in(busiest.implode()))
    days = sorted(sub["batch_date"].unique().to_list())
    raters = busiest.to_list()
    grid = np.full((len(raters), max(len(days), 1)), np.nan)
    r_idx = {r: i for i, r in enumerate(raters)}
    d_idx = {d: i for i, d in enumerate(days)}
    for r, d, a in sub.select("rater_id", "batch_date", "agreement").iter_rows():
        if a is not None:
            grid[r_idx[r], d_idx[d]] = a
    fig, ax = _figure(6.4, max(3.0, 0.2 * len(raters) + 1.2))
    ax.set_facecolor("#dddddd")
    im = ax.imshow(grid, aspect="auto", cmap="RdYlGn", vmin=0, vmax=1, interpolation="nearest")
    ax.set_yticks(range(len(raters)), raters, fontsize=7 if len(raters) > 20 else TICK_SIZE)
    step = max(1, math.ceil(len(days) / 12))
    ax.set_xticks(
        range(0, len(days), step),
        [d.strftime("%m-%d") if hasattr(d, "strftime") else str(d) for d in days[::step]],
        rotation=45,
        ha="right",
    )
    title = f"Agreement per rater and day (busiest {len(raters)} raters; grey: no labels)"
    _label(ax, title, "day", "rater")
    ax.tick_params(axis="y", labelsize=7 if len(raters) > 20 else TICK_SIZE)
    bar = fig.colorbar(im, ax=ax)
    bar.set_label("agreement", fontsize=LABEL_SIZE)
    bar.ax.tick_params(labelsize=TICK_SIZE)
    return fig


def rater_day_heatmap(rater_daily: pl.DataFrame, max_raters: int = 40) -> bytes:
    """PNG of :func:`rater_day_heatmap_figure`."""
    return _png(rater_day_heatmap_figure(rater_daily, max_raters))


def loss_curve_figure(history: list[tuple[int, float]], title: str = "training loss") -> Figure:
    """Training loss against optimizer step (one line), e.g. a trainer's logged loss history."""
    fig, ax = _figure()
    if history:
        steps, losses = zip(*history, strict=True)
        ax.plot(steps, losses, marker="." if len(history) < 50 else None, color="#4c78a8")
    else:
        ax.text(0.5, 0.5, "no loss logged", ha="center", va="center", transform=ax.transAxes)
    _label(ax, title, "step", "loss")
    return fig


def loss_curve(history: list[tuple[int, float]], title: str = "training loss") -> bytes:
    """PNG of :func:`loss_curve_figure`."""
    return _png(loss_curve_figure(history, title))


def reliability_figure(
    bins: pl.DataFrame, by: str = "judge_id", max_groups: int = 10, title: str = "Reliability diagram"
) -> Figure:
    """Reliability diagram from :func:`prefgate.calibration.reliability_bins`: observed rate against mean
    prediction per bin, one line per group (the ``max_groups`` largest), the diagonal = perfect calibration. The
    legend sits outside the axes, so it covers no bin."""
    fig, ax = _figure(6.8, 4.4)
    ax.plot([0, 1], [0, 1], linestyle="--", color="#888888", linewidth=1, label="perfect calibration")
    sizes = bins.group_by(by).agg(pl.col("n").sum()).sort(["n", by], descending=[True, False])
    for group, n in sizes.head(max_groups).iter_rows():
        sub = bins.filter(pl.col(by) == group).sort("mean_prediction")
        ax.plot(sub["mean_prediction"].to_list(), sub["observed"].to_list(), marker="o", label=f"{group} (n={n})")
    ax.set_xlim(-0.02, 1.02)  # a bin at 0 or 1 shows its whole marker
    ax.set_ylim(-0.02, 1.02)
    ax.set_aspect("equal")
    more = f" ({max_groups} largest of {sizes.height})" if sizes.height > max_groups else ""
    _label(ax, title + more, "predicted P(humans agree)", "observed agreement")
    _legend_outside(ax)
    return fig


def reliability_plot(
    bins: pl.DataFrame, by: str = "judge_id", max_groups: int = 10, title: str = "Reliability diagram"
) -> bytes:
    """PNG of :func:`reliability_figure`."""
    return _png(reliability_figure(bins, by, max_groups, title))
