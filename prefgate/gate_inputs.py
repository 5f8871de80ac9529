"""Measure what the governance gates look at on a built preference set (:class:`prefgate.gates.GateInputs`)."""

from __future__ import annotations

import polars as pl

from prefgate.curation import contaminated
from prefgate.degenerate import degenerate_pairs
from prefgate.gates import GateInputs, pii_rows
from prefgate.merge import slice_long
from prefgate.policy import Policy
from prefgate.set_audits import coverage, length_bias
from prefgate.slices import pair_slices


def contributing_slices(
    preference_set: pl.DataFrame, judge_calibration: pl.DataFrame, response_pairs: pl.DataFrame, slices: list[str]
) -> pl.DataFrame:
    """The gate rows of every (judge, slice, value) that contributes at least one judge row to the set."""
    judge_rows = preference_set.filter(pl.col("label_origin") == "judge").select(
        "pair_id", pl.col("judge_ids").alias("judge_id")
    )
    if judge_rows.height == 0:
        return judge_calibration.head(0)
    used = judge_rows.explode("judge_id").join(
        slice_long(
            pair_slices(response_pairs.filter(pl.col("pair_id").is_in(judge_rows["pair_id"].implode()))), slices
        ),
        on="pair_id",
    )
    keys = used.select("judge_id", "slice", "slice_value").unique()
    found = judge_calibration.join(keys, on=["judge_id", "slice", "slice_value"], how="semi")
    missing = keys.join(judge_calibration, on=["judge_id", "slice", "slice_value"], how="anti")
    if missing.height:  # a contributing slice without a calibration row cannot pass
        filler = missing.with_columns(
            pl.lit(0).alias("n_pairs"),
            pl.lit(False).alias("passed"),
            pl.lit(["no calibration row for this slice"]).alias("reasons"),
        )
        found = pl.concat([found, filler], how="diagonal_relaxed")
    return found


def gate_inputs(
    preference_set: pl.DataFrame,
    judge_calibration: pl.DataFrame,
    contamination_matches: pl.DataFrame,
    response_pairs: pl.DataFrame,
    rater_alpha: float | None,
    policy: Policy,
    eval_prompts: pl.DataFrame | None = None,
) -> GateInputs:
    """Everything :func:`prefgate.gates.evaluate_gates` needs, measured on ``preference_set``."""
    hits = preference_set.join(
        contamination_matches.select(pl.col("train_id").alias("prompt_id"), "eval_id", "eval_source", "method"),
        on="prompt_id",
        how="inner",
    ).select("example_id", "eval_id", "eval_source", "method")
    if eval_prompts is not None:
        exact = contaminated(preference_set, eval_prompts).select(
            "example_id", pl.col("prompt_id").alias("eval_id"), "eval_source", pl.lit("exact").alias("method")
        )
        hits = pl.concat([hits, exact]).unique()
    lb = length_bias(preference_set) if preference_set.height else None
    share = None
    if lb is not None and lb.height:
        share = lb.filter(pl.col("dimension") == "all")["p_chosen_longer"].item() if "dimension" in lb.columns else None
    cov = (
        coverage(preference_set).select(
            pl.col("language").cast(pl.String),
            pl.col("category").cast(pl.String),
            pl.col("n").alias("rows"),
        )
        if preference_set.height
        else pl.DataFrame(schema={"language": pl.String, "category": pl.String, "rows": pl.Int64})
    )
    degenerate = (
        degenerate_pairs(
            preference_set,
            columns=("chosen", "rejected"),
            id_column="example_id",
            near_identical=policy.curation.degenerate_near_identical,
            near_threshold=policy.curation.degenerate_near_threshold,
        ).height
        if preference_set.height
        else 0
    )
    return GateInputs(
        judge_slices=contributing_slices(preference_set, judge_calibration, response_pairs, list(policy.merge.slices)),
        rater_alpha=rater_alpha,
        contaminated=hits["example_id"].n_unique(),
        contaminated_matches=hits,
        degenerate=degenerate,
        pii_rows=pii_rows(preference_set).height if preference_set.height else 0,
        chosen_longer_share=share,
        coverage=cov,
    )
