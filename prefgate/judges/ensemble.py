"""Combine several judges on the same pairs, and measure how much they agree.

Input is a :func:`prefgate.judges.runner.judgments_frame` (one row per judge x pair x order).

* :func:`judge_labels` -- one label per (judge, pair) from its two orders, with the swap rule of MT-Bench (Zheng
  et al. 2023, "Judging LLM-as-a-Judge", sec. 3.4): both orders agree -> that choice; they disagree (a position
  effect) -> ``tie``; only one order succeeded -> that order's choice (``n_orders`` = 1); none -> no label.
* :func:`ensemble` -- one verdict per pair. ``"mean_probability"``: the mean ``probability_a`` over every ok
  judgment (both orders, all judges) that has one; ``a`` above ``0.5 + tie_margin``, ``b`` below
  ``0.5 - tie_margin``, else ``tie``; a pair without any probability falls back to the majority.
  ``"majority"``: the plurality of the judges' labels; a tie between the top labels is ``tie``.
* :func:`judge_agreement` -- judges as raters over :func:`judge_labels`: Krippendorff's alpha (nominal),
  Fleiss' kappa and percent agreement, and pairwise Cohen's kappa, via :mod:`prefgate.agreement`.
"""

from __future__ import annotations

from typing import Literal

import polars as pl

from prefgate.agreement import AgreementReport, agreement_report

EnsembleMethod = Literal["mean_probability", "majority"]
ENSEMBLE_METHODS: tuple[EnsembleMethod, ...] = ("mean_probability", "majority")
CHOICES = ("a", "b", "tie")

LABEL_SCHEMA: dict[str, pl.DataType] = {
    "judge_id": pl.String(),
    "pair_id": pl.String(),
    "choice": pl.String(),
    "n_orders": pl.UInt32(),
    "position_consistent": pl.Boolean(),
}
ENSEMBLE_SCHEMA: dict[str, pl.DataType] = {
    "pair_id": pl.String(),
    "choice": pl.String(),
    "probability_a": pl.Float64(),
    "method": pl.String(),
    "n_judges": pl.UInt32(),
    "n_judgments": pl.UInt32(),
    "agreement": pl.Float64(),
}


def judge_labels(frame: pl.DataFrame) -> pl.DataFrame:
    """One canonical label per (judge_id, pair_id) from its ok judgments (see the module docstring).

    Columns: ``judge_id``, ``pair_id``, ``choice`` (a/b/tie), ``n_orders`` (ok orders used, 1 or 2) and
    ``position_consistent`` (both orders agree; null with a single order).
    """
    ok = frame.filter((pl.col("status") == "ok") & pl.col("choice").is_not_null())
    if ok.is_empty():
        return pl.DataFrame(schema=LABEL_SCHEMA)
    grouped = ok.group_by("judge_id", "pair_id", maintain_order=True).agg(
        pl.col("choice").n_unique().alias("_distinct"),
        pl.col("choice").first().alias("_first"),
        pl.len().cast(pl.UInt32).alias("n_orders"),
    )
    return grouped.select(
        "judge_id",
        "pair_id",
        pl.when(pl.col("_distinct") == 1).then(pl.col("_first")).otherwise(pl.lit("tie")).alias("choice"),
        "n_orders",
        pl.when(pl.col("n_orders") >= 2).then(pl.col("_distinct") == 1).alias("position_consistent"),
    ).cast(pl.Schema(LABEL_SCHEMA))


def _majority(labels: pl.DataFrame) -> pl.DataFrame:
    """pair_id, choice (plurality, ``tie`` when the top count is shared), n_judges, agreement."""
    counts = labels.group_by("pair_id", "choice").agg(pl.len().alias("_n"))
    return (
        counts.group_by("pair_id")
        .agg(
            pl.col("choice").filter(pl.col("_n") == pl.col("_n").max()).alias("_top"),
            pl.col("_n").max().alias("_max"),
            pl.col("_n").sum().cast(pl.UInt32).alias("n_judges"),
        )
        .select(
            "pair_id",
            pl.when(pl.col("_top").list.len() == 1)
            .then(pl.col("_top").list.first())
            .otherwise(pl.lit("tie"))
            .alias("majority_choice"),
            "n_judges",
        )
    )


def ensemble(
    frame: pl.DataFrame, method: EnsembleMethod = "mean_probability", *, tie_margin: float = 0.0
) -> pl.DataFrame:
    """One verdict per pair from every judge in ``frame`` (see the module docstring).

    Columns: ``pair_id``, ``choice`` (a/b/tie, null when no judge succeeded), ``probability_a`` (mean, null
    without probabilities or under ``"majority"``), ``method`` (the rule actually used for the pair),
    ``n_judges`` (judges with a label), ``n_judgments`` (ok judgments), ``agreement`` (share of the judges'
    labels equal to ``choice``). Every pair of the frame appears, in first-seen order.
    """
    if method not in ENSEMBLE_METHODS:
        raise ValueError(f"unknown ensemble method {method!r}; expected one of {', '.join(ENSEMBLE_METHODS)}")
    if not 0.0 <= tie_margin < 0.5:
        raise ValueError("tie_margin must be in [0, 0.5)")
    if frame.is_empty():
        return pl.DataFrame(schema=ENSEMBLE_SCHEMA)
    pairs = frame.select("pair_id").unique(maintain_order=True)
    labels = judge_labels(frame)
    ok = frame.filter((pl.col("status") == "ok") & pl.col("choice").is_not_null())
    stats = ok.group_by("pair_id").agg(
        pl.len().cast(pl.UInt32).alias("n_judgments"),
        pl.col("probability_a").drop_nulls().mean().alias("_p"),
    )
    out = (
        pairs.join(stats, on="pair_id", how="left")
        .join(_majority(labels), on="pair_id", how="left")
        .with_columns(pl.col("n_judgments").fill_null(0), pl.col("n_judges").fill_null(0))
    )
    use_p = pl.col("_p").is_not_null() if method == "mean_probability" else pl.lit(False)
    by_p = (
        pl.when(pl.col("_p") > 0.5 + tie_margin)
        .then(pl.lit("a"))
        .when(pl.col("_p") < 0.5 - tie_margin)
        .then(pl.lit("b"))
        .otherwise(pl.lit("tie"))
    )
    out = out.with_columns(
        pl.when(use_p).then(by_p).otherwise(pl.col("majority_choice")).alias("choice"),
        pl.when(use_p).then(pl.col("_p")).otherwise(pl.lit(None, pl.Float64)).alias("probability_a"),
        pl.when(use_p)
        .then(pl.lit("mean_probability"))
        .when(pl.col("majority_choice").is_not_null())
        .then(pl.lit("majority"))
        .otherwise(pl.lit(None, pl.String))
        .alias("method"),
    )
    agree = (
        labels.join(out.select("pair_id", pl.col("choice").alias("_final")), on="pair_id")
        .group_by("pair_id")
        .agg((pl.col("choice") == pl.col("_final")).mean().alias("agreement"))
    )
    return out.join(agree, on="pair_id", how="left").select(list(ENSEMBLE_SCHEMA)).cast(pl.Schema(ENSEMBLE_SCHEMA))


def judge_agreement(frame: pl.DataFrame, *, n_boot: int = 0, seed: int | None = 0) -> AgreementReport:
    """Inter-judge agreement over :func:`judge_labels`, judges as raters (nominal a/b/tie).

    The report carries Krippendorff's alpha (with a bootstrap interval when ``n_boot > 0``), Fleiss' kappa,
    percent agreement and ``pairwise`` Cohen's kappa per judge pair; undefined coefficients are None with the
    reason. Raises ``ValueError`` when no judge produced a label.
    """
    labels = judge_labels(frame)
    if labels.is_empty():
        raise ValueError("no successful judgment to measure agreement on")
    return agreement_report(
        labels.select("pair_id", "judge_id", "choice"),
        categories=list(CHOICES),
        n_boot=n_boot,
        seed=seed,
        cohen_min_overlap=1,
        rater_col="judge_id",
    )
