"""Curate group: prompt audit (duplicates, contamination, language), the merged preference set (behind blocking
checks), its audits, the human review queue, and the gated export with its dataset card and lineage snapshot."""

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import polars as pl
import yaml

from assets._meta import headline, latest_metadata, output, table_entries
from pipelines.resources import PrefgateResource
from prefgate.card import dataset_card
from prefgate.curate_prompts import audit_prompts, curate_rows
from prefgate.curation import assemble_preference_set, confident_consensus
from prefgate.export import export_preference_set, frame_hash
from prefgate.home import shared_cache_dir
from prefgate.labelstudio import write_exports
from prefgate.lineage.openlineage import emit_version, target_from_env
from prefgate.lineage.retraction import load_retractions
from prefgate.lineage.store import build_manifest, provenance_rows, record_preference_set, update_gates
from prefgate.routing import review_queue as route_review
from prefgate.set_audits import audit_summary, coverage, length_bias, over_refusal, sycophancy
from prefgate.slices import pair_slices

GROUP = "curate"


@dg.multi_asset(
    outs={
        "prompt_audit": dg.AssetOut(
            group_name=GROUP,
            description="One row per prompt of the response pairs: its duplicate group (exact, MinHash and "
            "embedding near-duplicates), detected language, and whether it matches an eval prompt.",
        ),
        "contamination_matches": dg.AssetOut(
            group_name=GROUP,
            description="Every (training prompt, eval prompt) match: method (exact, n-gram, MinHash, embedding), "
            "overlap or similarity, and the eval source.",
        ),
    },
    pool="duckdb",
)
def prompt_audit(
    context: dg.AssetExecutionContext,
    prefgate: PrefgateResource,
    response_pairs: pl.DataFrame,
    eval_prompts: pl.DataFrame,
):  # type: ignore[no-untyped-def]
    """Group near-duplicate prompts (so they share a split), identify languages, find eval contamination."""
    policy = prefgate.policy()
    audit, matches = audit_prompts(
        response_pairs, eval_prompts, policy.curation, cache_dir=shared_cache_dir("embeddings")
    )
    groups = audit.filter(pl.col("group_id") != pl.col("prompt_id"))
    yield output(
        audit,
        "prompt_audit",
        metadata={
            "dagster/row_count": audit.height,
            "prompts_in_duplicate_groups": groups.height,
            "duplicate_methods": dg.MetadataValue.json(
                dict(groups.group_by("duplicate_method").len().sort("duplicate_method").iter_rows())
            ),
            "languages_detected": dg.MetadataValue.json(
                dict(audit.group_by("language_detected").len().sort("len", descending=True).head(15).iter_rows())
            ),
            "language_mismatches": int(
                audit.filter(
                    pl.col("language").is_not_null()
                    & (pl.col("language_detected") != "und")
                    & (pl.col("language") != pl.col("language_detected"))
                ).height
            ),
            "contaminated_prompts": int(audit["contaminated"].sum()),
        },
    )
    yield output(
        matches,
        "contamination_matches",
        metadata={
            "dagster/row_count": matches.height,
            "by_method": dg.MetadataValue.json(dict(matches.group_by("method").len().sort("method").iter_rows())),
            **table_entries(
                "matches",
                matches.select("train_id", "eval_source", "method", "score", "sample"),
                20,
                empty_reason=f"no training prompt matches any of the {eval_prompts.height} eval prompts",
            ),
        },
    )


@dg.multi_asset(
    outs={
        "preference_set": dg.AssetOut(
            group_name=GROUP,
            description="prompt/chosen/rejected (TRL's columns) from confident human consensus and calibrated judge "
            "verdicts in passing slices, with weights, splits by prompt group and per-row provenance.",
        ),
        "curation_dropped": dg.AssetOut(
            group_name=GROUP,
            description="Rows that qualified by label but were curated out, with the reason: degenerate, "
            "contaminated, PII, quota. candidates = preference_set + curation_dropped.",
        ),
    },
    ins={"human_labels": dg.AssetIn("resolved_human_labels")},
    pool="duckdb",
)
def preference_set(
    context: dg.AssetExecutionContext,
    prefgate: PrefgateResource,
    response_pairs: pl.DataFrame,
    human_consensus: pl.DataFrame,
    judge_verdicts: pl.DataFrame,
    judge_calibration: pl.DataFrame,
    prompt_audit: pl.DataFrame,
    contamination_matches: pl.DataFrame,
    human_labels: pl.DataFrame,
    judge_labels: pl.DataFrame,
):  # type: ignore[no-untyped-def]
    """Merge, curate and snapshot: every version's rows and upstream hashes go to the lineage store."""
    policy = prefgate.policy()
    pairs = pair_slices(response_pairs)
    gates = judge_calibration.select("judge_id", "slice", "slice_value", "passed")
    candidates = assemble_preference_set(
        pairs,
        human_consensus,
        policy,
        judge_verdicts=judge_verdicts,
        judge_gates=gates,
        prompt_groups=prompt_audit.select("prompt_id", "group_id"),
    )
    kept, dropped = curate_rows(candidates, contamination_matches, policy)
    if candidates.height != kept.height + dropped.height:
        raise RuntimeError(f"curation counts do not reconcile: {candidates.height} != {kept.height} + {dropped.height}")
    upstream = {
        "response_pairs": response_pairs.sort("pair_id"),
        "human_consensus": human_consensus.sort("pair_id"),
        "judge_verdicts": judge_verdicts.sort("pair_id", "judge_id"),
        "judge_calibration": judge_calibration.sort("judge_id", "slice", "slice_value"),
        "prompt_audit": prompt_audit.sort("prompt_id"),
        "contamination_matches": contamination_matches,
        "human_labels": human_labels.sort("label_id"),
        "judge_labels": judge_labels.sort("label_id"),
    }
    retractions = load_retractions(prefgate.paths, policy.retractions)
    manifest = build_manifest(
        upstream=upstream,
        policy_hash=policy.policy_hash,
        policy_version=policy.version,
        constitution_hashes=[h for hs in kept["constitution_hashes"].to_list() for h in hs],
        retractions=retractions.model_dump(mode="json"),
        extra={
            "run_id": context.run.run_id,
            "content_hash": frame_hash(kept),
            "excluded_raters": sorted(set(human_consensus["excluded_rater_ids"].explode().drop_nulls().to_list())),
        },
    )
    prov = provenance_rows(kept, human_labels, judge_labels, response_pairs)
    with duckdb.connect(str(prefgate.paths.warehouse)) as con:
        version = record_preference_set(
            con,
            kept,
            prov,
            manifest,
            run_id=context.run.run_id,
            retention=policy_retention(prefgate),
            response_pairs=response_pairs,
            human_labels=human_labels,
            judge_labels=judge_labels,
        )
    emit_version(
        "preference_set",
        "preference_set",
        version,
        manifest,
        context.run.run_id,
        list(upstream),
        {k: str(v) for k, v in kept.schema.items()},
        target=target_from_env(),
    )
    by = (
        kept.group_by("label_origin", "split")
        .len()
        .sort("label_origin", "split")
        .pivot(on="split", index="label_origin", values="len")
        .fill_null(0)
    )
    by_source = (
        kept.group_by("pair_source", "split")
        .len()
        .sort("pair_source", "split")
        .pivot(on="split", index="pair_source", values="len")
        .fill_null(0)
    )
    judge_rows = kept.filter(pl.col("label_origin") == "judge")
    yield output(
        kept,
        "preference_set",
        metadata={
            "dagster/row_count": kept.height,
            **headline(
                {
                    "rows": kept.height,
                    "train_rows": kept.filter(pl.col("split") == "train").height,
                    "eval_rows": kept.filter(pl.col("split") == "eval").height,
                    "judge_row_share": judge_rows.height / kept.height if kept.height else None,
                    "candidates": candidates.height,
                    "curated_out": dropped.height,
                    "mean_weight": kept["weight"].mean(),
                }
            ),
            "lineage_version": version,
            "counts_reconcile": True,
            "policy_version": policy.version,
            "policy_hash": policy.policy_hash,
            **table_entries("by_origin_and_split", by, empty_reason="the preference set is empty"),
            **table_entries("by_source_and_split", by_source, empty_reason="the preference set is empty"),
            **table_entries(
                "judge_rows_by_judge",
                judge_rows.group_by("label_source").len().sort("label_source"),
                empty_reason="no row comes from a judge verdict (none passed its slice gates, or all pairs have a "
                "confident human consensus)",
            ),
            "content_hash": frame_hash(kept),
            "manifest": dg.MetadataValue.json(manifest),
        },
    )
    yield output(
        dropped,
        "curation_dropped",
        metadata={
            "dagster/row_count": dropped.height,
            **table_entries(
                "by_reason",
                dropped.with_columns(pl.col("reason").str.split(":").list.first().alias("kind"))
                .group_by("kind")
                .len()
                .sort("len", descending=True),
                empty_reason=f"no candidate was curated out: all {candidates.height} candidates are in the set",
            ),
        },
    )


def policy_retention(prefgate: PrefgateResource) -> int:
    """Preference-set versions whose rows the lineage store keeps (PREFGATE_LINEAGE_RETENTION, default 30)."""
    return int(os.environ.get("PREFGATE_LINEAGE_RETENTION", "30"))


@dg.asset(group_name=GROUP, pool="duckdb")
def set_audit(prefgate: PrefgateResource, preference_set: pl.DataFrame) -> dg.Output[pl.DataFrame]:
    """Length bias (per category), sycophancy, over-refusal and coverage of the assembled set."""
    policy = prefgate.policy()
    lb = length_bias(preference_set, by="category")
    syc = sycophancy(preference_set)
    over = over_refusal(preference_set)
    cov = coverage(preference_set, policy.quotas.min_per_cell or None)
    summary = audit_summary(preference_set, policy.quotas.min_per_cell or None)
    table = pl.concat(
        [
            lb.select(
                pl.lit("length_bias").alias("audit"),
                pl.col("dimension").cast(pl.String),
                pl.col("group").cast(pl.String),
                pl.col("n").cast(pl.Int64),
                pl.col("p_chosen_longer").alias("value"),
            ),
            syc.select(
                pl.lit("sycophancy").alias("audit"),
                pl.lit("signal").alias("dimension"),
                pl.col(syc.columns[0]).cast(pl.String).alias("group"),
                pl.col("n_flagged").cast(pl.Int64).alias("n"),
                pl.col("excess").cast(pl.Float64).alias("value"),
            ),
        ],
        how="vertical_relaxed",
    )
    return output(
        table,
        metadata={
            "dagster/row_count": table.height,
            "summary": dg.MetadataValue.json(summary),
            **table_entries("length_bias", lb, 30, empty_reason="the preference set is empty"),
            **table_entries(
                "sycophancy",
                syc.drop("flagged_ids") if "flagged_ids" in syc.columns else syc,
                empty_reason="the preference set is empty",
            ),
            **table_entries(
                "over_refusal",
                over.drop([c for c in over.columns if c.endswith("ids")]) if over.height else over,
                empty_reason="the preference set is empty",
            ),
            **table_entries("coverage", cov, 40, empty_reason="the preference set is empty"),
        },
    )


@dg.asset(group_name=GROUP, pool="duckdb")
def review_queue(
    context: dg.AssetExecutionContext,
    prefgate: PrefgateResource,
    judge_verdicts: pl.DataFrame,
    judge_calibration: pl.DataFrame,
    human_consensus: pl.DataFrame,
    response_pairs: pl.DataFrame,
) -> dg.Output[pl.DataFrame]:
    """Pairs for humans, each with its reasons; written as Label Studio tasks, JSONL and CSV under exports/."""
    policy = prefgate.policy()
    confident = confident_consensus(human_consensus, policy)["pair_id"]
    pairs = pair_slices(response_pairs)
    candidates = judge_verdicts.filter(~pl.col("pair_id").is_in(confident.implode())).join(
        pairs.select("pair_id", "source"), on="pair_id", how="left"
    )
    failing = judge_calibration.filter(~pl.col("passed")).select(
        "judge_id", "slice", "slice_value", pl.col("reasons").alias("reason")
    )
    queue = route_review(candidates, failing, policy.routing)
    day = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    out = prefgate.paths.exports / "review" / day
    files = write_exports(queue, response_pairs, out, seed=int(day.replace("-", "")))
    reasons = queue.select(pl.col("reasons").list.eval(pl.element().str.split(":").list.first())).explode("reasons")
    return output(
        queue,
        metadata={
            "dagster/row_count": queue.height,
            "by_reason": dg.MetadataValue.json(dict(reasons.group_by("reasons").len().sort("reasons").iter_rows())),
            "label_studio_tasks": dg.MetadataValue.path(str(files["tasks"])),
            "label_studio_config": dg.MetadataValue.path(str(files["label_config"])),
            "exports": dg.MetadataValue.json({k: str(v) for k, v in files.items()}),
            **table_entries(
                "queue",
                queue.drop([c for c in queue.columns if queue[c].dtype == pl.List(pl.String) and c != "reasons"]),
                20,
                empty_reason=f"no pair to review: {candidates['pair_id'].n_unique()} pairs without a confident human "
                "consensus have judge verdicts, and none has a reason (policy.routing)",
            ),
            "how_labels_return": "Import tasks.json into Label Studio with label_config.xml; export the annotations "
            "as JSON and run `prefgate review land EXPORT.json --batch YYYY-MM-DD`: they land as human labels.",
        },
    )


@dg.asset(
    group_name=GROUP,
    automation_condition=dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed(),
)
def preference_set_export(
    context: dg.AssetExecutionContext, prefgate: PrefgateResource, preference_set: pl.DataFrame
) -> dg.MaterializeResult:
    """Parquet file, HuggingFace datasets folder, manifest and dataset card of the gated preference set."""
    policy = prefgate.policy()
    out = prefgate.paths.exports / "preference_set"
    upstream = latest_metadata(context.instance, "preference_set", "manifest") or {}
    version = latest_metadata(context.instance, "preference_set", "lineage_version")
    gates = latest_gate_results(context.instance)
    manifest = export_preference_set(
        preference_set,
        out,
        {
            "policy_version": policy.version,
            "policy_hash": policy.policy_hash,
            "run_id": context.run.run_id,
            "lineage_version": version,
            "lineage": upstream,
        },
    )
    if version:
        with duckdb.connect(str(prefgate.paths.warehouse)) as con:
            update_gates(con, str(version), {g["name"]: g for g in gates})
    licenses = yaml.safe_load(Path(prefgate.licenses_path).read_text(encoding="utf-8")) or {}
    card = dataset_card(preference_set, manifest, gates, licenses)
    (out / "README.md").write_text(card, encoding="utf-8")
    (out / "gates.json").write_text(json.dumps(gates, indent=2, default=str), encoding="utf-8")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(out)),
            "dataset_card": dg.MetadataValue.path(str(out / "README.md")),
            **headline(
                {
                    "export_rows": int(manifest["rows"]),
                    "gates_passed": sum(bool(g["passed"]) for g in gates),
                    "gates_total": len(gates),
                }
            ),
            "rows": manifest["rows"],
            "splits": dg.MetadataValue.json(manifest["splits"]),
            "content_hash": manifest["content_hash"],
            "lineage_version": str(version),
            **table_entries(
                "gates",
                pl.DataFrame(
                    [{"gate": g["name"], "passed": bool(g["passed"]), "message": str(g["message"])} for g in gates],
                    schema={"gate": pl.String, "passed": pl.Boolean, "message": pl.String},
                ),
                50,
                empty_reason="no check on preference_set has been evaluated yet",
            ),
        }
    )


def latest_gate_results(instance: dg.DagsterInstance) -> list[dict[str, Any]]:
    """The latest evaluation of every check on preference_set, as plain dicts for the card and the manifest."""
    from checks.preference_set import CHECKS

    out: list[dict[str, Any]] = []
    for check in CHECKS:
        for key in check.check_keys:
            record = instance.event_log_storage.get_latest_asset_check_execution_by_key([key]).get(key)
            evaluation = record.event.dagster_event.event_specific_data if record and record.event else None
            passed = getattr(evaluation, "passed", None)
            md = getattr(evaluation, "metadata", {}) or {}
            message = md.get("reason")
            out.append(
                {
                    "name": key.name,
                    "passed": bool(passed),
                    "message": getattr(message, "value", message) or ("passed" if passed else "failed"),
                }
            )
    return out
