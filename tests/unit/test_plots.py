"""prefgate.plots: legends never cover data, date axes tick on whole days fitted to the data, every chart is
titled and labelled."""

from __future__ import annotations

import datetime as dt

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import polars as pl
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from prefgate import plots

PNG = b"\x89PNG\r\n\x1a\n"


def _axes(fig: Figure) -> Axes:
    return fig.axes[0]


def _points_px(ax: Axes) -> np.ndarray:
    """Every plotted line vertex (incl. the diagonal's ends) in display pixels."""
    pts = [ax.transData.transform(np.column_stack(line.get_data())) for line in ax.get_lines()]
    return np.vstack(pts)


def _reliability_bins() -> pl.DataFrame:
    """Three judges whose bins fill the whole square, including the upper-left and lower-right corners where a
    legend inside the axes would sit."""
    rows = []
    for j, shift in (("judge-a", 0.0), ("judge-b", 0.15), ("judge-c", -0.15)):
        for k in range(10):
            x = (k + 0.5) / 10
            rows.append({"judge_id": j, "bin": k, "mean_prediction": x, "observed": min(1, max(0, x + shift)), "n": 20})
    rows.append({"judge_id": "judge-a", "bin": 10, "mean_prediction": 0.02, "observed": 0.98, "n": 5})
    rows.append({"judge_id": "judge-b", "bin": 11, "mean_prediction": 0.98, "observed": 0.02, "n": 5})
    return pl.DataFrame(rows)


def _rater_daily(days: list[dt.date], raters: tuple[str, ...] = ("r1", "r2", "r3")) -> pl.DataFrame:
    rows = []
    for i, r in enumerate(raters):
        for k, d in enumerate(days):
            agree = 10 - (k + i) % 4
            rows.append(
                {
                    "rater_id": r,
                    "batch_date": d,
                    "n_labels": 12,
                    "n_scored": 10,
                    "n_agree": agree,
                    "agreement": agree / 10,
                }
            )
    return pl.DataFrame(rows)


def test_reliability_legend_covers_no_data() -> None:
    fig = plots.reliability_figure(_reliability_bins(), title="reliability before calibration")
    ax = _axes(fig)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    legend = ax.get_legend()
    assert legend is not None
    box = legend.get_window_extent(renderer)
    pts = _points_px(ax)
    inside = (pts[:, 0] >= box.x0) & (pts[:, 0] <= box.x1) & (pts[:, 1] >= box.y0) & (pts[:, 1] <= box.y1)
    assert not inside.any(), "the legend covers plotted points"
    assert not box.overlaps(ax.get_window_extent(renderer)), "the legend sits on the axes"
    assert ax.get_title().startswith("reliability before calibration")
    assert ax.get_xlabel() and ax.get_ylabel()
    labels = [t.get_text() for t in legend.get_texts()]
    assert "perfect calibration" in labels and any(t.startswith("judge-a (n=") for t in labels)
    plt.close(fig)
    assert plots.reliability_plot(_reliability_bins())[:8] == PNG


@pytest.mark.parametrize("n_days", [3, 10, 45])
def test_drift_chart_ticks_whole_days_fitted_to_the_data(n_days: int) -> None:
    start = dt.date(2026, 11, 2)
    days = [start + dt.timedelta(days=k) for k in range(n_days)]
    fig = plots.drift_chart_figure(_rater_daily(days), ["r1", "r2"])
    ax = _axes(fig)
    fig.canvas.draw()
    lo, hi = ax.get_xlim()
    assert lo == pytest.approx(mdates.date2num(days[0]) - 0.5)
    assert hi == pytest.approx(mdates.date2num(days[-1]) + 0.5)
    ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
    assert 2 <= len(ticks) <= 10 or n_days < 2
    assert all(float(t).is_integer() for t in ticks), "ticks at midnight, one per whole day"
    gaps = np.diff(ticks)
    assert (gaps >= 1).all() and all(float(g).is_integer() for g in gaps), f"tick spacing {gaps} is not whole days"
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert labels and all(len(x) == 5 and x[2] == "-" for x in labels), labels  # %m-%d
    assert ax.get_title() and ax.get_xlabel() == "day" and ax.get_ylabel()
    legend = ax.get_legend()
    assert legend is not None
    assert not legend.get_window_extent(fig.canvas.get_renderer()).overlaps(  # type: ignore[attr-defined]
        ax.get_window_extent(fig.canvas.get_renderer())  # type: ignore[attr-defined]
    )
    plt.close(fig)


def test_drift_chart_without_flagged_raters_still_shows_the_pool() -> None:
    days = [dt.date(2026, 11, 2) + dt.timedelta(days=k) for k in range(3)]
    fig = plots.drift_chart_figure(_rater_daily(days), [])
    ax = _axes(fig)
    assert "no flagged raters" in ax.get_title()
    assert len(ax.get_lines()) == 1 and len(ax.get_lines()[0].get_xdata()) == 3  # type: ignore[arg-type]
    plt.close(fig)
    assert plots.drift_chart(_rater_daily(days), [])[:8] == PNG


def test_histogram_heatmap_and_loss_are_titled_and_labelled() -> None:
    quality = pl.DataFrame(
        {
            "agreement": [0.2, 0.5, 0.9, 0.95, None],
            "spammer": [True, False, False, False, False],
            "biased": [False] * 5,
            "too_fast": [False] * 5,
            "drifting": [False] * 5,
        }
    )
    days = [dt.date(2026, 11, 2) + dt.timedelta(days=k) for k in range(4)]
    figs = [
        plots.agreement_histogram_figure(quality),
        plots.rater_day_heatmap_figure(_rater_daily(days)),
        plots.loss_curve_figure([(1, 0.7), (2, 0.6)], "reward loss"),
    ]
    for fig in figs:
        ax = _axes(fig)
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
        assert all(t.get_fontsize() >= 7 for t in ax.get_xticklabels() + ax.get_yticklabels())
        plt.close(fig)
    heat = plots.rater_day_heatmap_figure(_rater_daily(days))
    assert [t.get_text() for t in _axes(heat).get_xticklabels()] == ["11-02", "11-03", "11-04", "11-05"]
    plt.close(heat)
