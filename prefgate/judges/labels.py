"""Turn live judgments into rows of the ``judge_labels`` table, beside the recorded (ingested) verdicts.

Recorded verdicts come from landing files and carry file/line provenance; live ones come from a judge run and
carry the judge's own record instead (order, parse status, raw output, tokens, latency, cost, PII decision,
template and constitution hashes). Failed judgments stay in the table with ``status = failed`` and no choice.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from prefgate.ids import content_hash
from prefgate.judges.runner import position_consistency

LIVE_COLUMNS: dict[str, pl.DataType] = {
    "origin": pl.String(),
    "status": pl.String(),
    "parse_status": pl.String(),
    "order": pl.String(),
    "raw_output": pl.String(),
    "error": pl.String(),
    "prompt_tokens": pl.Int64(),
    "completion_tokens": pl.Int64(),
    "latency_s": pl.Float64(),
    "cost_usd": pl.Float64(),
    "attempts": pl.Int64(),
    "pii_action": pl.String(),
    "constitution_hash": pl.String(),
    "template_hash": pl.String(),
    "position_consistent": pl.Boolean(),
}


def live_label_id(judge_id: str, pair_id: str, order: str) -> str:
    """The id of a live judgment: one per (judge, pair, order), the same key the cache uses."""
    return content_hash("judge_labels", judge_id, pair_id, order)


def recorded_with_live_columns(recorded: pl.DataFrame) -> pl.DataFrame:
    """Recorded verdicts with the live-only columns present (origin recorded, status ok, the rest null)."""
    extra = {name: pl.lit(None, dtype=dtype) for name, dtype in LIVE_COLUMNS.items()}
    extra["origin"] = pl.lit("recorded")
    extra["status"] = pl.lit("ok")
    return recorded.with_columns(**extra)


def live_rows(judgments: pl.DataFrame, names: dict[str, str], batch_date: dt.date, like: pl.DataFrame) -> pl.DataFrame:
    """Rows for the judge_labels table from :func:`prefgate.judges.runner.judgments_frame` output.

    ``names`` maps judge_id to its registry name (the row's ``source``); ``like`` is a frame with the table's
    columns (the recorded rows), whose column order and types the result follows.
    """
    if judgments.is_empty():
        return like.clear()
    consistency = position_consistency(judgments).select("judge_id", "pair_id", "consistent", "both_ok")
    rows = judgments.join(consistency, on=["judge_id", "pair_id"], how="left").with_columns(
        pl.struct("judge_id", "pair_id", "order")
        .map_elements(lambda s: live_label_id(s["judge_id"], s["pair_id"], s["order"]), return_dtype=pl.String)
        .alias("label_id"),
        pl.col("pair_id").alias("pair_key"),
        pl.lit(batch_date).alias("batch_date"),
        pl.col("verdict").alias("raw_choice"),
        pl.col("judge_id")
        .replace_strict(names, default=None)
        .map_elements(lambda n: f"live:{n}", return_dtype=pl.String)
        .alias("source"),
        pl.lit(None, dtype=pl.String).alias("source_file"),
        pl.lit(None, dtype=pl.Int64).alias("source_line"),
        pl.lit(None, dtype=pl.String).alias("file_sha256"),
        pl.lit("live").alias("origin"),
        pl.when(pl.col("both_ok")).then(pl.col("consistent")).otherwise(None).alias("position_consistent"),
    )
    return rows.select([pl.col(c).cast(t) for c, t in like.schema.items()])
