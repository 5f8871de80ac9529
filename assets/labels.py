"""Labels group: human and judge labels, partitioned by batch date, normalised to the canonical pair."""

import datetime as dt
from typing import Literal

import dagster as dg
import polars as pl

from assets._meta import ingest_metadata
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
    landed = land(prefgate.paths.landing, prefgate.sources(), kind, batch=batch, seen_file_hashes=seen)
    built = build_labels(landed.files, kind, pair_keys, day, existing)
    model = schemas.HumanLabels if kind == "human_labels" else schemas.JudgeLabels
    table = schemas.validate(model, built.table)
    quarantine = quarantine_frame(kind, built.rejected, day)
    meta = ingest_metadata(built, landed, quarantine)
    who = "rater_id" if kind == "human_labels" else "judge_id"
    meta[f"distinct_{who}s"] = table[who].n_unique()
    meta["choice_counts"] = dg.MetadataValue.json(
        {r["choice"]: r["len"] for r in table.group_by("choice").len().sort("choice").iter_rows(named=True)}
    )
    return (
        dg.Output(table, kind, metadata=meta),
        dg.Output(quarantine, f"quarantine_{kind}", metadata={"dagster/row_count": quarantine.height}),
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


@dg.multi_asset(
    outs=_outs("judge_labels", "AI-judge pairwise labels per batch: a/b/tie, judge id, rationale, order shown."),
    ins={"pair_keys": dg.AssetIn()},
    partitions_def=batch_dates,
    pool="duckdb",
)
def judge_labels(  # type: ignore[no-untyped-def]
    context: dg.AssetExecutionContext, prefgate: PrefgateResource, pair_keys: pl.DataFrame
):
    """Ingest the judge label files of one batch folder (landing/judge_labels/<date>/)."""
    yield from _ingest_batch(context, prefgate, pair_keys, "judge_labels")
