"""Gold labels: a single reference label per pair (a benchmark's answer key), a first-class kind of human label.

A human-label source declared ``gold: true`` in sources.yaml holds reference verdicts, not a panel's votes. They
differ from panel labels in three ways:

* they stay out of inter-rater agreement and rater scoring (one label per item has no agreement to measure;
  counted in, a gold key would look like a perfectly consistent rater and inflate alpha);
* they score raters: a rater's ``gold_accuracy`` is measured on every gold pair, beside the policy's gold pairs;
* they are the pair's human verdict (``method = gold``, confidence 1), so judge calibration compares judges
  against the reference wherever one exists; panel labels on such a pair stay recorded in ``label_ids``.

Two gold labels that disagree on one pair are not a reference: the pair falls back to the panel's consensus (or,
with no panel label, gets verdict ``no_majority``) and :func:`gold_verdicts` reports it.
"""

from __future__ import annotations

from collections.abc import Collection

import polars as pl

VERDICT_SCHEMA = {"pair_id": pl.String, "choice": pl.String}


def split_gold(labels: pl.DataFrame, gold_sources: Collection[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(panel labels, gold labels) by the label's source."""
    is_gold = pl.col("source").is_in(list(gold_sources))
    return labels.filter(~is_gold), labels.filter(is_gold)


def gold_verdicts(gold: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(one reference verdict per pair, the pairs whose gold labels disagree with their choices)."""
    per_pair = gold.group_by("pair_id").agg(pl.col("choice").unique().sort().alias("choices"))
    agreed = per_pair.filter(pl.col("choices").list.len() == 1).select(
        "pair_id", pl.col("choices").list.first().alias("choice")
    )
    conflicting = per_pair.filter(pl.col("choices").list.len() > 1)
    return agreed.cast(VERDICT_SCHEMA).sort("pair_id"), conflicting.sort("pair_id")  # type: ignore[arg-type]


def apply_gold(consensus: pl.DataFrame, gold: pl.DataFrame) -> pl.DataFrame:
    """The consensus with every pair that has an agreed gold verdict replaced by a ``gold`` row.

    A gold row counts the gold labels (``n_*``, ``label_ids``, ``rater_ids``, ``sources``), has agreement and
    confidence 1 and one-hot probabilities; the panel's labels on that pair are appended to ``label_ids`` so
    lineage still shows them. Columns and order follow ``consensus``.
    """
    verdicts, conflicting = gold_verdicts(gold)
    # a pair whose only labels are disagreeing gold labels still gets a row (verdict no_majority), as every
    # labelled pair does
    orphan = conflicting.join(consensus.select("pair_id"), on="pair_id", how="anti").select("pair_id")
    if verdicts.is_empty() and orphan.is_empty():
        return consensus
    kept = gold.join(pl.concat([verdicts.select("pair_id"), orphan]), on="pair_id", how="semi")
    rows = kept.group_by("pair_id").agg(
        pl.len().cast(pl.Int64).alias("n_labels"),
        *[(pl.col("choice") == v).sum().cast(pl.Int64).alias(f"n_{v}") for v in ("a", "b", "tie")],
        pl.when(pl.col("choice").n_unique() == 1)
        .then(pl.col("choice").first())
        .otherwise(pl.lit("no_majority"))
        .alias("verdict"),
        pl.col("label_id").sort().alias("gold_label_ids"),
        pl.col("rater_id").unique().sort().alias("rater_ids"),
        pl.col("source").unique().sort().alias("sources"),
    )
    panel = consensus.select(
        "pair_id", pl.col("label_ids").alias("panel_label_ids"), "excluded_label_ids", "excluded_rater_ids"
    )
    empty = pl.lit([], dtype=pl.List(pl.String))
    rows = rows.join(panel, on="pair_id", how="left").with_columns(
        pl.concat_list("gold_label_ids", pl.col("panel_label_ids").fill_null(empty)).alias("label_ids"),
        pl.when(pl.col("verdict") == "no_majority")
        .then(pl.max_horizontal("n_a", "n_b", "n_tie") / pl.col("n_labels"))
        .otherwise(1.0)
        .alias("agreement"),
        pl.when(pl.col("verdict") == "no_majority").then(None).otherwise(1.0).cast(pl.Float64).alias("confidence"),
        *[
            pl.when(pl.col("verdict") == "no_majority")
            .then(None)
            .otherwise((pl.col("verdict") == v).cast(pl.Float64))
            .alias(f"p_{v}")
            for v in ("a", "b", "tie")
        ],
        pl.lit("gold").alias("method"),
        pl.col("excluded_label_ids").fill_null(empty),
        pl.col("excluded_rater_ids").fill_null(empty),
    )
    rest = consensus.join(rows.select("pair_id"), on="pair_id", how="anti")
    return pl.concat([rest, rows.select(consensus.columns).cast(consensus.schema)]).sort("pair_id")
