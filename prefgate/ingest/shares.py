"""Quarantine share per landing file and per label batch, against the policy's ``ingest.max_quarantine_share``.

A file whose rows mostly land in quarantine is almost always a mapping error (a renamed column, a new export
format), not a few bad rows: its accepted remainder is suspect and someone should look. Rows read of a file =
rows accepted into its table + rows quarantined from it; the share is quarantined / read, per file and per
(table, batch). O(files).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

COUNT_SCHEMA = {"table": pl.String, "batch_date": pl.Date, "source_file": pl.String, "n": pl.Int64}
INGESTED = ("raw_prompts", "response_pairs", "eval_prompts", "human_labels", "judge_labels")
RESOLUTION_REASONS = ("conflicting_label", "repeated_label")  # accepted at ingest, set aside later


def _accepted_counts_sql(table: str, schema: str) -> str:
    """SQL counting one ingested table's accepted rows per (table, batch_date, source_file); live judge rows,
    which come from no file, are left out."""
    batch = "batch_date" if table in ("human_labels", "judge_labels") else "CAST(NULL AS DATE)"
    live = " WHERE origin = 'recorded'" if table == "judge_labels" else ""
    return (
        f"SELECT '{table}' AS \"table\", {batch} AS batch_date, source_file, count(*) AS n "
        f"FROM {schema}.{table}{live} GROUP BY ALL"
    )


def accepted_counts(run: Callable[[str, str], pl.DataFrame | None], schema: str = "prefgate") -> pl.DataFrame:
    """Accepted rows per file over every ingested table (:data:`COUNT_SCHEMA`).

    ``run(table, sql)`` runs ``sql`` on the warehouse, or returns None when ``table`` does not exist yet (a
    table not built counts no accepted rows); the check and ``prefgate report`` each pass their own reader.
    """
    frames = [df for t in INGESTED if (df := run(t, _accepted_counts_sql(t, schema))) is not None]
    return pl.concat([f.cast(COUNT_SCHEMA) for f in frames]) if frames else pl.DataFrame(schema=COUNT_SCHEMA)  # type: ignore[arg-type]


def rejected_counts(quarantine: pl.DataFrame) -> pl.DataFrame:
    """Quarantined rows per file, without the labels set aside later by conflict resolution (they were read
    and accepted; a rater labelling twice says nothing about the file's mapping)."""
    keep = ~pl.col("reason").str.starts_with(RESOLUTION_REASONS[0]) & ~pl.col("reason").str.starts_with(
        RESOLUTION_REASONS[1]
    )
    return (
        quarantine.filter(keep)
        .group_by("table", "batch_date", "source_file")
        .agg(pl.len().cast(pl.Int64).alias("n"))
        .cast(COUNT_SCHEMA)  # type: ignore[arg-type]
    )


def quarantine_shares(accepted: pl.DataFrame, quarantined: pl.DataFrame, max_share: float) -> pl.DataFrame:
    """One row per (table, batch_date, source_file): rows read, quarantined, share, and whether it is over.

    Both inputs have :data:`COUNT_SCHEMA` columns (counts of rows per file); files only in one side count 0 on
    the other.
    """
    keys = ["table", "batch_date", "source_file"]
    a = accepted.cast(COUNT_SCHEMA).rename({"n": "accepted"})  # type: ignore[arg-type]
    q = quarantined.cast(COUNT_SCHEMA).rename({"n": "quarantined"})  # type: ignore[arg-type]
    out = (
        a.join(q, on=keys, how="full", coalesce=True, nulls_equal=True)
        .with_columns(pl.col("accepted").fill_null(0), pl.col("quarantined").fill_null(0))
        .with_columns((pl.col("accepted") + pl.col("quarantined")).alias("rows_read"))
        .with_columns((pl.col("quarantined") / pl.col("rows_read")).fill_nan(0.0).alias("share"))
        .with_columns((pl.col("share") > max_share).alias("over"))
    )
    return out.select(*keys, "rows_read", "quarantined", "share", "over").sort(keys, nulls_last=False)


def share_sentence(shares: pl.DataFrame, max_share: float) -> str:
    """One sentence for the check: the files over the limit with their numbers, or that all are under it."""
    over = shares.filter(pl.col("over"))
    if over.is_empty():
        worst = shares.sort("share", descending=True).head(1)
        tail = ""
        if worst.height:
            w = worst.row(0, named=True)
            tail = f"; highest {w['share']:.1%} ({w['quarantined']} of {w['rows_read']} rows, {w['source_file']})"
        return f"every landing file quarantines at most {max_share:.0%} of its rows ({shares.height} files{tail})"
    parts = [
        f"{r['source_file']} ({r['table']}): {r['quarantined']} of {r['rows_read']} rows quarantined ({r['share']:.1%})"
        for r in over.iter_rows(named=True)
    ]
    return (
        f"{over.height} landing file(s) quarantine more than the {max_share:.0%} allowed "
        f"(ingest.max_quarantine_share) -- likely a mapping error; see the quarantine table for reasons: "
        + "; ".join(parts)
    )


@dataclass(frozen=True)
class ShareGate:
    """The quarantine-share gate over every landing file: per-file shares, verdict, worst share, sentence."""

    shares: pl.DataFrame
    max_share: float

    @property
    def over(self) -> pl.DataFrame:
        return self.shares.filter(pl.col("over"))

    @property
    def passed(self) -> bool:
        return self.over.is_empty()

    @property
    def worst(self) -> float:
        return float(self.shares["share"].max() or 0.0)  # type: ignore[arg-type]

    @property
    def sentence(self) -> str:
        return share_sentence(self.shares, self.max_share)


def share_gate(accepted: pl.DataFrame, quarantine: pl.DataFrame, max_share: float) -> ShareGate:
    """The gate from accepted counts (:func:`accepted_counts`) and the union ``quarantine`` table."""
    return ShareGate(quarantine_shares(accepted, rejected_counts(quarantine), max_share), max_share)
