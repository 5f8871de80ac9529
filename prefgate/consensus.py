"""Aggregate several human labels on one pair into one verdict.

This first aggregator is plurality voting with counts; the rater-governance work adds Dawid-Skene and
Bradley-Terry behind the same long-format input (one row per label: pair_id, rater_id, choice).
"""

from __future__ import annotations

import polars as pl

VERDICTS = ("a", "b", "tie")


def majority_consensus(labels: pl.DataFrame) -> pl.DataFrame:
    """Per pair: label counts, the plurality verdict (``no_majority`` when the top count is shared), agreement.

    ``agreement`` is the share of labels that back the verdict (the top count over all labels). Columnar: one
    group-by, no Python loop over labels.
    """
    counts = labels.group_by("pair_id").agg(
        pl.len().cast(pl.Int64).alias("n_labels"),
        *[(pl.col("choice") == v).sum().cast(pl.Int64).alias(f"n_{v}") for v in VERDICTS],
        pl.col("label_id").sort().alias("label_ids"),
        pl.col("rater_id").unique().sort().alias("rater_ids"),
        pl.col("source").unique().sort().alias("sources"),
    )
    top = pl.max_horizontal("n_a", "n_b", "n_tie")
    n_top = sum((pl.col(f"n_{v}") == top).cast(pl.Int64) for v in VERDICTS)
    verdict = (
        pl.when(n_top > 1)
        .then(pl.lit("no_majority"))
        .when(pl.col("n_a") == top)
        .then(pl.lit("a"))
        .when(pl.col("n_b") == top)
        .then(pl.lit("b"))
        .otherwise(pl.lit("tie"))
    )
    return counts.select(
        "pair_id",
        "n_labels",
        "n_a",
        "n_b",
        "n_tie",
        verdict.alias("verdict"),
        (top / pl.col("n_labels")).alias("agreement"),
        "label_ids",
        "rater_ids",
        "sources",
    ).sort("pair_id")
