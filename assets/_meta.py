"""Shared metadata helpers for ingest assets: counts that reconcile, and small Markdown tables."""

from typing import Any

import dagster as dg
import polars as pl

from prefgate.ingest.landing import LandedBatch
from prefgate.ingest.tables import Built


def markdown_table(df: pl.DataFrame, limit: int = 20) -> dg.MetadataValue:
    """A frame as a Markdown table for the asset's catalog page."""
    head = df.head(limit)
    lines = ["| " + " | ".join(head.columns) + " |", "|" + "---|" * len(head.columns)]
    lines += [
        "| " + " | ".join(str(v).replace("|", "\\|").replace("\n", " ")[:80] for v in row) + " |"
        for row in head.iter_rows()
    ]
    if df.height > limit:
        lines.append(f"\n…{df.height - limit} more rows")
    return dg.MetadataValue.md("\n".join(lines))


def ingest_metadata(built: Built, landed: LandedBatch, quarantine: pl.DataFrame) -> dict[str, Any]:
    """Rows read / accepted / aliased / quarantined, per file, and whether they reconcile."""
    if not built.reconciles:
        raise RuntimeError(
            f"ingest counts do not reconcile: read {built.rows_read} != accepted {built.table.height} + "
            f"aliased {built.aliased} + quarantined {len(built.rejected)}"
        )
    per_file = pl.DataFrame(
        {
            "file": [m.source_file for m in landed.files],
            "source": [m.spec.name for m in landed.files],
            "rows_read": [m.rows_read for m in landed.files],
        },
        schema={"file": pl.String, "source": pl.String, "rows_read": pl.Int64},
    )
    q_by_file = quarantine.group_by(pl.col("source_file").alias("file")).agg(pl.len().alias("quarantined"))
    per_file = per_file.join(q_by_file, on="file", how="left").with_columns(pl.col("quarantined").fill_null(0))
    return {
        "rows_read": built.rows_read,
        "rows_accepted": built.table.height,
        "rows_aliased": built.aliased,
        "rows_quarantined": len(built.rejected),
        "counts_reconcile": built.reconciles,
        "files": markdown_table(per_file, 50),
        "skipped_duplicate_files": dg.MetadataValue.json(
            [{"file": f, "same_bytes_as": s} for f, s in landed.skipped_duplicate_files]
        ),
        "dagster/row_count": built.table.height,
    }
