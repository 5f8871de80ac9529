"""Small PNG charts for asset metadata (matplotlib, headless). Each returns PNG bytes; callers embed them."""

from __future__ import annotations

import io

import numpy as np
import polars as pl


def _png(fig: object) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
    return buf.getvalue()


def _figure(width: float = 6.0, height: float = 3.2) -> tuple[object, object]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def agreement_histogram(quality: pl.DataFrame) -> bytes:
    """Distribution of per-rater agreement with the leave-one-out consensus, flagged raters stacked in red."""
    fig, ax = _figure()
    scored = quality.filter(pl.col("agreement").is_not_null())
    flagged = pl.any_horizontal("spammer", "biased", "too_fast", "drifting")
    bins = np.linspace(0, 1, 21)
    ok = scored.filter(~flagged)["agreement"].to_numpy()
    bad = scored.filter(flagged)["agreement"].to_numpy()
    ax.hist([ok, bad], bins=bins, stacked=True, color=["#4c78a8", "#e45756"], label=["not flagged", "flagged"])  # type: ignore[attr-defined]
    ax.set_xlabel("agreement with leave-one-out consensus")  # type: ignore[attr-defined]
    ax.set_ylabel("raters")  # type: ignore[attr-defined]
    ax.legend()  # type: ignore[attr-defined]
    return _png(fig)


def drift_chart(rater_daily: pl.DataFrame, raters: list[str]) -> bytes:
    """Daily agreement of the given (flagged) raters, one line each."""
    fig, ax = _figure()
    for rater in raters[:12]:
        series = rater_daily.filter((pl.col("rater_id") == rater) & pl.col("agreement").is_not_null()).sort(
            "batch_date"
        )
        ax.plot(series["batch_date"].to_list(), series["agreement"].to_list(), marker="o", label=rater)  # type: ignore[attr-defined]
    ax.set_ylim(0, 1)  # type: ignore[attr-defined]
    ax.set_ylabel("daily agreement")  # type: ignore[attr-defined]
    if raters:
        ax.legend(fontsize=7, ncol=2)  # type: ignore[attr-defined]
    else:
        ax.set_title("no flagged raters")  # type: ignore[attr-defined]
    fig.autofmt_xdate()  # type: ignore[attr-defined]
    return _png(fig)


def rater_day_heatmap(rater_daily: pl.DataFrame, max_raters: int = 40) -> bytes:
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
    fig, ax = _figure(6.0, max(2.5, 0.18 * len(raters) + 1))
    im = ax.imshow(grid, aspect="auto", cmap="RdYlGn", vmin=0, vmax=1)  # type: ignore[attr-defined]
    ax.set_yticks(range(len(raters)), raters, fontsize=6)  # type: ignore[attr-defined]
    ax.set_xticks(range(len(days)), [str(d) for d in days], rotation=45, fontsize=7)  # type: ignore[attr-defined]
    fig.colorbar(im, ax=ax, label="agreement")  # type: ignore[attr-defined]
    return _png(fig)


def loss_curve(history: list[tuple[int, float]], title: str = "training loss") -> bytes:
    """Training loss against optimizer step (one line), e.g. a trainer's logged loss history."""
    fig, ax = _figure()
    if history:
        steps, losses = zip(*history, strict=True)
        ax.plot(steps, losses, marker="." if len(history) < 50 else None, color="#4c78a8")  # type: ignore[attr-defined]
    else:
        ax.text(0.5, 0.5, "no loss logged", ha="center", va="center", transform=ax.transAxes)  # type: ignore[attr-defined]
    ax.set_xlabel("step")  # type: ignore[attr-defined]
    ax.set_ylabel("loss")  # type: ignore[attr-defined]
    ax.set_title(title)  # type: ignore[attr-defined]
    return _png(fig)


def reliability_plot(bins: pl.DataFrame, by: str = "judge_id", max_groups: int = 10) -> bytes:
    """Reliability diagram from :func:`prefgate.calibration.reliability_bins`: observed rate against mean
    prediction per bin, one line per group (the ``max_groups`` largest), the diagonal = perfect calibration."""
    fig, ax = _figure(5.0, 4.2)
    ax.plot([0, 1], [0, 1], linestyle="--", color="#888888", linewidth=1, label="perfect")  # type: ignore[attr-defined]
    sizes = bins.group_by(by).agg(pl.col("n").sum()).sort(["n", by], descending=[True, False])
    for group in sizes[by].head(max_groups).to_list():
        sub = bins.filter(pl.col(by) == group).sort("mean_prediction")
        ax.plot(sub["mean_prediction"].to_list(), sub["observed"].to_list(), marker="o", label=str(group)[:40])  # type: ignore[attr-defined]
    ax.set_xlim(0, 1)  # type: ignore[attr-defined]
    ax.set_ylim(0, 1)  # type: ignore[attr-defined]
    ax.set_xlabel("predicted P(humans agree)")  # type: ignore[attr-defined]
    ax.set_ylabel("observed agreement")  # type: ignore[attr-defined]
    ax.legend(fontsize=7)  # type: ignore[attr-defined]
    return _png(fig)
