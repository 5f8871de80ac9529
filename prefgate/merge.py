"""The merge policy: human consensus where it is confident, calibrated judge labels only where the judge passed.

A pair enters the preference set from one of two origins:

* ``human`` -- its human consensus passes the consensus policy (strict verdict, enough labels, agreement and
  posterior); weight = the consensus posterior.
* ``judge`` -- no confident human verdict exists, the humans who did label it do not contradict the judge
  (no human labels, or a strict human majority for the same side), the judge passed the calibration gate on
  *every* slice the pair belongs to, its verdict survived the order swap, and its calibrated P(humans agree)
  reaches ``merge.min_calibrated_confidence``; weight = that calibrated probability x ``merge.judge_weight``.

When several judges qualify for a pair, the one with the highest calibrated probability speaks for it.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from prefgate.ids import content_hash

SLICE_ALL = "all"


def pair_verdicts(judge_labels: pl.DataFrame) -> pl.DataFrame:
    """One verdict per (pair, judge) from its ok labels: both orders of a live judge become one verdict.

    ``choice`` is the judge's verdict when every label on the pair says the same, else ``tie``;
    ``position_consistent`` is False when labels disagree (a swap flipped the verdict), True when several agree,
    and the recorded value (often null) for a single label. ``probability_a`` is the mean over labels that have
    one.
    """
    ok = judge_labels.filter((pl.col("status") == "ok") & pl.col("choice").is_not_null())
    cols = {"constitution_hash": pl.String, "position_consistent": pl.Boolean, "probability_a": pl.Float64}
    ok = ok.with_columns(pl.lit(None, dtype=t).alias(c) for c, t in cols.items() if c not in ok.columns)
    return (
        ok.group_by("pair_id", "judge_id")
        .agg(
            pl.col("choice").n_unique().alias("_kinds"),
            pl.col("choice").first().alias("_first"),
            pl.col("probability_a").mean().alias("probability_a"),
            pl.col("position_consistent").all().alias("_all_consistent"),
            pl.col("position_consistent").is_null().all().alias("_unchecked"),
            pl.len().alias("n_judge_labels"),
            pl.col("label_id").sort().alias("judge_label_ids"),
            pl.col("constitution_hash").drop_nulls().unique().sort().alias("constitution_hashes"),
        )
        .with_columns(
            pl.when(pl.col("_kinds") == 1).then(pl.col("_first")).otherwise(pl.lit("tie")).alias("choice"),
            pl.when(pl.col("_kinds") > 1)
            .then(pl.lit(False))
            .when(pl.col("n_judge_labels") > 1)
            .then(pl.lit(True))
            .when(pl.col("_unchecked"))
            .then(pl.lit(None, dtype=pl.Boolean))
            .otherwise(pl.col("_all_consistent"))
            .alias("position_consistent"),
        )
        .drop("_kinds", "_first", "_all_consistent", "_unchecked")
        .sort("pair_id", "judge_id")
    )


def slice_long(pairs: pl.DataFrame, slices: Sequence[str]) -> pl.DataFrame:
    """(pair_id, slice, slice_value) for every slice column, nulls as 'unknown', plus the ('all', 'all') row."""
    parts = [pairs.select("pair_id", pl.lit(SLICE_ALL).alias("slice"), pl.lit(SLICE_ALL).alias("slice_value"))]
    parts += [
        pairs.select(
            "pair_id",
            pl.lit(s).alias("slice"),
            pl.col(s).cast(pl.String).fill_null("unknown").alias("slice_value"),
        )
        for s in slices
        if s in pairs.columns
    ]
    return pl.concat(parts)


def passing_pairs(
    verdicts: pl.DataFrame, pairs: pl.DataFrame, gates: pl.DataFrame, slices: Sequence[str]
) -> pl.DataFrame:
    """(pair_id, judge_id) whose judge passed the gate on every slice the pair belongs to.

    ``gates`` holds one row per (judge_id, slice, slice_value) with a boolean ``passed``; a slice the gate table
    does not list (no human overlap there) does not pass.
    """
    memberships = slice_long(pairs, slices)
    need = memberships.group_by("pair_id").len("n_slices")
    cand = verdicts.select("pair_id", "judge_id").join(memberships, on="pair_id")
    ok = cand.join(
        gates.filter(pl.col("passed")).select("judge_id", "slice", "slice_value"),
        on=["judge_id", "slice", "slice_value"],
        how="semi",
    )
    got = ok.group_by("pair_id", "judge_id").len("n_ok")
    return got.join(need, on="pair_id").filter(pl.col("n_ok") == pl.col("n_slices")).select("pair_id", "judge_id")


def judge_rows(
    pairs: pl.DataFrame,
    consensus: pl.DataFrame,
    verdicts: pl.DataFrame,
    gates: pl.DataFrame,
    *,
    slices: Sequence[str],
    min_calibrated: float,
    judge_weight: float,
    human_pair_ids: pl.Series,
    allowed_judges: Sequence[str] = (),
) -> pl.DataFrame:
    """Judge-labelled rows for pairs without a confident human verdict (see the module docstring).

    ``verdicts`` is :func:`pair_verdicts` plus a ``calibrated`` column (P(humans agree with this verdict)).
    """
    v = verdicts.filter(
        pl.col("choice").is_in(["a", "b"])
        & (pl.col("position_consistent").fill_null(True))
        & (pl.col("calibrated") >= min_calibrated)
        & ~pl.col("pair_id").is_in(human_pair_ids.implode())
    )
    if allowed_judges:
        v = v.filter(pl.any_horizontal(pl.col("judge_id").str.starts_with(j) for j in allowed_judges))
    v = v.join(passing_pairs(v, pairs, gates, slices), on=["pair_id", "judge_id"], how="semi")
    humans = consensus.select("pair_id", pl.col("verdict").alias("human_verdict"), pl.col("n_labels").alias("human_n"))
    v = v.join(humans, on="pair_id", how="left").filter(
        pl.col("human_verdict").is_null()
        | (pl.col("human_n").fill_null(0) == 0)
        | (pl.col("human_verdict") == pl.col("choice"))
        | (pl.col("human_verdict") == "excluded")
    )
    best = v.sort(["pair_id", "calibrated", "judge_id"], descending=[False, True, False]).unique(
        "pair_id", keep="first", maintain_order=True
    )
    consensus_cols = consensus.select("pair_id", "label_ids", "rater_ids", "excluded_rater_ids", "n_labels")
    joined = best.join(pairs, on="pair_id", how="inner").join(consensus_cols, on="pair_id", how="left")
    a_wins = pl.col("choice") == "a"
    empty = pl.lit([], dtype=pl.List(pl.String))
    return joined.with_columns(
        pl.when(a_wins).then(pl.col("response_a")).otherwise(pl.col("response_b")).alias("chosen"),
        pl.when(a_wins).then(pl.col("response_b")).otherwise(pl.col("response_a")).alias("rejected"),
        pl.col("choice").alias("chosen_side"),
        pl.col("source").alias("pair_source"),
        pl.lit("judge").alias("label_origin"),
        pl.col("judge_id").alias("label_source"),
        pl.col("n_labels").fill_null(0).cast(pl.Int64),
        pl.lit(1.0).alias("agreement"),
        pl.col("calibrated").alias("confidence"),
        (pl.col("calibrated") * judge_weight).alias("weight"),
        pl.lit("calibrated_judge").alias("consensus_method"),
        pl.col("label_ids").fill_null(empty),
        pl.col("rater_ids").fill_null(empty),
        pl.col("excluded_rater_ids").fill_null(empty),
        pl.concat_list(pl.col("judge_id")).alias("judge_ids"),
    )


def example_ids(df: pl.DataFrame) -> pl.Series:
    """Stable row id: the pair and the side chosen (a flipped verdict is a different example)."""
    return pl.Series(
        "example_id",
        [
            content_hash("example", p, s)
            for p, s in zip(df["pair_id"].to_list(), df["chosen_side"].to_list(), strict=True)
        ],
        dtype=pl.String,
    )
