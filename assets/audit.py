"""Audit group: the union quarantine table and the human consensus per pair."""

import dagster as dg
import polars as pl

from assets._meta import markdown_table
from pipelines.resources import PrefgateResource
from prefgate import schemas
from prefgate.governance import excluded_raters, govern_consensus
from prefgate.lineage.retraction import apply_retractions, load_retractions

GROUP = "audit"
QUARANTINE_TABLES = ("raw_prompts", "response_pairs", "eval_prompts", "human_labels", "judge_labels")


@dg.asset(
    group_name=GROUP,
    ins={f"quarantine_{t}": dg.AssetIn() for t in QUARANTINE_TABLES},
    pool="duckdb",
)
def quarantine(
    context: dg.AssetExecutionContext,
    quarantine_raw_prompts: pl.DataFrame,
    quarantine_response_pairs: pl.DataFrame,
    quarantine_eval_prompts: pl.DataFrame,
    quarantine_human_labels: pl.DataFrame,
    quarantine_judge_labels: pl.DataFrame,
) -> dg.Output[pl.DataFrame]:
    """Every rejected landing row in one table: which table, file, line and field, and why."""
    parts = [
        quarantine_raw_prompts,
        quarantine_response_pairs,
        quarantine_eval_prompts,
        quarantine_human_labels,
        quarantine_judge_labels,
    ]
    df = pl.concat(parts, how="vertical_relaxed")
    df = schemas.validate(schemas.Quarantine, df.sort("table", "source_file", "line", "quarantine_id"))
    by_reason = (
        df.with_columns(pl.col("reason").str.replace(r"'[^']*'", "'…'").alias("reason"))
        .group_by("table", "field", "reason")
        .len()
        .sort("len", descending=True)
    )
    return dg.Output(
        df,
        metadata={
            "dagster/row_count": df.height,
            "by_table": dg.MetadataValue.json(dict(df.group_by("table").len().sort("table").iter_rows())),
            "by_reason": markdown_table(by_reason, 30),
        },
    )


@dg.asset(group_name=GROUP, pool="duckdb")
def human_consensus(
    context: dg.AssetExecutionContext,
    prefgate: PrefgateResource,
    human_labels: pl.DataFrame,
    rater_quality: pl.DataFrame,
) -> dg.Output[pl.DataFrame]:
    """Verdict per pair (majority or Dawid-Skene, by policy) without the labels of excluded raters."""
    policy = prefgate.policy()
    retractions = load_retractions(prefgate.paths, policy.retractions)
    kept, _, retracted = apply_retractions(human_labels, pl.DataFrame(schema={"judge_id": pl.String}), retractions)
    excluded = excluded_raters(rater_quality, policy)
    df = govern_consensus(kept, excluded, policy)
    df = schemas.validate(schemas.HumanConsensus, df)
    verdicts = dict(df.group_by("verdict").len().sort("verdict").iter_rows())
    return dg.Output(
        df,
        metadata={
            "dagster/row_count": df.height,
            "method": policy.consensus.method,
            "labels": human_labels.height,
            "excluded_raters": excluded.height,
            "retracted_raters": markdown_table(retracted.filter(pl.col("kind") == "rater")),
            "retracted_labels": int(retracted["labels_removed"].sum()),
            "excluded_labels": int(df["excluded_label_ids"].list.len().sum()),
            "verdicts": dg.MetadataValue.json(verdicts),
            "mean_agreement": float(df["agreement"].mean() or 0.0),
            "mean_confidence": float(df["confidence"].mean() or 0.0),
            "pairs_by_label_count": dg.MetadataValue.json(
                {str(k): v for k, v in df.group_by("n_labels").len().sort("n_labels").iter_rows()}
            ),
        },
    )
