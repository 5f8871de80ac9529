"""Shared metadata helpers for assets: counts that reconcile, small Markdown tables, inline images, and reading
another asset's latest materialization metadata."""

import base64
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from prefgate.ingest.landing import LandedBatch
from prefgate.ingest.readers import line_coverage
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


def image(png: bytes, title: str) -> dg.MetadataValue:
    """A PNG inlined as Markdown, so the catalog page shows the plot itself."""
    return dg.MetadataValue.md(f"![{title}](data:image/png;base64,{base64.b64encode(png).decode()})")


def latest_metadata(instance: dg.DagsterInstance, asset: str, key: str) -> Any:
    """The raw value of metadata ``key`` on ``asset``'s latest materialization; None if there is none."""
    event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    if event is None or event.asset_materialization is None:
        return None
    value = event.asset_materialization.metadata.get(key)
    return None if value is None else getattr(value, "value", value)


def ingest_metadata(built: Built, landed: LandedBatch, quarantine: pl.DataFrame, landing: Path) -> dict[str, Any]:
    """Rows read / accepted / aliased / quarantined, per file, and whether they reconcile.

    ``counts_reconcile`` is computed, twice over: rows read = accepted + aliased + quarantined, and every
    non-blank physical line of every file (Parquet: every row) lies in exactly one record or one quarantined
    row, counted by a second pass over the file independent of the row count. Either failing fails the asset,
    naming the file and lines, because a row that vanished cannot be quarantined after the fact.
    """
    lost = []
    for m in landed.files:
        cov = line_coverage((landing / m.source_file).resolve(), m.spec.file_format(Path(m.source_file)))
        if not cov.reconciles:
            lines = ", ".join(str(n) for n in (cov.uncovered + cov.overlapping)[:10])
            lost.append(f"{m.source_file}: lines {lines} are in no record and no quarantined row")
    if not built.reconciles or lost:
        raise RuntimeError(
            f"ingest counts do not reconcile: read {built.rows_read}, accepted {built.table.height} + "
            f"aliased {built.aliased} + quarantined {len(built.rejected)}; " + "; ".join(lost)
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
        "counts_reconcile": built.reconciles and not lost,
        "files": markdown_table(per_file, 50),
        "skipped_duplicate_files": dg.MetadataValue.json(
            [{"file": f, "same_bytes_as": s} for f, s in landed.skipped_duplicate_files]
        ),
        "refused_files": dg.MetadataValue.json([{"file": f, "reason": r} for f, r in landed.refused]),
        "renamed_files": dg.MetadataValue.json([{"file": f, "was": w} for f, w in landed.renamed]),
        "dagster/row_count": built.table.height,
    }
