"""Labels group: human and judge labels, partitioned by batch date, normalised to the canonical pair."""

import datetime as dt
from typing import Literal

import dagster as dg
import polars as pl
from pydantic import Field

from assets._meta import ingest_metadata, output, table_entries
from assets.partitions import batch_dates
from pipelines.resources import SCHEMA, PrefgateResource
from prefgate import schemas
from prefgate.ingest.landing import land
from prefgate.ingest.tables import build_labels, quarantine_frame

GROUP = "labels"
PARTITIONED = {"partition_expr": "batch_date"}


def _ingest_batch(
    context: dg.AssetExecutionContext,
    prefgate: PrefgateResource,
    pair_keys: pl.DataFrame,
    kind: Literal["human_labels", "judge_labels"],
) -> tuple[dg.Output[pl.DataFrame], dg.Output[pl.DataFrame]]:
    """Map one batch folder; labels and files already ingested in other batches count as duplicates."""
    batch = context.partition_key
    day = dt.date.fromisoformat(batch)
    others = [day.isoformat()]
    existing = prefgate.query(
        f"SELECT label_id, batch_date, source_file, source_line FROM {SCHEMA}.{kind} WHERE batch_date <> ?", others
    )
    files = prefgate.query(
        f"SELECT DISTINCT file_sha256, source_file FROM {SCHEMA}.{kind} WHERE batch_date <> ?", others
    )
    seen = {} if files is None else dict(zip(files["file_sha256"], files["source_file"], strict=True))
    mine = prefgate.query(
        f"SELECT DISTINCT source_file, file_sha256 FROM {SCHEMA}.{kind} "
        "WHERE batch_date = ? AND source_file IS NOT NULL",
        [day.isoformat()],
    )
    known = {} if mine is None else dict(zip(mine["source_file"], mine["file_sha256"], strict=True))
    landed = land(
        prefgate.paths.landing, prefgate.sources(), kind, batch=batch, seen_file_hashes=seen, known_files=known
    )
    built = build_labels(landed.files, kind, pair_keys, day, existing)
    table = schemas.validate(schemas.HumanLabels, built.table) if kind == "human_labels" else built.table
    quarantine = quarantine_frame(kind, built.rejected, day)
    meta = ingest_metadata(built, landed, quarantine, prefgate.paths.landing)
    who = "rater_id" if kind == "human_labels" else "judge_id"
    meta[f"distinct_{who}s"] = table[who].n_unique()
    meta["choice_counts"] = dg.MetadataValue.json(
        {r["choice"]: r["len"] for r in table.group_by("choice").len().sort("choice").iter_rows(named=True)}
    )
    return (
        output(table, kind, metadata=meta),
        output(quarantine, f"quarantine_{kind}", metadata={"dagster/row_count": quarantine.height}),
    )


def _outs(kind: str, description: str) -> dict[str, dg.AssetOut]:
    return {
        kind: dg.AssetOut(group_name=GROUP, description=description, metadata=PARTITIONED),
        f"quarantine_{kind}": dg.AssetOut(
            group_name=GROUP,
            metadata=PARTITIONED,
            description=f"Rejected rows of {kind} batches, with file, line, field and reason.",
        ),
    }


@dg.multi_asset(
    outs=_outs("human_labels", "Human pairwise labels per batch: a/b/tie on the canonical pair, rater, order shown."),
    ins={"pair_keys": dg.AssetIn()},
    partitions_def=batch_dates,
    pool="duckdb",
)
def human_labels(  # type: ignore[no-untyped-def]
    context: dg.AssetExecutionContext, prefgate: PrefgateResource, pair_keys: pl.DataFrame
):
    """Ingest the human label files of one batch folder (landing/human_labels/<date>/)."""
    yield from _ingest_batch(context, prefgate, pair_keys, "human_labels")


class JudgeRunConfig(dg.Config):
    """Which live judges run on the batch (names from config/judges.yaml); recorded verdicts always ingest."""

    judges: list[str] | None = Field(
        default=None, description="Judge names to run; null runs the judges file's default list, [] runs none."
    )
    judges_file: str | None = Field(default=None, description="Judges file; default config/judges.yaml.")
    constitution_file: str | None = Field(default=None, description="Constitution; default config/constitution.yaml.")


def _judge_live(
    context: dg.AssetExecutionContext,
    prefgate: PrefgateResource,
    config: JudgeRunConfig,
    pairs: pl.DataFrame,
    day: dt.date,
    like: pl.DataFrame,
    existing: pl.DataFrame | None,
) -> tuple[pl.DataFrame, dict[str, object]]:
    """Run the selected judges on the batch's pairs, both orders, through the durable cache."""
    from prefgate.judges.cache import JudgmentCache
    from prefgate.judges.constitution import load_constitution
    from prefgate.judges.labels import live_rows
    from prefgate.judges.registry import batch_sample, load_registry
    from prefgate.judges.runner import judge_pairs, judgments_frame

    registry = load_registry(config.judges_file)
    names = registry.select(config.judges)
    if not names or pairs.is_empty():
        return like.clear(), {"live_judges": dg.MetadataValue.json([])}
    constitution = load_constitution(config.constitution_file)
    policy = prefgate.policy().judges
    done_elsewhere = set() if existing is None else set(existing["label_id"].to_list())
    frames, ids = [], {}
    with JudgmentCache(prefgate.paths.judge_cache) as cache:
        for name in names:
            spec = registry.specs[name]
            todo = pairs.sort("pair_id")
            if spec.limit_per_batch:  # a CPU sample of the batch (see batch_sample)
                todo = batch_sample(todo, spec.limit_per_batch)
            judge = registry.build(
                name,
                constitution,
                concurrency=policy.concurrency,
                timeout_s=policy.timeout_s,
                max_attempts=policy.max_attempts,
            )
            ids[judge.judge_id] = name
            step = max(1, todo.height // 5)

            def progress(done: int, total: int, _name: str = name, _step: int = step) -> None:
                if done == total or done % (2 * _step) < 2:
                    context.log.info(f"judge {_name}: {done}/{total} judgments")

            judgments = judge_pairs(
                todo,
                [judge],
                cache,
                pii_policy=policy.pii,
                max_retries=policy.max_retries,
                batch_size=policy.batch_size,
                progress=progress,
            )
            frames.append(judgments_frame(judgments))
    frame = pl.concat(frames, how="vertical_relaxed")
    rows = live_rows(frame, ids, day, like)
    rows = rows.filter(~pl.col("label_id").is_in(list(done_elsewhere)))  # judged in an earlier batch already
    return rows, _live_metadata(frame, ids)


def _live_metadata(frame: pl.DataFrame, names: dict[str, str]) -> dict[str, object]:
    from prefgate.judges.runner import consistency_summary

    per_judge = (
        frame.group_by("judge_id")
        .agg(
            pl.len().alias("judgments"),
            (pl.col("status") == "failed").mean().alias("failure_rate"),
            pl.col("tokens").sum().alias("tokens"),
            pl.col("cost_usd").sum().alias("cost_usd"),
            pl.col("latency_s").quantile(0.5).alias("latency_p50_s"),
            pl.col("latency_s").quantile(0.95).alias("latency_p95_s"),
        )
        .join(consistency_summary(frame), on="judge_id", how="left")
        .with_columns(pl.col("judge_id").replace_strict(names, default=None).alias("name"))
        .sort("name")
    )
    failures = frame.filter(pl.col("status") == "failed").group_by("judge_id", "parse_status").len()
    ensemble_meta: dict[str, object] = {}
    if frame["judge_id"].n_unique() > 1:  # several judges on the same pairs: ensemble verdict and agreement
        from prefgate.judges.ensemble import ensemble, judge_agreement

        verdicts = ensemble(frame)
        ensemble_meta["ensemble_verdicts"] = dg.MetadataValue.json(
            {str(k): v for k, v in verdicts.group_by("choice").len().sort("choice").iter_rows()}
        )
        try:
            report = judge_agreement(frame)
            ensemble_meta["inter_judge_alpha"] = report.alpha if report.alpha is not None else report.alpha_reason
            ensemble_meta["inter_judge_percent_agreement"] = report.percent_agreement
        except ValueError as exc:
            ensemble_meta["inter_judge_alpha"] = str(exc)
    return {
        **ensemble_meta,
        "live_judges": dg.MetadataValue.json(sorted(names.values())),
        "live_judgments": frame.height,
        "live_failed": int((frame["status"] == "failed").sum()),
        **table_entries("per_judge", per_judge, empty_reason="no live judgment"),
        **table_entries(
            "failures_by_reason", failures, empty_reason=f"none of the {frame.height} live judgments failed"
        ),
    }


@dg.multi_asset(
    outs=_outs(
        "judge_labels",
        "Judge verdicts per batch: recorded ones from landing files and live judgments "
        "(both orders, cached), a/b/tie, judge id, rationale, order shown.",
    ),
    ins={"pair_keys": dg.AssetIn(), "response_pairs": dg.AssetIn(), "human_labels": dg.AssetIn()},
    partitions_def=batch_dates,
    pool="duckdb",
)
def judge_labels(  # type: ignore[no-untyped-def]
    context: dg.AssetExecutionContext,
    prefgate: PrefgateResource,
    config: JudgeRunConfig,
    pair_keys: pl.DataFrame,
    response_pairs: pl.DataFrame,
    human_labels: pl.DataFrame,
):
    """Ingest the batch's recorded judge verdicts, then run the selected live judges on the pairs its humans
    labelled (so every live verdict has a human consensus to be calibrated against)."""
    from prefgate.judges.labels import recorded_with_live_columns

    recorded_out, quarantine_out = _ingest_batch(context, prefgate, pair_keys, "judge_labels")
    recorded = recorded_with_live_columns(recorded_out.value)
    day = dt.date.fromisoformat(context.partition_key)
    pairs = response_pairs.join(human_labels.select("pair_id").unique(), on="pair_id", how="semi").select(
        "pair_id", "prompt", "response_a", "response_b", "category"
    )
    existing = prefgate.query(
        f"SELECT label_id FROM {SCHEMA}.judge_labels WHERE batch_date <> ? AND origin = 'live'", [day.isoformat()]
    )
    live, live_meta = _judge_live(context, prefgate, config, pairs, day, recorded, existing)
    table = schemas.validate(schemas.JudgeLabels, pl.concat([recorded, live], how="vertical_relaxed"))
    meta = {**recorded_out.metadata, **live_meta, "dagster/row_count": table.height}
    meta["recorded_rows"] = recorded.height
    yield output(table, "judge_labels", metadata=meta)
    yield quarantine_out
