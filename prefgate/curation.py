"""Assemble the preference set from pairs and consensus under the governance policy.

The merge rule here is the foundation's: a pair enters when its human consensus is a strict a/b verdict with
enough labels and agreement. Splits are by prompt, so no prompt is in both train and eval.
"""

from __future__ import annotations

import polars as pl

from prefgate.ids import content_hash
from prefgate.policy import Policy

PREFERENCE_COLUMNS = [
    "example_id",
    "prompt",
    "chosen",
    "rejected",
    "pair_id",
    "prompt_id",
    "chosen_side",
    "split",
    "category",
    "language",
    "pair_source",
    "label_source",
    "n_labels",
    "agreement",
    "confidence",
    "weight",
    "consensus_method",
    "label_ids",
    "rater_ids",
    "excluded_rater_ids",
    "policy_hash",
]


def split_of(prompt_ids: pl.Series, eval_fraction: float, salt: str) -> pl.Series:
    """'eval' for a deterministic, salted eval_fraction of prompts, else 'train' (by prompt, not by pair)."""
    buckets = [int(content_hash("split", salt, p), 16) / 16**16 for p in prompt_ids.to_list()]
    return pl.Series("split", ["eval" if b < eval_fraction else "train" for b in buckets], dtype=pl.String)


def assemble_preference_set(pairs: pl.DataFrame, consensus: pl.DataFrame, policy: Policy) -> pl.DataFrame:
    """TRL's ``prompt``/``chosen``/``rejected`` plus provenance, for pairs whose consensus passes the policy.

    A pair enters when its verdict is a strict a/b with at least ``min_labels`` labels (after excluded raters),
    at least ``min_agreement`` of them behind the verdict, and a verdict posterior of at least
    ``min_confidence``; its ``weight`` is that posterior (the vote share under plain majority).
    """
    rule = policy.consensus
    defaults = {  # a plain majority_consensus frame carries none of the governance columns
        "confidence": pl.col("agreement"),
        "method": pl.lit("majority"),
        "excluded_rater_ids": pl.lit([], dtype=pl.List(pl.String)),
    }
    consensus = consensus.with_columns(v.alias(k) for k, v in defaults.items() if k not in consensus.columns)
    eligible = consensus.filter(
        pl.col("verdict").is_in(["a", "b"])
        & (pl.col("n_labels") >= rule.min_labels)
        & (pl.col("agreement") >= rule.min_agreement)
        & (pl.col("confidence") >= rule.min_confidence)
    )
    if policy.sources_allowed_in_training:
        allowed = policy.sources_allowed_in_training
        eligible = eligible.filter(pl.col("sources").list.eval(pl.element().is_in(allowed)).list.all())
    joined = eligible.join(pairs, on="pair_id", how="inner")
    a_wins = pl.col("verdict") == "a"
    out = joined.with_columns(
        pl.when(a_wins).then(pl.col("response_a")).otherwise(pl.col("response_b")).alias("chosen"),
        pl.when(a_wins).then(pl.col("response_b")).otherwise(pl.col("response_a")).alias("rejected"),
        pl.col("verdict").alias("chosen_side"),
        pl.col("source").alias("pair_source"),
        pl.col("sources").list.join(",").alias("label_source"),
        pl.col("confidence").alias("weight"),
        pl.col("method").alias("consensus_method"),
        pl.lit(policy.policy_hash).alias("policy_hash"),
    )
    out = out.with_columns(
        pl.Series(
            "example_id",
            [
                content_hash("example", p, s)
                for p, s in zip(out["pair_id"].to_list(), out["chosen_side"].to_list(), strict=True)
            ],
            dtype=pl.String,
        ),
        split_of(out["prompt_id"], policy.split.eval_fraction, policy.split.salt),
    )
    return out.select(PREFERENCE_COLUMNS).sort("example_id")


def contaminated(preference_set: pl.DataFrame, eval_prompts: pl.DataFrame) -> pl.DataFrame:
    """Preference rows whose prompt (by normalised-text id) is an eval prompt."""
    return preference_set.join(
        eval_prompts.select("prompt_id", pl.col("source").alias("eval_source")), on="prompt_id", how="inner"
    )
