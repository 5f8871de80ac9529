"""Assemble the preference set from pairs, human consensus and calibrated judge verdicts under the policy.

Human rows: a pair enters when its human consensus is a strict a/b verdict with enough labels, agreement and
posterior. Judge rows: see :mod:`prefgate.merge`. Splits are by prompt group (a prompt and its near-duplicates),
so no prompt -- nor a near-copy of it -- is in both train and eval.
"""

from __future__ import annotations

import polars as pl

from prefgate.ids import content_hash
from prefgate.merge import example_ids, judge_rows
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
    "label_origin",
    "label_source",
    "n_labels",
    "agreement",
    "confidence",
    "weight",
    "consensus_method",
    "label_ids",
    "rater_ids",
    "excluded_rater_ids",
    "judge_ids",
    "judge_label_ids",
    "constitution_hashes",
    "policy_hash",
]


def split_of(prompt_ids: pl.Series, eval_fraction: float, salt: str) -> pl.Series:
    """'eval' for a deterministic, salted eval_fraction of prompts, else 'train' (by prompt, not by pair)."""
    buckets = [int(content_hash("split", salt, p), 16) / 16**16 for p in prompt_ids.to_list()]
    return pl.Series("split", ["eval" if b < eval_fraction else "train" for b in buckets], dtype=pl.String)


def with_governance_columns(consensus: pl.DataFrame) -> pl.DataFrame:
    """A plain majority_consensus frame carries none of the governance columns: fill them in."""
    defaults = {
        "confidence": pl.col("agreement"),
        "method": pl.lit("majority"),
        "excluded_rater_ids": pl.lit([], dtype=pl.List(pl.String)),
    }
    return consensus.with_columns(v.alias(k) for k, v in defaults.items() if k not in consensus.columns)


def confident_consensus(consensus: pl.DataFrame, policy: Policy) -> pl.DataFrame:
    """Pairs whose human consensus passes the consensus policy: a strict a/b verdict with at least ``min_labels``
    labels (after excluded raters), ``min_agreement`` of them behind it, and a posterior of ``min_confidence``."""
    rule = policy.consensus
    return with_governance_columns(consensus).filter(
        pl.col("verdict").is_in(["a", "b"])
        & (pl.col("n_labels") >= rule.min_labels)
        & (pl.col("agreement") >= rule.min_agreement)
        & (pl.col("confidence") >= rule.min_confidence)
    )


def assemble_preference_set(
    pairs: pl.DataFrame,
    consensus: pl.DataFrame,
    policy: Policy,
    *,
    judge_verdicts: pl.DataFrame | None = None,
    judge_gates: pl.DataFrame | None = None,
    prompt_groups: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """TRL's ``prompt``/``chosen``/``rejected`` plus provenance, for pairs whose consensus passes the policy.

    With ``judge_verdicts`` (:func:`prefgate.merge.pair_verdicts` plus ``calibrated``) and ``judge_gates``
    (judge x slice ``passed``), pairs without a confident human verdict may enter on a judge's label
    (:mod:`prefgate.merge`). ``prompt_groups`` (prompt_id, group_id) sends near-duplicate prompts to one split.

    A pair enters when its verdict is a strict a/b with at least ``min_labels`` labels (after excluded raters),
    at least ``min_agreement`` of them behind the verdict, and a verdict posterior of at least
    ``min_confidence``; its ``weight`` is that posterior (the vote share under plain majority).
    """
    consensus = with_governance_columns(consensus)
    eligible = confident_consensus(consensus, policy)
    if policy.sources_allowed_in_training:
        allowed = policy.sources_allowed_in_training
        eligible = eligible.filter(pl.col("sources").list.eval(pl.element().is_in(allowed)).list.all())
    joined = eligible.join(pairs, on="pair_id", how="inner")
    a_wins = pl.col("verdict") == "a"
    empty = pl.lit([], dtype=pl.List(pl.String))
    out = joined.with_columns(
        pl.when(a_wins).then(pl.col("response_a")).otherwise(pl.col("response_b")).alias("chosen"),
        pl.when(a_wins).then(pl.col("response_b")).otherwise(pl.col("response_a")).alias("rejected"),
        pl.col("verdict").alias("chosen_side"),
        pl.col("source").alias("pair_source"),
        pl.lit("human").alias("label_origin"),
        pl.col("sources").list.join(",").alias("label_source"),
        pl.col("confidence").alias("weight"),
        pl.col("method").alias("consensus_method"),
        empty.alias("judge_ids"),
        empty.alias("judge_label_ids"),
        empty.alias("constitution_hashes"),
    )
    parts = [out.select([c for c in PREFERENCE_COLUMNS if c not in ("example_id", "split", "policy_hash")])]
    if judge_verdicts is not None and judge_gates is not None and policy.merge.use_judge_labels:
        jr = judge_rows(
            pairs,
            consensus,
            judge_verdicts,
            judge_gates,
            slices=policy.merge.slices,
            min_calibrated=policy.merge.min_calibrated_confidence,
            judge_weight=policy.merge.judge_weight,
            human_pair_ids=out["pair_id"],
            allowed_judges=policy.merge.judges,
        )
        parts.append(jr.select(parts[0].columns))
    merged = pl.concat(parts, how="vertical_relaxed").with_columns(pl.lit(policy.policy_hash).alias("policy_hash"))
    group = merged["prompt_id"]
    if prompt_groups is not None and prompt_groups.height:
        group = (
            merged.select("prompt_id")
            .join(prompt_groups.select("prompt_id", "group_id"), on="prompt_id", how="left")
            .select(pl.coalesce("group_id", "prompt_id"))
            .to_series()
        )
    merged = merged.with_columns(example_ids(merged), split_of(group, policy.split.eval_fraction, policy.split.salt))
    return merged.select(PREFERENCE_COLUMNS).sort("example_id")


def contaminated(preference_set: pl.DataFrame, eval_prompts: pl.DataFrame) -> pl.DataFrame:
    """Preference rows whose prompt (by normalised-text id) is an eval prompt."""
    return preference_set.join(
        eval_prompts.select("prompt_id", pl.col("source").alias("eval_source")), on="prompt_id", how="inner"
    )
