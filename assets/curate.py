"""Curate group: the preference set (behind blocking checks) and its gated export."""

import dagster as dg
import polars as pl

from assets._meta import markdown_table
from pipelines.resources import PrefgateResource
from prefgate.curation import assemble_preference_set
from prefgate.export import export_preference_set, frame_hash

GROUP = "curate"


@dg.asset(group_name=GROUP, pool="duckdb")
def preference_set(
    context: dg.AssetExecutionContext,
    prefgate: PrefgateResource,
    response_pairs: pl.DataFrame,
    human_consensus: pl.DataFrame,
) -> dg.Output[pl.DataFrame]:
    """Prompt/chosen/rejected rows (TRL's columns) from confident human consensus, with per-row provenance."""
    policy = prefgate.policy()
    df = assemble_preference_set(response_pairs, human_consensus, policy)
    by = (
        df.group_by("pair_source", "split")
        .len()
        .sort("pair_source", "split")
        .pivot(on="split", index="pair_source", values="len")
        .fill_null(0)
    )
    return dg.Output(
        df,
        metadata={
            "dagster/row_count": df.height,
            "policy_version": policy.version,
            "policy_hash": policy.policy_hash,
            "by_source_and_split": markdown_table(by),
            "mean_weight": float(df["weight"].mean() or 0.0),
            "content_hash": frame_hash(df),
        },
    )


@dg.asset(
    group_name=GROUP,
    automation_condition=dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed(),
)
def preference_set_export(
    context: dg.AssetExecutionContext, prefgate: PrefgateResource, preference_set: pl.DataFrame
) -> dg.MaterializeResult:
    """Parquet file, HuggingFace datasets folder and manifest of the gated preference set (exports/)."""
    policy = prefgate.policy()
    out = prefgate.paths.exports / "preference_set"
    manifest = export_preference_set(
        preference_set,
        out,
        {
            "policy_version": policy.version,
            "policy_hash": policy.policy_hash,
            "run_id": context.run.run_id,
        },
    )
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(out)),
            "rows": manifest["rows"],
            "splits": dg.MetadataValue.json(manifest["splits"]),
            "content_hash": manifest["content_hash"],
        }
    )
