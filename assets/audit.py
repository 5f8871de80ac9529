"""Audit group: the union quarantine table and the human consensus per pair."""

import dagster as dg
import polars as pl

from assets._meta import headline, output, table_entries
from pipelines.resources import PrefgateResource
from prefgate import schemas
from prefgate.gold import apply_gold, split_gold
from prefgate.governance import excluded_raters, govern_consensus
from prefgate.ids import content_hash
from prefgate.ingest.conflicts import resolve_conflicts
from prefgate.ingest.tables import QUARANTINE_COLUMNS
from prefgate.lineage.retraction import apply_retractions, load_retractions

GROUP = "audit"
QUARANTINE_TABLES = ("raw_prompts", "response_pairs", "eval_prompts", "human_labels", "judge_labels")


@dg.multi_asset(
    outs={
        "resolved_human_labels": dg.AssetOut(
            group_name=GROUP,
            description="Every human label batch with one label per (task, rater), a task being a pair as its "
            "source keyed it: where a rater labelled a task more than once, the policy (ingest.conflicting_labels) "
            "decides which label stands.",
        ),
        "quarantine_label_conflicts": dg.AssetOut(
            group_name=GROUP,
            description="Human labels that do not stand because their rater labelled the task again "
            "(conflicting_label / repeated_label), with the label that stands instead.",
        ),
    },
    pool="duckdb",
)
def resolved_human_labels(  # type: ignore[no-untyped-def]
    context: dg.AssetExecutionContext, prefgate: PrefgateResource, human_labels: pl.DataFrame
):
    """One label per rater and task, so a rater who changed their mind never stops the audit."""
    rule = prefgate.policy().ingest.conflicting_labels
    res = resolve_conflicts(human_labels, rule)
    if human_labels.height != res.kept.height + res.removed.height:
        raise RuntimeError(
            f"label conflict counts do not reconcile: {human_labels.height} != {res.kept.height} + {res.removed.height}"
        )
    rows = [
        {
            "quarantine_id": content_hash("label_conflict", r["label_id"]),
            "table": "human_labels",
            "batch_date": r["batch_date"],
            "source": r["source"],
            "source_file": r["source_file"],
            "line": r["source_line"],
            "field": "rater_id",
            "reason": f"{r['reason']}: {r['detail']}",
            "raw": f"label {r['label_id']}: rater {r['rater_id']}, pair key {r['pair_key']}, choice "
            f"{r['raw_choice']!r}",
        }
        for r in res.removed.iter_rows(named=True)
    ]
    conflicts = pl.DataFrame(rows, schema=QUARANTINE_COLUMNS, orient="row")
    counts = dict(res.removed.group_by("reason").len().iter_rows())
    yield output(
        schemas.validate(schemas.HumanLabels, res.kept),
        "resolved_human_labels",
        metadata={
            "dagster/row_count": res.kept.height,
            "labels_in": human_labels.height,
            "labels_standing": res.kept.height,
            "conflicting_labels": int(counts.get("conflicting_label", 0)),
            "repeated_labels": int(counts.get("repeated_label", 0)),
            "rule": rule,
            "counts_reconcile": human_labels.height == res.kept.height + res.removed.height,
        },
    )
    yield output(conflicts, "quarantine_label_conflicts", metadata={"dagster/row_count": conflicts.height})


@dg.asset(
    group_name=GROUP,
    ins={f"quarantine_{t}": dg.AssetIn() for t in (*QUARANTINE_TABLES, "label_conflicts")},
    pool="duckdb",
)
def quarantine(
    context: dg.AssetExecutionContext,
    quarantine_raw_prompts: pl.DataFrame,
    quarantine_response_pairs: pl.DataFrame,
    quarantine_eval_prompts: pl.DataFrame,
    quarantine_human_labels: pl.DataFrame,
    quarantine_judge_labels: pl.DataFrame,
    quarantine_label_conflicts: pl.DataFrame,
) -> dg.Output[pl.DataFrame]:
    """Every rejected landing row in one table: which table, file, line and field, and why."""
    parts = [
        quarantine_raw_prompts,
        quarantine_response_pairs,
        quarantine_eval_prompts,
        quarantine_human_labels,
        quarantine_judge_labels,
        quarantine_label_conflicts,
    ]
    df = pl.concat(parts, how="vertical_relaxed")
    df = schemas.validate(schemas.Quarantine, df.sort("table", "source_file", "line", "quarantine_id"))
    by_reason = (
        df.with_columns(pl.col("reason").str.replace(r"'[^']*'", "'…'").alias("reason"))
        .group_by("table", "field", "reason")
        .len()
        .sort("len", descending=True)
    )
    return output(
        df,
        metadata={
            "dagster/row_count": df.height,
            "by_table": dg.MetadataValue.json(dict(df.group_by("table").len().sort("table").iter_rows())),
            **table_entries("by_reason", by_reason, 30, empty_reason="no landing row was rejected"),
        },
    )


@dg.asset(group_name=GROUP, pool="duckdb", ins={"human_labels": dg.AssetIn("resolved_human_labels")})
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
    panel, gold = split_gold(kept, prefgate.gold_sources())
    df = apply_gold(govern_consensus(panel, excluded, policy), gold)  # a reference label is the pair's verdict
    df = schemas.validate(schemas.HumanConsensus, df)
    verdicts = dict(df.group_by("verdict").len().sort("verdict").iter_rows())
    return output(
        df,
        metadata={
            "dagster/row_count": df.height,
            **headline(
                {
                    "pairs": df.height,
                    "mean_confidence": df["confidence"].mean(),
                    "mean_agreement": df["agreement"].mean(),
                    "labels": human_labels.height,
                    "excluded_raters": excluded.height,
                    "retracted_labels": int(retracted["labels_removed"].sum()),
                    "excluded_labels": int(df["excluded_label_ids"].list.len().sum()),
                }
            ),
            "method": policy.consensus.method,
            "gold_pairs": int((df["method"] == "gold").sum()),
            **table_entries(
                "retracted_raters",
                retracted.filter(pl.col("kind") == "rater"),
                empty_reason="no rater is retracted (policy.retractions, retractions.yaml)",
            ),
            "verdicts": dg.MetadataValue.json(verdicts),
            "pairs_by_label_count": dg.MetadataValue.json(
                {str(k): v for k, v in df.group_by("n_labels").len().sort("n_labels").iter_rows()}
            ),
        },
    )
