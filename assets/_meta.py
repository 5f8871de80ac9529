"""Shared metadata helpers for assets: counts that reconcile, typed tables, headline numbers, charts, and reading
another asset's latest materialization metadata."""

import base64
import datetime as dt
import hashlib
import json
import math
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import polars as pl

from prefgate.ingest.landing import LandedBatch
from prefgate.ingest.readers import line_coverage
from prefgate.ingest.tables import Built

# How the Dagster 1.13 UI shows metadata (read from dagster-webserver 1.13.27's bundled source, ui-core
# metadata/MetadataEntry.tsx, assets/AssetEventMetadataEntriesTable.tsx, assets/LastMaterializationMetadata.tsx):
# * MetadataValue.table renders inline as a real table (every record, no paging) on the asset's overview
#   ("latest materialization") and in its Events metadata; column types/descriptions sit behind "Show schema".
# * MetadataValue.md renders inline only when the Markdown is shorter than 1,000 characters; longer Markdown, so
#   every inlined PNG (base64, tens of kB), becomes a "[Show Markdown]" link that opens the chart in a dialog.
#   Its sanitiser does allow data: image sources (and http/https; file: is stripped), so the dialog shows the
#   chart itself. No metadata type renders an image inline; the asset description is fixed at definition time.
# * MetadataValue.path shows the path as text with a copy button (no link); MetadataValue.url("file://...") is a
#   link the browser refuses to open from an http page. Neither shows a chart.
# * Int and float entries are charted across materializations under the metadata table's Table/Plots toggle
#   (AssetEventMetadataPlots.tsx); text, tables and Markdown are not.
# So each chart is a Markdown image (one click: "[Show Markdown]"), listed before the tables, and the same PNG is
# saved as <home>/exports/charts/<asset>.png (overwritten by each run) with its path beside it. Headline numbers
# are plain ints/floats (python, never NaN) under stable keys so the Plots view charts their history.


def _sig3(v: float) -> float | None:
    """``v`` to 3 significant digits; None for NaN and infinities (JSON has neither)."""
    if not math.isfinite(v):
        return None
    return float(f"{v:.3g}")


def _column_type(dtype: pl.DataType) -> str:
    if dtype == pl.Boolean:
        return "bool"
    if dtype.is_integer():
        return "int"
    if dtype.is_float() or dtype.is_decimal():
        return "float"
    return "string"


def _cell(v: Any, kind: str) -> str | int | float | bool | None:
    """One value as a table cell: floats to 3 significant digits, lists joined with ", ", strings in full."""
    if v is None:
        return None
    if kind == "bool":
        return bool(v)
    if kind == "int":
        return int(v)
    if kind == "float":
        return _sig3(float(v))
    if isinstance(v, list | tuple):
        return ", ".join("" if x is None else str(x) for x in v)
    if isinstance(v, dt.date | dt.datetime | dt.time):
        return v.isoformat()
    if isinstance(v, dict):
        return json.dumps(v, default=str, sort_keys=True)
    return str(v)


def table(
    df: pl.DataFrame,
    limit: int = 20,
    *,
    empty_reason: str | None = None,
    descriptions: Mapping[str, str] | None = None,
) -> dg.MetadataValue:
    """``df`` as a typed Dagster table (int/float/bool/string columns): floats to 3 significant digits, strings
    in full, lists joined with ", ". At most ``limit`` rows; when there are more, the first column's description
    says so (pair it with :func:`table_entries` for a visible ``<name>_rows_total``). An empty frame becomes a
    text entry with ``empty_reason`` (why it is empty, in words) instead of a table with no rows."""
    if df.height == 0:
        return dg.MetadataValue.text(f"empty: {empty_reason}" if empty_reason else "empty: no rows")
    kinds = {c: _column_type(t) for c, t in df.schema.items()}
    notes = dict(descriptions or {})
    if df.height > limit:
        first = df.columns[0]
        cut = f"first {limit} of {df.height} rows, in the order shown"
        notes[first] = f"{notes[first]}; {cut}" if first in notes else cut
    records = [
        dg.TableRecord({c: _cell(v, kinds[c]) for c, v in row.items()}) for row in df.head(limit).iter_rows(named=True)
    ]
    schema = dg.TableSchema(columns=[dg.TableColumn(c, kinds[c], notes.get(c)) for c in df.columns])
    return dg.MetadataValue.table(records=records, schema=schema)


def table_entries(
    name: str,
    df: pl.DataFrame,
    limit: int = 20,
    *,
    empty_reason: str | None = None,
    descriptions: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """``{name: table(df, ...)}``, plus ``<name>_rows_total`` (an int) when the table shows only ``limit`` rows."""
    out: dict[str, Any] = {name: table(df, limit, empty_reason=empty_reason, descriptions=descriptions)}
    if df.height > limit:
        out[f"{name}_rows_total"] = df.height
    return out


def markdown_table(df: pl.DataFrame, limit: int = 20) -> dg.MetadataValue:
    """Former name of :func:`table`, kept for the asset checks that still call it."""
    return table(df, limit)


def headline(values: Mapping[str, Any], decimals: int = 4) -> dict[str, Any]:
    """Headline numbers as plain python ints/floats (floats rounded to ``decimals``), for the Plots view; None, NaN
    and infinities are left out (say why in a separate text entry)."""
    out: dict[str, Any] = {}
    for key, v in values.items():
        if v is None:
            continue
        if isinstance(v, bool | np.bool_):
            out[key] = bool(v)
        elif isinstance(v, int | np.integer):
            out[key] = int(v)
        elif math.isfinite(f := float(v)):
            out[key] = round(f, decimals)
    return out


def image(png: bytes, title: str) -> dg.MetadataValue:
    """A PNG inlined as Markdown; the UI shows it in a dialog behind "[Show Markdown]" (see the note above)."""
    return dg.MetadataValue.md(f"![{title}](data:image/png;base64,{base64.b64encode(png).decode()})")


def chart(exports: Path, asset: str, key: str, png: bytes, title: str, *, primary: bool = True) -> dict[str, Any]:
    """``{key: image, key + "_png": path}``: the chart inline and saved as ``exports/charts/<asset>.png`` (the
    asset's main chart) or ``<asset>-<key>.png``, replaced atomically so a reader never sees half a file."""
    folder = exports / "charts"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (f"{asset}.png" if primary else f"{asset}-{key}.png")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(png)
    os.replace(tmp, path)
    return {key: image(png, title), f"{key}_png": dg.MetadataValue.path(str(path))}


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
        **table_entries(
            "files", per_file, 50, empty_reason="no file was read (see skipped_duplicate_files and refused_files)"
        ),
        "skipped_duplicate_files": dg.MetadataValue.json(
            [{"file": f, "same_bytes_as": s} for f, s in landed.skipped_duplicate_files]
        ),
        "refused_files": dg.MetadataValue.json([{"file": f, "reason": r} for f, r in landed.refused]),
        "renamed_files": dg.MetadataValue.json([{"file": f, "was": w} for f, w in landed.renamed]),
        "dagster/row_count": built.table.height,
    }


def content_version(df: pl.DataFrame) -> dg.DataVersion:
    """A data version from a frame's content (column names, types, rows in any order).

    Dagster marks an asset stale when an input's data version differs from the one it was built from; by default
    every materialization is a new version, so a rerun that changes nothing would mark everything downstream
    "Unsynced". With content versions, only a real change does. Row hashes are polars' (fixed seed), sorted.
    """
    h = hashlib.sha256(repr([(c, str(t)) for c, t in df.schema.items()]).encode())
    if df.height and df.width:
        h.update(df.hash_rows(seed=0).sort().to_numpy().tobytes())
    return dg.DataVersion(h.hexdigest()[:24])


def output(value: pl.DataFrame, output_name: str = "result", metadata: dict[str, Any] | None = None) -> dg.Output:
    """``dg.Output`` with a content data version (see :func:`content_version`).

    Dagster 1.13 marks ``data_version=`` beta and warns on every output; prefgate depends on it knowingly (pinned
    dagster), so that one warning is silenced here instead of flooding every run's console."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Parameter `data_version`", category=dg.BetaWarning)
        return dg.Output(value, output_name, metadata=metadata, data_version=content_version(value))
